//! A reference display-control chassis.
//!
//! It implements `docs/chassis-api.md` faithfully, including the two behaviours
//! the pairgate gateway exists to fix: MySQL-style auto-increment ids (two
//! chassis with different histories number the same create differently) and
//! one session per account (login preemption). Tests, benchmarks and the
//! demo run the gateway against two of these.
//!
//! Use it as a library ([`start`]) to run a chassis inside a test, or as the
//! `chassis-sim` binary.

pub mod api;
pub mod auth;
pub mod body;
pub mod cascade;
pub mod chassis;
pub mod cli;
pub mod db;
pub mod error;
pub mod faults;
pub mod ids;
pub mod model;
pub mod server;
pub mod session;
pub mod store;
pub mod tls;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;

pub use chassis::{Chassis, ChassisConfig, Features};
pub use server::ServerHandle;

/// Where and how to listen.
#[derive(Clone, Debug)]
pub struct Listen {
    pub addr: SocketAddr,
    /// Certificate chain and key (PEM); `None` serves plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Start(#[from] chassis::StartError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("listening on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// The whole HTTP application of one chassis.
pub fn app(chassis: Arc<Chassis>) -> Router {
    let faulted =
        api::router(chassis.clone()).merge(web::router()).layer(axum::middleware::from_fn_with_state(chassis.clone(), faults::layer));
    faults::router(chassis.cfg.max_import).with_state(chassis).merge(faulted).fallback(api::no_route)
}

/// Open the chassis' state and start serving it.
pub async fn start(mut cfg: ChassisConfig, listen: Listen) -> Result<ServerHandle, Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = match &listen.tls {
        Some((cert, key)) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(cert, key).map_err(Error::Tls)?)),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(listen.addr).await.map_err(|e| Error::Bind(listen.addr, e))?;
    let addr = listener.local_addr().map_err(|e| Error::Bind(listen.addr, e))?;
    if cfg.public_url.is_empty() {
        cfg.public_url = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
    }
    let chassis = Chassis::open(cfg)?;
    server::spawn(listener, app(chassis.clone()), chassis, tls).map_err(|e| Error::Bind(addr, e))
}
