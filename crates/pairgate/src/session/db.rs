//! `sessions.sqlite`: where gateway sessions and sealed credentials outlive the
//! gateway process.
//!
//! A gateway restart must not log anyone out (guarantee 4), so session records
//! are written before their token is handed out, with WAL and `synchronous=FULL`:
//! a token the browser holds always names a record that is on disk. The file is
//! created 0600 (SQLite gives its `-wal` and `-shm` files the same mode): it holds
//! no plain secret, but nothing in it is anyone else's business either.
//! `secure_delete` is on: what is deleted is overwritten, not left in free pages.
//!
//! Rows are deleted, not flagged, when a session ends: a token whose record is
//! gone is refused as revoked.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::error::SessionError;
use super::role::Role;

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gateway_sessions (
    sid          TEXT PRIMARY KEY NOT NULL,
    username     TEXT NOT NULL,
    user_id      INTEGER NOT NULL,
    role         TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS gateway_sessions_by_username ON gateway_sessions (username);
CREATE TABLE IF NOT EXISTS account_credentials (
    username   TEXT PRIMARY KEY NOT NULL,
    sealed     BLOB NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT;
";

/// One gateway session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionRow {
    pub sid: String,
    pub username: String,
    pub user_id: u64,
    pub role: Role,
    pub created_ms: u64,
    pub last_seen_ms: u64,
    pub expires_ms: u64,
}

/// The open database.
pub(crate) struct SessionDb {
    conn: Connection,
    path: PathBuf,
}

/// SQLite integers are signed; times and ids here are far below 2^63.
fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl SessionDb {
    /// Opens (creating if needed) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, SessionError> {
        // Create the file ourselves so that it is 0600 from the first byte.
        OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path).map_err(|source| SessionError::Io {
            path: path.to_path_buf(),
            action: "create",
            source,
        })?;
        let conn = Connection::open(path).map_err(|source| SessionError::Db { path: path.to_path_buf(), action: "open", source })?;
        let db = SessionDb { conn, path: path.to_path_buf() };
        db.init()?;
        Ok(db)
    }

    fn err(&self, action: &'static str) -> impl FnOnce(rusqlite::Error) -> SessionError + '_ {
        move |source| SessionError::Db { path: self.path.clone(), action, source }
    }

    fn init(&self) -> Result<(), SessionError> {
        self.conn.busy_timeout(Duration::from_secs(5)).map_err(self.err("set busy timeout"))?;
        // journal_mode answers with a row; the others do not.
        let _mode: String = self.conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(self.err("enable WAL"))?;
        self.conn.execute_batch("PRAGMA synchronous=FULL;").map_err(self.err("set synchronous=FULL"))?;
        // A deleted row (an ended session, forgotten credentials) is zeroed on disk,
        // not left in a free page.
        self.conn.execute_batch("PRAGMA secure_delete=ON;").map_err(self.err("set secure_delete"))?;
        let version: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(self.err("read schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(SessionError::SchemaTooNew { path: self.path.clone(), found: version, supported: SCHEMA_VERSION });
        }
        self.conn
            .execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))
            .map_err(self.err("create schema"))?;
        Ok(())
    }

    pub(crate) fn insert_session(&self, row: &SessionRow) -> Result<(), SessionError> {
        self.conn
            .execute(
                "INSERT INTO gateway_sessions (sid, username, user_id, role, created_ms, last_seen_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    row.sid,
                    row.username,
                    to_sql(row.user_id),
                    row.role.as_str(),
                    to_sql(row.created_ms),
                    to_sql(row.last_seen_ms),
                    to_sql(row.expires_ms)
                ],
            )
            .map_err(self.err("insert session"))?;
        Ok(())
    }

    /// Every stored session. Rows that do not parse (a role this gateway does not
    /// know) are skipped with a warning, not fatal: one bad row must not keep the
    /// gateway from starting.
    pub(crate) fn load_sessions(&self) -> Result<Vec<SessionRow>, SessionError> {
        let mut stmt = self
            .conn
            .prepare("SELECT sid, username, user_id, role, created_ms, last_seen_ms, expires_ms FROM gateway_sessions")
            .map_err(self.err("load sessions"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })
            .map_err(self.err("load sessions"))?;
        let mut out = Vec::new();
        for row in rows {
            let (sid, username, user_id, role, created, last_seen, expires) = row.map_err(self.err("load sessions"))?;
            match role.parse::<Role>() {
                Ok(role) => out.push(SessionRow {
                    sid,
                    username,
                    user_id: from_sql(user_id),
                    role,
                    created_ms: from_sql(created),
                    last_seen_ms: from_sql(last_seen),
                    expires_ms: from_sql(expires),
                }),
                Err(e) => tracing::warn!(%username, error = %e, "skipping a stored session with an unknown role"),
            }
        }
        Ok(out)
    }

    /// Deletes one session; whether it existed.
    pub(crate) fn delete_session(&self, sid: &str) -> Result<bool, SessionError> {
        let n = self.conn.execute("DELETE FROM gateway_sessions WHERE sid = ?1", [sid]).map_err(self.err("delete session"))?;
        Ok(n > 0)
    }

    /// Deletes the given sessions in one transaction; how many existed.
    pub(crate) fn delete_sessions(&mut self, sids: &[String]) -> Result<usize, SessionError> {
        let path = self.path.clone();
        let err = |source| SessionError::Db { path: path.clone(), action: "delete sessions", source };
        let tx = self.conn.transaction().map_err(err)?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare("DELETE FROM gateway_sessions WHERE sid = ?1").map_err(err)?;
            for sid in sids {
                n += stmt.execute([sid]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(n)
    }

    /// Deletes every session and the stored credentials of `username`, in one
    /// transaction; how many sessions there were.
    pub(crate) fn delete_account(&mut self, username: &str) -> Result<usize, SessionError> {
        let path = self.path.clone();
        let err = |source| SessionError::Db { path: path.clone(), action: "revoke account", source };
        let tx = self.conn.transaction().map_err(err)?;
        let n = tx.execute("DELETE FROM gateway_sessions WHERE username = ?1", [username]).map_err(err)?;
        tx.execute("DELETE FROM account_credentials WHERE username = ?1", [username]).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(n)
    }

    /// Records `last_seen` times, in one transaction.
    pub(crate) fn update_last_seen(&mut self, seen: &[(String, u64)]) -> Result<(), SessionError> {
        if seen.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let err = |source| SessionError::Db { path: path.clone(), action: "record activity", source };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx.prepare("UPDATE gateway_sessions SET last_seen_ms = MAX(last_seen_ms, ?2) WHERE sid = ?1").map_err(err)?;
            for (sid, ms) in seen {
                stmt.execute(params![sid, to_sql(*ms)]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(())
    }

    /// Stores (replacing) the sealed credentials of `username`.
    pub(crate) fn put_credentials(&self, username: &str, sealed: &[u8], now_ms: u64) -> Result<(), SessionError> {
        self.conn
            .execute(
                "INSERT INTO account_credentials (username, sealed, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (username) DO UPDATE SET sealed = excluded.sealed, updated_ms = excluded.updated_ms",
                params![username, sealed, to_sql(now_ms)],
            )
            .map_err(self.err("store credentials"))?;
        Ok(())
    }

    /// Deletes the sealed credentials of `username`; whether there were any.
    pub(crate) fn delete_credentials(&self, username: &str) -> Result<bool, SessionError> {
        let n =
            self.conn.execute("DELETE FROM account_credentials WHERE username = ?1", [username]).map_err(self.err("forget credentials"))?;
        Ok(n > 0)
    }

    /// The sealed credentials of `username`, if stored.
    pub(crate) fn get_credentials(&self, username: &str) -> Result<Option<Vec<u8>>, SessionError> {
        self.conn
            .query_row("SELECT sealed FROM account_credentials WHERE username = ?1", [username], |r| r.get(0))
            .optional()
            .map_err(self.err("read credentials"))
    }
}
