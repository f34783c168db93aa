//! Reload end to end: a real gateway in front of two real chassis, its
//! `gateway.toml` and certificate changed under load and read again (SIGHUP,
//! `pairgate reload`, `POST /_pairgate/reload`). No request fails, no session
//! ends; a route rule, a timeout and the certificate change; a file that does
//! not pass its checks, or changes what needs a restart, changes nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pairgate_suite::api::client_trusting;
use pairgate_suite::bins::bin_path;
use pairgate_suite::certs::make_cert;
use pairgate_suite::pair::{chassis, Pair};
use serde_json::json;

/// GET `path` on the gateway with the admin token, trusting `ca`: its status.
async fn admin_status(pair: &Pair, ca: &std::path::Path, path: &str) -> Result<u16, String> {
    let r = client_trusting(Some(ca)).get(format!("{}{path}", pair.gw.base)).bearer_auth(&pair.gw.admin_token).send().await;
    r.map(|r| r.status().as_u16()).map_err(|e| format!("{e:?}"))
}

fn edit_config(pair: &Pair, edit: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(&pair.gw.config).expect("gateway.toml");
    let new = edit(text.clone());
    assert_ne!(new, text, "the edit changed nothing");
    std::fs::write(&pair.gw.config, new).expect("writing gateway.toml");
}

fn hangup(pair: &Pair) {
    let pid = pair.gw.pid().expect("the gateway runs");
    let st = std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status().expect("kill -HUP");
    assert!(st.success());
}

/// Wait (bounded) until `GET path` with the admin token answers `want`.
async fn wait_status(pair: &Pair, ca: &std::path::Path, path: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = admin_status(pair, ca, path).await;
        if got == Ok(want) {
            return;
        }
        assert!(Instant::now() < deadline, "GET {path}: {got:?}, not {want}, within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `POST /_pairgate/reload`, which must be refused (422): its body.
async fn refused_reload(pair: &Pair, ca: &std::path::Path) -> serde_json::Value {
    let r = client_trusting(Some(ca))
        .post(format!("{}/_pairgate/reload", pair.gw.base))
        .bearer_auth(&pair.gw.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    r.json().await.unwrap()
}

/// How long one `PUT` of a window takes through the gateway.
async fn timed_move(api: &pairgate_suite::api::Api, wall: u64, window: u64, x: u64) -> Duration {
    let t = Instant::now();
    let r = api.put(&format!("/walls/{wall}/windows/{window}"), json!({"x": x, "y": 0, "w": 10, "h": 10})).await;
    assert_eq!(r.status, 200, "{r:?}");
    t.elapsed()
}

#[tokio::test]
async fn a_route_rule_a_timeout_and_the_certificate_change_under_load_and_a_bad_file_changes_nothing() {
    // Probes that outlast a chassis made 300 ms slow below (a probe may take one interval).
    let edit = |text: &mut String| {
        *text = text
            .replace("secondary_grace_ms = 200", "secondary_grace_ms = 150")
            .replace("health_interval_ms = 200", "health_interval_ms = 1000")
            .replace("down_after_ms = 600", "down_after_ms = 3000")
    };
    let mut pair = Pair::start_logged(edit, "pairgate=info").await;
    // A copy: the harness' file is replaced with the new certificate below.
    let old_cert = pair.dir.path().join("old-gateway.pem");
    std::fs::copy(&pair.gw.cert, &old_cert).unwrap();
    // New certificate for the gateway, made now; clients of the load trust both.
    let d = pair.dir.path().to_path_buf();
    std::fs::create_dir_all(d.join("new")).unwrap();
    let (new_cert, new_key) = make_cert(&d.join("new"), "gateway").expect("a new certificate");
    let both = d.join("both.pem");
    std::fs::write(&both, [std::fs::read(&old_cert).unwrap(), std::fs::read(&new_cert).unwrap()].concat()).unwrap();

    let api = pair.gw.login("admin", "admin").await;
    let token = api.token.clone().unwrap();
    // An account of its own for the simulator's hooks on b: a direct login as
    // admin would take the gateway's backend session of admin there.
    api.post("/users", json!({"username": "hooks", "password": "hooks-password", "role": "admin"})).await.ok();
    let mut hooks = pairgate_suite::api::Api::trusting(&pair.b.base, &pair.certs[1]);
    let r = hooks.post("/login", json!({"username": "hooks", "password": "hooks-password"})).await.ok();
    hooks.token = r.body["token"].as_str().map(str::to_string);
    let faults = |latency_ms: u64| {
        let hooks = hooks.clone();
        async move {
            let r = hooks
                .http
                .put(format!("{}/_sim/faults", hooks.base))
                .bearer_auth(hooks.token.clone().unwrap_or_default())
                .json(&json!({"latency_ms": latency_ms}))
                .send()
                .await;
            assert_eq!(r.map(|r| r.status().as_u16()).ok(), Some(200), "PUT /_sim/faults on b");
        }
    };
    let mut windows = Vec::new();
    for n in 0..3u64 {
        let wall = api.post("/walls", json!({"name": format!("load {n}"), "rows": 1, "cols": 1, "outputs": [n + 1]})).await.ok().id();
        let win = api.post(&format!("/walls/{wall}/windows"), json!({"source_id": 1, "x": 0, "y": 0, "w": 10, "h": 10})).await.ok().id();
        windows.push((wall, win));
    }

    // The load: three clients, each reading and moving its own window in a loop.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for &(wall, win) in &windows {
        let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
        let (http, base, token) = (client_trusting(Some(&both)), pair.gw.base.clone(), token.clone());
        load.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for k in 0..100_000u64 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let read = http.get(format!("{base}/api/v1/walls/{wall}/windows")).bearer_auth(&token).send().await;
                let put = http
                    .put(format!("{base}/api/v1/walls/{wall}/windows/{win}"))
                    .bearer_auth(&token)
                    .json(&json!({"x": k % 100, "y": 0, "w": 10, "h": 10}))
                    .send()
                    .await;
                for r in [read, put] {
                    match r {
                        Ok(r) if r.status().is_success() => done.fetch_add(1, Ordering::Relaxed),
                        Ok(r) => {
                            errors.push(format!("{}", r.status()));
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => {
                            errors.push(format!("{e:?}"));
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            errors
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 1. SIGHUP: the metrics rule moves and the secondary's grace grows.
    assert_eq!(admin_status(&pair, &old_cert, "/metrics").await, Ok(200));
    edit_config(&pair, |t| {
        t.replacen("path = \"/metrics\"", "path = \"/gateway-metrics\"", 1).replace("secondary_grace_ms = 150", "secondary_grace_ms = 900")
    });
    hangup(&pair);
    wait_status(&pair, &old_cert, "/gateway-metrics", 200).await;
    // `/metrics` is now an ordinary static path, the chassis' 404.
    assert_eq!(admin_status(&pair, &old_cert, "/metrics").await, Ok(404));

    // 2. A file that does not pass check-config: `pairgate reload` says where
    // and why, the gateway is not asked, and what runs stays.
    let good = std::fs::read_to_string(&pair.gw.config).unwrap();
    let bad = good.replace("secondary_grace_ms = 900", "secondary_grace_ms = \"long\"");
    std::fs::write(&pair.gw.config, &bad).unwrap();
    let out = std::process::Command::new(bin_path("pairgate")).args(["reload", "--config"]).arg(&pair.gw.config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = bad.lines().position(|l| l.contains("\"long\"")).unwrap() + 1;
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("gateway.toml:{line}:")), "{stderr}");
    // The gateway itself refuses it the same way (SIGHUP, or an older CLI).
    let body = refused_reload(&pair, &old_cert).await;
    assert_eq!(body["error"]["code"], "reload_refused");
    assert!(body["error"]["message"].as_str().unwrap().contains(&format!("gateway.toml:{line}:")), "{body}");
    hangup(&pair);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(admin_status(&pair, &old_cert, "/gateway-metrics").await, Ok(200));

    // 3. What only a restart can change is refused, naming it.
    std::fs::write(&pair.gw.config, good.replace("[state]\ndir =", "[state]\ndir = \"elsewhere\"\n#")).unwrap();
    let body = refused_reload(&pair, &old_cert).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("[state]"), "{body}");
    std::fs::write(&pair.gw.config, &good).unwrap();

    // 4. The certificate: new files, `pairgate reload`; new connections get
    // the new one, the session goes on.
    assert!(admin_status(&pair, &new_cert, "/_pairgate/status").await.is_err(), "trusted the new certificate before the reload");
    let (cert_path, key_path) = (d.join("gateway.pem"), d.join("gateway.key"));
    assert!(good.contains(&cert_path.display().to_string()), "the harness' certificate is at {}", cert_path.display());
    std::fs::copy(&new_cert, &cert_path).unwrap();
    std::fs::copy(&new_key, &key_path).unwrap();
    // `pairgate reload` trusts the files' (new) certificate, which the
    // gateway does not serve yet: it says so and points to SIGHUP.
    let out = std::process::Command::new(bin_path("pairgate")).args(["reload", "--config"]).arg(&pair.gw.config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("SIGHUP"), "{stderr}");
    hangup(&pair);
    wait_status(&pair, &new_cert, "/_pairgate/status", 200).await;
    // And from now on the command works again.
    let out = std::process::Command::new(bin_path("pairgate")).args(["reload", "--config"]).arg(&pair.gw.config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("certificates"), "{said}");
    let old_now = admin_status(&pair, &old_cert, "/_pairgate/status").await;
    assert!(old_now.is_err(), "a new connection still got the old certificate: {old_now:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;

    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for t in load {
        errors.extend(t.await.unwrap());
    }
    let (done, failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "requests failed during the reloads: {errors:?}");
    assert!(done > 50, "the load ran: {done} requests");

    // 5. The timeout reloaded in step 1: with chassis b 300 ms slow, a move
    // waits for b's answer (grace 900 ms; with the 150 ms it started with it
    // would answer without b and leave b behind).
    let (wall, win) = windows[0];
    faults(300).await;
    let slow = timed_move(&api, wall, win, 1).await;
    assert!(slow >= Duration::from_millis(290), "the move did not wait for b: {slow:?}");
    let st = pair.gw.status().await.unwrap();
    if chassis(&st, "b")["state"] != "in_sync" {
        let log = std::fs::read_to_string(&pair.gw.log.as_ref().unwrap().1).unwrap();
        let tail: Vec<&str> = log.lines().filter(|l| !l.contains("pairgate::access")).collect();
        panic!(
            "b left in_sync after a move it answered within the grace ({slow:?}): {st}\n{}",
            tail[tail.len().saturating_sub(25)..].join("\n")
        );
    }
    // …and back to a short grace: the next move does not wait for b.
    let now = std::fs::read_to_string(&pair.gw.config).unwrap();
    std::fs::write(&pair.gw.config, now.replace("secondary_grace_ms = 900", "secondary_grace_ms = 50")).unwrap();
    hangup(&pair);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let took = timed_move(&api, wall, win, 2).await;
        if took < Duration::from_millis(250) {
            break;
        }
        assert!(Instant::now() < deadline, "moves still wait for b ({took:?}) 10 s after the reload");
    }
    faults(0).await;
    pair.assert_identical(Duration::from_secs(20)).await;
    // Nobody logged in again: the session from the start still works.
    api.get("/walls").await.ok();
    let log = std::fs::read_to_string(&pair.gw.log.as_ref().unwrap().1).unwrap();
    assert!(log.contains("SIGHUP: configuration reloaded"), "{log}");
    assert!(log.contains("reload refused"), "{log}");
    pair.gw.stop(Duration::from_secs(5));
}
