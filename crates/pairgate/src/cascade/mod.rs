//! Cascade: the pair as one system to a superior above it (the egress, and
//! the matching of both chassis' upward calls). The pair as a superior needs
//! nothing of its own: subordinates register through the front like any
//! mutation, and the calls both chassis make down to a subordinate carry the
//! same `Idempotency-Key`, so the subordinate applies them once.

pub mod egress;
pub mod upward;

pub use egress::Egress;
