//! Cascade through the gateway (defect 6), with real processes on loopback:
//! a lower pair behind gateway L registers at an upper pair behind gateway U
//! (or at a single chassis); the superior sees one subordinate; a window on
//! one of its sources makes each lower chassis route the cascade link once.
//! The chassis count what reached them (`GET /_sim/counters`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pairgate_suite::api::Api;
use pairgate_suite::bins::bin_path;
use pairgate_suite::certs::make_cert;
use pairgate_suite::chassis_proc::{SimOpts, SimProcess};
use pairgate_suite::gateway_config::GatewayConfig;
use pairgate_suite::gateway_proc::GatewayProcess;
use pairgate_suite::pair::{create_service_account, ADMIN_TOKEN, JWT_SECRET, SERVICE_PASSWORDS, SERVICE_USER};
use pairgate_suite::process::free_port;
use serde_json::{json, Value};

/// The account the lower gateway logs in with at the superior, and the one the
/// superior calls the lower level back with: on every chassis.
const CASCADE_USER: &str = "cascade";
const CASCADE_PW: &str = "cascade-secret-1";
/// The account the test reads `/_sim/counters` with (so that it preempts nobody's session).
const COUNTER_USER: &str = "counter";

/// A fresh folder for one test's certificates, configurations and gateway
/// logs, kept after the run (test-artifacts/ is not committed).
fn artifacts(test: &str) -> PathBuf {
    let dir = pairgate_suite::bins::repo_root().join("test-artifacts").join("cascade").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// Certificates of both gateways, made before anything starts: every chassis
/// trusts both (`--peer-ca`), since it calls its gateway's egress or a
/// subordinate's gateway.
struct Certs {
    dir: PathBuf,
    upper: (PathBuf, PathBuf),
    lower: (PathBuf, PathBuf),
    peers: PathBuf,
}

impl Certs {
    /// Add a chassis' certificate to what every chassis started later trusts.
    fn trust(&self, cert: &Path) {
        let mut pem = std::fs::read(&self.peers).expect("peers.pem");
        pem.extend(std::fs::read(cert).expect("cert"));
        std::fs::write(&self.peers, pem).expect("peers.pem");
    }

    fn make(dir: &Path) -> Certs {
        let upper = make_cert(dir, "gateway-u").unwrap_or_else(|e| panic!("{e}"));
        let lower = make_cert(dir, "gateway-l").unwrap_or_else(|e| panic!("{e}"));
        let peers = dir.join("peers.pem");
        let mut pem = std::fs::read(&upper.0).expect("upper cert");
        pem.extend(std::fs::read(&lower.0).expect("lower cert"));
        std::fs::write(&peers, pem).expect("peers.pem");
        Certs { dir: dir.to_path_buf(), upper, lower, peers }
    }
}

/// One chassis with the cascade account, trusting the gateways.
async fn chassis(certs: &Certs, name: &str, serial: &str, extra: &[&str]) -> (SimProcess, PathBuf) {
    let (cert, key) = make_cert(&certs.dir, name).unwrap_or_else(|e| panic!("{e}"));
    let port = free_port().unwrap_or_else(|e| panic!("{e}"));
    let mut args = vec!["--peer-ca".to_string(), certs.peers.display().to_string()];
    args.extend(["--public-url".to_string(), format!("https://127.0.0.1:{port}")]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let sim = SimProcess::start(SimOpts { serial: serial.into(), tls: Some((cert.clone(), key)), port, args, ..SimOpts::default() }).await;
    let api = Api::direct_admin(&sim.base, &cert).await;
    for user in [CASCADE_USER, COUNTER_USER] {
        let r = api.post("/users", json!({"username": user, "password": CASCADE_PW, "role": "admin"})).await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    (sim, cert)
}

/// A pair behind its gateway, with `[cascade]` (and `[cascade.superior]` when `superior` is given).
struct Level {
    chassis: [SimProcess; 2],
    certs: [PathBuf; 2],
    gw: GatewayProcess,
    public_url: String,
}

impl Level {
    async fn start(certs: &Certs, tag: &str, gw_cert: &(PathBuf, PathBuf), superior: Option<(&str, &Path)>, extra: &[&str]) -> Level {
        let (a, ca) = chassis(certs, &format!("{tag}1"), &format!("{tag}-1"), extra).await;
        let (b, cb) = chassis(certs, &format!("{tag}2"), &format!("{tag}-2"), extra).await;
        create_service_account(&a.base, &ca, SERVICE_PASSWORDS[0]).await;
        create_service_account(&b.base, &cb, SERVICE_PASSWORDS[1]).await;
        let dir = certs.dir.join(format!("gateway-{tag}"));
        std::fs::create_dir_all(&dir).expect("gateway dir");
        let port = free_port().unwrap_or_else(|e| panic!("{e}"));
        let public_url = format!("https://127.0.0.1:{port}");
        std::fs::write(dir.as_path().join("cascade.pw"), CASCADE_PW).expect("password file");
        let mut section = format!("\n[cascade]\nserial = \"PAIR-{tag}\"\npublic_url = \"{public_url}\"\n");
        if let Some((url, ca)) = superior {
            section += &format!(
                "\n[cascade.superior]\nurl = \"{url}\"\nca_cert = \"{}\"\nusername = \"{CASCADE_USER}\"\npassword_file = \"{}\"\n",
                ca.display(),
                dir.as_path().join("cascade.pw").display()
            );
        }
        let config = GatewayConfig {
            dir: dir.as_path(),
            port,
            cert: &gw_cert.0,
            key: &gw_cert.1,
            chassis: [(a.port, &ca), (b.port, &cb)],
            username: SERVICE_USER,
            passwords: SERVICE_PASSWORDS,
            admin_token: ADMIN_TOKEN,
            jwt_secret: JWT_SECRET,
        }
        .write_edited(|text| text.push_str(&section))
        .map(|(c, _)| c)
        .unwrap_or_else(|e| panic!("{e}"));
        let log = Some(("pairgate=info".to_string(), dir.as_path().join("gateway.log")));
        let mut gw = GatewayProcess::new(bin_path("pairgate"), config, port, true, gw_cert.0.clone(), ADMIN_TOKEN, log)
            .unwrap_or_else(|e| panic!("{e}"));
        gw.start().unwrap_or_else(|e| panic!("{e}"));
        gw.wait_in_sync(Duration::from_secs(20)).await;
        Level { chassis: [a, b], certs: [ca, cb], gw, public_url }
    }

    async fn direct(&self, i: usize) -> Api {
        Api::direct_admin(&self.chassis[i].base, &self.certs[i]).await
    }

    async fn counters(&self, i: usize) -> Value {
        sim_counters(&self.chassis[i].base, &self.certs[i]).await
    }
}

async fn sim_counters(base: &str, cert: &Path) -> Value {
    let http = pairgate_suite::api::client_trusting(Some(cert));
    let login = http
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"username": COUNTER_USER, "password": CASCADE_PW, "force": true}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{base}: {e}"));
    let token: Value = login.json().await.unwrap_or_else(|e| panic!("{base}: {e}"));
    let url = format!("{base}/_sim/counters");
    let r = http.get(&url).bearer_auth(token["token"].as_str().unwrap_or_default()).send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// Poll `probe` (bounded: 100 tries, `limit` at most) until `pred` holds; panics with the last value.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut probe: F, pred: impl Fn(&Value) -> bool) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let start = Instant::now();
    let mut last = Value::Null;
    for _ in 0..100 {
        last = probe().await;
        if pred(&last) {
            return last;
        }
        if start.elapsed() > limit {
            break;
        }
        tokio::time::sleep(limit / 50).await;
    }
    panic!("{what}: not within {limit:?}; last {last}");
}

fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(u64::MAX)
}

/// Points the lower level at its superior through gateway L.
async fn point_at_superior(lower: &Level, superior_url: &str) {
    let ops = lower.gw.login("admin", "admin").await;
    let r = ops.put("/cascade/superior", json!({"url": superior_url, "username": CASCADE_USER, "password": "ignored"})).await;
    assert_eq!(r.status, 200, "{r:?}");
    // Neither chassis was given the superior itself, nor the password sent.
    for i in 0..2 {
        let sup = lower.direct(i).await.get("/cascade/superior").await.ok().body;
        assert_eq!(sup["url"], json!(format!("{}/_pairgate/egress", lower.public_url)), "{sup}");
        assert_eq!(sup["username"], "pairgate-egress", "{sup}");
    }
}

/// The superior's subordinates, as `api` sees them.
async fn subordinates(api: &Api) -> Value {
    api.get("/cascade/subordinates").await.ok().body
}

/// Wait (bounded) for the cascade source named `... / name` to appear at `api`.
async fn source_appears(api: &Api, name: &str, what: &str, limit: Duration) -> Value {
    eventually(what, limit, || async { cascade_source(api, name).await.unwrap_or(Value::Null) }, |s| !s.is_null()).await
}

/// A cascade source of the subordinate registered as `serial`, named `... / name`.
async fn cascade_source(api: &Api, name: &str) -> Option<Value> {
    let sources = api.get("/sources").await.ok().body;
    sources.as_array()?.iter().find(|s| s["kind"] == "cascade" && s["name"].as_str().is_some_and(|n| n.ends_with(name))).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_behind_a_gateway_is_one_subordinate_of_a_pair_and_each_lower_chassis_routes_the_link_once() {
    pair_under_pair("pair_under_pair", &[]).await;
}

/// Lower chassis without `origin_seq` send their upward calls without a key:
/// the egress pairs them by content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_pair_without_origin_keys_is_still_one_subordinate_and_its_calls_are_deduplicated() {
    pair_under_pair("legacy_lower_pair", &["--without", "origin_seq"]).await;
}

async fn pair_under_pair(test: &str, lower_extra: &[&str]) {
    let dir = artifacts(test);
    let certs = Certs::make(&dir);
    let upper = Level::start(&certs, "U", &certs.upper, None, &[]).await;
    let lower = Level::start(&certs, "L", &certs.lower, Some((&upper.public_url.clone(), &certs.upper.0)), lower_extra).await;
    // The pair's identity goes only to the superior gateway.toml names.
    let ops = lower.gw.login("admin", "admin").await;
    let r = ops.put("/cascade/superior", json!({"url": "https://127.0.0.1:1", "username": CASCADE_USER, "password": "x"})).await;
    assert_eq!((r.status, r.code()), (409, "superior_mismatch"), "{r:?}");
    for i in 0..2 {
        let sup = lower.direct(i).await.get("/cascade/superior").await.ok().body;
        assert_eq!(sup["url"], Value::Null, "refused, changed nothing: {sup}");
    }
    point_at_superior(&lower, &upper.public_url).await;

    // One subordinate at the upper level, with the pair's identity, on both upper chassis.
    let u_ops = upper.gw.login("admin", "admin").await;
    let subs = eventually(
        "the lower pair registered",
        Duration::from_secs(15),
        || subordinates(&u_ops),
        |s| s.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    assert_eq!(subs.as_array().map(Vec::len), Some(1), "{subs}");
    assert_eq!(subs[0]["serial"], "PAIR-L", "{subs}");
    assert_eq!(subs[0]["url"], json!(lower.public_url), "{subs}");
    // Both lower chassis made their call, and were answered.
    for i in 0..2 {
        registration_is(&lower, i, "the lower chassis was answered", |r| r == "registered").await;
    }
    for i in 0..2 {
        let c = upper.counters(i).await;
        assert_eq!((count(&c, "registrations_received"), count(&c, "registrations_applied")), (1, 1), "upper chassis {i}: {c}");
        let subs = subordinates(&upper.direct(i).await).await;
        assert_eq!(subs.as_array().map(Vec::len), Some(1), "upper chassis {i}: {subs}");
    }

    // A window on a lower-level source at the upper level: each lower chassis routes the link once.
    let Some(source) = cascade_source(&u_ops, "Input 1").await else { panic!("no cascade source: {}", u_ops.get("/sources").await.body) };
    let wall = u_ops.post("/walls", json!({"name": "upper wall", "rows": 1, "cols": 1, "outputs": [1]})).await.ok().id();
    open_window(&u_ops, wall, &source, 1, &lower, [1, 1]).await;
    let links = lower.direct(0).await.get("/cascade/links").await.ok().body;
    assert_eq!(links[0]["source_id"], source["remote_source_id"], "{links}");

    // A source renamed on the lower level shows up once, renamed, above.
    let l_ops = lower.gw.login("admin", "admin").await;
    let r = l_ops.put(&format!("/sources/{}", source["remote_source_id"]), json!({"name": "Renamed input"})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let renamed = source_appears(&u_ops, "Renamed input", "the rename reached the upper level", Duration::from_secs(15)).await;
    assert_eq!(renamed["id"], source["id"], "the same cascade source, renamed: {renamed}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..2 {
        let c = upper.counters(i).await;
        assert_eq!(count(&c, "registrations_applied"), 2, "upper chassis {i}: one registration and one report: {c}");
    }
    open_window(&u_ops, wall, &source, 2, &lower, [2, 2]).await;
    // A source added on the lower level shows up once above.
    let r = l_ops.post("/sources", json!({"name": "New camera", "kind": "ip", "url": "rtsp://new-camera.example/stream"})).await;
    assert_eq!(r.status, 201, "{r:?}");
    source_appears(&u_ops, "New camera", "the new source reached the upper level", Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sources = u_ops.get("/sources").await.ok().body;
    let named = sources.as_array().map_or(0, |a| a.iter().filter(|s| s["name"] == "PAIR-L / New camera").count());
    assert_eq!(named, 1, "{sources}");
    for i in 0..2 {
        let c = upper.counters(i).await;
        assert_eq!(count(&c, "registrations_applied"), 3, "upper chassis {i}: a third report, once: {c}");
    }
    let subs = subordinates(&u_ops).await;
    assert_eq!(subs.as_array().map(Vec::len), Some(1), "still one subordinate: {subs}");
}

/// Wait (bounded) until chassis `i` of `level` says its registration is as `pred` wants.
async fn registration_is(level: &Level, i: usize, what: &str, pred: impl Fn(&str) -> bool) {
    let api = level.direct(i).await;
    eventually(
        what,
        Duration::from_secs(15),
        || async { api.get("/cascade/superior").await.ok().body },
        |s| s["registration"].as_str().is_some_and(&pred),
    )
    .await;
}

/// Wait (bounded) until lower chassis `i` applied `want` cascade link calls.
async fn links_applied_reach(lower: &Level, i: usize, want: u64) {
    let (base, cert) = (&lower.chassis[i].base, &lower.certs[i]);
    eventually(
        "the lower chassis routed the link",
        Duration::from_secs(10),
        || sim_counters(base, cert),
        |c| count(c, "links_applied") >= want,
    )
    .await;
}

/// Open window `n` on `source` at the upper level; each lower chassis must have
/// applied exactly `expect` cascade link calls afterwards.
async fn open_window(u_ops: &Api, wall: u64, source: &Value, n: u64, lower: &Level, expect: [u64; 2]) {
    let r = u_ops.post(&format!("/walls/{wall}/windows"), json!({"source_id": source["id"], "x": 0, "y": 0, "w": 100 + n, "h": 100})).await;
    assert_eq!(r.status, 201, "{r:?}");
    for (i, want) in expect.into_iter().enumerate() {
        links_applied_reach(lower, i, want).await;
    }
    // Give a duplicate the time to arrive, then count exactly.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for (i, want) in expect.into_iter().enumerate() {
        let c = lower.counters(i).await;
        assert_eq!(count(&c, "links_applied"), want, "lower chassis {i} after window {n}: {c}");
    }
}

/// Both levels as pairs, the lower one registered, a wall at the upper level.
struct TwoLevels {
    upper: Level,
    lower: Level,
    u_ops: Api,
    source: Value,
    wall: u64,
}

impl TwoLevels {
    async fn start(test: &str) -> TwoLevels {
        let dir = artifacts(test);
        let certs = Certs::make(&dir);
        let upper = Level::start(&certs, "U", &certs.upper, None, &[]).await;
        let lower = Level::start(&certs, "L", &certs.lower, Some((&upper.public_url.clone(), &certs.upper.0)), &[]).await;
        point_at_superior(&lower, &upper.public_url).await;
        let u_ops = upper.gw.login("admin", "admin").await;
        let source = source_appears(&u_ops, "Input 2", "the lower pair registered", Duration::from_secs(15)).await;
        let wall = u_ops.post("/walls", json!({"name": "upper wall", "rows": 1, "cols": 1, "outputs": [1]})).await.ok().id();
        TwoLevels { upper, lower, u_ops, source, wall }
    }

    async fn counters(&self) -> [Value; 2] {
        [self.lower.counters(0).await, self.lower.counters(1).await]
    }

    /// One subordinate on each upper chassis, and both lower chassis route the same links.
    async fn still_one(&self, after: &str) {
        for i in 0..2 {
            let subs = subordinates(&self.upper.direct(i).await).await;
            assert_eq!(subs.as_array().map(Vec::len), Some(1), "{after}: upper chassis {i}: {subs}");
        }
        let links = |i| async move { self.lower.direct(i).await.get("/cascade/links").await.ok().body };
        let (l0, l1) = (links(0).await, links(1).await);
        assert_eq!(l0, l1, "{after}: both lower chassis route the same links");
    }
}

/// `kill -9` of each of the four chassis in turn, a window opened while it is
/// down, the chassis started again; then each gateway restarted. Every window
/// is routed on the lower level once per lower chassis that was up throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cascade_link_recovers_by_itself_after_each_chassis_is_killed_and_each_gateway_restarted() {
    let mut t = TwoLevels::start("faults").await;
    let mut n = 0u64;
    for (level, i) in [("upper", 0usize), ("upper", 1), ("lower", 0), ("lower", 1)] {
        let before = t.counters().await;
        match level {
            "upper" => t.upper.chassis[i].kill9(),
            _ => t.lower.chassis[i].kill9(),
        }
        n += 1;
        let r = t
            .u_ops
            .post(&format!("/walls/{}/windows", t.wall), json!({"source_id": t.source["id"], "x": 0, "y": 0, "w": 100 + n, "h": 100}))
            .await;
        assert_eq!(r.status, 201, "{level} chassis {i} down: {r:?}");
        let up = |j: usize| !(level == "lower" && j == i);
        for j in (0..2).filter(|&j| up(j)) {
            links_applied_reach(&t.lower, j, count(&before[j], "links_applied") + 1).await;
        }
        match level {
            "upper" => t.upper.chassis[i].ensure_running().await,
            _ => t.lower.chassis[i].ensure_running().await,
        }
        .unwrap_or_else(|e| panic!("{e}"));
        t.upper.gw.wait_in_sync(Duration::from_secs(30)).await;
        t.lower.gw.wait_in_sync(Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let after = t.counters().await;
        for j in 0..2 {
            let applied = count(&after[j], "links_applied");
            if up(j) {
                assert_eq!(
                    applied,
                    count(&before[j], "links_applied") + 1,
                    "{level} chassis {i} killed: lower chassis {j} applied the link once: {}",
                    after[j]
                );
            } else {
                assert!(applied <= 1, "the restarted lower chassis {j} applied it at most once (replayed, or imported): {}", after[j]);
            }
        }
        t.still_one(&format!("after {level} chassis {i} was killed")).await;
    }
    for which in ["lower", "upper"] {
        match which {
            "lower" => t.lower.gw.restart(),
            _ => t.upper.gw.restart(),
        }
        t.upper.gw.wait_in_sync(Duration::from_secs(30)).await;
        t.lower.gw.wait_in_sync(Duration::from_secs(30)).await;
        // Sessions survive the restart: the operator goes on as before.
        let before = t.counters().await;
        n += 1;
        open_window(&t.u_ops, t.wall, &t.source, n, &t.lower, [0, 1].map(|j| count(&before[j], "links_applied") + 1)).await;
        // The egress after a restart: a rename on the lower level still reaches the upper one once.
        let l_ops = t.lower.gw.login("admin", "admin").await;
        let name = format!("after {which} restart");
        let r = l_ops.put(&format!("/sources/{}", t.source["remote_source_id"]), json!({"name": name})).await;
        assert_eq!(r.status, 200, "{r:?}");
        let renamed = source_appears(&t.u_ops, &name, "the rename reached the upper level", Duration::from_secs(15)).await;
        assert_eq!(renamed["id"], t.source["id"]);
        t.still_one(&format!("after the {which} gateway restarted")).await;
    }
}

/// Mixed deployments: a single chassis as the superior of a pair, and a single
/// chassis as the subordinate of a pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_chassis_is_the_superior_of_a_pair_and_the_subordinate_of_another() {
    let dir = artifacts("mixed");
    let certs = Certs::make(&dir);
    // A single superior above the lower pair.
    let (top, top_cert) = chassis(&certs, "top", "TOP", &[]).await;
    let lower = Level::start(&certs, "L", &certs.lower, Some((&top.base.clone(), &top_cert)), &[]).await;
    point_at_superior(&lower, &top.base).await;
    let top_ops = Api::direct_admin(&top.base, &top_cert).await;
    let source = source_appears(&top_ops, "Input 3", "the pair registered at the single chassis", Duration::from_secs(15)).await;
    let c = sim_counters(&top.base, &top_cert).await;
    assert_eq!(count(&c, "registrations_received"), 1, "one registration for the pair: {c}");
    assert_eq!(subordinates(&top_ops).await.as_array().map(Vec::len), Some(1));
    let wall = top_ops.post("/walls", json!({"name": "top wall", "rows": 1, "cols": 1, "outputs": [1]})).await.ok().id();
    open_window(&top_ops, wall, &source, 1, &lower, [1, 1]).await;

    // A single subordinate below an upper pair (whose chassis call it back: they trust it).
    let (sub, sub_cert) = chassis(&certs, "sub", "SUB", &[]).await;
    certs.trust(&sub_cert);
    let upper = Level::start(&certs, "U", &certs.upper, None, &[]).await;
    let sub_ops = Api::direct_admin(&sub.base, &sub_cert).await;
    let r = sub_ops.put("/cascade/superior", json!({"url": upper.public_url, "username": CASCADE_USER, "password": CASCADE_PW})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let u_ops = upper.gw.login("admin", "admin").await;
    let source = source_appears(&u_ops, "Input 4", "the single chassis registered at the pair", Duration::from_secs(15)).await;
    for i in 0..2 {
        assert_eq!(subordinates(&upper.direct(i).await).await.as_array().map(Vec::len), Some(1), "upper chassis {i}");
    }
    let wall = u_ops.post("/walls", json!({"name": "upper wall", "rows": 1, "cols": 1, "outputs": [1]})).await.ok().id();
    let r = u_ops.post(&format!("/walls/{wall}/windows"), json!({"source_id": source["id"], "x": 0, "y": 0, "w": 100, "h": 100})).await;
    assert_eq!(r.status, 201, "{r:?}");
    // Both upper chassis call the subordinate, with one key: applied once. (Both
    // log in there as the same account: the reference chassis' one session per
    // account may preempt the first before its call, which then never arrives.)
    let c = eventually(
        "an upper chassis called",
        Duration::from_secs(10),
        || sim_counters(&sub.base, &sub_cert),
        |c| count(c, "links_applied") >= 1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let c2 = sim_counters(&sub.base, &sub_cert).await;
    assert_eq!(count(&c2, "links_applied"), 1, "{c} {c2}");
    assert!((1..=2).contains(&count(&c2, "links_received")), "{c2}");
}

/// The superior's gateway is down when the lower pair registers: the egress
/// keeps the call and sends it again once the superior is back (no source
/// change needed), still once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_made_while_the_superior_is_down_reaches_it_once_it_is_back() {
    let dir = artifacts("superior_down");
    let certs = Certs::make(&dir);
    let mut upper = Level::start(&certs, "U", &certs.upper, None, &[]).await;
    let lower = Level::start(&certs, "L", &certs.lower, Some((&upper.public_url.clone(), &certs.upper.0)), &[]).await;
    upper.gw.kill9();
    point_at_superior(&lower, &upper.public_url).await;
    for i in 0..2 {
        registration_is(&lower, i, "the lower chassis was told it failed", |r| r.starts_with("failed")).await;
    }
    upper.gw.start().unwrap_or_else(|e| panic!("{e}"));
    upper.gw.wait_in_sync(Duration::from_secs(20)).await;
    let u_ops = upper.gw.login("admin", "admin").await;
    source_appears(&u_ops, "Input 5", "the kept registration reached the superior", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..2 {
        let c = upper.counters(i).await;
        assert_eq!(count(&c, "registrations_applied"), 1, "upper chassis {i}: {c}");
        assert_eq!(subordinates(&upper.direct(i).await).await.as_array().map(Vec::len), Some(1), "upper chassis {i}");
    }
}
