//! The events phase: a WebSocket upgrade a live session asked for.

use std::sync::Arc;

use axum::extract::WebSocketUpgrade;
use axum::response::Response;

use super::Session;
use crate::gateway::Gateway;

/// Runs for an `events` route once the session is authenticated: the
/// browser's socket stays with the gateway; its upstream follows the primary
/// (see `events.rs`).
pub fn relay(gw: &Arc<Gateway>, ws: WebSocketUpgrade, session: Session) -> Response {
    let Session { principal, token } = session;
    let pair = gw.pair.clone();
    let broker = gw.broker.clone();
    let hubs = gw.hubs.clone();
    let per_try = gw.cfg.load().timeouts.per_try;
    // Browsers send next to nothing on this socket: small buffers (the
    // 128 KiB defaults cost 1,000 operator screens over 100 MiB).
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .on_upgrade(move |socket| crate::events::relay(socket, hubs, pair, broker, token, principal.username, per_try))
}
