//! The operator web client, end to end: a real `chassis-sim`, a real headless
//! Chromium, driven through chromedriver's W3C WebDriver HTTP protocol.
//!
//! Needs Debian's `chromium` and `chromium-driver` (or `CHROMIUM_BIN` and
//! `CHROMEDRIVER_BIN` pointing elsewhere). Leaves a screenshot in
//! `test-artifacts/web_client.png` and chromedriver's log next to it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Api, SimOpts, SimProcess};
use serde_json::{json, Value};

/// The W3C key under which an element reference travels.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn chromium_bin() -> String {
    std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn chromedriver_bin() -> String {
    std::env::var("CHROMEDRIVER_BIN").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

type Res<T> = Result<T, String>;

/// chromedriver (a child process) plus one browser session in it.
///
/// Dropping it ends the session (a plain blocking HTTP DELETE, so Chromium
/// quits even when the test panicked) and then kills chromedriver by PID.
struct Browser {
    http: reqwest::Client,
    port: u16,
    base: String,
    session: Option<String>,
    child: Option<Child>,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        for bin in [chromium_bin(), chromedriver_bin()] {
            assert!(std::path::Path::new(&bin).exists(), "{bin} is missing: install Debian's `chromium` and `chromium-driver`");
        }
        let port = common::free_port();
        let log = common::artifacts_dir().join("chromedriver.log");
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
            http: common::client(),
            port,
            base: format!("http://127.0.0.1:{port}"),
            session: None,
            child: Some(child),
            _profile: profile,
        };
        b.wait_ready(Duration::from_secs(20)).await;
        b.new_session().await;
        b
    }

    /// Poll `/status` until chromedriver says it is ready (bounded).
    async fn wait_ready(&mut self, limit: Duration) {
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

    async fn new_session(&mut self) {
        let profile = self._profile.path().display().to_string();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_bin(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1400,900",
                    format!("--user-data-dir={profile}"),
                ],
            },
        }}});
        let v = self.request("POST", "/session", Some(caps)).await.unwrap_or_else(|e| panic!("new WebDriver session: {e}"));
        let id = v["sessionId"].as_str().unwrap_or_else(|| panic!("no sessionId in {v}"));
        self.session = Some(id.to_string());
    }

    /// One WebDriver request; the answer's `value`, or its error as text.
    async fn request(&self, method: &str, path: &str, body: Option<Value>) -> Res<Value> {
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
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Res<Value> {
        let sid = self.session.as_deref().ok_or("no session")?;
        self.request(method, &format!("/session/{sid}{path}"), body).await
    }

    async fn goto(&self, url: &str) -> Res<()> {
        self.cmd("POST", "/url", Some(json!({"url": url}))).await.map(drop)
    }

    async fn find(&self, css: &str) -> Res<String> {
        let v = self.cmd("POST", "/element", Some(json!({"using": "css selector", "value": css}))).await?;
        v[ELEMENT].as_str().map(str::to_string).ok_or_else(|| format!("no element ref in {v}"))
    }

    /// Wait (bounded) until `css` matches an element.
    async fn wait_css(&self, css: &str, limit: Duration) -> Res<String> {
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

    async fn send_keys(&self, el: &str, text: &str) -> Res<()> {
        self.cmd("POST", &format!("/element/{el}/value"), Some(json!({"text": text}))).await.map(drop)
    }

    async fn click(&self, el: &str) -> Res<()> {
        self.cmd("POST", &format!("/element/{el}/click"), None).await.map(drop)
    }

    async fn exec(&self, script: &str, args: Value) -> Res<Value> {
        self.cmd("POST", "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// Wait (bounded) until `script` returns `want`.
    async fn wait_script(&self, script: &str, want: Value, limit: Duration) -> Res<()> {
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

    /// Press the mouse on the element's centre, move by (dx, dy) CSS px in a
    /// few steps, release: a real pointer drag through the input pipeline.
    async fn drag(&self, el: &str, dx: i64, dy: i64) -> Res<()> {
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

    async fn screenshot(&self) -> Res<Vec<u8>> {
        let v = self.cmd("GET", "/screenshot", None).await?;
        let b64 = v.as_str().ok_or("screenshot is not a string")?;
        base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| format!("screenshot is not base64: {e}"))
    }

    /// End the session politely (Chromium quits); Drop kills chromedriver.
    async fn quit(&mut self) {
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

/// Poll the API (bounded) until window `wid` on `wall` satisfies `pred`.
async fn wait_window(api: &Api, wall: u64, wid: u64, limit: Duration, pred: impl Fn(&Value) -> bool) -> Res<Value> {
    let start = Instant::now();
    let mut last = Value::Null;
    for _ in 0..200 {
        let r = api.get(&format!("/walls/{wall}/windows")).await.ok();
        if let Some(w) = r.body.as_array().and_then(|a| a.iter().find(|w| w["id"] == json!(wid))) {
            last = w.clone();
            if pred(w) {
                return Ok(last);
            }
        }
        if start.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("window {wid} never matched within {limit:?}; last seen {last}"))
}

#[tokio::test]
async fn web_client_logs_in_drags_a_window_and_follows_events() {
    let sim = SimProcess::start(SimOpts::default());
    let admin = Api::login(&sim.base, "admin", "admin").await;

    let wall = admin.post("/walls", json!({"name": "Main", "rows": 2, "cols": 2, "outputs": [1, 2, 3, 4]})).await.ok();
    let wall_id = wall.id();
    let (wall_w, wall_h) = (2 * wall.body["screen_width"].as_u64().unwrap(), 2 * wall.body["screen_height"].as_u64().unwrap());
    let win_id =
        admin.post(&format!("/walls/{wall_id}/windows"), json!({"source_id": 1, "x": 0, "y": 0, "w": 1920, "h": 1080})).await.ok().id();
    // The browser logs in as its own account: one live session per account.
    admin.post("/users", json!({"username": "op", "password": "op-pass-1", "role": "operator"})).await.ok();

    let mut browser = Browser::start().await;
    let outcome = run_ui(&browser, &sim.base, &admin, wall_id, win_id, (wall_w, wall_h), None, "web_client.png").await;
    if let Err(e) = outcome {
        if let Ok(png) = browser.screenshot().await {
            let _ = std::fs::write(common::artifacts_dir().join("web_client_failure.png"), png);
        }
        let status = browser.exec("return document.querySelector('#status')?.textContent", json!([])).await.unwrap_or(Value::Null);
        browser.quit().await;
        panic!("{e}\n(status bar: {status}; see test-artifacts/web_client_failure.png and chromedriver.log)");
    }
    browser.quit().await;
}

/// Drive the page at `base`: log in, pick the wall, drag a window, see a live
/// update. With `kill`, that chassis is killed (-9) after the drag and
/// before the live update: through the gateway the page must not notice.
#[allow(clippy::too_many_arguments)]
async fn run_ui(
    b: &Browser,
    base: &str,
    admin: &Api,
    wall_id: u64,
    win_id: u64,
    (wall_w, wall_h): (u64, u64),
    kill: Option<&mut SimProcess>,
    shot: &str,
) -> Res<()> {
    let secs = Duration::from_secs;

    // Log in through the form.
    b.goto(&format!("{base}/")).await?;
    let user = b.wait_css("#username", secs(15)).await?;
    b.send_keys(&user, "op").await?;
    b.send_keys(&b.find("#password").await?, "op-pass-1").await?;
    b.click(&b.find("#login-btn").await?).await?;

    // Pick the wall.
    let opt = b.wait_css(&format!("#wall-select option[value=\"{wall_id}\"]"), secs(15)).await?;
    b.click(&opt).await?;
    b.wait_script("return document.querySelector('#wall-select').value", json!(wall_id.to_string()), secs(5)).await?;

    // The window is drawn, and the event socket is open.
    let sel = format!(".window[data-id=\"{win_id}\"]");
    b.wait_css(&sel, secs(15)).await?;
    b.wait_script("return document.querySelector('#ws-state').textContent", json!("live"), secs(15)).await?;

    // Drag it; the chassis must see a move right and down, still inside the wall.
    let el = b.find(&sel).await?;
    b.drag(&el, 200, 150).await?;
    let moved =
        wait_window(admin, wall_id, win_id, secs(10), |w| w["x"].as_u64().unwrap_or(0) > 0 && w["y"].as_u64().unwrap_or(0) > 0).await?;
    let (x, y, w, h) =
        (moved["x"].as_u64().unwrap(), moved["y"].as_u64().unwrap(), moved["w"].as_u64().unwrap(), moved["h"].as_u64().unwrap());
    println!("window {win_id} after the drag: {w}x{h} at ({x}, {y}) on a {wall_w}x{wall_h} wall");
    if x + w > wall_w || y + h > wall_h || (w, h) != (1920, 1080) {
        return Err(format!("the drag left window {win_id} at {moved}, outside a {wall_w}x{wall_h} wall or resized"));
    }

    if let Some(chassis) = kill {
        chassis.kill9();
        // Let the gateway notice (health probes) and move the event socket.
        tokio::time::sleep(secs(2)).await;
    }

    // Live update: a window opened elsewhere shows up without a reload.
    let new_id = admin
        .post(&format!("/walls/{wall_id}/windows"), json!({"source_id": 2, "x": 1920, "y": 1080, "w": 1920, "h": 1080}))
        .await
        .ok()
        .id();
    b.wait_css(&format!(".window[data-id=\"{new_id}\"]"), secs(10)).await?;

    // No error in the status bar.
    let status_class = b.exec("return document.querySelector('#status').className", json!([])).await?;
    if status_class.as_str().unwrap_or("").contains("error") {
        let text = b.exec("return document.querySelector('#status').textContent", json!([])).await?;
        return Err(format!("status bar shows an error: {text}"));
    }

    // Screenshot for a human.
    let png = b.screenshot().await?;
    let path = common::artifacts_dir().join(shot);
    std::fs::write(&path, &png).map_err(|e| format!("write {}: {e}", path.display()))?;
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") || png.len() < 5_000 {
        return Err(format!("screenshot is not a real PNG ({} bytes)", png.len()));
    }
    println!("screenshot: {} ({} bytes)", path.display(), png.len());
    Ok(())
}

/// The same page, unchanged, served through the gateway (plain HTTP on
/// loopback for the browser, HTTPS to both chassis), with the primary chassis
/// killed half-way: the operator sees nothing happen.
#[tokio::test]
async fn web_client_works_through_the_gateway_while_a_chassis_dies() {
    let mut pair = common::pair::Pair::start_with(|t| {
        let start = t.find("tls_cert = ").expect("tls_cert line");
        let end = t[start..].find("[state]").map(|e| start + e).expect("[state]");
        t.replace_range(start..end, "insecure_http = true\n");
    })
    .await;
    let admin = pair.gw.login("admin", "admin").await;
    let wall = admin.post("/walls", json!({"name": "Main", "rows": 2, "cols": 2, "outputs": [1, 2, 3, 4]})).await.ok();
    let wall_id = wall.id();
    let win_id =
        admin.post(&format!("/walls/{wall_id}/windows"), json!({"source_id": 1, "x": 0, "y": 0, "w": 1920, "h": 1080})).await.ok().id();
    admin.post("/users", json!({"username": "op", "password": "op-pass-1", "role": "operator"})).await.ok();
    pair.gw.wait_in_sync(Duration::from_secs(10)).await;

    let mut browser = Browser::start().await;
    let base = pair.gw.base.clone();
    let outcome = run_ui(&browser, &base, &admin, wall_id, win_id, (3840, 2160), Some(&mut pair.a), "web_client_gateway.png").await;
    if let Err(e) = outcome {
        if let Ok(png) = browser.screenshot().await {
            let _ = std::fs::write(common::artifacts_dir().join("web_client_gateway_failure.png"), png);
        }
        browser.quit().await;
        panic!("{e}");
    }
    browser.quit().await;
    let status = pair.gw.status().await.expect("status");
    assert_eq!(status["primary"], "b", "{status}");
}
