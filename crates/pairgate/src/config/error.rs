//! What can be wrong with a configuration, where, and how to fix it.
//!
//! Every error that comes from the file carries a [`Location`] (`FILE:LINE:COL`) and
//! a `fix:` sentence, because the person reading it is usually an installer at a
//! console who needs to know which line to change and to what, not which Rust type
//! failed. Errors from the TOML parser itself (syntax, unknown keys, wrong types,
//! missing keys) are [`ConfigError::Toml`]; everything the gateway checks on top
//! (addresses, URLs, ranges, route rules, files on disk) is a [`Problem`] inside
//! [`ConfigError::Invalid`], so tests and tools can match on the exact problem.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// A position in a configuration file: 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Why a configuration could not be loaded. `Display` gives
/// `FILE:LINE:COL: what is wrong` and, on the next line, `  fix: …`.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file itself could not be read (there is no line to point at).
    #[error("{}: cannot read the configuration file: {source}\n  fix: check the path and that this user may read the file", path.display())]
    Read { path: PathBuf, source: io::Error },

    /// The TOML parser or the schema rejected the file: bad syntax, an unknown or
    /// duplicated key, a value of the wrong type, a missing required key.
    #[error("{at}: {message}\n  fix: {fix}")]
    Toml { at: Location, message: String, fix: String },

    /// The file is valid TOML of the right shape, but a value is unusable.
    #[error("{at}: {problem}\n  fix: {}", problem.fix_for(&at.file))]
    Invalid { at: Location, problem: Problem },
}

impl ConfigError {
    /// Where in the file the error is, if it is in the file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Toml { at, .. } | ConfigError::Invalid { at, .. } => Some(at),
        }
    }

    /// The 1-based line of the error, if it is in the file.
    pub fn line(&self) -> Option<usize> {
        self.location().map(|l| l.line)
    }

    /// The semantic problem, for errors found after parsing.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ConfigError::Invalid { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The `fix:` hint sentence alone.
    pub fn fix(&self) -> String {
        match self {
            ConfigError::Read { .. } => "check the path and that this user may read the file".to_string(),
            ConfigError::Toml { fix, .. } => fix.clone(),
            ConfigError::Invalid { at, problem } => problem.fix_for(&at.file),
        }
    }

    /// The parser's message, minus the keys that exist in the schema only to be
    /// rejected (`password`, `jwt_secret`, `admin_token`): an "expected one of" list
    /// must not suggest writing a secret inline.
    pub(crate) fn toml_message(message: &str) -> String {
        let mut out = message.to_string();
        for trap in ["password", "jwt_secret", "admin_token"] {
            let quoted = format!("`{trap}`");
            out = out.replace(&format!("{quoted}, "), "").replace(&format!(", {quoted}"), "");
        }
        out
    }

    /// The hint for an error the TOML parser or serde reported, chosen by the shape
    /// of its message (these messages are stable serde/toml wording).
    pub(crate) fn toml_fix(message: &str) -> String {
        if message.starts_with("unknown field") {
            if message.contains("`password`") {
                return Problem::InlineSecret { key: "password" }.fix();
            }
            "remove this key or correct its spelling (the keys accepted here are listed above; \
             the repository's gateway.toml shows every key with a comment)"
                .to_string()
        } else if let Some(rest) = message.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or("");
            match name {
                "chassis" => "add the two chassis as `[[chassis]]` tables (see the repository's gateway.toml)".to_string(),
                "listen" | "state" | "sessions" => format!("add a `[{name}]` table (see the repository's gateway.toml)"),
                _ => format!("add `{name} = …` to this table (see the repository's gateway.toml for its meaning)"),
            }
        } else if message.starts_with("invalid type") {
            "write a value of the expected type: strings in double quotes, numbers without quotes, \
             booleans as true or false"
                .to_string()
        } else if message.starts_with("invalid value") {
            "write a whole number of 0 or more here".to_string()
        } else if message.starts_with("duplicate key") {
            "a key may appear only once in a table: remove or rename one of them".to_string()
        } else {
            "correct the TOML syntax here: strings need double quotes, a table is written \
             [name], an entry of a list of tables [[name]], one `key = value` per line"
                .to_string()
        }
    }
}

/// A value that parsed but cannot be used. Each variant's `Display` says what is
/// wrong; [`Problem::fix`] says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Problem {
    #[error("`listen.addr` = {value:?} is not an IP:PORT socket address ({reason})")]
    BadListenAddr { value: String, reason: String },

    #[error("`listen.{key}` is missing: the gateway serves HTTPS unless `insecure_http = true` is written")]
    TlsFileMissing { key: &'static str },

    #[error("`listen.{key}` is set together with `insecure_http = true`")]
    TlsWithInsecureHttp { key: &'static str },

    #[error("`{key}` is an empty path")]
    EmptyPath { key: String },

    #[error("`{key}` = {value} is out of range: allowed is {min} to {max}")]
    OutOfRange { key: String, value: u64, min: u64, max: u64 },

    #[error("`timeouts.secondary_grace_ms` ({grace}) is longer than `timeouts.per_try_ms` ({per_try})")]
    GraceLongerThanTry { grace: u64, per_try: u64 },

    #[error("`timeouts.down_after_ms` ({down_after}) is shorter than `timeouts.health_interval_ms` ({interval}): a chassis would be declared down between two health probes")]
    DownBeforeProbe { down_after: u64, interval: u64 },

    #[error("`{key}` is written inline: secrets must not live in the configuration file, which goes into the repository")]
    InlineSecret { key: &'static str },

    #[error("chassis `{chassis}` has no password source: neither `password_file` nor `password_env` is set")]
    PasswordSourceMissing { chassis: String },

    #[error("chassis `{chassis}` has both `password_file` and `password_env`")]
    PasswordSourceTwice { chassis: String },

    #[error("`cascade.serial` = {value:?} is not a serial: 1 to 64 letters, digits, '-', '_' or '.'")]
    BadPairSerial { value: String },

    #[error("`cascade.{key}` = {value:?} is not a base address ({reason})")]
    BadCascadeUrl { key: &'static str, value: String, reason: String },

    #[error("`cascade.superior.url` {url:?} is this gateway's own `listen.addr`: the pair would register at itself")]
    SuperiorIsGateway { url: String },

    #[error("`[cascade.superior]` is reached over https but has no `ca_cert`")]
    SuperiorCaCertMissing,

    #[error("`[cascade.superior]` is reached over plain http, so `ca_cert` would never be used")]
    SuperiorCaCertWithHttp,

    #[error("`cascade.superior.username` is empty")]
    SuperiorEmptyUsername,

    #[error("`[cascade.superior]` has no password source: neither `password_file` nor `password_env` is set")]
    SuperiorPasswordMissing,

    #[error("`[cascade.superior]` has both `password_file` and `password_env`")]
    SuperiorPasswordTwice,

    #[error("`password_env` = {value:?} is not an environment variable name")]
    BadEnvName { value: String },

    #[error("expected exactly two `[[chassis]]` tables, found {found}")]
    ChassisCount { found: usize },

    #[error("chassis name {value:?} is not usable (it appears in logs, metrics and status)")]
    BadChassisName { value: String },

    #[error("collection path {value:?} is not usable")]
    BadCollectionPath { value: String },

    #[error("collection {path:?} is listed twice")]
    DuplicateCollection { path: String },

    #[error("collection {path:?} has a parameter but no `each`")]
    CollectionNeedsEach { path: String },

    #[error("collection {path:?} has `each` but no parameter to fill in")]
    EachWithoutParam { path: String },

    #[error("`each = {value:?}` names no earlier collection without a parameter")]
    UnknownParentCollection { value: String },

    #[error("chassis {chassis}: unknown feature {value:?}")]
    UnknownFeature { chassis: String, value: String },

    #[error("chassis name {name:?} is already used by the chassis at line {first_line}")]
    DuplicateChassisName { name: String, first_line: usize },

    #[error("chassis url {value:?} is not usable: {reason}")]
    BadChassisUrl { value: String, reason: String },

    #[error("chassis url {url:?} is the same chassis as the one at line {first_line}")]
    DuplicateChassisUrl { url: String, first_line: usize },

    #[error("chassis url {url:?} points at the gateway's own listen address")]
    ChassisIsGateway { url: String },

    #[error("chassis `{chassis}` is reached over https but has no `ca_cert`")]
    CaCertMissing { chassis: String },

    #[error("chassis `{chassis}` is reached over plain http, so `ca_cert` would never be used")]
    CaCertWithHttp { chassis: String },

    #[error("chassis `{chassis}` has an empty `username`")]
    EmptyUsername { chassis: String },

    #[error("the gateway's account on the other chassis (line {first_line}) is `{first}`: the two must have the same username")]
    DifferentServiceUsernames { first: String, first_line: usize },

    #[error("`preferred_primary = true` is already set on the chassis at line {first_line}")]
    TwoPreferredPrimaries { first_line: usize },

    #[error("route method {value:?} is not one of GET, POST, PUT, DELETE, PATCH or \"*\"")]
    BadMethod { value: String },

    #[error("route kind {value:?} is not one of read, mutate, login, logout, events, static")]
    BadKind { value: String },

    #[error("route path {value:?} is not a valid pattern: {reason}")]
    BadPattern { value: String, reason: String },

    #[error("route path {value:?} is under `/{prefix}`, which the gateway reserves")]
    ReservedPath { value: String, prefix: &'static str },

    #[error("route {method} {path} repeats the rule at line {first_line} (same method, same pattern)")]
    DuplicateRoute { method: String, path: String, first_line: usize },

    #[error("a `{kind}` route must have method GET, not {method}")]
    KindNeedsGet { kind: &'static str, method: String },

    #[error("mutate route {method} {path} has no `id_block`")]
    IdBlockMissing { method: String, path: String },

    #[error("`id_block` is set on a `{kind}` route; only mutate routes allocate IDs")]
    IdBlockForbidden { kind: &'static str },

    #[error("`ends_sessions_of` is only for kind = \"mutate\" rules, not {kind}")]
    EndsSessionsForbidden { kind: &'static str },

    #[error("`ends_sessions_of = \"{name}\"` names no {{{name}}} segment of {path}")]
    EndsSessionsNoParam { name: String, path: String },
    #[error("secret field {value:?} is not a JSON pointer (RFC 6901): {reason}")]
    BadSecretField { value: String, reason: &'static str },

    #[error("fill {field:?} = {value:?}: {reason}")]
    BadFill { field: String, value: String, reason: String },

    #[error("`conflicts` is set on a `{kind}` route; only mutate routes are applied to the chassis")]
    ConflictsForbidden { kind: &'static str },

    #[error("conflict key {value:?}: {reason}")]
    BadConflictKey { value: String, reason: String },

    #[error("`secret_fields` is set on a `{kind}` route; only mutate routes are journaled")]
    SecretFieldsForbidden { kind: &'static str },

    #[error("`path_ids` names {name:?}, which is no {{{name}}} segment of {path}")]
    IdParamNotInPath { name: String, path: String },

    #[error("ID table name {value:?} is not usable")]
    BadIdTable { value: String },

    #[error("collection {path:?} has `create` but no `table`")]
    CreateNeedsTable { path: String },

    #[error("`{key}` place {value:?} is not a JSON pointer: {reason}")]
    BadIdPointer { key: &'static str, value: String, reason: String },

    #[error("`{key}` names the place \"\", the whole body: an ID is a value inside it")]
    WholeBodyIdPlace { key: &'static str },

    #[error("`{key}` is set on a `{kind}` route; only read and mutate routes have their IDs translated")]
    IdKeyForbidden { key: &'static str, kind: &'static str },

    #[error("`{key}` is set on a `{kind}` route; only mutate routes create or delete rows")]
    IdKeyNeedsMutate { key: &'static str, kind: &'static str },

    #[error("`creates` is set on {method} {path}, whose `id_block` is 0: the client IDs of the rows it creates come from the block")]
    CreatesWithoutBlock { method: String, path: String },

    #[error("`creates` is empty")]
    EmptyCreates,

    #[error("place {at:?} is named twice in this rule's `creates` and `answer_ids`")]
    IdPlaceTwice { at: String },

    #[error("`forgets = {name:?}` is no key of this rule's `path_ids`")]
    ForgetsNotAnIdParam { name: String },

    #[error("an `[[event]]` has an empty `type`")]
    EmptyEventType,

    #[error("event type {event_type:?} already has the `[[event]]` at line {first_line}")]
    DuplicateEvent { event_type: String, first_line: usize },

    #[error("`ids` of event type {event_type:?} is empty")]
    EmptyEventIds { event_type: String },

    #[error("no route rule has kind = \"login\"")]
    NoLoginRoute,

    #[error("`{key}` = {path:?}: {reason}")]
    BadFile { key: String, path: PathBuf, reason: String },

    #[error("`password_env` names {name:?}, which is not set (or empty) in the environment")]
    EnvUnset { name: String },
}

/// The fix of a file that is missing or unusable, for the configuration `file`.
fn bad_file_fix(file: &str) -> String {
    format!(
        "create the file or correct the path (relative paths are resolved against this file's directory): \
         `pairgate init --config {file}` makes every certificate, key and secret file this configuration names \
         that is missing (it keeps the ones that exist: remove a bad one first); \
         `pairgate check-config --no-file-checks {file}` checks everything else"
    )
}

impl Problem {
    /// [`Problem::fix`] for a problem found in the configuration file `file`:
    /// a missing file's fix gives the `pairgate init` command for that file.
    pub fn fix_for(&self, file: &Path) -> String {
        match self {
            Problem::BadFile { .. } => bad_file_fix(&crate::files::shell_word(&file.display().to_string())),
            _ => self.fix(),
        }
    }

    /// What to do about it, as one sentence.
    pub fn fix(&self) -> String {
        use Problem::*;
        match self {
            BadListenAddr { .. } => "write an IP address and port, e.g. addr = \"127.0.0.1:8443\" or \"[::]:8443\" (host names are not accepted: the gateway binds an address)".into(),
            TlsFileMissing { key } => format!("add `{key} = \"certs/gateway.{}\"` (a PEM file; relative paths are resolved against this file's directory), or write `insecure_http = true` to serve plain HTTP on a trusted network only", if *key == "tls_cert" { "pem" } else { "key" }),
            TlsWithInsecureHttp { key } => format!("remove `{key}`, or remove `insecure_http = true` to serve HTTPS"),
            EmptyPath { .. } => "write a path to the file (relative paths are resolved against this file's directory)".into(),
            OutOfRange { min, max, .. } => format!("write a value from {min} to {max}, or remove the key to use the default"),
            GraceLongerThanTry { .. } => "make `secondary_grace_ms` at most `per_try_ms` (the grace is a short wait for the secondary, the try timeout the longest wait for any chassis)".into(),
            DownBeforeProbe { .. } => "make `down_after_ms` at least `health_interval_ms` (the default is three probe intervals: 500 and 1500)".into(),
            InlineSecret { key } => {
                let (file_key, env_key) = match *key {
                    "password" => ("password_file", Some("password_env")),
                    "jwt_secret" => ("jwt_secret_file", None),
                    _ => ("admin_token_file", None),
                };
                match env_key {
                    Some(env) => format!("remove `{key}`; put the secret in a file outside version control and write `{file_key} = \"…\"`, or name an environment variable that holds it with `{env} = \"…\"`"),
                    None => format!("remove `{key}`; put the secret in a file outside version control and write `{file_key} = \"…\"`"),
                }
            }
            PasswordSourceMissing { .. } => "add `password_file = \"…\"` (a file holding this chassis account's password) or `password_env = \"NAME\"` (an environment variable holding it)".into(),
            PasswordSourceTwice { .. } | SuperiorPasswordTwice => "keep one of `password_file` and `password_env`".into(),
            BadPairSerial { .. } => "write the pair's one identity at its superior, e.g. serial = \"PAIR-0001\" (not either chassis' own serial)".into(),
            BadCascadeUrl { .. } => "write a base address as https://HOST:PORT, with an explicit port and no path, user or query, e.g. public_url = \"https://wall-gateway.example:8443\"".into(),
            SuperiorIsGateway { .. } => "point `cascade.superior.url` at the superior system (a chassis or the gateway of the pair above), not at this gateway".into(),
            SuperiorCaCertMissing => "add `ca_cert = \"certs/…pem\"` to `[cascade.superior]`: the superior's own certificate or the CA that signed it (the gateway trusts nothing else there)".into(),
            SuperiorCaCertWithHttp => "remove `ca_cert`, or reach the superior over https:// (recommended)".into(),
            SuperiorEmptyUsername => "write the account the gateway logs in with at the superior, e.g. username = \"cascade\"".into(),
            SuperiorPasswordMissing => "add `password_file = \"…\"` (a file holding the superior account's password) or `password_env = \"NAME\"` to `[cascade.superior]`".into(),
            BadEnvName { .. } => "write the variable's name: letters, digits and '_', not starting with a digit, e.g. password_env = \"PAIRGATE_CHASSIS_A_PASSWORD\"".into(),
            ChassisCount { .. } => "a pair is exactly two chassis: write two `[[chassis]]` tables".into(),
            BadChassisName { .. } => "use 1 to 32 characters from a-z, A-Z, 0-9, '-' and '_', e.g. name = \"a\"".into(),
            DuplicateChassisName { .. } => "give each chassis its own name".into(),
            BadCollectionPath { .. } => "write the listing's GET path from the root, with at most one `{param}` segment and no query, e.g. path = \"/api/v1/walls/{id}/windows\"".into(),
            DuplicateCollection { .. } => "list each collection once".into(),
            CollectionNeedsEach { .. } => "add `each = \"/api/v1/…\"`: the earlier collection whose rows' ids fill the parameter in".into(),
            EachWithoutParam { .. } => "remove `each`, or put the parameter in the path, e.g. \"/api/v1/walls/{id}/windows\"".into(),
            UnknownParentCollection { .. } => "list the parent collection (without a parameter) before this one, and name its path exactly".into(),
            UnknownFeature { .. } => format!(
                "list only what the chassis' firmware offers, from {}; or remove `features` and the gateway asks the chassis (GET /system/info)",
                crate::chassis::features::Feature::ALL.map(|f| f.name()).join(", ")
            ),
            BadChassisUrl { .. } => "write the chassis' base address as https://HOST:PORT (or http://HOST:PORT for a plain-HTTP chassis), with an explicit port and no path, user or query, e.g. url = \"https://10.0.0.11:443\"".into(),
            DuplicateChassisUrl { .. } => "point the two chassis at two different boxes: a pair of one chassis is no redundancy".into(),
            ChassisIsGateway { .. } => "point the chassis at the chassis' own address, not at the gateway's `listen.addr`".into(),
            CaCertMissing { .. } => "add `ca_cert = \"certs/…pem\"`: the chassis' own self-signed certificate or the CA that signed it (the gateway trusts nothing else for this chassis)".into(),
            CaCertWithHttp { .. } => "remove `ca_cert`, or reach the chassis over https:// (recommended)".into(),
            EmptyUsername { .. } => "write the chassis account the gateway logs in with, e.g. username = \"admin\"".into(),
            TwoPreferredPrimaries { .. } => "set `preferred_primary = true` on at most one chassis".into(),
            DifferentServiceUsernames { first, .. } => format!("use username = \"{first}\" on both chassis, each with its own password_file: a full resync copies one chassis' users onto the other (the gateway then sets this chassis' own password back)"),
            BadMethod { .. } => "write one of \"GET\", \"POST\", \"PUT\", \"DELETE\", \"PATCH\" in upper case, or \"*\" for any method (a GET rule also covers HEAD)".into(),
            BadKind { .. } => "write kind = one of \"read\", \"mutate\", \"login\", \"logout\", \"events\", \"static\", \"health\", \"metrics\"".into(),
            BadPattern { .. } => "write a path like \"/api/v1/walls/{id}/windows/{wid}\": segments are literal text or a whole-segment {name}; the last may be {*rest} to match one or more remaining segments; no trailing '/', query or empty segment".into(),
            ReservedPath { .. } => "remove this rule: the gateway answers `/_pairgate/…` itself and refuses `/_sim/…` (simulator test hooks) before any rule is looked at".into(),
            DuplicateRoute { .. } => "remove one of the two rules (parameter names do not matter: {id} and {wall} are the same pattern)".into(),
            KindNeedsGet { .. } => "write method = \"GET\" (WebSocket upgrades and static files are GET; HEAD is covered too)".into(),
            IdBlockMissing { .. } => "add `id_block = N`: the most rows this request can create on a chassis (docs/chassis-api.md, \"IDs\"), 0 if it creates none".into(),
            IdBlockForbidden { .. } => "remove `id_block`, or make this a kind = \"mutate\" rule".into(),
            EndsSessionsForbidden { .. } => "remove `ends_sessions_of`, or make this a kind = \"mutate\" rule".into(),
            EndsSessionsNoParam { .. } => "name the path parameter that holds the user id, e.g. path = \"/api/v1/users/{id}\" with ends_sessions_of = \"id\"".into(),
            BadSecretField { .. } => "write each field as a JSON pointer into the request body: \"/password\", \"/credentials/password\", \"/users/0/password\" (`~1` for a '/' and `~0` for a '~' inside a name), or \"\" for the whole body".into(),
            BadFill { .. } => format!("write fills = {{ \"/json/pointer\" = \"name\" }} on a kind = \"mutate\" rule, the name one of {}", crate::config::route::Fill::NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")),
            ConflictsForbidden { .. } => "remove `conflicts`, or make this a kind = \"mutate\" rule".into(),
            BadConflictKey { .. } => "write each key as text naming what the request touches, with {param} for one of this rule's path segments: conflicts = [\"wall {id}\"] (leave `conflicts` out and the rule's requests are applied alone, one at a time)".into(),
            SecretFieldsForbidden { .. } => "remove `secret_fields`, or make this a kind = \"mutate\" rule (only mutation bodies are stored, in the journal)".into(),
            IdParamNotInPath { .. } => "name a {param} segment of this rule's path, e.g. path = \"/api/v1/walls/{id}\" with path_ids = { id = \"walls\" }".into(),
            CreateNeedsTable { .. } => "add `table = \"...\"`: the table of the rows' \"id\", so the rows a rebuild creates are mapped".into(),
            BadIdTable { .. } => "write the table as a name of letters, digits and '_', not starting with a digit, e.g. \"walls\" or \"scene_items\" (an ID is translated within its table)".into(),
            BadIdPointer { .. } => "write the place as a JSON pointer (RFC 6901) in which a `*` segment is every element of an array: \"/id\", \"/screens/*/id\", \"/*/id\" for each row of a listing (`~1` for a '/' and `~0` for a '~' inside a name)".into(),
            WholeBodyIdPlace { .. } => "name the field that holds the ID, e.g. \"/id\", or \"/*/id\" for each row of a listing".into(),
            IdKeyForbidden { key, .. } => format!("remove `{key}`, or make this a kind = \"read\" or \"mutate\" rule"),
            IdKeyNeedsMutate { key, .. } => format!("remove `{key}`, or make this a kind = \"mutate\" rule"),
            CreatesWithoutBlock { .. } => "set `id_block` to the most rows the request can create (at least 1), or remove `creates` if it creates none".into(),
            EmptyCreates => "list where the answer shows each row the request creates, in the order the chassis creates them, e.g. creates = [{ table = \"walls\", at = \"/id\" }], or remove `creates`".into(),
            IdPlaceTwice { .. } => "name each place once: the ID of a created row (`creates`) is translated in the answer already, so it is not repeated in `answer_ids`".into(),
            ForgetsNotAnIdParam { .. } => "name the path parameter that holds the deleted row's ID, and give its table in `path_ids`, e.g. path_ids = { id = \"walls\" } with forgets = \"id\"".into(),
            EmptyEventType => "write the event's type as the chassis sends it, e.g. type = \"window.created\"".into(),
            DuplicateEvent { .. } => "write one `[[event]]` per type: merge the two `ids`".into(),
            EmptyEventIds { .. } => "name the places in the event's `data` that hold IDs, e.g. ids = { \"/id\" = \"windows\" }, or remove this `[[event]]` (events no rule names pass as they are)".into(),
            NoLoginRoute => "add a rule for the chassis' login call, e.g. [[route]] method = \"POST\", path = \"/api/v1/login\", kind = \"login\"; without it logins would be forwarded as plain mutations and no session would be shared".into(),
            BadFile { .. } => bad_file_fix("FILE"),
            EnvUnset { name } => format!("export {name}=… in the gateway's environment, or use `password_file` instead"),
        }
    }
}
