//! Shared code for the benchmarks in bench/ (and the root package's library
//! target, which the end-to-end tests in tests/ belong to).
//!
//! It holds the fault campaign of issue 4: a harness that runs two real
//! `chassis-sim` processes behind [`fault_proxy::FaultProxy`]s and the real
//! `pairgate` gateway in front of them ([`site::Site`]), a seeded workload
//! ([`workload`]), a seeded fault scheduler ([`faults`]) and the checks of
//! docs/design.md's guarantees ([`checks`]). `tests/chaos.rs` runs it briefly under
//! `cargo test`; the `chaos` binary (`chaos_main.rs`) runs it for minutes.
//!
//! It lives under tests/ but is a library, not a test: cargo does not
//! auto-discover `tests/support/` as a test target (only files directly in
//! tests/ and `tests/*/main.rs` are), so nothing here runs twice.

pub mod bins;
pub mod bulk;
pub mod certs;
pub mod chaos;
pub mod chassis_proc;
pub mod checks;
pub mod choice;
pub mod clock;
pub mod fault_proxy;
pub mod faults;
pub mod gateway_config;
pub mod gateway_proc;
pub mod history;
pub mod http;
pub mod linearizable;
pub mod model;
pub mod read_your_writes;
pub mod site;
pub mod workload;
