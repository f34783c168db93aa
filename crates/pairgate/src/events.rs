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
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite;

use crate::chassis::pair::Pair;
use crate::chassis::upstream::Upstream;
use crate::session::broker::{Broker, Runs};
use crate::session::SessionStore;
use crate::tasks::Tasks;

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
    let stream: Box<dyn AsyncStream> = match &up.tls() {
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
    let scheme = if up.tls().is_some() { "wss" } else { "ws" };
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

/// One upstream socket per account, shared by all of that account's browser
/// sockets: a thousand operator screens cost one chassis socket per account,
/// not a thousand. The hub's task keeps the upstream on the current primary
/// while anyone listens, and ends when the last listener leaves.
pub struct Hubs {
    hubs: parking_lot::Mutex<std::collections::HashMap<String, broadcast::Sender<Arc<str>>>>,
    /// Where the hubs' tasks run (stopped with the gateway).
    tasks: Tasks,
    /// Events of a chassis with translated IDs are rewritten to client IDs.
    translator: Arc<crate::ids::translator::Translator>,
}

impl Hubs {
    pub fn new(tasks: Tasks, translator: Arc<crate::ids::translator::Translator>) -> Hubs {
        Hubs { hubs: Default::default(), tasks, translator }
    }

    /// A receiver of `account`'s events, starting its hub if need be.
    pub fn subscribe(
        self: &Arc<Self>,
        pair: &Arc<Pair>,
        broker: &Arc<Broker>,
        account: &str,
        per_try: Duration,
    ) -> broadcast::Receiver<Arc<str>> {
        let mut hubs = self.hubs.lock();
        if let Some(tx) = hubs.get(account) {
            return tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(1024);
        hubs.insert(account.to_string(), tx.clone());
        self.tasks.spawn("events hub", hub(self.clone(), tx, pair.clone(), broker.clone(), account.to_string(), per_try));
        rx
    }

    fn remove_if_idle(&self, account: &str) -> bool {
        let mut hubs = self.hubs.lock();
        match hubs.get(account) {
            Some(tx) if tx.receiver_count() == 0 => {
                hubs.remove(account);
                true
            }
            _ => false,
        }
    }
}

/// Keep one upstream socket on the primary for `account` while anyone
/// listens, and fan its events out.
async fn hub(hubs: Arc<Hubs>, tx: broadcast::Sender<Arc<str>>, pair: Arc<Pair>, broker: Arc<Broker>, account: String, per_try: Duration) {
    let mut backoff = Duration::from_millis(50);
    loop {
        if tx.receiver_count() == 0 && hubs.remove_if_idle(&account) {
            return;
        }
        let Some((i, mut upstream)) = connect_primary(&pair, &broker, &account, per_try).await else {
            // No primary right now: the browsers keep their sockets; retry soon.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
            continue;
        };
        backoff = Duration::from_millis(50);
        tracing::debug!(chassis = %pair.members[i].upstream.name, %account, "events relayed from this chassis");
        let mut recheck = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                m = upstream.next() => match m {
                    Some(Ok(tungstenite::Message::Text(t))) => {
                        let text = if pair.translated(i) == Some(true) {
                            Arc::from(hubs.translator.event_settled(i, t.as_str()).await.as_str())
                        } else {
                            Arc::from(t.as_str())
                        };
                        let _ = tx.send(text);
                    }
                    Some(Ok(tungstenite::Message::Ping(p))) => {
                        let _ = upstream.send(tungstenite::Message::Pong(p)).await;
                    }
                    Some(Ok(_)) => {}
                    // The chassis went away (or closed us): move to the primary.
                    None | Some(Err(_)) => break,
                },
                _ = recheck.tick() => {
                    // The primary changed (failover, admin) or nobody listens.
                    if pair.primary() != Some(i) || tx.receiver_count() == 0 {
                        let _ = upstream.close(None).await;
                        break;
                    }
                }
            }
        }
    }
}

/// Copy the account's events to `browser` until the browser leaves or its
/// gateway session ends; the browser's socket never closes because a chassis did.
pub async fn relay(
    mut browser: WebSocket,
    hubs: Arc<Hubs>,
    pair: Arc<Pair>,
    broker: Arc<Broker>,
    sessions_token: String,
    account: String,
    per_try: Duration,
) {
    let mut events = hubs.subscribe(&pair, &broker, &account, per_try);
    let store: &SessionStore = &broker.store;
    let mut recheck = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(text) => {
                    if browser.send(Message::Text(text.as_ref().into())).await.is_err() {
                        return;
                    }
                }
                // Too slow to keep up: say so (the client refetches) and go on.
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let note = format!("{{\"type\":\"lagged\",\"data\":{{\"missed\":{n}}}}}");
                    if browser.send(Message::Text(note.into())).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            m = browser.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            _ = recheck.tick() => {
                if store.verify(&sessions_token).is_err() {
                    let _ = browser.send(Message::Close(Some(CloseFrame { code: 4401, reason: "session ended".into() }))).await;
                    return;
                }
            }
        }
    }
}
