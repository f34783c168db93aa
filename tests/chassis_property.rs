//! Property: any random sequence of mutations, applied to two fresh chassis
//! with the same `X-Id-Block`s, gets the same answers from both and leaves
//! them with equal digests and equal `/hardware/outputs`.
//!
//! Two in-process chassis (the library, ephemeral state) reached over real
//! HTTP on 127.0.0.1. Many generated requests are invalid (ids that do not
//! exist, outputs in use, windows outside the wall): both chassis must refuse
//! them the same way.

use std::net::SocketAddr;

use chassis_sim::{ChassisConfig, Listen};
use pairgate_suite::api::Api;
use pairgate_suite::ops::{request, Op};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u8..3, 1u8..3, 1u8..17).prop_map(|(rows, cols, first_output)| Op::CreateWall { rows, cols, first_output }),
        any::<u8>().prop_map(Op::DeleteWall),
        (any::<u8>(), 1u8..20, 0u16..4000, 0u16..2200, 1u16..2500, 1u16..1500).prop_map(|(wall, source, x, y, w, h)| Op::OpenWindow {
            wall,
            source,
            x,
            y,
            w,
            h
        }),
        (any::<u8>(), any::<u8>(), 0u16..4000, 0u16..2200).prop_map(|(wall, win, x, y)| Op::MoveWindow { wall, win, x, y }),
        (any::<u8>(), any::<u8>()).prop_map(|(wall, win)| Op::RaiseWindow { wall, win }),
        (any::<u8>(), any::<u8>()).prop_map(|(wall, win)| Op::CloseWindow { wall, win }),
        any::<u8>().prop_map(Op::ClearWall),
        any::<u8>().prop_map(Op::SaveScene),
        any::<u8>().prop_map(Op::RecallScene),
        any::<u8>().prop_map(Op::DeleteScene),
        (1u8..18, proptest::option::of(1u8..18)).prop_map(|(output, input)| Op::Route { output, input }),
        (1u8..17, 1u8..17).prop_map(|(output, input)| Op::CreatePlan { output, input }),
        any::<u8>().prop_map(Op::RunPlan),
        any::<u8>().prop_map(Op::CreateUser),
        any::<u8>().prop_map(Op::CreateSource),
        any::<u8>().prop_map(Op::RenameSource),
        any::<u8>().prop_map(Op::CreateHost),
        any::<u8>().prop_map(Op::CreateSeat),
        (any::<u8>(), any::<u8>()).prop_map(|(seat, host)| Op::SwitchSeat { seat, host }),
    ]
}

async fn start() -> chassis_sim::ServerHandle {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    chassis_sim::start(ChassisConfig::default(), Listen { addr, tls: None }).await.unwrap()
}

/// Requests applied (2xx) over every case of the run: the guard against a
/// generator that only produces refused requests. Per case it failed now and
/// then on a short sequence that happened to create nothing first.
static APPLIED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn run_case(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (sa, sb) = (start().await, start().await);
    let a = Api::login(&sa.base_url(false), "admin", "admin").await;
    let b = Api::login(&sb.base_url(false), "admin", "admin").await;
    let mut next_id = 10_000u64;
    let mut applied = 0usize;
    for op in &ops {
        let (method, path, body, rows) = request(&a, op).await;
        let block = format!("{next_id}+{rows}");
        next_id += rows.max(1);
        let ra = a.call(method, &path, body.clone(), &[("X-Id-Block", &block)]).await;
        let rb = b.call(method, &path, body, &[("X-Id-Block", &block)]).await;
        prop_assert_eq!(ra.status, rb.status, "{:?} -> {} {}", op, method, path);
        prop_assert_eq!(&ra.body, &rb.body, "{:?}", op);
        applied += usize::from((200..300).contains(&ra.status));
    }
    APPLIED.fetch_add(applied, std::sync::atomic::Ordering::Relaxed);
    prop_assert_eq!(a.digest().await, b.digest().await);
    prop_assert_eq!(a.outputs().await, b.outputs().await);
    sa.shutdown().await;
    sb.shutdown().await;
    Ok(())
}

#[test]
fn same_blocks_same_state() {
    let config = ProptestConfig { cases: 24, max_shrink_iters: 200, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&proptest::collection::vec(op(), 1..60), |ops| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run_case(ops))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Guard against a generator that only produces refused requests.
    assert!(APPLIED.load(std::sync::atomic::Ordering::Relaxed) > 0, "no generated request was applied in any case");
}
