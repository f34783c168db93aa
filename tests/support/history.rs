//! What the clients did and saw: the raw material of every check.
//!
//! The records are the checker's *independent* account of the campaign — what
//! was asked, with which `Idempotency-Key`, when, and what each attempt got —
//! kept without asking the gateway. The checks then compare it with what the
//! chassis actually hold.

use serde_json::{json, Value};

/// Width of the position grid a register value is encoded in (see [`position`]).
const GRID_W: u64 = 3000;
const GRID_H: u64 = 2000;

/// A unique number as a window position: `x = v mod 3000`, `y = v / 3000`
/// (mod 2000). Every write puts a value no other write uses, so a position
/// read back names exactly one write. Fits a 2×2 wall of 1920×1080 screens
/// with a 10×10 window.
pub fn position(value: u64) -> (u64, u64) {
    (value % GRID_W, (value / GRID_W) % GRID_H)
}

/// The inverse of [`position`] for a window read back.
pub fn value_of(window: &Value) -> Option<u64> {
    Some(window["y"].as_u64()? * GRID_W + window["x"].as_u64()?)
}

/// A unique window size for an owned window's create: the size never changes
/// afterwards (moves only set x/y), so rows with the same (wall, w, h) come
/// from the same logical create — two of them mean it was applied twice.
pub fn signature_size(sig: u64) -> (u64, u64) {
    (10 + sig % 800, 10 + (sig / 800) % 150)
}

/// Distinct sizes [`signature_size`] has: fewer than a long campaign's
/// unique numbers, so the source a window shows (never changed afterwards
/// either) tells apart creates of the same size.
const SIZES: u64 = 800 * 150;

/// The source of an owned window's create: with its size, a signature
/// unique for 8 × [`SIZES`] creates (a ten-minute campaign draws ~200,000
/// unique numbers).
pub fn signature_source(sig: u64) -> u64 {
    1 + (sig / SIZES) % 8
}

/// One logical mutation of the workload.
#[derive(Clone, Debug, PartialEq)]
pub enum Mutation {
    /// Move the shared register window (every client writes it).
    RegisterWrite {
        wall: u64,
        window: u64,
        value: u64,
    },
    OpenWindow {
        wall: u64,
        sig: u64,
        value: u64,
    },
    MoveWindow {
        wall: u64,
        id: u64,
        value: u64,
    },
    RaiseWindow {
        wall: u64,
        id: u64,
    },
    CloseWindow {
        wall: u64,
        id: u64,
    },
    CreateHost {
        name: String,
        port: u32,
    },
    DeleteHost {
        id: u64,
    },
    CreateSeat {
        name: String,
        host_id: Option<u64>,
    },
    RenameSource {
        id: u64,
        name: String,
    },
    SetRoute {
        output: u32,
        input: Option<u32>,
    },
    /// An untracked window on the scene wall (scenes capture it).
    SceneWindow {
        wall: u64,
        x: u64,
        y: u64,
    },
    SaveScene {
        wall: u64,
        name: String,
    },
    RecallScene {
        id: u64,
    },
    ClearWall {
        wall: u64,
    },
}

impl Mutation {
    /// Method, path (under the gateway) and body.
    pub fn request(&self) -> (&'static str, String, Option<Value>) {
        match self {
            Mutation::RegisterWrite { wall, window, value } | Mutation::MoveWindow { wall, id: window, value } => {
                let (x, y) = position(*value);
                ("PUT", format!("/api/v1/walls/{wall}/windows/{window}"), Some(json!({"x": x, "y": y})))
            }
            Mutation::OpenWindow { wall, sig, value } => {
                let (x, y) = position(*value);
                let (w, h) = signature_size(*sig);
                (
                    "POST",
                    format!("/api/v1/walls/{wall}/windows"),
                    Some(json!({"source_id": signature_source(*sig), "x": x, "y": y, "w": w, "h": h})),
                )
            }
            Mutation::RaiseWindow { wall, id } => ("POST", format!("/api/v1/walls/{wall}/windows/{id}/raise"), Some(json!({}))),
            Mutation::CloseWindow { wall, id } => ("DELETE", format!("/api/v1/walls/{wall}/windows/{id}"), None),
            Mutation::CreateHost { name, port } => ("POST", "/api/v1/kvm/hosts".into(), Some(json!({"name": name, "port": port}))),
            Mutation::DeleteHost { id } => ("DELETE", format!("/api/v1/kvm/hosts/{id}"), None),
            Mutation::CreateSeat { name, host_id } => {
                ("POST", "/api/v1/kvm/seats".into(), Some(json!({"name": name, "console": format!("{name}-console"), "host_id": host_id})))
            }
            Mutation::RenameSource { id, name } => ("PUT", format!("/api/v1/sources/{id}"), Some(json!({"name": name}))),
            Mutation::SetRoute { output, input } => ("PUT", format!("/api/v1/matrix/{output}"), Some(json!({"input": input}))),
            Mutation::SceneWindow { wall, x, y } => {
                ("POST", format!("/api/v1/walls/{wall}/windows"), Some(json!({"source_id": 2, "x": x, "y": y, "w": 40, "h": 30})))
            }
            Mutation::SaveScene { wall, name } => ("POST", format!("/api/v1/walls/{wall}/scenes"), Some(json!({"name": name}))),
            Mutation::RecallScene { id } => ("POST", format!("/api/v1/scenes/{id}/recall"), Some(json!({}))),
            Mutation::ClearWall { wall } => ("DELETE", format!("/api/v1/walls/{wall}/windows"), None),
        }
    }

    /// Scene-wall operations may be refused for ordinary reasons (a full
    /// wall, a recall racing a clear): the model does not track that wall's
    /// windows, only that both chassis agree on it.
    pub fn refusal_expected(&self) -> bool {
        matches!(
            self,
            Mutation::SceneWindow { .. } | Mutation::SaveScene { .. } | Mutation::RecallScene { .. } | Mutation::ClearWall { .. }
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Mutation::RegisterWrite { .. } => "register_write",
            Mutation::OpenWindow { .. } => "open_window",
            Mutation::MoveWindow { .. } => "move_window",
            Mutation::RaiseWindow { .. } => "raise_window",
            Mutation::CloseWindow { .. } => "close_window",
            Mutation::CreateHost { .. } => "create_host",
            Mutation::DeleteHost { .. } => "delete_host",
            Mutation::CreateSeat { .. } => "create_seat",
            Mutation::RenameSource { .. } => "rename_source",
            Mutation::SetRoute { .. } => "set_route",
            Mutation::SceneWindow { .. } => "scene_window",
            Mutation::SaveScene { .. } => "save_scene",
            Mutation::RecallScene { .. } => "recall_scene",
            Mutation::ClearWall { .. } => "clear_wall",
        }
    }
}

/// One try of a mutation or a read.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub start_us: i64,
    pub end_us: i64,
    /// HTTP status, None for a transport error.
    pub status: Option<u16>,
    /// `error.code`, or the transport error's text.
    pub detail: String,
}

/// How a logical mutation ended, after its retries.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// 2xx: acknowledged; guarantee 2 says both chassis must have it.
    Acked(Value),
    /// Every attempt was certainly not applied (503 `not_applied`, 401).
    NotApplied,
    /// No attempt was acknowledged and at least one may have been applied
    /// (outcome unknown, transport error, 5xx…). Either is allowed, once.
    Unknown,
    /// A 4xx from the chassis: refused, nothing changed.
    Refused { status: u16, code: String },
}

#[derive(Clone, Debug)]
pub struct MutationRecord {
    pub client: usize,
    pub key: String,
    pub op: Mutation,
    pub attempts: Vec<Attempt>,
    pub outcome: Outcome,
}

impl MutationRecord {
    pub fn start_us(&self) -> i64 {
        self.attempts.first().map_or(0, |a| a.start_us)
    }
    pub fn end_us(&self) -> i64 {
        self.attempts.last().map_or(0, |a| a.end_us)
    }
    pub fn acked(&self) -> Option<&Value> {
        match &self.outcome {
            Outcome::Acked(v) => Some(v),
            _ => None,
        }
    }
}

/// What a read asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Read {
    Register { wall: u64, window: u64 },
    Windows { wall: u64 },
    Hosts,
    Source { id: u64 },
    Matrix,
}

impl Read {
    pub fn path(&self) -> String {
        match self {
            Read::Register { wall, window } => format!("/api/v1/walls/{wall}/windows/{window}"),
            Read::Windows { wall } => format!("/api/v1/walls/{wall}/windows"),
            Read::Hosts => "/api/v1/kvm/hosts".into(),
            Read::Source { id } => format!("/api/v1/sources/{id}"),
            Read::Matrix => "/api/v1/matrix".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ReadRecord {
    pub client: usize,
    pub read: Read,
    pub attempt: Attempt,
    /// For a register read that succeeded: the value it saw.
    pub value: Option<u64>,
    /// What a successful read of a wall's windows or of a source saw.
    pub seen: Seen,
}

/// The part of a read's answer the read-your-writes check looks at.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Seen {
    #[default]
    Nothing,
    /// (window id, position value) of every window on the wall.
    Windows(Vec<(u64, u64)>),
    /// A source's name.
    Name(String),
}

impl ReadRecord {
    pub fn ok(&self) -> bool {
        self.attempt.status == Some(200)
    }
}

/// Everything one client did.
#[derive(Clone, Debug, Default)]
pub struct ClientLog {
    pub client: usize,
    pub user: String,
    pub mutations: Vec<MutationRecord>,
    pub reads: Vec<ReadRecord>,
}
