//! The network layer: QUIC endpoints (quinn + rustls, ring only), invite
//! links, framing and the authenticated join handshake.
//!
//! What it gives the session layer: a host listens with
//! [`HostEndpoint::bind`] (or [`HostEndpoint::unbound`] for relay only),
//! optionally registers with a relay ([`HostEndpoint::register_relay`]),
//! and hands out [`HostEndpoint::invite_link`]; a guest joins with
//! [`connect`] over the paths its mode allows; both end up with a
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
//! ## Paths: direct and relayed
//!
//! A [`Path`] says how a QUIC connection travels. Everything from TLS up
//! (pinning, handshake, [`PeerConnection`]) works on a plain
//! `quinn::Connection`, whatever carries its datagrams; the relay slots in
//! below quinn, not beside it:
//!
//! - [`relay_client`] opens one outer connection to `lshed relay` (QUIC,
//!   or TLS over TCP when UDP is blocked, through an HTTP proxy if set) and
//!   offers a `quinn::AsyncUdpSocket` over it: each inner QUIC packet rides
//!   as one outer datagram or frame, a host's tagged with the guest's
//!   relay-assigned id. The relay sees only encrypted packets and a route
//!   id derived from the link's secret ([`relay_proto`]).
//! - The host builds a second quinn endpoint over that socket with the
//!   *same* certificate and adds it with [`HostEndpoint::add_listener`]:
//!   relayed guests go through the same handshake and `accept`.
//! - The guest's [`connect`] races the direct handshake with the relayed
//!   one, preferring direct if it completes within
//!   [`limits::AUTO_DIRECT_GRACE`] of the relayed one; only the winner runs
//!   the join handshake, so the host is asked about a guest once.
//! - The invite link (v2) carries the relay's address and fingerprint.
//!
//! The relay server itself is `crate::relay`, beside this layer: it shares
//! the framing, TLS and relay protocol here, and nothing above.
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
