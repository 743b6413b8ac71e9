//! Every limit, interval and timeout of the `session` layer, in one place
//! (as `net::limits` is for the network layer). Nothing here does I/O.

use std::time::Duration;

/// How often the host checks shared files on disk for changes by other
/// programs (and how often its runtime wakes the core to do so).
pub const WATCH_INTERVAL: Duration = Duration::from_millis(300);

/// Change messages larger than this (bytes) are applied on a worker
/// thread. A keystroke's message is a few hundred bytes and costs about
/// 0.3 ms to apply, so it stays inline (a worker's round trip would only
/// add latency); this much automerge change is a paste of tens of thousands
/// of chars or a backlog, which can cost seconds.
pub const OFF_THREAD_CHANGE_BYTES: usize = 64 * 1024;

/// Longest stretch [`crate::session::SessionCore::poll`] spends on network
/// events before it returns to the driver (and wakes it to come back):
/// under a flood of remote edits the driver still draws frames and answers
/// its own commands between slices. Well under a frame at 60 Hz.
pub const POLL_SLICE: Duration = Duration::from_millis(8);

/// Most bytes of change messages from one peer for one file merged into
/// one apply (a backlog): automerge applies a batch for little more than
/// one change (benches/README.md, "Speed under load"), and a batch this
/// size stays well under [`OFF_THREAD_CHANGE_BYTES`], so it is applied in
/// place within a slice instead of making the document read-only for a
/// worker.
pub const MAX_BATCH_BYTES: usize = 32 * 1024;

/// Bytes of one peer's messages that may wait for the session core at once
/// (taken from the network, not yet handled). Past it that peer's stream is
/// not read, and QUIC's flow control slows the sender: a flood waits in
/// the sender's own queue, not in ours. A few dozen batches of keystrokes;
/// a message larger than this is still taken, alone.
pub const INBOUND_CREDIT_BYTES: usize = 256 * 1024;

/// A guest's local changes are held (and then sent as one message per
/// file) while more than this many bytes it sent wait in its queue
/// towards the host: the host, or the network, is slower than its typing.
pub const COALESCE_ABOVE_BYTES: usize = 64 * 1024;

/// Room left in a frame for the rest of an `Opened` message around the
/// text and CRDT state.
pub const OPENED_OVERHEAD: usize = 64 * 1024;

/// Past this many bytes of changes since the cached snapshot, a new one is
/// made (on a worker) for the next guest to open the file.
pub const SNAPSHOT_REFRESH_BYTES: usize = 256 * 1024;

/// Most files a guest's quick open gets (their paths stay well under the
/// largest message).
pub const MAX_LISTED_FILES: usize = 100_000;

/// How long listing the files may take before what was found is sent.
pub const LIST_FILES_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutting down waits for peers to take their last messages.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// Worker threads running document jobs at once (building CRDT state,
/// applying big changes, snapshots, file walks); more jobs wait their turn.
/// The jobs are CPU-bound: threads beyond the cores only share them, and
/// without a cap a burst of opens would start a thread each.
pub const MAX_WORKER_THREADS: usize = 4;

/// Bytes queued for one peer past which it is dropped (default 64 MiB; the
/// `LSHED_PEER_BACKLOG_MIB` environment variable changes it, for tests).
pub fn max_peer_backlog() -> usize {
    std::env::var("LSHED_PEER_BACKLOG_MIB")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(64)
        .saturating_mul(1024 * 1024)
}
