//! A whole site for the campaign: two HTTPS `chassis-sim` processes with
//! `--sim-hooks`, a [`FaultProxy`] in front of each, and the `pairgate`
//! process dialling the proxies — all on 127.0.0.1, all stopped by PID when
//! the site is dropped.
//!
//! ```text
//! clients ──HTTPS──▶ pairgate ──▶ proxy a ──▶ chassis a
//!                             └─▶ proxy b ──▶ chassis b
//! fault scheduler ── kill/restart processes, cut/slow proxies, /_sim hooks (direct)
//! ```

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bins::Bins;
use crate::certs::make_cert;
use crate::chassis_proc::ChassisProc;
use crate::fault_proxy::FaultProxy;
use crate::gateway_config::GatewayConfig;
use crate::gateway_proc::{all_in_sync, GatewayProc};
use crate::http::{Http, Sent};

pub const NAMES: [&str; 2] = ["a", "b"];

pub struct Site {
    pub chassis: [ChassisProc; 2],
    pub proxies: [FaultProxy; 2],
    pub gateway: GatewayProc,
    pub chassis_certs: [PathBuf; 2],
    pub logs: PathBuf,
    // Last: removed after every process above is stopped (fields drop in order).
    _dir: tempfile::TempDir,
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding an ephemeral port: {e}"))?;
    Ok(l.local_addr().map_err(|e| format!("ephemeral port: {e}"))?.port())
}

impl Site {
    /// Start everything and wait (bounded) until both chassis are in sync.
    /// Logs go to `logs/` (gateway with `log_filter`, chassis at info).
    pub async fn start(bins: &Bins, logs: &Path, log_filter: &str) -> Result<Site, String> {
        std::fs::create_dir_all(logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        for name in ["gateway.log", "chassis-a.log", "chassis-b.log"] {
            // Fresh logs for this run (they are appended to across restarts).
            let _ = std::fs::remove_file(logs.join(name));
        }
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let d = dir.path();
        let mut chassis = Vec::new();
        let mut certs = Vec::new();
        for name in NAMES {
            let (cert, key) = make_cert(d, &format!("chassis-{name}"))?;
            let mut c = ChassisProc::new(
                bins.chassis_sim.clone(),
                name,
                free_port()?,
                d.join(format!("chassis-{name}-state")),
                cert.clone(),
                key,
                logs.join(format!("chassis-{name}.log")),
            );
            c.start().await?;
            chassis.push(c);
            certs.push(cert);
        }
        let chassis: [ChassisProc; 2] = chassis.try_into().map_err(|_| "two chassis")?;
        let chassis_certs: [PathBuf; 2] = certs.try_into().map_err(|_| "two certificates")?;
        let proxies = [FaultProxy::start(chassis[0].port).await?, FaultProxy::start(chassis[1].port).await?];
        let (gcert, gkey) = make_cert(d, "gateway")?;
        let port = free_port()?;
        let config = GatewayConfig {
            dir: d,
            port,
            cert: &gcert,
            key: &gkey,
            chassis: [(proxies[0].port(), &chassis_certs[0]), (proxies[1].port(), &chassis_certs[1])],
        }
        .write()?;
        let mut gateway = GatewayProc::new(bins.pairgate.clone(), port, config, gcert, logs.join("gateway.log"), log_filter)?;
        gateway.start()?;
        let site = Site { chassis, proxies, gateway, chassis_certs, logs: logs.to_path_buf(), _dir: dir };
        site.wait_in_sync(Duration::from_secs(30)).await?;
        Ok(site)
    }

    /// A client of the gateway (not logged in).
    pub fn gateway_client(&self, timeout: Duration) -> Result<Http, String> {
        Http::trusting(&self.gateway.base(), &self.gateway.cert, timeout)
    }

    /// Wait (bounded) for both chassis in sync with lag 0; the last status
    /// seen is in the error.
    pub async fn wait_in_sync(&self, limit: Duration) -> Result<Value, String> {
        let start = Instant::now();
        let mut last = Value::Null;
        for _ in 0..100_000 {
            if let Some(s) = self.gateway.status().await {
                if all_in_sync(&s) {
                    return Ok(s);
                }
                last = s;
            }
            if start.elapsed() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("not both in sync within {limit:?}; last status: {last}"))
    }

    /// An admin client straight to chassis `i`, bypassing proxy and gateway:
    /// logs in with `force: true` (the gateway holds the admin account's
    /// session there and will log in again by itself). Retried, bounded,
    /// because a chassis answering 5xx on purpose fails logins too.
    pub async fn direct(&self, i: usize, limit: Duration) -> Result<Http, String> {
        let mut http = Http::trusting(&self.chassis[i].base(), &self.chassis_certs[i], Duration::from_secs(5))?;
        let start = Instant::now();
        let mut last = String::new();
        for _ in 0..200 {
            match http.login("admin", "admin", true).await {
                Ok(()) => return Ok(http),
                Err(e) => last = e,
            }
            if start.elapsed() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("direct login to chassis {}: {last}", NAMES[i]))
    }

    /// `PUT /_sim/faults` (`Some(body)`) or `DELETE /_sim/faults` (`None`) on
    /// chassis `i`, logging in again when the gateway's own re-login
    /// preempted our session in between (bounded).
    pub async fn sim_faults(&self, i: usize, body: Option<&Value>, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        let mut last = String::new();
        for _ in 0..50 {
            let http = self.direct(i, limit).await?;
            let r = match body {
                Some(b) => http.call("PUT", "/_sim/faults", Some(b), &[]).await,
                None => http.call("DELETE", "/_sim/faults", None, &[]).await,
            };
            if r.is_success() {
                return Ok(());
            }
            last = r.describe();
            if start.elapsed() > limit {
                break;
            }
        }
        Err(format!("/_sim/faults on chassis {}: {last}", NAMES[i]))
    }

    /// `POST /_sim/power_off` on chassis `i` (retried like `sim_faults`).
    pub async fn power_off(&self, i: usize, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        let mut last = String::new();
        for _ in 0..50 {
            let http = self.direct(i, limit).await?;
            let r = http.call("POST", "/_sim/power_off", None, &[]).await;
            if r.is_success() {
                return Ok(());
            }
            last = r.describe();
            if start.elapsed() > limit {
                break;
            }
        }
        Err(format!("power off chassis {}: {last}", NAMES[i]))
    }

    /// One GET on chassis `i` directly, as admin.
    pub async fn direct_get(&self, i: usize, path: &str) -> Result<Value, String> {
        let http = self.direct(i, Duration::from_secs(10)).await?;
        match http.get(path).await {
            Sent::Answer { status: 200, body } => Ok(body),
            other => Err(format!("GET {path} on chassis {}: {}", NAMES[i], other.describe())),
        }
    }
}
