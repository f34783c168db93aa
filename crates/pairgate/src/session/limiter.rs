//! [`LoginLimiter`]: a bound on password guessing through the gateway.
//!
//! The gateway checks a login against a chassis and then remembers the password;
//! without a limit it would be a password oracle in front of two chassis. So
//! failed logins are counted in a sliding window (one minute by default) both per
//! client address (one client trying many accounts) and per account name (many
//! clients trying one account). Past the limit, logins are refused without asking
//! any chassis until the oldest failure leaves the window.
//!
//! A successful login clears the account's count (its owner knows the password)
//! but not the address's: otherwise an attacker with one valid account could reset
//! their address's count between guesses at other accounts.
//!
//! Memory is bounded: each key keeps at most `limit` timestamps, and each map at
//! most `max_keys` keys. When a map is full, keys with no failure left in the
//! window go first, then the ones whose last failure is oldest. An attacker who
//! floods the map with new keys can therefore evict a count, but only by making as
//! many failed logins, each of which the per-address limit also counts.

use parking_lot::Mutex;
use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The window the `login_attempts_per_minute` setting counts in.
const WINDOW: Duration = Duration::from_secs(60);
/// Default bound on the keys (addresses, account names) each map holds.
const DEFAULT_MAX_KEYS: usize = 65_536;

/// A refused login: too many failures; retry after this long. HTTP 429 with a
/// `Retry-After` header of [`RetryAfter::secs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed logins: try again in {} s", self.secs())]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds to wait, rounded up, at least 1 (for `Retry-After`).
    pub fn secs(&self) -> u64 {
        let whole = self.0.as_secs();
        let rounded = if self.0.subsec_nanos() > 0 { whole.saturating_add(1) } else { whole };
        rounded.max(1)
    }

    /// The `error.code` of the refusal.
    pub fn code(&self) -> &'static str {
        "too_many_attempts"
    }

    /// The HTTP status: 429.
    pub fn status(&self) -> u16 {
        429
    }
}

/// Failure timestamps per key, oldest first.
struct FailureLog<K> {
    map: HashMap<K, VecDeque<Instant>>,
}

impl<K: Hash + Eq + Clone> FailureLog<K> {
    fn new() -> Self {
        FailureLog { map: HashMap::new() }
    }

    /// How long until `key` may try again, or `None` if it may now.
    fn retry_after<Q>(&mut self, key: &Q, now: Instant, limit: usize, window: Duration) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let failures = self.map.get_mut(key)?;
        prune(failures, now, window);
        if failures.is_empty() {
            self.map.remove(key);
            return None;
        }
        let oldest = *failures.front()?;
        (failures.len() >= limit).then(|| (oldest + window).saturating_duration_since(now))
    }

    fn record(&mut self, key: K, now: Instant, limit: usize, window: Duration, max_keys: usize) {
        if !self.map.contains_key(&key) && self.map.len() >= max_keys {
            self.evict(now, window, max_keys);
        }
        let failures = self.map.entry(key).or_default();
        prune(failures, now, window);
        failures.push_back(now);
        // Only the last `limit` failures can matter for the decision.
        while failures.len() > limit {
            failures.pop_front();
        }
    }

    /// Takes back one failure recorded at `at` (an attempt counted at its
    /// start that turned out not to be a failure).
    fn unrecord<Q>(&mut self, key: &Q, at: Instant)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(failures) = self.map.get_mut(key) {
            if let Some(pos) = failures.iter().rposition(|t| *t == at) {
                failures.remove(pos);
            }
            if failures.is_empty() {
                self.map.remove(key);
            }
        }
    }

    fn clear<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(key);
    }

    /// Makes room: drops keys with nothing left in the window, then, if still
    /// full, the tenth of the keys whose last failure is oldest.
    fn evict(&mut self, now: Instant, window: Duration, max_keys: usize) {
        self.map.retain(|_, f| {
            prune(f, now, window);
            !f.is_empty()
        });
        if self.map.len() < max_keys {
            return;
        }
        let mut by_age: Vec<(Instant, K)> = self.map.iter().filter_map(|(k, f)| f.back().map(|t| (*t, k.clone()))).collect();
        by_age.sort_by_key(|(t, _)| *t);
        let excess = self.map.len() + 1 - max_keys;
        let drop_n = excess.max(max_keys / 10).min(by_age.len());
        for (_, k) in by_age.into_iter().take(drop_n) {
            self.map.remove(&k);
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

fn prune(failures: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while failures.front().is_some_and(|t| now.saturating_duration_since(*t) >= window) {
        failures.pop_front();
    }
}

/// A login attempt counted since [`LoginLimiter::begin`]; a failure unless
/// ended otherwise.
#[derive(Debug)]
#[must_use = "end the attempt with succeeded() or undecided(), or drop it to count it as a failure"]
pub struct Attempt {
    ip: IpAddr,
    user: String,
    at: Instant,
}

/// Counts failed logins per client address and per account name; see the module
/// documentation.
pub struct LoginLimiter {
    limit: usize,
    window: Duration,
    max_keys: usize,
    by_ip: Mutex<FailureLog<IpAddr>>,
    by_user: Mutex<FailureLog<String>>,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimiter")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("addresses", &self.by_ip.lock().len())
            .field("accounts", &self.by_user.lock().len())
            .finish()
    }
}

/// Account names are counted case-insensitively: if a chassis matches names
/// without regard to case, `Admin` and `admin` are the same target.
fn user_key(username: &str) -> String {
    username.to_lowercase()
}

impl LoginLimiter {
    /// At most `attempts_per_minute` failed logins per minute per address and per
    /// account (the `[sessions].login_attempts_per_minute` setting; at least 1).
    pub fn new(attempts_per_minute: u32) -> Self {
        LoginLimiter::with_window(attempts_per_minute, WINDOW, DEFAULT_MAX_KEYS)
    }

    /// At most `limit` failures per `window`, each map holding at most `max_keys`
    /// keys (tests use a short window).
    pub fn with_window(limit: u32, window: Duration, max_keys: usize) -> Self {
        LoginLimiter {
            limit: usize::try_from(limit.max(1)).unwrap_or(usize::MAX),
            window,
            max_keys: max_keys.max(1),
            by_ip: Mutex::new(FailureLog::new()),
            by_user: Mutex::new(FailureLog::new()),
        }
    }

    /// Whether a login of `username` from `ip` may be tried now; if not, how long
    /// to wait. Call before asking any chassis.
    pub fn check(&self, ip: IpAddr, username: &str) -> Result<(), RetryAfter> {
        let now = Instant::now();
        let by_ip = self.by_ip.lock().retry_after(&ip, now, self.limit, self.window);
        let by_user = self.by_user.lock().retry_after(user_key(username).as_str(), now, self.limit, self.window);
        match by_ip.into_iter().chain(by_user).max() {
            Some(wait) => {
                tracing::info!(%ip, %username, wait_s = wait.as_secs(), "login refused: too many failed attempts");
                Err(RetryAfter(wait))
            }
            None => Ok(()),
        }
    }

    /// Starts a login attempt of `username` from `ip`: refused if the limit is
    /// reached, otherwise **counted now**, as a failure, until it ends with
    /// [`LoginLimiter::succeeded`] or [`LoginLimiter::undecided`]. Counting
    /// at the start is what makes the limit hold when many guesses arrive in
    /// parallel (all would pass a check made before any was counted).
    pub fn begin(&self, ip: IpAddr, username: &str) -> Result<Attempt, RetryAfter> {
        let now = Instant::now();
        let user = user_key(username);
        // Both maps under their locks at once (always in this order), so the
        // check and the count are one step.
        let mut by_ip = self.by_ip.lock();
        let mut by_user = self.by_user.lock();
        let wait = by_ip
            .retry_after(&ip, now, self.limit, self.window)
            .into_iter()
            .chain(by_user.retry_after(user.as_str(), now, self.limit, self.window))
            .max();
        if let Some(wait) = wait {
            tracing::info!(%ip, %username, wait_s = wait.as_secs(), "login refused: too many failed attempts");
            return Err(RetryAfter(wait));
        }
        by_ip.record(ip, now, self.limit, self.window, self.max_keys);
        by_user.record(user.clone(), now, self.limit, self.window, self.max_keys);
        Ok(Attempt { ip, user, at: now })
    }

    /// The attempt's password was right: it stops counting against the address,
    /// and the account's failures are cleared (its owner knows the password).
    pub fn succeeded(&self, attempt: Attempt) {
        self.by_ip.lock().unrecord(&attempt.ip, attempt.at);
        self.by_user.lock().clear(attempt.user.as_str());
    }

    /// No chassis could judge the attempt (none reachable): it stops counting.
    pub fn undecided(&self, attempt: Attempt) {
        self.by_ip.lock().unrecord(&attempt.ip, attempt.at);
        self.by_user.lock().unrecord(attempt.user.as_str(), attempt.at);
    }

    /// Counts a failed login (bad credentials) of `username` from `ip`.
    pub fn record_failure(&self, ip: IpAddr, username: &str) {
        let now = Instant::now();
        self.by_ip.lock().record(ip, now, self.limit, self.window, self.max_keys);
        self.by_user.lock().record(user_key(username), now, self.limit, self.window, self.max_keys);
    }

    /// A successful login: clears the account's failures (not the address's).
    pub fn record_success(&self, _ip: IpAddr, username: &str) {
        self.by_user.lock().clear(user_key(username).as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_keeps_the_map_bounded() {
        let limiter = LoginLimiter::with_window(3, Duration::from_secs(60), 100);
        for i in 0..1000u32 {
            limiter.record_failure(IpAddr::from(i.to_be_bytes()), &format!("user{i}"));
        }
        let ips = limiter.by_ip.lock().len();
        let users = limiter.by_user.lock().len();
        assert!(ips <= 100 && users <= 100, "{ips} {users}");
        // The most recent keys survive.
        let last = IpAddr::from(999u32.to_be_bytes());
        limiter.record_failure(last, "x");
        limiter.record_failure(last, "y");
        assert!(limiter.check(last, "z").is_err());
    }

    #[test]
    fn attempts_count_from_their_start_and_successes_give_theirs_back() {
        let limiter = LoginLimiter::with_window(3, Duration::from_secs(60), 100);
        let ip = IpAddr::from([10, 0, 0, 1]);
        // Three guesses in flight at once: the fourth is refused before any ends.
        let started: Vec<Attempt> = (0..3).map(|_| limiter.begin(ip, "admin").expect("within the limit")).collect();
        assert!(limiter.begin(ip, "admin").is_err());
        assert!(limiter.begin(ip, "other").is_err(), "the address is at its limit too");
        // Two of them were right after all, one undecided: the address may try again.
        let mut it = started.into_iter();
        limiter.succeeded(it.next().unwrap());
        limiter.undecided(it.next().unwrap());
        drop(it);
        let a = limiter.begin(ip, "admin").expect("room again");
        limiter.succeeded(a);
        // Successful logins never fill the window.
        for _ in 0..10 {
            let a = limiter.begin(IpAddr::from([10, 0, 0, 2]), "ops").expect("successes do not count");
            limiter.succeeded(a);
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(RetryAfter(Duration::from_millis(1500)).secs(), 2);
        assert_eq!(RetryAfter(Duration::from_secs(3)).secs(), 3);
        assert_eq!(RetryAfter(Duration::ZERO).secs(), 1);
    }
}
