//! Check e: the history of one key — the shared register window's position —
//! is linearizable.
//!
//! The register is a single value: a write puts a unique value, a read
//! returns one. The operations given to the checker:
//! - an acknowledged write spans from its first attempt's start to its
//!   acknowledgement (retries with the same key are one operation);
//! - a write that may have been applied but was never acknowledged spans from
//!   its start to *infinity*: it may take effect at any later time, or (being
//!   placed after everything) in effect never;
//! - a write certainly not applied, or refused, is left out;
//! - a successful read spans its request; a failed read is left out;
//! - the final value on each chassis is a read at the very end.
//!
//! Because every write puts a value of its own, each read names the write it
//! saw, and linearizability can be decided exactly in O(n log n) (Gibbons and
//! Korach, "Testing shared memories", 1997) instead of searching: group each
//! write with the reads of its value (a *cluster*; the initial value 0 is a
//! write before everything). Let `f` be the earliest end and `s` the latest
//! start in a cluster. If `f < s` the cluster's value must be the register's
//! all through `(f, s)`: a *forward zone*. Otherwise it may be linearized at
//! one point of `[s, f]`: a *backward zone*. The history is linearizable iff
//! no read ends before its write starts, no two forward zones overlap, and no
//! backward zone lies inside a forward zone. The unit tests below check this
//! against an exhaustive search of every order on small random histories.

use std::collections::HashMap;

/// An operation on the register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegOp {
    Write(u64),
    Read(u64),
}

/// The value the register window holds before the campaign starts.
pub const INITIAL: u64 = 0;

/// One operation: `ret_us` None means "never returned" (outcome unknown).
#[derive(Clone, Debug)]
pub struct RegEvent {
    pub client: u32,
    pub call_us: i64,
    pub ret_us: Option<i64>,
    pub op: RegOp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// Why not, for a human.
    NotLinearizable(String),
    /// The history is outside what this checker decides (two writes of one value).
    Unsupported(String),
}

/// The earliest end and latest start of one write and the reads of its value.
struct Cluster {
    value: u64,
    f: i64,
    s: i64,
    /// Only an unacknowledged write so far: no constraint unless a read saw it.
    read: bool,
    acked: bool,
}

/// Decide whether a register history is linearizable.
pub fn check(history: &[RegEvent]) -> Verdict {
    let mut clusters: HashMap<u64, Cluster> = HashMap::new();
    clusters.insert(INITIAL, Cluster { value: INITIAL, f: i64::MIN, s: i64::MIN, read: false, acked: true });
    let mut write_call: HashMap<u64, i64> = HashMap::new();
    for e in history {
        if let RegOp::Write(v) = e.op {
            write_call.insert(v, e.call_us);
            let c = Cluster { value: v, f: e.ret_us.unwrap_or(i64::MAX), s: e.call_us, read: false, acked: e.ret_us.is_some() };
            if clusters.insert(v, c).is_some() {
                return Verdict::Unsupported(format!("two writes of the value {v}"));
            }
        }
    }
    for e in history {
        let RegOp::Read(v) = e.op else { continue };
        let ret = e.ret_us.unwrap_or(i64::MAX);
        let Some(c) = clusters.get_mut(&v) else {
            return Verdict::NotLinearizable(format!("a read at {}us saw {v}, which no write put", e.call_us));
        };
        let w_call = write_call.get(&v).copied().unwrap_or(i64::MIN);
        if ret < w_call {
            return Verdict::NotLinearizable(format!("a read ended at {ret}us with {v}, written only from {w_call}us"));
        }
        c.f = c.f.min(ret);
        c.s = c.s.max(e.call_us);
        c.read = true;
    }
    let mut forward: Vec<(i64, i64, u64)> = Vec::new();
    let mut backward: Vec<(i64, i64, u64)> = Vec::new();
    for c in clusters.values().filter(|c| c.acked || c.read) {
        if c.f < c.s {
            forward.push((c.f, c.s, c.value));
        } else {
            backward.push((c.s, c.f, c.value));
        }
    }
    forward.sort_unstable();
    for pair in forward.windows(2) {
        let ((_, s1, v1), (f2, _, v2)) = (pair[0], pair[1]);
        // Sorted by start and (checked so far) disjoint: only neighbours can overlap.
        if f2 < s1 {
            return Verdict::NotLinearizable(format!(
                "the values {v1} and {v2} must both be the register's from {f2}us to {}us",
                s1.min(pair[1].1)
            ));
        }
    }
    for (s, f, v) in backward {
        // The forward zone starting last before `s` ends last of those that do.
        let i = forward.partition_point(|&(fz, _, _)| fz < s);
        if let Some(&(fz, sz, vz)) = i.checked_sub(1).and_then(|i| forward.get(i)) {
            if f < sz {
                return Verdict::NotLinearizable(format!(
                    "{v} (taken between {s}us and {f}us) would have to come and go while {vz} must hold, from {fz}us to {sz}us"
                ));
            }
        }
    }
    Verdict::Linearizable
}

/// The shortest explanation of a failure for a human: the reads that saw a
/// value no write could have produced by then (stale or from the future).
/// A cheap local test, not the full search; may be empty for subtle cases.
pub fn suspicious_reads(history: &[RegEvent]) -> Vec<String> {
    let mut out = Vec::new();
    for r in history {
        let RegOp::Read(v) = r.op else { continue };
        let Some(r_ret) = r.ret_us else { continue };
        if v == 0 {
            // Initial value: stale if some write was acknowledged before the read began.
            if let Some(w) = history.iter().find(|w| matches!(w.op, RegOp::Write(_)) && w.ret_us.is_some_and(|t| t < r.call_us)) {
                out.push(format!(
                    "read at {}..{}us saw the initial value after write {:?} was acknowledged at {}us",
                    r.call_us,
                    r_ret,
                    w.op,
                    w.ret_us.unwrap_or(0)
                ));
            }
            continue;
        }
        let Some(w) = history.iter().find(|w| w.op == RegOp::Write(v)) else {
            out.push(format!("read at {}..{}us saw {v}, which no write put", r.call_us, r_ret));
            continue;
        };
        if w.call_us > r_ret {
            out.push(format!("read at {}..{}us saw {v}, written only from {}us", r.call_us, r_ret, w.call_us));
        }
        // A write that started after `w` was acknowledged and was itself acknowledged before the read began.
        if let Some(w_ret) = w.ret_us {
            if let Some(newer) =
                history.iter().find(|n| matches!(n.op, RegOp::Write(_)) && n.call_us > w_ret && n.ret_us.is_some_and(|t| t < r.call_us))
            {
                out.push(format!(
                    "read at {}..{}us saw {v} (acknowledged at {w_ret}us), but {:?} was written after it and acknowledged at {}us, before the read",
                    r.call_us,
                    r_ret,
                    newer.op,
                    newer.ret_us.unwrap_or(0)
                ));
            }
        }
        if out.len() >= 10 {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(client: u32, call: i64, ret: Option<i64>, v: u64) -> RegEvent {
        RegEvent { client, call_us: call, ret_us: ret, op: RegOp::Write(v) }
    }
    fn r(client: u32, call: i64, ret: i64, v: u64) -> RegEvent {
        RegEvent { client, call_us: call, ret_us: Some(ret), op: RegOp::Read(v) }
    }

    #[test]
    fn concurrent_reads_may_see_either_value() {
        let h = [w(0, 0, Some(100), 1), r(1, 25, 75, 1), r(2, 30, 60, 0)];
        assert_eq!(check(&h), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_rejected() {
        // Write 1 acknowledged at 100; a read starting at 150 still sees 0.
        let h = [w(0, 0, Some(100), 1), r(1, 150, 200, 0)];
        assert!(matches!(check(&h), Verdict::NotLinearizable(_)));
        assert!(!suspicious_reads(&h).is_empty());
    }

    #[test]
    fn reads_going_back_in_time_are_rejected() {
        // Two sequential writes; a reader sees the second, then the first again.
        let h = [w(0, 0, Some(10), 1), w(0, 20, Some(30), 2), r(1, 40, 50, 2), r(1, 60, 70, 1)];
        assert!(matches!(check(&h), Verdict::NotLinearizable(_)));
    }

    #[test]
    fn an_unacknowledged_write_may_land_late_or_never() {
        // Write 7's outcome is unknown: seen late, or never, both fine.
        let late = [w(0, 0, None, 7), w(1, 10, Some(20), 8), r(2, 30, 40, 8), r(2, 50, 60, 7)];
        assert_eq!(check(&late), Verdict::Linearizable);
        let never = [w(0, 0, None, 7), r(2, 50, 60, 0)];
        assert_eq!(check(&never), Verdict::Linearizable);
        // But it cannot be seen before it was sent.
        let early = [r(2, 0, 5, 7), w(0, 10, None, 7)];
        assert!(matches!(check(&early), Verdict::NotLinearizable(_)));
    }

    /// Every order of the operations that respects real time (an unacknowledged
    /// write in it or not), replayed on a register: the reference.
    fn exhaustive(h: &[RegEvent]) -> bool {
        let unknown: Vec<usize> = (0..h.len()).filter(|&i| h[i].ret_us.is_none()).collect();
        (0u32..1 << unknown.len()).any(|mask| {
            let ops: Vec<&RegEvent> = h
                .iter()
                .enumerate()
                .filter(|(i, _)| unknown.iter().position(|u| u == i).is_none_or(|k| mask & (1 << k) != 0))
                .map(|(_, e)| e)
                .collect();
            orders(&ops, &mut vec![false; ops.len()], INITIAL)
        })
    }

    fn orders(ops: &[&RegEvent], used: &mut Vec<bool>, state: u64) -> bool {
        if used.iter().all(|&u| u) {
            return true;
        }
        let end = |e: &RegEvent| e.ret_us.unwrap_or(i64::MAX);
        for i in 0..ops.len() {
            // Next only if nothing left had to come before it.
            if used[i] || (0..ops.len()).any(|j| !used[j] && end(ops[j]) < ops[i].call_us) {
                continue;
            }
            let next = match ops[i].op {
                RegOp::Write(v) => v,
                RegOp::Read(v) if v == state => state,
                RegOp::Read(_) => continue,
            };
            used[i] = true;
            let ok = orders(ops, used, next);
            used[i] = false;
            if ok {
                return true;
            }
        }
        false
    }

    #[test]
    fn the_zone_check_agrees_with_an_exhaustive_search_on_random_small_histories() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        let (mut yes, mut no) = (0, 0);
        for _ in 0..30_000 {
            let n = rng.random_range(1..=7);
            let mut h = Vec::new();
            let mut written = vec![INITIAL];
            for k in 0..n {
                let call = rng.random_range(0..20);
                let ret = call + rng.random_range(0..8);
                if rng.random_bool(0.5) {
                    let v = 100 + k as u64;
                    written.push(v);
                    h.push(w(k, call, if rng.random_bool(0.2) { None } else { Some(ret) }, v));
                } else {
                    h.push(r(k, call, ret, 0));
                }
            }
            // Reads see something written (anywhere in the history), or rarely nothing ever written.
            for e in h.iter_mut() {
                if let RegOp::Read(v) = &mut e.op {
                    *v = if rng.random_bool(0.05) { 7 } else { written[rng.random_range(0..written.len())] };
                }
            }
            let expected = exhaustive(&h);
            let got = check(&h);
            assert_eq!(got == Verdict::Linearizable, expected, "{h:#?}\nzone check: {got:?}");
            if expected {
                yes += 1;
            } else {
                no += 1;
            }
        }
        assert!(yes > 3_000 && no > 3_000, "the random histories test both answers ({yes} yes, {no} no)");
    }
}
