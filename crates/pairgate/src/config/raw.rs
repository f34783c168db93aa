//! The file's shape, exactly as written, before any checking.
//!
//! Every value is wrapped in [`Spanned`] so that validation, which happens after
//! deserialisation, can still point at the line the value came from. Optional keys
//! are `Option` here (not `#[serde(default)]`) so validation knows whether a value
//! was written or defaulted. `deny_unknown_fields` everywhere: a misspelled key is an
//! error, never a silently ignored setting.
//!
//! Keys that would hold a secret inline (`password`, `jwt_secret`, `admin_token`) are
//! accepted by the schema only so that validation can reject them with a specific
//! hint instead of a generic "unknown field".

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_spanned::Spanned;

pub(crate) type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub admin_token_file: S<String>,
    pub admin_token: Option<S<IgnoredAny>>,
    pub default_mutate_id_block: Option<S<u64>>,
    pub listen: S<RawListen>,
    pub state: S<RawState>,
    pub chassis: S<Vec<S<RawChassis>>>,
    pub timeouts: Option<S<RawTimeouts>>,
    pub journal: Option<S<RawJournal>>,
    pub reads: Option<S<RawReads>>,
    pub sessions: S<RawSessions>,
    #[serde(default)]
    pub route: Vec<S<RawRoute>>,
    #[serde(default)]
    pub collection: Vec<S<RawCollection>>,
    #[serde(default)]
    pub event: Vec<S<RawEvent>>,
    pub cascade: Option<S<RawCascade>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCascade {
    pub serial: S<String>,
    pub public_url: S<String>,
    pub superior: Option<S<RawSuperior>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSuperior {
    pub url: S<String>,
    pub ca_cert: Option<S<String>>,
    pub username: S<String>,
    pub password_file: Option<S<String>>,
    pub password_env: Option<S<String>>,
    pub password: Option<S<IgnoredAny>>,
}

/// `{ "/id" = "walls", … }`: places (or path parameters) and the table of the
/// IDs found there. Keys are spanned too, so a bad one can be pointed at.
pub(crate) type RawIdMap = BTreeMap<S<String>, S<String>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvent {
    #[serde(rename = "type")]
    pub event_type: S<String>,
    pub ids: S<RawIdMap>,
}

/// One entry of a route's `creates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCreate {
    pub table: S<String>,
    pub at: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCollection {
    pub path: S<String>,
    pub each: Option<S<String>>,
    pub table: Option<S<String>>,
    pub create: Option<S<String>>,
    pub fields: Option<S<Vec<S<String>>>>,
    pub derive: Option<S<std::collections::BTreeMap<String, S<String>>>>,
    pub delete: Option<S<String>>,
    pub fixed: Option<S<String>>,
    pub match_by: Option<S<String>>,
    pub update: Option<S<String>>,
    pub update_fields: Option<S<Vec<S<String>>>>,
    pub set: Option<S<String>>,
    pub secret: Option<S<String>>,
    pub stage: Option<S<RawStage>>,
    pub compare_ignores: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStage {
    pub items: S<String>,
    pub create: S<String>,
    pub fields: S<Vec<S<String>>>,
    pub clear: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    pub addr: S<String>,
    pub tls_cert: Option<S<String>>,
    pub tls_key: Option<S<String>>,
    pub insecure_http: Option<S<bool>>,
    pub max_body_bytes: Option<S<u64>>,
    pub header_timeout_ms: Option<S<u64>>,
    pub idle_timeout_ms: Option<S<u64>>,
    pub body_timeout_ms: Option<S<u64>>,
    pub max_connections: Option<S<u64>>,
    pub max_requests_in_flight: Option<S<u64>>,
    pub metrics_open: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    pub dir: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChassis {
    pub name: S<String>,
    pub url: S<String>,
    pub ca_cert: Option<S<String>>,
    pub username: S<String>,
    pub password_file: Option<S<String>>,
    pub password_env: Option<S<String>>,
    pub password: Option<S<IgnoredAny>>,
    pub preferred_primary: Option<S<bool>>,
    pub features: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub secondary_grace_ms: Option<S<u64>>,
    pub per_try_ms: Option<S<u64>>,
    pub health_interval_ms: Option<S<u64>>,
    pub down_after_ms: Option<S<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJournal {
    pub max_entries: Option<S<u64>>,
    pub max_bytes: Option<S<u64>>,
    pub commit_max_batch: Option<S<u64>>,
    pub commit_max_delay_us: Option<S<u64>>,
    pub max_in_flight: Option<S<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReads {
    pub coalesce: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSessions {
    pub jwt_secret_file: S<String>,
    pub jwt_secret: Option<S<IgnoredAny>>,
    pub idle_timeout_s: Option<S<u64>>,
    pub login_attempts_per_minute: Option<S<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub method: S<String>,
    pub path: S<String>,
    pub kind: S<String>,
    pub id_block: Option<S<u64>>,
    pub ends_sessions_of: Option<S<String>>,
    pub secret_fields: Option<S<Vec<S<String>>>>,
    pub path_ids: Option<S<RawIdMap>>,
    pub body_ids: Option<S<RawIdMap>>,
    pub answer_ids: Option<S<RawIdMap>>,
    pub creates: Option<S<Vec<S<RawCreate>>>>,
    pub forgets: Option<S<String>>,
    pub compare_ignores: Option<S<Vec<S<String>>>>,
    pub fills: Option<S<RawIdMap>>,
    pub conflicts: Option<S<Vec<S<String>>>>,
}
