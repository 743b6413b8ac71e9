//! The session state machine, host and guest, sans-I/O.
//!
//! [`SessionCore`] runs on the driver thread, reaches documents through
//! [`DocStore`], and talks to the network only by queueing [`NetCommand`]s
//! (sent to its [`SessionRuntime`] at the end of every call, or collected
//! by tests with [`SessionCore::take_commands`]) and by receiving
//! [`NetEvent`]s ([`SessionCore::poll`] / [`SessionCore::handle_net`]).
//!
//! # Files
//!
//! `mod.rs` holds the state (both roles' data), setup, inspection, the
//! plumbing both roles use and the driver calls common to both;
//! `host.rs` the host's handlers and calls (admission, requests, the
//! disk), `guest.rs` the guest's, and `docwork.rs` the document work on
//! worker threads that both roles share.
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
//! # Floods (a script editing at machine speed)
//!
//! [`SessionCore::poll`] takes network events into an inbox and merges
//! change messages that follow each other from one peer for one file (up
//! to [`MAX_BATCH_BYTES`]) into one apply and one forward: automerge
//! applies a batch for little more than one change, where one by one a
//! backlog costs time quadratic in it. It returns to the driver after
//! [`POLL_SLICE`] of such work and wakes it to come back, so frames and the
//! driver's own commands never wait behind a backlog. The runtime reads a
//! peer only while the core has room for it (see `runtime.rs`), and a guest
//! whose queue to the host is busy holds its changes and sends them as one
//! message per file (`held_out`). What a replica typed into a chunk the
//! host was splitting is moved by that replica as it follows the split
//! (the `doc` layer), so its own view never loses text however far ahead
//! of the host it types; the host moves it for a guest that left first
//! (`settle_departed`).
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
use std::time::{Instant, SystemTime};

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

use super::limits::{
    COALESCE_ABOVE_BYTES, MAX_BATCH_BYTES, OPENED_OVERHEAD, POLL_SLICE, SNAPSHOT_REFRESH_BYTES,
};
pub use super::limits::{OFF_THREAD_CHANGE_BYTES, WATCH_INTERVAL};

mod docwork;
mod guest;
mod host;

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
    /// (path, actor) of guests that left: edits of theirs that raced a
    /// split they never saw are moved for them (`Document::settle_for`)
    /// at the next call that has the store.
    departed: Vec<(String, ActorId)>,
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
    /// Network events taken from the runtime and not yet handled (see
    /// [`SessionCore::poll`]).
    inbox: VecDeque<NetEvent>,
    /// Guest: local changes held while the link was busy, by path (see
    /// `local_edit`).
    held_out: BTreeMap<String, Vec<u8>>,
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
            departed: Vec::new(),
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
            inbox: VecDeque::new(),
            held_out: BTreeMap::new(),
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
        if !self.held_out.is_empty() && !self.link_busy() && self.is_active() {
            self.send_held(None);
        }
        let started = Instant::now();
        loop {
            if std::mem::take(&mut self.yield_to_driver) {
                // A file's text just arrived: let the driver draw it before
                // anything else is handled.
                if let Some(rt) = &self.runtime {
                    rt.wake();
                }
                break;
            }
            if let Some(rt) = &self.runtime {
                self.inbox.extend(std::iter::from_fn(|| rt.try_recv()));
            }
            let mut taken = Vec::new();
            let Some(ev) = self.next_event(&mut taken) else {
                break;
            };
            self.handle_net(ev, store);
            // Handled: the peers may send that much more.
            if let Some(rt) = &self.runtime {
                for (from, len) in taken {
                    rt.handled(from, len);
                }
            }
            if started.elapsed() >= POLL_SLICE {
                // A flood: give the driver its turn (a frame, its own
                // commands), and come back for the rest.
                if let Some(rt) = &self.runtime {
                    rt.wake();
                }
                break;
            }
        }
        self.flush();
    }

    /// Whether network events wait in the core's inbox (a flood that
    /// [`SessionCore::poll`] is working through in slices).
    pub fn busy(&self) -> bool {
        !self.inbox.is_empty()
    }

    /// The next event to handle: the inbox's first, with the change
    /// messages that follow it from the same peer for the same file
    /// merged in (up to [`MAX_BATCH_BYTES`]), so that a backlog is applied
    /// as one batch (automerge applies many changes at once for little
    /// more than one) and forwarded as one message.
    /// Each message taken is added to `taken` (sender, length).
    fn next_event(&mut self, taken: &mut Vec<(u64, usize)>) -> Option<NetEvent> {
        let ev = self.inbox.pop_front()?;
        let NetEvent::Message { from, bytes } = ev else {
            return Some(ev);
        };
        taken.push((from, bytes.len()));
        // (The usual case, one keystroke and nothing behind it: not
        // decoded twice.)
        let follows =
            matches!(self.inbox.front(), Some(NetEvent::Message { from: f, .. }) if *f == from);
        if !follows {
            return Some(NetEvent::Message { from, bytes });
        }
        let Some((path, mut changes)) = self.sync_of(&bytes) else {
            return Some(NetEvent::Message { from, bytes });
        };
        let mut merged = 0;
        while changes.len() < MAX_BATCH_BYTES {
            let Some(NetEvent::Message {
                from: next,
                bytes: more,
            }) = self.inbox.front()
            else {
                break;
            };
            if *next != from {
                break;
            }
            match self.sync_of(more) {
                Some((p, more)) if p == path => {
                    changes.extend_from_slice(&more);
                    merged += 1;
                    if let Some(NetEvent::Message { bytes, .. }) = self.inbox.pop_front() {
                        taken.push((from, bytes.len()));
                    }
                }
                _ => break,
            }
        }
        if merged == 0 {
            return Some(NetEvent::Message { from, bytes });
        }
        let bytes = if self.is_host() {
            encode_msg(&GuestToHost::Sync { path, changes })
        } else {
            encode_msg(&HostToGuest::Sync { path, changes })
        };
        // (A message that re-encodes past the frame limit cannot happen:
        // MAX_BATCH_BYTES is far below it.)
        bytes.ok().map(|bytes| NetEvent::Message { from, bytes })
    }

    /// The path and changes of a change message for our role.
    fn sync_of(&self, bytes: &[u8]) -> Option<(String, Vec<u8>)> {
        if self.is_host() {
            match decode_guest(bytes) {
                Ok(GuestToHost::Sync { path, changes }) => Some((path, changes)),
                _ => None,
            }
        } else {
            match decode_host(bytes) {
                Ok(HostToGuest::Sync { path, changes }) => Some((path, changes)),
                _ => None,
            }
        }
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
        if to == HOST_PARTICIPANT_ID && !self.held_out.is_empty() {
            // Changes held while the link was busy go first: the host
            // must see them before anything said after them (a save).
            self.send_held(None);
        }
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
        self.settle_departed(store);
        self.flush();
    }

    /// Host: moves the racing edits of guests that left (see
    /// `HostSide::departed`), and sends the result to the viewers.
    fn settle_departed(&mut self, store: &mut dyn DocStore) {
        let Some(h) = self.host_mut() else { return };
        if h.departed.is_empty() {
            return;
        }
        let departed = std::mem::take(&mut h.departed);
        let mut touched = BTreeSet::new();
        for (path, actor) in departed {
            if self.jobs.contains_key(&path) {
                // Detached for a worker: try again later.
                if let Some(h) = self.host_mut() {
                    h.departed.push((path, actor));
                }
                continue;
            }
            if let Some(doc) = store.doc_mut(&path) {
                let changes = doc.settle_for(&actor);
                if !changes.is_empty() {
                    store.remote_changed(&path, &changes);
                    self.push(SessionEvent::Changed { path: path.clone() });
                    touched.insert(path);
                }
            }
        }
        for path in touched {
            self.local_edit(&path, store);
        }
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
            Role::Guest(_) => {
                // While the link to the host is busy (what we sent is still
                // queued), changes are held and go as one message once it
                // is not: the cost per edit falls as the rate rises, and
                // our queue does not grow with a flood.
                let busy = self.link_busy();
                let held = self.held_out.entry(msg_path).or_default();
                held.extend_from_slice(&bytes);
                if !busy || held.len() >= MAX_BATCH_BYTES {
                    self.send_held(Some(path));
                }
            }
        }
        self.flush();
    }

    /// Guest: whether the queue towards the host holds more than
    /// [`COALESCE_ABOVE_BYTES`] not yet handed to the connection.
    fn link_busy(&self) -> bool {
        self.runtime
            .as_ref()
            .is_some_and(|rt| rt.backlog(HOST_PARTICIPANT_ID) > COALESCE_ABOVE_BYTES)
    }

    /// Guest: sends the changes held while the link was busy (for `only`
    /// that path, or all), one message per file.
    fn send_held(&mut self, only: Option<&str>) {
        let paths: Vec<String> = match only {
            Some(p) => vec![p.to_string()],
            None => self.held_out.keys().cloned().collect(),
        };
        for path in paths {
            let Some(changes) = self.held_out.remove(&path) else {
                continue;
            };
            // (Each removal shrinks `held_out`, so `send_to` sending the
            // rest first ends.)
            self.send_to(HOST_PARTICIPANT_ID, &GuestToHost::Sync { path, changes });
        }
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
