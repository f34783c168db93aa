//! The validated settings, one type per section of `gateway.toml`, with their
//! defaults.
//!
//! These types hold no secrets: only where to find them (a file path or the name
//! of an environment variable). They can be logged and printed safely. Paths are
//! already resolved against the configuration file's directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::chassis_url::ChassisUrl;

/// `[listen].max_body_bytes` default: 1 MiB. Enough for every API call of the
/// contract except a large `PUT /system/import` sent by a client; the gateway's own
/// resync does not pass through the front, so this limit does not cap it.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// `[listen].header_timeout_ms` default: a client has 10 s to send its headers.
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
/// `[listen].idle_timeout_ms` default: an idle keep-alive connection is closed after
/// 60 s (event WebSockets are not idle connections and are not affected).
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// `[listen].body_timeout_ms` default: a client has 30 s from the end of its headers
/// to send the whole request body (408 after it).
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 30_000;
/// `[listen].max_connections` default: open client connections at once. At the cap
/// the oldest idle connection is closed to make room; with none idle, the new one is.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 4_096;
/// `[listen].max_requests_in_flight` default: requests handled at once, over all
/// connections; more wait for a slot.
pub const DEFAULT_MAX_REQUESTS_IN_FLIGHT: u64 = 1_024;
/// `[timeouts].secondary_grace_ms` default (docs/design.md, "Answer to the client").
pub const DEFAULT_SECONDARY_GRACE_MS: u64 = 200;
/// `[timeouts].per_try_ms` default: the longest one attempt at a chassis may take.
pub const DEFAULT_PER_TRY_MS: u64 = 2_000;
/// `[timeouts].health_interval_ms` default: how often each chassis is probed.
pub const DEFAULT_HEALTH_INTERVAL_MS: u64 = 500;
/// `[timeouts].down_after_ms` default: no answer for this long means `down`.
pub const DEFAULT_DOWN_AFTER_MS: u64 = 1_500;
/// `[journal].max_entries` default: a chassis further behind than this many
/// mutations goes through full resync instead of replay.
pub const DEFAULT_JOURNAL_MAX_ENTRIES: u64 = 100_000;
/// `[journal].max_bytes` default: 256 MiB. Like `max_entries`, a bound on what is
/// kept for a lagging chassis; past it the oldest entries go.
pub const DEFAULT_JOURNAL_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// `[journal].commit_max_batch` default: most entries made durable by one commit.
pub const DEFAULT_COMMIT_MAX_BATCH: u32 = 1_024;
/// `[journal].commit_max_delay_us` default: 0, i.e. no added wait. A batch is what
/// arrived while the previous commit was syncing, which is group commit already.
pub const DEFAULT_COMMIT_MAX_DELAY_US: u64 = 0;
/// `[journal].max_in_flight` default: entries one chassis is sent at once when
/// they do not conflict.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 32;
/// `[sessions].idle_timeout_s` default: 30 minutes, as the chassis' own sessions.
pub const DEFAULT_SESSION_IDLE_TIMEOUT_S: u64 = 1_800;
/// `[sessions].login_attempts_per_minute` default, per client address.
pub const DEFAULT_LOGIN_ATTEMPTS_PER_MINUTE: u32 = 10;
/// `default_mutate_id_block` default: IDs given to a mutating request that no rule
/// describes. Small, but enough for an unknown create of a few rows to get the same
/// IDs on both chassis.
pub const DEFAULT_MUTATE_ID_BLOCK: u32 = 16;

/// `[listen]`: where and how the gateway accepts clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub addr: SocketAddr,
    pub transport: Transport,
    /// Largest request body accepted (413 above it).
    pub max_body_bytes: u64,
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Idle keep-alive connections (HTTP/1 and HTTP/2) are closed after this.
    pub idle_timeout: Duration,
    /// Time a client has, once its headers are in, to send the whole body (408).
    pub body_timeout: Duration,
    /// Open client connections at once (see [`DEFAULT_MAX_CONNECTIONS`]).
    pub max_connections: u32,
    /// Requests handled at once over all connections; more wait for a slot.
    pub max_requests_in_flight: u32,
    /// A `metrics` route answers anyone (true) or only the admin token as a
    /// bearer (false, the default).
    pub metrics_open: bool,
}

/// HTTPS, or plain HTTP when the file says `insecure_http = true` explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Tls { cert: PathBuf, key: PathBuf },
    InsecureHttp,
}

/// `[state]`: the directory holding the journal, the sessions and the ID counter.
/// Created by the gateway on start if missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub dir: PathBuf,
}

/// `[cascade]`: the pair as one system of a cascade (docs/design.md,
/// "Cascade"): the identity a superior sees for it, whichever chassis is
/// primary, and the superior it registers at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cascade {
    /// The pair's one serial at its superior (not either chassis' own).
    pub serial: String,
    /// Where a superior reaches the pair: this gateway's address as others
    /// see it (behind NAT or a name, not necessarily `listen.addr`).
    pub public_url: ChassisUrl,
    /// `[cascade.superior]`, if the pair has one.
    pub superior: Option<Superior>,
    /// Line of the `[cascade]` header.
    pub line: usize,
}

/// `[cascade.superior]`: the system the pair registers at, as the gateway
/// calls it (the chassis are pointed at the gateway instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superior {
    /// Its base address (a chassis or another pair's gateway).
    pub url: ChassisUrl,
    /// The only certificate (or CA) accepted from it; `Some` exactly when `url` is https.
    pub ca_cert: Option<PathBuf>,
    /// The account the gateway logs in with there.
    pub username: String,
    pub password: SecretSource,
    /// Line of the `[cascade.superior]` header.
    pub line: usize,
}

/// One `[[chassis]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chassis {
    /// Unique, short; used in logs, metrics and `/_pairgate/status`.
    pub name: String,
    pub url: ChassisUrl,
    /// The only certificate (or CA) accepted from this chassis. `Some` exactly when
    /// `url` is https.
    pub ca_cert: Option<PathBuf>,
    /// The chassis account the gateway itself uses (health, export/import, resync).
    pub username: String,
    pub password: SecretSource,
    /// Which chassis is primary when both are in sync (no automatic failback).
    pub preferred_primary: bool,
    /// What its firmware offers, if `gateway.toml` says (for firmware without
    /// `GET /system/info`); `None`: the gateway asks the chassis.
    pub features: Option<crate::chassis::features::Features>,
    /// Line of the chassis' `[[chassis]]` header.
    pub line: usize,
}

/// A `[[collection]]`: a listing the gateway reads (with its own account) to
/// compare two chassis whose firmware has no `/system/digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    /// `GET` path of the listing, e.g. `/api/v1/walls`, or with one
    /// `{param}`: `/api/v1/walls/{id}/windows`.
    pub path: String,
    /// For a path with a `{param}`: the listing (an earlier collection,
    /// without a parameter) whose rows' `id`s fill it in, one `GET` each.
    pub each: Option<Each>,
    /// How the gateway makes a chassis hold these rows through the ordinary
    /// API (firmware without export/import); `None`: it cannot.
    pub rebuild: Rebuild,
    /// Places left out of the comparison: values the API sets by itself
    /// (a window's `z`: the listing's order already shows the stacking).
    pub compare_ignores: Vec<crate::ids::pointer::WildPointer>,
    pub line: usize,
}

/// A collection's rebuild recipe (see gateway.toml's `[[collection]]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebuild {
    /// The table of its rows' `id` (for the map).
    pub table: Option<crate::ids::rules::Table>,
    /// `POST` path that creates one row (the collection's own `{param}`
    /// filled in), with a body of `fields` and `derive` taken from the row.
    pub create: Option<String>,
    pub fields: Vec<String>,
    /// Body key ← the values at a place of the row (a list if it has `*`).
    pub derive: Vec<(String, crate::ids::pointer::WildPointer)>,
    /// `DELETE` path of one row, `{id}` its id.
    pub delete: Option<String>,
    /// Rows where this place is `true` exist on every chassis under the
    /// same id (physical inputs): never deleted or created, only updated.
    pub fixed: Option<crate::ids::pointer::WildPointer>,
    /// Rows of both chassis with an equal value here are the same row
    /// (accounts by username): kept and updated, never deleted.
    pub match_by: Option<crate::ids::pointer::WildPointer>,
    /// `PUT` path for a fixed or matched row, `{id}` its id; body of `update_fields`.
    pub update: Option<String>,
    pub update_fields: Vec<String>,
    /// `PUT` path per row, `{field}` filled from the row, body of `fields`:
    /// for rows that are set rather than created (matrix routes).
    pub set: Option<String>,
    /// A body key a create needs that no listing shows (a password): a
    /// random value is sent, and the rebuild says which rows got one.
    pub secret: Option<String>,
    /// Rows that capture others (a scene captures its wall's windows):
    /// before each create, `clear` is called, each of the row's `items` is
    /// created at `create` with `fields`, and `clear` again after.
    pub stage: Option<Stage>,
}

/// See [`Rebuild::stage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub items: crate::ids::pointer::WildPointer,
    pub create: String,
    pub fields: Vec<String>,
    pub clear: String,
}

impl Rebuild {
    /// Whether the recipe can do anything.
    pub fn is_empty(&self) -> bool {
        self.create.is_none() && self.set.is_none() && self.update.is_none()
    }
}

/// How a `{param}` of a collection's path is filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Each {
    /// The parameter as written in the path, braces included: `{id}`.
    pub param: String,
    /// Index of the parent collection in `Config::collections`.
    pub parent: usize,
}

/// Where a secret is read from at start-up. Never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// `[timeouts]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// How long after the primary's answer the secondary's is awaited.
    pub secondary_grace: Duration,
    /// The longest one attempt at one chassis may take.
    pub per_try: Duration,
    pub health_interval: Duration,
    pub down_after: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            secondary_grace: Duration::from_millis(DEFAULT_SECONDARY_GRACE_MS),
            per_try: Duration::from_millis(DEFAULT_PER_TRY_MS),
            health_interval: Duration::from_millis(DEFAULT_HEALTH_INTERVAL_MS),
            down_after: Duration::from_millis(DEFAULT_DOWN_AFTER_MS),
        }
    }
}

/// `[journal]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Journal {
    pub max_entries: u64,
    /// Bytes of stored entries kept at most (method, path, headers and body of each).
    pub max_bytes: u64,
    pub commit_max_batch: u32,
    pub commit_max_delay: Duration,
    /// Entries one chassis is sent at once when they do not conflict (their
    /// route rules' `conflicts`); 1 applies every entry alone, in journal order.
    pub max_in_flight: u32,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            max_entries: DEFAULT_JOURNAL_MAX_ENTRIES,
            max_bytes: DEFAULT_JOURNAL_MAX_BYTES,
            commit_max_batch: DEFAULT_COMMIT_MAX_BATCH,
            commit_max_delay: Duration::from_micros(DEFAULT_COMMIT_MAX_DELAY_US),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// `[reads]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reads {
    /// Identical reads in flight at once (same account, path and query,
    /// forwarded headers) share one chassis request, never across an answered
    /// mutation (`crate::coalesce`). Default on.
    pub coalesce: bool,
}

impl Default for Reads {
    fn default() -> Self {
        Reads { coalesce: true }
    }
}

/// `[sessions]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sessions {
    /// The key that signs gateway tokens; a file so it survives restarts (and with
    /// it every session).
    pub jwt_secret_file: PathBuf,
    pub idle_timeout: Duration,
    pub login_attempts_per_minute: u32,
}
