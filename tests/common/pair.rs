//! A whole redundant pair for end-to-end tests: two `chassis-sim` processes
//! over HTTPS (each with its own generated certificate) and a `pairgate`
//! process in front, all on 127.0.0.1, all stopped by PID on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{bin_path, client_trusting, free_port, Api, SimOpts, SimProcess};

/// The gateway's own account on both chassis of a test pair (never the human
/// `admin`: the two would pre-empt each other's backend sessions).
pub const SERVICE_USER: &str = "gateway";
/// Its password on chassis a and on chassis b (written to the gateway's
/// password files): different, as a site's must be (the source document's
/// defect 8 was two chassis that had to share their passwords).
pub const SERVICE_PASSWORDS: [&str; 2] = ["gateway-service-secret-a", "gateway-service-secret-b"];

/// Create the gateway's service account on a chassis, as its admin, directly.
///
/// The chassis keeps one session per account, so the gateway logging in as
/// `admin` for a test's client (a replay after a restart) may end this direct
/// session between its login and its create: then it logs in again, at most
/// five times.
pub async fn create_service_account(base: &str, cert: &Path, password: &str) {
    let mut api = Api::new(base);
    api.http = client_trusting(Some(cert));
    for attempt in 1..=5 {
        let r = api.post("/login", serde_json::json!({"username": "admin", "password": "admin", "force": true})).await;
        assert_eq!(r.status, 200, "admin login on {base}: {r:?}");
        api.token = r.body["token"].as_str().map(str::to_string);
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
    let mut d = Api::new(base);
    d.http = client_trusting(Some(cert));
    let r = d.post("/login", serde_json::json!({"username": "admin", "password": "admin", "force": true})).await;
    assert_eq!(r.status, 200, "direct login: {r:?}");
    d.token = r.body["token"].as_str().map(str::to_string);
    let mut doc = d.get("/system/export").await.ok().body;
    let sources = &mut doc["tables"]["sources"];
    let first = sources["next_id"].as_u64().expect("sources.next_id");
    let rows = sources["rows"].as_array_mut().expect("sources.rows");
    for id in first..first + n {
        let url = format!("rtsp://192.0.2.{}/stream/{id}", id % 250);
        rows.push(serde_json::json!({"id": id, "name": format!("Camera {id:06} north corridor"), "kind": "ip", "url": url}));
    }
    sources["next_id"] = serde_json::json!(first + n);
    let text = doc.to_string();
    let size = text.len();
    let r = d.raw("PUT", "/system/import", text.into_bytes(), "application/json").await;
    assert_eq!(r.status, 200, "import of {n} rows into {base}: {r:?}");
    size
}

/// A self-signed certificate for 127.0.0.1 written to `dir/name.{pem,key}`.
pub fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("cert");
    let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&c, cert.pem()).expect("write cert");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    (c, k)
}

pub struct GatewayProcess {
    pub child: Option<Child>,
    pub port: u16,
    pub base: String,
    pub config: PathBuf,
    pub cert: PathBuf,
    pub admin_token: String,
    /// When set, the gateway logs with this filter (`RUST_LOG`) to this file,
    /// appended across restarts, instead of following `PAIRGATE_TEST_LOG`.
    pub log: Option<(String, PathBuf)>,
}

impl GatewayProcess {
    fn spawn(&mut self) {
        let mut cmd = Command::new(bin_path("pairgate"));
        cmd.arg("--config").arg(&self.config).stdin(Stdio::null());
        match &self.log {
            Some((filter, path)) => {
                let file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open the gateway log file");
                let copy = file.try_clone().expect("clone the log file handle");
                cmd.env("RUST_LOG", filter).env("NO_COLOR", "1").stdout(Stdio::from(copy)).stderr(Stdio::from(file));
            }
            None => {
                // PAIRGATE_TEST_LOG=pairgate=debug (any filter) shows the gateway's log.
                cmd.env("RUST_LOG", std::env::var("PAIRGATE_TEST_LOG").unwrap_or_else(|_| "off".into()))
                    .stdout(Stdio::null())
                    .stderr(if std::env::var_os("PAIRGATE_TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() });
            }
        }
        self.child = Some(cmd.spawn().expect("spawn pairgate"));
    }

    /// SIGTERM by PID (a clean shutdown), reaped within `limit`; `kill -9`
    /// after that. Whether it exited on its own.
    pub fn stop(&mut self, limit: Duration) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        let sent = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().is_ok_and(|s| s.success());
        let start = Instant::now();
        while sent && start.elapsed() < limit {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// A client that trusts exactly the gateway's certificate.
    pub fn api(&self) -> Api {
        let mut api = Api::new(&self.base);
        api.http = client_trusting(Some(&self.cert));
        api
    }

    pub async fn login(&self, user: &str, password: &str) -> Api {
        let mut api = self.api();
        let r = api.post("/login", serde_json::json!({"username": user, "password": password})).await;
        assert_eq!(r.status, 200, "gateway login {user}: {r:?}");
        api.token = r.body["token"].as_str().map(str::to_string);
        api
    }

    /// `GET /_pairgate/status` (None while the gateway is not answering).
    pub async fn status(&self) -> Option<Value> {
        let http = client_trusting(Some(&self.cert));
        let r = http
            .get(format!("{}/_pairgate/status", self.base))
            .bearer_auth(&self.admin_token)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// Wait (bounded) until both chassis are in sync and ids are ready.
    pub async fn wait_in_sync(&self, limit: Duration) -> Value {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < limit {
            if let Some(s) = self.status().await {
                let both = s["chassis"].as_array().is_some_and(|c| c.iter().all(|c| c["state"] == "in_sync" && c["lag"] == 0));
                if both && s["ids_ready"] == true {
                    return s;
                }
                last = s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("pair not in sync within {limit:?}: {last}");
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill9();
    }
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
        Pair::start_full(edit, wait, None, 0).await
    }

    /// A pair whose chassis both hold `rows` extra IP sources (the same on
    /// each, loaded directly before the gateway starts: see [`load_rows`]),
    /// with a hook to edit the gateway configuration text first.
    pub async fn start_with_rows(rows: u64, edit: impl FnOnce(&mut String)) -> Pair {
        Pair::start_full(edit, true, None, rows).await
    }

    /// As `start_with`, the gateway logging with `filter` (a `RUST_LOG`
    /// value) to the file `gateway.log` in the pair's directory
    /// (`pair.gw.log`). Waits for both chassis in sync.
    pub async fn start_logged(edit: impl FnOnce(&mut String), filter: &str) -> Pair {
        Pair::start_full(edit, true, Some(filter.to_string()), 0).await
    }

    async fn start_full(edit: impl FnOnce(&mut String), wait: bool, log_filter: Option<String>, rows: u64) -> Pair {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let (ca, ka) = make_cert(d, "chassis-a");
        let (cb, kb) = make_cert(d, "chassis-b");
        let (gc, gk) = make_cert(d, "gateway");
        let a = SimProcess::start(SimOpts { serial: "A".into(), tls: Some((ca.clone(), ka)), ..SimOpts::default() });
        let b = SimProcess::start(SimOpts { serial: "B".into(), tls: Some((cb.clone(), kb)), ..SimOpts::default() });
        for (name, v) in [
            ("admin.token", "test-admin-token-0123456789abcdef"),
            ("jwt.secret", "test-jwt-secret-0123456789abcdef0123456789"),
            ("a.pw", SERVICE_PASSWORDS[0]),
            ("b.pw", SERVICE_PASSWORDS[1]),
        ] {
            std::fs::write(d.join(name), v).expect("write secret");
        }
        create_service_account(&a.base, &ca, SERVICE_PASSWORDS[0]).await;
        create_service_account(&b.base, &cb, SERVICE_PASSWORDS[1]).await;
        if rows > 0 {
            load_rows(&a.base, &ca, rows).await;
            load_rows(&b.base, &cb, rows).await;
        }
        let port = free_port();
        let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml")).expect("shipped gateway.toml");
        let routes = &shipped[shipped.find("# ----").expect("route section")..];
        let q = |p: &Path| toml_str(&p.display().to_string());
        let mut text = format!(
            "admin_token_file = {}\n[listen]\naddr = \"127.0.0.1:{port}\"\ntls_cert = {}\ntls_key = {}\n[state]\ndir = {}\n\
             [[chassis]]\nname = \"a\"\nurl = \"https://127.0.0.1:{}\"\nca_cert = {}\nusername = \"{SERVICE_USER}\"\npassword_file = {}\npreferred_primary = true\n\
             [[chassis]]\nname = \"b\"\nurl = \"https://127.0.0.1:{}\"\nca_cert = {}\nusername = \"{SERVICE_USER}\"\npassword_file = {}\n\
             [timeouts]\nsecondary_grace_ms = 200\nper_try_ms = 1000\nhealth_interval_ms = 200\ndown_after_ms = 600\n\
             [sessions]\njwt_secret_file = {}\nlogin_attempts_per_minute = 1000\n{routes}",
            q(&d.join("admin.token")),
            q(&gc),
            q(&gk),
            q(&d.join("gateway-state")),
            a.port,
            q(&ca),
            q(&d.join("a.pw")),
            b.port,
            q(&cb),
            q(&d.join("b.pw")),
            q(&d.join("jwt.secret")),
        );
        edit(&mut text);
        let config = d.join("gateway.toml");
        let scheme = if text.contains("insecure_http = true") { "http" } else { "https" };
        std::fs::write(&config, text).expect("write gateway.toml");
        let mut gw = GatewayProcess {
            child: None,
            port,
            base: format!("{scheme}://127.0.0.1:{port}"),
            config,
            cert: gc,
            admin_token: "test-admin-token-0123456789abcdef".into(),
            log: log_filter.map(|f| (f, d.join("gateway.log"))),
        };
        gw.spawn();
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
        let mut api = Api::new(&sim.base);
        api.http = client_trusting(Some(&self.certs[i]));
        let r = api.post("/login", serde_json::json!({"username": "admin", "password": "admin", "force": true})).await;
        assert_eq!(r.status, 200, "direct login: {r:?}");
        api.token = r.body["token"].as_str().map(str::to_string);
        api
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

/// The chassis named `name` in a status document.
pub fn chassis<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["chassis"].as_array().and_then(|c| c.iter().find(|c| c["name"] == name)).unwrap_or(&Value::Null)
}

/// Poll `/_pairgate/status` (bounded) until `pred` holds; the status then.
/// Panics with `what` and the last status seen if it never does.
pub async fn wait_for(pair: &Pair, what: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < limit {
        if let Some(s) = pair.gw.status().await {
            if pred(&s) {
                return s;
            }
            last = s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within {limit:?}: {last}");
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A WebSocket to the gateway's events endpoint over TLS (trusting `cert`).
pub async fn events_socket(
    port: u16,
    cert: &Path,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let tls = super::tls_connector(cert, &[]).connect(name, tcp).await.expect("tls");
    let url = format!("wss://127.0.0.1:{port}/api/v1/events?token={token}");
    tokio_tungstenite::client_async(url, tls).await.expect("websocket").0
}
