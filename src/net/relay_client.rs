//! The client side of a relay: one outer QUIC connection to `lshed relay`,
//! and a [`quinn::AsyncUdpSocket`] over it, so the session's own (inner,
//! end-to-end) QUIC endpoint runs over the relay exactly as over UDP.
//!
//! [`RelaySocket`] gives each peer behind the relay a made-up address in a
//! private IPv6 range ([`peer_addr`]): a host's socket maps the relay's
//! guest ids to such addresses and back, a guest's socket sees the host at
//! one fixed address ([`HOST_ADDR`]). quinn never learns the difference.
//!
//! The link to the relay is QUIC over UDP when UDP gets through, else TLS
//! over TCP on the same port number (started when UDP has been silent for
//! [`TCP_FALLBACK_AFTER`]), through an HTTP CONNECT proxy when
//! `HTTPS_PROXY` (or the config's `proxy`) names one.
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

use bytes::Bytes;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{mpsc, watch};

use super::frame::{read_frame, write_frame};
use super::handshake::{decode_control, encode_control, peek_version};
use super::limits::{IDLE_TIMEOUT, KEEPALIVE_INTERVAL};
use super::limits::{RELAY_CONNECT_TIMEOUT, TCP_FALLBACK_AFTER};
use super::relay_proto::{
    stream_kind, ClientHello, RelayAddr, RelayRefusal, RelayReply, MAX_INNER_PACKET,
    MAX_RELAY_CONTROL_LEN, MAX_STREAM_FRAME, OUTER_MTU, PEER_TAG_LEN, RELAY_ALPN,
    RELAY_PROTOCOL_VERSION, STREAM_PING_INTERVAL,
};
use super::tls::{pinned_client_config, rustls_pinned_client_config, transport_config};

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
    /// Nothing answered, over UDP nor TCP, in time.
    #[error("the relay {addr} does not answer (UDP, then TCP) within {}s", timeout.as_secs())]
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
    /// The TCP fallback could not connect.
    #[error("the relay {addr} does not answer over TCP either: {detail}")]
    TcpFailed {
        /// The relay's `host:port`.
        addr: String,
        /// What failed.
        detail: String,
    },
    /// The HTTP proxy would not open a tunnel to the relay.
    #[error("the proxy {proxy} would not reach the relay: {detail}")]
    Proxy {
        /// The proxy (without a password).
        proxy: String,
        /// What it said.
        detail: String,
    },
    /// A local problem (no UDP socket, TLS setup).
    #[error("cannot use the relay: {0}")]
    Local(String),
}

impl RelayError {
    /// Whether this is the relay's (or an impostor's) answer, as opposed to
    /// silence: an answer ends the race between UDP and TCP.
    fn is_definitive(&self) -> bool {
        matches!(
            self,
            RelayError::Refused(_)
                | RelayError::CertificateMismatch { .. }
                | RelayError::Busy { .. }
                | RelayError::Resolve { .. }
                | RelayError::Local(_)
        )
    }
}

/// How a client reaches relays: the time it has, whether it tries UDP,
/// when it falls back to TCP, and through which HTTP proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConnectOptions {
    /// Time for the whole attempt (UDP and TCP) to be answered.
    pub timeout: Duration,
    /// Try QUIC over UDP (the normal path). Off only in tests.
    pub udp: bool,
    /// Start the TCP fallback when UDP has not been answered this long.
    pub tcp_after: Duration,
    /// An HTTP CONNECT proxy (`host:port`, `http://host:port`, optionally
    /// `http://user:pass@host:port`) for the TCP fallback.
    pub proxy: Option<String>,
}

impl Default for RelayConnectOptions {
    fn default() -> Self {
        RelayConnectOptions {
            timeout: RELAY_CONNECT_TIMEOUT,
            udp: true,
            tcp_after: TCP_FALLBACK_AFTER,
            proxy: proxy_from_env(),
        }
    }
}

/// The HTTP proxy the environment names for HTTPS (`HTTPS_PROXY`,
/// `https_proxy`, then `ALL_PROXY`, `all_proxy`), if any. Proxies of other
/// kinds (`socks5://…`) are passed over: lshed speaks HTTP CONNECT only.
pub fn proxy_from_env() -> Option<String> {
    ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .map(|v| v.trim().to_owned())
        .find(|v| {
            let lower = v.to_ascii_lowercase();
            !v.is_empty() && (lower.starts_with("http://") || !lower.contains("://"))
        })
}

/// A client's registration (host) or attachment (guest) at a relay.
pub struct RelayLink {
    outer: Outer,
    join_page: Option<String>,
}

impl std::fmt::Debug for RelayLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayLink")
            .field("tcp", &matches!(self.outer, Outer::Tcp(_)))
            .finish_non_exhaustive()
    }
}

enum Outer {
    Quic {
        /// Drives `conn`; kept for as long as the link lives.
        _endpoint: quinn::Endpoint,
        conn: quinn::Connection,
        /// Kept open for the life of the registration.
        _control: (quinn::SendStream, quinn::RecvStream),
    },
    Tcp(TcpOuter),
}

/// The client's side of the TCP fallback: a writer queue, the packets the
/// reader got, and why the link ended once it has.
struct TcpOuter {
    tx: mpsc::Sender<Bytes>,
    incoming: Option<mpsc::Receiver<Bytes>>,
    closed: watch::Receiver<Option<String>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TcpOuter {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl RelayLink {
    /// Connects to `relay` with the default options (UDP, then TCP after
    /// [`TCP_FALLBACK_AFTER`], through the environment's proxy), says
    /// `hello`, and waits for the relay's answer, all within `timeout`.
    pub async fn open(
        relay: &RelayAddr,
        hello: &ClientHello,
        timeout: Duration,
    ) -> Result<Self, RelayError> {
        let options = RelayConnectOptions {
            timeout,
            ..RelayConnectOptions::default()
        };
        Self::open_with(relay, hello, &options).await
    }

    /// As [`RelayLink::open`], with explicit options.
    pub async fn open_with(
        relay: &RelayAddr,
        hello: &ClientHello,
        options: &RelayConnectOptions,
    ) -> Result<Self, RelayError> {
        let deadline = tokio::time::Instant::now() + options.timeout;
        Self::race(relay, hello, options, deadline).await
    }

    /// QUIC first; TCP once UDP has been silent for `tcp_after` (or has
    /// failed without an answer). An answer from the relay on either path
    /// (accepted, refused, wrong certificate) settles it.
    async fn race(
        relay: &RelayAddr,
        hello: &ClientHello,
        options: &RelayConnectOptions,
        deadline: tokio::time::Instant,
    ) -> Result<Self, RelayError> {
        let udp = async {
            if options.udp {
                Self::open_quic(relay, hello).await
            } else {
                Err(RelayError::Unreachable {
                    addr: relay.addr.clone(),
                    timeout: Duration::ZERO,
                })
            }
        };
        let tcp_start = tokio::time::sleep(if options.udp {
            options.tcp_after
        } else {
            Duration::ZERO
        });
        tokio::pin!(udp, tcp_start);
        let mut udp_err: Option<RelayError> = None;
        let mut tcp_started = false;
        let mut tcp_err: Option<RelayError> = None;
        let tcp = Self::open_tcp(relay, hello, options.proxy.as_deref());
        tokio::pin!(tcp);
        loop {
            tokio::select! {
                res = &mut udp, if udp_err.is_none() => match res {
                    Ok(link) => return Ok(link),
                    Err(e) if e.is_definitive() => return Err(e),
                    Err(e) => {
                        udp_err = Some(e);
                        tcp_started = true;
                    }
                },
                _ = &mut tcp_start, if !tcp_started => tcp_started = true,
                res = &mut tcp, if tcp_started && tcp_err.is_none() => match res {
                    Ok(link) => return Ok(link),
                    Err(e) if e.is_definitive() => return Err(e),
                    Err(e) => tcp_err = Some(e),
                },
                // Time is up. UDP that is dropped on the way never fails
                // by itself, so TCP's failure (a proxy's refusal, say) is
                // the telling one when there is one.
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(tcp_err.take().unwrap_or(RelayError::Unreachable {
                        addr: relay.addr.clone(),
                        timeout: options.timeout,
                    }));
                }
            }
            if let (Some(_), Some(_)) = (&udp_err, &tcp_err) {
                // Say why TCP failed when UDP only timed out: that is the
                // more telling error (a proxy that refused, say).
                return Err(match (udp_err.take(), tcp_err.take()) {
                    (Some(RelayError::Unreachable { .. }), Some(t)) => t,
                    (Some(u), _) => u,
                    (None, Some(t)) => t,
                    (None, None) => RelayError::Protocol("no attempt was made".into()),
                });
            }
        }
    }

    async fn open_quic(relay: &RelayAddr, hello: &ClientHello) -> Result<Self, RelayError> {
        let target = resolve(relay).await?;
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
            .connect_with(config, target, RELAY_SERVER_NAME)
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
                tracing::debug!(%e, "relay connect over UDP failed");
                return Err(RelayError::Unreachable {
                    addr: relay.addr.clone(),
                    timeout: Duration::ZERO,
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
        match say_hello(&mut send, &mut recv, hello).await {
            Ok(join_page) => Ok(RelayLink {
                outer: Outer::Quic {
                    _endpoint: endpoint,
                    conn,
                    _control: (send, recv),
                },
                join_page,
            }),
            Err(HelloError::Relay(e)) => Err(e),
            Err(HelloError::Stream) => Err(gone(&conn)),
        }
    }

    async fn open_tcp(
        relay: &RelayAddr,
        hello: &ClientHello,
        proxy: Option<&str>,
    ) -> Result<Self, RelayError> {
        let stream = match proxy.filter(|_| !no_proxy_for(&relay.addr)) {
            Some(proxy) => connect_via_proxy(proxy, &relay.addr).await?,
            None => {
                let target = resolve(relay).await?;
                tokio::net::TcpStream::connect(target)
                    .await
                    .map_err(|e| RelayError::TcpFailed {
                        addr: relay.addr.clone(),
                        detail: e.to_string(),
                    })?
            }
        };
        let _ = stream.set_nodelay(true);
        let (config, mismatch) = rustls_pinned_client_config(relay.fingerprint, RELAY_ALPN)
            .map_err(|e| RelayError::Local(e.to_string()))?;
        let name = rustls::pki_types::ServerName::try_from(RELAY_SERVER_NAME)
            .map_err(|e| RelayError::Local(e.to_string()))?;
        let tls = match tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, stream)
            .await
        {
            Ok(tls) => tls,
            Err(_) if mismatch.is_set() => {
                return Err(RelayError::CertificateMismatch {
                    addr: relay.addr.clone(),
                })
            }
            Err(e) => {
                return Err(RelayError::TcpFailed {
                    addr: relay.addr.clone(),
                    detail: format!("TLS: {e}"),
                })
            }
        };
        let (mut rd, mut wr) = tokio::io::split(tls);
        let join_page = match say_hello(&mut wr, &mut rd, hello).await {
            Ok(join_page) => join_page,
            Err(HelloError::Relay(e)) => return Err(e),
            Err(HelloError::Stream) => {
                return Err(RelayError::Protocol(
                    "the relay closed the TCP connection".into(),
                ))
            }
        };
        Ok(RelayLink {
            outer: Outer::Tcp(TcpOuter::start(rd, wr)),
            join_page,
        })
    }

    /// Whether this link runs over the TCP fallback.
    pub fn is_tcp(&self) -> bool {
        matches!(self.outer, Outer::Tcp(_))
    }

    /// The relay's join page, if it said it serves one.
    pub fn join_page(&self) -> Option<&str> {
        self.join_page.as_deref()
    }

    /// A socket for the session's quinn endpoint over this link: a host's
    /// (`host = true`: packets tagged with guest ids) or a guest's.
    pub fn into_socket(mut self, host: bool) -> Arc<RelaySocket> {
        let (tx, rx) = mpsc::channel(RECV_QUEUE);
        // Turns the relay's packets into (address, packet) for quinn.
        let deliver = move |datagram: Bytes| -> bool {
            let (from, packet) = if host {
                if datagram.len() <= PEER_TAG_LEN {
                    return true;
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
                return true;
            }
            !matches!(
                tx.try_send((from, packet)),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        };
        // Reads the relay's packets into the queue quinn polls. Ends with
        // the link; the socket then only ever returns Pending, and the
        // inner connections end (see `PeerConnection::watch_relay`).
        let reader = match &mut self.outer {
            Outer::Quic { conn, .. } => {
                let conn = conn.clone();
                tokio::spawn(async move {
                    while let Ok(datagram) = conn.read_datagram().await {
                        if !deliver(datagram) {
                            break;
                        }
                    }
                })
            }
            Outer::Tcp(tcp) => {
                let incoming = tcp.incoming.take();
                tokio::spawn(async move {
                    let Some(mut incoming) = incoming else { return };
                    while let Some(packet) = incoming.recv().await {
                        if !deliver(packet) {
                            break;
                        }
                    }
                })
            }
        };
        Arc::new(RelaySocket {
            link: self,
            host,
            incoming: Mutex::new(rx),
            reader,
        })
    }

    fn send(&self, packet: Bytes) {
        match &self.outer {
            Outer::Quic { conn, .. } => {
                // Dropped like a lost UDP packet if the relay link is gone
                // or the path's MTU shrank; QUIC recovers or times out.
                if let Err(e) = conn.send_datagram(packet) {
                    tracing::trace!(%e, "relayed packet dropped");
                }
            }
            Outer::Tcp(tcp) => {
                // A full queue drops the packet, as a full UDP buffer would.
                let _ = tcp.tx.try_send(packet);
            }
        }
    }

    fn is_closed(&self) -> bool {
        match &self.outer {
            Outer::Quic { conn, .. } => conn.close_reason().is_some(),
            Outer::Tcp(tcp) => tcp.closed.borrow().is_some(),
        }
    }

    async fn closed(&self) -> String {
        match &self.outer {
            Outer::Quic { conn, .. } => describe_close(&conn.closed().await),
            Outer::Tcp(tcp) => {
                let mut rx = tcp.closed.clone();
                let reason = match rx.wait_for(|c| c.is_some()).await {
                    Ok(reason) => reason.clone().unwrap_or_default(),
                    Err(_) => "the relay link ended".into(),
                };
                reason
            }
        }
    }

    fn close(&self) {
        match &self.outer {
            Outer::Quic { conn, .. } => conn.close(0u8.into(), b"bye"),
            Outer::Tcp(tcp) => {
                for task in &tcp.tasks {
                    task.abort();
                }
            }
        }
    }
}

/// The name the relay's certificate is asked for (meaningless: pinned).
const RELAY_SERVER_NAME: &str = "lshed-relay.invalid";

async fn resolve(relay: &RelayAddr) -> Result<SocketAddr, RelayError> {
    let mut addrs = tokio::net::lookup_host(relay.addr.as_str())
        .await
        .map_err(|e| RelayError::Resolve {
            addr: relay.addr.clone(),
            detail: e.to_string(),
        })?;
    addrs.next().ok_or_else(|| RelayError::Resolve {
        addr: relay.addr.clone(),
        detail: "no address".into(),
    })
}

enum HelloError {
    Relay(RelayError),
    /// The stream broke; the caller knows the connection's reason.
    Stream,
}

/// Sends `hello` on a fresh control stream and reads the relay's answer:
/// its join page, if it has one.
async fn say_hello<W, R>(
    send: &mut W,
    recv: &mut R,
    hello: &ClientHello,
) -> Result<Option<String>, HelloError>
where
    W: tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncRead + Unpin,
{
    let frame = encode_control(RELAY_PROTOCOL_VERSION, hello)
        .map_err(|e| HelloError::Relay(RelayError::Local(e.to_string())))?;
    write_frame(send, &frame, MAX_RELAY_CONTROL_LEN)
        .await
        .map_err(|_| HelloError::Stream)?;
    let _ = tokio::io::AsyncWriteExt::flush(send).await;
    let reply = match read_frame(recv, MAX_RELAY_CONTROL_LEN).await {
        Ok(Some(reply)) => reply,
        Ok(None) | Err(_) => return Err(HelloError::Stream),
    };
    let version =
        peek_version(&reply).map_err(|e| HelloError::Relay(RelayError::Protocol(e.to_string())))?;
    if version != RELAY_PROTOCOL_VERSION {
        return Err(HelloError::Relay(RelayError::Refused(
            RelayRefusal::VersionMismatch {
                relay_version: version,
            },
        )));
    }
    match decode_control::<RelayReply>(&reply) {
        Ok(RelayReply::Accepted { join_page }) => {
            Ok(join_page.filter(|p| super::relay_proto::valid_join_page(p)))
        }
        Ok(RelayReply::Refused(reason)) => Err(HelloError::Relay(RelayError::Refused(reason))),
        Err(e) => Err(HelloError::Relay(RelayError::Protocol(e.to_string()))),
    }
}

impl TcpOuter {
    fn start<R, W>(mut rd: R, mut wr: W) -> Self
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, mut out) = mpsc::channel::<Bytes>(RECV_QUEUE);
        let (in_tx, incoming) = mpsc::channel::<Bytes>(RECV_QUEUE);
        let (closed_tx, closed) = watch::channel::<Option<String>>(None);
        let closed_tx = Arc::new(closed_tx);
        let set_closed = {
            let closed_tx = closed_tx.clone();
            move |why: String| {
                closed_tx.send_if_modified(|c| {
                    if c.is_some() {
                        return false;
                    }
                    *c = Some(why);
                    true
                });
            }
        };
        let on_write_end = set_closed.clone();
        let writer = tokio::spawn(async move {
            let mut ping = tokio::time::interval(STREAM_PING_INTERVAL);
            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut frame = Vec::with_capacity(MAX_STREAM_FRAME);
            loop {
                frame.clear();
                tokio::select! {
                    packet = out.recv() => match packet {
                        Some(packet) => {
                            frame.push(stream_kind::PACKET);
                            frame.extend_from_slice(&packet);
                        }
                        None => {
                            let _ = write_frame(&mut wr, &[stream_kind::CLOSE], MAX_STREAM_FRAME).await;
                            let _ = wr.shutdown().await;
                            return;
                        }
                    },
                    _ = ping.tick() => frame.push(stream_kind::PING),
                }
                if write_frame(&mut wr, &frame, MAX_STREAM_FRAME)
                    .await
                    .is_err()
                    || wr.flush().await.is_err()
                {
                    on_write_end("the TCP connection to the relay broke".into());
                    return;
                }
            }
        });
        let reader = tokio::spawn(async move {
            let why = loop {
                match read_frame(&mut rd, MAX_STREAM_FRAME).await {
                    Ok(Some(frame)) => match frame.split_first() {
                        Some((&stream_kind::PACKET, _)) => {
                            // A full queue drops, as a UDP socket would.
                            // The frame's buffer becomes the packet: no copy.
                            let _ = in_tx.try_send(Bytes::from(frame).slice(1..));
                        }
                        Some((&stream_kind::CLOSE, reason)) => {
                            let reason = String::from_utf8_lossy(reason).into_owned();
                            break if reason.is_empty() {
                                "the relay closed the connection".to_owned()
                            } else {
                                reason
                            };
                        }
                        _ => {}
                    },
                    Ok(None) => break "the relay closed the TCP connection".to_owned(),
                    Err(e) => break format!("the TCP connection to the relay broke: {e}"),
                }
            };
            set_closed(why);
        });
        TcpOuter {
            tx,
            incoming: Some(incoming),
            closed,
            tasks: vec![writer, reader],
        }
    }
}

/// Whether `NO_PROXY` / `no_proxy` exempts the relay at `addr`.
fn no_proxy_for(addr: &str) -> bool {
    let host = addr
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(addr)
        .trim_matches(['[', ']']);
    let list = std::env::var("NO_PROXY")
        .or_else(|_| std::env::var("no_proxy"))
        .unwrap_or_default();
    list.split(',').map(str::trim).any(|entry| {
        !entry.is_empty()
            && (entry == "*"
                || entry.eq_ignore_ascii_case(host)
                || (entry.starts_with('.') && host.ends_with(entry))
                || host.ends_with(&format!(".{entry}")))
    })
}

/// Opens a tunnel to `target` (`host:port`) through the HTTP proxy `proxy`
/// with `CONNECT`.
async fn connect_via_proxy(proxy: &str, target: &str) -> Result<tokio::net::TcpStream, RelayError> {
    use base64::Engine as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let failed = |detail: String| RelayError::Proxy {
        proxy: proxy_display(proxy),
        detail,
    };
    let rest = proxy
        .strip_prefix("http://")
        .or_else(|| proxy.strip_prefix("HTTP://"))
        .unwrap_or(proxy);
    if rest.starts_with("https://") || rest.contains("://") {
        return Err(failed("only http:// proxies are supported".into()));
    }
    let rest = rest.trim_end_matches('/');
    let (auth, hostport) = match rest.rsplit_once('@') {
        Some((auth, hostport)) => (Some(auth), hostport),
        None => (None, rest),
    };
    let hostport = if hostport.contains(':') && !hostport.ends_with(']') {
        hostport.to_owned()
    } else {
        format!("{hostport}:80")
    };
    let mut stream = tokio::net::TcpStream::connect(hostport.as_str())
        .await
        .map_err(|e| failed(format!("cannot connect: {e}")))?;
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = auth {
        let token = base64::engine::general_purpose::STANDARD.encode(auth);
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| failed(e.to_string()))?;
    // Read the answer's head byte by byte, so nothing of the tunnel that
    // follows it is consumed. It is short; cap it anyway.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err(failed("its answer is too long".into()));
        }
        match stream.read(&mut byte).await {
            Ok(0) => return Err(failed("it closed the connection".into())),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(failed(e.to_string())),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let status = head.lines().next().unwrap_or_default().trim().to_owned();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        return Err(failed(format!("it answered {status:?}")));
    }
    Ok(stream)
}

/// The proxy without its password, for messages.
fn proxy_display(proxy: &str) -> String {
    match proxy.rsplit_once('@') {
        Some((auth, host)) => {
            let scheme_end = auth.find("://").map(|i| i + 3).unwrap_or(0);
            format!("{}…@{host}", &auth[..scheme_end])
        }
        None => proxy.to_owned(),
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
    incoming: Mutex<mpsc::Receiver<(SocketAddr, Bytes)>>,
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
        self.link.is_closed()
    }

    /// Waits until the link to the relay ends; says why, for the user.
    pub async fn closed(&self) -> String {
        self.link.closed().await
    }

    /// Whether the link runs over the TCP fallback.
    pub fn is_tcp(&self) -> bool {
        self.link.is_tcp()
    }

    /// The relay's join page, if it serves one.
    pub fn join_page(&self) -> Option<&str> {
        self.link.join_page()
    }
}

impl Drop for RelaySocket {
    fn drop(&mut self) {
        self.reader.abort();
        self.link.close();
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
            Bytes::from(out)
        } else {
            Bytes::copy_from_slice(transmit.contents)
        };
        self.link.send(datagram);
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
