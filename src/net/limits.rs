//! Every limit, timeout, port and protocol constant of the `net` layer, in
//! one place. Nothing here does I/O.

use std::ops::RangeInclusive;
use std::time::Duration;

/// Version of the lshed wire protocol (handshake and framing). Sent as a
/// fixed 4-byte big-endian prefix of every handshake message, so a peer of
/// any version can read it and say clearly which version the other side runs.
pub const PROTOCOL_VERSION: u32 = 5;

/// TLS ALPN identifier. Deliberately *not* versioned: if it changed between
/// versions, two peers of different versions would fail in the TLS layer
/// with an opaque "no application protocol" error instead of reaching the
/// handshake, where the version is compared and a clear message is given.
pub const ALPN: &[u8] = b"lshed";

/// The server name the guest asks for and the host's certificate carries.
/// It has no meaning: the guest pins the certificate by its fingerprint.
pub const SERVER_NAME: &str = "lshed.invalid";

/// Label for the TLS exporter (RFC 5705 / RFC 8446 §7.5) that binds the
/// guest's proof of the secret to one connection.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-lshed-join-proof";

/// UDP ports a host tries, in order, for the direct listener.
pub const DIRECT_PORTS: RangeInclusive<u16> = 5990..=5999;

/// How long a guest waits for any of the host's addresses to complete the
/// QUIC/TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// In connection mode `auto`, how long a guest whose relayed connection
/// completed first still waits for the direct one, which it prefers (one
/// hop fewer). Direct on the same network completes in milliseconds.
pub const AUTO_DIRECT_GRACE: Duration = Duration::from_millis(300);

/// How long a client waits for a relay to answer, over UDP and then TCP.
pub const RELAY_CONNECT_TIMEOUT: Duration = Duration::from_secs(8);

/// How long a client waits for the relay over UDP before it also tries TCP
/// (networks that block UDP drop it silently; a relay on a working path
/// answers in a round trip).
pub const TCP_FALLBACK_AFTER: Duration = Duration::from_millis(1500);

/// How long either side waits for the other's next handshake step (the
/// host for the guest's `Hello`, the guest for the first reply).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the host's user has to accept or reject a joiner before the
/// guest is refused with `ApprovalTimedOut`. The guest waits this long plus
/// [`HANDSHAKE_TIMEOUT`] for the answer.
pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a graceful close waits for the peer to acknowledge the last
/// queued messages (and a refusal waits for the guest to read it) before
/// closing the connection anyway.
pub const GRACEFUL_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// QUIC keep-alive interval: keeps NAT bindings and the idle timer alive
/// while nobody types.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// A connection that has heard nothing for this long is dead.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Largest frame on the message channel: a full sync of a big document.
/// Checked before anything is allocated.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Largest handshake (control) frame. A `Hello` is ~100 bytes. Like the
/// 4-byte length prefix and the 4-byte version prefix, this is part of the
/// contract every protocol version keeps, so that a host can always read a
/// `Hello` far enough to answer "version mismatch".
pub const MAX_CONTROL_FRAME_LEN: usize = 4 * 1024;

/// Longest display name kept from a `Hello`, in characters (longer names are
/// cut, control characters removed). The same cap as the config's
/// `MAX_DISPLAY_NAME` (a test holds them equal; `net` does not depend on
/// `config`).
pub const MAX_NAME_CHARS: usize = 40;

/// Longest colour string kept from a `Hello`, in characters.
pub const MAX_COLOR_CHARS: usize = 32;

/// Guests admitted at once (pending approval plus connected), by default.
pub const MAX_GUESTS: usize = 32;

/// Incoming connections whose handshake may run at once; more are refused
/// at the QUIC level before any TLS work.
pub const MAX_CONCURRENT_HANDSHAKES: usize = 64;

/// Joiners waiting in the host's approval queue before further ones are
/// refused as `Full`.
pub const MAX_PENDING_APPROVALS: usize = 16;

/// Capacity (in messages) of each direction's queue between the session
/// layer and the connection's I/O tasks. A full outgoing queue makes
/// `send` wait (backpressure); a full incoming queue stops reading, which
/// lets QUIC flow control slow the peer down.
pub const CHANNEL_CAPACITY: usize = 256;

/// Most direct addresses an invite link carries.
pub const MAX_LINK_ADDRS: usize = 16;

/// Longest relay address (`host:port`) an invite link carries, in bytes.
pub const MAX_RELAY_ADDR_LEN: usize = 300;

/// Participant id of the host itself; guests get 1, 2, 3, … in join order.
pub const HOST_PARTICIPANT_ID: u64 = 0;
