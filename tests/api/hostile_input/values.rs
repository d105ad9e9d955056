//! The hostile values themselves: malformed UUIDs, timestamps out of range,
//! text just over its limit, and page tokens forged with a valid checksum.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use prost_types::Timestamp;
use sha2::{Digest, Sha256};

/// google.protobuf.Timestamp's valid range, in seconds.
pub const MIN_SECONDS: i64 = -62_135_596_800;
pub const MAX_SECONDS: i64 = 253_402_300_799;

pub fn at(seconds: i64, nanos: i32) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos })
}

pub fn bad_uuids() -> Vec<(&'static str, String)> {
    let valid = "0191d3e4-5b6a-7c8d-9e0f-1a2b3c4d5e6f";
    vec![
        ("empty", String::new()),
        ("garbage", "not-a-uuid".into()),
        ("simple form", valid.replace('-', "")),
        ("braced", format!("{{{valid}}}")),
        ("urn", format!("urn:uuid:{valid}")),
        ("nil", "00000000-0000-0000-0000-000000000000".into()),
        ("one short", valid[..35].into()),
        ("one long", format!("{valid}0")),
        ("non-hex", valid.replace('f', "g")),
        ("NUL inside", format!("{}\0{}", &valid[..18], &valid[19..])),
        ("padded", format!(" {valid}")),
        ("multibyte digits", valid.replace('0', "０")),
        ("36 multibyte chars", "é".repeat(36)),
    ]
}

pub fn bad_timestamps() -> Vec<(&'static str, Option<Timestamp>)> {
    vec![
        ("negative nanos", at(1_900_000_000, -1)),
        ("nanos of a whole second", at(1_900_000_000, 1_000_000_000)),
        ("i32::MAX nanos", at(1_900_000_000, i32::MAX)),
        ("i32::MIN nanos", at(1_900_000_000, i32::MIN)),
        ("past year 9999", at(MAX_SECONDS + 1, 0)),
        ("before year 1", at(MIN_SECONDS - 1, 0)),
        ("i64::MAX seconds", at(i64::MAX, 0)),
        ("i64::MIN seconds", at(i64::MIN, 0)),
    ]
}

/// Text of `chars` characters `c`, so limits are probed in characters.
pub fn text(c: char, chars: usize) -> String {
    std::iter::repeat_n(c, chars).collect()
}

/// A page token with a valid checksum around a payload of our choosing.
pub fn forged_token(real: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut bytes = URL_SAFE_NO_PAD.decode(real).unwrap();
    bytes.truncate(bytes.len() - 8);
    edit(&mut bytes);
    let sum = Sha256::digest(&bytes);
    bytes.extend_from_slice(&sum[..8]);
    URL_SAFE_NO_PAD.encode(bytes)
}
