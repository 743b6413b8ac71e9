//! The session state machine, host and guest, sans-I/O.
//!
//! [`SessionCore`] runs on the driver thread, reaches documents through
//! [`DocStore`], and talks to the network only by queueing [`NetCommand`]s
//! (sent to its [`SessionRuntime`] at the end of every call, or collected
//! by tests with [`SessionCore::take_commands`]) and by receiving
//! [`NetEvent`]s ([`SessionCore::poll`] / [`SessionCore::handle_net`]).
//!
//! # Host
//!
//! The host is the hub: a guest's changes are applied to the host's
//! document and forwarded, as the same bytes, to every *other* guest that
//! has the file open; the host's own changes go to every viewer. Each guest
//! gets a file with `Opened` (its text, sent at once), then `OpenedState`
//! (the cached CRDT snapshot, followed by one `Sync` of the changes made
//! since it, if any), then every later change of it in order on the same
//! stream. The guest adopts a read-only
//! `Document::loading` at `Opened` (`SessionEvent::FileOpened`), and `poll`
//! returns right after it (waking the driver again) so the text is drawn at
//! once; the state is loaded and attached later (`SessionEvent::FileReady`).
//! Measured for 1 MB: text at the guest ~10 ms after `open`, editable
//! ~0.35 s later (host sharing already) or ~0.76 s (first open: the host
//! builds the state first).
//!
//! # Work off the driver thread
//!
//! The driver is the UI thread, so document work that takes long runs on
//! worker threads (`work.rs`), and the core takes the results in at `poll`
//! (the worker wakes the driver through the runtime's `notify`; drivers
//! without a runtime call [`SessionCore::wait_for_doc_work`]):
//!
//! - Host, first guest opening a file: the CRDT state is built and saved
//!   from a clone of the rope (about 0.4 s per MB), then attached with
//!   `Attach::KeepLocalText`. The host keeps editing meanwhile (rope only);
//!   those edits become one local change, sent to every viewer as a `Sync`
//!   right after their snapshot. Guests opening the file meanwhile get its
//!   text at once and wait for the same build. For 1 MB the host's driver
//!   is blocked ~2 ms instead of ~0.8 s (`benches/session.rs`).
//! - Guest: the snapshot is loaded (0.3–0.5 s per MB), then attached with
//!   `Attach::TakeSharedText`; the document stays `loading` meanwhile.
//! - Change messages over [`OFF_THREAD_CHANGE_BYTES`] (a big paste, a
//!   backlog) are applied to a `Document::detach_for_sync` copy; the
//!   visible document stays, read-only, until it is reattached. Smaller
//!   ones are applied inline: a keystroke costs about 0.3 ms, less than a
//!   trip to a worker. The host forwards a message once it is applied.
//!
//! While a path's work is pending, messages for it (changes, and on the
//! host opens and saves that must see the detached document's result) are
//! queued and handled in arrival order once it is done, so per-file order
//! holds for the core and for the guests it forwards to. A result that
//! comes back after its file was closed or the session ended is dropped.
//! - Host, a guest opening a file already shared: no snapshot is made for
//!   it; it gets the cached one and the changes since (see
//!   `send_cached_snapshot`), and once those pass
//!   [`SNAPSHOT_REFRESH_BYTES`] a new snapshot is saved on a worker from a
//!   copy of the state, for the next guest.
//!
//! # Misbehaving guests
//!
//! - A message that does not decode, or change bytes the CRDT rejects:
//!   the guest is dropped (`CloseCode::ProtocolViolation`); nobody else
//!   is affected. A correct client never sends these.
//! - A path that escapes the shared folder (`..`, absolute, symlink out),
//!   names something the tree hides (`.git`, `.gitignore`d,
//!   `.lshedignore`d), or is not open: answered with `Error`, the guest
//!   stays. A person can type such a path (the headless protocol takes
//!   paths verbatim), so it is a refusal, not an attack.
//! - An edit, save, create, rename or delete by a read-only guest (or in a
//!   read-only session): refused — `EditRefused` for edits (the guest then
//!   reopens the file, which drops its local edit), `Error` for the rest.
//!   Edits in flight when the host flips read-only meet the same fate.
//!
//! # Disk changes by other programs (host)
//!
//! Every shared file's mtime and size are checked every [`WATCH_INTERVAL`]
//! (a `Tick` from the runtime; a handful of `stat`s, so plain polling
//! rather than inotify, which would need a crate and per-directory watch
//! limits). A change is merged once mtime/size have been stable for one
//! more tick (debounce: a formatter writing in steps is seen once). If the
//! new content equals what we last saved or loaded, nothing happens (our
//! own save). Otherwise, if the live document still equals that last known
//! disk text, the line diff is applied as a local edit of the host
//! ([`DocStore::apply_disk_change`]) and sent to guests. If the document
//! has unsaved session edits as well, a three-way merge (last disk text as
//! the base) moves the disk's line changes onto the live text, keeping
//! both where they touch the same place. A driver that saves a shared file
//! itself calls [`SessionCore::saved_locally`] so the watcher knows.
//!
//! May depend on: `doc`, `net`, `workspace`, `config`, and the sibling modules.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::SystemTime;

use super::protocol::{
    decode_guest, decode_host, encode_msg, DirEntry, GuestToHost, HostToGuest, ParticipantId,
    ParticipantInfo, WireCursor,
};
use super::runtime::{NetCommand, NetEvent, Notify, PendingId, SessionRuntime};
use super::work::{Done, Job, Output, Workers};
use super::{
    diff::diff_text, DocStore, Participant, Profile, SessionEvent, SessionOptions, SessionState,
};
use crate::config::GuestApproval;
use crate::doc::{ActorId, Assoc, Attach, Change, DocError, Document, StablePos};
use crate::net::limits::{HOST_PARTICIPANT_ID, MAX_FRAME_LEN};
use crate::net::{CloseCode, CloseReason, InviteLink, Path};
use crate::workspace;

pub use super::limits::{OFF_THREAD_CHANGE_BYTES, WATCH_INTERVAL};
use super::limits::{OPENED_OVERHEAD, SNAPSHOT_REFRESH_BYTES};

/// One shared file on the host.
#[derive(Debug, Default)]
struct SharedFile {
    /// Guests that have it open.
    viewers: BTreeSet<ParticipantId>,
    /// The text we last loaded or saved (what we believe is on disk).
    disk_text: Option<String>,
    /// mtime and size of that version.
    disk_stamp: Option<(Option<SystemTime>, u64)>,
    /// A differing stamp seen at the last tick (debounce).
    seen: Option<(Option<SystemTime>, u64)>,
    /// The last CRDT snapshot and the history heads it is of: a guest
    /// opening the file later gets it plus one `Sync` of the changes made
    /// since, instead of a `save_crdt` (about 0.2 s per MB) on the host's
    /// UI thread. Refreshed on a worker when those changes grow.
    snapshot: Option<Snapshot>,
    /// Which guest each automerge actor's changes came from first. automerge
    /// changes are not signed, so a guest could otherwise send changes
    /// under the host's or another guest's actor id.
    actors: HashMap<ActorId, ParticipantId>,
    /// The host's own actor for this file, known before its state exists
    /// (while it is being built, or detached for a large message).
    host_actor: Option<ActorId>,
}

/// The document work a path waits for (see `work.rs`).
#[derive(Debug)]
struct Pending {
    job: u64,
    kind: PendingKind,
}

#[derive(Debug)]
enum PendingKind {
    /// Host: CRDT state being built; these guests wait for its snapshot.
    Build { waiters: Vec<ParticipantId> },
    /// Guest: the host's snapshot loading.
    Load,
    /// A large change message from `from` (the host, at a guest) being
    /// applied to the detached document.
    Apply { from: ParticipantId },
}

/// A saved CRDT state, shared by every guest that opens the file.
#[derive(Debug, Clone)]
struct Snapshot {
    bytes: std::sync::Arc<Vec<u8>>,
    heads: Vec<crate::doc::ChangeHash>,
}

/// A message about a path whose work is pending, kept to be handled in
/// arrival order once it is done.
#[derive(Debug)]
enum Deferred {
    /// Change bytes (host: from a guest, already checked; guest: from the host).
    Sync {
        from: ParticipantId,
        changes: Vec<u8>,
    },
    /// Host: a guest's request.
    FromGuest(ParticipantId, GuestToHost),
    /// Guest: the host's message.
    FromHost(HostToGuest),
}

#[derive(Debug)]
struct HostSide {
    root: PathBuf,
    approval: GuestApproval,
    files: BTreeMap<String, SharedFile>,
    pending: BTreeMap<PendingId, String>,
}

#[derive(Debug, Default)]
struct GuestSide {
    host_name: String,
    /// The shared folder's name, as the host gave it.
    host_folder: String,
    /// Files adopted into the store.
    open: BTreeSet<String>,
    welcomed: bool,
    /// The session is over; ignore what trickles in.
    over: bool,
}

#[derive(Debug)]
enum Role {
    Host(HostSide),
    Guest(GuestSide),
}

/// One session, host or guest. See the module docs.
#[derive(Debug)]
pub struct SessionCore {
    role: Role,
    state: SessionState,
    profile: Profile,
    me: ParticipantId,
    participants: BTreeMap<ParticipantId, Participant>,
    session_read_only: bool,
    link: Option<String>,
    /// The link on the relay's join page (host, when the relay has one).
    link_url: Option<String>,
    path_kind: Option<Path>,
    events: VecDeque<SessionEvent>,
    outbox: Vec<NetCommand>,
    runtime: Option<SessionRuntime>,
    /// `poll` should return now (and be woken again) so the driver can draw.
    yield_to_driver: bool,
    /// Document work running off the driver thread.
    workers: Workers,
    /// Paths whose document is with a worker (or has no CRDT state until
    /// one is done), and what for.
    jobs: HashMap<String, Pending>,
    /// Host: snapshot refreshes running, by path (they hold nothing up).
    snapshot_jobs: HashMap<String, u64>,
    /// Host: file listings being made for guests' quick open, by job.
    list_jobs: HashMap<u64, ParticipantId>,
    /// Messages for those paths, in arrival order.
    deferred: HashMap<String, VecDeque<Deferred>>,
    /// Every rename of a shared path this session, in order: a worker's
    /// result names the path its job started under.
    renames: Vec<(String, String)>,
}

fn participant(id: ParticipantId, name: &str, color: &str, is_host: bool) -> Participant {
    Participant {
        id,
        name: name.to_string(),
        color: color.to_string(),
        file: None,
        read_only: false,
        is_host,
        following: None,
        cursor: None,
        path: None,
    }
}

/// `message` with the shared folder's absolute path (as given, and as
/// resolved) made relative: `/home/ada/project/x` becomes `x`.
fn without_root(message: &str, root: &std::path::Path) -> String {
    let mut roots = vec![root.to_path_buf()];
    if let Ok(real) = root.canonicalize() {
        roots.push(real);
    }
    if let Ok(abs) = std::path::absolute(root) {
        roots.push(abs);
    }
    // Longest first, so a root inside another is not cut in half.
    roots.sort_by_key(|r| std::cmp::Reverse(r.as_os_str().len()));
    let mut out = message.to_string();
    for r in roots {
        let r = r.to_string_lossy().trim_end_matches('/').to_string();
        if r.is_empty() || !r.starts_with('/') {
            continue;
        }
        out = replace_path(&out, &r);
    }
    out
}

/// Replaces `root/` by nothing and a bare `root` by `.`, where `root` is a
/// whole path (`/a/b` is not replaced inside `/a/bc`).
fn replace_path(text: &str, root: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(root) {
        let after = &rest[at + root.len()..];
        let starts_path = at == 0
            || !rest[..at]
                .ends_with(|c: char| !c.is_whitespace() && c != '\'' && c != '"' && c != '(');
        match after.chars().next() {
            Some('/') if starts_path => {
                out.push_str(&rest[..at]);
                rest = &after[1..];
            }
            None | Some(' ' | '\'' | '"' | ':' | ',' | ')' | '\n') if starts_path => {
                out.push_str(&rest[..at]);
                out.push('.');
                rest = after;
            }
            _ => {
                out.push_str(&rest[..at + root.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn info_of(p: &Participant) -> ParticipantInfo {
    ParticipantInfo {
        id: p.id,
        name: p.name.clone(),
        color: p.color.clone(),
        is_host: p.is_host,
        read_only: p.read_only,
        file: p.file.clone(),
        following: p.following,
    }
}

fn decode_cursor(cursor: &Option<WireCursor>) -> Option<(StablePos, StablePos)> {
    let (a, h) = cursor.as_ref()?;
    Some((
        StablePos::from_bytes(a).ok()?,
        StablePos::from_bytes(h).ok()?,
    ))
}

impl SessionCore {
    // ----------------------------------------------------------------- setup

    /// A host core without a runtime (tests, or a driver doing its own I/O):
    /// state `Sharing…` until a [`NetEvent::HostStarted`].
    pub fn new_host(root: PathBuf, profile: Profile, approval: GuestApproval) -> Self {
        let mut participants = BTreeMap::new();
        participants.insert(
            HOST_PARTICIPANT_ID,
            participant(HOST_PARTICIPANT_ID, &profile.name, &profile.color, true),
        );
        let role = Role::Host(HostSide {
            root,
            approval,
            files: BTreeMap::new(),
            pending: BTreeMap::new(),
        });
        let mut core = Self::with(role, SessionState::Starting, profile, HOST_PARTICIPANT_ID);
        core.participants = participants;
        core
    }

    /// A guest core without a runtime: state `Joining…` until
    /// [`NetEvent::Joined`] and the host's welcome.
    pub fn new_guest(profile: Profile) -> Self {
        let role = Role::Guest(GuestSide::default());
        Self::with(role, SessionState::Joining, profile, u64::MAX)
    }

    fn with(role: Role, state: SessionState, profile: Profile, me: ParticipantId) -> Self {
        SessionCore {
            role,
            state,
            profile,
            me,
            participants: BTreeMap::new(),
            session_read_only: false,
            link: None,
            link_url: None,
            path_kind: None,
            events: VecDeque::new(),
            outbox: Vec::new(),
            runtime: None,
            yield_to_driver: false,
            workers: Workers::default(),
            jobs: HashMap::new(),
            snapshot_jobs: HashMap::new(),
            list_jobs: HashMap::new(),
            deferred: HashMap::new(),
            renames: Vec::new(),
        }
    }

    /// Starts sharing `root`: a runtime thread binds the listener. `notify`
    /// is called (from that thread) whenever [`SessionCore::poll`] has work.
    pub fn host(root: PathBuf, profile: Profile, opts: SessionOptions, notify: Notify) -> Self {
        let mut core = Self::new_host(root, profile, opts.approval);
        let rt = SessionRuntime::host(opts, notify);
        core.workers.set_waker(rt.waker());
        core.runtime = Some(rt);
        core
    }

    /// Starts joining the session at `link`.
    pub fn join(link: InviteLink, profile: Profile, opts: SessionOptions, notify: Notify) -> Self {
        let mut core = Self::new_guest(profile.clone());
        let rt = SessionRuntime::join(link, profile, opts, notify);
        core.workers.set_waker(rt.waker());
        core.runtime = Some(rt);
        core
    }

    /// Takes in finished document work and handles every queued network
    /// event (call when `notify` fired).
    pub fn poll(&mut self, store: &mut dyn DocStore) {
        while let Some(done) = self.workers.next(false) {
            self.doc_work_done(done, store);
        }
        loop {
            if std::mem::take(&mut self.yield_to_driver) {
                // A file's text just arrived: let the driver draw it before
                // anything else is handled.
                if let Some(rt) = &self.runtime {
                    rt.wake();
                }
                break;
            }
            let Some(ev) = self.runtime.as_ref().and_then(|rt| rt.try_recv()) else {
                break;
            };
            self.handle_net(ev, store);
        }
        self.flush();
    }

    /// Blocks until every piece of document work started so far (and any
    /// it leads to) is done and taken in. For drivers without a runtime
    /// (tests), which have no `notify` to wake them.
    pub fn wait_for_doc_work(&mut self, store: &mut dyn DocStore) {
        while let Some(done) = self.workers.next(true) {
            self.doc_work_done(done, store);
        }
        self.flush();
    }

    /// Whether `path`'s document is waiting for work on another thread
    /// (its CRDT state being built, loaded, or applying a large message):
    /// it may be read-only for that long, and not for a lasting reason.
    pub fn doc_work_pending(&self, path: &str) -> bool {
        self.jobs.contains_key(path)
    }

    /// Commands queued since the last call (only when there is no runtime).
    pub fn take_commands(&mut self) -> Vec<NetCommand> {
        std::mem::take(&mut self.outbox)
    }

    fn flush(&mut self) {
        if let Some(rt) = &self.runtime {
            for cmd in self.outbox.drain(..) {
                rt.send(cmd);
            }
        }
    }

    // ----------------------------------------------------------- inspection

    /// Where the session is.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Whether the runtime thread has ended and been joined (always true
    /// without a runtime).
    pub fn runtime_stopped(&self) -> bool {
        self.runtime.is_none()
    }

    /// Whether this core is the host's.
    pub fn is_host(&self) -> bool {
        matches!(self.role, Role::Host(_))
    }

    /// Our participant id (host: 0; guest: as welcomed).
    pub fn my_id(&self) -> ParticipantId {
        self.me
    }

    /// A joined guest's name for the session it is in: the host's name
    /// and the shared folder's (`alice's project`).
    pub fn session_label(&self) -> Option<String> {
        let g = self.guest_ref()?;
        (g.welcomed && !g.over).then(|| format!("{}'s {}", g.host_name, g.host_folder))
    }

    /// Direct or relayed, once connected (guest; the host: `None`).
    pub fn path_kind(&self) -> Option<Path> {
        self.path_kind
    }

    /// Everyone in the session, us included, by id.
    pub fn participants(&self) -> Vec<Participant> {
        self.participants.values().cloned().collect()
    }

    /// Host: the invite link, once sharing.
    pub fn invite_link(&self) -> Option<String> {
        self.link.clone()
    }

    /// The invite link on the relay's join page, if the relay serves one.
    pub fn invite_url(&self) -> Option<String> {
        self.link_url.clone()
    }

    /// Whether the whole session is read-only for guests.
    pub fn session_read_only(&self) -> bool {
        self.session_read_only
    }

    /// Guest: may we not edit? (Host: always false.)
    pub fn is_read_only(&self) -> bool {
        match self.role {
            Role::Host(_) => false,
            Role::Guest(_) => {
                self.session_read_only
                    || self.participants.get(&self.me).is_some_and(|p| p.read_only)
            }
        }
    }

    /// Whom we follow.
    pub fn following(&self) -> Option<ParticipantId> {
        self.participants.get(&self.me).and_then(|p| p.following)
    }

    /// Events for the UI since the last call.
    pub fn drain_events(&mut self) -> Vec<SessionEvent> {
        self.events.drain(..).collect()
    }

    // ------------------------------------------------------------ plumbing

    fn push(&mut self, ev: SessionEvent) {
        self.events.push_back(ev);
    }

    fn error(&mut self, message: impl Into<String>) {
        self.push(SessionEvent::Error {
            message: message.into(),
        });
    }

    fn send_to<T: serde::Serialize>(&mut self, to: ParticipantId, msg: &T) {
        match encode_msg(msg) {
            Ok(bytes) if bytes.len() <= MAX_FRAME_LEN => {
                self.outbox.push(NetCommand::Send { to, bytes })
            }
            Ok(bytes) => self.error(format!(
                "a message of {} bytes is over the {} byte limit and was not sent",
                bytes.len(),
                MAX_FRAME_LEN
            )),
            Err(e) => self.error(format!("could not encode a message: {e}")),
        }
    }

    fn send_raw(&mut self, to: ParticipantId, bytes: Vec<u8>) {
        self.outbox.push(NetCommand::Send { to, bytes });
    }

    /// Host: every guest id.
    fn guest_ids(&self) -> Vec<ParticipantId> {
        self.participants
            .keys()
            .copied()
            .filter(|&id| id != HOST_PARTICIPANT_ID)
            .collect()
    }

    fn broadcast(&mut self, msg: &HostToGuest, except: Option<ParticipantId>) {
        let Ok(bytes) = encode_msg(msg) else { return };
        for id in self.guest_ids() {
            if Some(id) != except {
                self.send_raw(id, bytes.clone());
            }
        }
    }

    fn host_mut(&mut self) -> Option<&mut HostSide> {
        match &mut self.role {
            Role::Host(h) => Some(h),
            Role::Guest(_) => None,
        }
    }

    fn host_ref(&self) -> Option<&HostSide> {
        match &self.role {
            Role::Host(h) => Some(h),
            Role::Guest(_) => None,
        }
    }

    fn guest_ref(&self) -> Option<&GuestSide> {
        match &self.role {
            Role::Guest(g) => Some(g),
            Role::Host(_) => None,
        }
    }

    fn guest_mut(&mut self) -> Option<&mut GuestSide> {
        match &mut self.role {
            Role::Guest(g) => Some(g),
            Role::Host(_) => None,
        }
    }

    fn is_active(&self) -> bool {
        !matches!(self.state, SessionState::Inactive)
    }

    fn shutdown_runtime(&mut self) {
        self.outbox.push(NetCommand::Shutdown);
    }

    // ------------------------------------------------------------ net events

    /// Handles one event from the runtime (or a test's fake network).
    pub fn handle_net(&mut self, ev: NetEvent, store: &mut dyn DocStore) {
        match ev {
            NetEvent::Stopped => {
                if let Some(mut rt) = self.runtime.take() {
                    rt.shutdown();
                }
                if self.is_active() {
                    self.state = SessionState::Inactive;
                    self.forget_doc_work();
                    self.push(SessionEvent::SessionEnded {
                        message: "the session stopped".into(),
                    });
                }
            }
            NetEvent::Tick => self.check_disk(store),
            _ if self.is_host() => self.host_net(ev, store),
            _ => self.guest_net(ev, store),
        }
        self.flush();
    }

    fn host_net(&mut self, ev: NetEvent, store: &mut dyn DocStore) {
        match ev {
            NetEvent::HostStarted { link, url } => {
                self.state = SessionState::Sharing;
                self.link = Some(link.clone());
                self.link_url = url.clone();
                self.push(SessionEvent::Shared { link, url });
            }
            NetEvent::HostFailed { message } => {
                self.state = SessionState::Inactive;
                self.push(SessionEvent::Error { message });
                self.shutdown_runtime();
            }
            NetEvent::GuestPending {
                pending,
                name,
                color: _,
            } => {
                let auto = self
                    .host_ref()
                    .is_some_and(|h| h.approval == GuestApproval::Auto);
                if auto {
                    self.outbox.push(NetCommand::Approve {
                        pending,
                        accept: true,
                    });
                } else {
                    if let Some(h) = self.host_mut() {
                        h.pending.insert(pending, name.clone());
                    }
                    self.push(SessionEvent::GuestWantsToJoin { pending, name });
                }
            }
            NetEvent::PendingFailed { pending, message } => {
                let name = self
                    .host_mut()
                    .and_then(|h| h.pending.remove(&pending))
                    .unwrap_or_else(|| "a guest".into());
                self.error(format!("{name} could not be admitted: {message}"));
            }
            NetEvent::GuestJoined {
                id,
                name,
                color,
                path,
            } => self.guest_joined(id, name, color, path),
            NetEvent::HostWarning { message } => self.error(message),
            NetEvent::Message { from, bytes } => {
                if !self.participants.contains_key(&from) {
                    return;
                }
                match decode_guest(&bytes) {
                    Ok(msg) => self.host_message(from, msg, store),
                    Err(e) => self.drop_guest(from, &format!("undecodable message: {e}")),
                }
            }
            NetEvent::PeerClosed { id, reason } => {
                let why = match reason {
                    CloseReason::Remote(CloseCode::Left) => "left".to_string(),
                    CloseReason::Local(CloseCode::TooSlow) => {
                        "dropped: their connection fell too far behind".to_string()
                    }
                    CloseReason::Local(CloseCode::Removed) => "removed by the host".to_string(),
                    CloseReason::Local(CloseCode::ProtocolViolation) => {
                        "dropped: protocol violation".to_string()
                    }
                    other => other.to_string(),
                };
                self.guest_gone(id, &why);
            }
            _ => {}
        }
    }

    fn guest_joined(&mut self, id: ParticipantId, name: String, color: String, path: Path) {
        let mut p = participant(id, &name, &color, false);
        p.read_only = false;
        p.path = Some(path);
        self.participants.insert(id, p.clone());
        let folder = self
            .host_ref()
            .and_then(|h| h.root.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "folder".into());
        let welcome = HostToGuest::Welcome {
            host_name: self.profile.name.clone(),
            folder,
            you: id,
            participants: self.participants.values().map(info_of).collect(),
            session_read_only: self.session_read_only,
        };
        self.send_to(id, &welcome);
        self.broadcast(&HostToGuest::ParticipantJoined(info_of(&p)), Some(id));
        self.push(SessionEvent::ParticipantJoined { id, name });
    }

    fn guest_gone(&mut self, id: ParticipantId, why: &str) {
        let Some(p) = self.participants.remove(&id) else {
            return;
        };
        if let Some(h) = self.host_mut() {
            for f in h.files.values_mut() {
                f.viewers.remove(&id);
            }
        }
        for other in self.participants.values_mut() {
            if other.following == Some(id) {
                other.following = None;
            }
        }
        self.broadcast(
            &HostToGuest::ParticipantLeft {
                who: id,
                reason: why.to_string(),
            },
            None,
        );
        self.push(SessionEvent::ParticipantLeft {
            id,
            name: p.name,
            reason: why.to_string(),
        });
    }

    fn drop_guest(&mut self, id: ParticipantId, detail: &str) {
        let name = self
            .participants
            .get(&id)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        self.error(format!("dropped {name}: {detail}"));
        self.outbox.push(NetCommand::Drop {
            to: id,
            detail: detail.chars().take(200).collect(),
        });
        self.guest_gone(id, "dropped: protocol violation");
    }

    fn guest_may_edit(&self, id: ParticipantId) -> bool {
        !self.session_read_only && !self.participants.get(&id).is_some_and(|p| p.read_only)
    }

    /// Confines a guest's path and applies the tree's hiding rules.
    fn check_path(&self, path: &str) -> Result<PathBuf, String> {
        let Some(h) = self.host_ref() else {
            return Err("not the host".into());
        };
        let abs = workspace::confine(&h.root, path).map_err(|e| e.to_string())?;
        if path != "." && workspace::is_hidden(&h.root, path) {
            return Err(format!(
                "{path} is not shared (hidden by the host's ignore rules)"
            ));
        }
        Ok(abs)
    }

    /// Tells a guest why its request failed. Every error a guest sees
    /// passes here, so the host's absolute paths are taken out here: a
    /// guest learns paths relative to the shared folder only.
    fn refuse(&mut self, to: ParticipantId, request: String, message: String) {
        let message = match self.host_ref() {
            Some(h) => without_root(&message, &h.root),
            None => message,
        };
        self.send_to(to, &HostToGuest::Error { request, message });
    }

    fn host_message(&mut self, from: ParticipantId, msg: GuestToHost, store: &mut dyn DocStore) {
        if let GuestToHost::Open { path } | GuestToHost::Save { path } = &msg {
            // The document is detached for a large message: what it is
            // opened or saved with must include that message.
            if matches!(
                self.jobs.get(path),
                Some(Pending {
                    kind: PendingKind::Apply { .. },
                    ..
                })
            ) {
                let path = path.clone();
                return self.defer(path, Deferred::FromGuest(from, msg));
            }
        }
        match msg {
            GuestToHost::ListDir { path } => {
                let request = format!("list {path}");
                let listed = self.check_path(&path).and_then(|_| {
                    let root = self.host_ref().map(|h| h.root.clone()).unwrap_or_default();
                    workspace::list_folder(&root, &path).map_err(|e| e.to_string())
                });
                match listed {
                    Ok(rows) => {
                        let entries = rows
                            .into_iter()
                            .map(|r| DirEntry {
                                name: r.name,
                                is_dir: r.is_dir,
                            })
                            .collect();
                        self.send_to(from, &HostToGuest::DirListing { path, entries });
                    }
                    Err(message) => self.refuse(from, request, message),
                }
            }
            GuestToHost::Open { path } => self.open_for(from, path, store),
            GuestToHost::Close { path } => {
                if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(&path)) {
                    f.viewers.remove(&from);
                }
            }
            GuestToHost::Sync { path, changes } => self.guest_sync(from, path, changes, store),
            GuestToHost::Presence { path, cursor } => {
                let decoded = decode_cursor(&cursor);
                if let Some(p) = self.participants.get_mut(&from) {
                    p.file = path.clone();
                    p.cursor = decoded;
                }
                self.broadcast(
                    &HostToGuest::Presence {
                        who: from,
                        path: path.clone(),
                        cursor,
                    },
                    Some(from),
                );
                self.follow_moved(from, path);
            }
            GuestToHost::Save { path } => {
                let request = format!("save {path}");
                if !self.guest_may_edit(from) {
                    return self.refuse(from, request, "you are read-only: not saved".into());
                }
                if let Err(message) = self.check_open(from, &path) {
                    return self.refuse(from, request, message);
                }
                match store.save(&path) {
                    Ok(()) => {
                        self.note_disk_text(&path, store);
                        self.send_to(from, &HostToGuest::Saved { path });
                    }
                    Err(message) => self.refuse(from, request, message),
                }
            }
            GuestToHost::Create { path, dir } => {
                let request = format!("create {path}");
                self.tree_op(from, request, vec![path.clone()], |root| {
                    if dir {
                        workspace::create_dir(root, &path).map(|_| ())
                    } else {
                        workspace::create_file(root, &path).map(|_| ())
                    }
                });
            }
            GuestToHost::Rename { from: a, to: b } => {
                let request = format!("rename {a} to {b}");
                let done = self.tree_op(from, request, vec![a.clone(), b.clone()], |root| {
                    workspace::rename(root, &a, &b).map(|_| ())
                });
                if done {
                    self.shared_renamed(&a, &b, store);
                }
            }
            GuestToHost::Delete { path } => {
                let request = format!("delete {path}");
                self.tree_op(from, request, vec![path.clone()], |root| {
                    workspace::delete(root, &path)
                });
            }
            GuestToHost::Follow { who } => {
                if let Some(p) = self.participants.get_mut(&from) {
                    p.following = who;
                    let info = info_of(p);
                    self.broadcast(&HostToGuest::ParticipantUpdated(info), None);
                }
            }
            GuestToHost::ListFiles => {
                if self.list_jobs.values().any(|g| *g == from) {
                    return; // One walk per guest at a time.
                }
                // A walk of the whole folder: on a worker, not here.
                let root = self.host_ref().map(|h| h.root.clone()).unwrap_or_default();
                let job = self.workers.spawn(".", Job::ListFiles { root });
                self.list_jobs.insert(job, from);
            }
        }
    }

    fn check_open(&self, from: ParticipantId, path: &str) -> Result<(), String> {
        let open = self
            .host_ref()
            .and_then(|h| h.files.get(path))
            .is_some_and(|f| f.viewers.contains(&from));
        if open {
            Ok(())
        } else {
            Err(format!("{path} is not open"))
        }
    }

    fn tree_op(
        &mut self,
        from: ParticipantId,
        request: String,
        paths: Vec<String>,
        op: impl FnOnce(&std::path::Path) -> Result<(), workspace::WorkspaceError>,
    ) -> bool {
        if !self.guest_may_edit(from) {
            self.refuse(from, request, "you are read-only".into());
            return false;
        }
        for p in &paths {
            if let Err(message) = self.check_path(p) {
                self.refuse(from, request, message);
                return false;
            }
        }
        let root = self.host_ref().map(|h| h.root.clone()).unwrap_or_default();
        match op(&root) {
            Ok(()) => {
                self.broadcast(
                    &HostToGuest::TreeChanged {
                        paths: paths.clone(),
                    },
                    None,
                );
                self.push(SessionEvent::TreeChanged { paths });
                true
            }
            Err(e) => {
                self.refuse(from, request, e.to_string());
                false
            }
        }
    }

    /// Host: `from` was renamed to `to` on disk (by a guest's request or
    /// by the host itself): open documents keep going under the new path,
    /// here and at every guest.
    fn shared_renamed(&mut self, from: &str, to: &str, store: &mut dyn DocStore) {
        self.rename_shared(from, to, store);
        self.broadcast(
            &HostToGuest::Renamed {
                from: from.to_string(),
                to: to.to_string(),
            },
            None,
        );
        self.flush();
    }

    /// Moves everything kept per shared path from under `from` to under
    /// `to`, and tells the store.
    fn rename_shared(&mut self, from: &str, to: &str, store: &mut dyn DocStore) {
        fn rekey<V>(map: &mut HashMap<String, V>, from: &str, to: &str) {
            let keys: Vec<String> = map
                .keys()
                .filter(|k| renamed_path(k, from, to).is_some())
                .cloned()
                .collect();
            for k in keys {
                if let (Some(v), Some(new)) = (map.remove(&k), renamed_path(&k, from, to)) {
                    map.insert(new, v);
                }
            }
        }
        if let Some(h) = self.host_mut() {
            let keys: Vec<String> = h
                .files
                .keys()
                .filter(|k| renamed_path(k, from, to).is_some())
                .cloned()
                .collect();
            for k in keys {
                if let (Some(f), Some(new)) = (h.files.remove(&k), renamed_path(&k, from, to)) {
                    h.files.insert(new, f);
                }
            }
        }
        if let Some(g) = self.guest_mut() {
            g.open = std::mem::take(&mut g.open)
                .into_iter()
                .map(|p| renamed_path(&p, from, to).unwrap_or(p))
                .collect();
        }
        rekey(&mut self.jobs, from, to);
        rekey(&mut self.deferred, from, to);
        rekey(&mut self.snapshot_jobs, from, to);
        for p in self.participants.values_mut() {
            if let Some(new) = p.file.as_deref().and_then(|f| renamed_path(f, from, to)) {
                p.file = Some(new);
            }
        }
        self.renames.push((from.to_string(), to.to_string()));
        store.renamed(from, to);
    }

    fn open_for(&mut self, from: ParticipantId, path: String, store: &mut dyn DocStore) {
        let request = format!("open {path}");
        let abs = match self.check_path(&path) {
            Ok(abs) => abs,
            Err(message) => return self.refuse(from, request, message),
        };
        if abs.is_dir() {
            return self.refuse(from, request, format!("{path} is a folder"));
        }
        let doc = match store.open_for_peer(&path) {
            Ok(doc) => doc,
            Err(message) => return self.refuse(from, request, message),
        };
        // Building CRDT state costs about 0.4 s per MB (on a worker): the
        // guest gets the text first and can show it meanwhile.
        let needs_share = !doc.is_shared() && !doc.is_read_only();
        let text = doc.rope().to_string();
        let too_big = doc.rope().len_bytes() > crate::doc::MAX_SHARED_EDITABLE_BYTES;
        let live = doc.is_shared() || (needs_share && !too_big);
        let read_only =
            doc.is_read_only() || (needs_share && too_big) || !self.guest_may_edit(from);
        if text.len() + OPENED_OVERHEAD > MAX_FRAME_LEN {
            return self.refuse(
                from,
                request,
                format!("{path} is too large to send over the session"),
            );
        }
        let first_viewer = self.host_ref().is_none_or(|h| !h.files.contains_key(&path));
        if let Some(h) = self.host_mut() {
            h.files
                .entry(path.clone())
                .or_default()
                .viewers
                .insert(from);
        }
        // The text goes out now; making the snapshot takes longer, and the
        // guest can show the file meanwhile.
        self.send_to(
            from,
            &HostToGuest::Opened {
                path: path.clone(),
                text,
                live,
                read_only,
            },
        );
        self.flush();
        if needs_share && !too_big {
            self.build_for(from, &path, store);
        } else if needs_share {
            // Too large: shared read-only, without CRDT state (cheap).
            if let Some(doc) = store.doc_mut(&path) {
                if let Err(e) = doc.share(ActorId::random()) {
                    return self.refuse(from, request, format!("cannot share {path}: {e}"));
                }
            }
        } else if live {
            self.send_cached_snapshot(from, &path, store);
        }
        if first_viewer {
            // What is on disk now is the reference for the watcher.
            if let Ok(disk) = std::fs::read_to_string(&abs) {
                let stamp = stamp_of(&abs);
                if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(&path)) {
                    f.disk_text = Some(disk);
                    f.disk_stamp = stamp;
                }
            }
        }
    }

    fn guest_sync(
        &mut self,
        from: ParticipantId,
        path: String,
        changes: Vec<u8>,
        store: &mut dyn DocStore,
    ) {
        if let Err(message) = self.check_open(from, &path) {
            return self.refuse(from, format!("edit {path}"), message);
        }
        if !self.guest_may_edit(from) {
            return self.send_to(
                from,
                &HostToGuest::EditRefused {
                    path,
                    message: "you are read-only: your edit was not applied".into(),
                },
            );
        }
        let actors = match crate::doc::change_actors(&changes) {
            Ok(a) => a,
            Err(e) => return self.drop_guest(from, &format!("bad changes to {path}: {e}")),
        };
        let Some(doc) = store.doc_mut(&path) else {
            return self.refuse(from, format!("edit {path}"), format!("{path} is not open"));
        };
        let doc_actor = doc.shared_state().map(|st| st.actor().clone());
        let file = self.host_mut().and_then(|h| h.files.get_mut(&path));
        if let Some(f) = file {
            let host_actor = doc_actor.or_else(|| f.host_actor.clone());
            let owners = &mut f.actors;
            let stolen = actors.iter().any(|a| {
                Some(a) == host_actor.as_ref() || owners.get(a).is_some_and(|o| *o != from)
            });
            if stolen {
                return self.drop_guest(
                    from,
                    &format!("changes to {path} under someone else's identity"),
                );
            }
            for a in actors {
                owners.insert(a, from);
            }
        }
        self.apply_sync(from, path, changes, store);
    }

    // ------------------------------------------------------- document work

    fn defer(&mut self, path: String, msg: Deferred) {
        self.deferred.entry(path).or_default().push_back(msg);
    }

    /// The session is over: results still to come are dropped when they
    /// arrive (their job is no longer known), and so is what waited for them.
    fn forget_doc_work(&mut self) {
        self.jobs.clear();
        self.deferred.clear();
    }

    /// Host: `from` waits for `path`'s CRDT state, built on a worker from
    /// the text as it is now (the first guest starts it; others join it).
    fn build_for(&mut self, from: ParticipantId, path: &str, store: &mut dyn DocStore) {
        if let Some(Pending {
            kind: PendingKind::Build { waiters, .. },
            ..
        }) = self.jobs.get_mut(path)
        {
            if !waiters.contains(&from) {
                waiters.push(from);
            }
            return;
        }
        let Some(doc) = store.doc_mut(path) else {
            return self.refuse(from, format!("open {path}"), format!("{path} is not open"));
        };
        let text = doc.rope().clone();
        let actor = ActorId::random();
        if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(path)) {
            f.host_actor = Some(actor.clone());
        }
        let job = self.workers.spawn(path, Job::Build { text, actor });
        self.jobs.insert(
            path.to_string(),
            Pending {
                job,
                kind: PendingKind::Build {
                    waiters: vec![from],
                },
            },
        );
    }

    /// Host: a guest opens a file that is already shared. It gets the
    /// cached snapshot and then, as one `Sync`, the changes made since (the
    /// guest applies it right after loading), so nothing is saved on the
    /// driver; the cache is refreshed on a worker once those changes pass
    /// [`SNAPSHOT_REFRESH_BYTES`].
    fn send_cached_snapshot(&mut self, to: ParticipantId, path: &str, store: &mut dyn DocStore) {
        let cached = self
            .host_ref()
            .and_then(|h| h.files.get(path))
            .and_then(|f| f.snapshot.clone());
        let Some(state) = store.doc_mut(path).and_then(|d| d.shared_state()) else {
            return self.send_snapshot(&[to], path, None);
        };
        let since = cached.as_ref().map(|snap| state.changes_since(&snap.heads));
        match (cached, since) {
            (Some(snap), Some(since))
                if since
                    .as_ref()
                    .is_none_or(|c| c.len() + OPENED_OVERHEAD <= MAX_FRAME_LEN) =>
            {
                self.send_snapshot(&[to], path, Some(Ok(snap.bytes)));
                if let Some(changes) = since {
                    let big = changes.len() > SNAPSHOT_REFRESH_BYTES;
                    let msg = HostToGuest::Sync {
                        path: path.to_string(),
                        changes,
                    };
                    self.send_to(to, &msg);
                    if big {
                        self.refresh_snapshot(path, store);
                    }
                }
            }
            // No snapshot yet, or too much changed to send as one message:
            // a new one, here (rare: refreshes keep the backlog small).
            _ => {
                let saved = store.doc_mut(path).map(|d| {
                    let heads = d.shared_state().map(|s| s.heads()).unwrap_or_default();
                    d.save_crdt()
                        .map(|bytes| (std::sync::Arc::new(bytes), heads))
                });
                let state = saved.map(|r| {
                    r.map(|(bytes, heads)| {
                        if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(path)) {
                            f.snapshot = Some(Snapshot {
                                bytes: bytes.clone(),
                                heads,
                            });
                        }
                        bytes
                    })
                });
                self.send_snapshot(&[to], path, state);
            }
        }
    }

    /// Host: makes a new snapshot of `path` on a worker, from a copy of its
    /// state, unless one is being made.
    fn refresh_snapshot(&mut self, path: &str, store: &mut dyn DocStore) {
        if self.snapshot_jobs.contains_key(path) {
            return;
        }
        let Some(state) = store
            .doc_mut(path)
            .and_then(|d| d.shared_state())
            .map(|s| Box::new(s.clone()))
        else {
            return;
        };
        let job = self.workers.spawn(path, Job::Save { state });
        self.snapshot_jobs.insert(path.to_string(), job);
    }

    /// Host: sends `path`'s snapshot (or why there is none) to `to`.
    fn send_snapshot(
        &mut self,
        to: &[ParticipantId],
        path: &str,
        state: Option<Result<std::sync::Arc<Vec<u8>>, DocError>>,
    ) {
        let request = format!("open {path}");
        let refusal = match state {
            Some(Ok(state)) if state.len() + OPENED_OVERHEAD <= MAX_FRAME_LEN => {
                let msg = HostToGuest::OpenedState {
                    path: path.to_string(),
                    state: (*state).clone(),
                };
                match encode_msg(&msg) {
                    Ok(bytes) => {
                        for &id in to {
                            self.send_raw(id, bytes.clone());
                        }
                        return;
                    }
                    Err(e) => format!("could not encode {path}: {e}"),
                }
            }
            Some(Ok(_)) => format!("{path} has too much history to send"),
            Some(Err(e)) => e.to_string(),
            None => format!("{path} is not open"),
        };
        for &id in to {
            self.refuse(id, request.clone(), refusal.clone());
        }
    }

    /// Applies a change message from `from` (at a guest: the host) to
    /// `path`: queued behind pending work on the path, on a worker if it is
    /// large, else here and now.
    fn apply_sync(
        &mut self,
        from: ParticipantId,
        path: String,
        changes: Vec<u8>,
        store: &mut dyn DocStore,
    ) {
        if self.jobs.contains_key(&path) {
            return self.defer(path, Deferred::Sync { from, changes });
        }
        let Some(doc) = store.doc_mut(&path) else {
            if self.is_host() {
                self.refuse(from, format!("edit {path}"), format!("{path} is not open"));
            }
            return;
        };
        if changes.len() > OFF_THREAD_CHANGE_BYTES {
            if let Some(worker) = doc.detach_for_sync() {
                let job = self.workers.spawn(
                    &path,
                    Job::Apply {
                        doc: worker,
                        changes,
                    },
                );
                let kind = PendingKind::Apply { from };
                self.jobs.insert(path, Pending { job, kind });
                return;
            }
        }
        let (applied, error) = match doc.apply_remote(&changes) {
            Ok(applied) => (applied, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        self.synced(from, path, changes, applied, error, store);
    }

    /// A change message from `from` was applied to `path` (`applied`: what
    /// it did to the text): report it and, on the host, pass it on.
    fn synced(
        &mut self,
        from: ParticipantId,
        path: String,
        changes: Vec<u8>,
        applied: Vec<Change>,
        error: Option<DocError>,
        store: &mut dyn DocStore,
    ) {
        if !applied.is_empty() {
            store.remote_changed(&path, &applied);
            self.push(SessionEvent::Changed { path: path.clone() });
        }
        match error {
            Some(e) if self.is_host() => {
                self.drop_guest(from, &format!("bad changes to {path}: {e}"))
            }
            Some(e) => self.error(format!("bad changes to {path} from the host: {e}")),
            None if self.is_host() => {
                let viewers: Vec<_> = self
                    .host_ref()
                    .and_then(|h| h.files.get(&path))
                    .map(|f| f.viewers.iter().copied().filter(|&v| v != from).collect())
                    .unwrap_or_default();
                let Ok(bytes) = encode_msg(&HostToGuest::Sync {
                    path: path.clone(),
                    changes,
                }) else {
                    return;
                };
                for v in viewers {
                    self.send_raw(v, bytes.clone());
                }
                // Applying it may have made the host split a chunk, or move
                // the guest's edit off a chunk it had just split: those are
                // host changes, for every viewer (the sender included).
                self.local_edit(&path, store);
            }
            None => {}
        }
    }

    /// Takes in one finished job, then handles what waited for it.
    fn doc_work_done(&mut self, done: Done, store: &mut dyn DocStore) {
        let Done { path, job, output } = done;
        if let Some(guest) = self.list_jobs.remove(&job) {
            match output {
                Output::Files(Ok((paths, truncated))) => {
                    self.send_to(guest, &HostToGuest::FileList { paths, truncated })
                }
                Output::Files(Err(message)) => self.refuse(guest, "list files".into(), message),
                _ => self.refuse(guest, "list files".into(), "listing failed".into()),
            }
            return;
        }
        let path = self.renames.iter().fold(path, |p, (from, to)| {
            renamed_path(&p, from, to).unwrap_or(p)
        });
        if self.snapshot_jobs.get(&path) == Some(&job) {
            self.snapshot_jobs.remove(&path);
            if let Output::Saved(bytes, heads) = output {
                if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(&path)) {
                    f.snapshot = Some(Snapshot {
                        bytes: std::sync::Arc::new(bytes),
                        heads,
                    });
                }
            }
            return;
        }
        if self.jobs.get(&path).is_none_or(|p| p.job != job) {
            // The file was closed or the session ended meanwhile.
            return;
        }
        let Some(Pending { kind, .. }) = self.jobs.remove(&path) else {
            return;
        };
        match (kind, output) {
            (PendingKind::Build { waiters }, Output::Built(result)) => {
                self.built(&path, waiters, result, store)
            }
            (PendingKind::Load, Output::Loaded(result)) => {
                let Some(doc) = store.doc_mut(&path) else {
                    return;
                };
                match result.and_then(|s| doc.attach(s, Attach::TakeSharedText)) {
                    Ok(changes) => {
                        if !changes.is_empty() {
                            store.remote_changed(&path, &changes);
                        }
                        let read_only = self.is_read_only();
                        self.push(SessionEvent::FileReady {
                            path: path.clone(),
                            read_only,
                        });
                    }
                    Err(e) => self.error(format!("cannot open {path}: {e}")),
                }
            }
            (
                PendingKind::Apply { from },
                Output::Applied {
                    doc: worker,
                    changes,
                    result,
                },
            ) => {
                let Some(doc) = store.doc_mut(&path) else {
                    return;
                };
                let applied = doc.reattach(worker);
                self.synced(from, path.clone(), changes, applied, result.err(), store);
            }
            (kind, _) => self.doc_work_lost(&path, kind, store),
        }
        self.replay(&path, store);
    }

    /// Host: `path`'s CRDT state is built: attach it (folding in the
    /// host's edits made meanwhile) and send the snapshot to the waiters.
    fn built(
        &mut self,
        path: &str,
        waiters: Vec<ParticipantId>,
        result: Result<(crate::doc::SharedState, Vec<u8>), DocError>,
        store: &mut dyn DocStore,
    ) {
        let viewers = self
            .host_ref()
            .and_then(|h| h.files.get(path))
            .map(|f| f.viewers.clone())
            .unwrap_or_default();
        let waiters: Vec<_> = waiters
            .into_iter()
            .filter(|w| viewers.contains(w))
            .collect();
        let Some(doc) = store.doc_mut(path) else {
            return self.send_snapshot(&waiters, path, None);
        };
        match result.and_then(|(state, bytes)| {
            let heads = state.heads();
            doc.attach(state, Attach::KeepLocalText)
                .map(|_| (bytes, heads))
        }) {
            Ok((bytes, heads)) => {
                // Guests view it: keep every chunk's history short so that
                // each of their remote applies stays cheap (`doc` docs).
                if let Some(state) = store.doc_mut(path).and_then(|d| d.shared_state_mut()) {
                    state.set_splitting(true);
                }
                let bytes = std::sync::Arc::new(bytes);
                if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(path)) {
                    f.snapshot = Some(Snapshot {
                        bytes: bytes.clone(),
                        heads,
                    });
                }
                self.send_snapshot(&waiters, path, Some(Ok(bytes)));
                // The host's edits made while building are one local
                // change now: it follows the snapshot on every stream.
                self.local_edit(path, store);
            }
            Err(e) => {
                for w in waiters {
                    self.refuse(
                        w,
                        format!("open {path}"),
                        format!("cannot share {path}: {e}"),
                    );
                }
            }
        }
    }

    /// A worker panicked: what it held is gone. The document stays as it
    /// was shown; the user is told.
    fn doc_work_lost(&mut self, path: &str, kind: PendingKind, store: &mut dyn DocStore) {
        self.error(format!(
            "{path}: internal error while preparing the shared document; close it and open it again"
        ));
        match kind {
            PendingKind::Build { waiters, .. } => {
                for w in waiters {
                    self.refuse(
                        w,
                        format!("open {path}"),
                        "the host could not share it".into(),
                    );
                }
            }
            PendingKind::Apply { .. } if self.is_host() => {
                // Its CRDT state went with the worker: back to a local
                // buffer, editable, shared afresh at the next `Open`.
                if let Some(doc) = store.doc_mut(path) {
                    doc.unshare();
                }
                if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(path)) {
                    f.snapshot = None;
                }
            }
            PendingKind::Apply { .. } | PendingKind::Load => {}
        }
    }

    /// Handles, in arrival order, the messages that waited for `path`'s
    /// work, until one of them starts more.
    fn replay(&mut self, path: &str, store: &mut dyn DocStore) {
        while !self.jobs.contains_key(path) {
            let Some(msg) = self.deferred.get_mut(path).and_then(VecDeque::pop_front) else {
                break;
            };
            match msg {
                Deferred::Sync { from, changes } => {
                    self.apply_sync(from, path.to_string(), changes, store)
                }
                Deferred::FromGuest(from, msg) => {
                    if self.participants.contains_key(&from) {
                        self.host_message(from, msg, store);
                    }
                }
                Deferred::FromHost(msg) => self.guest_message(msg, store),
            }
        }
        if self.deferred.get(path).is_some_and(VecDeque::is_empty) {
            self.deferred.remove(path);
        }
    }

    /// Someone moved: if we follow them, tell the UI.
    fn follow_moved(&mut self, who: ParticipantId, path: Option<String>) {
        if self.following() != Some(who) {
            return;
        }
        let Some(path) = path else { return };
        if let Role::Guest(g) = &self.role {
            if !g.open.contains(&path) {
                self.open(&path);
            }
        }
        let pos = self
            .participants
            .get(&who)
            .and_then(|p| p.cursor.as_ref())
            .map(|c| c.1.clone());
        self.push(SessionEvent::Follow { path, pos });
    }

    // ---------------------------------------------------------------- guest

    fn guest_net(&mut self, ev: NetEvent, store: &mut dyn DocStore) {
        if self.guest_mut().is_some_and(|g| g.over) {
            return;
        }
        match ev {
            NetEvent::Joined { id, path } => {
                self.me = id;
                self.path_kind = Some(path);
            }
            NetEvent::JoinFailed(e) => self.join_failed(e.to_string()),
            // The runtime itself could not start.
            NetEvent::HostFailed { message } => self.join_failed(message),
            NetEvent::Message { from: _, bytes } => match decode_host(&bytes) {
                Ok(msg) => self.guest_message(msg, store),
                Err(e) => {
                    // The host is the authority; a message we cannot read
                    // means we are out of step: leave rather than diverge.
                    self.outbox.push(NetCommand::Drop {
                        to: HOST_PARTICIPANT_ID,
                        detail: format!("undecodable message: {e}"),
                    });
                    self.finish(format!(
                        "left: the host sent a message this lshed cannot read ({e})"
                    ));
                }
            },
            NetEvent::PeerClosed { reason, .. } => {
                let message = match reason {
                    CloseReason::Local(CloseCode::Left) => "you left the session".to_string(),
                    other => other.to_string(),
                };
                self.finish(message);
            }
            _ => {}
        }
    }

    fn join_failed(&mut self, message: String) {
        self.state = SessionState::Inactive;
        if let Some(g) = self.guest_mut() {
            g.over = true;
        }
        self.push(SessionEvent::JoinFailed { message });
        self.shutdown_runtime();
    }

    /// The guest's session is over: tell the UI once and stop the runtime.
    fn finish(&mut self, message: String) {
        let Some(g) = self.guest_mut() else { return };
        if g.over {
            return;
        }
        g.over = true;
        g.open.clear();
        self.state = SessionState::Inactive;
        self.forget_doc_work();
        self.push(SessionEvent::SessionEnded { message });
        self.shutdown_runtime();
    }

    fn guest_message(&mut self, msg: HostToGuest, store: &mut dyn DocStore) {
        // (A `Sync` waits in `apply_sync`.)
        if let HostToGuest::Opened { path, .. } | HostToGuest::OpenedState { path, .. } = &msg {
            if self.jobs.contains_key(path) {
                let path = path.clone();
                return self.defer(path, Deferred::FromHost(msg));
            }
        }
        match msg {
            HostToGuest::Welcome {
                host_name,
                folder,
                you,
                participants,
                session_read_only,
            } => {
                self.me = you;
                self.session_read_only = session_read_only;
                self.participants = participants
                    .into_iter()
                    .map(|i| {
                        (
                            i.id,
                            Participant {
                                id: i.id,
                                name: i.name,
                                color: i.color,
                                file: i.file,
                                read_only: i.read_only,
                                is_host: i.is_host,
                                following: i.following,
                                cursor: None,
                                path: None,
                            },
                        )
                    })
                    .collect();
                self.state = SessionState::Joined;
                if let Some(g) = self.guest_mut() {
                    g.host_name = host_name.clone();
                    g.host_folder = folder;
                    g.welcomed = true;
                }
                self.push(SessionEvent::Joined {
                    host_name,
                    path_kind: self.path_kind.unwrap_or(Path::Direct),
                });
            }
            HostToGuest::DirListing { path, entries } => {
                self.push(SessionEvent::DirListing { path, entries })
            }
            HostToGuest::Opened {
                path,
                text,
                live,
                read_only,
            } => {
                // Shown at once; read-only until its state arrives.
                let doc = if live {
                    Document::loading(&text)
                } else {
                    Document::from_text(&text)
                };
                let read_only = read_only || !live;
                store.adopt(&path, doc, read_only);
                if let Some(g) = self.guest_mut() {
                    g.open.insert(path.clone());
                }
                self.push(SessionEvent::FileOpened {
                    path: path.clone(),
                    read_only,
                });
                if live {
                    self.yield_to_driver = true;
                } else {
                    self.push(SessionEvent::FileReady { path, read_only });
                }
            }
            HostToGuest::OpenedState { path, state } => {
                if store.doc_mut(&path).is_none() {
                    return;
                }
                let job = self.workers.spawn(&path, Job::Load { state });
                self.jobs.insert(
                    path,
                    Pending {
                        job,
                        kind: PendingKind::Load,
                    },
                );
            }
            HostToGuest::Sync { path, changes } => {
                self.apply_sync(HOST_PARTICIPANT_ID, path, changes, store)
            }
            HostToGuest::EditRefused { path, message } => {
                self.error(format!("{path}: {message}"));
                // Our doc holds the refused edit: take the host's copy again.
                self.send_to(HOST_PARTICIPANT_ID, &GuestToHost::Open { path });
            }
            HostToGuest::Presence { who, path, cursor } => {
                let decoded = decode_cursor(&cursor);
                if let Some(p) = self.participants.get_mut(&who) {
                    p.file = path.clone();
                    p.cursor = decoded;
                }
                self.follow_moved(who, path);
            }
            HostToGuest::Saved { path } => self.push(SessionEvent::Saved { path }),
            HostToGuest::TreeChanged { paths } => self.push(SessionEvent::TreeChanged { paths }),
            HostToGuest::Renamed { from, to } => self.rename_shared(&from, &to, store),
            HostToGuest::FileList { paths, truncated } => {
                self.push(SessionEvent::FileList { paths, truncated })
            }
            HostToGuest::ParticipantJoined(info) => {
                let name = info.name.clone();
                let id = info.id;
                self.upsert(info);
                self.push(SessionEvent::ParticipantJoined { id, name });
            }
            HostToGuest::ParticipantUpdated(info) => self.upsert(info),
            HostToGuest::ParticipantLeft { who, reason } => {
                if let Some(p) = self.participants.remove(&who) {
                    if self.following() == Some(who) {
                        if let Some(me) = self.participants.get_mut(&self.me) {
                            me.following = None;
                        }
                    }
                    self.push(SessionEvent::ParticipantLeft {
                        id: who,
                        name: p.name,
                        reason,
                    });
                }
            }
            HostToGuest::ReadOnly { who, value } => {
                let before = self.is_read_only();
                match who {
                    None => self.session_read_only = value,
                    Some(id) => {
                        if let Some(p) = self.participants.get_mut(&id) {
                            p.read_only = value;
                        }
                    }
                }
                let now = self.is_read_only();
                if now != before {
                    self.push(SessionEvent::ReadOnlyChanged { read_only: now });
                }
            }
            HostToGuest::Removed => {
                self.push(SessionEvent::Removed);
                self.finish("the host removed you from the session".into());
            }
            HostToGuest::SessionEnded { message } => self.finish(message),
            HostToGuest::Error { request, message } => self.error(format!("{request}: {message}")),
        }
    }

    fn upsert(&mut self, info: ParticipantInfo) {
        let cursor = self
            .participants
            .get(&info.id)
            .and_then(|p| p.cursor.clone());
        self.participants.insert(
            info.id,
            Participant {
                id: info.id,
                name: info.name,
                color: info.color,
                file: info.file,
                read_only: info.read_only,
                is_host: info.is_host,
                following: info.following,
                cursor,
                path: None,
            },
        );
    }

    // -------------------------------------------------------- driver calls

    /// The driver applied a local edit to `path`: send it to the peers that
    /// have the file (host) / to the host (guest).
    pub fn local_edit(&mut self, path: &str, store: &mut dyn DocStore) {
        let Some(bytes) = store.doc_mut(path).and_then(|d| d.take_outgoing()) else {
            return;
        };
        if !self.is_active() {
            return;
        }
        let msg_path = path.to_string();
        match &self.role {
            Role::Host(h) => {
                let viewers: Vec<_> = h
                    .files
                    .get(path)
                    .map(|f| f.viewers.iter().copied().collect())
                    .unwrap_or_default();
                if viewers.is_empty() {
                    return;
                }
                let Ok(enc) = encode_msg(&HostToGuest::Sync {
                    path: msg_path,
                    changes: bytes,
                }) else {
                    return;
                };
                for v in viewers {
                    self.send_raw(v, enc.clone());
                }
            }
            Role::Guest(_) => self.send_to(
                HOST_PARTICIPANT_ID,
                &GuestToHost::Sync {
                    path: msg_path,
                    changes: bytes,
                },
            ),
        }
        self.flush();
    }

    /// Host: the driver renamed `from` to `to` (shared paths) on disk
    /// itself; documents open under it follow, here and at the guests.
    pub fn renamed_here(&mut self, from: &str, to: &str, store: &mut dyn DocStore) {
        if !self.is_host() || !self.is_active() {
            return;
        }
        self.broadcast(
            &HostToGuest::TreeChanged {
                paths: vec![from.to_string(), to.to_string()],
            },
            None,
        );
        self.shared_renamed(from, to, store);
    }

    /// Our cursor moved (`path: None` = not in a shared file).
    pub fn local_presence(
        &mut self,
        path: Option<&str>,
        anchor: usize,
        head: usize,
        store: &mut dyn DocStore,
    ) {
        let cursor = path.and_then(|p| {
            let doc = store.doc_mut(p)?;
            Some((doc.stable_pos(anchor)?, doc.stable_pos(head)?))
        });
        let wire = cursor.as_ref().map(|(a, h)| (a.to_bytes(), h.to_bytes()));
        let path = path.map(str::to_string);
        if let Some(me) = self.participants.get_mut(&self.me) {
            me.file = path.clone();
            me.cursor = cursor;
        }
        if !self.is_active() {
            return;
        }
        if self.is_host() {
            self.broadcast(
                &HostToGuest::Presence {
                    who: HOST_PARTICIPANT_ID,
                    path,
                    cursor: wire,
                },
                None,
            );
        } else {
            self.send_to(
                HOST_PARTICIPANT_ID,
                &GuestToHost::Presence { path, cursor: wire },
            );
        }
        self.flush();
    }

    fn guest_request(&mut self, msg: GuestToHost) {
        if self.is_host() || self.state != SessionState::Joined {
            self.error("not in a session as a guest");
            return;
        }
        self.send_to(HOST_PARTICIPANT_ID, &msg);
        self.flush();
    }

    /// Guest: ask the host for a file (it arrives through `DocStore::adopt`
    /// and a `FileOpened` event).
    pub fn open(&mut self, path: &str) {
        self.guest_request(GuestToHost::Open { path: path.into() });
    }

    /// Guest: stop receiving changes of a file (its buffer was closed).
    pub fn close(&mut self, path: &str) {
        if let Some(g) = self.guest_mut() {
            g.open.remove(path);
        }
        // Whatever a worker is still doing for the closed file is dropped.
        self.jobs.remove(path);
        self.deferred.remove(path);
        self.guest_request(GuestToHost::Close { path: path.into() });
    }

    /// Guest: ask for every file of the shared folder (a `FileList` event
    /// follows), for quick open.
    pub fn list_files(&mut self) {
        self.guest_request(GuestToHost::ListFiles);
    }

    /// Guest: ask for a folder listing (a `DirListing` event follows).
    pub fn list_dir(&mut self, path: &str) {
        self.guest_request(GuestToHost::ListDir { path: path.into() });
    }

    /// Guest: ask the host to save a file (a `Saved` event follows).
    pub fn save(&mut self, path: &str) {
        self.guest_request(GuestToHost::Save { path: path.into() });
    }

    /// Guest: create a file or folder on the host.
    pub fn create(&mut self, path: &str, dir: bool) {
        self.guest_request(GuestToHost::Create {
            path: path.into(),
            dir,
        });
    }

    /// Guest: rename on the host.
    pub fn rename(&mut self, from: &str, to: &str) {
        self.guest_request(GuestToHost::Rename {
            from: from.into(),
            to: to.into(),
        });
    }

    /// Guest: delete on the host.
    pub fn delete(&mut self, path: &str) {
        self.guest_request(GuestToHost::Delete { path: path.into() });
    }

    /// Follow a participant (`None`: stop). Host and guest.
    pub fn follow(&mut self, who: Option<ParticipantId>) {
        let me = self.me;
        if let Some(p) = self.participants.get_mut(&me) {
            p.following = who;
        }
        if !self.is_active() {
            return;
        }
        if self.is_host() {
            if let Some(info) = self.participants.get(&me).map(info_of) {
                self.broadcast(&HostToGuest::ParticipantUpdated(info), None);
            }
        } else {
            self.send_to(HOST_PARTICIPANT_ID, &GuestToHost::Follow { who });
        }
        if let Some(who) = who {
            let path = self.participants.get(&who).and_then(|p| p.file.clone());
            self.follow_moved(who, path);
        }
        self.flush();
    }

    /// Host: admit or turn away a joiner.
    pub fn approve(&mut self, pending: PendingId, accept: bool) {
        let known = self
            .host_mut()
            .and_then(|h| h.pending.remove(&pending))
            .is_some();
        if !known {
            self.error(format!("no guest is waiting as #{pending}"));
            return;
        }
        self.outbox.push(NetCommand::Approve { pending, accept });
        self.flush();
    }

    /// Host: make the whole session (`who: None`) or one guest read-only or editable.
    pub fn set_read_only(&mut self, who: Option<ParticipantId>, read_only: bool) {
        if !self.is_host() {
            return self.error("only the host can change who may edit");
        }
        match who {
            None => self.session_read_only = read_only,
            Some(id) => match self.participants.get_mut(&id) {
                Some(p) if !p.is_host => p.read_only = read_only,
                _ => return self.error(format!("no guest #{id}")),
            },
        }
        self.broadcast(
            &HostToGuest::ReadOnly {
                who,
                value: read_only,
            },
            None,
        );
        self.flush();
    }

    /// Host: remove a guest (it is told, then disconnected).
    pub fn remove(&mut self, who: ParticipantId) {
        if !self.is_host() || who == HOST_PARTICIPANT_ID || !self.participants.contains_key(&who) {
            return self.error(format!("no guest #{who}"));
        }
        self.send_to(who, &HostToGuest::Removed);
        self.outbox.push(NetCommand::Close {
            to: who,
            code: CloseCode::Removed,
        });
        self.guest_gone(who, "removed by the host");
        self.flush();
    }

    /// Host: end the session; every guest is told and leaves.
    pub fn end(&mut self) {
        if !self.is_host() || !self.is_active() {
            return;
        }
        self.broadcast(
            &HostToGuest::SessionEnded {
                message: "the host ended the session".into(),
            },
            None,
        );
        self.state = SessionState::Inactive;
        self.link = None;
        let guests = self.guest_ids();
        for id in guests {
            self.participants.remove(&id);
        }
        if let Some(h) = self.host_mut() {
            h.files.clear();
            h.pending.clear();
        }
        self.forget_doc_work();
        self.push(SessionEvent::SessionEnded {
            message: "you ended the session".into(),
        });
        self.shutdown_runtime();
        self.flush();
    }

    /// Guest: leave; the session goes on for the others.
    pub fn leave(&mut self) {
        if self.is_host() {
            return self.end();
        }
        self.finish("you left the session".into());
        self.flush();
    }

    /// Host: the driver saved a shared file itself (the host's Ctrl+S):
    /// the watcher takes the document's text as what is on disk.
    pub fn saved_locally(&mut self, path: &str, store: &mut dyn DocStore) {
        self.note_disk_text(path, store);
    }

    fn note_disk_text(&mut self, path: &str, store: &mut dyn DocStore) {
        let Some(text) = store.doc_mut(path).map(|d| d.rope().to_string()) else {
            return;
        };
        let Some(root) = self.host_ref().map(|h| h.root.clone()) else {
            return;
        };
        let stamp = workspace::confine(&root, path)
            .ok()
            .and_then(|abs| stamp_of(&abs));
        if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(path)) {
            f.disk_text = Some(text);
            f.disk_stamp = stamp;
            f.seen = None;
        }
    }

    /// Host: merge changes made to shared files on disk by other programs.
    fn check_disk(&mut self, store: &mut dyn DocStore) {
        let Some(h) = self.host_ref() else { return };
        if self.state != SessionState::Sharing {
            return;
        }
        let root = h.root.clone();
        let mut ready = Vec::new();
        let paths: Vec<String> = h.files.keys().cloned().collect();
        for path in paths {
            let Ok(abs) = workspace::confine(&root, &path) else {
                continue;
            };
            let stamp = stamp_of(&abs);
            let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(&path)) else {
                continue;
            };
            if f.disk_text.is_none() || stamp.is_none() || stamp == f.disk_stamp {
                f.seen = None;
                continue;
            }
            if f.seen == stamp {
                ready.push((path, abs, stamp));
            } else {
                f.seen = stamp;
            }
        }
        for (path, abs, stamp) in ready {
            if self.jobs.contains_key(&path) {
                // Its document may be detached (read-only): the change
                // stays `seen` and is merged at a later tick.
                continue;
            }
            let Ok(new_text) = std::fs::read_to_string(&abs) else {
                continue;
            };
            let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(&path)) else {
                continue;
            };
            let old_disk = f.disk_text.replace(new_text.clone()).unwrap_or_default();
            f.disk_stamp = stamp;
            f.seen = None;
            if new_text == old_disk {
                continue;
            }
            let Some(doc_text) = store.doc_mut(&path).map(|d| d.rope().to_string()) else {
                continue;
            };
            if doc_text == new_text {
                continue;
            }
            let changes = if doc_text == old_disk {
                diff_text(&doc_text, &new_text)
            } else {
                // Unsaved session edits and a new disk version: a three-way
                // merge keeps both.
                merge_disk_change(&old_disk, &doc_text, &new_text)
            };
            store.apply_disk_change(&path, &changes);
            self.push(SessionEvent::Changed { path: path.clone() });
            self.local_edit(&path, store);
        }
    }
}

/// The disk went from `base` to `theirs` while the live document went from
/// `base` to `live`: the disk's changes, moved onto the live text, as
/// changes to apply to it in order.
///
/// Both diffs are in `base` coordinates, last change first (see
/// `diff.rs`). Each of the disk's changes is mapped through the session's
/// changes; where both touched the same place, both texts are kept (the
/// disk's after the session's), as a concurrent edit would be in the CRDT.
fn merge_disk_change(base: &str, live: &str, theirs: &str) -> Vec<Change> {
    let ours = diff_text(base, live);
    let map = |pos: usize, assoc: Assoc| ours.iter().fold(pos, |p, c| c.map_pos(p, assoc));
    diff_text(base, theirs)
        .into_iter()
        .map(|c| {
            let start = map(c.start, Assoc::After);
            let end = map(c.end, Assoc::Before).max(start);
            Change::replace(start, end, c.text)
        })
        .collect()
}

fn stamp_of(abs: &std::path::Path) -> Option<(Option<SystemTime>, u64)> {
    let meta = std::fs::metadata(abs).ok()?;
    Some((meta.modified().ok(), meta.len()))
}

impl Drop for SessionCore {
    fn drop(&mut self) {
        if let Some(mut rt) = self.runtime.take() {
            if self.is_active() {
                if self.is_host() {
                    self.end();
                } else {
                    self.leave();
                }
                for cmd in self.outbox.drain(..) {
                    rt.send(cmd);
                }
            }
            rt.shutdown();
        }
    }
}

/// `path` with its prefix `from` (the path itself, or a folder above it)
/// replaced by `to`; `None` if `path` is not `from` or under it.
pub fn renamed_path(path: &str, from: &str, to: &str) -> Option<String> {
    if path == from {
        return Some(to.to_string());
    }
    let rest = path.strip_prefix(from)?.strip_prefix('/')?;
    Some(format!("{to}/{rest}"))
}

#[cfg(test)]
mod root_tests {
    use super::without_root;
    use std::path::Path;

    #[test]
    fn errors_for_guests_name_paths_inside_the_folder_only() {
        let root = Path::new("/home/ada/project");
        assert_eq!(
            without_root("/home/ada/project/src/x.rs does not exist", root),
            "src/x.rs does not exist"
        );
        assert_eq!(
            without_root("permission denied: /home/ada/project", root),
            "permission denied: ."
        );
        assert_eq!(
            without_root(
                "cannot save /home/ada/project/a: the folder /home/ada/project is not writable",
                root
            ),
            "cannot save a: the folder . is not writable"
        );
        assert_eq!(without_root("no path here", root), "no path here");
        assert_eq!(
            without_root("/home/ada/projects-old/x", root),
            "/home/ada/projects-old/x",
            "a sibling sharing the root's prefix is left alone"
        );
        assert_eq!(
            without_root("/srv/home/ada/project/x", root),
            "/srv/home/ada/project/x",
            "the root inside another path is left alone"
        );
    }
}
