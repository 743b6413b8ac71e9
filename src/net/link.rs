//! Invite links: everything a guest needs to join, as one pasteable token.
//!
//! Format (version 2):
//!
//! ```text
//! lshed://join/v2/<base64url, no padding, of the binary payload>
//! ```
//!
//! The payload is, in order:
//!
//! | bytes | field |
//! |---|---|
//! | 16 | session id |
//! | 32 | secret (never sent over the network; proves knowledge in the handshake) |
//! | 32 | SHA-256 of the host's DER certificate (pinned by the guest) |
//! | 1 | number N of direct addresses (≤ [`MAX_LINK_ADDRS`]) |
//! | N × (1 + 4/16 + 2) | family (4 or 6), IP bytes, port (big-endian) |
//! | 2 | relay address length L (0 = no relay; ≤ [`MAX_RELAY_ADDR_LEN`]) |
//! | L | relay `host:port`, UTF-8 |
//! | 32 if L > 0 | SHA-256 of the relay's certificate (pinned) |
//! | 4 | first 4 bytes of SHA-256 of everything above (typo detection) |
//!
//! Version 1 had no relay fingerprint. v1 links (direct only: no lshed ever
//! wrote a relay into one) are still read; a v1 link naming a relay is
//! refused with [`LinkError::OldRelayLink`], since its relay cannot be pinned.
//!
//! Parsing is forgiving about how the link travelled: surrounding whitespace
//! and **all whitespace inside** are removed before parsing (a link contains
//! none, so this is lossless and undoes a terminal or mail client wrapping
//! it), as are surrounding quotes or angle brackets, and the `lshed://join/`
//! prefix is matched case-insensitively. Errors are distinct so the join
//! prompt can say what is wrong ([`LinkError`]).
//!
//! May depend on: std, base64, ring (SHA-256), thiserror. No I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::limits::{MAX_LINK_ADDRS, MAX_RELAY_ADDR_LEN};
use super::relay_proto::RelayAddr;

/// The scheme and path every invite link starts with.
pub const LINK_PREFIX: &str = "lshed://join/";

/// The link format version this lshed writes and reads.
pub const LINK_VERSION: u32 = 2;

/// The oldest link format this lshed still reads.
pub const OLDEST_LINK_VERSION: u32 = 1;

const CHECKSUM_LEN: usize = 4;

/// Everything a guest needs to join a session.
///
/// `Debug` hides the secret; `Display` writes the full link (it *is* the
/// capability to join, so treat the string like a password).
#[derive(Clone, PartialEq, Eq)]
pub struct InviteLink {
    /// Identifies the session on the host.
    pub session_id: [u8; 16],
    /// High-entropy secret; the guest proves knowledge of it without sending it.
    pub secret: [u8; 32],
    /// SHA-256 of the host's DER certificate; the guest accepts no other.
    pub fingerprint: [u8; 32],
    /// Addresses where the host listens directly (QUIC over UDP).
    /// `Display` writes at most [`MAX_LINK_ADDRS`] of them.
    pub direct: Vec<SocketAddr>,
    /// The relay the host is registered with, if any: where it is and its
    /// certificate's fingerprint.
    pub relay: Option<RelayAddr>,
}

/// Why a string is not a usable invite link. Messages are fit for the join
/// prompt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The text does not start with `lshed://join/`.
    #[error("not an lshed invite link (an invite link starts with lshed://join/, or is a relay's join page address ending in #v2/…)")]
    NotAnLshedLink,
    /// The link was made by an lshed with a newer (or unknown) link format.
    #[error(
        "unsupported link version {found} (this lshed understands v{OLDEST_LINK_VERSION} to v{LINK_VERSION}); update lshed"
    )]
    UnsupportedVersion {
        /// The version the link says it has.
        found: u32,
    },
    /// The link is cut short (copied partly?).
    #[error("the invite link is truncated; copy the whole link")]
    Truncated,
    /// The link has the right shape but its content is damaged.
    #[error("the invite link is corrupt ({0}); copy it again")]
    Corrupt(&'static str),
    /// The link names neither a direct address nor a relay.
    #[error("the invite link has no address to reach the host")]
    NoAddress,
    /// A web link (`https://relay/join#v2/…`) without its part after `#`.
    #[error(
        "this web link has lost its part after '#', which holds the invite; copy the whole link"
    )]
    WebLinkWithoutInvite,
    /// A v1 link that names a relay: the relay cannot be pinned.
    #[error("this invite link was made by an older lshed and names a relay it cannot verify; ask the host to share again with a current lshed")]
    OldRelayLink,
}

impl InviteLink {
    /// Checks what `Display` cannot report: the link has somewhere to
    /// connect to and fits the format's limits. Hosts call this before
    /// handing a link out.
    pub fn validate(&self) -> Result<(), LinkError> {
        if self.direct.is_empty() && self.relay.is_none() {
            return Err(LinkError::NoAddress);
        }
        if self.direct.len() > MAX_LINK_ADDRS {
            return Err(LinkError::Corrupt("too many addresses"));
        }
        if let Some(relay) = &self.relay {
            validate_relay(&relay.addr)?;
        }
        Ok(())
    }

    fn encode_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&self.session_id);
        out.extend_from_slice(&self.secret);
        out.extend_from_slice(&self.fingerprint);
        let addrs = &self.direct[..self.direct.len().min(MAX_LINK_ADDRS)];
        // MAX_LINK_ADDRS < 256, so the count fits a byte.
        out.push(addrs.len() as u8);
        for addr in addrs {
            match addr.ip() {
                IpAddr::V4(ip) => {
                    out.push(4);
                    out.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    out.push(6);
                    out.extend_from_slice(&ip.octets());
                }
            }
            out.extend_from_slice(&addr.port().to_be_bytes());
        }
        match &self.relay {
            Some(relay) => {
                let addr = relay.addr.as_bytes();
                let addr = &addr[..addr.len().min(MAX_RELAY_ADDR_LEN)];
                // MAX_RELAY_ADDR_LEN < 65536.
                out.extend_from_slice(&(addr.len() as u16).to_be_bytes());
                out.extend_from_slice(addr);
                out.extend_from_slice(&relay.fingerprint);
            }
            None => out.extend_from_slice(&0u16.to_be_bytes()),
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum);
        out
    }

    fn decode_payload(bytes: &[u8], version: u32) -> Result<Self, LinkError> {
        let mut r = Reader(bytes);
        let session_id = r.array::<16>()?;
        let secret = r.array::<32>()?;
        let fingerprint = r.array::<32>()?;
        let count = r.array::<1>()?[0] as usize;
        if count > MAX_LINK_ADDRS {
            return Err(LinkError::Corrupt("too many addresses"));
        }
        let mut direct = Vec::with_capacity(count);
        for _ in 0..count {
            let ip = match r.array::<1>()?[0] {
                4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
                6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
                _ => return Err(LinkError::Corrupt("unknown address family")),
            };
            let port = u16::from_be_bytes(r.array::<2>()?);
            direct.push(SocketAddr::new(ip, port));
        }
        let relay_len = u16::from_be_bytes(r.array::<2>()?) as usize;
        if relay_len > MAX_RELAY_ADDR_LEN {
            return Err(LinkError::Corrupt("relay address too long"));
        }
        let relay_bytes = r.take(relay_len)?;
        let relay_fingerprint = if relay_len > 0 && version >= 2 {
            Some(r.array::<32>()?)
        } else {
            None
        };
        let body_len = bytes.len() - r.0.len();
        let sum = r.array::<CHECKSUM_LEN>()?;
        if !r.0.is_empty() {
            return Err(LinkError::Corrupt("trailing data"));
        }
        if sum != checksum(&bytes[..body_len]) {
            return Err(LinkError::Corrupt("checksum mismatch"));
        }
        let relay = if relay_len == 0 {
            None
        } else {
            let relay = std::str::from_utf8(relay_bytes)
                .map_err(|_| LinkError::Corrupt("relay address is not UTF-8"))?;
            validate_relay(relay)?;
            let fingerprint = relay_fingerprint.ok_or(LinkError::OldRelayLink)?;
            Some(RelayAddr {
                addr: relay.to_owned(),
                fingerprint,
            })
        };
        let link = InviteLink {
            session_id,
            secret,
            fingerprint,
            direct,
            relay,
        };
        link.validate()?;
        Ok(link)
    }
}

fn validate_relay(relay: &str) -> Result<(), LinkError> {
    RelayAddr::validate_host(relay).map_err(|_| LinkError::Corrupt("bad relay address"))
}

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&digest.as_ref()[..CHECKSUM_LEN]);
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LinkError> {
        if self.0.len() < n {
            return Err(LinkError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LinkError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

impl fmt::Display for InviteLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{LINK_PREFIX}{}", self.invite_part())
    }
}

impl InviteLink {
    /// The link after `lshed://join/`: `v2/<payload>`.
    fn invite_part(&self) -> String {
        format!(
            "v{LINK_VERSION}/{}",
            URL_SAFE_NO_PAD.encode(self.encode_payload())
        )
    }

    /// The link as a web address on a relay's join page
    /// (`PAGE#v2/<payload>`): the invite rides in the fragment, which
    /// browsers never send to the server.
    pub fn web_url(&self, join_page: &str) -> String {
        format!("{join_page}#{}", self.invite_part())
    }
}

impl fmt::Debug for InviteLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteLink")
            .field("session_id", &hex(&self.session_id))
            .field("secret", &"<redacted>")
            .field("fingerprint", &hex(&self.fingerprint))
            .field("direct", &self.direct)
            .field("relay", &self.relay)
            .finish()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl FromStr for InviteLink {
    type Err = LinkError;

    fn from_str(s: &str) -> Result<Self, LinkError> {
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let compact = strip_wrapping(&compact);
        // A relay's web link carries the invite in its fragment.
        let lower = compact.get(..8).unwrap_or("").to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("http://") {
            let (page, fragment) = compact.split_once('#').unwrap_or((compact, ""));
            let looks_like_invite = fragment
                .strip_prefix(['v', 'V'])
                .and_then(|rest| rest.split_once('/'))
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if looks_like_invite {
                return format!("{LINK_PREFIX}{fragment}").parse();
            }
            let page = page.trim_end_matches('/').to_ascii_lowercase();
            return Err(if page.ends_with("/join") {
                LinkError::WebLinkWithoutInvite
            } else {
                LinkError::NotAnLshedLink
            });
        }
        let prefix_len = LINK_PREFIX.len();
        let rest = match compact.get(..prefix_len) {
            Some(head) if head.eq_ignore_ascii_case(LINK_PREFIX) => &compact[prefix_len..],
            _ => return Err(LinkError::NotAnLshedLink),
        };
        let (version, payload) = rest.split_once('/').ok_or(LinkError::Truncated)?;
        let version = version
            .strip_prefix(['v', 'V'])
            .ok_or(LinkError::Corrupt("missing version"))?;
        let version: u32 = version
            .parse()
            .map_err(|_| LinkError::Corrupt("bad version"))?;
        if !(OLDEST_LINK_VERSION..=LINK_VERSION).contains(&version) {
            return Err(LinkError::UnsupportedVersion { found: version });
        }
        if payload.is_empty() {
            return Err(LinkError::Truncated);
        }
        let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|e| match e {
            base64::DecodeError::InvalidByte(..) => LinkError::Corrupt("invalid character"),
            // A cut-off base64 string has an impossible length or a last
            // symbol with stray bits.
            _ => LinkError::Truncated,
        })?;
        InviteLink::decode_payload(&bytes, version)
    }
}

/// Removes one layer of quotes or angle brackets that chat programs and
/// mail clients put around links.
fn strip_wrapping(s: &str) -> &str {
    for (open, close) in [('<', '>'), ('"', '"'), ('\'', '\''), ('`', '`')] {
        if let Some(inner) = s.strip_prefix(open).and_then(|r| r.strip_suffix(close)) {
            return inner;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> InviteLink {
        InviteLink {
            session_id: [1; 16],
            secret: [2; 32],
            fingerprint: [3; 32],
            direct: vec![
                "127.0.0.1:5990".parse().unwrap(),
                "[::1]:5991".parse().unwrap(),
            ],
            relay: Some(RelayAddr {
                addr: "relay.example.org:4433".into(),
                fingerprint: [4; 32],
            }),
        }
    }

    #[test]
    fn round_trip() {
        let link = sample();
        let text = link.to_string();
        assert!(text.starts_with("lshed://join/v2/"));
        assert!(!text.contains(char::is_whitespace));
        assert_eq!(text.parse::<InviteLink>().unwrap(), link);
    }

    #[test]
    fn round_trip_relay_only_and_direct_only() {
        let mut link = sample();
        link.direct.clear();
        assert_eq!(link.to_string().parse::<InviteLink>().unwrap(), link);
        let mut link = sample();
        link.relay = None;
        assert_eq!(link.to_string().parse::<InviteLink>().unwrap(), link);
    }

    #[test]
    fn tolerates_whitespace_wrapping_and_quotes() {
        let link = sample();
        let text = link.to_string();
        let (a, b) = text.split_at(40);
        let (b, c) = b.split_at(37);
        let mangled = format!("\n  {a}\n{b}\r\n {c}  \n");
        assert_eq!(mangled.parse::<InviteLink>().unwrap(), link);
        assert_eq!(format!("<{text}>").parse::<InviteLink>().unwrap(), link);
        assert_eq!(format!("\"{text}\"").parse::<InviteLink>().unwrap(), link);
        let upper = text.replacen("lshed://join/", "LSHED://JOIN/", 1);
        assert_eq!(upper.parse::<InviteLink>().unwrap(), link);
    }

    #[test]
    fn distinct_errors() {
        let text = sample().to_string();
        assert_eq!(
            "https://example.org".parse::<InviteLink>(),
            Err(LinkError::NotAnLshedLink)
        );
        assert_eq!("".parse::<InviteLink>(), Err(LinkError::NotAnLshedLink));
        assert_eq!(
            text.replacen("/v2/", "/v3/", 1).parse::<InviteLink>(),
            Err(LinkError::UnsupportedVersion { found: 3 })
        );
        assert_eq!(
            "lshed://join/v2/".parse::<InviteLink>(),
            Err(LinkError::Truncated)
        );
        assert_eq!(
            "lshed://join/".parse::<InviteLink>(),
            Err(LinkError::Truncated)
        );
        // Every cut of the payload is reported as truncated (or, rarely,
        // as corrupt), never accepted.
        for cut in LINK_PREFIX.len() + 3..text.len() {
            let err = text[..cut].parse::<InviteLink>().unwrap_err();
            assert!(
                matches!(err, LinkError::Truncated | LinkError::Corrupt(_)),
                "{cut}: {err:?}"
            );
        }
        assert_eq!(
            text[..text.len() - 20].parse::<InviteLink>(),
            Err(LinkError::Truncated)
        );
        // A changed character is caught by the checksum.
        let mut bytes = text.clone().into_bytes();
        let i = text.len() - 30;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).unwrap();
        assert!(matches!(
            changed.parse::<InviteLink>(),
            Err(LinkError::Corrupt(_))
        ));
        let bad_char = format!("{}!{}", &text[..30], &text[31..]);
        assert!(matches!(
            bad_char.parse::<InviteLink>(),
            Err(LinkError::Corrupt(_))
        ));
        let mut none = sample();
        none.direct.clear();
        none.relay = None;
        assert_eq!(none.validate(), Err(LinkError::NoAddress));
        assert_eq!(
            none.to_string().parse::<InviteLink>(),
            Err(LinkError::NoAddress)
        );
    }

    /// A v1 payload: as v2, without the relay's fingerprint.
    fn v1_text(link: &InviteLink) -> String {
        let mut payload = link.encode_payload();
        payload.truncate(payload.len() - CHECKSUM_LEN);
        if link.relay.is_some() {
            payload.truncate(payload.len() - 32);
        }
        let sum = checksum(&payload);
        payload.extend_from_slice(&sum);
        format!("lshed://join/v1/{}", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn old_links_still_join_directly_but_not_through_a_relay() {
        let mut link = sample();
        link.relay = None;
        assert_eq!(v1_text(&link).parse::<InviteLink>().unwrap(), link);
        let with_relay = sample();
        let err = v1_text(&with_relay).parse::<InviteLink>().unwrap_err();
        assert_eq!(err, LinkError::OldRelayLink);
        assert!(err.to_string().contains("older lshed"));
    }

    #[test]
    fn web_links_carry_the_invite_in_the_fragment() {
        let link = sample();
        let url = link.web_url("https://relay.example.org/join");
        assert!(url.starts_with("https://relay.example.org/join#v2/"));
        assert_eq!(url.parse::<InviteLink>().unwrap(), link);
        assert_eq!(format!("<{url}>").parse::<InviteLink>().unwrap(), link);
        let http = link.web_url("http://127.0.0.1:8080/join");
        assert_eq!(http.parse::<InviteLink>().unwrap(), link);
        assert_eq!(
            "https://relay.example.org/join".parse::<InviteLink>(),
            Err(LinkError::WebLinkWithoutInvite)
        );
        assert_eq!(
            "https://relay.example.org/join#".parse::<InviteLink>(),
            Err(LinkError::WebLinkWithoutInvite)
        );
        assert!(matches!(
            "https://relay.example.org/join#v2/AAAA".parse::<InviteLink>(),
            Err(LinkError::Truncated | LinkError::Corrupt(_))
        ));
        assert_eq!(
            "https://example.org/docs#install".parse::<InviteLink>(),
            Err(LinkError::NotAnLshedLink)
        );
    }

    #[test]
    fn debug_hides_secret() {
        let mut link = sample();
        link.secret = [0xab; 32];
        let dbg = format!("{link:?}");
        assert!(!dbg.contains("abab"));
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn error_messages_are_readable() {
        assert_eq!(
            LinkError::UnsupportedVersion { found: 3 }.to_string(),
            "unsupported link version 3 (this lshed understands v1 to v2); update lshed"
        );
    }

    fn arb_link() -> impl Strategy<Value = InviteLink> {
        let addr = (any::<bool>(), any::<[u8; 16]>(), any::<u16>()).prop_map(|(v6, b, port)| {
            let ip = if v6 {
                IpAddr::V6(Ipv6Addr::from(b))
            } else {
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            };
            SocketAddr::new(ip, port)
        });
        (
            any::<[u8; 16]>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            proptest::collection::vec(addr, 0..=MAX_LINK_ADDRS),
            proptest::option::of(("[a-z0-9.-]{1,40}:[0-9]{1,4}", any::<[u8; 32]>())),
        )
            .prop_filter("needs an address", |(_, _, _, d, r)| {
                !d.is_empty() || r.is_some()
            })
            .prop_map(
                |(session_id, secret, fingerprint, direct, relay)| InviteLink {
                    session_id,
                    secret,
                    fingerprint,
                    direct,
                    relay: relay.map(|(addr, fingerprint)| RelayAddr { addr, fingerprint }),
                },
            )
    }

    proptest! {
        #[test]
        fn prop_round_trip(link in arb_link()) {
            prop_assert_eq!(link.to_string().parse::<InviteLink>().unwrap(), link);
        }

        #[test]
        fn prop_random_strings_never_panic(s in ".*") {
            let _ = s.parse::<InviteLink>();
            let _ = format!("https://{s}").parse::<InviteLink>();
        }

        #[test]
        fn prop_random_payloads_never_panic(s in "[A-Za-z0-9_-]{0,300}") {
            let _ = format!("lshed://join/v1/{s}").parse::<InviteLink>();
            let _ = format!("lshed://join/v2/{s}").parse::<InviteLink>();
        }

        #[test]
        fn prop_random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = format!("lshed://join/v1/{}", URL_SAFE_NO_PAD.encode(&b)).parse::<InviteLink>();
            let _ = format!("lshed://join/v2/{}", URL_SAFE_NO_PAD.encode(&b)).parse::<InviteLink>();
        }
    }
}
