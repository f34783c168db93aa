//! The `pairgate` process: same configuration and state across a `kill -9`
//! and restart (docs/design.md: a restart loses nothing acknowledged and keeps
//! every session), always stopped by its PID (on drop too). Its log goes to
//! a file when one is given (`RUST_LOG` filter chosen by the caller),
//! appended across restarts so one file tells the whole story.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::Api;
use crate::http::{Http, Sent};
use crate::process::{append_log, still_running, test_log_stderr};

pub struct GatewayProcess {
    pub child: Option<Child>,
    pub port: u16,
    /// `https://127.0.0.1:PORT` (`http://` for a configuration with `insecure_http = true`).
    pub base: String,
    pub config: PathBuf,
    /// The gateway's certificate, the one its clients trust.
    pub cert: PathBuf,
    /// The bearer token of `/_pairgate/...`.
    pub admin_token: String,
    /// When set, the gateway logs with this filter (`RUST_LOG`) to this file,
    /// appended across restarts, instead of following `PAIRGATE_TEST_LOG`.
    pub log: Option<(String, PathBuf)>,
    /// Arguments after `--config FILE` (e.g. `--log-format json`), from the next start.
    pub args: Vec<String>,
    bin: PathBuf,
    status_client: Http,
}

impl GatewayProcess {
    /// Describe the gateway; nothing runs until [`GatewayProcess::start`].
    /// `https` says whether `config` serves HTTPS (no `insecure_http`).
    pub fn new(
        bin: PathBuf,
        config: PathBuf,
        port: u16,
        https: bool,
        cert: PathBuf,
        admin_token: &str,
        log: Option<(String, PathBuf)>,
    ) -> Result<GatewayProcess, String> {
        let scheme = if https { "https" } else { "http" };
        let base = format!("{scheme}://127.0.0.1:{port}");
        let mut status_client = Http::trusting(&base, &cert, Duration::from_secs(2))?;
        status_client.token = Some(admin_token.to_string());
        Ok(GatewayProcess {
            child: None,
            port,
            base,
            config,
            cert,
            admin_token: admin_token.to_string(),
            log,
            args: Vec::new(),
            bin,
            status_client,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Start the process if it is not running. Does not wait: see
    /// [`GatewayProcess::wait_answering`].
    pub fn start(&mut self) -> Result<(), String> {
        if self.is_running() {
            return Ok(());
        }
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config").arg(&self.config).args(&self.args).stdin(Stdio::null());
        match &self.log {
            Some((filter, path)) => {
                let file = append_log(path)?;
                let copy = file.try_clone().map_err(|e| format!("{}: {e}", path.display()))?;
                cmd.env("RUST_LOG", filter).env("NO_COLOR", "1").stdout(Stdio::from(copy)).stderr(Stdio::from(file));
            }
            None => {
                // PAIRGATE_TEST_LOG=pairgate=debug (any filter) shows the gateway's log.
                cmd.env("RUST_LOG", std::env::var("PAIRGATE_TEST_LOG").unwrap_or_else(|_| "off".into()))
                    .stdout(Stdio::null())
                    .stderr(test_log_stderr());
            }
        }
        self.child = Some(cmd.spawn().map_err(|e| format!("spawning {}: {e}", self.bin.display()))?);
        Ok(())
    }

    /// `kill -9` the process and start it again, same configuration and
    /// state; panics if it cannot be spawned. Does not wait.
    pub fn restart(&mut self) {
        self.kill9();
        self.start().unwrap_or_else(|e| panic!("the gateway did not start again: {e}"));
    }

    pub fn is_running(&mut self) -> bool {
        still_running(&mut self.child)
    }

    /// `kill -9` by PID, and reap.
    pub fn kill9(&mut self) {
        crate::process::kill9(&mut self.child);
    }

    /// SIGTERM by PID (a clean shutdown), reaped within `limit`; `kill -9`
    /// after that. Whether it exited on its own.
    pub fn stop(&mut self, limit: Duration) -> bool {
        crate::process::terminate(&mut self.child, limit)
    }

    /// Where to look when it fails.
    fn log_hint(&self) -> String {
        self.log.as_ref().map(|(_, l)| format!(" (see {})", l.display())).unwrap_or_default()
    }

    /// `GET /_pairgate/status` (None while the gateway does not answer it).
    pub async fn status(&self) -> Option<Value> {
        match self.status_client.get("/_pairgate/status").await {
            Sent::Answer { status: 200, body } => Some(body),
            _ => None,
        }
    }

    /// `GET path` (under `/_pairgate`) with the admin token; its JSON body,
    /// panicking unless 200.
    pub async fn admin_get(&self, path: &str) -> Value {
        self.try_admin_get(path).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`GatewayProcess::admin_get`] that says what went wrong instead of panicking.
    pub async fn try_admin_get(&self, path: &str) -> Result<Value, String> {
        match self.status_client.get(path).await {
            Sent::Answer { status: 200, body } => Ok(body),
            other => Err(format!("GET {path}: {}", other.describe())),
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
                return Err(format!("the gateway exited{}", self.log_hint()));
            }
            if start.elapsed() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(format!("the gateway did not answer its status page within {limit:?}{}", self.log_hint()))
    }

    /// Poll the status page every `every` (bounded by `limit`) until `pred`
    /// holds: that status; else the last status seen (Null if none).
    pub async fn poll_status(&self, limit: Duration, every: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value, Value> {
        let start = Instant::now();
        let mut last = Value::Null;
        for _ in 0..100_000 {
            if let Some(s) = self.status().await {
                if pred(&s) {
                    return Ok(s);
                }
                last = s;
            }
            if start.elapsed() > limit {
                break;
            }
            tokio::time::sleep(every).await;
        }
        Err(last)
    }

    /// Wait (bounded) until both chassis are in sync and ids are ready;
    /// panics with the last status if they are not.
    pub async fn wait_in_sync(&self, limit: Duration) -> Value {
        match self.poll_status(limit, Duration::from_millis(100), all_in_sync).await {
            Ok(s) => s,
            Err(last) => panic!("pair not in sync within {limit:?}: {last}"),
        }
    }

    /// A client that trusts exactly the gateway's certificate.
    pub fn api(&self) -> Api {
        Api::trusting(&self.base, &self.cert)
    }

    /// Log in through the gateway (force = false); panics unless 200.
    pub async fn login(&self, user: &str, password: &str) -> Api {
        let mut api = self.api();
        let r = api.post("/login", serde_json::json!({"username": user, "password": password})).await;
        assert_eq!(r.status, 200, "gateway login {user}: {r:?}");
        api.token = r.body["token"].as_str().map(str::to_string);
        api
    }
}

impl Drop for GatewayProcess {
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
