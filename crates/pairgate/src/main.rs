//! The `pairgate` command.
//!
//! `pairgate --config FILE` runs the gateway; `check-config` validates a
//! configuration; `init` makes the certificates, secrets and state directory a
//! configuration names; `certs init` makes a local CA and the certificates it
//! signs, `certs show` lists the certificates a configuration uses and trusts
//! and when each expires; `resync`, `primary` and `maintenance` are the admin
//! actions of a running gateway; `demo` runs a whole pair on one machine, and
//! `chassis` one reference chassis.
//!
//! Exit codes: 0 success (a valid configuration, a clean shutdown); 2 the
//! configuration (or the command line) is wrong, with the located error on
//! stderr; 1 the gateway failed to start or stopped on an error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pairgate::config::{Config, FileChecks, Transport};

/// mimalloc instead of glibc's malloc: a proxied read allocates and frees
/// dozens of small buffers (headers, TLS records, futures), and glibc's
/// malloc/free/consolidate were ~11 % of the gateway's CPU on the read path
/// (`perf record` under `wrk`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "pairgate",
    version,
    about = "An HTTPS redundancy gateway that makes two display-control chassis act as one",
    args_conflicts_with_subcommands = true,
    arg_required_else_help = true
)]
struct Cli {
    /// Run the gateway with this configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// How the gateway's log lines (stderr) are written: `text` for a person,
    /// `json` (one object per line, the request's span fields included) for a
    /// log collector.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a configuration file and print a short summary of it.
    CheckConfig {
        /// The configuration file, e.g. gateway.toml.
        file: PathBuf,
        /// Do not look at the files and environment variables the configuration
        /// names (certificates, secrets): check only the file itself.
        #[arg(long)]
        no_file_checks: bool,
    },
    /// Make the certificates, secrets and state directory a configuration
    /// names that are missing, and print the next steps.
    ///
    /// The gateway's certificate and key, a certificate and key for each
    /// reference chassis on this machine (beside its `ca_cert`, as `<name>.key`),
    /// the admin token, the JWT key and the chassis passwords (random, 0600), and
    /// the state directory (0700). Existing files are kept; secrets are never
    /// printed. Then it prints how to start the chassis, give them the gateway's
    /// account and run the gateway.
    Init {
        /// The configuration file.
        #[arg(long, default_value = "gateway.toml")]
        config: PathBuf,
        /// Then give each chassis the gateway's account (`username` and its
        /// password), logged in as the chassis' first-start admin/admin: the
        /// chassis must be running.
        #[arg(long)]
        provision: bool,
    },
    /// Certificates: make a local CA and the certificates it signs (`init`),
    /// or list the ones a configuration uses and trusts and when each expires
    /// (`show`).
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Run a redundant pair on one machine: two reference chassis and the
    /// gateway in front of them, with certificates and secrets generated on
    /// first run.
    Demo {
        /// The gateway's port; the chassis take the next two.
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Where certificates, secrets and all state live (kept across runs).
        #[arg(long, default_value = "demo-state")]
        state: PathBuf,
        /// Two levels of a cascade instead: the upper pair's gateway on the
        /// port, its chassis on the next two; the lower pair's gateway on
        /// port+3, its chassis on port+4 and port+5; the lower pair registered
        /// at the upper one.
        #[arg(long)]
        cascade: bool,
        /// How log lines are written (see the gateway's `--log-format`).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Rebuild a chassis from the other one (export, import, replay, verify),
    /// with a progress bar until it is back in sync.
    Resync {
        /// The chassis to rebuild (its `name` in gateway.toml).
        chassis: String,
        /// The running gateway's configuration (its address, certificate and
        /// admin token).
        #[arg(long, default_value = "gateway.toml")]
        config: PathBuf,
        /// Give up (exit 1) if it is not back in sync within this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_s: u64,
    },
    /// Make the running gateway read its configuration file and certificates
    /// again (what SIGHUP does): route rules, per-try and grace timeouts, body
    /// limit, metrics access and certificates change without dropping a
    /// connection or a session. A file that does not pass `check-config`, or
    /// that changes what only a restart can, is refused and nothing changes.
    Reload {
        /// The running gateway's configuration (its address, certificate and
        /// admin token), the file it reloads.
        #[arg(long, default_value = "gateway.toml")]
        config: PathBuf,
    },
    /// Make an in-sync chassis the primary.
    Primary {
        /// The chassis (its `name` in gateway.toml).
        chassis: String,
        /// The running gateway's configuration (its address, certificate and
        /// admin token).
        #[arg(long, default_value = "gateway.toml")]
        config: PathBuf,
    },
    /// Take a chassis out for maintenance (`on`) or bring it back (`off`).
    Maintenance {
        /// The chassis (its `name` in gateway.toml).
        chassis: String,
        #[arg(value_parser = ["on", "off"])]
        mode: String,
        /// The running gateway's configuration (its address, certificate and
        /// admin token).
        #[arg(long, default_value = "gateway.toml")]
        config: PathBuf,
    },
    /// Run one reference chassis (the `chassis-sim` program and its options).
    ///
    /// What `demo` starts as its children, and what `init` prints for the
    /// chassis of a configuration.
    Chassis(Box<chassis_sim::cli::Args>),
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Make a local CA (`DIR/ca.pem`, `ca.key`), the gateway's certificate
    /// signed by it for the `--san` names (`DIR/gateway.pem`, `.key`) and one
    /// per chassis (`DIR/chassis-NAME.pem`, `.key`), each valid one year, and
    /// print the gateway.toml lines that use them. Nothing is replaced: if any
    /// of the files exists, nothing is written. Keys are 0600, never printed.
    Init {
        /// Where the files go (made 0700 if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// A name the gateway's certificate is for: a DNS name or an IP
        /// address (one per --san; at least one).
        #[arg(long = "san", value_name = "NAME", required = true)]
        sans: Vec<String>,
        /// A chassis to make a certificate for: `NAME` (for localhost and
        /// 127.0.0.1) or `NAME=SAN,SAN…`; default: chassis `a` and `b`.
        #[arg(long = "chassis", value_name = "NAME[=SAN,SAN…]")]
        chassis: Vec<String>,
    },
    /// List every certificate the configuration uses or trusts (the gateway's
    /// tls_cert, each chassis' ca_cert, the superior's ca_cert), every one in
    /// each file: subject, names, SHA-256 fingerprint, expiry, and a WARNING
    /// for each that expires within 30 days. Exits 0 whenever the
    /// configuration loads (warnings and unreadable files are printed, not an
    /// exit code); 2 if it does not.
    Show {
        /// The configuration file.
        #[arg(long, default_value = "gateway.toml")]
        config: PathBuf,
    },
}

const EXIT_CONFIG_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match (cli.command, cli.config) {
        (Some(Command::CheckConfig { file, no_file_checks }), _) => {
            let checks = if no_file_checks { FileChecks::Skip } else { FileChecks::Check };
            match load(&file, checks) {
                Some(config) => {
                    print_summary(&config);
                    ExitCode::SUCCESS
                }
                None => ExitCode::from(EXIT_CONFIG_ERROR),
            }
        }
        (Some(Command::Init { config, provision }), _) => init(&config, provision),
        (Some(Command::Certs { command: CertsCommand::Init { dir, sans, chassis } }), _) => certs_init(&dir, &sans, &chassis),
        (Some(Command::Certs { command: CertsCommand::Show { config } }), _) => {
            // The files are the point: a missing one is listed, not a load error.
            let Some(cfg) = load(&config, FileChecks::Skip) else { return ExitCode::from(EXIT_CONFIG_ERROR) };
            println!("pairgate certs show: {}", cfg.file.display());
            println!();
            print!("{}", pairgate::certs::show(&pairgate::certs::inventory(&cfg)));
            ExitCode::SUCCESS
        }
        (Some(Command::Demo { port, state, cascade, log_format }), _) => runtime().map_or(ExitCode::FAILURE, |rt| {
            // The demo's terminal shows its own status line; its access log is
            // there for whoever asks (RUST_LOG=pairgate=info).
            init_logs_with(log_format, "pairgate=info,pairgate::access=warn,chassis_sim=info");
            let run = async {
                if cascade {
                    pairgate::demo_cascade::run(port, &state).await
                } else {
                    pairgate::demo::run(port, &state).await
                }
            };
            rt.block_on(run).unwrap_or_else(|e| {
                eprintln!("pairgate demo: {e}");
                ExitCode::FAILURE
            })
        }),
        (Some(Command::Resync { chassis, config, timeout_s }), _) => {
            admin(&config, |cfg| async move { pairgate::adminctl::resync(&cfg, &chassis, std::time::Duration::from_secs(timeout_s)).await })
        }
        (Some(Command::Reload { config }), _) => {
            // Checked here first, with the message check-config gives: a file
            // the gateway would refuse is not sent for.
            if load(&config, FileChecks::Check).is_none() {
                eprintln!("pairgate reload: not reloaded; the gateway keeps the configuration it runs");
                return ExitCode::from(EXIT_CONFIG_ERROR);
            }
            admin(&config, |cfg| async move {
                let ctl = pairgate::adminctl::Ctl::new(&cfg)?;
                let answer = ctl.post("/_pairgate/reload", serde_json::Value::Null).await.map_err(|e| match e {
                    // The CLI trusts the certificate the file names; after the
                    // files were replaced the gateway still serves the old one.
                    pairgate::adminctl::CtlError::Unreachable(at, why) => pairgate::adminctl::CtlError::Unreachable(
                        at,
                        format!(
                            "{why}\n  if the gateway's certificate files were replaced, the running gateway still serves the old \
                             certificate, which this command no longer trusts: reload with SIGHUP instead \
                             (`systemctl reload pairgate`, or `kill -HUP` the gateway's PID)"
                        ),
                    ),
                    other => other,
                })?;
                let changed: Vec<&str> =
                    answer["reloaded"]["changed"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
                println!("reloaded {}: {}", cfg.file.display(), changed.join(", "));
                Ok(())
            })
        }
        (Some(Command::Primary { chassis, config }), _) => admin(&config, |cfg| async move {
            let ctl = pairgate::adminctl::Ctl::new(&cfg)?;
            ctl.post(&format!("/_pairgate/primary/{chassis}"), serde_json::Value::Null).await?;
            println!("primary: {chassis}");
            Ok(())
        }),
        (Some(Command::Maintenance { chassis, mode, config }), _) => admin(&config, |cfg| async move {
            let ctl = pairgate::adminctl::Ctl::new(&cfg)?;
            let on = mode == "on";
            ctl.post(&format!("/_pairgate/maintenance/{chassis}"), serde_json::json!({ "on": on })).await?;
            println!("chassis {chassis}: maintenance {mode}");
            Ok(())
        }),
        (Some(Command::Chassis(args)), _) => {
            init_logs(LogFormat::Text);
            if let Some(parent) = std::env::var(pairgate::demo::DIE_WITH_PARENT).ok().and_then(|p| p.parse::<i32>().ok()) {
                die_with_parent(parent);
            }
            runtime().map_or(ExitCode::FAILURE, |rt| rt.block_on(chassis_sim::cli::run(*args)))
        }
        (None, Some(file)) => match load(&file, FileChecks::Check) {
            Some(config) => {
                init_logs(cli.log_format);
                runtime().map_or(ExitCode::FAILURE, |rt| rt.block_on(serve(config)))
            }
            None => ExitCode::from(EXIT_CONFIG_ERROR),
        },
        // `arg_required_else_help` makes clap print the help for an empty command
        // line; this is reached only if that ever changes.
        (None, None) => {
            eprintln!("pairgate: give --config FILE or a subcommand (see --help)");
            ExitCode::from(EXIT_CONFIG_ERROR)
        }
    }
}

/// `pairgate init`: make what the configuration names and is missing, say what
/// was made and kept, optionally provision the chassis, then show that the
/// configuration passes its file checks and print the next steps.
fn init(file: &Path, provision: bool) -> ExitCode {
    use pairgate::init;
    let Some(config) = load(file, FileChecks::Skip) else { return ExitCode::from(EXIT_CONFIG_ERROR) };
    println!("pairgate init: {}", file.display());
    let items = init::make_missing(&config);
    print!("{}", init::report(&items));
    if !init::all_there(&items) {
        eprintln!("pairgate init: some files could not be made (CANNOT above); the configuration fails its checks until they exist");
        return ExitCode::FAILURE;
    }
    // The proof that nothing is missing: the checks `check-config` and `--config` run.
    if let Err(e) = Config::load(file, FileChecks::Check) {
        eprintln!("pairgate init: the configuration still fails its checks:\n{e}");
        return ExitCode::FAILURE;
    }
    println!("  the configuration passes its checks (pairgate check-config)");
    let provisioned = provision && {
        let Some(rt) = runtime() else { return ExitCode::FAILURE };
        println!();
        println!("The gateway's account on each chassis:");
        let (text, good) = rt.block_on(init::provision(&config));
        print!("{text}");
        good
    };
    println!();
    print!("{}", init::next_steps(&config, &invoked_as(), provisioned));
    if provision && !provisioned {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `pairgate certs init`: check the command line, make everything or nothing,
/// say what was made and how gateway.toml uses it.
fn certs_init(dir: &Path, sans: &[String], chassis: &[String]) -> ExitCode {
    use pairgate::certs;
    let made = certs::InitPlan::new(dir, sans, chassis).and_then(|plan| certs::init(&plan).map(|made| (plan, made)));
    match made {
        Ok((plan, made)) => {
            let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            print!("{}", certs::init_report(&plan, &abs, &made));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pairgate certs init: {e}");
            ExitCode::from(EXIT_CONFIG_ERROR)
        }
    }
}

/// This program as the user invoked it, for the commands `init` prints: the
/// name alone when it was found on PATH, else its path (relative to the current
/// directory when it is under it).
fn invoked_as() -> String {
    let Some(arg0) = std::env::args_os().next().map(PathBuf::from) else { return "pairgate".to_string() };
    if arg0.components().count() <= 1 {
        return pairgate::init::shell_word(&arg0.display().to_string());
    }
    let shown = match std::env::current_dir() {
        Ok(cwd) if arg0.is_absolute() => match arg0.strip_prefix(&cwd) {
            Ok(rel) => Path::new(".").join(rel),
            Err(_) => arg0,
        },
        _ => arg0,
    };
    pairgate::init::shell_word(&shown.display().to_string())
}

/// Run an admin command against the gateway that `config` describes.
fn admin<F, Fut>(config: &Path, run: F) -> ExitCode
where
    F: FnOnce(pairgate::Config) -> Fut,
    Fut: std::future::Future<Output = Result<(), pairgate::adminctl::CtlError>>,
{
    let Some(cfg) = load(config, FileChecks::Skip) else { return ExitCode::from(EXIT_CONFIG_ERROR) };
    let Some(rt) = runtime() else { return ExitCode::FAILURE };
    match rt.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pairgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A demo's chassis child: stopped by the kernel when the demo dies, even by
/// `kill -9`, so no chassis outlives the demo that started it.
fn die_with_parent(parent: i32) {
    if let Err(e) = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM)) {
        eprintln!("pairgate chassis: cannot ask to be stopped with the demo: {e}");
    }
    // The demo may have died before the request above took effect.
    if rustix::process::getppid().map(rustix::process::Pid::as_raw_nonzero).map(i32::from) != Some(parent) {
        std::process::exit(1);
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: info for the gateway and
/// the simulator; `pairgate::access=off` turns the access log off).
fn init_logs(format: LogFormat) {
    init_logs_with(format, "pairgate=info,chassis_sim=info");
}

/// [`init_logs`] with another filter when `RUST_LOG` is not set.
fn init_logs_with(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        // Flattened: a line's own fields at the top, its spans' (the request id, the seq) in `spans`.
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(true).with_span_list(true).init(),
    }
}

/// Run the gateway until SIGTERM or Ctrl-C, then shut down gracefully.
async fn serve(config: pairgate::Config) -> ExitCode {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let result = pairgate::serve::run_with(config, |gw| {
            let _ = tx.send(gw);
        })
        .await;
        if let Err(e) = &result {
            eprintln!("pairgate: {e}");
        }
        result.is_ok()
    });
    let Ok(gw) = rx.await else {
        return match task.await {
            Ok(true) => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        };
    };
    pairgate::serve::signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    gw.shutdown.cancel();
    match task.await {
        Ok(true) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().map_err(|e| eprintln!("pairgate: cannot start the async runtime: {e}")).ok()
}

/// Loads the configuration, printing the located error to stderr on failure.
fn load(file: &Path, checks: FileChecks) -> Option<Config> {
    match Config::load(file, checks) {
        Ok(config) => Some(config),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

fn print_summary(config: &Config) {
    let listen = match config.listen.transport {
        Transport::Tls { .. } => format!("https://{}", config.listen.addr),
        Transport::InsecureHttp => format!("http://{}  (insecure_http = true: plain HTTP)", config.listen.addr),
    };
    println!("{}: configuration ok", config.file.display());
    println!("  listen   {listen}");
    for c in &config.chassis {
        let preferred = if c.preferred_primary { "  (preferred primary)" } else { "" };
        println!("  chassis  {:<8} {}{}", c.name, c.url, preferred);
    }
    println!("  routes   {} rules; unknown mutating requests get {} IDs", config.routes.len(), config.routes.default_mutate_id_block());
    let rebuilt = config.collections.iter().filter(|c| !c.rebuild.is_empty()).count();
    println!(
        "  compare  {} collections, {rebuilt} with a rebuild recipe (read only for a chassis without /system/digest, id_block or export/import)",
        config.collections.len()
    );
    println!("  events   {} event types whose ids are translated (for a chassis without id_block)", config.events.len());
    println!("  state    {}", config.state.dir.display());
    match config.file_checks {
        FileChecks::Check => println!("  files    checked"),
        FileChecks::Skip => println!("  files    not checked (--no-file-checks)"),
    }
}
