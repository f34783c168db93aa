//! [`SessionStore`]: gateway sessions and the accounts' sealed credentials.
//!
//! Every request checks its token here, so [`SessionStore::verify`] works from
//! memory: the records are loaded once at [`SessionStore::open`] and written
//! through on every change (issue, revoke), so memory and `sessions.sqlite` agree
//! on which sessions exist.
//!
//! Activity (`last_seen`, which drives the idle timeout) is the exception: it
//! changes on every request, and an fsync per request would be absurd. It is kept
//! in memory and persisted lazily: `verify` writes a session's `last_seen` when the
//! stored value is more than `min(idle_timeout / 4, 60 s)` old (and skips the
//! write if another thread holds the database, retrying on a later request), and
//! [`SessionStore::flush`] (also run on drop) writes all of them. After a crash the
//! stored `last_seen` is therefore at most that interval behind, so a restart can
//! shorten a session's idle allowance by at most a minute, never lengthen it.
//!
//! A session that went idle is refused as [`AuthError::Expired`] from then on
//! (activity is never recorded for a refused token, so it cannot come back). Its
//! record is kept until its absolute lifetime ends, so the answer stays `expired`
//! rather than turning into `revoked`; then the record is purged and the token's
//! own `exp` says `expired`.
//!
//! Blocking: `open`, `issue`, `revoke*`, `*credentials`, `flush` and
//! `purge_expired` write SQLite with `synchronous=FULL` (an fsync); call them from
//! `spawn_blocking` in async code. `verify`, `list` and `count` do not block
//! (`verify`'s occasional lazy write only happens if the database is free).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use super::account::{login_response, AccountInfo};
use super::auth_error::AuthError;
use super::db::{SessionDb, SessionRow};
use super::error::SessionError;
use super::jwt::{Claims, TokenCodec};
use super::role::Role;
use super::sealer::CredentialSealer;
use super::secret::Secret;
use super::time::{duration_ms, now_ms, system_time};

/// The database file in the state directory.
pub const SESSIONS_DB_FILE: &str = "sessions.sqlite";
/// The credentials sealing key in the state directory (mode 0600).
pub const CREDENTIALS_KEY_FILE: &str = "credentials.key";
/// Default idle timeout: 30 minutes, as the chassis' own sessions.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default absolute lifetime of a gateway session: a working day and then some.
pub const DEFAULT_ABSOLUTE_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// The shortest JWT secret accepted: 256 bits, the HS256 hash size.
pub const MIN_JWT_SECRET_LEN: usize = 32;

/// Account names longer than this are refused before they reach the database.
const MAX_USERNAME_LEN: usize = 256;
/// Upper bound of the lazy `last_seen` persistence interval.
const PERSIST_EVERY_MAX_MS: u64 = 60_000;
/// `issue` purges expired records at most this often.
const PURGE_EVERY_MS: u64 = 60_000;

/// The store's settings.
#[derive(Clone)]
pub struct SessionConfig {
    /// The key that signs gateway tokens (the contents of `jwt_secret_file`, read
    /// by the caller). At least [`MIN_JWT_SECRET_LEN`] bytes. Changing it ends
    /// every session.
    pub jwt_secret: Vec<u8>,
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after it was issued, however busy.
    pub absolute_lifetime: Duration,
}

impl SessionConfig {
    /// The given secret with the default timeouts.
    pub fn new(jwt_secret: Vec<u8>) -> Self {
        SessionConfig { jwt_secret, idle_timeout: DEFAULT_IDLE_TIMEOUT, absolute_lifetime: DEFAULT_ABSOLUTE_LIFETIME }
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("jwt_secret", &"<redacted>")
            .field("idle_timeout", &self.idle_timeout)
            .field("absolute_lifetime", &self.absolute_lifetime)
            .finish()
    }
}

/// A freshly issued gateway session.
#[derive(Clone)]
pub struct Issued {
    /// The browser's bearer token (a JWT). Goes into the login answer, nowhere
    /// else; `Debug` does not show it.
    pub token: String,
    pub session_id: String,
    /// When the session ends at the latest (its absolute lifetime).
    pub expires: SystemTime,
}

impl Issued {
    /// The login answer for this session, in the chassis' shape
    /// (`{"token", "user": {"id", "username", "role"}}`).
    pub fn login_response(&self, account: &AccountInfo) -> serde_json::Value {
        login_response(&self.token, account)
    }
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("token", &"<redacted>")
            .field("session_id", &self.session_id)
            .field("expires", &self.expires)
            .finish()
    }
}

/// Who a verified request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub session_id: String,
    pub username: String,
    pub user_id: u64,
    pub role: Role,
}

/// A live gateway session, for the status page. Holds no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub session_id: String,
    pub username: String,
    pub role: Role,
    pub created: SystemTime,
    pub last_seen: SystemTime,
    pub expires: SystemTime,
}

/// A session record in memory.
struct Live {
    username: String,
    user_id: u64,
    role: Role,
    created_ms: u64,
    expires_ms: u64,
    /// Last successful `verify` (or issue).
    last_seen_ms: AtomicU64,
    /// The `last_seen` value the database holds.
    persisted_ms: AtomicU64,
}

impl Live {
    fn from_row(row: &SessionRow) -> Self {
        Live {
            username: row.username.clone(),
            user_id: row.user_id,
            role: row.role,
            created_ms: row.created_ms,
            expires_ms: row.expires_ms,
            last_seen_ms: AtomicU64::new(row.last_seen_ms),
            persisted_ms: AtomicU64::new(row.last_seen_ms),
        }
    }

    /// Neither past its lifetime nor idle too long.
    fn is_alive(&self, now: u64, idle_ms: u64) -> bool {
        now < self.expires_ms && now.saturating_sub(self.last_seen_ms.load(Ordering::Relaxed)) <= idle_ms
    }
}

/// The gateway's sessions and the accounts' sealed credentials; see the module
/// documentation. Share it as `Arc<SessionStore>`.
pub struct SessionStore {
    dir: PathBuf,
    db: Mutex<SessionDb>,
    codec: TokenCodec,
    sealer: CredentialSealer,
    live: RwLock<HashMap<String, Arc<Live>>>,
    idle_ms: u64,
    lifetime: Duration,
    persist_every_ms: u64,
    last_purge_ms: AtomicU64,
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("dir", &self.dir)
            .field("sessions", &self.read_live().len())
            .field("idle_ms", &self.idle_ms)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// The first characters of a session id: enough to follow one session through
/// the logs. (Session ids are not credentials, a token needs the signature too;
/// shortening just keeps log lines readable.)
fn short(sid: &str) -> &str {
    sid.get(..8).unwrap_or(sid)
}

fn check_username(username: &str) -> Result<(), SessionError> {
    if username.is_empty() || username.len() > MAX_USERNAME_LEN {
        return Err(SessionError::InvalidUsername { max: MAX_USERNAME_LEN });
    }
    Ok(())
}

impl SessionStore {
    /// Opens the store in `dir` (created 0700 if missing, made 0700 if wider): `sessions.sqlite` and
    /// the credentials key file, created on first use. Sessions past their
    /// lifetime are dropped; the others are valid again at once.
    pub fn open(dir: &Path, cfg: SessionConfig) -> Result<Self, SessionError> {
        if cfg.jwt_secret.len() < MIN_JWT_SECRET_LEN {
            return Err(SessionError::WeakJwtSecret { len: cfg.jwt_secret.len(), min: MIN_JWT_SECRET_LEN });
        }
        if cfg.idle_timeout.is_zero() {
            return Err(SessionError::ZeroDuration { name: "idle_timeout" });
        }
        if cfg.absolute_lifetime.is_zero() {
            return Err(SessionError::ZeroDuration { name: "absolute_lifetime" });
        }
        crate::state_dir::ensure_private_dir(dir).map_err(|source| SessionError::Io {
            path: dir.to_path_buf(),
            action: "create the state directory",
            source,
        })?;
        let sealer = CredentialSealer::open_or_create(&dir.join(CREDENTIALS_KEY_FILE))?;
        let mut db = SessionDb::open(&dir.join(SESSIONS_DB_FILE))?;

        let now = now_ms();
        let (live_rows, dead): (Vec<_>, Vec<_>) = db.load_sessions()?.into_iter().partition(|r| now < r.expires_ms);
        if !dead.is_empty() {
            let sids: Vec<String> = dead.into_iter().map(|r| r.sid).collect();
            db.delete_sessions(&sids)?;
        }
        let live: HashMap<String, Arc<Live>> = live_rows.iter().map(|r| (r.sid.clone(), Arc::new(Live::from_row(r)))).collect();
        let idle_ms = duration_ms(cfg.idle_timeout);
        tracing::info!(dir = %dir.display(), sessions = live.len(), "session store opened");
        Ok(SessionStore {
            dir: dir.to_path_buf(),
            db: Mutex::new(db),
            codec: TokenCodec::new(&cfg.jwt_secret),
            sealer,
            live: RwLock::new(live),
            idle_ms,
            lifetime: cfg.absolute_lifetime,
            persist_every_ms: (idle_ms / 4).clamp(1, PERSIST_EVERY_MAX_MS),
            last_purge_ms: AtomicU64::new(now),
        })
    }

    // The locks cannot poison (parking_lot): every critical section leaves
    // the maps and the connection consistent.
    fn read_live(&self) -> RwLockReadGuard<'_, HashMap<String, Arc<Live>>> {
        self.live.read()
    }

    fn write_live(&self) -> RwLockWriteGuard<'_, HashMap<String, Arc<Live>>> {
        self.live.write()
    }

    fn lock_db(&self) -> MutexGuard<'_, SessionDb> {
        self.db.lock()
    }

    /// Opens a gateway session for `account` (whose credentials the caller has
    /// just checked against a chassis) and signs its token. The record is on disk
    /// before the token exists.
    pub fn issue(&self, account: &AccountInfo) -> Result<Issued, SessionError> {
        check_username(&account.username)?;
        if i64::try_from(account.user_id).is_err() {
            return Err(SessionError::UserIdOutOfRange(account.user_id));
        }
        let now = now_ms();
        let sid = hex::encode(rand::random::<[u8; 16]>());
        let expires_ms = now.saturating_add(duration_ms(self.lifetime));
        let claims =
            Claims { sid: sid.clone(), sub: account.username.clone(), role: account.role, iat: now / 1000, exp: expires_ms / 1000 };
        let token = self.codec.sign(&claims).map_err(|e| SessionError::Sign(e.to_string()))?;
        let row = SessionRow {
            sid: sid.clone(),
            username: account.username.clone(),
            user_id: account.user_id,
            role: account.role,
            created_ms: now,
            last_seen_ms: now,
            expires_ms,
        };
        self.lock_db().insert_session(&row)?;
        self.write_live().insert(sid.clone(), Arc::new(Live::from_row(&row)));
        tracing::info!(username = %account.username, session = short(&sid), "gateway session opened");
        self.maybe_purge(now);
        Ok(Issued { token, session_id: sid, expires: system_time(expires_ms) })
    }

    /// Who `token` belongs to, if it is a live session of this gateway; records
    /// the activity (see the module documentation for how it is persisted).
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.codec.verify(token)?;
        let entry = self.read_live().get(&claims.sid).cloned().ok_or(AuthError::Revoked)?;
        if entry.username != claims.sub {
            return Err(AuthError::InvalidToken);
        }
        let now = now_ms();
        if !entry.is_alive(now, self.idle_ms) {
            return Err(AuthError::Expired);
        }
        entry.last_seen_ms.fetch_max(now, Ordering::Relaxed);
        if now.saturating_sub(entry.persisted_ms.load(Ordering::Relaxed)) >= self.persist_every_ms {
            self.persist_lazily(&claims.sid, &entry, now);
        }
        Ok(Principal { session_id: claims.sid, username: entry.username.clone(), user_id: entry.user_id, role: entry.role })
    }

    /// Writes one session's `last_seen` if the database is free right now.
    fn persist_lazily(&self, sid: &str, entry: &Live, now: u64) {
        let Some(mut db) = self.db.try_lock() else { return };
        match db.update_last_seen(&[(sid.to_string(), now)]) {
            Ok(()) => {
                entry.persisted_ms.fetch_max(now, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(session = short(sid), error = %e, "could not record session activity; will retry"),
        }
    }

    /// Writes every session's unrecorded activity; how many sessions it wrote.
    /// Run it periodically and at shutdown (drop does it too, best effort).
    pub fn flush(&self) -> Result<usize, SessionError> {
        let pending: Vec<(String, u64, Arc<Live>)> = self
            .read_live()
            .iter()
            .filter_map(|(sid, s)| {
                let seen = s.last_seen_ms.load(Ordering::Relaxed);
                (seen > s.persisted_ms.load(Ordering::Relaxed)).then(|| (sid.clone(), seen, Arc::clone(s)))
            })
            .collect();
        let rows: Vec<(String, u64)> = pending.iter().map(|(sid, seen, _)| (sid.clone(), *seen)).collect();
        self.lock_db().update_last_seen(&rows)?;
        for (_, seen, s) in &pending {
            s.persisted_ms.fetch_max(*seen, Ordering::Relaxed);
        }
        Ok(pending.len())
    }

    /// Ends one gateway session (logout). The account's other sessions, and the
    /// backend sessions they share, stay. Whether the session existed.
    pub fn revoke(&self, session_id: &str) -> Result<bool, SessionError> {
        // Memory first: the token stops working now, even if the disk write fails.
        let in_memory = self.write_live().remove(session_id).is_some();
        let on_disk = self.lock_db().delete_session(session_id)?;
        if in_memory || on_disk {
            tracing::info!(session = short(session_id), "gateway session ended");
        }
        Ok(in_memory || on_disk)
    }

    /// Ends every gateway session of `username` and forgets its stored
    /// credentials (its password changed, or the account was deleted). How many
    /// sessions ended. The caller also drops the account's backend sessions
    /// ([`super::BackendSessions::forget_user`]).
    pub fn revoke_account(&self, username: &str) -> Result<usize, SessionError> {
        let mut in_memory = 0;
        self.write_live().retain(|_, s| {
            let keep = s.username != username;
            in_memory += usize::from(!keep);
            keep
        });
        let on_disk = self.lock_db().delete_account(username)?;
        let ended = in_memory.max(on_disk);
        tracing::info!(%username, sessions = ended, "all gateway sessions and stored credentials of the account revoked");
        Ok(ended)
    }

    /// The usernames that gateway sessions of chassis user `user_id` were issued
    /// to (one, unless the account was renamed meanwhile).
    pub fn usernames_of(&self, user_id: u64) -> Vec<String> {
        let mut names: Vec<String> = self.read_live().values().filter(|s| s.user_id == user_id).map(|s| s.username.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// The live sessions (not expired, not idle), oldest first.
    pub fn list(&self) -> Vec<SessionSummary> {
        let now = now_ms();
        let mut out: Vec<SessionSummary> = self
            .read_live()
            .iter()
            .filter(|(_, s)| s.is_alive(now, self.idle_ms))
            .map(|(sid, s)| SessionSummary {
                session_id: sid.clone(),
                username: s.username.clone(),
                role: s.role,
                created: system_time(s.created_ms),
                last_seen: system_time(s.last_seen_ms.load(Ordering::Relaxed)),
                expires: system_time(s.expires_ms),
            })
            .collect();
        out.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.session_id.cmp(&b.session_id)));
        out
    }

    /// How many sessions are live (not expired, not idle).
    pub fn count(&self) -> usize {
        let now = now_ms();
        self.read_live().values().filter(|s| s.is_alive(now, self.idle_ms)).count()
    }

    /// Removes the records of sessions past their absolute lifetime; how many.
    /// `issue` runs it at most once a minute; a periodic task may run it too.
    pub fn purge_expired(&self) -> Result<usize, SessionError> {
        self.purge_at(now_ms())
    }

    fn purge_at(&self, now: u64) -> Result<usize, SessionError> {
        let dead: Vec<String> = {
            let mut live = self.write_live();
            let dead: Vec<String> = live.iter().filter(|(_, s)| now >= s.expires_ms).map(|(sid, _)| sid.clone()).collect();
            for sid in &dead {
                live.remove(sid);
            }
            dead
        };
        if dead.is_empty() {
            return Ok(0);
        }
        let n = self.lock_db().delete_sessions(&dead)?;
        tracing::debug!(sessions = dead.len(), "purged expired gateway sessions");
        Ok(n.max(dead.len()))
    }

    fn maybe_purge(&self, now: u64) {
        let last = self.last_purge_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < PURGE_EVERY_MS {
            return;
        }
        if self.last_purge_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            if let Err(e) = self.purge_at(now) {
                tracing::warn!(error = %e, "could not purge expired gateway sessions");
            }
        }
    }

    /// Seals and stores the password of `username`, replacing what was stored.
    /// Call it after each successful login, so the gateway can log in again on
    /// the account's behalf later (even after its own restart).
    pub fn remember_credentials(&self, username: &str, password: &str) -> Result<(), SessionError> {
        check_username(username)?;
        let sealed = self.sealer.seal(username, password)?;
        self.lock_db().put_credentials(username, &sealed, now_ms())?;
        tracing::debug!(%username, "stored the account's sealed credentials");
        Ok(())
    }

    /// Deletes the sealed password of `username` (the account was deleted: the
    /// gateway must no longer be able to log in as it). Its gateway sessions are
    /// not touched (see [`SessionStore::revoke_account`] for both). Whether a
    /// password was stored.
    pub fn forget_credentials(&self, username: &str) -> Result<bool, SessionError> {
        check_username(username)?;
        let forgotten = self.lock_db().delete_credentials(username)?;
        if forgotten {
            tracing::info!(%username, "forgot the account's sealed credentials");
        }
        Ok(forgotten)
    }

    /// The stored password of `username`, unsealed; `None` if none is stored.
    pub fn credentials(&self, username: &str) -> Result<Option<Secret>, SessionError> {
        let Some(sealed) = self.lock_db().get_credentials(username)? else {
            return Ok(None);
        };
        self.sealer.unseal(username, &sealed).map(Some)
    }

    /// The idle timeout in force.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_ms)
    }

    /// The state directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SessionStore {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "could not record session activity at shutdown");
        }
    }
}
