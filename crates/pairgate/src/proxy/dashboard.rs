//! The dashboard: an HTML page at `/_pairgate/` that shows the pair at a
//! glance and live, and takes the admin actions with a confirmation. Served
//! by the gateway itself from files built into the binary (no CDN: it works
//! offline), under a Content-Security-Policy that allows nothing else.
//!
//! - `GET /_pairgate/` the page; `/_pairgate/dashboard.js` and `.css` its
//!   script and style (no login needed: they hold no data);
//! - `POST /_pairgate/login` `{"token": …}` (the admin token) or
//!   `{"username": …, "password": …}` (an account whose role is `admin`,
//!   logged in like any other: a gateway session): `{"token", "who"}`, the
//!   bearer the page sends from then on;
//! - `POST /_pairgate/logout`: ends that session (the admin token has none);
//! - `GET /_pairgate/events`: Server-Sent Events, `status` (what
//!   `/_pairgate/status` answers) at once, within a moment of any change and
//!   every second, and `timeline` (one [`crate::timeline::Event`] each: the
//!   ones kept first, then new ones as they happen); it ends when the gateway
//!   stops or the bearer stops being valid;
//! - `GET /_pairgate/timeline`: the events kept, as JSON.
//!
//! Everything but the page's files needs the admin token or an admin
//! account's session as a bearer (`status::check_admin`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::Ctx;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::timeline::Event;

const PAGE: &str = include_str!("../../assets/dashboard/index.html");
const SCRIPT: &str = include_str!("../../assets/dashboard/dashboard.js");
const STYLE: &str = include_str!("../../assets/dashboard/dashboard.css");

/// Nothing but the page's own files, and its own calls back to the gateway.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
                      base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// How often a `status` event is sent when nothing happened.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Runs for a path under `/_pairgate` that is the dashboard's; `None` for
/// any other (the status page and the admin actions).
pub async fn route(gw: &Arc<Gateway>, ctx: &Ctx) -> Option<Response> {
    use axum::http::Method;
    let response = match (&ctx.method, ctx.path.as_str()) {
        (&Method::GET, "/_pairgate") => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, crate::path::DASHBOARD)]).into_response(),
        (&Method::GET, crate::path::DASHBOARD) => file(PAGE, "text/html; charset=utf-8"),
        (&Method::GET, "/_pairgate/dashboard.js") => file(SCRIPT, "text/javascript; charset=utf-8"),
        (&Method::GET, "/_pairgate/dashboard.css") => file(STYLE, "text/css; charset=utf-8"),
        (&Method::POST, "/_pairgate/login") => login(gw, ctx).await,
        (&Method::POST, "/_pairgate/logout") => logout(gw, &ctx.headers),
        (&Method::GET, "/_pairgate/events") => events(gw, &ctx.headers),
        (&Method::GET, "/_pairgate/timeline") => match crate::status::check_admin(gw, &ctx.headers) {
            Ok(_) => (StatusCode::OK, axum::Json(json!(gw.timeline.recent()))).into_response(),
            Err(e) => e.into_response(),
        },
        _ => return None,
    };
    Some(response)
}

fn file(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The dashboard's login: the admin token, or an admin account.
async fn login(gw: &Gateway, ctx: &Ctx) -> Response {
    #[derive(serde::Deserialize)]
    struct Login {
        token: Option<String>,
        username: Option<String>,
        password: Option<String>,
    }
    let req: Login = match serde_json::from_slice(&ctx.body) {
        Ok(r) => r,
        Err(e) => {
            return GatewayError::MalformedJson(format!("{e}; expected {{\"token\": …}} or {{\"username\": …, \"password\": …}}"))
                .into_response()
        }
    };
    match (req.token, req.username, req.password) {
        (Some(token), None, None) => {
            let token = token.trim().to_string();
            if !gw.admin_token.matches(&token) {
                return GatewayError::Unauthorized { code: "invalid_token", message: "this is not the gateway's admin token".into() }
                    .into_response();
            }
            (StatusCode::OK, axum::Json(json!({"token": token, "who": crate::status::Admin::Token.who()}))).into_response()
        }
        (None, Some(_), Some(_)) => {
            // Logged in as any user is (the login limit, a chassis checks the
            // password): a gateway session, kept only if the role is admin.
            let answer = super::login::login(gw, ctx).await;
            if answer.status() != StatusCode::OK {
                return answer;
            }
            let body = match axum::body::to_bytes(answer.into_body(), 64 * 1024).await {
                Ok(b) => b,
                Err(e) => return GatewayError::Internal(format!("reading the login's answer: {e}")).into_response(),
            };
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let Some(token) = v["token"].as_str() else {
                return GatewayError::Internal("the login's answer has no token".into()).into_response();
            };
            match crate::status::admin_of(gw, token) {
                Ok(who) => (StatusCode::OK, axum::Json(json!({"token": token, "who": who.who()}))).into_response(),
                Err(e) => {
                    end_session(gw, token);
                    e.into_response()
                }
            }
        }
        _ => GatewayError::MalformedJson("expected {\"token\": …} or {\"username\": …, \"password\": …}".into()).into_response(),
    }
}

/// Ends the gateway session `token` names, if it is one.
fn end_session(gw: &Gateway, token: &str) {
    if let Ok(p) = gw.broker.store.verify(token) {
        if let Err(e) = gw.broker.store.revoke(&p.session_id) {
            tracing::error!("ending the dashboard's session of {}: {e}", p.username);
            gw.stats.store_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn logout(gw: &Gateway, headers: &HeaderMap) -> Response {
    let token = match crate::status::bearer(headers) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    match crate::status::admin_of(gw, token) {
        Ok(crate::status::Admin::Account(_)) => {
            end_session(gw, token);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(crate::status::Admin::Token) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// Where one dashboard's event stream is.
struct Feed {
    gw: Arc<Gateway>,
    /// The bearer it was opened with, checked again at every status.
    bearer: String,
    rx: tokio::sync::broadcast::Receiver<Event>,
    /// Timeline events to send before waiting for new ones.
    backlog: VecDeque<Event>,
    /// The last timeline event sent (a lagging receiver skips to after it).
    last_id: u64,
    /// A status goes out next (after a timeline event, or at first).
    status_due: bool,
    tick: tokio::time::Interval,
}

fn events(gw: &Arc<Gateway>, headers: &HeaderMap) -> Response {
    let bearer = match crate::status::bearer(headers).and_then(|b| crate::status::admin_of(gw, b).map(|_| b.to_string())) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let rx = gw.timeline.subscribe();
    let mut tick = tokio::time::interval(STATUS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let feed = Feed { gw: gw.clone(), bearer, rx, backlog: gw.timeline.recent().into(), last_id: 0, status_due: true, tick };
    let stream = futures_util::stream::unfold(feed, |mut f| async move {
        let event = f.next().await?;
        Some((Ok::<_, Infallible>(event), f))
    });
    let mut response = Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    // Through a proxy that buffers (nginx), events would come in lumps.
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

impl Feed {
    /// The next event to send; `None` ends the stream.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                if e.id > self.last_id {
                    self.last_id = e.id;
                    return Some(timeline_event(&e));
                }
                continue;
            }
            if self.status_due {
                self.status_due = false;
                return Some(status_event(&self.gw));
            }
            tokio::select! {
                _ = self.gw.shutdown.cancelled() => return None,
                got = self.rx.recv() => match got {
                    Ok(e) => {
                        self.status_due = true;
                        self.backlog.push_back(e);
                    }
                    Err(RecvError::Lagged(_)) => {
                        self.status_due = true;
                        self.backlog = self.gw.timeline.recent().into();
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = self.tick.tick() => {
                    if crate::status::admin_of(&self.gw, &self.bearer).is_err() {
                        return None;
                    }
                    self.status_due = true;
                }
            }
        }
    }
}

fn timeline_event(e: &Event) -> SseEvent {
    SseEvent::default().event("timeline").id(e.id.to_string()).data(json!(e).to_string())
}

fn status_event(gw: &Gateway) -> SseEvent {
    SseEvent::default().event("status").data(crate::status::body(gw).to_string())
}
