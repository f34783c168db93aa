//! The one harness of the end-to-end tests in tests/, the fault campaign and
//! the benchmarks in bench/: the root package's library target.
//!
//! Its building blocks run the real binaries as separate processes on
//! 127.0.0.1, each stopped by its PID when its handle is dropped (also on
//! panic), every wait bounded in count and time: where the binaries are
//! ([`bins`]), certificates ([`certs`]), a `chassis-sim` process
//! ([`chassis_proc::SimProcess`]), a `gateway.toml` ([`gateway_config`]), the
//! `pairgate` process ([`gateway_proc::GatewayProcess`]), and HTTP ([`http`]:
//! one request, one TLS trust).
//!
//! On them, two ways of using a pair. The end-to-end tests' [`pair::Pair`]
//! (two HTTPS chassis and a gateway in front) and [`api::Api`] client panic
//! at the first failure. The fault campaign of issue 4 records failures
//! instead: a harness that runs both chassis behind
//! [`fault_proxy::FaultProxy`]s and the gateway in front of them
//! ([`site::Site`]), a seeded workload ([`workload`]), a seeded fault
//! scheduler ([`faults`]) and the checks of docs/design.md's guarantees
//! ([`checks`]). `tests/chaos.rs` runs it briefly under `cargo test`; the
//! `chaos` binary (`chaos_main.rs`) runs it for minutes.
//!
//! For the benchmarks: an open-loop load generator at a fixed rate with
//! coordinated-omission-corrected latencies ([`loadgen`]), and Debian's
//! nginx as the reverse-proxy and mirror baseline ([`nginx::Nginx`]).
//!
//! It lives under tests/ but is a library, not a test: cargo does not
//! auto-discover `tests/support/` as a test target (only files directly in
//! tests/ and `tests/*/main.rs` are), so nothing here runs twice.

pub mod api;
pub mod bins;
pub mod browser;
pub mod bulk;
pub mod certs;
pub mod chaos;
pub mod chassis_proc;
pub mod checks;
pub mod choice;
pub mod client_ids;
pub mod clock;
pub mod fault_proxy;
pub mod faults;
pub mod gateway_config;
pub mod gateway_proc;
pub mod history;
pub mod http;
pub mod linearizable;
pub mod loadgen;
pub mod model;
pub mod nginx;
pub mod ops;
pub mod pair;
pub mod process;
pub mod read_your_writes;
pub mod site;
pub mod workload;
