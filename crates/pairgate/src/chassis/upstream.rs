//! One chassis as the gateway sees it: an HTTPS client that trusts only that
//! chassis' certificate (or CA) from `gateway.toml`, with pooled keep-alive
//! connections, and a single question — what happened to this request?
//!
//! The answer is an [`Outcome`], because the gateway's decisions (docs/design.md's
//! answer table) turn on the difference between "the chassis answered",
//! "the request certainly never reached it" and "it may or may not have".

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
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
        self.error().map(|(code, _)| code)
    }
    /// The chassis' `error.code` and `error.message` (cut at 200 characters).
    pub fn error(&self) -> Option<(String, String)> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        let code = v["error"]["code"].as_str()?.to_string();
        Some((code, v["error"]["message"].as_str().unwrap_or("").chars().take(200).collect()))
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
    /// The chassis closed the connection before it took the whole request
    /// body. It cannot have applied a request it did not read; most often it
    /// answered early (a stale session's 401, a 413) and closed, and that
    /// answer was lost with the connection. Treated like [`Outcome::NoAnswer`]
    /// by the answer table; the broker checks the session when it sees one.
    Cut(Cut),
}

/// How far a request body got before the connection closed under it.
#[derive(Clone, Debug)]
pub struct Cut {
    /// Bytes of the body handed to the connection.
    pub sent: u64,
    /// The body's length, when known.
    pub total: Option<u64>,
    /// The transport's error, and what the gateway found out afterwards.
    pub cause: String,
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let of = self.total.map(|t| format!(" of {}", bytes_text(t))).unwrap_or_default();
        write!(
            f,
            "the chassis closed the connection after {}{of} of the request body (no answer could be read): {}",
            bytes_text(self.sent),
            self.cause
        )
    }
}

/// `1234567` → "1.2 MB (1234567 bytes)".
pub fn bytes_text(n: u64) -> String {
    if n >= 100_000 {
        format!("{:.1} MB ({n} bytes)", n as f64 / 1e6)
    } else {
        format!("{n} bytes")
    }
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

    /// What happened, as `/metrics` labels it.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Answered(a) => match a.status / 100 {
                2 => "2xx",
                3 => "3xx",
                4 => "4xx",
                _ => "5xx",
            },
            Outcome::Refused(_) => "refused",
            Outcome::NoAnswer(_) => "no_answer",
            Outcome::AccountRefused(_) => "account_refused",
            Outcome::Cut(_) => "cut",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Outcome::Answered(a) => match a.error() {
                Some((code, message)) => format!("answered {} ({code}: {message})", a.status),
                None => format!("answered {}", a.status),
            },
            Outcome::Refused(e) => format!("refused: {e}"),
            Outcome::NoAnswer(e) => format!("no answer: {e}"),
            Outcome::AccountRefused(e) => format!("not sent: {e}"),
            Outcome::Cut(c) => c.to_string(),
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

/// An HTTPS client for one chassis and the rustls configuration behind it
/// (which the events WebSocket uses too).
pub struct Client {
    http: reqwest::Client,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    /// A client for `url` that trusts only `ca_cert` (https) or plain http.
    pub fn new(name: &str, url: &ChassisUrl, ca_cert: Option<&Path>, per_try: Duration) -> Result<Client, UpstreamError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(per_try)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            // Redirects are the chassis' business with the browser, not ours.
            .redirect(reqwest::redirect::Policy::none())
            // Straight to the chassis whatever HTTPS_PROXY says: the trust
            // anchor is the chassis' own, and a proxy on the way would only
            // add a hop (and, per request, the proxy rules' matching).
            .no_proxy()
            // Every resend is the gateway's decision (the answer table, the
            // appliers' Idempotency-Key), never the HTTP client's.
            .retry(reqwest::retry::never());
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
        Ok(Client { http, tls })
    }
}

/// One chassis: its name, URL and client.
pub struct Upstream {
    pub name: String,
    pub url: ChassisUrl,
    /// `url` parsed once: each request's URL is this with its own path and
    /// query set (the host is never parsed again per request).
    base: reqwest::Url,
    /// The client and the trust it was built with: swapped whole by
    /// [`Upstream::retrust`] (a reload); a request in flight keeps the one it took.
    client: arc_swap::ArcSwap<Client>,
    /// Where [`Upstream::send`]'s outcomes and latencies are counted (the
    /// gateway's chassis; none for the CLI's one-off clients).
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// The URL of `path_and_query` (`/api/v1/…[?…]`) on the chassis at `base`:
/// what parsing `base` and the path written after it gives, without parsing
/// the host again.
fn url_for(base: &reqwest::Url, path_and_query: &str) -> reqwest::Url {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let mut url = base.clone();
    url.set_path(path);
    url.set_query(query);
    url
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
        let client = Client::new(name, &url, ca_cert, per_try)?;
        let base = reqwest::Url::parse(&url.to_string())
            .map_err(|e| UpstreamError::Client { chassis: name.into(), reason: format!("{url} is not a URL: {e}") })?;
        Ok(Upstream { name: name.to_string(), url, base, client: arc_swap::ArcSwap::from_pointee(client), metrics: None })
    }

    /// From the next request on, use `client` (built by [`Client::new`] for
    /// this chassis' URL: a reload's new trust anchor). Pooled connections of
    /// the old client close once the requests using them are done.
    pub fn retrust(&self, client: Client) {
        self.client.store(Arc::new(client));
    }

    /// The rustls client configuration now in use (none for plain http).
    pub fn tls(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.client.load().tls.clone()
    }

    /// The same chassis, its requests counted in `metrics`.
    pub fn counted(self, metrics: Arc<crate::metrics::Metrics>) -> Upstream {
        Upstream { metrics: Some(metrics), ..self }
    }

    /// Send one request and classify what happened (counted, see [`Upstream::counted`]).
    pub async fn send(&self, req: UpRequest<'_>) -> Outcome {
        let started = std::time::Instant::now();
        let outcome = self.send_uncounted(req).await;
        if let Some(m) = &self.metrics {
            m.chassis_request(&self.name, outcome.label(), started.elapsed());
        }
        outcome
    }

    /// A body of [`COUNTED_BODY`] bytes or more goes as a counted stream, so a
    /// connection closed under it is told apart ([`Outcome::Cut`]).
    async fn send_uncounted(&self, req: UpRequest<'_>) -> Outcome {
        if req.body.len() < COUNTED_BODY {
            let r = self.request(&req.method, req.path_and_query, req.headers, req.token.as_deref(), req.timeout).body(req.body);
            return match r.send().await {
                Ok(resp) => read_answer(resp).await,
                Err(e) => classify(&e, None),
            };
        }
        let total = req.body.len() as u64;
        let body = req.body;
        let chunks = futures_util::stream::iter(
            (0..body.len())
                .step_by(COUNTED_BODY)
                .map(move |at| Ok::<_, std::io::Error>(body.slice(at..(at + COUNTED_BODY).min(body.len())))),
        );
        let sent = Arc::new(AtomicU64::new(0));
        match self
            .send_stream(req.method, req.path_and_query, req.headers, req.token.as_deref(), req.timeout, chunks, Some(total), &sent)
            .await
        {
            Ok(resp) => read_answer(resp).await,
            Err(o) => o,
        }
    }

    /// Send a body from a stream (e.g. another chassis' export, never held
    /// whole), counting the bytes handed over in `sent`. The answer's head on
    /// success; what happened otherwise ([`Outcome::Cut`] if the connection
    /// closed before the stream's end).
    #[allow(clippy::too_many_arguments)]
    pub async fn send_stream<S>(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        token: Option<&str>,
        timeout: Duration,
        body: S,
        total: Option<u64>,
        sent: &Arc<AtomicU64>,
    ) -> Result<reqwest::Response, Outcome>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let counter = sent.clone();
        let counted = body.map(move |chunk| {
            if let Ok(c) = &chunk {
                counter.fetch_add(c.len() as u64, Ordering::Relaxed);
            }
            chunk
        });
        let mut r = self.request(&method, path, headers, token, timeout).body(reqwest::Body::wrap_stream(counted));
        if let Some(n) = total {
            r = r.header(reqwest::header::CONTENT_LENGTH, n);
        }
        match r.send().await {
            Ok(resp) => Ok(resp),
            Err(e) => Err(classify(&e, Some((sent.load(Ordering::Relaxed), total)))),
        }
    }

    /// The answer's head of a request whose answer body is to be streamed
    /// (an export): `Ok` for a 2xx, what happened otherwise.
    pub async fn open(&self, req: UpRequest<'_>) -> Result<reqwest::Response, Outcome> {
        let r = self.request(&req.method, req.path_and_query, req.headers, req.token.as_deref(), req.timeout).body(req.body);
        match r.send().await {
            Ok(resp) if resp.status().is_success() => Ok(resp),
            Ok(resp) => Err(read_answer(resp).await),
            Err(e) => Err(classify(&e, None)),
        }
    }

    fn request(&self, method: &Method, path: &str, headers: HeaderMap, token: Option<&str>, timeout: Duration) -> reqwest::RequestBuilder {
        let url = url_for(&self.base, path);
        let mut r = self.client.load().http.request(method.clone(), url).headers(headers).timeout(timeout);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
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

/// Bodies from this size on are sent as a counted stream of chunks this
/// large (larger than a socket's buffers is where an early answer gets lost).
pub const COUNTED_BODY: usize = 64 << 10;

/// Read an answer's body.
pub(crate) async fn read_answer(resp: reqwest::Response) -> Outcome {
    let status = resp.status().as_u16();
    let content_type = resp.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    match resp.bytes().await {
        Ok(body) => Outcome::Answered(Answered { status, content_type, body }),
        Err(e) => Outcome::NoAnswer(format!("answered {status}, then reading the answer failed: {}", error_chain(&e))),
    }
}

/// What a transport error means. `progress`: the bytes of a counted body
/// handed over, and its length — a body that did not get to its end is a
/// [`Outcome::Cut`].
fn classify(e: &reqwest::Error, progress: Option<(u64, Option<u64>)>) -> Outcome {
    if e.is_connect() {
        return Outcome::Refused(error_chain(e));
    }
    match progress {
        Some((sent, total)) if total.is_some_and(|t| sent < t) && !e.is_timeout() => {
            Outcome::Cut(Cut { sent, total, cause: error_chain(e) })
        }
        Some((sent, total)) => {
            let of = total.map(|t| format!(" of {}", bytes_text(t))).unwrap_or_default();
            Outcome::NoAnswer(format!("{} ({} of the request body{of} sent)", error_chain(e), bytes_text(sent)))
        }
        None => Outcome::NoAnswer(error_chain(e)),
    }
}

/// The whole error chain in one line (reqwest's top error hides the cause,
/// e.g. "invalid peer certificate: UnknownIssuer").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requests_url_is_what_parsing_the_base_and_its_path_would_give() {
        for base in ["https://127.0.0.1:8444", "http://[::1]:8080/", "https://Chassis-A.site:443"] {
            let chassis = ChassisUrl::parse(base).expect("chassis url");
            let parsed = reqwest::Url::parse(&chassis.to_string()).expect("base");
            for path in [
                "/api/v1/walls",
                "/api/v1/sources/a%20b",
                "/api/v1/walls/3/windows?x=1&y=2",
                "/api/v1/x?q=a b&r='",
                "/api/v1/a%2Fb/ü",
                "/api/v1/walls?",
                "/app.js",
                "/",
            ] {
                let want = reqwest::Url::parse(&format!("{chassis}{path}")).expect("whole");
                assert_eq!(url_for(&parsed, path), want, "{base} {path}");
                assert_eq!(url_for(&parsed, path).as_str(), want.as_str());
            }
        }
    }
}
