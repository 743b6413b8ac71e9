//! Every limit of the relay server, with the reason for its value. The
//! ones an operator may want to change are fields of [`RelayLimits`] with
//! a flag of `lshed relay`; the constants are their defaults.

use std::time::Duration;

/// Port `lshed relay` listens on by default (UDP for QUIC). Below the
/// hosts' direct range 5990–5999, so a relay and a host can share a machine.
pub const DEFAULT_PORT: u16 = 5980;

/// Sessions (registered hosts) one relay carries. An idle session costs the
/// relay two QUIC connections' state (a few tens of KiB); 10,000 of them
/// fit in well under a GiB. Beyond that, add relays: each link names its
/// own relay, so relays never need to know about each other.
pub const MAX_SESSIONS: usize = 10_000;

/// Guests of one session on one relay: the host's own limit
/// (`net::limits::MAX_GUESTS`), so the relay refuses no one the host would
/// take, and a leaked link cannot fill the relay through one session.
pub const MAX_GUESTS_PER_SESSION: usize = crate::net::limits::MAX_GUESTS;

/// Connections from one IP address. A NAT may put a whole office behind one
/// address, so this is generous; it stops one machine from taking the
/// relay's sessions for itself.
pub const MAX_CONNS_PER_IP: usize = 64;

/// QUIC handshakes in progress at once. A handshake costs the relay a
/// signature; more than this at once is a flood, refused before any TLS work.
pub const MAX_HANDSHAKES: usize = 128;

/// A session's forwarding budget, in bytes per second (both directions,
/// all its guests). Typing needs a few KiB/s; opening a 4 MiB file once
/// needs a burst; a sustained 4 MiB/s is a file transfer, which the relay
/// slows rather than let one session take the link.
pub const SESSION_RATE_BYTES_PER_SEC: u32 = 4 * 1024 * 1024;

/// A session's burst allowance: the largest file lshed shares (4 MiB) plus
/// its CRDT state, at once.
pub const SESSION_BURST_BYTES: u32 = 16 * 1024 * 1024;

/// Packets waiting at the relay for one destination. When full, the oldest
/// is dropped (QUIC resends what mattered): a receiver that stops reading
/// costs the relay at most this much, and never slows anyone else.
pub const QUEUE_PACKETS: usize = 512;

/// Time a client has from its first packet to a complete registration
/// (QUIC handshake plus hello).
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// A client the relay has heard nothing from for this long is gone.
/// Clients send keep-alives every 5 s (`net::limits::KEEPALIVE_INTERVAL`).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Time a shutting-down relay gives its clients to hear the close.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes of a packet as the relay queues it (inner packet, tag and the
/// outer datagram's overhead), to size the queue in bytes.
pub const QUEUED_PACKET_BYTES: usize = 1300;

/// The relay's tunables; `Default` gives the constants above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayLimits {
    /// See [`MAX_SESSIONS`].
    pub max_sessions: usize,
    /// See [`MAX_GUESTS_PER_SESSION`].
    pub max_guests_per_session: usize,
    /// See [`MAX_CONNS_PER_IP`].
    pub max_conns_per_ip: usize,
    /// See [`MAX_HANDSHAKES`].
    pub max_handshakes: usize,
    /// See [`SESSION_RATE_BYTES_PER_SEC`].
    pub rate_bytes_per_sec: u32,
    /// See [`SESSION_BURST_BYTES`].
    pub burst_bytes: u32,
    /// See [`QUEUE_PACKETS`].
    pub queue_packets: usize,
    /// See [`REGISTER_TIMEOUT`].
    pub register_timeout: Duration,
    /// See [`IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_sessions: MAX_SESSIONS,
            max_guests_per_session: MAX_GUESTS_PER_SESSION,
            max_conns_per_ip: MAX_CONNS_PER_IP,
            max_handshakes: MAX_HANDSHAKES,
            rate_bytes_per_sec: SESSION_RATE_BYTES_PER_SEC,
            burst_bytes: SESSION_BURST_BYTES,
            queue_packets: QUEUE_PACKETS,
            register_timeout: REGISTER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}
