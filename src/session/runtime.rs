//! The I/O half of a session: a background std thread running a
//! current-thread tokio runtime that owns the QUIC endpoint and every
//! [`PeerConnection`].
//!
//! It reports [`NetEvent`]s on a std mpsc queue and calls the driver's
//! `notify` after each one, so the driver (UI thread or headless loop)
//! wakes and drains them with [`SessionRuntime::try_recv`] (through
//! `SessionCore::poll`). It takes [`NetCommand`]s on a tokio unbounded
//! channel, so the driver never blocks on the network.
//!
//! Per peer there are two tasks: a reader owning the `PeerConnection`
//! (forwards messages, performs closes) and a writer owning its
//! `MessageSender` (drains that peer's unbounded command queue in order).
//! A slow peer therefore only delays its own queue; it can never stall the
//! driver, the other peers, or — because reading and writing are separate
//! tasks — deadlock with us when both sides send at once. Its queue is
//! bounded in bytes ([`max_peer_backlog`]): a peer that stops taking its
//! messages (a suspended process, a dead link QUIC has not timed out yet)
//! is closed at once with [`CloseCode::TooSlow`] rather than grow our
//! memory without end.
//!
//! The other way, each peer's reader holds an allowance of
//! [`INBOUND_CREDIT_BYTES`] of messages handed to the core and not yet
//! handled by it ([`SessionRuntime::handled`] gives it back): a peer that
//! sends faster than the core applies stops being read, and QUIC's flow
//! control slows it down, so what waits for the core stays bounded. The
//! driver is woken when a queue towards a peer drains below
//! [`COALESCE_ABOVE_BYTES`] ([`SessionRuntime::backlog`]), so that a guest
//! holding its changes while its link was busy sends them.
//!
//! A current-thread runtime: the session's I/O is light (a few messages per
//! keystroke), and on a machine with few cores a thread pool would only
//! compete with the UI thread.
//!
//! Shutdown (`NetCommand::Shutdown`, or the command channel closing when
//! the core is dropped): every peer is closed gracefully after its queued
//! messages (bounded by [`SHUTDOWN_TIMEOUT`]), the endpoint is dropped,
//! [`NetEvent::Stopped`] is reported, and the thread ends; the owner joins it.
//!
//! May depend on: tokio, `net`, `config`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::limits::{COALESCE_ABOVE_BYTES, INBOUND_CREDIT_BYTES};
use super::{Profile, SessionOptions};
use crate::config::ConnectionMode;
use crate::net::limits::{GRACEFUL_CLOSE_TIMEOUT, HOST_PARTICIPANT_ID};
use crate::net::{
    connect, CloseCode, CloseReason, ConnectError, ConnectOptions, ConnectPaths, GuestProfile,
    HostEndpoint, InviteLink, Path, PeerConnection,
};

pub use super::limits::{max_peer_backlog, SHUTDOWN_TIMEOUT};

/// How often the host's runtime sends [`NetEvent::Tick`] (disk watching).
pub const TICK_INTERVAL: Duration = super::limits::WATCH_INTERVAL;

/// Identifies a joiner awaiting the host's decision.
pub type PendingId = u64;

/// Wakes the driver: called after every [`NetEvent`] is queued.
pub type Notify = Box<dyn Fn() + Send + Sync>;

/// Something that happened on the network, for `SessionCore::handle_net`.
#[derive(Debug)]
pub enum NetEvent {
    /// Host: listening; the invite link.
    HostStarted {
        /// The link, as text.
        link: String,
        /// The same link as a web address on the relay's join page, when
        /// the relay serves one.
        url: Option<String>,
    },
    /// Host: something the user should know that does not stop the
    /// session (the relay could not be reached, or its link ended).
    HostWarning {
        /// What happened, for the user.
        message: String,
    },
    /// Host: could not start.
    HostFailed {
        /// Why, for the user.
        message: String,
    },
    /// Host: a joiner proved the secret and awaits approval.
    GuestPending {
        /// Answer with `NetCommand::Approve`.
        pending: PendingId,
        /// Their name (sanitised).
        name: String,
        /// Their colour.
        color: String,
    },
    /// Host: admitting a joiner failed (it gave up, or took too long).
    PendingFailed {
        /// Which.
        pending: PendingId,
        /// Why.
        message: String,
    },
    /// Host: a guest is in.
    GuestJoined {
        /// Its participant id.
        id: u64,
        /// Name.
        name: String,
        /// Colour.
        color: String,
        /// Direct or relayed.
        path: Path,
    },
    /// Guest: the handshake succeeded.
    Joined {
        /// Our participant id.
        id: u64,
        /// Direct or relayed.
        path: Path,
    },
    /// Guest: joining failed.
    JoinFailed(ConnectError),
    /// A message from a peer (host: a guest's id; guest: the host's id 0).
    Message {
        /// Sender.
        from: u64,
        /// Undecoded bytes.
        bytes: Vec<u8>,
    },
    /// A peer's connection ended.
    PeerClosed {
        /// Which.
        id: u64,
        /// Why.
        reason: CloseReason,
    },
    /// Host: time to look at the disk (every [`TICK_INTERVAL`]).
    Tick,
    /// The runtime thread is ending; join it.
    Stopped,
}

/// What the core asks of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetCommand {
    /// Queue a message to a peer.
    Send {
        /// Peer (guest id, or 0 for the host).
        to: u64,
        /// Encoded message.
        bytes: Vec<u8>,
    },
    /// Host: admit or turn away a joiner.
    Approve {
        /// Which.
        pending: PendingId,
        /// Admit?
        accept: bool,
    },
    /// Close a peer after its queued messages.
    Close {
        /// Which.
        to: u64,
        /// Code the peer sees.
        code: CloseCode,
    },
    /// Drop a peer at once for breaking the protocol.
    Drop {
        /// Which.
        to: u64,
        /// Why (sent in the close frame).
        detail: String,
    },
    /// End everything (host: end the session; guest: leave) and stop.
    Shutdown,
}

/// A running session's I/O thread. Dropping it shuts down and joins.
pub struct SessionRuntime {
    notify: Arc<dyn Fn() + Send + Sync>,
    gauges: Gauges,
    commands: mpsc::UnboundedSender<NetCommand>,
    events: std::sync::mpsc::Receiver<NetEvent>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SessionRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRuntime").finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Emitter {
    tx: std::sync::mpsc::Sender<NetEvent>,
    notify: Arc<dyn Fn() + Send + Sync>,
    gauges: Gauges,
}

/// What the runtime and the core both watch of each peer: its allowance
/// of message bytes handed to the core and not yet handled by it
/// ([`SessionRuntime::handled`]; a peer's reader waits when it is spent,
/// so a peer that sends faster than the core applies is slowed by QUIC's
/// flow control and what waits for the core stays bounded), and the bytes
/// queued towards it not yet handed to its connection
/// ([`SessionRuntime::backlog`]).
#[derive(Clone, Default)]
struct Gauges(Arc<std::sync::Mutex<HashMap<u64, PeerGauge>>>);

#[derive(Clone)]
struct PeerGauge {
    credit: Arc<tokio::sync::Semaphore>,
    backlog: Arc<AtomicUsize>,
}

impl Gauges {
    fn add(&self, peer: u64) -> PeerGauge {
        let gauge = PeerGauge {
            credit: Arc::new(tokio::sync::Semaphore::new(INBOUND_CREDIT_BYTES)),
            backlog: Arc::new(AtomicUsize::new(0)),
        };
        if let Ok(mut map) = self.0.lock() {
            map.insert(peer, gauge.clone());
        }
        gauge
    }

    fn remove(&self, peer: u64) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(&peer);
        }
    }

    fn get(&self, peer: u64) -> Option<PeerGauge> {
        self.0.lock().ok().and_then(|map| map.get(&peer).cloned())
    }
}

/// The credit a message of `len` bytes takes (one larger than the whole
/// allowance takes all of it).
fn credit_of(len: usize) -> u32 {
    len.min(INBOUND_CREDIT_BYTES) as u32
}

impl Emitter {
    fn emit(&self, ev: NetEvent) {
        if self.tx.send(ev).is_ok() {
            (self.notify)();
        }
    }
}

impl SessionRuntime {
    /// Starts hosting: binds the listener and reports
    /// [`NetEvent::HostStarted`] (or `HostFailed`).
    pub fn host(opts: SessionOptions, notify: Notify) -> Self {
        Self::start(notify, move |emit, cmds| async move {
            host_main(opts, emit, cmds).await
        })
    }

    /// Starts joining `link`: reports [`NetEvent::Joined`] or `JoinFailed`.
    pub fn join(link: InviteLink, profile: Profile, opts: SessionOptions, notify: Notify) -> Self {
        Self::start(notify, move |emit, cmds| async move {
            guest_main(
                link,
                profile,
                opts.connect,
                opts.connection_mode,
                emit,
                cmds,
            )
            .await
        })
    }

    fn start<F, Fut>(notify: Notify, main: F) -> Self
    where
        F: FnOnce(Emitter, mpsc::UnboundedReceiver<NetCommand>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = std::sync::mpsc::channel();
        let gauges = Gauges::default();
        let emit = Emitter {
            tx: ev_tx,
            notify: Arc::from(notify),
            gauges: gauges.clone(),
        };
        let fallback = emit.clone();
        let notify = emit.notify.clone();
        let thread = std::thread::Builder::new()
            .name("lshed-session".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(main(emit.clone(), cmd_rx)),
                    Err(e) => emit.emit(NetEvent::HostFailed {
                        message: format!("cannot start the network runtime: {e}"),
                    }),
                }
                emit.emit(NetEvent::Stopped);
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                // No thread: say so, as the thread would have.
                fallback.emit(NetEvent::HostFailed {
                    message: format!("cannot start the network thread: {e}"),
                });
                fallback.emit(NetEvent::Stopped);
                None
            }
        };
        SessionRuntime {
            notify,
            gauges,
            commands: cmd_tx,
            events: ev_rx,
            thread,
        }
    }

    /// Queues a command (ignored once the thread has stopped).
    pub fn send(&self, cmd: NetCommand) {
        let _ = self.commands.send(cmd);
    }

    /// Calls the driver's `notify`, so it polls again soon.
    pub fn wake(&self) {
        (self.notify)();
    }

    /// The driver's `notify`, for other threads that have work for the
    /// driver (the session core's document workers).
    pub fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        self.notify.clone()
    }

    /// The next event, if any (never blocks).
    pub fn try_recv(&self) -> Option<NetEvent> {
        self.events.try_recv().ok()
    }

    /// The core has handled a [`NetEvent::Message`] of `bytes` bytes from
    /// `peer`: that peer may send that much more (see
    /// [`INBOUND_CREDIT_BYTES`]). Every message taken must be handed back
    /// this way, or that peer's reading stops for good.
    pub fn handled(&self, peer: u64, bytes: usize) {
        if let Some(g) = self.gauges.get(peer) {
            g.credit.add_permits(credit_of(bytes) as usize);
        }
    }

    /// Bytes queued towards `peer` and not yet handed to its connection
    /// (0 for no such peer). When it falls back under
    /// [`COALESCE_ABOVE_BYTES`] the driver is woken, so that changes held
    /// meanwhile go out.
    pub fn backlog(&self, peer: u64) -> usize {
        self.gauges
            .get(peer)
            .map_or(0, |g| g.backlog.load(Ordering::Relaxed))
    }

    /// Whether the thread has ended (or never started).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Shuts down (if not already) and waits for the thread.
    pub fn shutdown(&mut self) {
        let _ = self.commands.send(NetCommand::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SessionRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Commands for one peer's tasks.
enum PeerCtl {
    Send(Vec<u8>),
    Close(CloseCode),
    Drop(String),
}

/// How a peer's connection is to end.
enum Closing {
    /// After everything queued before it.
    Graceful(CloseCode),
    /// Now, dropping what is queued (protocol violation, with a detail).
    Dropped,
    /// Now: the peer fell too far behind.
    TooSlow,
}

/// Closes `conn` as `close` asks; returns why it ended.
async fn closing_reason(
    conn: PeerConnection,
    close: Option<Closing>,
    detail_rx: &mut Option<oneshot::Receiver<String>>,
) -> CloseReason {
    match close {
        Some(Closing::Graceful(code)) => {
            conn.close(code).await;
            CloseReason::Local(code)
        }
        Some(Closing::TooSlow) => {
            conn.close_now(CloseCode::TooSlow, "fell too far behind");
            CloseReason::Local(CloseCode::TooSlow)
        }
        Some(Closing::Dropped) | None => {
            let detail = match detail_rx.take() {
                Some(rx) => rx.await.unwrap_or_default(),
                None => String::new(),
            };
            conn.close_now(CloseCode::ProtocolViolation, &detail);
            CloseReason::Local(CloseCode::ProtocolViolation)
        }
    }
}

/// One live peer: its command queue and the bytes waiting in it.
struct PeerHandle {
    ctl: mpsc::UnboundedSender<PeerCtl>,
    /// Bytes in `ctl` not yet handed to the connection.
    backlog: Arc<AtomicUsize>,
    /// The connection's own queue (bytes not yet written are counted there).
    sender: crate::net::MessageSender,
    /// Straight to the reader, past the queue.
    close_now: mpsc::UnboundedSender<Closing>,
}

/// The live peers of a runtime and their tasks.
struct Peers {
    ctl: HashMap<u64, PeerHandle>,
    tasks: JoinSet<()>,
    emit: Emitter,
    max_backlog: usize,
}

impl Peers {
    fn new(emit: Emitter) -> Self {
        Self {
            ctl: HashMap::new(),
            tasks: JoinSet::new(),
            emit,
            max_backlog: max_peer_backlog(),
        }
    }

    fn add(&mut self, id: u64, mut conn: PeerConnection) {
        let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel::<PeerCtl>();
        let (close_tx, mut close_rx) = mpsc::unbounded_channel::<Closing>();
        let (detail_tx, detail_rx) = oneshot::channel::<String>();
        let sender = conn.sender();
        let PeerGauge { credit, backlog } = self.emit.gauges.add(id);
        let queued = backlog.clone();
        let drained = self.emit.clone();
        let close_now = close_tx.clone();
        let counted = conn.sender();
        // Writer: in-order sends; closes go to the reader *after* every
        // earlier message has been queued on the connection.
        self.tasks.spawn(async move {
            let mut detail_tx = Some(detail_tx);
            while let Some(ctl) = ctl_rx.recv().await {
                match ctl {
                    PeerCtl::Send(bytes) => {
                        let n = bytes.len();
                        if sender.send(bytes).await.is_err() {
                            // Closed: the reader reports why.
                        }
                        let before = queued.fetch_sub(n, Ordering::Relaxed);
                        if before > COALESCE_ABOVE_BYTES && before - n <= COALESCE_ABOVE_BYTES {
                            // The core may hold changes until now.
                            (drained.notify)();
                        }
                    }
                    PeerCtl::Close(code) => {
                        let _ = close_tx.send(Closing::Graceful(code));
                        return;
                    }
                    PeerCtl::Drop(detail) => {
                        if let Some(tx) = detail_tx.take() {
                            let _ = tx.send(detail);
                        }
                        let _ = close_tx.send(Closing::Dropped);
                        return;
                    }
                }
            }
            let _ = close_tx.send(Closing::Graceful(CloseCode::Left));
        });
        let emit = self.emit.clone();
        self.tasks.spawn(async move {
            let mut detail_rx = Some(detail_rx);
            let reason = loop {
                tokio::select! {
                    msg = conn.recv() => match msg {
                        Some(bytes) => {
                            // Wait until the core has room (its handled
                            // messages give credit back); meanwhile this
                            // peer's stream is not read.
                            let wanted = credit_of(bytes.len());
                            let closing = tokio::select! {
                                got = credit.acquire_many(wanted) => {
                                    if let Ok(permit) = got {
                                        permit.forget();
                                    }
                                    None
                                }
                                close = close_rx.recv() => Some(close),
                            };
                            emit.emit(NetEvent::Message { from: id, bytes });
                            if let Some(close) = closing {
                                break closing_reason(conn, close, &mut detail_rx).await;
                            }
                        }
                        None => break conn.close_reason().unwrap_or(CloseReason::Lost("closed".into())),
                    },
                    close = close_rx.recv() => break closing_reason(conn, close, &mut detail_rx).await,
                }
            };
            emit.gauges.remove(id);
            emit.emit(NetEvent::PeerClosed { id, reason });
        });
        self.ctl.insert(
            id,
            PeerHandle {
                ctl: ctl_tx,
                backlog,
                sender: counted,
                close_now,
            },
        );
    }

    fn command(&mut self, to: u64, ctl: PeerCtl) {
        let Some(peer) = self.ctl.get(&to) else {
            return;
        };
        let mut closing = matches!(ctl, PeerCtl::Close(_) | PeerCtl::Drop(_));
        if let PeerCtl::Send(bytes) = &ctl {
            let waiting = peer.backlog.fetch_add(bytes.len(), Ordering::Relaxed)
                + bytes.len()
                + peer.sender.queued_bytes();
            if waiting > self.max_backlog {
                // It is not taking its messages: end it now, not after them.
                let _ = peer.close_now.send(Closing::TooSlow);
                self.ctl.remove(&to);
                return;
            }
        }
        if peer.ctl.send(ctl).is_err() {
            closing = true;
        }
        if closing {
            self.ctl.remove(&to);
        }
    }

    /// Closes every peer with `code` after its queued messages; waits (bounded).
    async fn close_all(&mut self, code: CloseCode) {
        for (_, peer) in self.ctl.drain() {
            let _ = peer.ctl.send(PeerCtl::Close(code));
        }
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, drain).await.is_err() {
            self.tasks.abort_all();
        }
    }
}

async fn host_main(
    opts: SessionOptions,
    emit: Emitter,
    mut cmds: mpsc::UnboundedReceiver<NetCommand>,
) {
    let mode = opts.connection_mode;
    let relay = opts.relay.clone();
    if mode == ConnectionMode::Relay && relay.is_none() {
        emit.emit(NetEvent::HostFailed {
            message: opts
                .relay_config_error
                .clone()
                .unwrap_or_else(|| NO_RELAY_CONFIGURED.into()),
        });
        return;
    }
    if let (Some(error), ConnectionMode::Auto) = (&opts.relay_config_error, mode) {
        emit.emit(NetEvent::HostWarning {
            message: format!("sharing directly only: {error}"),
        });
    }
    let started = if mode == ConnectionMode::Relay {
        HostEndpoint::unbound(opts.host)
    } else {
        HostEndpoint::bind_with(opts.bind_ip, opts.host)
    };
    let mut endpoint = match started {
        Ok(e) => e,
        Err(e) => {
            emit.emit(NetEvent::HostFailed {
                message: format!("cannot share: {e}"),
            });
            return;
        }
    };
    // In `direct` mode a configured relay is not used.
    let mut relay_socket = None;
    if let (Some(relay), true) = (&relay, mode != ConnectionMode::Direct) {
        let registered = tokio::select! {
            r = endpoint.register_relay_with(relay, opts.relay_token.clone(), &opts.connect.relay) => r,
            _ = wait_for_shutdown(&mut cmds) => return,
        };
        match registered {
            Ok(socket) => relay_socket = Some(socket),
            Err(e) if mode == ConnectionMode::Relay => {
                emit.emit(NetEvent::HostFailed {
                    message: format!("cannot share through the relay: {e}"),
                });
                return;
            }
            Err(e) => emit.emit(NetEvent::HostWarning {
                message: format!("sharing directly only: {e}"),
            }),
        }
    }
    let link = endpoint.invite_link();
    if let Err(e) = link.validate() {
        emit.emit(NetEvent::HostFailed {
            message: format!("cannot make an invite link: {e}"),
        });
        return;
    }
    let url = relay_socket
        .as_ref()
        .and_then(|s| s.join_page())
        .map(|page| link.web_url(page));
    emit.emit(NetEvent::HostStarted {
        link: link.to_string(),
        url,
    });
    let mut peers = Peers::new(emit.clone());
    let mut pending = HashMap::new();
    let mut next_pending: PendingId = 1;
    let (admitted_tx, mut admitted_rx) = mpsc::unbounded_channel::<PeerConnection>();
    let mut admitting = JoinSet::new();
    let mut tick = tokio::time::interval(TICK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut listening = true;
    let relay_watch = relay_socket.clone();
    let relay_lost = async move {
        match relay_watch {
            Some(socket) => socket.closed().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(relay_lost);
    let mut relay_up = relay_socket.is_some();
    loop {
        tokio::select! {
            why = &mut relay_lost, if relay_up => {
                relay_up = false;
                emit.emit(NetEvent::HostWarning {
                    message: format!("the link to the relay ended ({why}); guests on it are cut off"),
                });
            }
            guest = endpoint.accept(), if listening => match guest {
                Some(guest) => {
                    let id = next_pending;
                    next_pending += 1;
                    emit.emit(NetEvent::GuestPending {
                        pending: id,
                        name: guest.name().to_string(),
                        color: guest.color().to_string(),
                    });
                    pending.insert(id, guest);
                }
                None => listening = false,
            },
            conn = admitted_rx.recv() => {
                if let Some(conn) = conn {
                    let info = conn.info().clone();
                    peers.add(info.participant_id, conn);
                    emit.emit(NetEvent::GuestJoined {
                        id: info.participant_id,
                        name: info.name,
                        color: info.color,
                        path: info.path,
                    });
                }
            }
            Some(_) = admitting.join_next(), if !admitting.is_empty() => {}
            _ = tick.tick() => emit.emit(NetEvent::Tick),
            cmd = cmds.recv() => match cmd {
                None | Some(NetCommand::Shutdown) => break,
                Some(NetCommand::Send { to, bytes }) => peers.command(to, PeerCtl::Send(bytes)),
                Some(NetCommand::Close { to, code }) => peers.command(to, PeerCtl::Close(code)),
                Some(NetCommand::Drop { to, detail }) => peers.command(to, PeerCtl::Drop(detail)),
                Some(NetCommand::Approve { pending: id, accept }) => {
                    let Some(guest) = pending.remove(&id) else { continue };
                    if !accept {
                        guest.reject();
                        continue;
                    }
                    let tx = admitted_tx.clone();
                    let emit = emit.clone();
                    admitting.spawn(async move {
                        match guest.accept().await {
                            Ok(conn) => { let _ = tx.send(conn); }
                            Err(e) => emit.emit(NetEvent::PendingFailed { pending: id, message: e.to_string() }),
                        }
                    });
                }
            },
        }
    }
    for (_, guest) in pending.drain() {
        guest.reject();
    }
    admitting.abort_all();
    endpoint.end_session();
    peers.close_all(CloseCode::SessionEnded).await;
    drop(endpoint);
}

async fn guest_main(
    link: InviteLink,
    profile: Profile,
    options: ConnectOptions,
    mode: ConnectionMode,
    emit: Emitter,
    mut cmds: mpsc::UnboundedReceiver<NetCommand>,
) {
    let me = GuestProfile {
        name: profile.name,
        color: profile.color,
    };
    let conn = tokio::select! {
        res = connect(&link, &me, &options, paths(mode)) => match res {
            Ok(conn) => conn,
            Err(e) => {
                emit.emit(NetEvent::JoinFailed(e));
                return;
            }
        },
        // Leave (or the core dropped) while joining.
        _ = wait_for_shutdown(&mut cmds) => return,
    };
    emit.emit(NetEvent::Joined {
        id: conn.info().participant_id,
        path: conn.path(),
    });
    let mut peers = Peers::new(emit.clone());
    peers.add(HOST_PARTICIPANT_ID, conn);
    while let Some(cmd) = cmds.recv().await {
        match cmd {
            NetCommand::Shutdown => break,
            NetCommand::Send { to, bytes } => peers.command(to, PeerCtl::Send(bytes)),
            NetCommand::Close { to, code } => peers.command(to, PeerCtl::Close(code)),
            NetCommand::Drop { to, detail } => peers.command(to, PeerCtl::Drop(detail)),
            NetCommand::Approve { .. } => {}
        }
    }
    peers.close_all(CloseCode::Left).await;
    // Let the close frame leave before the endpoint goes.
    tokio::time::sleep(Duration::from_millis(20).min(GRACEFUL_CLOSE_TIMEOUT)).await;
}

/// The paths a guest may try in `mode`.
fn paths(mode: ConnectionMode) -> ConnectPaths {
    match mode {
        ConnectionMode::Auto => ConnectPaths::Both,
        ConnectionMode::Direct => ConnectPaths::DirectOnly,
        ConnectionMode::Relay => ConnectPaths::RelayOnly,
    }
}

/// Why a host cannot share in `relay` mode without a relay.
const NO_RELAY_CONFIGURED: &str = "connection mode \"relay\" needs a relay: add the `relay = \"…\"` line that `lshed relay` prints to your config (see \"Running a relay\" in the README)";

async fn wait_for_shutdown(cmds: &mut mpsc::UnboundedReceiver<NetCommand>) {
    while let Some(cmd) = cmds.recv().await {
        if cmd == NetCommand::Shutdown {
            return;
        }
    }
}
