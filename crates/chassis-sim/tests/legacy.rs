//! The simulator acting like older firmware: the `--without` switches (here
//! `digest`) and the command line that sets them. Every test drives the
//! chassis' real HTTP application (`chassis_sim::app`) in process, with no
//! sockets and no clocks.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
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
        let mut req = Request::builder().method(method).uri(format!("/api/v1{path}"));
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
