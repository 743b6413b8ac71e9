//! Length-prefixed frames over a byte stream, and postcard helpers.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes. The
//! length is checked against a caller-given cap *before* anything is
//! allocated, and the body buffer grows only as bytes actually arrive, so a
//! peer announcing 16 MiB and sending nothing costs nothing.
//!
//! Works over any tokio `AsyncRead`/`AsyncWrite` (quinn's streams, or an
//! in-memory pipe in tests). May depend on: tokio io traits, serde, postcard.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The announced (or offered) length is over the cap.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// The cap in force.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended in the middle of a frame")]
    Truncated,
    /// The underlying stream failed (connection lost, reset, …).
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// True when the peer broke the framing rules (as opposed to the
    /// transport failing).
    pub fn is_protocol_violation(&self) -> bool {
        matches!(self, FrameError::TooLarge { .. } | FrameError::Truncated)
    }
}

/// A postcard value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// postcard's error (garbage, wrong type, short input, …).
    #[error("malformed message: {0}")]
    Postcard(#[from] postcard::Error),
    /// The value decoded but bytes were left over.
    #[error("malformed message: {0} unexpected trailing bytes")]
    TrailingBytes(usize),
}

/// Writes `payload` as one frame. Fails with `TooLarge` (writing nothing)
/// if it is longer than `max` (or than `u32::MAX`).
pub async fn write_frame<W: AsyncWrite + Unpin + ?Sized>(
    writer: &mut W,
    payload: &[u8],
    max: usize,
) -> Result<(), FrameError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&len| len as usize <= max)
        .ok_or(FrameError::TooLarge {
            len: payload.len() as u64,
            max,
        })?;
    writer.write_all(&len.to_be_bytes()).await?;
    writer.write_all(payload).await?;
    Ok(())
}

/// Reads one frame of at most `max` bytes. `Ok(None)` means the stream
/// ended cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; LEN_PREFIX];
    let mut filled = 0;
    while filled < LEN_PREFIX {
        let n = reader.read(&mut prefix[filled..]).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        filled += n;
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max,
        });
    }
    // Grow with the data instead of trusting the announced length.
    const INITIAL: usize = 64 * 1024;
    let mut body = Vec::with_capacity(len.min(INITIAL));
    let got = (&mut *reader)
        .take(len as u64)
        .read_to_end(&mut body)
        .await?;
    if got < len {
        return Err(FrameError::Truncated);
    }
    Ok(Some(body))
}

/// Encodes a value with postcard.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(postcard::to_allocvec(value)?)
}

/// Decodes a value with postcard; rejects trailing bytes. Never panics on
/// any input.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes(bytes)?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn exact_bytes() {
        let mut out = Vec::new();
        block_on(write_frame(&mut out, b"hello", 16)).unwrap();
        assert_eq!(out, b"\x00\x00\x00\x05hello");
        let mut empty = Vec::new();
        block_on(write_frame(&mut empty, b"", 16)).unwrap();
        assert_eq!(empty, b"\x00\x00\x00\x00");
    }

    #[test]
    fn reads_back_several_frames_then_clean_end() {
        let mut out = Vec::new();
        block_on(async {
            write_frame(&mut out, b"one", 16).await.unwrap();
            write_frame(&mut out, b"", 16).await.unwrap();
            write_frame(&mut out, b"three", 16).await.unwrap();
        });
        let mut r = &out[..];
        block_on(async {
            assert_eq!(read_frame(&mut r, 16).await.unwrap().unwrap(), b"one");
            assert_eq!(read_frame(&mut r, 16).await.unwrap().unwrap(), b"");
            assert_eq!(read_frame(&mut r, 16).await.unwrap().unwrap(), b"three");
            assert!(read_frame(&mut r, 16).await.unwrap().is_none());
        });
    }

    #[test]
    fn truncated_prefix_and_body() {
        block_on(async {
            let mut r: &[u8] = b"\x00\x00";
            assert!(matches!(
                read_frame(&mut r, 16).await,
                Err(FrameError::Truncated)
            ));
            let mut r: &[u8] = b"\x00\x00\x00\x05hel";
            assert!(matches!(
                read_frame(&mut r, 16).await,
                Err(FrameError::Truncated)
            ));
        });
    }

    #[test]
    fn oversize_is_rejected_before_reading_body() {
        block_on(async {
            // Announces 4 GiB - 1 and provides nothing: must fail at once.
            let mut r: &[u8] = b"\xff\xff\xff\xff";
            let err = read_frame(&mut r, 1024).await.unwrap_err();
            assert!(matches!(
                err,
                FrameError::TooLarge {
                    len: 0xffff_ffff,
                    max: 1024
                }
            ));
            assert!(err.is_protocol_violation());
            let mut r: &[u8] = b"\x00\x00\x00\x11";
            assert!(matches!(
                read_frame(&mut r, 16).await,
                Err(FrameError::TooLarge { len: 17, .. })
            ));
            let mut out = Vec::new();
            assert!(matches!(
                write_frame(&mut out, &[0; 17], 16).await,
                Err(FrameError::TooLarge { len: 17, max: 16 })
            ));
            assert!(out.is_empty());
        });
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        a: u32,
        b: String,
    }

    #[test]
    fn codec_round_trip_and_garbage() {
        let v = Sample {
            a: 7,
            b: "x".into(),
        };
        let bytes = encode(&v).unwrap();
        assert_eq!(bytes, [7, 1, b'x']);
        assert_eq!(decode::<Sample>(&bytes).unwrap(), v);
        assert!(decode::<Sample>(&[7]).is_err());
        assert!(matches!(
            decode::<Sample>(&[7, 1, b'x', 0]),
            Err(CodecError::TrailingBytes(1))
        ));
        // String length far beyond the input.
        assert!(decode::<Sample>(&[7, 0xff, 0xff, 0xff, 0x0f]).is_err());
        // Invalid UTF-8.
        assert!(decode::<Sample>(&[7, 1, 0xff]).is_err());
    }

    proptest! {
        #[test]
        fn prop_decode_garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<Sample>(&b);
        }

        #[test]
        fn prop_read_frame_garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = &b[..];
            let _ = block_on(read_frame(&mut r, 32));
        }
    }
}
