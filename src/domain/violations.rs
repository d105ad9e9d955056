//! Collects every problem of a request before answering, so a caller learns
//! about all of its bad fields at once; and the domain's own error values,
//! which name the bad fields and nothing of how they are reported.

use std::fmt;

/// One bad request field, named as in the proto (`title`, `starts_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: &'static str,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: &'static str, description: impl Into<String>) -> Self {
        Self { field, description: description.into() }
    }
}

/// Accumulates field violations while a request is decoded.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Keeps the value when it is valid, records the violation otherwise.
    pub fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(violation) => {
                self.0.push(violation);
                None
            }
        }
    }

    pub fn push(&mut self, violation: FieldViolation) {
        self.0.push(violation);
    }

    /// `Ok(value)` when nothing was recorded, else every violation.
    pub fn finish<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, Invalid> {
        if self.0.is_empty()
            && let Some(value) = value()
        {
            return Ok(value);
        }
        Err(Invalid(self.0))
    }
}

/// Values that break a rule: a request's fields, or a patch that would leave
/// a draft ending before it starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request: {}", Described(.0))]
pub struct Invalid(pub Vec<FieldViolation>);

/// A draft not complete enough to publish: every missing or wrong field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the draft is not complete enough to publish: {}", Described(.0))]
pub struct DraftIncomplete(pub Vec<FieldViolation>);

/// Violations on one line, for messages: `title must not be blank; ...`.
pub struct Described<'a>(pub &'a [FieldViolation]);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} {}", v.field, v.description)?;
        }
        Ok(())
    }
}
