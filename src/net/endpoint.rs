//! QUIC endpoints: the host's direct listener with its background
//! handshake tasks, and the guest's direct connect.
//!
//! Host: [`HostEndpoint::bind`] takes the first free UDP port of
//! [`DIRECT_PORTS`], makes a fresh certificate and session keys, and starts
//! a task that accepts connections and runs each handshake concurrently
//! (bounded by [`MAX_CONCURRENT_HANDSHAKES`]). Guests that fail the
//! handshake are refused there and never reach the caller; guests that pass
//! are offered by [`HostEndpoint::accept`] as a [`PendingGuest`] to accept
//! or reject.
//!
//! Guest: [`connect_direct`] races QUIC handshakes to all the link's direct
//! addresses, keeps the first that completes with the pinned certificate,
//! and runs the join handshake on it.
//!
//! Both produce a [`PeerConnection`]; how the QUIC connection was made is
//! recorded as its [`Path`]. See the `net` module docs for how the relayed
//! path slots in.
//!
//! May depend on: tokio, quinn, rustls (via `tls`), ring, and the sibling
//! modules.

use std::any::Any;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;

use super::channel::{CloseCode, CloseReason, PeerConnection, PeerInfo};
use super::frame::{read_frame, write_frame, FrameError};
use super::handshake::{
    connection_proof, decode_control, encode_control, exporter_bytes, peek_version, sanitize_color,
    sanitize_name, verify_proof, GuestToHost, Hello, HostToGuest, RefusalReason,
};
use super::limits::{
    APPROVAL_TIMEOUT, AUTO_DIRECT_GRACE, CONNECT_TIMEOUT, DIRECT_PORTS, GRACEFUL_CLOSE_TIMEOUT,
    HANDSHAKE_TIMEOUT, HOST_PARTICIPANT_ID, MAX_CONCURRENT_HANDSHAKES, MAX_CONTROL_FRAME_LEN,
    MAX_GUESTS, MAX_PENDING_APPROVALS, PROTOCOL_VERSION, SERVER_NAME,
};
use super::link::InviteLink;
use super::relay_client::{RelayConnectOptions, RelayError, RelayLink, RelaySocket, HOST_ADDR};
use super::relay_proto::{ClientHello, RelayAddr, RouteId};
use super::tls::{client_config, server_config, HostIdentity, TlsError};
use super::Path;

// ---------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------

/// Why a host could not start listening.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Every port of the range is in use on this address.
    #[error("all UDP ports {first}–{last} on {ip} are in use (is another lshed sharing?)")]
    AllPortsTaken {
        /// The address tried.
        ip: IpAddr,
        /// First port of the range.
        first: u16,
        /// Last port of the range.
        last: u16,
    },
    /// Binding failed for another reason (address not on this machine, …).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address tried.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The certificate or TLS configuration could not be made.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Called outside a tokio runtime.
    #[error("the network layer needs a tokio runtime")]
    NoRuntime,
}

/// Tunables of a [`HostEndpoint`]; `Default` gives the product values.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// UDP ports to try, in order.
    pub ports: RangeInclusive<u16>,
    /// Guests admitted at once (pending plus connected).
    pub max_guests: usize,
    /// Time the caller has to accept or reject a [`PendingGuest`].
    pub approval_timeout: Duration,
    /// Time a connecting guest has to complete TLS and send its `Hello`.
    pub handshake_timeout: Duration,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            ports: DIRECT_PORTS,
            max_guests: MAX_GUESTS,
            approval_timeout: APPROVAL_TIMEOUT,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }
}

struct HostShared {
    session_id: [u8; 16],
    secret: [u8; 32],
    ended: AtomicBool,
    next_participant: AtomicU64,
    guests: Arc<AtomicUsize>,
    /// Every connection that got past TLS, so `end_session` can close them.
    conns: Mutex<Vec<quinn::Connection>>,
    options: HostOptions,
}

impl HostShared {
    fn track(&self, conn: &quinn::Connection) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.retain(|c| c.close_reason().is_none());
            conns.push(conn.clone());
        }
    }

    fn reserve_slot(&self) -> Option<SlotGuard> {
        let max = self.options.max_guests;
        self.guests
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| SlotGuard(self.guests.clone()))
    }
}

/// Holds one of the host's guest slots; released on drop.
struct SlotGuard(Arc<AtomicUsize>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A host's listener for one session.
///
/// Dropping it closes every connection it made with
/// [`CloseCode::SessionEnded`].
pub struct HostEndpoint {
    /// The direct listener's address; `None` when relayed only.
    local_addr: Option<SocketAddr>,
    /// The relay this session is registered with, for the link.
    relay: Option<RelayAddr>,
    fingerprint: [u8; 32],
    shared: Arc<HostShared>,
    server_config: quinn::ServerConfig,
    pending: mpsc::Receiver<PendingGuest>,
    /// Strong until the first listener is added, then weak, so `accept`
    /// returns `None` once every listener has stopped.
    pending_tx: Option<mpsc::Sender<PendingGuest>>,
    pending_weak: Option<mpsc::WeakSender<PendingGuest>>,
    /// Every listener: the direct one, and any added with `add_listener`.
    listeners: Vec<(quinn::Endpoint, tokio::task::JoinHandle<()>)>,
}

impl std::fmt::Debug for HostEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostEndpoint")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl HostEndpoint {
    /// Listens on `ip` at the first free port of [`DIRECT_PORTS`]. Must be
    /// called inside a tokio runtime.
    pub fn bind(ip: IpAddr) -> Result<Self, HostError> {
        Self::bind_with(ip, HostOptions::default())
    }

    /// As [`HostEndpoint::bind`], with explicit options.
    pub fn bind_with(ip: IpAddr, options: HostOptions) -> Result<Self, HostError> {
        let mut host = Self::unbound(options)?;
        let endpoint = bind_first_free(ip, &host.shared.options.ports, host.server_config.clone())?;
        let local_addr = endpoint.local_addr().map_err(|source| HostError::Bind {
            addr: SocketAddr::new(ip, *host.shared.options.ports.start()),
            source,
        })?;
        host.local_addr = Some(local_addr);
        host.add_listener(endpoint, Path::Direct);
        tracing::info!(%local_addr, "hosting");
        Ok(host)
    }

    /// A host with no direct listener (connection mode `relay`): it opens
    /// no port; give it the relay's endpoint with
    /// [`HostEndpoint::add_listener`] and name the relay with
    /// [`HostEndpoint::set_relay`]. Must be called inside a tokio runtime.
    pub fn unbound(options: HostOptions) -> Result<Self, HostError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(HostError::NoRuntime);
        }
        let identity = HostIdentity::generate()?;
        let config = server_config(&identity)?;
        let rng = ring::rand::SystemRandom::new();
        let mut session_id = [0u8; 16];
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&rng, &mut session_id).map_err(|_| HostError::Random)?;
        ring::rand::SecureRandom::fill(&rng, &mut secret).map_err(|_| HostError::Random)?;
        let shared = Arc::new(HostShared {
            session_id,
            secret,
            ended: AtomicBool::new(false),
            next_participant: AtomicU64::new(HOST_PARTICIPANT_ID + 1),
            guests: Arc::new(AtomicUsize::new(0)),
            conns: Mutex::new(Vec::new()),
            options,
        });
        let (pending_tx, pending) = mpsc::channel(MAX_PENDING_APPROVALS);
        Ok(HostEndpoint {
            local_addr: None,
            relay: None,
            fingerprint: identity.fingerprint(),
            shared,
            server_config: config,
            pending,
            pending_tx: Some(pending_tx),
            pending_weak: None,
            listeners: Vec::new(),
        })
    }

    /// Names the relay this session is registered with: the invite link
    /// carries it from now on.
    pub fn set_relay(&mut self, relay: RelayAddr) {
        self.relay = Some(relay);
    }

    /// Registers this session with `relay` (presenting `token` if the relay
    /// is private) and serves guests there too, through the same handshake
    /// and [`HostEndpoint::accept`]; the invite link names the relay from
    /// now on. Returns the relayed socket, to watch the relay link with.
    pub async fn register_relay(
        &mut self,
        relay: &RelayAddr,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Arc<RelaySocket>, RelayError> {
        let options = RelayConnectOptions {
            timeout,
            ..RelayConnectOptions::default()
        };
        self.register_relay_with(relay, token, &options).await
    }

    /// As [`HostEndpoint::register_relay`], with explicit relay options
    /// (UDP or not, when to fall back to TCP, which proxy).
    pub async fn register_relay_with(
        &mut self,
        relay: &RelayAddr,
        token: Option<String>,
        options: &RelayConnectOptions,
    ) -> Result<Arc<RelaySocket>, RelayError> {
        let hello = ClientHello::Host {
            route: self.route_id(),
            token,
        };
        let link = RelayLink::open_with(relay, &hello, options).await?;
        let socket = link.into_socket(true);
        let endpoint = socket
            .clone()
            .endpoint(Some(self.server_config()))
            .map_err(|e| RelayError::Local(e.to_string()))?;
        if !self.add_listener(endpoint, Path::Relayed) {
            return Err(RelayError::Local("the session has ended".into()));
        }
        self.set_relay(relay.clone());
        Ok(socket)
    }

    /// The session's name on a relay (derived from the link's secret).
    pub fn route_id(&self) -> RouteId {
        RouteId::derive(&self.shared.secret, &self.shared.session_id)
    }

    /// The quinn server configuration of this session (its certificate,
    /// ALPN and transport settings), for building another listener.
    pub fn server_config(&self) -> quinn::ServerConfig {
        self.server_config.clone()
    }

    /// Serves this session on another quinn endpoint too, built with
    /// [`HostEndpoint::server_config`]: the relay client's endpoint over its
    /// relayed socket (`Path::Relayed`), or a second direct address family.
    /// Its guests go through the same handshake and arrive through the same
    /// [`HostEndpoint::accept`], tagged with `path`. Returns false (and
    /// closes `endpoint`) if this host has already stopped.
    pub fn add_listener(&mut self, endpoint: quinn::Endpoint, path: Path) -> bool {
        if let Some(strong) = self.pending_tx.take() {
            self.pending_weak = Some(strong.downgrade());
            // `strong` goes to this first listener below.
            let task = tokio::spawn(accept_loop(
                endpoint.clone(),
                path,
                self.shared.clone(),
                strong,
            ));
            self.listeners.push((endpoint, task));
            return true;
        }
        let Some(pending_tx) = self.pending_weak.as_ref().and_then(|w| w.upgrade()) else {
            endpoint.close(CloseCode::SessionEnded.varint(), b"");
            return false;
        };
        let task = tokio::spawn(accept_loop(
            endpoint.clone(),
            path,
            self.shared.clone(),
            pending_tx,
        ));
        self.listeners.push((endpoint, task));
        true
    }

    /// The direct listener's address (IP as given to `bind`, port
    /// chosen); `0.0.0.0:0` for a host that listens only through a relay
    /// (see [`HostEndpoint::direct_addr`]).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
    }

    /// The direct listener's address, if this host has one.
    pub fn direct_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Addresses to put in the invite link. For a specific bind address,
    /// that address. For an unspecified one (`0.0.0.0` / `::`), the
    /// machine's outward-facing address of that family (found by asking the
    /// kernel which source address it would route to a documentation
    /// address — a UDP `connect`, which sends nothing) followed by loopback.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let Some(local_addr) = self.local_addr else {
            return Vec::new();
        };
        let port = local_addr.port();
        let ip = local_addr.ip();
        if !ip.is_unspecified() {
            return vec![local_addr];
        }
        let loopback: IpAddr = match ip {
            IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        };
        let mut out = Vec::new();
        if let Some(routed) = outward_ip(ip) {
            out.push(SocketAddr::new(routed, port));
        }
        out.push(SocketAddr::new(loopback, port));
        out
    }

    /// The invite link for this session: its direct addresses and relay.
    pub fn invite_link(&self) -> InviteLink {
        InviteLink {
            session_id: self.shared.session_id,
            secret: self.shared.secret,
            fingerprint: self.fingerprint,
            direct: self.local_addrs(),
            relay: self.relay.clone(),
        }
    }

    /// SHA-256 of this session's certificate.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Guests holding a slot (waiting for approval or connected).
    pub fn guest_count(&self) -> usize {
        self.shared.guests.load(Ordering::SeqCst)
    }

    /// The next guest that passed the handshake and awaits a decision.
    /// `None` once the endpoint has stopped.
    pub async fn accept(&mut self) -> Option<PendingGuest> {
        self.pending.recv().await
    }

    /// Ends the session: late joiners are refused as `UnknownSession`
    /// until the endpoint is dropped, and every connection is closed with
    /// [`CloseCode::SessionEnded`].
    pub fn end_session(&self) {
        self.shared.ended.store(true, Ordering::SeqCst);
        if let Ok(mut conns) = self.shared.conns.lock() {
            for conn in conns.drain(..) {
                conn.close(
                    CloseCode::SessionEnded.varint(),
                    b"the host ended the session",
                );
            }
        }
    }
}

impl Drop for HostEndpoint {
    fn drop(&mut self) {
        for (endpoint, task) in &self.listeners {
            task.abort();
            endpoint.close(
                CloseCode::SessionEnded.varint(),
                b"the host ended the session",
            );
        }
    }
}

fn bind_first_free(
    ip: IpAddr,
    ports: &RangeInclusive<u16>,
    config: quinn::ServerConfig,
) -> Result<quinn::Endpoint, HostError> {
    for port in ports.clone() {
        let addr = SocketAddr::new(ip, port);
        match quinn::Endpoint::server(config.clone(), addr) {
            Ok(endpoint) => return Ok(endpoint),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(source) => return Err(HostError::Bind { addr, source }),
        }
    }
    Err(HostError::AllPortsTaken {
        ip,
        first: *ports.start(),
        last: *ports.end(),
    })
}

/// This machine's outward-facing address of `bind_ip`'s family: the one
/// the kernel would use to reach a documentation address (a UDP `connect`
/// only consults the routing table; no packet is sent). `None` if there is
/// no route, or only loopback.
pub(crate) fn outward_ip(bind_ip: IpAddr) -> Option<IpAddr> {
    let probe: SocketAddr = match bind_ip {
        IpAddr::V4(_) => (Ipv4Addr::new(192, 0, 2, 1), 9).into(),
        IpAddr::V6(_) => (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 9).into(),
    };
    let socket = UdpSocket::bind(SocketAddr::new(bind_ip, 0)).ok()?;
    socket.connect(probe).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

/// A guest that proved it holds the link and waits for the host's decision.
///
/// Accept or reject it within the approval timeout; dropping it rejects.
#[derive(Debug)]
pub struct PendingGuest {
    name: String,
    color: String,
    remote_addr: SocketAddr,
    path: Path,
    decision: oneshot::Sender<Decision>,
}

#[derive(Debug)]
enum Decision {
    Accept(oneshot::Sender<Result<PeerConnection, AcceptError>>),
    Reject,
}

/// Why admitting a [`PendingGuest`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    /// The approval timeout passed; the guest was already told.
    #[error("too late: the guest was turned away after waiting too long")]
    TimedOut,
    /// The guest's connection ended before it could be welcomed.
    #[error("the guest is gone: {0}")]
    GuestGone(CloseReason),
}

impl PendingGuest {
    /// The guest's display name (control characters removed, length capped).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The guest's colour (sanitised like the name).
    pub fn color(&self) -> &str {
        &self.color
    }

    /// The guest's address as seen from here.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// How the guest reached the host.
    pub fn path(&self) -> Path {
        self.path
    }

    /// Admits the guest: sends `Welcome` and returns the connection.
    pub async fn accept(self) -> Result<PeerConnection, AcceptError> {
        let (tx, rx) = oneshot::channel();
        self.decision
            .send(Decision::Accept(tx))
            .map_err(|_| AcceptError::TimedOut)?;
        rx.await.unwrap_or(Err(AcceptError::TimedOut))
    }

    /// Turns the guest away (`Refused(Rejected)`).
    pub fn reject(self) {
        let _ = self.decision.send(Decision::Reject);
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    path: Path,
    shared: Arc<HostShared>,
    pending_tx: mpsc::Sender<PendingGuest>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_CONCURRENT_HANDSHAKES));
    while let Some(incoming) = endpoint.accept().await {
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            tracing::warn!(remote = %incoming.remote_address(), "too many handshakes; refusing");
            incoming.refuse();
            continue;
        };
        let shared = shared.clone();
        let pending_tx = pending_tx.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            if let Err(why) = host_handshake(incoming, path, shared, pending_tx).await {
                tracing::info!(%remote, %why, "guest not admitted");
            }
            drop(permit);
        });
    }
}

/// Runs one guest's handshake on the host. The error is only for logging:
/// the guest has already been told (refusal) or dropped (garbage).
async fn host_handshake(
    incoming: quinn::Incoming,
    path: Path,
    shared: Arc<HostShared>,
    pending_tx: mpsc::Sender<PendingGuest>,
) -> Result<(), String> {
    let remote_addr = incoming.remote_address();
    let limit = shared.options.handshake_timeout;
    let connecting = incoming.accept().map_err(|e| e.to_string())?;
    let conn = tokio::time::timeout(limit, connecting)
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    shared.track(&conn);

    let drop_peer = |detail: String| {
        conn.close(CloseCode::ProtocolViolation.varint(), detail.as_bytes());
        detail
    };
    let (mut send, mut recv) = match tokio::time::timeout(limit, conn.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => return Err(format!("connection lost before Hello: {e}")),
        Err(_) => return Err(drop_peer("no Hello in time".into())),
    };
    let frame =
        match tokio::time::timeout(limit, read_frame(&mut recv, MAX_CONTROL_FRAME_LEN)).await {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => return Err(drop_peer("stream ended before Hello".into())),
            Ok(Err(e)) => return Err(drop_peer(format!("bad Hello frame: {e}"))),
            Err(_) => return Err(drop_peer("no Hello in time".into())),
        };
    let version = peek_version(&frame).map_err(|e| drop_peer(e.to_string()))?;
    if version != PROTOCOL_VERSION {
        let reason = RefusalReason::VersionMismatch {
            host_version: PROTOCOL_VERSION,
        };
        refuse(&conn, &mut send, reason).await;
        return Err(format!("guest speaks protocol v{version}"));
    }
    let GuestToHost::Hello(hello) =
        decode_control(&frame).map_err(|e| drop_peer(format!("bad Hello: {e}")))?;
    let Hello {
        session_id,
        proof,
        name,
        color,
    } = hello;

    if shared.ended.load(Ordering::SeqCst) || session_id != shared.session_id {
        refuse(&conn, &mut send, RefusalReason::UnknownSession).await;
        return Err("unknown or ended session".into());
    }
    let ekm = exporter_bytes(&conn).map_err(|e| drop_peer(e.to_string()))?;
    if !verify_proof(&shared.secret, &ekm, &session_id, &proof) {
        refuse(&conn, &mut send, RefusalReason::BadSecret).await;
        return Err("bad secret".into());
    }
    let Some(slot) = shared.reserve_slot() else {
        refuse(&conn, &mut send, RefusalReason::Full).await;
        return Err("session full".into());
    };

    let name = sanitize_name(&name);
    let color = sanitize_color(&color);
    let (decision_tx, decision_rx) = oneshot::channel();
    let pending = PendingGuest {
        name: name.clone(),
        color: color.clone(),
        remote_addr,
        path,
        decision: decision_tx,
    };
    if pending_tx.try_send(pending).is_err() {
        // The approval queue is full, or the host stopped listening.
        drop(slot);
        refuse(&conn, &mut send, RefusalReason::Full).await;
        return Err("approval queue full".into());
    }
    let reply = match tokio::time::timeout(shared.options.approval_timeout, decision_rx).await {
        Ok(Ok(Decision::Accept(reply))) => reply,
        Ok(Ok(Decision::Reject)) | Ok(Err(_)) => {
            // Free the slot before the guest can learn it was refused.
            drop(slot);
            refuse(&conn, &mut send, RefusalReason::Rejected).await;
            return Err("rejected by the host".into());
        }
        Err(_) => {
            drop(slot);
            refuse(&conn, &mut send, RefusalReason::ApprovalTimedOut).await;
            return Err("approval timed out".into());
        }
    };

    let participant_id = shared.next_participant.fetch_add(1, Ordering::SeqCst);
    let welcome = HostToGuest::Welcome { participant_id };
    let sent = match encode_control(PROTOCOL_VERSION, &welcome) {
        Ok(frame) => write_frame(&mut send, &frame, MAX_CONTROL_FRAME_LEN).await,
        Err(e) => Err(FrameError::Io(std::io::Error::other(e))),
    };
    if sent.is_err() {
        let reason = conn
            .close_reason()
            .map(|e| CloseReason::from_connection_error(&e))
            .unwrap_or_else(|| CloseReason::Lost("could not send Welcome".into()));
        let _ = reply.send(Err(AcceptError::GuestGone(reason)));
        return Err("guest gone before Welcome".into());
    }
    let info = PeerInfo {
        participant_id,
        name,
        color,
        path,
        remote_addr,
    };
    let keep: Vec<Box<dyn Any + Send + Sync>> = vec![Box::new(slot)];
    let peer = PeerConnection::start(info, conn, send, recv, keep);
    // If the caller gave up waiting, `peer` is dropped here and closes.
    let _ = reply.send(Ok(peer));
    Ok(())
}

/// Tells the guest why it is refused, lets it read that, then closes.
async fn refuse(conn: &quinn::Connection, send: &mut quinn::SendStream, reason: RefusalReason) {
    if let Ok(frame) = encode_control(PROTOCOL_VERSION, &HostToGuest::Refused(reason)) {
        if write_frame(send, &frame, MAX_CONTROL_FRAME_LEN)
            .await
            .is_ok()
        {
            let _ = send.finish();
            // The guest closes once it has read the refusal.
            let _ = tokio::time::timeout(GRACEFUL_CLOSE_TIMEOUT, conn.closed()).await;
        }
    }
    conn.close(CloseCode::Refused.varint(), b"refused");
}

// ---------------------------------------------------------------------------
// Guest side
// ---------------------------------------------------------------------------

/// Who the guest says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestProfile {
    /// Display name.
    pub name: String,
    /// Cursor colour.
    pub color: String,
}

/// Tunables of a connect; `Default` gives the product values.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Time for any address to complete the QUIC/TLS handshake.
    pub connect_timeout: Duration,
    /// Time for the host's first reply beyond the approval time.
    pub handshake_timeout: Duration,
    /// Time the host's user may take to accept us.
    pub approval_timeout: Duration,
    /// Protocol version to announce. Leave at [`PROTOCOL_VERSION`]; tests
    /// change it to exercise version mismatches.
    pub protocol_version: u32,
    /// How to reach the link's relay (UDP, the TCP fallback, a proxy).
    pub relay: RelayConnectOptions,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: CONNECT_TIMEOUT,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            approval_timeout: APPROVAL_TIMEOUT,
            protocol_version: PROTOCOL_VERSION,
            relay: RelayConnectOptions::default(),
        }
    }
}

/// Why joining failed. Messages are fit for a status line or the join prompt.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Direct only was asked for, and the link has no direct address.
    #[error("this link has no direct address (the host shares through a relay only); use connection mode auto or relay")]
    NoDirectAddress,
    /// Relay only was asked for, and the link names no relay.
    #[error("this link names no relay (the host shares directly only); use connection mode auto or direct")]
    NoRelay,
    /// The link names no relay and the host's direct addresses failed.
    #[error("{0}; the link names no relay, so there is no other way in (the host can configure a relay: see \"Running a relay\" in the README)")]
    DirectOnlyFailed(Box<ConnectError>),
    /// The relay could not be used.
    #[error("{0}")]
    Relay(RelayError),
    /// Through the relay, the host did not complete the QUIC handshake.
    #[error("the host did not answer through the relay within {}s", timeout.as_secs())]
    HostSilentOnRelay {
        /// How long we waited.
        timeout: Duration,
    },
    /// Both paths failed.
    #[error("cannot reach the host directly ({direct}) nor through the relay ({relay})")]
    BothFailed {
        /// Why direct failed.
        direct: Box<ConnectError>,
        /// Why the relay failed.
        relay: Box<ConnectError>,
    },
    /// No address answered in time.
    #[error("cannot reach the host: none of its {tried} address(es) answered within {}s", timeout.as_secs())]
    Unreachable {
        /// Number of addresses tried.
        tried: usize,
        /// The connect timeout.
        timeout: Duration,
    },
    /// Something answered, but with another certificate than the link's.
    #[error("the host's identity does not match the link: the session may have been restarted, or someone is impersonating the host")]
    CertificateMismatch,
    /// The host speaks another protocol version.
    #[error("the host runs lshed protocol v{host_version}, this lshed speaks v{our_version}; use the same lshed version")]
    VersionMismatch {
        /// The host's version.
        host_version: u32,
        /// Ours.
        our_version: u32,
    },
    /// The host did not accept the link's secret.
    #[error("the host refused the link's secret; copy the whole link again")]
    BadSecret,
    /// The session no longer exists.
    #[error("this session has ended")]
    SessionEnded,
    /// The host declined.
    #[error("the host declined your request to join")]
    Rejected,
    /// The host did not decide in time.
    #[error("the host did not answer your request to join in time")]
    ApprovalTimedOut,
    /// No room.
    #[error("the session is full")]
    Full,
    /// The host stopped answering mid-handshake.
    #[error("the host did not answer the handshake in time")]
    HandshakeTimeout,
    /// The host sent something this lshed cannot understand, or dropped us.
    #[error("join failed: {0}")]
    Protocol(String),
    /// The connection broke during the handshake.
    #[error("connection lost while joining: {0}")]
    ConnectionLost(CloseReason),
    /// A local problem: no UDP socket, TLS setup.
    #[error("cannot start connecting: {0}")]
    Local(String),
}

/// Which paths a guest may try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectPaths {
    /// Straight to the host's UDP port only.
    DirectOnly,
    /// Through the link's relay only.
    RelayOnly,
    /// Both at once; direct wins if it completes within
    /// [`AUTO_DIRECT_GRACE`] of the relayed one.
    Both,
}

/// Joins the session at `link` over the `paths` allowed. With both, the
/// QUIC connections race and only the winner runs the join handshake, so
/// the host's user is asked about this guest once.
pub async fn connect(
    link: &InviteLink,
    me: &GuestProfile,
    options: &ConnectOptions,
    paths: ConnectPaths,
) -> Result<PeerConnection, ConnectError> {
    let reached = race_paths(link, options, paths).await?;
    let peer = join(
        reached.endpoint,
        reached.conn,
        reached.path,
        link,
        me,
        options,
    )
    .await?;
    if let Some(socket) = reached.relay {
        peer.watch_relay(socket);
    }
    Ok(peer)
}

/// A QUIC connection to the host: its endpoint, how it travels, and the
/// relay socket it rides on if relayed.
struct Reached {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    path: Path,
    relay: Option<Arc<RelaySocket>>,
}

async fn reach_direct(
    link: &InviteLink,
    options: &ConnectOptions,
) -> Result<Reached, ConnectError> {
    let (endpoint, conn) = race_direct(link, options).await?;
    Ok(Reached {
        endpoint,
        conn,
        path: Path::Direct,
        relay: None,
    })
}

async fn race_paths(
    link: &InviteLink,
    options: &ConnectOptions,
    paths: ConnectPaths,
) -> Result<Reached, ConnectError> {
    let try_direct = paths != ConnectPaths::RelayOnly && !link.direct.is_empty();
    let try_relay = paths != ConnectPaths::DirectOnly && link.relay.is_some();
    match (try_direct, try_relay) {
        (false, false) if paths == ConnectPaths::RelayOnly => Err(ConnectError::NoRelay),
        (false, false) => Err(ConnectError::NoDirectAddress),
        (false, true) => reach_relayed(link, options).await,
        (true, false) => match reach_direct(link, options).await {
            Err(e)
                if paths == ConnectPaths::Both
                    && !matches!(e, ConnectError::CertificateMismatch) =>
            {
                Err(ConnectError::DirectOnlyFailed(Box::new(e)))
            }
            other => other,
        },
        (true, true) => {
            let direct = reach_direct(link, options);
            let relay = reach_relayed(link, options);
            tokio::pin!(direct, relay);
            tokio::select! {
                d = &mut direct => match d {
                    Ok(reached) => Ok(reached),
                    Err(d) => relay.await.map_err(|r| both_failed(d, r)),
                },
                r = &mut relay => match r {
                    // Direct is preferred (one hop fewer) if it completes
                    // within a short grace period after the relay.
                    Ok(relayed) => match tokio::time::timeout(AUTO_DIRECT_GRACE, &mut direct).await {
                        Ok(Ok(reached)) => {
                            relayed.conn.close(CloseCode::Left.varint(), b"direct won");
                            Ok(reached)
                        }
                        _ => Ok(relayed),
                    },
                    Err(r) => direct.await.map_err(|d| both_failed(d, r)),
                },
            }
        }
    }
}

/// Both paths failed: a certificate mismatch on either is the thing to
/// say (an impostor or a stale link); else both reasons.
fn both_failed(direct: ConnectError, relay: ConnectError) -> ConnectError {
    if matches!(direct, ConnectError::CertificateMismatch)
        || matches!(relay, ConnectError::CertificateMismatch)
    {
        return ConnectError::CertificateMismatch;
    }
    ConnectError::BothFailed {
        direct: Box::new(direct),
        relay: Box::new(relay),
    }
}

/// Reaches the host through the link's relay: attaches to the session's
/// route and completes the (pinned) QUIC handshake over it.
async fn reach_relayed(
    link: &InviteLink,
    options: &ConnectOptions,
) -> Result<Reached, ConnectError> {
    let relay = link.relay.as_ref().ok_or(ConnectError::NoRelay)?;
    let route = RouteId::derive(&link.secret, &link.session_id);
    let relay_link = RelayLink::open_with(relay, &ClientHello::Guest { route }, &options.relay)
        .await
        .map_err(ConnectError::Relay)?;
    let socket = relay_link.into_socket(false);
    let endpoint = socket
        .clone()
        .endpoint(None)
        .map_err(|e| ConnectError::Local(e.to_string()))?;
    let conn = pinned_handshake(&endpoint, HOST_ADDR, link, options.connect_timeout)
        .await
        .map_err(|e| match e {
            ConnectError::Unreachable { timeout, .. } => {
                ConnectError::HostSilentOnRelay { timeout }
            }
            other => other,
        })?;
    Ok(Reached {
        endpoint,
        conn,
        path: Path::Relayed,
        relay: Some(socket),
    })
}

/// The QUIC/TLS handshake with the host at `addr` over `endpoint`, its
/// certificate pinned by the link, within `timeout`.
async fn pinned_handshake(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    link: &InviteLink,
    timeout: Duration,
) -> Result<quinn::Connection, ConnectError> {
    let (config, mismatch) =
        client_config(link.fingerprint).map_err(|e| ConnectError::Local(e.to_string()))?;
    let connecting = endpoint
        .connect_with(config, addr, SERVER_NAME)
        .map_err(|e| ConnectError::Local(e.to_string()))?;
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(_)) if mismatch.is_set() => Err(ConnectError::CertificateMismatch),
        Ok(Err(_)) | Err(_) => Err(ConnectError::Unreachable { tried: 1, timeout }),
    }
}

/// Joins the session at `link` over its direct addresses.
pub async fn connect_direct(
    link: &InviteLink,
    me: &GuestProfile,
    options: &ConnectOptions,
) -> Result<PeerConnection, ConnectError> {
    if link.direct.is_empty() {
        return Err(ConnectError::NoDirectAddress);
    }
    let (endpoint, conn) = race_direct(link, options).await?;
    join(endpoint, conn, Path::Direct, link, me, options).await
}

/// Joins over a quinn endpoint the caller built — the relay client's
/// endpoint over its relayed socket, typically — reaching the host at
/// `addr` (as that endpoint addresses it). The certificate is pinned and the
/// handshake run exactly as for [`connect_direct`]; `path` is recorded on
/// the connection. `options.connect_timeout` bounds the QUIC/TLS handshake.
pub async fn connect_over(
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    path: Path,
    link: &InviteLink,
    me: &GuestProfile,
    options: &ConnectOptions,
) -> Result<PeerConnection, ConnectError> {
    let conn = pinned_handshake(&endpoint, addr, link, options.connect_timeout).await?;
    join(endpoint, conn, path, link, me, options).await
}

/// Races QUIC handshakes to every direct address; returns the first that
/// completes (with the pinned certificate) and the endpoint it belongs to.
async fn race_direct(
    link: &InviteLink,
    options: &ConnectOptions,
) -> Result<(quinn::Endpoint, quinn::Connection), ConnectError> {
    let (config, mismatch) =
        client_config(link.fingerprint).map_err(|e| ConnectError::Local(e.to_string()))?;
    // One client endpoint per address family, bound to the unspecified
    // address so any route works.
    let mut v4: Option<quinn::Endpoint> = None;
    let mut v6: Option<quinn::Endpoint> = None;
    let mut attempts = JoinSet::new();
    let mut local_error = None;
    for &addr in &link.direct {
        let slot = if addr.is_ipv4() { &mut v4 } else { &mut v6 };
        if slot.is_none() {
            let bind: SocketAddr = if addr.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (Ipv6Addr::UNSPECIFIED, 0).into()
            };
            match quinn::Endpoint::client(bind) {
                Ok(endpoint) => *slot = Some(endpoint),
                Err(e) => {
                    local_error = Some(format!("cannot open a UDP socket on {bind}: {e}"));
                    continue;
                }
            }
        }
        let Some(endpoint) = slot.as_ref() else {
            continue;
        };
        match endpoint.connect_with(config.clone(), addr, SERVER_NAME) {
            Ok(connecting) => {
                let endpoint = endpoint.clone();
                attempts.spawn(async move { (endpoint, connecting.await) });
            }
            Err(e) => tracing::debug!(%addr, %e, "cannot start connecting"),
        }
    }
    if attempts.is_empty() {
        return Err(match local_error {
            Some(e) => ConnectError::Local(e),
            None => ConnectError::Unreachable {
                tried: link.direct.len(),
                timeout: options.connect_timeout,
            },
        });
    }
    let deadline = tokio::time::Instant::now() + options.connect_timeout;
    loop {
        match tokio::time::timeout_at(deadline, attempts.join_next()).await {
            Ok(Some(Ok((endpoint, Ok(conn))))) => {
                attempts.abort_all();
                return Ok((endpoint, conn));
            }
            Ok(Some(Ok((_, Err(e))))) => tracing::debug!(%e, "direct attempt failed"),
            Ok(Some(Err(_join))) => {}
            Ok(None) | Err(_) => break,
        }
    }
    attempts.abort_all();
    if mismatch.is_set() {
        Err(ConnectError::CertificateMismatch)
    } else {
        Err(ConnectError::Unreachable {
            tried: link.direct.len(),
            timeout: options.connect_timeout,
        })
    }
}

/// Runs the guest's side of the handshake on an established connection.
async fn join(
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    path: Path,
    link: &InviteLink,
    me: &GuestProfile,
    options: &ConnectOptions,
) -> Result<PeerConnection, ConnectError> {
    let lost = |conn: &quinn::Connection, fallback: &str| -> ConnectError {
        match conn.close_reason() {
            Some(e) => match CloseReason::from_connection_error(&e) {
                CloseReason::Remote(CloseCode::SessionEnded) => ConnectError::SessionEnded,
                CloseReason::Remote(CloseCode::ProtocolViolation) => ConnectError::Protocol(
                    "the host dropped the connection (protocol violation)".into(),
                ),
                CloseReason::TimedOut => ConnectError::HandshakeTimeout,
                other => ConnectError::ConnectionLost(other),
            },
            None => ConnectError::Protocol(fallback.to_owned()),
        }
    };
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|_| lost(&conn, "cannot open the handshake stream"))?;
    let proof = connection_proof(&conn, &link.secret, &link.session_id)
        .map_err(|e| ConnectError::Local(e.to_string()))?;
    // Sanitised here too, so a long name cannot push the Hello over the
    // control frame limit.
    let name = sanitize_name(&me.name);
    let color = sanitize_color(&me.color);
    let hello = GuestToHost::Hello(Hello {
        session_id: link.session_id,
        proof,
        name: name.clone(),
        color: color.clone(),
    });
    let frame = encode_control(options.protocol_version, &hello)
        .map_err(|e| ConnectError::Local(e.to_string()))?;
    write_frame(&mut send, &frame, MAX_CONTROL_FRAME_LEN)
        .await
        .map_err(|_| lost(&conn, "cannot send Hello"))?;

    let wait = options.approval_timeout + options.handshake_timeout;
    let reply = match tokio::time::timeout(wait, read_frame(&mut recv, MAX_CONTROL_FRAME_LEN)).await
    {
        Err(_) => {
            conn.close(CloseCode::Left.varint(), b"handshake timeout");
            return Err(ConnectError::HandshakeTimeout);
        }
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => return Err(lost(&conn, "the host closed the handshake stream")),
        Ok(Err(FrameError::Io(_))) => return Err(lost(&conn, "handshake stream failed")),
        Ok(Err(e)) => {
            conn.close(CloseCode::ProtocolViolation.varint(), b"bad reply");
            return Err(ConnectError::Protocol(format!(
                "bad reply from the host: {e}"
            )));
        }
    };
    let bail = |err: ConnectError| {
        conn.close(CloseCode::Left.varint(), b"");
        err
    };
    let host_version = peek_version(&reply).map_err(|e| {
        bail(ConnectError::Protocol(format!(
            "bad reply from the host: {e}"
        )))
    })?;
    if host_version != options.protocol_version {
        return Err(bail(ConnectError::VersionMismatch {
            host_version,
            our_version: options.protocol_version,
        }));
    }
    let reply: HostToGuest = decode_control(&reply).map_err(|e| {
        bail(ConnectError::Protocol(format!(
            "bad reply from the host: {e}"
        )))
    })?;
    match reply {
        HostToGuest::Welcome { participant_id } => {
            let info = PeerInfo {
                participant_id,
                name,
                color,
                path,
                remote_addr: conn.remote_address(),
            };
            let keep: Vec<Box<dyn Any + Send + Sync>> = vec![Box::new(endpoint)];
            Ok(PeerConnection::start(info, conn, send, recv, keep))
        }
        HostToGuest::Refused(reason) => Err(bail(match reason {
            RefusalReason::VersionMismatch { host_version } => ConnectError::VersionMismatch {
                host_version,
                our_version: options.protocol_version,
            },
            RefusalReason::BadSecret => ConnectError::BadSecret,
            RefusalReason::UnknownSession => ConnectError::SessionEnded,
            RefusalReason::Rejected => ConnectError::Rejected,
            RefusalReason::ApprovalTimedOut => ConnectError::ApprovalTimedOut,
            RefusalReason::Full => ConnectError::Full,
        })),
    }
}
