//! A headless Chromium driven through chromedriver's W3C WebDriver HTTP
//! protocol: what the browser tests (tests/web_client.rs, tests/dashboard.rs)
//! click, type and read with.
//!
//! Needs Debian's `chromium` and `chromium-driver` (or `CHROMIUM_BIN` and
//! `CHROMEDRIVER_BIN` pointing elsewhere). chromedriver's log goes to
//! `test-artifacts/chromedriver-PORT.log`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::api::client;
use crate::bins::artifacts_dir;
use crate::process::free_port;

/// The W3C key under which an element reference travels.
pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub fn chromium_bin() -> String {
    std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

pub fn chromedriver_bin() -> String {
    std::env::var("CHROMEDRIVER_BIN").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

pub type Res<T> = Result<T, String>;

/// chromedriver (a child process) plus one browser session in it.
///
/// Dropping it ends the session (a plain blocking HTTP DELETE, so Chromium
/// quits even when the test panicked) and then kills chromedriver by PID.
pub struct Browser {
    http: reqwest::Client,
    port: u16,
    base: String,
    session: Option<String>,
    child: Option<Child>,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        Browser::start_with(false).await
    }

    /// With `accept_insecure_certs`, the session accepts any TLS certificate
    /// (W3C `acceptInsecureCerts`): the test gateway's is self-signed.
    pub async fn start_with(accept_insecure_certs: bool) -> Browser {
        Browser::start_sized(accept_insecure_certs, (1400, 900)).await
    }

    /// [`Browser::start_with`], its window `size` CSS px wide and high.
    pub async fn start_sized(accept_insecure_certs: bool, size: (u32, u32)) -> Browser {
        for bin in [chromium_bin(), chromedriver_bin()] {
            assert!(std::path::Path::new(&bin).exists(), "{bin} is missing: install Debian's `chromium` and `chromium-driver`");
        }
        let port = free_port().expect("a free port");
        let log = artifacts_dir().join(format!("chromedriver-{port}.log"));
        let child = Command::new(chromedriver_bin())
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let profile = tempfile::tempdir().expect("profile tempdir");
        let mut b = Browser {
            http: client(),
            port,
            base: format!("http://127.0.0.1:{port}"),
            session: None,
            child: Some(child),
            _profile: profile,
        };
        b.wait_ready(Duration::from_secs(20)).await;
        b.new_session(accept_insecure_certs, size).await;
        b
    }

    /// Poll `/status` until chromedriver says it is ready (bounded).
    pub async fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        for _ in 0..200 {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(st)) = child.try_wait() {
                    panic!("chromedriver exited early: {st}");
                }
            }
            let url = format!("{}/status", self.base);
            if let Ok(resp) = self.http.get(&url).timeout(Duration::from_secs(2)).send().await {
                if let Ok(v) = resp.json::<Value>().await {
                    if v["value"]["ready"] == json!(true) {
                        return;
                    }
                }
            }
            if start.elapsed() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver on port {} not ready within {limit:?}", self.port);
    }

    pub async fn new_session(&mut self, accept_insecure_certs: bool, (w, h): (u32, u32)) {
        let profile = self._profile.path().display().to_string();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": accept_insecure_certs,
            "goog:chromeOptions": {
                "binary": chromium_bin(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", format!("--window-size={w},{h}"),
                    format!("--user-data-dir={profile}"),
                ],
            },
        }}});
        let v = self.request("POST", "/session", Some(caps)).await.unwrap_or_else(|e| panic!("new WebDriver session: {e}"));
        let id = v["sessionId"].as_str().unwrap_or_else(|| panic!("no sessionId in {v}"));
        self.session = Some(id.to_string());
    }

    /// One WebDriver request; the answer's `value`, or its error as text.
    pub async fn request(&self, method: &str, path: &str, body: Option<Value>) -> Res<Value> {
        let url = format!("{}{}", self.base, path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, &url);
        if method == "POST" {
            req = req.json(&body.unwrap_or_else(|| json!({})));
        }
        let resp = req.send().await.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| format!("{method} {path}: {e}"))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{method} {path}: {e}: {text}"))?;
        if !status.is_success() {
            return Err(format!("{method} {path}: {status}: {}", v["value"]));
        }
        Ok(v["value"].clone())
    }

    /// A request within the session.
    pub async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Res<Value> {
        let sid = self.session.as_deref().ok_or("no session")?;
        self.request(method, &format!("/session/{sid}{path}"), body).await
    }

    pub async fn goto(&self, url: &str) -> Res<()> {
        self.cmd("POST", "/url", Some(json!({"url": url}))).await.map(drop)
    }

    pub async fn find(&self, css: &str) -> Res<String> {
        let v = self.cmd("POST", "/element", Some(json!({"using": "css selector", "value": css}))).await?;
        v[ELEMENT].as_str().map(str::to_string).ok_or_else(|| format!("no element ref in {v}"))
    }

    /// Wait (bounded) until `css` matches an element.
    pub async fn wait_css(&self, css: &str, limit: Duration) -> Res<String> {
        let start = Instant::now();
        let mut last = String::new();
        for _ in 0..500 {
            match self.find(css).await {
                Ok(el) => return Ok(el),
                Err(e) => last = e,
            }
            if start.elapsed() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("`{css}` did not appear within {limit:?}: {last}"))
    }

    pub async fn send_keys(&self, el: &str, text: &str) -> Res<()> {
        self.cmd("POST", &format!("/element/{el}/value"), Some(json!({"text": text}))).await.map(drop)
    }

    /// Empty an input (then `send_keys` types the new value).
    pub async fn clear(&self, el: &str) -> Res<()> {
        self.cmd("POST", &format!("/element/{el}/clear"), None).await.map(drop)
    }

    /// Clear the input `css` and type `text` into it.
    pub async fn fill(&self, css: &str, text: &str) -> Res<()> {
        let el = self.find(css).await?;
        self.clear(&el).await?;
        self.send_keys(&el, text).await
    }

    /// Find `css` and click it. A list rebuilt by a refresh between the two
    /// steps makes the element stale: then it is found again (at most 3 times).
    pub async fn click_css(&self, css: &str) -> Res<()> {
        let mut last = String::new();
        for _ in 0..3 {
            let el = self.find(css).await?;
            match self.click(&el).await {
                Err(e) if e.contains("stale element") => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    /// Open the chassis' web client at `base` (through the gateway) and log
    /// in with its form as `user`.
    pub async fn log_in_to_web_client(&self, base: &str, user: &str, password: &str) -> Res<()> {
        self.goto(&format!("{base}/")).await?;
        let field = self.wait_css("#username", Duration::from_secs(15)).await?;
        self.send_keys(&field, user).await?;
        self.send_keys(&self.find("#password").await?, password).await?;
        self.click_css("#login-btn").await
    }

    pub async fn click(&self, el: &str) -> Res<()> {
        self.cmd("POST", &format!("/element/{el}/click"), None).await.map(drop)
    }

    pub async fn exec(&self, script: &str, args: Value) -> Res<Value> {
        self.cmd("POST", "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// Wait (bounded) until `script` returns `want`.
    pub async fn wait_script(&self, script: &str, want: Value, limit: Duration) -> Res<()> {
        let start = Instant::now();
        let mut last = Value::Null;
        for _ in 0..500 {
            last = self.exec(script, json!([])).await?;
            if last == want {
                return Ok(());
            }
            if start.elapsed() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("`{script}` gave {last}, not {want}, within {limit:?}"))
    }

    /// Wait (bounded) until `script`'s value satisfies `pred`; that value.
    pub async fn wait_for(&self, script: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Res<Value> {
        let start = Instant::now();
        let mut last = Value::Null;
        for _ in 0..500 {
            last = self.exec(script, json!([])).await?;
            if pred(&last) {
                return Ok(last);
            }
            if start.elapsed() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("`{script}` gave {last}, never what was wanted, within {limit:?}"))
    }

    /// The status bar: (class, text).
    pub async fn status_bar(&self) -> Res<(String, String)> {
        let v = self.exec("const s = document.querySelector('#status'); return [s.className, s.textContent];", json!([])).await?;
        Ok((v[0].as_str().unwrap_or("").to_string(), v[1].as_str().unwrap_or("").to_string()))
    }

    /// Save a screenshot as `test-artifacts/{name}` (checked to be a real PNG).
    pub async fn save_screenshot(&self, name: &str) -> Res<()> {
        let png = self.screenshot().await?;
        let path = artifacts_dir().join(name);
        std::fs::write(&path, &png).map_err(|e| format!("write {}: {e}", path.display()))?;
        if !png.starts_with(b"\x89PNG\r\n\x1a\n") || png.len() < 5_000 {
            return Err(format!("screenshot is not a real PNG ({} bytes)", png.len()));
        }
        println!("screenshot: {} ({} bytes)", path.display(), png.len());
        Ok(())
    }

    /// Press the mouse on the element's centre, move by (dx, dy) CSS px in a
    /// few steps, release: a real pointer drag through the input pipeline.
    pub async fn drag(&self, el: &str, dx: i64, dy: i64) -> Res<()> {
        let steps = 5;
        let mut actions = vec![
            json!({"type": "pointerMove", "duration": 0, "origin": {ELEMENT: el}, "x": 0, "y": 0}),
            json!({"type": "pointerDown", "button": 0}),
            json!({"type": "pause", "duration": 50}),
        ];
        for _ in 0..steps {
            actions.push(json!({"type": "pointerMove", "duration": 40, "origin": "pointer",
                                "x": dx / steps, "y": dy / steps}));
        }
        actions.push(json!({"type": "pointerUp", "button": 0}));
        let body = json!({"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": actions,
        }]});
        self.cmd("POST", "/actions", Some(body)).await?;
        self.cmd("DELETE", "/actions", None).await.map(drop)
    }

    pub async fn screenshot(&self) -> Res<Vec<u8>> {
        let v = self.cmd("GET", "/screenshot", None).await?;
        let b64 = v.as_str().ok_or("screenshot is not a string")?;
        base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| format!("screenshot is not base64: {e}"))
    }

    /// End the session politely (Chromium quits); Drop kills chromedriver.
    pub async fn quit(&mut self) {
        if let Some(sid) = self.session.take() {
            let _ = self.request("DELETE", &format!("/session/{sid}"), None).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(sid) = self.session.take() {
            blocking_delete(self.port, &format!("/session/{sid}"));
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL, by PID
            let _ = child.wait();
        }
    }
}

/// `DELETE path` on 127.0.0.1:port with std only (usable inside Drop), bounded.
fn blocking_delete(port: u16, path: &str) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { return };
    let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let req = format!("DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_ok() {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf); // the answer comes once the browser has quit
    }
}
