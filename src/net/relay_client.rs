//! The client side of a relay: one outer QUIC connection to `lshed relay`,
//! and a [`quinn::AsyncUdpSocket`] over it, so the session's own (inner,
//! end-to-end) QUIC endpoint runs over the relay exactly as over UDP.
//!
//! [`RelaySocket`] gives each peer behind the relay a made-up address in a
//! private IPv6 range ([`peer_addr`]): a host's socket maps the relay's
//! guest ids to such addresses and back, a guest's socket sees the host at
//! one fixed address ([`HOST_ADDR`]). quinn never learns the difference.
//!
//! Sending never fails from quinn's point of view: an error other than
//! `WouldBlock` would kill quinn's connection driver, so a packet that
//! cannot go (relay gone, too large) is dropped, as UDP would, and QUIC's
//! loss recovery and idle timeout do the rest. The outer connection's
//! datagram send buffer drops its oldest packets when full, so a stalled
//! relay link never blocks the session.
//!
//! May depend on: tokio, quinn, bytes (via quinn), and the sibling `tls`,
//! `frame`, `handshake` and `relay_proto` modules.

use std::io::{self, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::sync::mpsc;

use super::frame::{read_frame, write_frame};
use super::handshake::{decode_control, encode_control, peek_version};
use super::limits::{IDLE_TIMEOUT, KEEPALIVE_INTERVAL};
use super::relay_proto::{
    ClientHello, RelayAddr, RelayRefusal, RelayReply, MAX_INNER_PACKET, MAX_RELAY_CONTROL_LEN,
    OUTER_MTU, PEER_TAG_LEN, RELAY_ALPN, RELAY_PROTOCOL_VERSION,
};
use super::tls::{pinned_client_config, transport_config};

/// Packets received from the relay and not yet taken by quinn. Beyond
/// this, arriving packets are dropped (QUIC recovers, as from UDP loss).
const RECV_QUEUE: usize = 1024;

/// The address a guest's socket gives the host behind the relay.
pub const HOST_ADDR: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V6(Ipv6Addr::new(0xfd00, 0x6c73, 0x6865, 0x6401, 0, 0, 0, 0)),
    1,
);

/// The address a relayed socket reports as its own.
const LOCAL_ADDR: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V6(Ipv6Addr::new(0xfd00, 0x6c73, 0x6865, 0x64ff, 0, 0, 0, 1)),
    1,
);

/// The made-up address of the guest the relay calls `id`.
pub fn peer_addr(id: u64) -> SocketAddr {
    let ip = (0xfd00_6c73_6865_6400u128 << 64) | u128::from(id);
    SocketAddr::new(std::net::IpAddr::V6(Ipv6Addr::from(ip)), 1)
}

fn peer_id(addr: &SocketAddr) -> Option<u64> {
    match addr {
        SocketAddr::V6(v6) => {
            let ip = u128::from(*v6.ip());
            (ip >> 64 == 0xfd00_6c73_6865_6400).then_some(ip as u64)
        }
        SocketAddr::V4(_) => None,
    }
}

/// Why a relay could not be used. Messages are fit for the join prompt and
/// the host's status line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The relay's name did not resolve.
    #[error("cannot find the relay {addr}: {detail}")]
    Resolve {
        /// The relay's `host:port`.
        addr: String,
        /// The resolver's error.
        detail: String,
    },
    /// Nothing answered over UDP in time.
    #[error("the relay {addr} does not answer (UDP) within {}s", timeout.as_secs())]
    Unreachable {
        /// The relay's `host:port`.
        addr: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// Something answered with another certificate than the pinned one.
    #[error("the relay at {addr} is not the one configured: its certificate does not match the fingerprint (was the relay's state folder replaced, or is someone in the way?)")]
    CertificateMismatch {
        /// The relay's `host:port`.
        addr: String,
    },
    /// The relay turned us away.
    #[error("{0}")]
    Refused(RelayRefusal),
    /// The relay said something we do not understand, or dropped us.
    #[error("relay protocol error: {0}")]
    Protocol(String),
    /// The relay turned the connection away before any hello: too many
    /// connections from this address, or too many handshakes at once.
    #[error("the relay {addr} refused the connection (too many connections from this address, or too busy)")]
    Busy {
        /// The relay's `host:port`.
        addr: String,
    },
    /// A local problem (no UDP socket, TLS setup).
    #[error("cannot use the relay: {0}")]
    Local(String),
}

/// A client's registration (host) or attachment (guest) at a relay.
#[derive(Debug)]
pub struct RelayLink {
    /// Drives `conn`; kept for as long as the link lives.
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    /// Kept open for the life of the registration.
    _control: (quinn::SendStream, quinn::RecvStream),
}

impl RelayLink {
    /// Connects to `relay`, says `hello`, and waits for the relay's answer;
    /// all within `timeout`.
    pub async fn open(
        relay: &RelayAddr,
        hello: &ClientHello,
        timeout: Duration,
    ) -> Result<Self, RelayError> {
        match tokio::time::timeout(timeout, Self::open_inner(relay, hello, timeout)).await {
            Ok(res) => res,
            Err(_) => Err(RelayError::Unreachable {
                addr: relay.addr.clone(),
                timeout,
            }),
        }
    }

    async fn open_inner(
        relay: &RelayAddr,
        hello: &ClientHello,
        timeout: Duration,
    ) -> Result<Self, RelayError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(relay.addr.as_str())
            .await
            .map_err(|e| RelayError::Resolve {
                addr: relay.addr.clone(),
                detail: e.to_string(),
            })?
            .collect();
        let Some(&target) = addrs.first() else {
            return Err(RelayError::Resolve {
                addr: relay.addr.clone(),
                detail: "no address".into(),
            });
        };
        let (config, mismatch) =
            pinned_client_config(relay.fingerprint, RELAY_ALPN, outer_transport())
                .map_err(|e| RelayError::Local(e.to_string()))?;
        let bind: SocketAddr = if target.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| RelayError::Local(format!("cannot open a UDP socket: {e}")))?;
        let connecting = endpoint
            .connect_with(config, target, "lshed-relay.invalid")
            .map_err(|e| RelayError::Local(e.to_string()))?;
        let conn = match connecting.await {
            Ok(conn) => conn,
            Err(_) if mismatch.is_set() => {
                return Err(RelayError::CertificateMismatch {
                    addr: relay.addr.clone(),
                })
            }
            Err(quinn::ConnectionError::ConnectionClosed(close))
                if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
            {
                return Err(RelayError::Busy {
                    addr: relay.addr.clone(),
                })
            }
            Err(e) => {
                tracing::debug!(%e, "relay connect failed");
                return Err(RelayError::Unreachable {
                    addr: relay.addr.clone(),
                    timeout,
                });
            }
        };
        let gone = |conn: &quinn::Connection| -> RelayError {
            match conn.close_reason() {
                Some(quinn::ConnectionError::ApplicationClosed(c)) => {
                    RelayError::Protocol(String::from_utf8_lossy(&c.reason).into_owned())
                }
                Some(e) => RelayError::Protocol(format!("the relay closed the connection: {e}")),
                None => RelayError::Protocol("the relay closed the control stream".into()),
            }
        };
        let (mut send, mut recv) = conn.open_bi().await.map_err(|_| gone(&conn))?;
        let frame = encode_control(RELAY_PROTOCOL_VERSION, hello)
            .map_err(|e| RelayError::Local(e.to_string()))?;
        write_frame(&mut send, &frame, MAX_RELAY_CONTROL_LEN)
            .await
            .map_err(|_| gone(&conn))?;
        let reply = match read_frame(&mut recv, MAX_RELAY_CONTROL_LEN).await {
            Ok(Some(reply)) => reply,
            Ok(None) | Err(_) => return Err(gone(&conn)),
        };
        let version = peek_version(&reply).map_err(|e| RelayError::Protocol(e.to_string()))?;
        if version != RELAY_PROTOCOL_VERSION {
            return Err(RelayError::Refused(RelayRefusal::VersionMismatch {
                relay_version: version,
            }));
        }
        match decode_control::<RelayReply>(&reply) {
            Ok(RelayReply::Accepted) => Ok(RelayLink {
                _endpoint: endpoint,
                conn,
                _control: (send, recv),
            }),
            Ok(RelayReply::Refused(reason)) => Err(RelayError::Refused(reason)),
            Err(e) => Err(RelayError::Protocol(e.to_string())),
        }
    }

    /// The relay's answer when this link ends (it never ends on its own
    /// while both sides live).
    pub fn close_reason(&self) -> Option<quinn::ConnectionError> {
        self.conn.close_reason()
    }

    /// The outer connection to the relay (for tests and metrics).
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    /// A socket for the session's quinn endpoint over this link: a host's
    /// (`host = true`: packets tagged with guest ids) or a guest's.
    pub fn into_socket(self, host: bool) -> Arc<RelaySocket> {
        let (tx, rx) = mpsc::channel(RECV_QUEUE);
        let conn = self.conn.clone();
        // Reads the relay's datagrams into the queue quinn polls. Ends with
        // the connection; the socket then only ever returns Pending, and
        // quinn's idle timeout ends the inner connections.
        let reader = tokio::spawn(async move {
            while let Ok(datagram) = conn.read_datagram().await {
                let (from, packet) = if host {
                    if datagram.len() <= PEER_TAG_LEN {
                        continue;
                    }
                    let mut tag = [0u8; PEER_TAG_LEN];
                    tag.copy_from_slice(&datagram[..PEER_TAG_LEN]);
                    (
                        peer_addr(u64::from_be_bytes(tag)),
                        datagram.slice(PEER_TAG_LEN..),
                    )
                } else {
                    (HOST_ADDR, datagram)
                };
                if packet.len() > MAX_INNER_PACKET {
                    continue;
                }
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send((from, packet)) {
                    break;
                }
            }
        });
        Arc::new(RelaySocket {
            link: self,
            host,
            incoming: Mutex::new(rx),
            reader,
        })
    }
}

/// Says why a link to the relay ended, for the user.
pub fn describe_close(err: &quinn::ConnectionError) -> String {
    match err {
        quinn::ConnectionError::ApplicationClosed(close) if !close.reason.is_empty() => {
            String::from_utf8_lossy(&close.reason).into_owned()
        }
        quinn::ConnectionError::TimedOut => "the relay stopped answering".into(),
        quinn::ConnectionError::LocallyClosed => "closed here".into(),
        other => other.to_string(),
    }
}

/// Outer connections: datagrams on, an MTU that carries a full inner
/// packet, keep-alives so NATs and the relay's idle timer stay open.
pub fn outer_transport() -> quinn::TransportConfig {
    let mut transport = transport_config();
    transport.initial_mtu(OUTER_MTU);
    transport.min_mtu(OUTER_MTU);
    transport.keep_alive_interval(Some(KEEPALIVE_INTERVAL));
    if let Ok(idle) = quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        transport.max_idle_timeout(Some(idle));
    }
    transport.max_concurrent_bidi_streams(0u8.into());
    transport
}

/// A [`quinn::AsyncUdpSocket`] whose packets travel through a relay.
#[derive(Debug)]
pub struct RelaySocket {
    link: RelayLink,
    host: bool,
    incoming: Mutex<mpsc::Receiver<(SocketAddr, bytes::Bytes)>>,
    reader: tokio::task::JoinHandle<()>,
}

impl RelaySocket {
    /// A quinn endpoint over this socket: a server with `server` (host), or
    /// a client (guest).
    pub fn endpoint(
        self: Arc<Self>,
        server: Option<quinn::ServerConfig>,
    ) -> io::Result<quinn::Endpoint> {
        quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            server,
            self,
            Arc::new(quinn::TokioRuntime),
        )
    }

    /// Whether the link to the relay has ended.
    pub fn is_closed(&self) -> bool {
        self.link.conn.close_reason().is_some()
    }

    /// Waits until the link to the relay ends; returns why.
    pub async fn closed(&self) -> quinn::ConnectionError {
        self.link.conn.closed().await
    }
}

impl Drop for RelaySocket {
    fn drop(&mut self) {
        self.reader.abort();
        self.link.conn.close(0u8.into(), b"bye");
    }
}

#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncUdpSocket for RelaySocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        if transmit.contents.len() > MAX_INNER_PACKET {
            return Ok(());
        }
        let datagram = if self.host {
            let Some(id) = peer_id(&transmit.destination) else {
                return Ok(());
            };
            let mut out = Vec::with_capacity(PEER_TAG_LEN + transmit.contents.len());
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(transmit.contents);
            bytes::Bytes::from(out)
        } else {
            bytes::Bytes::copy_from_slice(transmit.contents)
        };
        // Dropped like a lost UDP packet if the relay link is gone or the
        // path's MTU shrank; QUIC recovers or times out.
        if let Err(e) = self.link.conn.send_datagram(datagram) {
            tracing::trace!(%e, "relayed packet dropped");
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(slot)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let Ok(mut incoming) = self.incoming.lock() else {
            return Poll::Pending;
        };
        match incoming.poll_recv(cx) {
            Poll::Ready(Some((from, packet))) => {
                let n = packet.len().min(buf.len());
                buf[..n].copy_from_slice(&packet[..n]);
                *slot = RecvMeta {
                    addr: from,
                    len: n,
                    stride: n,
                    ecn: None,
                    dst_ip: None,
                };
                Poll::Ready(Ok(1))
            }
            // The relay link ended: never an error (that would end quinn's
            // endpoint driver); the inner connections time out.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(LOCAL_ADDR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_round_trip() {
        for id in [0u64, 1, 2, u64::MAX] {
            assert_eq!(peer_id(&peer_addr(id)), Some(id));
        }
        assert_eq!(peer_id(&"127.0.0.1:1".parse().unwrap()), None);
        assert_eq!(peer_id(&"[::1]:1".parse().unwrap()), None);
    }
}
