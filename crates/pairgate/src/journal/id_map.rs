//! The `id_map` table: for each chassis whose firmware cannot be given the
//! IDs clients see, client ID ↔ that chassis' own ID, per table the route
//! rules name (see `crate::ids`). Written only by the writer thread, in the
//! same transactions as everything else, so a map change is as durable as
//! an entry: [`super::Journal::change_map`] returns once it is committed.

use std::sync::Arc;

use rusqlite::{params, Connection};

use super::sql_u64::U64;

/// One change to a chassis' map (chassis by its index in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapChange {
    /// `client` is `native` in `table` on the chassis. Any entry that had
    /// either the same client ID or the same chassis ID in that table goes:
    /// a chassis whose counter went back (MySQL 5.7 after a restart) gives a
    /// deleted row's ID to a new row.
    Put { chassis: usize, table: Arc<str>, client: u64, native: u64 },
    /// The row of `client` is gone from the chassis.
    Forget { chassis: usize, table: Arc<str>, client: u64 },
    /// The chassis' whole map is these (table, client, native) rows: after it
    /// was rebuilt, or when it is first seen.
    Replace { chassis: usize, rows: Vec<(Arc<str>, u64, u64)> },
}

impl MapChange {
    pub fn chassis(&self) -> usize {
        match self {
            MapChange::Put { chassis, .. } | MapChange::Forget { chassis, .. } | MapChange::Replace { chassis, .. } => *chassis,
        }
    }
}

/// What a put first removes: the entry of the same client ID, and the entry
/// of the same chassis ID. Two statements, each on its own index: SQLite
/// cannot take an OR of two columns by two indexes in a WITHOUT ROWID table,
/// so one `(client = ? OR native = ?)` scanned the chassis' whole map per
/// row (writing a 30,000-row map took 18 s).
const PUT_CLEARS: [&str; 2] = [
    "DELETE FROM id_map WHERE chassis = ?1 AND tbl = ?2 AND client = ?3",
    "DELETE FROM id_map WHERE chassis = ?1 AND tbl = ?2 AND native = ?3",
];

pub(crate) fn put(conn: &Connection, chassis: &str, table: &str, client: u64, native: u64) -> rusqlite::Result<()> {
    conn.prepare_cached(PUT_CLEARS[0])?.execute(params![chassis, table, U64(client)])?;
    conn.prepare_cached(PUT_CLEARS[1])?.execute(params![chassis, table, U64(native)])?;
    conn.prepare_cached("INSERT INTO id_map (chassis, tbl, client, native) VALUES (?1, ?2, ?3, ?4)")?.execute(params![
        chassis,
        table,
        U64(client),
        U64(native)
    ])?;
    Ok(())
}

pub(crate) fn forget(conn: &Connection, chassis: &str, table: &str, client: u64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM id_map WHERE chassis = ?1 AND tbl = ?2 AND client = ?3")?.execute(params![
        chassis,
        table,
        U64(client)
    ])?;
    Ok(())
}

pub(crate) fn clear(conn: &Connection, chassis: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM id_map WHERE chassis = ?1")?.execute([chassis])?;
    Ok(())
}

/// Applies `change` (for the chassis named `chassis`).
pub(crate) fn apply(conn: &Connection, chassis: &str, change: &MapChange) -> rusqlite::Result<()> {
    match change {
        MapChange::Put { table, client, native, .. } => put(conn, chassis, table, *client, *native),
        MapChange::Forget { table, client, .. } => forget(conn, chassis, table, *client),
        MapChange::Replace { rows, .. } => {
            clear(conn, chassis)?;
            for (table, client, native) in rows {
                put(conn, chassis, table, *client, *native)?;
            }
            Ok(())
        }
    }
}

/// Every (table, client, native) row of a chassis' map.
pub(crate) fn load(conn: &Connection, chassis: &str) -> rusqlite::Result<Vec<(String, u64, u64)>> {
    let mut stmt = conn.prepare_cached("SELECT tbl, client, native FROM id_map WHERE chassis = ?1 ORDER BY tbl, client")?;
    let rows = stmt.query_map([chassis], |r| Ok((r.get::<_, String>(0)?, r.get::<_, U64>(1)?.0, r.get::<_, U64>(2)?.0)))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each of a put's deletes finds its row by an index, all three key
    /// columns used: a scan of the chassis' map per put made writing a large
    /// map quadratic.
    #[test]
    fn a_put_finds_the_entries_it_replaces_by_index_not_by_scanning_the_map() {
        let conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(super::super::schema::ID_MAP_SCHEMA).unwrap_or_else(|e| panic!("{e}"));
        for (sql, column) in PUT_CLEARS.iter().zip(["client", "native"]) {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap_or_else(|e| panic!("{e}"));
            let plan: Vec<String> = stmt
                .query_map(params!["a", "t", 1i64], |r| r.get::<_, String>(3))
                .and_then(|r| r.collect())
                .unwrap_or_else(|e| panic!("{e}"));
            let plan = plan.join(" / ");
            assert!(plan.starts_with("SEARCH") && plan.contains(&format!("{column}=?")), "{sql}: {plan}");
        }
    }

    #[test]
    fn a_put_replaces_whatever_held_either_id_and_replace_starts_over() {
        let conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(super::super::schema::ID_MAP_SCHEMA).unwrap_or_else(|e| panic!("{e}"));
        let t: Arc<str> = Arc::from("windows");
        let ok = |r: rusqlite::Result<()>| r.unwrap_or_else(|e| panic!("{e}"));
        ok(put(&conn, "b", &t, 100, 7));
        ok(put(&conn, "b", &t, 101, 8));
        ok(put(&conn, "a", &t, 100, 100));
        // The chassis' counter went back: native 7 is a new row now.
        ok(put(&conn, "b", &t, 102, 7));
        let rows = load(&conn, "b").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows, vec![("windows".into(), 101, 8), ("windows".into(), 102, 7)]);
        ok(forget(&conn, "b", &t, 101));
        ok(apply(&conn, "a", &MapChange::Replace { chassis: 0, rows: vec![(t.clone(), 5, 9)] }));
        assert_eq!(load(&conn, "a").unwrap_or_else(|e| panic!("{e}")), vec![("windows".into(), 5, 9)]);
        assert_eq!(load(&conn, "b").unwrap_or_else(|e| panic!("{e}")), vec![("windows".into(), 102, 7)]);
    }
}
