//! `pairgate demo --cascade`: two levels of a cascade on one machine, each a
//! redundant pair behind its own gateway, the lower pair registered at the
//! upper one as one subordinate.
//!
//! With `--port P`: the upper gateway on P, its chassis on P+1 and P+2; the
//! lower gateway on P+3, its chassis on P+4 and P+5. Each level is laid out as
//! the plain demo's (`<state>/upper`, `<state>/lower`: certificates, secrets,
//! `gateway.toml`, the demo room), plus `[cascade]`; the lower level's
//! `[cascade.superior]` is the upper gateway, with the demo's `admin` account.
//! Once both pairs are in sync, the lower gateway is told its superior
//! (`PUT /api/v1/cascade/superior`, as an operator would), so the upper level
//! shows the lower level's inputs as `cascade` sources. Ctrl-C or SIGTERM stops
//! both gateways, then all four chassis.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;

use crate::chassis::upstream::{Outcome, Upstream};
use crate::demo::{demo_config, io, ready, start_gateway, ChassisChild, DemoError, DemoFiles, GatewayTask};
use crate::files::{ensure_cert, ensure_secret};

/// The account of every demo chassis the cascade calls use (the plain demo's admin).
const CASCADE_USER: &str = "admin";
const CASCADE_PASSWORD: &str = "admin";

/// One level: its gateway's port, its chassis' ports, its folder.
struct Level {
    tag: &'static str,
    port: u16,
    chassis: [u16; 2],
    dir: PathBuf,
}

struct Running {
    pair: [ChassisChild; 2],
    gw: Arc<crate::gateway::Gateway>,
    gateway: GatewayTask,
    gateway_cert: PathBuf,
}

impl Running {
    fn stop(&mut self) {
        self.gw.shutdown.cancel();
        for c in self.pair.iter_mut() {
            c.stop(Duration::from_secs(5));
        }
    }
}

pub async fn run(port: u16, state: &Path) -> Result<ExitCode, DemoError> {
    let ports: Vec<u16> = (0..6u16).map(|k| port.checked_add(k)).collect::<Option<_>>().ok_or(DemoError::Port(port))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(io(Path::new("SIGTERM handler")))?;
    crate::state_dir::ensure_private_dir(state).map_err(io(state))?;
    let state = std::fs::canonicalize(state).map_err(io(state))?;
    let upper = Level { tag: "upper", port: ports[0], chassis: [ports[1], ports[2]], dir: state.join("upper") };
    let lower = Level { tag: "lower", port: ports[3], chassis: [ports[4], ports[5]], dir: state.join("lower") };
    // Every chassis calls a gateway (its own egress, or a subordinate's gateway): it trusts both.
    let mut peers = Vec::new();
    for level in [&upper, &lower] {
        crate::state_dir::ensure_private_dir(&level.dir).map_err(io(&level.dir))?;
        let certs = level.dir.join("certs");
        crate::state_dir::ensure_private_dir(&certs).map_err(io(&certs))?;
        let (cert, _) = ensure_cert(&certs, "gateway")?;
        peers.extend(std::fs::read(&cert).map_err(io(&cert))?);
    }
    let peer_ca = state.join("gateways.pem");
    std::fs::write(&peer_ca, peers).map_err(io(&peer_ca))?;
    let superior = format!("https://127.0.0.1:{}", upper.port);
    let superior_ca = upper.dir.join("certs/gateway.pem");
    let mut up = start_level(&upper, &peer_ca, None).await?;
    let mut down = match start_level(&lower, &peer_ca, Some((&superior, &superior_ca))).await {
        Ok(r) => r,
        Err(e) => {
            up.stop();
            return Err(e);
        }
    };
    let linked = link(&lower, &down.gateway_cert, &superior).await;

    println!("pairgate demo --cascade — state in {}", state.display());
    println!();
    for (level, r) in [(&upper, &up), (&lower, &down)] {
        println!("  {} gateway  https://127.0.0.1:{}/   (certificate {})", level.tag, level.port, r.gateway_cert.display());
        for c in &r.pair {
            println!("    chassis {}  {}/   (pid {})", c.name, c.url, c.pid().unwrap_or(0));
        }
    }
    println!("  log in     admin / admin, operator / operator, viewer / viewer (on either level)");
    println!("  cascade    {linked}");
    println!("  config     {}/gateway.toml and {}/gateway.toml", upper.dir.display(), lower.dir.display());
    println!();
    println!("Open a window on a \"PAIR-LOWER / …\" source at the upper gateway: both lower chassis route one cascade link.");
    println!("Ctrl-C stops both gateways and all four chassis.");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    for r in [&mut down, &mut up] {
        r.stop();
    }
    for r in [down, up] {
        let _ = r.gateway.await;
    }
    Ok(ExitCode::SUCCESS)
}

/// The plain demo's pair for one level, with `[cascade]`.
async fn start_level(level: &Level, peer_ca: &Path, superior: Option<(&str, &Path)>) -> Result<Running, DemoError> {
    let dir = &level.dir;
    let DemoFiles { chassis_tls: [(ca, ka), (cb, kb)], gateway_cert, service_pw } = DemoFiles::ensure(dir)?;
    let public_url = format!("https://127.0.0.1:{}", level.port);
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut cascade = format!("\n[cascade]\nserial = \"PAIR-{}\"\npublic_url = {}\n", level.tag.to_uppercase(), q(&public_url));
    if let Some((url, ca_cert)) = superior {
        let pw = dir.join("superior.password");
        ensure_secret(&pw, || CASCADE_PASSWORD.to_string())?;
        cascade += &format!(
            "\n[cascade.superior]\nurl = {}\nca_cert = {}\nusername = \"{CASCADE_USER}\"\npassword_file = {}\n",
            q(url),
            q(&ca_cert.display().to_string()),
            q(&pw.display().to_string())
        );
    }
    let config_path = dir.join("gateway.toml");
    let text = demo_config(level.port, level.chassis[0], level.chassis[1], dir) + &cascade;
    std::fs::write(&config_path, text).map_err(io(&config_path))?;
    let config = crate::Config::load(&config_path, crate::FileChecks::Check)?;

    let exe = std::env::current_exe().map_err(io(Path::new("current executable")))?;
    let chassis = |name: &'static str, port: u16, cert: &Path, key: &Path| {
        let serial = format!("DEMO-{}-{}", level.tag.to_uppercase(), name.to_uppercase());
        let extra = ["--public-url".to_string(), format!("https://127.0.0.1:{port}"), "--peer-ca".into(), peer_ca.display().to_string()];
        ChassisChild::new(&exe, name, port, dir, (cert, key), &serial, &extra)
    };
    let mut pair = [chassis("a", level.chassis[0], &ca, &ka), chassis("b", level.chassis[1], &cb, &kb)];
    let stop_all = |pair: &mut [ChassisChild; 2]| pair.iter_mut().for_each(|c| c.stop(Duration::from_secs(3)));
    for c in pair.iter_mut() {
        if let Err(e) = c.start() {
            stop_all(&mut pair);
            return Err(e);
        }
    }
    for (c, pw) in config.chassis.iter().zip(&service_pw) {
        if let Err(e) = crate::init::provision_service_account(c, pw).await {
            stop_all(&mut pair);
            return Err(e.into());
        }
    }
    let listen = crate::config::ChassisUrl::parse(&public_url).map_err(DemoError::Address)?;
    let (gw, gateway) = match start_gateway(config).await {
        Ok(started) => started,
        Err(e) => {
            stop_all(&mut pair);
            return Err(e.map_or_else(|| DemoError::Address(format!("the {} gateway did not start", level.tag)), DemoError::from));
        }
    };
    if ready(&gw, Duration::from_secs(60)).await {
        if let Err(e) = crate::demo_room::seed(&listen, &gateway_cert, dir).await {
            tracing::warn!("the {} demo room was not made: {e}", level.tag);
        }
    }
    Ok(Running { pair, gw, gateway, gateway_cert })
}

/// Tell the lower gateway its superior, as an operator would; what happened, in words.
async fn link(lower: &Level, gateway_cert: &Path, superior: &str) -> String {
    let url = match crate::config::ChassisUrl::parse(&format!("https://127.0.0.1:{}", lower.port)) {
        Ok(u) => u,
        Err(e) => return format!("not linked ({e})"),
    };
    let up = match Upstream::new("lower gateway", url, Some(gateway_cert), Duration::from_secs(10)) {
        Ok(u) => u,
        Err(e) => return format!("not linked ({e})"),
    };
    let token = match crate::session::broker::login(&up, CASCADE_USER, CASCADE_PASSWORD, Duration::from_secs(10)).await {
        Ok((token, _)) => token.expose().to_string(),
        Err(e) => return format!("not linked (logging in at the lower gateway: {e})"),
    };
    let body = serde_json::json!({"url": superior, "username": CASCADE_USER, "password": CASCADE_PASSWORD});
    match up.json(Method::PUT, "/api/v1/cascade/superior", Some(&body), Some(&token), Duration::from_secs(10)).await {
        Outcome::Answered(a) if a.is_success() => format!("the lower pair (PAIR-LOWER) registers at the upper gateway {superior}"),
        Outcome::Answered(a) => format!("not linked (the lower gateway answered {}: {})", a.status, String::from_utf8_lossy(&a.body)),
        other => format!("not linked ({})", other.describe()),
    }
}
