//! pairgate: an HTTPS redundancy gateway that makes two display-control chassis act
//! as one (see `DESIGN.md` in the shared docs).
//!
//! So far the library holds the configuration and the demo launcher. The configuration is the typed, validated form of
//! `gateway.toml` that every later part of the gateway (front, sequencer, journal,
//! appliers, session broker) reads its settings from.

pub mod config;
pub mod demo;

pub use config::{Classified, Config, ConfigError, FileChecks, RouteKind};
