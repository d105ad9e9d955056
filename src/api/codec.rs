//! The service's protobuf codec: tonic's prost codec, except that a request
//! that does not decode (invalid UTF-8 in a string, truncated or garbage
//! bytes) is the caller's mistake — INVALID_ARGUMENT naming the field — and
//! not INTERNAL, which the contract reserves for the service's own faults.

use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::{ProstCodec, ProstEncoder};

use super::status::Refusal;

/// Used by the generated server and client code (see `build.rs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServiceCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Codec for ServiceCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = MessageDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        MessageDecoder(PhantomData)
    }
}

#[derive(Debug)]
pub struct MessageDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for MessageDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|error| {
            // Messages named `*Request` (buf's STANDARD lint) are what the
            // server decodes; a response the client cannot decode stays
            // INTERNAL, as gRPC specifies.
            if std::any::type_name::<U>().ends_with("Request") {
                Refusal::MalformedRequest { field: request_field(&error), why: error.to_string() }.into()
            } else {
                Status::internal(error.to_string())
            }
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// The request field a decode error names, if any: prost reports
/// "failed to decode Protobuf message: FieldMask.paths:
/// UpdateDraftRequest.update_mask: invalid string value", innermost first.
fn request_field(error: &prost::DecodeError) -> String {
    error
        .to_string()
        .split(": ")
        .filter_map(|segment| segment.split_once('.'))
        .find(|(message, field)| message.ends_with("Request") && !field.contains(' '))
        .map(|(_, field)| field.to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_outermost_field_of_a_decode_error() {
        let bad_utf8 = [0x1a, 0x02, 0xff, 0xfe];
        let error = crate::proto::v1::CreateDraftRequest::decode(&bad_utf8[..]).unwrap_err();
        assert_eq!(request_field(&error), "title");
        let nested = [0x42, 0x04, 0x0a, 0x02, 0xff, 0xfe];
        let error = crate::proto::v1::UpdateDraftRequest::decode(&nested[..]).unwrap_err();
        assert_eq!(request_field(&error), "update_mask");
        let garbage = [0xff; 4];
        let error = crate::proto::v1::CreateDraftRequest::decode(&garbage[..]).unwrap_err();
        assert_eq!(request_field(&error), "");
    }
}
