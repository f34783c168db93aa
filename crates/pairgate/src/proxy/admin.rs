//! The gateway's own answers: health (a `health` route rule, no session),
//! and `/_pairgate/…` (status and the admin actions, with the admin token).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Ctx;
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// Runs for a path under `/_pairgate`: never forwarded to a chassis.
pub async fn gateway_route(gw: &std::sync::Arc<Gateway>, ctx: &Ctx) -> Response {
    if let Some(response) = super::dashboard::route(gw, ctx).await {
        return response;
    }
    if ctx.path == "/_pairgate/status" {
        return crate::status::status(gw, &ctx.headers).into_response();
    }
    if ctx.path == "/_pairgate/reload" && ctx.method == axum::http::Method::POST {
        return reload(gw, ctx);
    }
    crate::admin::handle(gw, &ctx.method, &ctx.path, &ctx.headers, &ctx.body)
}

/// `POST /_pairgate/reload` (`pairgate reload`): `src/reload.rs`; 200 with
/// what changed, or 422 `reload_refused` with why (nothing changed).
fn reload(gw: &Gateway, ctx: &Ctx) -> Response {
    let who = match crate::status::check_admin(gw, &ctx.headers) {
        Ok(who) => who,
        Err(e) => return e.into_response(),
    };
    match gw.reload_for(&who.who()) {
        Ok(r) => (StatusCode::OK, axum::Json(serde_json::json!({"reloaded": r}))).into_response(),
        Err(e) => {
            tracing::error!("reload refused: {e}");
            let body = serde_json::json!({"error": {"code": "reload_refused", "message": e.to_string()}});
            (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
        }
    }
}

/// Health, answered by the gateway without a session (a `health` route rule):
/// 200 while it can serve reads and mutations, 503 with the reason otherwise.
pub fn health(gw: &Gateway) -> Response {
    let primary = gw.pair.primary();
    let why = if primary.is_none() {
        Some("no chassis is in sync: reads and mutations cannot be served".to_string())
    } else if gw.pairing.accepts_mutations().is_err() {
        let blocked = gw.pairing.blocked();
        Some(format!("mutations are refused: {}", blocked.unwrap_or_else(|| "the pair is not paired yet".into())))
    } else {
        None
    };
    match why {
        Some(why) => GatewayError::Unavailable(why).into_response(),
        None => {
            let in_sync: Vec<&str> =
                (0..2).filter(|&i| gw.pair.state(i).serves()).map(|i| gw.pair.members[i].upstream.name.as_str()).collect();
            let primary = primary.map(|i| gw.pair.members[i].upstream.name.clone());
            (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok", "primary": primary, "in_sync": in_sync}))).into_response()
        }
    }
}

/// A `metrics` route: the Prometheus text (`src/metrics.rs`), to the admin
/// token as a bearer unless `listen.metrics_open`.
pub fn metrics(gw: &Gateway, ctx: &Ctx) -> Response {
    if !ctx.cfg.listen.metrics_open {
        match crate::status::check_admin(gw, &ctx.headers) {
            Ok(_) => {}
            Err(GatewayError::MissingToken) => {
                return GatewayError::Unauthorized {
                    code: "missing_token",
                    message: "the metrics need the gateway's admin token (admin_token_file in gateway.toml) as \
                              'Authorization: Bearer <token>', or `metrics_open = true` in [listen]"
                        .into(),
                }
                .into_response()
            }
            Err(e) => return e.into_response(),
        }
    }
    match crate::metrics::render(&gw.metrics, &crate::status::snapshot(gw)) {
        Ok(text) => ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => GatewayError::Internal(format!("encoding the metrics: {e}")).into_response(),
    }
}
