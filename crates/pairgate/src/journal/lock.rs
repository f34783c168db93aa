//! One journal, one writer: an exclusive `flock(2)` on `journal.lock` in the state
//! directory, held for as long as the journal is open.
//!
//! The sequencer keeps the next seq and the id counter in memory and trusts that no
//! one else writes them; a second gateway started on the same state directory (a
//! service manager restarting it before the old one exited, an operator running it
//! by hand) would hand out the same seqs and id blocks. `flock` locks belong to the
//! open file, so they also catch a second `open` inside one process, and the kernel
//! drops them when the process dies, so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

use super::JournalError;

/// The held lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, JournalError> {
        let path = dir.join("journal.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| JournalError::io(&path, e))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(JournalError::Locked { path }),
            Err(e) => Err(JournalError::io(&path, io::Error::from(e))),
        }
    }
}
