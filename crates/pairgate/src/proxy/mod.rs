//! The life of a request through the gateway, as named phases.
//!
//! ```text
//! canonicalise ─▶ classify ─▶ authenticate ─▶ read body ─┬─ read ─────▶ primary, else the other in-sync chassis
//!                                                         ├─ mutate ───▶ sequence + journal ─▶ appliers ─▶ answer
//!                                                         ├─ login / logout (session broker)
//!                                                         ├─ events ───▶ WebSocket relay that follows the primary
//!                                                         ├─ admin ────▶ health, status, `/_pairgate` actions
//!                                                         └─ static ───▶ primary, else the other
//! ```
//! [`handle`] runs the first phases once, building one [`Ctx`]; each route
//! kind's phase is a file of this folder taking that context, its doc saying
//! when it runs. (Pingora's `ProxyHttp` is the model.)

mod accounts;
mod admin;
mod body;
mod context;
mod dashboard;
mod events;
mod idempotency;
mod login;
mod mutate;
mod read;
mod relay;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::config::RouteKind;
use crate::error::GatewayError;
use crate::front::ClientAddr;
use crate::gateway::Gateway;
use crate::path::Reserved;
use crate::session::{bearer_token, AuthError};

pub use context::{Ctx, Session};
pub use read::HEDGE_AFTER;

type Gw = Arc<Gateway>;

/// The one handler: every request enters here. It names the request (its
/// `request` span: the request id, and the seq once a mutation has one, on
/// every log line of its life), runs the phases, then the finish phase.
pub async fn handle(State(gw): State<Gw>, req: Request) -> Response {
    let started = Instant::now();
    let id = request_id(req.headers());
    let span = tracing::info_span!("request", id = %id, seq = tracing::field::Empty);
    let access = tracing::enabled!(target: ACCESS_LOG, tracing::Level::INFO).then(|| (req.method().clone(), req.uri().path().to_string()));
    let (class, mut response) = phases(&gw, req).instrument(span.clone()).await;
    finish(&gw, &span, &id, class, access, started, &mut response);
    response
}

/// The target of the access log's lines (`RUST_LOG=pairgate::access=off` turns it off).
pub const ACCESS_LOG: &str = "pairgate::access";

/// Phase 6, finish: runs once the response head is decided (its body may
/// still stream). Counts the request in `/metrics` by class and status, and
/// writes its access-log line: method, path (never the query: a browser's
/// event socket carries its token there), class, status, seq, the chassis that
/// answered, duration.
fn finish(
    gw: &Gateway,
    span: &tracing::Span,
    id: &str,
    class: &'static str,
    access: Option<(axum::http::Method, String)>,
    started: Instant,
    response: &mut Response,
) {
    let took = started.elapsed();
    let status = response.status().as_u16();
    gw.metrics.request(class, status, took);
    if let Ok(v) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    if let Some((method, path)) = access {
        let seq = response.headers().get("x-pairgate-seq").and_then(|v| v.to_str().ok()).unwrap_or("-");
        let chassis = response.extensions().get::<relay::AnsweredBy>().map_or("-", |c| c.0.as_str());
        let _in = span.enter();
        tracing::info!(target: ACCESS_LOG, %method, path, class, status, seq, chassis, duration_ms = took.as_secs_f64() * 1e3, "request");
    }
}

/// The request id header: a client's (or a proxy's) own, if it is a short
/// token, else one the gateway makes; sent back on the response.
pub const REQUEST_ID: &str = "x-request-id";

fn request_id(headers: &HeaderMap) -> String {
    let given = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')));
    match given {
        Some(v) => v.to_string(),
        None => {
            static NEXT: AtomicU64 = AtomicU64::new(1);
            format!("{:x}-{:x}", process_tag(), NEXT.fetch_add(1, Ordering::Relaxed))
        }
    }
}

/// Tells this process' request ids from an earlier run's (random, per process).
fn process_tag() -> u32 {
    static TAG: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *TAG.get_or_init(rand::random)
}

/// Phases 0 to 5; the route class for the finish phase, and the response.
async fn phases(gw: &Gw, req: Request) -> (&'static str, Response) {
    let (mut parts, body) = req.into_parts();
    // Phase 0, canonicalise: one spelling of the path, decided before anything
    // looks at it; that spelling is classified and forwarded, nothing else.
    let path = match crate::path::canonical(parts.uri.path()) {
        Ok(p) => p,
        Err(e) => return ("refused", GatewayError::BadPath(e.to_string()).into_response()),
    };
    let query = parts.uri.query().map(str::to_string);
    let path_and_query = match &query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    // Phase 1, classify: `/_sim` (the simulator's fault hooks) is never
    // forwarded anywhere and `/_pairgate` is the gateway's own; otherwise the
    // route rules of `gateway.toml` say what kind of request this is (a
    // mutating method with no rule is a mutation, never sent to one chassis only).
    let reserved = crate::path::reserved(&path);
    if reserved == Some(Reserved::Refused) {
        return ("refused", GatewayError::NoRoute(path).into_response());
    }
    let cfg = gw.cfg.load_full();
    let class = cfg.classify(parts.method.as_str(), &path);
    let mut ctx = Ctx {
        client: parts.extensions.get::<ClientAddr>().map(|c| c.0),
        method: parts.method.clone(),
        path,
        path_and_query,
        query,
        headers: std::mem::take(&mut parts.headers),
        class,
        body: Bytes::new(),
        cfg,
    };
    if reserved == Some(Reserved::Gateway) {
        let response = match body::read(body, body::unauthenticated_limit(&ctx.cfg)).await {
            Ok(b) if ctx.path.starts_with(crate::cascade::egress::PREFIX) => match &gw.egress {
                Some(egress) => egress.handle(&ctx.method, &ctx.path, &ctx.headers, &b).await,
                None => GatewayError::NoRoute(ctx.path.clone()).into_response(),
            },
            Ok(b) => {
                ctx.body = b;
                admin::gateway_route(gw, &ctx).await
            }
            Err(e) => e.into_response(),
        };
        return ("gateway", response);
    }
    let response = match ctx.class.kind {
        RouteKind::Static => read::forward(gw, &ctx, None).await,
        RouteKind::Health => admin::health(gw),
        RouteKind::Metrics => admin::metrics(gw, &ctx),
        RouteKind::Login => match body::read(body, body::unauthenticated_limit(&ctx.cfg)).await {
            Ok(b) => {
                ctx.body = b;
                login::login(gw, &ctx).await
            }
            Err(e) => e.into_response(),
        },
        RouteKind::Events => {
            // The browser's WebSocket cannot set a header: its token may come
            // in the query.
            let session = match authenticate(gw, &ctx.headers, ctx.query.as_deref()) {
                Ok(s) => s,
                Err(e) => return ("events", e.into_response()),
            };
            // The upgrade reads its own headers (`Connection`, `Upgrade`, the key).
            parts.headers = std::mem::take(&mut ctx.headers);
            match WebSocketUpgrade::from_request_parts(&mut parts, gw).await {
                Ok(ws) => events::relay(gw, ws, session),
                Err(rej) => rej.into_response(),
            }
        }
        RouteKind::Logout | RouteKind::Read | RouteKind::Mutate => {
            let session = match authenticate(gw, &ctx.headers, None) {
                Ok(s) => s,
                Err(e) => return (ctx.class.kind.as_str(), e.into_response()),
            };
            // Phase 3, read body: bounded by `listen.max_body_bytes` for a
            // request a session vouches for.
            ctx.body = match body::read(body, ctx.cfg.listen.max_body_bytes).await {
                Ok(b) => b,
                Err(e) => return (ctx.class.kind.as_str(), e.into_response()),
            };
            let response = match ctx.class.kind {
                RouteKind::Logout => login::logout(gw, &session),
                RouteKind::Read => read::forward(gw, &ctx, Some(&session)).await,
                _ => {
                    let response = mutate::mutate(gw, &ctx, &session).await;
                    // Before the answer leaves: no read arriving after it
                    // shares a chassis request sent before it.
                    gw.reads.mutation_answered();
                    if response.status().is_success() {
                        accounts::end_sessions_of_changed_account(gw, &ctx);
                    }
                    response
                }
            };
            if relay::is_account_refused(&response) {
                accounts::end_account(gw, &session.principal.username, "a chassis refused the account's credentials");
            }
            response
        }
    };
    (ctx.class.kind.as_str(), response)
}

/// Phase 2, authenticate: runs for every kind but static, health and login.
/// The bearer token must be a live gateway session (the browser never holds
/// a chassis token).
fn authenticate(gw: &Gateway, headers: &HeaderMap, query: Option<&str>) -> Result<Session, GatewayError> {
    let from_header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = match bearer_token(from_header) {
        Ok(t) => t.to_string(),
        Err(_) => match query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token="))) {
            Some(t) => t.to_string(),
            None => return Err(GatewayError::MissingToken),
        },
    };
    match gw.broker.store.verify(&token) {
        Ok(principal) => Ok(Session { principal, token }),
        Err(e) => Err(auth_error(e)),
    }
}

fn auth_error(e: AuthError) -> GatewayError {
    GatewayError::Unauthorized { code: e.code(), message: e.message() }
}
