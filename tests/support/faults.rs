//! The seeded fault scheduler: one fault at a time (except the deliberate
//! "both chassis down"), each held for a random bounded time, then undone,
//! then the pair given time (bounded) to be in sync again before the next.
//!
//! Waiting for `in_sync` between faults is what "one fault at a time" means
//! here: a chassis still catching up from the previous fault is part of that
//! fault, and killing the other one then would be a double fault.
//!
//! The first faults of a campaign are every kind once, in a seeded order, so
//! that even a short campaign covers them all; after that, kinds are drawn at
//! random. Every fault is recorded with its times (campaign clock) so that a
//! failed check can print the schedule and a read failure can be compared
//! with the windows in which no chassis could serve.
//!
//! Three kinds leave a chassis *diverged* and so force a full resync under
//! load (with the bulk rows of the setup, each moves tens of thousands of
//! rows): `wipe_chassis` (back with first-start data), `restore_old_copy`
//! (back with an older copy of its own state) and `direct_write` (changed
//! behind the gateway's back, found only by anti-entropy).

use std::fmt;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::json;

use crate::clock::{secs, Clock};
use crate::gateway_config::ANTI_ENTROPY_EVERY;
use crate::gateway_proc::{all_in_sync, serving, Counters};
use crate::site::{Site, NAMES};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// `kill -9` of one chassis, restarted on the same port and state.
    KillChassis,
    /// `kill -9` of the gateway, restarted on the same configuration and state.
    KillGateway,
    /// The TCP link gateway ↔ one chassis cut (open connections reset, new ones too).
    CutLink,
    /// The link to one chassis slow (each chunk delayed, both ways).
    SlowLink,
    /// One chassis answering 5xx (`/_sim/faults` error rate, fail-next, or
    /// fail-after-apply: applied, then answered 500).
    ChassisErrors,
    /// `/_sim/power_off` of one chassis, restarted later.
    PowerOff,
    /// Both chassis killed at once, then restarted.
    BothDown,
    /// `kill -9` of one chassis, its state folder's files deleted, restarted
    /// on the same port: a first start (admin/admin, seed rows only).
    WipeChassis,
    /// `kill -9` of one chassis, its state folder replaced by the copy taken
    /// while it was last stopped (at setup, or during a later `kill_chassis`),
    /// restarted: an older state of its own.
    RestoreOldCopy,
    /// One bulk row renamed on one chassis directly (not through the
    /// gateway): only the gateway's anti-entropy can find it. Healed when the
    /// gateway shows a completed resync.
    DirectWrite,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::KillChassis,
        FaultKind::KillGateway,
        FaultKind::CutLink,
        FaultKind::SlowLink,
        FaultKind::ChassisErrors,
        FaultKind::PowerOff,
        FaultKind::BothDown,
        FaultKind::WipeChassis,
        FaultKind::RestoreOldCopy,
        FaultKind::DirectWrite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillChassis => "kill_chassis",
            FaultKind::KillGateway => "kill_gateway",
            FaultKind::CutLink => "cut_link",
            FaultKind::SlowLink => "slow_link",
            FaultKind::ChassisErrors => "chassis_5xx",
            FaultKind::PowerOff => "power_off",
            FaultKind::BothDown => "both_down",
            FaultKind::WipeChassis => "wipe_chassis",
            FaultKind::RestoreOldCopy => "restore_old_copy",
            FaultKind::DirectWrite => "direct_write",
        }
    }

    /// Does this fault leave a chassis diverged, so that the gateway must
    /// rebuild one with a full resync?
    pub fn forces_resync(self) -> bool {
        matches!(self, FaultKind::WipeChassis | FaultKind::RestoreOldCopy | FaultKind::DirectWrite)
    }

    /// Does it destroy what the target chassis holds? Then it is only
    /// injected while the other chassis is in sync (it holds everything).
    pub fn destroys_state(self) -> bool {
        matches!(self, FaultKind::WipeChassis | FaultKind::RestoreOldCopy)
    }

    /// While this fault holds, may reads fail? Only when no chassis can
    /// answer: both down, or the gateway itself gone. (A wiped, restored or
    /// directly changed chassis leaves the other one serving.)
    pub fn excuses_failed_reads(self) -> bool {
        matches!(self, FaultKind::BothDown | FaultKind::KillGateway)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One fault as it happened.
#[derive(Clone, Debug)]
pub struct FaultRecord {
    pub n: usize,
    pub kind: FaultKind,
    /// Chassis index (0 = a) for single-chassis faults.
    pub target: Option<usize>,
    /// Parameters: latency, error spec, order of kills…
    pub detail: String,
    /// The fault took effect (for `both_down`: the second kill).
    pub start_us: i64,
    /// It was undone (process restarted, link healed, hook cleared).
    pub healed_us: i64,
    /// First status page, after healing, with a chassis serving (a primary).
    pub serving_us: Option<i64>,
    /// Both chassis in sync with lag 0 again.
    pub in_sync_us: Option<i64>,
    /// Anything the harness itself could not do (the fault may be partial).
    pub harness_error: Option<String>,
    /// For `kill_gateway`: the gateway's counters just before the kill
    /// (they restart from zero with the process).
    pub counters_before: Option<Counters>,
}

impl fmt::Display for FaultRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = self.target.map(|t| format!(" {}", NAMES[t])).unwrap_or_default();
        write!(f, "#{:<3} {:>9} {}{}", self.n, secs(self.start_us), self.kind, target)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        write!(f, " healed {}", secs(self.healed_us))?;
        if let Some(s) = self.serving_us {
            write!(f, ", serving {}", secs(s))?;
        }
        match self.in_sync_us {
            Some(s) => write!(f, ", in_sync {}", secs(s))?,
            None => write!(f, ", NOT back in sync")?,
        }
        if let Some(e) = &self.harness_error {
            write!(f, " [harness: {e}]")?;
        }
        Ok(())
    }
}

/// How long the pair may take to be in sync again after a fault before the
/// scheduler moves on (the record then says "NOT back in sync"), by default
/// (a site's [`Site::recovery_limit`]).
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(20);

/// What to do next, drawn from the seed.
#[derive(Clone, Debug)]
struct Plan {
    kind: FaultKind,
    target: usize,
    hold: Duration,
    latency: Duration,
    errors: serde_json::Value,
    /// BothDown: kill b first; and the pause between the two kills/restarts.
    b_first: bool,
    stagger: Duration,
    /// DirectWrite: which bulk row (modulo their number).
    row: u64,
}

fn ms(rng: &mut StdRng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(rng.random_range(lo..=hi))
}

fn plan(kind: FaultKind, rng: &mut StdRng) -> Plan {
    let target = rng.random_range(0..2);
    let hold = match kind {
        FaultKind::KillChassis | FaultKind::PowerOff => ms(rng, 200, 2000),
        FaultKind::KillGateway => ms(rng, 100, 1500),
        FaultKind::CutLink => ms(rng, 300, 2500),
        FaultKind::SlowLink | FaultKind::ChassisErrors => ms(rng, 1000, 3000),
        FaultKind::BothDown => ms(rng, 300, 2000),
        // Longer than `down_after` (600 ms): a box being wiped or restored is
        // gone a while, and the gateway sees it down even between requests.
        FaultKind::WipeChassis | FaultKind::RestoreOldCopy => ms(rng, 700, 2000),
        // Nothing to hold: the change is made, then found by the gateway.
        FaultKind::DirectWrite => Duration::ZERO,
    };
    // Mostly slow; sometimes slower than the gateway's per-try timeout (a
    // silently hung chassis, as far as the gateway can tell).
    let latency = if rng.random_bool(0.7) { ms(rng, 30, 700) } else { ms(rng, 1000, 3000) };
    // Before applying (5xx, nothing changed) or after (applied, answer lost).
    let errors = match rng.random_range(0..3) {
        0 => json!({"error_rate": 0.5}),
        1 => json!({"fail_next": rng.random_range(1..=6)}),
        _ => json!({"fail_after_apply_next": rng.random_range(1..=4)}),
    };
    Plan { kind, target, hold, latency, errors, b_first: rng.random_bool(0.5), stagger: ms(rng, 0, 300), row: rng.random() }
}

/// Run faults until `until` has passed on the campaign clock *and* every
/// kind happened once (never past `hard_limit`). Returns the schedule.
pub async fn run_scheduler(
    site: &mut Site,
    rng: &mut StdRng,
    clock: Clock,
    until: Duration,
    hard_limit: Duration,
    verbose: bool,
) -> Vec<FaultRecord> {
    let mut order = FaultKind::ALL.to_vec();
    order.shuffle(rng);
    let mut done = Vec::new();
    for n in 1..=100_000usize {
        let covered = n > FaultKind::ALL.len();
        if (covered && clock.elapsed() >= until) || clock.elapsed() >= hard_limit {
            break;
        }
        // A quiet gap first: traffic flows on a healthy pair between faults.
        tokio::time::sleep(ms(rng, 200, 1000)).await;
        let kind = if covered { FaultKind::ALL[rng.random_range(0..FaultKind::ALL.len())] } else { order[n - 1] };
        let p = plan(kind, rng);
        let rec = inject(site, &p, n, clock).await;
        if verbose {
            println!("fault {rec}");
        }
        done.push(rec);
    }
    done
}

/// Apply one planned fault, hold it, undo it, wait for recovery.
async fn inject(site: &mut Site, p: &Plan, n: usize, clock: Clock) -> FaultRecord {
    let mut t = p.target;
    let limit = Duration::from_secs(10);
    let mut harness_error = None;
    let mut detail = String::new();
    let mut counters_before = None;
    let status_before = site.gateway.status().await;
    // Full resyncs per chassis before the fault (None: status unreadable).
    let resyncs_before = status_before.as_ref().map(resyncs_by_chassis);
    // Never wipe or roll back the only chassis holding everything (when the
    // previous fault did not recover): that would lose acknowledged writes
    // by the harness' hand, not the gateway's. Target the other one, or skip.
    let in_sync = |i: usize| status_before.as_ref().is_some_and(|s| chassis_state(s, i) == "in_sync");
    let mut no_survivor = false;
    if p.kind.destroys_state() && !in_sync(1 - t) {
        if in_sync(t) {
            detail = format!("{} was the only chassis in sync: target {} instead; ", NAMES[t], NAMES[1 - t]);
            t = 1 - t;
        } else {
            no_survivor = true;
        }
    }
    // DirectWrite: whether the gateway completed a resync in time.
    let mut resynced = None;
    let start_us;
    match p.kind {
        FaultKind::WipeChassis | FaultKind::RestoreOldCopy if no_survivor => {
            start_us = clock.now_us();
            harness_error = Some("skipped: neither chassis in sync (the previous fault did not recover)".into());
        }
        FaultKind::KillChassis => {
            // Stopped, its state on disk is consistent: the copy a later
            // restore_old_copy puts back.
            let taken = |start_us| format!("during #{n} kill_chassis at {}", secs(start_us));
            let (at, _, error) = stopped(site, t, p.hold, clock, |site, at| site.save_copy(t, taken(at)).map(|()| String::new())).await;
            start_us = at;
            harness_error = error;
        }
        FaultKind::WipeChassis => {
            let wipe = |site: &mut Site, _| site.chassis[t].wipe_state().map(|files| format!("{files} state files deleted"));
            let (at, did, error) = stopped(site, t, p.hold, clock, wipe).await;
            (start_us, harness_error) = (at, error);
            detail.push_str(&did);
        }
        FaultKind::RestoreOldCopy => {
            let restore = |site: &mut Site, _| site.restore_copy(t).map(|taken| format!("copy taken {taken}"));
            let (at, did, error) = stopped(site, t, p.hold, clock, restore).await;
            (start_us, harness_error) = (at, error);
            detail.push_str(&did);
        }
        FaultKind::DirectWrite => {
            // A bulk row if the setup loaded some, else a physical input no
            // client owns (clients rename 13..16 only).
            let id = if site.bulk.is_empty() { 9 + p.row % 4 } else { site.bulk.start + p.row % (site.bulk.end - site.bulk.start) };
            let name = format!("direct-{n}-{id}");
            // The chassis' own ID for it, where the chassis numbers its own rows.
            let own = match site.id_map(t).await {
                Ok(m) if !m.is_empty() => m.native("sources", id),
                _ => Some(id),
            };
            let path = format!("/api/v1/sources/{}", own.unwrap_or(id));
            if own.is_none() {
                harness_error = Some(format!("source {id} has no entry in chassis {}'s id map", NAMES[t]));
            }
            let before = clock.now_us();
            match site.direct_call(t, "PUT", &path, Some(&json!({ "name": name })), limit).await {
                Ok(_) => detail = format!("source {id} ({path}) renamed {name:?}"),
                Err(e) => harness_error = Some(e),
            }
            start_us = before;
            if resyncs_before.is_none() {
                harness_error = Some("the status page was unreadable before the direct write: cannot tell a resync".into());
            }
            // Healed once the gateway's anti-entropy found the difference
            // and rebuilt a chassis: one interval to notice, then the time
            // any recovery gets.
            if let (None, Some(before)) = (&harness_error, resyncs_before) {
                let limit = ANTI_ENTROPY_EVERY + site.recovery_limit;
                let seen = wait_resync(site, before, limit).await;
                if !seen {
                    detail.push_str(&format!("; no completed resync within {limit:?}"));
                }
                resynced = Some(seen);
            }
        }
        FaultKind::KillGateway => {
            counters_before = site.gateway.status().await.map(|s| Counters::of(&s));
            site.gateway.kill9();
            start_us = clock.now_us();
            tokio::time::sleep(p.hold).await;
            if let Err(e) = site.gateway.start() {
                harness_error = Some(e);
            }
        }
        FaultKind::CutLink => {
            site.proxies[t].cut();
            start_us = clock.now_us();
            tokio::time::sleep(p.hold).await;
            site.proxies[t].heal();
        }
        FaultKind::SlowLink => {
            detail = format!("{} ms per chunk", p.latency.as_millis());
            site.proxies[t].slow(p.latency);
            start_us = clock.now_us();
            tokio::time::sleep(p.hold).await;
            site.proxies[t].heal();
        }
        FaultKind::ChassisErrors => {
            detail = p.errors.to_string();
            let before = clock.now_us();
            if let Err(e) = site.sim_faults(t, Some(&p.errors), limit).await {
                harness_error = Some(e);
            }
            // The fault is on from the moment the hook answered; recorded
            // from before the request to be safe.
            start_us = before;
            tokio::time::sleep(p.hold).await;
            if let Err(e) = site.sim_faults(t, None, limit).await {
                harness_error = Some(e);
            }
        }
        FaultKind::PowerOff => {
            let before = clock.now_us();
            if let Err(e) = site.power_off(t, limit).await {
                harness_error = Some(e);
            }
            start_us = before;
            if !site.chassis[t].wait_exit(Duration::from_secs(5)).await {
                harness_error = Some("the chassis did not exit after power_off; killed it".into());
                site.chassis[t].kill9();
            }
            tokio::time::sleep(p.hold).await;
            if let Err(e) = site.chassis[t].ensure_running().await {
                harness_error = Some(e);
            }
        }
        FaultKind::BothDown => {
            let (first, second) = if p.b_first { (1, 0) } else { (0, 1) };
            detail = format!("{} then {} {} ms later", NAMES[first], NAMES[second], p.stagger.as_millis());
            site.chassis[first].kill9();
            tokio::time::sleep(p.stagger).await;
            // Both are down from here (the other one kept serving until now).
            start_us = clock.now_us();
            site.chassis[second].kill9();
            tokio::time::sleep(p.hold).await;
            for i in [second, first] {
                if let Err(e) = site.chassis[i].ensure_running().await {
                    harness_error = Some(e);
                }
                tokio::time::sleep(p.stagger).await;
            }
        }
    }
    let healed_us = clock.now_us();
    let target = match p.kind {
        FaultKind::KillGateway | FaultKind::BothDown => None,
        _ => Some(t),
    };
    let (serving_us, in_sync_us) = match resynced {
        // The gateway never noticed: its "in sync" would be on trust, and
        // the two chassis still differ. Not back in sync.
        Some(false) => (site.gateway.status().await.filter(serving).map(|_| clock.now_us()), None),
        _ => wait_recovery(site, clock, site.recovery_limit).await,
    };
    if p.kind.forces_resync() {
        // Which chassis the gateway rebuilt (the counters survive: no
        // gateway restart happens during a single-chassis fault).
        let after = site.gateway.status().await.map(|s| resyncs_by_chassis(&s));
        if let (Some(b), Some(a)) = (resyncs_before, after) {
            let rebuilt: Vec<String> = (0..2).filter(|&i| a[i] > b[i]).map(|i| format!("{} +{}", NAMES[i], a[i] - b[i])).collect();
            let rebuilt = if rebuilt.is_empty() { "none".to_string() } else { rebuilt.join(", ") };
            detail = if detail.is_empty() { format!("resynced: {rebuilt}") } else { format!("{detail}; resynced: {rebuilt}") };
        }
    }
    FaultRecord { n, kind: p.kind, target, detail, start_us, healed_us, serving_us, in_sync_us, harness_error, counters_before }
}

/// Chassis `i`'s entry on a status page (Null if absent).
/// `kill -9` chassis `t`, run `act` on it while it is stopped (given the
/// fault's start on the campaign clock; it says what it did), and start it
/// again once `hold` has passed since the kill. The fault's start, what `act`
/// said, and the harness' error if any (starting again wins over `act`'s).
async fn stopped(
    site: &mut Site,
    t: usize,
    hold: Duration,
    clock: Clock,
    act: impl FnOnce(&mut Site, i64) -> Result<String, String>,
) -> (i64, String, Option<String>) {
    site.chassis[t].kill9();
    let start_us = clock.now_us();
    let until = Instant::now() + hold;
    let (did, mut error) = match act(site, start_us) {
        Ok(did) => (did, None),
        Err(e) => (String::new(), Some(e)),
    };
    tokio::time::sleep_until(until.into()).await;
    if let Err(e) = site.chassis[t].ensure_running().await {
        error = Some(e);
    }
    (start_us, did, error)
}

fn chassis_entry(status: &serde_json::Value, i: usize) -> &serde_json::Value {
    status["chassis"].as_array().and_then(|c| c.iter().find(|c| c["name"] == NAMES[i])).unwrap_or(&serde_json::Value::Null)
}

/// Chassis `i`'s state on a status page ("" if absent).
fn chassis_state(status: &serde_json::Value, i: usize) -> &str {
    chassis_entry(status, i)["state"].as_str().unwrap_or("")
}

/// Full resyncs completed per chassis (a, b), from a status page.
fn resyncs_by_chassis(status: &serde_json::Value) -> [u64; 2] {
    [0, 1].map(|i| chassis_entry(status, i)["resyncs"].as_u64().unwrap_or(0))
}

/// Poll the status page (bounded) until some chassis completed a full
/// resync since `before`; true if one did within `limit`.
async fn wait_resync(site: &Site, before: [u64; 2], limit: Duration) -> bool {
    let start = Instant::now();
    for _ in 0..100_000 {
        if let Some(s) = site.gateway.status().await {
            let now = resyncs_by_chassis(&s);
            if (0..2).any(|i| now[i] > before[i]) {
                return true;
            }
        }
        if start.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Poll the status page (bounded) until both chassis are in sync; note when
/// a chassis first served again.
async fn wait_recovery(site: &mut Site, clock: Clock, limit: Duration) -> (Option<i64>, Option<i64>) {
    let start = clock.elapsed();
    let mut serving_us = None;
    for _ in 0..100_000 {
        if let Some(s) = site.gateway.status().await {
            let now = clock.now_us();
            if serving_us.is_none() && serving(&s) {
                serving_us = Some(now);
            }
            if all_in_sync(&s) {
                return (serving_us, Some(now));
            }
        }
        if clock.elapsed() - start > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (serving_us, None)
}
