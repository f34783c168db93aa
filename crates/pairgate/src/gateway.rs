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
//! 5. start pairing ([`crate::recovery::pairing`]): the id floor (above every
//!    id either chassis holds) before the first mutation is accepted; on later
//!    starts, the chassis join only once both answer (or the start grace
//!    passed), so two chassis that came back different are judged against
//!    their last verified points; and anti-entropy, the journal's trimming,
//!    the sessions' flush — every background task in [`Tasks`];
//! 6. serve the front (`serve.rs`). Stopping, in order: the front stops
//!    accepting and drains (in-flight mutations complete: appliers and
//!    detectors still run); both chassis are verified once more so the next
//!    start knows what each holds; every background task is told to stop and
//!    awaited; the sessions' last activity is persisted ([`Gateway::stop`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::answers::Answers;
use crate::chassis::applier::Applier;
use crate::chassis::detector::{self, ChassisState};
use crate::chassis::pair::{Member, Pair};
use crate::chassis::upstream::Upstream;
use crate::config::{Config, LiveConfig, SecretSource, Transport};
use crate::journal::{Journal, JournalConfig, Sequencer};
use crate::metrics::Metrics;
use crate::recovery::anti_entropy::AntiEntropy;
use crate::recovery::pairing::{paired_before, Pairer, PairingState, FLOOR_FILE};
use crate::recovery::resync::{Progress, Reason, WriteGate};
use crate::session::broker::{Broker, ServiceAccount};
use crate::session::{LoginLimiter, Secret, SessionConfig, SessionStore};
use crate::tasks::Tasks;
use crate::upkeep;

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
    Upstream(#[from] crate::chassis::upstream::UpstreamError),
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
    /// The configuration that runs now (swapped by a reload, `src/reload.rs`).
    pub cfg: LiveConfig,
    /// The certificate the front serves (none with `insecure_http`).
    pub cert: Option<Arc<crate::front::CertSlot>>,
    /// Held by a reload, so two never interleave.
    pub reloading: Mutex<()>,
    /// `[[collection]]`s, as started (a reload cannot change them).
    pub collections: Arc<[crate::config::Collection]>,
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
    /// Identical reads in flight, sharing one chassis request (`coalesce.rs`).
    pub reads: crate::coalesce::Coalescer,
    /// What `/metrics` shows that is counted as it happens (`metrics.rs`).
    pub metrics: Arc<Metrics>,
    /// Where the pair stands in being made one: whether mutations are
    /// accepted and chassis may join.
    pub pairing: Arc<PairingState>,
    /// Mutations append under a shared hold; verify and export hold it alone.
    pub gate: WriteGate,
    /// The running (or last) full resync.
    pub progress: Arc<Mutex<Option<Progress>>>,
    /// Entries on the wire, voided, accepted (see `attempts.rs`).
    pub attempts: Arc<crate::chassis::attempts::Attempts>,
    /// Cancelled to stop serving (SIGTERM, Ctrl-C, the demo, a test): the
    /// front stops accepting and drains; then [`Gateway::stop`].
    pub shutdown: CancellationToken,
    /// Every background task, stopped by [`Gateway::stop`].
    pub tasks: Tasks,
    /// IDs for a chassis without `id_block` (see `ids/`).
    pub translator: Arc<crate::ids::translator::Translator>,
    /// The superior as the pair's chassis see it (`[cascade]` in gateway.toml).
    pub egress: Option<Arc<crate::cascade::Egress>>,
    /// What happened to the pair, for the dashboard (`timeline.rs`).
    pub timeline: Arc<crate::timeline::Timeline>,
    /// The certificates the status page, `/metrics` and the dashboard show,
    /// parsed once per configuration in force (`certs.rs`).
    pub cert_inventory: crate::certs::InventoryCache,
}

impl Gateway {
    /// Steps 1 to 5 of the start-up (serving is [`crate::serve`]'s).
    pub async fn start(cfg: Config) -> Result<Arc<Gateway>, StartError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let admin_token = Secret::new(read_secret(&cfg.admin_token_file)?);
        let cert = match &cfg.listen.transport {
            Transport::Tls { cert, key } => Some(Arc::new(crate::front::CertSlot::load(cert, key)?)),
            Transport::InsecureHttp => None,
        };
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
        let maps = crate::ids::map::IdMaps::load(journal.clone(), [cfg.chassis[0].name.as_str(), cfg.chassis[1].name.as_str()])
            .map_err(|e| StartError::Journal(e.to_string()))?;
        let translator = Arc::new(crate::ids::translator::Translator::new(cfg.routes.clone(), cfg.events.clone(), Arc::new(maps)));
        let egress = match &cfg.cascade {
            Some(c) => {
                let pw = c.superior.as_ref().map(|s| password(&s.password)).transpose()?;
                Some(Arc::new(crate::cascade::Egress::new(c, pw, cfg.routes.clone(), &jwt_secret, cfg.timeouts.per_try)?))
            }
            None => None,
        };
        let session_cfg = SessionConfig { jwt_secret, idle_timeout: cfg.sessions.idle_timeout, ..SessionConfig::new(Vec::new()) };
        let store = SessionStore::open(&dir, session_cfg).map_err(|e| StartError::Sessions(e.to_string()))?;

        let per_try = cfg.timeouts.per_try;
        let metrics = Arc::new(Metrics::new(journal.commit_seconds()));
        let tasks = Tasks::default();
        let mut members = Vec::with_capacity(2);
        let mut service = Vec::with_capacity(2);
        for (i, c) in cfg.chassis.iter().enumerate() {
            let upstream = Arc::new(Upstream::new(&c.name, c.url.clone(), c.ca_cert.as_deref(), per_try)?.counted(metrics.clone()));
            let detector = detector::spawn(&tasks, &c.name, ChassisState::Down, cfg.timeouts.down_after);
            members.push(Member {
                index: i,
                upstream,
                detector,
                last_error: Default::default(),
                resync: Default::default(),
                resyncs_done: Default::default(),
                resyncs_failed: Default::default(),
                resync_attempt: Default::default(),
                unknown_outcome: Default::default(),
                most_in_flight: Default::default(),
                rebuilding: Default::default(),
                maintenance: Default::default(),
                features: Default::default(),
            });
            service.push(ServiceAccount { username: c.username.clone(), password: password(&c.password)? });
        }
        let preferred = cfg.chassis.iter().position(|c| c.preferred_primary).unwrap_or(0);
        let [m0, m1]: [Member; 2] = members.try_into().map_err(|_| StartError::Journal("exactly two chassis".into()))?;
        let [s0, s1]: [ServiceAccount; 2] = service.try_into().map_err(|_| StartError::Journal("exactly two chassis".into()))?;
        let pair = Arc::new(Pair::new([m0, m1], preferred));
        // Before a restart either chassis may have shown any entry the
        // journal holds: neither answers a read before it applied them.
        for i in 0..2 {
            pair.showed(i, journal.last_seq());
        }
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
            hubs: Arc::new(crate::events::Hubs::new(tasks.clone(), translator.clone())),
            admin_token,
            stats: Arc::new(Stats::default()),
            reads: Default::default(),
            metrics,
            pairing: Arc::new(PairingState::new(paired_before(&dir))),
            gate: Arc::new(tokio::sync::RwLock::new(())),
            progress: Arc::new(Mutex::new(None)),
            attempts: Default::default(),
            shutdown: CancellationToken::new(),
            tasks,
            translator,
            egress,
            collections: cfg.collections.clone().into(),
            cert,
            reloading: Mutex::new(()),
            cfg: Arc::new(arc_swap::ArcSwap::from_pointee(cfg)),
            timeline: Arc::default(),
            cert_inventory: Default::default(),
        });
        gw.spawn_background();
        Ok(gw)
    }

    /// Step 4 and 5's tasks: per chassis a health prober and an applier (its
    /// detector is already running), then pairing, anti-entropy and upkeep.
    fn spawn_background(self: &Arc<Self>) {
        let cfg = self.cfg.load_full();
        let timeouts = &cfg.timeouts;
        if let Some(egress) = &self.egress {
            self.tasks.spawn("cascade resend", egress.clone().resend_failed());
        }
        for i in 0..2 {
            let m = &self.pair.members[i];
            let probe =
                crate::chassis::health::probe(m.upstream.clone(), m.detector.clone(), m.last_error.clone(), timeouts.health_interval);
            self.tasks.spawn("health", probe);
            let applier = Applier {
                index: i,
                pair: self.pair.clone(),
                broker: self.broker.clone(),
                journal: self.journal.clone(),
                answers: self.answers.clone(),
                gate: self.gate.clone(),
                progress: self.progress.clone(),
                pairing: self.pairing.clone(),
                stats: self.stats.clone(),
                attempts: self.attempts.clone(),
                collections: self.collections.clone(),
                translator: self.translator.clone(),
                egress: self.egress.clone(),
                cfg: self.cfg.clone(),
                max_in_flight: cfg.journal.max_in_flight as usize,
            };
            self.tasks.spawn("applier", applier.run());
            let configured = cfg.chassis[i].features;
            let discover = crate::recovery::discovery::discover(self.pair.clone(), self.broker.clone(), i, configured, timeouts.per_try);
            self.tasks.spawn("feature discovery", discover);
        }
        let pairer = Arc::new(Pairer {
            pair: self.pair.clone(),
            broker: self.broker.clone(),
            sequencer: self.sequencer.clone(),
            state: self.pairing.clone(),
            state_dir: cfg.state.dir.clone(),
            per_try: timeouts.per_try,
            down_after: timeouts.down_after,
            collections: self.collections.clone(),
            translator: self.translator.clone(),
        });
        self.tasks.spawn("pairing", pairer.clone().pair_up());
        self.tasks.spawn("operator picks", pairer.settle_picks());
        let anti_entropy = AntiEntropy {
            gate: self.gate.clone(),
            journal: self.journal.clone(),
            broker: self.broker.clone(),
            pair: self.pair.clone(),
            pairing: self.pairing.clone(),
            stats: self.stats.clone(),
            per_try: timeouts.per_try,
            every: crate::recovery::anti_entropy::every(timeouts.health_interval),
            collections: self.collections.clone(),
            translator: self.translator.clone(),
        };
        self.tasks.spawn("anti-entropy", anti_entropy.run());
        let trim = upkeep::trim_journal(self.journal.clone(), self.pair.clone(), self.attempts.clone(), self.answers.clone());
        self.tasks.spawn("journal trim", trim);
        self.tasks.spawn("session flush", upkeep::flush_sessions(self.broker.clone(), self.stats.clone()));
        let (pair, stats) = (self.pair.clone(), self.stats.clone());
        let view = move || crate::timeline::View {
            names: [pair.members[0].upstream.name.clone(), pair.members[1].upstream.name.clone()],
            states: [pair.state(0), pair.state(1)],
            primary: pair.last_primary(),
            resyncs_done: [0, 1].map(|i| pair.members[i].resyncs_done.load(std::sync::atomic::Ordering::SeqCst)),
            resyncs_failed: [0, 1].map(|i| pair.members[i].resyncs_failed.load(std::sync::atomic::Ordering::SeqCst)),
            divergences: stats.divergences.load(std::sync::atomic::Ordering::Relaxed),
        };
        let states = [self.pair.members[0].detector.watch(), self.pair.members[1].detector.watch()];
        self.tasks.spawn("timeline", crate::timeline::watch(self.timeline.clone(), states, view));
        // A warning now and once a day for each certificate near its expiry.
        let slot = self.cert.clone();
        self.tasks.spawn("certificate expiry", crate::certs::watch(self.cfg.clone(), move || slot.as_ref().map(|s| s.chain())));
    }

    /// The front's TLS acceptor (none with `insecure_http`): it serves the
    /// certificate in [`Gateway::cert`], which a reload may replace.
    pub fn tls(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.cert.clone().map(crate::front::tls_acceptor)
    }
}

/// The journal's files on disk under the state directory `dir` (database,
/// write-ahead log, shared memory), in bytes; a file not there counts 0.
pub fn journal_disk_bytes(dir: &Path) -> u64 {
    ["journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

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

impl Gateway {
    /// Admin action: rebuild chassis `i` from the other one. Also settles a
    /// pair that could not decide alone (`pairing_blocked`): the other chassis
    /// is the operator's pick, made in sync on their word when it joins, and
    /// `i` is rebuilt from it.
    pub fn request_resync(&self, i: usize) {
        if self.pairing.operator_pick(Pair::other(i)) {
            tracing::warn!(
                source = %self.pair.members[Pair::other(i)].upstream.name,
                target = %self.pair.members[i].upstream.name,
                "pairing settled by the operator"
            );
        }
        self.pair.members[i].resync.request(Reason::Requested);
    }

    /// What verifying and resyncing work with, from this gateway's parts.
    fn resyncer(&self) -> crate::recovery::resync::Resyncer<'_> {
        crate::recovery::resync::Resyncer {
            gate: &self.gate,
            journal: &self.journal,
            broker: &self.broker,
            pair: &self.pair,
            per_try: self.cfg.load().timeouts.per_try,
            collections: &self.collections,
            translator: &self.translator,
        }
    }

    /// At a graceful shutdown: if both chassis are in sync, compare their
    /// digests once more, which records both chassis' verified point at the
    /// last seq, so the next start knows what each must hold. Bounded; a
    /// failure is only logged.
    pub async fn verify_before_exit(&self) {
        let both = (0..2).all(|i| self.pair.state(i).serves());
        if !both || !self.pairing.lets_join() {
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

/// The longest [`Gateway::stop`] waits for the background tasks.
const TASKS_STOP_LIMIT: Duration = Duration::from_secs(5);

impl Gateway {
    /// After the front drained: verify both chassis once more, tell every
    /// background task to stop and wait for each (at most
    /// [`TASKS_STOP_LIMIT`]), then persist the sessions' last activity. The
    /// journal's writer ends when the last handle goes, writing the applied
    /// positions.
    pub async fn stop(&self) {
        self.verify_before_exit().await;
        let left = self.tasks.stop(TASKS_STOP_LIMIT).await;
        if left > 0 {
            tracing::warn!(left, "background tasks still running after {TASKS_STOP_LIMIT:?}; leaving them to the runtime's end");
        }
        upkeep::flush_once(&self.broker, &self.stats).await;
        tracing::info!("stopped");
    }
}
