//! The network layer: QUIC endpoints (quinn + rustls, ring only), invite
//! links, framing and the authenticated join handshake.
//!
//! What it gives the session layer: a host listens with
//! [`HostEndpoint::bind`] and hands out [`HostEndpoint::invite_link`]; a
//! guest joins with [`connect_direct`]; both end up with a
//! [`PeerConnection`] — an ordered, reliable channel of opaque `Vec<u8>`
//! messages each way, with a close reason when it ends.
//!
//! Security in short: the link carries the host certificate's SHA-256 and a
//! 256-bit secret. TLS 1.3 with the certificate pinned authenticates the
//! host and encrypts end to end; the guest proves the secret with an HMAC
//! bound to the TLS session (see [`handshake`]), so the secret never crosses
//! the network and a proof cannot be replayed. Every frame is size-capped
//! before allocation and every decode fails cleanly; a misbehaving peer's
//! connection is closed and nothing else is affected.
//!
//! ## Paths: direct now, relayed next
//!
//! A [`Path`] says how a QUIC connection travels. Everything from TLS up
//! (pinning, handshake, [`PeerConnection`]) works on a plain
//! `quinn::Connection`, whatever carries its datagrams. The relay will slot
//! in below quinn, not beside it:
//!
//! - `relay::client` (to come) implements `quinn::AsyncUdpSocket` over a
//!   connection to the relay: each QUIC datagram is wrapped with the peer's
//!   relay-assigned id and forwarded; the relay sees only opaque, encrypted
//!   QUIC packets plus the session id it routes on (never the secret).
//! - The host registers with the relay, builds a second `quinn::Endpoint`
//!   with `Endpoint::new_with_abstract_socket` and
//!   [`HostEndpoint::server_config`] (the *same* certificate), and hands it
//!   to [`HostEndpoint::add_listener`] with `Path::Relayed`: its guests go
//!   through the same handshake and arrive through the same `accept`.
//! - The guest builds a client endpoint the same way and calls
//!   [`endpoint::connect_over`] with `Path::Relayed`; `connect` (auto mode)
//!   will race `connect_direct` with that, preferring direct: if the direct
//!   handshake completes within a short grace period after the relayed
//!   one, it wins.
//! - The invite link already carries `relay: Option<String>`; the session
//!   id routes at the relay, the secret never reaches it.
//!
//! May depend on: tokio, quinn, rustls, rcgen, ring, serde/postcard,
//! base64, thiserror, tracing. Never on the editor, the terminal or the
//! session layer.

pub mod channel;
pub mod endpoint;
pub mod frame;
pub mod handshake;
pub mod limits;
pub mod link;
pub mod relay_client;
pub mod relay_proto;
pub mod tls;

use std::fmt;

pub use channel::{
    CloseCode, CloseReason, MessageSender, PeerConnection, PeerInfo, SendError, TrySendError,
};
pub use endpoint::{
    connect, connect_direct, connect_over, AcceptError, ConnectError, ConnectOptions, ConnectPaths,
    GuestProfile, HostEndpoint, HostError, HostOptions, PendingGuest,
};
pub use handshake::RefusalReason;
pub use link::{InviteLink, LinkError};
pub use relay_client::{RelayConnectOptions, RelayError, RelayLink, RelaySocket};
pub use relay_proto::{RelayAddr, RelayRefusal, RouteId};

/// How a connection's packets travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// Straight between guest and host over UDP.
    Direct,
    /// Through a relay server that forwards encrypted QUIC packets.
    Relayed,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Path::Direct => "direct",
            Path::Relayed => "relayed",
        })
    }
}
