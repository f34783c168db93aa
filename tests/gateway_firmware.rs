//! Any firmware (issue 9): the gateway learns what each chassis' firmware
//! offers (`GET /system/info` `features`, or `[[chassis]] features` in
//! gateway.toml), shows it in status with the way it works with each, and
//! says what it cannot do yet instead of failing call after call.

use std::time::Duration;

use pairgate_suite::pair::{wait_for, Pair};
use serde_json::{json, Value};

const OLD_FIRMWARE: &[&str] = &["--without", "export_import", "--without", "id_block", "--without", "idempotency_key"];

fn firmware(status: &Value, i: usize) -> &Value {
    &status["chassis"][i]["firmware"]
}

#[tokio::test]
async fn a_pair_of_old_firmware_is_told_apart_and_the_gateway_says_what_it_lacks() {
    let pair = Pair::start_firmware([OLD_FIRMWARE, OLD_FIRMWARE], |_| {}).await;
    let s = wait_for(&pair, "both chassis' features known and pairing stuck", Duration::from_secs(20), |s| {
        firmware(s, 0).is_object() && firmware(s, 1).is_object() && s["pairing_blocked"].is_string()
    })
    .await;
    for i in 0..2 {
        let f = firmware(&s, i);
        assert_eq!(f["source"], "reported", "{f}");
        let names: Vec<&str> = f["features"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(names.contains(&"origin_seq"), "{f}");
        for gone in ["export_import", "id_block", "idempotency_key"] {
            assert!(!names.contains(&gone), "{gone} listed: {f}");
        }
        assert_eq!(f["modes"], json!({"ids": "translate", "replay": "find_out", "compare": f["modes"]["compare"], "rebuild": "api"}));
        let why = f["unsupported"].as_str().unwrap_or_default();
        assert!(why.contains("id_block") && why.contains("export_import"), "{f}");
    }
    let blocked = s["pairing_blocked"].as_str().unwrap_or_default();
    assert!(blocked.contains("offers no export/import"), "{s}");
    assert_eq!(s["pairing"], "inspecting", "{s}");
    // A mutation is refused with that reason, not a bare 503; nothing reaches a chassis.
    let api = pair.gw.login("admin", "admin").await;
    let r = api.post("/walls", json!({"name": "W", "rows": 1, "cols": 1, "outputs": [1]})).await;
    assert_eq!((r.status, r.code()), (503, "not_paired"), "{r:?}");
    assert!(r.body["error"]["message"].as_str().unwrap_or_default().contains("export/import"), "{r:?}");
    for i in 0..2 {
        let walls = pair.direct(i).await.get("/walls").await;
        assert_eq!(walls.body.as_array().map(Vec::len), Some(0), "chassis {i}: {walls:?}");
    }
}

#[tokio::test]
async fn features_written_in_the_configuration_are_taken_instead_of_asking() {
    let all = r#"features = ["id_block", "idempotency_key", "digest", "export_import", "origin_seq"]"#;
    let pair = Pair::start_with(|text| {
        *text =
            text.replace("name = \"a\"\n", &format!("name = \"a\"\n{all}\n")).replace("name = \"b\"\n", &format!("name = \"b\"\n{all}\n"));
    })
    .await;
    let s = wait_for(&pair, "features known", Duration::from_secs(10), |s| firmware(s, 0).is_object() && firmware(s, 1).is_object()).await;
    for i in 0..2 {
        let f = firmware(&s, i);
        assert_eq!(f["source"], "configured", "{f}");
        assert_eq!(f["features"], json!(["id_block", "idempotency_key", "digest", "export_import", "origin_seq"]), "{f}");
        assert_eq!(f["modes"], json!({"ids": "id_block", "replay": "idempotency_key", "compare": "digest", "rebuild": "export_import"}));
        assert_eq!(f["unsupported"], Value::Null, "{f}");
    }
    // And the pair works as ever.
    let api = pair.gw.login("admin", "admin").await;
    assert_eq!(api.post("/walls", json!({"name": "W", "rows": 1, "cols": 1, "outputs": [1]})).await.status, 201);
}

/// Every collection's listing on chassis `i`, read directly.
async fn listings(pair: &Pair, i: usize) -> Vec<Value> {
    let api = pair.direct(i).await;
    let mut all = Vec::new();
    for path in ["/users", "/sources", "/walls", "/kvm/hosts", "/plans"] {
        all.push(api.get(path).await.ok().body);
    }
    all
}

#[tokio::test]
async fn a_pair_without_digest_is_compared_by_its_listings_and_a_change_behind_its_back_is_healed() {
    let pair = Pair::start_firmware([&["--without", "digest"], &["--without", "digest"]], |_| {}).await;
    let s = pair.gw.wait_in_sync(Duration::from_secs(30)).await;
    for i in 0..2 {
        assert_eq!(firmware(&s, i)["modes"]["compare"], "listing", "{s}");
    }
    let api = pair.gw.login("admin", "admin").await;
    let w = api.post("/walls", json!({"name": "Main", "rows": 1, "cols": 2, "outputs": [1, 2]})).await.ok().id();
    api.post(&format!("/walls/{w}/windows"), json!({"source_id": 1, "x": 0, "y": 0, "w": 100, "h": 100})).await.ok();
    api.post("/kvm/hosts", json!({"name": "h", "port": 3})).await.ok();
    // Anti-entropy compares the listings and records a verified point at the last seq.
    let s = wait_for(&pair, "a verified point at the last seq", Duration::from_secs(20), |s| {
        s["chassis"].as_array().is_some_and(|c| c.iter().all(|c| c["verified"]["seq"] == s["last_seq"]))
    })
    .await;
    assert!(s["chassis"][0]["verified"]["digest"].as_str().unwrap_or_default().starts_with("listing:"), "{s}");
    // A rename made directly on the primary is seen in its listing and undone
    // by rebuilding that chassis.
    let primary = s["primary"].as_str().unwrap().to_string();
    let p = usize::from(primary == "b");
    pair.direct(p).await.put("/sources/1", json!({"name": "sneaky"})).await.ok();
    let s =
        wait_for(&pair, "anti-entropy", Duration::from_secs(20), |s| s["divergences"].as_u64() > Some(0) && s["resync"]["phase"] == "done")
            .await;
    assert_eq!(s["resync"]["chassis"], primary.as_str(), "{s}");
    pair.gw.wait_in_sync(Duration::from_secs(30)).await;
    assert_eq!(listings(&pair, 0).await, listings(&pair, 1).await);
    assert_ne!(api.get("/sources/1").await.ok().body["name"], "sneaky");
}

#[tokio::test]
async fn without_idempotency_keys_an_unknown_outcome_is_never_resent_and_the_chassis_is_rebuilt_instead() {
    // Probes every 3 s: the fault below meets the mutation, not a probe.
    let slow_probes = |t: &mut String| {
        *t = t.replace("health_interval_ms = 200", "health_interval_ms = 3000").replace("down_after_ms = 600", "down_after_ms = 9000")
    };
    let old = &["--without", "idempotency_key", "--without", "id_block"];
    let pair = Pair::start_firmware([old, old], slow_probes).await;
    pair.gw.wait_in_sync(Duration::from_secs(30)).await;
    let admin = pair.gw.login("admin", "admin").await;
    admin.post("/users", json!({"username": "ops", "password": "ops-password-1", "role": "admin"})).await.ok();
    let ops = pair.gw.login("ops", "ops-password-1").await;
    // The account's backend session on both chassis, before the fault.
    ops.post("/sources", json!({"name": "warm", "kind": "ip", "url": "rtsp://cam/0"})).await.ok();
    // b applies the next request and answers 500: whether it applied it,
    // the gateway cannot tell, and this firmware would apply a resend again.
    pair.sim_faults(1, json!({"fail_after_apply_next": 1})).await;
    assert_eq!(ops.post("/sources", json!({"name": "cam", "kind": "ip", "url": "rtsp://cam/1"})).await.status, 201);
    let s =
        wait_for(&pair, "b rebuilt", Duration::from_secs(30), |s| s["resync"]["phase"] == "done" && s["resync"]["chassis"] == "b").await;
    assert_eq!(s["resync"]["reason"], "unknown_outcome", "{s}");
    pair.gw.wait_in_sync(Duration::from_secs(30)).await;
    let sources = |body: Value| body.as_array().cloned().unwrap_or_default();
    let (a, b) =
        (sources(pair.direct(0).await.get("/sources").await.ok().body), sources(pair.direct(1).await.get("/sources").await.ok().body));
    assert_eq!(a, b, "both chassis hold the same sources");
    assert_eq!(b.iter().filter(|s| s["name"] == "cam").count(), 1, "applied once on b: {b:?}");
}

#[tokio::test]
async fn a_chassis_that_claims_id_blocks_but_ignores_them_is_caught_reported_and_rebuilt() {
    // gateway.toml says b honours X-Id-Block; its firmware does not.
    let all = r#"features = ["id_block", "idempotency_key", "digest", "export_import", "origin_seq"]"#;
    let pair =
        Pair::start_firmware([&[], &["--without", "id_block"]], |t| *t = t.replace("name = \"b\"\n", &format!("name = \"b\"\n{all}\n")))
            .await;
    pair.gw.wait_in_sync(Duration::from_secs(30)).await;
    let api = pair.gw.login("admin", "admin").await;
    // The block starts above every id either chassis holds; b numbers its
    // first wall 1.
    let wall = api.post("/walls", json!({"name": "Main", "rows": 1, "cols": 2, "outputs": [1, 2]})).await.ok();
    assert!(wall.id() > 1, "{wall:?}");
    let s = wait_for(&pair, "b caught", Duration::from_secs(20), |s| firmware(s, 1)["caught"].is_string()).await;
    let b = firmware(&s, 1);
    assert!(b["caught"].as_str().unwrap_or_default().contains("outside the block"), "{b}");
    assert_eq!(b["modes"]["ids"], "translate", "{b}");
    assert!(!b["features"].as_array().unwrap().contains(&json!("id_block")), "{b}");
    assert!(b["unsupported"].is_string(), "{b}");
    assert_eq!(firmware(&s, 0)["caught"], Value::Null);
    // Rebuilt from a: the wall has the id clients were given on both.
    pair.gw.wait_in_sync(Duration::from_secs(30)).await;
    for i in 0..2 {
        let got = pair.direct(i).await.get(&format!("/walls/{}", wall.id())).await;
        assert_eq!(got.status, 200, "chassis {i}: {got:?}");
    }
}

#[tokio::test]
async fn without_idempotency_keys_a_put_whose_outcome_is_unknown_is_resent_not_rebuilt() {
    let slow_probes = |t: &mut String| {
        *t = t.replace("health_interval_ms = 200", "health_interval_ms = 3000").replace("down_after_ms = 600", "down_after_ms = 9000")
    };
    let old = &["--without", "idempotency_key"];
    let pair = Pair::start_firmware([old, old], slow_probes).await;
    pair.gw.wait_in_sync(Duration::from_secs(30)).await;
    let admin = pair.gw.login("admin", "admin").await;
    admin.post("/users", json!({"username": "ops", "password": "ops-password-1", "role": "admin"})).await.ok();
    let ops = pair.gw.login("ops", "ops-password-1").await;
    ops.put("/sources/1", json!({"name": "warm"})).await.ok();
    // b applies the rename and answers 500; a PUT sent again sets the same name.
    pair.sim_faults(1, json!({"fail_after_apply_next": 1})).await;
    assert_eq!(ops.put("/sources/1", json!({"name": "renamed"})).await.status, 200);
    let s = pair.gw.wait_in_sync(Duration::from_secs(30)).await;
    assert_eq!(s["chassis"][1]["resyncs"], 0, "resent, not rebuilt: {s}");
    for i in 0..2 {
        assert_eq!(pair.direct(i).await.get("/sources/1").await.ok().body["name"], "renamed", "chassis {i}");
    }
}
