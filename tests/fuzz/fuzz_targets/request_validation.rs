//! Fuzzes request validation: arbitrary bytes, decoded as each RPC's request
//! message and validated as the service does, must never panic, and every
//! refusal must be the contract's INVALID_ARGUMENT naming a request field.
#![no_main]

use draft_publisher::{Error, PageToken, decode, proto::v1 as pb};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn check<T>(result: Result<T, Error>) {
    match result {
        Ok(_) | Err(Error::InvalidPageToken(_)) => {}
        Err(Error::InvalidArgument(violations)) => {
            assert!(!violations.is_empty());
            assert!(violations.iter().all(|v| decode::REQUEST_FIELDS.contains(&v.field)), "{violations:?}");
        }
        Err(other) => panic!("validation answered {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&rpc, bytes)) = data.split_first() else { return };
    // A message that does not decode is refused before validation.
    match rpc % 7 {
        0 => pb::CreateDraftRequest::decode(bytes).map(|r| check(decode::create_draft(r))),
        1 => pb::GetDraftRequest::decode(bytes).map(|r| check(decode::get_draft(r))),
        2 => pb::UpdateDraftRequest::decode(bytes).map(|r| check(decode::update_draft(r))),
        3 => pb::ListDraftsRequest::decode(bytes).map(|r| check(decode::list_drafts(r))),
        4 => pb::PublishDraftRequest::decode(bytes).map(|r| check(decode::publish_draft(r))),
        5 => pb::GetEventRequest::decode(bytes).map(|r| check(decode::get_event(r))),
        _ => {
            if let Ok(text) = std::str::from_utf8(bytes)
                && let Ok(token) = PageToken::decode(text)
            {
                assert_eq!(PageToken::decode(&token.encode()), Ok(token));
            }
            Ok(())
        }
    }
    .unwrap_or(());
});
