//! Bytes that are not a valid request message at all — invalid UTF-8 in a
//! string field, truncated or garbage protobuf — are client mistakes too:
//! INVALID_ARGUMENT with the contract's details, never INTERNAL.

use prost::bytes::{Buf, BufMut};
use tonic::{
    Code, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};

use crate::support::{health::SERVICE, *};

/// Sends and receives raw message bytes, whatever they hold.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        Self
    }
    fn decoder(&mut self) -> Self {
        Self
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

async fn send_raw(channel: Channel, method: &str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = format!("/{SERVICE}/{method}").parse().unwrap();
    grpc.unary(tonic::Request::new(body), path, RawCodec).await.map(|r| r.into_inner())
}

/// A length-delimited field (wire type 2) holding `bytes`.
fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![number << 3 | 2, bytes.len() as u8];
    out.extend_from_slice(bytes);
    out
}

#[tokio::test]
async fn undecodable_requests_are_invalid_arguments_and_the_server_keeps_serving() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let ok_org = field(1, org.as_bytes());
    let not_utf8 = [0xff, 0xfe, b'a'];
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        ("CreateDraft", "title not UTF-8", [ok_org.clone(), field(3, &not_utf8)].concat(), "title"),
        ("CreateDraft", "organization_id not UTF-8", field(1, &not_utf8), "organization_id"),
        ("GetDraft", "draft_id not UTF-8", [ok_org.clone(), field(2, &not_utf8)].concat(), "draft_id"),
        ("ListDrafts", "page_token not UTF-8", [ok_org.clone(), field(3, &not_utf8)].concat(), "page_token"),
        ("UpdateDraft", "update_mask path not UTF-8", field(8, &field(1, &not_utf8)), "update_mask"),
        ("PublishDraft", "publish_at truncated", field(3, &[0x08]), "publish_at"),
        ("GetEvent", "length past the end", vec![0x0a, 0x7f, b'a'], "organization_id"),
        ("GetEvent", "garbage", vec![0xff; 16], ""),
        ("ListDrafts", "wrong wire type for page_size", field(2, b"12"), "page_size"),
    ];

    for (method, label, body, field) in cases {
        let status = send_raw(app.channel().await, method, body).await.unwrap_err();

        assert_error(&status, Code::InvalidArgument, "INVALID_REQUEST");
        if !field.is_empty() {
            assert_invalid_field(&status, field);
        }
        eprintln!("{method} {label}: {}", status.message());
        let still = app.get_draft(get_draft_request(&org, &new_id())).await.unwrap_err();
        assert_eq!(still.code(), Code::NotFound, "serving after {method} {label}");
    }
}
