//! [`BackendSessions`]: the gateway's own chassis sessions, one per account per
//! chassis, and the single-flight re-login that keeps them alive.
//!
//! A chassis allows one session per account, so every gateway session of an
//! account shares one chassis token per chassis. When that token dies (the chassis
//! restarted, someone preempted it with `force`), many requests of that account
//! notice at once, each with a 401. If each re-logged in, each login would preempt
//! the one before it, and the requests would fight forever. Hence:
//!
//! - every token carries a **generation**, unique across the process;
//! - a request that got a 401 with generation `g` asks for a token newer than `g`
//!   ([`BackendSessions::relogin`]): if one already exists it gets it at once;
//!   otherwise one caller per (chassis, account) logs in while the others wait and
//!   then share its result, success or failure. The login runs once.
//!
//! In memory only: chassis tokens do not survive a chassis restart, and after a
//! gateway restart the stored credentials let the gateway log in afresh.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::secret::Secret;

/// A chassis token and its generation.
#[derive(Debug, Clone)]
pub struct BackendToken {
    pub token: Secret,
    /// Unique per token in this process, never 0; compare it, never the token.
    pub generation: u64,
}

/// One (chassis, account) pair.
#[derive(Default)]
struct Slot {
    token: Option<BackendToken>,
    /// Held by the caller that is logging in; the others queue on it.
    flight: Arc<tokio::sync::Mutex<()>>,
    /// Logins run to completion so far (successful or not). A caller that queued
    /// before attempt N finished shares attempt N's outcome.
    attempts: u64,
    /// The error of the last attempt if it failed, with that attempt's number.
    /// Type-erased: the error type is the caller's (`Arc<E>`).
    last_failure: Option<(u64, Arc<dyn Any + Send + Sync>)>,
}

/// The shared chassis sessions: (chassis name, username) to token. Share it as
/// `Arc<BackendSessions>`.
pub struct BackendSessions {
    slots: Mutex<HashMap<String, HashMap<String, Slot>>>,
    next_generation: AtomicU64,
}

impl Default for BackendSessions {
    fn default() -> Self {
        BackendSessions::new()
    }
}

impl std::fmt::Debug for BackendSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slots = self.lock();
        let tokens: usize = slots.values().flat_map(|m| m.values()).filter(|s| s.token.is_some()).count();
        f.debug_struct("BackendSessions").field("tokens", &tokens).finish_non_exhaustive()
    }
}

impl BackendSessions {
    pub fn new() -> Self {
        BackendSessions { slots: Mutex::new(HashMap::new()), next_generation: AtomicU64::new(1) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, HashMap<String, Slot>>> {
        self.slots.lock()
    }

    fn with_slot<R>(&self, chassis: &str, user: &str, f: impl FnOnce(&mut Slot) -> R) -> R {
        let mut slots = self.lock();
        // Look up before inserting: the common case allocates nothing.
        if let Some(slot) = slots.get_mut(chassis).and_then(|m| m.get_mut(user)) {
            return f(slot);
        }
        f(slots.entry(chassis.to_string()).or_default().entry(user.to_string()).or_default())
    }

    /// The current token of `user` on `chassis`, if any.
    pub fn get(&self, chassis: &str, user: &str) -> Option<BackendToken> {
        self.lock().get(chassis).and_then(|m| m.get(user)).and_then(|s| s.token.clone())
    }

    /// Stores a new token (from a login the caller made); its generation.
    pub fn set(&self, chassis: &str, user: &str, token: Secret) -> u64 {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        self.with_slot(chassis, user, |slot| slot.token = Some(BackendToken { token, generation }));
        tracing::debug!(chassis, user, generation, "backend session stored");
        generation
    }

    /// Drops the token if it is still of `generation` (it answered 401); whether
    /// it did. A newer token, set meanwhile by someone else, stays.
    pub fn invalidate_if(&self, chassis: &str, user: &str, generation: u64) -> bool {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(chassis).and_then(|m| m.get_mut(user)) else {
            return false;
        };
        if slot.token.as_ref().is_some_and(|t| t.generation == generation) {
            slot.token = None;
            tracing::info!(chassis, user, generation, "backend session invalidated");
            true
        } else {
            false
        }
    }

    /// Drops every token of `chassis` (it restarted: it forgot them all); how many.
    pub fn forget_chassis(&self, chassis: &str) -> usize {
        let mut slots = self.lock();
        let n = slots.get_mut(chassis).map(|m| m.values_mut().filter_map(|s| s.token.take()).count()).unwrap_or(0);
        if n > 0 {
            tracing::info!(chassis, tokens = n, "backend sessions of the chassis dropped");
        }
        n
    }

    /// Drops every token of `user` (account revoked); how many.
    pub fn forget_user(&self, user: &str) -> usize {
        let mut slots = self.lock();
        let n = slots.values_mut().filter_map(|m| m.get_mut(user)).filter_map(|s| s.token.take()).count();
        if n > 0 {
            tracing::info!(user, tokens = n, "backend sessions of the account dropped");
        }
        n
    }

    /// A token of `user` on `chassis` newer than `stale_generation` (pass 0 when
    /// the caller had none), logging in with `login` only if there is none.
    ///
    /// Concurrent callers for the same (chassis, user) are serialized: the first
    /// runs `login`, the ones that queued meanwhile get its result (the new token,
    /// or the same `Arc`'d error) without logging in again. A later call whose
    /// `stale_generation` is the new token's generation logs in again. If the
    /// caller running `login` is cancelled, the next queued caller logs in.
    ///
    /// `login` performs the actual chassis login (force-preempting if it must) and
    /// returns the new chassis token.
    pub async fn relogin<F, Fut, E>(&self, chassis: &str, user: &str, stale_generation: u64, login: F) -> Result<BackendToken, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Secret, E>>,
        E: Send + Sync + 'static,
    {
        let fresh = |slot: &Slot| slot.token.clone().filter(|t| t.generation != stale_generation);
        // Fast path, and the number of attempts finished before we queued.
        let (flight, seen_attempts) =
            match self.with_slot(chassis, user, |slot| fresh(slot).ok_or((Arc::clone(&slot.flight), slot.attempts))) {
                Ok(token) => return Ok(token),
                Err(queue) => queue,
            };
        let _turn = flight.lock().await;

        // Our turn: did someone finish a login while we waited?
        let shared = self.with_slot(chassis, user, |slot| {
            if let Some(token) = fresh(slot) {
                return Some(Ok(token));
            }
            match &slot.last_failure {
                Some((attempt, err)) if *attempt > seen_attempts => Arc::clone(err).downcast::<E>().ok().map(Err),
                _ => None,
            }
        });
        if let Some(outcome) = shared {
            return outcome;
        }

        tracing::info!(chassis, user, stale_generation, "logging in to the chassis on the account's behalf");
        let outcome = login().await;
        self.with_slot(chassis, user, |slot| {
            slot.attempts += 1;
            match outcome {
                Ok(token) => {
                    let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
                    let token = BackendToken { token, generation };
                    slot.token = Some(token.clone());
                    slot.last_failure = None;
                    Ok(token)
                }
                Err(e) => {
                    let e = Arc::new(e);
                    slot.last_failure = Some((slot.attempts, Arc::clone(&e) as Arc<dyn Any + Send + Sync>));
                    tracing::warn!(chassis, user, "re-login to the chassis failed");
                    Err(e)
                }
            }
        })
    }
}
