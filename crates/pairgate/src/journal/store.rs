//! Every SQL statement the journal runs after `open`, one small function each, so
//! the sequencer and the query side read as logic rather than SQL.
//!
//! Functions return `rusqlite::Result`: the sequencer needs the raw error to fail a
//! whole batch; the query side wraps it in [`super::JournalError::Storage`].

use std::sync::Arc;

use bytes::Bytes;
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::entry::{BodyFormat, Entry, IdBlock};
use super::sql_u64::{opt, U64};
use super::ClientResponse;

const ENTRY_COLUMNS: &str = "seq, method, path_and_query, headers, body, id_base, id_count, account, client_key, body_format, epoch";

fn encode_headers(headers: &[(String, String)]) -> rusqlite::Result<String> {
    serde_json::to_string(headers).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn decode_headers(row: &Row<'_>, idx: usize) -> rusqlite::Result<Vec<(String, String)>> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<Entry> {
    let base = opt(row.get(5)?);
    let count = opt(row.get(6)?);
    Ok(Entry {
        seq: row.get::<_, U64>(0)?.0,
        method: row.get(1)?,
        path_and_query: row.get(2)?,
        headers: decode_headers(row, 3)?,
        body: Bytes::from(row.get::<_, Vec<u8>>(4)?),
        body_format: {
            let code: u8 = row.get(9)?;
            BodyFormat::from_code(code)
                .ok_or_else(|| rusqlite::Error::FromSqlConversionFailure(9, Type::Integer, format!("unknown body format {code}").into()))?
        },
        id_block: match (base, count) {
            (Some(base), Some(count)) => Some(IdBlock { base, count }),
            _ => None,
        },
        account: row.get(7)?,
        client_key: row.get(8)?,
        epoch: opt(row.get(10)?),
    })
}

pub(crate) fn insert_entry(conn: &Connection, e: &Entry) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO entries (seq, method, path_and_query, headers, body, id_base, id_count, account, client_key, body_format, epoch)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    stmt.execute(params![
        U64(e.seq),
        e.method,
        e.path_and_query,
        encode_headers(&e.headers)?,
        &e.body[..],
        e.id_block.map(|b| U64(b.base)),
        e.id_block.map(|b| U64(b.count)),
        e.account,
        e.client_key,
        e.body_format.code(),
        e.epoch.map(U64),
    ])?;
    Ok(())
}

/// `(seq, Entry::stored_bytes)` of every stored entry (void ones too), in seq order:
/// what the writer needs at start to apply `max_bytes`.
pub(crate) fn entry_sizes(conn: &Connection) -> rusqlite::Result<Vec<(u64, u64)>> {
    let mut stmt = conn.prepare(
        "SELECT seq, length(CAST(method AS BLOB)) + length(CAST(path_and_query AS BLOB)) + length(body)
                + length(CAST(account AS BLOB)) + coalesce(length(CAST(client_key AS BLOB)), 0), headers
         FROM entries ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| {
        let seq: U64 = r.get(0)?;
        let fixed: i64 = r.get(1)?;
        let headers: usize = decode_headers(r, 2)?.iter().map(|(k, v)| k.len() + v.len()).sum();
        Ok((seq.0, u64::try_from(fixed).unwrap_or(0) + headers as u64))
    })?;
    rows.collect()
}

/// Live (not void) entries after `after`, in seq order, at most `limit`.
pub(crate) fn entries_after(conn: &Connection, after: u64, limit: usize) -> rusqlite::Result<Vec<Arc<Entry>>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE seq > ?1 AND void = 0 ORDER BY seq LIMIT ?2"))?;
    let rows = stmt.query_map(params![U64(after), U64(limit as u64)], |r| entry_from_row(r).map(Arc::new))?;
    rows.collect()
}

/// One live entry.
pub(crate) fn entry(conn: &Connection, seq: u64) -> rusqlite::Result<Option<Entry>> {
    conn.prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE seq = ?1 AND void = 0"))?
        .query_row([U64(seq)], entry_from_row)
        .optional()
}

pub(crate) fn set_void(conn: &Connection, seq: u64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE entries SET void = 1 WHERE seq = ?1")?.execute([U64(seq)])?;
    Ok(())
}

/// Deletes entries with `seq < before`; returns how many.
pub(crate) fn delete_before(conn: &Connection, before: u64) -> rusqlite::Result<u64> {
    let n = conn.prepare_cached("DELETE FROM entries WHERE seq < ?1")?.execute([U64(before)])?;
    Ok(n as u64)
}

pub(crate) fn put_applied(conn: &Connection, chassis: &str, seq: u64) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO applied (chassis, seq) VALUES (?1, ?2) ON CONFLICT (chassis) DO UPDATE SET seq = excluded.seq")?
        .execute(params![chassis, U64(seq)])?;
    Ok(())
}

/// A client idempotency record as stored.
#[derive(Debug)]
pub(crate) struct ClientKeyRow {
    pub(crate) fingerprint: String,
    pub(crate) seq: Option<u64>,
    /// `Some` once the answer is known.
    pub(crate) response: Option<ClientResponse>,
    pub(crate) created_ms: i64,
}

pub(crate) fn client_key(conn: &Connection, account: &str, key: &str) -> rusqlite::Result<Option<ClientKeyRow>> {
    conn.prepare_cached("SELECT fingerprint, seq, status, headers, body, created_ms FROM client_keys WHERE account = ?1 AND key = ?2")?
        .query_row(params![account, key], |r| {
            let status: Option<u16> = r.get(2)?;
            let response = match status {
                None => None,
                Some(status) => Some(ClientResponse {
                    status,
                    headers: match r.get::<_, Option<String>>(3)? {
                        None => Vec::new(),
                        Some(_) => decode_headers(r, 3)?,
                    },
                    body: Bytes::from(r.get::<_, Option<Vec<u8>>>(4)?.unwrap_or_default()),
                }),
            };
            Ok(ClientKeyRow { fingerprint: r.get(0)?, seq: opt(r.get(1)?), response, created_ms: r.get(5)? })
        })
        .optional()
}

/// Records that the request with this key became entry `seq` (answer not known yet).
/// Replaces an expired record with the same key.
pub(crate) fn put_client_key_in_flight(
    conn: &Connection,
    account: &str,
    key: &str,
    fingerprint: &str,
    seq: u64,
    now_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO client_keys (account, key, fingerprint, seq, status, headers, body, created_ms)
         VALUES (?1, ?2, ?3, ?4, NULL, NULL, NULL, ?5)
         ON CONFLICT (account, key) DO UPDATE SET
             fingerprint = excluded.fingerprint, seq = excluded.seq, status = NULL, headers = NULL, body = NULL,
             created_ms = excluded.created_ms",
    )?
    .execute(params![account, key, fingerprint, U64(seq), now_ms])?;
    Ok(())
}

/// Stores the answer. With `fingerprint` (the request is known in memory) the record is
/// created or replaced; without, only an existing record is completed. Returns whether
/// a record now holds the answer.
pub(crate) fn put_client_key_done(
    conn: &Connection,
    account: &str,
    key: &str,
    fingerprint: Option<(&str, Option<u64>)>,
    response: &ClientResponse,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let headers = encode_headers(&response.headers)?;
    let n = match fingerprint {
        Some((fingerprint, seq)) => conn
            .prepare_cached(
                "INSERT INTO client_keys (account, key, fingerprint, seq, status, headers, body, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (account, key) DO UPDATE SET
                     fingerprint = excluded.fingerprint, seq = excluded.seq, status = excluded.status,
                     headers = excluded.headers, body = excluded.body, created_ms = excluded.created_ms",
            )?
            .execute(params![account, key, fingerprint, seq.map(U64), response.status, headers, &response.body[..], now_ms])?,
        None => conn
            .prepare_cached("UPDATE client_keys SET status = ?3, headers = ?4, body = ?5 WHERE account = ?1 AND key = ?2")?
            .execute(params![account, key, response.status, headers, &response.body[..]])?,
    };
    Ok(n > 0)
}

/// Forgets records of requests that became entry `seq` (it was dropped: certainly not
/// applied, so a retry must be treated as new).
pub(crate) fn delete_client_keys_of_seq(conn: &Connection, seq: u64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM client_keys WHERE seq = ?1")?.execute([U64(seq)])?;
    Ok(())
}

/// Expiry: drops records created before `cutoff_ms`, then the oldest beyond `max`.
/// Returns how many were dropped.
pub(crate) fn expire_client_keys(conn: &Connection, cutoff_ms: i64, max: u64) -> rusqlite::Result<u64> {
    let mut n = conn.prepare_cached("DELETE FROM client_keys WHERE created_ms < ?1")?.execute([cutoff_ms])? as u64;
    let count = conn.prepare_cached("SELECT count(*) FROM client_keys")?.query_row([], |r| r.get::<_, U64>(0))?.0;
    if count > max {
        n += conn
            .prepare_cached("DELETE FROM client_keys WHERE rowid IN (SELECT rowid FROM client_keys ORDER BY created_ms LIMIT ?1)")?
            .execute([U64(count - max)])? as u64;
    }
    Ok(n)
}
