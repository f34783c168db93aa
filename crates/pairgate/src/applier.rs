//! One applier per chassis: applies journal entries to its chassis strictly
//! in seq order, so both chassis see the same mutations in the same order
//! (guarantee 3), and a chassis that was away catches up by replaying what
//! it missed (guarantee 2).
//!
//! Each attempt's [`Outcome`] is published as a [`Report`], which is how the
//! request that created the entry learns both chassis' answers. An entry
//! counts as applied once the chassis *decided* it (2xx or 4xx): a replayed
//! create answers `id_in_use`, a replayed anything answers the stored reply of
//! its `Idempotency-Key`, both of which mean "already there". A 5xx, a refusal
//! or no answer is retried — with the same key, so never applied twice —
//! after the chassis is reachable again.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use tokio::sync::broadcast;

use crate::broker::{Broker, Runs};
use crate::detector::{ChassisState, Signal};
use crate::journal::{request_fingerprint, ClientKeyState, ClientResponse, Entry, Journal, JournalError};
use crate::pair::Pair;
use crate::upstream::{Outcome, UpRequest};

/// One attempt of one entry on one chassis.
#[derive(Clone, Debug)]
pub struct Report {
    pub seq: u64,
    pub chassis: usize,
    pub outcome: Outcome,
}

pub struct Applier {
    pub index: usize,
    pub pair: Arc<Pair>,
    pub broker: Arc<Broker>,
    pub journal: Journal,
    pub reports: broadcast::Sender<Report>,
    pub per_try: Duration,
}

/// The request an entry becomes on a chassis.
pub fn request_for<'a>(entry: &'a Entry, gateway_id: &str, timeout: Duration) -> UpRequest<'a> {
    let mut headers = HeaderMap::new();
    for (k, v) in &entry.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) {
            headers.insert(k, v);
        }
    }
    let key = entry.chassis_idempotency_key(gateway_id);
    if let Ok(v) = HeaderValue::try_from(key.as_str()) {
        headers.insert(HeaderName::from_static("idempotency-key"), v.clone());
        // The same origin/seq lets both chassis' calls to a superior be
        // recognised as one (cascade).
        headers.insert(HeaderName::from_static("x-origin-seq"), v);
    }
    if let Some(block) = entry.id_block_header() {
        if let Ok(v) = HeaderValue::try_from(block) {
            headers.insert(HeaderName::from_static("x-id-block"), v);
        }
    }
    UpRequest {
        method: Method::from_bytes(entry.method.as_bytes()).unwrap_or(Method::POST),
        path_and_query: &entry.path_and_query,
        headers,
        body: Bytes::clone(&entry.body),
        token: None,
        timeout,
    }
}

impl Applier {
    fn name(&self) -> &str {
        &self.pair.members[self.index].upstream.name
    }

    /// Wait until the chassis is not down.
    async fn reachable(&self) {
        let mut w = self.pair.members[self.index].detector.watch();
        let _ = w.wait_for(|s| *s != ChassisState::Down).await;
    }

    fn caught_up_check(&self, position: u64) {
        if position >= self.journal.last_seq() {
            self.pair.members[self.index].detector.signal(Signal::CaughtUp);
        }
    }

    /// Run forever (until the runtime stops).
    pub async fn run(self) {
        let start = match self.journal.applied(self.name()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(chassis = %self.name(), "applier cannot read its position: {e}");
                return;
            }
        };
        let mut follower = self.journal.follow(start);
        let mut state = self.pair.members[self.index].detector.watch();
        loop {
            self.reachable().await;
            self.caught_up_check(follower.position());
            state.mark_unchanged();
            // `Follower::next` is cancel-safe: a state change while idle (the
            // chassis came back) re-runs the caught-up check above.
            let entry = tokio::select! {
                e = follower.next() => e,
                _ = state.changed() => continue,
            };
            let entry = match entry {
                Ok(e) => e,
                Err(JournalError::Truncated { .. }) => {
                    tracing::error!(chassis = %self.name(), "missed more than the journal keeps: a full resync is needed (not built yet)");
                    return;
                }
                Err(e) => {
                    tracing::error!(chassis = %self.name(), "journal read failed: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    follower = self.journal.follow(self.journal.applied(self.name()).unwrap_or(start));
                    continue;
                }
            };
            self.apply(&entry).await;
            self.caught_up_check(entry.seq);
        }
    }

    /// A client that sent an `Idempotency-Key` and got `outcome_unknown` (or
    /// whose gateway restarted) retries with the same key: the first decided
    /// answer of the entry becomes the key's stored answer. Only a key still
    /// in flight *for this entry* is touched; a key answered by the request
    /// itself stays as it is.
    async fn record_client_answer(&self, entry: &Entry, a: &crate::upstream::Answered) {
        let Some(key) = &entry.client_key else { return };
        let fp = request_fingerprint(&entry.method, &entry.path_and_query, &entry.body);
        match self.journal.begin_client_key(&entry.account, key, &fp) {
            Ok(ClientKeyState::InFlight { seq: Some(seq) }) if seq == entry.seq => {
                let headers =
                    a.content_type.iter().filter_map(|v| v.to_str().ok()).map(|v| ("content-type".to_string(), v.to_string())).collect();
                let response = ClientResponse { status: a.status, headers, body: a.body.clone() };
                if let Err(e) = self.journal.finish_client_key(&entry.account, key, response).await {
                    tracing::warn!(seq = entry.seq, "recording the client's answer: {e}");
                }
            }
            // Expired meanwhile: we just took it, give it back.
            Ok(ClientKeyState::New) => {
                self.journal.release_client_key(&entry.account, key);
            }
            _ => {}
        }
    }

    /// Attempt one entry until the chassis decides it (or it is voided).
    async fn apply(&self, entry: &Entry) {
        let member = &self.pair.members[self.index];
        let runs = Runs::User(entry.account.clone());
        let gateway_id = self.journal.gateway_id().to_string();
        let mut backoff = Duration::from_millis(25);
        loop {
            if self.journal.is_void(entry.seq) {
                let _ = self.journal.mark_applied(self.name(), entry.seq);
                return;
            }
            self.reachable().await;
            let outcome = self.broker.send(self.index, &member.upstream, &runs, || request_for(entry, &gateway_id, self.per_try)).await;
            let _ = self.reports.send(Report { seq: entry.seq, chassis: self.index, outcome: outcome.clone() });
            match &outcome {
                Outcome::Answered(a) if outcome.decided().is_some() => {
                    self.record_client_answer(entry, a).await;
                    if let Err(e) = self.journal.mark_applied(self.name(), entry.seq) {
                        tracing::error!(chassis = %self.name(), seq = entry.seq, "recording applied: {e}");
                    }
                    return;
                }
                Outcome::Refused(e) => {
                    tracing::warn!(chassis = %self.name(), seq = entry.seq, "refused: {e}");
                    member.detector.signal(Signal::Refused);
                }
                other => {
                    tracing::warn!(chassis = %self.name(), seq = entry.seq, "not applied: {}", other.describe());
                    member.detector.signal(Signal::Failed);
                    member.detector.signal(Signal::FellBehind);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}
