//! Collaboration sessions: share a folder, join a shared folder, and keep
//! every open file in sync between the host and its guests.
//!
//! # Shape
//!
//! - [`SessionCore`] (`core.rs`) is the state machine of one session, host
//!   or guest. It is **sans-I/O** and runs on the *driver* thread — the UI
//!   thread in the editor, the stdin loop in headless mode — because the
//!   documents live there: it reaches them through the [`DocStore`] trait
//!   the driver implements, and never owns a buffer. Every method returns
//!   nothing; results are queued as [`SessionEvent`]s ([`SessionCore::drain_events`])
//!   for the UI and as [`NetCommand`]s for the network.
//! - [`runtime::SessionRuntime`] (`runtime.rs`) is the I/O half: a
//!   background std thread running a current-thread tokio runtime that owns
//!   the QUIC endpoint and the [`crate::net::PeerConnection`]s. It turns
//!   network happenings into [`NetEvent`]s on a std mpsc queue and calls the
//!   driver's `notify` so it wakes and calls [`SessionCore::poll`]; it takes
//!   [`NetCommand`]s over a tokio unbounded channel. [`SessionCore::host`] /
//!   [`SessionCore::join`] start one and own it; shutting down (end, leave,
//!   drop) closes connections gracefully and joins the thread.
//!   Tests drive a core without a runtime ([`SessionCore::new_host`],
//!   [`SessionCore::new_guest`], [`SessionCore::take_commands`]).
//! - [`protocol`]: the wire messages.
//! - [`headless`]: the JSON-lines driver behind `lshed share/join --headless`
//!   (documented there and in `docs/headless.md`).
//! - `diff.rs`: old text → new text as [`crate::doc::Change`]s, for merging
//!   changes made on the host's disk by other programs.
//! - `work.rs`: worker threads for document work too slow for the driver
//!   (building, loading, applying large change messages); the core
//!   collects their results in [`SessionCore::poll`].
//!
//! # States
//!
//! Host: `Inactive → Sharing… → Sharing → Inactive` (end). Guest:
//! `Inactive → Joining… → Joined → Inactive` (leave, removed, session ended,
//! connection lost). [`SessionState::label`] gives the status-line names.
//!
//! # Guests keep nothing on disk
//!
//! A guest's files exist only as documents in its driver's memory (adopted
//! through [`DocStore::adopt`]); no temporary file or folder is ever
//! written, so leaving or an ended session leaves nothing behind to remove.
//!
//! May depend on: `doc`, `net`, `workspace`, `config`, tokio, serde,
//! similar. Never on `editor`, `tui`, ratatui or crossterm.

mod core;
mod diff;
pub mod headless;
pub mod limits;
pub mod protocol;
pub mod runtime;
mod work;

use std::net::{IpAddr, Ipv4Addr};

pub use self::core::{renamed_path, SessionCore, OFF_THREAD_CHANGE_BYTES, WATCH_INTERVAL};
pub use diff::diff_text;
pub use protocol::{DirEntry, ParticipantId};
pub use runtime::{NetCommand, NetEvent, PendingId, SessionRuntime};

use crate::config::{ConnectionMode, GuestApproval};
use crate::doc::{Change, Document, StablePos};
use crate::net::{ConnectOptions, HostOptions, RelayAddr};

/// Who we are in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Display name.
    pub name: String,
    /// Cursor colour (any string the UI understands, e.g. `#e06c75`).
    pub color: String,
}

/// The display name to offer by default: git's `user.name`, else `$USER`,
/// else `guest`.
pub fn default_display_name() -> String {
    let git = std::process::Command::new("git")
        .args(["config", "--get", "user.name"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    if let Ok(out) = git {
        if out.status.success() {
            let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !name.is_empty() {
                return name;
            }
        }
    }
    match std::env::var("USER") {
        Ok(user) if !user.trim().is_empty() => user.trim().to_string(),
        _ => "guest".to_string(),
    }
}

/// How to start a session; `Default` gives the product values.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Host: address to listen on (`0.0.0.0`: every interface; the link
    /// lists the outward address and loopback).
    pub bind_ip: IpAddr,
    /// Host: listener tunables (ports, guest cap, timeouts).
    pub host: HostOptions,
    /// Guest: connect tunables.
    pub connect: ConnectOptions,
    /// Host: ask before admitting each guest, or admit everyone with the link.
    pub approval: GuestApproval,
    /// Direct, relay or auto (see the README's "Connection modes").
    pub connection_mode: ConnectionMode,
    /// Host: the relay to register with (`auto` and `relay` modes).
    pub relay: Option<RelayAddr>,
    /// Host: the token a private relay wants.
    pub relay_token: Option<String>,
    /// Host: why the config's relay line cannot be used, if it cannot (a
    /// guest does not need it, so only sharing reports it).
    pub relay_config_error: Option<String>,
}

impl SessionOptions {
    /// Options from the user's config: approval, mode, relay, proxy. A
    /// relay line that does not parse is kept as `relay_config_error`, for
    /// the host to report when it shares.
    pub fn from_config(config: &crate::config::Config) -> Result<Self, String> {
        let (relay, relay_config_error) = match config.relay.as_deref() {
            Some(text) => match text.parse::<RelayAddr>() {
                Ok(relay) => (Some(relay), None),
                Err(e) => (None, Some(format!("config key relay = {text:?}: {e}"))),
            },
            None => (None, None),
        };
        let mut options = SessionOptions {
            approval: config.guest_approval,
            connection_mode: config.connection_mode,
            relay,
            relay_token: config.relay_token.clone(),
            relay_config_error,
            ..SessionOptions::default()
        };
        if let Some(proxy) = &config.proxy {
            options.connect.relay.proxy = Some(proxy.clone());
        }
        Ok(options)
    }
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            host: HostOptions::default(),
            connect: ConnectOptions::default(),
            approval: GuestApproval::Prompt,
            connection_mode: ConnectionMode::Auto,
            relay: None,
            relay_token: None,
            relay_config_error: None,
        }
    }
}

/// The driver's documents, as the session core sees them. Implemented by
/// the editor (its buffers) and by the headless driver.
pub trait DocStore {
    /// The document for a shared path ('/'-separated, relative to the
    /// shared root), if the driver has it open.
    fn doc_mut(&mut self, path: &str) -> Option<&mut Document>;
    /// Host only: open `path` (already confined by the core) for a guest,
    /// loading it from disk into a buffer the host user need not see; make
    /// it shared (`Document::share`). Errors are user-facing sentences.
    fn open_for_peer(&mut self, path: &str) -> Result<&mut Document, String>;
    /// Guest only: a file the host sent us; create (or replace) the buffer.
    fn adopt(&mut self, path: &str, doc: Document, read_only: bool);
    /// The text of `path` changed by remote edits (already applied to the
    /// doc): remap selections, re-highlight.
    fn remote_changed(&mut self, path: &str, changes: &[Change]);
    /// Host only: write `path` to disk atomically (`workspace::save_atomic`)
    /// and mark it saved.
    fn save(&mut self, path: &str) -> Result<(), String>;
    /// Shared path `from` (a file, or a folder and everything under it) is
    /// now `to` (host: already renamed on disk): buffers under it follow,
    /// keeping their documents. The default does nothing.
    fn renamed(&mut self, from: &str, to: &str) {
        let _ = (from, to);
    }
    /// Host only: another program changed `path` on disk; apply `changes`
    /// (in order, each on the text the previous left) as a local edit. The
    /// default applies them with `Document::apply_local` and reports them
    /// through [`DocStore::remote_changed`] so selections are remapped; the
    /// core then sends them to guests.
    fn apply_disk_change(&mut self, path: &str, changes: &[Change]) {
        if let Some(doc) = self.doc_mut(path) {
            doc.break_undo_group();
            doc.apply_local(changes);
            doc.break_undo_group();
        }
        self.remote_changed(path, changes);
    }
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// No session.
    Inactive,
    /// Host: starting to listen.
    Starting,
    /// Host: listening; guests may join.
    Sharing,
    /// Guest: connecting / waiting for approval / waiting for the welcome.
    Joining,
    /// Guest: in the session.
    Joined,
}

impl SessionState {
    /// The status-line name.
    pub fn label(self) -> &'static str {
        match self {
            SessionState::Inactive => "Inactive",
            SessionState::Starting => "Sharing…",
            SessionState::Sharing => "Sharing",
            SessionState::Joining => "Joining…",
            SessionState::Joined => "Joined",
        }
    }
}

/// A participant, for the participants panel and for drawing cursors.
#[derive(Debug, Clone, PartialEq)]
pub struct Participant {
    /// Id (host: 0).
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
    /// Colour.
    pub color: String,
    /// The file they are in.
    pub file: Option<String>,
    /// They may not edit (a guest made read-only; the whole session's flag
    /// is [`SessionCore::session_read_only`]).
    pub read_only: bool,
    /// The host.
    pub is_host: bool,
    /// Whom they follow.
    pub following: Option<ParticipantId>,
    /// Anchor and head in `file` (resolve with `Document::resolve`).
    pub cursor: Option<(StablePos, StablePos)>,
    /// How this guest reaches the host (known to the host only).
    pub path: Option<crate::net::Path>,
}

/// Something for the UI to show or do.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// Host: someone with the link asks to join (answer with `approve`).
    GuestWantsToJoin {
        /// Answer with this.
        pending: PendingId,
        /// Their name.
        name: String,
    },
    /// Someone joined.
    ParticipantJoined {
        /// Id.
        id: ParticipantId,
        /// Name.
        name: String,
    },
    /// Someone left.
    ParticipantLeft {
        /// Id.
        id: ParticipantId,
        /// Name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Host: sharing; here is the invite link.
    Shared {
        /// The invite link.
        link: String,
        /// The same link on the relay's join page (opens in a browser), if
        /// the relay serves one.
        url: Option<String>,
    },
    /// Guest: joined.
    Joined {
        /// The host's name.
        host_name: String,
        /// Direct or relayed.
        path_kind: crate::net::Path,
    },
    /// Guest: the join failed (distinct message per cause).
    JoinFailed {
        /// For the join prompt.
        message: String,
    },
    /// Guest: a file's text arrived (already adopted into the store): show
    /// it. The document stays read-only ("loading…") until `FileReady`.
    FileOpened {
        /// File.
        path: String,
        /// Whether we may not edit it even once ready.
        read_only: bool,
    },
    /// Guest: a file's shared state is attached: it is live (editable
    /// unless `read_only`).
    FileReady {
        /// File.
        path: String,
        /// Whether we may not edit it.
        read_only: bool,
    },
    /// Guest: the shared folder's files arrived (answer to
    /// `SessionCore::list_files`).
    FileList {
        /// Files, '/'-separated.
        paths: Vec<String>,
        /// More files exist than were listed.
        truncated: bool,
    },
    /// Guest: a folder listing arrived.
    DirListing {
        /// Folder.
        path: String,
        /// Entries.
        entries: Vec<DirEntry>,
    },
    /// Guest: the host saved a file we asked to save.
    Saved {
        /// File.
        path: String,
    },
    /// Guest: entries were created/renamed/deleted on the host.
    TreeChanged {
        /// Affected paths.
        paths: Vec<String>,
    },
    /// A remote edit changed a file (also reported to the store).
    Changed {
        /// File.
        path: String,
    },
    /// Guest: whether we may edit changed (session or us).
    ReadOnlyChanged {
        /// May we not edit now?
        read_only: bool,
    },
    /// Guest: the host removed us.
    Removed,
    /// The session is over (host ended it, we ended it, connection lost).
    SessionEnded {
        /// For the user.
        message: String,
    },
    /// A request failed or a peer misbehaved: a notification.
    Error {
        /// For the user.
        message: String,
    },
    /// The followed participant moved: open `path` and show `pos`.
    Follow {
        /// File.
        path: String,
        /// Their cursor head, if known.
        pos: Option<StablePos>,
    },
}
