//! The gateway's front: static files pass through, logins are rate-limited,
//! and a SIGTERM lets in-flight mutations finish.

use std::process::Command;
use std::time::{Duration, Instant};

use pairgate_suite::api::client_trusting;
use pairgate_suite::pair::Pair;
use serde_json::json;

#[tokio::test]
async fn the_chassis_web_client_is_served_through_the_gateway() {
    let pair = Pair::start().await;
    let http = client_trusting(Some(&pair.gw.cert));
    let r = http.get(format!("{}/", pair.gw.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains("app.js"), "the operator page: {html:.200}");
    let r = http.get(format!("{}/app.js", pair.gw.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("api/v1/"), "relative API URLs");
}

#[tokio::test]
async fn failed_logins_are_rate_limited() {
    let pair = Pair::start_with(|t| *t = t.replace("login_attempts_per_minute = 1000", "login_attempts_per_minute = 3")).await;
    let api = pair.gw.api();
    for _ in 0..3 {
        let r = api.post("/login", json!({"username": "admin", "password": "wrong"})).await;
        assert_eq!((r.status, r.code()), (401, "bad_credentials"), "{r:?}");
    }
    let r = api.post("/login", json!({"username": "admin", "password": "wrong"})).await;
    assert_eq!((r.status, r.code()), (429, "too_many_logins"), "{r:?}");
    // Even the right password waits now: the limit is per username and address.
    let r = api.post("/login", json!({"username": "admin", "password": "admin"})).await;
    assert_eq!(r.status, 429, "{r:?}");
}

#[tokio::test]
async fn sigterm_finishes_the_mutation_in_flight() {
    let mut pair = Pair::start().await;
    let api = pair.gw.login("admin", "admin").await;
    for i in 0..2 {
        pair.sim_faults(i, json!({"latency_ms": 500})).await;
    }
    let pid = pair.gw.child.as_ref().unwrap().id();
    let request = tokio::spawn({
        let api = api.clone();
        async move { api.post("/kvm/hosts", json!({"name": "in flight", "port": 7})).await }
    });
    // The mutation is at the (slow) chassis now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap().success());
    let r = request.await.unwrap();
    assert_eq!(r.status, 201, "the mutation in flight completed: {r:?}");
    // The gateway exits on its own, cleanly.
    let t = Instant::now();
    let mut code = None;
    while t.elapsed() < Duration::from_secs(15) {
        if let Ok(Some(status)) = pair.gw.child.as_mut().unwrap().try_wait() {
            code = status.code();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(code, Some(0), "exit status after SIGTERM");
    // New connections are refused once it is gone.
    assert!(client_trusting(Some(&pair.gw.cert)).get(format!("{}/", pair.gw.base)).send().await.is_err());
}

#[tokio::test]
async fn repeated_logins_are_cheap_but_never_accept_a_wrong_or_old_password() {
    let pair = Pair::start().await;
    let admin = pair.gw.login("admin", "admin").await;
    // A second browser of the same account, and a wrong password right after.
    pair.gw.login("admin", "admin").await;
    let r = pair.gw.api().post("/login", json!({"username": "admin", "password": "admim"})).await;
    assert_eq!((r.status, r.code()), (401, "bad_credentials"), "{r:?}");
    admin.get("/walls").await.ok();
    // A password changed through the gateway: the old one stops working at once.
    let u = admin.post("/users", json!({"username": "u", "password": "pw-one", "role": "viewer"})).await.ok().id();
    pair.gw.login("u", "pw-one").await;
    admin.put(&format!("/users/{u}"), json!({"password": "pw-two"})).await.ok();
    let r = pair.gw.api().post("/login", json!({"username": "u", "password": "pw-one"})).await;
    assert_eq!(r.status, 401, "the old password still worked: {r:?}");
    pair.gw.login("u", "pw-two").await;
}
