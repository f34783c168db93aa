//! The login and logout phases: a user logs in once, at the gateway.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::relay::relay;
use super::{Ctx, Session};
use crate::chassis::detector::ChassisState;
use crate::chassis::upstream::Outcome;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::session::broker::BrokerError;

/// Runs for a `login` route (no session asked; the body bounded as for an
/// unauthenticated request). Checked against a chassis (as that user,
/// `force: true`); the chassis token becomes the account's shared backend
/// session there; the browser gets a gateway token.
pub async fn login(gw: &Gateway, ctx: &Ctx) -> Response {
    #[derive(serde::Deserialize)]
    struct LoginReq {
        username: String,
        password: String,
        #[serde(default)]
        #[allow(dead_code)]
        force: bool,
    }
    let req: LoginReq = match serde_json::from_slice(&ctx.body) {
        Ok(r) => r,
        Err(e) => return GatewayError::MalformedJson(e.to_string()).into_response(),
    };
    let ip = ctx.client.map(|c| c.ip()).unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    // Counted from here, as a failure unless it ends otherwise: parallel
    // guesses cannot all pass before any of them is counted.
    let attempt = match gw.broker.limiter.begin(ip, &req.username) {
        Ok(a) => a,
        Err(wait) => return GatewayError::TooManyLogins(wait.secs()).into_response(),
    };
    // A second browser of an account a chassis confirmed a moment ago: no
    // chassis login (which would replace the account's shared session).
    if let Some(account) = gw.broker.recent.check(&req.username, &req.password) {
        gw.broker.limiter.succeeded(attempt);
        return issue_session(gw, account, None).await;
    }
    let mut order = gw.pair.read_order();
    for i in 0..2 {
        if !order.contains(&i) && gw.pair.state(i) != ChassisState::Down {
            order.push(i);
        }
    }
    let mut last = String::from("no chassis is reachable");
    for i in order {
        let up = &gw.pair.members[i].upstream;
        match gw.broker.chassis_login(up, &req.username, &req.password).await {
            Ok((token, mut account)) => {
                if gw.pair.translated(i) == Some(true) {
                    // The account as clients know it (its id in their numbering).
                    match gw.translator.login_user(i, &ctx.path, account.user_id) {
                        Some(id) => account.user_id = id,
                        None => {
                            tracing::warn!(chassis = %up.name, user = %req.username, id = account.user_id, "the account's id on this chassis has no client id (made behind the gateway's back?); answered as it is")
                        }
                    }
                }
                gw.broker.backends.set(&up.name, &req.username, token);
                gw.broker.limiter.succeeded(attempt);
                gw.broker.recent.remember(&req.username, &req.password, &account);
                return issue_session(gw, account, Some(req.password)).await;
            }
            Err(BrokerError::BadCredentials(outcome)) => {
                // The attempt stays counted.
                drop(attempt);
                gw.broker.recent.forget(&req.username);
                tracing::info!(user = %req.username, "login refused by the chassis");
                return match outcome {
                    Outcome::Answered(a) => relay(&a, None),
                    other => GatewayError::Unavailable(other.describe()).into_response(),
                };
            }
            Err(e) => last = e.to_string(),
        }
    }
    gw.broker.limiter.undecided(attempt);
    GatewayError::Unavailable(last).into_response()
}

/// A gateway session for `account` (and, after a chassis login, its sealed
/// password for later re-logins). Both writes fsync: off the async threads.
async fn issue_session(gw: &Gateway, account: crate::session::AccountInfo, password: Option<String>) -> Response {
    let broker = gw.broker.clone();
    let issued = tokio::task::spawn_blocking(move || {
        if let Some(pw) = password {
            if let Err(e) = broker.store.remember_credentials(&account.username, &pw) {
                tracing::error!("storing credentials: {e}");
            }
        }
        broker.store.issue(&account).map(|issued| issued.login_response(&account))
    })
    .await;
    match issued {
        Ok(Ok(body)) => (StatusCode::OK, axum::Json(body)).into_response(),
        Ok(Err(e)) => GatewayError::Journal(e.to_string()).into_response(),
        Err(e) => GatewayError::Journal(e.to_string()).into_response(),
    }
}

/// Runs for a `logout` route, authenticated: ends this gateway session only.
/// The account's other sessions and its shared backend sessions stay.
pub fn logout(gw: &Gateway, session: &Session) -> Response {
    match gw.broker.store.revoke(&session.principal.session_id) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => GatewayError::Journal(e.to_string()).into_response(),
    }
}
