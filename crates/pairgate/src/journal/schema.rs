//! The database file: how connections are opened, the tables, and what `open` recovers.
//!
//! `journal.sqlite` in the state directory, in WAL mode with `synchronous=FULL`:
//! a commit returns only after the write-ahead log is fsynced, so an acknowledged
//! mutation survives a power loss, and readers (appliers catching up, idempotency
//! lookups) never block the one writer nor are blocked by it.
//!
//! Tables:
//! - `entries`: the journal itself, one row per seq; `void = 1` marks an entry dropped
//!   by `drop_entry` (both chassis refused it), kept so seqs stay gap-free until it is
//!   truncated with its neighbours; `body_format` says whether `body` is as sent (0)
//!   or sealed with `journal.key` (1, see `keys.rs`). Schema version 2 added that
//!   column; a version 1 journal gets it (every old body reads as plain) on open.
//!   `epoch` (version 3) is the journal's random incarnation when the entry was
//!   appended, part of the key the chassis are sent (`Entry::chassis_idempotency_key`);
//!   entries of an older journal have none and keep the key they were sent with.
//!
//! The file is created 0600 before SQLite opens it (SQLite gives `-wal` and `-shm`
//! the database's mode), and `secure_delete` is on: truncated entries are
//! overwritten with zeros, not left readable in free pages.
//! - `applied`: per chassis name, the highest seq it is known to have applied.
//! - `meta`: `schema_version`, `gateway_id` (random, generated once, never changed),
//!   `last_seq` (the last seq ever committed, kept even when every entry has been
//!   truncated), `next_id` (the id counter; absent until the floor is first set),
//!   `verified/<chassis>` (that chassis' last verified seq and digest, see
//!   `verified.rs`; absent until its state was first verified).
//! - `client_keys`: client `Idempotency-Key` records (see `client_keys.rs`).
//! - `id_map`: per chassis and table, client ID ↔ that chassis' own ID, for
//!   firmware that cannot be given the IDs clients see (see `id_map.rs`).

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::sql_u64::{opt, U64};
use super::JournalError;

pub(crate) const DB_FILE: &str = "journal.sqlite";
pub(crate) const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    seq            INTEGER PRIMARY KEY,
    method         TEXT NOT NULL,
    path_and_query TEXT NOT NULL,
    headers        TEXT NOT NULL,
    body           BLOB NOT NULL,
    id_base        INTEGER,
    id_count       INTEGER,
    account        TEXT NOT NULL,
    client_key     TEXT,
    void           INTEGER NOT NULL DEFAULT 0,
    body_format    INTEGER NOT NULL DEFAULT 0,
    epoch          INTEGER
);
CREATE TABLE IF NOT EXISTS applied (
    chassis TEXT PRIMARY KEY,
    seq     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS client_keys (
    account     TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    seq         INTEGER,
    status      INTEGER,
    headers     TEXT,
    body        BLOB,
    created_ms  INTEGER NOT NULL,
    PRIMARY KEY (account, key)
);
CREATE INDEX IF NOT EXISTS client_keys_by_age ON client_keys (created_ms);
CREATE INDEX IF NOT EXISTS client_keys_by_seq ON client_keys (seq) WHERE seq IS NOT NULL;
";

/// The ID maps (see `id_map.rs`); created on open, also in a journal made
/// before they existed.
pub(crate) const ID_MAP_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS id_map (
    chassis TEXT NOT NULL,
    tbl     TEXT NOT NULL,
    client  INTEGER NOT NULL,
    native  INTEGER NOT NULL,
    PRIMARY KEY (chassis, tbl, client)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS id_map_by_native ON id_map (chassis, tbl, native);
";

/// The one connection that writes: WAL, `synchronous=FULL`, and a bounded wait for a
/// lock someone else holds (there should be no one; see `lock.rs`).
pub(crate) fn open_writer(path: &Path, busy_timeout: Duration) -> Result<Connection, JournalError> {
    let open_err = |e| JournalError::Open { path: path.to_owned(), source: std::sync::Arc::new(e) };
    // Created here, 0600, so that it is never readable by others, not even for the
    // moment before a chmod (SQLite would create it 0644 minus the umask).
    OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path).map_err(|e| JournalError::io(path, e))?;
    let conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(busy_timeout).map_err(open_err)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(JournalError::Corrupt(format!("{}: cannot switch to WAL mode (still {mode})", path.display())));
    }
    // FULL, not NORMAL: in WAL mode NORMAL skips the fsync at commit, and a power loss
    // could then take back mutations the gateway already acknowledged.
    conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
    // Keep the WAL file from staying huge after a burst: truncated to this after a checkpoint.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024).map_err(open_err)?;
    // Deleted rows (truncated entries, expired client keys) are zeroed, so no old
    // body lingers in a free page.
    conn.pragma_update(None, "secure_delete", true).map_err(open_err)?;
    Ok(conn)
}

/// A connection that only reads (`query_only`), for the reader pool.
pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(Duration::from_secs(2))?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// What `open` finds in the database.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) gateway_id: String,
    pub(crate) last_seq: u64,
    /// The lowest seq still stored (`last_seq + 1` when none is).
    pub(crate) oldest: u64,
    /// `None` until the id floor has been set once.
    pub(crate) next_id: Option<u64>,
    /// Applied seq per configured chassis, in configuration order.
    pub(crate) applied: Vec<u64>,
    pub(crate) void: BTreeSet<u64>,
}

/// Creates the tables if needed, generates the gateway id on first open, and reads
/// back everything the sequencer keeps in memory.
pub(crate) fn init_and_recover(conn: &mut Connection, chassis: &[String]) -> Result<Recovered, JournalError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(JournalError::storage)?;
    tx.execute_batch(SCHEMA).map_err(JournalError::storage)?;
    tx.execute_batch(ID_MAP_SCHEMA).map_err(JournalError::storage)?;

    let version: Option<i64> = meta_get(&tx, "schema_version")?;
    match version {
        // A new journal: SCHEMA just created version 3's tables.
        None => meta_set(&tx, "schema_version", SCHEMA_VERSION)?,
        Some(old @ (1 | 2)) => {
            if old == 1 {
                tx.execute_batch("ALTER TABLE entries ADD COLUMN body_format INTEGER NOT NULL DEFAULT 0").map_err(JournalError::storage)?;
            }
            // Entries already there keep the key they were sent with (no epoch).
            tx.execute_batch("ALTER TABLE entries ADD COLUMN epoch INTEGER").map_err(JournalError::storage)?;
            meta_set(&tx, "schema_version", SCHEMA_VERSION)?;
            tracing::info!("journal schema upgraded from version {old} to {SCHEMA_VERSION} (sealed bodies, entry epochs)");
        }
        Some(v) if v == SCHEMA_VERSION => {}
        Some(found) => return Err(JournalError::SchemaVersion { found, supported: SCHEMA_VERSION }),
    }

    let gateway_id = match meta_get::<String>(&tx, "gateway_id")? {
        Some(id) => id,
        None => {
            let id = hex::encode(rand::random::<[u8; 16]>());
            meta_set(&tx, "gateway_id", &id)?;
            tracing::info!(gateway_id = %id, "new journal: generated the gateway id");
            id
        }
    };

    let meta_last = opt(meta_get::<U64>(&tx, "last_seq")?).unwrap_or(0);
    let (min_seq, max_seq): (Option<U64>, Option<U64>) =
        tx.query_row("SELECT min(seq), max(seq) FROM entries", [], |r| Ok((r.get(0)?, r.get(1)?))).map_err(JournalError::storage)?;
    let (min_seq, max_seq) = (opt(min_seq), opt(max_seq));
    // Both are written in the same transaction; the max only guards against a meta row
    // lost to something outside this code.
    let last_seq = meta_last.max(max_seq.unwrap_or(0));
    let oldest = min_seq.unwrap_or(last_seq + 1);

    let next_id = opt(meta_get::<U64>(&tx, "next_id")?);

    let mut applied = Vec::with_capacity(chassis.len());
    for name in chassis {
        let seq: Option<U64> =
            tx.query_row("SELECT seq FROM applied WHERE chassis = ?1", [name], |r| r.get(0)).optional().map_err(JournalError::storage)?;
        let seq = opt(seq).unwrap_or(0);
        if seq > last_seq {
            return Err(JournalError::Corrupt(format!("chassis {name:?} applied seq {seq} past the last seq {last_seq}")));
        }
        applied.push(seq);
    }

    let void = {
        let mut stmt = tx.prepare("SELECT seq FROM entries WHERE void != 0").map_err(JournalError::storage)?;
        let rows = stmt.query_map([], |r| r.get::<_, U64>(0).map(|v| v.0)).map_err(JournalError::storage)?;
        rows.collect::<Result<BTreeSet<u64>, _>>().map_err(JournalError::storage)?
    };

    tx.commit().map_err(JournalError::storage)?;
    Ok(Recovered { gateway_id, last_seq, oldest, next_id, applied, void })
}

fn meta_get<T: rusqlite::types::FromSql>(conn: &Connection, key: &str) -> Result<Option<T>, JournalError> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(JournalError::storage)
}

pub(crate) fn meta_set(conn: &Connection, key: &str, value: impl rusqlite::ToSql) -> Result<(), JournalError> {
    meta_put(conn, key, value).map_err(JournalError::storage)
}

/// The meta key of chassis `name`'s entry on its way (see `Journal::mark_sending`).
pub(crate) fn sending_key(name: &str) -> String {
    format!("sending/{name}")
}

/// Each chassis' entry on its way, as recorded.
pub(crate) fn read_sending(conn: &Connection, chassis: &[String]) -> Result<Vec<Option<u64>>, JournalError> {
    chassis.iter().map(|name| Ok(opt(meta_get::<U64>(conn, &sending_key(name))?))).collect()
}

/// `meta_set` for the writer, which wants the raw error (it fails the whole batch).
pub(crate) fn meta_put(conn: &Connection, key: &str, value: impl rusqlite::ToSql) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")?
        .execute(rusqlite::params![key, value])?;
    Ok(())
}
