//! The chassis' state in memory: every table, its auto-increment counter, and
//! the transaction type that handlers change it through.
//!
//! Why an undo log: the contract says a request that fails "changes nothing"
//! (an exhausted id block half-way through a wall's screens, a plan whose
//! third route is invalid). Rather than trusting every handler to validate
//! everything before its first write, every write through [`Tx`] records how
//! to undo itself, and a failed request rolls back. The same log names the
//! rows that changed, which is what [`crate::store`] persists.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::ids::{AutoIncrement, IdBlock};
use crate::model::*;

/// One table: rows by id, and the MySQL-style counter (`highest id ever used + 1`).
#[derive(Clone, Debug)]
pub struct Table<T> {
    pub rows: BTreeMap<u64, T>,
    pub next_id: u64,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { rows: BTreeMap::new(), next_id: 1 }
    }
}

/// A row type that lives in one table of [`Db`].
pub trait Row: Clone + Serialize + DeserializeOwned + Send + 'static {
    const TABLE: TableName;
    fn id(&self) -> u64;
    fn table(db: &Db) -> &Table<Self>;
    fn table_mut(db: &mut Db) -> &mut Table<Self>;
}

macro_rules! tables {
    ($($field:ident : $ty:ty => $variant:ident),* $(,)?) => {
        /// The name of a table, as it appears in exports and in the state file.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum TableName { $($variant),* }

        impl TableName {
            pub const ALL: &'static [TableName] = &[$(TableName::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $(TableName::$variant => stringify!($field)),* }
            }
            pub fn parse(s: &str) -> Option<TableName> {
                match s { $(stringify!($field) => Some(TableName::$variant),)* _ => None }
            }
        }

        /// Every table of the chassis.
        #[derive(Clone, Debug, Default)]
        pub struct Db { $(pub $field: Table<$ty>),* }

        $(impl Row for $ty {
            const TABLE: TableName = TableName::$variant;
            fn id(&self) -> u64 { self.id }
            fn table(db: &Db) -> &Table<Self> { &db.$field }
            fn table_mut(db: &mut Db) -> &mut Table<Self> { &mut db.$field }
        })*

        impl Db {
            /// One row as JSON (None if absent), for persistence.
            pub fn row_json(&self, t: TableName, id: u64) -> Option<Value> {
                match t { $(TableName::$variant => self.$field.rows.get(&id).and_then(|r| serde_json::to_value(r).ok())),* }
            }
            pub fn next_id(&self, t: TableName) -> u64 {
                match t { $(TableName::$variant => self.$field.next_id),* }
            }
            pub fn set_next_id(&mut self, t: TableName, next: u64) {
                match t { $(TableName::$variant => self.$field.next_id = next),* }
            }
            /// Insert a stored row (loading from the state file or an import).
            pub fn load_row(&mut self, t: TableName, data: Value) -> Result<(), String> {
                match t { $(TableName::$variant => {
                    let row: $ty = serde_json::from_value(data).map_err(|e| format!("table {}: {e}", t.as_str()))?;
                    if row.id == 0 || row.id >= MAX_ID {
                        return Err(format!("table {}: id {} out of range", t.as_str(), row.id));
                    }
                    self.$field.rows.insert(row.id, row);
                    Ok(())
                })* }
            }
            /// All rows of a table as JSON, in id order.
            pub fn rows_json(&self, t: TableName) -> Vec<Value> {
                match t { $(TableName::$variant => self.$field.rows.values().filter_map(|r| serde_json::to_value(r).ok()).collect()),* }
            }
            pub fn count(&self, t: TableName) -> usize {
                match t { $(TableName::$variant => self.$field.rows.len()),* }
            }
            pub fn max_id(&self, t: TableName) -> Option<u64> {
                match t { $(TableName::$variant => self.$field.rows.keys().next_back().copied()),* }
            }
        }
    };
}

tables! {
    users: User => Users,
    sources: Source => Sources,
    walls: Wall => Walls,
    screens: Screen => Screens,
    windows: Window => Windows,
    scenes: Scene => Scenes,
    scene_items: SceneItem => SceneItems,
    routes: Route => Routes,
    plans: Plan => Plans,
    schedules: Schedule => Schedules,
    kvm_hosts: KvmHost => KvmHosts,
    kvm_seats: KvmSeat => KvmSeats,
    subordinates: Subordinate => Subordinates,
    cascade_links: CascadeLink => CascadeLinks,
    superior: Superior => Superior,
}

impl TableName {
    /// Whether the table numbers its rows itself. The others are keyed by
    /// what they describe (a route by its output, a cascade link by its
    /// number, the one superior), so their counter never moves.
    pub fn auto_increment(self) -> bool {
        !matches!(self, TableName::Routes | TableName::CascadeLinks | TableName::Superior)
    }
}

/// The export document's format tag.
pub const EXPORT_FORMAT: &str = "chassis-sim/export/1";

impl Db {
    pub fn get<T: Row>(&self, id: u64) -> Option<&T> {
        T::table(self).rows.get(&id)
    }

    pub fn all<T: Row>(&self) -> impl Iterator<Item = &T> {
        T::table(self).rows.values()
    }

    /// The whole state as one JSON document (tables and counters; not
    /// sessions, not idempotency keys: those are added by the caller).
    pub fn export_tables(&self) -> Value {
        let mut tables = Map::new();
        for &t in TableName::ALL {
            tables.insert(t.as_str().to_string(), json!({"next_id": self.next_id(t), "rows": self.rows_json(t)}));
        }
        Value::Object(tables)
    }

    /// Rebuild a Db from an export's `tables` object. Unknown tables are an
    /// error (an export from a newer firmware must not half-import).
    pub fn from_export_tables(tables: &Value) -> Result<Db, String> {
        let obj = tables.as_object().ok_or("\"tables\" must be an object")?;
        let mut db = Db::default();
        for (name, table) in obj {
            let t = TableName::parse(name).ok_or_else(|| format!("unknown table '{name}'"))?;
            let next = table["next_id"].as_u64().ok_or_else(|| format!("table {name}: next_id must be a positive integer"))?;
            if next == 0 || next > MAX_ID {
                return Err(format!("table {name}: next_id {next} out of range"));
            }
            let rows = table["rows"].as_array().ok_or_else(|| format!("table {name}: rows must be an array"))?;
            for row in rows {
                db.load_row(t, row.clone())?;
            }
            // Kept exactly as exported (keyed tables such as routes never
            // move their counter, so "highest id + 1" would be wrong for them).
            db.set_next_id(t, next);
        }
        Ok(db)
    }

    /// What MySQL before 8.0 does when it starts: it never stored its
    /// auto-increment counters, so each is rebuilt as `max(id) + 1` (1 for
    /// an empty table).
    pub fn recount_auto_increment(&mut self) {
        for &t in TableName::ALL.iter().filter(|t| t.auto_increment()) {
            self.set_next_id(t, self.max_id(t).map_or(1, |max| max + 1));
        }
    }

    /// SHA-256 over the canonical export minus what legitimately differs
    /// between two chassis that applied the same requests: password hashes
    /// (random salts). serde_json's maps are sorted, rows are in id order, so
    /// the text is canonical whatever order rows were written in.
    pub fn digest(&self) -> (String, Value) {
        let mut tables = self.export_tables();
        if let Some(rows) = tables["users"]["rows"].as_array_mut() {
            for row in rows {
                if let Some(o) = row.as_object_mut() {
                    o.remove("password_hash");
                }
            }
        }
        let text = serde_json::to_string(&tables).unwrap_or_default();
        let digest = hex::encode(Sha256::digest(text.as_bytes()));
        let mut counts = Map::new();
        for &t in TableName::ALL {
            counts.insert(t.as_str().to_string(), json!(self.count(t)));
        }
        (digest, Value::Object(counts))
    }
}

/// Where a create's ids come from.
#[derive(Clone, Copy, Debug)]
enum IdSource {
    /// Each table's own counter: the MySQL behaviour, and the defect.
    Auto(AutoIncrement),
    /// `X-Id-Block`: the next id of the block, whatever the table.
    Block { next: u64, end: u64, size: u64 },
}

type Undo = Box<dyn FnOnce(&mut Db) + Send>;

/// An event to publish once the change is committed.
#[derive(Clone, Debug)]
pub struct PendingEvent {
    pub kind: String,
    pub data: Value,
}

/// A change in progress. Writes go through here; dropping it without
/// [`Tx::finish`] is a bug, so callers either finish or [`Tx::rollback`].
pub struct Tx<'a> {
    pub db: &'a mut Db,
    undo: Vec<Undo>,
    dirty: BTreeSet<(TableName, u64)>,
    counters: BTreeSet<TableName>,
    ids: IdSource,
    pub events: Vec<PendingEvent>,
    pub effects: Vec<crate::cascade::Effect>,
}

/// What a committed transaction changed.
pub struct Changes {
    pub rows: BTreeSet<(TableName, u64)>,
    pub counters: BTreeSet<TableName>,
    pub(crate) undo: Vec<Undo>,
}

impl Changes {
    /// Undo a finished change (the state file refused it).
    pub fn revert(self, db: &mut Db) {
        for u in self.undo.into_iter().rev() {
            u(db);
        }
    }
}

impl<'a> Tx<'a> {
    pub fn new(db: &'a mut Db, block: Option<IdBlock>, auto: AutoIncrement) -> Tx<'a> {
        let ids = match block {
            Some(b) => IdSource::Block { next: b.base, end: b.base + b.count, size: b.count },
            None => IdSource::Auto(auto),
        };
        Tx { db, undo: Vec::new(), dirty: BTreeSet::new(), counters: BTreeSet::new(), ids, events: Vec::new(), effects: Vec::new() }
    }

    pub fn get<T: Row>(&self, id: u64) -> Option<&T> {
        self.db.get(id)
    }

    pub fn must<T: Row>(&self, kind: &'static str, id: u64) -> ApiResult<T> {
        self.db.get::<T>(id).cloned().ok_or(ApiError::not_found(kind, id))
    }

    pub fn all<T: Row>(&self) -> impl Iterator<Item = &T> {
        self.db.all::<T>()
    }

    /// Create a row with the next id: from the request's block if it has one,
    /// else from the table's auto-increment counter. In `mysql57` mode an id
    /// from the counter is spent the moment it is taken: if this insert or
    /// anything after it in the request fails, the counter stays past it.
    pub fn create<T: Row>(&mut self, build: impl FnOnce(u64) -> T) -> ApiResult<T> {
        let id = match &mut self.ids {
            IdSource::Auto(AutoIncrement::Exact) => T::table(self.db).next_id,
            IdSource::Auto(AutoIncrement::Mysql57) => {
                let id = T::table(self.db).next_id;
                self.move_counter::<T>(id.saturating_add(1).min(MAX_ID), false);
                id
            }
            IdSource::Block { next, end, size } => {
                if *next >= *end {
                    return Err(ApiError::IdBlockExhausted(*size));
                }
                let id = *next;
                *next += 1;
                id
            }
        };
        if id >= MAX_ID {
            return Err(ApiError::invalid("id_space_exhausted", format!("table {} has no ids left below 2^53", T::TABLE.as_str())));
        }
        if T::table(self.db).rows.contains_key(&id) {
            return Err(ApiError::IdInUse { table: T::TABLE.as_str(), id });
        }
        let row = build(id);
        self.move_counter::<T>(id + 1, true);
        self.put(row.clone());
        Ok(row)
    }

    /// A create refused by a unique key (a taken username, KVM port or
    /// output). A MySQL chassis finds the duplicate while inserting, when the
    /// `rows` refused or already inserted rows of `T` have taken their ids:
    /// in `mysql57` mode those ids are spent. Returns `err`, to fail with.
    pub fn refused_insert<T: Row>(&mut self, rows: u64, err: ApiError) -> ApiError {
        if let IdSource::Auto(AutoIncrement::Mysql57) = self.ids {
            let next = T::table(self.db).next_id.saturating_add(rows).min(MAX_ID);
            self.move_counter::<T>(next, false);
        }
        err
    }

    /// Insert or replace a row whose id the caller chose (routes, links).
    pub fn put<T: Row>(&mut self, row: T) {
        let id = row.id();
        let old = T::table_mut(self.db).rows.insert(id, row);
        self.undo.push(Box::new(move |db: &mut Db| {
            let rows = &mut T::table_mut(db).rows;
            match old {
                Some(o) => rows.insert(id, o),
                None => rows.remove(&id),
            };
        }));
        self.dirty.insert((T::TABLE, id));
    }

    pub fn delete<T: Row>(&mut self, id: u64) -> Option<T> {
        let old = T::table_mut(self.db).rows.remove(&id)?;
        let keep = old.clone();
        self.undo.push(Box::new(move |db: &mut Db| {
            T::table_mut(db).rows.insert(id, keep);
        }));
        self.dirty.insert((T::TABLE, id));
        Some(old)
    }

    /// Move a table's counter up to `at_least`; `undoable`: a rollback moves
    /// it back (else it stays, as a MySQL counter does).
    fn move_counter<T: Row>(&mut self, at_least: u64, undoable: bool) {
        let table = T::table_mut(self.db);
        if table.next_id < at_least {
            let old = table.next_id;
            table.next_id = at_least;
            if undoable {
                self.undo.push(Box::new(move |db: &mut Db| T::table_mut(db).next_id = old));
            }
            self.counters.insert(T::TABLE);
        }
    }

    pub fn emit(&mut self, kind: &str, data: Value) {
        self.events.push(PendingEvent { kind: kind.to_string(), data });
    }

    pub fn rollback(self) {
        for u in self.undo.into_iter().rev() {
            u(self.db);
        }
    }

    pub fn finish(self) -> (Changes, Vec<PendingEvent>, Vec<crate::cascade::Effect>) {
        (Changes { rows: self.dirty, counters: self.counters, undo: self.undo }, self.events, self.effects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(id: u64) -> Plan {
        Plan { id, name: format!("p{id}"), routes: Vec::new() }
    }

    /// A request that creates a plan and then fails; the plans' counter after it.
    fn failed_create(db: &mut Db, block: Option<IdBlock>, mode: AutoIncrement) -> u64 {
        let mut tx = Tx::new(db, block, mode);
        assert!(tx.create(plan).is_ok());
        tx.rollback();
        assert_eq!(db.count(TableName::Plans), 0, "the row itself is always rolled back");
        db.next_id(TableName::Plans)
    }

    #[test]
    fn a_rolled_back_create_spends_its_auto_id_only_in_mysql57() {
        assert_eq!(failed_create(&mut Db::default(), None, AutoIncrement::Exact), 1);
        assert_eq!(failed_create(&mut Db::default(), None, AutoIncrement::Mysql57), 2);
        // An id from a block is the block's: the counter goes back in both modes.
        let block = Some(IdBlock { base: 50, count: 1 });
        assert_eq!(failed_create(&mut Db::default(), block, AutoIncrement::Exact), 1);
        assert_eq!(failed_create(&mut Db::default(), block, AutoIncrement::Mysql57), 1);
    }

    #[test]
    fn an_auto_id_in_use_is_spent_in_mysql57_so_a_retry_moves_on() {
        let mut db = Db::default();
        db.plans.rows.insert(1, plan(1));
        for (mode, next) in [(AutoIncrement::Exact, 1), (AutoIncrement::Mysql57, 2)] {
            db.plans.next_id = 1;
            let mut tx = Tx::new(&mut db, None, mode);
            assert!(matches!(tx.create(plan), Err(ApiError::IdInUse { id: 1, .. })));
            tx.rollback();
            assert_eq!(db.plans.next_id, next, "{mode:?}");
        }
    }

    #[test]
    fn refused_inserts_spend_ids_only_in_mysql57_without_a_block() {
        for (mode, block, next) in [
            (AutoIncrement::Exact, None, 1),
            (AutoIncrement::Mysql57, None, 4),
            (AutoIncrement::Mysql57, Some(IdBlock { base: 9, count: 3 }), 1),
        ] {
            let mut db = Db::default();
            let mut tx = Tx::new(&mut db, block, mode);
            let err = tx.refused_insert::<Plan>(3, ApiError::invalid("x", "refused"));
            assert_eq!(err.code(), "x");
            tx.rollback();
            assert_eq!(db.plans.next_id, next, "{mode:?} {block:?}");
        }
    }

    #[test]
    fn recount_sets_max_id_plus_one_and_leaves_keyed_tables_alone() {
        let mut db = Db::default();
        db.plans.rows.insert(3, plan(3));
        db.plans.rows.insert(7, plan(7));
        db.plans.next_id = 12;
        db.walls.next_id = 5;
        db.routes.rows.insert(9, Route { id: 9, input: 1 });
        db.recount_auto_increment();
        assert_eq!(db.plans.next_id, 8);
        assert_eq!(db.walls.next_id, 1, "an empty table starts again at 1");
        assert_eq!(db.routes.next_id, 1, "a route is keyed by its output: no counter to rebuild");
    }
}
