//! The demo's control room: what `pairgate demo` puts on a new pair so there
//! is something to play with — named sources, two walls with windows, a
//! scene, a plan and a schedule, KVM hosts and seats, an operator and a
//! viewer account.
//!
//! It is made through the gateway itself, as any client would (logged in as
//! the first-start `admin`), so both chassis hold it with the same IDs. It is
//! made once: after it succeeded a marker file in the demo's state directory
//! says so, and a pair that already has a wall (made by hand, or by a seed
//! that was interrupted) is left as it is.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::chassis::upstream::{Outcome, Upstream};

/// The accounts the room gives, besides `admin`/`admin`: (username, password, role).
pub const ACCOUNTS: [(&str, &str, &str); 2] = [("operator", "operator", "operator"), ("viewer", "viewer", "viewer")];

/// The physical inputs 1..=8 get these names.
pub const SOURCE_NAMES: [&str; 8] = [
    "Camera 1 - Lobby",
    "Camera 2 - Main gate",
    "Camera 3 - Car park",
    "Traffic map",
    "Weather radar",
    "SCADA overview",
    "News channel",
    "Operator PC 1",
];

/// The two walls: (name, rows, cols, first output port).
pub const WALLS: [(&str, u32, u32, u32); 2] = [("Main wall", 2, 2, 1), ("Side wall", 1, 3, 5)];

const MARKER: &str = "room.seeded";

#[derive(Debug, thiserror::Error)]
#[error("seeding the demo room: {0}")]
pub struct SeedError(String);

/// What [`seed`] did, for the banner.
#[derive(Debug)]
pub enum Seeded {
    /// Made now: a one-line summary.
    Made(String),
    /// Made on an earlier start (or the pair already had walls).
    AlreadyThere,
}

/// A logged-in client of the gateway.
struct Client {
    up: Upstream,
    token: crate::session::Secret,
}

impl Client {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, SeedError> {
        let full = format!("/api/v1{path}");
        match self.up.json(method.clone(), &full, body.as_ref(), Some(self.token.expose()), Duration::from_secs(10)).await {
            Outcome::Answered(a) if a.is_success() => Ok(serde_json::from_slice(&a.body).unwrap_or(Value::Null)),
            other => Err(SeedError(format!("{method} {full}: {}", other.describe()))),
        }
    }

    async fn create(&self, path: &str, body: Value) -> Result<u64, SeedError> {
        let v = self.call(Method::POST, path, Some(body)).await?;
        v["id"].as_u64().ok_or_else(|| SeedError(format!("POST /api/v1{path} answered without an id: {v}")))
    }
}

/// Make the room through the gateway at `url` (trusting `ca`), once.
pub async fn seed(url: &crate::config::ChassisUrl, ca: &Path, state: &Path) -> Result<Seeded, SeedError> {
    let marker = state.join(MARKER);
    if marker.exists() {
        return Ok(Seeded::AlreadyThere);
    }
    let up = Upstream::new("gateway", url.clone(), Some(ca), Duration::from_secs(10)).map_err(|e| SeedError(e.to_string()))?;
    let token = match crate::session::broker::login(&up, "admin", "admin", Duration::from_secs(10)).await {
        Ok((token, _)) => token,
        // admin's password was changed: the operator has made this room theirs.
        Err(crate::session::broker::BrokerError::BadCredentials(_)) => return Ok(Seeded::AlreadyThere),
        Err(e) => return Err(SeedError(format!("logging in as admin: {e}"))),
    };
    let c = Client { up, token };
    let walls = c.call(Method::GET, "/walls", None).await?;
    let summary = if walls.as_array().is_some_and(|w| w.is_empty()) { Seeded::Made(make(&c).await?) } else { Seeded::AlreadyThere };
    std::fs::write(&marker, b"the demo room was made; delete this file and every wall to have it made again\n")
        .map_err(|e| SeedError(format!("{}: {e}", marker.display())))?;
    Ok(summary)
}

async fn make(c: &Client) -> Result<String, SeedError> {
    for (i, name) in SOURCE_NAMES.iter().enumerate() {
        c.call(Method::PUT, &format!("/sources/{}", i + 1), Some(json!({ "name": name }))).await?;
    }
    c.create("/sources", json!({"name": "Tunnel camera (IP)", "kind": "ip", "url": "rtsp://tunnel-cam.example/stream"})).await?;
    let mut wall_ids = Vec::new();
    for (name, rows, cols, first) in WALLS {
        let outputs: Vec<u32> = (first..first + rows * cols).collect();
        wall_ids.push(c.create("/walls", json!({"name": name, "rows": rows, "cols": cols, "outputs": outputs})).await?);
    }
    // Main wall (3840×2160): one window per screen. Side wall (5760×1080): two.
    let main = [(1, 0, 0), (2, 1920, 0), (4, 0, 1080), (6, 1920, 1080)];
    for (source, x, y) in main {
        c.create(&format!("/walls/{}/windows", wall_ids[0]), json!({"source_id": source, "x": x, "y": y, "w": 1920, "h": 1080})).await?;
    }
    for (source, x, w) in [(5, 0, 1920), (7, 1920, 3840)] {
        c.create(&format!("/walls/{}/windows", wall_ids[1]), json!({"source_id": source, "x": x, "y": 0, "w": w, "h": 1080})).await?;
    }
    c.create(&format!("/walls/{}/scenes", wall_ids[0]), json!({"name": "Morning shift"})).await?;
    // Outputs 8.. belong to no wall: the plan routes two of them.
    let plan =
        c.create("/plans", json!({"name": "Briefing room", "routes": [{"output": 8, "input": 4}, {"output": 9, "input": 5}]})).await?;
    c.create("/schedules", json!({"name": "Briefing every hour", "plan_ids": [plan], "interval_s": 3600, "enabled": false})).await?;
    let scada = c.create("/kvm/hosts", json!({"name": "SCADA server", "port": 1})).await?;
    c.create("/kvm/hosts", json!({"name": "Traffic PC", "port": 2})).await?;
    c.create("/kvm/seats", json!({"name": "Desk 1", "console": "desk-1", "host_id": scada})).await?;
    c.create("/kvm/seats", json!({"name": "Desk 2", "console": "desk-2"})).await?;
    for (username, password, role) in ACCOUNTS {
        c.create("/users", json!({"username": username, "password": password, "role": role})).await?;
    }
    Ok("Main wall 2x2 and Side wall 1x3 with 6 windows, scene 'Morning shift', plan 'Briefing room' and a schedule, \
        9 named sources, KVM hosts 'SCADA server' and 'Traffic PC' with seats 'Desk 1' and 'Desk 2'"
        .to_string())
}
