//! The id defect and its fix, over real HTTP against real `chassis-sim`
//! processes: auto-increment ids diverge between two chassis with different
//! histories; the same requests with the same `X-Id-Block` give identical ids
//! and digests; an exhausted block fails with 422 and changes nothing.

use pairgate_suite::api::Api;
use pairgate_suite::chassis_proc::{SimOpts, SimProcess};
use serde_json::json;

async fn pair() -> (SimProcess, SimProcess, Api, Api) {
    let a = SimProcess::start(SimOpts { serial: "A".into(), ..SimOpts::default() }).await;
    let b = SimProcess::start(SimOpts { serial: "B".into(), ..SimOpts::default() }).await;
    let api_a = Api::login(&a.base, "admin", "admin").await;
    let api_b = Api::login(&b.base, "admin", "admin").await;
    (a, b, api_a, api_b)
}

fn wall(outputs: [u32; 4]) -> serde_json::Value {
    json!({"name": "Main", "rows": 2, "cols": 2, "outputs": outputs})
}

fn window(x: u32) -> serde_json::Value {
    json!({"source_id": 1, "x": x, "y": 0, "w": 1920, "h": 1080})
}

#[tokio::test]
async fn auto_increment_ids_diverge_with_different_histories() {
    let (_a, _b, a, b) = pair().await;
    // Chassis A once had a wall with a window, since deleted: MySQL
    // counters never go back.
    let old = a.post("/walls", wall([5, 6, 7, 8])).await.ok().id();
    a.post(&format!("/walls/{old}/windows"), window(0)).await.ok();
    a.delete(&format!("/walls/{old}")).await.ok();

    // Now the client-side scheme sends the same requests to both.
    let wa = a.post("/walls", wall([1, 2, 3, 4])).await.ok().id();
    let wb = b.post("/walls", wall([1, 2, 3, 4])).await.ok().id();
    assert_ne!(wa, wb, "the same create got the same wall id on both chassis: the simulator hides the defect");
    let xa = a.post(&format!("/walls/{wa}/windows"), window(0)).await.ok().id();
    let xb = b.post(&format!("/walls/{wb}/windows"), window(0)).await.ok().id();
    assert_ne!(xa, xb, "window ids should diverge too");
    assert_ne!(a.digest().await, b.digest().await);
}

#[tokio::test]
async fn same_requests_with_same_id_blocks_give_identical_ids_and_digests() {
    let (_a, _b, a, b) = pair().await;
    // Different histories first (A burnt through wall and screen ids).
    let old = a.post("/walls", wall([5, 6, 7, 8])).await.ok().id();
    a.delete(&format!("/walls/{old}")).await.ok();
    let digest_a = a.digest().await;
    assert_eq!(digest_a, a.digest().await, "digest is stable");
    // Auto-increment counters differ, so digests differ: bring them level the
    // way a resync would, by export/import.
    let doc = a.get("/system/export").await.ok().body;
    b.put("/system/import", doc).await.ok();
    assert_eq!(a.digest().await, b.digest().await);

    for api in [&a, &b] {
        let w = api.with_block("POST", "/walls", Some(wall([1, 2, 3, 4])), 7000, 5).await.ok();
        assert_eq!(w.id(), 7000);
        let screens: Vec<u64> = w.body["screens"].as_array().unwrap().iter().map(|s| s["id"].as_u64().unwrap()).collect();
        assert_eq!(screens, vec![7001, 7002, 7003, 7004], "screens take the block's next ids row by row");
        let x = api.with_block("POST", "/walls/7000/windows", Some(window(0)), 7100, 1).await.ok();
        assert_eq!(x.id(), 7100);
        let y = api.with_block("POST", "/walls/7000/windows", Some(window(100)), 7101, 1).await.ok();
        assert_eq!(y.id(), 7101);
        let scene = api.with_block("POST", "/walls/7000/scenes", Some(json!({"name": "s"})), 7200, 3).await.ok();
        assert_eq!(scene.id(), 7200);
        let items: Vec<u64> = scene.body["items"].as_array().unwrap().iter().map(|i| i["id"].as_u64().unwrap()).collect();
        assert_eq!(items, vec![7201, 7202], "scene items lowest z first");
        let recalled = api.with_block("POST", "/scenes/7200/recall", None, 7300, 2).await.ok();
        let ids: Vec<u64> = recalled.body["windows"].as_array().unwrap().iter().map(|w| w["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, vec![7300, 7301]);
        let user =
            api.with_block("POST", "/users", Some(json!({"username": "op", "password": "pw-1", "role": "operator"})), 7400, 1).await.ok();
        assert_eq!(user.id(), 7400);
    }
    assert_eq!(a.digest().await, b.digest().await, "same requests + same blocks = same state");
    assert_eq!(a.outputs().await, b.outputs().await);

    // Auto-increment counters moved past the block: a create without a block
    // continues above it, on both.
    let wa = a.post("/walls", wall([9, 10, 11, 12])).await.ok().id();
    let wb = b.post("/walls", wall([9, 10, 11, 12])).await.ok().id();
    assert_eq!((wa, wb), (7001, 7001), "walls' counter is past 7000 (7000 was the wall)");
}

#[tokio::test]
async fn exhausted_block_fails_with_422_and_changes_nothing() {
    let (_a, _b, a, _) = pair().await;
    let before = a.digest().await;
    // A 2x2 wall needs 5 ids (wall + 4 screens); give it 4.
    let r = a.with_block("POST", "/walls", Some(wall([1, 2, 3, 4])), 500, 4).await;
    assert_eq!(r.status, 422, "{r:?}");
    assert_eq!(r.code(), "id_block_exhausted");
    assert!(r.body["error"]["message"].as_str().unwrap().len() > 10);
    assert_eq!(a.digest().await, before, "the half-created wall was rolled back");
    assert_eq!(a.get("/walls").await.ok().body, json!([]));
    // The counters did not move either: the next auto id is unaffected.
    let w = a.post("/walls", wall([1, 2, 3, 4])).await.ok();
    assert_eq!(w.id(), 1);

    // A recall that needs more ids than given also changes nothing.
    a.with_block("POST", "/walls/1/windows", Some(window(0)), 900, 1).await.ok();
    a.with_block("POST", "/walls/1/windows", Some(window(10)), 901, 1).await.ok();
    let scene = a.post("/walls/1/scenes", json!({"name": "two"})).await.ok().id();
    let before = a.digest().await;
    let r = a.with_block("POST", &format!("/scenes/{scene}/recall"), None, 950, 1).await;
    assert_eq!((r.status, r.code()), (422, "id_block_exhausted"));
    assert_eq!(a.digest().await, before, "the wall was not cleared by the failed recall");
}

#[tokio::test]
async fn a_create_naming_an_id_in_use_is_409_and_a_replay_is_harmless() {
    let (_a, _b, a, _) = pair().await;
    let w = a.with_block("POST", "/walls", Some(wall([1, 2, 3, 4])), 100, 5).await.ok().id();
    a.with_block("POST", &format!("/walls/{w}/windows"), Some(window(0)), 200, 1).await.ok();
    let before = a.digest().await;
    // Replaying the create with the same block: the id is taken.
    let r = a.with_block("POST", &format!("/walls/{w}/windows"), Some(window(0)), 200, 1).await;
    assert_eq!((r.status, r.code()), (409, "id_in_use"));
    // A block overlapping a screen id.
    let r = a.with_block("POST", "/users", Some(json!({"username": "x", "password": "p", "role": "viewer"})), 1, 1).await;
    assert_eq!((r.status, r.code()), (409, "id_in_use"), "user id 1 is admin");
    assert_eq!(a.digest().await, before);
    // Malformed block headers are 400 and change nothing.
    for bad in ["abc", "0+1", "5", "9007199254740990+9"] {
        let r = a.call("POST", &format!("/walls/{w}/windows"), Some(window(0)), &[("X-Id-Block", bad)]).await;
        assert_eq!((r.status, r.code()), (400, "bad_header"), "{bad}: {r:?}");
    }
    assert_eq!(a.digest().await, before);
}

#[tokio::test]
async fn idempotency_key_replay_gets_the_stored_answer_and_applies_once() {
    let (_a, _b, a, _) = pair().await;
    let w = a.post("/walls", wall([1, 2, 3, 4])).await.ok().id();
    let path = format!("/walls/{w}/windows");
    let first = a.call("POST", &path, Some(window(0)), &[("Idempotency-Key", "gw/1")]).await.ok();
    let digest = a.digest().await;
    let again = a.call("POST", &path, Some(window(0)), &[("Idempotency-Key", "gw/1")]).await;
    assert_eq!(again.status, first.status);
    assert_eq!(again.body, first.body, "the stored answer, not a second window");
    assert_eq!(a.digest().await, digest);
    assert_eq!(a.get(&path).await.ok().body.as_array().unwrap().len(), 1);
    // A raise replayed with the same key does not raise twice.
    let id = first.id();
    a.post(&path, window(100)).await.ok();
    let r1 = a.call("POST", &format!("{path}/{id}/raise"), None, &[("Idempotency-Key", "gw/3")]).await.ok();
    let z = r1.body["z"].as_u64().unwrap();
    let r2 = a.call("POST", &format!("{path}/{id}/raise"), None, &[("Idempotency-Key", "gw/3")]).await.ok();
    assert_eq!(r2.body["z"].as_u64().unwrap(), z);
}
