//! One `chassis-sim` process on 127.0.0.1, always stopped by its PID (on
//! drop too). A `kill -9` (or its own power-off) followed by a start brings
//! back the *same* chassis: same port, same SQLite state, same certificate.
//!
//! The end-to-end tests start one on a port the kernel picks with a fresh
//! state folder ([`SimProcess::start`], which panics on failure); the fault
//! campaign one over HTTPS on a fixed port and state folder, its log in a
//! file ([`SimProcess::launch`], which returns the failure).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bins::{self, TEST_BUILD};
use crate::process::{append_log, read_listening_port, still_running, test_log_stderr};

/// How long a (re)started chassis may take to say it listens, and then to
/// accept a connection.
const START_LIMIT: Duration = Duration::from_secs(20);

/// `chassis-sim` arguments for firmware with none of the extras: MySQL's
/// auto-increment habits (a refused create spends its ID; 5.7's reset at
/// restart), no `X-Id-Block`, no `Idempotency-Key`, no digest, no
/// export/import. The campaign's and the tests' "legacy" chassis.
pub const LEGACY: &[&str] = &[
    "--without",
    "id_block",
    "--without",
    "idempotency_key",
    "--without",
    "digest",
    "--without",
    "export_import",
    "--auto-increment",
    "mysql57",
];

/// How a simulated chassis is started.
#[derive(Clone, Debug)]
pub struct SimOpts {
    pub serial: String,
    pub inputs: u32,
    pub outputs: u32,
    /// `--sim-hooks`: the `/_sim` fault hooks.
    pub hooks: bool,
    pub ephemeral: bool,
    /// HTTPS with this certificate and key (PEM); plain HTTP if None.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `--max-import` (the simulator's default when None).
    pub max_import: Option<usize>,
    /// The port; 0: whatever the kernel gives at the first start (a restart
    /// then reuses that port).
    pub port: u16,
    /// The state folder (created if missing); None: a fresh temporary one,
    /// removed with the process handle.
    pub state_dir: Option<PathBuf>,
    /// Append the chassis' log (its stderr) to this file; None: see
    /// [`test_log_stderr`].
    pub log: Option<PathBuf>,
    /// The `chassis-sim` binary; None: the one beside this executable.
    pub bin: Option<PathBuf>,
    /// More arguments, e.g. `--without id_block` (older firmware).
    pub args: Vec<String>,
}

impl Default for SimOpts {
    fn default() -> Self {
        SimOpts {
            serial: "SIM-TEST".into(),
            inputs: 16,
            outputs: 16,
            hooks: true,
            ephemeral: false,
            tls: None,
            max_import: None,
            port: 0,
            state_dir: None,
            log: None,
            bin: None,
            args: Vec::new(),
        }
    }
}

/// A `chassis-sim` child process. Killed (SIGKILL, by PID) on drop.
pub struct SimProcess {
    pub child: Option<Child>,
    pub port: u16,
    /// `https://127.0.0.1:PORT` (`http://` without TLS).
    pub base: String,
    pub state_dir: PathBuf,
    /// What the next (re)start runs with.
    pub opts: SimOpts,
    bin: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl SimProcess {
    /// Start a chassis and wait (bounded) until it listens; panics if it
    /// does not.
    pub async fn start(opts: SimOpts) -> SimProcess {
        SimProcess::launch(opts).await.unwrap_or_else(|e| panic!("chassis-sim did not start: {e}"))
    }

    /// Start a chassis and wait (bounded) until it listens.
    pub async fn launch(opts: SimOpts) -> Result<SimProcess, String> {
        let bin = match &opts.bin {
            Some(bin) => bin.clone(),
            None => bins::find("chassis-sim", TEST_BUILD)?,
        };
        let (state_dir, tmp) = match &opts.state_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let tmp = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
                (tmp.path().to_path_buf(), Some(tmp))
            }
        };
        let mut p = SimProcess { child: None, port: opts.port, base: String::new(), state_dir, opts, bin, _tmp: tmp };
        p.ensure_running().await?;
        Ok(p)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The serial number, which names the chassis in messages.
    fn name(&self) -> &str {
        &self.opts.serial
    }

    fn command(&self) -> Result<Command, String> {
        let o = &self.opts;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--state")
            .arg(&self.state_dir)
            .arg("--serial")
            .arg(&o.serial)
            .arg("--inputs")
            .arg(o.inputs.to_string())
            .arg("--outputs")
            .arg(o.outputs.to_string());
        if o.hooks {
            cmd.arg("--sim-hooks");
        }
        if o.ephemeral {
            cmd.arg("--ephemeral");
        }
        if let Some((cert, key)) = &o.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        if let Some(n) = o.max_import {
            cmd.arg("--max-import").arg(n.to_string());
        }
        cmd.args(&o.args);
        let stderr = match &o.log {
            Some(path) => Stdio::from(append_log(path)?),
            None => test_log_stderr(),
        };
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr);
        Ok(cmd)
    }

    /// Where to look when it fails.
    fn log_hint(&self) -> String {
        self.opts.log.as_ref().map(|l| format!(" (see {})", l.display())).unwrap_or_default()
    }

    /// Start the process if it is not running (the same command line, on
    /// the same port and state), read the port it says it listens on, and
    /// wait (bounded) until it accepts TCP connections.
    pub async fn ensure_running(&mut self) -> Result<(), String> {
        if self.is_running() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.state_dir).map_err(|e| format!("{}: {e}", self.state_dir.display()))?;
        let mut child = self.command()?.spawn().map_err(|e| format!("spawning {}: {e}", self.bin.display()))?;
        let stdout = child.stdout.take().ok_or("the chassis' stdout is not piped")?;
        self.child = Some(child);
        let read = tokio::task::spawn_blocking(move || read_listening_port(stdout, START_LIMIT)).await;
        let port = read.map_err(|e| format!("reading the port of chassis {}: {e}", self.name()))?;
        self.port = port.map_err(|e| format!("chassis {}: {e}{}", self.name(), self.log_hint()))?;
        let scheme = if self.opts.tls.is_some() { "https" } else { "http" };
        self.base = format!("{scheme}://127.0.0.1:{}", self.port);
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
                    return Err(format!("chassis {} exited while starting: {status}{}", self.name(), self.log_hint()));
                }
            }
            if start.elapsed() > START_LIMIT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(format!("chassis {} did not listen on {} within {START_LIMIT:?}", self.name(), self.port))
    }

    /// `kill -9` the process and start it again on the same port and state
    /// (with `opts` as they are now); panics if it does not listen again.
    pub async fn restart(&mut self) {
        self.kill9();
        self.ensure_running().await.unwrap_or_else(|e| panic!("chassis-sim did not start again: {e}"));
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
        crate::process::kill9(&mut self.child);
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
    /// [`SimProcess::save_state`]). Only while the process is stopped.
    pub fn restore_state(&mut self, from: &Path) -> Result<usize, String> {
        self.require_stopped("restore the state of")?;
        if files_in(from)?.is_empty() {
            return Err(format!("the copy of chassis {} in {} holds no files", self.name(), from.display()));
        }
        clear_files(&self.state_dir)?;
        copy_files(from, &self.state_dir)
    }

    fn require_stopped(&mut self, what: &str) -> Result<(), String> {
        if self.is_running() {
            return Err(format!("cannot {what} chassis {} while it runs", self.name()));
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

impl Drop for SimProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
