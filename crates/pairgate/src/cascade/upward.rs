//! Which of the chassis' upward calls go to the superior: a pure decision
//! (no I/O, no clock of its own), so it is unit-tested as values.
//!
//! Both chassis of the pair make the same logical call (a registration after
//! the same source change). The first to arrive is sent upward; the other is
//! told the same answer. Two calls are the same logical call when
//! - both carry the same `Idempotency-Key` (`<origin>/<seq>/<k>`: chassis with
//!   `origin_seq`), at any distance in time (the last [`KEYS_KEPT`] keys); or
//! - neither carries one and their bodies (after the gateway's fills) are equal,
//!   the second arriving within [`CONTENT_WINDOW`] of the first; each sent call
//!   matches at most one later call.
//!
//! A call sent upward that failed matches nothing: the next one is sent again.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Keys remembered (and their answers), oldest forgotten first.
pub const KEYS_KEPT: usize = 10_000;
/// How long a call without a key waits to be matched by the other chassis'.
pub const CONTENT_WINDOW: Duration = Duration::from_secs(30);

/// A call sent upward, named so that the calls matched to it find its answer.
pub type Ticket = u64;

/// What the superior answered a call (status and body), given to both chassis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What to do with an arriving call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// Send it upward, then [`Matcher::settle`] the ticket.
    Send(Ticket),
    /// The same logical call was sent (or is being sent): answer with its reply.
    Same(Ticket),
}

/// Where a sent call stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    Sending,
    Answered(Reply),
    /// Sending it failed; callers matched to it are told this reply.
    Failed(Reply),
}

struct ByContent {
    digest: [u8; 32],
    ticket: Ticket,
    at: Instant,
    matched: bool,
}

#[derive(Default)]
pub struct Matcher {
    next: Ticket,
    slots: HashMap<Ticket, Slot>,
    keys: HashMap<String, Ticket>,
    key_order: VecDeque<String>,
    content: VecDeque<ByContent>,
}

impl Matcher {
    /// A call arrives with its key (if any) and the digest of its filled body.
    pub fn arrive(&mut self, key: Option<&str>, digest: [u8; 32], now: Instant) -> Arrival {
        self.expire(now);
        match key {
            Some(key) => {
                if let Some(&t) = self.keys.get(key) {
                    if !matches!(self.slots.get(&t), Some(Slot::Failed(_)) | None) {
                        return Arrival::Same(t);
                    }
                }
                let t = self.ticket();
                if self.keys.insert(key.to_string(), t).is_none() {
                    self.key_order.push_back(key.to_string());
                }
                while self.key_order.len() > KEYS_KEPT {
                    if let Some(old) = self.key_order.pop_front() {
                        if let Some(old_t) = self.keys.remove(&old) {
                            self.slots.remove(&old_t);
                        }
                    }
                }
                Arrival::Send(t)
            }
            None => {
                let found = self
                    .content
                    .iter_mut()
                    .find(|c| !c.matched && c.digest == digest && !matches!(self.slots.get(&c.ticket), Some(Slot::Failed(_)) | None));
                if let Some(c) = found {
                    c.matched = true;
                    return Arrival::Same(c.ticket);
                }
                let t = self.ticket();
                self.content.push_back(ByContent { digest, ticket: t, at: now, matched: false });
                Arrival::Send(t)
            }
        }
    }

    /// What the superior answered the call sent with `ticket` (`Err`: it failed).
    pub fn settle(&mut self, ticket: Ticket, reply: Result<Reply, Reply>) {
        if let Some(slot) = self.slots.get_mut(&ticket) {
            *slot = match reply {
                Ok(r) => Slot::Answered(r),
                Err(r) => Slot::Failed(r),
            };
        }
    }

    pub fn slot(&self, ticket: Ticket) -> Option<&Slot> {
        self.slots.get(&ticket)
    }

    fn ticket(&mut self) -> Ticket {
        self.next += 1;
        self.slots.insert(self.next, Slot::Sending);
        self.next
    }

    /// Calls without a key older than the window are no longer matched (and
    /// their answers forgotten once nobody can ask for them).
    fn expire(&mut self, now: Instant) {
        while let Some(c) = self.content.front() {
            if now.saturating_duration_since(c.at) <= CONTENT_WINDOW {
                break;
            }
            if let Some(c) = self.content.pop_front() {
                if !matches!(self.slots.get(&c.ticket), Some(Slot::Sending)) {
                    self.slots.remove(&c.ticket);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> [u8; 32] {
        [n; 32]
    }

    fn ok(status: u16) -> Reply {
        Reply { status, body: Vec::new() }
    }

    #[test]
    fn the_second_call_with_a_key_gets_the_first_ones_answer_however_late() {
        let mut m = Matcher::default();
        let t0 = Instant::now();
        let Arrival::Send(t) = m.arrive(Some("gw/7/1"), d(1), t0) else { panic!("first is sent") };
        assert_eq!(m.arrive(Some("gw/7/1"), d(2), t0), Arrival::Same(t), "same key, even while in flight");
        m.settle(t, Ok(ok(201)));
        let late = t0 + CONTENT_WINDOW * 10;
        assert_eq!(m.arrive(Some("gw/7/1"), d(1), late), Arrival::Same(t));
        assert_eq!(m.slot(t), Some(&Slot::Answered(ok(201))));
        assert!(matches!(m.arrive(Some("gw/8/1"), d(1), late), Arrival::Send(_)), "another key is another call");
    }

    #[test]
    fn a_failed_call_is_sent_again_by_the_next_one() {
        let mut m = Matcher::default();
        let now = Instant::now();
        let Arrival::Send(t) = m.arrive(Some("k"), d(1), now) else { panic!() };
        m.settle(t, Err(ok(502)));
        let Arrival::Send(t2) = m.arrive(Some("k"), d(1), now) else { panic!("a failure is not an answer") };
        assert_ne!(t, t2);
        let Arrival::Send(c) = m.arrive(None, d(3), now) else { panic!() };
        m.settle(c, Err(ok(502)));
        assert!(matches!(m.arrive(None, d(3), now), Arrival::Send(_)));
    }

    #[test]
    fn without_keys_each_sent_call_matches_one_equal_call_within_the_window() {
        let mut m = Matcher::default();
        let t0 = Instant::now();
        // One chassis: A, B, A again; then the other chassis the same three.
        let Arrival::Send(a1) = m.arrive(None, d(1), t0) else { panic!() };
        let Arrival::Send(b1) = m.arrive(None, d(2), t0) else { panic!() };
        assert_eq!(m.arrive(None, d(1), t0), Arrival::Same(a1), "an equal call within the window");
        assert!(matches!(m.arrive(None, d(1), t0), Arrival::Send(_)), "a1 is matched once only");
        assert_eq!(m.arrive(None, d(2), t0), Arrival::Same(b1));
        // Past the window an equal call is a new one.
        let later = t0 + CONTENT_WINDOW + Duration::from_secs(1);
        let Arrival::Send(_) = m.arrive(None, d(2), later) else { panic!("the window has passed") };
    }

    #[test]
    fn keys_are_forgotten_oldest_first_past_the_limit() {
        let mut m = Matcher::default();
        let now = Instant::now();
        for i in 0..=KEYS_KEPT {
            let Arrival::Send(t) = m.arrive(Some(&format!("k{i}")), d(0), now) else { panic!() };
            m.settle(t, Ok(ok(200)));
        }
        assert!(matches!(m.arrive(Some("k0"), d(0), now), Arrival::Send(_)), "the oldest was forgotten");
        assert!(matches!(m.arrive(Some(&format!("k{KEYS_KEPT}")), d(0), now), Arrival::Same(_)));
        assert!(m.slots.len() <= KEYS_KEPT + 1);
    }
}
