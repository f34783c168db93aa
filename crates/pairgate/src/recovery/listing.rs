//! Comparing two chassis whose firmware has no `/system/digest`: the gateway
//! reads the listings `gateway.toml` names (`[[collection]]`, with its own
//! account), writes each in one canonical form (object keys sorted, no
//! spaces) and hashes them all, in file order, each after its path. Two
//! chassis holding the same state give the same hash; so does a chassis
//! against its own last verified point.
//!
//! Which way a comparison goes ([`Method`]) is decided once for both chassis:
//! by the listings as soon as either chassis is known to lack a digest.

use reqwest::Method as HttpMethod;
use serde_json::Value;

use crate::chassis::features::Feature;
use crate::chassis::pair::Pair;
use crate::config::Collection;
use crate::recovery::service::{service_call, ResyncError};
use crate::session::broker::Broker;

/// How two chassis' states are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Each chassis' own `GET /system/digest`.
    Chassis,
    /// The gateway's hash of the `[[collection]]` listings.
    Listing,
}

/// The listings as soon as either chassis is known to have no digest; the
/// chassis' own digest while both have one (or are not known yet).
pub fn method(pair: &Pair) -> Method {
    let lacks = |i: usize| pair.members[i].features.lock().as_ref().is_some_and(|d| !d.has(Feature::Digest));
    if lacks(0) || lacks(1) {
        Method::Listing
    } else {
        Method::Chassis
    }
}

/// What a listing digest starts with: never equal to a chassis' own digest,
/// so a verified point taken one way is not matched the other way.
const PREFIX: &str = "listing:";

/// The hash of chassis `i`'s listings.
pub async fn digest(
    broker: &Broker,
    pair: &Pair,
    i: usize,
    collections: &[Collection],
    timeout: std::time::Duration,
) -> Result<String, ResyncError> {
    let name = &pair.members[i].upstream.name;
    if collections.is_empty() {
        return Err(ResyncError::Call {
            chassis: name.clone(),
            call: "comparing states".into(),
            what: "its firmware has no /system/digest and gateway.toml names no [[collection]] to compare instead".into(),
        });
    }
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    // The ids of each collection without a parameter, for the ones below it.
    let mut ids: Vec<Vec<String>> = vec![Vec::new(); collections.len()];
    for (k, c) in collections.iter().enumerate() {
        let paths: Vec<String> = match &c.each {
            None => vec![c.path.clone()],
            Some(each) => ids[each.parent].iter().map(|id| c.path.replace(&each.param, id)).collect(),
        };
        for path in paths {
            let body = service_call(broker, pair, i, HttpMethod::GET, &path, None, timeout).await?;
            let listing: Value = serde_json::from_slice(&body).map_err(|e| ResyncError::Call {
                chassis: name.clone(),
                call: format!("GET {path}"),
                what: format!("answered 200 with no JSON: {e}"),
            })?;
            if c.each.is_none() {
                ids[k] = row_ids(&listing);
            }
            let mut text = String::new();
            canonical(&listing, &mut text);
            ctx.update(path.as_bytes());
            ctx.update(b"\n");
            ctx.update(text.as_bytes());
            ctx.update(b"\n");
        }
    }
    Ok(format!("{PREFIX}{}", hex::encode(ctx.finish())))
}

/// The `id` of each row of a listing (an array of objects), as text.
fn row_ids(listing: &Value) -> Vec<String> {
    let rows = listing.as_array().map(Vec::as_slice).unwrap_or(&[]);
    rows.iter()
        .filter_map(|r| match &r["id"] {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// `v` in one canonical form: object keys sorted, no spaces; arrays keep
/// their order (it is part of the state: windows bottom to top).
pub fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (n, k) in keys.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(v: &Value) -> String {
        let mut s = String::new();
        canonical(v, &mut s);
        s
    }

    #[test]
    fn the_canonical_form_ignores_key_order_and_spacing_but_not_array_order() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"y": 2, "x": "é"}], "a": null}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":null,"b":[1,{"x":"é","y":2}]}"#).unwrap();
        assert_eq!(text(&a), text(&b));
        assert_eq!(text(&a), r#"{"a":null,"b":[1,{"x":"é","y":2}]}"#);
        assert_ne!(text(&json!([1, 2])), text(&json!([2, 1])));
        assert_ne!(text(&json!({"a": 1})), text(&json!({"a": "1"})));
    }

    #[test]
    fn row_ids_are_read_from_a_listing() {
        assert_eq!(row_ids(&json!([{"id": 3}, {"id": "k"}, {"name": "no id"}])), vec!["3".to_string(), "k".to_string()]);
        assert!(row_ids(&json!({"not": "a list"})).is_empty());
    }
}
