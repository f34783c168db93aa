//! The egress: the superior as the pair's chassis see it.
//!
//! A `PUT` of the superior through the gateway reaches both chassis with the
//! egress in its place (`fills` of its route rule: [`Egress::toward_chassis`]),
//! one address and one account for both, so their states stay equal. Each
//! chassis then logs in here (`POST /_pairgate/egress/<login path>`) and makes
//! its upward calls here; [`Matcher`] pairs the two chassis' calls, the first
//! is sent to the real superior (`[cascade.superior]`) once, with the pair's
//! identity filled in, and both are answered with what the superior said.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::upward::{Arrival, Matcher, Reply, Slot};
use crate::chassis::upstream::{Outcome, UpRequest, Upstream};
use crate::config::{Cascade, Fill, RouteKind, RouteRule, RouteTable};
use crate::error::GatewayError;
use crate::session::Secret;

/// Where the egress is served, under the gateway's own prefix.
pub const PREFIX: &str = "/_pairgate/egress";
/// The account both chassis log in with at the egress.
pub const USERNAME: &str = "pairgate-egress";
/// Egress sessions kept (each chassis logs in before each call).
const TOKENS_KEPT: usize = 64;
/// Attempts at the superior for one call, and the pause after each failure.
const ATTEMPTS: [Duration; 3] = [Duration::from_millis(250), Duration::from_millis(750), Duration::ZERO];
/// The longest a matched call waits for the answer of the call it matched.
const WAIT_FOR_SAME: Duration = Duration::from_secs(20);

/// An upward call, kept to be sent again.
#[derive(Clone)]
struct Upward {
    method: Method,
    path: String,
    key: Option<String>,
    body: Bytes,
}

/// How long the background resend waits between rounds: from the first, doubling to the last.
const RESEND_PAUSE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(10));

/// The superior, as the gateway calls it.
struct Superior {
    upstream: Upstream,
    username: String,
    password: Secret,
    /// The session the gateway holds there (logged in again when refused).
    token: Mutex<Option<String>>,
}

pub struct Egress {
    serial: String,
    public_url: String,
    /// The account the chassis log in with here (derived from the session secret:
    /// the same across restarts, never stored).
    password: Secret,
    superior: Option<Superior>,
    /// The route rules that run now (a reload swaps them).
    routes: arc_swap::ArcSwap<RouteTable>,
    tokens: Mutex<VecDeque<Secret>>,
    matcher: Mutex<Matcher>,
    /// The last upward call that failed, per method and path: sent again in
    /// the background until the superior takes it ([`Egress::resend_failed`]),
    /// so that a registration made while the superior was away is not lost
    /// until the next source change. A later call to the same path replaces it
    /// (a registration reports the whole state).
    failed: Mutex<HashMap<String, Upward>>,
    settled: Notify,
    per_try: Duration,
}

impl Egress {
    pub fn new(
        cascade: &Cascade,
        superior_password: Option<Secret>,
        routes: RouteTable,
        session_secret: &[u8],
        per_try: Duration,
    ) -> Result<Egress, crate::chassis::upstream::UpstreamError> {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, session_secret);
        let password = Secret::new(hex::encode(ring::hmac::sign(&key, b"pairgate cascade egress account").as_ref()));
        let superior = match (&cascade.superior, superior_password) {
            (Some(s), Some(pw)) => Some(Superior {
                upstream: Upstream::new("superior", s.url.clone(), s.ca_cert.as_deref(), per_try)?,
                username: s.username.clone(),
                password: pw,
                token: Mutex::new(None),
            }),
            _ => None,
        };
        Ok(Egress {
            serial: cascade.serial.clone(),
            public_url: cascade.public_url.to_string(),
            password,
            superior,
            routes: arc_swap::ArcSwap::from_pointee(routes),
            tokens: Mutex::new(VecDeque::new()),
            matcher: Mutex::new(Matcher::default()),
            failed: Mutex::new(HashMap::new()),
            settled: Notify::new(),
            per_try,
        })
    }

    /// The configured superior's base URL, if there is one.
    pub fn superior_url(&self) -> Option<String> {
        self.superior.as_ref().map(|s| s.upstream.url.to_string())
    }

    fn value(&self, fill: Fill) -> Value {
        match fill {
            Fill::EgressUrl => json!(format!("{}{PREFIX}", self.public_url)),
            Fill::EgressUsername => json!(USERNAME),
            Fill::EgressPassword => json!(self.password.expose()),
            Fill::PairSerial => json!(self.serial),
            Fill::PairUrl => json!(self.public_url),
            Fill::CallbackUsername => json!(self.superior.as_ref().map(|s| s.username.as_str())),
            Fill::CallbackPassword => json!(self.superior.as_ref().map(|s| s.password.expose())),
        }
    }

    fn fills(&self, method: &str, path_and_query: &str, toward_chassis: bool) -> Vec<(String, Fill)> {
        let routes = self.routes.load();
        let Some(rule) = routes.rule(&routes.classify(method, path_and_query)) else { return Vec::new() };
        rule.fills.iter().filter(|(_, f)| f.toward_chassis() == toward_chassis).cloned().collect()
    }

    /// The body a chassis is sent for an entry: the fields its rule fills
    /// toward a chassis (the superior's address and account) are the egress'.
    pub fn toward_chassis(&self, method: &str, path_and_query: &str, body: Bytes) -> Bytes {
        let fills = self.fills(method, path_and_query, true);
        match fill(&body, &fills, |f| self.value(f)) {
            Some(filled) => Bytes::from(filled),
            None => body,
        }
    }
}

/// `body` with each of `fills` the body holds (not as `null`) replaced by its
/// value; `None` when nothing was replaced (or the body is not JSON).
pub fn fill(body: &[u8], fills: &[(String, Fill)], value: impl Fn(Fill) -> Value) -> Option<Vec<u8>> {
    if fills.is_empty() {
        return None;
    }
    let mut doc: Value = serde_json::from_slice(body).ok()?;
    let mut changed = false;
    for (at, f) in fills {
        if let Some(slot) = doc.pointer_mut(at) {
            if !slot.is_null() {
                *slot = value(*f);
                changed = true;
            }
        }
    }
    if !changed {
        return None;
    }
    serde_json::to_vec(&doc).ok()
}

/// The fields a mutation's rule fills toward a chassis, checked before it is
/// journaled: pointing the pair at a superior needs `[cascade.superior]`, and
/// the address given must be that one (the gateway will not send the pair's
/// identity anywhere else). Unsetting (`null`) is always allowed.
pub fn check_toward_chassis(egress: Option<&Egress>, rule: Option<&RouteRule>, body: &[u8]) -> Result<(), GatewayError> {
    let Some(rule) = rule else { return Ok(()) };
    let Some((at, _)) = rule.fills.iter().find(|(_, f)| *f == Fill::EgressUrl) else { return Ok(()) };
    let Ok(doc) = serde_json::from_slice::<Value>(body) else { return Ok(()) };
    let given = match doc.pointer(at) {
        None | Some(Value::Null) => return Ok(()),
        Some(v) => v.as_str().unwrap_or_default().trim_end_matches('/').to_string(),
    };
    let Some(configured) = egress.and_then(Egress::superior_url) else {
        return Err(GatewayError::Cascade {
            code: "cascade_not_configured",
            message: "this pair has no superior in gateway.toml: add [cascade] and [cascade.superior] there (the pair registers at its superior through the gateway, as one system), then set it here again".into(),
        });
    };
    if given != configured {
        return Err(GatewayError::Cascade {
            code: "superior_mismatch",
            message: format!("the superior configured in gateway.toml ([cascade.superior] url) is {configured}, not {given}: set url to it, or change gateway.toml"),
        });
    }
    Ok(())
}

fn reply_response(r: &Reply) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = (status, r.body.clone()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn failure(message: String) -> Reply {
    let body = json!({"error": {"code": "superior_unreachable", "message": format!("the superior could not be reached: {message}")}});
    Reply { status: 502, body: body.to_string().into_bytes() }
}

impl Egress {
    /// From now on, fill and classify by these route rules (a reload).
    pub fn set_routes(&self, routes: RouteTable) {
        self.routes.store(Arc::new(routes));
    }

    /// A request under [`PREFIX`]: a chassis logging in, or making an upward call.
    pub async fn handle(self: &Arc<Self>, method: &Method, path: &str, headers: &HeaderMap, body: &Bytes) -> Response {
        let up_path = path.strip_prefix(PREFIX).filter(|p| p.starts_with('/')).unwrap_or("/");
        if self.routes.load().classify(method.as_str(), up_path).kind == RouteKind::Login {
            return self.login(body);
        }
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let token = crate::session::bearer_token(authorization);
        let known = token.is_ok_and(|t| self.tokens.lock().iter().any(|k| k.matches(t)));
        if !known {
            return GatewayError::Unauthorized { code: "invalid_token", message: "log in at the egress first".into() }.into_response();
        }
        if self.superior.is_none() {
            return GatewayError::Cascade {
                code: "cascade_not_configured",
                message: "this pair has no [cascade.superior] in gateway.toml".into(),
            }
            .into_response();
        }
        let fills = self.fills(method.as_str(), up_path, false);
        let body = fill(body, &fills, |f| self.value(f)).map(Bytes::from).unwrap_or_else(|| body.clone());
        let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut h = Sha256::new();
        h.update(method.as_str());
        h.update([0]);
        h.update(up_path);
        h.update([0]);
        h.update(&body);
        let digest: [u8; 32] = h.finalize().into();
        let arrival = self.matcher.lock().arrive(key.as_deref(), digest, Instant::now());
        match arrival {
            Arrival::Send(ticket) => {
                let reply = self.send_upward(method, up_path, key.as_deref(), body.clone()).await;
                let slot = format!("{method} {up_path}");
                match &reply {
                    Ok(_) => drop(self.failed.lock().remove(&slot)),
                    Err(_) => drop(
                        self.failed
                            .lock()
                            .insert(slot, Upward { method: method.clone(), path: up_path.to_string(), key: key.clone(), body }),
                    ),
                }
                tracing::info!(
                    path = up_path,
                    key = key.as_deref().unwrap_or("-"),
                    status = reply.as_ref().map_or_else(|r| r.status, |r| r.status),
                    "cascade: sent upward once for the pair"
                );
                let response = reply_response(reply.as_ref().unwrap_or_else(|r| r));
                self.matcher.lock().settle(ticket, reply);
                self.settled.notify_waiters();
                response
            }
            Arrival::Same(ticket) => {
                let deadline = Instant::now() + WAIT_FOR_SAME;
                loop {
                    let notified = self.settled.notified();
                    match self.matcher.lock().slot(ticket) {
                        Some(Slot::Answered(r)) | Some(Slot::Failed(r)) => {
                            tracing::info!(
                                path = up_path,
                                key = key.as_deref().unwrap_or("-"),
                                "cascade: the other chassis' call, answered as the first"
                            );
                            return reply_response(r);
                        }
                        Some(Slot::Sending) => {}
                        None => return reply_response(&failure("the call it matched was forgotten".into())),
                    }
                    if Instant::now() >= deadline {
                        return reply_response(&failure("the matching call is still on its way".into()));
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
                }
            }
        }
    }

    fn login(&self, body: &Bytes) -> Response {
        #[derive(serde::Deserialize)]
        struct Login {
            username: String,
            password: String,
        }
        let ok = serde_json::from_slice::<Login>(body).is_ok_and(|l| l.username == USERNAME && self.password.matches(&l.password));
        if !ok {
            return GatewayError::Unauthorized { code: "invalid_credentials", message: "wrong egress username or password".into() }
                .into_response();
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        let mut tokens = self.tokens.lock();
        tokens.push_back(Secret::new(token.clone()));
        while tokens.len() > TOKENS_KEPT {
            tokens.pop_front();
        }
        (StatusCode::OK, axum::Json(json!({"token": token, "user": {"id": 0, "username": USERNAME, "role": "admin"}}))).into_response()
    }

    /// Runs for the gateway's life (a task of its own): every call the
    /// superior could not be reached for is sent again, pausing longer after
    /// each round that still failed.
    pub async fn resend_failed(self: Arc<Self>) {
        let mut pause = RESEND_PAUSE.0;
        loop {
            tokio::time::sleep(pause).await;
            let calls: Vec<(String, Upward)> = self.failed.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let mut all_taken = true;
            for (slot, call) in calls {
                match self.send_upward(&call.method, &call.path, call.key.as_deref(), call.body.clone()).await {
                    Ok(reply) => {
                        tracing::info!(path = %call.path, status = reply.status, "cascade: a call the superior could not be reached for, sent again");
                        let mut failed = self.failed.lock();
                        // Unless a newer call took its place meanwhile.
                        if failed.get(&slot).is_some_and(|f| f.body == call.body) {
                            failed.remove(&slot);
                        }
                    }
                    Err(_) => all_taken = false,
                }
            }
            pause = if all_taken { RESEND_PAUSE.0 } else { (pause * 2).min(RESEND_PAUSE.1) };
        }
    }

    /// One call at the superior, logged in as `[cascade.superior]`'s account
    /// (again once if the session was refused), retried on a transport
    /// failure or a 5xx a few times.
    async fn send_upward(&self, method: &Method, path: &str, key: Option<&str>, body: Bytes) -> Result<Reply, Reply> {
        let Some(sup) = &self.superior else { return Err(failure("no superior configured".into())) };
        let mut last = String::new();
        for pause in ATTEMPTS {
            let token = match self.superior_token(sup).await {
                Ok(t) => t,
                Err(e) => {
                    last = e;
                    tokio::time::sleep(pause).await;
                    continue;
                }
            };
            match self.call(sup, method, path, key, &body, token).await {
                Outcome::Answered(a) if a.status == 401 => {
                    *sup.token.lock() = None;
                    last = "the superior refused the gateway's session".into();
                    continue;
                }
                Outcome::Answered(a) if a.status < 500 => return Ok(Reply { status: a.status, body: a.body.to_vec() }),
                other => last = other.describe(),
            }
            tokio::time::sleep(pause).await;
        }
        tracing::warn!(path, "cascade: the superior could not be reached: {last}");
        Err(failure(last))
    }

    async fn call(&self, sup: &Superior, method: &Method, path: &str, key: Option<&str>, body: &Bytes, token: String) -> Outcome {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(v) = key.and_then(|k| HeaderValue::try_from(k).ok()) {
            headers.insert("idempotency-key", v);
        }
        sup.upstream
            .send(UpRequest {
                method: method.clone(),
                path_and_query: path,
                headers,
                body: body.clone(),
                token: Some(token),
                timeout: self.per_try,
            })
            .await
    }

    async fn superior_token(&self, sup: &Superior) -> Result<String, String> {
        if let Some(t) = sup.token.lock().clone() {
            return Ok(t);
        }
        let (token, _) = crate::session::broker::login(&sup.upstream, &sup.username, sup.password.expose(), self.per_try)
            .await
            .map_err(|e| format!("logging in as {}: {e}", sup.username))?;
        let token = token.expose().to_string();
        *sup.token.lock() = Some(token.clone());
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_replace_what_the_body_holds_and_leave_null_and_absent_alone() {
        let fills = vec![
            ("/url".to_string(), Fill::EgressUrl),
            ("/password".to_string(), Fill::EgressPassword),
            ("/x/y".to_string(), Fill::PairSerial),
        ];
        let value = |f: Fill| json!(format!("{f:?}"));
        let out = fill(br#"{"url":"https://up","username":"u","password":"p"}"#, &fills, value).expect("filled");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, json!({"url": "EgressUrl", "username": "u", "password": "EgressPassword"}));
        assert_eq!(fill(br#"{"url":null}"#, &fills, value), None, "unsetting stays unset");
        assert_eq!(fill(b"not json", &fills, value), None);
    }
}
