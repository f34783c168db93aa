//! `gateway.toml`: the typed, validated configuration of the gateway.
//!
//! Loading is strict on purpose. A redundancy gateway that starts with a typo in
//! its configuration (a misspelled timeout silently defaulted, a mutating route
//! silently treated as a read) breaks exactly the guarantees it exists for, and
//! usually only on the day a chassis fails. So:
//! - every key is known (`deny_unknown_fields`), every value checked;
//! - every error says `FILE:LINE:COL: what is wrong` and `fix: what to write`;
//! - secrets are never inline: passwords, tokens and signing keys come from files
//!   (or, for chassis passwords, environment variables), never from this file,
//!   which is meant to be committed;
//! - files the configuration names are checked too, unless the caller asks not to
//!   ([`FileChecks::Skip`]).
//!
//! The schema, with every default, is documented on the section types in
//! [`sections`] and by example in the repository's `gateway.toml`. Route rules and
//! how a request is classified are documented in [`route`].

mod chassis_url;
mod error;
mod external;
mod raw;
pub mod route;
pub mod sections;
mod source_map;
mod validate;

use std::path::{Path, PathBuf};

pub use chassis_url::{ChassisUrl, Scheme};

/// The configuration that runs now: what `gateway.toml` said at start, or at
/// the last reload (`src/reload.rs`). A request takes one `load_full()` and
/// keeps it for its whole life.
pub type LiveConfig = std::sync::Arc<arc_swap::ArcSwap<Config>>;
pub use error::{ConfigError, Location, Problem};
pub use external::FileChecks;
pub use route::{Classified, Fill, PathPattern, RouteKind, RouteRule, RouteTable, RuleMethod, Segment};
pub use sections::{
    Cascade, Chassis, Collection, Each, Journal, Listen, Reads, Rebuild, SecretSource, Sessions, Stage, State, Timeouts, Transport,
};

use raw::RawConfig;
use source_map::SourceMap;

/// The whole gateway configuration, validated. Holds no secrets, only where to find
/// them, so it may be printed and logged.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from (as given, for messages).
    pub file: PathBuf,
    /// `[listen]`.
    pub listen: Listen,
    /// `admin_token_file`: the bearer token for `/_pairgate/status` and other admin
    /// endpoints of the gateway itself.
    pub admin_token_file: PathBuf,
    /// `[state]`.
    pub state: State,
    /// The two `[[chassis]]`, in file order.
    pub chassis: [Chassis; 2],
    /// `[timeouts]` (optional section; all keys have defaults).
    pub timeouts: Timeouts,
    /// `[journal]` (optional section; all keys have defaults).
    pub journal: Journal,
    /// `[reads]` (optional section; all keys have defaults).
    pub reads: Reads,
    /// `[sessions]`.
    pub sessions: Sessions,
    /// The `[[route]]` rules and `default_mutate_id_block`.
    pub routes: RouteTable,
    /// The `[[collection]]`s, in file order.
    pub collections: Vec<Collection>,
    /// The `[[event]]` rules, in file order: where the `data` of events of one
    /// type holds IDs, for a chassis whose IDs the gateway translates.
    pub events: Vec<crate::ids::rules::EventIds>,
    /// `[cascade]` (optional): the pair in a cascade.
    pub cascade: Option<Cascade>,
    /// Whether the named files and environment variables were checked.
    pub file_checks: FileChecks,
}

impl Config {
    /// Reads and validates a configuration file. Relative paths inside it are
    /// resolved against the file's directory.
    pub fn load(path: &Path, checks: FileChecks) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::parse(&text, path, checks)
    }

    /// Validates configuration text. `origin` names it in errors, and its directory
    /// is the base for relative paths.
    pub fn parse(text: &str, origin: &Path, checks: FileChecks) -> Result<Config, ConfigError> {
        let map = SourceMap::new(origin, text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Toml {
            at: map.location(e.span().map_or(0, |s| s.start)),
            message: ConfigError::toml_message(e.message()),
            fix: ConfigError::toml_fix(e.message()),
        })?;
        let base_dir = origin.parent().unwrap_or(Path::new(""));
        let (config, pending) = validate::validate(raw, &map, base_dir, checks)?;
        if checks == FileChecks::Check {
            for p in pending {
                p.target.check().map_err(|problem| ConfigError::Invalid { at: map.location(p.span.start), problem })?;
            }
        }
        Ok(config)
    }

    /// [`Config::parse`] without looking at any file or environment variable the
    /// configuration names: for tests and for checking a configuration away from
    /// the machine it is for.
    pub fn from_str_unchecked_files(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        Config::parse(text, origin, FileChecks::Skip)
    }

    /// What to do with a request: see [`route`] for the rules.
    pub fn classify(&self, method: &str, path: &str) -> Classified {
        self.routes.classify(method, path)
    }

    /// The rule a classification came from (None for the defaults).
    pub fn rule(&self, c: &Classified) -> Option<&route::RouteRule> {
        self.routes.rule(c)
    }

    /// The chassis marked `preferred_primary = true`, if any.
    pub fn preferred_primary(&self) -> Option<&Chassis> {
        self.chassis.iter().find(|c| c.preferred_primary)
    }
}
