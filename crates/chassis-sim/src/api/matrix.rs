//! The matrix (output ← input routes for outputs outside walls), plans
//! (saved route sets) and schedules (plans on a timetable; configuration only).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{json, Value};

use super::check_name;
use crate::auth::{Auth, Mutation};
use crate::body::{parse_id, JsonBody};
use crate::chassis::{Chassis, Reply};
use crate::db::{Db, Tx};
use crate::error::{ApiError, ApiResult};
use crate::model::*;

fn in_wall(db: &Db, output: u32) -> Option<u64> {
    db.all::<Screen>().find(|s| s.output == output).map(|s| s.wall_id)
}

fn matrix_view(db: &Db, outputs: u32) -> Value {
    let rows: Vec<Value> = (1..=outputs)
        .filter(|&o| in_wall(db, o).is_none())
        .map(|o| json!({"output": o, "input": db.get::<Route>(u64::from(o)).map(|r| r.input)}))
        .collect();
    Value::Array(rows)
}

pub async fn routes(State(c): State<Arc<Chassis>>, _a: Auth) -> Reply {
    Reply::ok(c.read(|db| matrix_view(db, c.cfg.outputs)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRoute {
    input: Option<u32>,
}

fn check_input(input: Option<u32>, inputs: u32) -> ApiResult<()> {
    match input {
        Some(i) if !(1..=inputs).contains(&i) => {
            Err(ApiError::invalid("no_such_input", format!("input {i} does not exist (inputs are 1..{inputs})")))
        }
        _ => Ok(()),
    }
}

/// Route one output (which must belong to no wall).
fn route(tx: &mut Tx, output: u32, input: Option<u32>) -> ApiResult<()> {
    if let Some(wall) = in_wall(tx.db, output) {
        return Err(ApiError::conflict("output_in_wall", format!("output {output} drives a screen of wall {wall}; move windows instead")));
    }
    match input {
        Some(i) => tx.put(Route { id: u64::from(output), input: i }),
        None => drop(tx.delete::<Route>(u64::from(output))),
    }
    tx.emit("route.updated", json!({"output": output, "input": input}));
    Ok(())
}

pub async fn set_route(
    State(c): State<Arc<Chassis>>,
    m: Mutation,
    Path(output): Path<String>,
    JsonBody(req): JsonBody<SetRoute>,
) -> ApiResult<Reply> {
    m.require(Role::Operator, "switch the matrix")?;
    let output = parse_id(&output)?;
    let max = c.cfg.outputs;
    let output = u32::try_from(output).ok().filter(|o| (1..=max).contains(o)).ok_or(ApiError::not_found("output", output))?;
    check_input(req.input, c.cfg.inputs)?;
    c.mutate(&m.0, |tx| {
        route(tx, output, req.input)?;
        Ok(Reply::ok(json!({"output": output, "input": req.input})))
    })
}

// ---- plans ----

pub async fn plans(State(c): State<Arc<Chassis>>, _a: Auth) -> Reply {
    Reply::ok(c.read(|db| json!(db.all::<Plan>().collect::<Vec<_>>())))
}

pub async fn plan(State(c): State<Arc<Chassis>>, _a: Auth, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_id(&id)?;
    c.read(|db| db.get::<Plan>(id).map(|p| json!(p))).map(Reply::ok).ok_or(ApiError::not_found("plan", id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPlan {
    name: String,
    routes: Vec<PlanRoute>,
}

pub async fn create_plan(State(c): State<Arc<Chassis>>, m: Mutation, JsonBody(req): JsonBody<NewPlan>) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure plans")?;
    let name = check_name(&req.name, "a plan name")?;
    let max = c.cfg.outputs;
    if let Some(r) = req.routes.iter().find(|r| !(1..=max).contains(&r.output)) {
        return Err(ApiError::invalid("no_such_output", format!("output {} does not exist (outputs are 1..{max})", r.output)));
    }
    for r in &req.routes {
        check_input(r.input, c.cfg.inputs)?;
    }
    if req.routes.iter().map(|r| r.output).collect::<BTreeSet<_>>().len() != req.routes.len() {
        return Err(ApiError::invalid("duplicate_output", "a plan routes each output at most once"));
    }
    c.mutate(&m.0, |tx| {
        let plan = tx.create(|id| Plan { id, name, routes: req.routes.clone() })?;
        tx.emit("plan.created", json!(plan));
        Ok(Reply::created(json!(plan)))
    })
}

pub async fn run_plan(State(c): State<Arc<Chassis>>, m: Mutation, Path(id): Path<String>) -> ApiResult<Reply> {
    m.require(Role::Operator, "run plans")?;
    let id = parse_id(&id)?;
    let outputs = c.cfg.outputs;
    c.mutate(&m.0, |tx| {
        let plan = tx.must::<Plan>("plan", id)?;
        // All or nothing: an output taken by a wall since the plan was saved
        // fails the run and the Tx rolls back the routes already set.
        for r in &plan.routes {
            route(tx, r.output, r.input)?;
        }
        tx.emit("plan.ran", json!({"id": id}));
        Ok(Reply::ok(json!({"plan_id": id, "matrix": matrix_view(tx.db, outputs)})))
    })
}

pub async fn delete_plan(State(c): State<Arc<Chassis>>, m: Mutation, Path(id): Path<String>) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure plans")?;
    let id = parse_id(&id)?;
    c.mutate(&m.0, |tx| {
        tx.must::<Plan>("plan", id)?;
        if let Some(s) = tx.all::<Schedule>().find(|s| s.plan_ids.contains(&id)) {
            return Err(ApiError::conflict("plan_in_use", format!("plan {id} is used by schedule {}", s.id)));
        }
        tx.delete::<Plan>(id);
        tx.emit("plan.deleted", json!({"id": id}));
        Ok(Reply::no_content())
    })
}

// ---- schedules ----

pub async fn schedules(State(c): State<Arc<Chassis>>, _a: Auth) -> Reply {
    Reply::ok(c.read(|db| json!(db.all::<Schedule>().collect::<Vec<_>>())))
}

pub async fn schedule(State(c): State<Arc<Chassis>>, _a: Auth, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_id(&id)?;
    c.read(|db| db.get::<Schedule>(id).map(|s| json!(s))).map(Reply::ok).ok_or(ApiError::not_found("schedule", id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleReq {
    name: Option<String>,
    plan_ids: Option<Vec<u64>>,
    interval_s: Option<u32>,
    enabled: Option<bool>,
}

fn check_schedule(tx: &Tx, s: &Schedule) -> ApiResult<()> {
    if !(1..=86_400).contains(&s.interval_s) {
        return Err(ApiError::invalid("invalid_interval", "interval_s must be between 1 and 86400"));
    }
    if s.plan_ids.is_empty() || s.plan_ids.len() > 64 {
        return Err(ApiError::invalid("invalid_schedule", "a schedule runs 1 to 64 plans"));
    }
    if let Some(p) = s.plan_ids.iter().find(|&&p| tx.get::<Plan>(p).is_none()) {
        return Err(ApiError::invalid("unknown_plan", format!("plan {p} does not exist")));
    }
    Ok(())
}

pub async fn create_schedule(State(c): State<Arc<Chassis>>, m: Mutation, JsonBody(req): JsonBody<ScheduleReq>) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure schedules")?;
    let (Some(name), Some(plan_ids), Some(interval_s)) = (req.name, req.plan_ids, req.interval_s) else {
        return Err(ApiError::InvalidBody("a schedule needs name, plan_ids and interval_s".into()));
    };
    let name = check_name(&name, "a schedule name")?;
    c.mutate(&m.0, |tx| {
        let draft = Schedule { id: 0, name, plan_ids, interval_s, enabled: req.enabled.unwrap_or(true) };
        check_schedule(tx, &draft)?;
        let s = tx.create(|id| Schedule { id, ..draft })?;
        tx.emit("schedule.created", json!(s));
        Ok(Reply::created(json!(s)))
    })
}

pub async fn update_schedule(
    State(c): State<Arc<Chassis>>,
    m: Mutation,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ScheduleReq>,
) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure schedules")?;
    let id = parse_id(&id)?;
    let name = req.name.as_deref().map(|n| check_name(n, "a schedule name")).transpose()?;
    c.mutate(&m.0, |tx| {
        let mut s = tx.must::<Schedule>("schedule", id)?;
        s.name = name.unwrap_or(s.name);
        s.plan_ids = req.plan_ids.clone().unwrap_or(s.plan_ids);
        s.interval_s = req.interval_s.unwrap_or(s.interval_s);
        s.enabled = req.enabled.unwrap_or(s.enabled);
        check_schedule(tx, &s)?;
        tx.put(s.clone());
        tx.emit("schedule.updated", json!(s));
        Ok(Reply::ok(json!(s)))
    })
}

pub async fn delete_schedule(State(c): State<Arc<Chassis>>, m: Mutation, Path(id): Path<String>) -> ApiResult<Reply> {
    m.require(Role::Admin, "configure schedules")?;
    let id = parse_id(&id)?;
    c.mutate(&m.0, |tx| {
        tx.must::<Schedule>("schedule", id)?;
        tx.delete::<Schedule>(id);
        tx.emit("schedule.deleted", json!({"id": id}));
        Ok(Reply::no_content())
    })
}
