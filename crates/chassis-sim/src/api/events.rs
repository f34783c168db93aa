//! `GET /api/v1/events`: every committed change, as `{"seq","type","data"}`
//! text frames on a WebSocket. Browsers cannot set headers on a WebSocket, so
//! the token may come as `?token=`. A socket whose session ends (preempted,
//! logged out, expired) is closed with code 4401 and the reason.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::Auth;
use crate::chassis::Chassis;
use crate::error::ApiError;

pub async fn socket(State(c): State<Arc<Chassis>>, a: Auth, ws: WebSocketUpgrade) -> Response {
    let rx = c.subscribe();
    // Upgraded sockets outlive their HTTP connection task, so they watch the
    // fault hooks' kill switch themselves (a dropped link or a power-off cuts them too).
    let mut kill = c.faults.kill.subscribe();
    kill.mark_unchanged();
    ws.on_upgrade(move |socket| pump(socket, c, a.0.token, rx, kill))
}

/// Whether the socket's session still stands (not preempted, logged out or expired).
fn still_valid(c: &Chassis, token: &str) -> Result<(), ApiError> {
    c.sessions().check(token).map(|_| ())
}

async fn close(mut socket: WebSocket, e: ApiError) {
    let reason = format!("{}: {}", e.code(), e);
    let _ = socket.send(Message::Close(Some(CloseFrame { code: 4401, reason: reason.chars().take(120).collect::<String>().into() }))).await;
}

async fn pump(
    mut socket: WebSocket,
    c: Arc<Chassis>,
    token: String,
    mut rx: tokio::sync::broadcast::Receiver<Arc<str>>,
    mut kill: tokio::sync::watch::Receiver<u64>,
) {
    // An idle socket notices a revoked session within this period; a busy
    // one before the next event it would have received.
    let mut recheck = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = kill.changed() => return,
            _ = recheck.tick() => {
                if let Err(e) = still_valid(&c, &token) {
                    return close(socket, e).await;
                }
            }
            ev = rx.recv() => match ev {
                Ok(text) => {
                    if let Err(e) = still_valid(&c, &token) {
                        return close(socket, e).await;
                    }
                    if socket.send(Message::Text(text.as_ref().into())).await.is_err() {
                        return;
                    }
                }
                // A client too slow to keep up is told so and disconnected:
                // it must refetch, not believe it saw everything.
                Err(RecvError::Lagged(n)) => {
                    let _ = socket.send(Message::Text(format!("{{\"type\":\"lagged\",\"data\":{{\"missed\":{n}}}}}").into())).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
