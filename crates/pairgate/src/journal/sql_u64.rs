//! [`U64`]: unsigned integers in and out of SQLite, checked.
//!
//! SQLite integers are `i64`; seqs, ids and positions are `u64` here. rusqlite only
//! converts `u64` behind a cargo feature this workspace does not enable, so this
//! newtype does it, failing (instead of wrapping) on a negative or too large value.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct U64(pub(crate) u64);

impl ToSql for U64 {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        let v = i64::try_from(self.0).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(ToSqlOutput::from(v))
    }
}

impl FromSql for U64 {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let v = i64::column_result(value)?;
        u64::try_from(v).map(U64).map_err(|_| FromSqlError::OutOfRange(v))
    }
}

/// Reads an optional unsigned column.
pub(crate) fn opt(v: Option<U64>) -> Option<u64> {
    v.map(|u| u.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_negative() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let v: U64 = conn.query_row("SELECT ?1", [U64(1 << 53)], |r| r.get(0)).unwrap();
        assert_eq!(v, U64(1 << 53));
        assert!(conn.query_row("SELECT -1", [], |r| r.get::<_, U64>(0)).is_err());
        assert!(conn.query_row("SELECT ?1", [U64(u64::MAX)], |r| r.get::<_, U64>(0)).is_err());
    }
}
