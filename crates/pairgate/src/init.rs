//! `pairgate init`: make the files a configuration names, so that a fresh
//! checkout's `gateway.toml` passes `pairgate check-config` and starts.
//!
//! The configuration is read without its file checks; then, for every file it
//! names that does not exist yet, init makes one:
//! - `listen.tls_cert` / `tls_key`: a self-signed certificate for
//!   127.0.0.1/localhost, valid one year, and its key (0600);
//! - each chassis' `ca_cert`, when the chassis is a reference chassis on this
//!   machine (its URL's host is a loopback address or `localhost`): a
//!   self-signed certificate for it, with its key next to it (`<name>.key`) for
//!   the chassis to serve with;
//! - `admin_token_file`, `sessions.jwt_secret_file` and each chassis'
//!   `password_file`: random secrets, 0600;
//! - `state.dir`: the gateway's private directory (0700).
//!
//! A file that exists is kept as it is, whatever it holds; a secret is never
//! printed, only where it is. What init cannot make (a remote chassis'
//! certificate, a password from an environment variable, a key for a
//! certificate it did not make) is said, and init then exits 1.
//!
//! `--provision` also gives each chassis the gateway's service account, logging
//! in as its first-start `admin`/`admin` (what `pairgate demo` does too).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Chassis, Config, SecretSource, Transport};
pub use crate::files::shell_word;
use crate::files::{self, FilesError};

/// What init did about one thing the configuration names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// It did not exist; init made it.
    Made,
    /// It exists and was left as it is.
    Kept,
    /// A password read from an environment variable, which is set.
    FromEnv(String),
    /// It is missing (or half there) and init cannot make it: why, and what to do.
    Cannot(String),
}

/// One certificate, secret or directory of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// What it is, e.g. "the admin token".
    pub what: String,
    pub paths: Vec<PathBuf>,
    pub action: Action,
    /// Something worth knowing about a kept file (it expires soon, others may read it).
    pub note: Option<String>,
}

impl Item {
    fn new(what: impl Into<String>, paths: Vec<PathBuf>, action: Action) -> Item {
        Item { what: what.into(), paths, action, note: None }
    }

    fn with_note(mut self, note: Option<String>) -> Item {
        self.note = note;
        self
    }
}

/// Make every missing file `config` names (see the module documentation).
/// Never replaces an existing file. The items are in the order of the
/// configuration: the gateway's certificate, the chassis' certificates, the
/// admin token, the JWT key, the chassis passwords, the state directory.
pub fn make_missing(config: &Config) -> Vec<Item> {
    let mut items = Vec::new();
    if let Transport::Tls { cert, key } = &config.listen.transport {
        let mut names = files::local_names();
        let ip = config.listen.addr.ip();
        if !ip.is_unspecified() {
            push_name(&mut names, &ip.to_string());
        }
        items.push(cert_and_key("the gateway's certificate and key", cert, key, "pairgate gateway", &names));
    }
    for c in &config.chassis {
        if let Some(ca) = &c.ca_cert {
            items.push(chassis_cert(c, ca));
        }
    }
    items.push(secret("the admin token", &config.admin_token_file, files::ADMIN_TOKEN_BYTES));
    items.push(secret("the key that signs the gateway's sessions", &config.sessions.jwt_secret_file, files::JWT_SECRET_BYTES));
    for c in &config.chassis {
        let what = format!("the password of the gateway's account `{}` on chassis {}", c.username, c.name);
        items.push(match &c.password {
            SecretSource::File(path) => secret(&what, path, files::PASSWORD_BYTES),
            SecretSource::Env(var) => match std::env::var_os(var) {
                Some(v) if !v.is_empty() => Item::new(what, Vec::new(), Action::FromEnv(var.clone())),
                _ => Item::new(
                    what,
                    Vec::new(),
                    Action::Cannot(format!(
                        "it comes from the environment variable {var} (`password_env`), which is not set, and init makes files \
                         only: export {var}=… where the gateway runs, or write `password_file = \"…\"` instead of `password_env`"
                    )),
                ),
            },
        });
    }
    items.push(state_dir(&config.state.dir));
    items
}

fn push_name(names: &mut Vec<String>, name: &str) {
    if !names.iter().any(|n| n == name) {
        names.push(name.to_string());
    }
}

/// Where init writes the key of a chassis certificate it makes: beside it, as
/// `<name>.key` (`certs/chassis-a.pem` → `certs/chassis-a.key`).
pub fn chassis_key_path(ca_cert: &Path) -> PathBuf {
    let key = ca_cert.with_extension("key");
    if key == ca_cert {
        let mut name = ca_cert.as_os_str().to_owned();
        name.push(".key");
        PathBuf::from(name)
    } else {
        key
    }
}

/// Whether a chassis URL's host is this machine, where a reference chassis can
/// be started with a certificate init makes.
pub fn is_local(c: &Chassis) -> bool {
    c.url.host() == "localhost" || c.url.ip().is_some_and(|ip| ip.is_loopback())
}

fn chassis_cert(c: &Chassis, ca: &Path) -> Item {
    let what = format!("chassis {}'s certificate and key", c.name);
    let key = chassis_key_path(ca);
    if !is_local(c) {
        if ca.exists() {
            return Item::new(format!("chassis {}'s certificate (or its CA)", c.name), vec![ca.to_path_buf()], Action::Kept);
        }
        return Item::new(
            format!("chassis {}'s certificate (or its CA)", c.name),
            vec![ca.to_path_buf()],
            Action::Cannot(format!(
                "chassis {} at {} is not on this machine, and init makes certificates only for reference chassis on \
                 127.0.0.1/localhost: copy the certificate that chassis serves (or the CA that signed it) to this path",
                c.name, c.url
            )),
        );
    }
    if ca.exists() && !key.exists() {
        // The gateway needs the certificate only; the chassis serves with its own key.
        return Item::new(format!("chassis {}'s certificate", c.name), vec![ca.to_path_buf()], Action::Kept).with_note(Some(format!(
            "there is no key beside it ({}): start the chassis with the key that belongs to this certificate",
            key.display()
        )));
    }
    let mut names = files::local_names();
    push_name(&mut names, c.url.host());
    cert_and_key(&what, ca, &key, &format!("pairgate reference chassis {}", c.name), &names)
}

/// A certificate and its key, made together or kept together: init never makes
/// one half for the other.
fn cert_and_key(what: &str, cert: &Path, key: &Path, common_name: &str, names: &[String]) -> Item {
    let paths = vec![cert.to_path_buf(), key.to_path_buf()];
    match (cert.exists(), key.exists()) {
        (true, true) => Item::new(what, paths, Action::Kept).with_note(validity_note(cert)),
        (false, false) => match files::create_self_signed(cert, key, common_name, names) {
            Ok(()) => Item::new(
                format!("{what} (self-signed for {}, valid {} days)", names.join(", "), files::CERT_VALIDITY_DAYS),
                paths,
                Action::Made,
            ),
            Err(e) => Item::new(what, paths, Action::Cannot(e.to_string())),
        },
        (true, false) => Item::new(
            what,
            paths,
            Action::Cannot(format!(
                "{} exists but its key {} does not, and init cannot make the key of a certificate it did not make: \
                 put the key there, or remove the certificate to have init make both",
                cert.display(),
                key.display()
            )),
        ),
        (false, true) => Item::new(
            what,
            paths,
            Action::Cannot(format!(
                "the key {} exists without its certificate {}: put the certificate there, or remove the key to have init make both",
                key.display(),
                cert.display()
            )),
        ),
    }
}

/// Why a kept certificate may need replacing soon, if it does.
fn validity_note(cert: &Path) -> Option<String> {
    let renew = format!("remove {} and its key, and run `pairgate init` again for a new one", cert.display());
    match files::cert_validity(cert) {
        None => Some("it holds no certificate init can read (check-config says more)".to_string()),
        Some(v) if v.days_left == 0 => Some(format!("it has expired: {renew}")),
        Some(v) if v.days_left <= files::CERT_RENEW_DAYS => Some(format!("it expires in {} days: {renew}", v.days_left)),
        Some(v) if v.span_days > files::CERT_VALIDITY_DAYS + 1 => {
            Some(format!("it is valid for {} days, longer than browsers accept (398): {renew}", v.span_days))
        }
        Some(_) => None,
    }
}

fn secret(what: &str, path: &Path, bytes: usize) -> Item {
    let paths = vec![path.to_path_buf()];
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Item::new(what, paths, Action::Cannot("it exists and is not a regular file".to_string())),
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            let empty = std::fs::read_to_string(path).is_ok_and(|s| s.trim().is_empty());
            let note = if empty {
                Some("it is empty, which check-config refuses: remove it and run `pairgate init` again".to_string())
            } else if mode & 0o077 != 0 {
                Some(format!("others may read it ({mode:04o}): `chmod 600 {}`", shell_word(&path.display().to_string())))
            } else {
                None
            };
            Item::new(what, paths, Action::Kept).with_note(note)
        }
        Err(_) => {
            let made = files::create_parent(path).and_then(|()| files::create_secret(path, files::random_hex(bytes).as_bytes()));
            match made {
                Ok(()) => Item::new(format!("{what} (random, 0600)"), paths, Action::Made),
                Err(e) => Item::new(what, paths, Action::Cannot(e.to_string())),
            }
        }
    }
}

fn state_dir(dir: &Path) -> Item {
    let what = "the gateway's state directory";
    let paths = vec![dir.to_path_buf()];
    let before = std::fs::metadata(dir).ok();
    if before.as_ref().is_some_and(|m| !m.is_dir()) {
        return Item::new(what, paths, Action::Cannot("it exists and is not a directory".to_string()));
    }
    if let Err(e) = crate::state_dir::ensure_private_dir(dir) {
        return Item::new(what, paths, Action::Cannot(FilesError::Io { path: dir.to_path_buf(), source: e }.to_string()));
    }
    match before {
        None => Item::new(format!("{what} (0700)"), paths, Action::Made),
        Some(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            let note = (mode != 0o700).then(|| format!("it was {mode:04o}; now 0700, as the gateway makes it at start"));
            Item::new(what, paths, Action::Kept).with_note(note)
        }
    }
}

/// Whether every item is there now (made, kept or set in the environment).
pub fn all_there(items: &[Item]) -> bool {
    !items.iter().any(|i| matches!(i.action, Action::Cannot(_)))
}

/// The report of [`make_missing`], one line per item (plus its note or reason).
/// Names paths, never a secret's contents.
pub fn report(items: &[Item]) -> String {
    let mut out = String::new();
    for item in items {
        let paths = item.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        let (word, lead, detail) = match &item.action {
            Action::Made => ("made", "", None),
            Action::Kept => ("kept", "", None),
            Action::FromEnv(var) => ("env", "", Some(format!("read from ${var} (set)"))),
            Action::Cannot(why) => ("CANNOT", "make ", Some(why.clone())),
        };
        let _ = if paths.is_empty() {
            writeln!(out, "  {word:<6} {lead}{}", item.what)
        } else {
            writeln!(out, "  {word:<6} {lead}{}: {paths}", item.what)
        };
        for line in detail.iter().chain(item.note.iter()) {
            let _ = writeln!(out, "         {line}");
        }
    }
    out
}

/// The address a reference chassis for `c` listens on: its URL's host and port,
/// `localhost` as 127.0.0.1.
fn listen_addr(c: &Chassis) -> String {
    match c.url.ip() {
        Some(IpAddr::V6(ip)) => format!("[{ip}]:{}", c.url.port()),
        Some(IpAddr::V4(ip)) => format!("{ip}:{}", c.url.port()),
        None => format!("127.0.0.1:{}", c.url.port()),
    }
}

/// Where a reference chassis started by the printed command keeps its state:
/// beside the gateway's state directory (`.state/gateway` → `.state/chassis-a`).
pub fn chassis_state_dir(config: &Config, c: &Chassis) -> PathBuf {
    let name = format!("chassis-{}", c.name);
    match config.state.dir.parent() {
        Some(parent) => parent.join(name),
        None => PathBuf::from(name),
    }
}

/// The command line that starts a reference chassis for `c` with the certificate
/// init makes (`prog` is this program, as it was invoked), or None for a chassis
/// that is not on this machine.
pub fn chassis_command(config: &Config, c: &Chassis, prog: &str) -> Option<String> {
    if !is_local(c) {
        return None;
    }
    let w = |p: &Path| shell_word(&p.display().to_string());
    let mut cmd = format!("{prog} chassis --listen {} --state {}", listen_addr(c), w(&chassis_state_dir(config, c)));
    if let Some(ca) = &c.ca_cert {
        let _ = write!(cmd, " --tls-cert {} --tls-key {}", w(ca), w(&chassis_key_path(ca)));
    }
    Some(cmd)
}

/// What to do after `init`: start the chassis, give them the gateway's account
/// (unless `provisioned`), run the gateway. `prog` is this program as invoked.
pub fn next_steps(config: &Config, prog: &str, provisioned: bool) -> String {
    let file = shell_word(&config.file.display().to_string());
    let mut out = String::from("Next steps:\n");
    let mut step = 0;
    let mut next = || {
        step += 1;
        step
    };
    if !provisioned {
        let _ = writeln!(out, "  {}. Start the two reference chassis, each in a terminal of its own:", next());
        for c in &config.chassis {
            match chassis_command(config, c, prog) {
                Some(cmd) => {
                    let _ = writeln!(out, "       {cmd}");
                }
                None => {
                    let _ = writeln!(
                        out,
                        "       (chassis {} at {} is not on this machine: it must serve the certificate in `ca_cert`, or one its CA signed)",
                        c.name, c.url
                    );
                }
            }
        }
        let _ = writeln!(out, "     (`chassis-sim` takes the same options; add --sim-hooks for the fault hooks.)");
        let username = config.chassis[0].username.as_str();
        let _ = writeln!(
            out,
            "  {}. Give both the gateway's account `{username}` (role admin, the password in its password file), \
             logged in as the chassis' first-start admin/admin:",
            next()
        );
        let _ = writeln!(out, "       {prog} init --config {file} --provision");
    }
    let _ = writeln!(out, "  {}. Check the configuration and run the gateway (Ctrl-C stops it):", next());
    let _ = writeln!(out, "       {prog} check-config {file}");
    let _ = writeln!(out, "       {prog} --config {file}");
    let scheme = match &config.listen.transport {
        Transport::Tls { .. } => "https",
        Transport::InsecureHttp => "http",
    };
    let mut addr = config.listen.addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let _ = write!(out, "     then open {scheme}://{addr}/ and log in as a chassis user (admin/admin on a new chassis)");
    match &config.listen.transport {
        Transport::Tls { cert, .. } => {
            let _ = writeln!(out, ";\n     the browser asks you to accept the gateway's self-signed certificate, {}.", cert.display());
        }
        Transport::InsecureHttp => out.push_str(".\n"),
    }
    let _ = writeln!(
        out,
        "     The admin token for /_pairgate/status and `pairgate resync|primary|maintenance` is in {}.",
        config.admin_token_file.display()
    );
    out
}

// ---------------------------------------------------------------- provisioning

/// A chassis that could not be given the gateway's service account.
#[derive(Debug, thiserror::Error)]
#[error("the gateway's account on chassis {chassis}: {reason}")]
pub struct ProvisionError {
    pub chassis: String,
    pub reason: String,
}

/// What [`provision_service_account`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    /// The account already logs in with that password.
    AlreadyThere,
    /// It was created (role admin) as the chassis' first-start admin/admin.
    Created,
}

/// Give chassis `c` the gateway's account (`c.username`, an admin, with
/// `password`), as the chassis' first-start `admin`/`admin`, unless the account
/// already logs in. Waits (bounded, about 20 s) for the chassis to answer.
pub async fn provision_service_account(c: &Chassis, password: &str) -> Result<Provisioned, ProvisionError> {
    provision_within(c, password, 100).await
}

/// [`provision_service_account`], trying to reach the chassis `tries` times,
/// 200 ms apart.
pub async fn provision_within(c: &Chassis, password: &str, tries: u32) -> Result<Provisioned, ProvisionError> {
    use crate::chassis::upstream::{Outcome, Upstream};
    let fail = |reason: String| ProvisionError { chassis: c.name.clone(), reason };
    let up = Upstream::new(&c.name, c.url.clone(), c.ca_cert.as_deref(), Duration::from_secs(2)).map_err(|e| fail(e.to_string()))?;
    let login = |user: &str, pw: &str| {
        let body = serde_json::json!({"username": user, "password": pw, "force": true});
        let up = &up;
        async move { up.json(reqwest::Method::POST, "/api/v1/login", Some(&body), None, Duration::from_secs(5)).await }
    };
    let mut last = String::from("no attempt was made");
    for _ in 0..tries {
        match login(&c.username, password).await {
            Outcome::Answered(a) if a.status == 200 => return Ok(Provisioned::AlreadyThere),
            Outcome::Answered(a) if a.status == 401 => {}
            other => {
                last = other.describe();
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        let token = match crate::session::broker::login(&up, "admin", "admin", Duration::from_secs(5)).await {
            Ok((token, _)) => token,
            Err(e) => {
                let why = match e {
                    crate::session::broker::BrokerError::BadCredentials(answer) => answer.describe(),
                    other => other.to_string(),
                };
                return Err(fail(format!(
                    "it does not accept the gateway's password, and admin/admin to create the account was refused ({why}): \
                     create the account `{}` (role admin) with that password as an admin of the chassis",
                    c.username
                )));
            }
        };
        let body = serde_json::json!({"username": c.username, "password": password, "role": "admin"});
        return match up.json(reqwest::Method::POST, "/api/v1/users", Some(&body), Some(token.expose()), Duration::from_secs(5)).await {
            Outcome::Answered(a) if a.status == 201 => Ok(Provisioned::Created),
            Outcome::Answered(a) if a.error_code().as_deref() == Some("username_taken") => Err(fail(format!(
                "the account `{}` exists with another password: give it the one the gateway has \
                 (PUT /api/v1/users/{{id}} as an admin of the chassis), or write its password where the configuration reads it",
                c.username
            ))),
            other => Err(fail(format!("creating it: {}", other.describe()))),
        };
    }
    Err(fail(format!("the chassis at {} did not answer: {last} (is it running?)", c.url)))
}

/// The password the configuration gives the gateway's account on `c`.
fn service_password(c: &Chassis) -> Result<String, String> {
    match &c.password {
        SecretSource::File(path) => std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|s| if s.is_empty() { Err(format!("{} is empty", path.display())) } else { Ok(s) }),
        SecretSource::Env(var) => std::env::var(var).map_err(|_| format!("the environment variable {var} is not set")),
    }
}

/// `--provision`: give both chassis the gateway's account. One line per chassis
/// (the account's name, never its password) and whether both succeeded.
pub async fn provision(config: &Config) -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    for c in &config.chassis {
        let result = match service_password(c) {
            Ok(pw) => provision_within(c, &pw, 25).await.map_err(|e| e.reason),
            Err(e) => Err(e),
        };
        let _ = match result {
            Ok(Provisioned::AlreadyThere) => writeln!(out, "  chassis {}: the account `{}` logs in already", c.name, c.username),
            Ok(Provisioned::Created) => {
                writeln!(out, "  chassis {}: created the account `{}` (role admin), logged in as admin/admin", c.name, c.username)
            }
            Err(reason) => {
                ok = false;
                writeln!(out, "  chassis {}: FAILED: {reason}", c.name)
            }
        };
    }
    (out, ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileChecks;

    /// The repository's gateway.toml with its relative paths under `dir`.
    fn shipped_in(dir: &Path) -> Config {
        let file = dir.join("gateway.toml");
        std::fs::write(&file, include_str!("../../../gateway.toml")).unwrap();
        Config::load(&file, FileChecks::Skip).unwrap()
    }

    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        files.sort();
        files
    }

    #[test]
    fn the_shipped_configuration_gets_every_file_and_then_passes_its_checks() {
        let dir = tempfile::tempdir().unwrap();
        let config = shipped_in(dir.path());
        assert!(Config::load(&config.file, FileChecks::Check).is_err(), "nothing made yet");
        let items = make_missing(&config);
        assert!(all_there(&items), "{}", report(&items));
        assert!(items.iter().all(|i| i.action == Action::Made), "{}", report(&items));
        assert!(Config::load(&config.file, FileChecks::Check).is_ok());
        for key in ["certs/gateway.key", "certs/chassis-a.key", "certs/chassis-b.key", ".state/admin.token", ".state/jwt.secret"] {
            let mode = std::fs::metadata(dir.path().join(key)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{key}");
        }
        // The JWT key is long enough for the session store.
        let jwt = std::fs::read_to_string(dir.path().join(".state/jwt.secret")).unwrap();
        assert!(jwt.len() >= crate::session::MIN_JWT_SECRET_LEN);

        // Again: everything kept, byte for byte.
        let before = snapshot(dir.path());
        let again = make_missing(&config);
        assert!(again.iter().all(|i| i.action == Action::Kept && i.note.is_none()), "{}", report(&again));
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn the_report_names_paths_and_never_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let config = shipped_in(dir.path());
        let shown = report(&make_missing(&config));
        let token = std::fs::read_to_string(dir.path().join(".state/admin.token")).unwrap();
        let password = std::fs::read_to_string(dir.path().join(".state/chassis-a.password")).unwrap();
        assert!(!shown.contains(token.trim()) && !shown.contains(password.trim()), "{shown}");
        assert!(shown.contains(&dir.path().join(".state/admin.token").display().to_string()), "{shown}");
        let steps = next_steps(&config, "pairgate", false);
        assert!(!steps.contains(token.trim()), "{steps}");
    }

    #[test]
    fn what_cannot_be_made_is_said_and_nothing_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let text = include_str!("../../../gateway.toml")
            .replace("url = \"https://127.0.0.1:8445\"", "url = \"https://10.0.0.12:443\"")
            .replace("password_file = \".state/chassis-a.password\"", "password_env = \"PAIRGATE_INIT_TEST_SURELY_UNSET_4821\"");
        let file = dir.path().join("gateway.toml");
        std::fs::write(&file, text).unwrap();
        // A gateway certificate without its key.
        std::fs::create_dir_all(dir.path().join("certs")).unwrap();
        std::fs::write(dir.path().join("certs/gateway.pem"), "mine").unwrap();
        let config = Config::load(&file, FileChecks::Skip).unwrap();
        let items = make_missing(&config);
        let shown = report(&items);
        assert!(!all_there(&items), "{shown}");
        let cannot: Vec<&Item> = items.iter().filter(|i| matches!(i.action, Action::Cannot(_))).collect();
        assert_eq!(cannot.len(), 3, "{shown}");
        assert!(shown.contains("10.0.0.12") && shown.contains("not on this machine"), "{shown}");
        assert!(shown.contains("PAIRGATE_INIT_TEST_SURELY_UNSET_4821"), "{shown}");
        assert!(shown.contains("certs/gateway.key"), "{shown}");
        assert_eq!(std::fs::read_to_string(dir.path().join("certs/gateway.pem")).unwrap(), "mine");
        assert!(!dir.path().join("certs/gateway.key").exists());
        // The local chassis and the secrets were made all the same.
        assert!(dir.path().join("certs/chassis-a.key").exists() && dir.path().join(".state/chassis-b.password").exists());
        assert!(chassis_command(&config, &config.chassis[1], "pairgate").is_none());
    }

    #[test]
    fn next_steps_start_each_chassis_on_its_port_with_its_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let config = shipped_in(dir.path());
        let a = chassis_command(&config, &config.chassis[0], "./target/release/pairgate").unwrap();
        let d = dir.path().display();
        assert_eq!(
            a,
            format!(
                "./target/release/pairgate chassis --listen 127.0.0.1:8444 --state {d}/.state/chassis-a \
                 --tls-cert {d}/certs/chassis-a.pem --tls-key {d}/certs/chassis-a.key"
            )
        );
        let steps = next_steps(&config, "pairgate", false);
        assert!(steps.contains("--listen 127.0.0.1:8445"), "{steps}");
        assert!(steps.contains("init --config") && steps.contains("--provision"), "{steps}");
        assert!(steps.contains("https://127.0.0.1:8443/"), "{steps}");
        assert!(!next_steps(&config, "pairgate", true).contains("--provision"));
    }

    #[test]
    fn helpers() {
        assert_eq!(chassis_key_path(Path::new("certs/chassis-a.pem")), Path::new("certs/chassis-a.key"));
        assert_eq!(chassis_key_path(Path::new("certs/a")), Path::new("certs/a.key"));
        assert_eq!(chassis_key_path(Path::new("certs/odd.key")), Path::new("certs/odd.key.key"));
        assert_eq!(shell_word("certs/chassis-a.pem"), "certs/chassis-a.pem");
        assert_eq!(shell_word("my dir/it's"), r"'my dir/it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
