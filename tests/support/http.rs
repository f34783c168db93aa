//! A small JSON client for the gateway and for a chassis reached directly.
//!
//! Unlike the panicking helpers of `tests/common`, every call here returns
//! what happened — an answer (status and body) or a transport error — because
//! the campaign has to *record* failures, not stop at the first one.

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
            Sent::Answer { body, .. } => body["error"]["code"].as_str().unwrap_or(""),
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
        let _ = rustls::crypto::ring::default_provider().install_default();
        let pem = std::fs::read(ca_pem).map_err(|e| format!("reading {}: {e}", ca_pem.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("{}: {e}", ca_pem.display()))?;
            roots.add(cert).map_err(|e| format!("{}: {e}", ca_pem.display()))?;
        }
        let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
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
        let m = match reqwest::Method::from_bytes(method.as_bytes()) {
            Ok(m) => m,
            Err(e) => return Sent::Transport(format!("bad method {method}: {e}")),
        };
        let mut req = self.client.request(m, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
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
