//! The connection handed to the session layer once the handshake is done:
//! an ordered, reliable channel of opaque messages in each direction.
//!
//! Messages travel as frames ([`super::frame`]) on the one long-lived
//! bidirectional stream the handshake ran on. Two tokio tasks drive it (in
//! the manner of zed's `rpc::Peer`): a writer draining a bounded outgoing
//! queue and a reader filling a bounded incoming queue. A full outgoing
//! queue makes [`MessageSender::send`] wait; a full incoming queue stops the
//! reader, and QUIC flow control then slows the peer down.
//!
//! A peer that breaks the framing (an oversize length prefix, a stream cut
//! mid-frame, a reset stream) has its connection — and only that one —
//! closed with [`CloseCode::ProtocolViolation`]; [`PeerConnection::recv`]
//! then returns `None` and [`PeerConnection::close_reason`] says why. The
//! payloads themselves are opaque here: when the session layer cannot
//! decode one it calls [`PeerConnection::close_now`] with
//! `CloseCode::ProtocolViolation`.
//!
//! May depend on: tokio, quinn, and the sibling `frame`/`limits` modules.

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::frame::{read_frame, write_frame, FrameError};
use super::limits::{CHANNEL_CAPACITY, GRACEFUL_CLOSE_TIMEOUT, MAX_FRAME_LEN};
use super::Path;

/// Application close codes carried by QUIC's CONNECTION_CLOSE, so the other
/// side learns why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// A participant left (or the handle was dropped).
    Left,
    /// The host ended the session.
    SessionEnded,
    /// The host removed this guest.
    Removed,
    /// The other side broke the protocol (bad frame, undecodable message).
    ProtocolViolation,
    /// The join was refused (the reason travelled in the handshake).
    Refused,
    /// The peer did not take its messages and fell too far behind (its
    /// backlog passed the sender's limit).
    TooSlow,
    /// A code this version does not know.
    Other(u32),
}

impl CloseCode {
    /// The QUIC application error code.
    pub fn to_code(self) -> u32 {
        match self {
            CloseCode::Left => 0,
            CloseCode::SessionEnded => 1,
            CloseCode::Removed => 2,
            CloseCode::ProtocolViolation => 3,
            CloseCode::Refused => 4,
            CloseCode::TooSlow => 5,
            CloseCode::Other(n) => n,
        }
    }

    /// Inverse of [`CloseCode::to_code`].
    pub fn from_code(code: u64) -> Self {
        match code {
            0 => CloseCode::Left,
            1 => CloseCode::SessionEnded,
            2 => CloseCode::Removed,
            3 => CloseCode::ProtocolViolation,
            4 => CloseCode::Refused,
            5 => CloseCode::TooSlow,
            n => CloseCode::Other(u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }

    pub(crate) fn varint(self) -> quinn::VarInt {
        quinn::VarInt::from_u32(self.to_code())
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseCode::Left => f.write_str("left"),
            CloseCode::SessionEnded => f.write_str("session ended"),
            CloseCode::Removed => f.write_str("removed by the host"),
            CloseCode::ProtocolViolation => f.write_str("protocol violation"),
            CloseCode::Refused => f.write_str("refused"),
            CloseCode::TooSlow => {
                f.write_str("fell too far behind (the connection could not keep up)")
            }
            CloseCode::Other(n) => write!(f, "code {n}"),
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// This side closed it, with this code.
    Local(CloseCode),
    /// The peer closed it, with this code.
    Remote(CloseCode),
    /// The peer broke the framing and was dropped.
    ProtocolViolation(String),
    /// Nothing was heard from the peer for the idle timeout.
    TimedOut,
    /// The transport failed otherwise.
    Lost(String),
    /// The connection went through a relay, and the link to the relay
    /// ended (the relay restarted or stopped, or stopped answering).
    RelayLost(String),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Local(code) => write!(f, "closed here ({code})"),
            CloseReason::Remote(CloseCode::Left) => f.write_str("the other side left"),
            CloseReason::Remote(CloseCode::SessionEnded) => {
                f.write_str("the host ended the session")
            }
            CloseReason::Remote(CloseCode::Removed) => f.write_str("removed by the host"),
            CloseReason::Remote(CloseCode::TooSlow) => f.write_str(
                "the host dropped this connection: it fell too far behind (a slow or stalled link)",
            ),
            CloseReason::Remote(CloseCode::ProtocolViolation) => {
                f.write_str("the other side dropped the connection: protocol violation")
            }
            CloseReason::Remote(code) => write!(f, "closed by the other side ({code})"),
            CloseReason::ProtocolViolation(detail) => {
                write!(f, "dropped the other side: protocol violation ({detail})")
            }
            CloseReason::TimedOut => f.write_str("connection timed out"),
            CloseReason::Lost(detail) => write!(f, "connection lost: {detail}"),
            CloseReason::RelayLost(detail) => {
                write!(f, "the connection through the relay ended: {detail}")
            }
        }
    }
}

impl CloseReason {
    pub(crate) fn from_connection_error(err: &quinn::ConnectionError) -> Self {
        match err {
            quinn::ConnectionError::ApplicationClosed(close) => {
                CloseReason::Remote(CloseCode::from_code(close.error_code.into_inner()))
            }
            quinn::ConnectionError::LocallyClosed => CloseReason::Local(CloseCode::Left),
            quinn::ConnectionError::TimedOut => CloseReason::TimedOut,
            other => CloseReason::Lost(other.to_string()),
        }
    }
}

/// Who is at the other end of a [`PeerConnection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// On the host: the guest's participant id. On a guest: its own id, as
    /// given by the host's `Welcome`.
    pub participant_id: u64,
    /// The guest's display name (sanitised by the host). On a guest: its own name.
    pub name: String,
    /// The guest's colour. On a guest: its own colour.
    pub color: String,
    /// How the connection travels.
    pub path: Path,
    /// The peer's address as this side sees it (the relay's, if relayed).
    pub remote_addr: SocketAddr,
}

/// Why a message could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The message is over [`MAX_FRAME_LEN`]; nothing was sent and the
    /// connection stays open.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length of the refused message.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The connection is closed.
    #[error("connection closed: {0}")]
    Closed(CloseReason),
}

enum Outgoing {
    Message(Vec<u8>),
    Close(CloseCode, oneshot::Sender<()>),
}

struct Shared {
    conn: quinn::Connection,
    reason: Mutex<Option<CloseReason>>,
    /// Bytes of messages queued and not yet written to the stream.
    queued: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// Records why the connection ended; the first reason wins.
    fn record(&self, reason: CloseReason) {
        if let Ok(mut slot) = self.reason.lock() {
            if slot.is_none() {
                tracing::debug!(remote = %self.conn.remote_address(), %reason, "connection closed");
                *slot = Some(reason);
            }
        }
    }

    fn reason(&self) -> Option<CloseReason> {
        let recorded = self.reason.lock().ok().and_then(|slot| slot.clone());
        recorded.or_else(|| {
            self.conn
                .close_reason()
                .map(|e| CloseReason::from_connection_error(&e))
        })
    }

    fn close(&self, code: CloseCode, detail: &str) {
        self.record(CloseReason::Local(code));
        self.conn.close(code.varint(), detail.as_bytes());
    }
}

/// A cloneable handle that queues messages on a [`PeerConnection`].
#[derive(Clone)]
pub struct MessageSender {
    tx: mpsc::Sender<Outgoing>,
    shared: Arc<Shared>,
}

impl MessageSender {
    /// Queues a message, waiting while the outgoing queue is full.
    pub async fn send(&self, msg: Vec<u8>) -> Result<(), SendError> {
        check_len(&msg)?;
        let n = msg.len();
        self.count(n, true);
        let sent = self.tx.send(Outgoing::Message(msg)).await;
        sent.map_err(|_| {
            self.count(n, false);
            self.closed()
        })
    }

    /// Queues a message if there is room now.
    pub fn try_send(&self, msg: Vec<u8>) -> Result<(), TrySendError> {
        check_len(&msg).map_err(TrySendError::Send)?;
        let n = msg.len();
        self.count(n, true);
        self.tx.try_send(Outgoing::Message(msg)).map_err(|e| {
            self.count(n, false);
            match e {
                mpsc::error::TrySendError::Full(Outgoing::Message(m)) => TrySendError::Full(m),
                _ => TrySendError::Send(self.closed()),
            }
        })
    }

    /// Bytes of messages queued on this connection and not yet written to
    /// the network (a peer that stops reading makes this grow).
    pub fn queued_bytes(&self) -> usize {
        self.shared
            .queued
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count(&self, n: usize, add: bool) {
        let q = &self.shared.queued;
        if add {
            q.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        } else {
            q.fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn closed(&self) -> SendError {
        SendError::Closed(
            self.shared
                .reason()
                .unwrap_or(CloseReason::Local(CloseCode::Left)),
        )
    }
}

/// Why [`MessageSender::try_send`] did not queue a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrySendError {
    /// The outgoing queue is full; the message is handed back.
    #[error("outgoing queue full")]
    Full(Vec<u8>),
    /// As for [`MessageSender::send`].
    #[error(transparent)]
    Send(SendError),
}

fn check_len(msg: &[u8]) -> Result<(), SendError> {
    if msg.len() > MAX_FRAME_LEN {
        return Err(SendError::TooLarge {
            len: msg.len(),
            max: MAX_FRAME_LEN,
        });
    }
    Ok(())
}

/// An authenticated connection to one peer, carrying opaque messages in
/// order, both ways.
///
/// Dropping it closes the connection at once with [`CloseCode::Left`]
/// (queued messages may be lost); [`PeerConnection::close`] flushes first.
pub struct PeerConnection {
    info: PeerInfo,
    sender: MessageSender,
    incoming: mpsc::Receiver<Vec<u8>>,
    shared: Arc<Shared>,
    /// Things that must live as long as the connection (the guest's quinn
    /// endpoint, the host's guest slot).
    _keep: Vec<Box<dyn Any + Send + Sync>>,
}

impl fmt::Debug for PeerConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerConnection")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl PeerConnection {
    /// Wraps the handshake's stream pair and starts the I/O tasks. Must be
    /// called inside a tokio runtime.
    pub(crate) fn start(
        info: PeerInfo,
        conn: quinn::Connection,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        keep: Vec<Box<dyn Any + Send + Sync>>,
    ) -> Self {
        let shared = Arc::new(Shared {
            conn,
            reason: Mutex::new(None),
            queued: std::sync::atomic::AtomicUsize::new(0),
        });
        let (out_tx, out_rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (in_tx, in_rx) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(write_loop(send, out_rx, shared.clone()));
        tokio::spawn(read_loop(recv, in_tx, shared.clone()));
        PeerConnection {
            info,
            sender: MessageSender {
                tx: out_tx,
                shared: shared.clone(),
            },
            incoming: in_rx,
            shared,
            _keep: keep,
        }
    }

    /// Ends this connection as soon as the relay link it travels over
    /// ends, with [`CloseReason::RelayLost`] saying why (rather than waiting
    /// for the idle timeout and calling it a time-out).
    pub(crate) fn watch_relay(&self, socket: Arc<super::relay_client::RelaySocket>) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            tokio::select! {
                why = socket.closed() => {
                    shared.record(CloseReason::RelayLost(why));
                    shared.conn.close(CloseCode::Left.varint(), b"relay lost");
                }
                _ = shared.conn.closed() => {}
            }
        });
    }

    /// Who is at the other end.
    pub fn info(&self) -> &PeerInfo {
        &self.info
    }

    /// Direct or relayed.
    pub fn path(&self) -> Path {
        self.info.path
    }

    /// Current round-trip estimate of the QUIC connection.
    pub fn rtt(&self) -> Duration {
        self.shared.conn.rtt()
    }

    /// A cloneable handle for sending from other tasks.
    pub fn sender(&self) -> MessageSender {
        self.sender.clone()
    }

    /// Queues a message (see [`MessageSender::send`]).
    pub async fn send(&self, msg: Vec<u8>) -> Result<(), SendError> {
        self.sender.send(msg).await
    }

    /// The next message, in order; `None` once the connection has ended
    /// (then [`PeerConnection::close_reason`] says why). Cancel-safe.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.incoming.recv().await
    }

    /// Why the connection ended, or `None` while it is open.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.reason()
    }

    /// Waits until the connection has ended, and says why.
    pub async fn closed(&self) -> CloseReason {
        let err = self.shared.conn.closed().await;
        self.shared
            .reason()
            .unwrap_or_else(|| CloseReason::from_connection_error(&err))
    }

    /// Sends everything queued so far, waits (up to
    /// [`GRACEFUL_CLOSE_TIMEOUT`]) for the peer to acknowledge it, then
    /// closes with `code`.
    pub async fn close(self, code: CloseCode) {
        let (done_tx, done_rx) = oneshot::channel();
        let flush = async {
            if self
                .sender
                .tx
                .send(Outgoing::Close(code, done_tx))
                .await
                .is_ok()
            {
                let _ = done_rx.await;
            }
        };
        // Bounded even if the peer stopped reading and the queue is full.
        let _ = tokio::time::timeout(GRACEFUL_CLOSE_TIMEOUT * 2, flush).await;
        self.shared.close(code, "");
    }

    /// Closes at once with `code` and a short human-readable detail (for
    /// example why a message could not be decoded); queued messages may be
    /// lost.
    pub fn close_now(&self, code: CloseCode, detail: &str) {
        self.shared.close(code, detail);
    }
}

impl Drop for PeerConnection {
    fn drop(&mut self) {
        if self.shared.conn.close_reason().is_none() {
            self.shared.close(CloseCode::Left, "");
        }
    }
}

async fn write_loop(
    mut send: quinn::SendStream,
    mut rx: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
) {
    while let Some(item) = rx.recv().await {
        match item {
            Outgoing::Message(msg) => {
                let written = write_frame(&mut send, &msg, MAX_FRAME_LEN).await;
                shared
                    .queued
                    .fetch_sub(msg.len(), std::sync::atomic::Ordering::Relaxed);
                if let Err(err) = written {
                    note_stream_failure(&shared, err);
                    return;
                }
            }
            Outgoing::Close(code, done) => {
                let _ = send.finish();
                let _ = tokio::time::timeout(GRACEFUL_CLOSE_TIMEOUT, send.stopped()).await;
                shared.close(code, "");
                let _ = done.send(());
                return;
            }
        }
    }
}

async fn read_loop(mut recv: quinn::RecvStream, tx: mpsc::Sender<Vec<u8>>, shared: Arc<Shared>) {
    loop {
        match read_frame(&mut recv, MAX_FRAME_LEN).await {
            Ok(Some(msg)) => {
                if tx.send(msg).await.is_err() {
                    // Nobody is listening any more.
                    return;
                }
            }
            Ok(None) => {
                // The peer finished its side: a graceful close follows.
                match tokio::time::timeout(GRACEFUL_CLOSE_TIMEOUT, shared.conn.closed()).await {
                    Ok(err) => shared.record(CloseReason::from_connection_error(&err)),
                    Err(_) => {
                        shared.record(CloseReason::Remote(CloseCode::Left));
                        shared.conn.close(CloseCode::Left.varint(), b"");
                    }
                }
                return;
            }
            Err(err) => {
                note_stream_failure(&shared, err);
                return;
            }
        }
    }
}

/// Classifies a failed read or write: either the connection is gone (keep
/// its reason) or the peer misbehaved on a live connection (drop it).
fn note_stream_failure(shared: &Shared, err: FrameError) {
    if let Some(conn_err) = shared.conn.close_reason() {
        shared.record(CloseReason::from_connection_error(&conn_err));
        return;
    }
    let detail = match &err {
        FrameError::Io(io) => format!("message stream failed: {io}"),
        other => other.to_string(),
    };
    tracing::warn!(remote = %shared.conn.remote_address(), %detail, "dropping peer");
    shared.record(CloseReason::ProtocolViolation(detail.clone()));
    shared
        .conn
        .close(CloseCode::ProtocolViolation.varint(), detail.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_round_trip() {
        for code in [
            CloseCode::Left,
            CloseCode::SessionEnded,
            CloseCode::Removed,
            CloseCode::ProtocolViolation,
            CloseCode::Refused,
            CloseCode::TooSlow,
            CloseCode::Other(77),
        ] {
            assert_eq!(CloseCode::from_code(code.to_code() as u64), code);
        }
    }

    #[test]
    fn reasons_read_well() {
        assert_eq!(
            CloseReason::Remote(CloseCode::SessionEnded).to_string(),
            "the host ended the session"
        );
        assert_eq!(
            CloseReason::ProtocolViolation("frame of 9 bytes exceeds the limit of 8 bytes".into())
                .to_string(),
            "dropped the other side: protocol violation (frame of 9 bytes exceeds the limit of 8 bytes)"
        );
    }
}
