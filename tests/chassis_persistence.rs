//! State survives a `kill -9` and a restart on the same `--state`; export →
//! import into a fresh chassis gives the same digest; the chassis serves
//! HTTPS with its own certificate.

use pairgate_suite::api::{client, client_trusting, Api};
use pairgate_suite::certs::make_cert;
use pairgate_suite::chassis_proc::{SimOpts, SimProcess};
use serde_json::json;

/// A little of everything, so the digest covers every table kind.
async fn populate(api: &Api) {
    let w = api.post("/walls", json!({"name": "Main", "rows": 2, "cols": 2, "outputs": [1, 2, 3, 4]})).await.ok().id();
    api.post(&format!("/walls/{w}/windows"), json!({"source_id": 2, "x": 10, "y": 20, "w": 1000, "h": 500})).await.ok();
    api.post(&format!("/walls/{w}/windows"), json!({"source_id": 3, "x": 1900, "y": 1000, "w": 100, "h": 100})).await.ok();
    api.post(&format!("/walls/{w}/scenes"), json!({"name": "morning"})).await.ok();
    api.put("/matrix/8", json!({"input": 5})).await.ok();
    let plan =
        api.post("/plans", json!({"name": "night", "routes": [{"output": 9, "input": 1}, {"output": 10, "input": null}]})).await.ok().id();
    api.post("/schedules", json!({"name": "tour", "plan_ids": [plan], "interval_s": 60, "enabled": true})).await.ok();
    let host = api.post("/kvm/hosts", json!({"name": "PC-1", "port": 3})).await.ok().id();
    api.post("/kvm/seats", json!({"name": "Seat A", "console": "desk 1", "host_id": host})).await.ok();
    api.post("/sources", json!({"name": "Camera", "kind": "ip", "url": "rtsp://cam-1/stream"})).await.ok();
    api.put("/sources/4", json!({"name": "Renamed input"})).await.ok();
    api.post("/users", json!({"username": "op", "password": "op-pw", "role": "operator"})).await.ok();
    api.post("/cascade/subordinates", json!({"serial": "SUB-1", "url": "http://127.0.0.1:9", "sources": [{"id": 1, "name": "cam"}]}))
        .await
        .ok();
    api.put("/cascade/links/2", json!({"source_id": 1})).await.ok();
}

#[tokio::test]
async fn kill_9_and_restart_keeps_everything() {
    let mut sim = SimProcess::start(SimOpts::default()).await;
    let api = Api::login(&sim.base, "admin", "admin").await;
    populate(&api).await;
    let digest = api.digest().await;
    let outputs = api.outputs().await;
    let export = api.get("/system/export").await.ok().body;

    sim.restart().await; // SIGKILL, then the same command line
                         // Sessions are in memory only: a restarted chassis forgot every token.
    let stale = Api { http: client(), ..api.clone() }.get("/walls").await;
    assert_eq!(stale.status, 401, "{stale:?}");
    let api = Api::login(&sim.base, "admin", "admin").await;
    assert_eq!(api.digest().await, digest);
    assert_eq!(api.outputs().await, outputs);
    assert_eq!(api.get("/system/export").await.ok().body["tables"], export["tables"]);
    // Passwords survived (hashed) and counters survived: the next id continues.
    Api::login(&sim.base, "op", "op-pw").await;
    let next = api.post("/kvm/hosts", json!({"name": "PC-2", "port": 4})).await.ok().id();
    assert_eq!(next, 2);
    // Idempotency keys survive a restart too.
    let r1 = api.call("POST", "/kvm/hosts", Some(json!({"name": "PC-3", "port": 5})), &[("Idempotency-Key", "k-1")]).await.ok();
    sim.restart().await;
    let api = Api::login(&sim.base, "admin", "admin").await;
    let r2 = api.call("POST", "/kvm/hosts", Some(json!({"name": "PC-3", "port": 5})), &[("Idempotency-Key", "k-1")]).await;
    assert_eq!((r2.status, &r2.body), (r1.status, &r1.body));
    assert_eq!(api.get("/kvm/hosts").await.ok().body.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn export_import_into_a_fresh_chassis_gives_the_same_digest() {
    let a = SimProcess::start(SimOpts::default()).await;
    let b = SimProcess::start(SimOpts { serial: "B".into(), ..SimOpts::default() }).await;
    let api_a = Api::login(&a.base, "admin", "admin").await;
    let api_b = Api::login(&b.base, "admin", "admin").await;
    populate(&api_a).await;
    assert_ne!(api_a.digest().await, api_b.digest().await);
    let doc = api_a.get("/system/export").await.ok().body;
    let r = api_b.put("/system/import", doc.clone()).await.ok();
    let exported_b = api_b.get("/system/export").await.ok().body;
    for (name, table) in doc["tables"].as_object().unwrap() {
        assert_eq!(&exported_b["tables"][name], table, "table {name} after import");
    }
    let digest = api_a.digest().await;
    assert_eq!(r.body["digest"], json!(digest));
    assert_eq!(api_b.digest().await, digest);
    assert_eq!(api_b.outputs().await, api_a.outputs().await);
    // The importing admin session is still valid (same account), and the
    // imported users can log in with their own passwords.
    api_b.get("/walls").await.ok();
    Api::login(&b.base, "op", "op-pw").await;
    // Both chassis now number the next create the same way.
    let x = api_a.post("/kvm/hosts", json!({"name": "N", "port": 9})).await.ok().id();
    let y = api_b.post("/kvm/hosts", json!({"name": "N", "port": 9})).await.ok().id();
    assert_eq!(x, y);
    assert_eq!(api_a.digest().await, api_b.digest().await);

    // A broken document changes nothing.
    let before = api_b.digest().await;
    let mut broken = doc.clone();
    broken["tables"]["walls"]["rows"][0]["rows"] = json!("two");
    let r = api_b.put("/system/import", broken).await;
    assert_eq!((r.status, r.code()), (422, "invalid_export"), "{r:?}");
    let r = api_b.put("/system/import", json!({"format": "something-else"})).await;
    assert_eq!((r.status, r.code()), (422, "invalid_export"));
    assert_eq!(api_b.digest().await, before);
}

#[tokio::test]
async fn digest_ignores_write_order_and_password_salts() {
    let a = SimProcess::start(SimOpts::default()).await;
    let b = SimProcess::start(SimOpts::default()).await;
    let api_a = Api::login(&a.base, "admin", "admin").await;
    let api_b = Api::login(&b.base, "admin", "admin").await;
    // Same final state, rows written in a different order (explicit ids).
    api_a.with_block("POST", "/kvm/hosts", Some(json!({"name": "one", "port": 1})), 10, 1).await.ok();
    api_a.with_block("POST", "/kvm/hosts", Some(json!({"name": "two", "port": 2})), 20, 1).await.ok();
    api_b.with_block("POST", "/kvm/hosts", Some(json!({"name": "two", "port": 2})), 20, 1).await.ok();
    api_b.with_block("POST", "/kvm/hosts", Some(json!({"name": "one", "port": 1})), 10, 1).await.ok();
    // The same user with the same password hashes with different salts.
    for api in [&api_a, &api_b] {
        api.with_block("POST", "/users", Some(json!({"username": "u", "password": "same", "role": "viewer"})), 30, 1).await.ok();
    }
    let ea = api_a.get("/system/export").await.ok().body;
    let eb = api_b.get("/system/export").await.ok().body;
    assert_ne!(ea["tables"]["users"], eb["tables"]["users"], "salts differ");
    assert_eq!(api_a.digest().await, api_b.digest().await);
    // And a real difference shows.
    api_b.put("/sources/1", json!({"name": "changed"})).await.ok();
    assert_ne!(api_a.digest().await, api_b.digest().await);
}

#[tokio::test]
async fn serves_https_with_its_own_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = make_cert(dir.path(), "chassis").unwrap();
    let sim = SimProcess::start(SimOpts { tls: Some((cert_path.clone(), key_path)), ..SimOpts::default() }).await;
    assert!(sim.base.starts_with("https://"));
    let mut api = Api::new(&sim.base);
    api.http = client_trusting(Some(&cert_path));
    let r = api.post("/login", json!({"username": "admin", "password": "admin"})).await.ok();
    assert!(r.body["token"].is_string());
    // A client that does not trust this certificate is refused.
    let untrusting = Api::new(&sim.base);
    let err = untrusting.http.get(format!("{}/api/v1/system/health", sim.base)).send().await;
    assert!(err.is_err(), "an unknown certificate must not be accepted");
}
