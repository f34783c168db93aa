//! A JSON pointer (RFC 6901) in which a segment `*` stands for every element
//! of an array: `/screens/*/id` is the `id` of each screen, `/*/id` the `id`
//! of each row of a listing, `/plan_ids/*` each id of a list. The places IDs
//! live are written this way in `gateway.toml`.
//!
//! Resolving a pointer never fails: a place the document does not have (a
//! missing key, an index past the end, `*` over something that is not an
//! array) simply matches nothing.

use std::fmt;

use serde_json::Value;

/// One step of a [`WildPointer`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// An object key, or an array index when the value there is an array and
    /// the key is a number (RFC 6901).
    Key(String),
    /// `*`: every element of an array.
    Each,
}

/// A parsed pointer; `""` is the whole document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WildPointer {
    text: String,
    steps: Vec<Step>,
}

impl WildPointer {
    /// Parses `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<WildPointer, String> {
        if text.is_empty() {
            return Ok(WildPointer { text: String::new(), steps: Vec::new() });
        }
        let Some(body) = text.strip_prefix('/') else {
            return Err("a JSON pointer starts with '/' (or is \"\" for the whole document)".into());
        };
        let mut steps = Vec::new();
        for raw in body.split('/') {
            if raw == "*" {
                steps.push(Step::Each);
                continue;
            }
            // ~1 is '/', ~0 is '~'; any other '~' is malformed (RFC 6901 §3).
            let mut key = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    key.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => key.push('~'),
                    Some('1') => key.push('/'),
                    _ => return Err(format!("{raw:?} has a '~' not followed by 0 or 1 (write ~0 for '~', ~1 for '/')")),
                }
            }
            steps.push(Step::Key(key));
        }
        Ok(WildPointer { text: text.to_string(), steps })
    }

    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Calls `f` on every value the pointer reaches in `doc`, in document
    /// order (array elements first to last).
    pub fn for_each_mut(&self, doc: &mut Value, f: &mut dyn FnMut(&mut Value)) {
        walk_mut(&self.steps, doc, f);
    }

    /// `doc` with every value any of `places` reaches set to `null`: what two
    /// documents are compared by when those places may differ.
    pub fn null_out(places: &[WildPointer], doc: &mut Value) {
        for place in places {
            place.for_each_mut(doc, &mut |v| *v = Value::Null);
        }
    }

    /// Every value the pointer reaches in `doc`, in document order.
    pub fn find<'v>(&self, doc: &'v Value) -> Vec<&'v Value> {
        let mut out = Vec::new();
        walk(&self.steps, doc, &mut out);
        out
    }
}

impl fmt::Display for WildPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn child_mut<'v>(v: &'v mut Value, key: &str) -> Option<&'v mut Value> {
    match v {
        Value::Object(map) => map.get_mut(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    }
}

fn child<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    }
}

fn walk_mut(steps: &[Step], v: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    let Some((first, rest)) = steps.split_first() else {
        f(v);
        return;
    };
    match first {
        Step::Key(k) => {
            if let Some(c) = child_mut(v, k) {
                walk_mut(rest, c, f);
            }
        }
        Step::Each => {
            if let Value::Array(items) = v {
                for item in items {
                    walk_mut(rest, item, f);
                }
            }
        }
    }
}

fn walk<'v>(steps: &[Step], v: &'v Value, out: &mut Vec<&'v Value>) {
    let Some((first, rest)) = steps.split_first() else {
        out.push(v);
        return;
    };
    match first {
        Step::Key(k) => {
            if let Some(c) = child(v, k) {
                walk(rest, c, out);
            }
        }
        Step::Each => {
            if let Value::Array(items) = v {
                for item in items {
                    walk(rest, item, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(text: &str) -> WildPointer {
        WildPointer::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn a_star_reaches_every_element_in_order_and_a_missing_place_nothing() {
        let doc = json!({"id": 1, "screens": [{"id": 2}, {"id": 3}, {"x": 4}], "a/b": {"~": 5}});
        assert_eq!(p("/screens/*/id").find(&doc), vec![&json!(2), &json!(3)]);
        assert_eq!(p("/screens/1/id").find(&doc), vec![&json!(3)]);
        assert_eq!(p("/a~1b/~0").find(&doc), vec![&json!(5)]);
        assert!(p("/nope/*/id").find(&doc).is_empty());
        assert!(p("/id/*").find(&doc).is_empty(), "* over a number matches nothing");
        assert_eq!(p("").find(&doc).len(), 1);
        let list = json!([{"id": 7, "plan_ids": [8, 9]}, {"id": 10, "plan_ids": []}]);
        assert_eq!(p("/*/plan_ids/*").find(&list), vec![&json!(8), &json!(9)]);
        let mut doc = list;
        p("/*/id").for_each_mut(&mut doc, &mut |v| *v = json!(v.as_u64().unwrap_or(0) * 100));
        assert_eq!(doc, json!([{"id": 700, "plan_ids": [8, 9]}, {"id": 1000, "plan_ids": []}]));
    }

    #[test]
    fn malformed_pointers_are_refused_with_the_reason() {
        for bad in ["id", "/a~2", "/a~"] {
            assert!(WildPointer::parse(bad).is_err(), "{bad:?}");
        }
    }
}
