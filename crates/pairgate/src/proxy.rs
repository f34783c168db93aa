//! The life of a request through the gateway, as named phases.
//!
//! ```text
//! classify ─▶ authenticate ─┬─ read ─────▶ primary, else the other in-sync chassis
//!                           ├─ mutate ───▶ sequence + journal ─▶ appliers ─▶ answer
//!                           ├─ login / logout (session broker)
//!                           ├─ events ───▶ WebSocket relay that follows the primary
//!                           └─ static ───▶ primary, else the other
//! ```
//! Each phase is one function below with a comment saying when it runs.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use reqwest::header::HeaderMap as UpHeaders;
use tracing::Instrument;

use crate::broker::{BrokerError, Runs};
use crate::config::RouteKind;
use crate::detector::{ChassisState, Signal};
use crate::error::GatewayError;
use crate::front::ClientAddr;
use crate::gateway::Gateway;
use crate::journal::{ClientKeyState, ClientResponse, Draft};
use crate::pair::Pair;
use crate::path::Reserved;
use crate::session::{bearer_token, AuthError, Principal};
use crate::upstream::{forwardable, Answered, Outcome, UpRequest};
use crate::verdict::{self, Side, Standing, Then, Verdict};

type Gw = Arc<Gateway>;

/// The one handler: every request enters here.
pub async fn handle(State(gw): State<Gw>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    // Phase 0, canonicalise: one spelling of the path, decided before anything
    // looks at it; that spelling is classified and forwarded, nothing else.
    let path = match crate::path::canonical(parts.uri.path()) {
        Ok(p) => p,
        Err(e) => return GatewayError::BadPath(e.to_string()).into_response(),
    };
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    // `/_sim` (the simulator's fault hooks) is never forwarded anywhere;
    // `/_pairgate` is the gateway's own.
    match crate::path::reserved(&path) {
        Some(Reserved::Refused) => return GatewayError::NoRoute(path).into_response(),
        Some(Reserved::Gateway) if path == "/_pairgate/status" => {
            return crate::status::status(&gw, &parts.headers).into_response();
        }
        Some(Reserved::Gateway) => {
            let body = match read_body(body, unauthenticated_limit(&gw)).await {
                Ok(b) => b,
                Err(e) => return e.into_response(),
            };
            return crate::admin::handle(&gw, &parts.method, &path, &parts.headers, &body);
        }
        None => {}
    }
    // Phase 1, classify: the route rules of `gateway.toml` say what kind of
    // request this is; a mutating method with no rule is a mutation (never
    // sent to one chassis only).
    let class = gw.cfg.classify(parts.method.as_str(), &path);
    let client = parts.extensions.get::<ClientAddr>().map(|c| c.0);
    match class.kind {
        RouteKind::Static => forward_read(&gw, None, &parts.method, &path_and_query, &parts.headers, Bytes::new()).await,
        RouteKind::Health => health(&gw),
        RouteKind::Login => login(&gw, client, body).await,
        RouteKind::Events => {
            let principal = match authenticate(&gw, &parts.headers, parts.uri.query()) {
                Ok(p) => p,
                Err(e) => return e.into_response(),
            };
            match WebSocketUpgrade::from_request_parts(&mut parts, &gw).await {
                Ok(ws) => events(&gw, ws, principal),
                Err(rej) => rej.into_response(),
            }
        }
        kind => {
            let (principal, _) = match authenticate(&gw, &parts.headers, None) {
                Ok(p) => p,
                Err(e) => return e.into_response(),
            };
            let response = match kind {
                RouteKind::Logout => logout(&gw, &principal),
                RouteKind::Read => {
                    let body = match read_body(body, gw.cfg.listen.max_body_bytes).await {
                        Ok(b) => b,
                        Err(e) => return e.into_response(),
                    };
                    forward_read(&gw, Some(&principal), &parts.method, &path_and_query, &parts.headers, body).await
                }
                _ => {
                    let body = match read_body(body, gw.cfg.listen.max_body_bytes).await {
                        Ok(b) => b,
                        Err(e) => return e.into_response(),
                    };
                    let response =
                        mutate(&gw, &principal, parts.method.as_str(), &path_and_query, &parts.headers, body, class.id_block).await;
                    if response.status().is_success() {
                        end_sessions_of_changed_account(&gw, &class, &path);
                    }
                    response
                }
            };
            if is_account_refused(&response) {
                end_account(&gw, &principal.username, "a chassis refused the account's credentials");
            }
            response
        }
    }
}

/// A user deleted, renamed, demoted or given a new password through the
/// gateway (a rule with `ends_sessions_of`): every gateway session of that
/// account ends now, with its stored credentials and backend sessions.
fn end_sessions_of_changed_account(gw: &Gateway, class: &crate::Classified, path: &str) {
    let Some(rule) = gw.cfg.rule(class) else { return };
    let Some(param) = &rule.ends_sessions_of else { return };
    // A password, name or role may have changed: chassis confirm logins again.
    gw.broker.recent.clear();
    let Some(user_id) = rule.path.param(param, path).and_then(|v| v.parse::<u64>().ok()) else { return };
    for name in gw.broker.store.usernames_of(user_id) {
        end_account(gw, &name, "the account was changed through the gateway");
    }
}

/// End every gateway session of `username`, forget its stored credentials and
/// its backend sessions.
fn end_account(gw: &Gateway, username: &str, why: &str) {
    gw.broker.recent.forget(username);
    gw.broker.backends.forget_user(username);
    match gw.broker.store.revoke_account(username) {
        Ok(n) => tracing::info!(user = %username, sessions = n, "gateway sessions ended: {why}"),
        Err(e) => tracing::error!(user = %username, "ending the account's gateway sessions: {e}"),
    }
}

fn is_account_refused(resp: &Response) -> bool {
    resp.status() == StatusCode::UNAUTHORIZED && resp.extensions().get::<AccountRefused>().is_some()
}

/// Marks a response that says the account's own backend login failed.
#[derive(Clone, Copy)]
struct AccountRefused;

/// Health, answered by the gateway without a session (a `health` route rule):
/// 200 while it can serve reads and mutations, 503 with the reason otherwise.
fn health(gw: &Gateway) -> Response {
    let primary = gw.pair.primary();
    let why = if primary.is_none() {
        Some("no chassis is in sync: reads and mutations cannot be served".to_string())
    } else if !gw.ids_ready.load(Ordering::SeqCst) {
        let blocked = gw.pairing_blocked.lock().ok().and_then(|b| b.clone());
        Some(format!("mutations are refused: {}", blocked.unwrap_or_else(|| "the pair is not paired yet".into())))
    } else {
        None
    };
    match why {
        Some(why) => GatewayError::Unavailable(why).into_response(),
        None => {
            let in_sync: Vec<&str> =
                (0..2).filter(|&i| gw.pair.state(i).serves()).map(|i| gw.pair.members[i].upstream.name.as_str()).collect();
            let primary = primary.map(|i| gw.pair.members[i].upstream.name.clone());
            (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok", "primary": primary, "in_sync": in_sync}))).into_response()
        }
    }
}

/// Phase 2, authenticate: runs for every kind but static and login. The
/// bearer token must be a live gateway session (the browser never holds a
/// chassis token). Returns the principal and the token.
fn authenticate(gw: &Gateway, headers: &HeaderMap, query: Option<&str>) -> Result<(Principal, String), GatewayError> {
    let from_header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = match bearer_token(from_header) {
        Ok(t) => t.to_string(),
        Err(_) => match query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token="))) {
            Some(t) => t.to_string(),
            None => return Err(GatewayError::MissingToken),
        },
    };
    gw.broker.store.verify(&token).map(|p| (p, token)).map_err(auth_error)
}

fn auth_error(e: AuthError) -> GatewayError {
    GatewayError::Unauthorized { code: e.code(), message: e.message() }
}

/// Read a body up to `limit` bytes (413 beyond it; 408 if it does not arrive
/// within `listen.body_timeout_ms`, see `limits.rs`). `limit` is
/// `listen.max_body_bytes`, or less for a request no session vouches for.
///
/// An oversized body is still read to its end (discarded, up to a bound) so
/// the client receives the 413 instead of a connection reset mid-upload.
async fn read_body(body: Body, limit: u64) -> Result<Bytes, GatewayError> {
    use crate::limits::{BodyError, DRAIN_AT_MOST};
    use http_body_util::BodyExt;
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                return Err(match BodyError::of(&e) {
                    Some(BodyError::Timeout(t)) => GatewayError::BodyTimeout(t.as_millis()),
                    Some(BodyError::TooLarge(max)) => GatewayError::BodyTooLarge(max.min(limit)),
                    None => GatewayError::BadBody(e.to_string()),
                })
            }
        };
        if let Ok(data) = frame.into_data() {
            seen += data.len() as u64;
            if seen > DRAIN_AT_MOST {
                break;
            }
            if seen <= limit {
                buf.extend_from_slice(&data);
            }
        }
    }
    if seen > limit {
        return Err(GatewayError::BodyTooLarge(limit));
    }
    Ok(buf.freeze())
}

/// What a request no session vouches for may send (a login, `/_pairgate`).
fn unauthenticated_limit(gw: &Gateway) -> u64 {
    crate::limits::UNAUTHENTICATED_MAX_BODY_BYTES.min(gw.cfg.listen.max_body_bytes)
}

/// The answer of a chassis, passed to the client as it came.
fn relay(a: &Answered, seq: Option<u64>) -> Response {
    let mut resp = Response::new(Body::from(a.body.clone()));
    *resp.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if a.status == 401 && a.error_code().as_deref() == Some(crate::applier::ACCOUNT_REFUSED) {
        resp.extensions_mut().insert(AccountRefused);
    }
    if let Some(ct) = &a.content_type {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    if let Some(seq) = seq {
        if let Ok(v) = HeaderValue::from_str(&seq.to_string()) {
            resp.headers_mut().insert("x-pairgate-seq", v);
        }
    }
    resp
}

fn forward_headers(headers: &HeaderMap) -> UpHeaders {
    let mut out = UpHeaders::new();
    for (k, v) in headers {
        if forwardable(k) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// Phase 3a, read: for reads and static files. Sent to the primary; if that
/// fails in any way (refused, reset, timeout, 5xx) the other in-sync chassis
/// answers in the same request (guarantee 5).
async fn forward_read(gw: &Gateway, who: Option<&Principal>, method: &Method, path: &str, headers: &HeaderMap, body: Bytes) -> Response {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    gw.stats.reads.fetch_add(1, Ordering::Relaxed);
    let attempt = |i: usize| {
        let body = body.clone();
        async move {
            let m = &gw.pair.members[i];
            let make = || UpRequest {
                method: method.clone(),
                path_and_query: path,
                headers: forward_headers(headers),
                body: body.clone(),
                token: None,
                timeout: gw.cfg.timeouts.per_try,
            };
            let outcome = match who {
                Some(p) => gw.broker.send(i, &m.upstream, &Runs::User(p.username.clone()), make).await,
                None => m.upstream.send(make()).await,
            };
            (i, outcome)
        }
    };
    // The primary first; the other in-sync chassis as soon as the primary
    // fails, or if it has not answered within HEDGE_AFTER (a silently hung
    // chassis costs a read that much, not a whole per-try timeout).
    let mut order = gw.pair.read_order().into_iter();
    let mut pending = FuturesUnordered::new();
    if let Some(i) = order.next() {
        pending.push(attempt(i));
    }
    let hedge = tokio::time::sleep(HEDGE_AFTER);
    tokio::pin!(hedge);
    let mut last = String::from("no chassis is in sync");
    loop {
        tokio::select! {
            Some((i, outcome)) = pending.next() => {
                let m = &gw.pair.members[i];
                match &outcome {
                    Outcome::Answered(a) if !a.is_server_error() => return relay(a, None),
                    // Not the chassis' failure: the account's own login.
                    Outcome::AccountRefused(why) => return relay(&crate::applier::account_refused(why), None),
                    Outcome::Refused(_) => m.detector.signal(Signal::Refused),
                    _ => m.detector.signal(Signal::Failed),
                }
                tracing::warn!(chassis = %m.upstream.name, path, "read failed over: {}", outcome.describe());
                last = outcome.describe();
                if let Some(j) = order.next() {
                    pending.push(attempt(j));
                } else if pending.is_empty() {
                    break;
                }
            }
            _ = &mut hedge, if order.len() > 0 => {
                if let Some(j) = order.next() {
                    tracing::debug!(path, "read hedged to the other chassis");
                    pending.push(attempt(j));
                }
            }
            else => break,
        }
    }
    gw.stats.failed_reads.fetch_add(1, Ordering::Relaxed);
    GatewayError::Unavailable(last).into_response()
}

/// How long a read waits for the primary before also asking the other
/// in-sync chassis (docs/design.md's budget: a hung chassis adds ≤ 100 ms to p99).
pub const HEDGE_AFTER: Duration = Duration::from_millis(100);

/// Phase 3b, mutate: sequence + journal + apply + answer.
///
/// 1. the body must be JSON if it says so: malformed JSON reaches neither chassis;
/// 2. a client `Idempotency-Key` is looked up (repeat → the stored answer);
/// 3. the sequencer gives the next seq and the id block and the journal makes
///    the entry durable — only then is anything sent;
/// 4. both appliers send it; this request waits for the primary's answer and
///    the secondary's (up to `secondary_grace` after the primary's) and answers
///    per docs/design.md's table.
async fn mutate(gw: &Gateway, who: &Principal, method: &str, path: &str, headers: &HeaderMap, body: Bytes, block: u32) -> Response {
    let is_json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.contains("json"));
    if is_json && !body.is_empty() {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
            return GatewayError::MalformedJson(e.to_string()).into_response();
        }
    }
    let client_key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= 255 => Some(k.to_string()),
        Some(_) => return GatewayError::BadIdempotencyKey.into_response(),
    };
    if let Some(key) = &client_key {
        let fp = gw.journal.request_fingerprint(method, path, &body);
        match gw.journal.begin_client_key(&who.username, key, &fp) {
            Ok(ClientKeyState::New) => {}
            Ok(ClientKeyState::Done(r)) => return stored(&r),
            Ok(ClientKeyState::InFlight { .. }) => return GatewayError::IdempotencyInFlight.into_response(),
            Ok(ClientKeyState::Mismatch) => return GatewayError::IdempotencyMismatch.into_response(),
            Err(e) => return GatewayError::Journal(e.to_string()).into_response(),
        }
    }
    let response = sequence_and_apply(gw, who, method, path, headers, body, block, client_key.as_deref()).await;
    if let Some(key) = &client_key {
        match &response {
            Ok((_, status, ct, bytes)) => {
                let headers = ct.iter().map(|c| ("content-type".to_string(), c.clone())).collect();
                if let Err(e) =
                    gw.journal.finish_client_key(&who.username, key, ClientResponse { status: *status, headers, body: bytes.clone() }).await
                {
                    // The entry is journaled; the applier records its answer for the key.
                    tracing::error!(user = %who.username, "recording the Idempotency-Key's answer: {e}");
                }
            }
            // Not journaled, or outcome unknown: the key may be used again.
            Err(GatewayError::OutcomeUnknown) => {}
            Err(_) => {
                gw.journal.release_client_key(&who.username, key);
            }
        }
    }
    match response {
        Ok((resp, ..)) => resp,
        Err(e) => e.into_response(),
    }
}

fn stored(r: &ClientResponse) -> Response {
    let mut resp = Response::new(Body::from(r.body.clone()));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    for (k, v) in &r.headers {
        if let (Ok(k), Ok(v)) = (header::HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

type Answer = (Response, u16, Option<String>, Bytes);

#[allow(clippy::too_many_arguments)]
async fn sequence_and_apply(
    gw: &Gateway,
    who: &Principal,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
    block: u32,
    client_key: Option<&str>,
) -> Result<Answer, GatewayError> {
    if !gw.ids_ready.load(Ordering::SeqCst) {
        let why = gw.pairing_blocked.lock().ok().and_then(|b| b.clone());
        return Err(why.map(GatewayError::NotPaired).unwrap_or(GatewayError::NotApplied));
    }
    let targets: Vec<usize> = (0..2).filter(|&i| gw.pair.state(i) != ChassisState::Down).collect();
    if targets.is_empty() {
        return Err(GatewayError::NotApplied);
    }
    let primary = gw.pair.primary().filter(|p| targets.contains(p)).unwrap_or(targets[0]);
    let draft = Draft {
        method: method.to_string(),
        path_and_query: path.to_string(),
        headers: headers
            .iter()
            .filter(|(k, _)| forwardable(k))
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
            .collect(),
        // Stored sealed if it carries a secret, or if no rule says what it carries.
        seal_body: gw.cfg.routes.body_is_secret(method, path, &body),
        body,
        id_block: block,
        account: who.username.clone(),
        client_key: client_key.map(str::to_string),
    };
    let entry = {
        // Shared: many mutations append at once; a digest check or an export
        // holds this alone for a moment so both chassis are at one seq.
        let _gate = gw.gate.read().await;
        gw.sequencer.append(draft).await.map_err(|e| GatewayError::Journal(e.to_string()))?
    };
    gw.stats.mutations.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("mutation", seq = entry.seq, %method, %path);
    let answered = decide(gw, entry.seq, primary, &targets).instrument(span).await;
    gw.answers.done(entry.seq);
    answered
}

/// A catching-up secondary at most this many entries behind a new mutation is
/// waited for (up to the grace) like an in-sync one: it is about to join.
const JOIN_WINDOW: u64 = 8;

/// Wait for the reports of `seq` and answer per docs/design.md's table.
async fn decide(gw: &Gateway, seq: u64, primary: usize, targets: &[usize]) -> Result<Answer, GatewayError> {
    let secondary = Pair::other(primary);
    let per_try = gw.cfg.timeouts.per_try;
    let grace = gw.cfg.timeouts.secondary_grace;
    let slot = gw.answers.slot(seq);
    // The primary's first answer (bounded: a hung primary costs one per-try).
    let p_deadline = tokio::time::Instant::now() + per_try + Duration::from_millis(250);
    let mut got = slot.wait(|g| g[primary].is_some(), p_deadline).await;
    let p_ok = got[primary].as_ref().and_then(Outcome::decided).is_some();
    // The secondary's answer is waited for (up to the grace) only while it is
    // in sync: one that is catching up or being rebuilt answers this seq after
    // everything before it, and every click would pay the whole grace. If the
    // primary failed, whichever secondary there is may answer (up to a try).
    // Also waited for: a secondary catching up that is about to reach the
    // journal's end (it answers this seq within moments, and the writers are
    // paced just enough for it to join), and both while neither is in sync
    // (there is no primary to answer alone).
    let secondary_in_sync = gw.pair.state(secondary) == ChassisState::InSync;
    let no_primary = gw.pair.primary().is_none();
    let joining = gw.pair.state(secondary) == ChassisState::CatchingUp
        && gw.journal.applied(&gw.pair.members[secondary].upstream.name).is_ok_and(|a| seq.saturating_sub(a) <= JOIN_WINDOW);
    if targets.contains(&secondary) && (secondary_in_sync || joining || no_primary || !p_ok) {
        let s_deadline = if p_ok { tokio::time::Instant::now() + grace } else { tokio::time::Instant::now() + per_try };
        got = slot.wait(|g| g[secondary].is_some(), s_deadline).await;
    }
    let standing = Standing {
        secondary_targeted: targets.contains(&secondary),
        primary_targeted: targets.contains(&primary),
        secondary_in_sync,
        secondary_serves: gw.pair.state(secondary).serves(),
        // The primary may have left `in_sync` while this seq waited for it
        // (killed, and back wiped or from an old copy: its answer is a
        // replay on a state nobody vouches for).
        primary_fell: !gw.pair.state(primary).serves(),
    };
    let verdict = verdict::decide(got[primary].as_ref(), got[secondary].as_ref(), standing);
    perform(gw, seq, primary, verdict, &got).await
}

/// Carry out the answer table's verdict: the one place its side effects
/// happen (detector signals, failover, resync requests, voiding the entry).
async fn perform(gw: &Gateway, seq: u64, primary: usize, verdict: Verdict, got: &[Option<Outcome>; 2]) -> Result<Answer, GatewayError> {
    let chassis = |side: Side| match side {
        Side::Primary => primary,
        Side::Secondary => Pair::other(primary),
    };
    match verdict {
        Verdict::Answer { from, then } => {
            let Some(counts) = got[chassis(from)].as_ref().and_then(Outcome::decided) else {
                // The table answers only with a decided answer; unreachable.
                return Err(GatewayError::OutcomeUnknown);
            };
            match then {
                Then::Nothing => {}
                Then::Rebuild(side) => {
                    let rebuilt = chassis(side);
                    gw.stats.divergences.fetch_add(1, Ordering::Relaxed);
                    let status = |i: usize| got[i].as_ref().and_then(Outcome::decided).map(|a| a.status);
                    tracing::error!(
                        seq,
                        primary = ?status(primary),
                        secondary = ?status(Pair::other(primary)),
                        rebuilt = %gw.pair.members[rebuilt].upstream.name,
                        "divergence: the chassis answered differently; rebuilding the one not taken"
                    );
                    gw.pair.members[rebuilt].resync.request(crate::resync::Reason::Divergence);
                }
                // Missed the grace or failed: it catches up from the journal.
                Then::SecondaryFellBehind => gw.pair.members[Pair::other(primary)].detector.signal(Signal::FellBehind),
                Then::Failover { promote } => {
                    gw.pair.members[primary].detector.signal(Signal::FellBehind);
                    if promote {
                        gw.pair.set_primary(Pair::other(primary));
                    }
                    tracing::warn!(seq, "failover: the secondary answered for a failing primary");
                }
            }
            Ok(answer(counts, seq))
        }
        // Certainly applied nowhere, and nobody is sending it right now:
        // void it, so no applier sends it later (it claims before sending).
        Verdict::Void if gw.attempts.try_void(seq) => match gw.journal.drop_entry(seq).await {
            Ok(()) => Err(GatewayError::NotApplied),
            Err(e) => {
                tracing::error!(seq, "voiding an entry no chassis received: {e}; it stays and will be applied");
                gw.attempts.unvoid(seq);
                Err(GatewayError::OutcomeUnknown)
            }
        },
        Verdict::Void | Verdict::Unknown => Err(GatewayError::OutcomeUnknown),
    }
}

fn answer(a: &Answered, seq: u64) -> Answer {
    let ct = a.content_type.as_ref().and_then(|v| v.to_str().ok()).map(str::to_string);
    (relay(a, Some(seq)), a.status, ct, a.body.clone())
}

/// Phase 3c, login: a user logs in once at the gateway. Checked against a
/// chassis (as that user, `force: true`); the chassis token becomes the
/// account's shared backend session there; the browser gets a gateway token.
async fn login(gw: &Gateway, client: Option<SocketAddr>, body: Body) -> Response {
    #[derive(serde::Deserialize)]
    struct LoginReq {
        username: String,
        password: String,
        #[serde(default)]
        #[allow(dead_code)]
        force: bool,
    }
    let bytes = match read_body(body, unauthenticated_limit(gw)).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let req: LoginReq = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return GatewayError::MalformedJson(e.to_string()).into_response(),
    };
    let ip = client.map(|c| c.ip()).unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    // Counted from here, as a failure unless it ends otherwise: parallel
    // guesses cannot all pass before any of them is counted.
    let attempt = match gw.broker.limiter.begin(ip, &req.username) {
        Ok(a) => a,
        Err(wait) => return GatewayError::TooManyLogins(wait.secs()).into_response(),
    };
    // A second browser of an account a chassis confirmed a moment ago: no
    // chassis login (which would replace the account's shared session).
    if let Some(account) = gw.broker.recent.check(&req.username, &req.password) {
        gw.broker.limiter.succeeded(attempt);
        return issue_session(gw, account, None).await;
    }
    let mut order = gw.pair.read_order();
    for i in 0..2 {
        if !order.contains(&i) && gw.pair.state(i) != ChassisState::Down {
            order.push(i);
        }
    }
    let mut last = String::from("no chassis is reachable");
    for i in order {
        let up = &gw.pair.members[i].upstream;
        match gw.broker.chassis_login(up, &req.username, &req.password).await {
            Ok((token, account)) => {
                gw.broker.backends.set(&up.name, &req.username, token);
                gw.broker.limiter.succeeded(attempt);
                gw.broker.recent.remember(&req.username, &req.password, &account);
                return issue_session(gw, account, Some(req.password)).await;
            }
            Err(BrokerError::BadCredentials(outcome)) => {
                // The attempt stays counted.
                drop(attempt);
                gw.broker.recent.forget(&req.username);
                tracing::info!(user = %req.username, "login refused by the chassis");
                return match outcome {
                    Outcome::Answered(a) => relay(&a, None),
                    other => GatewayError::Unavailable(other.describe()).into_response(),
                };
            }
            Err(e) => last = e.to_string(),
        }
    }
    gw.broker.limiter.undecided(attempt);
    GatewayError::Unavailable(last).into_response()
}

/// A gateway session for `account` (and, after a chassis login, its sealed
/// password for later re-logins). Both writes fsync: off the async threads.
async fn issue_session(gw: &Gateway, account: crate::session::AccountInfo, password: Option<String>) -> Response {
    let broker = gw.broker.clone();
    let issued = tokio::task::spawn_blocking(move || {
        if let Some(pw) = password {
            if let Err(e) = broker.store.remember_credentials(&account.username, &pw) {
                tracing::error!("storing credentials: {e}");
            }
        }
        broker.store.issue(&account).map(|issued| issued.login_response(&account))
    })
    .await;
    match issued {
        Ok(Ok(body)) => (StatusCode::OK, axum::Json(body)).into_response(),
        Ok(Err(e)) => GatewayError::Journal(e.to_string()).into_response(),
        Err(e) => GatewayError::Journal(e.to_string()).into_response(),
    }
}

/// Phase 3d, logout: ends this gateway session only. The account's other
/// sessions and its shared backend sessions stay.
fn logout(gw: &Gateway, who: &Principal) -> Response {
    match gw.broker.store.revoke(&who.session_id) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => GatewayError::Journal(e.to_string()).into_response(),
    }
}

/// Phase 3e, events: the browser's socket stays with the gateway; its
/// upstream follows the primary (see `events.rs`).
fn events(gw: &Gw, ws: WebSocketUpgrade, who: (Principal, String)) -> Response {
    let (principal, token) = who;
    let pair = gw.pair.clone();
    let broker = gw.broker.clone();
    let hubs = gw.hubs.clone();
    let per_try = gw.cfg.timeouts.per_try;
    // Browsers send next to nothing on this socket: small buffers (the
    // 128 KiB defaults cost 1,000 operator screens over 100 MiB).
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .on_upgrade(move |socket| crate::events::relay(socket, hubs, pair, broker, token, principal.username, per_try))
}
