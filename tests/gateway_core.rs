//! The gateway core, end to end: real `pairgate` and two real HTTPS
//! `chassis-sim` processes on 127.0.0.1.

use std::collections::BTreeSet;
use std::time::Duration;

use pairgate_suite::api::Api;
use pairgate_suite::chassis_proc::{SimOpts, SimProcess};
use pairgate_suite::pair::Pair;
use serde_json::json;

/// One client's share of the workload; returns (table, id) for every row
/// it was told about that should still exist at the end.
async fn workload(api: Api, n: u32) -> Vec<(&'static str, u64)> {
    let mut seen = Vec::new();
    // Outputs 1..16: client n takes output n+1 for a 1x1 wall.
    let w = api.post("/walls", json!({"name": format!("wall {n}"), "rows": 1, "cols": 1, "outputs": [n + 1]})).await.ok().id();
    seen.push(("walls", w));
    for k in 0..3 {
        // Replaced by the recall below: not kept in `seen`.
        api.post(&format!("/walls/{w}/windows"), json!({"source_id": 1 + k, "x": 10 * k, "y": 0, "w": 100, "h": 100})).await.ok();
    }
    let scene = api.post(&format!("/walls/{w}/scenes"), json!({"name": "s"})).await.ok().id();
    seen.push(("scenes", scene));
    let r = api.post(&format!("/scenes/{scene}/recall"), json!({})).await.ok();
    for win in r.body["windows"].as_array().unwrap() {
        seen.push(("windows", win["id"].as_u64().unwrap()));
    }
    seen.push(("users", api.post("/users", json!({"username": format!("user{n}"), "password": "pw", "role": "viewer"})).await.ok().id()));
    seen.push(("plans", api.post("/plans", json!({"name": format!("plan {n}"), "routes": []})).await.ok().id()));
    seen.push(("kvm_seats", api.post("/kvm/seats", json!({"name": format!("seat {n}"), "console": "desk"})).await.ok().id()));
    seen
}

#[tokio::test]
async fn concurrent_clients_through_the_gateway_leave_identical_chassis() {
    let pair = Pair::start().await;
    let mut tasks = Vec::new();
    for n in 0..8 {
        let api = pair.gw.login("admin", "admin").await;
        tasks.push(tokio::spawn(workload(api, n)));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.extend(t.await.unwrap());
    }
    let status = pair.gw.wait_in_sync(Duration::from_secs(10)).await;
    assert_eq!(status["divergences"], 0, "{status}");
    let [(da, oa), (db, ob)] = pair.snapshot().await;
    assert_eq!(da, db, "digests differ");
    assert_eq!(oa, ob, "outputs differ");
    // Every id a client saw exists on both chassis, in the right table.
    let ids = BTreeSet::from_iter(seen.iter().map(|(_, id)| *id));
    assert_eq!(ids.len(), seen.len(), "an id was handed out twice");
    assert_eq!(seen.len(), 8 * 8);
    for i in 0..2 {
        let export = pair.direct(i).await.get("/system/export").await.ok().body;
        for (table, id) in &seen {
            let rows = export["tables"][*table]["rows"].as_array().unwrap();
            assert!(rows.iter().any(|r| r["id"] == json!(id)), "chassis {i} lacks {table} {id}");
        }
    }
}

#[tokio::test]
async fn the_old_client_side_scheme_gives_different_ids() {
    // What the gateway replaces: a client sending every request to both chassis.
    let a = SimProcess::start(SimOpts::default()).await;
    let b = SimProcess::start(SimOpts::default()).await;
    let (ca, cb) = (Api::login(&a.base, "admin", "admin").await, Api::login(&b.base, "admin", "admin").await);
    // One chassis was once used alone (a wall created and deleted there).
    let w = ca.post("/walls", json!({"name": "old", "rows": 1, "cols": 1, "outputs": [9]})).await.ok().id();
    ca.delete(&format!("/walls/{w}")).await.ok();
    // Now 8 concurrent clients, each sending to both.
    let mut tasks = Vec::new();
    for n in 0..8u32 {
        let (ca, cb) = (ca.clone(), cb.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"name": format!("w{n}"), "rows": 1, "cols": 1, "outputs": [n + 1]});
            let ra = ca.post("/walls", body.clone()).await.ok().id();
            let rb = cb.post("/walls", body).await.ok().id();
            (ra, rb)
        }));
    }
    let mut differ = 0;
    for t in tasks {
        let (ra, rb) = t.await.unwrap();
        differ += usize::from(ra != rb);
    }
    assert!(differ > 0, "the client-side scheme should produce different ids");
    assert_ne!(ca.digest().await, cb.digest().await);
}

/// The value of the first `key = "…"` line in a configuration text.
fn first_value(text: &str, key: &str) -> String {
    let line = text.lines().find(|l| l.starts_with(&format!("{key} = "))).unwrap_or_else(|| panic!("no {key} in:\n{text}"));
    line.split_once(" = ").map(|(_, v)| v.trim().to_string()).unwrap_or_default()
}

/// `[cascade]` in gateway.toml is the pair's one identity: the running
/// gateway shows it on its status page, and of the superior's account only
/// the name (the password stays in its file).
#[tokio::test]
async fn the_status_page_shows_the_configured_cascade_identity_without_the_password() {
    let pair = Pair::start_with(|text| {
        // Files the configuration already names stand in for the superior's
        // trust anchor and password file (they only have to exist).
        let (ca, pw) = (first_value(text, "ca_cert"), first_value(text, "password_file"));
        text.push_str(&format!(
            "\n[cascade]\nserial = \"PAIR-0042\"\npublic_url = \"https://wall-gateway.example:8443\"\n\n\
             [cascade.superior]\nurl = \"https://127.0.0.1:1\"\nca_cert = {ca}\nusername = \"cascade\"\npassword_file = {pw}\n"
        ));
    })
    .await;
    let s = pair.gw.status().await.unwrap_or_else(|| panic!("no status"));
    assert_eq!(
        s["cascade"],
        json!({"serial": "PAIR-0042", "public_url": "https://wall-gateway.example:8443", "superior": {"url": "https://127.0.0.1:1", "username": "cascade"}}),
        "{s}"
    );
}
