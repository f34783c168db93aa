//! A whole redundant pair for end-to-end tests: two `chassis-sim` processes
//! over HTTPS (each with its own generated certificate) and a `pairgate`
//! process in front, all on 127.0.0.1, all stopped by PID on drop. Its
//! helpers panic: an end-to-end test stops at the first failure.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::{client_trusting, tls_connector, Api};
use crate::bins::bin_path;
use crate::bulk::append_sources;
use crate::certs::make_cert;
use crate::chassis_proc::{SimOpts, SimProcess};
use crate::gateway_config::GatewayConfig;
use crate::gateway_proc::GatewayProcess;
use crate::process::free_port;

/// The gateway's own account on both chassis of a test pair (never the human
/// `admin`: the two would pre-empt each other's backend sessions).
pub const SERVICE_USER: &str = "gateway";
/// Its password on chassis a and on chassis b (written to the gateway's
/// password files): different, as a site's must be (the source document's
/// defect 8 was two chassis that had to share their passwords).
pub const SERVICE_PASSWORDS: [&str; 2] = ["gateway-service-secret-a", "gateway-service-secret-b"];
/// The admin token of a test pair's `/_pairgate/...` (a test secret).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
/// The session secret of a test pair's gateway (a test secret).
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123456789";

/// Create the gateway's service account on a chassis, as its admin, directly.
///
/// The chassis keeps one session per account, so the gateway logging in as
/// `admin` for a test's client (a replay after a restart) may end this direct
/// session between its login and its create: then it logs in again, at most
/// five times.
pub async fn create_service_account(base: &str, cert: &Path, password: &str) {
    for attempt in 1..=5 {
        let api = Api::direct_admin(base, cert).await;
        let r = api.post("/users", serde_json::json!({"username": SERVICE_USER, "password": password, "role": "admin"})).await;
        if r.code() == "session_preempted" && attempt < 5 {
            continue;
        }
        assert!(r.status == 201 || r.code() == "username_taken", "service account on {base}: {r:?}");
        return;
    }
}

/// Add `n` IP sources to a chassis directly (its own export, grown,
/// imported back: its users keep their own password hashes). Two chassis
/// given the same `n` from the same state hold the same rows with the same
/// IDs. Returns the size of the imported document in bytes.
pub async fn load_rows(base: &str, cert: &Path, n: u64) -> usize {
    let d = Api::direct_admin(base, cert).await;
    let mut doc = d.get("/system/export").await.ok().body;
    let count = usize::try_from(n).expect("a row count");
    append_sources(&mut doc, count, |id| {
        let url = format!("rtsp://192.0.2.{}/stream/{id}", id % 250);
        serde_json::json!({"id": id, "name": format!("Camera {id:06} north corridor"), "kind": "ip", "url": url})
    })
    .unwrap_or_else(|e| panic!("{n} rows for {base}: {e}"));
    let text = doc.to_string();
    let size = text.len();
    let r = d.raw("PUT", "/system/import", text.into_bytes(), "application/json").await;
    assert_eq!(r.status, 200, "import of {n} rows into {base}: {r:?}");
    size
}

/// Two HTTPS chassis and a gateway.
pub struct Pair {
    pub a: SimProcess,
    pub b: SimProcess,
    pub gw: GatewayProcess,
    pub dir: tempfile::TempDir,
    pub certs: [PathBuf; 2],
}

impl Pair {
    pub async fn start() -> Pair {
        Pair::start_with(|_| {}).await
    }

    /// Start with a hook to edit the gateway configuration text first.
    pub async fn start_with(edit: impl FnOnce(&mut String)) -> Pair {
        Pair::start_with_wait(edit, true).await
    }

    /// As `start_with`; `wait` says whether to wait for both chassis in sync.
    pub async fn start_with_wait(edit: impl FnOnce(&mut String), wait: bool) -> Pair {
        Pair::start_full(edit, wait, None, 0, [Vec::new(), Vec::new()]).await
    }

    /// A pair whose chassis run with these extra simulator arguments each
    /// (e.g. `--without export_import`: older firmware), the gateway logging
    /// at info to `gateway.log`; not waited for in sync.
    pub async fn start_firmware(args: [&[&str]; 2], edit: impl FnOnce(&mut String)) -> Pair {
        Pair::start_with_history(args, [&[], &[]], edit).await
    }

    /// [`Pair::start_firmware`], with each chassis given its own history
    /// first (requests made directly, restarts), before the gateway starts.
    pub async fn start_with_history(args: [&[&str]; 2], history: [&[History]; 2], edit: impl FnOnce(&mut String)) -> Pair {
        let args = args.map(|a| a.iter().map(|s| s.to_string()).collect());
        Pair::start_full_with(edit, false, Some("pairgate=info".into()), 0, args, history).await
    }

    /// A pair whose chassis both hold `rows` extra IP sources (the same on
    /// each, loaded directly before the gateway starts: see [`load_rows`]),
    /// with a hook to edit the gateway configuration text first.
    pub async fn start_with_rows(rows: u64, edit: impl FnOnce(&mut String)) -> Pair {
        Pair::start_full(edit, true, None, rows, [Vec::new(), Vec::new()]).await
    }

    /// As `start_with`, the gateway logging with `filter` (a `RUST_LOG`
    /// value) to the file `gateway.log` in the pair's directory
    /// (`pair.gw.log`). Waits for both chassis in sync.
    pub async fn start_logged(edit: impl FnOnce(&mut String), filter: &str) -> Pair {
        Pair::start_full(edit, true, Some(filter.to_string()), 0, [Vec::new(), Vec::new()]).await
    }

    async fn start_full(
        edit: impl FnOnce(&mut String),
        wait: bool,
        log_filter: Option<String>,
        rows: u64,
        sim_args: [Vec<String>; 2],
    ) -> Pair {
        Pair::start_full_with(edit, wait, log_filter, rows, sim_args, [&[], &[]]).await
    }

    async fn start_full_with(
        edit: impl FnOnce(&mut String),
        wait: bool,
        log_filter: Option<String>,
        rows: u64,
        sim_args: [Vec<String>; 2],
        history: [&[History]; 2],
    ) -> Pair {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let cert = |name: &str| make_cert(d, name).unwrap_or_else(|e| panic!("{e}"));
        let (ca, ka) = cert("chassis-a");
        let (cb, kb) = cert("chassis-b");
        let (gc, gk) = cert("gateway");
        let [args_a, args_b] = sim_args;
        let a = SimProcess::start(SimOpts { serial: "A".into(), tls: Some((ca.clone(), ka)), args: args_a, ..SimOpts::default() }).await;
        let b = SimProcess::start(SimOpts { serial: "B".into(), tls: Some((cb.clone(), kb)), args: args_b, ..SimOpts::default() }).await;
        create_service_account(&a.base, &ca, SERVICE_PASSWORDS[0]).await;
        create_service_account(&b.base, &cb, SERVICE_PASSWORDS[1]).await;
        if rows > 0 {
            load_rows(&a.base, &ca, rows).await;
            load_rows(&b.base, &cb, rows).await;
        }
        let (mut a, mut b) = (a, b);
        live_through(&mut a, &ca, history[0]).await;
        live_through(&mut b, &cb, history[1]).await;
        let port = free_port().unwrap_or_else(|e| panic!("{e}"));
        let (config, text) = GatewayConfig {
            dir: d,
            port,
            cert: &gc,
            key: &gk,
            chassis: [(a.port, &ca), (b.port, &cb)],
            username: SERVICE_USER,
            passwords: SERVICE_PASSWORDS,
            admin_token: ADMIN_TOKEN,
            jwt_secret: JWT_SECRET,
        }
        .write_edited(edit)
        .unwrap_or_else(|e| panic!("{e}"));
        let https = !text.contains("insecure_http = true");
        let log = log_filter.map(|f| (f, d.join("gateway.log")));
        let mut gw = GatewayProcess::new(bin_path("pairgate"), config, port, https, gc, ADMIN_TOKEN, log).unwrap_or_else(|e| panic!("{e}"));
        gw.start().unwrap_or_else(|e| panic!("{e}"));
        if wait {
            // Pairing reads both exports and digests: longer for large states.
            gw.wait_in_sync(Duration::from_secs(20 + rows / 2_000)).await;
        }
        Pair { a, b, gw, dir, certs: [ca, cb] }
    }

    /// An admin client straight to chassis `i` (0 = a), bypassing the gateway.
    /// Logs in with force (the gateway holds the account's session).
    pub async fn direct(&self, i: usize) -> Api {
        let sim = if i == 0 { &self.a } else { &self.b };
        Api::direct_admin(&sim.base, &self.certs[i]).await
    }

    /// Give chassis `i` the gateway's service account again (after its state
    /// was wiped: a replaced main board gets it from the installer).
    pub async fn provision_service_account(&self, i: usize) {
        let sim = if i == 0 { &self.a } else { &self.b };
        create_service_account(&sim.base, &self.certs[i], SERVICE_PASSWORDS[i]).await;
    }

    /// `POST /_pairgate/resync/{name}` with the admin token (202 asserted).
    pub async fn ask_resync(&self, name: &str) {
        let admin = client_trusting(Some(&self.gw.cert));
        let r = admin
            .post(format!("{}/_pairgate/resync/{name}", self.gw.base))
            .bearer_auth(&self.gw.admin_token)
            .send()
            .await
            .expect("POST /_pairgate/resync");
        assert_eq!(r.status().as_u16(), 202, "resync request");
    }

    /// Ask for a full resync of `name` and follow it (bounded) until that
    /// chassis has one more completed resync and the pair is in sync again.
    /// Returns the phases seen (each distinct phase once, in order) and the
    /// status at the end.
    pub async fn resync(&self, name: &str, limit: Duration) -> (Vec<String>, Value) {
        let pair = self;
        let before = pair.gw.status().await.map(|s| chassis(&s, name)["resyncs"].as_u64().unwrap_or(0)).unwrap_or(0);
        pair.ask_resync(name).await;
        let start = Instant::now();
        let mut phases: Vec<String> = Vec::new();
        while start.elapsed() < limit {
            if let Some(s) = pair.gw.status().await {
                if let Some(p) = s["resync"]["phase"].as_str() {
                    if s["resync"]["chassis"] == name && phases.last().map(String::as_str) != Some(p) {
                        phases.push(p.to_string());
                    }
                }
                let c = chassis(&s, name);
                let done = c["resyncs"].as_u64().unwrap_or(0) > before;
                let all_in_sync = s["chassis"].as_array().is_some_and(|v| v.iter().all(|c| c["state"] == "in_sync" && c["lag"] == 0));
                if done && all_in_sync {
                    return (phases, s);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chassis {name}: the resync did not finish within {limit:?}; phases seen {phases:?}; status {:?}", pair.gw.status().await);
    }

    /// Set the simulator's fault hooks on chassis `i` (`PUT /_sim/faults`).
    pub async fn sim_faults(&self, i: usize, spec: Value) {
        let d = self.direct(i).await;
        let r = d.http.put(format!("{}/_sim/faults", d.base)).bearer_auth(d.token.clone().unwrap_or_default()).json(&spec).send().await;
        assert_eq!(r.map(|r| r.status().as_u16()).ok(), Some(200), "PUT /_sim/faults on chassis {i}");
    }

    /// Both chassis' digests and outputs, read directly.
    pub async fn snapshot(&self) -> [(String, Value); 2] {
        let (a, b) = (self.direct(0).await, self.direct(1).await);
        [(a.digest().await, a.outputs().await), (b.digest().await, b.outputs().await)]
    }

    /// Wait (bounded by `limit`) until both chassis are in sync, then assert
    /// that they hold the same state: equal digests and equal outputs. The
    /// status when they were in sync.
    pub async fn assert_identical(&self, limit: Duration) -> Value {
        let s = self.gw.wait_in_sync(limit).await;
        let [(da, oa), (db, ob)] = self.snapshot().await;
        assert_eq!(da, db, "digests differ");
        assert_eq!(oa, ob, "outputs differ");
        s
    }
}

/// One step of a chassis' life before the gateway meets it.
pub enum History {
    /// A create that succeeds (201).
    Create(&'static str, Value),
    /// A create the chassis refuses (4xx); firmware with MySQL's habits
    /// spends an ID on it anyway.
    FailedCreate(&'static str, Value),
    /// Create, then delete what was created: the row is gone, its ID spent.
    CreateAndDelete(&'static str, Value),
    /// Stop and start the chassis (MySQL 5.7 resets its counters).
    Restart,
}

async fn live_through(sim: &mut SimProcess, ca: &Path, steps: &[History]) {
    for step in steps {
        let api = Api::direct_admin(&sim.base, ca).await;
        match step {
            History::Create(path, body) => {
                api.post(path, body.clone()).await.ok();
            }
            History::FailedCreate(path, body) => {
                let r = api.post(path, body.clone()).await;
                assert!((400..500).contains(&r.status), "{path} should be refused: {r:?}");
            }
            History::CreateAndDelete(path, body) => {
                let id = api.post(path, body.clone()).await.ok().id();
                let r = api.delete(&format!("{path}/{id}")).await;
                assert!(r.status < 300, "DELETE {path}/{id}: {r:?}");
            }
            History::Restart => sim.restart().await,
        }
    }
}

/// The chassis named `name` in a status document.
pub fn chassis<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["chassis"].as_array().and_then(|c| c.iter().find(|c| c["name"] == name)).unwrap_or(&Value::Null)
}

/// Poll `/_pairgate/status` (bounded) until `pred` holds; the status then.
/// Panics with `what` and the last status seen if it never does.
pub async fn wait_for(pair: &Pair, what: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    match pair.gw.poll_status(limit, Duration::from_millis(100), pred).await {
        Ok(s) => s,
        Err(last) => panic!("{what} did not happen within {limit:?}: {last}"),
    }
}

/// A WebSocket to the gateway's events endpoint over TLS (trusting `cert`).
pub async fn events_socket(
    port: u16,
    cert: &Path,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let tls = tls_connector(cert, &[]).connect(name, tcp).await.expect("tls");
    let url = format!("wss://127.0.0.1:{port}/api/v1/events?token={token}");
    tokio_tungstenite::client_async(url, tls).await.expect("websocket").0
}

/// The next event of type `kind` on an events socket (bounded: 10 s), or
/// `None` if the socket closed first.
pub async fn next_event<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, kind: &str) -> Option<Value>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match tokio::time::timeout_at(deadline.into(), ws.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).ok()?;
                if v["type"] == kind {
                    return Some(v);
                }
            }
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
    None
}
