//! The read phase: reads and static files, answered by one in-sync chassis.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::response::{IntoResponse, Response};

use super::relay::{forward_headers, relay, relay_from};
use super::{Ctx, Session};
use crate::chassis::detector::Signal;
use crate::chassis::upstream::{Outcome, UpRequest};
use crate::coalesce::{ReadKey, ReadReply};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::session::broker::Runs;

/// How long a read waits for the primary before also asking the other
/// in-sync chassis (docs/design.md's budget: a hung chassis adds ≤ 100 ms to p99).
pub const HEDGE_AFTER: Duration = Duration::from_millis(100);

/// Runs for a `read` route (authenticated: sent as the session's account) and
/// a `static` one (no session: no token). Sent to the primary; if that fails
/// in any way (refused, reset, timeout, 5xx) the other in-sync chassis answers
/// in the same request (guarantee 5). With `[reads] coalesce` (the default)
/// a read identical to one in flight, and arrived since the last answered
/// mutation, shares that read's answer (`crate::coalesce`).
pub async fn forward(gw: &Gateway, ctx: &Ctx, session: Option<&Session>) -> Response {
    gw.stats.reads.fetch_add(1, Ordering::Relaxed);
    let account = session.map(|s| s.principal.username.as_str());
    let key = ReadKey::of(account, &ctx.method, &ctx.path_and_query, &ctx.headers, &ctx.body).filter(|_| ctx.cfg.reads.coalesce);
    let reply = match key {
        Some(key) => {
            let (reply, shared) = gw.reads.run(key, ask(gw, ctx, session)).await;
            if shared {
                gw.stats.coalesced_reads.fetch_add(1, Ordering::Relaxed);
            }
            reply
        }
        None => ask(gw, ctx, session).await,
    };
    match reply {
        ReadReply::Chassis(a, i) => relay_from(&a, None, &gw.pair.members[i].upstream.name),
        // Not the chassis' failure: the account's own login.
        ReadReply::AccountRefused(why) => relay(&crate::chassis::applier::account_refused(&why), None),
        ReadReply::Unavailable(last) => {
            gw.stats.failed_reads.fetch_add(1, Ordering::Relaxed);
            GatewayError::Unavailable(last).into_response()
        }
    }
}

/// Sends one read: to the primary, then (failed, or not answered within
/// [`HEDGE_AFTER`]) to the other in-sync chassis. What a chassis showed and
/// how it failed are recorded here, once per chassis request, whoever shares
/// the answer.
async fn ask(gw: &Gateway, ctx: &Ctx, session: Option<&Session>) -> ReadReply {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let path = ctx.path_and_query.as_str();
    let attempt = |i: usize| async move {
        let m = &gw.pair.members[i];
        if !caught_up(gw, i, ctx.cfg.timeouts.per_try).await {
            return (i, Err(format!("chassis {} has not applied what the other chassis already showed", m.upstream.name)));
        }
        // A chassis with translated IDs is asked in its own IDs and answers
        // in the clients'; a row it does not have is its 404, unasked.
        let translated = gw.pair.translated(i) == Some(true);
        let (native_path, body) = if translated {
            match gw.translator.request(i, ctx.method.as_str(), path, &ctx.body) {
                Ok(native) => native,
                Err(u) => return (i, Ok(Outcome::Answered(crate::ids::translator::unknown_id(&u)))),
            }
        } else {
            (path.to_string(), ctx.body.clone())
        };
        let make = || UpRequest {
            method: ctx.method.clone(),
            path_and_query: &native_path,
            headers: forward_headers(&ctx.headers),
            body: body.clone(),
            token: None,
            timeout: ctx.cfg.timeouts.per_try,
        };
        let outcome = match session {
            Some(s) => gw.broker.send(i, &m.upstream, &Runs::User(s.principal.username.clone()), make).await,
            None => m.upstream.send(make()).await,
        };
        let outcome = match outcome {
            Outcome::Answered(a) if translated => {
                let (a, misses) = gw.translator.answer_settled(i, ctx.method.as_str(), path, &a).await;
                if !misses.is_empty() {
                    let misses: Vec<String> = misses.iter().map(ToString::to_string).collect();
                    tracing::warn!(chassis = %m.upstream.name, path, ?misses, "a read shows rows the gateway never saw created; answered with null ids");
                }
                Outcome::Answered(a)
            }
            other => other,
        };
        (i, Ok(outcome))
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
                let why = match outcome {
                    Ok(Outcome::Answered(a)) if !a.is_server_error() => {
                        // Whatever this answer shows, the journal held no more.
                        gw.pair.showed(i, gw.journal.last_seq());
                        return ReadReply::Chassis(a, i);
                    }
                    Ok(Outcome::AccountRefused(why)) => return ReadReply::AccountRefused(why),
                    Ok(outcome) => {
                        m.detector.signal(if matches!(outcome, Outcome::Refused(_)) { Signal::Refused } else { Signal::Failed });
                        outcome.describe()
                    }
                    // Not sent: behind what the other chassis showed.
                    Err(behind) => {
                        m.detector.signal(Signal::FellBehind);
                        behind
                    }
                };
                tracing::warn!(chassis = %m.upstream.name, path, "read failed over: {why}");
                last = why;
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
    ReadReply::Unavailable(last)
}

/// Waits, at most one per-try timeout, until chassis `i` has applied every
/// entry the other chassis may have shown a client ([`crate::chassis::pair::Pair::must_have`]);
/// false if it has not by then or stopped serving meanwhile. Only a read
/// that fails over or is hedged waits in practice: the primary is as far
/// as the secondary has shown, or about to be.
async fn caught_up(gw: &Gateway, i: usize, per_try: Duration) -> bool {
    let need = gw.pair.must_have(i);
    let name = &gw.pair.members[i].upstream.name;
    let deadline = tokio::time::Instant::now() + per_try;
    loop {
        match gw.journal.applied(name) {
            Ok(applied) if applied >= need => return true,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(chassis = %name, "reading the applied position: {e}");
                return false;
            }
        }
        if !gw.pair.state(i).serves() || tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
