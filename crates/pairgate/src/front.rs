//! The front door: TLS (rustls, the certificate from `gateway.toml`), HTTP/1.1
//! and HTTP/2 with WebSocket upgrades, a header-read timeout, and graceful
//! shutdown that lets in-flight requests — mutations above all — finish.
//!
//! Shutdown, spelled out:
//! 1. the shutdown token is cancelled (SIGTERM, Ctrl-C, or a test);
//! 2. the accept loop stops, so new connections are refused by the kernel;
//! 3. every open connection is told to finish its current request and close
//!    (hyper's graceful shutdown); a mutation already journaled completes;
//! 4. after `drain` at most, whatever is left is dropped — a mutation cut there
//!    is still in the journal and is replayed on the next start.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// The peer address of the connection a request came on.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error("{path}: {reason}")]
    Tls { path: String, reason: String },
}

/// A TLS acceptor from the gateway's certificate chain and key (PEM files).
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, FrontError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let err = |p: &Path, reason: String| FrontError::Tls { path: p.display().to_string(), reason };
    let pem = std::fs::read(cert).map_err(|e| err(cert, e.to_string()))?;
    let certs: Result<Vec<CertificateDer<'static>>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    let certs = certs.map_err(|e| err(cert, format!("not a PEM certificate chain: {e}")))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| err(key, format!("no usable private key: {e}")))?;
    let mut cfg =
        rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key_der).map_err(|e| err(cert, e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's cipher-suite order (ring's: AES-256-GCM first), not whatever a
    // client lists first; it matters for TLS 1.2, where a client may prefer weaker.
    cfg.ignore_client_order = true;
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Serve `app` on `listener` until `shutdown` is cancelled, then drain.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    header_timeout: Duration,
    drain: Duration,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    // The header-read timeout also bounds how long an idle keep-alive
    // connection waits for its next request.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone().layer(axum::Extension(ClientAddr(peer))));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => {
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(s), service).into_owned();
                        let _ = watcher.watch(conn).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listener);
    tracing::info!("front: draining open connections");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("front: all connections closed"),
        _ = tokio::time::sleep(drain) => tracing::warn!("front: drain timed out after {drain:?}; dropping the rest"),
    }
}
