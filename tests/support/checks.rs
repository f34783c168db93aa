//! The end-of-campaign checks, one line each: what docs/design.md's guarantees
//! promise, compared with what the chassis hold and what the clients saw.
//!
//! | check | guarantee |
//! |---|---|
//! | s. both chassis in sync (lag 0) after healing | recovery |
//! | a. same digest and `/hardware/outputs` on both | 1 |
//! | b. every acknowledged mutation on both ([`crate::model`]) | 2 (and 3: last write wins per key) |
//! | c. nothing applied twice, every id identical ([`crate::model`]; in client IDs, [`crate::client_ids`]) | 1, 6 |
//! | m. every ID map entry names a row of its chassis, every row has one ([`crate::client_ids`]) | 1 |
//! | d. no 401 after the one login; reads failed only while no chassis could serve | 4, 5 |
//! | e. the register's history is linearizable | 3 |
//! | f. every mutation acknowledged, except while no chassis could serve | 2, 6 |
//! | g. every read saw its client's own acknowledged writes ([`crate::read_your_writes`]) | 2, 5 |
//! | r. every fault recovered: serving again within 5 s, in sync within the recovery limit (20 s; legacy firmware 60 s) | 5, recovery |
//! | h. the harness did what it planned (every fault kind, clients finished) | — |

use serde_json::Value;

use crate::clock::secs;
use crate::faults::FaultRecord;
use crate::history::{value_of, ClientLog, Mutation, Outcome, Read};
use crate::linearizable::{self, RegEvent, RegOp, Verdict};
use crate::site::NAMES;

/// How far a failure may lie outside a recorded "no chassis can serve"
/// window and still be blamed on it. The window's start is stamped right
/// after `kill -9` returns — the process died a little earlier, and the
/// kernel resets its connections then — and its end is the first status
/// poll (every 50 ms) that shows a primary again, which is late, not
/// early. 100 ms covers the reaping and one poll, and is small next to the
/// windows themselves (≥ 300 ms hold plus a restart).
pub const WINDOW_TOLERANCE_US: i64 = 100_000;

/// After a fault is undone, a chassis must serve again within this long: a
/// restarted chassis needs one health probe (200 ms), a replay of what it
/// missed and a digest comparison — well under a second with the campaign's
/// traffic; 5 s leaves room for a loaded machine and still catches a pair
/// that stays unavailable long after its chassis are back.
pub const SERVE_LIMIT_US: i64 = 5_000_000;

/// Problems listed per failing check, at most (the count is always given).
const SHOW: usize = 12;

/// One check's result.
#[derive(Clone, Debug)]
pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    /// What was compared (shown whether it passed or not).
    pub note: String,
    pub problems: Vec<String>,
}

impl Check {
    pub fn new(id: &'static str, title: &'static str) -> Check {
        Check { id, title, note: String::new(), problems: Vec::new() }
    }

    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// `check a  same digest and outputs on both ......... PASS  (note)`
    pub fn line(&self) -> String {
        let verdict = if self.passed() { "PASS".to_string() } else { format!("FAIL ({} problems)", self.problems.len()) };
        format!("check {}  {:<58} {}  {}", self.id, self.title, verdict, self.note)
    }

    /// The line, then the first problems indented.
    pub fn report(&self) -> String {
        let mut s = self.line();
        for p in self.problems.iter().take(SHOW) {
            s.push_str("\n        - ");
            s.push_str(p);
        }
        if self.problems.len() > SHOW {
            s.push_str(&format!("\n        - … and {} more", self.problems.len() - SHOW));
        }
        s
    }
}

/// What was read from the site once everything was healed.
pub struct Evidence {
    /// The status page once both were in sync, or why they were not.
    pub in_sync: Result<Value, String>,
    pub digest: [Result<Value, String>; 2],
    pub outputs: [Result<Value, String>; 2],
    /// In client IDs (see [`crate::client_ids`]), like `outputs`.
    pub export: [Result<Value, String>; 2],
    /// Each chassis' ID map (empty for one whose IDs are the clients').
    pub maps: [Result<crate::client_ids::IdMap, String>; 2],
    /// What translating each chassis' evidence found wrong with its map.
    pub map_problems: [Vec<String>; 2],
    /// Campaign time the evidence was read at.
    pub at_us: i64,
}

impl Evidence {
    /// Whether either chassis has IDs of its own (a map): then `digest` (over
    /// the chassis' own IDs) cannot be compared, the exports in client IDs are.
    pub fn translated(&self) -> bool {
        crate::client_ids::any_translated(&self.maps)
    }
}

/// The windows in which no chassis could serve: both down, or the gateway
/// itself down — from the fault's start until a chassis served again.
pub fn outage_windows(faults: &[FaultRecord]) -> Vec<(i64, i64, String)> {
    faults
        .iter()
        .filter(|f| f.kind.excuses_failed_reads())
        .map(|f| {
            let end = f.serving_us.or(f.in_sync_us).unwrap_or(f.healed_us + crate::faults::RECOVERY_LIMIT.as_micros() as i64);
            (f.start_us - WINDOW_TOLERANCE_US, end + WINDOW_TOLERANCE_US, format!("#{} {}", f.n, f.kind))
        })
        .collect()
}

fn overlaps(windows: &[(i64, i64, String)], start: i64, end: i64) -> bool {
    windows.iter().any(|(s, e, _)| start <= *e && end >= *s)
}

/// s. Both chassis in sync with lag 0 within the limit after healing.
pub fn settled(e: &Evidence) -> Check {
    let mut c = Check::new("s", "both chassis in_sync, lag 0, after healing");
    match &e.in_sync {
        Ok(s) => c.note = format!("last_seq {}", s["last_seq"]),
        Err(err) => c.problems.push(err.clone()),
    }
    c
}

/// a. `GET /system/digest` and `GET /hardware/outputs` equal on both chassis.
pub fn same_state(e: &Evidence) -> Check {
    let mut c = Check::new("a", "same digest and /hardware/outputs on both chassis");
    if e.translated() {
        // The digests hash each chassis' own IDs: compare the whole exports
        // in client IDs instead (check c lists the rows that differ).
        match (&e.export[0], &e.export[1]) {
            (Ok(a), Ok(b)) => {
                let (ta, tb) = (crate::model::comparable_tables(a), crate::model::comparable_tables(b));
                if ta != tb {
                    c.problems.push("the exports differ in client ids (see check c)".into());
                    c.problems.extend(crate::model::table_differences(&ta, &tb, 20));
                } else {
                    c.note = format!("exports equal in client ids ({} tables)", ta.as_object().map_or(0, |t| t.len()));
                }
            }
            (a, b) => c.problems.push(format!("export unreadable: a {:?} / b {:?}", a.as_ref().err(), b.as_ref().err())),
        }
    } else {
        same_digest(e, &mut c);
    }
    same_outputs(e, &mut c);
    c
}

fn same_digest(e: &Evidence, c: &mut Check) {
    match (&e.digest[0], &e.digest[1]) {
        (Ok(a), Ok(b)) => {
            if a["digest"] != b["digest"] {
                c.problems.push(format!("digests differ: a {} {} / b {} {}", a["digest"], a["counts"], b["digest"], b["counts"]));
            } else {
                c.note = format!("digest {}", a["digest"].as_str().unwrap_or("?").chars().take(16).collect::<String>());
            }
        }
        (a, b) => c.problems.push(format!("digest unreadable: a {:?} / b {:?}", a.as_ref().err(), b.as_ref().err())),
    }
}

fn same_outputs(e: &Evidence, c: &mut Check) {
    match (&e.outputs[0], &e.outputs[1]) {
        (Ok(a), Ok(b)) if a == b => {}
        (Ok(a), Ok(b)) => {
            let (la, lb) = (a.as_array().cloned().unwrap_or_default(), b.as_array().cloned().unwrap_or_default());
            for (x, y) in la.iter().zip(lb.iter()).filter(|(x, y)| x != y).take(4) {
                c.problems.push(format!("outputs differ: a {x} / b {y}"));
            }
            if la.len() != lb.len() {
                c.problems.push(format!("outputs differ in length: a {} / b {}", la.len(), lb.len()));
            }
        }
        (a, b) => c.problems.push(format!("outputs unreadable: a {:?} / b {:?}", a.as_ref().err(), b.as_ref().err())),
    }
}

/// r. Every fault recovered: a chassis served again within
/// [`SERVE_LIMIT_US`] of the fault being undone, and both were in sync within
/// `limit` (the site's recovery limit).
pub fn recovered(faults: &[FaultRecord], limit: std::time::Duration) -> Check {
    let mut c = Check::new("r", "every fault recovered: serving within 5 s, in sync within the limit");
    let mut slowest = (0i64, String::new());
    for f in faults {
        let serve = f.serving_us.map(|s| s - f.healed_us);
        match serve {
            Some(d) if d <= SERVE_LIMIT_US => {}
            Some(d) => c.problems.push(format!("fault {f}: no chassis served for {} after it was undone", secs(d))),
            None => c.problems.push(format!("fault {f}: no chassis served within {limit:?} after it was undone")),
        }
        match f.in_sync_us {
            Some(t) if t - f.healed_us > slowest.0 => slowest = (t - f.healed_us, format!("#{} {}", f.n, f.kind)),
            Some(_) => {}
            None if serve.is_some_and(|d| d <= SERVE_LIMIT_US) => {
                c.problems.push(format!("fault {f}: both chassis not in sync within {limit:?}"))
            }
            None => {}
        }
    }
    c.note = format!(
        "limit {}s; slowest back in sync: {} after {}",
        limit.as_secs(),
        secs(slowest.0),
        if slowest.1.is_empty() { "-" } else { &slowest.1 }
    );
    c
}

/// d. No 401 after the one login; reads failed only in outage windows.
pub fn sessions_and_reads(logs: &[ClientLog], faults: &[FaultRecord]) -> Check {
    let mut c = Check::new("d", "no 401 after login; reads failed only while none could serve");
    let windows = outage_windows(faults);
    let mut reads = 0usize;
    let mut failed = 0usize;
    let mut excused = 0usize;
    for log in logs {
        for m in &log.mutations {
            for a in m.attempts.iter().filter(|a| a.status == Some(401)) {
                c.problems.push(format!(
                    "client {} ({}) got 401 {} at {} on {} {}",
                    log.client,
                    log.user,
                    a.detail,
                    secs(a.start_us),
                    m.op.name(),
                    m.key
                ));
            }
        }
        for r in &log.reads {
            reads += 1;
            if r.attempt.status == Some(401) {
                c.problems.push(format!(
                    "client {} ({}) got 401 {} at {} reading {}",
                    log.client,
                    log.user,
                    r.attempt.detail,
                    secs(r.attempt.start_us),
                    r.read.path()
                ));
            }
            if r.ok() {
                continue;
            }
            failed += 1;
            if overlaps(&windows, r.attempt.start_us, r.attempt.end_us) {
                excused += 1;
            } else if r.attempt.status != Some(401) {
                c.problems.push(format!(
                    "client {} read {} failed at {}..{} with {} {} — no outage then",
                    log.client,
                    r.read.path(),
                    secs(r.attempt.start_us),
                    secs(r.attempt.end_us),
                    r.attempt.status.map(|s| s.to_string()).unwrap_or_else(|| "transport".into()),
                    r.attempt.detail
                ));
            }
        }
    }
    c.note = format!("{reads} reads, {failed} failed, {excused} of them during {} outage windows", windows.len());
    c
}

/// f. Every logical mutation acknowledged, unless it overlapped an outage
/// (its retries last up to `RETRY_WINDOW`, far longer than any single-chassis fault).
pub fn mutations_acknowledged(logs: &[ClientLog], faults: &[FaultRecord]) -> Check {
    let mut c = Check::new("f", "every mutation acknowledged, except during outages");
    let windows = outage_windows(faults);
    let (mut total, mut acked, mut refused_expected) = (0usize, 0usize, 0usize);
    for log in logs {
        for m in &log.mutations {
            total += 1;
            match &m.outcome {
                Outcome::Acked(_) => acked += 1,
                Outcome::Refused { .. } if m.op.refusal_expected() => refused_expected += 1,
                // Refusals of tracked operations are check b's.
                Outcome::Refused { .. } => {}
                Outcome::NotApplied | Outcome::Unknown => {
                    if !overlaps(&windows, m.start_us(), m.end_us()) {
                        let last = m.attempts.last().map(|a| a.detail.clone()).unwrap_or_default();
                        c.problems.push(format!(
                            "client {} {} {} ended {:?} at {} after {} attempts from {} (last: {last}) — no outage then",
                            m.client,
                            m.op.name(),
                            m.key,
                            m.outcome,
                            secs(m.end_us()),
                            m.attempts.len(),
                            secs(m.start_us())
                        ));
                    }
                }
            }
        }
    }
    c.note = format!("{total} mutations, {acked} acknowledged, {refused_expected} scene-wall refusals");
    c
}

/// e. The register window's history is linearizable.
pub fn linearizable(logs: &[ClientLog], e: &Evidence, register: (u64, u64)) -> Check {
    let mut c = Check::new("e", "register window history linearizable (exact, unique writes)");
    let mut history = Vec::new();
    for log in logs {
        for m in &log.mutations {
            let Mutation::RegisterWrite { value, .. } = m.op else { continue };
            match m.outcome {
                Outcome::Acked(_) => history.push(RegEvent {
                    client: log.client as u32,
                    call_us: m.start_us(),
                    ret_us: Some(m.end_us()),
                    op: RegOp::Write(value),
                }),
                Outcome::Unknown => {
                    history.push(RegEvent { client: log.client as u32, call_us: m.start_us(), ret_us: None, op: RegOp::Write(value) })
                }
                Outcome::NotApplied | Outcome::Refused { .. } => {}
            }
        }
        for r in &log.reads {
            if let (Read::Register { .. }, Some(v)) = (&r.read, r.value) {
                history.push(RegEvent {
                    client: log.client as u32,
                    call_us: r.attempt.start_us,
                    ret_us: Some(r.attempt.end_us),
                    op: RegOp::Read(v),
                });
            }
        }
    }
    // The final value on each chassis: one more read each, after everything.
    for (i, export) in e.export.iter().enumerate() {
        let found = export
            .as_ref()
            .ok()
            .and_then(|x| crate::model::rows(x, "windows").into_iter().find(|w| w["id"].as_u64() == Some(register.1)).cloned());
        match found.as_ref().and_then(value_of) {
            Some(v) => history.push(RegEvent { client: 10_000 + i as u32, call_us: e.at_us, ret_us: Some(e.at_us), op: RegOp::Read(v) }),
            None => c.problems.push(format!("the register window {} is missing on chassis {}", register.1, NAMES[i])),
        }
    }
    let (writes, reads) = history.iter().fold((0, 0), |(w, r), h| if matches!(h.op, RegOp::Write(_)) { (w + 1, r) } else { (w, r + 1) });
    let started = std::time::Instant::now();
    let verdict = linearizable::check(&history);
    c.note = format!("{writes} writes, {reads} reads, checked in {:.1}s", started.elapsed().as_secs_f64());
    match verdict {
        Verdict::Linearizable => {}
        Verdict::NotLinearizable(why) => {
            c.problems.push(format!("no linearization exists: {why}"));
            c.problems.extend(linearizable::suspicious_reads(&history));
        }
        Verdict::Unsupported(why) => c.problems.push(format!("the history cannot be checked: {why}")),
    }
    c
}
