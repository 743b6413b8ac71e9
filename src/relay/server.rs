//! The relay's server: admission (limits, token, hello), the route table,
//! and forwarding between a host and its guests, over QUIC (UDP) and over
//! the TCP fallback (TLS over TCP on the same port number, for networks
//! that block UDP).
//!
//! One task per client. A host's task reads the host's packets
//! (`[guest id][packet]`) and sends each, untagged, on that guest's
//! `Link`; a guest's task reads the guest's packets and sends them,
//! tagged with the guest's id, on the host's link. Sending never waits:
//! each destination has a queue of [`RelayLimits::queue_packets`] packets
//! that drops its oldest when full (quinn's datagram send buffer for QUIC,
//! our own for TCP), so one stuck receiver costs only its own queue.
//!
//! The relay holds no key of the session: the packets it forwards are the
//! inner QUIC connection's, encrypted end to end between guest and host.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, Notify, Semaphore};

use super::limits::{RelayLimits, DRAIN_TIMEOUT, QUEUED_PACKET_BYTES};
use super::metrics::{Metrics, Refusal};
use crate::net::frame::{read_frame, write_frame};
use crate::net::handshake::{decode_control, encode_control, peek_version};
use crate::net::relay_proto::{
    stream_kind, ClientHello, RelayRefusal, RelayReply, RouteId, MAX_INNER_PACKET,
    MAX_RELAY_CONTROL_LEN, MAX_STREAM_FRAME, OUTER_MTU, PEER_TAG_LEN, RELAY_ALPN,
    RELAY_PROTOCOL_VERSION,
};
use crate::net::tls::{rustls_server_config, server_config_with, HostIdentity};

/// Close codes of client connections (QUIC application codes).
mod code {
    pub const NORMAL: u32 = 0;
    pub const HOST_GONE: u32 = 1;
    pub const SHUTTING_DOWN: u32 = 2;
    pub const PROTOCOL: u32 = 3;
    pub const REFUSED: u32 = 4;
}

/// A copy of every forwarded inner packet, for tests that check the relay
/// sees only ciphertext.
pub type Tap = tokio::sync::mpsc::UnboundedSender<Vec<u8>>;

/// What the server needs to run (the CLI fills it from flags).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Tokens of a private relay (hosts must present one); empty = open.
    pub tokens: Vec<String>,
    /// The limits.
    pub limits: RelayLimits,
    /// Copies of forwarded packets (tests only).
    pub tap: Option<Tap>,
    /// The join page clients are told about (`PUBLIC_URL/join`), if the
    /// relay serves one.
    pub join_page: Option<String>,
}

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The UDP or TCP address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The certificate could not be used.
    #[error("the relay's certificate cannot be used: {0}")]
    Tls(String),
    /// The join page cannot be served as asked.
    #[error("the join page cannot be served: {0}")]
    Web(String),
}

/// One client's link to the relay.
#[derive(Clone)]
enum Link {
    /// QUIC: packets are datagrams.
    Quic(quinn::Connection),
    /// The TCP fallback: packets are frames on a TLS stream.
    Tcp(Arc<TcpLink>),
}

/// What became of a packet handed to a [`Link`].
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    Queued,
    /// Queued, and the destination's oldest packet was dropped for it.
    QueuedDroppingOldest,
    Closed,
}

impl Link {
    fn send(&self, packet: Bytes) -> Sent {
        match self {
            Link::Quic(conn) => {
                let full = conn.datagram_send_buffer_space() < packet.len();
                match conn.send_datagram(packet) {
                    Ok(()) if full => Sent::QueuedDroppingOldest,
                    Ok(()) => Sent::Queued,
                    Err(_) => Sent::Closed,
                }
            }
            Link::Tcp(tcp) => tcp.push(packet),
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Link::Quic(conn) => conn.close_reason().is_some(),
            Link::Tcp(tcp) => *tcp.closed.borrow(),
        }
    }

    async fn closed(&self) {
        match self {
            Link::Quic(conn) => {
                conn.closed().await;
            }
            Link::Tcp(tcp) => {
                let mut rx = tcp.closed.subscribe();
                let _ = rx.wait_for(|c| *c).await;
            }
        }
    }

    fn close(&self, code: u32, reason: &str) {
        match self {
            Link::Quic(conn) => conn.close(code.into(), reason.as_bytes()),
            Link::Tcp(tcp) => tcp.close(reason),
        }
    }
}

/// The relay's side of a TCP client: a bounded queue that drops its oldest
/// packet when full, drained by the client's writer task.
struct TcpLink {
    queue: Mutex<VecDeque<Bytes>>,
    cap: usize,
    wake: Notify,
    /// Why the relay closes the link (sent to the client), once set.
    closing: watch::Sender<Option<String>>,
    closed: watch::Sender<bool>,
}

impl TcpLink {
    fn new(cap: usize) -> Self {
        TcpLink {
            queue: Mutex::new(VecDeque::new()),
            cap: cap.max(1),
            wake: Notify::new(),
            closing: watch::Sender::new(None),
            closed: watch::Sender::new(false),
        }
    }

    fn push(&self, packet: Bytes) -> Sent {
        if *self.closed.borrow() {
            return Sent::Closed;
        }
        let Ok(mut queue) = self.queue.lock() else {
            return Sent::Closed;
        };
        let mut sent = Sent::Queued;
        while queue.len() >= self.cap {
            queue.pop_front();
            sent = Sent::QueuedDroppingOldest;
        }
        queue.push_back(packet);
        drop(queue);
        self.wake.notify_one();
        sent
    }

    fn pop(&self) -> Option<Bytes> {
        self.queue.lock().ok().and_then(|mut q| q.pop_front())
    }

    fn close(&self, reason: &str) {
        self.closing.send_if_modified(|c| {
            if c.is_some() {
                return false;
            }
            *c = Some(reason.to_owned());
            true
        });
        // The writer sends the reason and ends.
        self.wake.notify_one();
    }

    fn mark_closed(&self) {
        self.closed.send_replace(true);
        self.wake.notify_one();
    }
}

struct Route {
    host: Link,
    guests: Mutex<HashMap<u64, Link>>,
    limiter: DefaultDirectRateLimiter,
}

impl Route {
    /// Whether `len` more bytes fit the session's budget now.
    fn allow(&self, len: usize) -> bool {
        let Some(n) = u32::try_from(len).ok().and_then(NonZeroU32::new) else {
            return true;
        };
        matches!(self.limiter.check_n(n), Ok(Ok(())))
    }
}

#[derive(Default)]
struct Table {
    routes: HashMap<RouteId, Arc<Route>>,
    per_ip: HashMap<IpAddr, usize>,
    next_guest: u64,
    /// Every TCP client, so a shutdown can tell them.
    tcp: Vec<std::sync::Weak<TcpLink>>,
}

struct Shared {
    table: Mutex<Table>,
    tokens: Vec<String>,
    limits: RelayLimits,
    quota: Quota,
    metrics: Arc<Metrics>,
    tap: Option<Tap>,
    handshakes: Arc<Semaphore>,
    join_page: Option<String>,
}

/// A running relay server.
pub struct Server {
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Binds UDP and TCP on `config.listen` (TCP on the port UDP got) and
    /// starts serving with `identity`.
    pub async fn start(
        config: ServerConfig,
        identity: &HostIdentity,
        metrics: Arc<Metrics>,
    ) -> Result<Server, StartError> {
        let limits = config.limits.clone();
        let mut transport = quinn::TransportConfig::default();
        transport.initial_mtu(OUTER_MTU);
        transport.min_mtu(OUTER_MTU);
        if let Ok(idle) = quinn::IdleTimeout::try_from(limits.idle_timeout) {
            transport.max_idle_timeout(Some(idle));
        }
        transport.max_concurrent_bidi_streams(1u8.into());
        transport.max_concurrent_uni_streams(0u8.into());
        let queue_bytes = limits.queue_packets.max(1) * QUEUED_PACKET_BYTES;
        transport.datagram_send_buffer_size(queue_bytes);
        transport.datagram_receive_buffer_size(Some(queue_bytes));
        let server = server_config_with(identity, RELAY_ALPN, transport)
            .map_err(|e| StartError::Tls(e.to_string()))?;
        let tls = rustls_server_config(identity, RELAY_ALPN)
            .map_err(|e| StartError::Tls(e.to_string()))?;
        let endpoint =
            quinn::Endpoint::server(server, config.listen).map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        let udp_addr = endpoint.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let tcp = tokio::net::TcpListener::bind(udp_addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: udp_addr,
                source,
            })?;
        let rate = NonZeroU32::new(limits.rate_bytes_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.burst_bytes).unwrap_or(rate);
        let shared = Arc::new(Shared {
            table: Mutex::new(Table {
                next_guest: 1,
                ..Table::default()
            }),
            tokens: config.tokens,
            quota: Quota::per_second(rate).allow_burst(burst),
            handshakes: Arc::new(Semaphore::new(limits.max_handshakes.max(1))),
            limits,
            metrics,
            tap: config.tap,
            join_page: config.join_page,
        });
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(accept_quic(
                endpoint.clone(),
                shared.clone(),
                stopped.clone(),
            )),
            tokio::spawn(accept_tcp(
                tcp,
                tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
                shared.clone(),
                stopped,
            )),
        ];
        Ok(Server {
            endpoint,
            shared,
            stop,
            tasks,
        })
    }

    /// The bound address (UDP; TCP listens on the same).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Stops accepting, tells every client the relay is going, and waits
    /// (bounded) for them to hear it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let reason = "the relay is shutting down";
        self.endpoint
            .close(code::SHUTTING_DOWN.into(), reason.as_bytes());
        let tcp: Vec<Arc<TcpLink>> = self
            .shared
            .table
            .lock()
            .map(|t| t.tcp.iter().filter_map(|w| w.upgrade()).collect())
            .unwrap_or_default();
        for link in &tcp {
            link.close(reason);
        }
        let tcp_done = async {
            for link in &tcp {
                let mut rx = link.closed.subscribe();
                let _ = rx.wait_for(|c| *c).await;
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
            tokio::join!(self.endpoint.wait_idle(), tcp_done)
        })
        .await;
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.endpoint.close(code::NORMAL.into(), b"");
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Shared {
    /// Takes a handshake slot and counts a connection from `ip`; `None`
    /// (and the refusal counted) when either limit is reached.
    fn admit_connection(&self, ip: IpAddr) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
            self.metrics.refused(Refusal::Handshakes);
            return None;
        };
        let Ok(mut table) = self.table.lock() else {
            return None;
        };
        let n = table.per_ip.entry(ip).or_insert(0);
        if *n >= self.limits.max_conns_per_ip {
            self.metrics.refused(Refusal::PerAddress);
            return None;
        }
        *n += 1;
        Some(permit)
    }

    fn uncount_ip(&self, ip: IpAddr) {
        if let Ok(mut table) = self.table.lock() {
            if let Some(n) = table.per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    table.per_ip.remove(&ip);
                }
            }
        }
    }

    fn tap(&self, packet: &[u8]) {
        if let Some(tap) = &self.tap {
            let _ = tap.send(packet.to_vec());
        }
    }
}

async fn accept_quic(
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => return,
            },
            _ = stopped.changed() => return,
        };
        let ip = incoming.remote_address().ip();
        let Some(permit) = shared.admit_connection(ip) else {
            incoming.refuse();
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let admitted = tokio::time::timeout(
                shared.limits.register_timeout,
                admit_quic(incoming, &shared, permit),
            )
            .await;
            match admitted {
                Ok(Some(client)) => serve_quic(client, &shared).await,
                Ok(None) => {}
                Err(_) => shared.metrics.refused(Refusal::RegisterTimeout),
            }
            shared.uncount_ip(ip);
        });
    }
}

async fn accept_tcp(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment.
                    tracing::warn!(%e, "cannot accept a TCP client");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let ip = remote.ip();
        let Some(permit) = shared.admit_connection(ip) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            serve_tcp(stream, acceptor, &shared, permit).await;
            shared.uncount_ip(ip);
        });
    }
}

/// A client that said hello and was let in.
struct Admitted {
    route: RouteId,
    state: Arc<Route>,
    /// The guest's id; `None` for the host.
    guest: Option<u64>,
}

/// What to do with a hello: admit, or refuse (with an answer for the
/// client when there is one to give).
fn decide(shared: &Shared, frame: &[u8], link: &Link) -> Result<Admitted, Option<RelayRefusal>> {
    let version = peek_version(frame).map_err(|_| {
        shared.metrics.refused(Refusal::Malformed);
        None
    })?;
    if version != RELAY_PROTOCOL_VERSION {
        shared.metrics.refused(Refusal::Version);
        return Err(Some(RelayRefusal::VersionMismatch {
            relay_version: RELAY_PROTOCOL_VERSION,
        }));
    }
    let hello = decode_control::<ClientHello>(frame).map_err(|_| {
        shared.metrics.refused(Refusal::Malformed);
        None
    })?;
    let outcome = match hello {
        ClientHello::Host { route, token } => {
            register(shared, link, route, token.as_deref()).map(|state| Admitted {
                route,
                state,
                guest: None,
            })
        }
        ClientHello::Guest { route } => attach(shared, link, route).map(|(state, id)| Admitted {
            route,
            state,
            guest: Some(id),
        }),
    };
    outcome.map_err(|(why, metric)| {
        shared.metrics.refused(metric);
        Some(why)
    })
}

/// Tells an admitted client it is in (with the relay's join page); if that
/// cannot be said, forgets it again. Returns whether it was said.
async fn accept<W: AsyncWrite + Unpin>(w: &mut W, shared: &Shared, admitted: &Admitted) -> bool {
    let reply = reply_frame(&RelayReply::Accepted {
        join_page: shared.join_page.clone(),
    });
    let said = match reply {
        Some(reply) => write_frame(w, &reply, MAX_RELAY_CONTROL_LEN).await.is_ok(),
        None => false,
    };
    if !said {
        forget(shared, admitted);
    }
    said
}

fn reply_frame(reply: &RelayReply) -> Option<Vec<u8>> {
    encode_control(RELAY_PROTOCOL_VERSION, reply).ok()
}

/// An admitted QUIC client.
struct QuicClient {
    conn: quinn::Connection,
    admitted: Admitted,
    _control: (quinn::SendStream, quinn::RecvStream),
}

/// Runs the QUIC handshake and the hello; registers or attaches.
async fn admit_quic(
    incoming: quinn::Incoming,
    shared: &Shared,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Option<QuicClient> {
    let conn = incoming.accept().ok()?.await.ok()?;
    drop(permit);
    let (mut send, mut recv) = conn.accept_bi().await.ok()?;
    let frame = match read_frame(&mut recv, MAX_RELAY_CONTROL_LEN).await {
        Ok(Some(frame)) => frame,
        Ok(None) => return None,
        Err(e) => {
            shared.metrics.refused(Refusal::Malformed);
            conn.close(code::PROTOCOL.into(), e.to_string().as_bytes());
            return None;
        }
    };
    let link = Link::Quic(conn.clone());
    match decide(shared, &frame, &link) {
        Err(None) => {
            conn.close(code::PROTOCOL.into(), b"malformed hello");
            None
        }
        Err(Some(why)) => {
            if let Some(reply) = reply_frame(&RelayReply::Refused(why)) {
                if write_frame(&mut send, &reply, MAX_RELAY_CONTROL_LEN)
                    .await
                    .is_ok()
                {
                    let _ = send.finish();
                    // The client closes once it has read the answer.
                    let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn.closed()).await;
                }
            }
            conn.close(code::REFUSED.into(), b"refused");
            None
        }
        Ok(admitted) => {
            if !accept(&mut send, shared, &admitted).await {
                return None;
            }
            Some(QuicClient {
                conn,
                admitted,
                _control: (send, recv),
            })
        }
    }
}

async fn serve_quic(client: QuicClient, shared: &Shared) {
    shared.metrics.peer_joined();
    let QuicClient { conn, admitted, .. } = client;
    let state = admitted.state.clone();
    let host_gone = state.host.closed();
    tokio::pin!(host_gone);
    loop {
        tokio::select! {
            datagram = conn.read_datagram() => match datagram {
                Ok(d) => match admitted.guest {
                    None => from_host(d, &state, shared),
                    Some(id) => from_guest(id, &d, &state, shared),
                },
                Err(_) => break,
            },
            _ = &mut host_gone, if admitted.guest.is_some() => {
                conn.close(code::HOST_GONE.into(), HOST_GONE_REASON.as_bytes());
                break;
            }
        }
    }
    gone(&admitted, shared);
}

/// Why guests' links end when their host's does.
const HOST_GONE_REASON: &str = "the host left the relay";

/// Runs TLS and the hello over TCP, then forwards until either side stops.
async fn serve_tcp(
    stream: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: &Shared,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let deadline = tokio::time::Instant::now() + shared.limits.register_timeout;
    let tls = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(_)) => return,
        Err(_) => {
            shared.metrics.refused(Refusal::RegisterTimeout);
            return;
        }
    };
    drop(permit);
    let (mut rd, mut wr) = tokio::io::split(tls);
    let frame =
        match tokio::time::timeout_at(deadline, read_frame(&mut rd, MAX_RELAY_CONTROL_LEN)).await {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => return,
            Ok(Err(_)) => {
                shared.metrics.refused(Refusal::Malformed);
                return;
            }
            Err(_) => {
                shared.metrics.refused(Refusal::RegisterTimeout);
                return;
            }
        };
    let tcp = Arc::new(TcpLink::new(shared.limits.queue_packets));
    let link = Link::Tcp(tcp.clone());
    let admitted = match decide(shared, &frame, &link) {
        Err(why) => {
            if let Some(reply) = why.and_then(|w| reply_frame(&RelayReply::Refused(w))) {
                let _ = write_frame(&mut wr, &reply, MAX_RELAY_CONTROL_LEN).await;
            }
            let _ = wr.shutdown().await;
            return;
        }
        Ok(admitted) => admitted,
    };
    if !accept(&mut wr, shared, &admitted).await {
        return;
    }
    if let Ok(mut table) = shared.table.lock() {
        table.tcp.retain(|w| w.strong_count() > 0);
        table.tcp.push(Arc::downgrade(&tcp));
    }
    shared.metrics.peer_joined();
    let writer = tokio::spawn(tcp_writer(wr, tcp.clone()));
    let state = admitted.state.clone();
    let host_gone = state.host.closed();
    tokio::pin!(host_gone);
    loop {
        let frame = tokio::select! {
            f = tokio::time::timeout(shared.limits.idle_timeout, read_frame(&mut rd, MAX_STREAM_FRAME)) => f,
            _ = &mut host_gone, if admitted.guest.is_some() => {
                tcp.close(HOST_GONE_REASON);
                break;
            }
            _ = wait_closing(&tcp) => break,
        };
        let frame = match frame {
            Ok(Ok(Some(frame))) => frame,
            // Idle, closed, or a frame over the limit: this client is done.
            Err(_) | Ok(Ok(None)) => break,
            Ok(Err(_)) => {
                shared.metrics.dropped(super::metrics::Drop::Malformed);
                tcp.close("protocol violation: bad frame");
                break;
            }
        };
        let Some(&kind) = frame.first() else {
            continue;
        };
        match kind {
            stream_kind::PACKET => {
                // The frame's buffer becomes the packet: no copy.
                let body = Bytes::from(frame).slice(1..);
                match admitted.guest {
                    None => from_host(body, &state, shared),
                    Some(id) => from_guest(id, &body, &state, shared),
                }
            }
            stream_kind::CLOSE => break,
            _ => {}
        }
    }
    gone(&admitted, shared);
    // Let the writer send a close reason, if there is one, then end.
    tcp.close("");
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, writer).await;
    tcp.mark_closed();
}

async fn wait_closing(tcp: &TcpLink) {
    let mut rx = tcp.closing.subscribe();
    let _ = rx.wait_for(|c| c.is_some()).await;
}

/// Writes a TCP client's queue to it; on close, a CLOSE frame with the
/// reason.
async fn tcp_writer<W: AsyncWrite + Unpin>(mut wr: W, tcp: Arc<TcpLink>) {
    let mut frame = Vec::with_capacity(MAX_STREAM_FRAME + 4);
    loop {
        while let Some(packet) = tcp.pop() {
            frame.clear();
            frame.push(stream_kind::PACKET);
            frame.extend_from_slice(&packet);
            if write_frame(&mut wr, &frame, MAX_STREAM_FRAME)
                .await
                .is_err()
            {
                tcp.mark_closed();
                return;
            }
        }
        let closing = tcp.closing.borrow().clone();
        if let Some(reason) = closing {
            if !reason.is_empty() {
                let mut frame = vec![stream_kind::CLOSE];
                frame.extend_from_slice(reason.as_bytes());
                frame.truncate(MAX_STREAM_FRAME);
                let _ = write_frame(&mut wr, &frame, MAX_STREAM_FRAME).await;
            }
            let _ = wr.flush().await;
            let _ = wr.shutdown().await;
            tcp.mark_closed();
            return;
        }
        if wr.flush().await.is_err() {
            tcp.mark_closed();
            return;
        }
        tcp.wake.notified().await;
    }
}

/// A packet from the host: `[guest id][packet]`, for that guest.
fn from_host(datagram: Bytes, state: &Route, shared: &Shared) {
    if datagram.len() <= PEER_TAG_LEN || datagram.len() > PEER_TAG_LEN + MAX_INNER_PACKET {
        shared.metrics.dropped(super::metrics::Drop::Malformed);
        return;
    }
    let mut tag = [0u8; PEER_TAG_LEN];
    tag.copy_from_slice(&datagram[..PEER_TAG_LEN]);
    let id = u64::from_be_bytes(tag);
    let guest = state.guests.lock().ok().and_then(|g| g.get(&id).cloned());
    let Some(guest) = guest else {
        shared.metrics.dropped(super::metrics::Drop::UnknownPeer);
        return;
    };
    let packet = datagram.slice(PEER_TAG_LEN..);
    shared.tap(&packet);
    forward(&guest, packet, state, shared);
}

/// A packet from guest `id`, for the host, tagged with the guest's id.
fn from_guest(id: u64, datagram: &[u8], state: &Route, shared: &Shared) {
    if datagram.is_empty() || datagram.len() > MAX_INNER_PACKET {
        shared.metrics.dropped(super::metrics::Drop::Malformed);
        return;
    }
    let mut tagged = Vec::with_capacity(PEER_TAG_LEN + datagram.len());
    tagged.extend_from_slice(&id.to_be_bytes());
    tagged.extend_from_slice(datagram);
    shared.tap(datagram);
    forward(&state.host, Bytes::from(tagged), state, shared);
}

fn forward(to: &Link, packet: Bytes, state: &Route, shared: &Shared) {
    let len = packet.len();
    if !state.allow(len) {
        shared.metrics.dropped(super::metrics::Drop::RateLimited);
        return;
    }
    match to.send(packet) {
        Sent::Queued => shared.metrics.forwarded(len),
        Sent::QueuedDroppingOldest => {
            shared.metrics.dropped(super::metrics::Drop::QueueFull);
            shared.metrics.forwarded(len);
        }
        Sent::Closed => {}
    }
}

/// A client's link ended: a host takes its session (and its guests' links)
/// with it; a guest leaves its session.
fn gone(admitted: &Admitted, shared: &Shared) {
    let Admitted {
        route,
        state,
        guest,
    } = admitted;
    match guest {
        None => {
            let guests: Vec<Link> = state
                .guests
                .lock()
                .map(|mut g| g.drain().map(|(_, l)| l).collect())
                .unwrap_or_default();
            for guest in guests {
                guest.close(code::HOST_GONE, HOST_GONE_REASON);
            }
            if let Ok(mut table) = shared.table.lock() {
                // Only our own registration: a new host may hold the route.
                if table
                    .routes
                    .get(route)
                    .is_some_and(|r| Arc::ptr_eq(r, state))
                {
                    table.routes.remove(route);
                }
                shared.metrics.set_sessions(table.routes.len());
            }
            tracing::info!(?route, "session gone");
        }
        Some(id) => {
            if let Ok(mut guests) = state.guests.lock() {
                guests.remove(id);
            }
            tracing::debug!(?route, id, "guest detached");
        }
    }
    shared.metrics.peer_left();
}

type Refused = (RelayRefusal, Refusal);

fn register(
    shared: &Shared,
    link: &Link,
    route: RouteId,
    token: Option<&str>,
) -> Result<Arc<Route>, Refused> {
    if !shared.tokens.is_empty() {
        let ok = token.is_some_and(|t| shared.tokens.iter().any(|known| same_token(known, t)));
        if !ok {
            return Err((RelayRefusal::BadToken, Refusal::Token));
        }
    }
    let mut table = shared
        .table
        .lock()
        .map_err(|_| (RelayRefusal::ShuttingDown, Refusal::Internal))?;
    if let Some(existing) = table.routes.get(&route) {
        if !existing.host.is_closed() {
            return Err((RelayRefusal::RouteTaken, Refusal::RouteTaken));
        }
    }
    if table.routes.len() >= shared.limits.max_sessions && !table.routes.contains_key(&route) {
        return Err((RelayRefusal::TooManySessions, Refusal::Sessions));
    }
    let state = Arc::new(Route {
        host: link.clone(),
        guests: Mutex::new(HashMap::new()),
        limiter: RateLimiter::direct(shared.quota),
    });
    table.routes.insert(route, state.clone());
    shared.metrics.set_sessions(table.routes.len());
    tracing::info!(?route, "session registered");
    Ok(state)
}

fn attach(shared: &Shared, link: &Link, route: RouteId) -> Result<(Arc<Route>, u64), Refused> {
    let mut table = shared
        .table
        .lock()
        .map_err(|_| (RelayRefusal::ShuttingDown, Refusal::Internal))?;
    let Some(state) = table
        .routes
        .get(&route)
        .filter(|r| !r.host.is_closed())
        .cloned()
    else {
        return Err((RelayRefusal::UnknownRoute, Refusal::UnknownRoute));
    };
    let Ok(mut guests) = state.guests.lock() else {
        return Err((RelayRefusal::ShuttingDown, Refusal::Internal));
    };
    guests.retain(|_, l| !l.is_closed());
    if guests.len() >= shared.limits.max_guests_per_session {
        return Err((RelayRefusal::TooManyGuests, Refusal::Guests));
    }
    let id = table.next_guest;
    table.next_guest += 1;
    guests.insert(id, link.clone());
    drop(guests);
    tracing::debug!(?route, id, "guest attached");
    Ok((state, id))
}

/// Removes a client that will not be served after all.
fn forget(shared: &Shared, admitted: &Admitted) {
    let Ok(mut table) = shared.table.lock() else {
        return;
    };
    match admitted.guest {
        Some(id) => {
            if let Ok(mut guests) = admitted.state.guests.lock() {
                guests.remove(&id);
            }
        }
        None => {
            table.routes.remove(&admitted.route);
            shared.metrics.set_sessions(table.routes.len());
        }
    }
}

/// Compares tokens by their SHA-256, so the time taken says nothing about
/// how much of a guess was right.
fn same_token(known: &str, given: &str) -> bool {
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    digest(known).as_ref() == digest(given).as_ref()
}
