//! HTTP for the harness: the TLS trust of a client (exactly the certificates
//! of one PEM file), one request with its answer read as JSON ([`send`]),
//! and the campaign's client [`Http`], built on both.
//!
//! Unlike the panicking client of the end-to-end tests ([`crate::api::Api`],
//! the same [`send`] underneath), every call of [`Http`] returns what
//! happened — an answer (status and body) or a transport error — because the
//! campaign has to *record* failures, not stop at the first one.

use std::path::Path;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use serde_json::Value;

/// What one request got.
#[derive(Clone, Debug)]
pub enum Sent {
    /// The server answered (any status).
    Answer { status: u16, body: Value },
    /// No answer: refused, reset, timed out, TLS failure… (the text says which).
    Transport(String),
}

/// The `error.code` of an error answer's body ("" if none).
pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

impl Sent {
    pub fn status(&self) -> Option<u16> {
        match self {
            Sent::Answer { status, .. } => Some(*status),
            Sent::Transport(_) => None,
        }
    }

    pub fn is_success(&self) -> bool {
        self.status().is_some_and(|s| (200..300).contains(&s))
    }

    /// The `error.code` of an error answer ("" if none).
    pub fn code(&self) -> &str {
        match self {
            Sent::Answer { body, .. } => error_code(body),
            Sent::Transport(_) => "",
        }
    }

    pub fn body(&self) -> Option<&Value> {
        match self {
            Sent::Answer { body, .. } => Some(body),
            Sent::Transport(_) => None,
        }
    }

    /// One short line for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            Sent::Answer { status, .. } if self.code().is_empty() => status.to_string(),
            Sent::Answer { status, .. } => format!("{status} {}", self.code()),
            Sent::Transport(e) => format!("transport: {e}"),
        }
    }
}

/// The certificates of a PEM file as the only rustls trust anchors (ring
/// installed as the crypto provider first).
pub fn roots_trusting(ca_pem: &Path) -> Result<rustls::RootCertStore, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(ca_pem).map_err(|e| format!("reading {}: {e}", ca_pem.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{}: {e}", ca_pem.display()))?;
        roots.add(cert).map_err(|e| format!("{}: {e}", ca_pem.display()))?;
    }
    Ok(roots)
}

/// A reqwest client (rustls with ring) trusting exactly the certificates in
/// `ca_pem` (None: no certificate at all), every request bounded by
/// `timeout`, every connect by `connect_timeout` when given.
pub fn client_with(ca_pem: Option<&Path>, timeout: Duration, connect_timeout: Option<Duration>) -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let roots = match ca_pem {
        Some(pem) => roots_trusting(pem)?,
        None => rustls::RootCertStore::empty(),
    };
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let mut builder = reqwest::Client::builder().tls_backend_preconfigured(tls).timeout(timeout);
    if let Some(t) = connect_timeout {
        builder = builder.connect_timeout(t);
    }
    builder.build().map_err(|e| format!("http client: {e}"))
}

/// What a request carries.
pub enum Body<'a> {
    Empty,
    Json(&'a Value),
    /// Raw bytes with their content type (for malformed input).
    Raw(Vec<u8>, &'a str),
}

/// One request `method url` with an optional bearer token and extra headers.
/// An empty answer body is `Null`, one that is not JSON a JSON string.
pub async fn send(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Body<'_>,
) -> Sent {
    let m = match reqwest::Method::from_bytes(method.as_bytes()) {
        Ok(m) => m,
        Err(e) => return Sent::Transport(format!("bad method {method}: {e}")),
    };
    let mut req = client.request(m, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req = match body {
        Body::Empty => req,
        Body::Json(b) => req.json(b),
        Body::Raw(bytes, content_type) => req.header("content-type", content_type).body(bytes),
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Sent::Transport(error_chain(&e)),
    };
    let status = resp.status().as_u16();
    match resp.text().await {
        Ok(text) if text.is_empty() => Sent::Answer { status, body: Value::Null },
        Ok(text) => Sent::Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) },
        Err(e) => Sent::Transport(format!("reading the body of a {status}: {}", error_chain(&e))),
    }
}

/// A client for one HTTPS base URL trusting exactly one certificate, with an
/// optional bearer token.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Http {
    /// `base` like `https://127.0.0.1:8443`; `ca_pem` is the only trusted
    /// certificate. `timeout` bounds every request of this client.
    pub fn trusting(base: &str, ca_pem: &Path, timeout: Duration) -> Result<Http, String> {
        let client = client_with(Some(ca_pem), timeout, Some(Duration::from_secs(3)))?;
        Ok(Http { client, base: base.trim_end_matches('/').to_string(), token: None })
    }

    /// `POST /api/v1/login`; keeps the token on success.
    pub async fn login(&mut self, user: &str, password: &str, force: bool) -> Result<(), String> {
        let body = serde_json::json!({"username": user, "password": password, "force": force});
        let r = self.call("POST", "/api/v1/login", Some(&body), &[]).await;
        match (&r, r.body().and_then(|b| b["token"].as_str())) {
            (Sent::Answer { status: 200, .. }, Some(t)) => {
                self.token = Some(t.to_string());
                Ok(())
            }
            _ => Err(format!("login as {user} at {}: {}", self.base, r.describe())),
        }
    }

    /// One request to `{base}{path}` (the path includes `/api/v1` or `/_sim`).
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> Sent {
        let body = body.map_or(Body::Empty, Body::Json);
        send(&self.client, method, &format!("{}{}", self.base, path), self.token.as_deref(), headers, body).await
    }

    pub async fn get(&self, path: &str) -> Sent {
        self.call("GET", path, None, &[]).await
    }
}

/// The error and its sources on one line ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    for _ in 0..8 {
        let Some(c) = cur else { break };
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
