//! Calls the gateway makes with its own service account to recover the
//! pair (digests, exports, listings), and the error every recovery step
//! answers with.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Method;

use crate::chassis::pair::Pair;
use crate::chassis::upstream::{Outcome, UpRequest};
use crate::session::broker::{Broker, Runs};

#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    /// A call to a chassis that did not succeed: which call, on which
    /// chassis, and what happened (its answer, or who closed what when).
    #[error("{call} on chassis {chassis}: {what}")]
    Call { chassis: String, call: String, what: String },
    /// The source's export broke off while it was streamed into the target.
    #[error("the export from chassis {chassis} broke off after {at}: {why}")]
    ExportBroke { chassis: String, at: String, why: String },
    /// The import made the target's copy of the gateway's own account
    /// unusable and it could not be given its own password back.
    #[error("chassis {0}: the gateway's own account after the import: {1}")]
    ServiceAccount(String, String),
    #[error("chassis {0} did not apply the journal's last entry in time")]
    NotCaughtUp(String),
    #[error("the source chassis {0} is not in sync")]
    NoSource(String),
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
}

/// A call with the gateway's service account: its outcome, whatever it is.
pub async fn service_send(
    broker: &Broker,
    pair: &Pair,
    i: usize,
    method: &Method,
    path: &str,
    body: Option<Bytes>,
    timeout: Duration,
) -> Outcome {
    let up = &pair.members[i].upstream;
    let mut headers = HeaderMap::new();
    if body.is_some() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let body = body.unwrap_or_default();
    broker
        .send(i, up, &Runs::Service, || UpRequest {
            method: method.clone(),
            path_and_query: path,
            headers: headers.clone(),
            body: body.clone(),
            token: None,
            timeout,
        })
        .await
}

/// A call with the gateway's service account that must succeed (2xx): its body.
pub async fn service_call(
    broker: &Broker,
    pair: &Pair,
    i: usize,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    timeout: Duration,
) -> Result<Bytes, ResyncError> {
    match service_send(broker, pair, i, &method, path, body, timeout).await {
        Outcome::Answered(a) if a.is_success() => Ok(a.body),
        other => Err(call_failed(&pair.members[i].upstream.name, &method, path, &other)),
    }
}

pub(crate) fn call_failed(chassis: &str, method: &Method, path: &str, what: &Outcome) -> ResyncError {
    ResyncError::Call { chassis: chassis.to_string(), call: format!("{method} {path}"), what: what.describe() }
}

pub async fn digest(broker: &Broker, pair: &Pair, i: usize, timeout: Duration) -> Result<String, ResyncError> {
    let body = service_call(broker, pair, i, Method::GET, "/api/v1/system/digest", None, timeout).await?;
    let bad =
        |what: String| ResyncError::Call { chassis: pair.members[i].upstream.name.clone(), call: "GET /api/v1/system/digest".into(), what };
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| bad(format!("answered 200 with no JSON: {e}")))?;
    match v["digest"].as_str() {
        Some(d) if !d.is_empty() => Ok(d.to_string()),
        _ => Err(bad("answered 200 without a digest".into())),
    }
}
