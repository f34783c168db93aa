//! A client's `Idempotency-Key` as a guard: taken before its mutation is
//! journaled, it finishes (the answer stored for a repeat) or releases itself
//! (the key may be used again) — also when the request is dropped half-way,
//! a client that hung up.

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::relay::stored;
use super::Ctx;
use crate::chassis::upstream::Answered;
use crate::error::GatewayError;
use crate::journal::{ClientKeyState, Journal};

/// A key this request holds in flight.
pub struct KeyGuard<'a> {
    journal: &'a Journal,
    account: &'a str,
    key: String,
    /// The entry carrying the key is in the journal: its applier records the
    /// first decided answer for the key if this request does not, so the key
    /// must stay in flight (a retry meanwhile is told 409, never sent twice).
    journaled: bool,
    finished: bool,
}

/// What [`KeyGuard::begin`] found.
pub enum Taken<'a> {
    /// The request carries no key.
    NoKey,
    /// Its key, now held in flight by this request.
    Held(KeyGuard<'a>),
    /// The response instead of sending it: the stored answer of a repeat,
    /// 409 for a key in flight or sent with another request, 400 for a bad key.
    Answer(Response),
}

/// The key a request carries: none, or one of 1 to 255 visible characters.
fn client_key(headers: &HeaderMap) -> Result<Option<&str>, GatewayError> {
    match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(k)) if !k.is_empty() && k.len() <= 255 => Ok(Some(k)),
        Some(_) => Err(GatewayError::BadIdempotencyKey),
    }
}

impl<'a> KeyGuard<'a> {
    /// Before sequencing: take the request's key, if it has one.
    pub fn begin(journal: &'a Journal, account: &'a str, ctx: &Ctx) -> Taken<'a> {
        let key = match client_key(&ctx.headers) {
            Ok(Some(k)) => k.to_string(),
            Ok(None) => return Taken::NoKey,
            Err(e) => return Taken::Answer(e.into_response()),
        };
        let fp = journal.request_fingerprint(ctx.method.as_str(), &ctx.path_and_query, &ctx.body);
        match journal.begin_client_key(account, &key, &fp) {
            Ok(ClientKeyState::New) => Taken::Held(KeyGuard { journal, account, key, journaled: false, finished: false }),
            Ok(ClientKeyState::Done(r)) => Taken::Answer(stored(&r)),
            Ok(ClientKeyState::InFlight { .. }) => Taken::Answer(GatewayError::IdempotencyInFlight.into_response()),
            Ok(ClientKeyState::Mismatch) => Taken::Answer(GatewayError::IdempotencyMismatch.into_response()),
            Err(e) => Taken::Answer(GatewayError::Journal(e.to_string()).into_response()),
        }
    }

    /// The key, for the journal entry that carries it.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Its entry is journaled: from here the key stays in flight unless the
    /// entry is voided.
    pub fn journaled(&mut self) {
        self.journaled = true;
    }

    /// Its entry was voided (applied nowhere): the key is released at the end.
    pub fn voided(&mut self) {
        self.journaled = false;
    }

    /// The mutation was answered: that answer is the key's, for a repeat.
    pub async fn finish(mut self, answer: &Answered) {
        self.finished = true;
        let response = crate::chassis::applier::client_response(answer);
        if let Err(e) = self.journal.finish_client_key(self.account, &self.key, response).await {
            // The entry is journaled; the applier records its answer for the key.
            tracing::error!(user = %self.account, "recording the Idempotency-Key's answer: {e}");
        }
    }
}

impl Drop for KeyGuard<'_> {
    /// Not answered: if no journal entry carries the key, it is released
    /// (may be used again); if one does, it stays for that entry's applier.
    fn drop(&mut self) {
        if !self.finished && !self.journaled {
            self.journal.release_client_key(self.account, &self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, Method};

    fn ctx(key: &str) -> Ctx {
        let mut headers = HeaderMap::new();
        headers.insert("idempotency-key", HeaderValue::from_str(key).unwrap());
        Ctx {
            client: None,
            method: Method::POST,
            path: "/api/v1/walls".into(),
            path_and_query: "/api/v1/walls".into(),
            query: None,
            headers,
            class: crate::config::Classified { kind: crate::config::RouteKind::Mutate, id_block: 1, rule_index: None },
            body: bytes::Bytes::from_static(b"{}"),
            cfg: std::sync::Arc::new(
                crate::config::Config::parse(
                    include_str!("../../../../gateway.toml"),
                    std::path::Path::new("gateway.toml"),
                    crate::config::FileChecks::Skip,
                )
                .unwrap(),
            ),
        }
    }

    fn held(t: Taken<'_>) -> KeyGuard<'_> {
        match t {
            Taken::Held(k) => k,
            _ => panic!("the key was not taken"),
        }
    }

    fn state(journal: &Journal, ctx: &Ctx) -> ClientKeyState {
        let fp = journal.request_fingerprint(ctx.method.as_str(), &ctx.path_and_query, &ctx.body);
        let s = journal.begin_client_key("alice", "k", &fp).unwrap();
        if s == ClientKeyState::New {
            journal.release_client_key("alice", "k");
        }
        s
    }

    #[test]
    fn a_key_is_released_when_its_request_ends_before_journaling_and_kept_once_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _seq) = crate::journal::open(dir.path(), crate::journal::JournalConfig::default()).unwrap();
        let c = ctx("k");
        // Taken, then dropped (refused before the journal, or the client hung up).
        let guard = held(KeyGuard::begin(&journal, "alice", &c));
        assert!(matches!(KeyGuard::begin(&journal, "alice", &c), Taken::Answer(_)), "in flight while held");
        drop(guard);
        assert_eq!(state(&journal, &c), ClientKeyState::New, "released: the key may be used again");
        // Journaled: it stays for the entry's applier.
        let mut guard = held(KeyGuard::begin(&journal, "alice", &c));
        guard.journaled();
        drop(guard);
        assert!(matches!(state(&journal, &c), ClientKeyState::InFlight { .. }), "kept in flight for the applier");
    }

    #[test]
    fn a_voided_entry_releases_its_key_and_a_bad_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _seq) = crate::journal::open(dir.path(), crate::journal::JournalConfig::default()).unwrap();
        let c = ctx("k");
        let mut guard = held(KeyGuard::begin(&journal, "alice", &c));
        guard.journaled();
        guard.voided();
        drop(guard);
        assert_eq!(state(&journal, &c), ClientKeyState::New);
        let long = "x".repeat(256);
        let Taken::Answer(resp) = KeyGuard::begin(&journal, "alice", &ctx(&long)) else { panic!("a 256-character key is taken") };
        assert_eq!(resp.status(), axum::http::StatusCode::BAD_REQUEST);
    }
}
