//! Property: parallel appliers (issue 11) leave both chassis equal. Random
//! interleavings of entries that conflict (windows of one wall, one matrix
//! output, anything touching users, plans or sources) and entries that do
//! not (different walls, different outputs, different KVM seats), sent by
//! eight concurrent clients through a real gateway to two real HTTPS
//! chassis, each chassis handling every request after a random 0–4 ms
//! (`/_sim/faults {"jitter_ms"}`), so entries on their way together reach
//! each chassis' state in a random order, different on each.
//!
//! Each case: the gateway answered every request (no 5xx), compared every
//! answer of the two chassis without a divergence, and both chassis end with
//! equal digests and equal outputs. Over the run, each chassis was sent
//! several entries at once (`most_in_flight` on the status page): without
//! that the property says nothing about parallel application.
//!
//! Seen failing (2 runs of 2) with the matrix rule's `conflicts = ["output
//! {output}"]` replaced by `[]`: two routes of one output then run together
//! and the chassis end with different inputs on it (a divergence, or
//! different digests). The window rules' `"wall {id}"` is also the wall row
//! their path IDs name, so breaking only that key changes nothing.

use std::time::Duration;

use pairgate_suite::api::Api;
use pairgate_suite::ops::{request, Op};
use pairgate_suite::pair::Pair;
use proptest::prelude::*;
use serde_json::json;

/// Concurrent clients per case.
const LANES: u8 = 8;
/// Walls made before each case, 1×1 on outputs 1..=WALLS; the matrix
/// routes go to the outputs above them.
const WALLS: u32 = 6;

/// Mostly entries that conflict only within a wall or an output, some that
/// conflict with everything.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), any::<u8>(), 0u16..1500, 0u16..800).prop_map(|(wall, win, x, y)| Op::MoveWindow { wall, win, x, y }),
        4 => (any::<u8>(), any::<u8>()).prop_map(|(wall, win)| Op::RaiseWindow { wall, win }),
        3 => (any::<u8>(), 1u8..20, 0u16..1500, 0u16..800, 1u16..400, 1u16..250)
            .prop_map(|(wall, source, x, y, w, h)| Op::OpenWindow { wall, source, x, y, w, h }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(wall, win)| Op::CloseWindow { wall, win }),
        1 => any::<u8>().prop_map(Op::ClearWall),
        2 => any::<u8>().prop_map(Op::SaveScene),
        2 => any::<u8>().prop_map(Op::RecallScene),
        1 => any::<u8>().prop_map(Op::DeleteScene),
        5 => (7u8..17, proptest::option::of(1u8..17)).prop_map(|(output, input)| Op::Route { output, input }),
        1 => (7u8..17, 1u8..17).prop_map(|(output, input)| Op::CreatePlan { output, input }),
        1 => any::<u8>().prop_map(Op::RunPlan),
        1 => any::<u8>().prop_map(Op::CreateUser),
        1 => any::<u8>().prop_map(Op::RenameSource),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(seat, host)| Op::SwitchSeat { seat, host }),
    ]
}

/// The walls, windows and KVM seats the ops pick from.
async fn furnish(api: &Api) {
    for w in 0..WALLS {
        let wall = api.post("/walls", json!({"name": format!("wall {w}"), "rows": 1, "cols": 1, "outputs": [w + 1]})).await.ok().id();
        for k in 0..3u32 {
            api.post(&format!("/walls/{wall}/windows"), json!({"source_id": k + 1, "x": 100 * k, "y": 0, "w": 200, "h": 200})).await.ok();
        }
    }
    for h in 0..3u32 {
        api.post("/kvm/hosts", json!({"name": format!("host {h}"), "port": h + 1})).await.ok();
    }
    for s in 0..4u32 {
        api.post("/kvm/seats", json!({"name": format!("seat {s}"), "console": "desk"})).await.ok();
    }
}

/// One client's ops, in order; the statuses it was answered.
async fn lane(api: Api, ops: Vec<Op>) -> Vec<(String, u16)> {
    let mut answers = Vec::with_capacity(ops.len());
    for op in &ops {
        let (method, path, body, _) = request(&api, op).await;
        let r = api.call(method, &path, body, &[]).await;
        answers.push((format!("{method} {path}"), r.status));
    }
    answers
}

/// What a case saw, for the run's guards.
struct Seen {
    applied: usize,
    most_in_flight: [u64; 2],
}

async fn run_case(ops: Vec<(u8, Op)>) -> Result<Seen, TestCaseError> {
    let pair = Pair::start().await;
    let setup = pair.gw.login("admin", "admin").await;
    furnish(&setup).await;
    for i in 0..2 {
        pair.sim_faults(i, json!({"jitter_ms": 4})).await;
    }
    let mut lanes: Vec<Vec<Op>> = vec![Vec::new(); usize::from(LANES)];
    for (l, op) in ops {
        lanes[usize::from(l % LANES)].push(op);
    }
    let mut tasks = Vec::new();
    for ops in lanes {
        let api = pair.gw.login("admin", "admin").await;
        tasks.push(tokio::spawn(lane(api, ops)));
    }
    let mut applied = 0;
    for t in tasks {
        let answers = t.await.map_err(|e| TestCaseError::fail(format!("a client task: {e}")))?;
        for (what, status) in answers {
            prop_assert!(status < 500, "{} answered {}", what, status);
            applied += usize::from((200..300).contains(&status));
        }
    }
    for i in 0..2 {
        pair.sim_faults(i, json!({})).await;
    }
    let status = pair.gw.wait_in_sync(Duration::from_secs(20)).await;
    prop_assert_eq!(&status["divergences"], &json!(0), "{}", status);
    let [(da, oa), (db, ob)] = pair.snapshot().await;
    prop_assert_eq!(da, db, "digests differ");
    prop_assert_eq!(oa, ob, "outputs differ");
    let most = |i: usize| status["chassis"][i]["most_in_flight"].as_u64().unwrap_or(0);
    Ok(Seen { applied, most_in_flight: [most(0), most(1)] })
}

#[test]
fn parallel_application_leaves_both_chassis_equal() {
    let config = ProptestConfig { cases: 6, max_shrink_iters: 0, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let seen = std::sync::Mutex::new(Vec::new());
    let result = runner.run(&proptest::collection::vec((0..LANES, op()), 60..160), |ops| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
        let s = rt.block_on(run_case(ops))?;
        seen.lock().unwrap_or_else(|p| p.into_inner()).push(s);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let seen = seen.into_inner().unwrap_or_else(|p| p.into_inner());
    // Guards: the ops did something, and entries did go together.
    let applied: usize = seen.iter().map(|s| s.applied).sum();
    assert!(applied > 100, "only {applied} requests applied over {} cases", seen.len());
    for i in 0..2 {
        let most = seen.iter().map(|s| s.most_in_flight[i]).max().unwrap_or(0);
        assert!(most > 1, "chassis {i} was never sent more than {most} entries at once");
    }
}
