//! Check e: the history of one key — the shared register window's position —
//! is linearizable, with `porcupine-rs` (Wing & Gong's search with Lowe's
//! cache, a port of Anish Athalye's porcupine).
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

use std::time::Duration;

use porcupine_rs::{CheckResult, Model, Operation};

/// The register's state and an operation on it.
#[derive(Clone, Debug)]
pub struct Register;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegOp {
    Write(u64),
    Read(u64),
}

impl Model for Register {
    type State = u64;
    type Op = RegOp;
    type Metadata = ();

    /// The register window is created at value 0 before the campaign starts.
    fn init() -> u64 {
        0
    }

    fn step(state: &u64, op: &RegOp) -> (bool, u64) {
        match op {
            RegOp::Write(v) => (true, *v),
            RegOp::Read(v) => (*v == *state, *state),
        }
    }
}

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
    NotLinearizable,
    /// The search did not finish within the time limit.
    Inconclusive,
}

/// Check a register history, within `limit`.
pub fn check(history: &[RegEvent], limit: Duration) -> Verdict {
    let ops: Vec<Operation<Register>> = history
        .iter()
        .map(|e| Operation {
            client_id: Some(e.client),
            call_time: e.call_us,
            return_time: e.ret_us.unwrap_or(i64::MAX),
            op: e.op.clone(),
            metadata: None,
        })
        .collect();
    match porcupine_rs::check_operations_timeout::<Register>(&ops, limit) {
        CheckResult::Ok => Verdict::Linearizable,
        CheckResult::Illegal => Verdict::NotLinearizable,
        CheckResult::Unknown => Verdict::Inconclusive,
    }
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
    const LIMIT: Duration = Duration::from_secs(10);

    #[test]
    fn concurrent_reads_may_see_either_value() {
        let h = [w(0, 0, Some(100), 1), r(1, 25, 75, 1), r(2, 30, 60, 0)];
        assert_eq!(check(&h, LIMIT), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_rejected() {
        // Write 1 acknowledged at 100; a read starting at 150 still sees 0.
        let h = [w(0, 0, Some(100), 1), r(1, 150, 200, 0)];
        assert_eq!(check(&h, LIMIT), Verdict::NotLinearizable);
        assert!(!suspicious_reads(&h).is_empty());
    }

    #[test]
    fn reads_going_back_in_time_are_rejected() {
        // Two sequential writes; a reader sees the second, then the first again.
        let h = [w(0, 0, Some(10), 1), w(0, 20, Some(30), 2), r(1, 40, 50, 2), r(1, 60, 70, 1)];
        assert_eq!(check(&h, LIMIT), Verdict::NotLinearizable);
    }

    #[test]
    fn an_unacknowledged_write_may_land_late_or_never() {
        // Write 7's outcome is unknown: seen late, or never, both fine.
        let late = [w(0, 0, None, 7), w(1, 10, Some(20), 8), r(2, 30, 40, 8), r(2, 50, 60, 7)];
        assert_eq!(check(&late, LIMIT), Verdict::Linearizable);
        let never = [w(0, 0, None, 7), r(2, 50, 60, 0)];
        assert_eq!(check(&never, LIMIT), Verdict::Linearizable);
        // But it cannot be seen before it was sent.
        let early = [r(2, 0, 5, 7), w(0, 10, None, 7)];
        assert_eq!(check(&early, LIMIT), Verdict::NotLinearizable);
    }
}
