//! Bulk rows for a campaign's setup: tens of thousands of IP sources in both
//! chassis, so that every full resync the campaign forces (`wipe_chassis`,
//! `restore_old_copy`, `direct_write`) moves real data.
//!
//! Creating them through the gateway one by one would take far too long for
//! CI (≈1.4k mutations/s). Instead, before the gateway starts: export chassis
//! a (`GET /_sim/export`: any firmware), append the rows to its `sources` table in the
//! document's own format (`crates/chassis-sim/src/db.rs`: per table
//! `{"next_id", "rows"}`; ids from the table's `next_id` on, and `next_id`
//! moved past them), and import that one document into both chassis
//! (`PUT /_sim/import`, as admin, directly). The gateway's first pairing
//! then sees equal digests (no resync at start) and raises its id counter
//! above the bulk ids like above any other.
//!
//! Nobody else touches these rows: the clients own sources 13..16 only, and
//! the checks compare the bulk rows only between the two chassis (checks a
//! and c), never with the clients' model — which is why `direct_write` may
//! rename one of them behind the gateway's back.

use std::ops::Range;
use std::time::Duration;

use serde_json::{json, Value};

use crate::chassis_proc::SimProcess;
use crate::http::{Http, Sent};
use crate::site::NAMES;

/// The most bulk rows a campaign loads: ~100 bytes each in the export, so
/// about 100 MB, well under the chassis' import limit (`max_import`, 256 MiB).
pub const MAX_BULK_ROWS: usize = 1_000_000;

/// How long one export or import of the bulk document may take (a debug
/// chassis imports 30k rows in ~2 s on an idle machine).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);

/// Append `n` IP sources to the `sources` table of an export document, from
/// the table's `next_id` on, and move `next_id` past them. Returns their ids.
pub fn add_sources(doc: &mut Value, n: usize) -> Result<Range<u64>, String> {
    append_sources(
        doc,
        n,
        |id| json!({"id": id, "name": format!("bulk-{id}"), "kind": "ip", "url": format!("rtsp://bulk-{id}.invalid/stream"), "builtin": false}),
    )
}

/// [`add_sources`] with the rows made by `row` (given each id). The end-to-end
/// tests' large states ([`crate::pair::load_rows`]) are made this way too.
pub fn append_sources(doc: &mut Value, n: usize, row: impl Fn(u64) -> Value) -> Result<Range<u64>, String> {
    if n > MAX_BULK_ROWS {
        return Err(format!("{n} bulk rows: at most {MAX_BULK_ROWS}"));
    }
    let table = doc["tables"].get_mut("sources").ok_or("the export has no sources table")?;
    let first = table["next_id"].as_u64().filter(|&n| n > 0).ok_or("the sources table has no next_id")?;
    let rows = table["rows"].as_array_mut().ok_or("the sources table has no rows array")?;
    let ids = first..first + n as u64;
    if rows.iter().any(|r| r["id"].as_u64().is_some_and(|id| ids.contains(&id))) {
        return Err(format!("the sources table already holds ids in {ids:?} (next_id {first})"));
    }
    rows.reserve(n);
    rows.extend(ids.clone().map(row));
    table["next_id"] = json!(ids.end);
    Ok(ids)
}

/// An admin client straight to one chassis, for the (large) transfers.
async fn admin(c: &SimProcess, cert: &std::path::Path) -> Result<Http, String> {
    let mut http = Http::trusting(&c.base, cert, TRANSFER_TIMEOUT)?;
    http.login("admin", "admin", true).await?;
    Ok(http)
}

/// Load `n` bulk sources into both chassis (running, no gateway yet): export
/// a, add the rows, import the document into both, and check that both
/// digests are then equal. Returns the bulk rows' ids.
pub async fn load(chassis: &[SimProcess; 2], certs: &[std::path::PathBuf; 2], n: usize) -> Result<Range<u64>, String> {
    let a = admin(&chassis[0], &certs[0]).await?;
    let mut doc = match a.get("/_sim/export").await {
        Sent::Answer { status: 200, body } => body,
        other => return Err(format!("bulk rows: export of chassis a: {}", other.describe())),
    };
    let ids = add_sources(&mut doc, n)?;
    let mut digests = Vec::new();
    for (i, c) in chassis.iter().enumerate() {
        let http = admin(c, &certs[i]).await?;
        let r = http.call("PUT", "/_sim/import", Some(&doc), &[]).await;
        match &r {
            Sent::Answer { status: 200, body } if body["counts"]["sources"].as_u64().is_some() => {}
            other => return Err(format!("bulk rows: import into chassis {}: {}", NAMES[i], other.describe())),
        }
        // The import kept the admin account (same user row), and the session with it.
        match http.get("/_sim/digest").await {
            Sent::Answer { status: 200, body } => digests.push(body["digest"].clone()),
            other => return Err(format!("bulk rows: digest of chassis {}: {}", NAMES[i], other.describe())),
        }
    }
    if digests.len() != 2 || digests[0] != digests[1] || !digests[0].is_string() {
        return Err(format!("bulk rows: the two chassis' digests differ after the same import: {digests:?}"));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_sources_follow_the_counter_and_move_it() {
        let mut doc =
            json!({"format": "chassis-sim/export/1", "tables": {"sources": {"next_id": 17, "rows": [{"id": 16, "name": "Input 16"}]}}});
        let ids = add_sources(&mut doc, 3).expect("added");
        assert_eq!(ids, 17..20);
        assert_eq!(doc["tables"]["sources"]["next_id"], 20);
        let rows = doc["tables"]["sources"]["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[3]["id"], 19);
        assert_eq!(rows[3]["kind"], "ip");
        assert_eq!(rows[3]["name"], "bulk-19");
        assert!(add_sources(&mut json!({"tables": {}}), 1).is_err());
        assert!(add_sources(&mut json!({"tables": {"sources": {"next_id": 2, "rows": [{"id": 3}]}}}), 5).is_err());
    }
}
