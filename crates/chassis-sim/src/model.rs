//! The chassis' tables, one Rust type per table.
//!
//! Every table has an `id` primary key and (for the auto-increment tables) its
//! own counter. Settings keyed by something else (matrix routes by output
//! port, cascade links by link number, the superior by the constant 1) are
//! tables too, so export, import, persistence and undo treat them alike.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role includes `needed` (admin ⊃ operator ⊃ viewer).
    pub fn allows(self, needed: Role) -> bool {
        let rank = |r: Role| match r {
            Role::Admin => 2,
            Role::Operator => 1,
            Role::Viewer => 0,
        };
        rank(self) >= rank(needed)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: u64,
    pub username: String,
    pub role: Role,
    /// Argon2 PHC string. Exported (so an import keeps logins working), left
    /// out of the digest (salts differ between chassis) and of every API view.
    pub password_hash: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Hdmi,
    Dvi,
    Sdi,
    Ip,
    Cascade,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Source {
    pub id: u64,
    pub name: String,
    pub kind: SourceKind,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub port: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
    /// For `cascade` sources: the subordinate and its own id for the source.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subordinate_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub remote_source_id: Option<u64>,
    /// The physical inputs 1..N exist from first start and cannot be deleted.
    #[serde(default)]
    pub builtin: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Wall {
    pub id: u64,
    pub name: String,
    pub rows: u32,
    pub cols: u32,
    pub screen_width: u32,
    pub screen_height: u32,
}

impl Wall {
    pub fn width(&self) -> u64 {
        u64::from(self.cols) * u64::from(self.screen_width)
    }
    pub fn height(&self) -> u64 {
        u64::from(self.rows) * u64::from(self.screen_height)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Screen {
    pub id: u64,
    pub wall_id: u64,
    pub row: u32,
    pub col: u32,
    pub output: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Window {
    pub id: u64,
    pub wall_id: u64,
    pub source_id: u64,
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    pub z: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Scene {
    pub id: u64,
    pub wall_id: u64,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SceneItem {
    pub id: u64,
    pub scene_id: u64,
    pub source_id: u64,
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    pub z: u64,
}

/// A matrix route: `id` is the output port.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Route {
    pub id: u64,
    pub input: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanRoute {
    pub output: u32,
    pub input: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub id: u64,
    pub name: String,
    pub routes: Vec<PlanRoute>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Schedule {
    pub id: u64,
    pub name: String,
    pub plan_ids: Vec<u64>,
    pub interval_s: u32,
    pub enabled: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KvmHost {
    pub id: u64,
    pub name: String,
    pub port: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KvmSeat {
    pub id: u64,
    pub name: String,
    pub console: String,
    pub host_id: Option<u64>,
}

/// A source a subordinate reported, in the subordinate's own numbering.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteSource {
    pub id: u64,
    pub name: String,
    #[serde(default = "default_remote_kind")]
    pub kind: String,
}

fn default_remote_kind() -> String {
    "hdmi".into()
}

/// How the superior calls a subordinate back (to route a cascade link).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Subordinate {
    pub id: u64,
    pub serial: String,
    pub url: String,
    pub sources: Vec<RemoteSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
}

/// A cascade link of this chassis (as a subordinate): `id` is the link number.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CascadeLink {
    pub id: u64,
    pub source_id: u64,
}

/// The superior this chassis registers at; at most one row, id 1.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Superior {
    pub id: u64,
    pub url: String,
    pub username: String,
    pub password: String,
}

/// Number of cascade links (ports feeding a superior) a chassis has.
pub const CASCADE_LINKS: u64 = 8;
/// At most this many windows on one wall.
pub const MAX_WINDOWS_PER_WALL: usize = 64;
/// IDs are positive integers below 2^53 (they must survive a JavaScript number).
pub const MAX_ID: u64 = 1 << 53;
