//! The simulator acting like older firmware: the `--without` switches (here
//! `digest`), MySQL 5.7's auto-increment habits (`--auto-increment mysql57`:
//! a refused create spends its id, a restart recounts from the rows), and the
//! command line that sets them. Every test drives the chassis' real HTTP
//! application (`chassis_sim::app`) in process, with no sockets and no clocks.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chassis_sim::ids::AutoIncrement;
use chassis_sim::{Chassis, ChassisConfig, Features};
use clap::Parser;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// One chassis and an admin session on it.
struct Sim {
    app: axum::Router,
    token: String,
}

impl Sim {
    async fn open(cfg: ChassisConfig) -> Sim {
        let chassis: Arc<Chassis> = Chassis::open(cfg).expect("open the chassis");
        let mut sim = Sim { app: chassis_sim::app(chassis), token: String::new() };
        let (status, body) = sim.call("POST", "/login", Some(json!({"username": "admin", "password": "admin"}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        sim.token = body["token"].as_str().expect("a token").to_string();
        sim
    }

    /// One request under `/api/v1`, with the session (if logged in).
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_with(method, path, body, &[]).await
    }

    async fn call_with(&self, method: &str, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> (StatusCode, Value) {
        self.send(method, &format!("/api/v1{path}"), body, headers).await
    }

    /// One request to `uri` as given (the `/_sim` hooks live outside `/api/v1`).
    async fn send(&self, method: &str, uri: &str, body: Option<Value>, headers: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if !self.token.is_empty() {
            req = req.header("authorization", format!("Bearer {}", self.token));
        }
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("a request");
        let resp = self.app.clone().oneshot(req).await.expect("the router answers");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("a body").to_bytes();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("a JSON body") };
        (status, body)
    }

    fn without_session(&self) -> Sim {
        Sim { app: self.app.clone(), token: String::new() }
    }

    /// A create that must succeed: the new row's id.
    async fn create(&self, path: &str, body: Value) -> u64 {
        let (status, reply) = self.call("POST", path, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "POST {path}: {reply}");
        reply["id"].as_u64().expect("an id")
    }

    /// A request that must fail with this status and code.
    async fn refused(&self, path: &str, body: Value, headers: &[(&str, &str)], want: (StatusCode, &str)) {
        let (status, reply) = self.call_with("POST", path, Some(body), headers).await;
        assert_eq!((status, reply["error"]["code"].as_str()), (want.0, Some(want.1)), "POST {path}: {reply}");
    }

    /// A table's auto-increment counter as the export reports it.
    async fn next_id(&self, table: &str) -> u64 {
        let (status, doc) = self.call("GET", "/system/export", None).await;
        assert_eq!(status, StatusCode::OK);
        doc["tables"][table]["next_id"].as_u64().expect("a counter")
    }
}

fn user(name: &str) -> Value {
    json!({"username": name, "password": "pw", "role": "viewer"})
}

fn wall(outputs: [u32; 2]) -> Value {
    json!({"name": "w", "rows": 1, "cols": 2, "outputs": outputs})
}

fn screen_ids(reply: &Value) -> Vec<u64> {
    reply["screens"].as_array().map(|s| s.iter().filter_map(|s| s["id"].as_u64()).collect()).unwrap_or_default()
}

fn mode(auto_increment: AutoIncrement) -> ChassisConfig {
    ChassisConfig { auto_increment, ..ChassisConfig::default() }
}

/// The ids the creates after refused ones get, in one mode: users, then the
/// wall and its screens, then KVM hosts.
async fn ids_after_refusals(auto_increment: AutoIncrement) -> (u64, (u64, Vec<u64>), u64) {
    let sim = Sim::open(mode(auto_increment)).await;
    let conflict = StatusCode::CONFLICT;
    assert_eq!(sim.create("/users", user("alice")).await, 2, "admin is 1");
    // Refused by the unique username: in MySQL, during the insert.
    sim.refused("/users", user("alice"), &[], (conflict, "username_taken")).await;
    // Refused before any insert: spends nothing in either mode.
    sim.refused("/users", user("not a name"), &[], (StatusCode::UNPROCESSABLE_ENTITY, "invalid_username")).await;
    let bob = sim.create("/users", user("bob")).await;

    assert_eq!(sim.create("/walls", wall([1, 2])).await, 1);
    // The wall and its first screen went in; the second screen's output is taken.
    sim.refused("/walls", wall([3, 1]), &[], (conflict, "output_in_use")).await;
    sim.refused("/walls", wall([3, 3]), &[], (StatusCode::UNPROCESSABLE_ENTITY, "duplicate_output")).await;
    let (status, reply) = sim.call("POST", "/walls", Some(wall([3, 4]))).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let next_wall = (reply["id"].as_u64().unwrap_or(0), screen_ids(&reply));

    assert_eq!(sim.create("/kvm/hosts", json!({"name": "h", "port": 1})).await, 1);
    sim.refused("/kvm/hosts", json!({"name": "h", "port": 1}), &[], (conflict, "port_in_use")).await;
    let host = sim.create("/kvm/hosts", json!({"name": "h", "port": 2})).await;

    // A refused create under an X-Id-Block spends no counter value, in either mode.
    sim.refused("/users", user("alice"), &[("x-id-block", "500+1")], (conflict, "username_taken")).await;
    assert_eq!(sim.create("/users", user("carol")).await, bob + 1, "no gap after a refused create with a block");
    (bob, next_wall, host)
}

#[tokio::test]
async fn mysql57_a_create_refused_after_its_insert_leaves_a_gap() {
    let (bob, wall, host) = ids_after_refusals(AutoIncrement::Mysql57).await;
    assert_eq!(bob, 4, "the refused alice spent id 3");
    assert_eq!(wall, (3, vec![5, 6]), "the refused wall spent wall 2 and screens 3 and 4");
    assert_eq!(host, 3, "the refused host spent id 2");
}

#[tokio::test]
async fn exact_a_refused_create_leaves_no_gap() {
    let (bob, wall, host) = ids_after_refusals(AutoIncrement::Exact).await;
    assert_eq!(bob, 3);
    assert_eq!(wall, (2, vec![3, 4]));
    assert_eq!(host, 2);
}

/// Users 2..=5 created, 3 and the last two deleted, then a restart on the
/// same state folder: the counter the export reports and the id the next
/// create gets.
async fn user_ids_across_a_restart(auto_increment: AutoIncrement) -> (u64, u64) {
    let dir = tempfile::tempdir().expect("a state folder");
    let cfg = ChassisConfig { state_dir: Some(dir.path().to_path_buf()), ..mode(auto_increment) };
    let sim = Sim::open(cfg.clone()).await;
    for (name, id) in [("u2", 2), ("u3", 3), ("u4", 4)] {
        assert_eq!(sim.create("/users", user(name)).await, id);
    }
    assert_eq!(sim.call("DELETE", "/users/4", None).await.0, StatusCode::NO_CONTENT);
    // While it runs the counter never goes back, in either mode.
    assert_eq!(sim.create("/users", user("u5")).await, 5);
    for id in [5, 3] {
        assert_eq!(sim.call("DELETE", &format!("/users/{id}"), None).await.0, StatusCode::NO_CONTENT);
    }
    assert_eq!(sim.call("PUT", "/matrix/9", Some(json!({"input": 2}))).await.0, StatusCode::OK);
    assert_eq!(sim.next_id("users").await, 6);
    drop(sim);

    let sim = Sim::open(cfg).await;
    assert_eq!(sim.next_id("routes").await, 1, "routes are keyed by output: no counter to rebuild");
    let (status, matrix) = sim.call("GET", "/matrix", None).await;
    assert_eq!((status, &matrix[8]), (StatusCode::OK, &json!({"output": 9, "input": 2})), "the rows themselves persist: {matrix}");
    (sim.next_id("users").await, sim.create("/users", user("again")).await)
}

#[tokio::test]
async fn mysql57_a_restart_resets_each_counter_to_max_id_plus_one() {
    assert_eq!(user_ids_across_a_restart(AutoIncrement::Mysql57).await, (3, 3), "user 2 is the highest left");
}

#[tokio::test]
async fn exact_counters_persist_across_a_restart() {
    assert_eq!(user_ids_across_a_restart(AutoIncrement::Exact).await, (6, 6));
}

fn without(names: &[&str]) -> ChassisConfig {
    let mut features = Features::default();
    for n in names {
        features.switch_off(n).expect("a known feature");
    }
    ChassisConfig { features, ..ChassisConfig::default() }
}

#[tokio::test]
async fn without_digest_the_digest_route_is_404_and_features_omit_it() {
    let sim = Sim::open(without(&["digest"])).await;
    for who in [&sim, &sim.without_session()] {
        let (status, body) = who.call("GET", "/system/digest", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "no_such_endpoint", "the contract's error shape: {body}");
        assert_eq!(body["error"]["message"], "no such endpoint: /system/digest", "{body}");
    }
    // Answered exactly like a route that never existed.
    let (status, unknown) = sim.call("GET", "/system/nothing", None).await;
    assert_eq!(
        (status, unknown),
        (StatusCode::NOT_FOUND, json!({"error": {"code": "no_such_endpoint", "message": "no such endpoint: /system/nothing"}}))
    );
    let (status, info) = sim.call("GET", "/system/info", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["features"], json!(["id_block", "idempotency_key", "export_import", "origin_seq"]));
}

#[tokio::test]
async fn by_default_the_digest_answers_and_is_listed() {
    let sim = Sim::open(ChassisConfig::default()).await;
    let (status, body) = sim.call("GET", "/system/digest", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["digest"].as_str().map(str::len), Some(64), "{body}");
    let (_, info) = sim.call("GET", "/system/info", None).await;
    assert_eq!(info["features"], json!(["id_block", "idempotency_key", "export_import", "origin_seq", "digest"]));
    // Switching another feature off leaves the digest listed and answering.
    let sim = Sim::open(without(&["export_import"])).await;
    let (_, info) = sim.call("GET", "/system/info", None).await;
    assert_eq!(info["features"], json!(["id_block", "idempotency_key", "origin_seq", "digest"]));
    assert_eq!(sim.call("GET", "/system/digest", None).await.0, StatusCode::OK);
}

fn parse(extra: &[&str]) -> Result<chassis_sim::cli::Args, clap::Error> {
    let mut argv = vec!["chassis-sim", "--listen", "127.0.0.1:0", "--ephemeral"];
    argv.extend_from_slice(extra);
    chassis_sim::cli::Args::try_parse_from(argv)
}

#[test]
fn cli_auto_increment_takes_exact_or_mysql57_and_refuses_anything_else() {
    let cfg = |extra: &[&str]| chassis_sim::cli::config(&parse(extra).expect("accepted")).map(|c| c.auto_increment);
    assert_eq!(cfg(&[]), Ok(AutoIncrement::Exact), "the default is today's behaviour");
    assert_eq!(cfg(&["--auto-increment", "exact"]), Ok(AutoIncrement::Exact));
    assert_eq!(cfg(&["--auto-increment", "mysql57"]), Ok(AutoIncrement::Mysql57));
    for bad in ["mysql8", "MySQL-5.7", ""] {
        let err = parse(&["--auto-increment", bad]).expect_err("refused");
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue, "{bad}: {err}");
        let text = err.to_string();
        assert!(text.contains("--auto-increment") && text.contains("[possible values: exact, mysql57]"), "{text}");
    }
}

#[test]
fn cli_without_digest_switches_it_off_and_unknown_names_are_refused() {
    let args = parse(&["--without", "digest", "--without", "origin_seq"]).expect("accepted");
    let cfg = chassis_sim::cli::config(&args).expect("known features");
    assert_eq!(cfg.features.names(), ["id_block", "idempotency_key", "export_import"]);

    let cfg = chassis_sim::cli::config(&parse(&[]).expect("accepted")).expect("no switches");
    assert_eq!(cfg.features.names(), Features::all_names());

    let err = chassis_sim::cli::config(&parse(&["--without", "digests"]).expect("parsed")).expect_err("unknown feature");
    assert!(err.contains("--without digests: unknown feature"), "{err}");
    assert!(err.contains("id_block, idempotency_key, export_import, origin_seq, digest"), "names every feature: {err}");
}

/// The harness' view of older firmware: `/_sim/export`, `/_sim/import` and
/// `/_sim/digest` answer on a chassis whose API has none of them (with
/// `--sim-hooks` only), and agree with what full firmware's routes answer.
#[tokio::test]
async fn the_state_hooks_answer_on_firmware_without_export_or_digest() {
    let none = Features { id_block: false, idempotency_key: false, export_import: false, origin_seq: false, digest: false };
    let old = Sim::open(ChassisConfig { hooks: true, features: none.clone(), ..ChassisConfig::default() }).await;
    let full = Sim::open(ChassisConfig { hooks: true, ..ChassisConfig::default() }).await;
    for sim in [&old, &full] {
        sim.create("/users", user("alice")).await;
        sim.create("/walls", wall([1, 2])).await;
    }
    assert_eq!(old.call("GET", "/system/export", None).await.0, StatusCode::NOT_FOUND, "the firmware has no export");
    assert_eq!(old.call("GET", "/system/digest", None).await.0, StatusCode::NOT_FOUND, "nor a digest");
    let (status, digest) = old.send("GET", "/_sim/digest", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{digest}");
    let (_, full_digest) = full.call("GET", "/system/digest", None).await;
    assert_eq!(digest["digest"], full_digest["digest"], "the same requests, the same digest");
    let (status, export) = old.send("GET", "/_sim/export", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    // Into a third chassis without the feature: it then holds the same state.
    let other = Sim::open(ChassisConfig { hooks: true, features: none, ..ChassisConfig::default() }).await;
    let (status, answer) = other.send("PUT", "/_sim/import", Some(export), &[]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(other.send("GET", "/_sim/digest", None, &[]).await.1["digest"], digest["digest"]);
    // Hooks stay hooks: a chassis started without them has none.
    let plain = Sim::open(ChassisConfig::default()).await;
    assert_eq!(plain.send("GET", "/_sim/export", None, &[]).await.0, StatusCode::NOT_FOUND);
    assert_eq!(plain.send("PUT", "/_sim/import", Some(json!({})), &[]).await.0, StatusCode::NOT_FOUND);
}
