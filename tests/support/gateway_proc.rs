//! The `pairgate` process: same configuration and state across a `kill -9`
//! and restart (docs/design.md: a restart loses nothing acknowledged and keeps
//! every session). Its log goes to a file (`RUST_LOG` filter chosen by the
//! caller), appended across restarts so one file tells the whole story.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::gateway_config::ADMIN_TOKEN;
use crate::http::{Http, Sent};

pub struct GatewayProc {
    pub port: u16,
    pub config: PathBuf,
    pub cert: PathBuf,
    pub log: PathBuf,
    pub log_filter: String,
    bin: PathBuf,
    child: Option<Child>,
    status_client: Http,
}

impl GatewayProc {
    pub fn new(bin: PathBuf, port: u16, config: PathBuf, cert: PathBuf, log: PathBuf, log_filter: &str) -> Result<GatewayProc, String> {
        let mut status_client = Http::trusting(&format!("https://127.0.0.1:{port}"), &cert, Duration::from_secs(2))?;
        status_client.token = Some(ADMIN_TOKEN.to_string());
        Ok(GatewayProc { port, config, cert, log, log_filter: log_filter.to_string(), bin, child: None, status_client })
    }

    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Start the process if it is not running. Does not wait: see
    /// [`GatewayProc::wait_answering`].
    pub fn start(&mut self) -> Result<(), String> {
        if self.is_running() {
            return Ok(());
        }
        let log = OpenOptions::new().create(true).append(true).open(&self.log).map_err(|e| format!("{}: {e}", self.log.display()))?;
        let child = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    pub fn is_running(&mut self) -> bool {
        crate::chassis_proc::still_running(&mut self.child)
    }

    /// `kill -9` by PID, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `GET /_pairgate/status` (None while the gateway does not answer it).
    pub async fn status(&self) -> Option<Value> {
        match self.status_client.get("/_pairgate/status").await {
            Sent::Answer { status: 200, body } => Some(body),
            _ => None,
        }
    }

    /// Wait (bounded) until the status page answers at all.
    pub async fn wait_answering(&mut self, limit: Duration) -> Result<Value, String> {
        let start = Instant::now();
        for _ in 0..10_000 {
            if let Some(s) = self.status().await {
                return Ok(s);
            }
            if !self.is_running() {
                return Err(format!("the gateway exited (see {})", self.log.display()));
            }
            if start.elapsed() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(format!("the gateway did not answer its status page within {limit:?} (see {})", self.log.display()))
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Both chassis `in_sync` with lag 0, and the id counter ready.
pub fn all_in_sync(status: &Value) -> bool {
    let chassis = status["chassis"].as_array();
    chassis.is_some_and(|c| c.len() == 2 && c.iter().all(|c| c["state"] == "in_sync" && c["lag"] == 0)) && status["ids_ready"] == true
}

/// At least one chassis serves (a primary exists).
pub fn serving(status: &Value) -> bool {
    status["primary"].is_string()
}

/// The gateway's own counters, from its status page. They live in the
/// process: a restarted gateway counts from zero again, so a campaign adds up
/// what each killed process had counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub divergences: u64,
    pub failovers: u64,
    /// Full resyncs done, both chassis together (0 where the gateway has none).
    pub resyncs: u64,
}

impl Counters {
    pub fn of(status: &Value) -> Counters {
        let resyncs = status["chassis"].as_array().map(|c| c.iter().filter_map(|c| c["resyncs"].as_u64()).sum()).unwrap_or(0);
        Counters { divergences: status["divergences"].as_u64().unwrap_or(0), failovers: status["failovers"].as_u64().unwrap_or(0), resyncs }
    }

    pub fn plus(self, o: Counters) -> Counters {
        Counters {
            divergences: self.divergences + o.divergences,
            failovers: self.failovers + o.failovers,
            resyncs: self.resyncs + o.resyncs,
        }
    }
}
