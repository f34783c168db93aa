//! One chassis as the gateway sees it: an HTTPS client that trusts only that
//! chassis' certificate (or CA) from `gateway.toml`, with pooled keep-alive
//! connections, and a single question — what happened to this request?
//!
//! The answer is an [`Outcome`], because the gateway's decisions (DESIGN.md's
//! answer table) turn on the difference between "the chassis answered",
//! "the request certainly never reached it" and "it may or may not have".

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::config::ChassisUrl;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("chassis {chassis}: trust anchor {path}: {reason}")]
    TrustAnchor { chassis: String, path: String, reason: String },
    #[error("chassis {chassis}: building the HTTPS client: {reason}")]
    Client { chassis: String, reason: String },
}

/// A chassis' answer.
#[derive(Clone, Debug)]
pub struct Answered {
    pub status: u16,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

impl Answered {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn is_server_error(&self) -> bool {
        self.status >= 500
    }
    /// The chassis' `error.code`, if the body is an error document.
    pub fn error_code(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v["error"]["code"].as_str().map(str::to_string)
    }
}

/// What happened to one request sent to one chassis.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// An HTTP answer (any status).
    Answered(Answered),
    /// The connection was never established (refused, TLS refused, no route):
    /// the request certainly did not reach the chassis.
    Refused(String),
    /// Sent, or possibly sent, but no answer came (timeout, reset): the
    /// chassis may or may not have applied it.
    NoAnswer(String),
    /// Never sent: the account it runs as could not log in to the chassis
    /// (its credentials were refused, or none are stored or readable). The
    /// gateway never substitutes another account (invariant 1).
    AccountRefused(String),
}

impl Outcome {
    /// An answer that says the chassis is healthy enough to have decided:
    /// 2xx or 4xx (a 5xx is a failing chassis, like no answer).
    pub fn decided(&self) -> Option<&Answered> {
        match self {
            Outcome::Answered(a) if !a.is_server_error() => Some(a),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Outcome::Answered(a) => format!("answered {}", a.status),
            Outcome::Refused(e) => format!("refused: {e}"),
            Outcome::NoAnswer(e) => format!("no answer: {e}"),
            Outcome::AccountRefused(e) => format!("not sent: {e}"),
        }
    }
}

/// A request to send to a chassis.
#[derive(Clone)]
pub struct UpRequest<'a> {
    pub method: Method,
    /// Path (and query) on the chassis, e.g. `/api/v1/walls?x=1`.
    pub path_and_query: &'a str,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The backend session token to send as `Authorization: Bearer`.
    pub token: Option<String>,
    /// Per-try limit for this request.
    pub timeout: Duration,
}

/// One chassis: its name, URL and client.
pub struct Upstream {
    pub name: String,
    pub url: ChassisUrl,
    http: reqwest::Client,
    /// The rustls client config (also used for the events WebSocket).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// The certificates in a PEM file: the only trust anchors for one chassis.
pub fn trust_anchors(chassis: &str, path: &Path) -> Result<rustls::RootCertStore, UpstreamError> {
    let err = |reason: String| UpstreamError::TrustAnchor { chassis: chassis.into(), path: path.display().to_string(), reason };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| err(format!("not a PEM certificate: {e}")))?;
        roots.add(cert).map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    Ok(roots)
}

impl Upstream {
    /// A client for `url` that trusts only `ca_cert` (https) or plain http.
    pub fn new(name: &str, url: ChassisUrl, ca_cert: Option<&Path>, per_try: Duration) -> Result<Upstream, UpstreamError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(per_try)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            // Redirects are the chassis' business with the browser, not ours.
            .redirect(reqwest::redirect::Policy::none());
        let tls = match ca_cert {
            Some(path) if url.is_https() => {
                let roots = trust_anchors(name, path)?;
                let cfg = Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth());
                builder = builder.tls_backend_preconfigured((*cfg).clone());
                Some(cfg)
            }
            _ => None,
        };
        let http = builder.build().map_err(|e| UpstreamError::Client { chassis: name.into(), reason: e.to_string() })?;
        Ok(Upstream { name: name.to_string(), url, http, tls })
    }

    /// Send one request and classify what happened.
    pub async fn send(&self, req: UpRequest<'_>) -> Outcome {
        let url = format!("{}{}", self.url, req.path_and_query);
        let mut r = self.http.request(req.method, url).headers(req.headers).timeout(req.timeout).body(req.body);
        if let Some(t) = &req.token {
            r = r.bearer_auth(t);
        }
        match r.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let content_type = resp.headers().get(reqwest::header::CONTENT_TYPE).cloned();
                match resp.bytes().await {
                    Ok(body) => Outcome::Answered(Answered { status, content_type, body }),
                    Err(e) => Outcome::NoAnswer(format!("reading the answer: {}", error_chain(&e))),
                }
            }
            Err(e) if e.is_connect() => Outcome::Refused(error_chain(&e)),
            Err(e) => Outcome::NoAnswer(error_chain(&e)),
        }
    }

    /// A JSON call with no extra headers (health, login, digest).
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        token: Option<&str>,
        timeout: Duration,
    ) -> Outcome {
        let mut headers = HeaderMap::new();
        let body = match body {
            Some(b) => {
                headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        self.send(UpRequest { method, path_and_query: path, headers, body, token: token.map(str::to_string), timeout }).await
    }
}

/// The whole error chain in one line (reqwest's top error hides the cause,
/// e.g. "invalid peer certificate: UnknownIssuer").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Request headers that travel to the chassis unchanged. Everything else —
/// hop-by-hop headers, the client's Authorization (a gateway token), cookies,
/// the client's own Idempotency-Key and X-Id-Block (the gateway sets those) —
/// stays at the gateway.
pub fn forwardable(name: &HeaderName) -> bool {
    matches!(name.as_str(), "content-type" | "accept" | "accept-language" | "if-none-match" | "if-modified-since" | "user-agent")
}
