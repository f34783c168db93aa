//! What the chassis and gateway processes have in common: ports on
//! 127.0.0.1, the chassis' `listening on` line, where their logs go, and
//! their end — always by PID (`kill -9` or SIGTERM), always reaped.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding an ephemeral port: {e}"))?;
    Ok(l.local_addr().map_err(|e| format!("ephemeral port: {e}"))?.port())
}

/// Read `listening on 127.0.0.1:PORT` from a child's stdout (bounded), then
/// keep draining it in the background so the child never blocks on a full pipe.
pub fn read_listening_port(stdout: ChildStdout, limit: Duration) -> Result<u16, String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next();
        let _ = tx.send(first.map(|l| l.unwrap_or_default()));
        for _ in lines {}
    });
    let line = rx.recv_timeout(limit).map_err(|_| format!("no 'listening on' line within {limit:?}"))?.ok_or("exited before listening")?;
    line.rsplit(':').next().and_then(|p| p.trim().parse().ok()).ok_or_else(|| format!("unexpected first line: {line}"))
}

/// `PAIRGATE_TEST_LOG` (any value; for the gateway, its `RUST_LOG` filter)
/// shows a process' log on the test's stderr; without it, logs not written
/// to a file go nowhere (they drown test output).
pub fn test_log_stderr() -> Stdio {
    if std::env::var_os("PAIRGATE_TEST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// A log file opened for appending (a restarted process adds to the same
/// file, so one file tells the whole story).
pub fn append_log(path: &Path) -> Result<File, String> {
    OpenOptions::new().create(true).append(true).open(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether a child process is still alive; reaps (and forgets) it if it
/// exited.
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

/// `kill -9` by PID, and reap.
pub fn kill9(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill(); // SIGKILL
        let _ = c.wait();
    }
}

/// SIGTERM by PID (a clean shutdown), reaped within `limit`; `kill -9`
/// after that. Whether it exited on its own.
pub fn terminate(child: &mut Option<Child>, limit: Duration) -> bool {
    let Some(mut c) = child.take() else { return true };
    let sent = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status().is_ok_and(|s| s.success());
    let start = Instant::now();
    while sent && start.elapsed() < limit {
        if let Ok(Some(_)) = c.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
    false
}
