//! What hosts, guests and a relay say to each other, shared by the relay
//! client (`net::relay_client`) and the relay server (`crate::relay`).
//!
//! A client opens one QUIC connection to the relay (ALPN [`RELAY_ALPN`],
//! the relay's certificate pinned by the SHA-256 in [`RelayAddr`]), opens a
//! bidirectional stream and sends one [`ClientHello`] frame (4-byte version
//! prefix, postcard body: the same control framing as the join handshake).
//! The relay answers [`RelayReply`] and, if accepted, forwards packets as
//! QUIC datagrams:
//!
//! - a **host** sends and receives `[8-byte guest id][inner QUIC packet]`,
//!   the id naming the guest the packet is for or from;
//! - a **guest** sends and receives the bare inner packet.
//!
//! The inner packets are the end-to-end encrypted QUIC connection between
//! guest and host: the relay holds no key that opens them. It routes on a
//! [`RouteId`] that both ends derive from the invite link's secret and
//! session id with HMAC-SHA-256, so the relay learns neither, and nobody
//! without the link can find a session on it, join it or take it over.
//!
//! May depend on: std, ring, serde, base64, thiserror, the sibling `frame`
//! and `handshake` codecs. No I/O.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// ALPN of the client ↔ relay connection. Not versioned, for the same
/// reason as the session's ALPN: the version is compared in the hello.
pub const RELAY_ALPN: &[u8] = b"lshed-relay";

/// Version of the relay protocol ([`ClientHello`], [`RelayReply`], the
/// datagram layout).
pub const RELAY_PROTOCOL_VERSION: u32 = 1;

/// Largest control frame either side accepts.
pub const MAX_RELAY_CONTROL_LEN: usize = 1024;

/// Bytes of the guest id in front of each packet a host sends or receives.
pub const PEER_TAG_LEN: usize = 8;

/// Largest inner QUIC packet a relay forwards. The inner endpoints never
/// send more than quinn's initial MTU of 1200 (path MTU discovery is off
/// on a relayed socket), so this leaves room and nothing more.
pub const MAX_INNER_PACKET: usize = 1452;

/// Initial and minimum MTU of the outer (client ↔ relay) QUIC connection:
/// an inner 1200-byte packet plus the 8-byte tag plus the outer datagram's
/// own overhead (about 38 bytes) needs at least 1246; 1280 is the IPv6
/// minimum, which every path that carries IPv6 carries.
pub const OUTER_MTU: u16 = 1280;

/// Over the TCP fallback (TLS over TCP, same port number as the relay's
/// UDP port), after the hello and the reply, each direction carries frames
/// `[4-byte length][kind][payload]`; these are the kinds.
pub mod stream_kind {
    /// A packet, laid out as a datagram would be.
    pub const PACKET: u8 = 0;
    /// The sender closes the link; the payload says why (UTF-8).
    pub const CLOSE: u8 = 1;
    /// Nothing: keeps the relay's idle timer and NAT bindings alive.
    pub const PING: u8 = 2;
}

/// Largest stream frame: a kind byte, a tag and the largest inner packet.
pub const MAX_STREAM_FRAME: usize = 1 + PEER_TAG_LEN + MAX_INNER_PACKET;

/// How often a client on the TCP fallback pings the relay.
pub const STREAM_PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Length of a [`RouteId`].
pub const ROUTE_ID_LEN: usize = 32;

/// The name a session has on a relay: HMAC-SHA-256 of the session id under
/// the link's secret. Both host and guest compute it from the link; the
/// relay sees only this.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouteId(pub [u8; ROUTE_ID_LEN]);

impl RouteId {
    /// The route of the session `session_id` whose link secret is `secret`.
    pub fn derive(secret: &[u8; 32], session_id: &[u8; 16]) -> Self {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let mut ctx = ring::hmac::Context::with_key(&key);
        ctx.update(b"lshed relay route v1");
        ctx.update(session_id);
        let tag = ctx.sign();
        let mut out = [0u8; ROUTE_ID_LEN];
        out.copy_from_slice(tag.as_ref());
        RouteId(out)
    }
}

impl fmt::Debug for RouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only a prefix: enough to tell routes apart in logs.
        write!(f, "RouteId({}…)", super::link::hex(&self.0[..4]))
    }
}

/// What a client asks of the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientHello {
    /// A host registers its session's route. A private relay wants a token.
    Host {
        /// The session's route.
        route: RouteId,
        /// The relay operator's token, if the relay is private.
        token: Option<String>,
    },
    /// A guest attaches to a registered route.
    Guest {
        /// The session's route.
        route: RouteId,
    },
}

/// The relay's answer to a [`ClientHello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayReply {
    /// Registered (host) or attached (guest): packets may flow.
    Accepted {
        /// The relay's join page (`https://relay.example.org/join`), if it
        /// serves one: a host may hand out `PAGE#v2/…` links that open in
        /// a browser. Checked by the client before use.
        join_page: Option<String>,
    },
    /// Turned away, and why.
    Refused(RelayRefusal),
}

/// Why a relay turned a client away. Each has a message fit for the join
/// prompt or the host's status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RelayRefusal {
    /// The client speaks another relay protocol version.
    #[error("the relay runs relay protocol v{relay_version}, this lshed speaks v{RELAY_PROTOCOL_VERSION}; update lshed or the relay")]
    VersionMismatch {
        /// The relay's version.
        relay_version: u32,
    },
    /// A private relay, and the host's token is missing or wrong.
    #[error("the relay refused the token: it is private (set `relay_token` in the config to the operator's token)")]
    BadToken,
    /// Another host holds this route already.
    #[error("the relay already has this session registered")]
    RouteTaken,
    /// No host has registered this route (or it has gone).
    #[error("the session is not on the relay (the host has not registered there, or has stopped sharing)")]
    UnknownRoute,
    /// The relay carries as many sessions as it may.
    #[error("the relay is full (too many sessions)")]
    TooManySessions,
    /// The session has as many guests on this relay as it may.
    #[error("the session is full on the relay (too many guests)")]
    TooManyGuests,
    /// The relay is shutting down.
    #[error("the relay is shutting down")]
    ShuttingDown,
}

/// Why a relay's address from a config or a link is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayAddrError {
    /// No `@` between fingerprint and address.
    #[error("a relay is written FINGERPRINT@HOST:PORT (as `lshed relay` prints it)")]
    Shape,
    /// The fingerprint part is not 43 base64url characters of a SHA-256.
    #[error("the relay's fingerprint is not a SHA-256 in base64url (43 characters)")]
    Fingerprint,
    /// The address part has no port, or bad characters.
    #[error("the relay's address must be HOST:PORT")]
    Address,
}

/// Longest join page URL a client accepts from a relay.
pub const MAX_JOIN_PAGE_LEN: usize = 200;

/// Whether `url` is fit to be a join page: `http(s)://`, short, no
/// whitespace, control characters or `#`.
pub fn valid_join_page(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://"))
        && url.len() <= MAX_JOIN_PAGE_LEN
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '#')
}

/// Longest relay `host:port` kept, in bytes (the invite link's field).
pub const MAX_RELAY_HOST_LEN: usize = super::limits::MAX_RELAY_ADDR_LEN;

/// A relay as hosts and guests pin it: where it is, and the SHA-256 of its
/// certificate. Written `FINGERPRINT@HOST:PORT`, the fingerprint in
/// base64url without padding.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RelayAddr {
    /// `host:port` (a DNS name or an IP; IPv6 in brackets).
    pub addr: String,
    /// SHA-256 of the relay's DER certificate.
    pub fingerprint: [u8; 32],
}

impl RelayAddr {
    /// Checks the `host:port` part.
    pub fn validate_host(addr: &str) -> Result<(), RelayAddrError> {
        let ok = !addr.is_empty()
            && addr.len() <= MAX_RELAY_HOST_LEN
            && !addr.chars().any(|c| c.is_whitespace() || c.is_control())
            && addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if ok {
            Ok(())
        } else {
            Err(RelayAddrError::Address)
        }
    }
}

impl fmt::Display for RelayAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}",
            URL_SAFE_NO_PAD.encode(self.fingerprint),
            self.addr
        )
    }
}

impl fmt::Debug for RelayAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelayAddr({self})")
    }
}

impl FromStr for RelayAddr {
    type Err = RelayAddrError;

    fn from_str(s: &str) -> Result<Self, RelayAddrError> {
        let s = s.trim();
        let (fp, addr) = s.split_once('@').ok_or(RelayAddrError::Shape)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(fp)
            .map_err(|_| RelayAddrError::Fingerprint)?;
        let fingerprint: [u8; 32] = bytes.try_into().map_err(|_| RelayAddrError::Fingerprint)?;
        Self::validate_host(addr)?;
        Ok(RelayAddr {
            addr: addr.to_owned(),
            fingerprint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::frame::{decode, encode};

    #[test]
    fn route_depends_on_secret_and_session() {
        let a = RouteId::derive(&[1; 32], &[2; 16]);
        assert_eq!(a, RouteId::derive(&[1; 32], &[2; 16]));
        assert_ne!(a, RouteId::derive(&[9; 32], &[2; 16]));
        assert_ne!(a, RouteId::derive(&[1; 32], &[9; 16]));
        // Neither input shows in the route.
        assert!(!a.0.windows(16).any(|w| w == [2; 16]));
    }

    #[test]
    fn relay_addr_round_trip_and_errors() {
        let r = RelayAddr {
            addr: "relay.example.org:5990".into(),
            fingerprint: [7; 32],
        };
        let text = r.to_string();
        assert_eq!(text.parse::<RelayAddr>().unwrap(), r);
        let v6 = format!("{}@[::1]:5990", URL_SAFE_NO_PAD.encode([7u8; 32]));
        assert_eq!(v6.parse::<RelayAddr>().unwrap().addr, "[::1]:5990");
        assert_eq!(
            "relay:5990".parse::<RelayAddr>(),
            Err(RelayAddrError::Shape)
        );
        assert_eq!(
            "abc@relay:5990".parse::<RelayAddr>(),
            Err(RelayAddrError::Fingerprint)
        );
        let fp = URL_SAFE_NO_PAD.encode([7u8; 32]);
        for bad in ["relay", "relay:", ":5990", "relay:99999", "re lay:1"] {
            assert_eq!(
                format!("{fp}@{bad}").parse::<RelayAddr>(),
                Err(RelayAddrError::Address),
                "{bad}"
            );
        }
    }

    #[test]
    fn join_pages_are_checked() {
        assert!(valid_join_page("https://relay.example.org/join"));
        assert!(valid_join_page("http://127.0.0.1:8080/join"));
        for bad in [
            "ftp://x/join",
            "javascript:alert(1)",
            "https://x/join#frag",
            "https://x/jo in",
            "https://x/\u{7}",
        ] {
            assert!(!valid_join_page(bad), "{bad}");
        }
        assert!(!valid_join_page(&format!("https://{}", "a".repeat(300))));
    }

    #[test]
    fn hello_and_reply_round_trip() {
        let hello = ClientHello::Host {
            route: RouteId([3; 32]),
            token: Some("t".into()),
        };
        assert_eq!(
            decode::<ClientHello>(&encode(&hello).unwrap()).unwrap(),
            hello
        );
        let reply = RelayReply::Accepted {
            join_page: Some("https://relay.example.org/join".into()),
        };
        assert_eq!(
            decode::<RelayReply>(&encode(&reply).unwrap()).unwrap(),
            reply
        );
        let reply = RelayReply::Refused(RelayRefusal::VersionMismatch { relay_version: 9 });
        assert_eq!(
            decode::<RelayReply>(&encode(&reply).unwrap()).unwrap(),
            reply
        );
        assert!(decode::<ClientHello>(&[0xff, 0xff, 0xff]).is_err());
    }
}
