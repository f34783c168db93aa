//! The answer table (docs/design.md, "Answer to the client") as a pure
//! function: from what the two chassis answered one mutation, and how they
//! stood meanwhile, to a [`Verdict`] — which answer the client gets and what
//! the gateway must do next. Nothing here performs anything; `proxy` carries
//! a verdict out in one place, so every row of the table is a unit test below.
//!
//! | primary | secondary | client gets | then |
//! |---|---|---|---|
//! | 2xx | 2xx (same body) | primary's answer | nothing |
//! | 2xx | refused / timeout / 5xx | primary's answer | an in-sync secondary fell behind (it replays) |
//! | 4xx | 4xx | primary's answer | nothing |
//! | 4xx | 2xx, or 2xx / 4xx, or different 2xx bodies | primary's answer | divergence: secondary rebuilt |
//! | any answer, after it left `in_sync` while this waited | the in-sync secondary's answer | secondary's answer | the primary rebuilt if they differ |
//! | refused / timeout / 5xx | 2xx or 4xx | secondary's answer | failover: the secondary becomes primary |
//! | refused (or not sent to) | refused (or not sent to) | 503 `not_applied` | the entry is voided |
//! | no answer after sending | no answer, or refused | 503 `outcome_unknown` | the entry stays and is replayed |

use crate::chassis::upstream::{Answered, Outcome};
use crate::ids::pointer::WildPointer;

/// One of the two chassis of a mutation, as the table names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Primary,
    Secondary,
}

/// What the gateway does after answering (or not answering) the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    Nothing,
    /// The two answered differently: rebuild this one from the other.
    Rebuild(Side),
    /// The in-sync secondary did not answer in time (or failed): mark it
    /// behind, its applier catches up from the journal.
    SecondaryFellBehind,
    /// The primary failed and the secondary answered: the primary fell
    /// behind; the secondary becomes primary if it is in sync.
    Failover {
        promote: bool,
    },
}

/// The table's decision for one mutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Answer with this side's answer, then do `then`.
    Answer { from: Side, then: Then },
    /// Certainly applied nowhere: void the entry and answer 503 `not_applied`.
    Void,
    /// Possibly applied somewhere: answer 503 `outcome_unknown`; the entry stays.
    Unknown,
}

/// What the table looks at besides the two outcomes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Standing {
    /// The mutation was sent (is being sent) to the secondary.
    pub secondary_targeted: bool,
    /// The primary was sent it (always, unless no chassis could take it).
    pub primary_targeted: bool,
    /// The secondary was `in_sync` when the answers were collected.
    pub secondary_in_sync: bool,
    /// The secondary serves (in sync) now.
    pub secondary_serves: bool,
    /// The primary left `in_sync` while this mutation waited for it.
    pub primary_fell: bool,
}

impl Verdict {
    /// The answer table's row this verdict comes from, as `/metrics` names it.
    pub fn row(&self) -> &'static str {
        match self {
            Verdict::Answer { from: Side::Primary, then: Then::Nothing } => "primary_answered",
            Verdict::Answer { from: Side::Primary, then: Then::SecondaryFellBehind } => "secondary_fell_behind",
            Verdict::Answer { from: Side::Primary, then: Then::Rebuild(_) } => "diverged_secondary_rebuilt",
            Verdict::Answer { from: Side::Secondary, then: Then::Failover { .. } } => "failover",
            Verdict::Answer { from: Side::Secondary, then: Then::Rebuild(_) } => "primary_fell_rebuilt",
            Verdict::Answer { from: Side::Secondary, then: _ } => "primary_fell_secondary_answered",
            Verdict::Answer { from: Side::Primary, then: Then::Failover { .. } } => "other",
            Verdict::Void => "not_applied",
            Verdict::Unknown => "outcome_unknown",
        }
    }
}

/// Decide from the primary's and the secondary's outcome (`None`: none
/// came); `ignores`: the route rule's `compare_ignores`, answer fields left
/// out of "same body".
pub fn decide(primary: Option<&Outcome>, secondary: Option<&Outcome>, st: Standing, ignores: &[WildPointer]) -> Verdict {
    match (primary.and_then(Outcome::decided), secondary.and_then(Outcome::decided)) {
        (Some(pa), Some(sa)) => {
            let differ = diverged(pa, sa, ignores);
            if st.primary_fell && st.secondary_serves {
                let then = if differ { Then::Rebuild(Side::Primary) } else { Then::Nothing };
                Verdict::Answer { from: Side::Secondary, then }
            } else {
                let then = if differ { Then::Rebuild(Side::Secondary) } else { Then::Nothing };
                Verdict::Answer { from: Side::Primary, then }
            }
        }
        (Some(_), None) => {
            let then = if st.secondary_targeted && st.secondary_in_sync { Then::SecondaryFellBehind } else { Then::Nothing };
            Verdict::Answer { from: Side::Primary, then }
        }
        (None, Some(_)) => Verdict::Answer { from: Side::Secondary, then: Then::Failover { promote: st.secondary_serves } },
        (None, None) => {
            let refused = |o: Option<&Outcome>, targeted: bool| match o {
                Some(Outcome::Refused(_)) => true,
                None => !targeted,
                _ => false,
            };
            if refused(primary, st.primary_targeted) && refused(secondary, st.secondary_targeted) {
                Verdict::Void
            } else {
                Verdict::Unknown
            }
        }
    }
}

/// Two decided answers disagree: different status class, or (both 2xx)
/// different JSON bodies once the `ignores` are left out of both.
pub fn diverged(p: &Answered, s: &Answered, ignores: &[WildPointer]) -> bool {
    if p.status / 100 != s.status / 100 {
        return true;
    }
    if p.is_success() {
        let comparable = |body: &[u8]| {
            let mut doc: Option<serde_json::Value> = serde_json::from_slice(body).ok();
            if let Some(d) = doc.as_mut() {
                WildPointer::null_out(ignores, d);
            }
            doc
        };
        return comparable(&p.body) != comparable(&s.body);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::Side::{Primary, Secondary};
    use super::*;

    fn answered(status: u16, body: &str) -> Outcome {
        Outcome::Answered(Answered { status, content_type: None, body: bytes::Bytes::from(body.to_string()) })
    }
    fn ok(body: &str) -> Outcome {
        answered(201, body)
    }
    fn refused() -> Outcome {
        Outcome::Refused("connection refused".into())
    }
    fn no_answer() -> Outcome {
        Outcome::NoAnswer("timed out".into())
    }
    /// The table for a rule without `compare_ignores`.
    fn decide(p: Option<&Outcome>, s: Option<&Outcome>, st: Standing) -> Verdict {
        super::decide(p, s, st, &[])
    }

    /// Both in sync, both sent to: the usual case.
    fn usual() -> Standing {
        Standing { secondary_targeted: true, primary_targeted: true, secondary_in_sync: true, secondary_serves: true, primary_fell: false }
    }

    #[test]
    fn row_both_2xx_alike_answers_the_primary_and_does_nothing() {
        let v = decide(Some(&ok(r#"{"id":7}"#)), Some(&ok(r#"{ "id": 7 }"#)), usual());
        assert_eq!(v, Verdict::Answer { from: Primary, then: Then::Nothing });
    }

    #[test]
    fn row_2xx_and_a_failed_secondary_answers_the_primary_and_the_secondary_falls_behind() {
        for s in [refused(), no_answer(), answered(503, "{}")] {
            let v = decide(Some(&ok("{}")), Some(&s), usual());
            assert_eq!(v, Verdict::Answer { from: Primary, then: Then::SecondaryFellBehind }, "{s:?}");
        }
        // Missed the grace: no report at all.
        assert_eq!(decide(Some(&ok("{}")), None, usual()), Verdict::Answer { from: Primary, then: Then::SecondaryFellBehind });
        // A secondary catching up (or not sent to) is not marked again.
        let catching_up = Standing { secondary_in_sync: false, secondary_serves: false, ..usual() };
        assert_eq!(decide(Some(&ok("{}")), None, catching_up), Verdict::Answer { from: Primary, then: Then::Nothing });
        let alone = Standing { secondary_targeted: false, ..catching_up };
        assert_eq!(decide(Some(&ok("{}")), None, alone), Verdict::Answer { from: Primary, then: Then::Nothing });
    }

    #[test]
    fn fields_a_rule_ignores_do_not_make_a_divergence_and_the_others_still_do() {
        let z = [WildPointer::parse("/z").unwrap(), WildPointer::parse("/items/*/z").unwrap()];
        let a = ok(r#"{"id":7,"x":1,"z":3,"items":[{"id":1,"z":9}]}"#);
        let b = ok(r#"{"id":7,"x":1,"z":12,"items":[{"id":1,"z":2}]}"#);
        let alike = Verdict::Answer { from: Primary, then: Then::Nothing };
        assert_eq!(super::decide(Some(&a), Some(&b), usual(), &z), alike);
        assert_eq!(decide(Some(&a), Some(&b), usual()), Verdict::Answer { from: Primary, then: Then::Rebuild(Secondary) });
        let moved = ok(r#"{"id":7,"x":2,"z":3,"items":[{"id":1,"z":9}]}"#);
        assert_eq!(super::decide(Some(&a), Some(&moved), usual(), &z), Verdict::Answer { from: Primary, then: Then::Rebuild(Secondary) });
    }

    #[test]
    fn row_both_4xx_answers_the_primary_and_nothing_changed() {
        let v = decide(Some(&answered(409, r#"{"a":1}"#)), Some(&answered(422, r#"{"b":2}"#)), usual());
        assert_eq!(v, Verdict::Answer { from: Primary, then: Then::Nothing });
    }

    #[test]
    fn row_4xx_against_2xx_is_a_divergence_that_rebuilds_the_secondary() {
        for (p, s) in [(answered(409, "{}"), ok("{}")), (ok("{}"), answered(404, "{}")), (ok(r#"{"id":1}"#), ok(r#"{"id":2}"#))] {
            let v = decide(Some(&p), Some(&s), usual());
            assert_eq!(v, Verdict::Answer { from: Primary, then: Then::Rebuild(Secondary) }, "{p:?} / {s:?}");
        }
    }

    #[test]
    fn row_a_primary_that_fell_while_waiting_yields_to_the_in_sync_secondary() {
        let fell = Standing { primary_fell: true, ..usual() };
        // It came back wiped and answered 404 to a replay: the secondary's 2xx counts.
        let v = decide(Some(&answered(404, "{}")), Some(&ok("{}")), fell);
        assert_eq!(v, Verdict::Answer { from: Secondary, then: Then::Rebuild(Primary) });
        assert_eq!(decide(Some(&ok("{}")), Some(&ok("{}")), fell), Verdict::Answer { from: Secondary, then: Then::Nothing });
        // With no secondary serving, the primary's answer stands.
        let nobody = Standing { secondary_serves: false, ..fell };
        assert_eq!(decide(Some(&ok("{}")), Some(&ok("{}")), nobody), Verdict::Answer { from: Primary, then: Then::Nothing });
    }

    #[test]
    fn row_a_failed_primary_and_an_answering_secondary_is_a_failover() {
        for p in [refused(), no_answer(), answered(500, "{}")] {
            let v = decide(Some(&p), Some(&ok("{}")), usual());
            assert_eq!(v, Verdict::Answer { from: Secondary, then: Then::Failover { promote: true } }, "{p:?}");
        }
        // A 4xx from the secondary is an answer too.
        let v = decide(None, Some(&answered(409, "{}")), usual());
        assert_eq!(v, Verdict::Answer { from: Secondary, then: Then::Failover { promote: true } });
        // A secondary that is not in sync answers, but is not made primary.
        let behind = Standing { secondary_in_sync: false, secondary_serves: false, ..usual() };
        assert_eq!(
            decide(Some(&refused()), Some(&ok("{}")), behind),
            Verdict::Answer { from: Secondary, then: Then::Failover { promote: false } }
        );
    }

    #[test]
    fn row_refused_by_both_or_sent_to_none_is_certainly_not_applied() {
        assert_eq!(decide(Some(&refused()), Some(&refused()), usual()), Verdict::Void);
        let alone = Standing { secondary_targeted: false, ..usual() };
        assert_eq!(decide(Some(&refused()), None, alone), Verdict::Void);
        // A 5xx is a request the chassis read: not certain.
        assert_eq!(decide(Some(&refused()), Some(&answered(503, "{}")), usual()), Verdict::Unknown);
    }

    #[test]
    fn row_no_answer_after_sending_is_an_unknown_outcome() {
        assert_eq!(decide(Some(&no_answer()), Some(&refused()), usual()), Verdict::Unknown);
        assert_eq!(decide(Some(&refused()), Some(&no_answer()), usual()), Verdict::Unknown);
        assert_eq!(decide(Some(&no_answer()), None, usual()), Verdict::Unknown);
        // A targeted secondary that reported nothing may be sending it still.
        assert_eq!(decide(Some(&refused()), None, usual()), Verdict::Unknown);
        let cut = Outcome::Cut(crate::chassis::upstream::Cut { sent: 10, total: Some(100), cause: "reset".into() });
        assert_eq!(decide(Some(&cut), Some(&refused()), usual()), Verdict::Unknown);
        let account = Outcome::AccountRefused("bad credentials".into());
        assert_eq!(decide(Some(&account), Some(&refused()), usual()), Verdict::Unknown);
    }

    #[test]
    fn every_row_of_the_answer_table_has_its_own_name() {
        let verdicts = [
            Verdict::Answer { from: Side::Primary, then: Then::Nothing },
            Verdict::Answer { from: Side::Primary, then: Then::SecondaryFellBehind },
            Verdict::Answer { from: Side::Primary, then: Then::Rebuild(Side::Secondary) },
            Verdict::Answer { from: Side::Secondary, then: Then::Failover { promote: true } },
            Verdict::Answer { from: Side::Secondary, then: Then::Rebuild(Side::Primary) },
            Verdict::Answer { from: Side::Secondary, then: Then::Nothing },
            Verdict::Void,
            Verdict::Unknown,
        ];
        let names: std::collections::BTreeSet<_> = verdicts.iter().map(Verdict::row).collect();
        assert_eq!(names.len(), verdicts.len());
        assert!(!names.contains("other"));
    }
}
