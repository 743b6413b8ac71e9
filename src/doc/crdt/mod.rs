//! The CRDT half of a shared document: automerge text split into chunks.
//!
//! Files: `mod.rs` the state ([`SharedState`]), building, loading, saving
//! and reading it; `edit.rs` local edits (`ChunkEditor`: one transaction,
//! undo records, repairs); `remote.rs` remote changes and the sync
//! protocol; `split.rs` splitting chunks and following splits; `mirror.rs`
//! the rope mirror and stable positions; `wire.rs` the change messages'
//! format.
//!
//! # Layout
//!
//! ```text
//! ROOT { "lshed": 1, "chunks": List [ Text, Text, List [ Text, ... ], ... ] }
//! ```
//!
//! The document's text is the concatenation of the `Text` objects of the
//! layout tree, depth first: elements of `chunks` are chunks or *groups*
//! (lists of chunks and groups). A buffer that becomes shared is cut into
//! chunks of [`CHUNK_CHARS`] chars; while it is edited, text typed at a
//! chunk boundary goes into a neighbour that is not yet full
//! ([`CHUNK_FULL_CHARS`]) or into a new chunk beside it, so that no chunk
//! grows from typing at its edges. Text typed strictly inside a chunk stays
//! in that chunk (moving text between chunks is a CRDT "move", which
//! automerge does not have), so the layout owner (the replica that built
//! the state: the host) splits a chunk whose history grew: the chunk's
//! list element gets a group of fresh chunks with the same text, and the
//! old chunk is *retired* (still in automerge, no longer in the layout).
//! What a replica wrote into a chunk while it was being split (it had
//! not seen the split yet) is moved by that replica onto the chars that
//! replaced it as it follows the split ([`Retired`], `follow_split`,
//! `ChunkEditor::settle`), and its undo entries that name the old chunk
//! are carried out on those chars (`ChunkEditor::translate_stable`). Chunks are never
//! deleted by lshed. A change of the layout (the owner's split, or anything
//! a foreign peer does) is followed by re-reading the table and patching
//! the rope with the one difference, if any (`resync_changed_chunks`,
//! [`SharedState::resync_rope`]): a split changes no text, so the rope and
//! every cursor stay put.
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
//! full re-read is [`SharedState::resync_rope`], used when the layout
//! changes under a peer (the owner's split, a chunk added inside a group,
//! hostile input) and after recovering from a panic: O(n), once per split.

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
use std::collections::{HashMap, HashSet};

mod edit;
mod mirror;
mod remote;
mod split;
mod wire;

// The helpers each part uses, named here so that every part reaches them
// through `use super::*`.
pub(crate) use mirror::{apply_to_rope, diff_ropes, net_changes};
use remote::probe_max_op;
use split::{char_hunks, cut};
pub use wire::change_actors;
use wire::{arrival, decode_changes, encode_changes, load_options, read_u32};

/// Size of the chunks a buffer is cut into when it becomes shared.
pub const CHUNK_CHARS: usize = 1024;
/// Chunks per automerge change when a buffer becomes shared.
const BUILD_CHUNKS_PER_CHANGE: usize = 16;
/// A chunk this long no longer takes text typed at its edges.
pub const CHUNK_FULL_CHARS: usize = 2 * CHUNK_CHARS;
/// The layout owner splits a chunk once this many chars have been inserted
/// into or deleted from it (counting its initial text): applying a remote
/// op costs time linear in the ops of its chunk, so this bounds a remote
/// keystroke at about 0.5 ms (on a 2-core machine of 2026, release
/// build), however long the session.
pub const SPLIT_CHURN: usize = 4 * CHUNK_CHARS;
/// Deepest nesting of groups followed when reading the layout (only a
/// hostile peer nests deeper than a few levels).
const MAX_GROUP_DEPTH: usize = 64;

const FORMAT_KEY: &str = "lshed";
/// Root key of a scratch text that lshed 0.1's layout owner wrote before
/// moving others' edits; not part of the text (ignored when it arrives
/// from an older peer's saved state).
const ORDER_KEY: &str = "order";
const FORMAT_VERSION: i64 = 1;
const CHUNKS_KEY: &str = "chunks";
/// A received sync message larger than this resets the recovery checkpoint
/// instead of being logged change by change.
const BIG_SYNC_BYTES: usize = 64 * 1024;

/// Most bytes of changes held back for a missing dependency (see
/// [`SharedState::held`]); past it the oldest are forgotten (the sync
/// protocol brings them back: their authors still have them).
const MAX_HELD_BYTES: usize = 16 * 1024 * 1024;

/// One chunk: a leaf of the layout tree, in document order.
#[derive(Debug, Clone)]
struct Chunk {
    /// The Text object; `None` for an element that is not text (only a
    /// foreign peer can put one there). It then holds no chars.
    obj: Option<ObjId>,
    /// Its length in chars.
    len: usize,
    /// The list it is an element of (`chunks` or a group).
    parent: ObjId,
    /// Chars inserted and deleted since it was made, its initial text
    /// included: a stand-in for the size of its automerge history.
    churn: usize,
}

impl Chunk {
    /// Counts `n` chars of churn; whether the chunk is now past `limit`.
    fn churned(&mut self, n: usize, limit: usize) -> bool {
        self.churn += n;
        self.churn > limit
    }
}

/// What a replica remembers of a split chunk, to carry edits that name it
/// (undo entries, and edits that raced the split) out on the chunks that
/// replaced it.
#[derive(Debug, Clone)]
struct Retired {
    /// The chunks that replaced it (the first is where text goes when
    /// nothing of `refs` is left to anchor it).
    pieces: Vec<ObjId>,
    /// For each char the chunk had in the split change, the char of
    /// `author` that stands for it in the new layout: (index in `pieces`,
    /// op counter). Compact (16 bytes a char), as records are kept for the
    /// session.
    refs: Vec<(u32, u64)>,
    /// The layout owner's actor (the author of the split).
    author: ActorId,
    /// The split change: the chunk is read as of it to line its chars up
    /// with `refs`.
    at: Vec<ChangeHash>,
    /// This replica's chars that raced the split and were moved onto the
    /// new chunks (`ChunkEditor::settle`): the racing char's counter →
    /// (chunk, counter of the char that replaced it), so that undo
    /// entries naming them still work.
    moved: HashMap<u64, (ObjId, u64)>,
    /// Layout owner: actors whose racing edits it moved for them (they
    /// left before they saw the split), so that it never moves them twice.
    settled_for: Vec<ActorId>,
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
    /// Group lists of the layout (chunks that were split).
    groups: HashSet<ObjId>,
    /// Text objects that were chunks and have been replaced by a group.
    /// Their patches are ignored; edits to them are the owner's to move.
    retired_ids: HashSet<ObjId>,
    /// Whether this replica owns the layout (it built the state from text:
    /// the host). Only the owner splits chunks, so splits never conflict.
    splitter: bool,
    /// The splits this replica knows how to follow: the owner's own, and
    /// those others followed as they arrived (see `follow_split`).
    retired: HashMap<ObjId, Retired>,
    /// Retired chunks this replica may have edits of its own in that are
    /// not yet on the new chunks: splits just followed (its edits in
    /// flight raced them) and chunks an undo entry reached directly.
    /// `maintain` moves them (`ChunkEditor::settle`).
    dirty: Vec<ObjId>,
    /// A settle changed the text in the current remote apply: the rope
    /// changes reported are then the net difference (see
    /// `SharedState::apply_remote`).
    settled: bool,
    /// Churn past which the owner splits a chunk ([`SPLIT_CHURN`]).
    split_churn: usize,
    /// Some chunk's churn passed `split_churn` since the last
    /// [`Self::maintain`] (so that it need not look at every chunk after
    /// every keystroke).
    hot: bool,
    /// Whether the owner splits chunks now (see [`Self::set_splitting`]).
    splitting: bool,
    /// The text as a rope, made by `build`/`load` (on the worker that runs
    /// them) for [`super::Document::attach`]; dropped by any change.
    text_cache: Option<Rope>,
    /// The document's highest op counter, when known: the ops of our next
    /// transaction are numbered from it, so the ids of the chars we insert
    /// are known without looking them up (a lookup cost about a tenth of a
    /// local edit). Forgotten when remote changes arrive.
    max_op: Option<u64>,
    /// Remote changes that arrived before a change they depend on (a
    /// message was lost), with their raw bytes, oldest first. They are kept
    /// here and not handed to automerge, whose queue of such changes stalls
    /// the sync protocol: a replica whose queue reaches back to a peer's
    /// heads asks that peer for one missing change per round trip and
    /// withholds its summary of what it has, so catching up after losing N
    /// changes took N round trips. Applied as soon as what they need is in.
    held: Vec<(automerge::Change, Vec<u8>)>,
    held_bytes: usize,
    /// While remote changes are being applied (not the owner): who made
    /// them, their op ranges and hashes, so that a split among them can be
    /// read as it was when made (see `follow_split`).
    arriving: Vec<Arrival>,
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

/// Who made a change, its op range and hash (see `SharedState::arriving`).
type Arrival = (ActorId, std::ops::RangeInclusive<u64>, ChangeHash);

impl SharedState {
    /// CRDT state holding `text`, cut into chunks, as one change by `actor`.
    ///
    /// Costs about 0.4 s per million chars (see the module docs of
    /// [`super`]); run it off the UI thread for large buffers.
    pub fn build(text: &Rope, actor: ActorId) -> Result<Self, DocError> {
        let mut am = Automerge::new_with_encoding(TextEncoding::UnicodeCodePoint).with_actor(actor);
        let mut chunks = Vec::with_capacity(text.len_chars() / CHUNK_CHARS + 1);
        // Several changes of BUILD_CHUNKS_PER_CHANGE chunks each: automerge
        // builds 1 MB in 0.37 s that way against 0.82 s as one change (a
        // transaction's cost per op grows with its size).
        let built = (|| -> Result<ObjId, AutomergeError> {
            let mut tx = am.transaction();
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
                    parent: list.clone(),
                    churn: end - start,
                });
                start = end;
                if start >= n {
                    break;
                }
                if chunks.len() % BUILD_CHUNKS_PER_CHANGE == 0 {
                    tx.commit();
                    tx = am.transaction();
                }
            }
            tx.commit();
            Ok(list)
        })();
        // (A failure leaves a partial state that is dropped here.)
        let list = built.map_err(|e| DocError::rejected("new shared text", e))?;
        let checkpoint = am.save();
        let mut state = Self::with(am, checkpoint, true);
        state.list = Some(list);
        state.len = text.len_chars();
        state.chunks = chunks;
        state.text_cache = Some(text.clone());
        Ok(state)
    }

    /// An empty state for a peer that will receive everything through the
    /// sync protocol. It is read-only until the layout has arrived.
    pub fn empty(actor: ActorId) -> Self {
        let am = Automerge::new_with_encoding(TextEncoding::UnicodeCodePoint).with_actor(actor);
        Self::with(am, Vec::new(), false)
    }

    /// A state around `am` with an empty chunk table (the callers fill it
    /// in); `splitter`: whether this replica owns the layout.
    fn with(am: Automerge, checkpoint: Vec<u8>, splitter: bool) -> Self {
        Self {
            flushed_heads: am.get_heads(),
            am,
            list: None,
            chunks: Vec::new(),
            len: 0,
            outgoing: Vec::new(),
            unflushed: false,
            log_bytes: 0,
            checkpoint,
            log: Vec::new(),
            groups: HashSet::new(),
            retired_ids: HashSet::new(),
            splitter,
            retired: HashMap::new(),
            dirty: Vec::new(),
            settled: false,
            split_churn: SPLIT_CHURN,
            hot: false,
            splitting: false,
            text_cache: None,
            max_op: None,
            held: Vec::new(),
            held_bytes: 0,
            arriving: Vec::new(),
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
        let mut state = Self::with(am, bytes.to_vec(), false);
        state.rebuild_table();
        if state.list.is_none() && !state.am.get_heads().is_empty() {
            return Err(DocError::NotADocument("no \"chunks\" list".into()));
        }
        // Made here, on the loading thread, so attaching costs little.
        state.text_cache = Some(Rope::from_str(&state.text()));
        Ok(state)
    }

    /// The heads of the history now (see [`Self::changes_since`]).
    pub fn heads(&self) -> Vec<ChangeHash> {
        self.am.get_heads()
    }

    /// Hashes of changes this replica has been sent changes depending on
    /// but has not got itself (those changes wait in automerge's queue
    /// until they arrive).
    pub fn missing_deps(&self) -> Vec<ChangeHash> {
        self.am.get_missing_deps(&[])
    }

    /// Every change this replica has that `heads` does not include (its own
    /// and others'), as one message for [`super::Document::apply_remote`];
    /// `None` if there are none. Cheap when few changes were made since.
    pub fn changes_since(&self, heads: &[ChangeHash]) -> Option<Vec<u8>> {
        let raws: Vec<Vec<u8>> = self
            .am
            .get_changes(heads)
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        (!raws.is_empty()).then(|| encode_changes(&raws))
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

    /// The text as a rope: the one `build`/`load` made if nothing changed
    /// since, else read now (O(n)).
    pub(crate) fn take_text_rope(&mut self) -> Rope {
        self.text_cache
            .take()
            .unwrap_or_else(|| Rope::from_str(&self.text()))
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

    /// Whether this replica owns the layout (built the state from text) and
    /// so splits chunks.
    pub fn owns_layout(&self) -> bool {
        self.splitter
    }

    /// Layout owner: split chunks whose history has grown past the churn
    /// threshold (off by default). The host turns it on when a file has
    /// viewers: every split copies the chunk's text into fresh chunks, which
    /// makes the host's own later edits slower (automerge's cost per local
    /// op grows with the whole document; 1.56x raw automerge on
    /// automerge-paper against 1.15x without splits), and in exchange bounds
    /// what every viewer pays per remote keystroke (0.34 ms instead of tens
    /// of ms at the end of the same trace). A document nobody else views
    /// gains nothing from it. Does nothing on a replica that does not own
    /// the layout.
    pub fn set_splitting(&mut self, on: bool) {
        self.splitting = on;
        self.hot = true;
    }

    /// Sets the churn past which the layout owner splits a chunk (default
    /// [`SPLIT_CHURN`]); tests use small values to split often.
    pub fn set_split_churn(&mut self, churn: usize) {
        self.split_churn = churn.max(1);
        self.hot = true;
    }

    /// Chunks split so far that this replica knows of.
    pub fn retired_count(&self) -> usize {
        self.retired_ids.len()
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
}

/// The chunks that replace a split one, and the stand-in of each char of
/// its text (index among those chunks, op counter).
type Group = (ObjId, Vec<Chunk>, Vec<(u32, u64)>);

/// Largest (old × new) changed middle diffed char by char; beyond it the
/// middle is one replacement (similar's LCS table costs this many cells).
const MAX_HUNK_CELLS: usize = 1 << 20;
