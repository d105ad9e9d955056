//! The limits each HTTP/2 connection is held to, in one place: those tonic
//! and hyper enforce (set in `server::builder`) and those `connection` and
//! `stalls` add.

use std::time::Duration;

use crate::defaults;

/// What one HTTP/2 connection may hold or provoke; each bound stops an
/// attack (see docs/operating.md). hyper has defaults for some of these, but
/// tonic passes "unlimited" unless told, so every one is set explicitly.
#[derive(Debug, Clone)]
pub struct Http2Limits {
    /// Advertised as `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub max_concurrent_streams: u32,
    pub max_local_error_reset_streams: usize,
    pub max_pending_accept_reset_streams: usize,
    pub max_header_list_bytes: u32,
    /// From accept to the end of the handshake (see `handshake`).
    pub handshake_timeout: Duration,
    /// How long an answer may wait on the peer's flow-control window before
    /// its connection is closed.
    pub stalled_answer_timeout: Duration,
    /// Answers that may wait on their peers' windows, server-wide, before
    /// the connection with the most of them is closed.
    pub max_stalled_answers: usize,
    /// After this a connection gets GOAWAY ...
    pub max_connection_age: Duration,
    /// ... and this long after that it is closed with whatever is left.
    pub max_connection_age_grace: Duration,
}

impl Default for Http2Limits {
    fn default() -> Self {
        Self {
            max_concurrent_streams: defaults::HTTP2_MAX_CONCURRENT_STREAMS,
            max_local_error_reset_streams: defaults::HTTP2_MAX_LOCAL_ERROR_RESET_STREAMS,
            max_pending_accept_reset_streams: defaults::HTTP2_MAX_PENDING_ACCEPT_RESET_STREAMS,
            max_header_list_bytes: defaults::HTTP2_MAX_HEADER_LIST_BYTES,
            handshake_timeout: defaults::HANDSHAKE_TIMEOUT,
            stalled_answer_timeout: defaults::STALLED_ANSWER_TIMEOUT,
            max_stalled_answers: defaults::MAX_STALLED_ANSWERS,
            max_connection_age: defaults::MAX_CONNECTION_AGE,
            max_connection_age_grace: defaults::MAX_CONNECTION_AGE_GRACE,
        }
    }
}
