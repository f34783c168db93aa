//! One chassis: its tables, its state file, its sessions, its event stream.
//!
//! Every mutation goes through [`Chassis::mutate`], which is the chassis'
//! one-writer rule spelled out: take the lock, answer a remembered
//! `Idempotency-Key` from memory, run the handler on a [`Tx`], roll back on
//! error, else persist the changed rows (and the key) in one SQLite
//! transaction, then publish the events and start any calls to other systems.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::cascade::Effect;
use crate::db::{Db, Tx, EXPORT_FORMAT};
use crate::error::{ApiError, ApiResult};
use crate::faults::Faults;
use crate::ids::{AutoIncrement, IdBlock};
use crate::model::*;
use crate::session::{Session, Sessions};
use crate::store::{Idempotency, Store, StoreError, StoredReply};

/// What the chassis advertises in `GET /system/info` `features`; each can be
/// switched off (`--without NAME`) to act like older firmware.
#[derive(Clone, Debug)]
pub struct Features {
    pub id_block: bool,
    pub idempotency_key: bool,
    pub export_import: bool,
    pub origin_seq: bool,
    /// `GET /system/digest` (off: that route does not exist).
    pub digest: bool,
}

impl Default for Features {
    fn default() -> Self {
        Features { id_block: true, idempotency_key: true, export_import: true, origin_seq: true, digest: true }
    }
}

impl Features {
    /// Every feature by name, in the order `features` lists them: the one
    /// place a name is spelled, for the listing and for `--without`.
    fn flags(&mut self) -> [(&'static str, &mut bool); 5] {
        [
            ("id_block", &mut self.id_block),
            ("idempotency_key", &mut self.idempotency_key),
            ("export_import", &mut self.export_import),
            ("origin_seq", &mut self.origin_seq),
            ("digest", &mut self.digest),
        ]
    }

    /// The names of every feature there is.
    pub fn all_names() -> Vec<&'static str> {
        Features::default().names()
    }

    /// The names of the features that are on.
    pub fn names(&self) -> Vec<&'static str> {
        self.clone().flags().into_iter().filter(|(_, on)| **on).map(|(name, _)| name).collect()
    }

    /// Switch one feature off by name; an unknown name is an error naming the known ones.
    pub fn switch_off(&mut self, name: &str) -> Result<(), String> {
        match self.flags().into_iter().find(|(n, _)| *n == name) {
            Some((_, on)) => {
                *on = false;
                Ok(())
            }
            None => Err(format!("--without {name}: unknown feature ({})", Features::all_names().join(", "))),
        }
    }
}

/// Start-up options of one chassis.
#[derive(Clone, Debug)]
pub struct ChassisConfig {
    pub serial: String,
    pub inputs: u32,
    pub outputs: u32,
    /// `None`: in memory only (`--ephemeral`).
    pub state_dir: Option<PathBuf>,
    /// Whether the `/_sim` fault hooks answer.
    pub hooks: bool,
    pub features: Features,
    /// How the tables' own counters behave (`--auto-increment`).
    pub auto_increment: AutoIncrement,
    pub session_idle: Duration,
    /// The URL other systems reach this chassis at (cascade registration).
    pub public_url: String,
    /// Largest accepted request body, except `PUT /system/import`.
    pub max_body: usize,
    /// Largest accepted import document.
    pub max_import: usize,
    /// Extra trust anchor for calls to a superior/subordinate over HTTPS.
    pub peer_ca: Option<PathBuf>,
}

impl Default for ChassisConfig {
    fn default() -> Self {
        ChassisConfig {
            serial: "SIM-0001".into(),
            inputs: 16,
            outputs: 16,
            state_dir: None,
            hooks: false,
            features: Features::default(),
            auto_increment: AutoIncrement::default(),
            session_idle: Duration::from_secs(30 * 60),
            public_url: String::new(),
            max_body: 1 << 20,
            max_import: 256 << 20,
            peer_ca: None,
        }
    }
}

/// The answer of a handler: a status and an optional JSON body.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Option<Value>,
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply { status: StatusCode::OK, body: Some(body) }
    }
    pub fn created(body: Value) -> Reply {
        Reply { status: StatusCode::CREATED, body: Some(body) }
    }
    pub fn no_content() -> Reply {
        Reply { status: StatusCode::NO_CONTENT, body: None }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self.body {
            Some(b) => (self.status, axum::Json(b)).into_response(),
            None => self.status.into_response(),
        }
    }
}

/// What a mutation carries besides its body.
#[derive(Clone, Debug)]
pub struct MutationCtx {
    pub session: Session,
    pub idem_key: Option<String>,
    pub block: Option<IdBlock>,
    /// `X-Origin-Seq: <origin>/<seq>`, passed on to calls this request causes.
    pub origin: Option<String>,
}

struct Inner {
    db: Db,
    store: Store,
    idem: Idempotency,
    event_seq: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("creating the state directory {0}: {1}")]
    StateDir(PathBuf, std::io::Error),
    #[error("hashing the first admin password: {0}")]
    Hash(String),
}

pub struct Chassis {
    pub cfg: ChassisConfig,
    inner: Mutex<Inner>,
    pub sessions: Mutex<Sessions>,
    events: broadcast::Sender<Arc<str>>,
    pub faults: Arc<Faults>,
    pub cascade: crate::cascade::CascadeClient,
}

impl Chassis {
    /// Open (or create) the chassis' state and seed a first start.
    pub fn open(mut cfg: ChassisConfig) -> Result<Arc<Chassis>, StartError> {
        if let Some(dir) = &cfg.state_dir {
            std::fs::create_dir_all(dir).map_err(|e| StartError::StateDir(dir.clone(), e))?;
        }
        let (mut store, loaded) = Store::open(cfg.state_dir.as_deref())?;
        let mut db = loaded.db;
        if loaded.fresh {
            seed(&mut db, &cfg)?;
            store.replace_all(&db, &loaded.idem)?;
            store.set_meta("inputs", &cfg.inputs.to_string())?;
            store.set_meta("outputs", &cfg.outputs.to_string())?;
        } else {
            // The hardware does not change between boots: the first start's
            // port counts win over the command line.
            if let Some(n) = loaded.meta.get("inputs").and_then(|v| v.parse().ok()) {
                cfg.inputs = n;
            }
            if let Some(n) = loaded.meta.get("outputs").and_then(|v| v.parse().ok()) {
                cfg.outputs = n;
            }
            // MySQL before 8.0 kept its counters in memory only: they come
            // back from the rows (the stored ones are not read).
            if cfg.auto_increment == AutoIncrement::Mysql57 {
                db.recount_auto_increment();
            }
        }
        let (events, _) = broadcast::channel(4096);
        let cascade = crate::cascade::CascadeClient::new(cfg.peer_ca.as_deref());
        Ok(Arc::new(Chassis {
            sessions: Mutex::new(Sessions::new(cfg.session_idle)),
            faults: Arc::new(Faults::new(cfg.hooks)),
            cfg,
            inner: Mutex::new(Inner { db, store, idem: loaded.idem, event_seq: 0 }),
            events,
            cascade,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied request
        // behind (Tx rolls back on drop paths we control), so poisoning is
        // recovered rather than propagated.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run a read against the current state.
    pub fn read<R>(&self, f: impl FnOnce(&Db) -> R) -> R {
        f(&self.lock().db)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.events.subscribe()
    }

    /// Apply one mutation: the only way state changes.
    pub fn mutate(self: &Arc<Self>, ctx: &MutationCtx, f: impl FnOnce(&mut Tx) -> ApiResult<Reply>) -> ApiResult<Reply> {
        let key = if self.cfg.features.idempotency_key { ctx.idem_key.as_deref() } else { None };
        let block = if self.cfg.features.id_block { ctx.block } else { None };
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Some(stored) = key.and_then(|k| inner.idem.get(k)) {
            return Ok(Reply { status: StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK), body: stored.body.clone() });
        }
        let mut tx = Tx::new(&mut inner.db, block, self.cfg.auto_increment);
        let reply = match f(&mut tx) {
            Ok(r) => r,
            Err(e) => {
                tx.rollback();
                return Err(e);
            }
        };
        let (changes, events, effects) = tx.finish();
        let stored = StoredReply { status: reply.status.as_u16(), body: reply.body.clone() };
        let remember = key.filter(|_| reply.status.is_success());
        if let Err(e) = inner.store.commit(&inner.db, &changes, remember.map(|k| (k, &stored))) {
            changes.revert(&mut inner.db);
            return Err(ApiError::Storage(e.to_string()));
        }
        if let Some(k) = remember {
            inner.idem.remember(k.to_string(), stored);
        }
        for ev in events {
            inner.event_seq += 1;
            let text = json!({"seq": inner.event_seq, "type": ev.kind, "data": ev.data}).to_string();
            let _ = self.events.send(Arc::from(text));
        }
        drop(guard);
        if !effects.is_empty() {
            let origin = if self.cfg.features.origin_seq { ctx.origin.clone() } else { None };
            self.run_effects(effects, origin);
        }
        Ok(reply)
    }

    fn run_effects(self: &Arc<Self>, effects: Vec<Effect>, origin: Option<String>) {
        let me = self.clone();
        tokio::spawn(async move {
            for (k, effect) in effects.into_iter().enumerate() {
                let key = origin.as_ref().map(|o| format!("{o}/{}", k + 1));
                me.cascade.run(&me, effect, key).await;
            }
        });
    }

    /// The whole state as the export document.
    pub fn export(&self) -> Value {
        let inner = self.lock();
        let idem: Vec<Value> = inner.idem.iter().map(|(k, r)| json!({"key": k, "status": r.status, "body": r.body})).collect();
        json!({
            "format": EXPORT_FORMAT,
            "serial": self.cfg.serial,
            "tables": inner.db.export_tables(),
            "idempotency": idem,
        })
    }

    /// Replace the whole state with an export document, atomically: a
    /// document that does not parse changes nothing.
    pub fn import(&self, doc: &Value) -> ApiResult<Value> {
        let bad = |m: String| ApiError::invalid("invalid_export", m);
        if doc["format"].as_str() != Some(EXPORT_FORMAT) {
            return Err(bad(format!("the document's \"format\" must be \"{EXPORT_FORMAT}\"")));
        }
        let db = Db::from_export_tables(&doc["tables"]).map_err(bad)?;
        let mut idem = Idempotency::default();
        if let Some(list) = doc.get("idempotency") {
            let list = list.as_array().ok_or_else(|| bad("\"idempotency\" must be an array".into()))?;
            for e in list {
                let key = e["key"].as_str().ok_or_else(|| bad("idempotency entry without key".into()))?;
                let status = e["status"]
                    .as_u64()
                    .and_then(|s| u16::try_from(s).ok())
                    .ok_or_else(|| bad("idempotency entry without status".into()))?;
                let body = if e["body"].is_null() { None } else { Some(e["body"].clone()) };
                idem.remember(key.to_string(), StoredReply { status, body });
            }
        }
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.store.replace_all(&db, &idem).map_err(|e| ApiError::Storage(e.to_string()))?;
        inner.db = db;
        inner.idem = idem;
        let (digest, counts) = inner.db.digest();
        let users = inner.db.users.rows.clone();
        inner.event_seq += 1;
        let text = json!({"seq": inner.event_seq, "type": "system.imported", "data": {"digest": digest}}).to_string();
        let _ = self.events.send(Arc::from(text));
        drop(guard);
        self.sessions().retain_users(|s| users.get(&s.user_id).is_some_and(|u| u.username == s.username && u.role == s.role));
        Ok(json!({"digest": digest, "counts": counts}))
    }

    /// Check a password and open a session (one per account).
    pub async fn login(&self, username: &str, password: &str, force: bool) -> ApiResult<(Session, User)> {
        let user = self.read(|db| db.all::<User>().find(|u| u.username == username).cloned());
        // Verify even for an unknown user, so timing does not say which names exist.
        let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(crate::auth::dummy_hash);
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || crate::auth::verify_password(&pw, &hash)).await.unwrap_or(false);
        let user = match (ok, user) {
            (true, Some(u)) => u,
            _ => return Err(ApiError::BadCredentials),
        };
        let session = self.sessions().open(user.id, &user.username, user.role, force)?;
        Ok((session, user))
    }
}

/// First start: the `admin`/`admin` account and the physical inputs 1..N.
fn seed(db: &mut Db, cfg: &ChassisConfig) -> Result<(), StartError> {
    let hash = crate::auth::hash_password("admin").map_err(StartError::Hash)?;
    db.users.rows.insert(1, User { id: 1, username: "admin".into(), role: Role::Admin, password_hash: hash });
    db.users.next_id = 2;
    for port in 1..=cfg.inputs {
        let id = u64::from(port);
        db.sources.rows.insert(
            id,
            Source {
                id,
                name: format!("Input {port}"),
                kind: SourceKind::Hdmi,
                port: Some(port),
                url: None,
                subordinate_id: None,
                remote_source_id: None,
                builtin: true,
            },
        );
    }
    db.sources.next_id = u64::from(cfg.inputs) + 1;
    Ok(())
}
