//! Recovery: making the two chassis one and keeping them so — verify and
//! full resync ([`resync`]), the flag that asks for one ([`resync_request`]).
//!
//! A namespace only: each file is its own module (tests/layout.rs checks
//! them one by one for cycles).

pub mod anti_entropy;
pub mod discovery;
pub mod listing;
pub mod pairing;
pub mod rebuild;
pub mod resync;
pub mod resync_request;
pub mod service;
