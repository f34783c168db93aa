//! Rebuilding a chassis through its ordinary API, for firmware without
//! export/import: the target is made to hold what the source holds with
//! ordinary deletes, updates and creates, in dependency order, its ID map
//! following. What to read, how each collection's rows are created and what
//! they reference is the `[[collection]]` rules' (gateway.toml), not code.
//!
//! 1. the source's listings are read at one seq (the write gate held, as an
//!    export would be), in client IDs;
//! 2. on the target, in reverse file order, every row neither `fixed` nor
//!    matched (`match_by`) with a row of the source is deleted;
//! 3. in file order, each source row is set (`set`), or its fixed or
//!    matched row updated (`update`), or it is created (`create`; a row
//!    that captures others is `stage`d first) with its references in the
//!    target's new IDs, and the create's answer pairs each new row with the
//!    client ID it stands for;
//! 4. the target's map becomes what was built, durably; the journal's
//!    entries after the seq are replayed next, and the chassis joins only
//!    once its listings compare equal (never on trust).

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use serde_json::{Map, Value};

use super::listing::{self, Listed};
use super::resync::{wait_applied, Imported, Resyncer, Step};
use super::service::{service_send, ResyncError};
use crate::chassis::upstream::Outcome;
use crate::config::{Collection, PathPattern};
use crate::ids::map::ChassisMap;
use crate::journal::MapChange;

const GATE_WAIT: Duration = Duration::from_millis(500);

/// One listing as read, owned.
struct Read {
    collection: usize,
    native_path: String,
    client_path: String,
    raw: Value,
    client: Value,
}

async fn read(r: &Resyncer<'_>, i: usize) -> Result<Vec<Read>, ResyncError> {
    let mut out = Vec::new();
    listing::read_all(r.broker, r.pair, i, r.collections, r.translator, r.per_try, &mut |l: Listed<'_>| {
        out.push(Read {
            collection: l.collection,
            native_path: l.native_path.to_string(),
            client_path: l.client_path.to_string(),
            raw: l.raw.clone(),
            client: l.client.clone(),
        })
    })
    .await?;
    Ok(out)
}

fn rows(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// `template` with each `{name}` replaced: `{id}` by `id`, the collection's
/// own parameter by its value in `path` (read with the collection's pattern),
/// any other by the row's field of that name.
fn fill(template: &str, c: &Collection, path: &str, id: Option<&Value>, row: &Value) -> String {
    let pattern = PathPattern::parse(&c.path).ok();
    let mut out = String::with_capacity(template.len());
    for (k, part) in template.split('/').enumerate() {
        if k > 0 {
            out.push('/');
        }
        let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else {
            out.push_str(part);
            continue;
        };
        let own = c.each.as_ref().is_some_and(|e| e.param == part);
        let value = if own {
            pattern.as_ref().and_then(|p| p.param(name, path)).map(str::to_string)
        } else if name == "id" {
            id.map(scalar)
        } else {
            row.get(name).map(scalar)
        };
        out.push_str(&value.unwrap_or_default());
    }
    out
}

/// Whether `row` is one every chassis has under the same id (`fixed`).
fn is_fixed(rb: &crate::config::Rebuild, row: &Value) -> bool {
    rb.fixed.as_ref().is_some_and(|f| f.find(row).first() == Some(&&Value::Bool(true)))
}

/// The value `row` is matched by (`match_by`), as text.
fn key_of(m: &crate::ids::pointer::WildPointer, row: &Value) -> Option<String> {
    m.find(row).first().map(|v| scalar(v))
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A body of the row's `fields` (left out where the row has none; with
/// `keep_null`, a `null` is sent as such).
fn pick(fields: &[String], row: &Value, keep_null: bool) -> Map<String, Value> {
    let mut body = Map::new();
    for f in fields {
        match row.get(f) {
            Some(Value::Null) if !keep_null => {}
            Some(v) => {
                body.insert(f.clone(), v.clone());
            }
            None => {}
        }
    }
    body
}

impl Resyncer<'_> {
    /// Chassis `target` made to hold what `source` holds, through the API.
    pub async fn rebuild_through_api(
        &self,
        target: usize,
        source: usize,
        progress: &(dyn Fn(Step) + Sync),
    ) -> Result<Imported, ResyncError> {
        progress(Step::new("waiting_for_source", 0));
        self.wait_for_source(target, source).await?;
        let (seq, src) = {
            let _hold = self.gate.write().await;
            let seq = wait_applied(self.journal, self.pair, &[source], GATE_WAIT).await?;
            progress(Step::new("reading_source", seq));
            (seq, read(self, source).await?)
        };
        progress(Step::new("deleting", seq));
        let dst = read(self, target).await?;
        let deleted = self.delete_extra(target, &src, &dst).await?;
        progress(Step { phase: "creating", seq, rows: deleted, ..Step::default() });
        let mut map = ChassisMap::default();
        let mut made = 0u64;
        let mut secrets: Vec<String> = Vec::new();
        for l in &src {
            let c = &self.collections[l.collection];
            if c.rebuild.is_empty() {
                continue;
            }
            let target_rows: Vec<&Value> = dst.iter().filter(|d| d.collection == l.collection).flat_map(|d| rows(&d.raw)).collect();
            for (raw, client) in rows(&l.raw).iter().zip(rows(&l.client)) {
                made += self.recreate(target, c, l, raw, client, &target_rows, &mut map, &mut secrets).await?;
                progress(Step { phase: "creating", seq, rows: made, ..Step::default() });
            }
        }
        let rows = map.rows();
        let n = rows.len();
        self.translator.maps.change(vec![MapChange::Replace { chassis: target, rows }]).await?;
        if !secrets.is_empty() {
            tracing::warn!(
                chassis = %self.pair.members[target].upstream.name,
                rows = ?secrets,
                "rebuilt through the API: no listing shows these rows' secrets (passwords) and no account of theirs logged in through the gateway, so each was created with a random one; set them again"
            );
        }
        tracing::info!(chassis = %self.pair.members[target].upstream.name, deleted, made, map_entries = n, seq, "rebuilt through the API");
        Ok(Imported { seq, rows: made, bytes: 0, bytes_total: None })
    }

    /// Step 2: the target's rows the source does not hold, in reverse file order.
    async fn delete_extra(&self, target: usize, src: &[Read], dst: &[Read]) -> Result<u64, ResyncError> {
        let mut deleted = 0;
        for d in dst.iter().rev() {
            let c = &self.collections[d.collection];
            let Some(delete) = &c.rebuild.delete else { continue };
            let keys: HashSet<String> = match &c.rebuild.match_by {
                Some(m) => {
                    src.iter().filter(|s| s.collection == d.collection).flat_map(|s| rows(&s.client)).filter_map(|r| key_of(m, r)).collect()
                }
                None => HashSet::new(),
            };
            for row in rows(&d.raw) {
                if is_fixed(&c.rebuild, row) {
                    continue;
                }
                if c.rebuild.match_by.as_ref().and_then(|m| key_of(m, row)).is_some_and(|k| keys.contains(&k)) {
                    continue;
                }
                let path = fill(delete, c, &d.native_path, row.get("id"), row);
                match self.send(target, Method::DELETE, &path, None).await {
                    Ok(_) => deleted += 1,
                    Err(Outcome::Answered(a)) if a.status == 404 => {}
                    Err(other) => {
                        return Err(super::service::call_failed(&self.pair.members[target].upstream.name, &Method::DELETE, &path, &other))
                    }
                }
            }
        }
        Ok(deleted)
    }

    /// A secret no listing shows (a user's password) that the gateway holds
    /// anyway: the stored password of the account the row is matched by
    /// (`match_by`, the username), sealed in the session store since that
    /// account last logged in through the gateway. The account then logs in
    /// on the rebuilt chassis as on the other; without it, the row gets a
    /// random secret and the operator is told.
    fn known_secret(&self, rb: &crate::config::Rebuild, client: &Value) -> Option<String> {
        let account = key_of(rb.match_by.as_ref()?, client)?;
        match self.broker.store.credentials(&account) {
            Ok(found) => found.map(|s| s.expose().to_string()),
            Err(e) => {
                tracing::warn!(user = %account, "rebuild: the account's stored credentials cannot be read: {e}");
                None
            }
        }
    }

    /// Step 3 for one source row; how many rows it created.
    #[allow(clippy::too_many_arguments)]
    async fn recreate(
        &self,
        target: usize,
        c: &Collection,
        l: &Read,
        raw: &Value,
        client: &Value,
        target_rows: &[&Value],
        map: &mut ChassisMap,
        secrets: &mut Vec<String>,
    ) -> Result<u64, ResyncError> {
        let rb = &c.rebuild;
        if let Some(set) = &rb.set {
            let path = fill(set, c, &l.client_path, client.get("id"), client);
            self.call(target, map, Method::PUT, &path, Some(Value::Object(pick(&rb.fields, client, true)))).await?;
            return Ok(0);
        }
        let (Some(table), Some(client_id)) = (&rb.table, client.get("id").and_then(Value::as_u64)) else { return Ok(0) };
        // The same row on the target: fixed (same id everywhere) or matched.
        let same = if is_fixed(rb, raw) {
            raw.get("id").and_then(Value::as_u64)
        } else if let Some(m) = &rb.match_by {
            let key = key_of(m, client);
            target_rows.iter().find(|t| key.is_some() && key_of(m, t) == key).and_then(|t| t.get("id")).and_then(Value::as_u64)
        } else {
            None
        };
        if let Some(native) = same {
            map.apply(&MapChange::Put { chassis: target, table: table.clone(), client: client_id, native });
            if let Some(update) = &rb.update {
                let path = fill(update, c, &l.client_path, client.get("id"), client);
                self.call(target, map, Method::PUT, &path, Some(Value::Object(pick(&rb.update_fields, client, true)))).await?;
            }
            return Ok(0);
        }
        let Some(create) = &rb.create else { return Ok(0) };
        let path = fill(create, c, &l.client_path, None, client);
        if let Some(stage) = &rb.stage {
            let clear = fill(&stage.clear, c, &l.client_path, None, client);
            self.call(target, map, Method::DELETE, &clear, None).await?;
            for item in stage.items.find(client) {
                let at = fill(&stage.create, c, &l.client_path, None, item);
                self.call(target, map, Method::POST, &at, Some(Value::Object(pick(&stage.fields, item, false)))).await?;
            }
        }
        let mut body = pick(&rb.fields, client, false);
        for (key, at) in &rb.derive {
            let found: Vec<Value> = at.find(client).into_iter().cloned().collect();
            let v = if at.steps().contains(&crate::ids::pointer::Step::Each) {
                Value::Array(found)
            } else {
                found.into_iter().next().unwrap_or(Value::Null)
            };
            body.insert(key.clone(), v);
        }
        if let Some(secret) = &rb.secret {
            let value = match self.known_secret(rb, client) {
                Some(known) => known,
                None => {
                    secrets.push(format!("{table} {client_id}"));
                    hex::encode(rand::random::<[u8; 16]>())
                }
            };
            body.insert(secret.clone(), Value::String(value));
        }
        let answer = self.call(target, map, Method::POST, &path, Some(Value::Object(body))).await?;
        let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        let pairs = self.translator.created_pairs("POST", &path, client, &answer).map_err(|what| ResyncError::Call {
            chassis: self.pair.members[target].upstream.name.clone(),
            call: format!("POST {path}"),
            what,
        })?;
        let n = pairs.len() as u64;
        for (table, client, native) in pairs {
            map.apply(&MapChange::Put { chassis: target, table, client, native });
        }
        if let Some(stage) = &rb.stage {
            let clear = fill(&stage.clear, c, &l.client_path, None, client);
            self.call(target, map, Method::DELETE, &clear, None).await?;
        }
        Ok(n.max(1))
    }

    /// A call to the target in client IDs, translated with the map being built.
    async fn call(&self, target: usize, map: &ChassisMap, method: Method, path: &str, body: Option<Value>) -> Result<Bytes, ResyncError> {
        let name = &self.pair.members[target].upstream.name;
        let body = body.map(|b| Bytes::from(b.to_string()));
        let (native_path, native_body) =
            self.translator.request_with(map, method.as_str(), path, &body.clone().unwrap_or_default()).map_err(|u| ResyncError::Call {
                chassis: name.clone(),
                call: format!("{method} {path}"),
                what: format!("it names {u}, which the rebuild has not made"),
            })?;
        let body = body.map(|_| native_body);
        self.send(target, method.clone(), &native_path, body)
            .await
            .map_err(|o| super::service::call_failed(name, &method, &native_path, &o))
    }

    async fn send(&self, i: usize, method: Method, path: &str, body: Option<Bytes>) -> Result<Bytes, Outcome> {
        match service_send(self.broker, self.pair, i, &method, path, body, self.per_try).await {
            Outcome::Answered(a) if a.is_success() => Ok(a.body),
            other => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collection(path: &str, each: Option<&str>) -> Collection {
        Collection {
            path: path.into(),
            each: each.map(|p| crate::config::Each { param: p.into(), parent: 0 }),
            rebuild: Default::default(),
            compare_ignores: Vec::new(),
            line: 1,
        }
    }

    #[test]
    fn paths_are_filled_from_the_id_the_collections_own_parameter_and_the_rows_fields() {
        let windows = collection("/api/v1/walls/{id}/windows", Some("{id}"));
        let row = json!({"id": 9, "output": 4});
        assert_eq!(fill("/api/v1/walls/{id}/windows", &windows, "/api/v1/walls/1000/windows", None, &row), "/api/v1/walls/1000/windows");
        let plain = collection("/api/v1/sources", None);
        assert_eq!(fill("/api/v1/sources/{id}", &plain, "/api/v1/sources", row.get("id"), &row), "/api/v1/sources/9");
        assert_eq!(fill("/api/v1/matrix/{output}", &plain, "/api/v1/matrix", None, &row), "/api/v1/matrix/4");
    }

    #[test]
    fn a_body_takes_the_rows_fields_and_leaves_out_what_it_does_not_have() {
        let row = json!({"id": 3, "name": "cam", "kind": "ip", "url": "rtsp://x", "port": null});
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Value::Object(pick(&f(&["name", "kind", "port", "url"]), &row, false)),
            json!({"name": "cam", "kind": "ip", "url": "rtsp://x"})
        );
        assert_eq!(Value::Object(pick(&f(&["port"]), &row, true)), json!({"port": null}));
    }
}
