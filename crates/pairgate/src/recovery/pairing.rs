//! Pairing: making two chassis one before the first mutation, and where the
//! pair stands in that ([`Pairing`], one fact in one place).
//!
//! On a first start ([`Pairer::pair_up`]) the gateway inspects both chassis,
//! raises the id counter above every id either holds, and if their states
//! differ rebuilds the one without data from the one with it; if both hold
//! different data it refuses to guess ([`Pairing::Blocked`]) until an
//! operator picks a source ([`PairingState::operator_pick`], settled by
//! [`Pairer::settle_picks`]). On later starts the counter is already above
//! both, and joining waits (at most [`start_grace`]) until both chassis
//! answer, so two chassis back with different data are judged against their
//! last verified points (see the applier's `join`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use reqwest::Method;

use crate::chassis::detector::ChassisState;
use crate::chassis::features::Feature;
use crate::chassis::pair::Pair;
use crate::config::Collection;
use crate::error::GatewayError;
use crate::journal::Sequencer;
use crate::recovery::resync::Reason;
use crate::session::broker::Broker;

/// Where the pair stands in being made one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pairing {
    /// First start: both chassis are being inspected and the id counter
    /// raised above them. Mutations are refused: 503 `not_applied`, or
    /// `not_paired` saying `stuck`, why inspecting cannot go on (a chassis
    /// whose firmware has no export, which pairing reads).
    Inspecting { stuck: Option<String> },
    /// A later start: the id counter is above both (mutations accepted); no
    /// chassis joins until both answer or [`start_grace`] passed.
    Waiting,
    /// Mutations accepted; a chassis joins (is declared in sync) once its
    /// digest equals its peer's. `pick`: the source an operator picked to
    /// settle a blocked pair, made in sync on their word when it joins.
    Paired { pick: Option<usize> },
    /// Both chassis hold different data and neither can be shown right:
    /// mutations are refused (503 `not_paired` with `why`, which says what to
    /// run) and no chassis joins, until an operator picks a source (`pick`).
    Blocked { why: String, pick: Option<usize> },
}

impl Pairing {
    pub fn name(&self) -> &'static str {
        match self {
            Pairing::Inspecting { .. } => "inspecting",
            Pairing::Waiting => "waiting",
            Pairing::Paired { .. } => "paired",
            Pairing::Blocked { .. } => "blocked",
        }
    }
}

/// The pair's [`Pairing`], shared by the request path, the appliers, pairing
/// and the admin actions. Its lock cannot poison and is never held across
/// an await.
pub struct PairingState {
    now: Mutex<Pairing>,
    /// Woken when an operator picks a source for a blocked pair.
    picked: tokio::sync::Notify,
}

/// What [`PairingState::pick_for`] says to chassis `me` at the end of its catch-up.
#[derive(Debug, PartialEq, Eq)]
pub enum PickFor {
    /// No operator pick: join by comparing digests.
    None,
    /// `me` is the operator's pick: in sync on their word (the pick is used up).
    Source,
    /// The other chassis is the pick: `me` waits for its rebuild.
    Target,
}

impl PairingState {
    /// `paired_before`: an earlier start established the id floor.
    pub fn new(paired_before: bool) -> PairingState {
        let now = if paired_before { Pairing::Waiting } else { Pairing::Inspecting { stuck: None } };
        PairingState { now: Mutex::new(now), picked: tokio::sync::Notify::new() }
    }

    pub fn get(&self) -> Pairing {
        self.now.lock().clone()
    }

    /// `Ok` while mutations are accepted; otherwise the refusal.
    pub fn accepts_mutations(&self) -> Result<(), GatewayError> {
        match &*self.now.lock() {
            Pairing::Waiting | Pairing::Paired { .. } => Ok(()),
            Pairing::Inspecting { stuck: None } => Err(GatewayError::NotApplied),
            Pairing::Inspecting { stuck: Some(why) } => Err(GatewayError::NotPaired(why.clone())),
            Pairing::Blocked { why, .. } => Err(GatewayError::NotPaired(why.clone())),
        }
    }

    /// Whether a chassis may join now (paired, not blocked).
    pub fn lets_join(&self) -> bool {
        matches!(*self.now.lock(), Pairing::Paired { .. })
    }

    /// Why the pair is blocked (or its inspection stuck), if it is.
    pub fn blocked(&self) -> Option<String> {
        match &*self.now.lock() {
            Pairing::Blocked { why, .. } | Pairing::Inspecting { stuck: Some(why) } => Some(why.clone()),
            _ => None,
        }
    }

    /// A first start's inspection cannot go on (`Some`: why), or can again.
    fn inspecting(&self, stuck: Option<String>) {
        let mut now = self.now.lock();
        if let Pairing::Inspecting { stuck: old } = &mut *now {
            *old = stuck;
        }
    }

    /// Pairing is done: mutations accepted, chassis join (an operator's pick
    /// is kept for its chassis' join).
    pub fn paired(&self) {
        let mut now = self.now.lock();
        let pick = Self::pick_of(&now);
        *now = Pairing::Paired { pick };
    }

    /// A later start's wait is over: chassis may join.
    pub fn waited(&self) {
        let mut now = self.now.lock();
        if *now == Pairing::Waiting {
            *now = Pairing::Paired { pick: None };
        }
    }

    /// Neither chassis can be the reference: block, saying `why`. Not if an
    /// operator picked meanwhile (theirs stands); returns whether it blocked.
    pub fn block(&self, why: String) -> bool {
        let mut now = self.now.lock();
        if Self::pick_of(&now).is_some() {
            return false;
        }
        *now = Pairing::Blocked { why, pick: None };
        true
    }

    /// An operator asked to rebuild one chassis from `source`: if the pair
    /// is blocked, that settles it (`source` is the pick). Returns whether it
    /// was blocked.
    pub fn operator_pick(&self, source: usize) -> bool {
        let mut now = self.now.lock();
        let Pairing::Blocked { pick, .. } = &mut *now else { return false };
        *pick = Some(source);
        drop(now);
        self.picked.notify_one();
        true
    }

    /// For chassis `me` at the end of its catch-up: is there an operator's pick?
    pub fn pick_for(&self, me: usize) -> PickFor {
        let mut now = self.now.lock();
        match Self::pick_of(&now) {
            Some(source) if source == me => {
                if let Pairing::Paired { pick } = &mut *now {
                    *pick = None;
                }
                PickFor::Source
            }
            Some(_) => PickFor::Target,
            None => PickFor::None,
        }
    }

    fn pick_of(p: &Pairing) -> Option<usize> {
        match p {
            Pairing::Blocked { pick, .. } | Pairing::Paired { pick } => *pick,
            _ => None,
        }
    }

    /// The source picked for a pair still blocked (to be settled).
    fn pending_pick(&self) -> Option<usize> {
        match &*self.now.lock() {
            Pairing::Blocked { pick, .. } => *pick,
            _ => None,
        }
    }
}

/// The marker of a start that established the id floor.
pub const FLOOR_FILE: &str = "id_floor.established";

/// Whether an earlier start in `state_dir` established the id floor.
pub fn paired_before(state_dir: &Path) -> bool {
    state_dir.join(FLOOR_FILE).exists()
}

/// How long a later start waits for both chassis to answer before letting
/// one join alone: two `down_after`s, at least 2 s.
pub fn start_grace(down_after: Duration) -> Duration {
    (down_after * 2).max(Duration::from_secs(2))
}

/// What pairing works with.
pub struct Pairer {
    pub pair: Arc<Pair>,
    pub broker: Arc<Broker>,
    pub sequencer: Sequencer,
    pub state: Arc<PairingState>,
    pub state_dir: PathBuf,
    pub per_try: Duration,
    pub down_after: Duration,
    /// What to compare when a chassis has no `/system/digest`.
    pub collections: Arc<[Collection]>,
    /// A translated chassis first seen starts its map here.
    pub translator: Arc<crate::ids::translator::Translator>,
}

/// What pairing needs to know of a chassis: its highest id (rows and
/// counters, every table), whether it holds data beyond a first start, and
/// its digest. Read with the gateway's service account.
struct Inspection {
    highest: u64,
    has_data: bool,
    digest: String,
}

impl Pairer {
    /// Runs once at start. First start: make the chassis one before serving
    /// mutations (see the module's doc). Later start: wait (at most
    /// [`start_grace`]) for both chassis to answer, then let them join.
    pub async fn pair_up(self: Arc<Self>) {
        if self.state.get() == Pairing::Waiting {
            let grace = start_grace(self.down_after);
            if !both_reachable(&self.pair, grace).await {
                tracing::warn!(?grace, "a chassis did not answer at start; the other serves on the journal without a peer to compare with");
            }
            self.state.waited();
            self.check_id_floor().await;
            return;
        }
        let mut seen: [Option<Inspection>; 2] = [None, None];
        let mut delay = Duration::from_millis(100);
        while seen.iter().any(Option::is_none) {
            let mut stuck = None;
            for (i, slot) in seen.iter_mut().enumerate() {
                if slot.is_some() {
                    continue;
                }
                // Its firmware not known yet (discovery is under way): no
                // reason to show, only a moment to wait.
                if self.pair.translated(i).is_none() {
                    continue;
                }
                match self.inspect(i).await {
                    Ok(found) => *slot = Some(found),
                    Err(why) => stuck = Some(why),
                }
            }
            if self.state.blocked() != stuck {
                if let Some(why) = &stuck {
                    tracing::error!("pairing cannot go on: {why}");
                }
                self.state.inspecting(stuck);
            }
            if seen.iter().any(Option::is_none) {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
        let [Some(a), Some(b)] = seen else { return };
        let floor = a.highest.max(b.highest) + 1;
        if let Err(e) = self.sequencer.ensure_id_floor(floor).await {
            tracing::error!("raising the id counter: {e}");
            return;
        }
        let names = [self.pair.members[0].upstream.name.clone(), self.pair.members[1].upstream.name.clone()];
        if a.digest != b.digest {
            match (a.has_data, b.has_data) {
                (true, true) => {
                    let msg = format!(
                        "chassis {} and {} hold different data; the gateway will not guess which to keep. \
                         Run `pairgate resync {} --config <gateway.toml>` to copy {} onto {} (or the reverse)",
                        names[0], names[1], names[1], names[0], names[1]
                    );
                    tracing::error!("{msg}");
                    // Released by an operator's pick (see `settle_picks`).
                    self.state.block(msg);
                    return;
                }
                (true, false) | (false, false) => self.pair.members[1].resync.request(Reason::InitialPairing),
                (false, true) => self.pair.members[0].resync.request(Reason::InitialPairing),
            }
        }
        self.complete();
        tracing::info!(floor, "paired: id counter above every id on both chassis");
    }

    /// Runs for the gateway's life. Unblocks a blocked pair once an operator
    /// picked its source: raises the id counter above every id the source
    /// holds now (it may have been written to directly; the target is rebuilt
    /// from it), then accepts mutations again and lets the source join (as
    /// the operator's pick) and the target be rebuilt.
    pub async fn settle_picks(self: Arc<Self>) {
        loop {
            self.state.picked.notified().await;
            let mut delay = Duration::from_millis(100);
            while let Some(source) = self.state.pending_pick() {
                match self.inspect(source).await.ok() {
                    Some(seen) => match self.sequencer.ensure_id_floor(seen.highest + 1).await {
                        Ok(floor) => {
                            self.complete();
                            tracing::info!(floor, source = %self.pair.members[source].upstream.name, "pairing settled: mutations accepted again");
                            break;
                        }
                        Err(e) => tracing::error!("raising the id counter after the operator's pick: {e}"),
                    },
                    None => {
                        tracing::warn!(chassis = %self.pair.members[source].upstream.name, "cannot read the picked source's export yet; retrying")
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }

    /// What pairing needs of chassis `i`: from its export where its
    /// firmware has one, else from the listings the rules name. The error
    /// says why it cannot be read (yet): shown as the reason mutations wait.
    async fn inspect(&self, i: usize) -> Result<Inspection, String> {
        let name = self.pair.members[i].upstream.name.clone();
        let export = self.pair.members[i].features.lock().as_ref().map(|d| d.has(Feature::ExportImport));
        let (highest, has_data) = match export {
            None => return Err(format!("chassis {name}'s firmware is not known yet (GET /system/info)")),
            Some(true) => self.inspect_export(i).await?,
            Some(false) => self.inspect_listings(i).await.map_err(|e| format!("reading chassis {name}'s listings: {e}"))?,
        };
        self.seed_map(i).await.ok_or_else(|| format!("starting chassis {name}'s id map"))?;
        let method = crate::recovery::listing::method(&self.pair);
        let digest =
            crate::recovery::resync::state_digest(&self.broker, &self.pair, i, &self.collections, &self.translator, method, self.per_try)
                .await
                .map_err(|e| format!("digest of chassis {name} for pairing: {e}"))?;
        Ok(Inspection { highest, has_data, digest })
    }

    /// A later start: the id counter must still be above every id a chassis
    /// holds. It is, unless the state directory was restored from an older
    /// copy (the counter went back with it) or a chassis was given rows behind
    /// the gateway's back: then it is raised, and said. Read from each
    /// reachable chassis' export (firmware with `id_block` and export; a
    /// translated chassis' ids are its own, not the counter's).
    async fn check_id_floor(&self) {
        let Some(next) = self.sequencer.id_counter() else { return };
        // Each reachable chassis' firmware, learnt by discovery meanwhile (bounded).
        for _ in 0..50 {
            if (0..2).all(|i| self.pair.translated(i).is_some() || self.pair.state(i) == ChassisState::Down) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut highest = 0;
        for i in 0..2 {
            let exports = self.pair.members[i].features.lock().as_ref().map(|d| d.has(Feature::ExportImport));
            if exports != Some(true) || self.pair.translated(i) != Some(false) || self.pair.state(i) == ChassisState::Down {
                continue;
            }
            match self.inspect_export(i).await {
                Ok((h, _)) => highest = highest.max(h),
                Err(e) => tracing::debug!(chassis = %self.pair.members[i].upstream.name, "id counter check at start: {e}"),
            }
        }
        if highest < next {
            return;
        }
        match self.sequencer.ensure_id_floor(highest + 1).await {
            Ok(floor) => tracing::warn!(
                counter = next,
                highest,
                floor,
                "the id counter was not above every id a chassis holds: the state directory was restored from an older copy, \
                 or a chassis was written to behind the gateway's back; raised above them"
            ),
            Err(e) => tracing::error!("raising the id counter: {e}"),
        }
    }

    /// Whether a user is one a first start has: the chassis' `admin`, the
    /// gateway's own account.
    fn first_start_user(&self, i: usize, username: Option<&str>) -> bool {
        username == Some("admin") || username == Some(self.broker.service[i].username.as_str())
    }

    async fn inspect_export(&self, i: usize) -> Result<(u64, bool), String> {
        let body = crate::recovery::resync::service_call(
            &self.broker,
            &self.pair,
            i,
            Method::GET,
            "/api/v1/system/export",
            None,
            self.per_try * 5,
        )
        .await
        .map_err(|e| format!("export for pairing: {e}"))?;
        let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("export for pairing is not JSON: {e}"))?;
        let tables = doc["tables"].as_object().ok_or("export for pairing has no \"tables\"")?;
        let mut highest = 0u64;
        let mut has_data = false;
        for (name, table) in tables {
            highest = highest.max(table["next_id"].as_u64().unwrap_or(1).saturating_sub(1));
            let rows = table["rows"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            for row in rows {
                highest = highest.max(row["id"].as_u64().unwrap_or(0));
            }
            // A first start holds the admin account, the gateway's own account
            // and the physical inputs only.
            has_data |= match name.as_str() {
                "users" => rows.iter().any(|r| !self.first_start_user(i, r["username"].as_str())),
                "sources" => rows.iter().any(|r| r["builtin"] != true),
                _ => !rows.is_empty(),
            };
        }
        Ok((highest, has_data))
    }

    /// The same from the `[[collection]]` listings: the highest id they show
    /// (by the read rules), and whether any row (a listed object with an
    /// `id`) is more than a first start holds.
    async fn inspect_listings(&self, i: usize) -> Result<(u64, bool), crate::recovery::service::ResyncError> {
        let (mut highest, mut has_data) = (0u64, false);
        let translator = &self.translator;
        crate::recovery::listing::read_all(&self.broker, &self.pair, i, &self.collections, translator, self.per_try, &mut |l| {
            for (_, id) in translator.ids_in_listing(l.native_path, l.raw) {
                highest = highest.max(id);
            }
            for row in l.raw.as_array().map(Vec::as_slice).unwrap_or(&[]) {
                if row.get("id").is_none() {
                    continue;
                }
                has_data |= if l.native_path.ends_with("/users") {
                    !self.first_start_user(i, row["username"].as_str())
                } else if l.native_path.ends_with("/sources") {
                    row["builtin"] != true
                } else {
                    true
                };
            }
        })
        .await?;
        Ok((highest, has_data))
    }

    /// A chassis with translated IDs and no map yet (first pairing): the
    /// rows it holds keep their IDs as client IDs (the id counter is raised
    /// above all of them), so its map starts as the identity over what its
    /// listings show.
    async fn seed_map(&self, i: usize) -> Option<()> {
        if self.pair.translated(i) != Some(true) || !self.translator.maps.view(i).is_empty() {
            return Some(());
        }
        let seen = crate::recovery::listing::observe(&self.broker, &self.pair, i, &self.collections, &self.translator, self.per_try)
            .await
            .map_err(|e| tracing::warn!("listing for pairing: {e}"))
            .ok()?;
        let rows = seen.into_iter().map(|(table, id)| (table, id, id)).collect::<Vec<_>>();
        let n = rows.len();
        let change = crate::journal::MapChange::Replace { chassis: i, rows };
        if let Err(e) = self.translator.maps.change(vec![change]).await {
            tracing::error!("recording the first id map: {e}");
            return None;
        }
        tracing::info!(chassis = %self.pair.members[i].upstream.name, rows = n, "translated ids: the map starts with the rows the chassis holds, under their own ids");
        Some(())
    }

    fn complete(&self) {
        let marker = self.state_dir.join(FLOOR_FILE);
        if let Err(e) = write_private(&marker, b"paired\n") {
            // The counter itself is in the journal; without the marker the next start
            // pairs again (inspects both chassis), which is safe, only slower.
            tracing::error!(path = %marker.display(), "recording that pairing is done: {e}");
        }
        self.state.paired();
    }
}

/// Whether both chassis left `down` within `limit`.
async fn both_reachable(pair: &Pair, limit: Duration) -> bool {
    let wait = |i: usize| {
        let mut w = pair.members[i].detector.watch();
        async move { w.wait_for(|s| *s != ChassisState::Down).await.is_ok() }
    };
    let both = async { tokio::join!(wait(0), wait(1)) };
    matches!(tokio::time::timeout(limit, both).await, Ok((true, true)))
}

/// Writes `contents` to `path`, created 0600.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_start_refuses_mutations_until_paired_and_a_later_start_accepts_them_at_once() {
        let first = PairingState::new(false);
        assert!(matches!(first.accepts_mutations(), Err(GatewayError::NotApplied)));
        assert!(!first.lets_join());
        first.paired();
        assert!(first.accepts_mutations().is_ok() && first.lets_join());
        let later = PairingState::new(true);
        assert!(later.accepts_mutations().is_ok());
        assert!(!later.lets_join(), "no chassis joins before both answered or the grace passed");
        later.waited();
        assert!(later.lets_join());
    }

    #[test]
    fn a_stuck_inspection_says_why_mutations_are_refused_until_it_can_go_on() {
        let s = PairingState::new(false);
        s.inspecting(Some("chassis b offers no export/import".into()));
        assert!(matches!(s.accepts_mutations(), Err(GatewayError::NotPaired(w)) if w.contains("no export")));
        assert_eq!(s.blocked().as_deref(), Some("chassis b offers no export/import"));
        assert!(!s.operator_pick(0), "an operator's pick does not settle firmware");
        s.inspecting(None);
        assert!(matches!(s.accepts_mutations(), Err(GatewayError::NotApplied)));
        s.paired();
        s.inspecting(Some("late".into()));
        assert_eq!(s.get(), Pairing::Paired { pick: None }, "only an inspection can be stuck");
    }

    #[test]
    fn a_blocked_pair_is_settled_by_an_operators_pick_which_its_source_uses_up_when_it_joins() {
        let s = PairingState::new(true);
        s.waited();
        assert!(!s.operator_pick(0), "nothing to settle while paired");
        assert!(s.block("a and b differ".into()));
        assert!(matches!(s.accepts_mutations(), Err(GatewayError::NotPaired(w)) if w == "a and b differ"));
        assert!(!s.lets_join());
        assert!(s.operator_pick(1));
        assert!(!s.block("again".into()), "an operator's pick stands against a later verdict");
        assert_eq!(s.pending_pick(), Some(1));
        s.paired();
        assert_eq!(s.get(), Pairing::Paired { pick: Some(1) });
        assert_eq!(s.pick_for(0), PickFor::Target);
        assert_eq!(s.pick_for(1), PickFor::Source);
        assert_eq!(s.pick_for(1), PickFor::None, "used up");
        assert_eq!(s.get(), Pairing::Paired { pick: None });
    }
}
