//! Cascade: this chassis as a subordinate (its superior, its cascade links)
//! and as a superior (the subordinates that registered, their sources).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{Auth, Mutation};
use crate::body::{parse_id, JsonBody};
use crate::cascade::Effect;
use crate::chassis::{Chassis, Reply};
use crate::error::{ApiError, ApiResult};
use crate::model::*;

pub async fn superior(State(c): State<Arc<Chassis>>, _a: Auth) -> Reply {
    let sup = c.read(|db| db.get::<Superior>(1).cloned());
    let status = c.cascade.status();
    Reply::ok(match sup {
        Some(s) => json!({"url": s.url, "username": s.username, "password_set": true, "registration": status}),
        None => json!({"url": null, "username": null, "password_set": false, "registration": status}),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSuperior {
    url: Option<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

pub async fn set_superior(State(c): State<Arc<Chassis>>, m: Mutation, JsonBody(req): JsonBody<SetSuperior>) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure cascade")?;
    if let Some(url) = &req.url {
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 512 {
            return Err(ApiError::invalid("invalid_url", "the superior's url must start with http:// or https://"));
        }
        if req.username.is_empty() || req.password.is_empty() {
            return Err(ApiError::invalid("invalid_credentials", "a superior needs a username and a password"));
        }
    }
    c.mutate(&m.0, |tx| {
        match &req.url {
            Some(url) => {
                let sup = Superior {
                    id: 1,
                    url: url.trim_end_matches('/').to_string(),
                    username: req.username.clone(),
                    password: req.password.clone(),
                };
                tx.put(sup);
                tx.effects.push(Effect::Register);
            }
            None => drop(tx.delete::<Superior>(1)),
        }
        tx.emit("cascade.superior_updated", json!({"url": req.url}));
        Ok(Reply::ok(json!({"url": req.url, "username": req.username})))
    })
}

fn sub_view(s: &Subordinate) -> Value {
    json!({"id": s.id, "serial": s.serial, "url": s.url, "sources": s.sources})
}

pub async fn subordinates(State(c): State<Arc<Chassis>>, _a: Auth) -> Reply {
    Reply::ok(c.read(|db| db.all::<Subordinate>().map(sub_view).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    serial: String,
    url: String,
    sources: Vec<RemoteSource>,
    credentials: Option<Credentials>,
}

/// A subordinate registers (or re-reports its sources): one `subordinates`
/// row the first time, then one `cascade` source per remote source not seen
/// before; sources it no longer reports are removed unless still shown.
pub async fn register(State(c): State<Arc<Chassis>>, m: Mutation, JsonBody(req): JsonBody<Registration>) -> ApiResult<Reply> {
    m.require(Role::Admin, "register subordinates")?;
    c.cascade.registrations_received.fetch_add(1, Ordering::Relaxed);
    let serial = super::check_name(&req.serial, "a serial")?;
    if req.sources.len() > 1024 {
        return Err(ApiError::invalid("too_many_sources", "a subordinate reports at most 1024 sources"));
    }
    c.mutate(&m.0, |tx| {
        let existing = tx.all::<Subordinate>().find(|s| s.serial == serial).cloned();
        let created = existing.is_none();
        let sub = match existing {
            Some(mut s) => {
                s.url = req.url.clone();
                s.sources = req.sources.clone();
                s.credentials = req.credentials.clone();
                tx.put(s.clone());
                s
            }
            None => tx.create(|id| Subordinate {
                id,
                serial: serial.clone(),
                url: req.url.clone(),
                sources: req.sources.clone(),
                credentials: req.credentials.clone(),
            })?,
        };
        let mine: Vec<Source> = tx.all::<Source>().filter(|s| s.subordinate_id == Some(sub.id)).cloned().collect();
        for remote in &req.sources {
            let name = format!("{} / {}", serial, remote.name);
            match mine.iter().find(|s| s.remote_source_id == Some(remote.id)) {
                Some(s) if s.name != name => tx.put(Source { name, ..s.clone() }),
                Some(_) => {}
                None => {
                    let s = tx.create(|id| Source {
                        id,
                        name,
                        kind: SourceKind::Cascade,
                        port: None,
                        url: None,
                        subordinate_id: Some(sub.id),
                        remote_source_id: Some(remote.id),
                        builtin: false,
                    })?;
                    tx.emit("source.created", json!(s));
                }
            }
        }
        for gone in mine.iter().filter(|s| !req.sources.iter().any(|r| Some(r.id) == s.remote_source_id)) {
            if !super::sources::source_in_use(tx, gone.id) {
                tx.delete::<Source>(gone.id);
                tx.emit("source.deleted", json!({"id": gone.id}));
            }
        }
        c.cascade.registrations_applied.fetch_add(1, Ordering::Relaxed);
        tx.emit("cascade.subordinate_registered", sub_view(&sub));
        let view = sub_view(&sub);
        Ok(if created { Reply::created(view) } else { Reply::ok(view) })
    })
}

pub async fn links(State(c): State<Arc<Chassis>>, _a: Auth) -> Reply {
    Reply::ok(c.read(|db| json!(db.all::<CascadeLink>().map(|l| json!({"link": l.id, "source_id": l.source_id})).collect::<Vec<_>>())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLink {
    source_id: u64,
}

pub async fn set_link(
    State(c): State<Arc<Chassis>>,
    m: Mutation,
    Path(n): Path<String>,
    JsonBody(req): JsonBody<SetLink>,
) -> ApiResult<Reply> {
    m.require(Role::Operator, "route cascade links")?;
    c.cascade.links_received.fetch_add(1, Ordering::Relaxed);
    let n = parse_id(&n)?;
    if n > CASCADE_LINKS {
        return Err(ApiError::not_found("cascade link", n));
    }
    c.mutate(&m.0, |tx| {
        if tx.get::<Source>(req.source_id).is_none() {
            return Err(ApiError::invalid("unknown_source", format!("source {} does not exist", req.source_id)));
        }
        c.cascade.links_applied.fetch_add(1, Ordering::Relaxed);
        tx.put(CascadeLink { id: n, source_id: req.source_id });
        tx.emit("cascade.link_updated", json!({"link": n, "source_id": req.source_id}));
        Ok(Reply::ok(json!({"link": n, "source_id": req.source_id})))
    })
}
