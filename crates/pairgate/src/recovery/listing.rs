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
use crate::ids::rules::Table;
use crate::ids::translator::Translator;
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

/// The listings as soon as either chassis is known to have no digest, or
/// works with translated IDs (its digest would hash its own IDs); the
/// chassis' own digest while both have one (or are not known yet).
pub fn method(pair: &Pair) -> Method {
    let lacks = |i: usize| pair.members[i].features.lock().as_ref().is_some_and(|d| !d.has(Feature::Digest) || !d.has(Feature::IdBlock));
    if lacks(0) || lacks(1) {
        Method::Listing
    } else {
        Method::Chassis
    }
}

/// What a listing digest starts with: never equal to a chassis' own digest,
/// so a verified point taken one way is not matched the other way.
const PREFIX: &str = "listing:";

/// One listing as read from a chassis.
pub struct Listed<'a> {
    /// Which `[[collection]]` (index in file order).
    pub collection: usize,
    /// The path it was read at, in the chassis' IDs.
    pub native_path: &'a str,
    /// The same path in client IDs.
    pub client_path: &'a str,
    /// As the chassis answered.
    pub raw: &'a Value,
    /// In client IDs (the same as `raw` for a chassis with `id_block`).
    pub client: &'a Value,
}

/// Reads every `[[collection]]` of chassis `i` in file order (a collection
/// with a parameter once per row of its parent) and hands each to `seen`.
pub async fn read_all(
    broker: &Broker,
    pair: &Pair,
    i: usize,
    collections: &[Collection],
    translator: &Translator,
    timeout: std::time::Duration,
    seen: &mut (dyn FnMut(Listed<'_>) + Send),
) -> Result<(), ResyncError> {
    let name = &pair.members[i].upstream.name;
    if collections.is_empty() {
        return Err(ResyncError::Call {
            chassis: name.clone(),
            call: "comparing states".into(),
            what:
                "its firmware has no /system/digest (or its IDs are translated) and gateway.toml names no [[collection]] to compare instead"
                    .into(),
        });
    }
    let translated = pair.translated(i) == Some(true);
    // The (native, client) ids of each collection without a parameter, for the ones below it.
    let mut ids: Vec<Vec<(String, String)>> = vec![Vec::new(); collections.len()];
    for (k, c) in collections.iter().enumerate() {
        let paths: Vec<(String, String)> = match &c.each {
            None => vec![(c.path.clone(), c.path.clone())],
            Some(each) => ids[each.parent]
                .iter()
                .map(|(native, client)| (c.path.replace(&each.param, native), c.path.replace(&each.param, client)))
                .collect(),
        };
        for (native_path, client_path) in paths {
            let body = service_call(broker, pair, i, HttpMethod::GET, &native_path, None, timeout).await?;
            let raw: Value = serde_json::from_slice(&body).map_err(|e| ResyncError::Call {
                chassis: name.clone(),
                call: format!("GET {native_path}"),
                what: format!("answered 200 with no JSON: {e}"),
            })?;
            let mut client = raw.clone();
            if translated {
                translator.listing(i, &native_path, &mut client);
            }
            if c.each.is_none() {
                ids[k] = row_id_pairs(&raw, &client);
            }
            seen(Listed { collection: k, native_path: &native_path, client_path: &client_path, raw: &raw, client: &client });
        }
    }
    Ok(())
}

/// The hash of chassis `i`'s listings, in client IDs.
pub async fn digest(
    broker: &Broker,
    pair: &Pair,
    i: usize,
    collections: &[Collection],
    translator: &Translator,
    timeout: std::time::Duration,
) -> Result<String, ResyncError> {
    Ok(digest_seen(broker, pair, i, collections, translator, timeout).await?.0)
}

/// [`digest`], and every (table, ID) the listings show in the chassis' own IDs.
pub async fn digest_seen(
    broker: &Broker,
    pair: &Pair,
    i: usize,
    collections: &[Collection],
    translator: &Translator,
    timeout: std::time::Duration,
) -> Result<(String, Vec<(Table, u64)>), ResyncError> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut seen = Vec::new();
    read_all(broker, pair, i, collections, translator, timeout, &mut |l| {
        seen.extend(translator.ids_in_listing(l.native_path, l.raw));
        let mut text = String::new();
        match collections.get(l.collection).map(|c| c.compare_ignores.as_slice()).filter(|ig| !ig.is_empty()) {
            Some(ignores) => {
                let mut doc = l.client.clone();
                crate::ids::pointer::WildPointer::null_out(ignores, &mut doc);
                canonical(&doc, &mut text);
            }
            None => canonical(l.client, &mut text),
        }
        ctx.update(l.client_path.as_bytes());
        ctx.update(b"\n");
        ctx.update(text.as_bytes());
        ctx.update(b"\n");
    })
    .await?;
    Ok((format!("{PREFIX}{}", hex::encode(ctx.finish())), seen))
}

/// Every (table, ID) chassis `i`'s listings show, in its own IDs, by the
/// read rules: what a map starts from when a chassis is first seen.
pub async fn observe(
    broker: &Broker,
    pair: &Pair,
    i: usize,
    collections: &[Collection],
    translator: &Translator,
    timeout: std::time::Duration,
) -> Result<Vec<(Table, u64)>, ResyncError> {
    let mut out = Vec::new();
    read_all(broker, pair, i, collections, translator, timeout, &mut |l| out.extend(translator.ids_in_listing(l.native_path, l.raw)))
        .await?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// Each row's `id` (a listing is an array of objects) as the chassis gave
/// it and in client IDs (`null` where the map knows none), row by row.
fn row_id_pairs(raw: &Value, client: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    };
    let (raw, client) = (raw.as_array().map(Vec::as_slice).unwrap_or(&[]), client.as_array().map(Vec::as_slice).unwrap_or(&[]));
    raw.iter().zip(client).filter_map(|(r, c)| Some((text(&r["id"])?, text(&c["id"]).unwrap_or_else(|| "null".into())))).collect()
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
    fn row_ids_are_read_from_a_listing_with_their_client_ids() {
        let raw = json!([{"id": 3}, {"id": "k"}, {"name": "no id"}, {"id": 9}]);
        let client = json!([{"id": 1003}, {"id": "k"}, {"name": "no id"}, {"id": null}]);
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(row_id_pairs(&raw, &client), vec![pair("3", "1003"), pair("k", "k"), pair("9", "null")]);
        assert!(row_id_pairs(&json!({"not": "a list"}), &json!({})).is_empty());
    }
}
