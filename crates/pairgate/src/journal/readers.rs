//! A small pool of read-only connections.
//!
//! In WAL mode readers see the last committed state and never wait for the writer,
//! so queries (appliers reading back entries they missed, idempotency lookups) get
//! their own connections instead of queueing behind the group commit. A connection
//! is taken for one query and put back; when all are busy a new one is opened, and
//! at most `KEEP` idle ones are kept.

use std::path::PathBuf;

use parking_lot::Mutex;
use rusqlite::Connection;

use super::schema::open_reader;
use super::JournalError;

const KEEP: usize = 4;

#[derive(Debug)]
pub(crate) struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    pub(crate) fn new(path: PathBuf) -> ReaderPool {
        ReaderPool { path, idle: Mutex::new(Vec::new()) }
    }

    /// Runs one read on a pooled connection.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R, JournalError> {
        let taken = self.idle.lock().pop();
        let conn = match taken {
            Some(c) => c,
            None => open_reader(&self.path).map_err(JournalError::storage)?,
        };
        let result = f(&conn).map_err(JournalError::storage);
        let mut idle = self.idle.lock();
        if idle.len() < KEEP {
            idle.push(conn);
        }
        result
    }
}
