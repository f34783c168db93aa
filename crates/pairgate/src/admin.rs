//! The gateway's admin actions, on `/_pairgate/…` with the admin token (and
//! as `pairgate` subcommands, which call these):
//! - `POST /_pairgate/resync/{chassis}`: rebuild that chassis from the other;
//! - `POST /_pairgate/primary/{chassis}`: make that (in-sync) chassis primary;
//! - `POST /_pairgate/maintenance/{chassis}` `{"on": true|false}`: take it out
//!   (held down: nothing is sent to it, it is neither primary nor read from)
//!   or bring it back (it catches up and is verified before serving);
//! - `GET /_pairgate/idmap/{chassis}`: that chassis' ID map (firmware without
//!   `id_block`): `[{table, client, chassis}]`, empty for one with it.

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use crate::chassis::detector::Signal;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::timeline::Kind;

fn not_found(what: &str) -> Response {
    GatewayError::NoRoute(what.to_string()).into_response()
}

pub fn handle(gw: &Gateway, method: &Method, path: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    let who = match crate::status::check_admin(gw, headers) {
        Ok(who) => who.who(),
        Err(e) => return e.into_response(),
    };
    let mut parts = path.trim_start_matches("/_pairgate/").splitn(2, '/');
    let (action, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let note = |text: String| gw.timeline.record(Kind::Admin, Some(name), text);
    let Some(i) = gw.pair.members.iter().position(|m| m.upstream.name == name) else {
        return not_found(&format!("no chassis named '{name}'"));
    };
    if action == "idmap" && method == Method::GET {
        let rows: Vec<serde_json::Value> =
            gw.translator.maps.view(i).rows().into_iter().map(|(t, c, n)| json!({"table": &*t, "client": c, "chassis": n})).collect();
        return (StatusCode::OK, axum::Json(json!(rows))).into_response();
    }
    if method != Method::POST {
        return not_found(path);
    }
    match action {
        "resync" => {
            let before = gw.pair.members[i].resyncs_done.load(std::sync::atomic::Ordering::SeqCst);
            gw.request_resync(i);
            note(format!("full resync of chassis {name} asked by {who}"));
            (StatusCode::ACCEPTED, axum::Json(json!({"resync": name, "resyncs_before": before}))).into_response()
        }
        "primary" => {
            if !gw.pair.state(i).serves() {
                return (
                    StatusCode::CONFLICT,
                    axum::Json(json!({"error": {"code": "not_in_sync", "message": format!("chassis {name} is not in sync; only an in-sync chassis can be primary")}})),
                )
                    .into_response();
            }
            gw.pair.set_primary(i);
            note(format!("chassis {name} made primary by {who}"));
            (StatusCode::OK, axum::Json(json!({"primary": name}))).into_response()
        }
        "maintenance" => {
            let on = serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|v| v["on"].as_bool());
            let Some(on) = on else {
                return GatewayError::MalformedJson("expected {\"on\": true} or {\"on\": false}".into()).into_response();
            };
            gw.pair.members[i].detector.signal(Signal::Hold(on));
            gw.pair.members[i].maintenance.store(on, std::sync::atomic::Ordering::SeqCst);
            note(match on {
                true => format!("chassis {name} taken out for maintenance by {who}"),
                false => format!("chassis {name} brought back from maintenance by {who} (it catches up, then is verified)"),
            });
            if on && gw.pair.primary() == Some(i) {
                gw.pair.set_primary(crate::chassis::pair::Pair::other(i));
            }
            (StatusCode::OK, axum::Json(json!({"chassis": name, "maintenance": on}))).into_response()
        }
        _ => not_found(path),
    }
}
