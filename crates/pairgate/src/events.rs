//! The events WebSocket through the gateway.
//!
//! The browser keeps ONE socket to the gateway. Behind it, the gateway holds a
//! socket to the primary chassis (as the user's backend session) and copies
//! its events to the browser. When that upstream socket ends — the chassis
//! died, was restarted, or stopped being primary — the gateway connects to
//! the current primary and carries on; the browser's socket never closes
//! because of a chassis. The event `seq` numbers are each chassis' own, so
//! after a move the browser sees a jump; the web client refetches on any
//! event anyway.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;

use crate::broker::{Broker, Runs};
use crate::pair::Pair;
use crate::session::SessionStore;
use crate::upstream::Upstream;

type Upstream_ = tokio_tungstenite::WebSocketStream<Box<dyn AsyncStream>>;

/// A byte stream the upstream socket runs over (plain TCP or TLS).
pub trait AsyncStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> AsyncStream for T {}

/// Why an upstream connection attempt failed.
enum ConnectError {
    /// The chassis refused our backend token: re-login and retry.
    Unauthorized,
    Other(String),
}

async fn connect(up: &Upstream, token: &str, limit: Duration) -> Result<Upstream_, ConnectError> {
    let host = up.url.host().to_string();
    let port = up.url.port();
    let tcp = tokio::time::timeout(limit, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| ConnectError::Other("connect timed out".into()))?
        .map_err(|e| ConnectError::Other(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn AsyncStream> = match &up.tls {
        Some(cfg) => {
            let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| ConnectError::Other(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| ConnectError::Other(format!("TLS: {e}")))?;
            Box::new(tls)
        }
        None => Box::new(tcp),
    };
    let scheme = if up.tls.is_some() { "wss" } else { "ws" };
    let url = format!("{scheme}://{host}:{port}/api/v1/events?token={token}");
    match tokio::time::timeout(limit, tokio_tungstenite::client_async(url, stream)).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(resp))) if resp.status() == 401 => Err(ConnectError::Unauthorized),
        Ok(Err(e)) => Err(ConnectError::Other(e.to_string())),
        Err(_) => Err(ConnectError::Other("WebSocket handshake timed out".into())),
    }
}

/// Connect to the current primary as `account`, re-logging in once on a 401.
async fn connect_primary(pair: &Pair, broker: &Broker, account: &str, limit: Duration) -> Option<(usize, Upstream_)> {
    let i = pair.primary()?;
    let up = &pair.members[i].upstream;
    let runs = Runs::User(account.to_string());
    for _ in 0..2 {
        let token = broker.token(i, up, &runs).await.ok()?;
        match connect(up, token.token.expose(), limit).await {
            Ok(ws) => return Some((i, ws)),
            Err(ConnectError::Unauthorized) => {
                let _ = broker.relogin(i, up, &runs, token.generation).await;
            }
            Err(ConnectError::Other(e)) => {
                tracing::debug!(chassis = %up.name, "events upstream: {e}");
                return None;
            }
        }
    }
    None
}

/// Copy events from whichever chassis is primary to `browser` until the
/// browser leaves or its gateway session ends.
pub async fn relay(
    mut browser: WebSocket,
    pair: Arc<Pair>,
    broker: Arc<Broker>,
    sessions_token: String,
    account: String,
    per_try: Duration,
) {
    let mut backoff = Duration::from_millis(50);
    let store: &SessionStore = &broker.store;
    loop {
        if store.verify(&sessions_token).is_err() {
            let _ = browser.send(Message::Close(Some(CloseFrame { code: 4401, reason: "session ended".into() }))).await;
            return;
        }
        let Some((i, mut upstream)) = connect_primary(&pair, &broker, &account, per_try).await else {
            // No primary right now: keep the browser's socket, try again soon.
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                m = browser.recv() => if matches!(m, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) { return },
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
            continue;
        };
        backoff = Duration::from_millis(50);
        tracing::debug!(chassis = %pair.members[i].upstream.name, "events relayed from this chassis");
        let mut recheck = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                m = upstream.next() => match m {
                    Some(Ok(tungstenite::Message::Text(t))) => {
                        if browser.send(Message::Text(t.as_str().into())).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(tungstenite::Message::Ping(p))) => {
                        let _ = upstream.send(tungstenite::Message::Pong(p)).await;
                    }
                    Some(Ok(_)) => {}
                    // The chassis went away (or closed us): move to the primary.
                    None | Some(Err(_)) => break,
                },
                m = browser.recv() => match m {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {
                        let _ = upstream.close(None).await;
                        return;
                    }
                    Some(Ok(_)) => {}
                },
                _ = recheck.tick() => {
                    // The primary changed (failover, admin): follow it.
                    if pair.primary() != Some(i) {
                        let _ = upstream.close(None).await;
                        break;
                    }
                    if store.verify(&sessions_token).is_err() {
                        let _ = browser.send(Message::Close(Some(CloseFrame { code: 4401, reason: "session ended".into() }))).await;
                        return;
                    }
                }
            }
        }
    }
}
