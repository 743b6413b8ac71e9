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
//!   `read_only`, `remove`. Bad JSON or an unknown command gives an error
//!   line, never a crash.
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
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::mpsc;

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
    Eof,
    Net,
}

/// `lshed share ROOT --headless`. Returns the exit code.
pub fn run_host(root: PathBuf, profile: Profile, opts: SessionOptions) -> i32 {
    let (tx, rx) = mpsc::channel();
    let core = SessionCore::host(root.clone(), profile, opts, notifier(&tx));
    run(core, HeadlessStore::host(root), tx, rx)
}

/// `lshed join LINK --headless`. Returns the exit code.
pub fn run_guest(link: &str, profile: Profile, opts: SessionOptions) -> i32 {
    let link: InviteLink = match link.parse() {
        Ok(l) => l,
        Err(e) => {
            emit(json!({"event": "join_failed", "message": e.to_string()}));
            return 1;
        }
    };
    let (tx, rx) = mpsc::channel();
    let core = SessionCore::join(link, profile, opts, notifier(&tx));
    run(core, HeadlessStore::guest(), tx, rx)
}

fn notifier(tx: &mpsc::Sender<Wake>) -> super::runtime::Notify {
    let tx = std::sync::Mutex::new(tx.clone());
    Box::new(move || {
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
) -> i32 {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        let mut line = String::new();
        loop {
            line.clear();
            match lock.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Wake::Eof);
                    return;
                }
                Ok(_) => {
                    if line.len() > MAX_COMMAND_LINE {
                        let _ = tx.send(Wake::Line(String::from("{\"cmd\":\"<too long>\"}")));
                    } else if tx.send(Wake::Line(line.trim_end().to_string())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    // Exit code 1 when the session never started (sharing or joining failed).
    let mut started = false;
    while let Ok(wake) = rx.recv() {
        match wake {
            Wake::Net => core.poll(&mut store),
            Wake::Line(line) if !line.trim().is_empty() => command(&mut core, &mut store, &line),
            Wake::Line(_) => {}
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
            emit(event_json(&ev, &core, &mut store));
        }
        if core.state() == SessionState::Inactive && core.runtime_stopped() {
            break;
        }
    }
    i32::from(!started)
}

fn event_json(ev: &SessionEvent, core: &SessionCore, store: &mut HeadlessStore) -> Value {
    match ev {
        SessionEvent::GuestWantsToJoin { pending, name } => {
            json!({"event": "guest_request", "pending": pending, "name": name})
        }
        SessionEvent::ParticipantJoined { id, name } => {
            json!({"event": "participant_joined", "id": id, "name": name})
        }
        SessionEvent::ParticipantLeft { id, name, reason } => {
            json!({"event": "participant_left", "id": id, "name": name, "reason": reason})
        }
        SessionEvent::Shared { link, url } => json!({"event": "shared", "link": link, "url": url}),
        SessionEvent::Joined {
            host_name,
            path_kind,
        } => json!({"event": "joined", "host": host_name, "path": path_kind.to_string(),
                    "id": core.my_id(), "read_only": core.is_read_only()}),
        SessionEvent::JoinFailed { message } => {
            json!({"event": "join_failed", "message": message})
        }
        SessionEvent::FileOpened { path, .. } => json!({"event": "shown", "path": path}),
        SessionEvent::FileReady { path, read_only } => {
            json!({"event": "opened", "path": path, "read_only": read_only})
        }
        SessionEvent::DirListing { path, entries } => json!({"event": "listing", "path": path,
            "entries": entries.iter().map(|e| json!({"name": e.name, "dir": e.is_dir})).collect::<Vec<_>>()}),
        SessionEvent::FileList { paths, truncated } => {
            json!({"event": "files", "paths": paths, "truncated": truncated})
        }
        SessionEvent::Saved { path } => json!({"event": "saved", "path": path}),
        SessionEvent::TreeChanged { paths } => json!({"event": "tree_changed", "paths": paths}),
        SessionEvent::Changed { path } => json!({"event": "changed", "path": path}),
        SessionEvent::ReadOnlyChanged { read_only } => {
            json!({"event": "read_only", "value": read_only})
        }
        SessionEvent::Removed => json!({"event": "removed"}),
        SessionEvent::SessionEnded { message } => json!({"event": "ended", "message": message}),
        SessionEvent::Error { message } => json!({"event": "error", "message": message}),
        SessionEvent::Follow { path, pos } => {
            let offset = pos
                .as_ref()
                .and_then(|p| store.doc_mut(path).and_then(|d| d.resolve(p)));
            json!({"event": "follow", "path": path, "offset": offset})
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

fn str_arg<'a>(cmd: &'a Value, key: &str) -> Result<&'a str, String> {
    cmd.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing string field \"{key}\""))
}

fn uint_arg(cmd: &Value, key: &str) -> Result<u64, String> {
    cmd.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("missing non-negative integer field \"{key}\""))
}

fn bool_arg(cmd: &Value, key: &str) -> Result<bool, String> {
    cmd.get(key)
        .and_then(Value::as_bool)
        .ok_or_else(|| format!("missing boolean field \"{key}\""))
}

fn command(core: &mut SessionCore, store: &mut HeadlessStore, line: &str) {
    let parsed: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            emit(json!({"event": "error", "message": format!("bad JSON: {e}")}));
            return;
        }
    };
    let tag = parsed.get("tag").cloned().unwrap_or(Value::Null);
    let name = parsed
        .get("cmd")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let outcome = execute(core, store, &name, &parsed);
    let mut out = match outcome {
        Ok(v) => v,
        Err(message) => json!({"event": "error", "cmd": name, "message": message}),
    };
    if !tag.is_null() {
        if let Some(obj) = out.as_object_mut() {
            obj.insert("tag".into(), tag);
        }
    }
    emit(out);
}

fn execute(
    core: &mut SessionCore,
    store: &mut HeadlessStore,
    name: &str,
    cmd: &Value,
) -> Result<Value, String> {
    let host = core.is_host();
    let requested = |cmd: &str, path: &str| json!({"result": cmd, "path": path, "requested": true});
    match name {
        "open" => {
            let path = str_arg(cmd, "path")?;
            if host {
                store.load(path)?;
                Ok(json!({"result": "open", "path": path}))
            } else {
                core.open(path);
                Ok(requested("open", path))
            }
        }
        "edit" => {
            let path = str_arg(cmd, "path")?;
            let offset = uint_arg(cmd, "offset")? as usize;
            let delete = cmd.get("delete").and_then(Value::as_u64).unwrap_or(0) as usize;
            let insert = cmd.get("insert").and_then(Value::as_str).unwrap_or("");
            let read_only = !host && core.is_read_only();
            let doc = store
                .doc_mut(path)
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
            core.local_edit(path, store);
            Ok(json!({"result": "edit", "path": path, "len": len}))
        }
        "text" => {
            let path = str_arg(cmd, "path")?;
            let text = store
                .text(path)
                .ok_or_else(|| format!("{path} is not open"))?;
            Ok(json!({"result": "text", "path": path, "text": text}))
        }
        "participants" => Ok(json!({"result": "participants",
            "session_read_only": core.session_read_only(),
            "participants": participants_json(core, store)})),
        "state" => Ok(json!({"result": "state", "state": core.state().label(),
            "link": core.invite_link(), "id": core.my_id(), "read_only": core.is_read_only(),
            "path": core.path_kind().map(|p| p.to_string())})),
        "save" => {
            let path = str_arg(cmd, "path")?;
            if host {
                store.save(path)?;
                core.saved_locally(path, store);
                Ok(json!({"result": "save", "path": path}))
            } else {
                core.save(path);
                Ok(requested("save", path))
            }
        }
        "list" => {
            let path = cmd.get("path").and_then(Value::as_str).unwrap_or(".");
            if host {
                let root = store.root.clone().ok_or("no root")?;
                let rows = workspace::list_folder(&root, path).map_err(|e| e.to_string())?;
                let entries: Vec<Value> = rows
                    .into_iter()
                    .map(|r| json!({"name": r.name, "dir": r.is_dir}))
                    .collect();
                Ok(json!({"result": "list", "path": path, "entries": entries}))
            } else {
                core.list_dir(path);
                Ok(requested("list", path))
            }
        }
        "files" if !host => {
            core.list_files();
            Ok(json!({"result": "files", "requested": true}))
        }
        "create" | "rename" | "delete" if !host => {
            match name {
                "create" => core.create(
                    str_arg(cmd, "path")?,
                    cmd.get("dir").and_then(Value::as_bool).unwrap_or(false),
                ),
                "rename" => core.rename(str_arg(cmd, "from")?, str_arg(cmd, "to")?),
                _ => core.delete(str_arg(cmd, "path")?),
            }
            Ok(json!({"result": name, "requested": true}))
        }
        "create" | "rename" | "delete" => {
            let root = store.root.clone().ok_or("no root")?;
            let done = match name {
                "create" => {
                    let path = str_arg(cmd, "path")?;
                    if cmd.get("dir").and_then(Value::as_bool).unwrap_or(false) {
                        workspace::create_dir(&root, path).map(|_| ())
                    } else {
                        workspace::create_file(&root, path).map(|_| ())
                    }
                }
                "rename" => {
                    let (from, to) = (str_arg(cmd, "from")?, str_arg(cmd, "to")?);
                    workspace::rename(&root, from, to).map(|_| {
                        core.renamed_here(from, to, store);
                    })
                }
                _ => workspace::delete(&root, str_arg(cmd, "path")?),
            };
            done.map_err(|e| e.to_string())?;
            Ok(json!({"result": name}))
        }
        "presence" => {
            let path = cmd.get("path").and_then(Value::as_str);
            let anchor = cmd.get("anchor").and_then(Value::as_u64).unwrap_or(0) as usize;
            let head = cmd
                .get("head")
                .and_then(Value::as_u64)
                .unwrap_or(anchor as u64) as usize;
            core.local_presence(path, anchor, head, store);
            Ok(json!({"result": "presence"}))
        }
        "follow" => {
            let who = cmd.get("who").and_then(Value::as_u64);
            core.follow(who);
            Ok(json!({"result": "follow", "who": who}))
        }
        "approve" if host => {
            let pending = uint_arg(cmd, "pending")?;
            let accept = bool_arg(cmd, "accept")?;
            core.approve(pending, accept);
            Ok(json!({"result": "approve", "pending": pending, "accept": accept}))
        }
        "read_only" if host => {
            let who = match cmd.get("who") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .ok_or("\"who\" must be a participant id or null")?,
                ),
            };
            let value = bool_arg(cmd, "value")?;
            core.set_read_only(who, value);
            Ok(json!({"result": "read_only", "who": who, "value": value}))
        }
        "remove" if host => {
            let who = uint_arg(cmd, "who")?;
            core.remove(who);
            Ok(json!({"result": "remove", "who": who}))
        }
        "approve" | "read_only" | "remove" => Err(format!("\"{name}\" is for the host")),
        "end" | "leave" => {
            if host {
                core.end();
            } else {
                core.leave();
            }
            Ok(json!({"result": name}))
        }
        "" => Err("missing \"cmd\"".into()),
        other => Err(format!("unknown command \"{other}\"")),
    }
}
