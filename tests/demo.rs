//! `pairgate demo` (the README's run command): generates certificates and
//! secrets once, serves two chassis over HTTPS with them and the gateway in
//! front, keeps the state across runs, and stops its children on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pairgate_suite::api::{client_trusting, Api};
use pairgate_suite::bins::bin_path;
use pairgate_suite::process::free_port;

async fn healthy(port: u16, cert: &std::path::Path) -> bool {
    let http = client_trusting(Some(cert));
    matches!(http.get(format!("https://127.0.0.1:{port}/api/v1/system/health")).send().await, Ok(r) if r.status() == 200)
}

struct Demo(std::process::Child);

impl Drop for Demo {
    /// SIGTERM first, so the demo stops its chassis children by their PIDs;
    /// SIGKILL only if it has not exited within 10 s.
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `pairgate demo` on `port` and `state`; `terminal`: its stdin and stdout
/// piped to the test (else both closed).
fn spawn(port: u16, state: &std::path::Path, terminal: bool) -> Demo {
    let io = || if terminal { Stdio::piped() } else { Stdio::null() };
    let child = Command::new(bin_path("pairgate"))
        .args(["demo", "--port", &port.to_string(), "--state"])
        .arg(state)
        .stdin(io())
        .stdout(io())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pairgate demo");
    Demo(child)
}

fn start(port: u16, state: &std::path::Path) -> Demo {
    spawn(port, state, false)
}

async fn wait_healthy(port: u16, cert: &std::path::Path) {
    let t = Instant::now();
    for _ in 0..200 {
        if cert.exists() && healthy(port, cert).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chassis on {port} not healthy after {:?}", t.elapsed());
}

/// Log in through the demo's gateway once it is serving (bounded wait).
async fn gateway_login(port: u16, state: &std::path::Path) -> Api {
    let cert = state.join("certs/gateway.pem");
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if !cert.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let mut api = Api::new(&format!("https://127.0.0.1:{port}"));
        api.http = client_trusting(Some(&cert));
        if let Ok(r) = api
            .http
            .post(format!("{}/api/v1/login", api.base))
            .json(&serde_json::json!({"username": "admin", "password": "admin"}))
            .send()
            .await
        {
            if r.status() == 200 {
                let v: serde_json::Value = r.json().await.unwrap();
                api.token = v["token"].as_str().map(str::to_string);
                // Mutations wait for the id floor: probe with a read of the status.
                let token = std::fs::read_to_string(state.join("admin.token")).unwrap();
                for _ in 0..100 {
                    let s: serde_json::Value = api
                        .http
                        .get(format!("{}/_pairgate/status", api.base))
                        .bearer_auth(token.trim())
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    if s["ids_ready"] == true && s["chassis"].as_array().unwrap().iter().all(|c| c["state"] == "in_sync") {
                        return api;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the demo's gateway did not serve within 20 s");
}

/// SIGTERM to the demo, then wait (at most `limit`) for it to exit: its status.
async fn sigterm_and_wait(demo: &mut Demo, limit: Duration) -> Option<std::process::ExitStatus> {
    assert!(Command::new("kill").arg("-TERM").arg(demo.0.id().to_string()).status().unwrap().success());
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Ok(Some(status)) = demo.0.try_wait() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// A client of the chassis on `port` (trusting `cert`), logged in directly as
/// `user` with `force` (the gateway may hold that account's session).
async fn direct_login(port: u16, cert: &std::path::Path, user: &str, password: &str) -> Api {
    let mut direct = Api::new(&format!("https://127.0.0.1:{port}"));
    direct.http = client_trusting(Some(cert));
    let r = direct.post("/login", serde_json::json!({"username": user, "password": password, "force": true})).await.ok();
    direct.token = r.body["token"].as_str().map(str::to_string);
    direct
}

/// The demo's children, found by their command line (they are this test's grandchildren).
fn children_of(state: &std::path::Path) -> usize {
    let out = Command::new("pgrep").arg("-f").arg("--").arg(format!("--state {}", state.display())).output().expect("pgrep");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test]
async fn demo_serves_two_https_chassis_keeps_state_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("demo");
    // Three consecutive ports: the gateway's and the two chassis'.
    let port = free_port().expect("a free port");
    let (pa, pb) = (port + 1, port + 2);
    let mut demo = start(port, &state);
    let (ca, cb) = (state.join("certs/chassis-a.pem"), state.join("certs/chassis-b.pem"));
    wait_healthy(pa, &ca).await;
    wait_healthy(pb, &cb).await;
    // Each chassis presents its own certificate: b's is not accepted for a.
    assert!(!healthy(pa, &cb).await, "chassis a must not be trusted with chassis b's certificate");
    assert!(std::fs::read_to_string(state.join("admin.token")).unwrap().trim().len() >= 32);
    let key_mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(state.join("certs/chassis-a.key")).unwrap().permissions());
    assert_eq!(key_mode & 0o077, 0, "private keys are owner-only");

    // Change something through the gateway; it lands on both chassis.
    let api = gateway_login(port, &state).await;
    api.post("/kvm/hosts", serde_json::json!({"name": "kept", "port": 1})).await.ok();
    for (p, cert) in [(pa, &ca), (pb, &cb)] {
        let direct = direct_login(p, cert, "admin", "admin").await;
        assert_eq!(direct.get("/kvm/hosts").await.ok().body[0]["name"], "kept");
    }
    let cert_before = std::fs::read(&ca).unwrap();

    // SIGTERM: the demo stops its children and exits.
    let status = sigterm_and_wait(&mut demo, Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "demo did not exit cleanly on SIGTERM: {status:?}");
    assert_eq!(children_of(&state), 0, "chassis children left behind");

    // Started again on the same state: same certificates, same data.
    let demo = start(port, &state);
    wait_healthy(pa, &ca).await;
    assert_eq!(std::fs::read(&ca).unwrap(), cert_before, "certificates are generated once");
    let hosts = gateway_login(port, &state).await.get("/kvm/hosts").await.ok().body;
    assert_eq!(hosts[0]["name"], "kept");
    drop(demo);
    assert_eq!(children_of(&state), 0, "chassis children left behind");
}

/// A whole-site power loss: the demo (gateway inside) and both chassis
/// killed with -9 at once, then `pairgate demo` started again on the same
/// state: nothing acknowledged is lost and the session is still valid.
#[tokio::test]
async fn demo_survives_a_whole_site_power_loss() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("demo");
    let port = free_port().expect("a free port");
    let mut demo = start(port, &state);
    let api = gateway_login(port, &state).await;
    let mut ids = Vec::new();
    for k in 0..20 {
        ids.push(api.post("/kvm/hosts", serde_json::json!({"name": format!("h{k}"), "port": k + 1})).await.ok().id());
    }
    // Power loss: everything at once, no chance to flush or say goodbye.
    let pids = Command::new("pgrep").arg("-f").arg("--").arg(format!("--state {}", state.display())).output().unwrap();
    let _ = demo.0.kill();
    let _ = demo.0.wait();
    for pid in String::from_utf8_lossy(&pids.stdout).lines() {
        let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
    }
    let t = Instant::now();
    while children_of(&state) > 0 && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(children_of(&state), 0);

    let _demo = start(port, &state);
    // The same token (a gateway session) still works after the restart.
    let t = Instant::now();
    let mut hosts = serde_json::Value::Null;
    while t.elapsed() < Duration::from_secs(30) {
        let mut again = Api::new(&api.base);
        again.http = client_trusting(Some(&state.join("certs/gateway.pem")));
        again.token = api.token.clone();
        if let Ok(r) = again.http.get(format!("{}/api/v1/kvm/hosts", again.base)).bearer_auth(again.token.clone().unwrap()).send().await {
            assert_ne!(r.status().as_u16(), 401, "the session did not survive");
            if r.status() == 200 {
                hosts = r.json().await.unwrap();
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got: Vec<u64> = hosts.as_array().expect("hosts after the restart").iter().map(|h| h["id"].as_u64().unwrap()).collect();
    assert_eq!(got, ids, "every acknowledged create is there, once");
}

/// The demo's terminal: its stdin to type on, its stdout lines as they come.
struct Terminal {
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Terminal {
    fn attach(demo: &mut Demo) -> Terminal {
        let stdin = demo.0.stdin.take().expect("piped stdin");
        let stdout = demo.0.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Terminal { stdin, lines, seen: Vec::new() }
    }

    fn type_line(&mut self, line: &str) {
        use std::io::Write;
        writeln!(self.stdin, "{line}").expect("type on the demo's terminal");
    }

    /// The next line that `pred` accepts, within `limit`.
    fn expect(&mut self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("the demo did not print {what} within {limit:?}; it printed:\n{}", self.seen.join("\n"));
    }
}

fn start_attached(port: u16, state: &std::path::Path) -> (Demo, Terminal) {
    let mut demo = spawn(port, state, true);
    let term = Terminal::attach(&mut demo);
    (demo, term)
}

/// The PID the status line gives for chassis `name` (`chassis a in_sync (pid 123)`).
fn pid_in(line: &str, name: &str) -> Option<u32> {
    let rest = &line[line.find(&format!("chassis {name} "))?..];
    let pid = &rest[rest.find("(pid ")? + 5..];
    pid[..pid.find(')')?].parse().ok()
}

fn alive(pid: u32) -> bool {
    Command::new("kill").arg("-0").arg(pid.to_string()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

#[tokio::test]
async fn demo_seeds_a_room_on_both_chassis_and_supervises_its_chassis() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("demo");
    let port = free_port().expect("a free port");
    let (pa, pb) = (port + 1, port + 2);
    let (mut demo, mut term) = start_attached(port, &state);
    let room = term.expect("the room line", Duration::from_secs(90), |l| l.trim_start().starts_with("room "));
    assert!(room.contains("made now"), "{room}");
    let line = term.expect("the status line", Duration::from_secs(10), |l| l.starts_with("primary: "));
    assert!(line.starts_with("primary: a |"), "{line}");
    let pid_a = pid_in(&line, "a").unwrap_or_else(|| panic!("no pid for a in {line}"));
    assert!(pid_in(&line, "b").is_some(), "{line}");

    // The room, through the gateway.
    let api = gateway_login(port, &state).await;
    let walls = api.get("/walls").await.ok().body;
    let shape: Vec<(String, u64, u64)> = walls
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].as_str().unwrap().to_string(), w["rows"].as_u64().unwrap(), w["cols"].as_u64().unwrap()))
        .collect();
    assert_eq!(shape, [("Main wall".to_string(), 2, 2), ("Side wall".to_string(), 1, 3)]);
    let mut paths = vec![
        "/walls".to_string(),
        "/sources".into(),
        "/plans".into(),
        "/schedules".into(),
        "/kvm/hosts".into(),
        "/kvm/seats".into(),
        "/users".into(),
        "/hardware/outputs".into(),
    ];
    let mut windows = 0;
    for w in walls.as_array().unwrap() {
        let id = w["id"].as_u64().unwrap();
        windows += api.get(&format!("/walls/{id}/windows")).await.ok().body.as_array().unwrap().len();
        paths.push(format!("/walls/{id}/windows"));
        paths.push(format!("/walls/{id}/scenes"));
    }
    assert_eq!(windows, 6);
    assert_eq!(api.get("/sources/1").await.ok().body["name"], "Camera 1 - Lobby");
    for (path, at_least) in [("/plans", 1), ("/schedules", 1), ("/kvm/hosts", 2), ("/kvm/seats", 2), ("/users", 4)] {
        let n = api.get(path).await.ok().body.as_array().unwrap().len();
        assert!(n >= at_least, "{path}: {n} rows");
    }
    // The seeded accounts log in through the gateway with their roles.
    for (user, role) in [("operator", "operator"), ("viewer", "viewer")] {
        let r = api.post("/login", serde_json::json!({"username": user, "password": user})).await.ok();
        assert_eq!(r.body["user"]["role"], role);
    }

    // Equal on both chassis, with the same IDs, and what the gateway answers.
    let mut direct = Vec::new();
    for (p, cert) in [(pa, state.join("certs/chassis-a.pem")), (pb, state.join("certs/chassis-b.pem"))] {
        direct.push(direct_login(p, &cert, "viewer", "viewer").await);
    }
    for path in &paths {
        let through = api.get(path).await.ok().body;
        let (a, b) = (direct[0].get(path).await.ok().body, direct[1].get(path).await.ok().body);
        assert_eq!(a, b, "{path} differs between the chassis");
        assert_eq!(a, through, "{path} differs between chassis a and the gateway");
    }

    // A failover from the demo's terminal: kill -9 the primary.
    term.type_line("kill a");
    let line = term.expect("b as primary", Duration::from_secs(15), |l| l.starts_with("primary: b"));
    assert!(line.contains("chassis a down (not running)"), "{line}");
    assert!(!alive(pid_a), "chassis a (pid {pid_a}) still runs");
    let token = std::fs::read_to_string(state.join("admin.token")).unwrap();
    let s: serde_json::Value =
        api.http.get(format!("{}/_pairgate/status", api.base)).bearer_auth(token.trim()).send().await.unwrap().json().await.unwrap();
    assert_eq!(s["primary"], "b");
    assert!(s["failovers"].as_u64() >= Some(1), "status counts the failover: {s}");
    // Windows still move through the gateway.
    let main_wall = walls[0]["id"].as_u64().unwrap();
    let w = api.get(&format!("/walls/{main_wall}/windows")).await.ok().body[0]["id"].as_u64().unwrap();
    api.put(&format!("/walls/{main_wall}/windows/{w}"), serde_json::json!({"x": 100})).await.ok();
    term.type_line("restart a");
    term.expect("a back in sync", Duration::from_secs(40), |l| l.starts_with("primary: b") && l.contains("chassis a in_sync (pid"));

    // SIGTERM stops everything, the restarted chassis too.
    let status = sigterm_and_wait(&mut demo, Duration::from_secs(15)).await;
    assert!(status.is_some_and(|s| s.success()), "the demo did not exit cleanly on SIGTERM: {status:?}");
    assert_eq!(children_of(&state), 0, "chassis children left behind");

    // Again on the same state: the room is kept, not made twice, and the
    // window moved while a was down is there on both.
    let (mut demo, mut term) = start_attached(port, &state);
    let room = term.expect("the room line", Duration::from_secs(90), |l| l.trim_start().starts_with("room "));
    assert!(room.contains("kept"), "{room}");
    let api = gateway_login(port, &state).await;
    assert_eq!(api.get("/walls").await.ok().body.as_array().unwrap().len(), 2);
    assert_eq!(api.get(&format!("/walls/{main_wall}/windows/{w}")).await.ok().body["x"], 100);
    // kill -9 of the demo itself: its chassis stop with it.
    let _ = demo.0.kill();
    let _ = demo.0.wait();
    let t = Instant::now();
    while children_of(&state) > 0 && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(children_of(&state), 0, "chassis children outlived a kill -9 of the demo");
}

/// A port P with P..P+5 free (bounded tries).
fn six_free_ports() -> u16 {
    for _ in 0..50 {
        let p = free_port().expect("a free port");
        if p < 65_000 && (1..6).all(|k| std::net::TcpListener::bind(("127.0.0.1", p + k)).is_ok()) {
            return p;
        }
    }
    panic!("no six consecutive free ports");
}

#[tokio::test]
async fn demo_cascade_runs_two_linked_levels_and_stops_all_four_chassis() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("cascade-state");
    let port = six_free_ports();
    let mut demo = Demo(
        Command::new(bin_path("pairgate"))
            .args(["demo", "--cascade", "--port", &port.to_string(), "--state"])
            .arg(&state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pairgate demo --cascade"),
    );
    // The upper level on P (chassis P+1, P+2), the lower on P+3 (chassis P+4, P+5).
    let upper = gateway_login(port, &state.join("upper")).await;
    let lower = gateway_login(port + 3, &state.join("lower")).await;
    for (p, level, name) in [(port + 1, "upper", "a"), (port + 2, "upper", "b"), (port + 4, "lower", "a"), (port + 5, "lower", "b")] {
        wait_healthy(p, &state.join(level).join(format!("certs/chassis-{name}.pem"))).await;
    }
    // Linked: the upper level shows the lower pair as one subordinate, its inputs as cascade sources.
    let mut subs = serde_json::Value::Null;
    for _ in 0..100 {
        subs = upper.get("/cascade/subordinates").await.ok().body;
        if subs.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(subs.as_array().map(Vec::len), Some(1), "{subs}");
    assert_eq!(subs[0]["serial"], "PAIR-LOWER", "{subs}");
    assert_eq!(subs[0]["url"], format!("https://127.0.0.1:{}", port + 3), "{subs}");
    let sources = upper.get("/sources").await.ok().body;
    assert!(
        sources.as_array().unwrap().iter().any(|s| s["kind"] == "cascade" && s["name"] == "PAIR-LOWER / Camera 1 - Lobby"),
        "{sources}"
    );
    let sup = lower.get("/cascade/superior").await.ok().body;
    assert_eq!(sup["registration"], "registered", "{sup}");
    assert_eq!(children_of(&state), 5, "the demo and its four chassis");
    let status = sigterm_and_wait(&mut demo, Duration::from_secs(20)).await.expect("the demo exits on SIGTERM");
    assert!(status.success(), "{status:?}");
    assert_eq!(children_of(&state), 0, "no chassis outlives the demo");
}
