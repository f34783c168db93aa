//! The gateway assembled: configuration in, a serving gateway out.
//!
//! Start-up, in order:
//! 1. read the secrets the configuration points at (chassis passwords, the
//!    JWT key, the admin token) — errors name the file;
//! 2. open the journal (and its sequencer) and the session store in the state
//!    directory — a restarted gateway finds its entries, counter and sessions;
//! 3. build one HTTPS client per chassis, each trusting only its own anchor;
//! 4. start a detector, a health prober and an applier per chassis (chassis
//!    start `down`; the first good probe begins their catch-up);
//! 5. establish the id floor (above every id either chassis holds) before the
//!    first mutation is accepted;
//! 6. serve the front.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::applier::{Applier, Report};
use crate::broker::{Broker, Runs, ServiceAccount};
use crate::config::{Config, SecretSource, Transport};
use crate::detector::{self, ChassisState};
use crate::journal::{Journal, JournalConfig};
use crate::pair::{Member, Pair};
use crate::sequencer::Sequencer;
use crate::session::{LoginLimiter, Secret, SessionConfig, SessionStore};
use crate::upstream::{Outcome, Upstream};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{path}: {reason}")]
    Secret { path: String, reason: String },
    #[error("environment variable {0} is not set (it holds a chassis password)")]
    Env(String),
    #[error("state directory {0}: {1}")]
    StateDir(PathBuf, std::io::Error),
    #[error("journal: {0}")]
    Journal(String),
    #[error("sessions: {0}")]
    Sessions(String),
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamError),
    #[error(transparent)]
    Front(#[from] crate::front::FrontError),
    #[error("listening on {0}: {1}")]
    Bind(std::net::SocketAddr, std::io::Error),
}

fn read_secret(path: &Path) -> Result<String, StartError> {
    let s = std::fs::read_to_string(path).map_err(|e| StartError::Secret { path: path.display().to_string(), reason: e.to_string() })?;
    let s = s.trim().to_string();
    if s.is_empty() {
        return Err(StartError::Secret { path: path.display().to_string(), reason: "the file is empty".into() });
    }
    Ok(s)
}

fn password(src: &SecretSource) -> Result<Secret, StartError> {
    match src {
        SecretSource::File(p) => read_secret(p).map(Secret::new),
        SecretSource::Env(name) => std::env::var(name).map(Secret::new).map_err(|_| StartError::Env(name.clone())),
    }
}

/// Counters for the status page.
#[derive(Default)]
pub struct Stats {
    pub divergences: AtomicU64,
    pub failovers: AtomicU64,
    pub mutations: AtomicU64,
    pub reads: AtomicU64,
    pub failed_reads: AtomicU64,
}

/// Everything a request needs.
pub struct Gateway {
    pub cfg: Config,
    pub pair: Arc<Pair>,
    pub broker: Arc<Broker>,
    pub journal: Journal,
    pub sequencer: Sequencer,
    pub reports: broadcast::Sender<Report>,
    pub admin_token: Secret,
    pub stats: Stats,
    /// Set once the id counter is above every id either chassis holds.
    pub ids_ready: AtomicBool,
    pub shutdown: CancellationToken,
}

impl Gateway {
    /// Steps 1 to 5 of the start-up (serving is [`crate::serve`]'s).
    pub async fn start(cfg: Config) -> Result<Arc<Gateway>, StartError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let admin_token = Secret::new(read_secret(&cfg.admin_token_file)?);
        let jwt_secret = read_secret(&cfg.sessions.jwt_secret_file)?.into_bytes();
        let dir = cfg.state.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| StartError::StateDir(dir.clone(), e))?;

        let names: Vec<String> = cfg.chassis.iter().map(|c| c.name.clone()).collect();
        let (journal, sequencer) =
            crate::journal::open(&dir, JournalConfig::from_config(&cfg.journal, names)).map_err(|e| StartError::Journal(e.to_string()))?;
        let session_cfg = SessionConfig { jwt_secret, idle_timeout: cfg.sessions.idle_timeout, ..SessionConfig::new(Vec::new()) };
        let store = SessionStore::open(&dir, session_cfg).map_err(|e| StartError::Sessions(e.to_string()))?;

        let per_try = cfg.timeouts.per_try;
        let mut members = Vec::with_capacity(2);
        let mut service = Vec::with_capacity(2);
        for (i, c) in cfg.chassis.iter().enumerate() {
            let upstream = Arc::new(Upstream::new(&c.name, c.url.clone(), c.ca_cert.as_deref(), per_try)?);
            let detector = detector::spawn(&c.name, ChassisState::Down, cfg.timeouts.down_after);
            members.push(Member { index: i, upstream, detector, last_error: Default::default() });
            service.push(ServiceAccount { username: c.username.clone(), password: password(&c.password)? });
        }
        let preferred = cfg.chassis.iter().position(|c| c.preferred_primary).unwrap_or(0);
        let [m0, m1]: [Member; 2] = members.try_into().map_err(|_| StartError::Journal("exactly two chassis".into()))?;
        let [s0, s1]: [ServiceAccount; 2] = service.try_into().map_err(|_| StartError::Journal("exactly two chassis".into()))?;
        let pair = Arc::new(Pair::new([m0, m1], preferred));
        let broker = Arc::new(Broker {
            store,
            backends: Default::default(),
            limiter: LoginLimiter::new(cfg.sessions.login_attempts_per_minute),
            service: [s0, s1],
            per_try,
        });
        let (reports, _) = broadcast::channel(16 * 1024);
        let gw = Arc::new(Gateway {
            pair,
            broker,
            journal,
            sequencer,
            reports,
            admin_token,
            stats: Stats::default(),
            ids_ready: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            cfg,
        });
        for i in 0..2 {
            let m = &gw.pair.members[i];
            crate::health::spawn(
                m.upstream.clone(),
                m.detector.clone(),
                m.last_error.clone(),
                gw.cfg.timeouts.health_interval,
                gw.shutdown.clone(),
            );
            let applier = Applier {
                index: i,
                pair: gw.pair.clone(),
                broker: gw.broker.clone(),
                journal: gw.journal.clone(),
                reports: gw.reports.clone(),
                per_try,
            };
            tokio::spawn(applier.run());
        }
        tokio::spawn(establish_id_floor(gw.clone()));
        tokio::spawn(flush_sessions(gw.clone()));
        Ok(gw)
    }

    pub fn tls(&self) -> Result<Option<tokio_rustls::TlsAcceptor>, StartError> {
        match &self.cfg.listen.transport {
            Transport::Tls { cert, key } => Ok(Some(crate::front::tls_acceptor(cert, key)?)),
            Transport::InsecureHttp => Ok(None),
        }
    }
}

/// The highest id a chassis holds, in any table (rows and counters), from
/// its export (read with the gateway's service account).
async fn highest_id(gw: &Gateway, i: usize) -> Option<u64> {
    let up = &gw.pair.members[i].upstream;
    let outcome = gw
        .broker
        .send(i, up, &Runs::Service, || crate::upstream::UpRequest {
            method: Method::GET,
            path_and_query: "/api/v1/system/export",
            headers: Default::default(),
            body: Default::default(),
            token: None,
            timeout: gw.cfg.timeouts.per_try * 5,
        })
        .await;
    let Outcome::Answered(a) = outcome else { return None };
    if !a.is_success() {
        tracing::warn!(chassis = %up.name, status = a.status, "export for the id floor refused");
        return None;
    }
    let doc: serde_json::Value = serde_json::from_slice(&a.body).ok()?;
    let mut highest = 0u64;
    for table in doc["tables"].as_object()?.values() {
        highest = highest.max(table["next_id"].as_u64().unwrap_or(1).saturating_sub(1));
        for row in table["rows"].as_array().into_iter().flatten() {
            highest = highest.max(row["id"].as_u64().unwrap_or(0));
        }
    }
    Some(highest)
}

const FLOOR_FILE: &str = "id_floor.established";

/// Raise the id counter above every id either chassis holds. On the very
/// first start both chassis must have answered (the other one might hold
/// higher ids); afterwards the persisted counter is already above both, and
/// the check is repeated opportunistically.
async fn establish_id_floor(gw: Arc<Gateway>) {
    let marker = gw.cfg.state.dir.join(FLOOR_FILE);
    if marker.exists() {
        gw.ids_ready.store(true, Ordering::SeqCst);
    }
    let mut seen = [None, None];
    let mut delay = Duration::from_millis(100);
    while seen.iter().any(Option::is_none) {
        for (i, slot) in seen.iter_mut().enumerate() {
            if slot.is_none() {
                *slot = highest_id(&gw, i).await;
            }
        }
        if seen.iter().any(Option::is_none) {
            tokio::select! {
                _ = gw.shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
    let floor = seen.iter().flatten().copied().max().unwrap_or(0) + 1;
    match gw.sequencer.ensure_id_floor(floor).await {
        Ok(_) => {
            let _ = std::fs::write(&marker, floor.to_string());
            tracing::info!(floor, "id counter is above every id on both chassis");
            gw.ids_ready.store(true, Ordering::SeqCst);
        }
        Err(e) => tracing::error!("raising the id counter: {e}"),
    }
}

/// Persist sessions' last activity now and then (the store writes it lazily).
async fn flush_sessions(gw: Arc<Gateway>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = gw.shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let broker = gw.broker.clone();
        let _ = tokio::task::spawn_blocking(move || broker.store.flush()).await;
    }
    let broker = gw.broker.clone();
    let _ = tokio::task::spawn_blocking(move || broker.store.flush()).await;
}
