//! No chassis is trusted because it is preferred (issue 7, defect 7): after a
//! gateway restart, a chassis is the reference for the other only if it holds
//! its last verified point (the seq it had applied and the digest it showed,
//! persisted in the journal). A preferred chassis restored from an old copy of
//! its state is rebuilt from the other one, not the reverse; two chassis both
//! changed behind the gateway's back block the pair until an operator picks.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pairgate_suite::api::Api;
use pairgate_suite::gateway_proc::GatewayProcess;
use pairgate_suite::pair::{wait_for, Pair};
use serde_json::{json, Value};

/// SIGTERM the gateway and wait (bounded) for its clean exit.
async fn terminate(gw: &mut GatewayProcess) {
    let pid = gw.child.as_ref().expect("the gateway is running").id();
    assert!(Command::new("kill").arg("-TERM").arg(pid.to_string()).status().expect("run kill").success());
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(status)) = gw.child.as_mut().expect("child").try_wait() {
            assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
            gw.child = None;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway did not exit within 20 s of SIGTERM");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy dir");
    for entry in std::fs::read_dir(from).expect("read state dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy state file");
        }
    }
}

fn empty_dir(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read state dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).expect("remove state subdir");
        } else {
            std::fs::remove_file(&path).expect("remove state file");
        }
    }
}

async fn host_names(api: &Api) -> BTreeSet<String> {
    let hosts = api.get("/kvm/hosts").await.ok().body;
    hosts.as_array().expect("host list").iter().map(|h| h["name"].as_str().expect("host name").to_string()).collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn a_preferred_chassis_restored_from_an_old_copy_is_rebuilt_not_trusted() {
    let mut pair = Pair::start().await;
    let api = pair.gw.login("admin", "admin").await;
    for k in 0..3u32 {
        api.post("/kvm/hosts", json!({"name": format!("before {k}"), "port": k + 1})).await.ok();
    }
    pair.gw.wait_in_sync(Duration::from_secs(20)).await;

    // The gateway stops (kill -9), chassis a (the preferred one) too; a copy
    // of a's state is kept aside; both start again.
    pair.gw.kill9();
    pair.a.kill9();
    let old_copy = pair.dir.path().join("a-state-copy");
    copy_dir(&pair.a.state_dir, &old_copy);
    pair.a.restart().await;
    pair.gw.restart();
    pair.gw.wait_in_sync(Duration::from_secs(30)).await;
    for k in 0..3u32 {
        api.post("/kvm/hosts", json!({"name": format!("after {k}"), "port": k + 4})).await.ok();
    }
    pair.gw.wait_in_sync(Duration::from_secs(20)).await;

    // The gateway stops (SIGTERM) and a is restored from its old copy.
    terminate(&mut pair.gw).await;
    pair.a.kill9();
    empty_dir(&pair.a.state_dir);
    copy_dir(&old_copy, &pair.a.state_dir);
    pair.a.restart().await;
    let all = names(&["before 0", "before 1", "before 2", "after 0", "after 1", "after 2"]);
    assert_eq!(host_names(&pair.direct(0).await).await, names(&["before 0", "before 1", "before 2"]), "a is really stale");
    assert_eq!(host_names(&pair.direct(1).await).await, all, "b holds everything");

    pair.gw.restart();
    let s = pair.assert_identical(Duration::from_secs(60)).await;
    assert_eq!(host_names(&pair.direct(1).await).await, all, "b lost acknowledged writes: it was rebuilt from stale a");
    assert_eq!(host_names(&pair.direct(0).await).await, all, "a was not rebuilt from b");
    assert_eq!(s["resync"]["chassis"], "a", "the stale chassis is the one rebuilt: {s}");
    assert_eq!(s["pairing_blocked"], Value::Null, "{s}");
    // The rebuilt pair's verified point is recorded for both.
    let s = wait_for(&pair, "both chassis verified at the last seq", Duration::from_secs(20), |s| {
        s["chassis"].as_array().is_some_and(|c| c.iter().all(|c| c["verified"]["seq"] == s["last_seq"]))
    })
    .await;
    assert_eq!(s["chassis"][0]["verified"], s["chassis"][1]["verified"], "{s}");
    // And the pair serves writes again.
    api.post("/kvm/hosts", json!({"name": "later", "port": 9})).await.ok();
}

#[tokio::test]
async fn both_chassis_changed_behind_the_gateways_back_block_the_pair_until_an_operator_picks() {
    let mut pair = Pair::start().await;
    let api = pair.gw.login("admin", "admin").await;
    api.post("/kvm/hosts", json!({"name": "through the gateway", "port": 1})).await.ok();
    pair.gw.wait_in_sync(Duration::from_secs(20)).await;

    // While the gateway is stopped, someone writes to each chassis directly.
    terminate(&mut pair.gw).await;
    pair.direct(0).await.post("/kvm/hosts", json!({"name": "only on a", "port": 2})).await.ok();
    pair.direct(1).await.post("/kvm/hosts", json!({"name": "only on b", "port": 3})).await.ok();
    pair.gw.restart();

    let s = wait_for(&pair, "pairing blocked", Duration::from_secs(20), |s| s["pairing_blocked"].is_string()).await;
    let msg = s["pairing_blocked"].as_str().unwrap_or_default();
    for part in ["chassis a and b", "pairgate resync b --config", "pairgate resync a --config"] {
        assert!(msg.contains(part), "the message names both chassis and the command ({part:?}): {msg}");
    }
    assert!(s["chassis"].as_array().is_some_and(|c| c.iter().all(|c| c["state"] != "in_sync")), "neither is trusted: {s}");
    let r = api.post("/kvm/hosts", json!({"name": "refused", "port": 4})).await;
    assert_eq!((r.status, r.code()), (503, "not_paired"), "{r:?}");
    // Still blocked a moment later: nothing decides alone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = pair.gw.status().await.expect("status");
    assert!(s["pairing_blocked"].is_string(), "{s}");

    // The operator keeps a: rebuild b from it.
    pair.ask_resync("b").await;
    let s = pair.assert_identical(Duration::from_secs(60)).await;
    assert_eq!(s["pairing_blocked"], Value::Null, "{s}");
    let kept = names(&["through the gateway", "only on a"]);
    assert_eq!(host_names(&pair.direct(1).await).await, kept, "b holds a's data");
    assert_eq!(host_names(&pair.direct(0).await).await, kept, "a kept its data");
    // Mutations work again, on both.
    api.post("/kvm/hosts", json!({"name": "after the pick", "port": 5})).await.ok();
    pair.gw.wait_in_sync(Duration::from_secs(20)).await;
    assert!(host_names(&pair.direct(1).await).await.contains("after the pick"));
    assert!(host_names(&pair.direct(0).await).await.contains("after the pick"));
}

/// An operator restores the gateway's own state directory from an older copy
/// (the README says not to): the journal counts seqs and ids again from the
/// copy. A chassis that remembers the key it was sent with an entry must never
/// answer a new mutation with an old one's remembered answer, and a create must
/// not be given ids the chassis already hold.
#[tokio::test]
async fn a_gateway_state_restored_from_an_old_copy_answers_new_mutations_as_new() {
    let mut pair = Pair::start().await;
    let api = pair.gw.login("admin", "admin").await;
    api.post("/kvm/hosts", json!({"name": "before-copy", "port": 1})).await.ok();
    pair.gw.wait_in_sync(Duration::from_secs(15)).await;
    terminate(&mut pair.gw).await;
    let state = pair.dir.path().join("gateway-state");
    let old_copy = pair.dir.path().join("gateway-state-copy");
    copy_dir(&state, &old_copy);

    pair.gw.start().expect("start the gateway");
    pair.gw.wait_in_sync(Duration::from_secs(20)).await;
    let api = pair.gw.login("admin", "admin").await;
    let after_copy = api.post("/kvm/hosts", json!({"name": "after-copy", "port": 2})).await.ok();
    pair.gw.wait_in_sync(Duration::from_secs(15)).await;
    terminate(&mut pair.gw).await;

    empty_dir(&state);
    copy_dir(&old_copy, &state);
    pair.gw.start().expect("start the gateway on the restored copy");
    pair.gw.wait_in_sync(Duration::from_secs(20)).await;
    // The counter went back with the copy; the start raises it above what the chassis hold.
    let raised = |s: &Value| s["next_id"].as_u64().is_some_and(|n| n > after_copy.id());
    wait_for(&pair, "the id counter above every id the chassis hold", Duration::from_secs(10), raised).await;
    let api = pair.gw.login("admin", "admin").await;
    let r = api.post("/kvm/hosts", json!({"name": "after-restore", "port": 3})).await;
    assert_eq!(r.status, 201, "a new create after the restore: {r:?}");
    assert_eq!(r.body["name"], "after-restore", "answered with another mutation's answer: {r:?}");
    assert_ne!(r.id(), after_copy.id(), "given an id a chassis already holds");
    pair.gw.wait_in_sync(Duration::from_secs(15)).await;
    for i in 0..2 {
        let direct = pair.direct(i).await;
        assert_eq!(host_names(&direct).await, names(&["before-copy", "after-copy", "after-restore"]), "chassis {i}");
    }
    pair.assert_identical(Duration::from_secs(15)).await;
}
