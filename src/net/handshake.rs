//! The authenticated join handshake, run on the first bidirectional stream
//! of a fresh QUIC connection (after TLS has pinned the host's certificate).
//!
//! ```text
//! guest → host   [u32 BE protocol_version] postcard(GuestToHost::Hello { session_id, proof, name, color })
//! host  → guest  [u32 BE protocol_version] postcard(HostToGuest::Welcome { participant_id })
//!            or  [u32 BE protocol_version] postcard(HostToGuest::Refused(reason))
//! ```
//!
//! Each is one frame of at most [`MAX_CONTROL_FRAME_LEN`](super::limits::MAX_CONTROL_FRAME_LEN) bytes. The version
//! is a fixed 4-byte prefix rather than a postcard field so that any version
//! of lshed can read it: each side compares it *before* decoding the rest,
//! and a mismatch becomes a clear "the host runs protocol vN" instead of a
//! decode error. (It plays the role of a `protocol_version` field of `Hello`.)
//!
//! `proof = HMAC-SHA256(secret, EKM ‖ session_id)` where EKM is 32 bytes of
//! TLS exporter keying material of *this* connection (label
//! [`EXPORTER_LABEL`]). The secret never crosses the network, and a proof is
//! worthless on any other connection, so it cannot be replayed by a relay or
//! anyone who saw it.
//!
//! After `Welcome` the same stream carries the session's messages
//! ([`super::channel`]).
//!
//! May depend on: ring (HMAC), serde/postcard, quinn, the sibling modules.

use serde::{Deserialize, Serialize};

use super::frame::{decode, encode, CodecError};
use super::limits::{EXPORTER_LABEL, MAX_COLOR_CHARS, MAX_NAME_CHARS};

/// Bytes of the version prefix of a handshake frame.
pub const VERSION_PREFIX: usize = 4;

/// Messages a guest sends the host during the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuestToHost {
    /// The first and only handshake message of a guest.
    Hello(Hello),
}

/// A guest's request to join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The session the guest wants to join (from the link).
    pub session_id: [u8; 16],
    /// HMAC-SHA256(secret, EKM ‖ session_id); see the module docs.
    pub proof: [u8; 32],
    /// Display name.
    pub name: String,
    /// Cursor colour, e.g. `#e5c07b` (free-form; the session layer interprets it).
    pub color: String,
}

/// Messages the host sends a guest during the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostToGuest {
    /// Admitted; the stream now carries the session.
    Welcome {
        /// The guest's participant id (the host is `HOST_PARTICIPANT_ID`).
        participant_id: u64,
    },
    /// Not admitted; the host closes the connection after this.
    Refused(RefusalReason),
}

/// Why a host refused a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalReason {
    /// The guest speaks another protocol version.
    VersionMismatch {
        /// The host's protocol version.
        host_version: u32,
    },
    /// The proof did not match the session's secret.
    BadSecret,
    /// No such session here (it has ended).
    UnknownSession,
    /// The host declined the request to join.
    Rejected,
    /// The host did not answer the request to join in time.
    ApprovalTimedOut,
    /// The session has as many guests as it admits.
    Full,
}

/// A handshake frame that is not what it should be.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeCodecError {
    /// Shorter than the version prefix.
    #[error("handshake frame shorter than its version prefix")]
    Short,
    /// The body did not decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Encodes a handshake message behind its version prefix.
pub fn encode_control<T: Serialize>(version: u32, msg: &T) -> Result<Vec<u8>, CodecError> {
    let body = encode(msg)?;
    let mut out = Vec::with_capacity(VERSION_PREFIX + body.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads the version prefix of a handshake frame (any version can do this).
pub fn peek_version(frame: &[u8]) -> Result<u32, HandshakeCodecError> {
    let prefix = frame
        .get(..VERSION_PREFIX)
        .ok_or(HandshakeCodecError::Short)?;
    let mut bytes = [0u8; VERSION_PREFIX];
    bytes.copy_from_slice(prefix);
    Ok(u32::from_be_bytes(bytes))
}

/// Decodes the body of a handshake frame. Call only after
/// [`peek_version`] matched: other versions may encode the body otherwise.
pub fn decode_control<T: serde::de::DeserializeOwned>(
    frame: &[u8],
) -> Result<T, HandshakeCodecError> {
    let body = frame
        .get(VERSION_PREFIX..)
        .ok_or(HandshakeCodecError::Short)?;
    Ok(decode(body)?)
}

/// Computes the proof from the secret and this connection's exporter bytes.
pub fn compute_proof(secret: &[u8; 32], ekm: &[u8; 32], session_id: &[u8; 16]) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(ekm);
    ctx.update(session_id);
    let tag = ctx.sign();
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Checks a proof in constant time.
pub fn verify_proof(
    secret: &[u8; 32],
    ekm: &[u8; 32],
    session_id: &[u8; 16],
    proof: &[u8; 32],
) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut msg = Vec::with_capacity(48);
    msg.extend_from_slice(ekm);
    msg.extend_from_slice(session_id);
    ring::hmac::verify(&key, &msg, proof).is_ok()
}

/// 32 bytes of TLS exporter keying material of `conn` (the same on both ends).
pub fn exporter_bytes(conn: &quinn::Connection) -> Result<[u8; 32], ExporterError> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, EXPORTER_LABEL, b"")
        .map_err(|_| ExporterError)?;
    Ok(out)
}

/// The TLS session could not export keying material (not expected with TLS 1.3).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("TLS keying material export failed")]
pub struct ExporterError;

/// The proof a guest sends on `conn` for the link's secret and session.
pub fn connection_proof(
    conn: &quinn::Connection,
    secret: &[u8; 32],
    session_id: &[u8; 16],
) -> Result<[u8; 32], ExporterError> {
    Ok(compute_proof(secret, &exporter_bytes(conn)?, session_id))
}

/// Makes peer-supplied text safe to show in a terminal: drops control
/// characters (escape sequences!), trims, and cuts to `max_chars`.
pub fn sanitize_text(text: &str, max_chars: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(max_chars)
        .collect()
}

/// A guest's name as the host keeps it (`guest` if nothing is left).
pub fn sanitize_name(name: &str) -> String {
    let name = sanitize_text(name, MAX_NAME_CHARS);
    if name.is_empty() {
        "guest".to_owned()
    } else {
        name
    }
}

/// A guest's colour as the host keeps it.
pub fn sanitize_color(color: &str) -> String {
    sanitize_text(color, MAX_COLOR_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hello() -> GuestToHost {
        GuestToHost::Hello(Hello {
            session_id: [9; 16],
            proof: [8; 32],
            name: "ada".into(),
            color: "#ff0".into(),
        })
    }

    #[test]
    fn hello_round_trip_and_exact_prefix() {
        let frame = encode_control(1, &hello()).unwrap();
        assert_eq!(&frame[..4], &[0, 0, 0, 1]);
        assert_eq!(peek_version(&frame).unwrap(), 1);
        assert_eq!(decode_control::<GuestToHost>(&frame).unwrap(), hello());
    }

    #[test]
    fn version_is_readable_whatever_follows() {
        let mut frame = 0x0102_0304u32.to_be_bytes().to_vec();
        frame.extend_from_slice(b"\xff\xfe future format");
        assert_eq!(peek_version(&frame).unwrap(), 0x0102_0304);
        assert!(decode_control::<GuestToHost>(&frame).is_err());
        assert!(matches!(
            peek_version(&[0, 1]),
            Err(HandshakeCodecError::Short)
        ));
    }

    #[test]
    fn replies_round_trip() {
        for msg in [
            HostToGuest::Welcome { participant_id: 3 },
            HostToGuest::Refused(RefusalReason::VersionMismatch { host_version: 7 }),
            HostToGuest::Refused(RefusalReason::BadSecret),
            HostToGuest::Refused(RefusalReason::Full),
        ] {
            let frame = encode_control(1, &msg).unwrap();
            assert_eq!(decode_control::<HostToGuest>(&frame).unwrap(), msg);
        }
    }

    #[test]
    fn proof_depends_on_every_input() {
        let p = compute_proof(&[1; 32], &[2; 32], &[3; 16]);
        assert!(verify_proof(&[1; 32], &[2; 32], &[3; 16], &p));
        assert!(!verify_proof(&[0; 32], &[2; 32], &[3; 16], &p));
        assert!(!verify_proof(&[1; 32], &[0; 32], &[3; 16], &p));
        assert!(!verify_proof(&[1; 32], &[2; 32], &[0; 16], &p));
    }

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_name("  \x1b[31mada\x07 "), "[31mada");
        assert_eq!(sanitize_name("\n\t"), "guest");
        assert_eq!(sanitize_name(&"x".repeat(500)).len(), MAX_NAME_CHARS);
    }

    proptest! {
        #[test]
        fn prop_garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = peek_version(&b);
            let _ = decode_control::<GuestToHost>(&b);
            let _ = decode_control::<HostToGuest>(&b);
        }
    }
}
