//! `GET /_pairgate/status` (bearer: the admin token from `gateway.toml`):
//! each chassis' state, the primary, what each has applied and how far it
//! lags, the journal's depth, divergences seen, sessions, and every
//! certificate the configuration names with its expiry (`certs.rs`).

use std::sync::atomic::Ordering;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::GatewayError;
use crate::gateway::Gateway;

/// Who an admin call comes from (the timeline names them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    /// The admin token from `gateway.toml` (`pairgate resync …`, scripts).
    Token,
    /// A live gateway session of an account whose role is `admin` (the
    /// dashboard's login with an account).
    Account(String),
}

impl Admin {
    /// For the timeline: "the admin token" or "admin account NAME".
    pub fn who(&self) -> String {
        match self {
            Admin::Token => "the admin token".to_string(),
            Admin::Account(name) => format!("admin account {name}"),
        }
    }
}

/// The gateway's admin endpoints take, as a bearer, the admin token from
/// `gateway.toml` or the gateway session of an `admin` account; another
/// account's session is refused (403), whatever else 401.
pub fn check_admin(gw: &Gateway, headers: &HeaderMap) -> Result<Admin, GatewayError> {
    bearer(headers).and_then(|given| admin_of(gw, given))
}

/// The bearer of an `Authorization` header (`session::bearer_token`), or
/// `missing_token`.
pub fn bearer(headers: &HeaderMap) -> Result<&str, GatewayError> {
    crate::session::bearer_token(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())).map_err(|_| GatewayError::MissingToken)
}

/// Who the bearer `given` is, as [`check_admin`] decides it.
pub fn admin_of(gw: &Gateway, given: &str) -> Result<Admin, GatewayError> {
    let given = given.trim();
    if gw.admin_token.matches(given) {
        return Ok(Admin::Token);
    }
    match gw.broker.store.verify(given) {
        Ok(p) if p.role == crate::session::Role::Admin => Ok(Admin::Account(p.username)),
        Ok(p) => Err(GatewayError::Forbidden(format!(
            "account {} has the role {}: the gateway's admin pages and actions need an admin account or the admin token",
            p.username, p.role
        ))),
        Err(_) => Err(GatewayError::Unauthorized {
            code: "invalid_token",
            message: "this is neither the gateway's admin token nor a live session of an admin account".into(),
        }),
    }
}

/// What `/metrics` reads at scrape time: the same values as the status page.
pub fn snapshot(gw: &Gateway) -> crate::metrics::Snapshot {
    let primary = gw.pair.primary();
    let chassis = gw
        .pair
        .members
        .iter()
        .map(|m| crate::metrics::ChassisView {
            name: m.upstream.name.clone(),
            state: m.detector.state(),
            primary: primary == Some(m.index),
            applied: gw.journal.applied(&m.upstream.name).ok(),
            resyncs_done: m.resyncs_done.load(Ordering::SeqCst),
            resyncs_failed: m.resyncs_failed.load(Ordering::SeqCst),
        })
        .collect();
    crate::metrics::Snapshot {
        chassis,
        last_seq: gw.journal.last_seq(),
        journal_depth: gw.journal.depth(),
        journal_disk_bytes: crate::gateway::journal_disk_bytes(&gw.cfg.load().state.dir),
        sessions: gw.broker.store.count() as u64,
        failovers: gw.pair.failovers(),
        divergences: gw.stats.divergences.load(Ordering::Relaxed),
        reads: gw.stats.reads.load(Ordering::Relaxed),
        coalesced_reads: gw.stats.coalesced_reads.load(Ordering::Relaxed),
        failed_reads: gw.stats.failed_reads.load(Ordering::Relaxed),
        store_errors: gw.stats.store_errors.load(Ordering::Relaxed),
        certificates: served_inventory(gw)
            .into_iter()
            .flatten()
            .map(|c| crate::metrics::CertExpiry {
                role: c.role.to_string(),
                path: c.path.display().to_string(),
                seconds_left: c.seconds_left,
                expiring: c.expiring(),
            })
            .collect(),
    }
}

/// Every certificate the running configuration names: the gateway's own as
/// the front serves it now, the trust anchors as read at the start or the
/// last reload (what the gateway trusts), their time left counted now.
fn served_inventory(gw: &Gateway) -> Vec<Result<crate::certs::CertInfo, crate::certs::CertProblem>> {
    let served = gw.cert.as_ref().map(|slot| slot.chain());
    gw.cert_inventory.get(&gw.cfg.load_full(), served)
}

/// The `certificates` of the status page ([`served_inventory`]: a reload
/// with a new file shows the new one), and the files that cannot be read.
fn certificates(gw: &Gateway) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let (mut certs, mut problems) = (Vec::new(), Vec::new());
    for item in served_inventory(gw) {
        match item {
            Ok(c) => certs.push(json!({
                "role": c.role,
                "chassis": c.role.chassis(),
                "path": c.path.display().to_string(),
                "subject": c.subject,
                "sans": c.sans,
                "sha256": c.sha256,
                "not_after": c.not_after(),
                "days_left": c.days_left,
                "expiring": c.expiring(),
            })),
            Err(p) => problems.push(json!({
                "role": p.role,
                "chassis": p.role.chassis(),
                "path": p.path.display().to_string(),
                "error": p.reason,
            })),
        }
    }
    (certs, problems)
}

pub fn status(gw: &Gateway, headers: &HeaderMap) -> Response {
    if let Err(e) = check_admin(gw, headers) {
        return e.into_response();
    }
    (StatusCode::OK, axum::Json(body(gw))).into_response()
}

/// The status page's JSON (also what the dashboard is sent).
pub fn body(gw: &Gateway) -> serde_json::Value {
    let last = gw.journal.last_seq();
    let chassis: Vec<_> = gw
        .pair
        .members
        .iter()
        .map(|m| {
            // Known to the journal (it was opened with these names); an
            // error would show as no position, not as a made-up 0.
            let applied = gw.journal.applied(&m.upstream.name).ok();
            json!({
                "name": m.upstream.name,
                "url": m.upstream.url.to_string(),
                "state": m.detector.state(),
                // Taken out by an operator (then reported down until given back).
                "maintenance": m.maintenance.load(Ordering::SeqCst),
                "applied_seq": applied,
                "lag": applied.map(|a| last.saturating_sub(a)),
                "last_error": m.last_error.lock().clone(),
                // What its firmware offers and how the gateway works with it
                // (null until the chassis first answered).
                "firmware": m.features.lock().clone(),
                "resyncs": m.resyncs_done.load(Ordering::SeqCst),
                "resyncs_failed": m.resyncs_failed.load(Ordering::SeqCst),
                // The most entries it was sent at once (parallel appliers).
                "most_in_flight": m.most_in_flight.load(Ordering::SeqCst),
                "service_login": match gw.broker.service_problem(m.index) {
                    Some(why) => json!({"code": "service_login_failed", "message": why}),
                    None => json!({"code": "ok"}),
                },
                "verified": gw.journal.verified(&m.upstream.name).ok().flatten(),
            })
        })
        .collect();
    let primary = gw.pair.primary().map(|i| gw.pair.members[i].upstream.name.clone());
    let (certs, cert_problems) = certificates(gw);
    let expiring = certs.iter().filter(|c| c["expiring"] == true).count();
    json!({
        "primary": primary,
        "chassis": chassis,
        "last_seq": last,
        "journal_depth": gw.journal.depth(),
        "journal_disk_bytes": crate::gateway::journal_disk_bytes(&gw.cfg.load().state.dir),
        "ids_ready": gw.pairing.accepts_mutations().is_ok(),
        // The next id a create is given (null until the first pairing set it).
        "next_id": gw.sequencer.id_counter(),
        "divergences": gw.stats.divergences.load(Ordering::Relaxed),
        "failovers": gw.pair.failovers(),
        "store_errors": gw.stats.store_errors.load(Ordering::Relaxed),
        "mutations": gw.stats.mutations.load(Ordering::Relaxed),
        "reads": gw.stats.reads.load(Ordering::Relaxed),
        "coalesced_reads": gw.stats.coalesced_reads.load(Ordering::Relaxed),
        "failed_reads": gw.stats.failed_reads.load(Ordering::Relaxed),
        "sessions": gw.broker.store.count(),
        "resync": gw.progress.lock().clone(),
        "pairing": gw.pairing.get().name(),
        "pairing_blocked": gw.pairing.blocked(),
        // Each certificate the gateway serves or trusts, and its expiry.
        "certificates": certs,
        "certificates_expiring": expiring,
        "certificate_problems": cert_problems,
        // The pair's cascade identity as configured (never a password).
        "cascade": gw.cfg.load().cascade.as_ref().map(|c| json!({
            "serial": c.serial,
            "public_url": c.public_url.to_string(),
            "superior": c.superior.as_ref().map(|s| json!({"url": s.url.to_string(), "username": s.username})),
        })),
    })
}
