//! What a mutation looks like before ([`Draft`]) and after ([`Entry`]) the sequencer.
//!
//! An [`Entry`] is immutable and shared as `Arc<Entry>`: the sequencer, the
//! broadcast to the appliers and the request that created it all hold the same
//! allocation, so the body is never copied on its way to the two chassis.

use bytes::Bytes;

/// Ids are handed out below this bound: 2^53 is the largest integer a JSON number
/// (an IEEE double in browsers and most JSON libraries) represents exactly, and ids
/// travel in JSON bodies.
pub const MAX_ID: u64 = 1 << 53;

/// A mutation the front accepted, not yet ordered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Draft {
    pub method: String,
    /// The request target as the client sent it (`/walls/3/windows?x=1`).
    pub path_and_query: String,
    /// The headers that matter for replay (content type, the chassis session is added
    /// by the applier, not stored here).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// How many fresh ids the route rule asks for; 0 means no `X-Id-Block`.
    pub id_block: u32,
    /// The gateway account the request was made as (appliers use its backend session).
    pub account: String,
    /// The client's `Idempotency-Key`, when it sent one (see
    /// [`crate::journal::Journal::begin_client_key`]).
    pub client_key: Option<String>,
    /// Store the body sealed ([`BodyFormat::Sealed`]): it carries a secret, or
    /// the gateway cannot tell (see `RouteTable::body_is_secret`).
    pub seal_body: bool,
}

/// How an entry's body is stored (the `body_format` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFormat {
    /// As the client sent it (entries without a secret, and every entry written
    /// before bodies were sealed).
    #[default]
    Plain,
    /// Sealed with the journal's key (`journal.key`), bound to the gateway id and
    /// the seq: open it with [`crate::journal::Journal::body`].
    Sealed,
}

impl BodyFormat {
    /// The value stored in the `body_format` column.
    pub fn code(self) -> u8 {
        match self {
            BodyFormat::Plain => 0,
            BodyFormat::Sealed => 1,
        }
    }

    pub fn from_code(code: u8) -> Option<BodyFormat> {
        match code {
            0 => Some(BodyFormat::Plain),
            1 => Some(BodyFormat::Sealed),
            _ => None,
        }
    }
}

/// A block of ids `[base, base + count)`, sent to both chassis as `X-Id-Block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdBlock {
    pub base: u64,
    pub count: u64,
}

impl IdBlock {
    /// One past the last id of the block.
    pub fn end(&self) -> u64 {
        self.base + self.count
    }

    /// The `X-Id-Block` header value: `<base>+<count>`.
    pub fn header_value(&self) -> String {
        format!("{}+{}", self.base, self.count)
    }
}

/// A mutation with its place in the one order both chassis apply, durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1, 2, 3, … with no gaps, in commit order.
    pub seq: u64,
    pub method: String,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    /// The body as stored: sealed when `body_format` says so. What a chassis is
    /// sent is [`crate::journal::Journal::body`].
    pub body: Bytes,
    pub body_format: BodyFormat,
    /// `None` when the draft asked for no ids.
    pub id_block: Option<IdBlock>,
    pub account: String,
    pub client_key: Option<String>,
    /// The journal's incarnation when it was appended (random per opening of the
    /// journal; `None` for entries appended before schema version 3): part of
    /// [`Entry::chassis_idempotency_key`].
    pub epoch: Option<u64>,
}

impl Entry {
    /// The `X-Id-Block` header value (`<base>+<count>`), when the entry has a block.
    pub fn id_block_header(&self) -> Option<String> {
        self.id_block.map(|b| b.header_value())
    }

    /// The bytes this entry counts for under `max_bytes`: method, path and query,
    /// header names and values, body, account and client key (what the journal
    /// stores of it, without SQLite's own overhead).
    pub fn stored_bytes(&self) -> u64 {
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        let client_key = self.client_key.as_ref().map_or(0, String::len);
        (self.method.len() + self.path_and_query.len() + headers + self.body.len() + self.account.len() + client_key) as u64
    }

    /// The `Idempotency-Key` sent to a chassis with this entry:
    /// `<gateway id>.<epoch, hex>/<seq>` (`<gateway id>/<seq>` for an entry
    /// appended before epochs were stored). The same on every replay, also after
    /// a restart, and on both chassis, so a chassis that remembers keys applies a
    /// replayed entry once; never the same for two entries, even if a seq is
    /// counted again (a state directory restored from an older copy), so a
    /// chassis never answers a new entry with an old one's remembered answer.
    pub fn chassis_idempotency_key(&self, gateway_id: &str) -> String {
        match self.epoch {
            Some(epoch) => format!("{gateway_id}.{epoch:x}/{}", self.seq),
            None => format!("{gateway_id}/{}", self.seq),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_formatted_as_the_chassis_expects() {
        let e = Entry {
            seq: 42,
            method: "POST".into(),
            path_and_query: "/walls".into(),
            headers: vec![],
            body: Bytes::new(),
            body_format: BodyFormat::Plain,
            id_block: Some(IdBlock { base: 7000, count: 8 }),
            account: "admin".into(),
            client_key: None,
            epoch: None,
        };
        assert_eq!(e.id_block_header().as_deref(), Some("7000+8"));
        assert_eq!(e.chassis_idempotency_key("0a1b"), "0a1b/42", "an entry from before epochs keeps its key");
        let later = Entry { epoch: Some(0xbeef), ..e.clone() };
        assert_eq!(later.chassis_idempotency_key("0a1b"), "0a1b.beef/42");
        let again = Entry { epoch: Some(0xf00d), ..e.clone() };
        assert_ne!(again.chassis_idempotency_key("0a1b"), later.chassis_idempotency_key("0a1b"), "the same seq in another epoch");
        assert_eq!(Entry { id_block: None, ..e }.id_block_header(), None);
    }
}
