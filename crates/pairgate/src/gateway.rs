//! The gateway assembled: configuration in, a serving gateway out.
//!
//! Start-up, in order:
//! 1. read the secrets the configuration points at (chassis passwords, the
//!    JWT key, the admin token) — errors name the file;
//! 2. make the state directory private (umask 0077, the directory 0700, files
//!    an older gateway left wider made 0600; see [`crate::state_dir`]), then
//!    open the journal (and its sequencer) and the session store in it — a
//!    restarted gateway finds its entries, counter and sessions;
//! 3. build one HTTPS client per chassis, each trusting only its own anchor;
//! 4. start a detector, a health prober and an applier per chassis (chassis
//!    start `down`; the first good probe begins their catch-up);
//! 5. establish the id floor (above every id either chassis holds) before the
//!    first mutation is accepted; on later starts, let the chassis join only
//!    once both answer (or [`start_grace`] passed), so two chassis that came
//!    back different are judged against their last verified points;
//! 6. serve the front; at a graceful shutdown, verify both chassis once more
//!    ([`Gateway::verify_before_exit`]) so the next start knows what each holds.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use tokio_util::sync::CancellationToken;

use crate::answers::Answers;
use crate::applier::Applier;
use crate::broker::{Broker, ServiceAccount};
use crate::config::{Config, SecretSource, Transport};
use crate::detector::{self, ChassisState};
use crate::journal::Sequencer;
use crate::journal::{Journal, JournalConfig};
use crate::pair::{Member, Pair};
use crate::resync::{MismatchTarget, Progress, Reason, WriteGate};
use crate::session::{LoginLimiter, Secret, SessionConfig, SessionStore};
use crate::upstream::Upstream;

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

pub use crate::stats::Stats;

/// Everything a request needs.
pub struct Gateway {
    pub cfg: Config,
    pub pair: Arc<Pair>,
    pub broker: Arc<Broker>,
    pub journal: Journal,
    pub sequencer: Sequencer,
    /// Each journal entry's answer slots: appliers fill, the request waits.
    pub answers: Arc<Answers>,
    /// The events relay's hubs: one upstream socket per account.
    pub hubs: Arc<crate::events::Hubs>,
    pub admin_token: Secret,
    pub stats: Arc<Stats>,
    /// Set once the id counter is above every id either chassis holds, and
    /// while the pair is not blocked: mutations are accepted.
    pub ids_ready: Arc<AtomicBool>,
    /// Set once initial pairing is decided (appliers may then declare a
    /// chassis in sync).
    pub paired: Arc<AtomicBool>,
    /// Why mutations are refused while pairing cannot decide alone (first
    /// start, or both chassis back with different data and neither matching
    /// its last verified point).
    pub pairing_blocked: Arc<std::sync::Mutex<Option<String>>>,
    /// The source an operator picked to settle a blocked pair.
    pub source_pick: Arc<std::sync::Mutex<Option<usize>>>,
    /// Woken when an operator picks a source for a blocked pair.
    picked: tokio::sync::Notify,
    /// Mutations append under a shared hold; verify and export hold it alone.
    pub gate: WriteGate,
    /// The running (or last) full resync.
    pub progress: Arc<std::sync::Mutex<Option<Progress>>>,
    /// Entries on the wire, voided, accepted (see `attempts.rs`).
    pub attempts: Arc<crate::attempts::Attempts>,
    pub shutdown: CancellationToken,
}

impl Gateway {
    /// Steps 1 to 5 of the start-up (serving is [`crate::serve`]'s).
    pub async fn start(cfg: Config) -> Result<Arc<Gateway>, StartError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let admin_token = Secret::new(read_secret(&cfg.admin_token_file)?);
        let jwt_secret = read_secret(&cfg.sessions.jwt_secret_file)?.into_bytes();
        let dir = cfg.state.dir.clone();
        // Before anything is created: whatever the gateway (or SQLite, for the
        // journal's -wal and -shm) creates from here on is its user's alone.
        let previous = crate::state_dir::restrict_umask();
        if previous & 0o077 != 0o077 {
            tracing::debug!("umask {previous:04o} restricted to 0077 (the state directory is private)");
        }
        crate::state_dir::ensure_private_dir(&dir).map_err(|e| StartError::StateDir(dir.clone(), e))?;
        crate::state_dir::tighten_files(&dir, &STATE_FILES).map_err(|e| StartError::StateDir(dir.clone(), e))?;

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
            members.push(Member {
                index: i,
                upstream,
                detector,
                last_error: Default::default(),
                resync: Default::default(),
                resyncs_done: Default::default(),
                resyncs_failed: Default::default(),
                resync_attempt: Default::default(),
            });
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
            recent: Default::default(),
            service_status: Default::default(),
        });
        let gw = Arc::new(Gateway {
            pair,
            broker,
            journal,
            sequencer,
            answers: Arc::default(),
            hubs: Arc::default(),
            admin_token,
            stats: Arc::new(Stats::default()),
            ids_ready: Arc::new(AtomicBool::new(false)),
            paired: Arc::new(AtomicBool::new(false)),
            pairing_blocked: Arc::new(std::sync::Mutex::new(None)),
            source_pick: Arc::new(std::sync::Mutex::new(None)),
            picked: tokio::sync::Notify::new(),
            gate: Arc::new(tokio::sync::RwLock::new(())),
            progress: Arc::new(std::sync::Mutex::new(None)),
            attempts: Default::default(),
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
                answers: gw.answers.clone(),
                per_try,
                gate: gw.gate.clone(),
                progress: gw.progress.clone(),
                paired: gw.paired.clone(),
                ids_ready: gw.ids_ready.clone(),
                pairing_blocked: gw.pairing_blocked.clone(),
                source_pick: gw.source_pick.clone(),
                stats: gw.stats.clone(),
                attempts: gw.attempts.clone(),
            };
            tokio::spawn(applier.run());
        }
        tokio::spawn(pair_up(gw.clone()));
        tokio::spawn(settle_picks(gw.clone()));
        tokio::spawn(anti_entropy(gw.clone()));
        tokio::spawn(flush_sessions(gw.clone()));
        tokio::spawn(trim_journal(gw.clone()));
        Ok(gw)
    }

    pub fn tls(&self) -> Result<Option<tokio_rustls::TlsAcceptor>, StartError> {
        match &self.cfg.listen.transport {
            Transport::Tls { cert, key } => Ok(Some(crate::front::tls_acceptor(cert, key)?)),
            Transport::InsecureHttp => Ok(None),
        }
    }
}

/// What pairing needs to know of a chassis: its highest id (rows and
/// counters, every table), whether it holds data beyond a first start, and
/// its digest. Read with the gateway's service account.
struct Inspection {
    highest: u64,
    has_data: bool,
    digest: String,
}

async fn inspect(gw: &Gateway, i: usize) -> Option<Inspection> {
    let body =
        crate::resync::service_call(&gw.broker, &gw.pair, i, Method::GET, "/api/v1/system/export", None, gw.cfg.timeouts.per_try * 5)
            .await
            .map_err(|e| tracing::warn!("export for pairing: {e}"))
            .ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let mut highest = 0u64;
    let mut has_data = false;
    for (name, table) in doc["tables"].as_object()? {
        highest = highest.max(table["next_id"].as_u64().unwrap_or(1).saturating_sub(1));
        let rows = table["rows"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for row in rows {
            highest = highest.max(row["id"].as_u64().unwrap_or(0));
        }
        // A first start holds the admin account, the gateway's own account
        // and the physical inputs only.
        let service = &gw.broker.service[i].username;
        has_data |= match name.as_str() {
            "users" => rows.iter().any(|r| r["username"] != "admin" && r["username"].as_str() != Some(service.as_str())),
            "sources" => rows.iter().any(|r| r["builtin"] != true),
            _ => !rows.is_empty(),
        };
    }
    let digest = crate::resync::digest(&gw.broker, &gw.pair, i, gw.cfg.timeouts.per_try).await.ok()?;
    Some(Inspection { highest, has_data, digest })
}

const FLOOR_FILE: &str = "id_floor.established";

/// The files the gateway keeps in its state directory that hold no key: made
/// 0600 at start if an older gateway left them wider. (Key files with a wider
/// mode are refused, not tightened: others may have read them.)
const STATE_FILES: [&str; 8] = [
    "journal.sqlite",
    "journal.sqlite-wal",
    "journal.sqlite-shm",
    "journal.lock",
    crate::session::SESSIONS_DB_FILE,
    "sessions.sqlite-wal",
    "sessions.sqlite-shm",
    FLOOR_FILE,
];

/// First start in front of two chassis: make them one before serving
/// mutations. Raise the id counter above every id either holds; if their
/// states differ, the one with data is the source and the other is rebuilt
/// from it; if both hold different data, refuse to guess and say what to run.
///
/// On later starts the persisted counter is already above both. Joining waits
/// (at most [`start_grace`]) until both chassis answer, so that when both are
/// back with different data the appliers decide between them (only one that
/// matches its last verified point is a reference; see `Applier::join`)
/// instead of the first to answer being taken in sync alone.
async fn pair_up(gw: Arc<Gateway>) {
    let marker = gw.cfg.state.dir.join(FLOOR_FILE);
    if marker.exists() {
        gw.ids_ready.store(true, Ordering::SeqCst);
        let grace = start_grace(gw.cfg.timeouts.down_after);
        let both = tokio::select! {
            _ = gw.shutdown.cancelled() => return,
            both = both_reachable(&gw.pair, grace) => both,
        };
        if !both {
            tracing::warn!(?grace, "a chassis did not answer at start; the other serves on the journal without a peer to compare with");
        }
        gw.paired.store(true, Ordering::SeqCst);
        return;
    }
    let mut seen: [Option<Inspection>; 2] = [None, None];
    let mut delay = Duration::from_millis(100);
    while seen.iter().any(Option::is_none) {
        for (i, slot) in seen.iter_mut().enumerate() {
            if slot.is_none() {
                *slot = inspect(&gw, i).await;
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
    let [Some(a), Some(b)] = seen else { return };
    let floor = a.highest.max(b.highest) + 1;
    if let Err(e) = gw.sequencer.ensure_id_floor(floor).await {
        tracing::error!("raising the id counter: {e}");
        return;
    }
    let names = [gw.pair.members[0].upstream.name.clone(), gw.pair.members[1].upstream.name.clone()];
    if a.digest != b.digest {
        match (a.has_data, b.has_data) {
            (true, true) => {
                let msg = format!(
                    "chassis {} and {} hold different data; the gateway will not guess which to keep. \
                     Run `pairgate resync {} --config <gateway.toml>` to copy {} onto {} (or the reverse)",
                    names[0], names[1], names[1], names[0], names[1]
                );
                tracing::error!("{msg}");
                if let Ok(mut b) = gw.pairing_blocked.lock() {
                    *b = Some(msg);
                }
                // Released by an admin resync (see `request_resync`).
                return;
            }
            (true, false) | (false, false) => gw.pair.members[1].resync.request(Reason::InitialPairing),
            (false, true) => gw.pair.members[0].resync.request(Reason::InitialPairing),
        }
    }
    complete_pairing(&gw);
    tracing::info!(floor, "paired: id counter above every id on both chassis");
}

/// Unblocks a blocked pair once an operator picked its source: raises the id
/// counter above every id the source holds now (it may have been written to
/// directly; the target is rebuilt from it), then accepts mutations again and
/// lets the source join (as the operator's pick) and the target be rebuilt.
async fn settle_picks(gw: Arc<Gateway>) {
    loop {
        tokio::select! {
            _ = gw.shutdown.cancelled() => return,
            _ = gw.picked.notified() => {}
        }
        let mut delay = Duration::from_millis(100);
        loop {
            let blocked = gw.pairing_blocked.lock().map(|b| b.is_some()).unwrap_or(false);
            let source = gw.source_pick.lock().map(|p| *p).unwrap_or(None);
            let Some(source) = source.filter(|_| blocked) else { break };
            match inspect(&gw, source).await {
                Some(seen) => match gw.sequencer.ensure_id_floor(seen.highest + 1).await {
                    Ok(floor) => {
                        complete_pairing(&gw);
                        tracing::info!(floor, source = %gw.pair.members[source].upstream.name, "pairing settled: mutations accepted again");
                        break;
                    }
                    Err(e) => tracing::error!("raising the id counter after the operator's pick: {e}"),
                },
                None => {
                    tracing::warn!(chassis = %gw.pair.members[source].upstream.name, "cannot read the picked source's export yet; retrying")
                }
            }
            tokio::select! {
                _ = gw.shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

/// How long a later start waits for both chassis to answer before letting
/// one join alone: two `down_after`s, at least 2 s.
pub fn start_grace(down_after: Duration) -> Duration {
    (down_after * 2).max(Duration::from_secs(2))
}

/// Whether both chassis left `down` within `limit`.
async fn both_reachable(pair: &Pair, limit: Duration) -> bool {
    let wait = |i: usize| {
        let mut w = pair.members[i].detector.watch();
        async move { w.wait_for(|s| *s != ChassisState::Down).await.is_ok() }
    };
    let both = async { tokio::join!(wait(0), wait(1)) };
    matches!(tokio::time::timeout(limit, both).await, Ok((true, true)))
}

fn complete_pairing(gw: &Gateway) {
    let marker = gw.cfg.state.dir.join(FLOOR_FILE);
    if let Err(e) = write_private(&marker, b"paired\n") {
        // The counter itself is in the journal; without the marker the next start
        // pairs again (inspects both chassis), which is safe, only slower.
        tracing::error!(path = %marker.display(), "recording that pairing is done: {e}");
    }
    gw.ids_ready.store(true, Ordering::SeqCst);
    gw.paired.store(true, Ordering::SeqCst);
    if let Ok(mut b) = gw.pairing_blocked.lock() {
        *b = None;
    }
}

/// Writes `contents` to `path`, created 0600.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

impl Gateway {
    /// Admin action: rebuild chassis `i` from the other one. Also settles a
    /// pair that could not decide alone (`pairing_blocked`): the other chassis
    /// is the operator's pick, made in sync on their word when it joins, and
    /// `i` is rebuilt from it.
    pub fn request_resync(&self, i: usize) {
        let blocked = self.pairing_blocked.lock().map(|b| b.is_some()).unwrap_or(false);
        if blocked {
            if let Ok(mut p) = self.source_pick.lock() {
                *p = Some(Pair::other(i));
            }
            tracing::warn!(
                source = %self.pair.members[Pair::other(i)].upstream.name,
                target = %self.pair.members[i].upstream.name,
                "pairing settled by the operator"
            );
        }
        self.pair.members[i].resync.request(Reason::Requested);
        if blocked {
            self.picked.notify_one();
        }
    }

    /// What verifying and resyncing work with, from this gateway's parts.
    fn resyncer(&self) -> crate::resync::Resyncer<'_> {
        crate::resync::Resyncer {
            gate: &self.gate,
            journal: &self.journal,
            broker: &self.broker,
            pair: &self.pair,
            per_try: self.cfg.timeouts.per_try,
        }
    }

    /// At a graceful shutdown: if both chassis are in sync, compare their
    /// digests once more, which records both chassis' verified point at the
    /// last seq, so the next start knows what each must hold. Bounded; a
    /// failure is only logged.
    pub async fn verify_before_exit(&self) {
        let both = (0..2).all(|i| self.pair.state(i).serves());
        if !both || !self.paired.load(Ordering::SeqCst) {
            return;
        }
        match tokio::time::timeout(EXIT_VERIFY_LIMIT, self.resyncer().verify(None)).await {
            Ok(Ok(v)) if v.equal() => tracing::info!(seq = v.seq, "both chassis verified at exit"),
            Ok(Ok(v)) => tracing::warn!(seq = v.seq, "the chassis' digests differ at exit; the next start decides"),
            Ok(Err(e)) => tracing::warn!("no verify at exit: {e}"),
            Err(_) => tracing::warn!("no verify at exit: took longer than {EXIT_VERIFY_LIMIT:?}"),
        }
    }
}

/// The longest a graceful shutdown spends on its last verify.
const EXIT_VERIFY_LIMIT: Duration = Duration::from_secs(5);

/// While both chassis are in sync, compare their digests now and then; a
/// difference (a change behind the gateway's back) rebuilds the chassis that
/// left its last verified state, or the secondary if that cannot be shown
/// ([`MismatchTarget`]).
async fn anti_entropy(gw: Arc<Gateway>) {
    let mut tick = tokio::time::interval(anti_entropy_every(gw.cfg.timeouts.health_interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = gw.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let both = (0..2).all(|i| gw.pair.state(i).serves());
        let Some(primary) = gw.pair.primary() else { continue };
        if !both || !gw.paired.load(Ordering::SeqCst) {
            continue;
        }
        match gw.resyncer().verify(None).await {
            Ok(v) if v.equal() => {}
            Ok(verdict) => {
                gw.stats.divergences.fetch_add(1, Ordering::Relaxed);
                let target = MismatchTarget::decide(gw.resyncer().references(&verdict), primary);
                let name = &gw.pair.members[target.chassis()].upstream.name;
                match target {
                    MismatchTarget::Diverged(_) => tracing::error!(
                        chassis = %name, seq = verdict.seq,
                        "anti-entropy: digests differ and only this chassis left its last verified state (changed behind the gateway's back); rebuilding it"
                    ),
                    MismatchTarget::Secondary(_) => tracing::error!(
                        chassis = %name, seq = verdict.seq,
                        "anti-entropy: digests differ and mutations were applied since the last verified point, so which one was changed cannot be shown; rebuilding the secondary from the primary"
                    ),
                }
                gw.pair.members[target.chassis()].resync.request(Reason::DigestMismatch);
            }
            Err(e) => tracing::debug!("anti-entropy check skipped: {e}"),
        }
    }
}

/// How often anti-entropy compares digests while both chassis are in sync:
/// every 20 health probes (10 s with the default 500 ms). Each check holds
/// new mutations for the few milliseconds two digests take.
pub fn anti_entropy_every(health_interval: Duration) -> Duration {
    health_interval * 20
}

/// Drop journal entries both chassis applied (and enforce `max_entries` and `max_bytes`).
async fn trim_journal(gw: Arc<Gateway>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = gw.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = gw.journal.truncate().await {
            tracing::warn!("journal truncation: {e}");
        }
        let applied: Result<Vec<u64>, _> = gw.pair.members.iter().map(|m| gw.journal.applied(&m.upstream.name)).collect();
        match applied {
            Ok(a) => {
                let both = a.into_iter().min().unwrap_or(0);
                gw.attempts.forget_through(both);
                gw.answers.forget_through(both);
            }
            Err(e) => tracing::error!("reading the applied positions: {e}"),
        }
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
        flush_once(&gw).await;
    }
    flush_once(&gw).await;
}

/// One flush of the session store; a failure is logged and counted (status
/// `store_errors`), and the next flush writes what this one could not.
async fn flush_once(gw: &Arc<Gateway>) {
    let broker = gw.broker.clone();
    let failed = match tokio::task::spawn_blocking(move || broker.store.flush()).await {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => format!("the flush task: {e}"),
    };
    gw.stats.store_errors.fetch_add(1, Ordering::Relaxed);
    tracing::error!("persisting the sessions' last activity: {failed}");
}
