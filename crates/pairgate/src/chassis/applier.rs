//! One applier per chassis: applies journal entries to its chassis in seq
//! order wherever order matters, so both chassis end in the same state and
//! give the same answers (guarantee 3), and a chassis that was away catches
//! up by replaying what it missed (guarantee 2).
//!
//! Entries that touch different things (their route rules' `conflicts`, see
//! [`crate::chassis::conflicts`]) are on their way together, up to `[journal]
//! max_in_flight`; an entry waits for every earlier one it conflicts with,
//! and nothing after it is started meanwhile. The chassis' applied position
//! is its [`Window::watermark`]: every entry up to it is decided there. A
//! chassis that cannot recognise a repeat (no `Idempotency-Key`), or whose
//! IDs are translated, is sent one entry at a time.
//!
//! Each attempt's [`Outcome`] is left in the entry's answer slot
//! ([`crate::answers`]), which is how the request that created the entry
//! learns both chassis' answers. An entry
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

use crate::chassis::conflicts::{Conflicts, Window};
use crate::chassis::detector::{ChassisState, Signal};
use crate::chassis::pair::Pair;
use crate::chassis::upstream::{Outcome, UpRequest};
use crate::journal::{ClientKeyState, ClientResponse, Entry, Follower, Journal, JournalError};
use crate::recovery::pairing::{PairingState, PickFor};
use crate::recovery::resync::{Progress, Reason, Resyncer, Step, WriteGate};
use crate::recovery::resync_request::Standoff;
use crate::session::broker::{Broker, Runs};

pub struct Applier {
    pub index: usize,
    pub pair: Arc<Pair>,
    pub broker: Arc<Broker>,
    pub journal: Journal,
    /// Where this applier leaves each entry's outcome for the waiting request.
    pub answers: Arc<crate::answers::Answers>,
    pub gate: WriteGate,
    /// The running (or last) full resync, shown on the status page.
    pub progress: Arc<parking_lot::Mutex<Option<Progress>>>,
    /// Where the pair stands in being made one: no chassis joins before it is
    /// paired; blocked here when no chassis can be the reference; an
    /// operator's pick (`pairgate resync <target>`) is made in sync on their word.
    pub pairing: Arc<PairingState>,
    pub stats: Arc<crate::stats::Stats>,
    /// Entries on the wire, voided, accepted (shared with the request path).
    pub attempts: Arc<crate::chassis::attempts::Attempts>,
    /// What to compare when a chassis has no `/system/digest`.
    pub collections: Arc<[crate::config::Collection]>,
    /// IDs for a chassis without `id_block`: requests out in its IDs,
    /// answers back in client IDs, creates and deletes into its map.
    pub translator: Arc<crate::ids::translator::Translator>,
    /// Fills the superior's address and account with the egress' (cascade).
    pub egress: Option<Arc<crate::cascade::Egress>>,
    /// The configuration that runs now: its route rules say what each entry
    /// touches ([`Conflicts::of`]), its `per_try` bounds each send (both read
    /// anew for each entry, so a reload applies to the next one).
    pub cfg: crate::config::LiveConfig,
    /// Entries on their way to the chassis at most (`[journal] max_in_flight`).
    pub max_in_flight: usize,
}

/// How an entry came back from [`Applier::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// Decided on the chassis, or counted as applied there (void, covered by
    /// a resync): the watermark may pass it. `durably`: the new position is
    /// committed before anything else is sent (firmware that cannot
    /// recognise a repeat must never be sent a decided entry again).
    Passed { durably: bool },
    /// Not decided: a full resync was asked for instead.
    Undecided,
}

/// The request an entry becomes on a chassis. A sealed body is opened here,
/// right before sending, and only into this request; an entry whose body does
/// not open (see [`Journal::body`]) is [`JournalError::Unseal`] and must not be
/// sent at all.
pub fn request_for<'a>(entry: &'a Entry, journal: &Journal, timeout: Duration) -> Result<UpRequest<'a>, JournalError> {
    let body = journal.body(entry)?;
    let mut headers = HeaderMap::new();
    for (k, v) in &entry.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) {
            headers.insert(k, v);
        }
    }
    let key = entry.chassis_idempotency_key(journal.gateway_id());
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
    Ok(UpRequest {
        method: Method::from_bytes(entry.method.as_bytes()).unwrap_or(Method::POST),
        path_and_query: &entry.path_and_query,
        headers,
        body,
        token: None,
        timeout,
    })
}

/// What a decided answer is stored as for a client's `Idempotency-Key` (its
/// status, content type and body), given again to a repeat.
pub fn client_response(a: &crate::chassis::upstream::Answered) -> ClientResponse {
    let headers = a.content_type.iter().filter_map(|v| v.to_str().ok()).map(|v| ("content-type".to_string(), v.to_string())).collect();
    ClientResponse { status: a.status, headers, body: a.body.clone() }
}

/// The code of the answer an entry gets when its body cannot be opened.
pub const UNREADABLE_ENTRY: &str = "journal_entry_unreadable";

/// What an entry whose sealed body cannot be opened is decided as, on every
/// chassis alike, without sending anything: a 422 naming the problem (a 4xx, so
/// that it counts as decided — nothing changed anywhere — and the journal moves
/// on instead of retrying it forever).
fn unreadable(chassis: &str, entry: &Entry, e: &JournalError) -> Outcome {
    tracing::error!(chassis, seq = entry.seq, account = %entry.account, "not sent: {e}");
    let body = serde_json::json!({"error": {
        "code": UNREADABLE_ENTRY,
        "message": format!("the gateway cannot read back this request (journal entry {}): its sealed body does not open with the journal key; \
                            it was applied nowhere, send it again", entry.seq),
    }});
    Outcome::Answered(crate::chassis::upstream::Answered {
        status: 422,
        content_type: Some(HeaderValue::from_static("application/json")),
        body: Bytes::from(body.to_string()),
    })
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

    /// At the end of the journal while catching up: compare digests with the
    /// peer before declaring this chassis in sync (never on trust).
    async fn join(&self) {
        let me = self.index;
        let other = Pair::other(me);
        let member = &self.pair.members[me];
        // A blocked pair settled by an operator: their pick is the source.
        match self.pairing.pick_for(me) {
            PickFor::Source => {
                tracing::warn!(chassis = %self.name(), "in sync as the operator's pick; {} is rebuilt from it", self.peer_name());
                member.detector.signal(Signal::CaughtUp);
                return;
            }
            // The target: its resync is requested and waits for the source.
            PickFor::Target => return,
            PickFor::None => {}
        }
        // A peer whose applier is parked in a full resync (waiting for this
        // chassis as its source) is being rebuilt, whatever its detector says
        // (one that went down and came back shows catching_up): it cannot be
        // compared with, and waiting for it would keep both out.
        let peer = if self.pair.members[other].rebuilding.load(std::sync::atomic::Ordering::SeqCst) {
            ChassisState::FullResync
        } else {
            self.pair.state(other)
        };
        match peer {
            ChassisState::InSync | ChassisState::CatchingUp => {
                let resyncer = self.resyncer();
                let verdict = match resyncer.verify(Some(me)).await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::debug!(chassis = %self.name(), "verify: {e}");
                        return;
                    }
                };
                if verdict.equal() {
                    member.unknown_outcome.store(0, std::sync::atomic::Ordering::SeqCst);
                    member.detector.signal(Signal::CaughtUp);
                } else if self.pair.state(other) == ChassisState::InSync {
                    self.stats.divergences.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(chassis = %self.name(), "digest differs from the in-sync peer: full resync");
                    member.resync.request(Reason::DigestMismatch);
                } else {
                    // Both coming back, and they disagree: only a chassis whose
                    // state is what the journal says it must be is a reference.
                    let refs = resyncer.references(&verdict);
                    self.settle(&verdict, refs[me], refs[other]);
                }
            }
            ChassisState::Down | ChassisState::FullResync if member.unknown_outcome.load(std::sync::atomic::Ordering::SeqCst) != 0 => {
                // An entry it was never sent again may be missing here: only
                // a comparison or a rebuild lets it serve, never its journal alone.
                tracing::warn!(chassis = %self.name(), "an entry of unknown outcome was counted as applied here and its peer is gone before the comparison: rebuilt from it instead");
                member.resync.request(Reason::UnknownOutcome);
            }
            ChassisState::Down | ChassisState::FullResync => {
                // Nothing to compare with: the survivor serves on its journal.
                tracing::warn!(chassis = %self.name(), "in sync with no peer to compare digests with");
                member.detector.signal(Signal::CaughtUp);
            }
        }
    }

    /// Both chassis back and different: the one that matches its last
    /// verified point is in sync and the other is rebuilt from it; if neither
    /// does (or both claim to), refuse to guess until an operator picks.
    fn settle(&self, verdict: &crate::recovery::resync::Verdict, me_ok: bool, other_ok: bool) {
        let (me, other) = (self.index, Pair::other(self.index));
        let (reference, stale) = match (me_ok, other_ok) {
            (true, false) => (me, other),
            (false, true) => (other, me),
            _ => return self.block(verdict),
        };
        self.stats.divergences.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            reference = %self.pair.members[reference].upstream.name,
            rebuilt = %self.pair.members[stale].upstream.name,
            seq = verdict.seq,
            "both chassis came back different; only the reference holds its last verified state: the other is rebuilt from it"
        );
        self.pair.members[reference].detector.signal(Signal::CaughtUp);
        self.pair.members[stale].resync.request(Reason::DigestMismatch);
    }

    /// Neither chassis can be shown to hold what the journal says: mutations
    /// are refused (503 `not_paired`) and status says what to run.
    fn block(&self, verdict: &crate::recovery::resync::Verdict) {
        let short = |d: &str| d.chars().take(12).collect::<String>();
        let names = [self.pair.members[0].upstream.name.as_str(), self.pair.members[1].upstream.name.as_str()];
        let seen: Vec<String> = (0..2)
            .map(|i| {
                let last = match self.journal.verified(names[i]) {
                    Ok(Some(p)) => format!("last verified at seq {} with digest {}", p.seq, short(&p.digest)),
                    Ok(None) => "never verified".to_string(),
                    Err(e) => format!("last verified point unreadable: {e}"),
                };
                format!("{} shows digest {} ({last})", names[i], short(&verdict.digests[i]))
            })
            .collect();
        let msg = format!(
            "chassis {a} and {b} hold different data at seq {seq} and neither holds the state this gateway last verified \
             ({}; {}); the gateway will not guess which to keep and refuses mutations. \
             Run `pairgate resync {b} --config <gateway.toml>` to keep {a} and rebuild {b} from it, \
             or `pairgate resync {a} --config <gateway.toml>` to keep {b}",
            seen[0],
            seen[1],
            a = names[0],
            b = names[1],
            seq = verdict.seq,
        );
        // An operator who picked meanwhile (this verify started before) stands.
        if self.pairing.block(msg.clone()) {
            tracing::error!("{msg}");
        }
    }

    fn peer_name(&self) -> &str {
        &self.pair.members[Pair::other(self.index)].upstream.name
    }

    /// Rebuild this chassis from its peer; the follower to continue with.
    async fn resync(&self, reason: Reason) -> Option<Follower> {
        let me = self.index;
        let source = Pair::other(me);
        let member = &self.pair.members[me];
        let started = std::time::Instant::now();
        let names = (self.name().to_string(), self.pair.members[source].upstream.name.clone());
        let attempt = member.resync_attempt.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let _parked = Parked::new(&member.rebuilding);
        let report = |step: Step| {
            let mut p = self.progress.lock();
            *p = Some(Progress {
                chassis: names.0.clone(),
                source: names.1.clone(),
                reason,
                phase: step.phase.to_string(),
                at_seq: step.seq,
                rows: step.rows,
                bytes: step.bytes,
                bytes_total: step.bytes_total,
                attempt,
                elapsed_ms: started.elapsed().as_millis() as u64,
            });
        };
        tracing::warn!(chassis = %self.name(), ?reason, "full resync from {}", names.1);
        member.detector.signal(Signal::Resync);
        if reason == Reason::UnknownOutcome {
            if let Some(follower) = self.settle_standoff(&report).await {
                return Some(follower);
            }
        }
        match self.resyncer().full_resync(me, source, &report).await {
            Ok(imported) => {
                member.unknown_outcome.store(0, std::sync::atomic::Ordering::SeqCst);
                let seq = imported.seq;
                if let Err(e) = self.journal.mark_applied(self.name(), seq) {
                    tracing::error!(chassis = %self.name(), "recording the resync's seq: {e}");
                }
                report(Step { phase: "done", seq, rows: imported.rows, bytes: imported.bytes, bytes_total: imported.bytes_total });
                member.resyncs_done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                member.resync_attempt.store(0, std::sync::atomic::Ordering::SeqCst);
                tracing::info!(
                    chassis = %self.name(),
                    seq,
                    rows = imported.rows,
                    bytes = imported.bytes,
                    attempt,
                    ms = started.elapsed().as_millis() as u64,
                    "full resync imported; replaying"
                );
                member.detector.signal(Signal::ResyncDone);
                Some(self.journal.follow(seq))
            }
            Err(e) => {
                report(Step::new(&format!("failed: {e}"), 0));
                member.resyncs_failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tracing::error!(chassis = %self.name(), "full resync failed: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                member.resync.request(reason);
                None
            }
        }
    }

    /// Entry `entry`'s outcome here is unknown (`why`) and this firmware
    /// cannot recognise a repeat: it is never sent again. The gateway finds
    /// out by the comparison: once the peer has decided it (waited for at
    /// most one per-try while the peer serves, or already recorded, as after
    /// a restart), the entry counts as applied here and this chassis catches
    /// up from the next one; it joins only if its state then equals its
    /// peer's (the join's comparison, in client IDs), and is rebuilt if not.
    /// Nobody decided it: the chassis is rebuilt (resync `unknown_outcome`).
    async fn unknown_here(&self, entry: &Entry, why: &str) -> Applied {
        use std::sync::atomic::Ordering::SeqCst;
        let (me, peer) = (&self.pair.members[self.index], Pair::other(self.index));
        let peer_name = &self.pair.members[peer].upstream.name;
        let deadline = tokio::time::Instant::now() + self.per_try();
        // Only an in-sync peer: a mismatch then rebuilds this chassis from it.
        let decided = loop {
            if !self.pair.state(peer).serves() || tokio::time::Instant::now() >= deadline {
                break false;
            }
            if self.attempts.decided(entry.seq, peer).is_some() || self.journal.applied(peer_name).is_ok_and(|a| a >= entry.seq) {
                break true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // Set either way: until a comparison shows this chassis equal to its
        // peer (or a rebuild), it never joins alone (`join`).
        me.unknown_outcome.store(entry.seq, SeqCst);
        if decided {
            match self.journal.mark_applied_durably(self.name(), entry.seq).await {
                Ok(()) => {
                    tracing::warn!(
                        chassis = %self.name(), seq = entry.seq,
                        "outcome unknown ({why}) on firmware without Idempotency-Key: not resent; {peer_name} decided it, so this chassis catches up without it and joins only if its state then equals {peer_name}'s (rebuilt if not)"
                    );
                    me.detector.signal(Signal::FellBehind);
                    // Committed just above (entries go one at a time here, so
                    // the watermark is this seq): not committed a second time.
                    return Applied::Passed { durably: false };
                }
                Err(e) => tracing::error!(chassis = %self.name(), seq = entry.seq, "recording the entry of unknown outcome: {e}"),
            }
        }
        tracing::error!(
            chassis = %self.name(), seq = entry.seq,
            "outcome unknown ({why}) on firmware without Idempotency-Key, and no in-sync chassis decided it: not resent; rebuilding the chassis"
        );
        me.resync.request(Reason::UnknownOutcome);
        Applied::Undecided
    }

    /// Waiting to be rebuilt for an entry of unknown outcome: while the peer
    /// does not serve, look (every 100 ms, at most 30 s) whether it waits to
    /// be rebuilt from this chassis too; if so, and [`Standoff::keeps_its_state`]
    /// says this one keeps its state, count the entry as applied here and
    /// rejoin (the peer is then rebuilt from this chassis). `None`: rebuild
    /// as asked.
    async fn settle_standoff(&self, report: &(dyn Fn(Step) + Sync)) -> Option<Follower> {
        use std::sync::atomic::Ordering::SeqCst;
        let (me, peer) = (self.index, Pair::other(self.index));
        report(Step::new("waiting_for_source", 0));
        for _ in 0..300 {
            if self.pair.state(peer).serves() {
                return None;
            }
            let applied = |i: usize| self.journal.applied(&self.pair.members[i].upstream.name).unwrap_or(0);
            let standoff = Standoff {
                applied: [applied(0), applied(1)],
                unknown: [self.pair.members[0].unknown_outcome.load(SeqCst), self.pair.members[1].unknown_outcome.load(SeqCst)],
                rebuilding: [0, 1].map(|i| self.pair.members[i].rebuilding.load(SeqCst)),
                preferred: self.pair.preferred(),
            };
            if standoff.keeps_its_state(me) {
                let unknown = standoff.unknown[me];
                if let Err(e) = self.journal.mark_applied_durably(self.name(), unknown).await {
                    tracing::error!(chassis = %self.name(), seq = unknown, "recording the entry of unknown outcome as applied: {e}; rebuilding instead");
                    return None;
                }
                self.pair.members[me].unknown_outcome.store(0, SeqCst);
                tracing::warn!(
                    chassis = %self.name(), seq = unknown, ?standoff,
                    "both chassis wait to be rebuilt from each other and no chassis decided entry {unknown}: this one keeps its state (the entry counted as applied, whatever it did here); {} is rebuilt from it",
                    self.peer_name()
                );
                self.pair.members[me].detector.signal(Signal::ResyncDone);
                return Some(self.journal.follow(unknown));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
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
        let member = &self.pair.members[self.index];
        let mut follower = self.journal.follow(start);
        let mut window = Window::new(start);
        // The next entry in journal order, read but not started: it waits for
        // the entries on their way that it conflicts with (and nothing after
        // it is read meanwhile).
        let mut pending: Option<(Arc<Entry>, Conflicts)> = None;
        let me = &self;
        let apply = move |entry: Arc<Entry>| async move { (entry.seq, me.apply(&entry).await) };
        let mut running = futures_util::stream::FuturesUnordered::new();
        let mut state = member.detector.watch();
        let mut next_join = tokio::time::Instant::now();
        loop {
            let reachable = member.detector.state() != ChassisState::Down;
            // A full resync once nothing is on its way (what is, is sent
            // until decided, as ever); nothing new is started meanwhile.
            let resync_wanted = member.resync.is_requested();
            if reachable && running.is_empty() && resync_wanted {
                if let Some(reason) = member.resync.take() {
                    if let Some(f) = self.resync(reason).await {
                        follower = f;
                        pending = None;
                        window.reset(follower.position());
                    }
                }
                continue;
            }
            // Caught up with the journal while catching up: try to join (after
            // pairing is decided), at most every 50 ms (under writes the end of
            // the journal moves: each try is a chance to catch it).
            let idle = window.is_idle() && pending.is_none();
            let joining =
                reachable && idle && follower.position() >= self.journal.last_seq() && member.detector.state() == ChassisState::CatchingUp;
            if joining && tokio::time::Instant::now() >= next_join {
                if self.ready() {
                    self.join().await;
                }
                next_join = tokio::time::Instant::now() + Duration::from_millis(50);
            }
            let limit = self.parallelism();
            if reachable && !resync_wanted {
                if let Some((entry, what)) = pending.take() {
                    if window.admits(&what, limit) {
                        window.start(entry.seq, what);
                        running.push(apply(entry));
                        member.most_in_flight.fetch_max(running.len() as u64, std::sync::atomic::Ordering::SeqCst);
                    } else {
                        pending = Some((entry, what));
                    }
                }
            }
            let reading = reachable && !resync_wanted && pending.is_none() && !window.is_stuck() && window.in_flight() < limit;
            state.mark_unchanged();
            // `Follower::next` is cancel-safe: a state change, a resync request
            // or the next join attempt while idle re-runs the checks above.
            tokio::select! {
                Some((seq, applied)) = futures_util::StreamExt::next(&mut running), if !running.is_empty() => {
                    self.passed(&mut window, seq, applied).await;
                }
                e = follower.next(), if reading => match e {
                    Ok(entry) => {
                        let what = self.conflicts(&entry, limit);
                        pending = Some((entry, what));
                    }
                    Err(JournalError::Truncated { .. }) => {
                        tracing::warn!(chassis = %self.name(), "missed more than the journal keeps");
                        member.resync.request(Reason::JournalTruncated);
                    }
                    Err(e) => {
                        tracing::error!(chassis = %self.name(), "journal read failed: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        // Everything up to the last started is on its way or decided.
                        follower = self.journal.follow(window.last_started());
                    }
                },
                _ = state.changed() => {}
                _ = member.resync.wake.notified() => {}
                _ = tokio::time::sleep_until(next_join), if joining => {}
            }
        }
    }

    /// How many entries may be on their way to this chassis: one unless it
    /// recognises a repeat and takes the gateway's IDs (a translated
    /// chassis' IDs are learnt from each answer, in order).
    fn parallelism(&self) -> usize {
        if self.max_in_flight > 1 && self.recognises_repeats() && self.pair.translated(self.index) == Some(false) {
            self.max_in_flight
        } else {
            1
        }
    }

    /// What `entry` touches; everything when entries go one at a time anyway.
    fn conflicts(&self, entry: &Entry, limit: usize) -> Conflicts {
        if limit <= 1 {
            return Conflicts::All;
        }
        // An unreadable body (decided as such by `apply`) is sent alone, like
        // anything unclear.
        Conflicts::of(&self.cfg.load().routes, entry, || self.journal.body(entry).ok())
    }

    /// Entry `seq` came back: the chassis' position moves to the new watermark.
    async fn passed(&self, window: &mut Window, seq: u64, applied: Applied) {
        window.finish(seq, applied != Applied::Undecided);
        let position = window.watermark();
        let recorded = if applied == (Applied::Passed { durably: true }) {
            self.journal.mark_applied_durably(self.name(), position).await
        } else {
            self.journal.mark_applied(self.name(), position)
        };
        if let Err(e) = recorded {
            tracing::error!(chassis = %self.name(), seq, position, "recording applied: {e}");
        }
    }

    /// A chassis that is not in sync decided `seq` (a replay) in another
    /// class than its in-sync peer did (e.g. 404 where the peer said 201): it
    /// does not hold what the journal says it must — it came back wiped, from
    /// an old copy, or was changed behind the gateway's back — and replaying
    /// more would only pile up wrong answers. Rebuilt from the peer now.
    fn compare_with_peer(&self, seq: u64, status: u16) {
        let peer = Pair::other(self.index);
        let Some(theirs) = self.attempts.decided(seq, peer) else { return };
        if theirs / 100 != status / 100 && self.pair.state(peer).serves() && !self.pair.state(self.index).serves() {
            tracing::error!(
                chassis = %self.name(),
                seq,
                status,
                peer = %self.peer_name(),
                peer_status = theirs,
                "divergence on replay: this chassis answered otherwise than its in-sync peer; rebuilding it"
            );
            self.pair.members[self.index].resync.request(Reason::Divergence);
        }
    }

    /// One attempt's limit (`[timeouts] per_try_ms`, as it is now).
    fn per_try(&self) -> Duration {
        self.cfg.load().timeouts.per_try
    }

    fn resyncer(&self) -> Resyncer<'_> {
        Resyncer {
            gate: &self.gate,
            journal: &self.journal,
            broker: &self.broker,
            pair: &self.pair,
            per_try: self.per_try(),
            collections: &self.collections,
            translator: &self.translator,
        }
    }

    /// Whether joining is allowed yet: initial pairing decided, and the pair
    /// not blocked waiting for an operator.
    fn ready(&self) -> bool {
        self.pairing.lets_join()
    }

    /// A client that sent an `Idempotency-Key` and got `outcome_unknown` (or
    /// whose gateway restarted) retries with the same key: the first decided
    /// answer of the entry becomes the key's stored answer. Only a key still
    /// in flight *for this entry* is touched; a key answered by the request
    /// itself stays as it is.
    async fn record_client_answer(&self, entry: &Entry, a: &crate::chassis::upstream::Answered) {
        let Some(key) = &entry.client_key else { return };
        let fp = match self.journal.entry_fingerprint(entry) {
            Ok(fp) => fp,
            Err(e) => {
                tracing::warn!(seq = entry.seq, "the client's answer is not recorded: {e}");
                return;
            }
        };
        match self.journal.begin_client_key(&entry.account, key, &fp) {
            Ok(ClientKeyState::InFlight { seq: Some(seq) }) if seq == entry.seq => {
                if let Err(e) = self.journal.finish_client_key(&entry.account, key, client_response(a)).await {
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

    /// A chassis that claims `id_block` but answered a create with an id
    /// outside the block it was sent is caught: reported (log, status
    /// `firmware.caught`), worked with as firmware without it from now on,
    /// and rebuilt from its peer (its ids are not the ones clients see).
    fn check_id_block(&self, entry: &Entry, a: &crate::chassis::upstream::Answered) {
        // Only a create's answer (201) names a row the block numbered: a 200
        // may name an existing one (a subordinate registering again).
        let Some(block) = entry.id_block.filter(|b| b.count > 0 && a.status == 201) else { return };
        let m = &self.pair.members[self.index];
        let mut known = m.features.lock();
        let Some(claimed) = known.as_ref().filter(|d| d.has(crate::chassis::features::Feature::IdBlock)) else { return };
        let Some(id) = crate::chassis::features::id_outside_block(&a.body, block.base, block.end()) else { return };
        let why = format!("entry {} created id {id}, outside the block {}..{} it was sent", entry.seq, block.base, block.end());
        tracing::error!(chassis = %self.name(), "the chassis claims id_block but does not honour X-Id-Block ({why}); worked with as firmware without it, and rebuilt");
        *known = Some(claimed.caught_ignoring_id_block(why));
        drop(known);
        m.resync.request(Reason::Divergence);
    }

    /// Whether a create on its way to this chassis when the gateway stopped
    /// landed here: the listing of its collection (`GET` of the create's
    /// path, read as the gateway's service account) holds its row or not
    /// ([`crate::ids::translate::landed`]). `Some(Some(answer))`: its row,
    /// as the create's `201` would have shown it; `Some(None)`: not here;
    /// `None`: cannot tell (said why).
    async fn landed_here(&self, entry: &Entry) -> Option<Option<crate::chassis::upstream::Answered>> {
        use crate::ids::translate::Landed;
        let unsure = |why: &str| {
            tracing::warn!(chassis = %self.name(), seq = entry.seq, "whether the create landed here cannot be told: {why}");
            None
        };
        let mut req = match request_for(entry, &self.journal, self.per_try()) {
            Ok(req) => req,
            Err(e) => return unsure(&e.to_string()),
        };
        if let Some(egress) = &self.egress {
            req.body = egress.toward_chassis(&entry.method, &entry.path_and_query, req.body);
        }
        let (native_path, native_body) = match self.translator.request(self.index, &entry.method, &entry.path_and_query, &req.body) {
            Ok(native) => native,
            Err(u) => return unsure(&u.to_string()),
        };
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&native_body) else { return unsure("its body is not JSON") };
        let collection = native_path.split('?').next().unwrap_or(&native_path);
        let listed =
            crate::recovery::service::service_call(&self.broker, &self.pair, self.index, Method::GET, collection, None, self.per_try())
                .await;
        let listing = match listed.map(|b| serde_json::from_slice::<serde_json::Value>(&b)) {
            Ok(Ok(listing)) => listing,
            Ok(Err(e)) => return unsure(&format!("GET {collection} answered with no JSON: {e}")),
            Err(e) => return unsure(&e.to_string()),
        };
        match self.translator.landed(self.index, &entry.method, &entry.path_and_query, entry.id_block, &body, &listing) {
            Landed::Row(row) => Some(Some(crate::chassis::upstream::Answered {
                status: 201,
                content_type: Some(HeaderValue::from_static("application/json")),
                body: Bytes::from(row.to_string()),
            })),
            Landed::Absent => Some(None),
            Landed::Unsure(why) => unsure(&why),
        }
    }

    /// Whether this chassis recognises a resent entry by its `Idempotency-Key`
    /// (so an unknown outcome may be resent). Not known yet: no.
    fn recognises_repeats(&self) -> bool {
        self.recognises_repeats_at(self.index)
    }

    /// [`Applier::recognises_repeats`] for chassis `i`.
    fn recognises_repeats_at(&self, i: usize) -> bool {
        let known = self.pair.members[i].features.lock();
        known.as_ref().is_some_and(|d| d.has(crate::chassis::features::Feature::IdempotencyKey))
    }

    /// A translated chassis' decided answer: its new rows and ended rows
    /// into its map (durably, before anyone is answered), the answer in
    /// client IDs. An ID the map does not know means the chassis holds rows
    /// the gateway never saw created: it is rebuilt.
    async fn to_client_ids(&self, entry: &Entry, outcome: Outcome) -> Outcome {
        let Some(a) = outcome.decided() else { return outcome };
        let (method, path) = (entry.method.as_str(), entry.path_and_query.as_str());
        if let Err(e) = self.translator.learn(self.index, method, path, entry.id_block, a).await {
            tracing::error!(chassis = %self.name(), seq = entry.seq, "{e}; rebuilding the chassis");
            self.pair.members[self.index].resync.request(Reason::Divergence);
        }
        let (answer, misses) = self.translator.answer(self.index, method, path, a);
        if !misses.is_empty() {
            let misses: Vec<String> = misses.iter().map(ToString::to_string).collect();
            tracing::error!(chassis = %self.name(), seq = entry.seq, ?misses, "the answer holds ids the gateway never saw created; rebuilding the chassis");
            self.pair.members[self.index].resync.request(Reason::Divergence);
        }
        Outcome::Answered(answer)
    }

    /// Attempt one entry until the chassis decides it (or it is voided), or
    /// (firmware without `Idempotency-Key`) until its outcome is unknown: then
    /// the chassis is rebuilt instead of the entry being resent.
    ///
    /// Never records the chassis' position itself (others may be on their
    /// way below this one): its caller does, from the window's watermark —
    /// except [`Applier::unknown_here`], only reached when entries go one at
    /// a time.
    async fn apply(&self, entry: &Entry) -> Applied {
        let member = &self.pair.members[self.index];
        let mut runs = Runs::User(entry.account.clone());
        let mut backoff = Duration::from_millis(25);
        loop {
            if self.journal.is_void(entry.seq) || self.attempts.is_voided(entry.seq) {
                return Applied::Passed { durably: false };
            }
            // Already counted as applied here: a void entry the journal stepped
            // over (and may have truncated, void mark and all), or one a full
            // resync's import covered. Never sent.
            match self.journal.applied(self.name()) {
                Ok(applied) if applied >= entry.seq => return Applied::Passed { durably: false },
                Ok(_) => {}
                Err(e) => tracing::error!(chassis = %self.name(), seq = entry.seq, "reading the applied position: {e}"),
            }
            self.reachable().await;
            // Unverified since an entry of unknown outcome was counted as
            // applied here (`unknown_here`), with no in-sync peer to be
            // compared with: nothing more is sent. Deciding entries the peer
            // has not would leave neither chassis holding everything decided
            // (the standoff then has no chassis that may keep its state).
            let peer = Pair::other(self.index);
            if member.unknown_outcome.load(std::sync::atomic::Ordering::SeqCst) != 0 && !self.pair.state(peer).serves() {
                tracing::warn!(chassis = %self.name(), seq = entry.seq, "not sent: this chassis is unverified and its peer is not in sync; rebuilt from it instead");
                member.resync.request(Reason::UnknownOutcome);
                return Applied::Undecided;
            }
            // Nothing is sent before the firmware is known: it decides which
            // IDs the chassis is given.
            let Some(translated) = self.pair.translated(self.index) else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            // Firmware that cannot recognise a repeat: the entry that was on
            // its way when the gateway stopped (a crash: its answer was never
            // recorded) may have been applied; resending could apply it twice.
            let repeats = self.recognises_repeats();
            // Both chassis had it on their way: neither can be the reference
            // of the other's rebuild (each would wait for the other), and
            // neither decided it, so no client was answered. Sent again,
            // as before this record existed, and said so.
            let on_its_way = |i: usize| {
                let name = &self.pair.members[i].upstream.name;
                !self.recognises_repeats_at(i)
                    && self.journal.sending_at_open(name) == Some(entry.seq)
                    && self.journal.applied(name).is_ok_and(|a| a < entry.seq)
            };
            let mine_unknown = on_its_way(self.index);
            // Sent again without knowing whether it was applied: the answer
            // it gets now (a 404 for a close that did close, a 409 for a
            // create whose rows exist) says nothing of the client's request.
            let mut blind = false;
            // A create found on the chassis: its row, taken as the answer.
            let mut found = None;
            if mine_unknown && on_its_way(Pair::other(self.index)) {
                // A create on firmware that numbers its own rows is looked
                // for first: sent again blind, it would be applied twice.
                let looked = if translated && !resend_is_harmless(&entry.method) { self.landed_here(entry).await } else { None };
                match looked {
                    Some(Some(row)) => {
                        tracing::warn!(chassis = %self.name(), seq = entry.seq, "this create was on its way to both chassis when the gateway stopped; its row is on this one: taken as its answer, not sent again");
                        found = Some(row);
                    }
                    Some(None) => {
                        tracing::warn!(chassis = %self.name(), seq = entry.seq, "this create was on its way to both chassis when the gateway stopped; its row is not on this one: sent");
                    }
                    None => {
                        tracing::warn!(chassis = %self.name(), seq = entry.seq, "this entry was on its way to both chassis when the gateway stopped; neither can be rebuilt from the other: sent again");
                        blind = !resend_is_harmless(&entry.method);
                    }
                }
            } else if mine_unknown && !resend_is_harmless(&entry.method) {
                return self.unknown_here(entry, "it was on its way when the gateway stopped").await;
            }
            // Claimed right before it is sent: a void decided while this
            // applier waited wins, and none can be decided while it is sent.
            let outcome = {
                let Some(_on_the_wire) = self.attempts.claim(entry.seq, self.index, self.journal.is_void(entry.seq)) else { continue };
                if let Some(row) = found.take() {
                    Outcome::Answered(row)
                } else {
                    if !repeats {
                        if let Err(e) = self.journal.mark_sending(self.name(), entry.seq).await {
                            tracing::error!(chassis = %self.name(), seq = entry.seq, "not sent: recording it as on its way failed: {e}");
                            tokio::time::sleep(backoff).await;
                            continue;
                        }
                    }
                    let native_path: String;
                    let request = request_for(entry, &self.journal, self.per_try()).map(|mut req| {
                        if let Some(egress) = &self.egress {
                            req.body = egress.toward_chassis(&entry.method, &entry.path_and_query, req.body);
                        }
                        req
                    });
                    match request {
                        Ok(mut req) if translated => {
                            // Its own IDs, and no block it would not honour.
                            req.headers.remove("x-id-block");
                            match self.translator.request(self.index, &entry.method, &entry.path_and_query, &req.body) {
                                Ok((path, body)) => {
                                    native_path = path;
                                    req.path_and_query = &native_path;
                                    req.body = body;
                                    self.broker.send(self.index, &member.upstream, &runs, || req.clone()).await
                                }
                                // No such row here: decided without sending.
                                Err(u) => Outcome::Answered(crate::ids::translator::unknown_id(&u)),
                            }
                        }
                        Ok(req) => self.broker.send(self.index, &member.upstream, &runs, || req.clone()).await,
                        Err(e) => unreadable(self.name(), entry, &e),
                    }
                }
            };
            let outcome = if translated { self.to_client_ids(entry, outcome).await } else { outcome };
            let outcome = match outcome {
                Outcome::AccountRefused(why) if runs != Runs::Service => {
                    if self.attempts.accepted_by_other(entry.seq, self.index) {
                        // The other chassis accepted this very entry from its
                        // account: replaying it is the gateway's own call.
                        tracing::info!(chassis = %self.name(), seq = entry.seq, user = %entry.account, "the account cannot log in any more ({why}); replaying the entry the other chassis accepted as the gateway's account");
                        runs = Runs::Service;
                        continue;
                    }
                    // Nobody accepted it: decided here as refused, never sent
                    // with anyone else's rights.
                    tracing::warn!(chassis = %self.name(), seq = entry.seq, user = %entry.account, "not sent: {why}");
                    Outcome::Answered(account_refused(&why))
                }
                other => other,
            };
            if let Some(a) = outcome.decided() {
                self.attempts.record_decided(entry.seq, self.index, a.status);
                self.compare_with_peer(entry.seq, a.status);
            }
            self.answers.fill(entry.seq, self.index, outcome.clone());
            match &outcome {
                Outcome::Answered(a) if outcome.decided().is_some() => {
                    self.check_id_block(entry, a);
                    // A blind resend's answer is not the client's: its retry is told the truth.
                    let unknown;
                    let told = if blind {
                        unknown = outcome_unknown(a.status);
                        &unknown
                    } else {
                        a
                    };
                    self.record_client_answer(entry, told).await;
                    return Applied::Passed { durably: !repeats };
                }
                Outcome::Refused(e) => {
                    tracing::warn!(chassis = %self.name(), seq = entry.seq, "refused: {e}");
                    member.detector.signal(Signal::Refused);
                }
                Outcome::AccountRefused(e) => {
                    // The gateway's own account cannot log in: shown in status; retried.
                    tracing::error!(chassis = %self.name(), seq = entry.seq, "replay as the gateway's account not sent: {e}");
                    member.detector.signal(Signal::FellBehind);
                }
                other => {
                    member.detector.signal(Signal::Failed);
                    member.detector.signal(Signal::FellBehind);
                    if !self.recognises_repeats() && !resend_is_harmless(&entry.method) {
                        // It may have applied it; a resend would apply it again.
                        return self.unknown_here(entry, &other.describe()).await;
                    }
                    tracing::warn!(chassis = %self.name(), seq = entry.seq, "not applied: {}", other.describe());
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}

/// Marks a member's applier as inside a full resync for as long as it lives.
struct Parked<'a>(&'a std::sync::atomic::AtomicBool);

impl<'a> Parked<'a> {
    fn new(flag: &'a std::sync::atomic::AtomicBool) -> Parked<'a> {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        Parked(flag)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Whether sending an entry again leaves the chassis as sending it once
/// does, whatever happened to the first: a `PUT` (idempotent, RFC 9110
/// §9.2.2: it sets what it names). A repeated `DELETE` leaves the same state
/// too, but answers 404 where the peer said 204, which reads as a divergence:
/// it is not resent either.
pub fn resend_is_harmless(method: &str) -> bool {
    method.eq_ignore_ascii_case("PUT")
}

/// The `error.code` a client's retry gets for an entry that was on its way to
/// both chassis when the gateway stopped and had to be sent again to firmware
/// that cannot recognise a repeat: whether its first sending took effect
/// cannot be told from the second one's answer.
pub const OUTCOME_UNKNOWN: &str = "outcome_unknown";

/// The answer stored for such an entry's `Idempotency-Key` (a 5xx: the
/// request may have taken effect), naming what the resend was answered.
pub fn outcome_unknown(resend_status: u16) -> crate::chassis::upstream::Answered {
    let message = format!(
        "the gateway stopped while this request was on its way to both chassis; it was sent again and answered {resend_status}, \
         which cannot tell whether your request took effect: read the state before repeating it"
    );
    let body = serde_json::json!({"error": {"code": OUTCOME_UNKNOWN, "message": message}});
    crate::chassis::upstream::Answered {
        status: 500,
        content_type: Some(HeaderValue::from_static("application/json")),
        body: Bytes::from(body.to_string()),
    }
}

/// The `error.code` of the answer an entry gets on a chassis where its
/// account can no longer log in (the request path ends that account's
/// gateway sessions when it sees it).
pub const ACCOUNT_REFUSED: &str = "account_refused";

/// The decided answer for an entry that was not sent because its account
/// could not log in: 401 `account_refused`, in the chassis' error shape.
pub fn account_refused(why: &str) -> crate::chassis::upstream::Answered {
    let body = serde_json::json!({"error": {"code": ACCOUNT_REFUSED, "message": format!("your account could not be confirmed by the chassis ({why}); log in again")}});
    crate::chassis::upstream::Answered {
        status: 401,
        content_type: Some(HeaderValue::from_static("application/json")),
        body: Bytes::from(body.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Draft, JournalConfig, JOURNAL_KEY_FILE};

    #[tokio::test]
    async fn a_sealed_body_is_opened_into_the_request_and_never_sent_when_it_cannot_be() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let body = bytes::Bytes::from_static(br#"{"username":"carol","password":"pw-applier-test"}"#);
        let draft = Draft {
            method: "POST".into(),
            path_and_query: "/api/v1/users".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.clone(),
            account: "admin".into(),
            seal_body: true,
            ..Draft::default()
        };
        {
            let (journal, seq) = crate::journal::open(dir.path(), JournalConfig::default()).unwrap_or_else(|e| panic!("{e}"));
            let entry = seq.append(draft).await.unwrap_or_else(|e| panic!("{e}"));
            assert_ne!(entry.body, body, "stored sealed");
            let req = request_for(&entry, &journal, Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(req.body, body, "opened for the chassis");
            let key = req.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            assert!(key.starts_with(&format!("{}.", journal.gateway_id())) && key.ends_with("/1"), "{key}");
        }
        // The key is lost: the entry is decided as an error, not sent.
        std::fs::remove_file(dir.path().join(JOURNAL_KEY_FILE)).unwrap_or_else(|e| panic!("{e}"));
        let (journal, _seq) = crate::journal::open(dir.path(), JournalConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let entry = journal.get(1).unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("entry 1"));
        let err = match request_for(&entry, &journal, Duration::from_secs(1)) {
            Ok(_) => panic!("a body that does not open must not become a request"),
            Err(e) => e,
        };
        assert!(matches!(err, JournalError::Unseal { seq: 1 }));
        let outcome = unreadable("a", &entry, &err);
        let answer = outcome.decided().unwrap_or_else(|| panic!("decided: {}", outcome.describe()));
        assert_eq!((answer.status, answer.error_code().as_deref()), (422, Some(UNREADABLE_ENTRY)));
    }
}
