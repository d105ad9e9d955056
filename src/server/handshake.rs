//! How far a new connection is through its handshake, read from the bytes
//! it sends (see `connection`, which closes it if it takes too long).
//!
//! In plaintext the handshake is HTTP/2's: the client preface, then the
//! client's acknowledgement of the server's SETTINGS, which every client
//! sends at once (RFC 9113 §6.5.3) and a peer that merely holds connections
//! open does not. Under TLS the content is encrypted but the record headers
//! are not: a client is through once it has sent two application-data
//! records. In TLS 1.3 those are its Finished message and the HTTP/2
//! preface; in TLS 1.2, the preface and the SETTINGS acknowledgement. A
//! peer silent after the TLS handshake sends at most one.

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
const PREFACE_BYTES: usize = 24;
const FRAME_HEADER_BYTES: usize = 9;
const SETTINGS: u8 = 0x4;
const ACK: u8 = 0x1;
const TLS_RECORD_HEADER_BYTES: usize = 5;
const TLS_APPLICATION_DATA: u8 = 0x17;
const TLS_APPLICATION_RECORDS: u8 = 2;

#[derive(Debug)]
pub struct Handshake {
    tls: bool,
    preface_left: usize,
    header: [u8; FRAME_HEADER_BYTES],
    header_read: usize,
    /// Bytes of the current frame's (or record's) payload still to skip.
    payload_left: usize,
    application_records: u8,
}

impl Handshake {
    /// HTTP/2 in the clear.
    pub fn plaintext() -> Self {
        Self::new(false, PREFACE_BYTES)
    }

    /// HTTP/2 over TLS.
    pub fn tls() -> Self {
        Self::new(true, 0)
    }

    fn new(tls: bool, preface_left: usize) -> Self {
        Self {
            tls,
            preface_left,
            header: [0; FRAME_HEADER_BYTES],
            header_read: 0,
            payload_left: 0,
            application_records: 0,
        }
    }

    fn header_bytes(&self) -> usize {
        if self.tls { TLS_RECORD_HEADER_BYTES } else { FRAME_HEADER_BYTES }
    }

    /// Takes the next bytes the client sent; whether the handshake is done.
    pub fn read(&mut self, mut bytes: &[u8]) -> bool {
        let preface = self.preface_left.min(bytes.len());
        self.preface_left -= preface;
        bytes = &bytes[preface..];
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let skipped = self.payload_left.min(bytes.len());
                self.payload_left -= skipped;
                bytes = &bytes[skipped..];
                continue;
            }
            let wanted = self.header_bytes();
            let taken = (wanted - self.header_read).min(bytes.len());
            self.header[self.header_read..self.header_read + taken].copy_from_slice(&bytes[..taken]);
            self.header_read += taken;
            bytes = &bytes[taken..];
            if self.header_read == wanted {
                self.header_read = 0;
                if self.header_done() {
                    return true;
                }
            }
        }
        false
    }

    /// A whole frame or record header has been read: whether that ends the
    /// handshake; otherwise its payload is to be skipped.
    fn header_done(&mut self) -> bool {
        if self.tls {
            let [kind, _, _, l0, l1, ..] = self.header;
            self.payload_left = usize::from(u16::from_be_bytes([l0, l1]));
            if kind == TLS_APPLICATION_DATA {
                self.application_records += 1;
            }
            self.application_records >= TLS_APPLICATION_RECORDS
        } else {
            let [l0, l1, l2, kind, flags, ..] = self.header;
            self.payload_left = u32::from_be_bytes([0, l0, l1, l2]) as usize;
            kind == SETTINGS && flags & ACK != 0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    /// Every way of splitting `bytes` in two leaves the handshake undone;
    /// `last` then completes it, also when split.
    fn check_splits(new: fn() -> Handshake, bytes: &[u8], last: &[u8]) {
        for split in 0..bytes.len() {
            let mut handshake = new();
            assert!(!handshake.read(&bytes[..split]));
            assert!(!handshake.read(&bytes[split..]), "done too early");
            assert!(!handshake.read(&last[..last.len() - 1]));
            assert!(handshake.read(&last[last.len() - 1..]));
        }
    }

    #[test]
    fn plaintext_handshake_ends_with_the_settings_acknowledgement() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend([0, 0, 6, SETTINGS, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]);
        bytes.extend([0, 0, 4, 0x8, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]); // WINDOW_UPDATE
        check_splits(Handshake::plaintext, &bytes, &[0, 0, 0, SETTINGS, ACK, 0, 0, 0, 0]);
    }

    #[test]
    fn tls_handshake_ends_with_the_second_application_data_record() {
        let mut bytes = vec![0x16, 3, 1, 0, 3, 1, 2, 3]; // ClientHello
        bytes.extend([0x14, 3, 3, 0, 1, 1]); // ChangeCipherSpec
        bytes.extend([TLS_APPLICATION_DATA, 3, 3, 0, 2, 9, 9]); // Finished
        check_splits(Handshake::tls, &bytes, &[TLS_APPLICATION_DATA, 3, 3, 0, 24]);
    }
}
