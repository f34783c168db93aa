//! After a request: the gateway sessions an account change or a refused
//! account login ends.

use super::Ctx;
use crate::gateway::Gateway;

/// A user deleted, renamed, demoted or given a new password through the
/// gateway (a rule with `ends_sessions_of`): every gateway session of that
/// account ends now, with its stored credentials and backend sessions.
/// Runs after a mutation answered 2xx.
pub fn end_sessions_of_changed_account(gw: &Gateway, ctx: &Ctx) {
    let Some(rule) = ctx.cfg.rule(&ctx.class) else { return };
    let Some(param) = &rule.ends_sessions_of else { return };
    // A password, name or role may have changed: chassis confirm logins again.
    gw.broker.recent.clear();
    let Some(user_id) = rule.path.param(param, &ctx.path).and_then(|v| v.parse::<u64>().ok()) else { return };
    for name in gw.broker.store.usernames_of(user_id) {
        end_account(gw, &name, "the account was changed through the gateway");
    }
}

/// End every gateway session of `username`, forget its stored credentials and
/// its backend sessions. Runs after a chassis refused the account's own login.
pub fn end_account(gw: &Gateway, username: &str, why: &str) {
    gw.broker.recent.forget(username);
    gw.broker.backends.forget_user(username);
    match gw.broker.store.revoke_account(username) {
        Ok(n) => tracing::info!(user = %username, sessions = n, "gateway sessions ended: {why}"),
        Err(e) => tracing::error!(user = %username, "ending the account's gateway sessions: {e}"),
    }
}
