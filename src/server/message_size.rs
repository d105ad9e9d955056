//! The request size limit, checked on the gRPC frame header before the
//! message is read: a request over `--max-message-bytes` is answered
//! `RESOURCE_EXHAUSTED` (reason `MESSAGE_TOO_LARGE`) without reading its
//! body, and the connection goes on serving. tonic's own limit, inside the
//! service, would answer `OUT_OF_RANGE` without `ErrorInfo` after buffering it.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use tonic::{
    Status,
    body::Body,
    codegen::{BoxFuture, Bytes, http},
};
use tower::{Layer, Service};

use crate::api::status::Refusal;

/// Only the service's own methods: `--max-message-bytes` is its limit, and
/// reflection's bidirectional stream need not send a message at once.
const LIMITED_PREFIX: &str = "/draftpublisher.v1.DraftPublisher/";

/// A gRPC message's frame header: compressed flag, then its length (u32 BE).
const FRAME_HEADER: usize = 5;

#[derive(Debug, Clone)]
pub struct MessageSizeLayer {
    max: usize,
}

impl MessageSizeLayer {
    pub fn new(max: usize) -> Self {
        Self { max }
    }
}

impl<S> Layer<S> for MessageSizeLayer {
    type Service = MessageSize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MessageSize { inner, max: self.max }
    }
}

#[derive(Debug, Clone)]
pub struct MessageSize<S> {
    inner: S,
    max: usize,
}

impl<S> Service<http::Request<Body>> for MessageSize<S>
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
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !request.uri().path().starts_with(LIMITED_PREFIX) {
            return Box::pin(inner.call(request));
        }
        let max = self.max;
        Box::pin(async move {
            let (parts, mut body) = request.into_parts();
            let mut read = VecDeque::new();
            let size = match declared_size(&mut body, &mut read).await {
                Ok(size) => size,
                // The request stream broke (reset by the caller, say).
                Err(status) => return Ok(status.into_http()),
            };
            if let Some(size) = size.filter(|size| *size > max as u64) {
                return Ok(Status::from(Refusal::MessageTooLarge { size, max }).into_http());
            }
            let body = Body::new(Replayed { read, rest: body });
            inner.call(http::Request::from_parts(parts, body)).await
        })
    }
}

/// Reads frames into `read` until the first message's header is in; its
/// declared size, or `None` when the body ends before one.
async fn declared_size(body: &mut Body, read: &mut VecDeque<Frame<Bytes>>) -> Result<Option<u64>, Status> {
    let mut header = Vec::with_capacity(FRAME_HEADER);
    while header.len() < FRAME_HEADER {
        let Some(frame) = body.frame().await.transpose()? else { return Ok(None) };
        if let Some(data) = frame.data_ref() {
            let wanted = FRAME_HEADER - header.len();
            header.extend_from_slice(&data[..wanted.min(data.len())]);
        }
        let data = frame.is_data();
        read.push_back(frame);
        if !data {
            return Ok(None);
        }
    }
    Ok(Some(u64::from(u32::from_be_bytes([header[1], header[2], header[3], header[4]]))))
}

/// The request body with the frames already read put back in front.
struct Replayed {
    read: VecDeque<Frame<Bytes>>,
    rest: Body,
}

impl HttpBody for Replayed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        match self.read.pop_front() {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None => Pin::new(&mut self.rest).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.rest.is_end_stream()
    }
}
