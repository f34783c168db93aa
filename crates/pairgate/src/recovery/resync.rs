//! Bringing a chassis back to the same state as its peer, and proving it.
//!
//! - **Verify** (every transition to `in_sync`, and periodically while both
//!   are in sync — anti-entropy): with new mutations held at the write gate
//!   for a moment, wait until both chassis applied the journal's last entry,
//!   then compare their `GET /system/digest`. Equal: in sync, and that seq S
//!   and digest D are recorded in the journal as both chassis' **last
//!   verified point** (durably, one transaction; a failed write is logged at
//!   error level). Different: the joining (or secondary) chassis is rebuilt.
//!   That catches a chassis that came back wiped, restored from an old backup,
//!   or changed behind the gateway's back.
//! - **The reference** when both chassis come back different (after a
//!   gateway restart, or both were down): a chassis is one only if its applied
//!   seq equals its recorded verified seq and its digest now equals the
//!   recorded digest ([`Resyncer::references`]). Exactly one matches: it is in
//!   sync and the other is rebuilt from it. Neither: the applier blocks the
//!   pair (`pairing_blocked`, mutations 503 `not_paired`) until an operator
//!   picks the source with `pairgate resync <target>`. Being the preferred or
//!   the last primary chassis counts for nothing.
//! - **Full resync** (a new chassis, a diverged one, one that missed more than
//!   the journal keeps): hold new mutations, wait for the source to apply the
//!   last entry (seq S), ask for its export, let mutations flow again as soon
//!   as the export's answer starts (the chassis took it at S), stream it into
//!   the target's import as it arrives (the gateway never holds the whole
//!   document), and replay the journal after S. Clients pause only until the
//!   export's answer starts. The import is made with a session checked just
//!   before (a chassis refuses a stale session before reading a body, and that
//!   answer is lost with the connection it closes); the imported users carry
//!   the source's password for the gateway's own account, so the target's own
//!   password is set back right after.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde::Serialize;
use tokio::sync::RwLock;

use crate::chassis::pair::Pair;
use crate::chassis::upstream::{bytes_text, Outcome, UpRequest};
use crate::config::Collection;
use crate::journal::{Journal, VerifiedPoint};
use crate::recovery::listing::{self, Method as Compare};
use crate::session::broker::{Broker, BrokerError, Runs};

/// The longest new mutations are held while the chassis finish the entries
/// in flight (the budget is a pause of at most 1 s).
const GATE_WAIT: Duration = Duration::from_millis(500);

/// Mutations take this shared; a verify or an export takes it exclusively,
/// which stops new entries for the few milliseconds it needs.
pub type WriteGate = Arc<RwLock<()>>;

pub use crate::recovery::resync_request::{Reason, ResyncFlag};
use crate::recovery::service::call_failed;
pub use crate::recovery::service::{digest, service_call, ResyncError};

/// Progress of a running full resync, for `/_pairgate/status`.
#[derive(Clone, Debug, Serialize)]
pub struct Progress {
    pub chassis: String,
    pub source: String,
    pub reason: Reason,
    /// `waiting_for_source`, `exporting`, `importing`, `replaying`, `done`, `failed: …`
    pub phase: String,
    pub at_seq: u64,
    /// Rows imported (from the import's answer; 0 until it came).
    pub rows: u64,
    /// Bytes of the export streamed into the import so far, and the
    /// export's length when the source said it.
    pub bytes: u64,
    pub bytes_total: Option<u64>,
    /// Which attempt of this resync this is (1: the first).
    pub attempt: u64,
    pub elapsed_ms: u64,
}

/// What a full resync imported: the journal seq the source's export was
/// taken at, its rows and bytes.
#[derive(Clone, Copy, Debug)]
pub struct Imported {
    pub seq: u64,
    pub rows: u64,
    pub bytes: u64,
    pub bytes_total: Option<u64>,
}

/// One report of a running full resync (see [`Progress`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Step<'a> {
    pub phase: &'a str,
    pub seq: u64,
    pub rows: u64,
    pub bytes: u64,
    pub bytes_total: Option<u64>,
}

impl<'a> Step<'a> {
    pub fn new(phase: &'a str, seq: u64) -> Step<'a> {
        Step { phase, seq, ..Step::default() }
    }
}

/// Wait (bounded) until every chassis in `who` applied the journal's last entry.
pub async fn wait_applied(journal: &Journal, pair: &Pair, who: &[usize], limit: Duration) -> Result<u64, ResyncError> {
    let start = Instant::now();
    loop {
        let last = journal.last_seq();
        let mut lagging = None;
        for &i in who {
            if journal.applied(&pair.members[i].upstream.name)? < last {
                lagging = Some(i);
                break;
            }
        }
        match lagging {
            None => return Ok(last),
            Some(i) if start.elapsed() > limit => return Err(ResyncError::NotCaughtUp(pair.members[i].upstream.name.clone())),
            Some(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Both chassis' digests at one seq (both had applied it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub seq: u64,
    pub digests: [String; 2],
}

impl Verdict {
    pub fn equal(&self) -> bool {
        self.digests[0] == self.digests[1]
    }
}

/// Which chassis a digest mismatch found while both served is rebuilt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MismatchTarget {
    /// Exactly one chassis still holds its last verified state (nothing was
    /// applied since): the other was changed behind the gateway's back.
    Diverged(usize),
    /// The evidence cannot tell (mutations were applied since the last
    /// verified point, or both moved): the secondary is rebuilt from the
    /// primary, which keeps serving.
    Secondary(usize),
}

impl MismatchTarget {
    /// Decide from [`Resyncer::references`] of the mismatching verdict and the primary.
    pub fn decide(references: [bool; 2], primary: usize) -> Self {
        match references {
            [true, false] => Self::Diverged(1),
            [false, true] => Self::Diverged(0),
            _ => Self::Secondary(Pair::other(primary)),
        }
    }

    pub fn chassis(self) -> usize {
        match self {
            Self::Diverged(i) | Self::Secondary(i) => i,
        }
    }
}

/// What verifying and resyncing work with.
pub struct Resyncer<'a> {
    pub gate: &'a WriteGate,
    pub journal: &'a Journal,
    pub broker: &'a Broker,
    pub pair: &'a Pair,
    pub per_try: Duration,
    /// What to compare when a chassis has no `/system/digest` (`recovery/listing.rs`).
    pub collections: &'a [Collection],
    /// IDs of a chassis without `id_block`: compared in client IDs, its map
    /// rebuilt after an import.
    pub translator: &'a crate::ids::translator::Translator,
}

/// Chassis `i`'s state as one hash, compared the way `method` says.
pub async fn state_digest(
    broker: &Broker,
    pair: &Pair,
    i: usize,
    collections: &[Collection],
    translator: &crate::ids::translator::Translator,
    method: Compare,
    timeout: Duration,
) -> Result<String, ResyncError> {
    match method {
        Compare::Chassis => digest(broker, pair, i, timeout).await,
        Compare::Listing => listing::digest(broker, pair, i, collections, translator, timeout).await,
    }
}

impl Resyncer<'_> {
    /// Compare both chassis' digests at one seq. `Ok(true)`: equal.
    ///
    /// `caller`: the chassis whose own applier is asking (it cannot apply
    /// anything while it waits here, so it is never waited for: if it is
    /// behind once new mutations are held, the check fails at once and the
    /// applier retries after applying). `None`: an outside check (anti-entropy)
    /// that waits for both.
    ///
    /// Equal digests are recorded as both chassis' last verified point (seq and
    /// digest, durably in the journal) before this returns; a failed write is
    /// logged at error level (the next verify records again).
    pub async fn verify(&self, caller: Option<usize>) -> Result<Verdict, ResyncError> {
        let others: Vec<usize> = (0..2).filter(|&i| Some(i) != caller).collect();
        // Catch up without holding anyone, then hold new mutations only for
        // the last few entries and the two digests.
        wait_applied(self.journal, self.pair, &others, Duration::from_secs(2)).await?;
        let verdict = {
            let _hold = self.gate.write().await;
            if let Some(me) = caller {
                let name = &self.pair.members[me].upstream.name;
                if self.journal.applied(name)? < self.journal.last_seq() {
                    return Err(ResyncError::NotCaughtUp(name.clone()));
                }
            }
            // Nothing is appended while the gate is held: both chassis are at `seq`.
            let seq = wait_applied(self.journal, self.pair, &others, GATE_WAIT).await?;
            let method = listing::method(self.pair);
            let verdict = if method == Compare::Listing {
                let digest = |i: usize| listing::digest_seen(self.broker, self.pair, i, self.collections, self.translator, self.per_try);
                let (a, b) = tokio::join!(digest(0), digest(1));
                let ((da, sa), (db, sb)) = (a?, b?);
                let verdict = Verdict { seq, digests: [da, db] };
                if verdict.equal() {
                    self.prune_maps([sa, sb]).await;
                }
                verdict
            } else {
                let digest = |i: usize| state_digest(self.broker, self.pair, i, self.collections, self.translator, method, self.per_try);
                let (a, b) = tokio::join!(digest(0), digest(1));
                Verdict { seq, digests: [a?, b?] }
            };
            verdict
        };
        if verdict.equal() {
            let point = VerifiedPoint { seq: verdict.seq, digest: verdict.digests[0].clone() };
            let points = [(self.name(0), point.clone()), (self.name(1), point)];
            if let Err(e) = self.journal.record_verified(&points).await {
                tracing::error!(seq = verdict.seq, "recording the verified point of both chassis: {e}");
            }
        }
        Ok(verdict)
    }

    /// Map entries of rows the chassis no longer shows (children of a deleted
    /// wall, windows a recall or a clear closed): dropped, for the tables
    /// the listings cover. Only while the gate is held and every entry
    /// applied, so no create can be under way.
    async fn prune_maps(&self, seen: [Vec<(crate::ids::rules::Table, u64)>; 2]) {
        let listed = self.translator.listed_tables(self.collections);
        for (i, seen) in seen.into_iter().enumerate() {
            if self.pair.translated(i) != Some(true) {
                continue;
            }
            let seen: std::collections::HashSet<(crate::ids::rules::Table, u64)> = seen.into_iter().collect();
            let stale: Vec<crate::journal::MapChange> = self
                .translator
                .maps
                .view(i)
                .rows()
                .into_iter()
                .filter(|(t, _, native)| listed.contains(t) && !seen.contains(&(t.clone(), *native)))
                .map(|(table, client, _)| crate::journal::MapChange::Forget { chassis: i, table, client })
                .collect();
            if stale.is_empty() {
                continue;
            }
            let n = stale.len();
            match self.translator.maps.change(stale).await {
                Ok(()) => {
                    tracing::info!(chassis = %self.name(i), entries = n, "id map: entries of rows the chassis no longer holds dropped")
                }
                Err(e) => tracing::warn!(chassis = %self.name(i), "dropping stale id map entries: {e}"),
            }
        }
    }

    fn name(&self, i: usize) -> &str {
        &self.pair.members[i].upstream.name
    }

    /// Which chassis hold what the journal says they must: a chassis does when
    /// its recorded verified point is exactly the verdict's seq (its applied
    /// seq: a verify waits until both applied it) and its digest now.
    pub fn references(&self, verdict: &Verdict) -> [bool; 2] {
        [0, 1].map(|i| match self.journal.verified(self.name(i)) {
            Ok(Some(point)) => point.is(verdict.seq, &verdict.digests[i]),
            Ok(None) => false,
            Err(e) => {
                tracing::error!(chassis = %self.name(i), "reading the verified point: {e}");
                false
            }
        })
    }

    /// Rebuild chassis `target` from `source`: what was imported, at which seq.
    pub async fn full_resync(&self, target: usize, source: usize, progress: &(dyn Fn(Step) + Sync)) -> Result<Imported, ResyncError> {
        let lacks_export = |i: usize| {
            self.pair.members[i].features.lock().as_ref().is_some_and(|d| !d.has(crate::chassis::features::Feature::ExportImport))
        };
        if lacks_export(target) || lacks_export(source) {
            return self.rebuild_through_api(target, source, progress).await;
        }
        progress(Step::new("waiting_for_source", 0));
        self.wait_for_source(target, source).await?;
        let (src, dst) = (&self.pair.members[source].upstream, &self.pair.members[target].upstream);
        // The import cannot be sent twice (its body is the export as it
        // streams): its session is checked, and renewed if stale, first.
        let token =
            self.broker.fresh_session(target, dst, &Runs::Service).await.map_err(|o| call_failed(&dst.name, &Method::GET, INFO, &o))?;
        let (seq, export) = {
            let _hold = self.gate.write().await;
            let seq = wait_applied(self.journal, self.pair, &[source], GATE_WAIT).await?;
            progress(Step::new("exporting", seq));
            let export = self
                .broker
                .with_session(source, src, &Runs::Service, |token| async move {
                    src.open(UpRequest {
                        method: Method::GET,
                        path_and_query: EXPORT,
                        headers: HeaderMap::new(),
                        body: Bytes::new(),
                        token: Some(token),
                        timeout: self.per_try * 30,
                    })
                    .await
                })
                .await
                .map_err(|o| call_failed(&src.name, &Method::GET, EXPORT, &o))?;
            // Its answer started: the source took the export at `seq`.
            (seq, export)
        };
        let total = export.content_length();
        let broke: Arc<parking_lot::Mutex<Option<String>>> = Arc::default();
        let broke_in = broke.clone();
        let body = export.bytes_stream().map(move |chunk| {
            chunk.map_err(|e| {
                let why = crate::chassis::upstream::error_chain(&e);
                *broke_in.lock() = Some(why.clone());
                std::io::Error::other(why)
            })
        });
        let sent = Arc::new(AtomicU64::new(0));
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let import = dst.send_stream(Method::PUT, IMPORT, headers, Some(&token), self.per_try * 30, body, total, &sent);
        tokio::pin!(import);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let step = |phase, rows| Step { phase, seq, rows, bytes: sent.load(Ordering::Relaxed), bytes_total: total };
        let answer = loop {
            tokio::select! {
                r = &mut import => break r,
                _ = tick.tick() => progress(step("importing", 0)),
            }
        };
        if let Some(why) = broke.lock().clone() {
            return Err(ResyncError::ExportBroke { chassis: src.name.clone(), at: bytes_text(sent.load(Ordering::Relaxed)), why });
        }
        let answer = match answer {
            Ok(resp) => crate::chassis::upstream::read_answer(resp).await,
            Err(o) => o,
        };
        let rows = match &answer {
            Outcome::Answered(a) if a.is_success() => imported_rows(&a.body),
            Outcome::Cut(_) => {
                // The chassis stopped reading: was it the session after all?
                let seen = match self.broker.fresh_session(target, dst, &Runs::Service).await {
                    Ok(t) if t == token => "its session was still valid: it refused the body for another reason".to_string(),
                    Ok(_) => "its session was stale (refused before the body was read); renewed for the next attempt".to_string(),
                    Err(o) => format!("a session check failed too: {}", o.describe()),
                };
                return Err(ResyncError::Call {
                    chassis: dst.name.clone(),
                    call: format!("PUT {IMPORT}"),
                    what: format!("{}; {seen}", answer.describe()),
                });
            }
            other => return Err(call_failed(&dst.name, &Method::PUT, IMPORT, other)),
        };
        progress(step("importing", rows));
        self.restore_service_password(target, source).await?;
        self.remap_after_import(target, source).await?;
        progress(step("replaying", rows));
        Ok(Imported { seq, rows, bytes: sent.load(Ordering::Relaxed), bytes_total: total })
    }

    /// The import gave the target the source's users, its copy of the
    /// gateway's own account included — with the *source's* password (each
    /// chassis has its own: the source document's defect 8). Set the
    /// target's own back, logged in with the one the import carried.
    /// Waits (at most 30 s) until the source serves and has applied the
    /// journal. (Holding the target in `full_resync` meanwhile was tried:
    /// when both chassis wait to be rebuilt from each other it keeps both
    /// out for good, where today one of them joins alone after a while —
    /// the both-down gap stays open, see the README's campaign notes.)
    pub(crate) async fn wait_for_source(&self, _target: usize, source: usize) -> Result<(), ResyncError> {
        let mut w = self.pair.members[source].detector.watch();
        let ready = tokio::time::timeout(Duration::from_secs(30), w.wait_for(|s| s.serves())).await.map(|r| r.is_ok()).unwrap_or(false);
        if !ready {
            return Err(ResyncError::NoSource(self.name(source).to_string()));
        }
        wait_applied(self.journal, self.pair, &[source], Duration::from_secs(5)).await.map(|_| ())
    }

    /// After an import the target holds the source's rows under the
    /// source's own IDs. A target with translated IDs takes the source's map
    /// (the identity over the rows it now holds when the source's IDs are
    /// the clients'); the entries after the export point, replayed next,
    /// add their rows as they are applied.
    async fn remap_after_import(&self, target: usize, source: usize) -> Result<(), ResyncError> {
        if self.pair.translated(target) != Some(true) {
            return Ok(());
        }
        let rows = if self.pair.translated(source) == Some(true) {
            self.translator.maps.view(source).rows()
        } else {
            let seen = listing::observe(self.broker, self.pair, target, self.collections, self.translator, self.per_try).await?;
            seen.into_iter().map(|(table, id)| (table, id, id)).collect()
        };
        let n = rows.len();
        self.translator.maps.change(vec![crate::journal::MapChange::Replace { chassis: target, rows }]).await?;
        tracing::info!(chassis = %self.name(target), entries = n, "id map rebuilt after the import");
        Ok(())
    }

    async fn restore_service_password(&self, target: usize, source: usize) -> Result<(), ResyncError> {
        let (mine, theirs) = (&self.broker.service[target], &self.broker.service[source]);
        let up = &self.pair.members[target].upstream;
        let fail = |why: String| ResyncError::ServiceAccount(up.name.clone(), why);
        if mine.password.expose() == theirs.password.expose() && mine.username == theirs.username {
            return Ok(());
        }
        if mine.username != theirs.username {
            return Err(fail(format!(
                "the gateway logs in as '{}' here and as '{}' on chassis {}: after an import a chassis holds the other's users, so give \
                 the gateway's account the same username on both chassis (each with its own password) in gateway.toml",
                mine.username,
                theirs.username,
                self.name(source)
            )));
        }
        let (token, account) = match self.broker.chassis_login(up, &mine.username, theirs.password.expose()).await {
            Ok(login) => login,
            // The import did not carry the source's password (the target's is intact).
            Err(BrokerError::BadCredentials(_)) => return Ok(()),
            Err(e) => return Err(fail(format!("logging in with the password the import carried: {e}"))),
        };
        let path = format!("/api/v1/users/{}", account.user_id);
        let body = serde_json::json!({"password": mine.password.expose()});
        match up.json(Method::PUT, &path, Some(&body), Some(token.expose()), self.per_try).await {
            Outcome::Answered(a) if a.is_success() => {
                tracing::info!(chassis = %up.name, user = %mine.username, "the import carried chassis {}'s password for the gateway's account; set back to this chassis' own", self.name(source));
                Ok(())
            }
            other => Err(fail(format!("PUT {path} (its own password back): {}", other.describe()))),
        }
    }
}

const INFO: &str = "/api/v1/system/info";
const EXPORT: &str = "/api/v1/system/export";
const IMPORT: &str = "/api/v1/system/import";

/// The rows an import answered it holds (`counts`, summed); 0 if it did not say.
fn imported_rows(answer: &[u8]) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(answer).unwrap_or_default();
    v["counts"].as_object().map(|c| c.values().filter_map(serde_json::Value::as_u64).sum()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::MismatchTarget;

    #[test]
    fn a_mismatch_rebuilds_the_chassis_that_left_its_verified_state_even_the_primary() {
        // Chassis 0 primary, changed behind the gateway's back: 1 still matches.
        assert_eq!(MismatchTarget::decide([false, true], 0), MismatchTarget::Diverged(0));
        assert_eq!(MismatchTarget::decide([true, false], 0), MismatchTarget::Diverged(1));
        assert_eq!(MismatchTarget::decide([true, false], 1), MismatchTarget::Diverged(1));
    }

    #[test]
    fn a_mismatch_without_evidence_rebuilds_the_secondary() {
        assert_eq!(MismatchTarget::decide([false, false], 0), MismatchTarget::Secondary(1));
        assert_eq!(MismatchTarget::decide([false, false], 1), MismatchTarget::Secondary(0));
        // Both matching cannot be with different digests at one seq; no guess either way.
        assert_eq!(MismatchTarget::decide([true, true], 1).chassis(), 0);
    }
}
