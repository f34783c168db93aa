//! Request limits on the front, as tower layers (see [`crate::front`]):
//! - [`body_guard`]: every request body is read against a deadline
//!   (`listen.body_timeout_ms`, from the moment the request gets a slot) and a size
//!   (`listen.max_body_bytes`). Past the deadline the body fails with
//!   [`BodyError::Timeout`] (the handler answers 408 `body_timeout`); past the size it
//!   is still read to its end, discarded, up to [`DRAIN_AT_MOST`], then fails with
//!   [`BodyError::TooLarge`] (413 `body_too_large`), so the client gets the answer
//!   instead of a reset in mid-upload.
//! - the cap on requests in flight (`listen.max_requests_in_flight`) is tower's
//!   global concurrency limit: more requests wait for a slot.
//!
//! Handlers may ask for less than `max_body_bytes` ([`UNAUTHENTICATED_MAX_BODY_BYTES`]
//! for a login or a `/_pairgate` request, read before anyone is authenticated): see
//! `proxy.rs`'s `read_body`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Sleep;

/// The most a request without a session may send: a login is a user name and a
/// password, an admin action `{"on": true}`. 8 KiB is generous for both.
pub const UNAUTHENTICATED_MAX_BODY_BYTES: u64 = 8 * 1024;

/// An oversized body is read (and discarded) up to this much before the 413, so a
/// client in mid-upload receives the answer; beyond it the connection is closed.
pub const DRAIN_AT_MOST: u64 = 64 << 20;

/// Why a request body could not be read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body did not arrive within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(u64),
}

impl BodyError {
    /// The `BodyError` inside a body error (at any depth), if the guard raised it.
    pub fn of(e: &axum::Error) -> Option<BodyError> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
        for _ in 0..8 {
            let c = cause?;
            if let Some(b) = c.downcast_ref::<BodyError>() {
                return Some(*b);
            }
            cause = c.source();
        }
        None
    }
}

/// The per-request body limits.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: u64,
    pub timeout: Duration,
}

/// The layer that puts every request body under `limits` (see the module docs).
pub fn body_guard(limits: BodyLimits) -> tower::util::MapRequestLayer<impl Fn(Request) -> Request + Clone + Send + Sync + 'static> {
    tower::util::MapRequestLayer::new(move |req: Request| req.map(|body| Body::new(GuardedBody::new(body, limits))))
}

/// A request body with a deadline and a size limit.
pub struct GuardedBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    limits: BodyLimits,
    seen: u64,
    /// Over the limit: what still comes is discarded until the end (or the bound).
    draining: bool,
    done: bool,
}

impl GuardedBody {
    pub fn new(inner: Body, limits: BodyLimits) -> GuardedBody {
        GuardedBody { inner, deadline: Box::pin(tokio::time::sleep(limits.timeout)), limits, seen: 0, draining: false, done: false }
    }

    fn fail(&mut self, e: BodyError) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.done = true;
        Poll::Ready(Some(Err(axum::Error::new(e))))
    }
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    if this.deadline.as_mut().poll(cx).is_ready() {
                        return this.fail(BodyError::Timeout(this.limits.timeout));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    if this.draining {
                        return this.fail(BodyError::TooLarge(this.limits.max_bytes));
                    }
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        this.seen += data.len() as u64;
                        if this.seen > this.limits.max_bytes {
                            this.draining = true;
                        }
                    }
                    if this.seen > DRAIN_AT_MOST {
                        return this.fail(BodyError::TooLarge(this.limits.max_bytes));
                    }
                    if !this.draining {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    // Draining: drop it, but do not starve the deadline.
                    if this.deadline.as_mut().poll(cx).is_ready() {
                        return this.fail(BodyError::Timeout(this.limits.timeout));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || (!self.draining && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        if self.draining || self.done {
            return SizeHint::default();
        }
        self.inner.size_hint()
    }
}
