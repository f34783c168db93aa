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

/// Run `f` on the blocking pool: a digest, export or import of a large state
/// takes a CPU for a while, and must not hold up the runtime's workers (a
/// health probe waiting behind two of them would find the chassis "down").
pub(crate) async fn off_the_workers<R: Send + 'static>(c: &Arc<Chassis>, f: impl FnOnce(&Chassis) -> R + Send + 'static) -> ApiResult<R> {
    let c = c.clone();
    tokio::task::spawn_blocking(move || f(&c)).await.map_err(|e| ApiError::Storage(format!("a worker failed: {e}")))
}

pub async fn digest(State(c): State<Arc<Chassis>>, _a: Auth) -> ApiResult<Reply> {
    let (digest, counts) = off_the_workers(&c, |c| c.read(|db| db.digest())).await?;
    Ok(Reply::ok(json!({"digest": digest, "counts": counts})))
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
    Ok(Reply::ok(off_the_workers(&c, |c| c.export()).await?))
}

pub async fn import(State(c): State<Arc<Chassis>>, m: Mutation, JsonBody(doc): JsonBody<Value>) -> ApiResult<Reply> {
    require_export(&c)?;
    m.require(Role::Admin, "import a chassis state")?;
    off_the_workers(&c, move |c| c.import(&doc)).await?.map(Reply::ok)
}
