//! Certificates end to end (issue 12): the real `pairgate certs init` and
//! `pairgate certs show`, and a real gateway in front of two real chassis
//! that serve certificates signed by the CA `certs init` made, trusted
//! through `ca_cert = DIR/ca.pem`; a gateway certificate 10 days from its
//! expiry is warned about by `certs show`, in the gateway's log, on
//! `/_pairgate/status` and in `/metrics`, and a reload with a renewed one
//! clears it. Fingerprints are recomputed here from the PEM files (base64 and
//! ring's SHA-256), not taken from the gateway's code.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine;
use pairgate_suite::api::client_trusting;
use pairgate_suite::bins::bin_path;
use pairgate_suite::chassis_proc::{SimOpts, SimProcess};
use pairgate_suite::gateway_config::GatewayConfig;
use pairgate_suite::gateway_proc::GatewayProcess;
use pairgate_suite::pair::{create_service_account, ADMIN_TOKEN, JWT_SECRET, SERVICE_PASSWORDS, SERVICE_USER};
use pairgate_suite::process::free_port;
use serde_json::Value;

fn pairgate(args: &[&str]) -> Output {
    Command::new(bin_path("pairgate")).args(args).output().expect("run pairgate")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// `pairgate certs init --dir DIR --san localhost --san 127.0.0.1` (chassis a
/// and b by default), asserted to succeed; its stdout.
fn certs_init(dir: &Path) -> String {
    let dir = dir.to_str().expect("a UTF-8 path");
    let out = pairgate(&["certs", "init", "--dir", dir, "--san", "localhost", "--san", "127.0.0.1"]);
    assert_eq!(out.status.code(), Some(0), "certs init: {}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// `pairgate certs show --config FILE`, asserted to exit 0; its stdout.
fn certs_show(config: &Path) -> String {
    let config = config.to_str().expect("a UTF-8 path");
    let out = pairgate(&["certs", "show", "--config", config]);
    assert_eq!(out.status.code(), Some(0), "certs show: {}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// The DER of every certificate in a PEM file, decoded here.
fn ders(path: &Path) -> Vec<Vec<u8>> {
    let pem = std::fs::read_to_string(path).expect("read the PEM file");
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        match (line, body.as_mut()) {
            ("-----BEGIN CERTIFICATE-----", None) => body = Some(String::new()),
            ("-----END CERTIFICATE-----", Some(b)) => {
                out.push(base64::engine::general_purpose::STANDARD.decode(b.as_bytes()).expect("base64"));
                body = None;
            }
            (l, Some(b)) => b.push_str(l),
            _ => {}
        }
    }
    out
}

/// SHA-256 of `der` as openssl prints it: `AB:CD:…`.
fn sha256(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    d.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Every file in `dir` with its contents and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    std::fs::read_dir(dir)
        .expect("read the directory")
        .map(|e| {
            let p = e.expect("entry").path();
            let modified = std::fs::metadata(&p).and_then(|m| m.modified()).expect("mtime");
            (p.clone(), (std::fs::read(&p).expect("read"), modified))
        })
        .collect()
}

/// A self-signed certificate for 127.0.0.1 and localhost that expires
/// `days` days from now (made here with rcgen): `dir/name.pem`, `.key`.
fn cert_expiring_in(dir: &Path, name: &str, days: i64) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, "soon expired");
    let now = rcgen::date_time_ymd(1970, 1, 1)
        + Duration::from_secs(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs());
    params.not_before = now - Duration::from_secs(86_400);
    params.not_after = now + Duration::from_secs(u64::try_from(days).expect("days") * 86_400);
    let cert = params.self_signed(&key).expect("cert");
    let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&c, cert.pem()).expect("write cert");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    (c, k)
}

/// The `certificates` entries of a status document with this role.
fn with_role<'a>(status: &'a Value, role: &str) -> Vec<&'a Value> {
    status["certificates"].as_array().map(|c| c.iter().filter(|c| c["role"] == role).collect()).unwrap_or_default()
}

/// `GET path` with the admin token, trusting `ca`: status and body.
async fn admin_get(base: &str, ca: &Path, path: &str) -> (u16, String) {
    let r = client_trusting(Some(ca)).get(format!("{base}{path}")).bearer_auth(ADMIN_TOKEN).send().await.expect("GET");
    (r.status().as_u16(), r.text().await.expect("body"))
}

#[test]
fn certs_init_makes_a_ca_and_what_it_signs_show_lists_them_and_a_second_init_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("certs");
    let said = certs_init(&dir);
    let abs = std::fs::canonicalize(&dir).expect("the directory exists");
    for name in ["ca", "gateway", "chassis-a", "chassis-b"] {
        let (pem, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        assert!(!ders(&pem).is_empty(), "{} holds a certificate", pem.display());
        let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
        assert!(said.contains(&pem.display().to_string()), "certs init names {}: {said}", pem.display());
    }
    assert!(!said.contains("PRIVATE KEY"), "a key was printed: {said}");
    assert!(said.contains(&format!("tls_cert = \"{}\"", abs.join("gateway.pem").display())), "{said}");
    assert!(said.contains(&format!("tls_key = \"{}\"", abs.join("gateway.key").display())), "{said}");
    assert_eq!(said.matches(&format!("ca_cert = \"{}\"", abs.join("ca.pem").display())).count(), 2, "{said}");
    // Each certificate file is the chain: its own certificate, then the CA's.
    let ca = ders(&dir.join("ca.pem"));
    assert_eq!(ca.len(), 1);
    let gateway = ders(&dir.join("gateway.pem"));
    assert_eq!(gateway.len(), 2);
    assert_eq!(gateway[1], ca[0], "the gateway's file ends with the CA");

    // A configuration naming them: the gateway's chain, chassis a trusting
    // the CA, chassis b its own file (a chain with the CA too).
    let config = GatewayConfig {
        dir: tmp.path(),
        port: 1,
        cert: &dir.join("gateway.pem"),
        key: &dir.join("gateway.key"),
        chassis: [(2, &dir.join("ca.pem")), (3, &dir.join("chassis-b.pem"))],
        username: SERVICE_USER,
        passwords: SERVICE_PASSWORDS,
        admin_token: ADMIN_TOKEN,
        jwt_secret: JWT_SECRET,
    }
    .write()
    .expect("gateway.toml");
    let shown = certs_show(&config);
    assert!(shown.contains(&format!("gateway  {}  (certificate 1 in the file)", dir.join("gateway.pem").display())), "{shown}");
    assert!(shown.contains(&format!("chassis a  {}", dir.join("ca.pem").display())), "{shown}");
    assert!(shown.contains(&format!("chassis b  {}", dir.join("chassis-b.pem").display())), "{shown}");
    assert!(shown.contains("subject    CN=pairgate gateway\n  SANs       localhost, 127.0.0.1\n"), "{shown}");
    assert!(shown.contains("subject    CN=pairgate chassis b\n  SANs       localhost, 127.0.0.1\n"), "{shown}");
    assert!(shown.contains("subject    CN=pairgate local CA\n  SANs       (none)\n"), "{shown}");
    for file in ["gateway.pem", "ca.pem", "chassis-b.pem"] {
        for der in ders(&dir.join(file)) {
            assert!(shown.contains(&format!("SHA-256    {}\n", sha256(&der))), "{file}'s fingerprint {} in {shown}", sha256(&der));
        }
    }
    // Two certificates in each of gateway.pem and chassis-b.pem, one in ca.pem.
    assert_eq!(shown.matches("  SHA-256    ").count(), 5, "{shown}");
    assert!(shown.contains("(364 days left)") || shown.contains("(365 days left)"), "{shown}");
    assert!(!shown.contains("WARNING"), "{shown}");
    assert!(shown.contains("5 certificates, 0 expiring"), "{shown}");

    // A second init into the same directory refuses, naming the file, and
    // writes nothing (also with another chassis whose files do not exist).
    let before = snapshot(&dir);
    let d = dir.to_str().expect("UTF-8");
    for extra in [&[][..], &["--chassis", "c"][..]] {
        let mut args = vec!["certs", "init", "--dir", d, "--san", "localhost"];
        args.extend_from_slice(extra);
        let out = pairgate(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("{} exists already", dir.join("ca.pem").display())), "{err}");
        assert!(err.contains("another --dir"), "the fix: {err}");
        assert_eq!(snapshot(&dir), before, "a refused init changed the directory");
    }
    // A usage error: no --san.
    let out = pairgate(&["certs", "init", "--dir", d]);
    assert_eq!(out.status.code(), Some(2));
    // A bad SAN: exit 2, nothing made.
    let other = tmp.path().join("other");
    let out = pairgate(&["certs", "init", "--dir", other.to_str().expect("UTF-8"), "--san", "127.0.0.256"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("127.0.0.256"), "{}", text(&out.stderr));
    assert!(!other.exists());
}

#[tokio::test]
async fn a_gateway_reaches_chassis_the_ca_signed_and_warns_of_its_own_certificate_10_days_from_expiry() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let certs = d.join("certs");
    certs_init(&certs);
    let ca = certs.join("ca.pem");
    let (soon, soon_key) = cert_expiring_in(d, "soon", 10);

    // Both chassis serve what certs init made for them; the gateway trusts
    // the CA for both.
    let chassis = |name: &str| (certs.join(format!("chassis-{name}.pem")), certs.join(format!("chassis-{name}.key")));
    let a = SimProcess::start(SimOpts { serial: "A".into(), tls: Some(chassis("a")), ..SimOpts::default() }).await;
    let b = SimProcess::start(SimOpts { serial: "B".into(), tls: Some(chassis("b")), ..SimOpts::default() }).await;
    create_service_account(&a.base, &ca, SERVICE_PASSWORDS[0]).await;
    create_service_account(&b.base, &ca, SERVICE_PASSWORDS[1]).await;
    let port = free_port().expect("port");
    let config = GatewayConfig {
        dir: d,
        port,
        cert: &soon,
        key: &soon_key,
        chassis: [(a.port, &ca), (b.port, &ca)],
        username: SERVICE_USER,
        passwords: SERVICE_PASSWORDS,
        admin_token: ADMIN_TOKEN,
        jwt_secret: JWT_SECRET,
    }
    .write()
    .expect("gateway.toml");

    // certs show: the warning, for the gateway's certificate only.
    let shown = certs_show(&config);
    assert!(shown.contains(&format!("gateway  {}", soon.display())), "{shown}");
    // Not-after is 10 days from when it was made, to the second: 10 whole
    // days left within that second, 9 after it.
    assert!(shown.contains("  WARNING: expires in 9 days") || shown.contains("  WARNING: expires in 10 days"), "{shown}");
    assert_eq!(shown.matches("WARNING").count(), 1, "{shown}");
    assert!(shown.contains("pairgate reload"), "the fix: {shown}");
    assert!(shown.contains("3 certificates, 1 expiring"), "{shown}");

    let log = d.join("gateway.log");
    let mut gw = GatewayProcess::new(
        bin_path("pairgate"),
        config.clone(),
        port,
        true,
        soon.clone(),
        ADMIN_TOKEN,
        Some(("pairgate=info".into(), log.clone())),
    )
    .expect("gateway");
    gw.start().expect("start the gateway");
    // Reaching in_sync means both CA-signed chassis certificates were accepted.
    let status = gw.wait_in_sync(Duration::from_secs(30)).await;

    let soon_sha = sha256(&ders(&soon)[0]);
    let mine = with_role(&status, "gateway");
    assert_eq!(mine.len(), 1, "{status}");
    let g = mine[0];
    assert_eq!(g["expiring"], true, "{g}");
    assert!(g["days_left"] == 9 || g["days_left"] == 10, "{g}");
    assert_eq!(g["sha256"], soon_sha.as_str(), "{g}");
    assert_eq!(g["subject"], "CN=soon expired", "{g}");
    assert_eq!(g["sans"], serde_json::json!(["127.0.0.1", "localhost"]), "{g}");
    assert_eq!(g["chassis"], Value::Null, "{g}");
    assert_eq!(g["path"], soon.display().to_string(), "{g}");
    assert!(g["not_after"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 20), "{g}");
    for name in ["a", "b"] {
        let theirs = with_role(&status, &format!("chassis {name}"));
        assert_eq!(theirs.len(), 1, "{status}");
        assert_eq!(theirs[0]["chassis"], name);
        assert_eq!(theirs[0]["subject"], "CN=pairgate local CA");
        assert_eq!(theirs[0]["sha256"], sha256(&ders(&ca)[0]).as_str());
        assert_eq!(theirs[0]["expiring"], false);
    }
    assert_eq!(status["certificates_expiring"], 1, "{status}");
    assert_eq!(status["certificate_problems"], serde_json::json!([]), "{status}");

    // /metrics: the same.
    let (code, metrics) = admin_get(&gw.base, &soon, "/metrics").await;
    assert_eq!(code, 200, "{metrics}");
    assert!(metrics.contains("pairgate_certificates_expiring 1\n"), "{metrics}");
    let series = format!("pairgate_certificate_expiry_seconds{{role=\"gateway\",path=\"{}\"}} ", soon.display());
    let left: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {metrics}"));
    assert!((9 * 86_400..=10 * 86_400).contains(&left), "{left} s left");
    assert!(metrics.contains("pairgate_certificate_expiry_seconds{role=\"chassis a\","), "{metrics}");
    // And it is Prometheus text to a parser that is not ours.
    let doc = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_string()))).expect("the metrics parse");
    let parsed: Vec<_> = doc.samples.iter().filter(|s| s.metric == "pairgate_certificate_expiry_seconds").collect();
    assert_eq!(parsed.len(), 3, "one per file: {parsed:?}");
    let chassis_a = parsed.iter().find(|s| s.labels.get("role") == Some("chassis a")).expect("chassis a's");
    assert_eq!(chassis_a.labels.get("path"), Some(ca.display().to_string().as_str()));
    assert!(matches!(chassis_a.value, prometheus_parse::Value::Gauge(v) if v > 300.0 * 86_400.0), "{chassis_a:?}");

    // The log: one warning at start, naming the file and the fix.
    let deadline = Instant::now() + Duration::from_secs(10);
    let warned = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let says = |l: &str| l.contains("certificate expires in 9 days") || l.contains("certificate expires in 10 days");
        let line = text.lines().find(|l| l.contains("WARN") && says(l)).map(str::to_string);
        if let Some(line) = line {
            break line;
        }
        assert!(Instant::now() < deadline, "no certificate warning in the log within 10 s: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(warned.contains(&soon.display().to_string()), "{warned}");
    assert!(warned.contains("pairgate reload"), "{warned}");
    assert!(warned.contains("role=gateway"), "{warned}");

    // Renewed: the files replaced by what certs init made, then a reload
    // (asked over a connection that still trusts the old certificate).
    let old_trust = client_trusting(Some(&soon));
    std::fs::copy(certs.join("gateway.pem"), &soon).expect("copy the new certificate");
    std::fs::copy(certs.join("gateway.key"), &soon_key).expect("copy the new key");
    let r = old_trust.post(format!("{}/_pairgate/reload", gw.base)).bearer_auth(ADMIN_TOKEN).send().await.expect("POST reload");
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let (code, body) = admin_get(&gw.base, &ca, "/_pairgate/status").await;
    assert_eq!(code, 200, "{body}");
    let status: Value = serde_json::from_str(&body).expect("JSON");
    let now_mine = with_role(&status, "gateway");
    assert_eq!(now_mine.len(), 2, "the new file is the chain: {status}");
    assert_eq!(now_mine[0]["sha256"], sha256(&ders(&certs.join("gateway.pem"))[0]).as_str(), "{status}");
    assert_eq!(now_mine[0]["subject"], "CN=pairgate gateway");
    assert!(now_mine.iter().all(|c| c["expiring"] == false), "{status}");
    assert_eq!(status["certificates_expiring"], 0, "{status}");
    let (_, metrics) = admin_get(&gw.base, &ca, "/metrics").await;
    assert!(metrics.contains("pairgate_certificates_expiring 0\n"), "{metrics}");

    // A clean stop: every task (the daily certificate watch too) ends.
    assert!(gw.stop(Duration::from_secs(15)), "the gateway did not stop on SIGTERM");
}
