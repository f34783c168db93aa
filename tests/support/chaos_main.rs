//! `chaos`: the long fault campaign of issue 4.
//!
//! ```sh
//! cargo build --release --workspace
//! cargo run --release --bin chaos -- --minutes 10 --seed 42
//! cargo run --release --bin chaos -- --minutes 10 --seed 42 --legacy
//! ```
//! Runs two `chassis-sim` processes and `pairgate` (found next to this
//! executable) under a seeded workload and fault schedule, then checks
//! docs/design.md's guarantees. Prints one line per check, the fault schedule if
//! anything failed, and a summary as its last line. Exit status: 0 all
//! checks passed, 1 a check failed, 2 the campaign could not run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pairgate_suite::bins::Bins;
use pairgate_suite::chaos::{self, Options};

#[derive(Parser, Debug)]
#[command(name = "chaos", about = "Fault campaign against pairgate and two reference chassis (see issue 4)")]
struct Args {
    /// Minutes of faults and traffic.
    #[arg(long, default_value_t = 1)]
    minutes: u64,
    /// Seconds instead of minutes (for replaying a short campaign's seed).
    #[arg(long)]
    seconds: Option<u64>,
    /// The seed of the workload and the fault schedule (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Concurrent clients (the last is an operator, the others admins).
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Upper bound of each client's pause between operations, in ms.
    #[arg(long, default_value_t = 10)]
    think_ms: u64,
    /// RUST_LOG for the gateway's log file.
    #[arg(long, default_value = "pairgate=debug")]
    log: String,
    /// Where the processes' logs go (default: test-artifacts/chaos/seed-S).
    #[arg(long)]
    logs: Option<PathBuf>,
    /// Print each fault as it happens.
    #[arg(long)]
    verbose: bool,
    /// Run both simulators like older firmware lacking FEATURE (repeatable:
    /// `--without idempotency_key`; see `chassis-sim --help`).
    #[arg(long = "without", value_name = "FEATURE")]
    without: Vec<String>,
    /// Run both simulators as legacy firmware: every extra off (`id_block`,
    /// `idempotency_key`, `digest`, `export_import`) and MySQL 5.7's
    /// auto-increment habits, so the gateway translates IDs and rebuilds
    /// through the ordinary API.
    #[arg(long)]
    legacy: bool,
    /// Bulk rows (IP sources) loaded into both chassis before the gateway
    /// starts, so that each full resync moves real data.
    #[arg(long, default_value_t = pairgate_suite::chaos::DEFAULT_BULK_ROWS)]
    rows: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let build = if cfg!(debug_assertions) { "cargo build --workspace" } else { "cargo build --release --workspace" };
    let bins = match Bins::beside_current_exe(build) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("chaos: {e}");
            return ExitCode::from(2);
        }
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64 % 1_000_000).unwrap_or(1)
    });
    let duration = Duration::from_secs(args.seconds.unwrap_or(args.minutes.saturating_mul(60)).max(1));
    let mut opts = Options::new(seed, duration, bins);
    opts.clients = args.clients.clamp(1, 16);
    opts.think_max = Duration::from_millis(args.think_ms);
    opts.log_filter = args.log;
    opts.verbose = args.verbose;
    opts.bulk_rows = args.rows;
    if args.legacy {
        opts.sim_args = pairgate_suite::chassis_proc::LEGACY.iter().map(|a| a.to_string()).collect();
        opts.recovery_limit = pairgate_suite::chaos::REBUILD_THROUGH_API_RECOVERY_LIMIT;
    }
    opts.sim_args.extend(args.without.iter().flat_map(|f| ["--without".to_string(), f.clone()]));
    if let Some(l) = args.logs {
        opts.logs = l;
    }
    println!(
        "chaos: seed {seed}, {duration:?} of faults and traffic, {} clients, {} bulk rows, chassis-sim {}, logs in {}",
        opts.clients,
        opts.bulk_rows,
        if opts.sim_args.is_empty() { "with every extra".to_string() } else { opts.sim_args.join(" ") },
        opts.logs.display()
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chaos: tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(chaos::run(&opts)) {
        Ok(report) => {
            println!("{}", report.render());
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("chaos: the campaign could not run: {e}");
            println!("chaos summary: ERROR seed={seed} {e}");
            ExitCode::from(2)
        }
    }
}
