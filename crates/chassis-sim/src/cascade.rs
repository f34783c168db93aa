//! Calls this chassis makes to other systems because of a request it applied:
//! registering at its superior (again after every source change), and, as a
//! superior, routing a subordinate's cascade link to a source it shows.
//!
//! They run after the request is committed, in the background, and carry
//! `Idempotency-Key: <origin>/<seq>/<k>` when the request carried
//! `X-Origin-Seq`, so the same logical call made by both chassis of a pair
//! can be recognised and applied once.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::chassis::Chassis;
use crate::model::*;

/// A call to make once the request that caused it is committed.
#[derive(Clone, Debug)]
pub enum Effect {
    /// Register (or re-report sources) at the configured superior.
    Register,
    /// As a superior: route subordinate link `link` to its source `remote_source_id`.
    RouteLink { subordinate_id: u64, link: u64, remote_source_id: u64 },
}

pub struct CascadeClient {
    http: Option<reqwest::Client>,
    status: Mutex<String>,
    /// `PUT /cascade/links/{n}` calls received, and those applied (a repeat of
    /// a remembered `Idempotency-Key` is received, not applied).
    pub links_received: AtomicU64,
    pub links_applied: AtomicU64,
    /// `POST /cascade/subordinates` calls received and applied.
    pub registrations_received: AtomicU64,
    pub registrations_applied: AtomicU64,
}

impl CascadeClient {
    pub fn new(peer_ca: Option<&Path>) -> CascadeClient {
        let http = build_client(peer_ca).map_err(|e| tracing::warn!("cascade client unavailable: {e}")).ok();
        CascadeClient {
            http,
            status: Mutex::new("not configured".into()),
            links_received: AtomicU64::new(0),
            links_applied: AtomicU64::new(0),
            registrations_received: AtomicU64::new(0),
            registrations_applied: AtomicU64::new(0),
        }
    }

    /// What `/_sim/counters` shows.
    pub fn counters(&self) -> Value {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "links_received": n(&self.links_received),
            "links_applied": n(&self.links_applied),
            "registrations_received": n(&self.registrations_received),
            "registrations_applied": n(&self.registrations_applied),
        })
    }

    pub fn status(&self) -> String {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn set_status(&self, s: String) {
        if let Ok(mut g) = self.status.lock() {
            *g = s;
        }
    }

    pub async fn run(&self, chassis: &Arc<Chassis>, effect: Effect, key: Option<String>) {
        let Some(http) = &self.http else { return };
        match effect {
            Effect::Register => {
                let Some(sup) = chassis.read(|db| db.get::<Superior>(1).cloned()) else { return };
                let sources: Vec<Value> = chassis.read(|db| {
                    db.all::<Source>()
                        .filter(|s| s.kind != SourceKind::Cascade)
                        .map(|s| json!({"id": s.id, "name": s.name, "kind": s.kind}))
                        .collect()
                });
                let body = json!({
                    "serial": chassis.cfg.serial,
                    "url": chassis.cfg.public_url,
                    "sources": sources,
                    "credentials": {"username": sup.username, "password": sup.password},
                });
                let peer = Peer { base: &sup.url, username: &sup.username, password: &sup.password };
                let outcome = peer.call(http, reqwest::Method::POST, "/api/v1/cascade/subordinates", body, key).await;
                self.set_status(match outcome {
                    Ok(()) => "registered".into(),
                    Err(e) => format!("failed: {e}"),
                });
            }
            Effect::RouteLink { subordinate_id, link, remote_source_id } => {
                let Some(sub) = chassis.read(|db| db.get::<Subordinate>(subordinate_id).cloned()) else { return };
                let Some(cred) = sub.credentials else {
                    tracing::warn!(serial = %sub.serial, "subordinate gave no credentials: cannot route its cascade link");
                    return;
                };
                let path = format!("/api/v1/cascade/links/{link}");
                if let Err(e) = (Peer { base: &sub.url, username: &cred.username, password: &cred.password })
                    .call(http, reqwest::Method::PUT, &path, json!({"source_id": remote_source_id}), key)
                    .await
                {
                    tracing::warn!(serial = %sub.serial, "routing cascade link {link} failed: {e}");
                }
            }
        }
    }
}

fn build_client(peer_ca: Option<&Path>) -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = peer_ca {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for cert in crate::tls::certs_from_pem(&pem)? {
            roots.add(cert).map_err(|e| e.to_string())?;
        }
    }
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    reqwest::Client::builder().tls_backend_preconfigured(tls).timeout(Duration::from_secs(5)).build().map_err(|e| e.to_string())
}

/// Another system this chassis calls, with the account it uses there.
struct Peer<'a> {
    base: &'a str,
    username: &'a str,
    password: &'a str,
}

impl Peer<'_> {
    /// Log in (forcing out an older session of the cascade account) and make one call.
    async fn call(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Value,
        key: Option<String>,
    ) -> Result<(), String> {
        let login = http
            .post(format!("{}/api/v1/login", self.base))
            .json(&json!({"username": self.username, "password": self.password, "force": true}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !login.status().is_success() {
            return Err(format!("login answered {}", login.status()));
        }
        let token: Value = login.json().await.map_err(|e| e.to_string())?;
        let token = token["token"].as_str().ok_or("login answer without token")?.to_string();
        let mut req = http.request(method, format!("{}{path}", self.base)).bearer_auth(token).json(&body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("{path} answered {}", resp.status()))
        }
    }
}
