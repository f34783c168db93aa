//! The chassis' listener: our own accept loop (rather than `axum::serve`) so
//! the fault hooks can refuse connections (close the listening socket), drop
//! them, cut the open ones, and power the chassis off at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::chassis::Chassis;

/// A running chassis server.
pub struct ServerHandle {
    pub addr: SocketAddr,
    pub chassis: Arc<Chassis>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// Stop accepting, cut every connection, and wait for the loop to end.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        self.chassis.faults.kill.send_modify(|g| *g += 1);
        let _ = self.task.await;
    }

    /// Resolves when the chassis was powered off through `/_sim/power_off`.
    pub async fn powered_off(&self) {
        let mut rx = self.chassis.faults.powered_off.subscribe();
        let _ = rx.wait_for(|off| *off).await;
    }

    pub fn base_url(&self, tls: bool) -> String {
        format!("{}://{}", if tls { "https" } else { "http" }, self.addr)
    }
}

/// Bind and serve `app` for `chassis` on `listener`.
pub fn spawn(listener: TcpListener, app: Router, chassis: Arc<Chassis>, tls: Option<TlsAcceptor>) -> std::io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, addr, app, chassis.clone(), tls, shutdown_rx));
    Ok(ServerHandle { addr, chassis, shutdown, task })
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    app: Router,
    chassis: Arc<Chassis>,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let faults = &chassis.faults;
    let mut changed = faults.changed.subscribe();
    let mut listener = Some(listener);
    loop {
        if *shutdown.borrow() || faults.is_powered_off() {
            return;
        }
        if let Some(until) = faults.refusing() {
            // A closed listening socket: connects are refused by the kernel.
            listener = None;
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = changed.changed() => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("re-binding {addr} after refusing: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let accepted = tokio::select! {
            r = l.accept() => Some(r),
            _ = changed.changed() => None,
            _ = shutdown.changed() => None,
        };
        listener = Some(l);
        match accepted {
            Some(Ok((stream, _peer))) => {
                if faults.dropping() {
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_conn(stream, app.clone(), tls.clone(), faults.kill.subscribe()));
            }
            Some(Err(e)) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            None => {}
        }
    }
}

/// Serve one connection until it ends or the kill switch flips.
async fn serve_conn(stream: TcpStream, app: Router, tls: Option<TlsAcceptor>, mut kill: watch::Receiver<u64>) {
    kill.mark_unchanged();
    let service = TowerToHyperService::new(app);
    let builder = Builder::new(TokioExecutor::new());
    let work = async {
        match tls {
            Some(acceptor) => match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(s)) => {
                    let _ = builder.serve_connection_with_upgrades(TokioIo::new(s), service).await;
                }
                Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            },
            None => {
                let _ = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await;
            }
        }
    };
    tokio::select! {
        _ = work => {}
        _ = kill.changed() => {}
    }
}
