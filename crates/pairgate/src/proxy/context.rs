//! What one request is, as every phase sees it: built once by
//! [`super::handle`], before any phase runs.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};

use std::sync::Arc;

use crate::config::{Classified, Config};
use crate::session::Principal;

/// One request through the gateway.
pub struct Ctx {
    /// The client's address (the front door's `ClientAddr`); the login
    /// limiter counts by it.
    pub client: Option<SocketAddr>,
    pub method: Method,
    /// The canonical path: the one spelling classified, and the one forwarded.
    pub path: String,
    /// The canonical path and the query as the client sent it.
    pub path_and_query: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// What the route rules of `gateway.toml` say this request is (decided
    /// once, in the classify phase; nothing classifies it again).
    pub class: Classified,
    /// The body, read in full (bounded) by the read-body phase; empty for the
    /// kinds that take none (static, health, events).
    pub body: Bytes,
    /// The configuration this request runs under, taken once before it is
    /// classified: a reload meanwhile changes the next request, not this one.
    pub cfg: Arc<Config>,
}

/// A request a live gateway session vouches for (the authenticate phase's
/// result): what the read, mutate, logout and events phases take.
pub struct Session {
    pub principal: Principal,
    /// The gateway token it came with (the events relay keys on it).
    pub token: String,
}
