//! KVM: host computers, operator seats, and switching a seat between hosts.

use std::sync::Arc;

use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::json;

use super::check_name;
use crate::auth::{Auth, Mutation};
use crate::body::{parse_id, JsonBody};
use crate::chassis::{Chassis, Reply};
use crate::error::{ApiError, ApiResult};
use crate::model::*;

/// KVM ports on the chassis' KVM board.
const KVM_PORTS: u32 = 256;

pub async fn hosts(State(c): State<Arc<Chassis>>, _a: Auth) -> Reply {
    Reply::ok(c.read(|db| json!(db.all::<KvmHost>().collect::<Vec<_>>())))
}

pub async fn host(State(c): State<Arc<Chassis>>, _a: Auth, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_id(&id)?;
    c.read(|db| db.get::<KvmHost>(id).map(|h| json!(h))).map(Reply::ok).ok_or(ApiError::not_found("kvm host", id))
}

pub async fn seats(State(c): State<Arc<Chassis>>, _a: Auth) -> Reply {
    Reply::ok(c.read(|db| json!(db.all::<KvmSeat>().collect::<Vec<_>>())))
}

pub async fn seat(State(c): State<Arc<Chassis>>, _a: Auth, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_id(&id)?;
    c.read(|db| db.get::<KvmSeat>(id).map(|s| json!(s))).map(Reply::ok).ok_or(ApiError::not_found("kvm seat", id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHost {
    name: String,
    port: u32,
}

pub async fn create_host(State(c): State<Arc<Chassis>>, m: Mutation, JsonBody(req): JsonBody<NewHost>) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure KVM")?;
    let name = check_name(&req.name, "a host name")?;
    if !(1..=KVM_PORTS).contains(&req.port) {
        return Err(ApiError::invalid("no_such_port", format!("KVM ports are 1..{KVM_PORTS}")));
    }
    c.mutate(&m.0, |tx| {
        let owner = tx.all::<KvmHost>().find(|h| h.port == req.port).map(|h| h.id);
        if let Some(owner) = owner {
            let taken = ApiError::conflict("port_in_use", format!("KVM port {} is host {owner}'s", req.port));
            return Err(tx.refused_insert::<KvmHost>(1, taken));
        }
        let h = tx.create(|id| KvmHost { id, name, port: req.port })?;
        tx.emit("kvm_host.created", json!(h));
        Ok(Reply::created(json!(h)))
    })
}

pub async fn delete_host(State(c): State<Arc<Chassis>>, m: Mutation, Path(id): Path<String>) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure KVM")?;
    let id = parse_id(&id)?;
    c.mutate(&m.0, |tx| {
        tx.must::<KvmHost>("kvm host", id)?;
        // Seats showing the host go dark rather than blocking the delete.
        let seats: Vec<KvmSeat> = tx.all::<KvmSeat>().filter(|s| s.host_id == Some(id)).cloned().collect();
        for mut s in seats {
            s.host_id = None;
            tx.put(s.clone());
            tx.emit("kvm_seat.switched", json!(s));
        }
        tx.delete::<KvmHost>(id);
        tx.emit("kvm_host.deleted", json!({"id": id}));
        Ok(Reply::no_content())
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSeat {
    name: String,
    console: String,
    #[serde(default)]
    host_id: Option<u64>,
}

fn check_host(tx: &crate::db::Tx, host: Option<u64>) -> ApiResult<()> {
    match host {
        Some(h) if tx.get::<KvmHost>(h).is_none() => Err(ApiError::invalid("unknown_host", format!("kvm host {h} does not exist"))),
        _ => Ok(()),
    }
}

pub async fn create_seat(State(c): State<Arc<Chassis>>, m: Mutation, JsonBody(req): JsonBody<NewSeat>) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure KVM")?;
    let name = check_name(&req.name, "a seat name")?;
    let console = check_name(&req.console, "a console name")?;
    c.mutate(&m.0, |tx| {
        check_host(tx, req.host_id)?;
        let s = tx.create(|id| KvmSeat { id, name, console, host_id: req.host_id })?;
        tx.emit("kvm_seat.created", json!(s));
        Ok(Reply::created(json!(s)))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    host_id: Option<u64>,
}

pub async fn switch_seat(
    State(c): State<Arc<Chassis>>,
    m: Mutation,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<Switch>,
) -> ApiResult<Reply> {
    m.require(Role::Operator, "switch KVM seats")?;
    let id = parse_id(&id)?;
    c.mutate(&m.0, |tx| {
        let mut s = tx.must::<KvmSeat>("kvm seat", id)?;
        check_host(tx, req.host_id)?;
        s.host_id = req.host_id;
        tx.put(s.clone());
        tx.emit("kvm_seat.switched", json!(s));
        Ok(Reply::ok(json!(s)))
    })
}

pub async fn delete_seat(State(c): State<Arc<Chassis>>, m: Mutation, Path(id): Path<String>) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure KVM")?;
    let id = parse_id(&id)?;
    c.mutate(&m.0, |tx| {
        tx.must::<KvmSeat>("kvm seat", id)?;
        tx.delete::<KvmSeat>(id);
        tx.emit("kvm_seat.deleted", json!({"id": id}));
        Ok(Reply::no_content())
    })
}
