//! The front door: TLS (rustls, the certificate from `gateway.toml`, the server's
//! cipher-suite order), HTTP/1.1 and HTTP/2 with WebSocket upgrades, the limits
//! below, and graceful shutdown that lets in-flight requests — mutations above
//! all — finish.
//!
//! Limits (`[listen]` in `gateway.toml`):
//! - **connections**: at most `max_connections` open at once (TLS handshakes
//!   included). At the cap a new connection takes the place of the connection idle
//!   the longest (no request in flight), which is closed; with none idle the new one
//!   is closed at once. Running out of file descriptors (EMFILE) is handled the same
//!   way, and the gateway raises its soft descriptor limit to the hard one at start.
//! - **idle**: a connection with no request in flight for `idle_timeout_ms` is
//!   closed (HTTP/1 keep-alive and HTTP/2 alike; an HTTP/1 connection waiting for
//!   the next request's headers is also bound by `header_timeout_ms`, which hyper
//!   starts as soon as it waits). Event WebSockets are upgraded out of this: they
//!   are not idle connections.
//! - **headers**: a TLS handshake and an HTTP/1 request head must each arrive
//!   within `header_timeout_ms`; HTTP/2 header lists are capped at
//!   [`H2_MAX_HEADER_LIST_BYTES`], streams per connection at
//!   [`H2_MAX_CONCURRENT_STREAMS`], and an HTTP/2 peer that stops answering
//!   keep-alive pings ([`H2_KEEP_ALIVE_INTERVAL`], [`H2_KEEP_ALIVE_TIMEOUT`]) is
//!   dropped.
//! - **requests**, as tower layers on the router (see [`crate::limits`]): at most
//!   `max_requests_in_flight` handled at once (more wait for a slot), and each body
//!   under `max_body_bytes` (413) and `body_timeout_ms` (408).
//!
//! Shutdown, spelled out:
//! 1. the shutdown token is cancelled (SIGTERM, Ctrl-C, or a test);
//! 2. the accept loop stops, so new connections are refused by the kernel;
//! 3. every open connection is told to finish its current request and close
//!    (hyper's graceful shutdown); a mutation already journaled completes;
//! 4. after `drain` at most, whatever is left is dropped — a mutation cut there
//!    is still in the journal and is replayed on the next start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::{Builder, UpgradeableConnection};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Listen;
use crate::limits::BodyLimits;

/// HTTP/2: streams one connection may have open at once.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 128;
/// HTTP/2: the largest header list (decoded) a request may carry.
pub const H2_MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;
/// HTTP/2: a keep-alive ping this often while the connection is open…
pub const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// …and the connection is dropped if it is not answered within this.
pub const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// A connection closed to make room, or for being idle, has this long to finish
/// (while a request is in flight on it, up to the drain time).
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How often idle connections are looked for.
const IDLE_SWEEP_EVERY: Duration = Duration::from_millis(250);

/// The peer address of the connection a request came on.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error("{path}: {reason}")]
    Tls { path: String, reason: String },
}

/// The gateway's certificate chain and key, swappable while it serves: rustls
/// asks this at every handshake, so a reload (`src/reload.rs`) changes the
/// certificate of the next connection and leaves open ones as they are.
#[derive(Debug)]
pub struct CertSlot(arc_swap::ArcSwap<rustls::sign::CertifiedKey>);

impl CertSlot {
    /// The certificate chain and key in these PEM files.
    pub fn load(cert: &Path, key: &Path) -> Result<CertSlot, FrontError> {
        Ok(CertSlot(arc_swap::ArcSwap::from_pointee(certified_key(cert, key)?)))
    }

    /// Serve these from the next handshake on.
    pub fn replace(&self, key: rustls::sign::CertifiedKey) {
        self.0.store(Arc::new(key));
    }

    /// The whole chain served now (DER, leaf first).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.0.load().cert.clone()
    }

    /// The leaf certificate served now (DER).
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.0.load().cert.first().cloned()
    }
}

impl rustls::server::ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// A certificate chain and its key from PEM files, checked to belong together.
pub fn certified_key(cert: &Path, key: &Path) -> Result<rustls::sign::CertifiedKey, FrontError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let err = |p: &Path, reason: String| FrontError::Tls { path: p.display().to_string(), reason };
    let pem = std::fs::read(cert).map_err(|e| err(cert, e.to_string()))?;
    let certs: Result<Vec<CertificateDer<'static>>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    let certs = certs.map_err(|e| err(cert, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(err(cert, "no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| err(key, format!("no usable private key: {e}")))?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key_der).map_err(|e| err(key, format!("not a usable private key: {e}")))?;
    let certified = rustls::sign::CertifiedKey::new(certs, signer);
    certified.keys_match().map_err(|e| err(key, format!("this key does not belong to the certificate {}: {e}", cert.display())))?;
    Ok(certified)
}

/// A TLS acceptor serving whatever certificate `slot` holds.
pub fn tls_acceptor(slot: Arc<CertSlot>) -> TlsAcceptor {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut cfg = rustls::ServerConfig::builder().with_no_client_auth().with_cert_resolver(slot);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's cipher-suite order (ring's: AES-256-GCM first), not whatever a
    // client lists first; it matters for TLS 1.2, where a client may prefer weaker.
    cfg.ignore_client_order = true;
    TlsAcceptor::from(Arc::new(cfg))
}

/// What the front enforces; from `[listen]` (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct FrontLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body: BodyLimits,
    pub max_connections: u32,
    pub max_requests_in_flight: u32,
    /// How long a shutdown waits for open connections.
    pub drain: Duration,
}

impl FrontLimits {
    pub fn from_listen(listen: &Listen, drain: Duration) -> FrontLimits {
        FrontLimits {
            header_timeout: listen.header_timeout,
            idle_timeout: listen.idle_timeout,
            body: BodyLimits { max_bytes: listen.max_body_bytes, timeout: listen.body_timeout },
            max_connections: listen.max_connections.max(1),
            max_requests_in_flight: listen.max_requests_in_flight.max(1),
            drain,
        }
    }
}

/// One open client connection, as the connection table sees it.
struct Conn {
    /// Requests being handled on it now.
    in_flight: AtomicUsize,
    /// When it last became idle (ms since the table's epoch).
    idle_since_ms: AtomicU64,
    /// Cancelled to close it (gracefully: requests in flight finish).
    close: CancellationToken,
    /// Its place under `max_connections`; handed to a new connection when this one is
    /// closed to make room.
    slot: parking_lot::Mutex<Option<OwnedSemaphorePermit>>,
}

/// Counts a request in flight on a connection while it lives.
struct Busy(Arc<Conn>, Arc<Table>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle_since_ms.store(self.1.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every open connection, for the cap and the idle timeout.
struct Table {
    conns: parking_lot::Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    slots: Arc<Semaphore>,
    epoch: Instant,
    /// Parent of every connection's `close`: cancelled on shutdown.
    all: CancellationToken,
}

impl Table {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn insert(&self, slot: OwnedSemaphorePermit) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            close: self.all.child_token(),
            slot: parking_lot::Mutex::new(Some(slot)),
        });
        self.conns.lock().insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.conns.lock().remove(&id);
    }

    fn len(&self) -> usize {
        self.conns.lock().len()
    }

    /// Closes the connection idle the longest and takes its slot.
    fn evict_idle(&self) -> Option<OwnedSemaphorePermit> {
        let mut conns = self.conns.lock();
        let (&id, _) = conns
            .iter()
            .filter(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, c)| c.idle_since_ms.load(Ordering::Relaxed))?;
        let conn = conns.remove(&id)?;
        drop(conns);
        conn.close.cancel();
        let slot = conn.slot.lock().take();
        slot
    }

    /// Closes every connection idle for `idle` or longer.
    fn close_idle(&self, idle: Duration) -> usize {
        let now = self.now_ms();
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        let conns = self.conns.lock();
        let mut closed = 0;
        for c in conns.values() {
            let since = c.idle_since_ms.load(Ordering::Relaxed);
            if c.in_flight.load(Ordering::Acquire) == 0 && now.saturating_sub(since) >= idle_ms && !c.close.is_cancelled() {
                c.close.cancel();
                closed += 1;
            }
        }
        closed
    }

    /// A slot for a new connection: a free one, else an idle connection's.
    fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok().or_else(|| self.evict_idle())
    }
}

fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(rustix::io::Errno::from_io_error(e), Some(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE))
}

/// Serve `app` on `listener` until `shutdown` is cancelled, then drain.
pub async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, app: Router, limits: FrontLimits, shutdown: CancellationToken) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST_BYTES)
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
    // The request layers, shared by every connection (one semaphore for all).
    let app = app.layer(
        tower::ServiceBuilder::new()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(limits.max_requests_in_flight as usize))
            .layer(crate::limits::body_guard(limits.body)),
    );
    let table = Arc::new(Table {
        conns: Default::default(),
        next_id: AtomicU64::new(0),
        slots: Arc::new(Semaphore::new(limits.max_connections as usize)),
        epoch: Instant::now(),
        all: CancellationToken::new(),
    });
    let sweeper = tokio::spawn({
        let table = table.clone();
        let stop = table.all.clone();
        async move {
            let mut tick = tokio::time::interval(IDLE_SWEEP_EVERY);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let closed = table.close_idle(limits.idle_timeout);
                if closed > 0 {
                    tracing::debug!(closed, "front: closed idle connections");
                }
            }
        }
    });
    let mut last_full_warning: Option<Instant> = None;
    let mut warn_full = |what: &str| {
        if last_full_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            tracing::warn!(max_connections = limits.max_connections, "front: {what}");
            last_full_warning = Some(Instant::now());
        }
    };
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) if out_of_fds(&e) => {
                    // Make room: the connection idle the longest goes.
                    drop(table.evict_idle());
                    warn_full(&format!("accept: {e}; closing an idle connection to make room"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Some(slot) = table.slot() else {
            warn_full("at max_connections with every connection busy; closing new connections");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (id, conn) = table.insert(slot);
        let tracked = {
            let (conn, table) = (conn.clone(), table.clone());
            axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
                conn.in_flight.fetch_add(1, Ordering::AcqRel);
                let busy = Busy(conn.clone(), table.clone());
                async move {
                    let _busy = busy;
                    next.run(req).await
                }
            })
        };
        let service = TowerToHyperService::new(app.clone().layer(axum::Extension(ClientAddr(peer))).layer(tracked));
        let builder = builder.clone();
        let tls = tls.clone();
        let table = table.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, tls, builder, service, &conn, limits).await;
            table.remove(id);
        });
    }
    drop(listener);
    tracing::info!(open = table.len(), "front: draining open connections");
    table.all.cancel();
    sweeper.abort();
    let deadline = tokio::time::Instant::now() + limits.drain;
    // Bounded: every connection task ends within the drain time (see serve_connection).
    while table.len() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match table.len() {
        0 => tracing::info!("front: all connections closed"),
        n => tracing::warn!("front: drain timed out after {:?} with {n} connections open; dropping them", limits.drain),
    }
}

type Service = TowerToHyperService<Router>;

/// One connection: the TLS handshake (bounded by the header timeout), then HTTP
/// until the peer leaves or `conn.close` is cancelled; then a graceful close.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    builder: Builder<TokioExecutor>,
    service: Service,
    conn: &Conn,
    limits: FrontLimits,
) {
    match tls {
        Some(acceptor) => {
            let handshake = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream));
            let s = tokio::select! {
                _ = conn.close.cancelled() => return,
                r = handshake => match r {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                },
            };
            http(builder.serve_connection_with_upgrades(TokioIo::new(s), service), conn, limits).await
        }
        None => http(builder.serve_connection_with_upgrades(TokioIo::new(stream), service), conn, limits).await,
    }
}

async fn http<I>(connection: UpgradeableConnection<'_, I, Service, TokioExecutor>, conn: &Conn, limits: FrontLimits)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = conn.close.cancelled() => {}
    }
    connection.as_mut().graceful_shutdown();
    // An idle connection gets CLOSE_GRACE; one with a request in flight (it arrived
    // as the close was decided, or this is a shutdown) up to the drain time.
    let started = tokio::time::Instant::now();
    loop {
        let wait = tokio::time::sleep(CLOSE_GRACE);
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = wait => {}
        }
        if conn.in_flight.load(Ordering::Acquire) == 0 || started.elapsed() >= limits.drain {
            return;
        }
    }
}
