//! Identifiers: UUIDs accepted only in the hyphenated form (either case) and
//! always shown in lowercase.

use std::fmt;

use uuid::Uuid;

use super::FieldViolation;

/// Parses a required, hyphenated, non-nil UUID named `field` in the request.
fn parse_uuid(field: &'static str, text: &str) -> Result<Uuid, FieldViolation> {
    if text.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    // `Uuid::try_parse` also takes the simple, braced and URN forms; the
    // contract accepts only the 36-character hyphenated one.
    match Uuid::try_parse(text) {
        Ok(uuid) if text.len() == 36 && !uuid.is_nil() => Ok(uuid),
        Ok(uuid) if uuid.is_nil() => Err(FieldViolation::new(field, "must not be the nil UUID")),
        _ => Err(FieldViolation::new(
            field,
            "must be a UUID in the hyphenated form, e.g. 0191d3e4-5b6a-7c8d-9e0f-1a2b3c4d5e6f",
        )),
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Parses the request field `field`.
            pub fn parse(field: &'static str, text: &str) -> Result<Self, FieldViolation> {
                parse_uuid(field, text).map(Self)
            }

            /// Wraps an id read back from storage, where it was valid when written.
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Hyphenated lowercase, as the contract promises.
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }
    };
}

uuid_id!(
    /// The organisation that owns drafts and events; every call is scoped to one.
    OrganizationId
);
uuid_id!(
    /// A draft.
    DraftId
);
uuid_id!(
    /// An event.
    EventId
);
uuid_id!(
    /// A CreateDraft idempotency key.
    RequestId
);

impl DraftId {
    /// A new, time-ordered id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

impl EventId {
    /// A new, time-ordered id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hyphenated_uuids_in_either_case_and_shows_lowercase() {
        let id = DraftId::parse("draft_id", "0191D3E4-5B6A-7C8D-9E0F-1A2B3C4D5E6F").unwrap();
        assert_eq!(id.to_string(), "0191d3e4-5b6a-7c8d-9e0f-1a2b3c4d5e6f");
    }

    #[test]
    fn rejects_other_uuid_forms_and_garbage() {
        for text in [
            "",
            "0191d3e45b6a7c8d9e0f1a2b3c4d5e6f",
            "{0191d3e4-5b6a-7c8d-9e0f-1a2b3c4d5e6f}",
            "urn:uuid:0191d3e4-5b6a-7c8d-9e0f-1a2b3c4d5e6f",
            "00000000-0000-0000-0000-000000000000",
            "0191d3e4-5b6a-7c8d-9e0f-1a2b3c4d5e6g",
            " 0191d3e4-5b6a-7c8d-9e0f-1a2b3c4d5e6f",
        ] {
            let err = DraftId::parse("draft_id", text).unwrap_err();
            assert_eq!(err.field, "draft_id", "{text:?}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_text_parses_without_panicking_and_only_the_hyphenated_form_passes(text in any::<String>()) {
            if let Ok(id) = EventId::parse("event_id", &text) {
                prop_assert_eq!(id.to_string(), text.to_lowercase());
            }
        }

        #[test]
        fn every_non_nil_uuid_round_trips_in_either_case(value in 1u128.., upper in any::<bool>()) {
            let text = Uuid::from_u128(value).hyphenated().to_string();
            let text = if upper { text.to_uppercase() } else { text };
            let id = DraftId::parse("draft_id", &text).unwrap();
            prop_assert_eq!(id.as_uuid(), Uuid::from_u128(value));
            prop_assert_eq!(id.to_string(), text.to_lowercase());
        }
    }
}
