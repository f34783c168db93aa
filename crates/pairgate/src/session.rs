//! The gateway's session store: how "log in once" (guarantee 4 in `docs/design.md`) is
//! kept.
//!
//! A chassis allows one live session per account: a second login gets 409
//! `already_logged_in`, and `force` preempts the first. Browsers therefore never
//! hold chassis tokens. Instead:
//!
//! - **Gateway sessions** ([`SessionStore`]): a user logs in once at the gateway
//!   and gets the gateway's own token, an HS256 JWT naming a session record. The
//!   records live in `sessions.sqlite` in the state directory, so they survive a
//!   gateway restart; logout ends one record, [`SessionStore::revoke_account`] all
//!   of an account's.
//! - **Backend sessions** ([`BackendSessions`]): one chassis token per account per
//!   chassis, shared by every gateway session of that account. In memory only: a
//!   chassis forgets its tokens when it restarts anyway, and the gateway re-logs in
//!   on demand, one re-login at a time per account and chassis.
//! - **Account credentials** ([`SessionStore::remember_credentials`]): to re-log
//!   in on the user's behalf (after a chassis restart, a preemption, a gateway
//!   restart) the gateway keeps each account's password, sealed with an AEAD key
//!   that lives in its own 0600 file next to the database. Never in plain text,
//!   never in a log; [`SessionStore::forget_credentials`] deletes an account's
//!   sealed password when the account is deleted (the database zeroes deleted
//!   rows: `secure_delete`).
//! - **Brute-force limit** ([`LoginLimiter`]): failed logins per client address and
//!   per username, so the gateway is not a faster password oracle than a chassis.
//!
//! - **The broker** ([`broker`]): the only part of the gateway that logs in to
//!   chassis — one backend session per account per chassis, renewed when a
//!   chassis restarts or pre-empts it; the gateway's service account serves
//!   only the gateway's own calls. It alone here calls a chassis; the rest is
//!   state.

mod account;
mod auth_error;
mod backend;
pub mod broker;
mod db;
mod error;
mod jwt;
mod limiter;
mod ring_provider;
mod role;
mod sealer;
mod secret;
mod store;
mod time;

pub use account::{login_response, AccountInfo};
pub use auth_error::{bearer_token, AuthError};
pub use backend::{BackendSessions, BackendToken};
pub use error::SessionError;
pub use limiter::{Attempt, LoginLimiter, RetryAfter};
pub use role::{Role, UnknownRole};
pub use secret::Secret;
pub use store::{
    Issued, Principal, SessionConfig, SessionStore, SessionSummary, CREDENTIALS_KEY_FILE, DEFAULT_ABSOLUTE_LIFETIME, DEFAULT_IDLE_TIMEOUT,
    MIN_JWT_SECRET_LEN, SESSIONS_DB_FILE,
};
