//! Client idempotency records: the `Idempotency-Key` a client sends (the IETF
//! httpapi draft), kept per (account, key), so a retried mutation is applied once and
//! gets the first answer again.
//!
//! A record lives in two places on purpose:
//! - while the request is being handled, in memory ([`Pending`]): taking a key must be
//!   atomic (two concurrent requests with the same key: exactly one proceeds), and
//!   nothing about it needs to survive a crash *before* the request is journaled,
//!   because then nothing was sent to any chassis and a retry may simply start over;
//! - from the moment the request becomes a journal entry, in the database, written in
//!   the same transaction as the entry (`in flight with seq N`), and later completed
//!   with the answer (`finish_client_key`). After a gateway restart a retry finds
//!   `InFlight { seq: Some(N) }`: entry N is being replayed, and whoever applies it on
//!   the primary calls `finish_client_key` with the chassis' answer (the entry carries
//!   the account and key), after which retries get `Done`.
//!
//! One gap is documented rather than closed: if the gateway dies after entry N was
//! applied by both chassis (and truncated) but before the answer was recorded, the
//! record stays `InFlight { seq: Some(N) }` until it expires. The caller can recover
//! the answer by re-sending entry N to a chassis with its `Idempotency-Key`
//! (`<gateway id>/N`): the chassis returns the answer it stored.
//!
//! Records expire after `client_key_ttl` (24 h) or, oldest first, beyond
//! `client_key_max`; an expired record reads as absent even before it is deleted.
//!
//! A record is compared by the fingerprint of its request
//! ([`super::Journal::request_fingerprint`]): an HMAC keyed with the journal's key
//! (`journal.key`), never a bare hash of the body, which for a body carrying a
//! password would let anyone holding the database test guesses offline.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::shared::{Pending, Shared};
use super::{store, JournalError};

/// What `begin_client_key` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientKeyState {
    /// First use: the caller now holds the key and must end with `finish_client_key`
    /// (answer known) or `release_client_key` (the request never became an entry).
    New,
    /// A request with this key is in progress (here, or, with `seq`, journaled before a
    /// restart and being replayed). The IETF draft answers 409.
    InFlight { seq: Option<u64> },
    /// Already answered: send this again.
    Done(ClientResponse),
    /// The key was used for a different request (method, target or body differ). The
    /// IETF draft answers 422.
    Mismatch,
}

/// The answer stored for a client key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

pub(crate) fn begin(shared: &Shared, account: &str, key: &str, fingerprint: &str) -> Result<ClientKeyState, JournalError> {
    let id = (account.to_owned(), key.to_owned());
    // Take the key in memory first, so a concurrent begin sees it while we look in the
    // database (it gets InFlight; at worst transiently, if the database says Done).
    let token = {
        let mut st = shared.state.lock();
        if let Some(p) = st.pending.get(&id) {
            return Ok(if p.fingerprint == fingerprint { ClientKeyState::InFlight { seq: p.seq } } else { ClientKeyState::Mismatch });
        }
        let token = st.next_token;
        st.next_token += 1;
        st.pending.insert(id.clone(), Pending { fingerprint: fingerprint.to_owned(), seq: None, token });
        token
    };
    let forget = || {
        let mut st = shared.state.lock();
        if st.pending.get(&id).is_some_and(|p| p.token == token) {
            st.pending.remove(&id);
        }
    };

    let row = match shared.readers.with(|c| store::client_key(c, account, key)) {
        Ok(row) => row,
        Err(e) => {
            forget();
            return Err(e);
        }
    };
    let ttl_ms = i64::try_from(shared.config.client_key_ttl.as_millis()).unwrap_or(i64::MAX);
    match row {
        Some(row) if now_ms().saturating_sub(row.created_ms) < ttl_ms => {
            forget();
            Ok(if row.fingerprint != fingerprint {
                ClientKeyState::Mismatch
            } else {
                match row.response {
                    Some(response) => ClientKeyState::Done(response),
                    None => ClientKeyState::InFlight { seq: row.seq },
                }
            })
        }
        // Absent or expired: ours now (an expired row is overwritten when we write).
        _ => Ok(ClientKeyState::New),
    }
}

/// Gives up a key taken with `New` whose request never became an entry. Returns false
/// (and keeps the record) when it did become one: that entry may still be applied.
pub(crate) fn release(shared: &Shared, account: &str, key: &str) -> bool {
    let mut st = shared.state.lock();
    let id = (account.to_owned(), key.to_owned());
    match st.pending.get(&id) {
        Some(p) if p.seq.is_none() => {
            st.pending.remove(&id);
            true
        }
        Some(_) => false,
        None => true,
    }
}
