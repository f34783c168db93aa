//! Secrets at rest (issue 7, defect 4): passwords that pass through the
//! gateway in mutation bodies — a new user's, a changed password, the cascade
//! superior's — are applied to both chassis but never stored in the clear
//! anywhere under the gateway's state directory (journal, its `-wal`/`-shm`,
//! the session store), nor written to its log even at trace level; and the
//! state directory is 0700 with every file in it 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pairgate_suite::api::{client_trusting, Api};
use pairgate_suite::pair::Pair;
use pairgate_suite::process::free_port;
use serde_json::json;

/// A fresh random password (letters and digits: the same bytes in JSON,
/// in SQLite and in a log line).
fn random_password(tag: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    format!("{tag}{}", Alphanumeric.sample_string(&mut rand::rng(), 24))
}

/// Every file under `dir`, recursively (bounded depth), and every directory.
fn walk(dir: &Path, depth: usize, files: &mut Vec<PathBuf>, dirs: &mut Vec<PathBuf>) {
    assert!(depth < 8, "state directory nested too deep at {}", dir.display());
    dirs.push(dir.to_path_buf());
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        if meta.is_dir() {
            walk(&path, depth + 1, files, dirs);
        } else {
            files.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// No file under `dir` holds any of `secrets`; the directory (and any below
/// it) is 0700 and every file 0600. `when` names the moment for messages;
/// every problem found is listed.
fn check_state_dir(dir: &Path, secrets: &[(&str, &str)], when: &str) {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    walk(dir, 0, &mut files, &mut dirs);
    assert!(files.iter().any(|f| f.ends_with("journal.sqlite")), "{when}: no journal in {files:?}");
    let mut problems = Vec::new();
    for d in &dirs {
        let mode = std::fs::metadata(d).expect("stat dir").permissions().mode() & 0o777;
        if mode != 0o700 {
            problems.push(format!("directory {} is {mode:04o}, want 0700", d.display()));
        }
    }
    for f in &files {
        let mode = std::fs::symlink_metadata(f).expect("stat file").permissions().mode() & 0o777;
        if mode != 0o600 {
            problems.push(format!("file {} is {mode:04o}, want 0600", f.display()));
        }
        let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("{when}: reading {}: {e}", f.display()));
        for (what, secret) in secrets {
            if contains(&bytes, secret) {
                problems.push(format!("{} holds {what} in the clear", f.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{when}:\n  {}", problems.join("\n  "));
}

/// Log in directly on a chassis (force: the gateway holds the account's session).
async fn direct_login(pair: &Pair, i: usize, user: &str, password: &str) -> u16 {
    let sim = if i == 0 { &pair.a } else { &pair.b };
    let mut api = Api::new(&sim.base);
    api.http = client_trusting(Some(&pair.certs[i]));
    api.post("/login", json!({"username": user, "password": password, "force": true})).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_in_mutations_are_applied_but_never_stored_or_logged_in_the_clear() {
    // The pair has a superior (nothing listens there: the registration simply
    // fails); its password comes from a file.
    let superior = format!("http://127.0.0.1:{}", free_port().expect("a free port"));
    let configured_pw = random_password("configured");
    let pw_dir = tempfile::tempdir().expect("tempdir");
    let pw_file = pw_dir.path().join("superior.password");
    std::fs::write(&pw_file, &configured_pw).expect("superior password file");
    let cascade = format!(
        "\n[cascade]\nserial = \"PAIR-1\"\npublic_url = \"https://127.0.0.1:1\"\n\n[cascade.superior]\nurl = \"{superior}\"\nusername = \"upstream\"\npassword_file = \"{}\"\n",
        pw_file.display()
    );
    let mut pair = Pair::start_logged(|text| text.push_str(&cascade), "pairgate=trace").await;
    let state = pair.dir.path().join("gateway-state");
    let log = pair.dir.path().join("gateway.log");
    let admin = pair.gw.login("admin", "admin").await;

    let carol_pw = random_password("carol");
    let dave_first_pw = random_password("davefirst");
    let dave_pw = random_password("dave");
    let superior_pw = random_password("superior");
    let secrets = [
        ("carol's password", carol_pw.as_str()),
        ("dave's first password", dave_first_pw.as_str()),
        ("dave's changed password", dave_pw.as_str()),
        ("the superior's password", superior_pw.as_str()),
        ("the configured superior's password", configured_pw.as_str()),
    ];

    // A new user with a known password; another one whose password is then changed.
    admin.post("/users", json!({"username": "carol", "password": carol_pw, "role": "operator"})).await.ok();
    let dave = admin.post("/users", json!({"username": "dave", "password": dave_first_pw, "role": "viewer"})).await.ok().id();
    admin.put(&format!("/users/{dave}"), json!({"password": dave_pw})).await.ok();
    // The cascade superior, with a password (the chassis are given the egress instead).
    admin.put("/cascade/superior", json!({"url": superior, "username": "upstream", "password": superior_pw})).await.ok();
    // The new user logs in through the gateway (the password is sealed in the session store).
    let carol = pair.gw.login("carol", &carol_pw).await;
    carol.get("/walls").await.ok();
    pair.gw.login("dave", &dave_pw).await;

    // Both chassis applied everything: the users exist and their passwords work there.
    pair.gw.wait_in_sync(Duration::from_secs(20)).await;
    for i in 0..2 {
        let users = pair.direct(i).await.get("/users").await.ok().body;
        for name in ["carol", "dave"] {
            assert!(users.as_array().is_some_and(|u| u.iter().any(|u| u["username"] == name)), "chassis {i} lacks {name}: {users}");
        }
        assert_eq!(direct_login(&pair, i, "carol", &carol_pw).await, 200, "carol on chassis {i}");
        assert_eq!(direct_login(&pair, i, "dave", &dave_pw).await, 200, "dave's new password on chassis {i}");
        assert_eq!(direct_login(&pair, i, "dave", &dave_first_pw).await, 401, "dave's old password on chassis {i}");
        let sup = pair.direct(i).await.get("/cascade/superior").await.ok().body;
        assert_eq!(sup["url"], json!("https://127.0.0.1:1/_pairgate/egress"), "the gateway's egress on chassis {i}: {sup}");
        assert_eq!(sup["username"], "pairgate-egress", "{sup}");
    }

    // While the gateway runs (journal, -wal, -shm, sessions as they are now) ...
    check_state_dir(&state, &secrets, "gateway running");
    // ... and after a clean stop (checkpointed into the main files).
    assert!(pair.gw.stop(Duration::from_secs(15)), "the gateway did not stop on SIGTERM");
    check_state_dir(&state, &secrets, "gateway stopped");

    let text = std::fs::read(&log).expect("the gateway log");
    assert!(contains(&text, "journal opened"), "the log was not captured at trace level");
    for (what, secret) in &secrets {
        assert!(!contains(&text, secret), "the gateway log holds {what}");
    }
}
