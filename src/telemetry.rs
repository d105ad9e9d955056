//! Logging and traces, set up once per process. Logs: the level from
//! `RUST_LOG` (default `info`), human-readable or JSON lines on stderr.
//! Traces: OpenTelemetry over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is set (see [`traces`]).
//!
//! Text lines are coloured only when stderr is a terminal: a file, a pipe or
//! a log collector gets plain text, without ANSI escape codes.

mod fields;
pub mod traces;

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, Layer, fmt, prelude::*};

use self::fields::PlainFields;
use crate::config::LogFormat;

pub use traces::Traces;

/// What [`init`] set up and shutdown must flush.
pub struct Telemetry {
    traces: Option<Traces>,
}

impl Telemetry {
    /// Flushes the spans still queued (bounded in time).
    pub async fn shutdown(self) {
        if let Some(traces) = self.traces {
            traces.shutdown().await;
        }
    }
}

/// Sets up logging, and traces when the environment asks for them. An
/// exporter that cannot be built (a malformed endpoint) is an error, after
/// logging is set up to report it.
pub fn init(format: LogFormat) -> anyhow::Result<Telemetry> {
    let (traces, error) = match Traces::from_env() {
        Ok(traces) => (traces, None),
        Err(error) => (None, Some(error)),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match format {
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal();
            fmt::layer()
                .fmt_fields(PlainFields::default())
                .with_ansi(ansi)
                .with_writer(std::io::stderr)
                .boxed()
        }
        LogFormat::Json => fmt::layer().json().with_current_span(true).with_writer(std::io::stderr).boxed(),
    };
    let result = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces.as_ref().map(Traces::layer))
        .try_init();
    // A second initialisation (tests) keeps the first subscriber.
    let _ = result;
    match error {
        Some(error) => Err(error),
        None => Ok(Telemetry { traces }),
    }
}
