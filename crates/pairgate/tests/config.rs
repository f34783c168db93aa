//! The configuration: the shipped gateway.toml, located errors, classification, and
//! the `pairgate` binary's `check-config`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pairgate::config::{Config, ConfigError, FileChecks, Problem, RouteKind, SecretSource, Transport};
use pairgate::ids::rules::{IdAt, RouteIds};

fn shipped_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gateway.toml")
}

fn shipped() -> Config {
    match Config::load(&shipped_path(), FileChecks::Skip) {
        Ok(c) => c,
        Err(e) => panic!("the shipped gateway.toml must parse:\n{e}"),
    }
}

/// A small valid configuration; the error tests change one thing in it.
const BASE: &str = r#"admin_token_file = "admin.token"

[listen]
addr = "127.0.0.1:9443"
tls_cert = "gw.pem"
tls_key = "gw.key"

[state]
dir = "state"

[[chassis]]
name = "a"
url = "https://127.0.0.1:9444"
ca_cert = "a.pem"
username = "admin"
password_file = "a.password"

[[chassis]]
name = "b"
url = "https://127.0.0.1:9445"
ca_cert = "b.pem"
username = "admin"
password_file = "b.password"

[sessions]
jwt_secret_file = "jwt.secret"

[[route]]
method = "POST"
path = "/api/v1/login"
kind = "login"
"#;

/// `text` with the one occurrence of `from` replaced by `to`.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} must occur exactly once");
    text.replacen(from, to, 1)
}

/// The 1-based line on which `needle` (which must be unique) starts.
fn line_of(text: &str, needle: &str) -> usize {
    assert_eq!(text.matches(needle).count(), 1, "{needle:?} must occur exactly once");
    let at = text.find(needle).unwrap_or(0);
    text[..at].matches('\n').count() + 1
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_unchecked_files(text, Path::new("test.toml"))
}

fn error(text: &str) -> ConfigError {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts the error is on `line`, is shown as `test.toml:LINE:COL: …` with a fix,
/// and returns its display text.
fn assert_at(e: &ConfigError, line: usize) -> String {
    let shown = e.to_string();
    assert_eq!(e.line(), Some(line), "wrong line in:\n{shown}");
    assert!(shown.starts_with(&format!("test.toml:{line}:")), "no FILE:LINE:COL prefix in:\n{shown}");
    assert!(shown.contains("\n  fix: "), "no fix hint in:\n{shown}");
    assert!(!e.fix().is_empty());
    shown
}

// ---------------------------------------------------------------- the shipped file

#[test]
fn base_config_is_valid_and_defaults_apply() {
    let c = match parse(BASE) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.listen.max_body_bytes, 1024 * 1024);
    assert_eq!(c.timeouts.secondary_grace, Duration::from_millis(200));
    assert_eq!(c.timeouts.per_try, Duration::from_millis(2000));
    assert_eq!(c.timeouts.health_interval, Duration::from_millis(500));
    assert_eq!(c.timeouts.down_after, Duration::from_millis(1500));
    assert_eq!(c.journal.max_entries, 100_000);
    assert_eq!(c.journal.max_bytes, 256 * 1024 * 1024);
    assert_eq!(c.listen.body_timeout, Duration::from_millis(30_000));
    assert_eq!(c.listen.idle_timeout, Duration::from_millis(60_000));
    assert_eq!(c.listen.max_connections, 4096);
    assert_eq!(c.listen.max_requests_in_flight, 1024);
    assert_eq!(c.sessions.idle_timeout, Duration::from_secs(1800));
    assert_eq!(c.sessions.login_attempts_per_minute, 10);
    assert_eq!(c.routes.default_mutate_id_block(), 16);
    assert!(c.preferred_primary().is_none());
    assert_eq!(c.file_checks, FileChecks::Skip);
    assert!(c.reads.coalesce);
}

#[test]
fn reads_coalesce_can_be_switched_off_and_a_wrong_value_names_its_line() {
    let off = parse(&format!("{BASE}\n[reads]\ncoalesce = false\n")).unwrap_or_else(|e| panic!("{e}"));
    assert!(!off.reads.coalesce);
    let on = parse(&format!("{BASE}\n[reads]\n")).unwrap_or_else(|e| panic!("{e}"));
    assert!(on.reads.coalesce);
    let text = format!("{BASE}\n[reads]\ncoalesce = \"no\"\n");
    let shown = assert_at(&error(&text), line_of(&text, "coalesce"));
    assert!(shown.contains("invalid type"), "{shown}");
    let text = format!("{BASE}\n[reads]\ncoalesced = true\n");
    let shown = assert_at(&error(&text), line_of(&text, "coalesced"));
    assert!(shown.contains("unknown field `coalesced`"), "{shown}");
}

#[test]
fn shipped_config_has_the_demo_layout() {
    let c = shipped();
    assert_eq!(c.listen.addr.to_string(), "127.0.0.1:8443");
    let base = shipped_path().parent().map(Path::to_path_buf).unwrap_or_default();
    assert_eq!(c.listen.transport, Transport::Tls { cert: base.join("certs/gateway.pem"), key: base.join("certs/gateway.key") });
    assert_eq!(c.state.dir, base.join(".state/gateway"));
    assert_eq!(c.admin_token_file, base.join(".state/admin.token"));
    let [a, b] = &c.chassis;
    assert_eq!((a.name.as_str(), a.url.to_string()), ("a", "https://127.0.0.1:8444".to_string()));
    assert_eq!((b.name.as_str(), b.url.to_string()), ("b", "https://127.0.0.1:8445".to_string()));
    assert_eq!(a.ca_cert.as_deref(), Some(base.join("certs/chassis-a.pem").as_path()));
    assert_eq!(b.ca_cert.as_deref(), Some(base.join("certs/chassis-b.pem").as_path()));
    assert_eq!(a.password, SecretSource::File(base.join(".state/chassis-a.password")));
    assert_eq!(b.password, SecretSource::File(base.join(".state/chassis-b.password")));
    assert_eq!(c.preferred_primary().map(|p| p.name.as_str()), Some("a"));
    assert_eq!(c.sessions.jwt_secret_file, base.join(".state/jwt.secret"));
}

/// Every route of docs/chassis-api.md (with concrete IDs), and what the gateway must do.
const CONTRACT: &[(&str, &str, RouteKind, u32)] = {
    use RouteKind::*;
    &[
        ("POST", "/api/v1/login", Login, 0),
        ("POST", "/api/v1/logout", Logout, 0),
        ("GET", "/api/v1/events", Events, 0),
        ("GET", "/api/v1/system/info", Read, 0),
        ("GET", "/api/v1/system/health", Health, 0),
        // The gateway's own: its metrics.
        ("GET", "/metrics", Metrics, 0),
        ("GET", "/api/v1/system/digest", Read, 0),
        ("GET", "/api/v1/system/export", Read, 0),
        ("PUT", "/api/v1/system/import", Mutate, 0),
        ("GET", "/api/v1/users", Read, 0),
        ("POST", "/api/v1/users", Mutate, 1),
        ("GET", "/api/v1/users/7", Read, 0),
        ("PUT", "/api/v1/users/7", Mutate, 0),
        ("DELETE", "/api/v1/users/7", Mutate, 0),
        ("GET", "/api/v1/sources", Read, 0),
        ("POST", "/api/v1/sources", Mutate, 1),
        ("GET", "/api/v1/sources/3", Read, 0),
        ("PUT", "/api/v1/sources/3", Mutate, 0),
        ("DELETE", "/api/v1/sources/3", Mutate, 0),
        ("GET", "/api/v1/walls", Read, 0),
        ("POST", "/api/v1/walls", Mutate, 65),
        ("GET", "/api/v1/walls/5", Read, 0),
        ("PUT", "/api/v1/walls/5", Mutate, 64),
        ("DELETE", "/api/v1/walls/5", Mutate, 0),
        ("GET", "/api/v1/walls/5/windows", Read, 0),
        ("POST", "/api/v1/walls/5/windows", Mutate, 1),
        ("DELETE", "/api/v1/walls/5/windows", Mutate, 0),
        ("PUT", "/api/v1/walls/5/windows/9", Mutate, 0),
        ("DELETE", "/api/v1/walls/5/windows/9", Mutate, 0),
        ("POST", "/api/v1/walls/5/windows/9/raise", Mutate, 0),
        ("GET", "/api/v1/walls/5/scenes", Read, 0),
        ("POST", "/api/v1/walls/5/scenes", Mutate, 65),
        ("DELETE", "/api/v1/scenes/4", Mutate, 0),
        ("POST", "/api/v1/scenes/4/recall", Mutate, 64),
        ("GET", "/api/v1/matrix", Read, 0),
        ("PUT", "/api/v1/matrix/12", Mutate, 0),
        ("GET", "/api/v1/plans", Read, 0),
        ("POST", "/api/v1/plans", Mutate, 1),
        ("POST", "/api/v1/plans/2/run", Mutate, 0),
        ("DELETE", "/api/v1/plans/2", Mutate, 0),
        ("GET", "/api/v1/schedules", Read, 0),
        ("POST", "/api/v1/schedules", Mutate, 1),
        ("PUT", "/api/v1/schedules/6", Mutate, 0),
        ("DELETE", "/api/v1/schedules/6", Mutate, 0),
        ("GET", "/api/v1/kvm/hosts", Read, 0),
        ("POST", "/api/v1/kvm/hosts", Mutate, 1),
        ("DELETE", "/api/v1/kvm/hosts/8", Mutate, 0),
        ("GET", "/api/v1/kvm/seats", Read, 0),
        ("POST", "/api/v1/kvm/seats", Mutate, 1),
        ("PUT", "/api/v1/kvm/seats/8", Mutate, 0),
        ("DELETE", "/api/v1/kvm/seats/8", Mutate, 0),
        ("GET", "/api/v1/hardware/outputs", Read, 0),
        ("GET", "/api/v1/cascade/superior", Read, 0),
        ("PUT", "/api/v1/cascade/superior", Mutate, 0),
        ("GET", "/api/v1/cascade/subordinates", Read, 0),
        ("POST", "/api/v1/cascade/subordinates", Mutate, 1024),
        ("PUT", "/api/v1/cascade/links/1", Mutate, 0),
        ("GET", "/api/v1/cascade/links", Read, 0),
        ("GET", "/api/v1/walls/5/windows/9", Read, 0),
        ("GET", "/api/v1/scenes/4", Read, 0),
        ("GET", "/api/v1/plans/2", Read, 0),
        ("GET", "/api/v1/schedules/6", Read, 0),
        ("GET", "/api/v1/kvm/hosts/8", Read, 0),
        ("GET", "/api/v1/kvm/seats/8", Read, 0),
        ("GET", "/", Static, 0),
        ("GET", "/app.js", Static, 0),
        ("GET", "/assets/css/style.css", Static, 0),
    ]
};

#[test]
fn shipped_config_classifies_every_contract_route() {
    let c = shipped();
    let mut used = BTreeSet::new();
    for &(method, path, kind, block) in CONTRACT {
        let got = c.classify(method, path);
        assert_eq!((got.kind, got.id_block), (kind, block), "{method} {path}");
        let Some(index) = got.rule_index else {
            panic!("{method} {path} matched no rule: the shipped gateway.toml must name it");
        };
        used.insert(index);
        // The rule that matched is about this method (or any).
        let rule = &c.routes.rules()[index];
        assert!(rule.matches(method, path));
    }
    // Every rule in the file is there for some contract route, except the fallback
    // that keeps unknown GETs under /api reads instead of static files.
    let unused: Vec<String> = (0..c.routes.len())
        .filter(|i| !used.contains(i))
        .map(|i| {
            let r = &c.routes.rules()[i];
            format!("{} {}", r.method, r.path)
        })
        .collect();
    assert_eq!(unused, vec!["GET /api/{*rest}".to_string()]);
}

#[test]
fn shipped_config_defaults_for_unknown_routes() {
    let c = shipped();
    // Unknown mutating routes are always mutations, with the default block.
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let got = c.classify(method, "/api/v1/widgets/3/frobnicate");
        assert_eq!((got.kind, got.id_block, got.rule_index), (RouteKind::Mutate, 16, None), "{method}");
    }
    // A POST under a known GET-only route is still a mutation.
    let got = c.classify("POST", "/api/v1/hardware/outputs");
    assert_eq!((got.kind, got.id_block, got.rule_index), (RouteKind::Mutate, 16, None));
    // Unknown GETs under /api are reads, not static files.
    let got = c.classify("GET", "/api/v1/widgets");
    assert_eq!(got.kind, RouteKind::Read);
    assert!(got.rule_index.is_some());
    // HEAD follows GET rules; the query string is ignored.
    assert_eq!(c.classify("HEAD", "/").kind, RouteKind::Static);
    assert_eq!(c.classify("GET", "/api/v1/events?token=abc").kind, RouteKind::Events);
    assert_eq!(c.classify("POST", "/api/v1/walls?x=1").id_block, 65);
}

#[test]
fn shipped_config_seals_every_body_that_carries_a_password() {
    let c = shipped();
    let secret = |method: &str, path: &str, body: &str| c.routes.body_is_secret(method, path, body.as_bytes());
    // Every route of docs/chassis-api.md whose body carries a password.
    assert!(secret("POST", "/api/v1/users", r#"{"username":"u","password":"p","role":"viewer"}"#));
    assert!(secret("PUT", "/api/v1/users/7", r#"{"password":"p"}"#));
    assert!(secret("PUT", "/api/v1/cascade/superior", r#"{"url":"https://x:1","username":"u","password":"p"}"#));
    assert!(secret(
        "POST",
        "/api/v1/cascade/subordinates",
        r#"{"serial":"s","url":"u","sources":[],"credentials":{"username":"u","password":"p"}}"#
    ));
    assert!(secret("PUT", "/api/v1/system/import", r#"{"tables":{}}"#), "the export document holds password hashes and credentials");
    // The same routes without a password, and routes that never carry one, stay plain.
    assert!(!secret("PUT", "/api/v1/users/7", r#"{"role":"operator"}"#));
    assert!(!secret("PUT", "/api/v1/cascade/superior", r#"{"url":null}"#));
    assert!(!secret("POST", "/api/v1/walls", r#"{"name":"w","rows":1,"cols":1,"outputs":[1]}"#));
    assert!(!secret("DELETE", "/api/v1/users/7", ""));
    // A mutation no rule describes is always sealed; reads are never stored.
    assert!(secret("POST", "/api/v1/widgets", "{}"));
    assert!(!secret("GET", "/api/v1/users", ""));
}

#[test]
fn unknown_post_is_mutate_with_the_configured_default_block() {
    let text = edit(BASE, "admin_token_file", "default_mutate_id_block = 5\nadmin_token_file");
    let c = match parse(&text) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let got = c.classify("POST", "/api/v1/anything");
    assert_eq!((got.kind, got.id_block, got.rule_index), (RouteKind::Mutate, 5, None));
    let got = c.classify("GET", "/api/v1/anything");
    assert_eq!((got.kind, got.id_block, got.rule_index), (RouteKind::Read, 0, None));
}

#[test]
fn most_specific_rule_wins() {
    let rules = r#"
[[route]]
method = "*"
path = "/api/v1/walls/{id}/{*rest}"
kind = "mutate"
id_block = 3

[[route]]
method = "POST"
path = "/api/v1/walls/{id}/windows"
kind = "mutate"
id_block = 1

[[route]]
method = "*"
path = "/api/v1/walls/{id}/windows"
kind = "mutate"
id_block = 2
"#;
    let c = match parse(&format!("{BASE}{rules}")) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.classify("POST", "/api/v1/walls/1/windows").id_block, 1);
    assert_eq!(c.classify("DELETE", "/api/v1/walls/1/windows").id_block, 2);
    assert_eq!(c.classify("DELETE", "/api/v1/walls/1/windows/4").id_block, 3);
    assert_eq!(c.classify("POST", "/api/v1/walls/1").rule_index, None);
}

// ---------------------------------------------------------------- located errors

#[test]
fn syntax_error_names_its_line() {
    let text = edit(BASE, "addr = \"127.0.0.1:9443\"", "addr = \"127.0.0.1:9443");
    let e = error(&text);
    assert!(matches!(e, ConfigError::Toml { .. }));
    assert_at(&e, 4);
}

#[test]
fn unknown_key_names_its_line() {
    let text = edit(BASE, "tls_key = \"gw.key\"\n", "tls_key = \"gw.key\"\nmax_body_byte = 5\n");
    let e = error(&text);
    let shown = assert_at(&e, line_of(&text, "max_body_byte"));
    assert!(shown.contains("unknown field `max_body_byte`"), "{shown}");
}

#[test]
fn wrong_type_names_its_line() {
    let text = format!("{}\n[timeouts]\nsecondary_grace_ms = 100\nper_try_ms = \"2000\"\n", BASE);
    let e = error(&text);
    let shown = assert_at(&e, line_of(&text, "per_try_ms"));
    assert!(shown.contains("invalid type"), "{shown}");
}

#[test]
fn missing_table_is_reported_with_a_fix() {
    let text = edit(BASE, "[sessions]\njwt_secret_file = \"jwt.secret\"\n", "");
    let e = error(&text);
    let shown = assert_at(&e, 1);
    assert!(shown.contains("missing field `sessions`") && shown.contains("add a `[sessions]` table"), "{shown}");
}

#[test]
fn duplicate_chassis_name_names_the_second_and_the_first() {
    let text = edit(BASE, "name = \"b\"", "name = \"a\"");
    let e = error(&text);
    assert_at(&e, line_of(&text, "url = \"https://127.0.0.1:9445\"") - 1);
    let first_line = line_of(&text, "url = \"https://127.0.0.1:9444\"") - 1;
    assert_eq!(e.problem(), Some(&Problem::DuplicateChassisName { name: "a".into(), first_line }));
}

#[test]
fn inline_password_is_rejected_with_a_hint() {
    let text = edit(BASE, "password_file = \"b.password\"", "password = \"hunter2\"");
    let e = error(&text);
    let shown = assert_at(&e, line_of(&text, "password = "));
    assert_eq!(e.problem(), Some(&Problem::InlineSecret { key: "password" }));
    assert!(shown.contains("password_file") && shown.contains("password_env"), "{shown}");
    assert!(!shown.contains("hunter2"), "the secret itself must not be echoed:\n{shown}");
}

#[test]
fn http_chassis_with_ca_cert_is_rejected() {
    let text = edit(BASE, "url = \"https://127.0.0.1:9445\"", "url = \"http://127.0.0.1:9445\"");
    let e = error(&text);
    assert_at(&e, line_of(&text, "ca_cert = \"b.pem\""));
    assert_eq!(e.problem(), Some(&Problem::CaCertWithHttp { chassis: "b".into() }));
    // Without the ca_cert the same chassis is fine.
    let ok = edit(&text, "ca_cert = \"b.pem\"\n", "");
    assert!(parse(&ok).is_ok());
}

#[test]
fn mutate_rule_without_block_names_its_route_header() {
    let rules = "\n[[route]]\nmethod = \"GET\"\npath = \"/x\"\nkind = \"read\"\n\n[[route]]\nmethod = \"POST\"\npath = \"/api/v1/things\"\nkind = \"mutate\"\n";
    let text = format!("{BASE}{rules}");
    let e = error(&text);
    assert_at(&e, line_of(&text, "path = \"/api/v1/things\"") - 2);
    assert!(matches!(e.problem(), Some(Problem::IdBlockMissing { .. })));
}

/// Each (edit, line marker, expected problem check) is one semantic error.
#[test]
fn semantic_errors_name_their_line() {
    type Check = fn(&Problem) -> bool;
    let route = |body: &str| format!("{BASE}\n[[route]]\n{body}\n");
    let cases: Vec<(String, &str, Check)> = vec![
        (edit(BASE, "addr = \"127.0.0.1:9443\"", "addr = \"localhost:9443\""), "addr =", |p| matches!(p, Problem::BadListenAddr { .. })),
        (edit(BASE, "url = \"https://127.0.0.1:9444\"", "url = \"https://127.0.0.1\""), "url = \"https://127.0.0.1\"", |p| matches!(p, Problem::BadChassisUrl { .. })),
        (edit(BASE, "url = \"https://127.0.0.1:9444\"", "url = \"https://127.0.0.1:9443\""), "url = \"https://127.0.0.1:9443\"", |p| matches!(p, Problem::ChassisIsGateway { .. })),
        (edit(BASE, "url = \"https://127.0.0.1:9445\"", "url = \"https://127.0.0.1:9444/\""), "url = \"https://127.0.0.1:9444/\"", |p| matches!(p, Problem::DuplicateChassisUrl { first_line: 13, .. })),
        (edit(BASE, "password_file = \"a.password\"", "password_env = \"A B\""), "password_env", |p| matches!(p, Problem::BadEnvName { .. })),
        (edit(BASE, "password_file = \"a.password\"", "password_file = \"a.password\"\npassword_env = \"PW\""), "password_env", |p| matches!(p, Problem::PasswordSourceTwice { .. })),
        (edit(BASE, "ca_cert = \"a.pem\"", "ca_cert = \"\""), "ca_cert = \"\"", |p| matches!(p, Problem::EmptyPath { .. })),
        (edit(BASE, "password_file = \"a.password\"", "password_file = \"a.password\"\nfeatures = [\"id_block\", \"hdmi\"]"), "features = [", |p| matches!(p, Problem::UnknownFeature { value, .. } if value == "hdmi")),
        (edit(BASE, "tls_cert = \"gw.pem\"", "insecure_http = true\ntls_cert = \"gw.pem\""), "tls_cert", |p| matches!(p, Problem::TlsWithInsecureHttp { key: "tls_cert" })),
        (edit(BASE, "admin_token_file = \"admin.token\"", "admin_token_file = \"admin.token\"\nadmin_token = \"s3cret\""), "admin_token =", |p| *p == Problem::InlineSecret { key: "admin_token" }),
        (format!("{BASE}\n[timeouts]\nper_try_ms = 5\n"), "per_try_ms", |p| matches!(p, Problem::OutOfRange { min: 10, max: 60_000, value: 5, .. })),
        (format!("{BASE}\n[timeouts]\nsecondary_grace_ms = 3000\n"), "secondary_grace_ms", |p| matches!(p, Problem::GraceLongerThanTry { grace: 3000, per_try: 2000 })),
        (format!("{BASE}\n[journal]\nmax_entries = 0\n"), "max_entries", |p| matches!(p, Problem::OutOfRange { .. })),
        (format!("{BASE}\n[journal]\nmax_bytes = 1000\n"), "max_bytes", |p| matches!(p, Problem::OutOfRange { min: 1_048_576, value: 1000, .. })),
        (edit(BASE, "tls_key = \"gw.key\"", "tls_key = \"gw.key\"\nmax_connections = 0"), "max_connections", |p| matches!(p, Problem::OutOfRange { min: 1, value: 0, .. })),
        (edit(BASE, "tls_key = \"gw.key\"", "tls_key = \"gw.key\"\nmax_requests_in_flight = 0"), "max_requests_in_flight", |p| matches!(p, Problem::OutOfRange { min: 1, value: 0, .. })),
        (edit(BASE, "tls_key = \"gw.key\"", "tls_key = \"gw.key\"\nbody_timeout_ms = 5"), "body_timeout_ms", |p| matches!(p, Problem::OutOfRange { min: 100, value: 5, .. })),
        (format!("{BASE}\n[[collection]]\npath = \"/a/{{x}}/b/{{y}}\"\neach = \"/a\"\n"), "path = \"/a/{x}", |p| matches!(p, Problem::BadCollectionPath { .. })),
        (format!("{BASE}\n[[collection]]\npath = \"/a/{{x}}\"\n"), "[[collection]]", |p| matches!(p, Problem::CollectionNeedsEach { .. })),
        (format!("{BASE}\n[[collection]]\npath = \"/a\"\neach = \"/b\"\n"), "each = ", |p| matches!(p, Problem::EachWithoutParam { .. })),
        (format!("{BASE}\n[[collection]]\npath = \"/a/{{id}}/w\"\neach = \"/a\"\n"), "each = ", |p| matches!(p, Problem::UnknownParentCollection { .. })),
        (format!("{BASE}\n[[collection]]\npath = \"/a\"\n\n[[collection]]\npath = \"/a\" # again\n"), "\"/a\" # again", |p| matches!(p, Problem::DuplicateCollection { .. })),
        (route("method = \"get\"\npath = \"/x\"\nkind = \"read\""), "method = \"get\"", |p| matches!(p, Problem::BadMethod { .. })),
        (route("method = \"GET\"\npath = \"/x\"\nkind = \"write\""), "kind = \"write\"", |p| matches!(p, Problem::BadKind { .. })),
        (route("method = \"GET\"\npath = \"/a/*\"\nkind = \"read\""), "path = \"/a/*\"", |p| matches!(p, Problem::BadPattern { .. })),
        (route("method = \"GET\"\npath = \"/a/\"\nkind = \"read\""), "path = \"/a/\"", |p| matches!(p, Problem::BadPattern { .. })),
        (route("method = \"*\"\npath = \"/_sim/{*rest}\"\nkind = \"read\""), "path = \"/_sim", |p| matches!(p, Problem::ReservedPath { prefix: "_sim", .. })),
        (route("method = \"GET\"\npath = \"/x\"\nkind = \"read\"\nid_block = 1"), "id_block", |p| matches!(p, Problem::IdBlockForbidden { kind: "read" })),
        (route("method = \"POST\"\npath = \"/api/v1/events\"\nkind = \"events\""), "method = \"POST\"\npath = \"/api/v1/events\"", |p| matches!(p, Problem::KindNeedsGet { .. })),
        (route("method = \"POST\"\npath = \"/api/v1/{what}\"\nkind = \"mutate\"\nid_block = 1\n\n[[route]]\nmethod = \"POST\"\npath = \"/api/v1/{other}\"\nkind = \"mutate\"\nid_block = 2"), "path = \"/api/v1/{other}\"", |p| matches!(p, Problem::DuplicateRoute { first_line: 33, .. })),
        (route("method = \"POST\"\npath = \"/api/v1/x\"\nkind = \"mutate\"\nid_block = 2000000"), "id_block", |p| matches!(p, Problem::OutOfRange { .. })),
        (route("method = \"POST\"\npath = \"/x\"\nkind = \"mutate\"\nid_block = 0\nsecret_fields = [\n  \"/ok\",\n  \"password\"]"), "\"password\"]", |p| matches!(p, Problem::BadSecretField { value, .. } if value == "password")),
        (route("method = \"POST\"\npath = \"/x\"\nkind = \"mutate\"\nid_block = 0\nsecret_fields = [\"/a~2b\"]"), "secret_fields", |p| matches!(p, Problem::BadSecretField { .. })),
        (route("method = \"GET\"\npath = \"/x\"\nkind = \"read\"\nsecret_fields = [\"/password\"]"), "secret_fields", |p| matches!(p, Problem::SecretFieldsForbidden { kind: "read" })),
        (route("method = \"POST\"\npath = \"/login2\"\nkind = \"login\"\nsecret_fields = [\"/password\"]"), "secret_fields", |p| matches!(p, Problem::SecretFieldsForbidden { kind: "login" })),
    ];
    for (text, marker, check) in cases {
        let e = error(&text);
        assert_at(&e, line_of(&text, marker));
        assert!(e.problem().is_some_and(check), "unexpected problem {:?} for:\n{text}", e.problem());
    }
}

/// `[cascade]` with its superior, as the commented example in the shipped file.
const CASCADE: &str = r#"
[cascade]
serial = "PAIR-0001"
public_url = "https://wall-gateway.example:8443"

[cascade.superior]
url = "https://10.9.9.9:8443"
ca_cert = "superior.pem"
username = "cascade"
password_file = "superior.password"
"#;

#[test]
fn a_cascade_section_gives_the_pair_one_identity_and_its_superior() {
    assert!(shipped().cascade.is_none(), "the demo is no cascade");
    let c = match parse(&format!("{BASE}{CASCADE}")) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let cascade = c.cascade.unwrap_or_else(|| panic!("no [cascade]"));
    assert_eq!((cascade.serial.as_str(), cascade.public_url.to_string().as_str()), ("PAIR-0001", "https://wall-gateway.example:8443"));
    let sup = cascade.superior.unwrap_or_else(|| panic!("no [cascade.superior]"));
    assert_eq!((sup.url.to_string().as_str(), sup.username.as_str()), ("https://10.9.9.9:8443", "cascade"));
    assert!(sup.ca_cert.is_some_and(|p| p.ends_with("superior.pem")));
    assert!(matches!(sup.password, SecretSource::File(p) if p.ends_with("superior.password")));
    // The shipped file's commented example is this one, uncommented.
    let shipped = std::fs::read_to_string(shipped_path()).unwrap_or_default();
    for line in CASCADE.lines().filter(|l| !l.is_empty()) {
        let key = line.split(" = ").next().unwrap_or(line);
        assert!(shipped.lines().any(|l| l.starts_with(&format!("# {key}"))), "gateway.toml does not show {key:?}");
    }
}

#[test]
fn cascade_errors_name_their_line_and_the_fix() {
    type Check = fn(&Problem) -> bool;
    let with = |from: &str, to: &str| format!("{BASE}{}", edit(CASCADE, from, to));
    let cases: Vec<(String, &str, Check)> = vec![
        (with("serial = \"PAIR-0001\"", "serial = \"pair 1\""), "serial =", |p| matches!(p, Problem::BadPairSerial { .. })),
        (with("public_url = \"https://wall-gateway.example:8443\"", "public_url = \"https://wall-gateway.example\""), "public_url", |p| {
            matches!(p, Problem::BadCascadeUrl { key: "public_url", .. })
        }),
        (with("url = \"https://10.9.9.9:8443\"", "url = \"https://127.0.0.1:9443\""), "url = \"https://127.0.0.1:9443\"", |p| {
            matches!(p, Problem::SuperiorIsGateway { .. })
        }),
        (with("ca_cert = \"superior.pem\"\n", ""), "[cascade.superior]", |p| *p == Problem::SuperiorCaCertMissing),
        (with("url = \"https://10.9.9.9:8443\"", "url = \"http://10.9.9.9:8080\""), "ca_cert = \"superior.pem\"", |p| {
            *p == Problem::SuperiorCaCertWithHttp
        }),
        (with("username = \"cascade\"", "username = \" \""), "username = \" \"", |p| *p == Problem::SuperiorEmptyUsername),
        (with("password_file = \"superior.password\"", "password = \"s3cret\""), "password = ", |p| {
            *p == Problem::InlineSecret { key: "password" }
        }),
        (with("password_file = \"superior.password\"", "user = \"x\""), "user = ", |_| true),
        (with("password_file = \"superior.password\"\n", ""), "[cascade.superior]", |p| *p == Problem::SuperiorPasswordMissing),
        (
            with("password_file = \"superior.password\"", "password_file = \"superior.password\"\npassword_env = \"SUP_PW\""),
            "password_env",
            |p| *p == Problem::SuperiorPasswordTwice,
        ),
    ];
    for (text, marker, check) in cases {
        let e = error(&text);
        let shown = assert_at(&e, line_of(&text, marker));
        assert!(e.problem().is_none_or(check), "unexpected problem {:?} for:\n{text}", e.problem());
        assert!(!shown.contains("s3cret"), "the secret is echoed: {shown}");
    }
}

#[test]
fn chassis_count_and_login_rule_are_required() {
    let one = edit(
        BASE,
        "[[chassis]]\nname = \"b\"\nurl = \"https://127.0.0.1:9445\"\nca_cert = \"b.pem\"\nusername = \"admin\"\npassword_file = \"b.password\"\n",
        "",
    );
    let e = error(&one);
    assert_at(&e, line_of(&one, "[[chassis]]"));
    assert_eq!(e.problem(), Some(&Problem::ChassisCount { found: 1 }));

    let three = format!("{BASE}\n[[chassis]]\nname = \"c\"\nurl = \"https://127.0.0.1:9446\"\nca_cert = \"c.pem\"\nusername = \"u\"\npassword_env = \"C\"\n");
    let e = error(&three);
    assert_at(&e, line_of(&three, "name = \"c\"") - 1);
    assert_eq!(e.problem(), Some(&Problem::ChassisCount { found: 3 }));

    let no_login = edit(BASE, "kind = \"login\"", "kind = \"read\"");
    let e = error(&no_login);
    assert_eq!(e.problem(), Some(&Problem::NoLoginRoute));
    assert_at(&e, no_login.lines().count() + 1);

    let no_tls = edit(BASE, "tls_key = \"gw.key\"\n", "");
    let e = error(&no_tls);
    assert_at(&e, line_of(&no_tls, "[listen]"));
    assert_eq!(e.problem(), Some(&Problem::TlsFileMissing { key: "tls_key" }));

    let two_preferred = edit(
        &edit(BASE, "password_file = \"a.password\"", "password_file = \"a.password\"\npreferred_primary = true"),
        "password_file = \"b.password\"",
        "password_file = \"b.password\"\npreferred_primary = true",
    );
    let e = error(&two_preferred);
    let lines: Vec<usize> =
        two_preferred.lines().enumerate().filter(|(_, l)| *l == "preferred_primary = true").map(|(i, _)| i + 1).collect();
    assert_eq!(lines.len(), 2);
    assert_at(&e, lines[1]);
    assert_eq!(e.problem(), Some(&Problem::TwoPreferredPrimaries { first_line: lines[0] }));

    // A full resync copies one chassis' users onto the other: one username.
    let two_names =
        edit(BASE, "username = \"admin\"\npassword_file = \"b.password\"", "username = \"gw-b\"\npassword_file = \"b.password\"");
    let e = error(&two_names);
    assert_at(&e, line_of(&two_names, "username = \"gw-b\""));
    let first_line = line_of(&two_names, "username = \"admin\"");
    assert_eq!(e.problem(), Some(&Problem::DifferentServiceUsernames { first: "admin".into(), first_line }));
}

#[test]
fn insecure_http_must_be_explicit_and_then_works() {
    let text = edit(BASE, "tls_cert = \"gw.pem\"\ntls_key = \"gw.key\"\n", "insecure_http = true\n");
    let c = match parse(&text) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.listen.transport, Transport::InsecureHttp);
    // `insecure_http = false` is the same as not writing it: HTTPS needs its files.
    let text = edit(BASE, "tls_cert = \"gw.pem\"\ntls_key = \"gw.key\"\n", "insecure_http = false\n");
    assert_eq!(error(&text).problem(), Some(&Problem::TlsFileMissing { key: "tls_cert" }));
}

// ---------------------------------------------------------------- files on disk

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBdemo\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIEdemo\n-----END PRIVATE KEY-----\n";

/// A directory holding BASE as `gateway.toml` and every file it names.
fn populated_dir() -> tempfile::TempDir {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let files = [
        ("gateway.toml", BASE),
        ("gw.pem", CERT),
        ("gw.key", KEY),
        ("a.pem", CERT),
        ("b.pem", CERT),
        ("a.password", "pw-a\n"),
        ("b.password", "pw-b\n"),
        ("admin.token", "token\n"),
        ("jwt.secret", "0123456789abcdef\n"),
    ];
    for (name, content) in files {
        if let Err(e) = std::fs::write(dir.path().join(name), content) {
            panic!("write {name}: {e}");
        }
    }
    dir
}

#[test]
fn file_checks_resolve_relative_paths_and_find_problems() {
    let dir = populated_dir();
    let file = dir.path().join("gateway.toml");
    let c = match Config::load(&file, FileChecks::Check) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.chassis[0].ca_cert.as_deref(), Some(dir.path().join("a.pem").as_path()));
    assert_eq!(c.state.dir, dir.path().join("state"));

    let load_err = || match Config::load(&file, FileChecks::Check) {
        Ok(_) => panic!("expected a file error"),
        Err(e) => e,
    };
    let expect_bad_file = |e: &ConfigError, key: &str, line: usize, reason: &str| {
        assert_eq!(e.line(), Some(line), "{e}");
        match e.problem() {
            Some(Problem::BadFile { key: k, reason: r, .. }) => {
                assert_eq!(k, key);
                assert!(r.contains(reason), "{r}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(e.to_string().starts_with(&format!("{}:{line}:", file.display())), "{e}");
    };

    // A missing chassis certificate.
    std::fs::remove_file(dir.path().join("b.pem")).ok();
    expect_bad_file(&load_err(), "chassis.b.ca_cert", line_of(BASE, "ca_cert = \"b.pem\""), "cannot be opened");
    // Skipping file checks accepts it.
    assert!(Config::load(&file, FileChecks::Skip).is_ok());
    // A certificate that is not PEM.
    std::fs::write(dir.path().join("b.pem"), "not a certificate").ok();
    expect_bad_file(&load_err(), "chassis.b.ca_cert", line_of(BASE, "ca_cert = \"b.pem\""), "no PEM certificate");
    std::fs::write(dir.path().join("b.pem"), CERT).ok();
    // Key and certificate swapped.
    std::fs::write(dir.path().join("gw.key"), CERT).ok();
    expect_bad_file(&load_err(), "listen.tls_key", line_of(BASE, "tls_key"), "no PEM private key");
    std::fs::write(dir.path().join("gw.key"), KEY).ok();
    // An empty secret.
    std::fs::write(dir.path().join("jwt.secret"), "\n").ok();
    expect_bad_file(&load_err(), "sessions.jwt_secret_file", line_of(BASE, "jwt_secret_file"), "is empty");
    std::fs::write(dir.path().join("jwt.secret"), "s").ok();
    // A state "dir" that is a file.
    std::fs::write(dir.path().join("state"), "").ok();
    expect_bad_file(&load_err(), "state.dir", line_of(BASE, "dir = \"state\""), "not a directory");
    std::fs::remove_file(dir.path().join("state")).ok();
    assert!(Config::load(&file, FileChecks::Check).is_ok());

    // An unset password variable.
    let env = edit(BASE, "password_file = \"a.password\"", "password_env = \"PAIRGATE_TEST_SURELY_UNSET_93731\"");
    std::fs::write(&file, &env).ok();
    let e = load_err();
    assert_eq!(e.line(), Some(line_of(&env, "password_env")));
    assert!(matches!(e.problem(), Some(Problem::EnvUnset { .. })));
}

#[test]
fn a_missing_config_file_is_a_read_error() {
    let e = match Config::load(Path::new("/nonexistent/pairgate.toml"), FileChecks::Skip) {
        Ok(_) => panic!("must fail"),
        Err(e) => e,
    };
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().starts_with("/nonexistent/pairgate.toml: cannot read"));
}

// ---------------------------------------------------------------- the binary

fn pairgate(args: &[&std::ffi::OsStr]) -> std::process::Output {
    match Command::new(env!("CARGO_BIN_EXE_pairgate")).args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("running pairgate: {e}"),
    }
}

#[test]
fn check_config_on_a_bad_file_exits_2_with_file_and_line() {
    let dir = populated_dir();
    let file = dir.path().join("gateway.toml");
    let bad = edit(BASE, "username = \"admin\"\npassword_file = \"b.password\"", "username = \"admin\"\npassword = \"x\"");
    std::fs::write(&file, &bad).ok();
    let out = pairgate(&["check-config".as_ref(), file.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let expected = format!("{}:{}:", file.display(), line_of(&bad, "password = \"x\""));
    assert!(stderr.contains(&expected), "expected {expected} in: {stderr}");
    assert!(stderr.contains("fix: "), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn check_config_on_a_good_file_exits_0_with_a_summary() {
    let dir = populated_dir();
    let file = dir.path().join("gateway.toml");
    let out = pairgate(&["check-config".as_ref(), file.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    for expected in ["https://127.0.0.1:9443", "https://127.0.0.1:9444", "https://127.0.0.1:9445", "1 rules", "files    checked"] {
        assert!(stdout.contains(expected), "{expected:?} missing in:\n{stdout}");
    }
    // A missing file makes the same command fail, and --no-file-checks accepts it.
    std::fs::remove_file(dir.path().join("a.password")).ok();
    let out = pairgate(&["check-config".as_ref(), file.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let out = pairgate(&["check-config".as_ref(), "--no-file-checks".as_ref(), file.as_os_str()]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn check_config_accepts_the_shipped_file_without_file_checks() {
    let path = shipped_path();
    let out = pairgate(&["check-config".as_ref(), "--no-file-checks".as_ref(), path.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("https://127.0.0.1:8444") && stdout.contains("(preferred primary)"), "{stdout}");
}

#[test]
fn config_flag_refuses_a_bad_file_with_its_location() {
    let dir = populated_dir();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, "garbage = [").ok();
    let out = pairgate(&["--config".as_ref(), file.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{}:1:", file.display())));
}

#[test]
fn unknown_key_hints_never_suggest_inline_secrets() {
    let text = edit(BASE, "admin_token_file = \"admin.token\"", "admin_token_file = \"admin.token\"\nadmin_tokn = 1");
    let shown = error(&text).to_string();
    assert!(shown.contains("`admin_token_file`") && !shown.contains("`admin_token`"), "{shown}");
    let text = edit(BASE, "username = \"admin\"\npassword_file = \"a.password\"", "username = \"admin\"\npasword_file = \"a.password\"");
    let e = error(&text);
    let shown = assert_at(&e, line_of(&text, "pasword_file"));
    assert!(shown.contains("`password_file`") && !shown.contains("`password`,"), "{shown}");
}

// ---------------------------------------------------------------- where IDs are

/// (table, place) of each entry, as the rule lists them.
fn places(list: &[IdAt]) -> Vec<(&str, &str)> {
    list.iter().map(|p| (&*p.table, p.at.as_str())).collect()
}

/// The same, sorted: for keys whose order does not matter.
fn sorted_places(list: &[IdAt]) -> Vec<(&str, &str)> {
    let mut out = places(list);
    out.sort();
    out
}

#[test]
fn shipped_config_says_where_the_reference_api_holds_ids() {
    let c = shipped();
    let ids = |method: &str, path: &str| c.routes.ids(&c.classify(method, path)).clone();

    // A create: the wall first, then its screens, in that order.
    let walls = ids("POST", "/api/v1/walls");
    assert_eq!(places(&walls.creates), vec![("walls", "/id"), ("screens", "/screens/*/id")]);
    assert!(walls.path.is_empty() && walls.body.is_empty() && walls.answer.is_empty() && walls.forgets.is_none());

    let window = ids("PUT", "/api/v1/walls/5/windows/9");
    let mut path: Vec<(&str, &str)> = window.path.iter().map(|(p, t)| (p.as_str(), &**t)).collect();
    path.sort();
    assert_eq!(path, vec![("id", "walls"), ("wid", "windows")]);
    assert_eq!(window.param_table("wid").map(|t| &**t), Some("windows"));
    assert_eq!(sorted_places(&window.body), vec![("sources", "/source_id")]);
    assert_eq!(sorted_places(&window.answer), vec![("sources", "/source_id"), ("walls", "/wall_id"), ("windows", "/id")]);
    assert!(window.creates.is_empty() && window.forgets.is_none());

    assert_eq!(ids("DELETE", "/api/v1/walls/5/windows/9").forgets.as_deref(), Some("wid"));
    assert_eq!(ids("DELETE", "/api/v1/users/7").forgets.as_deref(), Some("id"));
    let scene = ids("POST", "/api/v1/walls/5/scenes");
    assert_eq!(places(&scene.creates), vec![("scenes", "/id"), ("scene_items", "/items/*/id")]);
    assert_eq!(sorted_places(&ids("GET", "/api/v1/schedules").answer), vec![("plans", "/*/plan_ids/*"), ("schedules", "/*/id")]);
    assert_eq!(places(&ids("POST", "/api/v1/plans/2/run").answer), vec![("plans", "/plan_id")]);
    assert_eq!(places(&ids("POST", "/api/v1/login").answer), vec![("users", "/user/id")], "the login's account id");

    // Rules that name no ID, and requests no rule describes, have none.
    for (method, path) in [("GET", "/api/v1/system/info"), ("PUT", "/api/v1/matrix/12"), ("GET", "/app.js"), ("POST", "/api/v1/widgets")] {
        assert!(ids(method, path).is_empty(), "{method} {path}");
    }

    // Events, in file order, each type once, its line that of its header.
    let text = std::fs::read_to_string(shipped_path()).unwrap_or_default();
    let created = c.events.iter().find(|e| e.event_type == "window.created");
    let Some(created) = created else { panic!("no [[event]] for window.created") };
    assert_eq!(sorted_places(&created.data), vec![("sources", "/source_id"), ("walls", "/wall_id"), ("windows", "/id")]);
    assert_eq!(created.line, line_of(&text, "type = \"window.created\"") - 1);
    let types: BTreeSet<&str> = c.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types.len(), c.events.len());
    assert!(c.events.windows(2).all(|w| w[0].line < w[1].line));

    // Every table the file names is one of the reference API's (a typo would be
    // a table of its own, whose IDs are never translated).
    let known = [
        "users",
        "sources",
        "subordinates",
        "walls",
        "screens",
        "windows",
        "scenes",
        "scene_items",
        "plans",
        "schedules",
        "kvm_hosts",
        "kvm_seats",
    ];
    let rule_tables = c.routes.rules().iter().flat_map(|r| {
        let ids = &r.ids;
        ids.path.iter().map(|(_, t)| t).chain(ids.body.iter().chain(&ids.answer).chain(&ids.creates).map(|p| &p.table))
    });
    let event_tables = c.events.iter().flat_map(|e| e.data.iter().map(|p| &p.table));
    for table in rule_tables.chain(event_tables) {
        assert!(known.contains(&&**table), "unknown table {table:?}");
    }
}

#[test]
fn id_keys_parse_into_route_ids_and_events() {
    let rules = r#"
[[route]]
method = "POST"
path = "/api/v1/walls/{id}/scenes"
kind = "mutate"
id_block = 65
path_ids = { id = "walls" }
body_ids = { "/plan_ids/*" = "plans", "/source_id" = "sources" }
creates = [
  { table = "scenes", at = "/id" },
  { table = "scene_items", at = "/items/*/id" },
]
answer_ids = { "/wall_id" = "walls" }

[[route]]
method = "DELETE"
path = "/api/v1/walls/{id}"
kind = "mutate"
id_block = 0
path_ids = { id = "walls" }
forgets = "id"

[[route]]
method = "GET"
path = "/api/v1/walls"
kind = "read"

[[event]]
type = "wall.deleted"
ids = { "/id" = "walls" }

[[event]]
type = "scene.created"
ids = { "/id" = "scenes", "/items/*/id" = "scene_items" }
"#;
    let text = format!("{BASE}{rules}");
    let c = match parse(&text) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let scenes = c.routes.ids(&c.classify("POST", "/api/v1/walls/1/scenes"));
    assert_eq!(scenes.path, vec![("id".to_string(), "walls".into())]);
    assert_eq!(sorted_places(&scenes.body), vec![("plans", "/plan_ids/*"), ("sources", "/source_id")]);
    assert_eq!(places(&scenes.creates), vec![("scenes", "/id"), ("scene_items", "/items/*/id")]);
    assert_eq!(places(&scenes.answer), vec![("walls", "/wall_id")]);
    assert_eq!(scenes.forgets, None);
    let delete = c.routes.ids(&c.classify("DELETE", "/api/v1/walls/1"));
    assert_eq!((delete.forgets.as_deref(), delete.param_table("id").map(|t| &**t)), (Some("id"), Some("walls")));
    assert_eq!(c.routes.ids(&c.classify("GET", "/api/v1/walls")), &RouteIds::default());
    assert_eq!(c.routes.ids(&c.classify("GET", "/api/v1/nothing")), &RouteIds::default());
    // The login rule of BASE names no ID either.
    assert!(c.routes.rules()[0].ids.is_empty());

    let events: Vec<(&str, usize, usize)> = c.events.iter().map(|e| (e.event_type.as_str(), e.data.len(), e.line)).collect();
    assert_eq!(
        events,
        vec![
            ("wall.deleted", 1, line_of(&text, "type = \"wall.deleted\"") - 1),
            ("scene.created", 2, line_of(&text, "type = \"scene.created\"") - 1)
        ]
    );
    // Without any [[event]], there are none.
    assert!(parse(BASE).is_ok_and(|c| c.events.is_empty()));
}

/// Each (text, line marker, expected problem check) is one mistake in the ID keys.
#[test]
fn id_key_errors_name_their_line() {
    type Check = fn(&Problem) -> bool;
    let route = |body: &str| format!("{BASE}\n[[route]]\n{body}\n");
    let mutate =
        |extra: &str| route(&format!("method = \"PUT\"\npath = \"/w/{{id}}/x/{{wid}}\"\nkind = \"mutate\"\nid_block = 2\n{extra}"));
    let event = |body: &str| format!("{BASE}\n[[event]]\n{body}\n");
    let cases: Vec<(String, &str, Check)> = vec![
        (
            mutate("path_ids = { id = \"walls\", wall = \"walls\" }"),
            "path_ids",
            |p| matches!(p, Problem::IdParamNotInPath { name, path } if name == "wall" && path == "/w/{id}/x/{wid}"),
        ),
        (route("method = \"GET\"\npath = \"/f/{*rest}\"\nkind = \"read\"\npath_ids = { rest = \"files\" }"), "path_ids", |p| {
            matches!(p, Problem::IdParamNotInPath { .. })
        }),
        (mutate("path_ids = { id = \"2walls\" }"), "path_ids", |p| matches!(p, Problem::BadIdTable { value } if value == "2walls")),
        (mutate("answer_ids = { \"/id\" = \"scene-items\" }"), "answer_ids", |p| matches!(p, Problem::BadIdTable { .. })),
        (mutate("creates = [{ table = \"\", at = \"/id\" }]"), "creates", |p| matches!(p, Problem::BadIdTable { .. })),
        (
            mutate("body_ids = { \"source_id\" = \"sources\" }"),
            "body_ids",
            |p| matches!(p, Problem::BadIdPointer { key: "body_ids", value, reason } if value == "source_id" && reason.contains("starts with '/'")),
        ),
        (
            mutate("answer_ids = { \"/a~2b\" = \"walls\" }"),
            "answer_ids",
            |p| matches!(p, Problem::BadIdPointer { key: "answer_ids", reason, .. } if reason.contains("~0")),
        ),
        (mutate("body_ids = { \"\" = \"walls\" }"), "body_ids", |p| *p == Problem::WholeBodyIdPlace { key: "body_ids" }),
        (mutate("creates = [{ table = \"walls\", at = \"\" }]"), "creates", |p| *p == Problem::WholeBodyIdPlace { key: "creates" }),
        (route("method = \"GET\"\npath = \"/\"\nkind = \"static\"\nanswer_ids = { \"/id\" = \"walls\" }"), "answer_ids", |p| {
            *p == Problem::IdKeyForbidden { key: "answer_ids", kind: "static" }
        }),
        (route("method = \"GET\"\npath = \"/ev/{id}\"\nkind = \"events\"\npath_ids = { id = \"walls\" }"), "path_ids", |p| {
            *p == Problem::IdKeyForbidden { key: "path_ids", kind: "events" }
        }),
        (route("method = \"POST\"\npath = \"/login2\"\nkind = \"login\"\nbody_ids = { \"/id\" = \"users\" }"), "body_ids", |p| {
            *p == Problem::IdKeyForbidden { key: "body_ids", kind: "login" }
        }),
        (route("method = \"GET\"\npath = \"/w\"\nkind = \"read\"\ncreates = [{ table = \"walls\", at = \"/id\" }]"), "creates", |p| {
            *p == Problem::IdKeyNeedsMutate { key: "creates", kind: "read" }
        }),
        (route("method = \"GET\"\npath = \"/w/{id}\"\nkind = \"read\"\npath_ids = { id = \"walls\" }\nforgets = \"id\""), "forgets", |p| {
            *p == Problem::IdKeyNeedsMutate { key: "forgets", kind: "read" }
        }),
        (
            route("method = \"POST\"\npath = \"/w\"\nkind = \"mutate\"\nid_block = 0\ncreates = [{ table = \"walls\", at = \"/id\" }]"),
            "creates",
            |p| matches!(p, Problem::CreatesWithoutBlock { method, path } if method == "POST" && path == "/w"),
        ),
        (mutate("creates = []"), "creates", |p| *p == Problem::EmptyCreates),
        (
            mutate("creates = [{ table = \"walls\", at = \"/id\" }]\nanswer_ids = { \"/name\" = \"names\", \"/id\" = \"walls\" }"),
            "answer_ids",
            |p| matches!(p, Problem::IdPlaceTwice { at } if at == "/id"),
        ),
        (
            mutate("creates = [\n  { table = \"walls\", at = \"/id\" },\n  { table = \"screens\", at = \"/id\" },\n]"),
            "table = \"screens\"",
            |p| matches!(p, Problem::IdPlaceTwice { .. }),
        ),
        (
            mutate("creates = [\n  { table = \"walls\", at = \"/id\" },\n  { table = \"screens\", at = \"screens\" },\n]"),
            "at = \"screens\"",
            |p| matches!(p, Problem::BadIdPointer { key: "creates", .. }),
        ),
        (
            mutate("path_ids = { id = \"walls\" }\nforgets = \"wid\""),
            "forgets",
            |p| matches!(p, Problem::ForgetsNotAnIdParam { name } if name == "wid"),
        ),
        (mutate("forgets = \"id\""), "forgets", |p| matches!(p, Problem::ForgetsNotAnIdParam { .. })),
        (event("type = \"\"\nids = { \"/id\" = \"walls\" }"), "type = \"\"", |p| *p == Problem::EmptyEventType),
        (
            event("type = \"wall.created\"\nids = {}"),
            "ids = {}",
            |p| matches!(p, Problem::EmptyEventIds { event_type } if event_type == "wall.created"),
        ),
        (event("type = \"wall.created\"\nids = { \"/id\" = \"walls\", \"screens\" = \"screens\" }"), "ids = ", |p| {
            matches!(p, Problem::BadIdPointer { key: "ids", .. })
        }),
        (event("type = \"wall.created\"\nids = { \"/id\" = \"wall s\" }"), "ids = ", |p| matches!(p, Problem::BadIdTable { .. })),
        (event("type = \"wall.created\"\nids = { \"\" = \"walls\" }"), "ids = ", |p| *p == Problem::WholeBodyIdPlace { key: "ids" }),
    ];
    for (text, marker, check) in cases {
        let e = error(&text);
        assert_at(&e, line_of(&text, marker));
        assert!(e.problem().is_some_and(check), "unexpected problem {:?} for:\n{text}", e.problem());
    }
}

#[test]
fn an_event_type_is_declared_once_and_needs_its_ids() {
    let events =
        "\n[[event]]\ntype = \"w.c\"\nids = { \"/id\" = \"walls\" }\n\n[[event]]\ntype = \"w.c\" # again\nids = { \"/id\" = \"walls\" }\n";
    let text = format!("{BASE}{events}");
    let e = error(&text);
    assert_at(&e, line_of(&text, "# again"));
    let first_line = line_of(&text, "\"w.c\"\nids") - 1;
    assert_eq!(e.problem(), Some(&Problem::DuplicateEvent { event_type: "w.c".into(), first_line }));

    // `ids` and `type` are required, like a route's `path`; a misspelled key is refused.
    let text = format!("{BASE}\n[[event]]\ntype = \"w.c\"\n");
    let e = error(&text);
    assert!(matches!(e, ConfigError::Toml { .. }));
    assert!(e.to_string().contains("missing field `ids`") && e.fix().contains("`ids = …`"), "{e}");
    let text = format!("{BASE}\n[[event]]\nids = {{ \"/id\" = \"walls\" }}\n");
    assert!(error(&text).to_string().contains("missing field `type`"));
    let text = format!("{BASE}\n[[route]]\nmethod = \"POST\"\npath = \"/w\"\nkind = \"mutate\"\nid_block = 1\ncreates = [{{ tabel = \"walls\", at = \"/id\" }}]\n");
    let e = error(&text);
    assert_at(&e, line_of(&text, "creates"));
    assert!(e.to_string().contains("unknown field `tabel`"), "{e}");
}

#[test]
fn fills_name_a_body_field_and_a_value_the_gateway_has() {
    let rule = |fills: &str, kind: &str| {
        let block = if kind == "mutate" { "id_block = 0\n" } else { "" };
        format!("{BASE}\n[[route]]\nmethod = \"PUT\"\npath = \"/api/v1/cascade/superior\"\nkind = \"{kind}\"\n{block}fills = {fills}\n")
    };
    let c = match parse(&rule(r#"{ "/url" = "egress_url", "/password" = "egress_password" }"#, "mutate")) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let i = c.classify("PUT", "/api/v1/cascade/superior").rule_index.expect("the rule");
    let fills = &c.routes.rules()[i].fills;
    assert_eq!(fills.len(), 2);
    assert!(fills.contains(&("/url".to_string(), pairgate::config::Fill::EgressUrl)), "{fills:?}");
    for (fills, kind, says) in [
        (r#"{ "/url" = "superior_url" }"#, "mutate", "no such value"),
        (r#"{ "url" = "egress_url" }"#, "mutate", "not a JSON pointer"),
        (r#"{ "" = "egress_url" }"#, "mutate", "the whole body"),
        (r#"{ "/url" = "egress_url" }"#, "read", "sends no body"),
    ] {
        let text = rule(fills, kind);
        let e = error(&text);
        let shown = assert_at(&e, line_of(&text, "fills ="));
        assert!(shown.contains(says) && shown.contains("egress_url, egress_username"), "{fills}: {shown}");
    }
}

#[test]
fn the_shipped_cascade_rules_point_the_chassis_at_the_egress_and_send_the_pair_upward() {
    let c = shipped();
    let fills = |m: &str, p: &str| c.routes.rules()[c.classify(m, p).rule_index.expect("a rule")].fills.clone();
    let toward: Vec<_> = fills("PUT", "/api/v1/cascade/superior").into_iter().map(|(at, f)| (at, f.toward_chassis())).collect();
    assert_eq!(toward.len(), 3, "url, username and password: {toward:?}");
    assert!(toward.iter().all(|(_, t)| *t), "{toward:?}");
    let upward = fills("POST", "/api/v1/cascade/subordinates");
    assert!(upward.iter().all(|(_, f)| !f.toward_chassis()) && upward.len() == 4, "{upward:?}");
}

#[test]
fn conflict_keys_name_path_segments_of_a_mutate_rule() {
    let rule = |conflicts: &str, kind: &str| {
        let block = if kind == "mutate" { "id_block = 0\n" } else { "" };
        format!("{BASE}\n[[route]]\nmethod = \"PUT\"\npath = \"/api/v1/walls/{{id}}/windows/{{wid}}\"\nkind = \"{kind}\"\n{block}conflicts = {conflicts}\n")
    };
    let c = match parse(&rule(r#"["wall {id}", "window {wid} of {id}"]"#, "mutate")) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let i = c.classify("PUT", "/api/v1/walls/7/windows/9").rule_index.expect("the rule");
    let keys: Vec<&str> = c.routes.rules()[i].conflicts.iter().flatten().map(|k| k.as_str()).collect();
    assert_eq!(keys, ["wall {id}", "window {wid} of {id}"]);
    for (conflicts, kind, says) in [
        (r#"["wall {wall}"]"#, "mutate", "{wall} is no {param} segment"),
        (r#"["wall {id"]"#, "mutate", "is not closed"),
        (r#"["wall id}"]"#, "mutate", "closes nothing"),
        (r#"[" "]"#, "mutate", "cannot be empty"),
        (r#"["wall {id}"]"#, "read", "only mutate routes"),
    ] {
        let text = rule(conflicts, kind);
        let e = error(&text);
        let shown = assert_at(&e, line_of(&text, "conflicts ="));
        assert!(
            shown.contains(says) && shown.contains("conflicts = [\"wall {id}\"]") || kind == "read" && shown.contains(says),
            "{conflicts}: {shown}"
        );
    }
}

#[test]
fn the_shipped_rules_let_windows_of_different_walls_and_routes_of_different_outputs_go_together() {
    use pairgate::chassis::conflicts::Conflicts;
    use pairgate::journal::{BodyFormat, Entry};
    let c = shipped();
    let entry = |method: &str, path: &str, body: &str| Entry {
        seq: 1,
        method: method.into(),
        path_and_query: path.into(),
        headers: Vec::new(),
        body: bytes::Bytes::from(body.to_string()),
        body_format: BodyFormat::Plain,
        id_block: None,
        account: "admin".into(),
        client_key: None,
        epoch: None,
    };
    let of = |m: &str, p: &str, b: &str| Conflicts::of(&c.routes, &entry(m, p, b), || Some(b.as_bytes()));
    let win7 = of("PUT", "/api/v1/walls/7/windows/70", r#"{"x":1}"#);
    assert!(!win7.with(&of("PUT", "/api/v1/walls/8/windows/80", r#"{"x":1}"#)));
    assert!(!win7.with(&of("PUT", "/api/v1/matrix/3", r#"{"input":1}"#)));
    assert!(win7.with(&of("POST", "/api/v1/walls/7/windows", r#"{"source_id":1,"x":0,"y":0,"w":1,"h":1}"#)));
    // Users, the whole system, wall layouts: everything.
    for (m, p) in [
        ("POST", "/api/v1/users"),
        ("PUT", "/api/v1/system/import"),
        ("POST", "/api/v1/walls"),
        ("DELETE", "/api/v1/walls/7"),
        ("POST", "/api/v1/scenes/3/recall"),
    ] {
        assert_eq!(of(m, p, "{}"), Conflicts::All, "{m} {p}");
    }
}
