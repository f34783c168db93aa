//! The chassis side: both chassis and which is primary ([`pair`]), each one's
//! HTTPS client ([`upstream`]), health probes ([`health`]) and state machine
//! ([`detector`]), and the applier that sends it the journal in seq order
//! ([`applier`], with [`attempts`]: who is sending what, and [`conflicts`]:
//! which entries may be on their way together).
//!
//! A namespace only: each file is its own module (tests/layout.rs checks
//! them one by one for cycles).

pub mod applier;
pub mod attempts;
pub mod conflicts;
pub mod detector;
pub mod features;
pub mod health;
pub mod pair;
pub mod upstream;
