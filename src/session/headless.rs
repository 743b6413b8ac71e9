//! Headless peers: `lshed share PATH --headless` and `lshed join LINK
//! --headless` speak JSON lines on stdin/stdout, for servers, scripts and
//! tests. The full protocol is in `docs/headless.md`; in short:
//!
//! - stdout carries one JSON object per line: **events**
//!   (`{"event":"shared","link":"lshed://…"}` is the host's first line) and
//!   **results** of commands (`{"result":"text","path":…,"text":…}`).
//!   Every command gets exactly one result line, or an
//!   `{"event":"error","message":…}` line naming the `cmd`; a command's
//!   optional `"tag"` (any JSON value) is copied into its result or error.
//! - stdin takes one command per line: `open`, `edit` (char offsets),
//!   `text`, `participants`, `save`, `list`, `create`, `rename`, `delete`,
//!   `presence`, `follow`, `state`, `leave`/`end`; host only: `approve`,
//!   `read_only`, `remove`, each parsed into a typed [`Request`]. Bad
//!   JSON, an unknown command, a field of the wrong type (named in the
//!   message) or a line that is not UTF-8 gives an error line, never a
//!   crash, and the session goes on.
//! - End of stdin is `end` (host) or `leave` (guest). The process exits
//!   once the session's network thread has stopped: 0 after a session,
//!   1 if sharing or joining failed.
//!
//! The headless driver is the [`super::DocStore`]: a map of documents in
//! memory, plus (host) the shared folder on disk through `workspace`.
//! Guests write nothing on disk.
//!
//! May depend on: serde_json, `session`, `doc`, `workspace`, `config`, `net`.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use serde_json::{json, Value};

use super::{DocStore, Profile, SessionCore, SessionEvent, SessionOptions, SessionState};
use crate::doc::{Change, Document};
use crate::net::InviteLink;
use crate::workspace::{self, ReadOnlyReason};

/// Longest stdin line accepted, in bytes (a pasted file in an `insert`).
pub const MAX_COMMAND_LINE: usize = 16 * 1024 * 1024;

/// The headless driver's documents.
#[derive(Debug, Default)]
pub struct HeadlessStore {
    /// Host: the shared folder. Guest: `None`.
    root: Option<PathBuf>,
    docs: HashMap<String, Document>,
}

impl HeadlessStore {
    /// A host's store over `root`.
    pub fn host(root: PathBuf) -> Self {
        Self {
            root: Some(root),
            docs: HashMap::new(),
        }
    }

    /// A guest's store (memory only).
    pub fn guest() -> Self {
        Self::default()
    }

    /// The text of an open document.
    pub fn text(&self, path: &str) -> Option<String> {
        self.docs.get(path).map(|d| d.rope().to_string())
    }

    /// Loads without building CRDT state: the core builds it, off this
    /// thread, when a guest first opens the file.
    fn load(&mut self, path: &str) -> Result<&mut Document, String> {
        let Some(root) = &self.root else {
            return Err("not the host".into());
        };
        if !self.docs.contains_key(path) {
            let abs = workspace::confine(root, path).map_err(|e| e.to_string())?;
            let loaded = workspace::load_file(&abs).map_err(|e| e.to_string())?;
            match loaded.read_only {
                None | Some(ReadOnlyReason::NoWritePermission) => {}
                Some(reason) => return Err(format!("{path}: {}", reason.message())),
            }
            self.docs
                .insert(path.to_string(), Document::from_rope(loaded.rope));
        }
        self.docs
            .get_mut(path)
            .ok_or_else(|| format!("{path} is not open"))
    }
}

impl DocStore for HeadlessStore {
    fn doc_mut(&mut self, path: &str) -> Option<&mut Document> {
        self.docs.get_mut(path)
    }

    fn open_for_peer(&mut self, path: &str) -> Result<&mut Document, String> {
        self.load(path)
    }

    fn adopt(&mut self, path: &str, doc: Document, _read_only: bool) {
        self.docs.insert(path.to_string(), doc);
    }

    fn remote_changed(&mut self, _path: &str, _changes: &[Change]) {}

    fn renamed(&mut self, from: &str, to: &str) {
        let keys: Vec<String> = self
            .docs
            .keys()
            .filter(|k| super::renamed_path(k, from, to).is_some())
            .cloned()
            .collect();
        for k in keys {
            if let (Some(doc), Some(new)) =
                (self.docs.remove(&k), super::renamed_path(&k, from, to))
            {
                self.docs.insert(new, doc);
            }
        }
    }

    fn save(&mut self, path: &str) -> Result<(), String> {
        let root = self.root.as_ref().ok_or("not the host")?;
        let doc = self
            .docs
            .get(path)
            .ok_or_else(|| format!("{path} is not open"))?;
        let abs = workspace::confine(root, path).map_err(|e| e.to_string())?;
        workspace::save_atomic(&abs, doc.rope())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

enum Wake {
    Line(String),
    /// A line that cannot be a command (not UTF-8, too long): why.
    BadLine(String),
    Eof,
    Net,
}

/// `lshed share ROOT --headless`. Returns the exit code.
pub fn run_host(root: PathBuf, profile: Profile, opts: SessionOptions) -> i32 {
    let (tx, rx) = mpsc::channel();
    let woken = Arc::new(AtomicBool::new(false));
    let core = SessionCore::host(root.clone(), profile, opts, notifier(&tx, &woken));
    run(core, HeadlessStore::host(root), tx, rx, woken)
}

/// `lshed join LINK --headless`. Returns the exit code.
pub fn run_guest(link: &str, profile: Profile, opts: SessionOptions) -> i32 {
    let link: InviteLink = match link.parse() {
        Ok(l) => l,
        Err(e) => {
            emit(
                Event::JoinFailed {
                    message: e.to_string(),
                }
                .to_json(),
            );
            return 1;
        }
    };
    let (tx, rx) = mpsc::channel();
    let woken = Arc::new(AtomicBool::new(false));
    let core = SessionCore::join(link, profile, opts, notifier(&tx, &woken));
    run(core, HeadlessStore::guest(), tx, rx, woken)
}

/// Wakes the loop for network news. At most one wake-up waits in the
/// queue (`woken`): a command read meanwhile is answered after at most one
/// slice of a flood's work, not after one slice per queued event.
fn notifier(tx: &mpsc::Sender<Wake>, woken: &Arc<AtomicBool>) -> super::runtime::Notify {
    let tx = std::sync::Mutex::new(tx.clone());
    let woken = woken.clone();
    Box::new(move || {
        if woken.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Ok(tx) = tx.lock() {
            let _ = tx.send(Wake::Net);
        }
    })
}

fn emit(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn run(
    mut core: SessionCore,
    mut store: HeadlessStore,
    tx: mpsc::Sender<Wake>,
    rx: mpsc::Receiver<Wake>,
    woken: Arc<AtomicBool>,
) -> i32 {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        let mut line = Vec::new();
        loop {
            line.clear();
            // Bytes, not a String: a line that is not UTF-8 is an error
            // answered on stdout, not the end of input (which would end
            // the session for everyone).
            let read = (&mut lock)
                .take(MAX_COMMAND_LINE as u64 + 1)
                .read_until(b'\n', &mut line);
            let wake = match read {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Wake::Eof);
                    return;
                }
                Ok(_) if line.len() > MAX_COMMAND_LINE => {
                    // Skip the rest of the oversize line.
                    let mut rest = Vec::new();
                    while !line.ends_with(b"\n") {
                        rest.clear();
                        match (&mut lock).take(64 * 1024).read_until(b'\n', &mut rest) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                line.clear();
                                line.extend_from_slice(&rest);
                            }
                        }
                    }
                    Wake::BadLine(format!(
                        "a line over {} MiB was ignored",
                        MAX_COMMAND_LINE / (1024 * 1024)
                    ))
                }
                Ok(_) => match String::from_utf8(std::mem::take(&mut line)) {
                    Ok(text) => Wake::Line(text.trim_end().to_string()),
                    Err(e) => Wake::BadLine(format!(
                        "a line that is not UTF-8 was ignored (invalid byte at {})",
                        e.utf8_error().valid_up_to()
                    )),
                },
            };
            if tx.send(wake).is_err() {
                return;
            }
        }
    });
    // Exit code 1 when the session never started (sharing or joining failed).
    let mut started = false;
    while let Ok(wake) = rx.recv() {
        match wake {
            Wake::Net => {
                woken.store(false, Ordering::Release);
                core.poll(&mut store)
            }
            Wake::Line(line) if !line.trim().is_empty() => command(&mut core, &mut store, &line),
            Wake::Line(_) => {}
            Wake::BadLine(message) => emit(Event::Error { cmd: None, message }.to_json()),
            Wake::Eof => {
                if core.is_host() {
                    core.end();
                } else {
                    core.leave();
                }
            }
        }
        for ev in core.drain_events() {
            if matches!(
                ev,
                SessionEvent::Shared { .. } | SessionEvent::Joined { .. }
            ) {
                started = true;
            }
            emit(event_of(&ev, &core, &mut store).to_json());
        }
        if core.state() == SessionState::Inactive && core.runtime_stopped() {
            break;
        }
    }
    i32::from(!started)
}

/// One event line on stdout, typed: `{"event": "<name>", …fields}`.
/// `docs/headless.md` lists them; this is their definition.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Host: someone with the link asks to join (answer with `approve`).
    GuestRequest {
        /// The request's number.
        pending: u64,
        /// Their name.
        name: String,
    },
    /// Someone joined.
    ParticipantJoined {
        /// Their id.
        id: u64,
        /// Their name.
        name: String,
    },
    /// Someone left (`reason` is "left", or why they were dropped).
    ParticipantLeft {
        /// Their id.
        id: u64,
        /// Their name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Host: sharing; the invite link (and its web form, if the relay has a
    /// join page). The host's first line.
    Shared {
        /// `lshed://join/…`.
        link: String,
        /// `https://relay/join#…`, or `null`.
        url: Option<String>,
    },
    /// Guest: in the session.
    Joined {
        /// The host's name.
        host: String,
        /// `direct` or `relayed`.
        path: String,
        /// Our participant id.
        id: u64,
        /// Whether we may not edit.
        read_only: bool,
    },
    /// Guest: joining failed, and why.
    JoinFailed {
        /// Why.
        message: String,
    },
    /// Guest: a file's text arrived (not editable until `opened`).
    Shown {
        /// The file.
        path: String,
    },
    /// Guest: a file is open and (unless `read_only`) editable.
    Opened {
        /// The file.
        path: String,
        /// Whether it is read-only.
        read_only: bool,
    },
    /// Guest: a folder's entries, as asked with `list`.
    Listing {
        /// The folder.
        path: String,
        /// Its entries.
        entries: Vec<ListEntry>,
    },
    /// Guest: every file of the host's folder, as asked with `files`.
    Files {
        /// Their paths.
        paths: Vec<String>,
        /// Cut at the limit.
        truncated: bool,
    },
    /// Guest: the host saved a file we asked it to.
    Saved {
        /// The file.
        path: String,
    },
    /// The host's tree changed at these paths.
    TreeChanged {
        /// What changed.
        paths: Vec<String>,
    },
    /// A file's text changed (someone else's edit, or the disk).
    Changed {
        /// The file.
        path: String,
    },
    /// We were made read-only, or editable again.
    ReadOnly {
        /// Read-only now.
        value: bool,
    },
    /// The host removed us.
    Removed,
    /// The session is over for us, and why.
    Ended {
        /// Why.
        message: String,
    },
    /// Something failed; with `cmd` when it answers a command (whose
    /// `tag`, if any, is added to the line).
    Error {
        /// The command this answers.
        #[serde(skip_serializing_if = "Option::is_none")]
        cmd: Option<String>,
        /// What went wrong.
        message: String,
    },
    /// Whom we follow moved.
    Follow {
        /// Their file.
        path: String,
        /// Their cursor, as a char offset, if known here.
        offset: Option<usize>,
    },
}

/// One entry of a `listing` event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ListEntry {
    /// File name.
    pub name: String,
    /// A folder.
    pub dir: bool,
}

impl Event {
    /// The line's JSON (events serialise to objects; this cannot fail).
    fn to_json(&self) -> Value {
        serde_json::to_value(self)
            .unwrap_or_else(|e| json!({"event": "error", "message": e.to_string()}))
    }
}

fn event_of(ev: &SessionEvent, core: &SessionCore, store: &mut HeadlessStore) -> Event {
    match ev.clone() {
        SessionEvent::GuestWantsToJoin { pending, name } => Event::GuestRequest { pending, name },
        SessionEvent::ParticipantJoined { id, name } => Event::ParticipantJoined { id, name },
        SessionEvent::ParticipantLeft { id, name, reason } => {
            Event::ParticipantLeft { id, name, reason }
        }
        SessionEvent::Shared { link, url } => Event::Shared { link, url },
        SessionEvent::Joined {
            host_name,
            path_kind,
        } => Event::Joined {
            host: host_name,
            path: path_kind.to_string(),
            id: core.my_id(),
            read_only: core.is_read_only(),
        },
        SessionEvent::JoinFailed { message } => Event::JoinFailed { message },
        SessionEvent::FileOpened { path, .. } => Event::Shown { path },
        SessionEvent::FileReady { path, read_only } => Event::Opened { path, read_only },
        SessionEvent::DirListing { path, entries } => Event::Listing {
            path,
            entries: entries
                .into_iter()
                .map(|e| ListEntry {
                    name: e.name,
                    dir: e.is_dir,
                })
                .collect(),
        },
        SessionEvent::FileList { paths, truncated } => Event::Files { paths, truncated },
        SessionEvent::Saved { path } => Event::Saved { path },
        SessionEvent::TreeChanged { paths } => Event::TreeChanged { paths },
        SessionEvent::Changed { path } => Event::Changed { path },
        SessionEvent::ReadOnlyChanged { read_only } => Event::ReadOnly { value: read_only },
        SessionEvent::Removed => Event::Removed,
        SessionEvent::SessionEnded { message } => Event::Ended { message },
        SessionEvent::Error { message } => Event::Error { cmd: None, message },
        SessionEvent::Follow { path, pos } => {
            let offset = pos
                .as_ref()
                .and_then(|p| store.doc_mut(&path).and_then(|d| d.resolve(p)));
            Event::Follow { path, offset }
        }
    }
}

fn participants_json(core: &SessionCore, store: &mut HeadlessStore) -> Value {
    let list: Vec<Value> = core
        .participants()
        .into_iter()
        .map(|p| {
            let cursor = match (&p.file, &p.cursor) {
                (Some(f), Some((a, h))) => store.doc_mut(f).map(|d| (d.resolve(a), d.resolve(h))),
                _ => None,
            };
            json!({"id": p.id, "name": p.name, "color": p.color, "file": p.file,
                   "read_only": p.read_only, "is_host": p.is_host, "following": p.following,
                   "cursor": cursor.map(|(a, h)| json!({"anchor": a, "head": h}))})
        })
        .collect();
    json!(list)
}

/// One command on stdin, typed: every field's type is checked, and a
/// wrong one is an error naming the field (see [`parse_request`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Host: load a file into the session. Guest: ask the host for it.
    Open(PathArgs),
    /// Replace `delete` chars at `offset` with `insert`.
    Edit(EditArgs),
    /// The text of an open file.
    Text(PathArgs),
    /// Who is here.
    Participants,
    /// The session's state.
    State,
    /// Host: write a file now. Guest: ask the host to.
    Save(PathArgs),
    /// A folder's entries.
    List(ListArgs),
    /// Guest: every file of the host's folder (for quick open).
    Files,
    /// Create a file or folder.
    Create(CreateArgs),
    /// Rename a file or folder.
    Rename(RenameArgs),
    /// Delete a file or folder.
    Delete(PathArgs),
    /// Where our cursor is.
    Presence(PresenceArgs),
    /// Follow someone (or stop: `null`).
    Follow(FollowArgs),
    /// Host: admit or turn away a joiner.
    Approve(ApproveArgs),
    /// Host: make a guest (or, with `who: null`, the session) read-only.
    ReadOnly(ReadOnlyArgs),
    /// Host: remove a guest.
    Remove(WhoArgs),
    /// Host: end the session.
    End,
    /// Guest: leave.
    Leave,
}

/// `{"path": …}`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathArgs {
    /// A `/`-separated path inside the shared folder.
    pub path: String,
}

/// Arguments of `edit`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditArgs {
    /// The file.
    pub path: String,
    /// Char offset.
    pub offset: u64,
    /// Chars to delete at `offset`.
    #[serde(default)]
    pub delete: u64,
    /// Text to insert at `offset`.
    #[serde(default)]
    pub insert: String,
}

/// Arguments of `list`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// The folder (default `.`).
    #[serde(default = "dot")]
    pub path: String,
}

fn dot() -> String {
    ".".into()
}

/// Arguments of `create`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    /// The new file or folder.
    pub path: String,
    /// A folder rather than a file.
    #[serde(default)]
    pub dir: bool,
}

/// Arguments of `rename`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameArgs {
    /// Old path.
    pub from: String,
    /// New path.
    pub to: String,
}

/// Arguments of `presence`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceArgs {
    /// The file our cursor is in (`null`: none).
    #[serde(default)]
    pub path: Option<String>,
    /// Selection anchor (char offset).
    #[serde(default)]
    pub anchor: u64,
    /// Selection head (default: the anchor).
    #[serde(default)]
    pub head: Option<u64>,
}

/// Arguments of `follow`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowArgs {
    /// Whom (`null`: nobody).
    #[serde(default)]
    pub who: Option<u64>,
}

/// Arguments of `approve`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveArgs {
    /// The request, from its `guest_request` event.
    pub pending: u64,
    /// Admit?
    pub accept: bool,
}

/// Arguments of `read_only`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadOnlyArgs {
    /// A participant, or `null` for the whole session.
    pub who: Option<u64>,
    /// Read-only or not.
    pub value: bool,
}

/// `{"who": id}`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhoArgs {
    /// A participant id.
    pub who: u64,
}

/// No arguments.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// Reads a command line's JSON object into a [`Request`]: its `cmd` names
/// the command, `tag` is left to the caller, and every other field must
/// be one the command takes, of its type. Errors are fit for the `error`
/// line and name the field (`"offset": invalid value: integer -3, …`).
pub fn parse_request(value: Value) -> Result<Request, String> {
    // By value: the fields (an `insert` of megabytes, say) move into the
    // request rather than being copied.
    let Value::Object(mut args) = value else {
        return Err("a command is a JSON object".into());
    };
    let name = match args.remove("cmd") {
        None => return Err("missing \"cmd\"".into()),
        Some(Value::String(name)) => name,
        Some(_) => return Err("\"cmd\" must be a string".into()),
    };
    args.remove("tag");
    let args = Value::Object(args);
    fn typed<T: serde::de::DeserializeOwned>(args: Value) -> Result<T, String> {
        serde_path_to_error::deserialize(args).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            if path == "." {
                inner
            } else {
                format!("\"{path}\": {inner}")
            }
        })
    }
    let none = |args: Value| typed::<NoArgs>(args).map(|_| ());
    Ok(match name.as_str() {
        "open" => Request::Open(typed(args)?),
        "edit" => Request::Edit(typed(args)?),
        "text" => Request::Text(typed(args)?),
        "participants" => none(args).map(|_| Request::Participants)?,
        "state" => none(args).map(|_| Request::State)?,
        "save" => Request::Save(typed(args)?),
        "list" => Request::List(typed(args)?),
        "files" => none(args).map(|_| Request::Files)?,
        "create" => Request::Create(typed(args)?),
        "rename" => Request::Rename(typed(args)?),
        "delete" => Request::Delete(typed(args)?),
        "presence" => Request::Presence(typed(args)?),
        "follow" => Request::Follow(typed(args)?),
        "approve" => Request::Approve(typed(args)?),
        "read_only" => Request::ReadOnly(typed(args)?),
        "remove" => Request::Remove(typed(args)?),
        "end" => none(args).map(|_| Request::End)?,
        "leave" => none(args).map(|_| Request::Leave)?,
        "" => return Err("missing \"cmd\"".into()),
        other => return Err(format!("unknown command \"{other}\"")),
    })
}

fn command(core: &mut SessionCore, store: &mut HeadlessStore, line: &str) {
    let parsed: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            emit(
                Event::Error {
                    cmd: None,
                    message: format!("bad JSON: {e}"),
                }
                .to_json(),
            );
            return;
        }
    };
    let tag = parsed.get("tag").cloned().unwrap_or(Value::Null);
    let name = parsed
        .get("cmd")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let outcome = parse_request(parsed).and_then(|req| execute(core, store, &name, req));
    let mut out = match outcome {
        Ok(v) => v,
        Err(message) => Event::Error {
            cmd: Some(name),
            message,
        }
        .to_json(),
    };
    if !tag.is_null() {
        if let Some(obj) = out.as_object_mut() {
            obj.insert("tag".into(), tag);
        }
    }
    emit(out);
}

/// A char offset from the protocol, as an index (beyond any text when it
/// does not fit: the range check then refuses it).
fn index(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn execute(
    core: &mut SessionCore,
    store: &mut HeadlessStore,
    name: &str,
    req: Request,
) -> Result<Value, String> {
    let host = core.is_host();
    let requested = |cmd: &str, path: &str| json!({"result": cmd, "path": path, "requested": true});
    let host_only = || Err(format!("\"{name}\" is for the host"));
    match req {
        Request::Open(PathArgs { path }) => {
            if host {
                store.load(&path)?;
                Ok(json!({"result": "open", "path": path}))
            } else {
                core.open(&path);
                Ok(requested("open", &path))
            }
        }
        Request::Edit(EditArgs {
            path,
            offset,
            delete,
            insert,
        }) => {
            let (offset, delete) = (index(offset), index(delete));
            let read_only = !host && core.is_read_only();
            let doc = store
                .doc_mut(&path)
                .ok_or_else(|| format!("{path} is not open"))?;
            if read_only {
                return Err("read-only: the host does not let you edit".into());
            }
            if let Some(reason) = doc.read_only_reason() {
                return Err(format!("read-only: {reason}"));
            }
            if !host && !doc.is_shared() {
                return Err("read-only: this file is shared without live editing".into());
            }
            let len = doc.len_chars();
            if offset > len || offset.saturating_add(delete) > len {
                return Err(format!(
                    "offset {offset} + delete {delete} is past the end ({len} chars)"
                ));
            }
            doc.apply_local(&[Change::replace(offset, offset + delete, insert)]);
            let len = doc.len_chars();
            core.local_edit(&path, store);
            Ok(json!({"result": "edit", "path": path, "len": len}))
        }
        Request::Text(PathArgs { path }) => {
            let text = store
                .text(&path)
                .ok_or_else(|| format!("{path} is not open"))?;
            Ok(json!({"result": "text", "path": path, "text": text}))
        }
        Request::Participants => Ok(json!({"result": "participants",
            "session_read_only": core.session_read_only(),
            "participants": participants_json(core, store)})),
        Request::State => Ok(json!({"result": "state", "state": core.state().label(),
            "link": core.invite_link(), "url": core.invite_url(), "id": core.my_id(),
            "read_only": core.is_read_only(),
            "path": core.path_kind().map(|p| p.to_string())})),
        Request::Save(PathArgs { path }) => {
            if host {
                store.save(&path)?;
                core.saved_locally(&path, store);
                Ok(json!({"result": "save", "path": path}))
            } else {
                core.save(&path);
                Ok(requested("save", &path))
            }
        }
        Request::List(ListArgs { path }) => {
            if host {
                let root = store.root.clone().ok_or("no root")?;
                let rows = workspace::list_folder(&root, &path).map_err(|e| e.to_string())?;
                let entries: Vec<Value> = rows
                    .into_iter()
                    .map(|r| json!({"name": r.name, "dir": r.is_dir}))
                    .collect();
                Ok(json!({"result": "list", "path": path, "entries": entries}))
            } else {
                core.list_dir(&path);
                Ok(requested("list", &path))
            }
        }
        Request::Files if !host => {
            core.list_files();
            Ok(json!({"result": "files", "requested": true}))
        }
        Request::Files => Err("\"files\" is for guests (the host lists with \"list\")".into()),
        Request::Create(CreateArgs { path, dir }) if !host => {
            core.create(&path, dir);
            Ok(json!({"result": name, "requested": true}))
        }
        Request::Rename(RenameArgs { from, to }) if !host => {
            core.rename(&from, &to);
            Ok(json!({"result": name, "requested": true}))
        }
        Request::Delete(PathArgs { path }) if !host => {
            core.delete(&path);
            Ok(json!({"result": name, "requested": true}))
        }
        Request::Create(CreateArgs { path, dir }) => {
            let root = store.root.clone().ok_or("no root")?;
            let made = if dir {
                workspace::create_dir(&root, &path).map(|_| ())
            } else {
                workspace::create_file(&root, &path).map(|_| ())
            };
            made.map_err(|e| e.to_string())?;
            Ok(json!({"result": name}))
        }
        Request::Rename(RenameArgs { from, to }) => {
            let root = store.root.clone().ok_or("no root")?;
            workspace::rename(&root, &from, &to).map_err(|e| e.to_string())?;
            core.renamed_here(&from, &to, store);
            Ok(json!({"result": name}))
        }
        Request::Delete(PathArgs { path }) => {
            let root = store.root.clone().ok_or("no root")?;
            workspace::delete(&root, &path).map_err(|e| e.to_string())?;
            Ok(json!({"result": name}))
        }
        Request::Presence(PresenceArgs { path, anchor, head }) => {
            let anchor = index(anchor);
            let head = head.map(index).unwrap_or(anchor);
            core.local_presence(path.as_deref(), anchor, head, store);
            Ok(json!({"result": "presence"}))
        }
        Request::Follow(FollowArgs { who }) => {
            core.follow(who);
            Ok(json!({"result": "follow", "who": who}))
        }
        Request::Approve(ApproveArgs { pending, accept }) if host => {
            core.approve(pending, accept);
            Ok(json!({"result": "approve", "pending": pending, "accept": accept}))
        }
        Request::ReadOnly(ReadOnlyArgs { who, value }) if host => {
            core.set_read_only(who, value);
            Ok(json!({"result": "read_only", "who": who, "value": value}))
        }
        Request::Remove(WhoArgs { who }) if host => {
            core.remove(who);
            Ok(json!({"result": "remove", "who": who}))
        }
        Request::Approve(_) | Request::ReadOnly(_) | Request::Remove(_) => host_only(),
        Request::End | Request::Leave => {
            if host {
                core.end();
            } else {
                core.leave();
            }
            Ok(json!({"result": name}))
        }
    }
}
