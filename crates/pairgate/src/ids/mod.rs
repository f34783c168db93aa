//! ID translation, for a chassis whose firmware cannot be given the IDs
//! clients see (no `X-Id-Block`): where IDs live in requests, answers and
//! events ([`rules`], from `gateway.toml`), how such a place is addressed
//! ([`pointer`]), each chassis' durable map client ID ↔ its own ID
//! ([`map`]), and the rewriting itself ([`translate`], pure functions).
//!
//! A namespace only: each file is its own module (tests/layout.rs checks
//! them one by one for cycles).

pub mod map;
pub mod pointer;
pub mod rules;
pub mod translate;
pub mod translator;
