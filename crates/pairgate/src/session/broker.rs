//! The session broker: the only part of the gateway that logs in to chassis.
//!
//! - A user's login at the gateway is checked by logging in to a chassis as
//!   that user (`force: true`, so the chassis' one-session rule never makes a
//!   gateway login fail); the chassis token becomes the account's shared
//!   backend session there, the password is sealed for later re-logins, and
//!   the browser gets a gateway token.
//! - Every call on a user's behalf carries that account's backend token for
//!   the chassis; a 401 from the chassis (restarted, preempted) triggers one
//!   re-login per account and chassis — single-flight — and one retry, so the
//!   user never sees it.
//! - When an account's own credentials no longer work on a chassis (changed
//!   behind the gateway's back, deleted, or the credentials key is lost), the
//!   call is **not sent** ([`Outcome::AccountRefused`]): no request reaches a
//!   chassis with more rights than its sender had. The gateway's service
//!   account serves the gateway's own calls only (health, digest,
//!   export/import, pairing) — and a replay of a journal entry that a chassis
//!   already accepted from its account, which the applier decides, not this.
//! - A service login a chassis refuses is logged at error level and shown on
//!   the status page (`service_login_failed`) until a service login works.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::chassis::upstream::{Answered, Outcome, UpRequest, Upstream};
use crate::session::{AccountInfo, BackendSessions, BackendToken, LoginLimiter, Secret, SessionStore};

/// An outcome after which the session must be looked at: a 401, or a body
/// the chassis stopped reading (it may have refused the session early).
fn needs_session_check(o: &Outcome) -> bool {
    matches!(o, Outcome::Answered(a) if a.status == 401) || matches!(o, Outcome::Cut(_))
}

/// The gateway's own account on one chassis.
pub struct ServiceAccount {
    pub username: String,
    pub password: Secret,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum BrokerError {
    /// The chassis refused the credentials (401 bad_credentials).
    #[error("the chassis refused the credentials")]
    BadCredentials(Outcome),
    /// No stored credentials for this account (never logged in through this
    /// gateway, or its session was ended): it must log in again.
    #[error("no stored credentials for this account: log in again")]
    NoCredentials,
    /// The chassis did not answer the login.
    #[error("chassis login failed: {0}")]
    Unreachable(String),
    /// The stored credentials cannot be read (e.g. the credentials key is lost).
    #[error("the stored credentials cannot be read ({0}): log in again")]
    Store(String),
}

pub struct Broker {
    pub store: SessionStore,
    pub backends: BackendSessions,
    pub limiter: LoginLimiter,
    /// Per chassis (by index), the gateway's own account.
    pub service: [ServiceAccount; 2],
    pub per_try: Duration,
    /// Logins a chassis confirmed recently (see [`Recent`]).
    pub recent: Recent,
    /// Per chassis: why the service account cannot log in (None: it can, or
    /// has not tried yet). Shown on the status page.
    pub service_status: [parking_lot::Mutex<Option<String>>; 2],
}

/// How long a chassis' "this password is right" is reused for new gateway
/// logins of the same account.
pub const RECENT_LOGIN_TTL: Duration = Duration::from_secs(60);

/// Recently confirmed logins, so that ten browsers logging in as one account
/// cost one chassis login, not ten — each chassis login would also replace
/// the account's shared backend session (one session per account), making
/// every other gateway session of that account log in again behind the
/// scenes. Holds a salted SHA-256 of the password (the salt is per process),
/// never the password; entries expire after [`RECENT_LOGIN_TTL`] and are all
/// dropped when any user is changed through the gateway.
pub struct Recent {
    salt: [u8; 16],
    entries: parking_lot::Mutex<std::collections::HashMap<String, Confirmed>>,
}

/// Who the account is, the salted hash of the password confirmed, and when.
type Confirmed = (AccountInfo, [u8; 32], std::time::Instant);

impl Default for Recent {
    fn default() -> Self {
        Recent { salt: rand::random(), entries: Default::default() }
    }
}

impl Recent {
    fn hash(&self, password: &str) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.salt);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// The account, if `password` was confirmed by a chassis in the last minute.
    pub fn check(&self, username: &str, password: &str) -> Option<AccountInfo> {
        let want = self.hash(password);
        let entries = self.entries.lock();
        let (account, got, at) = entries.get(username)?;
        // Compare without an early exit.
        let same = got.iter().zip(want.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        (same && at.elapsed() < RECENT_LOGIN_TTL).then(|| account.clone())
    }

    pub fn remember(&self, username: &str, password: &str, account: &AccountInfo) {
        let h = self.hash(password);
        {
            let mut e = self.entries.lock();
            e.insert(username.to_string(), (account.clone(), h, std::time::Instant::now()));
        }
    }

    pub fn forget(&self, username: &str) {
        {
            let mut e = self.entries.lock();
            e.remove(username);
        }
    }

    pub fn clear(&self) {
        {
            let mut e = self.entries.lock();
            e.clear();
        }
    }
}

/// The backend account a call runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Runs {
    User(String),
    Service,
}

/// Log in to `up` (a chassis, or a gateway: the same call) as `username`
/// (force: true): the token and account if it worked; a 401 is
/// [`BrokerError::BadCredentials`] with the answer.
pub async fn login(up: &Upstream, username: &str, password: &str, timeout: Duration) -> Result<(Secret, AccountInfo), BrokerError> {
    let body = json!({"username": username, "password": password, "force": true});
    let outcome = up.json(Method::POST, "/api/v1/login", Some(&body), None, timeout).await;
    match &outcome {
        Outcome::Answered(a) if a.status == 200 => {
            let v: serde_json::Value =
                serde_json::from_slice(&a.body).map_err(|e| BrokerError::Unreachable(format!("login answer: {e}")))?;
            let token = v["token"].as_str().ok_or_else(|| BrokerError::Unreachable("login answer without a token".into()))?;
            let account: AccountInfo =
                serde_json::from_value(v["user"].clone()).map_err(|e| BrokerError::Unreachable(format!("login answer's user: {e}")))?;
            Ok((Secret::new(token), account))
        }
        Outcome::Answered(a) if a.status == 401 => Err(BrokerError::BadCredentials(outcome.clone())),
        other => Err(BrokerError::Unreachable(other.describe())),
    }
}

impl Broker {
    /// [`login`] to a chassis, within the per-try timeout.
    pub async fn chassis_login(&self, up: &Upstream, username: &str, password: &str) -> Result<(Secret, AccountInfo), BrokerError> {
        login(up, username, password, self.per_try).await
    }

    fn key(runs: &Runs) -> &str {
        match runs {
            Runs::User(u) => u,
            // Cannot collide with a user: chassis usernames have no spaces.
            Runs::Service => " service",
        }
    }

    /// The current token for `runs` on chassis `i`, logging in if there is none.
    pub async fn token(&self, i: usize, up: &Upstream, runs: &Runs) -> Result<BackendToken, BrokerError> {
        match self.backends.get(&up.name, Self::key(runs)) {
            Some(t) => Ok(t),
            None => self.relogin(i, up, runs, 0).await,
        }
    }

    /// Replace a token that a chassis refused (generation `stale`); one login
    /// for all concurrent callers.
    pub async fn relogin(&self, i: usize, up: &Upstream, runs: &Runs, stale: u64) -> Result<BackendToken, BrokerError> {
        let result = self
            .backends
            .relogin(&up.name, Self::key(runs), stale, || async {
                let (user, password) = match runs {
                    Runs::User(u) => {
                        let pw =
                            self.store.credentials(u).map_err(|e| BrokerError::Store(e.to_string()))?.ok_or(BrokerError::NoCredentials)?;
                        (u.clone(), pw)
                    }
                    Runs::Service => (self.service[i].username.clone(), self.service[i].password.clone()),
                };
                tracing::info!(chassis = %up.name, user = %user, "logging in on the account's behalf");
                let result = self.chassis_login(up, &user, password.expose()).await.map(|(token, _)| token);
                if *runs == Runs::Service {
                    match &result {
                        Ok(_) => self.set_service_problem(i, None),
                        Err(BrokerError::BadCredentials(_)) => {
                            tracing::error!(
                                chassis = %up.name,
                                user = %user,
                                "service_login_failed: the chassis refused the gateway's own account; \
                                 health, digests and resyncs of this chassis fail until its password file matches"
                            );
                            self.set_service_problem(i, Some(format!("the chassis refused the login of the gateway's account '{user}'")));
                        }
                        Err(_) => {}
                    }
                } else if let Err(BrokerError::BadCredentials(_)) = &result {
                    tracing::warn!(chassis = %up.name, user = %user, "the chassis refused the account's stored credentials");
                }
                result
            })
            .await;
        result.map_err(|e| (*e).clone())
    }

    /// Send `req` to chassis `i` as `runs`, re-logging in once on a 401.
    /// Never as another account: a user whose own login fails gets
    /// [`Outcome::AccountRefused`].
    pub async fn send<'a>(&self, i: usize, up: &Upstream, runs: &Runs, req: impl Fn() -> UpRequest<'a>) -> Outcome {
        let sent = self
            .with_session(i, up, runs, |token| {
                let req = UpRequest { token: Some(token), ..req() };
                async move {
                    match up.send(req).await {
                        o if needs_session_check(&o) => Err(o),
                        o => Ok(o),
                    }
                }
            })
            .await;
        sent.unwrap_or_else(|o| o)
    }

    /// Run `call` with `runs`' token on chassis `i` (logging in if there is
    /// none). A 401 — or a body cut off by a chassis whose session check then
    /// answers 401: it refused the stale session before reading the body, and
    /// the answer was lost with the connection — means one re-login (shared
    /// with concurrent callers) and another try, at most three in all. `call`
    /// returns `Err` with the outcome for those two cases, `Ok` otherwise.
    pub async fn with_session<T, F, Fut>(&self, i: usize, up: &Upstream, runs: &Runs, call: F) -> Result<T, Outcome>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, Outcome>>,
    {
        let refused = |e: BrokerError| match e {
            BrokerError::Unreachable(e) => Outcome::Refused(e),
            other => Outcome::AccountRefused(other.to_string()),
        };
        for _ in 0..3 {
            let token = self.token(i, up, runs).await.map_err(refused)?;
            let outcome = match call(token.token.expose().to_string()).await {
                Ok(t) => return Ok(t),
                Err(o) => o,
            };
            match outcome {
                Outcome::Answered(a) if a.status == 401 => {
                    tracing::info!(chassis = %up.name, code = ?a.error_code(), "backend session refused; re-logging in");
                }
                Outcome::Cut(mut cut) => match self.session_check(up, token.token.expose()).await {
                    Some(a) if a.status == 401 => {
                        tracing::warn!(
                            chassis = %up.name,
                            code = ?a.error_code(),
                            "{cut}; its session check then answered 401: the chassis refused a stale session before \
                             reading the body; logging in again and sending once more"
                        );
                    }
                    seen => {
                        cut.cause.push_str(&match seen {
                            Some(a) => format!("; the session is valid (GET /system/info answered {})", a.status),
                            None => "; the session check got no answer either".to_string(),
                        });
                        return Err(Outcome::Cut(cut));
                    }
                },
                other => return Err(other),
            }
            self.relogin(i, up, runs, token.generation).await.map_err(refused)?;
        }
        Err(Outcome::NoAnswer("the chassis kept refusing fresh sessions".into()))
    }

    /// Is `token` still a session on `up`? `GET /system/info` (small, needs a
    /// session): its answer, or `None` if none came.
    async fn session_check(&self, up: &Upstream, token: &str) -> Option<Answered> {
        match up.json(Method::GET, "/api/v1/system/info", None, Some(token), self.per_try).await {
            Outcome::Answered(a) => Some(a),
            _ => None,
        }
    }

    /// Make sure `runs` holds a live session on chassis `i` before a call
    /// that cannot be repeated (a streamed body): a stale one is replaced.
    pub async fn fresh_session(&self, i: usize, up: &Upstream, runs: &Runs) -> Result<String, Outcome> {
        self.with_session(i, up, runs, |token| async move {
            match self.session_check(up, &token).await {
                Some(a) if a.status == 401 => Err(Outcome::Answered(a)),
                Some(a) if a.is_success() => Ok(token),
                Some(a) => Err(Outcome::Answered(a)),
                None => Err(Outcome::NoAnswer("GET /system/info: no answer".into())),
            }
        })
        .await
    }

    /// Why the service account cannot log in to chassis `i`, if it cannot.
    pub fn service_problem(&self, i: usize) -> Option<String> {
        self.service_status[i].lock().clone()
    }

    fn set_service_problem(&self, i: usize, problem: Option<String>) {
        {
            let mut s = self.service_status[i].lock();
            *s = problem;
        }
    }
}

/// Shared handle.
pub type SharedBroker = Arc<Broker>;
