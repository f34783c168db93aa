//! Sessions: one live session per account — the login-preemption defect the
//! gateway exists to hide.
//!
//! A second login for an account that has a live session gets 409
//! `already_logged_in`; with `"force": true` it revokes the old session, whose
//! token from then on gets 401 `session_preempted`. Sessions live in memory
//! only: a restarted chassis has forgotten every token (as the real box does),
//! which is why the gateway must log in again on its users' behalf.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::error::ApiError;
use crate::model::Role;

/// Who a valid token belongs to.
#[derive(Clone, Debug)]
pub struct Session {
    pub token: String,
    pub user_id: u64,
    pub username: String,
    pub role: Role,
}

struct Live {
    session: Session,
    last_seen: Instant,
}

/// How many revoked tokens are remembered to answer `session_preempted`.
const REMEMBERED_PREEMPTIONS: usize = 4096;

pub struct Sessions {
    idle: Duration,
    by_token: HashMap<String, Live>,
    by_user: HashMap<u64, String>,
    preempted: HashMap<String, ()>,
    preempted_order: VecDeque<String>,
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions { idle, by_token: HashMap::new(), by_user: HashMap::new(), preempted: HashMap::new(), preempted_order: VecDeque::new() }
    }

    /// Open a session for a user whose password was verified.
    pub fn open(&mut self, user_id: u64, username: &str, role: Role, force: bool) -> Result<Session, ApiError> {
        let now = Instant::now();
        if let Some(old) = self.by_user.get(&user_id).cloned() {
            let alive = self.by_token.get(&old).is_some_and(|l| now.duration_since(l.last_seen) < self.idle);
            if alive && !force {
                return Err(ApiError::AlreadyLoggedIn(username.to_string()));
            }
            self.revoke(&old, alive);
        }
        let session = Session { token: new_token(), user_id, username: username.to_string(), role };
        self.by_user.insert(user_id, session.token.clone());
        self.by_token.insert(session.token.clone(), Live { session: session.clone(), last_seen: now });
        Ok(session)
    }

    /// End a session; `preempted` makes its token answer `session_preempted`.
    fn revoke(&mut self, token: &str, preempted: bool) {
        if let Some(live) = self.by_token.remove(token) {
            if self.by_user.get(&live.session.user_id).is_some_and(|t| t == token) {
                self.by_user.remove(&live.session.user_id);
            }
        }
        if preempted {
            self.preempted.insert(token.to_string(), ());
            self.preempted_order.push_back(token.to_string());
            while self.preempted_order.len() > REMEMBERED_PREEMPTIONS {
                if let Some(t) = self.preempted_order.pop_front() {
                    self.preempted.remove(&t);
                }
            }
        }
    }

    /// Check a token and mark the session used.
    pub fn check(&mut self, token: &str) -> Result<Session, ApiError> {
        let now = Instant::now();
        if let Some(live) = self.by_token.get_mut(token) {
            if now.duration_since(live.last_seen) < self.idle {
                live.last_seen = now;
                return Ok(live.session.clone());
            }
            self.revoke(token, false);
            return Err(ApiError::InvalidToken);
        }
        if self.preempted.contains_key(token) {
            return Err(ApiError::SessionPreempted);
        }
        Err(ApiError::InvalidToken)
    }

    pub fn logout(&mut self, token: &str) {
        self.revoke(token, false);
    }

    /// End every session of a user (deleted, password or role changed).
    pub fn end_user(&mut self, user_id: u64) {
        if let Some(t) = self.by_user.get(&user_id).cloned() {
            self.revoke(&t, false);
        }
    }

    /// Keep only sessions whose user still exists with the same name and role
    /// (after an import replaced the users table).
    pub fn retain_users(&mut self, still_valid: impl Fn(&Session) -> bool) {
        let gone: Vec<String> = self.by_token.values().filter(|l| !still_valid(&l.session)).map(|l| l.session.token.clone()).collect();
        for t in gone {
            self.revoke(&t, false);
        }
    }

    pub fn live_count(&self) -> usize {
        self.by_token.len()
    }
}

fn new_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
