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
use proptest::prelude::*;
use serde_json::{json, Value};

#[derive(Clone, Debug)]
enum Op {
    CreateWall { rows: u8, cols: u8, first_output: u8 },
    DeleteWall(u8),
    OpenWindow { wall: u8, source: u8, x: u16, y: u16, w: u16, h: u16 },
    MoveWindow { wall: u8, win: u8, x: u16, y: u16 },
    RaiseWindow { wall: u8, win: u8 },
    CloseWindow { wall: u8, win: u8 },
    ClearWall(u8),
    SaveScene(u8),
    RecallScene(u8),
    DeleteScene(u8),
    Route { output: u8, input: Option<u8> },
    CreatePlan { output: u8, input: u8 },
    RunPlan(u8),
    CreateUser(u8),
    CreateSource(u8),
    RenameSource(u8),
    CreateHost(u8),
    CreateSeat(u8),
    SwitchSeat { seat: u8, host: u8 },
}

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

/// Pick the `sel`-th id of a list (or an id that does not exist).
fn pick(list: &Value, sel: u8) -> u64 {
    match list.as_array() {
        Some(a) if !a.is_empty() => a[sel as usize % a.len()]["id"].as_u64().unwrap_or(999_999),
        _ => 999_999,
    }
}

/// Turn an op into a concrete request, looking ids up on chassis `a`.
async fn request(a: &Api, op: &Op) -> (&'static str, String, Option<Value>, u64) {
    let walls = a.get("/walls").await.ok().body;
    let windows_of = |wall: u64| async move { a.get(&format!("/walls/{wall}/windows")).await.body };
    match op {
        Op::CreateWall { rows, cols, first_output } => {
            let n = u32::from(rows * cols);
            let outputs: Vec<u32> = (0..n).map(|i| (u32::from(*first_output) + i - 1) % 16 + 1).collect();
            (
                "POST",
                "/walls".into(),
                Some(json!({"name": "w", "rows": rows, "cols": cols, "outputs": outputs, "screen_width": 1920, "screen_height": 1080})),
                1 + u64::from(n),
            )
        }
        Op::DeleteWall(s) => ("DELETE", format!("/walls/{}", pick(&walls, *s)), None, 0),
        Op::OpenWindow { wall, source, x, y, w, h } => (
            "POST",
            format!("/walls/{}/windows", pick(&walls, *wall)),
            Some(json!({"source_id": source, "x": x, "y": y, "w": w, "h": h})),
            1,
        ),
        Op::MoveWindow { wall, win, x, y } => {
            let wall = pick(&walls, *wall);
            let win = pick(&windows_of(wall).await, *win);
            ("PUT", format!("/walls/{wall}/windows/{win}"), Some(json!({"x": x, "y": y})), 0)
        }
        Op::RaiseWindow { wall, win } => {
            let wall = pick(&walls, *wall);
            let win = pick(&windows_of(wall).await, *win);
            ("POST", format!("/walls/{wall}/windows/{win}/raise"), None, 0)
        }
        Op::CloseWindow { wall, win } => {
            let wall = pick(&walls, *wall);
            let win = pick(&windows_of(wall).await, *win);
            ("DELETE", format!("/walls/{wall}/windows/{win}"), None, 0)
        }
        Op::ClearWall(s) => ("DELETE", format!("/walls/{}/windows", pick(&walls, *s)), None, 0),
        Op::SaveScene(s) => ("POST", format!("/walls/{}/scenes", pick(&walls, *s)), Some(json!({"name": "scene"})), 65),
        Op::RecallScene(s) | Op::DeleteScene(s) => {
            let wall = pick(&walls, *s);
            let scenes = a.get(&format!("/walls/{wall}/scenes")).await.body;
            let scene = pick(&scenes, s.wrapping_mul(7));
            match op {
                Op::RecallScene(_) => ("POST", format!("/scenes/{scene}/recall"), None, 64),
                _ => ("DELETE", format!("/scenes/{scene}"), None, 0),
            }
        }
        Op::Route { output, input } => ("PUT", format!("/matrix/{output}"), Some(json!({"input": input})), 0),
        Op::CreatePlan { output, input } => {
            ("POST", "/plans".into(), Some(json!({"name": "p", "routes": [{"output": output, "input": input}]})), 1)
        }
        Op::RunPlan(s) => ("POST", format!("/plans/{}/run", pick(&a.get("/plans").await.body, *s)), None, 0),
        Op::CreateUser(s) => {
            ("POST", "/users".into(), Some(json!({"username": format!("u{}", s % 8), "password": "pw", "role": "viewer"})), 1)
        }
        Op::CreateSource(s) => {
            ("POST", "/sources".into(), Some(json!({"name": format!("cam {s}"), "kind": "ip", "url": format!("rtsp://cam-{s}/1")})), 1)
        }
        Op::RenameSource(s) => ("PUT", format!("/sources/{}", u64::from(*s % 20) + 1), Some(json!({"name": format!("renamed {s}")})), 0),
        Op::CreateHost(s) => ("POST", "/kvm/hosts".into(), Some(json!({"name": "h", "port": u32::from(*s % 12) + 1})), 1),
        Op::CreateSeat(s) => ("POST", "/kvm/seats".into(), Some(json!({"name": format!("seat {s}"), "console": "c"})), 1),
        Op::SwitchSeat { seat, host } => {
            let seat = pick(&a.get("/kvm/seats").await.body, *seat);
            let host = pick(&a.get("/kvm/hosts").await.body, *host);
            ("PUT", format!("/kvm/seats/{seat}"), Some(json!({"host_id": host})), 0)
        }
    }
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
