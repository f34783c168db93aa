//! The mutate phase: sequence, journal, apply to both chassis, answer.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::idempotency::{KeyGuard, Taken};
use super::relay::relay_from;
use super::{Ctx, Session};
use crate::chassis::detector::{ChassisState, Signal};
use crate::chassis::pair::Pair;
use crate::chassis::upstream::{forwardable, Answered, Outcome};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::journal::Draft;
use crate::verdict::{self, Side, Standing, Then, Verdict};

/// The answer a mutation gets: a chassis' decided answer to entry `seq`.
struct Answer {
    seq: u64,
    answered: Answered,
    /// The chassis whose answer it is.
    from: usize,
}

/// Runs for a `mutate` route (and any mutating method no rule names), once
/// the session is authenticated and the body read.
///
/// 1. the body must be JSON if it says so: malformed JSON reaches neither chassis;
/// 2. a client `Idempotency-Key` is taken (a repeat gets the stored answer);
/// 3. the sequencer gives the next seq and the id block and the journal makes
///    the entry durable — only then is anything sent;
/// 4. both appliers send it; this request waits for the primary's answer and
///    the secondary's (up to `secondary_grace` after the primary's) and answers
///    per docs/design.md's table.
pub async fn mutate(gw: &Gateway, ctx: &Ctx, session: &Session) -> Response {
    let is_json = ctx.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.contains("json"));
    if is_json && !ctx.body.is_empty() {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&ctx.body) {
            return GatewayError::MalformedJson(e.to_string()).into_response();
        }
    }
    if let Err(e) = crate::cascade::egress::check_toward_chassis(gw.egress.as_deref(), ctx.cfg.rule(&ctx.class), &ctx.body) {
        return e.into_response();
    }
    let mut key = match KeyGuard::begin(&gw.journal, &session.principal.username, ctx) {
        Taken::NoKey => None,
        Taken::Held(k) => Some(k),
        Taken::Answer(response) => {
            gw.metrics.idempotency_hits.inc();
            return response;
        }
    };
    match sequence_and_apply(gw, ctx, session, key.as_mut()).await {
        Ok(answer) => {
            if let Some(key) = key {
                key.finish(&answer.answered).await;
            }
            relay_from(&answer.answered, Some(answer.seq), &gw.pair.members[answer.from].upstream.name)
        }
        // `key` drops: released unless its entry stays in the journal.
        Err(e) => e.into_response(),
    }
}

async fn sequence_and_apply(
    gw: &Gateway,
    ctx: &Ctx,
    session: &Session,
    mut key: Option<&mut KeyGuard<'_>>,
) -> Result<Answer, GatewayError> {
    gw.pairing.accepts_mutations()?;
    let targets: Vec<usize> = (0..2).filter(|&i| gw.pair.state(i) != ChassisState::Down).collect();
    if targets.is_empty() {
        return Err(GatewayError::NotApplied);
    }
    let primary = gw.pair.primary().filter(|p| targets.contains(p)).unwrap_or(targets[0]);
    let draft = Draft {
        method: ctx.method.as_str().to_string(),
        path_and_query: ctx.path_and_query.clone(),
        headers: ctx
            .headers
            .iter()
            .filter(|(k, _)| forwardable(k))
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
            .collect(),
        // Stored sealed if it carries a secret, or if no rule says what it carries.
        seal_body: ctx.cfg.routes.body_is_secret_for(&ctx.class, &ctx.body),
        body: ctx.body.clone(),
        id_block: ctx.class.id_block,
        account: session.principal.username.clone(),
        client_key: key.as_ref().map(|k| k.key().to_string()),
    };
    let entry = {
        // Shared: many mutations append at once; a digest check or an export
        // holds this alone for a moment so both chassis are at one seq.
        let _gate = gw.gate.read().await;
        gw.sequencer.append(draft).await.map_err(|e| GatewayError::Journal(e.to_string()))?
    };
    if let Some(k) = key.as_mut() {
        k.journaled();
    }
    gw.stats.mutations.fetch_add(1, Ordering::Relaxed);
    // The request's span (every line of its log) has its seq from here on.
    tracing::Span::current().record("seq", entry.seq);
    let span = tracing::info_span!("mutation", seq = entry.seq, method = %ctx.method, path = %ctx.path_and_query);
    let ignores = ctx.cfg.rule(&ctx.class).map_or(&[][..], |r| r.compare_ignores.as_slice());
    let answered = decide(gw, ctx, entry.seq, primary, &targets, ignores, key).instrument(span).await;
    gw.answers.done(entry.seq);
    answered
}

/// A catching-up secondary at most this many entries behind a new mutation is
/// waited for (up to the grace) like an in-sync one: it is about to join.
const JOIN_WINDOW: u64 = 8;

/// Wait for both chassis' outcomes of `seq` and answer per docs/design.md's table.
#[allow(clippy::too_many_arguments)]
async fn decide(
    gw: &Gateway,
    ctx: &Ctx,
    seq: u64,
    primary: usize,
    targets: &[usize],
    ignores: &[crate::ids::pointer::WildPointer],
    key: Option<&mut KeyGuard<'_>>,
) -> Result<Answer, GatewayError> {
    let secondary = Pair::other(primary);
    let per_try = ctx.cfg.timeouts.per_try;
    let grace = ctx.cfg.timeouts.secondary_grace;
    let slot = gw.answers.slot(seq);
    // A chassis that is down with nothing of this seq on its way to it is
    // sent nothing more: it answers this seq only once back (catching up),
    // so the wait ends there, with what the deadline would have found
    // (failover within moments, not after a grace or a per-try). An attempt
    // on the wire is waited for: a slow chassis the detector gave up on may
    // still answer it.
    let down = |i: usize| {
        let mut state = gw.pair.members[i].detector.watch();
        async move {
            loop {
                if state.wait_for(|s| *s == ChassisState::Down).await.is_err() {
                    std::future::pending::<()>().await;
                }
                if !gw.attempts.on_the_wire(seq, i) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    // The primary's first answer (bounded: a hung primary costs one per-try).
    let p_deadline = tokio::time::Instant::now() + per_try + Duration::from_millis(250);
    let mut got = slot.wait_unless(|g| g[primary].is_some(), p_deadline, down(primary)).await;
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
        got = slot.wait_unless(|g| g[secondary].is_some(), s_deadline, down(secondary)).await;
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
    let verdict = verdict::decide(got[primary].as_ref(), got[secondary].as_ref(), standing, ignores);
    gw.metrics.answered(verdict.row());
    perform(gw, seq, primary, verdict, &got, key).await
}

/// Carry out the answer table's verdict: the one place its side effects
/// happen (detector signals, failover, resync requests, voiding the entry).
async fn perform(
    gw: &Gateway,
    seq: u64,
    primary: usize,
    verdict: Verdict,
    got: &[Option<Outcome>; 2],
    key: Option<&mut KeyGuard<'_>>,
) -> Result<Answer, GatewayError> {
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
                    gw.pair.members[rebuilt].resync.request(crate::recovery::resync::Reason::Divergence);
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
            gw.pair.showed(chassis(from), seq);
            Ok(Answer { seq, answered: counts.clone(), from: chassis(from) })
        }
        // Certainly applied nowhere, and nobody is sending it right now:
        // void it, so no applier sends it later (it claims before sending).
        Verdict::Void if gw.attempts.try_void(seq) => match gw.journal.drop_entry(seq).await {
            Ok(()) => {
                if let Some(k) = key {
                    k.voided();
                }
                Err(GatewayError::NotApplied)
            }
            Err(e) => {
                tracing::error!(seq, "voiding an entry no chassis received: {e}; it stays and will be applied");
                gw.attempts.unvoid(seq);
                Err(GatewayError::OutcomeUnknown)
            }
        },
        Verdict::Void | Verdict::Unknown => Err(GatewayError::OutcomeUnknown),
    }
}
