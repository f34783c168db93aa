//! `/sources`: signal sources. The physical inputs 1..N exist from first start.

use std::sync::Arc;

use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::json;

use super::check_name;
use crate::auth::{Auth, Mutation};
use crate::body::{parse_id, JsonBody};
use crate::cascade::Effect;
use crate::chassis::{Chassis, Reply};
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::model::*;

pub async fn list(State(c): State<Arc<Chassis>>, _a: Auth) -> Reply {
    Reply::ok(c.read(|db| json!(db.all::<Source>().collect::<Vec<_>>())))
}

pub async fn one(State(c): State<Arc<Chassis>>, _a: Auth, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_id(&id)?;
    c.read(|db| db.get::<Source>(id).map(|s| json!(s))).map(Reply::ok).ok_or(ApiError::not_found("source", id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSource {
    name: String,
    kind: SourceKind,
    port: Option<u32>,
    url: Option<String>,
}

fn check_url(url: &str) -> ApiResult<()> {
    let ok = url.len() <= 512
        && url.split_once("://").is_some_and(|(scheme, rest)| {
            !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') && !rest.is_empty()
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid("invalid_url", "an IP source needs a url like 'rtsp://camera-1/stream' (at most 512 characters)"))
    }
}

/// Port/url rules per kind: physical kinds name an input port, `ip` a url.
fn check_kind(kind: SourceKind, port: Option<u32>, url: Option<&str>, inputs: u32) -> ApiResult<()> {
    match kind {
        SourceKind::Hdmi | SourceKind::Dvi | SourceKind::Sdi => match (port, url) {
            (Some(p), None) if (1..=inputs).contains(&p) => Ok(()),
            (_, Some(_)) => Err(ApiError::invalid("invalid_source", "hdmi/dvi/sdi sources take a port, not a url")),
            _ => Err(ApiError::invalid("no_such_input", format!("hdmi/dvi/sdi sources need a port between 1 and {inputs}"))),
        },
        SourceKind::Ip => match (port, url) {
            (None, Some(u)) => check_url(u),
            _ => Err(ApiError::invalid("invalid_source", "ip sources take a url, not a port")),
        },
        SourceKind::Cascade => Err(ApiError::invalid("invalid_source", "cascade sources are created by a subordinate's registration")),
    }
}

/// After any source change, a chassis with a superior reports its sources again.
fn report_if_cascaded(tx: &mut Tx) {
    if tx.get::<Superior>(1).is_some() {
        tx.effects.push(Effect::Register);
    }
}

pub async fn create(State(c): State<Arc<Chassis>>, m: Mutation, JsonBody(req): JsonBody<NewSource>) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure sources")?;
    let name = check_name(&req.name, "a source name")?;
    check_kind(req.kind, req.port, req.url.as_deref(), c.cfg.inputs)?;
    c.mutate(&m.0, |tx| {
        let s = tx.create(|id| Source {
            id,
            name,
            kind: req.kind,
            port: req.port,
            url: req.url.clone(),
            subordinate_id: None,
            remote_source_id: None,
            builtin: false,
        })?;
        tx.emit("source.created", json!(s));
        report_if_cascaded(tx);
        Ok(Reply::created(json!(s)))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceUpdate {
    name: Option<String>,
    url: Option<String>,
}

pub async fn update(
    State(c): State<Arc<Chassis>>,
    m: Mutation,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<SourceUpdate>,
) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure sources")?;
    let id = parse_id(&id)?;
    let name = req.name.as_deref().map(|n| check_name(n, "a source name")).transpose()?;
    c.mutate(&m.0, |tx| {
        let mut s = tx.must::<Source>("source", id)?;
        if let Some(n) = name {
            s.name = n;
        }
        if let Some(u) = &req.url {
            if s.kind != SourceKind::Ip {
                return Err(ApiError::invalid("invalid_source", "only ip sources have a url"));
            }
            check_url(u)?;
            s.url = Some(u.clone());
        }
        tx.put(s.clone());
        tx.emit("source.updated", json!(s));
        report_if_cascaded(tx);
        Ok(Reply::ok(json!(s)))
    })
}

/// Whether anything still shows or routes this source.
pub fn source_in_use(tx: &Tx, id: u64) -> bool {
    tx.all::<Window>().any(|w| w.source_id == id)
        || tx.all::<SceneItem>().any(|i| i.source_id == id)
        || tx.all::<CascadeLink>().any(|l| l.source_id == id)
}

pub async fn remove(State(c): State<Arc<Chassis>>, m: Mutation, Path(id): Path<String>) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure sources")?;
    let id = parse_id(&id)?;
    c.mutate(&m.0, |tx| {
        let s = tx.must::<Source>("source", id)?;
        if s.builtin {
            return Err(ApiError::conflict("builtin_source", format!("source {id} is a physical input and cannot be deleted")));
        }
        if source_in_use(tx, id) {
            return Err(ApiError::conflict("source_in_use", format!("source {id} is shown in a window, a scene or a cascade link")));
        }
        tx.delete::<Source>(id);
        tx.emit("source.deleted", json!({"id": id}));
        report_if_cascaded(tx);
        Ok(Reply::no_content())
    })
}
