//! A draft's text fields, bounded in length (counted in characters) and free
//! of NUL characters, which PostgreSQL text cannot store.

use super::FieldViolation;

fn bounded_text(field: &'static str, text: String, max_chars: usize) -> Result<String, FieldViolation> {
    if text.contains('\0') {
        return Err(FieldViolation::new(field, "must not contain the NUL character"));
    }
    // Cheap byte check first: a string of at most `max_chars` bytes cannot
    // hold more characters than that.
    if text.len() > max_chars && text.chars().count() > max_chars {
        return Err(FieldViolation::new(field, format!("must be at most {max_chars} characters")));
    }
    Ok(text)
}

macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub const FIELD: &'static str = $field;
            pub const MAX_CHARS: usize = $max;

            pub fn parse(text: String) -> Result<Self, FieldViolation> {
                bounded_text(Self::FIELD, text, Self::MAX_CHARS).map(Self)
            }

            /// Wraps text read back from storage, where it was valid when written.
            pub fn from_stored(text: String) -> Self {
                Self(text)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }
    };
}

bounded_text!(
    /// An event's title: at most 200 characters, blank until publication.
    Title, "title", 200
);
bounded_text!(
    /// An event's description: at most 10,000 characters.
    Description, "description", 10_000
);
bounded_text!(
    /// An event's location: at most 500 characters.
    Location, "location", 500
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_characters_not_bytes() {
        assert!(Title::parse("é".repeat(200)).is_ok());
        assert_eq!(Title::parse("é".repeat(201)).unwrap_err().field, "title");
        assert!(Location::parse("x".repeat(500)).is_ok());
        assert!(Location::parse("x".repeat(501)).is_err());
        assert!(Description::parse("🎉".repeat(10_000)).is_ok());
        assert!(Description::parse("🎉".repeat(10_001)).is_err());
    }

    #[test]
    fn rejects_nul_characters() {
        let err = Description::parse("a\0b".into()).unwrap_err();
        assert_eq!(err.field, "description");
        assert!(err.description.contains("NUL"));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn text_is_accepted_exactly_when_short_enough_and_free_of_nul(text in any::<String>(), repeat in 1usize..60) {
            let text = text.repeat(repeat);
            let expected = !text.contains('\0') && text.chars().count() <= Title::MAX_CHARS;
            match Title::parse(text.clone()) {
                Ok(title) => {
                    prop_assert!(expected);
                    prop_assert_eq!(title.as_str(), text);
                }
                Err(violation) => {
                    prop_assert!(!expected);
                    prop_assert_eq!(violation.field, "title");
                }
            }
        }
    }
}
