//! The CRDT half of a shared document: automerge text split into chunks.
//!
//! # Layout
//!
//! ```text
//! ROOT { "lshed": 1, "chunks": List [ Text, Text, Text, ... ] }
//! ```
//!
//! The document's text is the concatenation of the `Text` objects in
//! `chunks`. A buffer that becomes shared is cut into chunks of
//! [`CHUNK_CHARS`] chars; while it is edited, text typed at a chunk boundary
//! goes into a neighbour that is not yet full ([`CHUNK_FULL_CHARS`]) or into
//! a new chunk, so that no chunk grows from typing at its edges. Text typed
//! strictly inside a chunk stays in that chunk (moving text between chunks
//! would be a CRDT "move", which automerge does not have: a concurrent edit
//! of moved text would be lost or duplicated). Chunks are never deleted or
//! reordered by lshed; a peer that does so anyway is handled by a full
//! resynchronisation of the mirror (see [`SharedState::resync_rope`]).
//!
//! Why: automerge 0.7 and later keep ops in compressed columns, and applying
//! a remote op costs time linear in the size of the *object* it touches
//! (20 ms per keystroke in a 100k-char text, 200 ms at 1M). Cut into chunks,
//! a remote keystroke costs time linear in one chunk, whatever the file
//! size. See the module docs of [`super`] for the measurements.
//!
//! # Index units
//!
//! automerge is created and loaded with [`TextEncoding::UnicodeCodePoint`],
//! so every automerge index and patch index is in Unicode scalar values,
//! exactly ropey's char index. No conversion happens anywhere.
//!
//! # The rope mirror
//!
//! Every mutation here patches the caller's rope in the same step, so the
//! rope always equals the automerge text. Remote changes reach the rope as
//! automerge patches (a splice at a chunk offset becomes a splice at the
//! chunk's start plus that offset), never by re-reading the text. The only
//! full re-read is [`SharedState::resync_rope`], used when a peer changes the
//! layout itself (hostile or buggy input) or after recovering from a panic.

use super::guard::contain;
use super::undo::{CharId, StableOp};
use super::{Change, DocError};
use automerge::sync::{self, SyncDoc};
use automerge::transaction::{Transactable, Transaction};
use automerge::{
    ActorId, Automerge, AutomergeError, ChangeHash, Cursor, LoadOptions, ObjId, ObjType,
    PatchAction, PatchLog, ReadDoc, ScalarValueRef, TextEncoding, Value, ValueRef, ROOT,
};
use ropey::Rope;

/// Size of the chunks a buffer is cut into when it becomes shared.
pub const CHUNK_CHARS: usize = 1024;
/// A chunk this long no longer takes text typed at its edges.
pub const CHUNK_FULL_CHARS: usize = 2 * CHUNK_CHARS;

const FORMAT_KEY: &str = "lshed";
const FORMAT_VERSION: i64 = 1;
const CHUNKS_KEY: &str = "chunks";
/// A received sync message larger than this resets the recovery checkpoint
/// instead of being logged change by change.
const BIG_SYNC_BYTES: usize = 64 * 1024;

/// One element of the `chunks` list.
#[derive(Debug, Clone)]
struct Chunk {
    /// The Text object; `None` for an element that is not text (only a
    /// foreign peer can put one there). It then holds no chars.
    obj: Option<ObjId>,
    /// Its length in chars.
    len: usize,
}

/// The automerge state of a shared document, with the chunk table that maps
/// chunk offsets to document offsets.
///
/// It is `Send`: build or load it on another thread with
/// [`SharedState::build`] or [`SharedState::load`], then hand it to
/// [`super::Document::attach`].
#[derive(Debug, Clone)]
pub struct SharedState {
    am: Automerge,
    list: Option<ObjId>,
    chunks: Vec<Chunk>,
    len: usize,
    /// Raw bytes of local changes not yet taken by [`Self::take_outgoing`].
    outgoing: Vec<Vec<u8>>,
    /// Heads when local changes were last turned into bytes; local commits
    /// since then are encoded lazily by [`Self::flush`] (encoding a change
    /// costs more than making it, and is needed only when sending it or
    /// before touching foreign input).
    flushed_heads: Vec<ChangeHash>,
    /// Local commits since `flushed_heads`?
    unflushed: bool,
    /// Total size of `log`.
    log_bytes: usize,
    /// Full save the recovery path reloads (empty: start from nothing).
    checkpoint: Vec<u8>,
    /// Changes known to be good since `checkpoint`, local and remote.
    log: Vec<Vec<u8>>,
}

/// What a remote apply did: the rope changes made (always valid, even on
/// error) and the error, if any.
#[derive(Debug)]
pub(crate) struct Remote {
    pub(crate) changes: Vec<Change>,
    pub(crate) error: Option<DocError>,
}

impl Remote {
    fn failed(e: DocError) -> Self {
        Self {
            changes: Vec::new(),
            error: Some(e),
        }
    }
}

/// The sync protocol state kept for one peer (one per peer per document).
///
/// Start with [`PeerSync::new`] when a peer joins or reconnects; a fresh
/// state is always correct, a kept one only saves a round trip.
#[derive(Debug)]
pub struct PeerSync {
    state: sync::State,
}

impl Default for PeerSync {
    fn default() -> Self {
        Self::new()
    }
}

impl PeerSync {
    /// A fresh state: the next exchange starts from "I know nothing of you".
    pub fn new() -> Self {
        Self {
            state: sync::State::new(),
        }
    }

    /// Bytes to keep across a reconnection.
    pub fn encode(&self) -> Vec<u8> {
        self.state.encode()
    }

    /// Reads what [`PeerSync::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, DocError> {
        let state = contain("sync state", || sync::State::decode(bytes))?
            .map_err(|e| DocError::malformed("sync state", e))?;
        Ok(Self { state })
    }
}

/// A position that survives concurrent edits: a char of one chunk (or the
/// end of the document), resolved again after every merge.
#[derive(Debug, Clone, PartialEq)]
pub struct StablePos {
    chunk: ObjId,
    cursor: Cursor,
}

impl StablePos {
    /// Bytes for the wire (presence messages).
    pub fn to_bytes(&self) -> Vec<u8> {
        let chunk = self.chunk.to_bytes();
        let cursor = self.cursor.to_bytes();
        let mut out = Vec::with_capacity(5 + chunk.len() + cursor.len());
        out.push(1);
        out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&cursor);
        out
    }

    /// Reads what [`StablePos::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DocError> {
        const WHAT: &str = "stable position";
        let (&version, rest) = bytes
            .split_first()
            .ok_or_else(|| DocError::malformed(WHAT, "empty"))?;
        if version != 1 {
            return Err(DocError::malformed(WHAT, format!("version {version}")));
        }
        let (len, rest) = read_u32(rest).ok_or_else(|| DocError::malformed(WHAT, "truncated"))?;
        if rest.len() < len {
            return Err(DocError::malformed(WHAT, "truncated"));
        }
        let (chunk, cursor) = rest.split_at(len);
        let chunk =
            contain(WHAT, || ObjId::try_from(chunk))?.map_err(|e| DocError::malformed(WHAT, e))?;
        let cursor = contain(WHAT, || Cursor::try_from(cursor))?
            .map_err(|e| DocError::malformed(WHAT, e))?;
        Ok(Self { chunk, cursor })
    }
}

fn read_u32(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let head: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some((u32::from_le_bytes(head) as usize, &bytes[4..]))
}

/// Splits a change message into automerge changes, without touching any
/// document. Format: repeated `[u32 LE length][raw automerge change]`.
fn decode_changes(bytes: &[u8]) -> Result<Vec<(automerge::Change, &[u8])>, DocError> {
    const WHAT: &str = "change message";
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (len, tail) = read_u32(rest).ok_or_else(|| DocError::malformed(WHAT, "truncated"))?;
        if tail.len() < len {
            return Err(DocError::malformed(WHAT, "truncated change"));
        }
        let (raw, tail) = tail.split_at(len);
        let change = contain(WHAT, || automerge::Change::from_bytes(raw.to_vec()))?
            .map_err(|e| DocError::malformed(WHAT, e))?;
        out.push((change, raw));
        rest = tail;
    }
    Ok(out)
}

/// The actors that authored the changes of a change message, without
/// applying anything. automerge changes are not signed: a peer can send
/// changes under someone else's actor id (and so pre-empt that peer's real
/// changes), so the session layer should check that each peer only sends
/// changes of the actors it owns.
pub fn change_actors(bytes: &[u8]) -> Result<Vec<ActorId>, DocError> {
    let mut out: Vec<ActorId> = Vec::new();
    for (change, _) in decode_changes(bytes)? {
        if !out.contains(change.actor_id()) {
            out.push(change.actor_id().clone());
        }
    }
    Ok(out)
}

fn encode_changes(changes: &[Vec<u8>]) -> Vec<u8> {
    let total = changes.iter().map(|c| c.len() + 4).sum();
    let mut out = Vec::with_capacity(total);
    for c in changes {
        out.extend_from_slice(&(c.len() as u32).to_le_bytes());
        out.extend_from_slice(c);
    }
    out
}

fn load_options() -> LoadOptions<'static> {
    LoadOptions::new().text_encoding(TextEncoding::UnicodeCodePoint)
}

impl SharedState {
    /// CRDT state holding `text`, cut into chunks, as one change by `actor`.
    ///
    /// Costs about 0.7 s per million chars (see the module docs of
    /// [`super`]); run it off the UI thread for large buffers.
    pub fn build(text: &Rope, actor: ActorId) -> Result<Self, DocError> {
        let mut am = Automerge::new_with_encoding(TextEncoding::UnicodeCodePoint).with_actor(actor);
        let mut chunks = Vec::with_capacity(text.len_chars() / CHUNK_CHARS + 1);
        let mut tx = am.transaction();
        let built = (|| -> Result<ObjId, AutomergeError> {
            tx.put(ROOT, FORMAT_KEY, FORMAT_VERSION)?;
            let list = tx.put_object(ROOT, CHUNKS_KEY, ObjType::List)?;
            let n = text.len_chars();
            let mut start = 0;
            loop {
                let end = (start + CHUNK_CHARS).min(n);
                let obj = tx.insert_object(&list, chunks.len(), ObjType::Text)?;
                let piece = text.slice(start..end).to_string();
                tx.splice_text(&obj, 0, 0, &piece)?;
                chunks.push(Chunk {
                    obj: Some(obj),
                    len: end - start,
                });
                start = end;
                if start >= n {
                    break;
                }
            }
            Ok(list)
        })();
        let list = match built {
            Ok(list) => list,
            Err(e) => {
                tx.rollback();
                return Err(DocError::rejected("new shared text", e));
            }
        };
        tx.commit();
        let checkpoint = am.save();
        let flushed_heads = am.get_heads();
        Ok(Self {
            am,
            list: Some(list),
            len: text.len_chars(),
            chunks,
            outgoing: Vec::new(),
            flushed_heads,
            unflushed: false,
            log_bytes: 0,
            checkpoint,
            log: Vec::new(),
        })
    }

    /// An empty state for a peer that will receive everything through the
    /// sync protocol. It is read-only until the layout has arrived.
    pub fn empty(actor: ActorId) -> Self {
        Self {
            am: Automerge::new_with_encoding(TextEncoding::UnicodeCodePoint).with_actor(actor),
            list: None,
            chunks: Vec::new(),
            len: 0,
            outgoing: Vec::new(),
            flushed_heads: Vec::new(),
            unflushed: false,
            log_bytes: 0,
            checkpoint: Vec::new(),
            log: Vec::new(),
        }
    }

    /// Loads what [`SharedState::save`] (of any peer) wrote. `actor` must be
    /// new for this process run (see [`super::Document::share`]).
    pub fn load(bytes: &[u8], actor: ActorId) -> Result<Self, DocError> {
        let mut am = contain("saved state", || {
            Automerge::load_with_options(bytes, load_options())
        })?
        .map_err(|e| DocError::malformed("saved state", e))?;
        am.set_actor(actor);
        let flushed_heads = am.get_heads();
        let mut state = Self {
            am,
            list: None,
            chunks: Vec::new(),
            len: 0,
            outgoing: Vec::new(),
            flushed_heads,
            unflushed: false,
            log_bytes: 0,
            checkpoint: bytes.to_vec(),
            log: Vec::new(),
        };
        state.rebuild_table();
        if state.list.is_none() && !state.am.get_heads().is_empty() {
            return Err(DocError::NotADocument("no \"chunks\" list".into()));
        }
        Ok(state)
    }

    /// Full save of the CRDT state (for reconnection and crash recovery).
    /// Also compacts the recovery log.
    pub fn save(&mut self) -> Vec<u8> {
        self.flush();
        let bytes = self.am.save();
        self.checkpoint = bytes.clone();
        self.log.clear();
        self.log_bytes = 0;
        bytes
    }

    /// Encodes local commits made since the last flush: into `outgoing`
    /// for peers and into the recovery log.
    fn flush(&mut self) {
        if !self.unflushed {
            return;
        }
        self.unflushed = false;
        for change in self.am.get_changes(&self.flushed_heads) {
            let raw = change.raw_bytes().to_vec();
            self.log_raw(raw.clone());
            self.outgoing.push(raw);
        }
        self.flushed_heads = self.am.get_heads();
    }

    /// Adds good change bytes to the recovery log; past 32 MB the log is
    /// folded into a new checkpoint instead.
    fn log_raw(&mut self, raw: Vec<u8>) {
        self.log_bytes += raw.len();
        self.log.push(raw);
        if self.log_bytes > 32 * 1024 * 1024 {
            self.checkpoint = self.am.save();
            self.log.clear();
            self.log_bytes = 0;
        }
    }

    /// The whole text (O(n); for tests and for attaching).
    pub fn text(&self) -> String {
        let mut out = String::with_capacity(self.len);
        for obj in self.chunks.iter().filter_map(|c| c.obj.as_ref()) {
            if let Ok(t) = self.am.text(obj) {
                out.push_str(&t);
            }
        }
        out
    }

    /// Length of the text in chars.
    pub fn len_chars(&self) -> usize {
        self.len
    }

    /// This replica's actor.
    pub fn actor(&self) -> &ActorId {
        self.am.get_actor()
    }

    /// Whether the lshed layout is present (a state that is still waiting
    /// for the host's first sync message has none, and cannot be edited).
    pub fn has_layout(&self) -> bool {
        self.list.is_some()
    }

    /// Number of chunks (for diagnostics and benchmarks).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Checks the chunk table against automerge (for tests): every chunk's
    /// length and the total. O(n).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut total = 0;
        for (i, c) in self.chunks.iter().enumerate() {
            if let Some(obj) = &c.obj {
                let real = self.am.length(obj);
                if real != c.len {
                    return Err(format!(
                        "chunk {i}: table says {} chars, automerge {real}",
                        c.len
                    ));
                }
            }
            total += c.len;
        }
        if total != self.len {
            return Err(format!("total {} != sum of chunks {total}", self.len));
        }
        Ok(())
    }

    /// Length of the longest chunk, in chars (for diagnostics).
    pub fn longest_chunk(&self) -> usize {
        self.chunks.iter().map(|c| c.len).max().unwrap_or(0)
    }

    /// The local changes made since the last call, as one message for every
    /// peer; `None` if there were none.
    pub fn take_outgoing(&mut self) -> Option<Vec<u8>> {
        self.flush();
        if self.outgoing.is_empty() {
            return None;
        }
        let msg = encode_changes(&self.outgoing);
        self.outgoing.clear();
        Some(msg)
    }

    /// Re-reads the chunk table from automerge.
    fn rebuild_table(&mut self) {
        self.list = match self.am.get(ROOT, CHUNKS_KEY) {
            Ok(Some((Value::Object(ObjType::List), id))) => Some(id),
            _ => None,
        };
        self.chunks.clear();
        self.len = 0;
        if let Some(list) = &self.list {
            for item in self.am.list_range(list, ..) {
                let chunk = match item.value {
                    ValueRef::Object(ObjType::Text) => {
                        let id = item.id();
                        let len = self.am.length(&id);
                        Chunk { obj: Some(id), len }
                    }
                    _ => Chunk { obj: None, len: 0 },
                };
                self.len += chunk.len;
                self.chunks.push(chunk);
            }
        }
    }

    /// Makes `rope` equal the automerge text again after the layout changed
    /// under us: re-reads the table and the text, and patches the rope with
    /// one replacement of the part that differs. O(n), only for the rare
    /// paths named in the module docs.
    pub(crate) fn resync_rope(&mut self, rope: &mut Rope, out: &mut Vec<Change>) {
        self.rebuild_table();
        let text = self.text();
        if let Some(change) = diff_rope(rope, &text) {
            apply_to_rope(rope, &change);
            out.push(change);
        }
    }

    /// Rebuilds automerge from the checkpoint and the log of good changes,
    /// after a panic may have left it half-modified.
    fn recover(&mut self) -> Result<(), DocError> {
        let actor = self.am.get_actor().clone();
        let checkpoint = &self.checkpoint;
        let log = &self.log;
        let rebuilt = contain("recovery", || -> Result<Automerge, AutomergeError> {
            let mut am = if checkpoint.is_empty() {
                Automerge::new_with_encoding(TextEncoding::UnicodeCodePoint)
            } else {
                Automerge::load_with_options(checkpoint, load_options())?
            };
            for change in log {
                am.load_incremental(change)?;
            }
            Ok(am)
        })?
        .map_err(|e| DocError::rejected("recovery", e))?;
        self.am = rebuilt.with_actor(actor);
        self.rebuild_table();
        Ok(())
    }

    /// Applies a message made by a peer's [`Self::take_outgoing`]. Patches
    /// `rope` and returns the changes applied to it, in order.
    pub(crate) fn apply_remote(&mut self, rope: &mut Rope, bytes: &[u8]) -> Remote {
        const WHAT: &str = "change message";
        // The recovery log must hold every local change before foreign
        // input can make automerge panic.
        self.flush();
        // Decoding touches no document: a failure here changes nothing.
        let decoded = match decode_changes(bytes) {
            Ok(d) => d,
            Err(e) => return Remote::failed(e),
        };
        let raws: Vec<Vec<u8>> = decoded.iter().map(|(_, raw)| raw.to_vec()).collect();
        let changes: Vec<automerge::Change> = decoded.into_iter().map(|(c, _)| c).collect();
        let mut plog = PatchLog::active();
        let am = &mut self.am;
        let outcome = contain(WHAT, || am.apply_changes_log_patches(changes, &mut plog));
        self.finish_remote(rope, outcome, plog, WHAT, |s| {
            for raw in raws {
                s.log_raw(raw);
            }
        })
    }

    /// Common tail of every remote apply: on a panic, recover; otherwise
    /// turn the patches into rope changes; then report automerge's verdict.
    fn finish_remote(
        &mut self,
        rope: &mut Rope,
        outcome: Result<Result<(), AutomergeError>, DocError>,
        plog: PatchLog,
        what: &'static str,
        on_success: impl FnOnce(&mut Self),
    ) -> Remote {
        let result = self.finish_remote_inner(rope, outcome, plog, what, on_success);
        // Remote changes are not ours to send: move the flush mark past them.
        self.flushed_heads = self.am.get_heads();
        result
    }

    fn finish_remote_inner(
        &mut self,
        rope: &mut Rope,
        outcome: Result<Result<(), AutomergeError>, DocError>,
        mut plog: PatchLog,
        what: &'static str,
        on_success: impl FnOnce(&mut Self),
    ) -> Remote {
        let mut out = Vec::new();
        let applied = match outcome {
            Err(panicked) => {
                if let Err(e) = self.recover() {
                    return Remote::failed(e);
                }
                // Normally a no-op: the rebuilt state is the one the rope
                // already mirrors.
                self.resync_rope(rope, &mut out);
                return Remote {
                    changes: out,
                    error: Some(panicked),
                };
            }
            Ok(applied) => applied,
        };
        let am = &self.am;
        match contain(what, || am.make_patches(&mut plog)) {
            Ok(patches) => self.patch_rope(rope, &patches, &mut out),
            Err(_) => self.resync_rope(rope, &mut out),
        }
        match applied {
            Ok(()) => {
                on_success(self);
                Remote {
                    changes: out,
                    error: None,
                }
            }
            // Part of the input may have been applied; the rope follows
            // automerge either way, so report the error with nothing lost.
            Err(e) => Remote {
                changes: out,
                error: Some(DocError::rejected(what, e)),
            },
        }
    }

    /// Next message of the sync protocol for `peer`, if there is anything to
    /// say. Call after every change (local or remote) and after receiving.
    pub(crate) fn generate_sync_message(
        &self,
        peer: &mut PeerSync,
    ) -> Result<Option<Vec<u8>>, DocError> {
        let am = &self.am;
        let state = &mut peer.state;
        match contain("sync message", || am.generate_sync_message(state)) {
            Ok(msg) => Ok(msg.map(|m| m.encode())),
            Err(e) => {
                // The peer's advertised state made automerge panic: forget it.
                peer.state = sync::State::new();
                Err(e)
            }
        }
    }

    /// Applies a sync message from `peer`. Patches `rope` and returns the
    /// changes applied to it.
    pub(crate) fn receive_sync_message(
        &mut self,
        rope: &mut Rope,
        peer: &mut PeerSync,
        bytes: &[u8],
    ) -> Remote {
        const WHAT: &str = "sync message";
        self.flush();
        let msg = match contain(WHAT, || sync::Message::decode(bytes)) {
            Ok(Ok(msg)) => msg,
            Ok(Err(e)) => return Remote::failed(DocError::malformed(WHAT, e)),
            Err(e) => return Remote::failed(e),
        };
        let heads_before = self.am.get_heads();
        let mut plog = PatchLog::active();
        let am = &mut self.am;
        let state = &mut peer.state;
        let outcome = contain(WHAT, || {
            am.receive_sync_message_log_patches(state, msg, &mut plog)
        });
        if outcome.is_err() {
            peer.state = sync::State::new();
        }
        let big = bytes.len() > BIG_SYNC_BYTES;
        self.finish_remote(rope, outcome, plog, WHAT, move |s| {
            if s.am.get_heads() == heads_before {
                return;
            }
            if big {
                s.checkpoint = s.am.save();
                s.log.clear();
                s.log_bytes = 0;
            } else {
                for c in s.am.get_changes(&heads_before) {
                    s.log_raw(c.raw_bytes().to_vec());
                }
            }
        })
    }

    /// Turns automerge patches into rope changes, keeping the chunk table.
    fn patch_rope(&mut self, rope: &mut Rope, patches: &[automerge::Patch], out: &mut Vec<Change>) {
        for patch in patches {
            if self.patch_one(rope, patch, out).is_err() {
                self.resync_rope(rope, out);
                return;
            }
        }
    }

    /// One patch; `Err(())` when it changes the layout in a way only a full
    /// resync can follow.
    fn patch_one(
        &mut self,
        rope: &mut Rope,
        patch: &automerge::Patch,
        out: &mut Vec<Change>,
    ) -> Result<(), ()> {
        if patch.obj == ROOT {
            return match &patch.action {
                PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key }
                    if key == CHUNKS_KEY =>
                {
                    Err(())
                }
                _ => Ok(()),
            };
        }
        if self.list.as_ref() == Some(&patch.obj) {
            return match &patch.action {
                PatchAction::Insert { index, values } => {
                    if *index > self.chunks.len() {
                        return Err(());
                    }
                    for (i, (value, id, _)) in values.iter().enumerate() {
                        let obj = matches!(value, Value::Object(ObjType::Text)).then(|| id.clone());
                        // A new chunk's content arrives as later patches on it.
                        self.chunks.insert(index + i, Chunk { obj, len: 0 });
                    }
                    Ok(())
                }
                PatchAction::DeleteSeq { index, length } => {
                    let end = index.checked_add(*length).ok_or(())?;
                    if end > self.chunks.len() {
                        return Err(());
                    }
                    let start = self.prefix(*index);
                    let removed: usize = self.chunks.drain(*index..end).map(|c| c.len).sum();
                    self.len -= removed;
                    self.emit(rope, out, Change::delete(start, start + removed));
                    Ok(())
                }
                PatchAction::Mark { .. } | PatchAction::Conflict { .. } => Ok(()),
                _ => Err(()),
            };
        }
        let Some(idx) = self.index_of(&patch.obj) else {
            // A patch on an object we do not mirror: harmless unless it is
            // text we should have known about.
            return match patch.action {
                PatchAction::SpliceText { .. } | PatchAction::DeleteSeq { .. } => Err(()),
                _ => Ok(()),
            };
        };
        let base = self.prefix(idx);
        match &patch.action {
            PatchAction::SpliceText { index, value, .. } => {
                let text = value.make_string();
                let n = text.chars().count();
                if *index > self.chunks[idx].len {
                    return Err(());
                }
                self.chunks[idx].len += n;
                self.len += n;
                self.emit(rope, out, Change::insert(base + index, text));
                Ok(())
            }
            PatchAction::DeleteSeq { index, length } => {
                let end = index.checked_add(*length).ok_or(())?;
                if end > self.chunks[idx].len {
                    return Err(());
                }
                self.chunks[idx].len -= length;
                self.len -= length;
                self.emit(rope, out, Change::delete(base + index, base + end));
                Ok(())
            }
            // Block markers inside text (only a foreign peer makes them)
            // read as U+FFFC in automerge's text, so mirror them as such.
            PatchAction::Insert { index, values } => {
                if *index > self.chunks[idx].len {
                    return Err(());
                }
                let n = values.len();
                self.chunks[idx].len += n;
                self.len += n;
                let text: String = std::iter::repeat_n('\u{fffc}', n).collect();
                self.emit(rope, out, Change::insert(base + index, text));
                Ok(())
            }
            PatchAction::Mark { .. } | PatchAction::Conflict { .. } => Ok(()),
            _ => Err(()),
        }
    }

    fn emit(&self, rope: &mut Rope, out: &mut Vec<Change>, change: Change) {
        if !change.is_noop() {
            apply_to_rope(rope, &change);
            out.push(change);
        }
    }

    fn index_of(&self, obj: &ObjId) -> Option<usize> {
        self.chunks.iter().position(|c| c.obj.as_ref() == Some(obj))
    }

    fn prefix(&self, idx: usize) -> usize {
        self.chunks[..idx].iter().map(|c| c.len).sum()
    }

    /// A stable position for char index `pos` (clamped to the text).
    pub(crate) fn stable_pos(&self, pos: usize) -> Option<StablePos> {
        let pos = pos.min(self.len);
        let mut start = 0;
        let mut last_text = None;
        for c in &self.chunks {
            let Some(obj) = &c.obj else { continue };
            if pos < start + c.len {
                let cursor = self.am.get_cursor(obj, pos - start, None).ok()?;
                return Some(StablePos {
                    chunk: obj.clone(),
                    cursor,
                });
            }
            start += c.len;
            last_text = Some(obj);
        }
        let obj = last_text?;
        let cursor = self
            .am
            .get_cursor(obj, automerge::CursorPosition::End, None)
            .ok()?;
        Some(StablePos {
            chunk: obj.clone(),
            cursor,
        })
    }

    /// Where a stable position is now; `None` if it names a chunk this
    /// document does not have (a position from another document).
    pub(crate) fn resolve(&self, pos: &StablePos) -> Option<usize> {
        let idx = self.index_of(&pos.chunk)?;
        let at = contain("stable position", || {
            self.am.get_cursor_position(&pos.chunk, &pos.cursor, None)
        })
        .ok()?
        .ok()?;
        Some(self.prefix(idx) + at.min(self.chunks[idx].len))
    }

    /// Runs `f` as one local automerge transaction that also patches `rope`.
    /// On success the change is committed and queued for peers; on error
    /// nothing changes (automerge rolled back, rope restored).
    pub(crate) fn edit<R>(
        &mut self,
        rope: &mut Rope,
        f: impl FnOnce(&mut Editor<'_, '_>) -> Result<R, AutomergeError>,
    ) -> Result<(R, Vec<Change>), DocError> {
        let Some(list) = self.list.clone() else {
            return Err(DocError::ReadOnly(
                "the shared document has not arrived yet".into(),
            ));
        };
        let mut tx = self.am.transaction();
        let mut ed = Editor {
            tx: &mut tx,
            list: &list,
            chunks: &mut self.chunks,
            len: &mut self.len,
            rope,
            applied: Vec::new(),
            rope_undo: Vec::new(),
        };
        let result = f(&mut ed);
        let Editor {
            applied, rope_undo, ..
        } = ed;
        match result {
            Ok(r) => {
                let (hash, _) = tx.commit();
                self.unflushed |= hash.is_some();
                Ok((r, applied))
            }
            Err(e) => {
                tx.rollback();
                for inv in rope_undo.iter().rev() {
                    apply_to_rope(rope, inv);
                }
                self.rebuild_table();
                Err(DocError::rejected("local edit", e))
            }
        }
    }
}

/// Applies `change` (already within bounds) to `rope`.
pub(crate) fn apply_to_rope(rope: &mut Rope, change: &Change) {
    if change.end > change.start {
        rope.remove(change.start..change.end);
    }
    if !change.text.is_empty() {
        rope.insert(change.start, &change.text);
    }
}

/// The single replacement that turns `rope` into `text` (common prefix and
/// suffix kept), or `None` if they are equal.
pub(crate) fn diff_rope(rope: &Rope, text: &str) -> Option<Change> {
    diff_ropes(rope, &Rope::from_str(text))
}

/// The single replacement that turns `rope` into `target`.
pub(crate) fn diff_ropes(rope: &Rope, target: &Rope) -> Option<Change> {
    let mut prefix = 0;
    let mut a = rope.chars();
    let mut b = target.chars();
    loop {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => prefix += 1,
            (None, None) => return None,
            _ => break,
        }
    }
    let rope_len = rope.len_chars();
    let text_len = target.len_chars();
    let mut suffix = 0;
    let max_suffix = (rope_len - prefix).min(text_len - prefix);
    let mut a = rope.chars_at(rope_len).reversed();
    let mut b = target.chars_at(text_len).reversed();
    while suffix < max_suffix {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => suffix += 1,
            _ => break,
        }
    }
    let new = target.slice(prefix..text_len - suffix).to_string();
    Some(Change::replace(prefix, rope_len - suffix, new))
}

/// One local transaction in progress: the automerge side plus the rope.
pub(crate) struct Editor<'t, 'a> {
    tx: &'t mut Transaction<'a>,
    list: &'t ObjId,
    chunks: &'t mut Vec<Chunk>,
    len: &'t mut usize,
    rope: &'t mut Rope,
    /// Rope changes made, in order.
    applied: Vec<Change>,
    /// Their inverses, to restore the rope if the transaction fails.
    rope_undo: Vec<Change>,
}

impl Editor<'_, '_> {
    /// Current length in chars.
    pub(crate) fn len(&self) -> usize {
        *self.len
    }

    fn index_of(&self, obj: &ObjId) -> Option<usize> {
        self.chunks.iter().position(|c| c.obj.as_ref() == Some(obj))
    }

    fn prefix(&self, idx: usize) -> usize {
        self.chunks[..idx].iter().map(|c| c.len).sum()
    }

    fn rope_apply(&mut self, change: Change) {
        let removed = self.rope.slice(change.start..change.end).to_string();
        apply_to_rope(self.rope, &change);
        self.rope_undo.push(Change::replace(
            change.start,
            change.start + change.inserted_len(),
            removed,
        ));
        self.applied.push(change);
    }

    /// Replaces `change.start..change.end` (already clamped) with its text,
    /// pushing the stable inverse operations onto `undo` in execution order.
    pub(crate) fn splice(
        &mut self,
        change: &Change,
        undo: &mut Vec<StableOp>,
    ) -> Result<(), AutomergeError> {
        if change.end > change.start {
            self.delete(change.start, change.end, undo)?;
        }
        if !change.text.is_empty() {
            self.insert(change.start, &change.text, undo)?;
        }
        Ok(())
    }

    fn delete(
        &mut self,
        start: usize,
        end: usize,
        undo: &mut Vec<StableOp>,
    ) -> Result<(), AutomergeError> {
        // (chunk index, offset in chunk, count) of every piece, in order.
        let mut pieces = Vec::new();
        let mut at = 0;
        for (i, c) in self.chunks.iter().enumerate() {
            let (s, e) = (at, at + c.len);
            // (An empty chunk inside the range has nothing to delete.)
            if e > start && s < end && c.len > 0 && c.obj.is_some() {
                let from = start.max(s);
                let to = end.min(e);
                pieces.push((i, from - s, to - from, from));
            }
            if e >= end {
                break;
            }
            at = e;
        }
        // Back to front, so the document offsets of earlier pieces hold.
        for &(i, off, n, global) in pieces.iter().rev() {
            let Some(obj) = self.chunks[i].obj.clone() else {
                continue;
            };
            let anchor = self.char_id(&obj, off)?;
            let text = self.rope.slice(global..global + n).to_string();
            self.tx.splice_text(&obj, off, n as isize, "")?;
            self.chunks[i].len -= n;
            *self.len -= n;
            self.rope_apply(Change::delete(global, global + n));
            undo.push(StableOp::Reinsert {
                chunk: obj,
                anchor,
                text,
            });
        }
        Ok(())
    }

    /// Picks where text inserted at document offset `pos` goes: (chunk
    /// index, offset), or `Err(list index)` for a new chunk there.
    fn insert_target(&self, pos: usize, big: bool) -> Result<(usize, usize), usize> {
        let mut at = 0;
        let mut after_last_candidate = None;
        for (i, c) in self.chunks.iter().enumerate() {
            if c.obj.is_none() {
                at += c.len;
                continue;
            }
            let (s, e) = (at, at + c.len);
            if s < pos && pos < e {
                return Ok((i, pos - s)); // strictly inside: no choice
            }
            if pos == e || pos == s {
                if c.len < CHUNK_FULL_CHARS && !big {
                    return Ok((i, pos - s));
                }
                after_last_candidate = Some(if pos == e { i + 1 } else { i });
            }
            if s > pos {
                break;
            }
            at = e;
        }
        Err(after_last_candidate.unwrap_or(self.chunks.len()))
    }

    fn insert(
        &mut self,
        pos: usize,
        text: &str,
        undo: &mut Vec<StableOp>,
    ) -> Result<(), AutomergeError> {
        let big = text.len() > CHUNK_CHARS;
        match self.insert_target(pos, big) {
            Ok((i, off)) => {
                let Some(obj) = self.chunks[i].obj.clone() else {
                    return Ok(());
                };
                self.insert_in(i, &obj, off, text, undo)
            }
            Err(mut list_index) => {
                // At a boundary with full neighbours (or a large paste):
                // new chunks, cut to the normal size.
                let mut global = pos;
                for piece in cut(text, CHUNK_CHARS) {
                    let obj = self
                        .tx
                        .insert_object(self.list, list_index, ObjType::Text)?;
                    self.chunks.insert(
                        list_index,
                        Chunk {
                            obj: Some(obj.clone()),
                            len: 0,
                        },
                    );
                    self.insert_in(list_index, &obj, 0, piece, undo)?;
                    global += piece.chars().count();
                    list_index += 1;
                }
                debug_assert!(global >= pos);
                Ok(())
            }
        }
    }

    /// Inserts `text` into chunk `i` (object `obj`) at offset `off`.
    fn insert_in(
        &mut self,
        i: usize,
        obj: &ObjId,
        off: usize,
        text: &str,
        undo: &mut Vec<StableOp>,
    ) -> Result<(), AutomergeError> {
        let n = text.chars().count();
        if n == 0 {
            return Ok(());
        }
        let ops_before = self.tx.pending_ops();
        self.tx.splice_text(obj, off, 0, text)?;
        let ops = (self.tx.pending_ops() - ops_before) as u64;
        self.chunks[i].len += n;
        *self.len += n;
        let global = self.prefix(i) + off;
        self.rope_apply(Change::insert(global, text));
        // The splice's insert ops have consecutive counters from the first
        // char's; only that one is looked up.
        let first = self.char_id(obj, off)?;
        undo.push(StableOp::RemoveInserted {
            chunk: obj.clone(),
            actor: first.actor,
            counters: first.ctr..=first.ctr + ops.max(1) - 1,
        });
        Ok(())
    }

    /// The id of the char at `off` of chunk `obj`.
    fn char_id(&self, obj: &ObjId, off: usize) -> Result<CharId, AutomergeError> {
        match self.tx.get(obj, off)? {
            Some((_, ObjId::Id(ctr, actor, _))) => Ok(CharId { ctr, actor }),
            _ => Err(AutomergeError::InvalidIndex(off)),
        }
    }

    /// Applies one undo/redo operation; pushes its inverse onto `inverse`.
    /// An operation whose chunk or cursor no longer resolves is skipped.
    pub(crate) fn apply_stable(
        &mut self,
        op: &StableOp,
        inverse: &mut Vec<StableOp>,
    ) -> Result<(), AutomergeError> {
        match op {
            StableOp::RemoveInserted {
                chunk,
                actor,
                counters,
            } => {
                let Some(i) = self.index_of(chunk) else {
                    return Ok(());
                };
                let clen = self.chunks[i].len;
                let first = CharId {
                    ctr: *counters.start(),
                    actor: actor.clone(),
                };
                let last = CharId {
                    ctr: *counters.end(),
                    actor: actor.clone(),
                };
                let (Some(first), Some(last)) = (first.cursor(), last.cursor()) else {
                    return Ok(());
                };
                let (Ok(a), Ok(b)) = (
                    self.tx.get_cursor_position(chunk, &first, None),
                    self.tx.get_cursor_position(chunk, &last, None),
                ) else {
                    return Ok(());
                };
                if clen == 0 || a >= clen {
                    return Ok(());
                }
                let b = b.min(clen - 1);
                if a > b {
                    return Ok(());
                }
                // Runs of our own chars in a..=b: [start, end) and their text.
                let mut runs: Vec<(usize, usize, String)> = Vec::new();
                for item in self.tx.list_range(chunk, a..=b) {
                    let ours = matches!(item.id(), ObjId::Id(ctr, ref who, _)
                        if who == actor && counters.contains(&ctr));
                    if !ours {
                        continue;
                    }
                    let s = match &item.value {
                        ValueRef::Scalar(ScalarValueRef::Str(s)) => s.to_string(),
                        _ => "\u{fffc}".to_string(),
                    };
                    let w = s.chars().count();
                    match runs.last_mut() {
                        Some(run) if run.1 == item.index => {
                            run.1 += w;
                            run.2.push_str(&s);
                        }
                        _ => runs.push((item.index, item.index + w, s)),
                    }
                }
                for (s, e, text) in runs.into_iter().rev() {
                    let anchor = self.char_id(chunk, s)?;
                    self.tx.splice_text(chunk, s, (e - s) as isize, "")?;
                    self.chunks[i].len -= e - s;
                    *self.len -= e - s;
                    let g = self.prefix(i);
                    self.rope_apply(Change::delete(g + s, g + e));
                    inverse.push(StableOp::Reinsert {
                        chunk: chunk.clone(),
                        anchor,
                        text,
                    });
                }
                Ok(())
            }
            StableOp::Reinsert {
                chunk,
                anchor,
                text,
            } => {
                let Some(i) = self.index_of(chunk) else {
                    return Ok(());
                };
                let Some(cursor) = anchor.cursor() else {
                    return Ok(());
                };
                let Ok(p) = self.tx.get_cursor_position(chunk, &cursor, None) else {
                    return Ok(());
                };
                let p = p.min(self.chunks[i].len);
                self.insert_in(i, chunk, p, text, inverse)
            }
        }
    }
}

/// Cuts `text` into pieces of at most `n` chars (the last may be shorter).
fn cut(text: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let split = rest
            .char_indices()
            .nth(n)
            .map(|(b, _)| b)
            .unwrap_or(rest.len());
        let (head, tail) = rest.split_at(split);
        out.push(head);
        rest = tail;
    }
    out
}
