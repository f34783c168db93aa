//! `pairgate init` on a fresh copy of the repository's `gateway.toml`: the
//! committed configuration fails `check-config` until init has made the files
//! it names, then passes; a second init keeps every file byte for byte; the
//! secrets are private; and the commands init prints start two chassis, give
//! them the gateway's account (`init --provision`) and serve a gateway one can
//! log in through.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pairgate_suite::api::client_trusting;
use pairgate_suite::bins::bin_path;
use pairgate_suite::process::{free_port, read_listening_port};

/// `pairgate ARGS` run in `dir`, as a user in that directory would.
fn pairgate(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin_path("pairgate")).args(args).current_dir(dir).stdin(Stdio::null()).output().expect("run pairgate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every file under `dir` with its contents, in path order.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.strip_prefix(dir).expect("under dir").to_path_buf(), std::fs::read(&path).expect("read")));
            }
        }
    }
    files.sort();
    files
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// A process started for this test, killed (by PID) when the test ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The repository's gateway.toml in a scratch directory, its three ports
/// replaced by free ones so the test runs beside anything else: (dir,
/// gateway port, chassis ports).
fn scratch_copy() -> (tempfile::TempDir, u16, [u16; 2]) {
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml")).expect("the shipped gateway.toml");
    let (g, a, b) = (free_port().expect("a free port"), free_port().expect("a free port"), free_port().expect("a free port"));
    assert!(g != a && a != b && g != b, "three distinct ports");
    let text = shipped
        .replace("addr = \"127.0.0.1:8443\"", &format!("addr = \"127.0.0.1:{g}\""))
        .replace("url = \"https://127.0.0.1:8444\"", &format!("url = \"https://127.0.0.1:{a}\""))
        .replace("url = \"https://127.0.0.1:8445\"", &format!("url = \"https://127.0.0.1:{b}\""));
    assert!(!text.contains(":8443\"") && !text.contains(":8444\"") && !text.contains(":8445\""), "every port rewritten");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("gateway.toml"), text).expect("write gateway.toml");
    (dir, g, [a, b])
}

#[test]
fn init_makes_what_the_shipped_configuration_names_and_keeps_it() {
    let (dir, _, _) = scratch_copy();
    let dir = dir.path();

    // A fresh checkout: check-config fails on the first missing file, and says
    // where it is named and what to run.
    let out = pairgate(dir, &["check-config", "gateway.toml"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "check-config before init: {stderr}");
    assert!(stderr.contains("gateway.toml:") && stderr.contains(".state/admin.token"), "{stderr}");
    assert!(stderr.contains("pairgate init --config gateway.toml"), "the fix names init: {stderr}");
    // So does serving.
    let out = pairgate(dir, &["--config", "gateway.toml"]);
    assert_eq!(out.status.code(), Some(2), "--config before init: {}", text(&out.stderr));

    let out = pairgate(dir, &["init", "--config", "gateway.toml"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "init: {stdout}{}", text(&out.stderr));
    for made in [
        "certs/gateway.pem, certs/gateway.key",
        "certs/chassis-a.pem, certs/chassis-a.key",
        "certs/chassis-b.pem, certs/chassis-b.key",
        ".state/admin.token",
        ".state/jwt.secret",
        ".state/chassis-a.password",
        ".state/chassis-b.password",
        ".state/gateway",
    ] {
        assert!(stdout.lines().any(|l| l.contains("made") && l.contains(made)), "{made} not made:\n{stdout}");
    }
    assert!(!stdout.contains("kept"), "{stdout}");
    // Paths, never a secret.
    for secret in [".state/admin.token", ".state/jwt.secret", ".state/chassis-a.password", ".state/chassis-b.password"] {
        let value = std::fs::read_to_string(dir.join(secret)).expect("secret");
        assert!(value.trim().len() >= 32, "{secret} is {} characters", value.trim().len());
        assert!(!stdout.contains(value.trim()), "{secret}'s value printed:\n{stdout}");
        assert_eq!(mode(&dir.join(secret)), 0o600, "{secret}");
    }
    for key in ["certs/gateway.key", "certs/chassis-a.key", "certs/chassis-b.key"] {
        assert_eq!(mode(&dir.join(key)), 0o600, "{key}");
    }
    assert_eq!(mode(&dir.join(".state/gateway")), 0o700);
    assert_eq!(mode(&dir.join(".state")), 0o700, "it holds the secrets");

    let out = pairgate(dir, &["check-config", "gateway.toml"]);
    assert_eq!(out.status.code(), Some(0), "check-config after init: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("files    checked"));

    // Again: nothing made, every file kept byte for byte.
    let before = snapshot(dir);
    let out = pairgate(dir, &["init", "--config", "gateway.toml"]);
    let again = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "second init: {again}{}", text(&out.stderr));
    assert!(!again.contains("made"), "{again}");
    assert_eq!(again.lines().filter(|l| l.trim_start().starts_with("kept")).count(), 8, "{again}");
    assert_eq!(snapshot(dir), before, "a second init changed a file");
    assert_eq!(mode(&dir.join(".state/admin.token")), 0o600);
}

/// The commands `init` printed to start the reference chassis.
fn chassis_commands(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(" chassis --listen "))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn the_printed_next_steps_serve_a_pair_one_logs_in_through() {
    let (dir, gateway_port, chassis_ports) = scratch_copy();
    let dir = dir.path();
    let out = pairgate(dir, &["init", "--config", "gateway.toml"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "init: {stdout}{}", text(&out.stderr));

    // 1. The two chassis, exactly as printed (on the ports of this gateway.toml).
    let commands = chassis_commands(&stdout);
    assert_eq!(commands.len(), 2, "two chassis commands in:\n{stdout}");
    let mut chassis = Vec::new();
    for (cmd, port) in commands.iter().zip(chassis_ports) {
        assert!(cmd.join(" ").contains(&format!("--listen 127.0.0.1:{port}")), "{cmd:?}");
        let (prog, args) = cmd.split_first().expect("a command");
        let mut child = Command::new(prog)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let listening = child.stdout.take().map(|s| read_listening_port(s, Duration::from_secs(20)));
        chassis.push(Proc(child));
        assert_eq!(listening, Some(Ok(port)), "{cmd:?}");
    }

    // 2. The gateway's account on both, as printed.
    let out = pairgate(dir, &["init", "--config", "gateway.toml", "--provision"]);
    let provisioned = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "init --provision: {provisioned}{}", text(&out.stderr));
    assert_eq!(provisioned.matches("created the account `pairgate`").count(), 2, "{provisioned}");

    // 3. The gateway.
    let gateway = Command::new(bin_path("pairgate"))
        .args(["--config", "gateway.toml"])
        .current_dir(dir)
        .env("RUST_LOG", std::env::var("PAIRGATE_TEST_LOG").unwrap_or_else(|_| "off".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("PAIRGATE_TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .expect("spawn the gateway");
    let _gateway = Proc(gateway);

    let http = client_trusting(Some(&dir.join("certs/gateway.pem")));
    let base = format!("https://127.0.0.1:{gateway_port}");
    let token = std::fs::read_to_string(dir.join(".state/admin.token")).expect("admin token");
    let start = Instant::now();
    let mut last = String::from("nothing yet");
    while start.elapsed() < Duration::from_secs(20) {
        let status = match http.get(format!("{base}/_pairgate/status")).bearer_auth(token.trim()).send().await {
            Ok(r) => r.json::<serde_json::Value>().await.unwrap_or_default(),
            Err(e) => {
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let in_sync = status["chassis"].as_array().is_some_and(|c| c.len() == 2 && c.iter().all(|c| c["state"] == "in_sync"));
        if !(in_sync && status["ids_ready"] == true) {
            last = status.to_string();
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        // Log in through it as the chassis' admin, and read and write.
        let login = http
            .post(format!("{base}/api/v1/login"))
            .json(&serde_json::json!({"username": "admin", "password": "admin"}))
            .send()
            .await
            .expect("login through the gateway");
        assert_eq!(login.status(), 200, "login through the gateway");
        let body: serde_json::Value = login.json().await.expect("login answer");
        let user_token = body["token"].as_str().expect("a token").to_string();
        let created = http
            .post(format!("{base}/api/v1/sources"))
            .bearer_auth(&user_token)
            .json(&serde_json::json!({"name": "Camera 1", "kind": "ip", "url": "rtsp://192.0.2.1/stream"}))
            .send()
            .await
            .expect("create a source");
        assert_eq!(created.status(), 201, "a mutation through the gateway");
        let sources = http.get(format!("{base}/api/v1/sources")).bearer_auth(&user_token).send().await.expect("list sources");
        assert_eq!(sources.status(), 200);
        let list: serde_json::Value = sources.json().await.expect("sources");
        assert!(list.as_array().is_some_and(|l| l.iter().any(|s| s["name"] == "Camera 1")), "{list}");
        return;
    }
    panic!("the gateway started from init's files was not serving a pair in sync within 20 s: {last}");
}
