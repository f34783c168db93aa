//! The end-to-end tests' JSON client for the chassis API, on a chassis or
//! through the gateway: paths relative to `/api/v1`, and a test that stops at
//! the first failure — a transport error panics, any status is an answer
//! ([`Reply`]). The request itself is [`crate::http::send`], the campaign's too.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::http::{client_with, error_code, roots_trusting, send, Body, Sent};

/// The answer of one API call.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The `error.code` of an error answer ("" if there is none).
    pub fn code(&self) -> &str {
        error_code(&self.body)
    }
    pub fn id(&self) -> u64 {
        self.body["id"].as_u64().unwrap_or_else(|| panic!("no id in {self:?}"))
    }
    /// Panic with the whole answer unless the status is 2xx.
    pub fn ok(self) -> Reply {
        assert!((200..300).contains(&self.status), "expected 2xx, got {self:?}");
        self
    }
}

/// A reqwest client trusting exactly the certificates in `ca_pem` (None:
/// none at all), each request bounded by 30 s.
pub fn client_trusting(ca_pem: Option<&Path>) -> reqwest::Client {
    client_with(ca_pem, Duration::from_secs(30), None).unwrap_or_else(|e| panic!("{e}"))
}

/// A client that trusts no certificate (for plain HTTP, or to be refused).
pub fn client() -> reqwest::Client {
    client_trusting(None)
}

/// A raw TLS connector trusting exactly the certificate in `ca_pem`, offering
/// the `alpn` protocols (none: no ALPN).
pub fn tls_connector(ca_pem: &Path, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let roots = roots_trusting(ca_pem).unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
}

/// A JSON client for one chassis or the gateway, with an optional token.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    /// A client of `base` that trusts no certificate (plain HTTP).
    pub fn new(base: &str) -> Api {
        Api::with_client(base, client())
    }

    /// A client of `base` that trusts exactly the certificate in `ca_pem`.
    pub fn trusting(base: &str, ca_pem: &Path) -> Api {
        Api::with_client(base, client_trusting(Some(ca_pem)))
    }

    fn with_client(base: &str, http: reqwest::Client) -> Api {
        Api { http, base: base.trim_end_matches('/').to_string(), token: None }
    }

    /// Log in as `user` (force = false) and keep the token; panics unless 200.
    pub async fn login(base: &str, user: &str, password: &str) -> Api {
        let mut api = Api::new(base);
        let r = api.call("POST", "/login", Some(serde_json::json!({"username": user, "password": password})), &[]).await;
        assert_eq!(r.status, 200, "login {user}: {r:?}");
        api.token = Some(r.body["token"].as_str().expect("token").to_string());
        api
    }

    /// Log in as `admin` with `force: true` (the gateway may hold the
    /// account's session) on the chassis at `base`, trusting `ca_pem`;
    /// panics unless 200.
    pub async fn direct_admin(base: &str, ca_pem: &Path) -> Api {
        let mut api = Api::trusting(base, ca_pem);
        let r = api.post("/login", serde_json::json!({"username": "admin", "password": "admin", "force": true})).await;
        assert_eq!(r.status, 200, "direct login: {r:?}");
        api.token = r.body["token"].as_str().map(str::to_string);
        api
    }

    async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Body<'_>) -> Reply {
        let url = format!("{}/api/v1{}", self.base, path);
        match send(&self.http, method, &url, self.token.as_deref(), headers, body).await {
            Sent::Answer { status, body } => Reply { status, body },
            Sent::Transport(e) => panic!("{method} {url}: {e}"),
        }
    }

    /// One request to `/api/v1{path}` with extra headers; never panics on status.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Reply {
        self.request(method, path, headers, body.as_ref().map_or(Body::Empty, Body::Json)).await
    }

    /// A request with a raw body and content type (for malformed input tests).
    pub async fn raw(&self, method: &str, path: &str, body: Vec<u8>, content_type: &str) -> Reply {
        self.request(method, path, &[], Body::Raw(body, content_type)).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None, &[]).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body), &[]).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call("PUT", path, Some(body), &[]).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None, &[]).await
    }
    /// A mutation carrying `X-Id-Block: base+count`.
    pub async fn with_block(&self, method: &str, path: &str, body: Option<Value>, base: u64, count: u64) -> Reply {
        let block = format!("{base}+{count}");
        self.call(method, path, body, &[("X-Id-Block", &block)]).await
    }

    pub async fn digest(&self) -> String {
        let r = self.get("/system/digest").await.ok();
        r.body["digest"].as_str().expect("digest").to_string()
    }
    pub async fn outputs(&self) -> Value {
        self.get("/hardware/outputs").await.ok().body
    }
}

/// Poll `GET /walls/{wall}/windows` (bounded: 200 tries, `limit`) until window
/// `wid` satisfies `pred`; that window. An answer that is not a list (a
/// refusal while no chassis serves) counts as not yet.
pub async fn wait_window(api: &Api, wall: u64, wid: u64, limit: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value, String> {
    let start = std::time::Instant::now();
    let mut last = Value::Null;
    for _ in 0..200 {
        let r = api.get(&format!("/walls/{wall}/windows")).await;
        if let Some(w) = r.body.as_array().and_then(|a| a.iter().find(|w| w["id"] == serde_json::json!(wid))) {
            last = w.clone();
            if pred(w) {
                return Ok(last);
            }
        }
        if start.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("window {wid} never matched within {limit:?}; last seen {last}"))
}
