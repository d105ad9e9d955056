//! The text log's field formatter: what tracing-subscriber's `DefaultFields`
//! writes, without taking its long way when there are no colours.
//!
//! Every call's span formats a dozen fields as they are recorded (see
//! `server::observe`). Without colours, `DefaultFields` still paints each
//! name and `=` through nu_ansi_term with an empty style and escapes each
//! string char by char: under callgrind about 10k instructions of a repeat
//! PublishDraft's 143k. Here names are written as they are and
//! strings that need no escaping are quoted directly; anything else (the
//! message, errors, strings to escape, colours) goes the default way, so the
//! text is the same byte for byte (see the test).

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::{
    field::{RecordFields, VisitOutput},
    fmt::{
        FormatFields,
        format::{DefaultFields, DefaultVisitor, Writer},
    },
};

/// `DefaultFields`, the same text by a shorter way when there are no colours.
#[derive(Debug, Default)]
pub struct PlainFields {
    coloured: DefaultFields,
}

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            return self.coloured.format_fields(writer, fields);
        }
        let mut visitor = Visitor { writer, is_empty: true, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'a> {
    writer: Writer<'a>,
    /// Nothing written yet: the next field needs no space before it.
    is_empty: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    /// Writes ` name=` (no space first) and returns whether the value is to
    /// follow; `None` for what the default visitor writes its own way.
    fn name(&mut self, field: &Field) -> Option<bool> {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            // A `log` crate record's metadata, already in the line's head.
            return Some(false);
        }
        if name == "message" {
            return None;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        if !std::mem::take(&mut self.is_empty) {
            self.result = self.writer.write_char(' ');
        }
        self.result =
            self.result.and_then(|()| self.writer.write_str(name)).and_then(|()| self.writer.write_char('='));
        Some(self.result.is_ok())
    }

    /// The default visitor's way, continuing the same line.
    fn by_default(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), std::mem::take(&mut self.is_empty));
        record(&mut visitor);
        self.result = visitor.finish();
    }
}

/// Whether `{:?}` writes `text` between quotes as it is.
fn needs_no_escaping(text: &str) -> bool {
    text.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match self.name(field) {
            Some(false) => {}
            Some(true) if needs_no_escaping(value) => {
                self.result = self.writer.write_char('"');
                self.result = self.result.and_then(|()| self.writer.write_str(value));
                self.result = self.result.and_then(|()| self.writer.write_char('"'));
            }
            Some(true) => self.result = write!(self.writer, "{value:?}"),
            None => self.by_default(|visitor| visitor.record_str(field, value)),
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if !field.name().starts_with("log.") {
            self.by_default(|visitor| visitor.record_error(field, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match self.name(field) {
            Some(false) => {}
            Some(true) => self.result = write!(self.writer, "{value:?}"),
            None => self.by_default(|visitor| visitor.record_debug(field, value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        sync::{Arc, Mutex},
    };

    use tracing::field::{Empty, display};
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// A span like a call's, fields recorded later, and events with a
    /// message, an error with a source, strings to escape and numbers.
    fn log_a_call() {
        let span = tracing::info_span!(
            "grpc",
            otel.name = "draftpublisher.v1.DraftPublisher/PublishDraft",
            otel.kind = "server",
            r#type = "unary",
            caller = Empty,
            code = Empty,
            latency_ms = Empty,
            quoted = "say \"hi\"\\ \u{1b}[31m é\n",
        );
        let _entered = span.enter();
        span.record("caller", display("billing"));
        span.record("code", "OK");
        span.record("latency_ms", 6.68);
        let error = std::io::Error::other(std::fmt::Error);
        tracing::warn!(error = &error as &(dyn std::error::Error + 'static), count = 3u64, "it \"failed\"");
        tracing::info!(ok = true, negative = -1i64, "call finished");
    }

    fn logged<N>(fields: N) -> String
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields)
            .with_writer(lines.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log_a_call);
        String::from_utf8(lines.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn writes_what_the_default_formatter_writes() {
        let plain = logged(PlainFields::default());
        assert!(plain.contains("caller=billing"), "{plain}");
        assert_eq!(plain, logged(DefaultFields::new()));
    }
}
