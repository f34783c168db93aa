//! Where IDs live, as `gateway.toml` declares them: per route rule (path
//! parameters, request body, answer body, the rows a create makes, the row a
//! delete ends) and per event type. Tables are names the rules choose
//! (`walls`, `screens`, …): an ID is translated only within its table.
//!
//! Nothing here knows the reference chassis' API: a vendor whose API puts its
//! IDs elsewhere writes other rules.

use std::sync::Arc;

use super::pointer::WildPointer;

/// A table's name as the rules write it.
pub type Table = Arc<str>;

/// One place in a JSON body that holds IDs of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdAt {
    pub at: WildPointer,
    pub table: Table,
}

/// What one route rule says about IDs (`path_ids`, `body_ids`, `answer_ids`,
/// `creates`, `forgets`). Empty for a rule that names none: its requests and
/// answers are passed as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteIds {
    /// Path parameters (`{id}`) that hold an ID, and its table.
    pub path: Vec<(String, Table)>,
    /// Places in the request body.
    pub body: Vec<IdAt>,
    /// Places in the answer body (besides `creates`, which are places in the
    /// answer too).
    pub answer: Vec<IdAt>,
    /// Mutate rules: the rows the request creates as its answer shows them,
    /// in the chassis contract's creation order (each place's matches in
    /// document order): the k-th ID found is the row that took the k-th ID
    /// of the request's block.
    pub creates: Vec<IdAt>,
    /// Mutate rules: the path parameter (one of `path`) whose row is gone
    /// once the chassis answers 2xx (or 404): its map entry is dropped.
    pub forgets: Option<String>,
}

impl RouteIds {
    pub fn is_empty(&self) -> bool {
        self.path.is_empty() && self.body.is_empty() && self.answer.is_empty() && self.creates.is_empty() && self.forgets.is_none()
    }

    /// The table of path parameter `name`, if it holds an ID.
    pub fn param_table(&self, name: &str) -> Option<&Table> {
        self.path.iter().find(|(p, _)| p == name).map(|(_, t)| t)
    }

    /// Every place in the answer that holds an ID: `creates`, then `answer`.
    pub fn answer_places(&self) -> impl Iterator<Item = &IdAt> {
        self.creates.iter().chain(self.answer.iter())
    }
}

/// One `[[event]]` rule: the IDs in the `data` of events of one `type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventIds {
    pub event_type: String,
    /// Places in the event's `data`.
    pub data: Vec<IdAt>,
    /// The line of the rule's `[[event]]` header.
    pub line: usize,
}
