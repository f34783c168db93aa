//! `GET /api/v1/events`: every committed change, as `{"seq","type","data"}`
//! text frames on a WebSocket. Browsers cannot set headers on a WebSocket, so
//! the token may come as `?token=`.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::Auth;
use crate::chassis::Chassis;

pub async fn socket(State(c): State<Arc<Chassis>>, _a: Auth, ws: WebSocketUpgrade) -> Response {
    let rx = c.subscribe();
    // Upgraded sockets outlive their HTTP connection task, so they watch the
    // fault hooks' kill switch themselves (a dropped link or a power-off cuts them too).
    let mut kill = c.faults.kill.subscribe();
    kill.mark_unchanged();
    ws.on_upgrade(move |socket| pump(socket, rx, kill))
}

async fn pump(mut socket: WebSocket, mut rx: tokio::sync::broadcast::Receiver<Arc<str>>, mut kill: tokio::sync::watch::Receiver<u64>) {
    loop {
        tokio::select! {
            _ = kill.changed() => return,
            ev = rx.recv() => match ev {
                Ok(text) => {
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
