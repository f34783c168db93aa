//! Chassis answers turned into the client's response, and the client's
//! headers into a chassis request's.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use reqwest::header::HeaderMap as UpHeaders;

use crate::chassis::upstream::{forwardable, Answered};
use crate::journal::ClientResponse;

/// The answer of a chassis, passed to the client as it came (with the
/// mutation's seq, if it is one).
pub fn relay(a: &Answered, seq: Option<u64>) -> Response {
    let mut resp = Response::new(Body::from(a.body.clone()));
    *resp.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if a.status == 401 && a.error_code().as_deref() == Some(crate::chassis::applier::ACCOUNT_REFUSED) {
        resp.extensions_mut().insert(AccountRefused);
    }
    if let Some(ct) = &a.content_type {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    if let Some(seq) = seq {
        if let Ok(v) = HeaderValue::from_str(&seq.to_string()) {
            resp.headers_mut().insert("x-pairgate-seq", v);
        }
    }
    resp
}

/// A stored answer (an `Idempotency-Key` repeated), as it was first given.
pub fn stored(r: &ClientResponse) -> Response {
    let mut resp = Response::new(Body::from(r.body.clone()));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    for (k, v) in &r.headers {
        if let (Ok(k), Ok(v)) = (header::HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// The client's headers a chassis may see (no hop-by-hop, no credentials).
pub fn forward_headers(headers: &HeaderMap) -> UpHeaders {
    let mut out = UpHeaders::new();
    for (k, v) in headers {
        if forwardable(k) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// The chassis whose answer a response is (for the access log).
#[derive(Clone)]
pub struct AnsweredBy(pub String);

/// [`relay`], the response marked as chassis `name`'s answer.
pub fn relay_from(a: &Answered, seq: Option<u64>, name: &str) -> Response {
    let mut resp = relay(a, seq);
    resp.extensions_mut().insert(AnsweredBy(name.to_string()));
    resp
}

/// Marks a response that says the account's own backend login failed.
#[derive(Clone, Copy)]
pub struct AccountRefused;

pub fn is_account_refused(resp: &Response) -> bool {
    resp.status() == StatusCode::UNAUTHORIZED && resp.extensions().get::<AccountRefused>().is_some()
}
