//! Per-call limits, as a tower layer around every service: a server-side
//! timeout (or the caller's shorter deadline, see `deadline`) and a cap on
//! calls in flight that sheds the excess at once.
//!
//! Both answer with a proper gRPC status built from a `Refusal` (not
//! a transport error or an HTTP status), so clients see `DEADLINE_EXCEEDED`
//! or `UNAVAILABLE` with an `ErrorInfo` reason. A timed-out call stops
//! waiting, but the use case behind it runs on its own task (see `api`), so a
//! publish in progress still completes whole.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::sync::Semaphore;
use tonic::{
    Status,
    body::Body,
    codegen::{BoxFuture, http},
};
use tower::{Layer, Service};

use crate::api::status::Refusal;

/// Health checks are never shed: a probe must see the server's real state
/// even while it is flooded.
const UNLIMITED_PREFIX: &str = "/grpc.health.v1.Health/";

#[derive(Debug, Clone)]
pub struct CallLimitsLayer {
    timeout: Duration,
    in_flight: Arc<Semaphore>,
}

impl CallLimitsLayer {
    pub fn new(timeout: Duration, max_concurrent_calls: usize) -> Self {
        Self { timeout, in_flight: Arc::new(Semaphore::new(max_concurrent_calls)) }
    }
}

impl<S> Layer<S> for CallLimitsLayer {
    type Service = CallLimits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallLimits { inner, limits: self.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct CallLimits<S> {
    inner: S,
    limits: CallLimitsLayer,
}

fn reject(refusal: Refusal) -> http::Response<Body> {
    Status::from(refusal).into_http()
}

impl<S> Service<http::Request<Body>> for CallLimits<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let permit = if request.uri().path().starts_with(UNLIMITED_PREFIX) {
            None
        } else {
            match self.limits.in_flight.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => return Box::pin(std::future::ready(Ok(reject(Refusal::Overloaded)))),
            }
        };
        // The clone that was not polled ready stays behind for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (timeout, refusal) = super::deadline::of(request.headers(), self.limits.timeout);
        Box::pin(async move {
            let _permit = permit;
            // Bounds the wait for the answer's head: for a unary call that is
            // the whole call; a stream (health Watch) runs on once started.
            match tokio::time::timeout(timeout, inner.call(request)).await {
                Ok(answer) => answer,
                Err(_) => Ok(reject(refusal)),
            }
        })
    }
}
