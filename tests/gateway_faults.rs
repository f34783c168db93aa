//! The gateway under faults: a primary killed with -9 mid-workload, a
//! session preempted behind its back, a gateway restart, a chassis with the
//! wrong certificate, bad input, and retries with `Idempotency-Key`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use pairgate_suite::api::{client_trusting, Api};
use pairgate_suite::pair::{events_socket, next_event, Pair};
use serde_json::{json, Value};

#[derive(Default)]
struct Tally {
    reads: AtomicUsize,
    failed_reads: AtomicUsize,
    writes: AtomicUsize,
    failed_writes: AtomicUsize,
    unauthorized: AtomicUsize,
}

/// Reads and writes on one wall until `stop`; every failure is counted.
async fn client(api: Api, wall: u64, n: u32, tally: Arc<Tally>, stop: Instant) {
    let mut k = 0u32;
    while Instant::now() < stop {
        k += 1;
        let r = api.post(&format!("/walls/{wall}/windows/{n}/raise"), json!({})).await;
        let w = api.post(&format!("/walls/{wall}/windows"), json!({"source_id": 1, "x": k % 100, "y": n, "w": 10, "h": 10})).await;
        for r in [&r, &w] {
            tally.writes.fetch_add(1, Ordering::Relaxed);
            if r.status == 401 {
                tally.unauthorized.fetch_add(1, Ordering::Relaxed);
            }
            if !(200..300).contains(&r.status) {
                eprintln!("write failed: {r:?}");
                tally.failed_writes.fetch_add(1, Ordering::Relaxed);
            }
        }
        if (200..300).contains(&w.status) {
            // Keep the wall below its 64-window limit.
            let _ = api.delete(&format!("/walls/{wall}/windows/{}", w.id())).await;
        }
        let r = api.get(&format!("/walls/{wall}/windows")).await;
        tally.reads.fetch_add(1, Ordering::Relaxed);
        if r.status == 401 {
            tally.unauthorized.fetch_add(1, Ordering::Relaxed);
        }
        if r.status != 200 {
            eprintln!("read failed: {r:?}");
            tally.failed_reads.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::test]
async fn kill_9_of_the_primary_loses_no_read_and_no_write_and_it_replays_on_return() {
    let mut pair = Pair::start().await;
    let admin = pair.gw.login("admin", "admin").await;
    let wall = admin.post("/walls", json!({"name": "W", "rows": 2, "cols": 2, "outputs": [1, 2, 3, 4]})).await.ok().id();
    let tally = Arc::new(Tally::default());
    let stop = Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for n in 0..4u32 {
        let api = pair.gw.login("admin", "admin").await;
        // Each client raises its own window (ids are allocated, so look it up).
        let id =
            api.post(&format!("/walls/{wall}/windows"), json!({"source_id": 2, "x": n * 20, "y": 0, "w": 10, "h": 10})).await.ok().id();
        tasks.push(tokio::spawn(client(api, wall, id as u32, tally.clone(), stop)));
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Kill whichever chassis is primary now (normally a; a loaded machine may
    // already have failed over, which is the gateway's right).
    let primary = pair.gw.status().await.unwrap()["primary"].as_str().map(str::to_string);
    let victim = usize::from(primary.as_deref() == Some("b"));
    let survivor = ["a", "b"][1 - victim];
    if victim == 0 {
        pair.a.kill9()
    } else {
        pair.b.kill9()
    }
    for t in tasks {
        t.await.unwrap();
    }
    let status = pair.gw.status().await.unwrap();
    assert_eq!(status["primary"], survivor, "{status}");
    assert!(tally.reads.load(Ordering::Relaxed) > 20 && tally.writes.load(Ordering::Relaxed) > 40, "workload too small");
    assert_eq!(tally.failed_reads.load(Ordering::Relaxed), 0, "reads failed");
    assert_eq!(tally.failed_writes.load(Ordering::Relaxed), 0, "writes failed");
    assert_eq!(tally.unauthorized.load(Ordering::Relaxed), 0, "someone had to log in again");
    let depth_while_down = status["chassis"][victim]["lag"].as_u64().unwrap();
    assert!(depth_while_down > 0, "the killed chassis missed the writes made while it was down: {status}");

    // Back on the same state: the journal replays what it missed.
    if victim == 0 {
        pair.a.restart().await
    } else {
        pair.b.restart().await
    }
    let status = pair.gw.wait_in_sync(Duration::from_secs(20)).await;
    assert_eq!(status["divergences"], 0);
    let [(da, oa), (db, ob)] = pair.snapshot().await;
    assert_eq!(da, db);
    assert_eq!(oa, ob);
    // The clients' sessions are still good.
    admin.get("/walls").await.ok();
}

/// A chassis killed while a write waits for it is not waited for any
/// longer: once it is down (sent nothing more) the write is answered by the
/// other, not after the secondary grace. The grace is 3 s here (a try 6 s), so a write
/// that waits for the dead chassis stands out from a slow machine; three
/// kills, each of the primary under a writer that never pauses long.
#[tokio::test]
async fn a_write_does_not_wait_the_grace_for_a_chassis_killed_under_it() {
    const GRACE_MS: u64 = 3000;
    use pairgate_suite::gateway_config::{PER_TRY_MS, SECONDARY_GRACE_MS};
    // The grace may not be longer than a try.
    let mut pair = Pair::start_with(|t| {
        *t = t.replacen(&format!("secondary_grace_ms = {SECONDARY_GRACE_MS}"), &format!("secondary_grace_ms = {GRACE_MS}"), 1).replacen(
            &format!("per_try_ms = {PER_TRY_MS}"),
            &format!("per_try_ms = {}", 2 * GRACE_MS),
            1,
        )
    })
    .await;
    let admin = pair.gw.login("admin", "admin").await;
    let wall = admin.post("/walls", json!({"name": "W", "rows": 1, "cols": 1, "outputs": [1]})).await.ok().id();
    let win = admin.post(&format!("/walls/{wall}/windows"), json!({"source_id": 1, "x": 0, "y": 0, "w": 10, "h": 10})).await.ok().id();
    let mut slowest = Vec::new();
    for round in 0..3 {
        let status = pair.gw.wait_in_sync(Duration::from_secs(20)).await;
        let victim = usize::from(status["primary"].as_str() == Some("b"));
        let writer = {
            let api = pair.gw.login("admin", "admin").await;
            tokio::spawn(async move {
                let (start, mut took) = (Instant::now(), Vec::new());
                for k in 0..5_000u32 {
                    if start.elapsed() > Duration::from_millis(1500) {
                        break;
                    }
                    let sent = start.elapsed();
                    let r = api.put(&format!("/walls/{wall}/windows/{win}"), json!({"x": k % 100, "y": round})).await;
                    took.push((sent, start.elapsed() - sent, r.status));
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                took
            })
        };
        tokio::time::sleep(Duration::from_millis(400)).await;
        let killed_after = Duration::from_millis(400);
        if victim == 0 {
            pair.a.kill9()
        } else {
            pair.b.kill9()
        }
        let took = writer.await.expect("writer");
        assert!(took.iter().all(|(_, _, s)| *s == 200), "round {round}: a write failed: {took:?}");
        let after: Vec<_> = took.iter().filter(|(sent, _, _)| *sent + Duration::from_millis(50) >= killed_after).collect();
        let worst = after.iter().map(|(_, d, _)| *d).max().unwrap_or_default();
        assert!(
            worst < Duration::from_millis(GRACE_MS / 2),
            "round {round}: a write waited {worst:?} for the killed chassis (grace {GRACE_MS} ms): {after:?}"
        );
        assert!(after.len() > 10, "round {round}: too few writes after the kill: {after:?}");
        slowest.push(worst);
        if victim == 0 {
            pair.a.restart().await
        } else {
            pair.b.restart().await
        }
    }
    eprintln!("the slowest write after each kill: {slowest:?}");
}

#[tokio::test]
async fn no_gateway_user_sees_a_401_when_the_backend_session_is_preempted() {
    let pair = Pair::start().await;
    let first = pair.gw.login("admin", "admin").await;
    let second = pair.gw.login("admin", "admin").await; // the same account, another browser
    first.post("/kvm/hosts", json!({"name": "h1", "port": 1})).await.ok();
    second.get("/kvm/hosts").await.ok();
    for round in 0..3 {
        // Someone logs in on each chassis directly, forcing the gateway's session out.
        let _a = pair.direct(0).await;
        let _b = pair.direct(1).await;
        let r = first.post("/kvm/hosts", json!({"name": format!("h{}", round + 2), "port": round + 2})).await;
        assert_eq!(r.status, 201, "{r:?}");
        let r = second.get("/kvm/hosts").await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    // Logout ends one gateway session only.
    assert_eq!(first.post("/logout", json!({})).await.status, 204);
    assert_eq!(first.get("/walls").await.status, 401);
    second.get("/walls").await.ok();
    pair.gw.wait_in_sync(Duration::from_secs(10)).await;
    let [(da, _), (db, _)] = pair.snapshot().await;
    assert_eq!(da, db);
}

#[tokio::test]
async fn a_gateway_restart_keeps_sessions_and_data() {
    let mut pair = Pair::start().await;
    let api = pair.gw.login("admin", "admin").await;
    let before = api.post("/kvm/hosts", json!({"name": "h", "port": 1})).await.ok().id();
    pair.gw.restart(); // kill -9, same config and state
    pair.gw.wait_in_sync(Duration::from_secs(20)).await;
    let api = Api { http: client_trusting(Some(&pair.gw.cert)), ..api };
    assert_eq!(api.get("/kvm/hosts").await.ok().body[0]["id"], json!(before), "same token, no new login");
    // The id counter did not go back: a new create gets a fresh id.
    let after = api.post("/kvm/hosts", json!({"name": "h2", "port": 2})).await.ok().id();
    assert!(after > before);
}

#[tokio::test]
async fn a_chassis_with_the_wrong_certificate_is_refused() {
    let mut pair = Pair::start().await;
    // Paired; now the configuration trusts chassis a's certificate for b: b
    // presents its own and must be refused (and said so), while a serves.
    pair.gw.kill9();
    let text = std::fs::read_to_string(&pair.gw.config).unwrap();
    let a_cert = pair.certs[0].display().to_string();
    let b_cert = pair.certs[1].display().to_string();
    assert!(text.contains(&b_cert));
    std::fs::write(&pair.gw.config, text.replace(&b_cert, &a_cert)).unwrap();
    pair.gw.restart();
    let mut status = Value::Null;
    for _ in 0..100 {
        status = pair.gw.status().await.unwrap_or(Value::Null);
        if status["chassis"][0]["state"] == "in_sync" && status["chassis"][1]["last_error"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["chassis"][0]["state"], "in_sync", "{status}");
    assert_eq!(status["chassis"][1]["state"], "down", "an impostor certificate must not be trusted: {status}");
    assert!(status["chassis"][1]["last_error"].as_str().unwrap_or("").contains("certificate"), "{status}");
    // Service continues on a.
    let api = pair.gw.login("admin", "admin").await;
    api.post("/kvm/hosts", json!({"name": "h", "port": 1})).await.ok();
}

fn forge(claims: Value, secret: &[u8], alg: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = b64.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
    let body = b64.encode(claims.to_string());
    let signing = format!("{head}.{body}");
    if alg == "none" {
        return format!("{signing}.");
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let sig = b64.encode(ring::hmac::sign(&key, signing.as_bytes()).as_ref());
    format!("{signing}.{sig}")
}

#[tokio::test]
async fn bad_input_through_the_gateway() {
    let pair = Pair::start().await;
    let api = pair.gw.login("admin", "admin").await;
    let token = api.token.clone().unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims: Value = serde_json::from_slice(&b64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let secret = b"test-jwt-secret-0123456789abcdef0123456789";
    let mut expired = claims.clone();
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    let cases = [
        ("forged signature", forge(claims.clone(), b"some other secret that is long enough!", "HS256")),
        ("alg none", forge(claims.clone(), b"", "none")),
        ("expired", forge(expired, secret, "HS256")),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (label, t) in cases {
        let forged = Api { token: Some(t), ..api.clone() };
        let r = forged.get("/walls").await;
        assert_eq!(r.status, 401, "{label}: {r:?}");
        assert!(r.body["error"]["message"].is_string(), "{label}");
        let r = forged.post("/kvm/hosts", json!({"name": "x", "port": 9})).await;
        assert_eq!(r.status, 401, "{label}: {r:?}");
    }
    let before = pair.gw.status().await.unwrap()["last_seq"].clone();
    // Oversized body: 413 from the gateway, nothing journaled.
    let huge = format!("{{\"name\":\"{}\",\"port\":1}}", "x".repeat(2 << 20));
    let r = api.raw("POST", "/kvm/hosts", huge.into_bytes(), "application/json").await;
    assert_eq!(r.status, 413, "{r:?}");
    // Malformed JSON reaches neither chassis.
    let r = api.raw("POST", "/kvm/hosts", b"{\"name\": ".to_vec(), "application/json").await;
    assert_eq!((r.status, r.code()), (400, "malformed_json"), "{r:?}");
    assert_eq!(pair.gw.status().await.unwrap()["last_seq"], before, "nothing was journaled");
    // The simulator's hooks are never reachable through the gateway.
    let r = api.http.put(format!("{}/_sim/faults", api.base)).bearer_auth(&token).json(&json!({"fail_next": 1})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // The status page wants the admin token or an admin account: not an operator, not a made-up token.
    api.post("/users", json!({"username": "op", "password": "op-pass-1", "role": "operator"})).await.ok();
    let op = pair.gw.login("op", "op-pass-1").await;
    let status = |t: String| api.http.get(format!("{}/_pairgate/status", api.base)).bearer_auth(t).send();
    assert_eq!(status(op.token.clone().unwrap()).await.unwrap().status().as_u16(), 403);
    assert_eq!(status(format!("{token}x")).await.unwrap().status().as_u16(), 401);
    assert_eq!(status(token).await.unwrap().status().as_u16(), 200, "an admin account's session");
}

#[tokio::test]
async fn idempotency_key_repeat_mismatch_and_concurrency() {
    let pair = Pair::start().await;
    let api = pair.gw.login("admin", "admin").await;
    let body = json!({"name": "h", "port": 1});
    let first = api.call("POST", "/kvm/hosts", Some(body.clone()), &[("Idempotency-Key", "client-1")]).await.ok();
    let again = api.call("POST", "/kvm/hosts", Some(body.clone()), &[("Idempotency-Key", "client-1")]).await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    assert_eq!(api.get("/kvm/hosts").await.ok().body.as_array().unwrap().len(), 1, "applied once");
    let other = api.call("POST", "/kvm/hosts", Some(json!({"name": "other", "port": 2})), &[("Idempotency-Key", "client-1")]).await;
    assert_eq!(other.status, 422, "{other:?}");
    // Slow chassis: two concurrent requests with one key; one is refused with 409.
    for i in 0..2 {
        pair.sim_faults(i, json!({"latency_ms": 400})).await;
    }
    let (x, y) =
        tokio::join!(api.call("POST", "/kvm/hosts", Some(json!({"name": "slow", "port": 3})), &[("Idempotency-Key", "client-2")]), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            api.call("POST", "/kvm/hosts", Some(json!({"name": "slow", "port": 3})), &[("Idempotency-Key", "client-2")]).await
        });
    let mut statuses = [x.status, y.status];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{x:?} {y:?}");
}

#[tokio::test]
async fn the_events_socket_survives_the_primary_dying() {
    let mut pair = Pair::start().await;
    let api = pair.gw.login("admin", "admin").await;
    let wall = api.post("/walls", json!({"name": "W", "rows": 1, "cols": 1, "outputs": [1]})).await.ok().id();
    let mut ws = events_socket(pair.gw.port, &pair.gw.cert, api.token.as_deref().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let w1 = api.post(&format!("/walls/{wall}/windows"), json!({"source_id": 1, "x": 0, "y": 0, "w": 10, "h": 10})).await.ok().id();
    let ev = next_event(&mut ws, "window.created").await.expect("event before the failure");
    assert_eq!(ev["data"]["id"], json!(w1));
    pair.a.kill9();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let w2 = api.post(&format!("/walls/{wall}/windows"), json!({"source_id": 1, "x": 5, "y": 0, "w": 10, "h": 10})).await.ok().id();
    let ev = next_event(&mut ws, "window.created").await.expect("event after the failure, on the same socket");
    assert_eq!(ev["data"]["id"], json!(w2));
}

#[tokio::test]
async fn outcome_unknown_then_a_retry_with_the_same_key_gets_the_replayed_answer() {
    let pair = Pair::start().await;
    // An account of its own, so the direct admin logins below pre-empt nothing of it.
    let admin = pair.gw.login("admin", "admin").await;
    admin.post("/users", json!({"username": "ops", "password": "ops-pass-1", "role": "admin"})).await.ok();
    let api = pair.gw.login("ops", "ops-pass-1").await;
    // Both chassis apply every request but lose its answer (500 after applying)
    // until the faults are cleared.
    let direct = [pair.direct(0).await, pair.direct(1).await];
    let sim = |d: &Api, method: reqwest::Method, spec: Value| {
        let req = d.http.request(method, format!("{}/_sim/faults", d.base)).bearer_auth(d.token.clone().unwrap_or_default());
        async move { req.json(&spec).send().await.map(|r| r.status().as_u16()).ok() }
    };
    for d in &direct {
        assert_eq!(sim(d, reqwest::Method::PUT, json!({"fail_after_apply_next": 100000})).await, Some(200));
    }
    let body = json!({"name": "maybe", "port": 4});
    let first = api.call("POST", "/kvm/hosts", Some(body.clone()), &[("Idempotency-Key", "retry-me")]).await;
    assert_eq!((first.status, first.code()), (503, "outcome_unknown"), "{first:?}");
    for d in &direct {
        assert_eq!(sim(d, reqwest::Method::DELETE, json!({})).await, Some(204));
    }
    // The appliers keep trying (same chassis-side key: applied once) and record the answer.
    let mut again = first.clone();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        again = api.call("POST", "/kvm/hosts", Some(body.clone()), &[("Idempotency-Key", "retry-me")]).await;
        if again.status != 409 {
            break;
        }
    }
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(again.body["name"], "maybe");
    pair.gw.wait_in_sync(Duration::from_secs(10)).await;
    for i in 0..2 {
        let hosts = pair.direct(i).await.get("/kvm/hosts").await.ok().body;
        assert_eq!(hosts.as_array().unwrap().len(), 1, "applied exactly once on chassis {i}: {hosts}");
        assert_eq!(hosts[0]["id"], again.body["id"]);
    }
}

#[tokio::test]
async fn a_silently_hung_primary_costs_reads_a_hedge_not_a_timeout() {
    let pair = Pair::start().await;
    let api = pair.gw.login("admin", "admin").await;
    api.post("/kvm/hosts", json!({"name": "h", "port": 1})).await.ok();
    let normal = {
        let t = Instant::now();
        api.get("/kvm/hosts").await.ok();
        t.elapsed()
    };
    // Chassis a (primary) stops answering but keeps its connections open.
    pair.sim_faults(0, json!({"latency_ms": 5000})).await;
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let t = Instant::now();
        let r = api.get("/kvm/hosts").await;
        worst = worst.max(t.elapsed());
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body.as_array().map(Vec::len), Some(1));
    }
    assert!(worst < normal + Duration::from_millis(400), "a read waited {worst:?} (normal {normal:?})");
}

/// A read that falls over to the other chassis never shows less than a read
/// before it showed (the campaign's register check found one: seed 3, a read
/// saw a window's move, the next one, failed over, the move before it).
/// Chassis b's applier is held up behind a slow entry while a applies both;
/// b is still in sync (within the grace), so a failed read on a goes to b.
#[tokio::test]
async fn a_read_that_fails_over_never_goes_back_in_time() {
    // A grace and a probe interval longer than b's delay: b stays in sync.
    let pair = Pair::start_with(|t| {
        *t = t
            .replace("secondary_grace_ms = 200", "secondary_grace_ms = 900")
            .replace("health_interval_ms = 200", "health_interval_ms = 1000")
            .replace("down_after_ms = 600", "down_after_ms = 3000")
    })
    .await;
    let admin = pair.gw.login("admin", "admin").await;
    let wall = admin.post("/walls", json!({"name": "W", "rows": 1, "cols": 1, "outputs": [1]})).await.ok().id();
    let window = admin.post(&format!("/walls/{wall}/windows"), json!({"source_id": 1, "x": 0, "y": 0, "w": 10, "h": 10})).await.ok().id();
    admin.post("/users", json!({"username": "op", "password": "op-pass", "role": "operator"})).await.ok();
    let op = pair.gw.login("op", "op-pass").await;
    let path = format!("/walls/{wall}/windows/{window}");
    // The gateway logs the operator in to each chassis now, not under b's delay.
    op.put(&path, json!({"x": 0})).await.ok();
    // The fault hooks, each chassis' admin logged in once (not the operator's
    // session, which the gateway holds).
    let direct = [pair.direct(0).await, pair.direct(1).await];
    let faults = |i: usize, spec: Value| {
        let d = &direct[i];
        let r = d.http.put(format!("{}/_sim/faults", d.base)).bearer_auth(d.token.clone().unwrap_or_default()).json(&spec).send();
        async move { assert_eq!(r.await.map(|r| r.status().as_u16()).ok(), Some(200), "PUT /_sim/faults on chassis {i}") }
    };
    // b takes 500 ms over the first move; a does not.
    faults(1, json!({"latency_ms": 500})).await;
    let first = tokio::spawn({
        let (op, path) = (op.clone(), path.clone());
        async move { op.put(&path, json!({"x": 1})).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    faults(1, json!({})).await;
    let second = tokio::spawn({
        let (op, path) = (op.clone(), path.clone());
        async move { op.put(&path, json!({"x": 2})).await }
    });
    // a (the primary) shows the second move long before b has it.
    let mut seen = false;
    for _ in 0..100 {
        if op.get(&path).await.ok().body["x"] == 2 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(seen, "the primary never showed the second move");
    let status = pair.gw.status().await.unwrap_or_default();
    assert_eq!(status["chassis"][1]["state"], "in_sync", "b must still serve for the test to mean anything: {status}");
    // a's next answer fails: the read goes to b.
    faults(0, json!({"fail_next": 1})).await;
    let r = op.get(&path).await.ok();
    assert_eq!(r.body["x"], 2, "a read after one that saw the second move went back in time: {r:?}");
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(second.await.unwrap().status, 200);
}
