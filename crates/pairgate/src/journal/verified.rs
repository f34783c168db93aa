//! Each chassis' last verified point: the seq it had applied and the digest it
//! showed the last time its state was proven to be what the journal says it
//! must be (both chassis at one seq, equal `GET /system/digest`).
//!
//! Kept in the `meta` table as `verified/<chassis>` = `{"seq": S, "digest": D}`,
//! written by the writer thread in one transaction (see
//! [`crate::journal::Journal::record_verified`]) and read back at open. After a
//! restart it is what a chassis is checked against before it may be the
//! reference for the other one (docs/design.md's security invariant 4).

use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::JournalError;

/// What a chassis held when it was last verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedPoint {
    /// The last journal seq it had applied.
    pub seq: u64,
    /// Its `GET /system/digest` at that seq.
    pub digest: String,
}

impl VerifiedPoint {
    /// Whether a chassis at `seq` showing `digest` holds exactly this point.
    pub fn is(&self, seq: u64, digest: &str) -> bool {
        self.seq == seq && self.digest == digest
    }
}

pub(crate) fn meta_key(chassis: &str) -> String {
    format!("verified/{chassis}")
}

pub(crate) fn encode(point: &VerifiedPoint) -> String {
    // A struct of a number and a string always serialises.
    serde_json::to_string(point).unwrap_or_default()
}

/// The recorded point of every configured chassis, in configuration order.
pub(crate) fn read_all(conn: &Connection, chassis: &[String]) -> Result<Vec<Option<VerifiedPoint>>, JournalError> {
    chassis
        .iter()
        .map(|name| {
            let text: Option<String> = conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [meta_key(name)], |r| r.get(0))
                .optional()
                .map_err(JournalError::storage)?;
            text.map(|t| {
                serde_json::from_str::<VerifiedPoint>(&t)
                    .map_err(|e| JournalError::Corrupt(format!("meta {}: {e} (in {t:?})", meta_key(name))))
            })
            .transpose()
        })
        .collect()
}
