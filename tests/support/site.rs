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
//!
//! Before the gateway starts, the site can load bulk rows into both chassis
//! ([`crate::bulk`]), and it keeps a copy of each chassis' state folder,
//! taken while that chassis was stopped (at setup, and again whenever a
//! fault stops it), for `restore_old_copy` to put back later.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bins::Bins;
use crate::certs::make_cert;
use crate::chassis_proc::{SimOpts, SimProcess};
use crate::fault_proxy::FaultProxy;
use crate::gateway_config::{GatewayConfig, ADMIN_TOKEN, JWT_SECRET};
use crate::gateway_proc::{all_in_sync, GatewayProcess};
use crate::http::{Http, Sent};
use crate::process::free_port;

pub const NAMES: [&str; 2] = ["a", "b"];

pub struct Site {
    pub chassis: [SimProcess; 2],
    pub proxies: [FaultProxy; 2],
    pub gateway: GatewayProcess,
    pub chassis_certs: [PathBuf; 2],
    pub logs: PathBuf,
    /// Ids of the bulk sources loaded at setup (empty if none).
    pub bulk: Range<u64>,
    /// Per chassis: the last copy of its state folder.
    pub copies: [StateCopy; 2],
    /// How long the pair may take to be in sync after a fault
    /// ([`crate::faults::RECOVERY_LIMIT`] unless the campaign says otherwise).
    pub recovery_limit: Duration,
    // Last: removed after every process above is stopped (fields drop in order).
    _dir: tempfile::TempDir,
}

/// A copy of one chassis' state folder, taken while it was stopped.
#[derive(Clone, Debug)]
pub struct StateCopy {
    pub dir: PathBuf,
    /// When it was taken, for the fault record ("at setup", "during #4 kill_chassis at 9.1s").
    pub taken: String,
}

/// How long one direct request to a chassis may take: exports of a state
/// with tens of thousands of rows take a second or more on a debug build.
const DIRECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Site {
    /// Start everything and wait (bounded) until both chassis are in sync.
    /// Logs go to `logs/` (gateway with `log_filter`, chassis at info).
    pub async fn start(bins: &Bins, logs: &Path, log_filter: &str) -> Result<Site, String> {
        Site::start_with(bins, logs, log_filter, 0).await
    }

    /// [`Site::start`] with `bulk_rows` IP sources loaded into both chassis
    /// before the gateway starts (see [`crate::bulk`]); then each chassis is
    /// stopped (`kill -9`), its state folder copied aside, and started again,
    /// still before the gateway starts.
    pub async fn start_with(bins: &Bins, logs: &Path, log_filter: &str, bulk_rows: usize) -> Result<Site, String> {
        Site::start_firmware(bins, logs, log_filter, bulk_rows, &[]).await
    }

    /// [`Site::start_with`] with both simulators run with `sim_args` too
    /// (older firmware: `--without …`).
    pub async fn start_firmware(bins: &Bins, logs: &Path, log_filter: &str, bulk_rows: usize, sim_args: &[String]) -> Result<Site, String> {
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
            let c = SimProcess::launch(SimOpts {
                serial: format!("CHAOS-{}", name.to_uppercase()),
                tls: Some((cert.clone(), key)),
                hooks: true,
                port: free_port()?,
                state_dir: Some(d.join(format!("chassis-{name}-state"))),
                log: Some(logs.join(format!("chassis-{name}.log"))),
                bin: Some(bins.chassis_sim.clone()),
                args: sim_args.to_vec(),
                ..SimOpts::default()
            })
            .await?;
            chassis.push(c);
            certs.push(cert);
        }
        let mut chassis: [SimProcess; 2] = chassis.try_into().map_err(|_| "two chassis")?;
        let chassis_certs: [PathBuf; 2] = certs.try_into().map_err(|_| "two certificates")?;
        let bulk = if bulk_rows > 0 { crate::bulk::load(&chassis, &chassis_certs, bulk_rows).await? } else { 0..0 };
        let mut copies = Vec::new();
        for (c, name) in chassis.iter_mut().zip(NAMES) {
            let copy = StateCopy { dir: d.join(format!("chassis-{name}-copy")), taken: "at setup".into() };
            c.kill9();
            c.save_state(&copy.dir)?;
            c.ensure_running().await?;
            copies.push(copy);
        }
        let copies: [StateCopy; 2] = copies.try_into().map_err(|_| "two copies")?;
        let proxies = [FaultProxy::start(chassis[0].port).await?, FaultProxy::start(chassis[1].port).await?];
        let (gcert, gkey) = make_cert(d, "gateway")?;
        let port = free_port()?;
        let config = GatewayConfig {
            dir: d,
            port,
            cert: &gcert,
            key: &gkey,
            chassis: [(proxies[0].port(), &chassis_certs[0]), (proxies[1].port(), &chassis_certs[1])],
            username: "admin",
            passwords: ["admin", "admin"],
            admin_token: ADMIN_TOKEN,
            jwt_secret: JWT_SECRET,
        }
        .write()?;
        let log = Some((log_filter.to_string(), logs.join("gateway.log")));
        let mut gateway = GatewayProcess::new(bins.pairgate.clone(), config, port, true, gcert, ADMIN_TOKEN, log)?;
        gateway.start()?;
        let site = Site {
            chassis,
            proxies,
            gateway,
            chassis_certs,
            logs: logs.to_path_buf(),
            bulk,
            copies,
            recovery_limit: crate::faults::RECOVERY_LIMIT,
            _dir: dir,
        };
        site.wait_in_sync(Duration::from_secs(30)).await?;
        Ok(site)
    }

    /// A client of the gateway (not logged in).
    pub fn gateway_client(&self, timeout: Duration) -> Result<Http, String> {
        Http::trusting(&self.gateway.base, &self.gateway.cert, timeout)
    }

    /// Wait (bounded) for both chassis in sync with lag 0; the last status
    /// seen is in the error.
    pub async fn wait_in_sync(&self, limit: Duration) -> Result<Value, String> {
        let polled = self.gateway.poll_status(limit, Duration::from_millis(50), all_in_sync).await;
        polled.map_err(|last| format!("not both in sync within {limit:?}; last status: {last}"))
    }

    /// An admin client straight to chassis `i`, bypassing proxy and gateway:
    /// logs in with `force: true` (the gateway holds the admin account's
    /// session there and will log in again by itself). Retried, bounded,
    /// because a chassis answering 5xx on purpose fails logins too.
    pub async fn direct(&self, i: usize, limit: Duration) -> Result<Http, String> {
        self.direct_with_timeout(i, limit, Duration::from_secs(5)).await
    }

    /// [`Site::direct`] whose requests may each take up to `timeout`.
    pub async fn direct_with_timeout(&self, i: usize, limit: Duration, timeout: Duration) -> Result<Http, String> {
        let mut http = Http::trusting(&self.chassis[i].base, &self.chassis_certs[i], timeout)?;
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

    /// One request straight to chassis `i` as admin, until it succeeds
    /// (bounded): logs in again each time, because the gateway's own re-login
    /// may preempt our session in between. Only for requests that may be
    /// repeated (hooks, a rename). The successful answer's body.
    pub async fn direct_call(&self, i: usize, method: &str, path: &str, body: Option<&Value>, limit: Duration) -> Result<Value, String> {
        let start = Instant::now();
        let mut last = String::new();
        for _ in 0..50 {
            let http = self.direct(i, limit).await?;
            match http.call(method, path, body, &[]).await {
                Sent::Answer { status: 200..=299, body } => return Ok(body),
                r => last = r.describe(),
            }
            if start.elapsed() > limit {
                break;
            }
        }
        Err(format!("{method} {path} on chassis {}: {last}", NAMES[i]))
    }

    /// `PUT /_sim/faults` (`Some(body)`) or `DELETE /_sim/faults` (`None`) on
    /// chassis `i` (retried, bounded: see [`Site::direct_call`]).
    pub async fn sim_faults(&self, i: usize, body: Option<&Value>, limit: Duration) -> Result<(), String> {
        let method = if body.is_some() { "PUT" } else { "DELETE" };
        self.direct_call(i, method, "/_sim/faults", body, limit).await.map(|_| ())
    }

    /// `POST /_sim/power_off` on chassis `i` (retried like `sim_faults`).
    pub async fn power_off(&self, i: usize, limit: Duration) -> Result<(), String> {
        self.direct_call(i, "POST", "/_sim/power_off", None, limit).await.map(|_| ())
    }

    /// Copy chassis `i`'s state folder aside (it must be stopped), replacing
    /// its previous copy; `taken` says when, for the fault records.
    pub fn save_copy(&mut self, i: usize, taken: String) -> Result<(), String> {
        self.chassis[i].save_state(&self.copies[i].dir)?;
        self.copies[i].taken = taken;
        Ok(())
    }

    /// Put chassis `i`'s last copy back (it must be stopped); when the copy was taken.
    pub fn restore_copy(&mut self, i: usize) -> Result<String, String> {
        self.chassis[i].restore_state(&self.copies[i].dir)?;
        Ok(self.copies[i].taken.clone())
    }

    /// Chassis `i`'s ID map, from the gateway (empty for a chassis whose
    /// IDs are the clients').
    pub async fn id_map(&self, i: usize) -> Result<crate::client_ids::IdMap, String> {
        let v = self.gateway.try_admin_get(&format!("/_pairgate/idmap/{}", NAMES[i])).await?;
        crate::client_ids::IdMap::parse(&v)
    }

    /// One GET on chassis `i` directly, as admin. A 401 (the gateway's own
    /// re-login of admin preempted this session between login and GET) logs
    /// in again, at most five times.
    pub async fn direct_get(&self, i: usize, path: &str) -> Result<Value, String> {
        let mut last = String::new();
        for _ in 0..5 {
            let http = self.direct_with_timeout(i, Duration::from_secs(10), DIRECT_TIMEOUT).await?;
            match http.get(path).await {
                Sent::Answer { status: 200, body } => return Ok(body),
                r @ Sent::Answer { status: 401, .. } => last = r.describe(),
                other => return Err(format!("GET {path} on chassis {}: {}", NAMES[i], other.describe())),
            }
        }
        Err(format!("GET {path} on chassis {}: {last} (five logins in a row preempted)", NAMES[i]))
    }
}
