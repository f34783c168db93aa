//! Each chassis' map, client ID ↔ its own ID, per table: in memory for the
//! request path, durable in the journal's database (`journal/id_map.rs`).
//!
//! A change is committed first and then made visible here, so nothing a
//! client was told rests on a mapping a crash could lose. Readers take a
//! short read lock ([`IdMaps::view`]); the event relay, which may see a new
//! row's event before the applier has learned its ID, waits on
//! [`IdMaps::changed`].

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard};
use tokio::sync::watch;

use super::rules::Table;
use crate::journal::{Journal, JournalError, MapChange};

/// One table's entries on one chassis.
#[derive(Debug, Default, Clone)]
struct TableMap {
    to_native: HashMap<u64, u64>,
    to_client: HashMap<u64, u64>,
}

/// One chassis' map.
#[derive(Debug, Default, Clone)]
pub struct ChassisMap {
    tables: HashMap<Table, TableMap>,
}

impl ChassisMap {
    /// The chassis' ID for client ID `client` of `table`.
    pub fn native(&self, table: &str, client: u64) -> Option<u64> {
        self.tables.get(table)?.to_native.get(&client).copied()
    }

    /// The client ID of the chassis' `native` row of `table`.
    pub fn client(&self, table: &str, native: u64) -> Option<u64> {
        self.tables.get(table)?.to_client.get(&native).copied()
    }

    /// Entries over all tables.
    pub fn len(&self) -> usize {
        self.tables.values().map(|t| t.to_native.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every (table, client, native), sorted: for status and tests.
    pub fn rows(&self) -> Vec<(Table, u64, u64)> {
        let mut out: Vec<(Table, u64, u64)> =
            self.tables.iter().flat_map(|(t, m)| m.to_native.iter().map(move |(&c, &n)| (t.clone(), c, n))).collect();
        out.sort();
        out
    }

    fn put(&mut self, table: &Table, client: u64, native: u64) {
        let m = self.tables.entry(table.clone()).or_default();
        if let Some(old_native) = m.to_native.insert(client, native) {
            if old_native != native {
                m.to_client.remove(&old_native);
            }
        }
        if let Some(old_client) = m.to_client.insert(native, client) {
            if old_client != client {
                m.to_native.remove(&old_client);
            }
        }
    }

    fn forget(&mut self, table: &str, client: u64) {
        if let Some(m) = self.tables.get_mut(table) {
            if let Some(native) = m.to_native.remove(&client) {
                m.to_client.remove(&native);
            }
        }
    }

    /// Applies one change (its chassis already chosen).
    pub fn apply(&mut self, change: &MapChange) {
        match change {
            MapChange::Put { table, client, native, .. } => self.put(table, *client, *native),
            MapChange::Forget { table, client, .. } => self.forget(table, *client),
            MapChange::Replace { rows, .. } => {
                self.tables.clear();
                for (table, client, native) in rows {
                    self.put(table, *client, *native);
                }
            }
        }
    }
}

/// Both chassis' maps.
pub struct IdMaps {
    journal: Journal,
    maps: [RwLock<ChassisMap>; 2],
    /// Bumped after every change is visible.
    version: watch::Sender<u64>,
}

impl IdMaps {
    /// Loads both chassis' maps (`names` in configuration order).
    pub fn load(journal: Journal, names: [&str; 2]) -> Result<IdMaps, JournalError> {
        let mut maps: [ChassisMap; 2] = Default::default();
        for (i, name) in names.iter().enumerate() {
            for (table, client, native) in journal.load_map(name)? {
                maps[i].put(&Table::from(table.as_str()), client, native);
            }
            if !maps[i].is_empty() {
                tracing::info!(chassis = %name, entries = maps[i].len(), "id map loaded");
            }
        }
        let [a, b] = maps;
        Ok(IdMaps { journal, maps: [RwLock::new(a), RwLock::new(b)], version: watch::channel(0).0 })
    }

    /// Chassis `i`'s map, for a moment (do not hold it across an await).
    pub fn view(&self, i: usize) -> RwLockReadGuard<'_, ChassisMap> {
        self.maps[i].read()
    }

    /// Makes `changes` durable, then visible. Nothing changes if the commit fails.
    pub async fn change(&self, changes: Vec<MapChange>) -> Result<(), JournalError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.journal.change_map(changes.clone()).await?;
        for c in &changes {
            if let Some(m) = self.maps.get(c.chassis()) {
                m.write().apply(c);
            }
        }
        self.version.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Changes as they become visible (the value is a counter).
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

/// `Arc<IdMaps>` is what the gateway's parts share.
pub type SharedMaps = Arc<IdMaps>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::JournalConfig;

    #[tokio::test]
    async fn changes_are_durable_before_they_are_seen_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let t: Table = Table::from("walls");
        {
            let (journal, _seq) = crate::journal::open(dir.path(), JournalConfig::default()).unwrap_or_else(|e| panic!("{e}"));
            let maps = IdMaps::load(journal, ["a", "b"]).unwrap_or_else(|e| panic!("{e}"));
            let put = |client, native| MapChange::Put { chassis: 1, table: t.clone(), client, native };
            maps.change(vec![put(1000, 3), put(1001, 4)]).await.unwrap_or_else(|e| panic!("{e}"));
            maps.change(vec![MapChange::Forget { chassis: 1, table: t.clone(), client: 1001 }]).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(maps.view(1).native("walls", 1000), Some(3));
            assert_eq!(maps.view(1).client("walls", 4), None);
            assert!(maps.view(0).is_empty());
            let bad = maps.change(vec![MapChange::Forget { chassis: 2, table: t.clone(), client: 1 }]).await;
            assert!(bad.is_err(), "no third chassis");
        }
        let (journal, _seq) = crate::journal::open(dir.path(), JournalConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let maps = IdMaps::load(journal, ["a", "b"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(maps.view(1).rows(), vec![(t.clone(), 1000, 3)]);
    }

    #[test]
    fn a_reused_chassis_id_moves_to_its_new_row() {
        let t: Table = Table::from("windows");
        let mut m = ChassisMap::default();
        m.apply(&MapChange::Put { chassis: 0, table: t.clone(), client: 50, native: 7 });
        m.apply(&MapChange::Put { chassis: 0, table: t.clone(), client: 60, native: 7 });
        assert_eq!((m.native("windows", 50), m.native("windows", 60), m.client("windows", 7)), (None, Some(7), Some(60)));
        assert_eq!(m.len(), 1);
    }
}
