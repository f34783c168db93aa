//! `deploy/` kept true: the systemd unit, the appliance configuration and the
//! Grafana dashboard, each checked against the code and the real binary.
//!
//! - `deploy/pairgate.service` (read with the small INI reader below): the
//!   hardening the README promises; the ports, descriptor limit and stop
//!   timeout matching `deploy/gateway.toml` and the gateway's own drain;
//!   `systemd-analyze verify` where it is installed;
//! - `deploy/gateway.toml`: passes `pairgate check-config`, its state directory is
//!   the unit's `StateDirectory`, every file it names is under the unit's
//!   `ConfigurationDirectory`, and its route rules are the shipped file's;
//! - end to end: a real gateway run with the unit's `ExecStart` arguments
//!   (only the configuration path differs), reloaded with the unit's
//!   `ExecReload` command and stopped with its `KillSignal` within its
//!   `TimeoutStopSec`; and every metric a panel of
//!   `deploy/grafana-dashboard.json` asks for is in that gateway's `/metrics`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pairgate_suite::api::client_trusting;
use pairgate_suite::bins::{bin_path, repo_root};
use pairgate_suite::pair::Pair;
use serde_json::{json, Value};

fn deploy(file: &str) -> PathBuf {
    repo_root().join("deploy").join(file)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------
// A systemd unit file, as systemd reads it (systemd.syntax(7)): `[Section]`
// headers, `Key=value` lines, `#` and `;` comments, a trailing `\` joining the
// next line. A key may be given more than once: list settings accumulate
// and an empty value resets them; for the others the last one counts.

struct Unit {
    /// Section → its assignments in file order.
    sections: BTreeMap<String, Vec<(String, String)>>,
}

impl Unit {
    fn parse(text: &str) -> Unit {
        let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut current: Option<String> = None;
        let mut pending = String::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with(';')) {
                continue;
            }
            if let Some(joined) = line.strip_suffix('\\') {
                pending.push_str(joined);
                pending.push(' ');
                continue;
            }
            let line = std::mem::take(&mut pending) + line;
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = Some(name.to_string());
                sections.entry(name.to_string()).or_default();
                continue;
            }
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("line {}: not `Key=value`: {raw}", n + 1));
            let section = current.clone().unwrap_or_else(|| panic!("line {}: an assignment before any [Section]", n + 1));
            sections.entry(section).or_default().push((key.trim().to_string(), value.trim().to_string()));
        }
        assert!(pending.is_empty(), "the file ends in a continuation line");
        Unit { sections }
    }

    /// Every value given to `key` in `section`, in order.
    fn all(&self, section: &str, key: &str) -> Vec<&str> {
        self.sections.get(section).into_iter().flatten().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// The value that counts for a single-valued setting: the last one.
    fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.all(section, key).last().copied()
    }

    /// `[Service]` `key`, which must be set.
    fn service(&self, key: &str) -> &str {
        self.get("Service", key).unwrap_or_else(|| panic!("deploy/pairgate.service: [Service] has no {key}="))
    }

    /// A list setting as systemd accumulates it: whitespace-separated items,
    /// an empty assignment clearing what came before.
    fn list(&self, key: &str) -> Vec<String> {
        let mut items = Vec::new();
        for v in self.all("Service", key) {
            if v.is_empty() {
                items.clear();
            }
            items.extend(v.split_whitespace().map(str::to_string));
        }
        items
    }
}

fn unit() -> Unit {
    Unit::parse(&read(&deploy("pairgate.service")))
}

/// A systemd time span (systemd.time(7)) as the unit writes them: `45s`,
/// `90`, `1min 30s`, `2min`, `500ms`.
fn timespan(text: &str) -> Duration {
    let mut total = Duration::ZERO;
    for part in text.split_whitespace() {
        let split = part.find(|c: char| !c.is_ascii_digit()).unwrap_or(part.len());
        let (n, unit) = part.split_at(split);
        let n: u64 = n.parse().unwrap_or_else(|_| panic!("time span {text:?}: {part:?} has no number"));
        total += match unit {
            "" | "s" | "sec" => Duration::from_secs(n),
            "ms" | "msec" => Duration::from_millis(n),
            "m" | "min" => Duration::from_secs(n * 60),
            "h" | "hr" => Duration::from_secs(n * 3600),
            other => panic!("time span {text:?}: unit {other:?} not read by this test"),
        };
    }
    total
}

#[test]
fn the_unit_reader_reads_what_systemd_reads() {
    let u = Unit::parse("# comment\n[Service]\nA=1\n; comment\nA=2\nL=x y\nL=\nL=z \\\n  w\nE=\n[Install]\nWantedBy=multi-user.target\n");
    assert_eq!(u.get("Service", "A"), Some("2"));
    assert_eq!(u.list("L"), ["z", "w"]);
    assert_eq!(u.get("Service", "E"), Some(""));
    assert_eq!(u.get("Service", "WantedBy"), None);
    assert_eq!(u.get("Install", "WantedBy"), Some("multi-user.target"));
    assert_eq!(timespan("1min 30s"), Duration::from_secs(90));
    assert_eq!(timespan("45"), Duration::from_secs(45));
}

/// The hardening the README promises, value by value.
#[test]
fn the_unit_is_hardened() {
    let u = unit();
    let yes = [
        "ProtectHome",
        "NoNewPrivileges",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "LockPersonality",
        "MemoryDenyWriteExecute",
    ];
    for key in yes {
        assert_eq!(u.service(key), "yes", "{key}");
    }
    assert_eq!(u.service("ProtectSystem"), "strict");
    assert_eq!(u.list("RestrictAddressFamilies").into_iter().collect::<BTreeSet<_>>(), set(["AF_INET", "AF_INET6", "AF_UNIX"]));
    assert!(u.list("SystemCallFilter").iter().any(|f| f == "@system-service"), "SystemCallFilter has @system-service");
    assert!(!u.list("SystemCallFilter").iter().any(|f| f.starts_with('~')), "the gateway calls setrlimit (@resources): no deny list");
    assert_eq!(u.service("StateDirectory"), "pairgate");
    assert_eq!(u.service("StateDirectoryMode"), "0700");
    assert_eq!(u.service("ConfigurationDirectory"), "pairgate");
    assert_eq!(u.service("Restart"), "on-failure");
    // Exit status 2 is a wrong configuration: restarting cannot help (main.rs).
    assert_eq!(u.service("RestartPreventExitStatus"), "2");
    assert_eq!(u.service("KillSignal"), "SIGTERM");
    assert_eq!(u.service("ExecReload"), "/bin/kill -HUP $MAINPID");
    // Its own account, never root's.
    let dynamic = u.get("Service", "DynamicUser") == Some("yes");
    let user = u.get("Service", "User").unwrap_or("");
    assert!(dynamic || (!user.is_empty() && user != "root" && user != "0"), "User={user:?}, DynamicUser={dynamic}");
    assert_eq!(u.get("Install", "WantedBy"), Some("multi-user.target"));
}

/// What `deploy/gateway.toml` says, as the gateway reads it.
fn deploy_config() -> toml::Table {
    read(&deploy("gateway.toml")).parse().unwrap_or_else(|e| panic!("deploy/gateway.toml: {e}"))
}

/// Capabilities, descriptors and the stop timeout follow from the
/// configuration and from the gateway's own shutdown.
#[test]
fn the_unit_fits_the_configuration_and_the_shutdown() {
    let u = unit();
    let cfg = deploy_config();
    let listen = cfg["listen"].as_table().expect("[listen]");
    let addr: std::net::SocketAddr = listen["addr"].as_str().and_then(|a| a.parse().ok()).expect("[listen] addr");
    let caps = (u.service("CapabilityBoundingSet"), u.get("Service", "AmbientCapabilities").unwrap_or(""));
    if addr.port() < 1024 {
        assert_eq!(caps, ("CAP_NET_BIND_SERVICE", "CAP_NET_BIND_SERVICE"), "port {} needs exactly CAP_NET_BIND_SERVICE", addr.port());
    } else {
        assert_eq!(caps, ("", ""), "port {} needs no capability: an empty bounding set, none given", addr.port());
    }

    // serve.rs warns below max_connections + 256 open files.
    let max_connections = listen.get("max_connections").and_then(toml::Value::as_integer).unwrap_or(4096);
    let nofile: i64 = u.service("LimitNOFILE").parse().expect("LimitNOFILE is a number");
    assert!(nofile >= max_connections + 256, "LimitNOFILE={nofile} < max_connections {max_connections} + 256");

    // A graceful stop: the front's drain, the exit verify, the tasks' stop.
    let drain = seconds_in("crates/pairgate/src/serve.rs", "FrontLimits::from_listen(&cfg.listen, Duration::from_secs(");
    let verify = seconds_in("crates/pairgate/src/gateway.rs", "const EXIT_VERIFY_LIMIT: Duration = Duration::from_secs(");
    let tasks = seconds_in("crates/pairgate/src/gateway.rs", "const TASKS_STOP_LIMIT: Duration = Duration::from_secs(");
    let stop = timespan(u.service("TimeoutStopSec"));
    let graceful = Duration::from_secs(drain + verify + tasks);
    assert!(stop > graceful, "TimeoutStopSec {stop:?} must exceed the gateway's graceful stop ({drain} + {verify} + {tasks} s)");

    // ExecStart runs the installed binary on the ConfigurationDirectory's file.
    let argv: Vec<&str> = u.service("ExecStart").split_whitespace().collect();
    assert_eq!(argv.first(), Some(&"/usr/local/bin/pairgate"));
    let config = format!("/etc/{}/gateway.toml", u.service("ConfigurationDirectory"));
    assert!(argv.windows(2).any(|w| w == ["--config", config.as_str()]), "ExecStart names --config {config}: {argv:?}");
}

/// The number of seconds in `Duration::from_secs(N)` right after `marker` in
/// a source file: what the unit's stop timeout is measured against.
fn seconds_in(file: &str, marker: &str) -> u64 {
    let text = read(&repo_root().join(file));
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("{file} no longer has `{marker}`: update tests/deploy.rs to read the new shutdown limits"));
    let rest = &text[at + marker.len()..];
    rest[..rest.find(')').expect("a closing parenthesis")].parse().unwrap_or_else(|e| panic!("{file}: `{marker}`: {e}"))
}

/// Every value of a key that names a file (`*_file`, `*_cert`, `*_key`), anywhere in `v`.
fn file_paths(v: &toml::Value, key: &str, out: &mut Vec<(String, String)>) {
    match v {
        toml::Value::String(s) if ["_file", "_cert", "_key"].iter().any(|end| key.ends_with(end)) => out.push((key.to_string(), s.clone())),
        toml::Value::Table(t) => t.iter().for_each(|(k, v)| file_paths(v, k, out)),
        toml::Value::Array(a) => a.iter().for_each(|v| file_paths(v, key, out)),
        _ => {}
    }
}

#[test]
fn the_configuration_passes_check_config_and_fits_the_units_directories() {
    let u = unit();
    let out = Command::new(bin_path("pairgate"))
        .args(["check-config", "--no-file-checks"])
        .arg(deploy("gateway.toml"))
        .output()
        .expect("run pairgate check-config");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "check-config: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    // print_summary's `  state    DIR` line: the directory the gateway will use.
    let state = stdout.lines().find_map(|l| l.trim_start().strip_prefix("state")).map(str::trim);
    assert_eq!(state, Some(format!("/var/lib/{}", u.service("StateDirectory")).as_str()), "{stdout}");

    let config_dir = format!("/etc/{}/", u.service("ConfigurationDirectory"));
    let mut paths = Vec::new();
    file_paths(&toml::Value::Table(deploy_config()), "", &mut paths);
    // The admin token, the JWT key, the gateway's certificate and key, each
    // chassis' certificate and password.
    assert!(paths.len() >= 8, "found only {paths:?}");
    for (key, path) in &paths {
        assert!(path.starts_with(&config_dir), "{key} = {path:?} is not under {config_dir} (ConfigurationDirectory)");
    }
}

/// The route rules are the repository's, word for word: the rules the tests
/// run are the rules an appliance runs.
#[test]
fn the_configurations_route_rules_are_the_shipped_ones() {
    let from_rules = |text: &str| -> String {
        let at = text.find("\n# Route rules:").expect("a `# Route rules:` comment starts the rules");
        text[at..].to_string()
    };
    let shipped = read(&repo_root().join("gateway.toml"));
    let deployed = read(&deploy("gateway.toml"));
    assert!(
        from_rules(&deployed) == from_rules(&shipped),
        "deploy/gateway.toml's rules differ from gateway.toml's from `# Route rules:` on: copy them"
    );
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: `systemd-analyze verify` skipped");
        return;
    };
    assert!(probe.status.success());
    // verify wants the binary to exist: the one just built stands in for /usr/local/bin.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("pairgate.service");
    let text = read(&deploy("pairgate.service")).replace("/usr/local/bin/pairgate", &bin_path("pairgate").display().to_string());
    std::fs::write(&copy, text).expect("write the unit's copy");
    let out = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&copy).output().expect("systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    // A setting systemd cannot parse is only a warning (exit 0), naming the file.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("pairgate.service")).collect();
    assert!(ours.is_empty(), "systemd-analyze verify warns:\n{}", ours.join("\n"));
}

// ---------------------------------------------------------------------------
// The dashboard.

/// PromQL words that are not metric names.
const PROMQL_KEYWORDS: [&str; 9] = ["bool", "and", "or", "unless", "offset", "atan2", "inf", "nan", "group"];
/// PromQL words followed by a list of label names.
const PROMQL_GROUPING: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];

/// The metric names a PromQL expression selects: identifiers that are not
/// functions, keywords or label names; label matchers (`{…}`), ranges (`[…]`),
/// strings and Grafana variables (`$name`) are skipped.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_to = |from: usize, open: char, close: char| -> usize {
        let (mut depth, mut j, mut quote) = (0, from, None);
        while j < chars.len() {
            let c = chars[j];
            match quote {
                Some(_) if c == '\\' => j += 1,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
                None if c == open => depth += 1,
                None if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return j + 1;
                    }
                }
                None => {}
            }
            j += 1;
        }
        panic!("{expr}: unbalanced {open}{close}");
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            i = skip_to(i, '{', '}');
        } else if c == '[' {
            i = skip_to(i, '[', ']');
        } else if c == '"' || c == '\'' || c == '`' {
            let end = chars[i + 1..].iter().position(|&d| d == c).unwrap_or_else(|| panic!("{expr}: unterminated string"));
            i += end + 2;
        } else if c == '$' {
            i += 1;
            while i < chars.len() && (ident(chars[i]) || chars[i] == '{' || chars[i] == '}') {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (ident(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if ident(c) {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let before_paren = chars.get(next) == Some(&'(');
            // `sum by (x) (…)`: an aggregation whose grouping comes first.
            let next_word: String = chars[next..].iter().take_while(|&&c| ident(c)).collect();
            let aggregation = next_word == "by" || next_word == "without";
            if PROMQL_GROUPING.contains(&word.as_str()) {
                if before_paren {
                    i = skip_to(next, '(', ')');
                }
            } else if !before_paren && !aggregation && !PROMQL_KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (class, le) (rate(pairgate_x_bucket{instance=~"$instance", code=~"5.."}[$__rate_interval])))"#
        ),
        ["pairgate_x_bucket"]
    );
    assert_eq!(
        names("max by (chassis) (a_metric{s=\"}\"}) * 3 + on (chassis) group_left b_metric offset 5m == bool 1"),
        ["a_metric", "b_metric"]
    );
    assert_eq!(names("sum(rate(c_total[1m])) by (job) / 1e3"), ["c_total"]);
}

fn dashboard() -> Value {
    serde_json::from_str(&read(&deploy("grafana-dashboard.json"))).expect("deploy/grafana-dashboard.json is JSON")
}

/// Every panel, those inside collapsed rows too.
fn panels(d: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    out
}

/// Every PromQL expression the dashboard runs (panels' targets, the
/// variables' queries) with where it is, for the messages.
fn expressions(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_else(|| panic!("panel {:?}: a target without expr", p["title"]));
            out.push((format!("panel {}", p["title"]), expr.to_string()));
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let query = v["query"]["query"].as_str().or(v["query"].as_str()).unwrap_or("");
        // label_values(METRIC, label): only the selector is PromQL.
        let selector = query.strip_prefix("label_values(").and_then(|q| q.rsplit_once(',')).map_or(query, |(m, _)| m);
        out.push((format!("variable {}", v["name"]), selector.to_string()));
    }
    out
}

/// Datasource and structure: one `${DS_PROMETHEUS}` input that every query
/// uses, distinct panel ids, Grafana's current schema.
#[test]
fn the_dashboard_is_importable() {
    let d = dashboard();
    let schema = d["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    let inputs = d["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS" && i["type"] == "datasource" && i["pluginId"] == "prometheus"),
        "{inputs:?}"
    );
    let ds = json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});
    let mut ids = BTreeSet::new();
    for p in panels(&d) {
        assert!(ids.insert(p["id"].as_u64().expect("a panel id")), "panel id {} twice", p["id"]);
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"], ds, "panel {}", p["title"]);
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("panel {} has no targets", p["title"]));
        assert!(!targets.is_empty(), "panel {} has no targets", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"], ds, "panel {}", p["title"]);
        }
    }
}

/// The metrics the issue asks a panel for. A panel's metric the gateway
/// does not export fails the end-to-end test below; this list makes sure
/// none of these panels is dropped. (Certificate expiry panels come with the
/// certificate metrics, on another branch.)
const PANELED: [&str; 14] = [
    "pairgate_chassis_state",
    "pairgate_chassis_primary",
    "pairgate_chassis_lag_entries",
    "pairgate_requests_total",
    "pairgate_request_duration_seconds_bucket",
    "pairgate_chassis_requests_total",
    "pairgate_journal_depth_entries",
    "pairgate_journal_disk_bytes",
    "pairgate_journal_commit_duration_seconds_bucket",
    "pairgate_failovers_total",
    "pairgate_resyncs_total",
    "pairgate_divergences_total",
    "pairgate_sessions",
    "pairgate_idempotency_hits_total",
];

#[test]
fn the_dashboard_has_a_panel_for_each_metric_the_issue_names() {
    let used: BTreeSet<String> = expressions(&dashboard()).iter().flat_map(|(_, e)| metric_names(e)).collect();
    for m in PANELED {
        assert!(used.contains(m), "no panel uses {m}; used: {used:?}");
    }
}

/// The sample names of a Prometheus text scrape (`name{labels} value`).
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l[..l.find(['{', ' ']).unwrap_or(l.len())].to_string())
        .collect()
}

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A real gateway run as the unit runs it: the unit's `ExecStart` arguments
/// (the configuration path the test's own), a read and a mutation, then the
/// dashboard's metrics against its scrape; `ExecReload`'s command reloads it
/// without stopping it; `KillSignal` stops it cleanly within `TimeoutStopSec`.
#[tokio::test]
async fn a_gateway_run_as_the_unit_runs_it_exports_every_dashboard_metric() {
    let u = unit();
    let argv: Vec<String> = u.service("ExecStart").split_whitespace().map(str::to_string).collect();
    let at = argv.iter().position(|a| a == "--config").expect("ExecStart has --config");
    let mut args: Vec<String> = argv[1..at].to_vec();
    args.extend(argv[at + 2..].iter().cloned());
    assert!(args.iter().any(|a| a == "--log-format"), "the unit logs JSON: {argv:?}");

    let mut pair = Pair::start_logged(|_| {}, "pairgate=info").await;
    assert!(pair.gw.stop(Duration::from_secs(30)), "the harness' gateway stopped on SIGTERM");
    let (_, log) = pair.gw.log.clone().expect("a log file");
    let log_before = read(&log).len();
    pair.gw.args = args.clone();
    pair.gw.start().unwrap_or_else(|e| panic!("{e}"));
    pair.gw.wait_in_sync(Duration::from_secs(20)).await;

    // A read and a mutation, so that every counter and histogram has a sample.
    let api = pair.gw.login("admin", "admin").await;
    api.get("/walls").await.ok();
    api.post("/walls", json!({"name": "deploy", "rows": 1, "cols": 1, "outputs": [1]})).await.ok();
    let client = client_trusting(Some(&pair.gw.cert));
    let r = client.get(format!("{}/metrics", pair.gw.base)).bearer_auth(&pair.gw.admin_token).send().await.expect("GET /metrics");
    assert_eq!(r.status(), 200);
    let exported = sample_names(&r.text().await.expect("the scrape"));
    assert!(exported.contains("pairgate_requests_total"), "{exported:?}");
    let mut missing = Vec::new();
    for (place, expr) in expressions(&dashboard()) {
        for m in metric_names(&expr) {
            if !exported.contains(&m) {
                missing.push(format!("{place}: {m}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the dashboard asks for metrics the gateway does not export:\n{}\nexported: {exported:?}",
        missing.join("\n")
    );

    // ExecReload, as systemd runs it: $MAINPID is the gateway's PID.
    let pid = pair.gw.pid().expect("running").to_string();
    let reload: Vec<String> = u.service("ExecReload").split_whitespace().map(|w| w.replace("$MAINPID", &pid)).collect();
    let status = Command::new(&reload[0]).args(&reload[1..]).status().expect("run ExecReload");
    assert!(status.success(), "{reload:?}: {status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let reloaded = loop {
        let text = read(&log);
        let lines: Vec<Value> = text[log_before..].lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        if let Some(line) = lines.iter().find(|l| l["message"] == "SIGHUP: configuration reloaded") {
            break line.clone();
        }
        assert!(Instant::now() < deadline, "no `SIGHUP: configuration reloaded` JSON line within 10 s:\n{}", &text[log_before..]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(pair.gw.is_running(), "the reload signal stopped the gateway: {reloaded}");
    assert!(pair.gw.status().await.is_some(), "the gateway answers after the reload");
    // Every line since the restart is JSON (--log-format json).
    let text = read(&log);
    let not_json: Vec<&str> = text[log_before..].lines().filter(|l| serde_json::from_str::<Value>(l).is_err()).collect();
    assert!(not_json.is_empty(), "lines that are not JSON: {not_json:?}");

    // KillSignal (SIGTERM, which GatewayProcess::stop sends) within TimeoutStopSec.
    assert_eq!(u.service("KillSignal"), "SIGTERM");
    let limit = timespan(u.service("TimeoutStopSec"));
    let started = Instant::now();
    assert!(pair.gw.stop(limit), "the gateway did not stop within TimeoutStopSec ({limit:?}) of SIGTERM");
    let text = read(&log);
    assert!(text[log_before..].contains("\"stopped\""), "a graceful stop logs `stopped`: {}", &text[log_before..]);
    eprintln!("stopped {:?} after SIGTERM", started.elapsed());
}
