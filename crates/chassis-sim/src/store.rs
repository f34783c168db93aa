//! The chassis' state file: one SQLite database (WAL) under `--state`, or an
//! in-memory one with `--ephemeral`.
//!
//! Rows are stored as JSON per (table, id); a committed request writes exactly
//! the rows and counters it changed, in one SQLite transaction, so a
//! `kill -9` at any moment leaves either the whole request or none of it.
//! The idempotency keys (with their answers) live here too, so a restarted
//! chassis still recognises a replay.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::db::{Changes, Db, TableName};

/// How many idempotency keys a chassis remembers (the contract says 10,000).
pub const IDEMPOTENCY_KEYS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("state database holds a bad row: {0}")]
    BadRow(String),
}

/// A stored answer to a mutation.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredReply {
    pub status: u16,
    pub body: Option<Value>,
}

pub struct Store {
    conn: Connection,
}

/// What `Store::open` found.
pub struct Loaded {
    pub db: Db,
    pub idem: Idempotency,
    pub fresh: bool,
    pub meta: HashMap<String, String>,
}

impl Store {
    pub fn open(dir: Option<&Path>) -> Result<(Store, Loaded), StoreError> {
        let conn = match dir {
            Some(dir) => {
                let conn = Connection::open(dir.join("chassis.sqlite"))?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                // NORMAL in WAL mode survives a process kill (what the tests do);
                // only an OS crash can lose the last commits.
                conn.pragma_update(None, "synchronous", "NORMAL")?;
                conn
            }
            None => Connection::open_in_memory()?,
        };
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS rows (tbl TEXT NOT NULL, id INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (tbl, id)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS counters (tbl TEXT PRIMARY KEY, next_id INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS idem (n INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, status INTEGER NOT NULL, body TEXT);
             CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);",
        )?;
        let store = Store { conn };
        let loaded = store.load()?;
        Ok((store, loaded))
    }

    fn load(&self) -> Result<Loaded, StoreError> {
        let mut db = Db::default();
        let mut stmt = self.conn.prepare("SELECT tbl, data FROM rows ORDER BY tbl, id")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let tbl: String = row.get(0)?;
            let data: String = row.get(1)?;
            let t = TableName::parse(&tbl).ok_or_else(|| StoreError::BadRow(format!("unknown table {tbl}")))?;
            let v: Value = serde_json::from_str(&data).map_err(|e| StoreError::BadRow(e.to_string()))?;
            db.load_row(t, v).map_err(StoreError::BadRow)?;
        }
        let mut stmt = self.conn.prepare("SELECT tbl, next_id FROM counters")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let tbl: String = row.get(0)?;
            let next: i64 = row.get(1)?;
            if let Some(t) = TableName::parse(&tbl) {
                db.set_next_id(t, u64::try_from(next).unwrap_or(1).max(1));
            }
        }
        let mut idem = Idempotency::default();
        let mut stmt = self.conn.prepare("SELECT key, status, body FROM idem ORDER BY n")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let key: String = row.get(0)?;
            let status: u16 = row.get(1)?;
            let body: Option<String> = row.get(2)?;
            let body = body.and_then(|b| serde_json::from_str(&b).ok());
            idem.remember(key, StoredReply { status, body });
        }
        let mut meta = HashMap::new();
        let mut stmt = self.conn.prepare("SELECT k, v FROM meta")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            meta.insert(row.get(0)?, row.get(1)?);
        }
        let fresh = self.conn.query_row("SELECT v FROM meta WHERE k = 'initialized'", [], |r| r.get::<_, String>(0)).optional()?.is_none();
        Ok(Loaded { db, idem, fresh, meta })
    }

    pub fn set_meta(&self, k: &str, v: &str) -> Result<(), StoreError> {
        self.conn.execute("INSERT INTO meta (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v", params![k, v])?;
        Ok(())
    }

    /// Write what a request changed, and its idempotency key, atomically.
    pub fn commit(&mut self, db: &Db, changes: &Changes, idem: Option<(&str, &StoredReply)>) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO rows (tbl, id, data) VALUES (?1, ?2, ?3) ON CONFLICT (tbl, id) DO UPDATE SET data = excluded.data",
            )?;
            let mut delete = tx.prepare_cached("DELETE FROM rows WHERE tbl = ?1 AND id = ?2")?;
            for &(t, id) in &changes.rows {
                let key = i64::try_from(id).map_err(|_| StoreError::BadRow(format!("id {id}")))?;
                match db.row_json(t, id) {
                    Some(v) => upsert.execute(params![t.as_str(), key, v.to_string()])?,
                    None => delete.execute(params![t.as_str(), key])?,
                };
            }
            let mut counter = tx.prepare_cached(
                "INSERT INTO counters (tbl, next_id) VALUES (?1, ?2) ON CONFLICT (tbl) DO UPDATE SET next_id = excluded.next_id",
            )?;
            for &t in &changes.counters {
                counter.execute(params![t.as_str(), db.next_id(t) as i64])?;
            }
            if let Some((key, reply)) = idem {
                Self::insert_idem(&tx, key, reply)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn insert_idem(tx: &rusqlite::Transaction<'_>, key: &str, reply: &StoredReply) -> Result<(), StoreError> {
        let body = reply.body.as_ref().map(|b| b.to_string());
        tx.prepare_cached("INSERT OR REPLACE INTO idem (key, status, body) VALUES (?1, ?2, ?3)")?.execute(params![
            key,
            reply.status,
            body
        ])?;
        tx.prepare_cached("DELETE FROM idem WHERE n <= (SELECT MAX(n) FROM idem) - ?1")?.execute(params![IDEMPOTENCY_KEYS as i64])?;
        Ok(())
    }

    /// Replace everything (an import, or the first start's seed rows).
    pub fn replace_all(&mut self, db: &Db, idem: &Idempotency) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM rows", [])?;
        tx.execute("DELETE FROM counters", [])?;
        tx.execute("DELETE FROM idem", [])?;
        {
            let mut ins = tx.prepare("INSERT INTO rows (tbl, id, data) VALUES (?1, ?2, ?3)")?;
            for &t in TableName::ALL {
                for row in db.rows_json(t) {
                    let id = row["id"].as_i64().unwrap_or(0);
                    ins.execute(params![t.as_str(), id, row.to_string()])?;
                }
            }
            let mut counter = tx.prepare("INSERT INTO counters (tbl, next_id) VALUES (?1, ?2)")?;
            for &t in TableName::ALL {
                counter.execute(params![t.as_str(), db.next_id(t) as i64])?;
            }
            for (key, reply) in idem.iter() {
                Self::insert_idem(&tx, key, reply)?;
            }
        }
        tx.execute("INSERT INTO meta (k, v) VALUES ('initialized', '1') ON CONFLICT (k) DO NOTHING", [])?;
        tx.commit()?;
        Ok(())
    }
}

/// The remembered idempotency keys, oldest first, at most [`IDEMPOTENCY_KEYS`].
#[derive(Default, Clone, Debug)]
pub struct Idempotency {
    answers: HashMap<String, StoredReply>,
    order: VecDeque<String>,
}

impl Idempotency {
    pub fn get(&self, key: &str) -> Option<&StoredReply> {
        self.answers.get(key)
    }

    pub fn remember(&mut self, key: String, reply: StoredReply) {
        if self.answers.insert(key.clone(), reply).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > IDEMPOTENCY_KEYS {
            if let Some(old) = self.order.pop_front() {
                self.answers.remove(&old);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &StoredReply)> {
        self.order.iter().filter_map(|k| self.answers.get(k).map(|r| (k, r)))
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
