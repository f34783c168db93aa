//! Running a gateway: start it, serve it, stop it on a signal.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;

use crate::config::Config;
use crate::gateway::{Gateway, StartError};

/// The router: one handler for everything (the request path in `proxy.rs`).
pub fn app(gw: Arc<Gateway>) -> Router {
    Router::new().fallback(crate::proxy::handle).with_state(gw)
}

/// Start the gateway from `cfg` and serve until `gw.shutdown` is cancelled.
pub async fn run(cfg: Config) -> Result<Arc<Gateway>, StartError> {
    run_with(cfg, |_| {}).await
}

/// As [`run`], handing the started gateway to `started` before serving (so
/// the caller can cancel its shutdown token).
pub async fn run_with(cfg: Config, started: impl FnOnce(Arc<Gateway>)) -> Result<Arc<Gateway>, StartError> {
    let addr = cfg.listen.addr;
    let limits = crate::front::FrontLimits::from_listen(&cfg.listen, Duration::from_secs(10));
    raise_fd_limit(cfg.listen.max_connections);
    let gw = Gateway::start(cfg).await?;
    let tls = gw.tls();
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| StartError::Bind(addr, e))?;
    tracing::info!(%addr, tls = tls.is_some(), "gateway serving");
    let shutdown = gw.shutdown.clone();
    gw.tasks.spawn("reload on SIGHUP", reload_on_hangup(gw.clone()));
    started(gw.clone());
    let app = app(gw.clone());
    crate::front::serve(listener, tls, app, limits, shutdown).await;
    // Drained: verify, stop every background task, persist the sessions.
    gw.stop().await;
    Ok(gw)
}

/// Raise the soft limit on open files to the hard one: each client connection is a
/// descriptor, and `max_connections` of them should fit beside the gateway's own
/// (journal, sessions, chassis connections). Says so when they cannot.
fn raise_fd_limit(max_connections: u32) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, lim) {
            tracing::warn!("raising the open-file limit to {:?}: {e}", lim.maximum);
        }
    }
    let now = getrlimit(Resource::Nofile).current;
    let wanted = u64::from(max_connections) + 256;
    if now.is_some_and(|n| n < wanted) {
        tracing::warn!(
            open_file_limit = ?now,
            max_connections,
            "the open-file limit is below listen.max_connections + 256: connections will be refused (EMFILE) before the cap; \
             raise it (ulimit -n, LimitNOFILE=) or lower max_connections"
        );
    }
}

/// Resolves on SIGTERM or Ctrl-C.
/// Every SIGHUP: read `gateway.toml` and the certificates again
/// (`Gateway::reload`); the outcome is logged.
async fn reload_on_hangup(gw: Arc<Gateway>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => return tracing::warn!("cannot listen for SIGHUP, reload with `pairgate reload` instead: {e}"),
    };
    while hangups.recv().await.is_some() {
        match gw.reload_for("SIGHUP") {
            Ok(r) => tracing::info!(file = %r.file, changed = ?r.changed, "SIGHUP: configuration reloaded"),
            Err(e) => tracing::error!("SIGHUP: reload refused: {e}"),
        }
    }
}

/// Until SIGTERM or Ctrl-C.
pub async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
