//! One `chassis-sim` process over HTTPS with `--sim-hooks`, on a fixed port
//! and state folder, so that a `kill -9` (or its own power-off) followed by
//! [`ChassisProc::start`] brings back the *same* chassis: same port, same
//! SQLite state, same certificate. Always stopped by its PID.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a (re)started chassis may take to listen.
const START_LIMIT: Duration = Duration::from_secs(20);

pub struct ChassisProc {
    pub name: String,
    pub port: u16,
    pub state_dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub log: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
}

impl ChassisProc {
    /// Describe the chassis; nothing runs until [`ChassisProc::start`].
    pub fn new(bin: PathBuf, name: &str, port: u16, state_dir: PathBuf, cert: PathBuf, key: PathBuf, log: PathBuf) -> ChassisProc {
        ChassisProc { name: name.to_string(), port, state_dir, cert, key, log, bin, child: None }
    }

    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Start the process (if it is not running) and wait, bounded, until it
    /// accepts TCP connections.
    pub async fn start(&mut self) -> Result<(), String> {
        if self.is_running() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.state_dir).map_err(|e| format!("{}: {e}", self.state_dir.display()))?;
        let log = OpenOptions::new().create(true).append(true).open(&self.log).map_err(|e| format!("{}: {e}", self.log.display()))?;
        let child = Command::new(&self.bin)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--state")
            .arg(&self.state_dir)
            .arg("--serial")
            .arg(format!("CHAOS-{}", self.name.to_uppercase()))
            .arg("--tls-cert")
            .arg(&self.cert)
            .arg("--tls-key")
            .arg(&self.key)
            .arg("--sim-hooks")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        self.wait_listening().await
    }

    async fn wait_listening(&mut self) -> Result<(), String> {
        let start = Instant::now();
        for _ in 0..4000 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("chassis {} exited while starting: {status} (see {})", self.name, self.log.display()));
                }
            }
            if start.elapsed() > START_LIMIT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(format!("chassis {} did not listen on {} within {START_LIMIT:?}", self.name, self.port))
    }

    /// Still alive? (Reaps it if it exited, e.g. after a power-off.)
    pub fn is_running(&mut self) -> bool {
        still_running(&mut self.child)
    }

    /// Wait (bounded) for the process to exit by itself; true if it did.
    pub async fn wait_exit(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        for _ in 0..10_000 {
            if !self.is_running() {
                return true;
            }
            if start.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// `kill -9` by PID, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Delete every file of the state folder (the SQLite database and its
    /// WAL): the next start is a first start (admin/admin, seed rows). Only
    /// while the process is stopped.
    pub fn wipe_state(&mut self) -> Result<usize, String> {
        self.require_stopped("wipe the state of")?;
        clear_files(&self.state_dir)
    }

    /// Copy the state folder's files to `to` (emptied first). Only while the
    /// process is stopped: a copy of a live SQLite WAL database may be torn,
    /// a stopped one (even by `kill -9`) is consistent.
    pub fn save_state(&mut self, to: &Path) -> Result<usize, String> {
        self.require_stopped("copy the state of")?;
        std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
        clear_files(to)?;
        copy_files(&self.state_dir, to)
    }

    /// Replace the state folder's files with those in `from` (a copy made by
    /// [`ChassisProc::save_state`]). Only while the process is stopped.
    pub fn restore_state(&mut self, from: &Path) -> Result<usize, String> {
        self.require_stopped("restore the state of")?;
        if files_in(from)?.is_empty() {
            return Err(format!("the copy of chassis {} in {} holds no files", self.name, from.display()));
        }
        clear_files(&self.state_dir)?;
        copy_files(from, &self.state_dir)
    }

    fn require_stopped(&mut self, what: &str) -> Result<(), String> {
        if self.is_running() {
            return Err(format!("cannot {what} chassis {} while it runs", self.name));
        }
        Ok(())
    }
}

/// The plain files directly in `dir` (a chassis' state folder has no subfolders).
fn files_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.take(10_000) {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        if entry.file_type().map_err(|e| format!("{}: {e}", entry.path().display()))?.is_file() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Remove the files directly in `dir`; how many there were.
fn clear_files(dir: &Path) -> Result<usize, String> {
    let files = files_in(dir)?;
    for f in &files {
        std::fs::remove_file(f).map_err(|e| format!("removing {}: {e}", f.display()))?;
    }
    Ok(files.len())
}

/// Copy the files directly in `from` into `to`; how many.
fn copy_files(from: &Path, to: &Path) -> Result<usize, String> {
    let files = files_in(from)?;
    for f in &files {
        let name = f.file_name().ok_or_else(|| format!("{} has no file name", f.display()))?;
        std::fs::copy(f, to.join(name)).map_err(|e| format!("copying {} to {}: {e}", f.display(), to.display()))?;
    }
    Ok(files.len())
}

impl Drop for ChassisProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Whether a child process is still alive; reaps (and forgets) it if it
/// exited. Shared by the chassis and gateway process handles.
pub fn still_running(child: &mut Option<Child>) -> bool {
    match child.as_mut().map(Child::try_wait) {
        Some(Ok(None)) => true,
        Some(_) => {
            *child = None;
            false
        }
        None => false,
    }
}
