//! `pairgate demo`: a whole redundant pair on one machine, for trying it out.
//!
//! On first run it generates, under the state directory (0700, every secret
//! file in it 0600), a self-signed
//! certificate for each chassis and for the gateway, the password files and
//! the admin token; then it starts two reference chassis as child processes
//! (this same binary, `pairgate chassis …`) on `port+1` and `port+2`, the
//! gateway in front of them, and makes a small control room through the
//! gateway ([`crate::demo_room`]).
//!
//! It supervises its chassis: the banner gives their PIDs, a line says which
//! is primary (printed again whenever a state, a PID or the primary changes),
//! and lines typed on its terminal kill (`kill a`, as `kill -9`) and restart
//! (`restart a`) a chassis, so a failover can be tried without a second
//! terminal. A chassis that dies is reported and not restarted by itself.
//! Ctrl-C, SIGTERM or `quit` stops the gateway, then every chassis it
//! started (SIGTERM, then SIGKILL after a grace period); the children also
//! ask the kernel to stop them if the demo itself is killed.
//!
//! The gateway runs in the demo process itself, from a configuration the
//! demo writes to `<state>/gateway.toml` (the route rules are the shipped
//! `gateway.toml`'s), so `pairgate --config <state>/gateway.toml` runs the
//! same gateway by hand.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub use crate::files::CERT_VALIDITY_DAYS;
use crate::files::{ensure_cert, ensure_secret, FilesError};
use crate::gateway::Gateway;
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
    #[error("the demo gateway's address: {0}")]
    Address(String),
}

/// The gateway's own account on both demo chassis: never the human `admin`
/// (the two would pre-empt each other's backend sessions, and an operator
/// changing admin's password would lock the gateway out).
pub const SERVICE_USER: &str = "pairgate";

/// The shipped configuration; the demo reuses its route rules.
const SHIPPED: &str = include_str!("../../../gateway.toml");

/// The demo's gateway.toml: its own ports and files, the shipped route rules.
pub(crate) fn demo_config(port: u16, pa: u16, pb: u16, state: &Path) -> String {
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

/// What a demo pair needs on disk, made on first run and kept: under `dir`,
/// `certs/` (each chassis' and the gateway's certificate and key), each
/// chassis' password for the gateway's account, the admin token, the JWT key.
pub(crate) struct DemoFiles {
    pub(crate) chassis_tls: [(PathBuf, PathBuf); 2],
    pub(crate) gateway_cert: PathBuf,
    pub(crate) service_pw: [String; 2],
}

impl DemoFiles {
    pub(crate) fn ensure(dir: &Path) -> Result<DemoFiles, DemoError> {
        let certs = dir.join("certs");
        let chassis_tls = [ensure_cert(&certs, "chassis-a")?, ensure_cert(&certs, "chassis-b")?];
        let (gateway_cert, _) = ensure_cert(&certs, "gateway")?;
        // The gateway's own account on each chassis gets a random password of its
        // own (created as the first-start admin/admin).
        let service_pw = [
            ensure_secret(&dir.join("chassis-a.password"), || hex::encode(rand::random::<[u8; 16]>()))?,
            ensure_secret(&dir.join("chassis-b.password"), || hex::encode(rand::random::<[u8; 16]>()))?,
        ];
        ensure_secret(&dir.join("admin.token"), || hex::encode(rand::random::<[u8; 24]>()))?;
        ensure_secret(&dir.join("jwt.secret"), || hex::encode(rand::random::<[u8; 32]>()))?;
        Ok(DemoFiles { chassis_tls, gateway_cert, service_pw })
    }
}

/// The gateway serving `config` in this process, once it has started: it and
/// its task (which ends when it stops). `Err`: it did not start (why, if it said).
pub(crate) async fn start_gateway(config: crate::Config) -> Result<(Arc<Gateway>, GatewayTask), Option<crate::gateway::StartError>> {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let gateway = tokio::spawn(crate::serve::run_with(config, move |gw| {
        let _ = started_tx.send(gw);
    }));
    match started_rx.await {
        Ok(gw) => Ok((gw, gateway)),
        Err(_) => match gateway.await {
            Ok(Err(e)) => Err(Some(e)),
            _ => Err(None),
        },
    }
}

/// A gateway's task in the demo process.
pub(crate) type GatewayTask = tokio::task::JoinHandle<Result<Arc<Gateway>, crate::gateway::StartError>>;

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io { path: path.to_path_buf(), source }
}

/// Set in a chassis child's environment to the demo's PID: the child asks the
/// kernel to stop it when the demo dies, even by `kill -9` (read by
/// `pairgate chassis`).
pub const DIE_WITH_PARENT: &str = "PAIRGATE_DIE_WITH_PARENT";

pub(crate) struct ChassisChild {
    pub(crate) name: &'static str,
    pub(crate) url: String,
    pub(crate) command: Vec<String>,
    pub(crate) child: Option<Child>,
}

impl ChassisChild {
    /// `pairgate chassis` on 127.0.0.1:`port`, its state in `<dir>/chassis-<name>`,
    /// serving `tls` (certificate, key), with the fault hooks and `extra` arguments.
    pub(crate) fn new(
        exe: &Path,
        name: &'static str,
        port: u16,
        dir: &Path,
        tls: (&Path, &Path),
        serial: &str,
        extra: &[String],
    ) -> ChassisChild {
        let mut command = vec![
            exe.display().to_string(),
            "chassis".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--state".into(),
            dir.join(format!("chassis-{name}")).display().to_string(),
            "--tls-cert".into(),
            tls.0.display().to_string(),
            "--tls-key".into(),
            tls.1.display().to_string(),
            "--serial".into(),
            serial.to_string(),
            "--sim-hooks".into(),
        ];
        command.extend(extra.iter().cloned());
        ChassisChild { name, url: format!("https://127.0.0.1:{port}"), command, child: None }
    }

    pub(crate) fn start(&mut self) -> Result<(), DemoError> {
        let (prog, args) = self.command.split_first().ok_or_else(|| DemoError::Spawn(std::io::Error::other("empty command")))?;
        let child = Command::new(prog)
            .args(args)
            .env(DIE_WITH_PARENT, std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(DemoError::Spawn)?;
        self.child = Some(child);
        Ok(())
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`: a chassis that dies at once, as in a power cut.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub(crate) fn stop(&mut self, grace: Duration) {
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

    /// Forget a child that exited by itself (or was killed from outside).
    fn reap(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                println!("chassis {} exited ({status}); type `restart {}` to start it again", self.name, self.name);
                self.child = None;
            }
        }
    }
}

/// What the operator typed on the demo's terminal.
#[derive(Debug, PartialEq, Eq)]
enum Typed {
    Kill(usize),
    Restart(usize),
    Status,
    Help,
    Quit,
    Unknown(String),
}

impl Typed {
    fn parse(line: &str) -> Option<Typed> {
        let mut words = line.split_whitespace();
        let verb = words.next()?;
        let chassis = match words.next() {
            Some("a") => Some(0),
            Some("b") => Some(1),
            _ => None,
        };
        Some(match (verb, chassis) {
            ("kill" | "k", Some(i)) => Typed::Kill(i),
            ("restart" | "r" | "start", Some(i)) => Typed::Restart(i),
            ("status" | "s", None) => Typed::Status,
            ("help" | "h" | "?", None) => Typed::Help,
            ("quit" | "q" | "exit", None) => Typed::Quit,
            _ => Typed::Unknown(line.trim().to_string()),
        })
    }
}

const KEYS: &str = "type `kill a` (kill -9 chassis a), `restart a`, the same for b, `status`, `quit` (or Ctrl-C), then Enter";

/// One line: who is primary, each chassis' state and PID, failovers so far.
fn status_line(gw: &crate::gateway::Gateway, pair: &[ChassisChild; 2]) -> String {
    let primary = gw.pair.primary().map_or("none", |i| pair[i].name);
    let chassis: Vec<String> = pair
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let state = serde_json::to_value(gw.pair.state(i)).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            let pid = c.pid().map_or("not running".to_string(), |p| format!("pid {p}"));
            format!("chassis {} {state} ({pid})", c.name)
        })
        .collect();
    format!("primary: {primary} | {} | failovers: {}", chassis.join(" | "), gw.pair.failovers())
}

/// The lines typed on the demo's terminal. Read on a thread of its own (a
/// blocking read of stdin inside the runtime would hold up its shutdown); the
/// channel closes when stdin does.
fn terminal_lines() -> tokio::sync::mpsc::Receiver<String> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let spawned = std::thread::Builder::new().name("demo-terminal".into()).spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    if let Err(e) = spawned {
        eprintln!("pairgate demo: cannot read the terminal ({e}); Ctrl-C still stops it");
    }
    rx
}

/// Wait (bounded) until the gateway takes mutations: IDs ready, a chassis in sync.
pub(crate) async fn ready(gw: &crate::gateway::Gateway, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if gw.pairing.accepts_mutations().is_ok() && (0..2).all(|i| gw.pair.state(i).serves()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
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
    let DemoFiles { chassis_tls: [(ca, ka), (cb, kb)], gateway_cert, service_pw } = DemoFiles::ensure(&state)?;
    let config_path = state.join("gateway.toml");
    std::fs::write(&config_path, demo_config(port, pa, pb, &state)).map_err(io(&config_path))?;
    let config = crate::Config::load(&config_path, crate::FileChecks::Check)?;

    let exe = std::env::current_exe().map_err(io(Path::new("current executable")))?;
    let chassis = |name: &'static str, port: u16, cert: &Path, key: &Path| {
        ChassisChild::new(&exe, name, port, &state, (cert, key), &format!("DEMO-{}", name.to_uppercase()), &[])
    };
    let mut pair = [chassis("a", pa, &ca, &ka), chassis("b", pb, &cb, &kb)];
    for c in pair.iter_mut() {
        c.start()?;
    }
    for (c, pw) in config.chassis.iter().zip(&service_pw) {
        // The gateway's account, as the chassis' first-start admin/admin, unless it already logs in.
        if let Err(e) = crate::init::provision_service_account(c, pw).await {
            for c in pair.iter_mut() {
                c.stop(Duration::from_secs(3));
            }
            return Err(e.into());
        }
    }

    let listen = crate::config::ChassisUrl::parse(&format!("https://127.0.0.1:{port}")).map_err(DemoError::Address)?;
    let (gw, gateway) = match start_gateway(config).await {
        Ok(started) => started,
        Err(e) => {
            for c in pair.iter_mut() {
                c.stop(Duration::from_secs(5));
            }
            return e.map_or(Ok(ExitCode::FAILURE), |e| Err(e.into()));
        }
    };
    let room = if ready(&gw, Duration::from_secs(60)).await {
        match crate::demo_room::seed(&listen, &gateway_cert, &state).await {
            Ok(crate::demo_room::Seeded::Made(summary)) => format!("made now: {summary}"),
            Ok(crate::demo_room::Seeded::AlreadyThere) => "kept from an earlier run".to_string(),
            Err(e) => format!("not made ({e})"),
        }
    } else {
        "not made (the pair was not in sync within 60 s; see the log)".to_string()
    };

    println!("pairgate demo — state in {}", state.display());
    println!();
    println!("  open       https://127.0.0.1:{port}/   (the gateway; its certificate is {})", gateway_cert.display());
    for c in &pair {
        println!(
            "  chassis {}  {}/   (pid {}; certificate {})",
            c.name,
            c.url,
            c.pid().unwrap_or(0),
            certs.join(format!("chassis-{}.pem", c.name)).display()
        );
    }
    println!("  log in     admin / admin, operator / operator, viewer / viewer");
    println!("  room       {room}");
    println!("  dashboard  https://127.0.0.1:{port}/_pairgate/ (log in as admin / admin, or with the admin token)");
    println!("  status     https://127.0.0.1:{port}/_pairgate/status with the admin token in {}", state.join("admin.token").display());
    println!("  config     {} (`pairgate --config` runs the same gateway by hand)", config_path.display());
    println!();
    println!("Try a failover: {KEYS}.");
    println!("Ctrl-C stops the gateway and both chassis, also those restarted here.");
    let mut last = status_line(&gw, &pair);
    println!("{last}");

    let mut stdin = Some(terminal_lines());
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        let typed = async {
            match stdin.as_mut() {
                Some(lines) => lines.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            line = typed => match line {
                Some(line) => match Typed::parse(&line) {
                    None => {}
                    Some(Typed::Kill(i)) => match pair[i].pid() {
                        Some(pid) => {
                            pair[i].kill9();
                            println!("chassis {} (pid {pid}) killed with -9", pair[i].name);
                        }
                        None => println!("chassis {} is not running; `restart {}` starts it", pair[i].name, pair[i].name),
                    },
                    Some(Typed::Restart(i)) => {
                        if pair[i].pid().is_some() {
                            println!("chassis {} is running; `kill {}` first", pair[i].name, pair[i].name);
                        } else if let Err(e) = pair[i].start() {
                            println!("chassis {}: {e}", pair[i].name);
                        } else {
                            println!("chassis {} started again (pid {})", pair[i].name, pair[i].pid().unwrap_or(0));
                        }
                    }
                    Some(Typed::Status) => println!("{}", status_line(&gw, &pair)),
                    Some(Typed::Help) => println!("{KEYS}"),
                    Some(Typed::Quit) => break,
                    Some(Typed::Unknown(what)) => println!("'{what}'? {KEYS}"),
                },
                // No terminal (or it closed): keep serving until a signal.
                None => stdin = None,
            },
            _ = tick.tick() => {}
        }
        for c in pair.iter_mut() {
            c.reap();
        }
        let now = status_line(&gw, &pair);
        if now != last {
            println!("{now}");
            last = now;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_commands() {
        assert_eq!(Typed::parse("kill a"), Some(Typed::Kill(0)));
        assert_eq!(Typed::parse("  k b "), Some(Typed::Kill(1)));
        assert_eq!(Typed::parse("restart b"), Some(Typed::Restart(1)));
        assert_eq!(Typed::parse("status"), Some(Typed::Status));
        assert_eq!(Typed::parse("quit"), Some(Typed::Quit));
        assert_eq!(Typed::parse(""), None);
        assert_eq!(Typed::parse("kill c"), Some(Typed::Unknown("kill c".into())));
        assert_eq!(Typed::parse("kill"), Some(Typed::Unknown("kill".into())));
    }
}
