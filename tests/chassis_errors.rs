//! Every 4xx status of the contract is reachable and answers the error shape
//! `{"error": {"code", "message"}}`; bad input of every kind is refused with
//! a clear error and changes nothing (the digest is compared before/after).

use pairgate_suite::api::{Api, Reply};
use pairgate_suite::chassis_proc::{SimOpts, SimProcess};
use serde_json::{json, Value};

fn assert_error_shape(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.code(), code, "{r:?}");
    let msg = r.body["error"]["message"].as_str().unwrap_or("");
    assert!(msg.len() >= 10 && msg.contains(' '), "a human sentence, got {msg:?}");
    assert_eq!(r.body.as_object().map(|o| o.len()), Some(1), "only the error object: {r:?}");
}

async fn setup() -> (SimProcess, Api, u64) {
    let sim = SimProcess::start(SimOpts::default()).await;
    let api = Api::login(&sim.base, "admin", "admin").await;
    let wall = api.post("/walls", json!({"name": "Main", "rows": 2, "cols": 2, "outputs": [1, 2, 3, 4]})).await.ok().id();
    api.post(&format!("/walls/{wall}/windows"), json!({"source_id": 1, "x": 0, "y": 0, "w": 1920, "h": 1080})).await.ok();
    (sim, api, wall)
}

#[tokio::test]
async fn every_contract_4xx_is_reachable_with_the_error_shape() {
    let (sim, api, wall) = setup().await;
    // 400 malformed
    assert_error_shape(&api.raw("POST", "/walls", b"{nope".to_vec(), "application/json").await, 400, "malformed_json");
    // 401 no/invalid session
    assert_error_shape(&Api::new(&sim.base).get("/walls").await, 401, "missing_token");
    assert_error_shape(&Api { token: Some("forged".into()), ..Api::new(&sim.base) }.get("/walls").await, 401, "invalid_session");
    // 403 role forbids
    api.post("/users", json!({"username": "v", "password": "v-pw", "role": "viewer"})).await.ok();
    let viewer = Api::login(&sim.base, "v", "v-pw").await;
    assert_error_shape(&viewer.delete(&format!("/walls/{wall}")).await, 403, "forbidden");
    // 404 no such object / route
    assert_error_shape(&api.get("/walls/999").await, 404, "not_found");
    assert_error_shape(&api.get("/no/such/thing").await, 404, "no_such_endpoint");
    // 409 conflict
    assert_error_shape(&api.post("/walls", json!({"name": "B", "rows": 1, "cols": 1, "outputs": [1]})).await, 409, "output_in_use");
    assert_error_shape(&api.put("/matrix/1", json!({"input": 2})).await, 409, "output_in_wall");
    // 413 body too large (limit 1 MiB)
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(2 << 20));
    assert_error_shape(&api.raw("POST", "/kvm/hosts", huge.into_bytes(), "application/json").await, 413, "body_too_large");
    // 422 semantically invalid
    assert_error_shape(
        &api.post(&format!("/walls/{wall}/windows"), json!({"source_id": 1, "x": 3000, "y": 0, "w": 1000, "h": 10})).await,
        422,
        "window_out_of_bounds",
    );
}

/// Run `f` and check that the chassis' state did not change.
async fn unchanged(api: &Api, label: &str, r: Reply, status: u16, code: &str, before: &str) {
    assert_eq!((r.status, r.code()), (status, code), "{label}: {r:?}");
    assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{label}: message");
    assert_eq!(api.digest().await, before, "{label} changed the state");
}

#[tokio::test]
async fn bad_input_is_refused_clearly_and_changes_nothing() {
    let (_sim, api, wall) = setup().await;
    let before = api.digest().await;
    let win = format!("/walls/{wall}/windows");
    let ok_window = json!({"source_id": 1, "x": 0, "y": 0, "w": 10, "h": 10});

    // Malformed JSON in several shapes.
    for body in [&b"{"[..], b"", b"[1,2", b"nul", b"{\"source_id\": 1,}"] {
        let r = api.raw("POST", &win, body.to_vec(), "application/json").await;
        unchanged(&api, &format!("malformed {:?}", String::from_utf8_lossy(body)), r, 400, "malformed_json", &before).await;
    }
    // Not JSON at all.
    let r = api.raw("POST", &win, b"source_id=1".to_vec(), "application/x-www-form-urlencoded").await;
    unchanged(&api, "form body", r, 415, "unsupported_media_type", &before).await;

    // Wrong types, missing and unknown fields, negative and overflowing numbers.
    let cases: Vec<(&str, Value)> = vec![
        ("string x", json!({"source_id": 1, "x": "0", "y": 0, "w": 10, "h": 10})),
        ("missing h", json!({"source_id": 1, "x": 0, "y": 0, "w": 10})),
        ("unknown field", json!({"source_id": 1, "x": 0, "y": 0, "w": 10, "h": 10, "colour": "red"})),
        ("negative x", json!({"source_id": 1, "x": -5, "y": 0, "w": 10, "h": 10})),
        ("overflowing w", json!({"source_id": 1, "x": 0, "y": 0, "w": 4294967296u64, "h": 10})),
        ("float", json!({"source_id": 1, "x": 0.5, "y": 0, "w": 10, "h": 10})),
        ("huge number", json!({"source_id": 1e300, "x": 0, "y": 0, "w": 10, "h": 10})),
        ("array body", json!([ok_window])),
        ("null", Value::Null),
    ];
    for (label, body) in cases {
        let r = api.raw("POST", &win, serde_json::to_vec(&body).unwrap(), "application/json").await;
        unchanged(&api, label, r, 400, "invalid_body", &before).await;
    }

    // Windows outside the wall (3840x2160) or degenerate.
    for (label, body) in [
        ("right edge", json!({"source_id": 1, "x": 3800, "y": 0, "w": 41, "h": 10})),
        ("bottom edge", json!({"source_id": 1, "x": 0, "y": 2160, "w": 10, "h": 1})),
        ("zero size", json!({"source_id": 1, "x": 0, "y": 0, "w": 0, "h": 10})),
        ("u32 wrap", json!({"source_id": 1, "x": 4294967295u64, "y": 0, "w": 2, "h": 10})),
    ] {
        unchanged(&api, label, api.post(&win, body).await, 422, "window_out_of_bounds", &before).await;
    }
    let moved = api.put(&format!("{win}/1"), json!({"x": 3000, "w": 1000})).await;
    unchanged(&api, "move outside", moved, 422, "window_out_of_bounds", &before).await;

    // Ids that do not exist, in the path and in the body.
    unchanged(&api, "no wall", api.post("/walls/77/windows", ok_window.clone()).await, 404, "not_found", &before).await;
    unchanged(&api, "no window", api.delete(&format!("{win}/77")).await, 404, "not_found", &before).await;
    unchanged(&api, "no scene", api.post("/scenes/77/recall", json!({})).await, 404, "not_found", &before).await;
    unchanged(&api, "no plan", api.post("/plans/77/run", json!({})).await, 404, "not_found", &before).await;
    unchanged(&api, "no user", api.delete("/users/77").await, 404, "not_found", &before).await;
    unchanged(&api, "no seat", api.put("/kvm/seats/77", json!({"host_id": null})).await, 404, "not_found", &before).await;
    unchanged(&api, "no output", api.put("/matrix/99", json!({"input": 1})).await, 404, "not_found", &before).await;
    let r = api.post(&win, json!({"source_id": 999, "x": 0, "y": 0, "w": 10, "h": 10})).await;
    unchanged(&api, "no source", r, 422, "unknown_source", &before).await;
    unchanged(&api, "id zero", api.get("/walls/0").await, 400, "invalid_id", &before).await;
    unchanged(&api, "id text", api.delete("/walls/abc").await, 400, "invalid_id", &before).await;
    unchanged(&api, "id 2^53", api.delete("/walls/9007199254740992").await, 400, "invalid_id", &before).await;

    // Other semantic errors.
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        ("wall 9 rows", "/walls", json!({"name": "x", "rows": 9, "cols": 1, "outputs": [5]}), 422, "invalid_geometry"),
        ("wall outputs count", "/walls", json!({"name": "x", "rows": 1, "cols": 2, "outputs": [5]}), 422, "invalid_geometry"),
        ("wall dup outputs", "/walls", json!({"name": "x", "rows": 1, "cols": 2, "outputs": [5, 5]}), 422, "duplicate_output"),
        ("wall no output", "/walls", json!({"name": "x", "rows": 1, "cols": 1, "outputs": [17]}), 422, "no_such_output"),
        ("empty name", "/walls", json!({"name": "  ", "rows": 1, "cols": 1, "outputs": [5]}), 422, "invalid_name"),
        ("bad username", "/users", json!({"username": "a b", "password": "p", "role": "admin"}), 422, "invalid_username"),
        ("taken username", "/users", json!({"username": "admin", "password": "p", "role": "admin"}), 409, "username_taken"),
        ("bad role", "/users", json!({"username": "ok", "password": "p", "role": "root"}), 400, "invalid_body"),
        ("ip without url", "/sources", json!({"name": "c", "kind": "ip"}), 422, "invalid_source"),
        ("hdmi bad port", "/sources", json!({"name": "c", "kind": "hdmi", "port": 99}), 422, "no_such_input"),
        ("plan bad input", "/plans", json!({"name": "p", "routes": [{"output": 5, "input": 99}]}), 422, "no_such_input"),
        ("schedule no plan", "/schedules", json!({"name": "s", "plan_ids": [42], "interval_s": 5}), 422, "unknown_plan"),
        ("kvm port", "/kvm/hosts", json!({"name": "h", "port": 0}), 422, "no_such_port"),
        ("seat no host", "/kvm/seats", json!({"name": "s", "console": "c", "host_id": 5}), 422, "unknown_host"),
    ];
    for (label, path, body, status, code) in cases {
        unchanged(&api, label, api.post(path, body).await, status, code, &before).await;
    }
    unchanged(&api, "last admin", api.delete("/users/1").await, 409, "last_admin", &before).await;
    unchanged(&api, "builtin source", api.delete("/sources/1").await, 409, "builtin_source", &before).await;
    unchanged(&api, "route bad input", api.put("/matrix/5", json!({"input": 0})).await, 422, "no_such_input", &before).await;

    // A full wall: 64 windows, then the 65th is refused.
    let block_wall = api.post("/walls", json!({"name": "Full", "rows": 1, "cols": 1, "outputs": [12]})).await.ok().id();
    for i in 0..64 {
        api.post(&format!("/walls/{block_wall}/windows"), json!({"source_id": 1, "x": i, "y": 0, "w": 10, "h": 10})).await.ok();
    }
    let full = api.digest().await;
    let r = api.post(&format!("/walls/{block_wall}/windows"), json!({"source_id": 1, "x": 0, "y": 0, "w": 10, "h": 10})).await;
    unchanged(&api, "65th window", r, 422, "too_many_windows", &full).await;
}

#[tokio::test]
async fn a_plan_that_fails_half_way_changes_no_route() {
    let (_sim, api, _wall) = setup().await;
    // Saved while outputs 5 and 6 were free; then a wall takes output 6.
    let plan = api.post("/plans", json!({"name": "p", "routes": [{"output": 5, "input": 2}, {"output": 6, "input": 3}]})).await.ok().id();
    api.post("/walls", json!({"name": "late", "rows": 1, "cols": 1, "outputs": [6]})).await.ok();
    let before = api.digest().await;
    let r = api.post(&format!("/plans/{plan}/run"), json!({})).await;
    unchanged(&api, "half-way plan", r, 409, "output_in_wall", &before).await;
    let matrix = api.get("/matrix").await.ok().body;
    assert_eq!(
        matrix.as_array().unwrap().iter().find(|m| m["output"] == 5).unwrap()["input"],
        Value::Null,
        "output 5 was routed then rolled back"
    );
}
