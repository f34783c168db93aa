//! One session per account (the preemption defect), exactly as the contract
//! says, and roles: a viewer cannot mutate, an operator cannot manage users.

use pairgate_suite::api::{client, Api, Reply};
use pairgate_suite::chassis_proc::{SimOpts, SimProcess};
use serde_json::json;

async fn login_raw(base: &str, user: &str, pw: &str, force: bool) -> Reply {
    Api::new(base).post("/login", json!({"username": user, "password": pw, "force": force})).await
}

#[tokio::test]
async fn login_preemption_exactly_as_specified() {
    let sim = SimProcess::start(SimOpts::default()).await;
    let first = Api::login(&sim.base, "admin", "admin").await;
    first.get("/walls").await.ok();

    // A second login of the same account is refused while the first lives.
    let second = login_raw(&sim.base, "admin", "admin", false).await;
    assert_eq!((second.status, second.code()), (409, "already_logged_in"), "{second:?}");
    first.get("/walls").await.ok(); // the first session is untouched

    // force: true takes over; the old token now gets session_preempted.
    let forced = login_raw(&sim.base, "admin", "admin", true).await.ok();
    let token = forced.body["token"].as_str().unwrap().to_string();
    assert_eq!(forced.body["user"], json!({"id": 1, "username": "admin", "role": "admin"}));
    let old = first.get("/walls").await;
    assert_eq!((old.status, old.code()), (401, "session_preempted"), "{old:?}");
    let new = Api { token: Some(token.clone()), ..Api::new(&sim.base) };
    new.get("/walls").await.ok();

    // Wrong password and unknown user: 401 bad_credentials, same message.
    let bad = login_raw(&sim.base, "admin", "nope", false).await;
    let unknown = login_raw(&sim.base, "ghost", "nope", false).await;
    assert_eq!((bad.status, bad.code()), (401, "bad_credentials"));
    assert_eq!(bad.body, unknown.body, "an unknown user is not distinguishable from a wrong password");

    // Logout ends the session; a new login then needs no force.
    let out = new.post("/logout", json!({})).await;
    assert_eq!(out.status, 204);
    let after = new.get("/walls").await;
    assert_eq!((after.status, after.code()), (401, "invalid_session"));
    login_raw(&sim.base, "admin", "admin", false).await.ok();

    // No token at all.
    let none = Api::new(&sim.base).get("/walls").await;
    assert_eq!((none.status, none.code()), (401, "missing_token"));
    // Health needs no session.
    assert_eq!(Api::new(&sim.base).get("/system/health").await.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn sessions_are_per_account_not_global() {
    let sim = SimProcess::start(SimOpts::default()).await;
    let admin = Api::login(&sim.base, "admin", "admin").await;
    admin.post("/users", json!({"username": "op", "password": "op-pw", "role": "operator"})).await.ok();
    let op = Api::login(&sim.base, "op", "op-pw").await;
    // Two accounts, two live sessions.
    admin.get("/walls").await.ok();
    op.get("/walls").await.ok();
    // Changing op's password ends op's session only.
    let op_id =
        op.get("/users").await.ok().body.as_array().unwrap().iter().find(|u| u["username"] == "op").unwrap()["id"].as_u64().unwrap();
    admin.put(&format!("/users/{op_id}"), json!({"password": "new-pw"})).await.ok();
    assert_eq!(op.get("/walls").await.status, 401);
    admin.get("/walls").await.ok();
    Api::login(&sim.base, "op", "new-pw").await;
}

#[tokio::test]
async fn roles_are_enforced() {
    let sim = SimProcess::start(SimOpts::default()).await;
    let admin = Api::login(&sim.base, "admin", "admin").await;
    admin.post("/users", json!({"username": "op", "password": "op-pw", "role": "operator"})).await.ok();
    admin.post("/users", json!({"username": "view", "password": "view-pw", "role": "viewer"})).await.ok();
    let wall = admin.post("/walls", json!({"name": "W", "rows": 1, "cols": 2, "outputs": [1, 2]})).await.ok().id();
    let plan = admin.post("/plans", json!({"name": "P", "routes": [{"output": 5, "input": 3}]})).await.ok().id();
    let host = admin.post("/kvm/hosts", json!({"name": "H", "port": 1})).await.ok().id();
    let seat = admin.post("/kvm/seats", json!({"name": "S", "console": "desk 1"})).await.ok().id();
    let op = Api::login(&sim.base, "op", "op-pw").await;
    let viewer = Api::login(&sim.base, "view", "view-pw").await;
    let digest = admin.digest().await;

    // A viewer reads everything and changes nothing.
    for path in ["/walls", "/sources", "/users", "/matrix", "/plans", "/kvm/seats", "/hardware/outputs", "/system/digest", "/system/info"] {
        viewer.get(path).await.ok();
    }
    let window = json!({"source_id": 1, "x": 0, "y": 0, "w": 100, "h": 100});
    let attempts: Vec<(&str, String, Option<serde_json::Value>)> = vec![
        ("POST", format!("/walls/{wall}/windows"), Some(window.clone())),
        ("PUT", "/matrix/5".into(), Some(json!({"input": 2}))),
        ("POST", format!("/plans/{plan}/run"), None),
        ("PUT", format!("/kvm/seats/{seat}"), Some(json!({"host_id": host}))),
        ("POST", "/users".into(), Some(json!({"username": "x", "password": "y", "role": "admin"}))),
        ("DELETE", format!("/walls/{wall}"), None),
    ];
    for (m, p, b) in &attempts {
        let r = viewer.call(m, p, b.clone(), &[]).await;
        assert_eq!((r.status, r.code()), (403, "forbidden"), "viewer {m} {p}: {r:?}");
    }
    assert_eq!(admin.digest().await, digest, "nothing changed");

    // An operator runs the room but cannot manage users or configuration.
    op.post(&format!("/walls/{wall}/windows"), window).await.ok();
    op.put("/matrix/5", json!({"input": 2})).await.ok();
    op.post(&format!("/plans/{plan}/run"), json!({})).await.ok();
    op.put(&format!("/kvm/seats/{seat}"), json!({"host_id": host})).await.ok();
    let digest = admin.digest().await;
    for (m, p, b) in [
        ("POST", "/users".to_string(), Some(json!({"username": "x", "password": "y", "role": "admin"}))),
        ("DELETE", "/users/1".to_string(), None),
        ("PUT", "/users/1".to_string(), Some(json!({"role": "viewer"}))),
        ("POST", "/walls".to_string(), Some(json!({"name": "W2", "rows": 1, "cols": 1, "outputs": [9]}))),
        ("POST", "/sources".to_string(), Some(json!({"name": "cam", "kind": "ip", "url": "rtsp://cam/1"}))),
        ("GET", "/system/export".to_string(), None),
        ("PUT", "/_sim/faults".to_string(), Some(json!({}))),
    ] {
        // /_sim lives outside /api/v1.
        let r = if p.starts_with("/_sim") {
            let http = client();
            let resp = http.put(format!("{}{}", sim.base, p)).bearer_auth(op.token.clone().unwrap()).json(&b).send().await.unwrap();
            Reply { status: resp.status().as_u16(), body: resp.json().await.unwrap() }
        } else {
            op.call(m, &p, b, &[]).await
        };
        assert_eq!((r.status, r.code()), (403, "forbidden"), "operator {m} {p}: {r:?}");
    }
    assert_eq!(admin.digest().await, digest, "nothing changed");
}
