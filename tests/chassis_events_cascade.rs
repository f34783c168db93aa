//! The events WebSocket (every change pushed; closed when its session ends)
//! and cascade (a chassis registers at its superior with its sources; the
//! superior routes the subordinate's cascade link; calls carry
//! `Idempotency-Key: <origin>/<seq>/<k>` when the request had `X-Origin-Seq`).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pairgate_suite::api::Api;
use pairgate_suite::chassis_proc::{SimOpts, SimProcess};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(sim: &SimProcess, token: &str) -> Socket {
    let url = format!("ws://127.0.0.1:{}/api/v1/events?token={token}", sim.port);
    tokio_tungstenite::connect_async(url).await.expect("websocket connect").0
}

/// The next text event, or None if the socket closed / nothing came in time.
async fn next_event(ws: &mut Socket, limit: Duration) -> Option<Value> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match tokio::time::timeout_at(deadline.into(), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
            Ok(Some(Ok(_))) => continue,
        }
    }
    None
}

#[tokio::test]
async fn events_are_pushed_in_order_and_a_preempted_socket_is_closed() {
    let sim = SimProcess::start(SimOpts::default()).await;
    let api = Api::login(&sim.base, "admin", "admin").await;
    let mut ws = connect(&sim, api.token.as_deref().unwrap()).await;
    let wall = api.post("/walls", json!({"name": "W", "rows": 1, "cols": 1, "outputs": [1]})).await.ok().id();
    let win = api.post(&format!("/walls/{wall}/windows"), json!({"source_id": 2, "x": 0, "y": 0, "w": 10, "h": 10})).await.ok().id();
    let e1 = next_event(&mut ws, Duration::from_secs(5)).await.expect("wall event");
    let e2 = next_event(&mut ws, Duration::from_secs(5)).await.expect("window event");
    assert_eq!(e1["type"], "wall.created");
    assert_eq!(e2["type"], "window.created");
    assert_eq!(e2["data"]["id"], json!(win));
    assert!(e2["seq"].as_u64() > e1["seq"].as_u64());
    // An unauthenticated socket is refused.
    let bad = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/api/v1/events?token=nope", sim.port)).await;
    assert!(bad.is_err());

    // A forced login of the same account revokes the token: its socket is
    // closed and sees nothing of what happens afterwards.
    let forced = Api::new(&sim.base).post("/login", json!({"username": "admin", "password": "admin", "force": true})).await.ok();
    let api2 = Api { token: forced.body["token"].as_str().map(str::to_string), ..Api::new(&sim.base) };
    api2.post(&format!("/walls/{wall}/windows"), json!({"source_id": 3, "x": 0, "y": 0, "w": 10, "h": 10})).await.ok();
    assert_eq!(next_event(&mut ws, Duration::from_secs(5)).await, None, "a preempted socket must not get the new window");
}

#[tokio::test]
async fn a_subordinate_registers_at_its_superior_and_the_superior_routes_its_link() {
    let sup = SimProcess::start(SimOpts { serial: "SUP".into(), ..SimOpts::default() }).await;
    let sub = SimProcess::start(SimOpts { serial: "SUB".into(), inputs: 4, ..SimOpts::default() }).await;
    let up = Api::login(&sup.base, "admin", "admin").await;
    // The cascade account, on both systems.
    up.post("/users", json!({"username": "cascade", "password": "c-pw", "role": "admin"})).await.ok();
    let down = Api::login(&sub.base, "admin", "admin").await;
    down.post("/users", json!({"username": "cascade", "password": "c-pw", "role": "admin"})).await.ok();

    let r = down
        .call(
            "PUT",
            "/cascade/superior",
            Some(json!({"url": sup.base, "username": "cascade", "password": "c-pw"})),
            &[("X-Origin-Seq", "gw-1/42")],
        )
        .await
        .ok();
    assert_eq!(r.body["url"], json!(sup.base));
    // Registration happens in the background: wait (bounded) for it.
    let mut subs = Value::Null;
    for _ in 0..100 {
        subs = up.get("/cascade/subordinates").await.ok().body;
        if subs.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(subs[0]["serial"], "SUB", "{subs}");
    assert_eq!(subs[0]["sources"].as_array().map(Vec::len), Some(4));
    assert!(subs[0].get("credentials").is_none(), "credentials are never shown");
    let status = down.get("/cascade/superior").await.ok().body;
    assert_eq!(status["registration"], "registered");
    assert_eq!(status["password_set"], true);
    assert!(status.get("password").is_none());
    // The call carried the origin's key: the superior remembered it.
    let export = up.get("/system/export").await.ok().body;
    let keys: Vec<&str> = export["idempotency"].as_array().unwrap().iter().filter_map(|e| e["key"].as_str()).collect();
    assert!(keys.contains(&"gw-1/42/1"), "{keys:?}");

    // The superior sees the subordinate's inputs as cascade sources.
    let sources = up.get("/sources").await.ok().body;
    let cascade: Vec<&Value> = sources.as_array().unwrap().iter().filter(|s| s["kind"] == "cascade").collect();
    assert_eq!(cascade.len(), 4);
    let remote3 = cascade.iter().find(|s| s["remote_source_id"] == 3).expect("remote source 3");

    // Opening a window on it makes the superior route the subordinate's link.
    let wall = up.post("/walls", json!({"name": "W", "rows": 1, "cols": 1, "outputs": [1]})).await.ok().id();
    let win =
        up.post(&format!("/walls/{wall}/windows"), json!({"source_id": remote3["id"], "x": 0, "y": 0, "w": 10, "h": 10})).await.ok().id();
    let link = (win - 1) % 8 + 1;
    let mut links = Value::Null;
    for _ in 0..100 {
        links = down.get("/cascade/links").await.body;
        if links.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(links, json!([{"link": link, "source_id": 3}]));

    // A source change on the subordinate is reported again.
    down.post("/sources", json!({"name": "Camera", "kind": "ip", "url": "rtsp://cam/1"})).await.ok();
    let mut count = 0;
    for _ in 0..100 {
        count = up.get("/sources").await.ok().body.as_array().unwrap().iter().filter(|s| s["kind"] == "cascade").count();
        if count == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count, 5);
}
