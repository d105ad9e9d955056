//! Tells calls the client broke at the HTTP/2 level from the service's own
//! failures. A request body that fails did so because of the peer: it reset
//! the stream, made the server reset it (a flow-control or protocol error,
//! as in MadeYouReset), or lost the connection. tonic answers such a call
//! INTERNAL or UNKNOWN, and hyper drops the call unanswered once its stream
//! is reset; `observe` counts both apart and logs them at DEBUG instead, so
//! that a flood of them neither reads as a server fault nor floods the log.

use std::{
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll, ready},
};

use h2::Reason;
use http_body::Frame;
use tonic::{Status, body::Body, codegen::Bytes};

use crate::metrics::Metrics;

/// The label of a call dropped unanswered with no error seen in its body.
const RESET_UNANSWERED: &str = "STREAM_RESET";

/// Where a request body leaves word of its failure.
#[derive(Debug, Clone, Default)]
pub struct StreamError(Arc<OnceLock<&'static str>>);

impl StreamError {
    /// The failure's HTTP/2 error code name, once the body has failed for
    /// anything but the client's cancellation (which stays `CANCELLED`).
    pub fn reason(&self) -> Option<&'static str> {
        self.0.get().copied()
    }

    /// `body`, watched.
    pub fn watch(&self, body: Body) -> Body {
        Body::new(Watched { body, error: self.clone() })
    }

    /// Counts the call as broken if dropped before [`Unanswered::answered`].
    pub fn until_answered(&self, metrics: Metrics) -> Unanswered {
        Unanswered { error: self.clone(), metrics: Some(metrics) }
    }
}

/// A call not answered yet; see [`StreamError::until_answered`].
pub struct Unanswered {
    error: StreamError,
    metrics: Option<Metrics>,
}

impl Unanswered {
    pub fn answered(mut self) {
        self.metrics = None;
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(metrics) = self.metrics.take() {
            let reason = self.error.reason().unwrap_or(RESET_UNANSWERED);
            metrics.observe_stream_error(reason);
            tracing::debug!(http2_error = reason, "call dropped unanswered: its stream was reset");
        }
    }
}

struct Watched {
    body: Body,
    error: StreamError,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = ready!(Pin::new(&mut self.body).poll_frame(cx));
        if let Some(Err(status)) = &polled
            && let Some(reason) = reason_name(status)
        {
            let _ = self.error.0.set(reason);
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The HTTP/2 error code behind a body's failure, as a metric label (a
/// fixed set: the peer chooses the codes it sends); `None` for a
/// cancellation.
fn reason_name(status: &Status) -> Option<&'static str> {
    let mut source = std::error::Error::source(status);
    let h2_error = loop {
        match source {
            Some(error) => match error.downcast_ref::<h2::Error>() {
                Some(h2_error) => break Some(h2_error),
                None => source = error.source(),
            },
            None => break None,
        }
    };
    let Some(reason) = h2_error.and_then(h2::Error::reason) else {
        return Some("CONNECTION_LOST");
    };
    Some(match reason {
        Reason::CANCEL | Reason::NO_ERROR => return None,
        Reason::PROTOCOL_ERROR => "PROTOCOL_ERROR",
        Reason::INTERNAL_ERROR => "INTERNAL_ERROR",
        Reason::FLOW_CONTROL_ERROR => "FLOW_CONTROL_ERROR",
        Reason::SETTINGS_TIMEOUT => "SETTINGS_TIMEOUT",
        Reason::STREAM_CLOSED => "STREAM_CLOSED",
        Reason::FRAME_SIZE_ERROR => "FRAME_SIZE_ERROR",
        Reason::REFUSED_STREAM => "REFUSED_STREAM",
        Reason::COMPRESSION_ERROR => "COMPRESSION_ERROR",
        Reason::CONNECT_ERROR => "CONNECT_ERROR",
        Reason::ENHANCE_YOUR_CALM => "ENHANCE_YOUR_CALM",
        Reason::INADEQUATE_SECURITY => "INADEQUATE_SECURITY",
        Reason::HTTP_1_1_REQUIRED => "HTTP_1_1_REQUIRED",
        _ => "OTHER",
    })
}
