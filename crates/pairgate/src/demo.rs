//! `pairgate demo`: a whole redundant pair on one machine, for trying it out.
//!
//! On first run it generates, under the state directory (0700, every secret
//! file in it 0600), a self-signed
//! certificate for each chassis and for the gateway, the password files and
//! the admin token; then it starts two reference chassis as child processes
//! (this same binary, `pairgate chassis …`) on `port+1` and `port+2`.
//!
//! A chassis child that dies is reported and *not* restarted, so a test can
//! `kill -9` one and later start it again with the command line printed at
//! start-up. Ctrl-C or SIGTERM stops the children (SIGTERM, then SIGKILL
//! after a grace period) and exits.
//!
//! The gateway runs in the demo process itself, from a configuration the
//! demo writes to `<state>/gateway.toml` (the route rules are the shipped
//! `gateway.toml`'s), so `pairgate --config <state>/gateway.toml` runs the
//! same gateway by hand.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub use crate::files::CERT_VALIDITY_DAYS;
use crate::files::{ensure_cert, ensure_secret, FilesError};
use crate::init::ProvisionError;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error("port {0} is too high: the demo needs it and the next two")]
    Port(u16),
    #[error("starting a chassis: {0}")]
    Spawn(std::io::Error),
    #[error("the generated configuration: {0}")]
    Config(#[from] crate::ConfigError),
    #[error("the gateway: {0}")]
    Gateway(#[from] crate::gateway::StartError),
    #[error(transparent)]
    Provision(#[from] ProvisionError),
}

/// The gateway's own account on both demo chassis: never the human `admin`
/// (the two would pre-empt each other's backend sessions, and an operator
/// changing admin's password would lock the gateway out).
pub const SERVICE_USER: &str = "pairgate";

/// Give chassis `c` the gateway's account as its first-start admin/admin,
/// unless it already logs in (see [`crate::init::provision_service_account`]).
async fn provision_service_account(c: &crate::config::Chassis, password: &str) -> Result<(), DemoError> {
    crate::init::provision_service_account(c, password).await?;
    Ok(())
}

/// The shipped configuration; the demo reuses its route rules.
const SHIPPED: &str = include_str!("../../../gateway.toml");

/// The demo's gateway.toml: its own ports and files, the shipped route rules.
fn demo_config(port: u16, pa: u16, pb: u16, state: &Path) -> String {
    let routes = SHIPPED.find("# ----").map(|i| &SHIPPED[i..]).unwrap_or("");
    // Quoted and escaped as TOML strings, whatever the path holds.
    let p = |name: &str| toml::Value::String(state.join(name).display().to_string()).to_string();
    format!(
        r#"# Written by `pairgate demo`; the route rules below are the shipped gateway.toml's.
admin_token_file = {token}

[listen]
addr = "127.0.0.1:{port}"
tls_cert = {gcert}
tls_key = {gkey}

[state]
dir = {gstate}

[[chassis]]
name = "a"
url = "https://127.0.0.1:{pa}"
ca_cert = {acert}
username = "{service}"
password_file = {apw}
preferred_primary = true

[[chassis]]
name = "b"
url = "https://127.0.0.1:{pb}"
ca_cert = {bcert}
username = "{service}"
password_file = {bpw}

[sessions]
jwt_secret_file = {jwt}

{routes}"#,
        token = p("admin.token"),
        gcert = p("certs/gateway.pem"),
        gkey = p("certs/gateway.key"),
        gstate = p("gateway"),
        acert = p("certs/chassis-a.pem"),
        apw = p("chassis-a.password"),
        bcert = p("certs/chassis-b.pem"),
        bpw = p("chassis-b.password"),
        jwt = p("jwt.secret"),
        service = SERVICE_USER,
    )
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io { path: path.to_path_buf(), source }
}

struct ChassisChild {
    name: &'static str,
    url: String,
    command: Vec<String>,
    child: Option<Child>,
}

impl ChassisChild {
    fn start(&mut self) -> Result<(), DemoError> {
        let (prog, args) = self.command.split_first().ok_or_else(|| DemoError::Spawn(std::io::Error::other("empty command")))?;
        let child = Command::new(prog).args(args).stdin(Stdio::null()).spawn().map_err(DemoError::Spawn)?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn shell_quote(args: &[String]) -> String {
    args.iter().map(|a| if a.contains(' ') { format!("'{a}'") } else { a.clone() }).collect::<Vec<_>>().join(" ")
}

pub async fn run(port: u16, state: &Path) -> Result<ExitCode, DemoError> {
    let (pa, pb) = match (port.checked_add(1), port.checked_add(2)) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(DemoError::Port(port)),
    };
    // Catch SIGTERM before any child exists, so a stop at any moment stops them too.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(io(Path::new("SIGTERM handler")))?;
    // Private, like the gateway's own state directory inside it: it holds the
    // chassis passwords, the admin token, the JWT key and the private keys.
    crate::state_dir::ensure_private_dir(state).map_err(io(state))?;
    let certs = state.join("certs");
    crate::state_dir::ensure_private_dir(&certs).map_err(io(&certs))?;
    let state = std::fs::canonicalize(state).map_err(io(state))?;
    let certs = state.join("certs");
    let (ca, ka) = ensure_cert(&certs, "chassis-a")?;
    let (cb, kb) = ensure_cert(&certs, "chassis-b")?;
    ensure_cert(&certs, "gateway")?;
    // The gateway's own account on each chassis gets a random password of its
    // own (created below, as the first-start admin/admin).
    let service_pw = [
        ensure_secret(&state.join("chassis-a.password"), || hex::encode(rand::random::<[u8; 16]>()))?,
        ensure_secret(&state.join("chassis-b.password"), || hex::encode(rand::random::<[u8; 16]>()))?,
    ];
    let token = ensure_secret(&state.join("admin.token"), || hex::encode(rand::random::<[u8; 24]>()))?;
    ensure_secret(&state.join("jwt.secret"), || hex::encode(rand::random::<[u8; 32]>()))?;
    let config_path = state.join("gateway.toml");
    std::fs::write(&config_path, demo_config(port, pa, pb, &state)).map_err(io(&config_path))?;
    let config = crate::Config::load(&config_path, crate::FileChecks::Check)?;

    let exe = std::env::current_exe().map_err(io(Path::new("current executable")))?;
    let chassis = |name: &'static str, port: u16, cert: &Path, key: &Path| ChassisChild {
        name,
        url: format!("https://127.0.0.1:{port}"),
        command: vec![
            exe.display().to_string(),
            "chassis".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--state".into(),
            state.join(format!("chassis-{name}")).display().to_string(),
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
            "--serial".into(),
            format!("DEMO-{}", name.to_uppercase()),
            "--sim-hooks".into(),
        ],
        child: None,
    };
    let mut pair = [chassis("a", pa, &ca, &ka), chassis("b", pb, &cb, &kb)];
    for c in pair.iter_mut() {
        c.start()?;
    }
    for (c, pw) in config.chassis.iter().zip(&service_pw) {
        if let Err(e) = provision_service_account(c, pw).await {
            for c in pair.iter_mut() {
                c.stop(Duration::from_secs(3));
            }
            return Err(e);
        }
    }

    println!("pairgate demo — state in {}", state.display());
    println!();
    println!("  gateway    https://127.0.0.1:{port}/   (certificate {})", certs.join("gateway.pem").display());
    for c in &pair {
        println!("  chassis {}  {}/   (certificate {})", c.name, c.url, certs.join(format!("chassis-{}.pem", c.name)).display());
    }
    println!("  login      admin / admin");
    println!("  admin token (for /_pairgate/status): {token}");
    println!();
    for c in &pair {
        println!("  restart chassis {} with: {}", c.name, shell_quote(&c.command));
    }
    println!();
    println!("  gateway configuration: {}", config_path.display());
    println!("Ctrl-C stops everything.");

    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let gateway = tokio::spawn(crate::serve::run_with(config, move |gw| {
        let _ = started_tx.send(gw);
    }));
    let gw = match started_rx.await {
        Ok(gw) => gw,
        Err(_) => {
            for c in pair.iter_mut() {
                c.stop(Duration::from_secs(5));
            }
            return match gateway.await {
                Ok(Err(e)) => Err(e.into()),
                _ => Ok(ExitCode::FAILURE),
            };
        }
    };

    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tick.tick() => {
                for c in pair.iter_mut() {
                    if let Some(child) = c.child.as_mut() {
                        if let Ok(Some(status)) = child.try_wait() {
                            eprintln!("pairgate demo: chassis {} exited ({status}); not restarting it", c.name);
                            c.child = None;
                        }
                    }
                }
            }
        }
    }
    eprintln!("pairgate demo: stopping");
    // The gateway first (it finishes in-flight requests), then the chassis.
    gw.shutdown.cancel();
    let _ = gateway.await;
    for c in pair.iter_mut() {
        c.stop(Duration::from_secs(5));
    }
    Ok(ExitCode::SUCCESS)
}
