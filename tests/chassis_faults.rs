//! The simulator's `/_sim` fault hooks do what tests will rely on: they are
//! off unless enabled, admin-only, and each fault is real (a refused TCP
//! connect, a dropped connection, a 5xx before or after applying, latency,
//! a power-off that ends the process).

use std::time::{Duration, Instant};

use pairgate_suite::api::{client, Api};
use pairgate_suite::chassis_proc::{SimOpts, SimProcess};
use serde_json::{json, Value};

async fn sim_put(api: &Api, spec: Value) -> u16 {
    let r = api.http.put(format!("{}/_sim/faults", api.base)).bearer_auth(api.token.clone().unwrap()).json(&spec).send().await.unwrap();
    r.status().as_u16()
}

async fn health(base: &str) -> Result<u16, String> {
    // A fresh client each time, so no pooled connection hides a refusal.
    client()
        .get(format!("{base}/api/v1/system/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test]
async fn hooks_are_off_unless_enabled() {
    let sim = SimProcess::start(SimOpts { hooks: false, ..SimOpts::default() }).await;
    let api = Api::login(&sim.base, "admin", "admin").await;
    assert_eq!(sim_put(&api, json!({"fail_next": 1})).await, 404);
    api.get("/walls").await.ok();
}

#[tokio::test]
async fn request_faults() {
    let sim = SimProcess::start(SimOpts::default()).await;
    let api = Api::login(&sim.base, "admin", "admin").await;
    // Invalid spec.
    assert_eq!(sim_put(&api, json!({"error_rate": 2.0})).await, 422);
    assert_eq!(sim_put(&api, json!({"bogus": 1})).await, 400);

    // fail_next: the next two requests fail with 503 and are not applied.
    assert_eq!(sim_put(&api, json!({"fail_next": 2})).await, 200);
    for _ in 0..2 {
        let r = api.post("/kvm/hosts", json!({"name": "h", "port": 1})).await;
        assert_eq!((r.status, r.code()), (503, "injected_fault"));
    }
    assert_eq!(api.get("/kvm/hosts").await.ok().body, json!([]), "the failed creates were not applied");

    // fail_after_apply_next: applied, then answered 500 (outcome unknown).
    assert_eq!(sim_put(&api, json!({"fail_after_apply_next": 1})).await, 200);
    let r = api.post("/kvm/hosts", json!({"name": "h", "port": 1})).await;
    assert_eq!(r.status, 500);
    assert_eq!(api.get("/kvm/hosts").await.ok().body.as_array().unwrap().len(), 1, "applied despite the 500");

    // latency
    assert_eq!(sim_put(&api, json!({"latency_ms": 300})).await, 200);
    let t = Instant::now();
    api.get("/walls").await.ok();
    assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());
    // error_rate 1.0: everything fails; the hooks themselves stay reachable.
    assert_eq!(sim_put(&api, json!({"error_rate": 1.0})).await, 200);
    assert_eq!(api.get("/walls").await.status, 500);
    let r = api.http.delete(format!("{}/_sim/faults", api.base)).bearer_auth(api.token.clone().unwrap()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    api.get("/walls").await.ok();
}

#[tokio::test]
async fn connection_faults_refuse_and_drop_then_heal() {
    let sim = SimProcess::start(SimOpts::default()).await;
    let api = Api::login(&sim.base, "admin", "admin").await;

    assert_eq!(sim_put(&api, json!({"refuse_ms": 800})).await, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = health(&sim.base).await.expect_err("connect must fail while refusing");
    assert!(err.contains("Connect") || err.to_lowercase().contains("refused"), "{err}");
    // Heals by itself (bounded wait).
    let t = Instant::now();
    let mut healed = false;
    for _ in 0..100 {
        if health(&sim.base).await == Ok(200) {
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(healed && t.elapsed() < Duration::from_secs(5), "healed after {:?}", t.elapsed());

    // The session outlived the refusal (the process did not restart); a new
    // client, because the old pooled connection was cut.
    let api = Api { token: api.token, ..Api::new(&sim.base) };
    assert_eq!(sim_put(&api, json!({"drop_ms": 600})).await, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = health(&sim.base).await.expect_err("a dropped connection gets no answer");
    assert!(!err.to_lowercase().contains("refused"), "dropped, not refused: {err}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(health(&sim.base).await, Ok(200));
}

#[tokio::test]
async fn power_off_ends_the_process_and_a_restart_brings_the_state_back() {
    let mut sim = SimProcess::start(SimOpts::default()).await;
    let api = Api::login(&sim.base, "admin", "admin").await;
    api.post("/kvm/hosts", json!({"name": "h", "port": 1})).await.ok();
    let digest = api.digest().await;
    let r = api.http.post(format!("{}/_sim/power_off", api.base)).bearer_auth(api.token.clone().unwrap()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut exited = false;
    for _ in 0..100 {
        if let Some(Ok(Some(_))) = sim.child.as_mut().map(|c| c.try_wait()) {
            exited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(exited, "the process ended after power off");
    assert!(health(&sim.base).await.is_err());
    sim.restart().await;
    let api = Api::login(&sim.base, "admin", "admin").await;
    assert_eq!(api.digest().await, digest);
}
