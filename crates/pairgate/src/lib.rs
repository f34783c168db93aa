//! pairgate: an HTTPS redundancy gateway that makes two display-control chassis act
//! as one (see `docs/design.md`).
//!
//! The library holds the whole gateway, `init` and the demo launcher. The configuration is the typed, validated form of
//! `gateway.toml` that every later part of the gateway (front, sequencer, journal,
//! appliers, session broker) reads its settings from.

pub mod admin;
pub mod adminctl;
pub mod answers;
pub mod cascade;
pub mod certs;
pub mod chassis;
pub mod coalesce;
pub mod config;
pub mod demo;
pub mod demo_cascade;
pub mod demo_room;
pub mod error;
pub mod events;
pub mod files;
pub mod front;
pub mod gateway;
pub mod ids;
pub mod init;
pub mod journal;
pub mod limits;
pub mod metrics;
pub mod path;
pub mod proxy;
pub mod recovery;
pub mod reload;
pub mod seal;
pub mod serve;
pub mod session;
pub mod state_dir;
pub mod stats;
pub mod status;
pub mod tasks;
pub mod timeline;
pub mod upkeep;
pub mod verdict;

pub use config::{Classified, Config, ConfigError, FileChecks, RouteKind};
