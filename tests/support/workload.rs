//! The seeded workload: K clients, each logged in once at the gateway, doing
//! a random mix of mutations and reads until told to stop.
//!
//! A client behaves like a careful real one (guarantee 6): every logical
//! mutation carries its own `Idempotency-Key`, and an attempt that got 503
//! (`outcome_unknown`, `not_applied`…), 409 `idempotency_key_in_flight` or a
//! transport error is retried with the same key, a bounded number of times
//! within a bounded time. Reads are never retried: guarantee 5 says a single
//! read must not notice a chassis failure.
//!
//! What each client may touch is chosen so that the final state is
//! predictable from the acknowledged history alone:
//! - the shared *register* window on wall 1 is moved by everyone (the
//!   linearizability check's key);
//! - each client's own windows (walls 1 and 2), KVM hosts (its own port
//!   range), seats, one source's name and one matrix output are written
//!   only by it, sequentially, so "the last acknowledged write wins" holds;
//! - the scene wall (wall 3) is shared and untracked: only its scenes are.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::choice::{choose, learn, Choice, Owned};
use crate::clock::Clock;
use crate::history::{value_of, Attempt, ClientLog, Mutation, MutationRecord, Outcome, Read, ReadRecord, Seen};
use crate::http::{Http, Sent};

/// Attempts of one logical mutation, at most.
pub const MAX_ATTEMPTS: usize = 30;
/// Time a logical mutation may keep retrying (a real client gives up too):
/// longer than any single fault the scheduler holds plus a restart.
pub const RETRY_WINDOW: Duration = Duration::from_secs(20);

/// What every client shares: the objects created at setup and the stop flag.
pub struct World {
    pub clock: Clock,
    pub seed: u64,
    /// Walls for owned windows (the first also holds the register window).
    pub own_walls: [u64; 2],
    pub scene_wall: u64,
    /// (wall, window) of the shared register.
    pub register: (u64, u64),
    /// Unique numbers for positions, sizes and names.
    pub next_value: AtomicU64,
    /// Set when the campaign is over: clients finish the operation in hand.
    pub stop: AtomicBool,
    /// Upper bound of the random pause between two operations of a client.
    pub think_max: Duration,
    /// Scenes acknowledged so far (any client may recall them).
    pub scenes: Mutex<Vec<u64>>,
}

impl World {
    pub fn unique(&self) -> u64 {
        self.next_value.fetch_add(1, Ordering::Relaxed)
    }
}

/// Who a client is.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    pub index: usize,
    pub user: String,
    /// Admins also configure (KVM, sources, scenes); operators only operate.
    pub admin: bool,
}

/// Run one client until `world.stop`; `http` is already logged in (once).
pub async fn run_client(spec: ClientSpec, http: Http, world: Arc<World>) -> ClientLog {
    let mut rng = StdRng::seed_from_u64(world.seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(spec.index as u64 + 1)));
    let mut log = ClientLog { client: spec.index, user: spec.user.clone(), ..ClientLog::default() };
    let mut owned = Owned::default();
    let mut n = 0u64;
    // Bounded by the stop flag (set by the campaign) and, as a backstop, by count.
    while !world.stop.load(Ordering::Relaxed) && n < 10_000_000 {
        n += 1;
        match choose(&spec, &world, &mut owned, &mut rng) {
            Choice::Read(read) => log.reads.push(read_once(&http, &world, spec.index, read).await),
            Choice::Mutate(op) => {
                let key = format!("chaos-{}-c{}-{n}", world.seed, spec.index);
                let rec = mutate(&http, &world, spec.index, key, op).await;
                learn(&mut owned, &world, &rec);
                log.mutations.push(rec);
            }
        }
        let pause = rng.random_range(0..=world.think_max.as_millis() as u64);
        if pause > 0 {
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
    log
}

/// One read, one attempt.
async fn read_once(http: &Http, world: &World, client: usize, read: Read) -> ReadRecord {
    let start_us = world.clock.now_us();
    let r = http.get(&read.path()).await;
    let end_us = world.clock.now_us();
    let (mut value, mut seen) = (None, Seen::Nothing);
    if let Sent::Answer { status: 200, body } = &r {
        match &read {
            Read::Register { .. } => value = value_of(body),
            Read::Windows { .. } => {
                let all = body.as_array().map(|ws| ws.iter().filter_map(|w| Some((w["id"].as_u64()?, value_of(w)?))).collect());
                seen = Seen::Windows(all.unwrap_or_default());
            }
            Read::Source { .. } => seen = Seen::Name(body["name"].as_str().unwrap_or_default().to_string()),
            _ => {}
        }
    }
    ReadRecord { client, read, attempt: Attempt { start_us, end_us, status: r.status(), detail: detail(&r) }, value, seen }
}

fn detail(r: &Sent) -> String {
    match r {
        Sent::Answer { .. } => r.code().to_string(),
        Sent::Transport(e) => e.clone(),
    }
}

/// One logical mutation with its retries (same key every time).
async fn mutate(http: &Http, world: &World, client: usize, key: String, op: Mutation) -> MutationRecord {
    let (method, path, body) = op.request();
    let headers = [("Idempotency-Key", key.as_str())];
    let mut attempts = Vec::new();
    let mut maybe_applied = false;
    let mut outcome = None;
    let mut backoff = Duration::from_millis(50);
    let first = world.clock.now_us();
    for _ in 0..MAX_ATTEMPTS {
        let start_us = world.clock.now_us();
        let r = http.call(method, &path, body.as_ref(), &headers).await;
        let end_us = world.clock.now_us();
        attempts.push(Attempt { start_us, end_us, status: r.status(), detail: detail(&r) });
        match (r.status(), r.code()) {
            (Some(s), _) if (200..300).contains(&s) => {
                outcome = Some(Outcome::Acked(r.body().cloned().unwrap_or_default()));
                break;
            }
            // Refused before anything was journaled (check d counts it).
            (Some(401), _) => break,
            // Certainly not applied: retry.
            (Some(503), "not_applied") => {}
            // May have been applied (or is still being applied): retry with the same key.
            (Some(409), "idempotency_key_in_flight") | (Some(500..=599), _) | (None, _) => maybe_applied = true,
            (Some(s), code) => {
                outcome = Some(Outcome::Refused { status: s, code: code.to_string() });
                break;
            }
        }
        if Duration::from_micros((world.clock.now_us() - first).max(0) as u64) > RETRY_WINDOW {
            break;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
    let outcome = outcome.unwrap_or(if maybe_applied { Outcome::Unknown } else { Outcome::NotApplied });
    MutationRecord { client, key, op, attempts, outcome }
}
