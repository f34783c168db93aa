//! Recovery: no chassis becomes in sync on trust. A chassis that comes back
//! wiped, is changed behind the gateway's back, or missed more than the
//! journal keeps is rebuilt (full resync) while clients keep working; a first
//! start in front of a chassis in service copies it onto the new one, and
//! refuses to guess when both hold different data; admin actions work.

use std::process::Command;
use std::time::{Duration, Instant};

use pairgate_suite::api::Api;
use pairgate_suite::bins::bin_path;
use pairgate_suite::pair::{wait_for, Pair};
use serde_json::json;

fn pairgate(args: &[&str], config: &std::path::Path) -> std::process::Output {
    Command::new(bin_path("pairgate")).args(args).arg("--config").arg(config).output().expect("run pairgate")
}

async fn populate(api: &Api, tag: &str) {
    let w = api.post("/walls", json!({"name": tag, "rows": 1, "cols": 2, "outputs": [1, 2]})).await.ok().id();
    for k in 0..3u32 {
        api.post(&format!("/walls/{w}/windows"), json!({"source_id": 1 + k, "x": k * 50, "y": 0, "w": 100, "h": 100})).await.ok();
    }
    api.post("/kvm/hosts", json!({"name": tag, "port": 3})).await.ok();
}

#[tokio::test]
async fn a_chassis_that_comes_back_wiped_is_rebuilt_while_clients_keep_working() {
    let mut pair = Pair::start().await;
    let api = pair.gw.login("admin", "admin").await;
    populate(&api, "before").await;
    // Chassis b dies and comes back empty (a replaced main board).
    pair.b.kill9();
    for entry in std::fs::read_dir(&pair.b.state_dir).unwrap() {
        let _ = std::fs::remove_file(entry.unwrap().path());
    }
    api.post("/kvm/hosts", json!({"name": "while down", "port": 4})).await.ok();
    pair.b.restart().await;
    pair.provision_service_account(1).await;
    // Clients keep working during the resync.
    let t = Instant::now();
    let mut worst = Duration::ZERO;
    while t.elapsed() < Duration::from_secs(3) {
        let r0 = Instant::now();
        api.get("/kvm/hosts").await.ok();
        worst = worst.max(r0.elapsed());
    }
    assert!(worst < Duration::from_secs(1), "a read paused {worst:?}");
    let s =
        wait_for(&pair, "a full resync of b", Duration::from_secs(30), |s| s["resync"]["chassis"] == "b" && s["resync"]["phase"] == "done")
            .await;
    assert_eq!(s["resync"]["reason"], "digest_mismatch", "{s}");
    pair.assert_identical(Duration::from_secs(30)).await;
    assert_eq!(pair.direct(1).await.get("/kvm/hosts").await.ok().body.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_change_behind_the_gateways_back_is_found_and_healed() {
    let pair = Pair::start().await;
    let api = pair.gw.login("admin", "admin").await;
    populate(&api, "x").await;
    pair.gw.wait_in_sync(Duration::from_secs(10)).await;
    // Anti-entropy (every 20 health probes: 4 s in this configuration) shows
    // both chassis equal at the last seq and records that verified point.
    let s = wait_for(&pair, "a verified point at the last seq", Duration::from_secs(20), |s| {
        s["chassis"].as_array().is_some_and(|c| c.iter().all(|c| c["verified"]["seq"] == s["last_seq"]))
    })
    .await;
    // Someone renames a source directly on the primary, the chassis clients read from.
    let primary = s["primary"].as_str().unwrap().to_string();
    let p = usize::from(primary == "b");
    pair.direct(p).await.put("/sources/1", json!({"name": "sneaky"})).await.ok();
    // Anti-entropy notices, and rebuilds the chassis that left its verified
    // state, not the one that happens to be secondary.
    let s =
        wait_for(&pair, "anti-entropy", Duration::from_secs(20), |s| s["divergences"].as_u64() > Some(0) && s["resync"]["phase"] == "done")
            .await;
    assert_eq!(s["resync"]["chassis"], primary.as_str(), "{s}");
    pair.assert_identical(Duration::from_secs(30)).await;
    for i in 0..2 {
        assert_ne!(pair.direct(i).await.get("/sources/1").await.ok().body["name"], "sneaky");
    }
    assert_ne!(api.get("/sources/1").await.ok().body["name"], "sneaky");
}

#[tokio::test]
async fn a_chassis_that_missed_more_than_the_journal_keeps_gets_a_full_resync() {
    let mut pair = Pair::start_with(|t| *t = t.replace("[sessions]", "[journal]\nmax_entries = 5\n\n[sessions]")).await;
    let api = pair.gw.login("admin", "admin").await;
    pair.b.kill9();
    for k in 0..12 {
        api.post("/kvm/hosts", json!({"name": format!("h{k}"), "port": k + 1})).await.ok();
    }
    // The gateway restarts meanwhile: what b missed is now only in the
    // journal, which kept the last 5 entries.
    pair.gw.restart();
    wait_for(&pair, "the gateway back", Duration::from_secs(20), |s| s["chassis"][0]["state"] == "in_sync").await;
    pair.b.restart().await;
    let s = wait_for(&pair, "a full resync of b", Duration::from_secs(30), |s| s["resync"]["phase"] == "done").await;
    assert_eq!(s["resync"]["reason"], "journal_truncated", "{s}");
    pair.assert_identical(Duration::from_secs(30)).await;
    assert_eq!(pair.direct(1).await.get("/kvm/hosts").await.ok().body.as_array().unwrap().len(), 12);
}

#[tokio::test]
async fn first_start_copies_the_chassis_in_service_onto_the_new_one() {
    let mut pair = Pair::start().await;
    // Make it a first start again, in front of a chassis in service and a new one.
    pair.gw.kill9();
    std::fs::remove_dir_all(pair.dir.path().join("gateway-state")).unwrap();
    populate(&pair.direct(0).await, "in service").await;
    pair.gw.restart();
    pair.gw.wait_in_sync(Duration::from_secs(30)).await;
    pair.assert_identical(Duration::from_secs(30)).await;
    let walls = pair.direct(1).await.get("/walls").await.ok().body;
    assert_eq!(walls[0]["name"], "in service", "the new chassis got the data");
    // New ids are above everything either chassis held.
    let export = pair.direct(0).await.get("/system/export").await.ok().body;
    let highest = export["tables"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|t| t["rows"].as_array().unwrap().iter().map(|r| r["id"].as_u64().unwrap()))
        .max()
        .unwrap();
    let api = pair.gw.login("admin", "admin").await;
    let host = api.post("/kvm/hosts", json!({"name": "new", "port": 9})).await.ok().id();
    assert!(host > highest, "id {host} could collide with the chassis' own (up to {highest})");
}

#[tokio::test]
async fn first_start_refuses_to_guess_between_two_chassis_with_different_data() {
    let mut pair = Pair::start().await;
    pair.gw.kill9();
    std::fs::remove_dir_all(pair.dir.path().join("gateway-state")).unwrap();
    populate(&pair.direct(0).await, "site a").await;
    populate(&pair.direct(1).await, "site b").await;
    pair.direct(1).await.post("/kvm/hosts", json!({"name": "only on b", "port": 8})).await.ok();
    pair.gw.restart();
    let s = wait_for(&pair, "the pairing verdict", Duration::from_secs(20), |s| s["pairing_blocked"].is_string()).await;
    let msg = s["pairing_blocked"].as_str().unwrap();
    assert!(msg.contains("pairgate resync"), "says what to run: {msg}");
    let api = pair.gw.login("admin", "admin").await;
    let r = api.post("/kvm/hosts", json!({"name": "x", "port": 10})).await;
    assert_eq!((r.status, r.code()), (503, "not_paired"), "{r:?}");
    // The operator decides: keep a, rebuild b.
    let out = pairgate(&["resync", "b", "--timeout-s", "60"], &pair.gw.config);
    assert!(out.status.success(), "pairgate resync: {}", String::from_utf8_lossy(&out.stderr));
    pair.assert_identical(Duration::from_secs(30)).await;
    assert_eq!(pair.direct(1).await.get("/walls").await.ok().body[0]["name"], "site a");
    api.post("/kvm/hosts", json!({"name": "x", "port": 10})).await.ok();
}

#[tokio::test]
async fn admin_actions_maintenance_primary_and_resync() {
    let pair = Pair::start().await;
    let api = pair.gw.login("admin", "admin").await;
    let cfg = &pair.gw.config;
    // Maintenance: b is held down, a serves, writes continue.
    let out = pairgate(&["maintenance", "b", "on"], cfg);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for(&pair, "b held down", Duration::from_secs(5), |s| s["chassis"][1]["state"] == "down").await;
    for k in 0..5 {
        api.post("/kvm/hosts", json!({"name": format!("m{k}"), "port": k + 1})).await.ok();
    }
    let s = pair.gw.status().await.unwrap();
    assert_eq!(s["chassis"][1]["lag"], 5, "nothing sent to a chassis in maintenance: {s}");
    // Primary can only be an in-sync chassis.
    let out = pairgate(&["primary", "b"], cfg);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in sync"));
    // Back: it catches up and is verified.
    let out = pairgate(&["maintenance", "b", "off"], cfg);
    assert!(out.status.success());
    pair.assert_identical(Duration::from_secs(30)).await;
    let out = pairgate(&["primary", "b"], cfg);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(pair.gw.status().await.unwrap()["primary"], "b");
    // A forced resync with the progress bar, to the end.
    let out = pairgate(&["resync", "a", "--timeout-s", "60"], cfg);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in sync") || String::from_utf8_lossy(&out.stdout).contains("in sync"));
    pair.assert_identical(Duration::from_secs(30)).await;
    assert_eq!(api.get("/kvm/hosts").await.ok().body.as_array().unwrap().len(), 5);
}
