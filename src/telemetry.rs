//! Logging, set up once per process: the level from `RUST_LOG` (default
//! `info`), human-readable or JSON lines on stderr.
//!
//! Text lines are coloured only when stderr is a terminal: a file, a pipe or
//! a log collector gets plain text, without ANSI escape codes.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => {
            registry.with(fmt::layer().json().with_current_span(true).with_writer(std::io::stderr)).try_init()
        }
    };
    // A second initialisation (tests) keeps the first subscriber.
    let _ = result;
}
