//! The end-to-end harness: real binaries as separate processes on 127.0.0.1
//! ports, each stopped by its PID when the test ends (also on panic, through
//! `Drop`), and a small JSON client for the chassis API.
//!
//! Every wait here is bounded in count and time.
#![allow(dead_code)]

pub mod pair;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use serde_json::Value;

/// Where cargo put the workspace's binaries: next to the test executable's
/// `deps/` folder. The README's test command builds them first.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` before the tests (the README's test command does)",
        path.display()
    );
    path
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Folder for things a test run leaves for a human (screenshots, logs).
pub fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create test-artifacts");
    dir
}

/// Read `listening on 127.0.0.1:PORT` from a child's stdout (bounded), then
/// keep draining it in the background so the child never blocks on a full pipe.
pub fn read_listening_port(stdout: std::process::ChildStdout, limit: Duration) -> Result<u16, String> {
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

/// How a simulated chassis is started.
#[derive(Clone, Debug)]
pub struct SimOpts {
    pub serial: String,
    pub inputs: u32,
    pub outputs: u32,
    pub hooks: bool,
    pub ephemeral: bool,
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `--max-import` (the simulator's default when None).
    pub max_import: Option<usize>,
}

impl Default for SimOpts {
    fn default() -> Self {
        SimOpts { serial: "SIM-TEST".into(), inputs: 16, outputs: 16, hooks: true, ephemeral: false, tls: None, max_import: None }
    }
}

/// A `chassis-sim` child process. Killed (SIGKILL, by PID) on drop.
pub struct SimProcess {
    pub child: Option<Child>,
    pub port: u16,
    pub base: String,
    pub state_dir: PathBuf,
    pub opts: SimOpts,
    _tmp: Option<tempfile::TempDir>,
}

impl SimProcess {
    /// Start a chassis on a fresh port with a fresh state folder.
    pub fn start(opts: SimOpts) -> SimProcess {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state_dir = tmp.path().to_path_buf();
        // Port 0: the chassis binds whatever the kernel gives and says which
        // (a restart then reuses that port).
        let mut p = SimProcess { child: None, port: 0, base: String::new(), state_dir, opts, _tmp: Some(tmp) };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(bin_path("chassis-sim"));
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--state")
            .arg(&self.state_dir)
            .arg("--serial")
            .arg(&self.opts.serial)
            .arg("--inputs")
            .arg(self.opts.inputs.to_string())
            .arg("--outputs")
            .arg(self.opts.outputs.to_string());
        if self.opts.hooks {
            cmd.arg("--sim-hooks");
        }
        if self.opts.ephemeral {
            cmd.arg("--ephemeral");
        }
        if let Some((cert, key)) = &self.opts.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        if let Some(n) = self.opts.max_import {
            cmd.arg("--max-import").arg(n.to_string());
        }
        // Chassis logs only when asked for (PAIRGATE_TEST_LOG=1): they drown test output.
        let stderr = if std::env::var_os("PAIRGATE_TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() };
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr);
        let mut child = cmd.spawn().expect("spawn chassis-sim");
        let stdout = child.stdout.take().expect("piped stdout");
        self.child = Some(child);
        self.port = read_listening_port(stdout, Duration::from_secs(20)).unwrap_or_else(|e| panic!("chassis-sim did not start: {e}"));
        let scheme = if self.opts.tls.is_some() { "https" } else { "http" };
        self.base = format!("{scheme}://127.0.0.1:{}", self.port);
        self.wait_listening(Duration::from_secs(20));
    }

    /// Wait until the chassis accepts TCP connections (bounded).
    fn wait_listening(&mut self, limit: Duration) {
        let start = Instant::now();
        for _ in 0..2000 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("chassis-sim exited early: {status}");
                }
            }
            if start.elapsed() > limit {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("chassis-sim did not listen on {} within {limit:?}", self.port);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `kill -9` the process and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    /// Start the same command line again, on the same port and state.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The answer of one API call.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The `error.code` of an error answer ("" if there is none).
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn id(&self) -> u64 {
        self.body["id"].as_u64().unwrap_or_else(|| panic!("no id in {self:?}"))
    }
    /// Panic with the whole answer unless the status is 2xx.
    pub fn ok(self) -> Reply {
        assert!((200..300).contains(&self.status), "expected 2xx, got {self:?}");
        self
    }
}

/// The certificates of a PEM file as the only rustls trust anchors (ring
/// installed as the crypto provider first).
pub fn roots_trusting(ca_pem: &Path) -> rustls::RootCertStore {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca_pem).expect("read CA pem");
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.expect("pem cert")).expect("add root");
    }
    roots
}

/// A raw TLS connector trusting exactly the certificate in `ca_pem`, offering
/// the `alpn` protocols (none: no ALPN).
pub fn tls_connector(ca_pem: &Path, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut cfg = rustls::ClientConfig::builder().with_root_certificates(roots_trusting(ca_pem)).with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
}

/// A rustls client config trusting exactly one certificate, with ring.
pub fn client_trusting(ca_pem: Option<&Path>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let roots = ca_pem.map(roots_trusting).unwrap_or_else(rustls::RootCertStore::empty);
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    reqwest::Client::builder().tls_backend_preconfigured(tls).timeout(Duration::from_secs(30)).build().expect("reqwest client")
}

pub fn client() -> reqwest::Client {
    client_trusting(None)
}

/// A JSON client for one chassis (or, later, the gateway) with an optional token.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api { http: client(), base: base.trim_end_matches('/').to_string(), token: None }
    }

    /// Log in as `user` (force = false) and keep the token; panics unless 200.
    pub async fn login(base: &str, user: &str, password: &str) -> Api {
        let mut api = Api::new(base);
        let r = api.call("POST", "/login", Some(serde_json::json!({"username": user, "password": password})), &[]).await;
        assert_eq!(r.status, 200, "login {user}: {r:?}");
        api.token = Some(r.body["token"].as_str().expect("token").to_string());
        api
    }

    /// One request to `/api/v1{path}` with extra headers; never panics on status.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Reply {
        let url = format!("{}/api/v1{}", self.base, path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("send request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("read body");
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Reply { status, body }
    }

    /// A request with a raw body and content type (for malformed input tests).
    pub async fn raw(&self, method: &str, path: &str, body: Vec<u8>, content_type: &str) -> Reply {
        let url = format!("{}/api/v1{}", self.base, path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, url).header("content-type", content_type).body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("send request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("read body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None, &[]).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body), &[]).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call("PUT", path, Some(body), &[]).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None, &[]).await
    }
    /// A mutation carrying `X-Id-Block: base+count`.
    pub async fn with_block(&self, method: &str, path: &str, body: Option<Value>, base: u64, count: u64) -> Reply {
        let block = format!("{base}+{count}");
        self.call(method, path, body, &[("X-Id-Block", &block)]).await
    }

    pub async fn digest(&self) -> String {
        let r = self.get("/system/digest").await.ok();
        r.body["digest"].as_str().expect("digest").to_string()
    }
    pub async fn outputs(&self) -> Value {
        self.get("/hardware/outputs").await.ok().body
    }
}
