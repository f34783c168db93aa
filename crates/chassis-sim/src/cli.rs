//! The `chassis-sim` command line, as a library function so that other
//! binaries (the `pairgate demo` launcher) can run a chassis process too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::ids::AutoIncrement;
use crate::{ChassisConfig, Features, Listen};

#[derive(clap::Parser, Debug, Clone)]
#[command(name = "chassis-sim", version, about = "A reference display-control chassis (its API: docs/chassis-api.md)")]
pub struct Args {
    /// Address to listen on, e.g. 127.0.0.1:8444.
    #[arg(long)]
    listen: SocketAddr,
    /// Folder for the state database (created if missing).
    #[arg(long, required_unless_present = "ephemeral")]
    state: Option<PathBuf>,
    /// Keep the state in memory only.
    #[arg(long)]
    ephemeral: bool,
    /// Serve HTTPS with this certificate chain (PEM)...
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// ...and this private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The chassis' serial number.
    #[arg(long, default_value = "SIM-0001")]
    serial: String,
    /// Number of input ports (physical sources 1..N), fixed at first start.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    inputs: u32,
    /// Number of output ports, fixed at first start.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    outputs: u32,
    /// Enable the /_sim fault hooks (admin only). Never on a real deployment.
    #[arg(long)]
    sim_hooks: bool,
    /// Behave like older firmware lacking a feature: id_block,
    /// idempotency_key, export_import, origin_seq or digest. Repeatable.
    #[arg(long = "without", value_name = "FEATURE")]
    without: Vec<String>,
    /// How the tables' own auto-increment counters behave (ids the chassis
    /// assigns itself; an X-Id-Block create takes its block's ids either way).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = AutoIncrement::Exact)]
    auto_increment: AutoIncrement,
    /// Idle minutes before a session expires.
    #[arg(long, default_value_t = 30)]
    session_idle_min: u64,
    /// Largest request body in bytes (imports excepted).
    #[arg(long, default_value_t = 1 << 20)]
    max_body: usize,
    /// Largest import document in bytes (`PUT /system/import`).
    #[arg(long, default_value_t = 256 << 20)]
    max_import: usize,
    /// The URL other systems reach this chassis at (cascade); defaults to the listen address.
    #[arg(long)]
    public_url: Option<String>,
    /// Trust anchor (PEM) for HTTPS calls to a superior or subordinate.
    #[arg(long)]
    peer_ca: Option<PathBuf>,
}

fn features(without: &[String]) -> Result<Features, String> {
    let mut f = Features::default();
    for name in without {
        f.switch_off(name)?;
    }
    Ok(f)
}

/// The chassis options the command line asks for (an unknown `--without`
/// name is an error naming the known ones).
pub fn config(args: &Args) -> Result<ChassisConfig, String> {
    Ok(ChassisConfig {
        serial: args.serial.clone(),
        inputs: args.inputs,
        outputs: args.outputs,
        state_dir: if args.ephemeral { None } else { args.state.clone() },
        hooks: args.sim_hooks,
        features: features(&args.without)?,
        auto_increment: args.auto_increment,
        session_idle: Duration::from_secs(args.session_idle_min.max(1) * 60),
        public_url: args.public_url.clone().unwrap_or_default(),
        max_body: args.max_body,
        max_import: args.max_import,
        peer_ca: args.peer_ca.clone(),
    })
}

/// Run one chassis until Ctrl-C, SIGTERM or a simulated power-off.
pub async fn run(args: Args) -> ExitCode {
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chassis-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let tls = args.tls_cert.clone().zip(args.tls_key.clone());
    let tls_on = tls.is_some();
    let server = match crate::start(cfg, Listen { addr: args.listen, tls }).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chassis-sim: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(serial = %args.serial, url = %server.base_url(tls_on), hooks = args.sim_hooks, "chassis serving");
    // One machine-readable line on stdout, so a caller that asked for port 0
    // learns the port the kernel gave (no race for a "free" port).
    println!("listening on {}", server.addr);
    {
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    let terminate = async {
        #[cfg(unix)]
        {
            if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                s.recv().await;
                return;
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
        _ = terminate => tracing::info!("terminated: shutting down"),
        _ = server.powered_off() => {
            // A powered-off box answers nothing; the process ends like the box would.
            tracing::warn!("powered off");
            std::process::exit(0);
        }
    }
    // Every committed change is already in the state database (each request
    // commits before it is answered), so stopping is just closing the door.
    server.shutdown().await;
    ExitCode::SUCCESS
}
