//! Mutations of the reference API for property tests (each test has its own
//! strategy of generating them): an [`Op`]
//! names what to do by selectors (the `sel`-th wall, window, scene…), and
//! [`request`] turns it into a concrete request by looking the IDs up with
//! the client given. Many are invalid on purpose (IDs that do not exist,
//! outputs in use, windows outside the wall): both chassis must refuse them
//! the same way.

use serde_json::{json, Value};

use crate::api::Api;

#[derive(Clone, Debug)]
pub enum Op {
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

/// Pick the `sel`-th id of a list (or an id that does not exist).
pub fn pick(list: &Value, sel: u8) -> u64 {
    match list.as_array() {
        Some(a) if !a.is_empty() => a[sel as usize % a.len()]["id"].as_u64().unwrap_or(999_999),
        _ => 999_999,
    }
}

/// Turn an op into a concrete request (method, path, body, rows it creates:
/// the `X-Id-Block` size), looking IDs up with `a`.
pub async fn request(a: &Api, op: &Op) -> (&'static str, String, Option<Value>, u64) {
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
