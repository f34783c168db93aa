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
//!   last entry (seq S), export it, let mutations flow again, import the
//!   export into the target, and replay the journal after S. Clients pause
//!   only while the export is taken.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde::Serialize;
use tokio::sync::{Notify, RwLock};

use crate::broker::{Broker, Runs};
use crate::journal::{Journal, VerifiedPoint};
use crate::pair::Pair;
use crate::upstream::{Outcome, UpRequest};

/// The longest new mutations are held while the chassis finish the entries
/// in flight (the budget is a pause of at most 1 s).
const GATE_WAIT: Duration = Duration::from_millis(500);

/// Mutations take this shared; a verify or an export takes it exclusively,
/// which stops new entries for the few milliseconds it needs.
pub type WriteGate = Arc<RwLock<()>>;

/// Why a chassis is resynced (for logs and the status page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    DigestMismatch,
    Divergence,
    JournalTruncated,
    Requested,
    InitialPairing,
}

/// A pending request to resync one chassis.
#[derive(Default)]
pub struct ResyncFlag {
    requested: AtomicBool,
    reason: std::sync::Mutex<Option<Reason>>,
    pub wake: Notify,
}

impl ResyncFlag {
    pub fn request(&self, reason: Reason) {
        if let Ok(mut r) = self.reason.lock() {
            *r = Some(reason);
        }
        self.requested.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Take the request, if any.
    pub fn take(&self) -> Option<Reason> {
        if self.requested.swap(false, Ordering::SeqCst) {
            Some(self.reason.lock().ok().and_then(|mut r| r.take()).unwrap_or(Reason::Requested))
        } else {
            None
        }
    }
}

/// Progress of a running full resync, for `/_pairgate/status`.
#[derive(Clone, Debug, Serialize)]
pub struct Progress {
    pub chassis: String,
    pub source: String,
    pub reason: Reason,
    /// `waiting_for_source`, `exporting`, `importing`, `replaying`, `done`, `failed: …`
    pub phase: String,
    pub at_seq: u64,
    pub rows: u64,
    pub elapsed_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    #[error("chassis {0} did not answer: {1}")]
    Chassis(String, String),
    #[error("chassis {0} did not apply the journal's last entry in time")]
    NotCaughtUp(String),
    #[error("the source chassis {0} is not in sync")]
    NoSource(String),
}

/// A call with the gateway's service account.
pub(crate) async fn service_call(
    broker: &Broker,
    pair: &Pair,
    i: usize,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    timeout: Duration,
) -> Result<Bytes, ResyncError> {
    let up = &pair.members[i].upstream;
    let mut headers = HeaderMap::new();
    if body.is_some() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let body = body.unwrap_or_default();
    let outcome = broker
        .send(i, up, &Runs::Service, || UpRequest {
            method: method.clone(),
            path_and_query: path,
            headers: headers.clone(),
            body: body.clone(),
            token: None,
            timeout,
        })
        .await;
    match outcome {
        Outcome::Answered(a) if a.is_success() => Ok(a.body),
        other => Err(ResyncError::Chassis(up.name.clone(), other.describe())),
    }
}

pub async fn digest(broker: &Broker, pair: &Pair, i: usize, timeout: Duration) -> Result<String, ResyncError> {
    let body = service_call(broker, pair, i, Method::GET, "/api/v1/system/digest", None, timeout).await?;
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ResyncError::Chassis(pair.members[i].upstream.name.clone(), e.to_string()))?;
    match v["digest"].as_str() {
        Some(d) if !d.is_empty() => Ok(d.to_string()),
        _ => Err(ResyncError::Chassis(pair.members[i].upstream.name.clone(), "no digest in its answer".into())),
    }
}

/// Wait (bounded) until every chassis in `who` applied the journal's last entry.
pub async fn wait_applied(journal: &Journal, pair: &Pair, who: &[usize], limit: Duration) -> Result<u64, ResyncError> {
    let start = Instant::now();
    loop {
        let last = journal.last_seq();
        let lagging = who.iter().find(|&&i| journal.applied(&pair.members[i].upstream.name).unwrap_or(0) < last);
        match lagging {
            None => return Ok(last),
            Some(&i) if start.elapsed() > limit => return Err(ResyncError::NotCaughtUp(pair.members[i].upstream.name.clone())),
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

/// What verifying and resyncing work with.
pub struct Resyncer<'a> {
    pub gate: &'a WriteGate,
    pub journal: &'a Journal,
    pub broker: &'a Broker,
    pub pair: &'a Pair,
    pub per_try: Duration,
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
                if self.journal.applied(name).unwrap_or(0) < self.journal.last_seq() {
                    return Err(ResyncError::NotCaughtUp(name.clone()));
                }
            }
            // Nothing is appended while the gate is held: both chassis are at `seq`.
            let seq = wait_applied(self.journal, self.pair, &others, GATE_WAIT).await?;
            let (a, b) = tokio::join!(digest(self.broker, self.pair, 0, self.per_try), digest(self.broker, self.pair, 1, self.per_try));
            Verdict { seq, digests: [a?, b?] }
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

    /// Rebuild chassis `target` from `source`: returns the seq the import is at.
    pub async fn full_resync(&self, target: usize, source: usize, progress: &(dyn Fn(&str, u64, u64) + Sync)) -> Result<u64, ResyncError> {
        progress("waiting_for_source", 0, 0);
        let mut w = self.pair.members[source].detector.watch();
        let ready = tokio::time::timeout(Duration::from_secs(30), w.wait_for(|s| s.serves())).await.map(|r| r.is_ok()).unwrap_or(false);
        if !ready {
            return Err(ResyncError::NoSource(self.pair.members[source].upstream.name.clone()));
        }
        wait_applied(self.journal, self.pair, &[source], Duration::from_secs(5)).await?;
        let (seq, doc) = {
            let _hold = self.gate.write().await;
            let seq = wait_applied(self.journal, self.pair, &[source], GATE_WAIT).await?;
            progress("exporting", seq, 0);
            let doc = service_call(self.broker, self.pair, source, Method::GET, "/api/v1/system/export", None, self.per_try * 30).await?;
            (seq, doc)
        };
        let rows = count_rows(&doc);
        progress("importing", seq, rows);
        service_call(self.broker, self.pair, target, Method::PUT, "/api/v1/system/import", Some(doc), self.per_try * 30).await?;
        progress("replaying", seq, rows);
        Ok(seq)
    }
}

fn count_rows(doc: &[u8]) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(doc).unwrap_or_default();
    v["tables"].as_object().map(|t| t.values().map(|t| t["rows"].as_array().map_or(0, Vec::len) as u64).sum()).unwrap_or(0)
}
