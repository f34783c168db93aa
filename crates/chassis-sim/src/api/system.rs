//! `/system`: info, health, digest, export, import.

use std::sync::Arc;

use axum::extract::State;
use serde_json::{json, Value};

use crate::auth::{Auth, Mutation};
use crate::body::JsonBody;
use crate::chassis::{Chassis, Reply};
use crate::error::{ApiError, ApiResult};
use crate::model::Role;

pub async fn info(State(c): State<Arc<Chassis>>, _a: Auth) -> Reply {
    Reply::ok(json!({
        "serial": c.cfg.serial,
        "model": "DC-9000 reference chassis (simulated)",
        "firmware": env!("CARGO_PKG_VERSION"),
        "boards": [
            {"slot": 1, "kind": "main_control", "ports": 0},
            {"slot": 2, "kind": "input", "ports": c.cfg.inputs},
            {"slot": 3, "kind": "output", "ports": c.cfg.outputs},
        ],
        "features": c.cfg.features.names(),
    }))
}

pub async fn health() -> Reply {
    Reply::ok(json!({"status": "ok"}))
}

pub async fn digest(State(c): State<Arc<Chassis>>, _a: Auth) -> Reply {
    let (digest, counts) = c.read(|db| db.digest());
    Reply::ok(json!({"digest": digest, "counts": counts}))
}

fn require_export(c: &Chassis) -> ApiResult<()> {
    if c.cfg.features.export_import {
        Ok(())
    } else {
        Err(ApiError::NoRoute("export/import is not supported by this firmware".into()))
    }
}

/// Export holds password hashes: admin only.
pub async fn export(State(c): State<Arc<Chassis>>, a: Auth) -> ApiResult<Reply> {
    require_export(&c)?;
    a.require(Role::Admin, "export the chassis state")?;
    Ok(Reply::ok(c.export()))
}

pub async fn import(State(c): State<Arc<Chassis>>, m: Mutation, JsonBody(doc): JsonBody<Value>) -> ApiResult<Reply> {
    require_export(&c)?;
    m.require(Role::Admin, "import a chassis state")?;
    c.import(&doc).map(Reply::ok)
}
