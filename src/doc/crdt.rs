//! The CRDT half of a shared document: automerge text split into chunks.
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
//! What others write into a retired chunk (they had not seen the split
//! yet, or they undo text that was in it) is moved by the owner onto the
//! chars that replaced it ([`Retired`], `ChunkEditor::repair`); a replica that
//! followed the split maps its own undo onto those chars itself
//! (`follow_split`, `ChunkEditor::translate_stable`). Chunks are never
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
/// Root key of the scratch text the owner writes to raise its op counter
/// before a repair insert (see `ChunkEditor::outrank`); not part of the text.
const ORDER_KEY: &str = "order";
/// How far a repair insert's op counter is raised past the owner's: far
/// above what one person types in a round trip.
const REPAIR_RANK: usize = 64;
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

/// What a replica remembers of a split chunk. The layout owner: to move
/// edits that others made to it concurrently (and undo entries that still
/// name it) onto the chunks that replaced it. Others (`follow_split`): to
/// carry out their own undo entries that name it on those chunks.
#[derive(Debug, Clone)]
struct Retired {
    /// Its text as of the last repair (the owner), or as of the split.
    text: Vec<char>,
    /// The chunks that replaced it (the first is where text goes when
    /// nothing of `refs` is left to anchor it).
    pieces: Vec<ObjId>,
    /// For each char of `text`, the char of `author` that stands for it in
    /// the new layout: (index in `pieces`, op counter). Compact (16 bytes a
    /// char), as records are kept for the session.
    refs: Vec<(u32, u64)>,
    /// The layout owner's actor (the author of the split).
    author: ActorId,
    /// Not the owner: the split change, so that `text` and `refs` are read
    /// as of it (the owner keeps them current by repairing instead).
    at: Vec<ChangeHash>,
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
    /// Owner only: the chunks it split.
    retired: HashMap<ObjId, Retired>,
    /// Owner only: retired chunks changed since the last repair.
    dirty: Vec<ObjId>,
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

/// Who made a change, its op range and hash (see `SharedState::arriving`).
type Arrival = (ActorId, std::ops::RangeInclusive<u64>, ChangeHash);

fn arrival(c: &automerge::Change) -> Arrival {
    (
        c.actor_id().clone(),
        c.start_op().get()..=c.max_op(),
        c.hash(),
    )
}

fn load_options() -> LoadOptions<'static> {
    LoadOptions::new().text_encoding(TextEncoding::UnicodeCodePoint)
}

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

    /// Re-reads the chunk table (the leaves of the layout tree, in order)
    /// from automerge. Chunks that were in the table and are no longer are
    /// remembered as retired.
    fn rebuild_table(&mut self) {
        self.list = match self.am.get(ROOT, CHUNKS_KEY) {
            Ok(Some((Value::Object(ObjType::List), id))) => Some(id),
            _ => None,
        };
        let old: Vec<ObjId> = self.chunks.drain(..).filter_map(|c| c.obj).collect();
        self.groups.clear();
        self.len = 0;
        if let Some(list) = self.list.clone() {
            let mut chunks = Vec::new();
            walk_layout(&self.am, &list, 0, &mut chunks, &mut self.groups);
            self.len = chunks.iter().map(|c| c.len).sum();
            self.chunks = chunks;
        }
        if !old.is_empty() {
            let now: HashSet<&ObjId> = self.chunks.iter().filter_map(|c| c.obj.as_ref()).collect();
            let gone: Vec<ObjId> = old.into_iter().filter(|o| !now.contains(o)).collect();
            self.retired_ids.extend(gone);
        }
    }

    /// Makes `rope` equal the automerge text again after the layout changed
    /// under us: re-reads the table and the text, and patches the rope with
    /// one replacement of the part that differs. O(n), only for the rare
    /// paths named in the module docs.
    pub(crate) fn resync_rope(&mut self, rope: &mut Rope, out: &mut Vec<Change>) {
        let old = if self.splitter || self.arriving.is_empty() {
            Vec::new()
        } else {
            self.chunks.clone()
        };
        self.rebuild_table();
        if !old.is_empty() {
            self.follow_split(&old, 0, 0);
        }
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
        self.max_op = None;
        self.rebuild_table();
        Ok(())
    }

    /// Applies a message made by a peer's [`Self::take_outgoing`]. Patches
    /// `rope` and returns the changes applied to it, in order.
    pub(crate) fn apply_remote(&mut self, rope: &mut Rope, bytes: &[u8]) -> Remote {
        self.text_cache = None;
        let known_max_op = self.max_op.take();
        // The recovery log must hold every local change before foreign
        // input can make automerge panic.
        self.flush();
        // Decoding touches no document: a failure here changes nothing.
        let decoded = match decode_changes(bytes) {
            Ok(d) => d,
            Err(e) => return Remote::failed(e),
        };
        let incoming = decoded.into_iter().map(|(c, raw)| (c, raw.to_vec()));
        let ready = self.take_ready(incoming.collect());
        self.apply_ready(rope, ready, known_max_op)
    }

    /// Applies changes whose dependencies are all in (see
    /// [`Self::take_ready`]). `known_max_op`: the highest op before, if known.
    fn apply_ready(
        &mut self,
        rope: &mut Rope,
        ready: Vec<(automerge::Change, Vec<u8>)>,
        known_max_op: Option<u64>,
    ) -> Remote {
        const WHAT: &str = "change message";
        if ready.is_empty() {
            self.max_op = known_max_op;
            return Remote {
                changes: Vec::new(),
                error: None,
            };
        }
        let (changes, raws): (Vec<automerge::Change>, Vec<Vec<u8>>) = ready.into_iter().unzip();
        let stamps: Vec<u64> = changes.iter().map(|c| c.max_op()).collect();
        self.note_retired_edits(&changes);
        if !self.splitter {
            self.arriving = changes.iter().map(arrival).collect();
        }
        let nothing_queued = self.am.get_missing_deps(&[]).is_empty();
        let mut plog = PatchLog::active();
        let am = &mut self.am;
        let outcome = contain(WHAT, || am.apply_changes_log_patches(changes, &mut plog));
        let mut remote = self.finish_remote(rope, outcome, plog, WHAT, |s| {
            for raw in raws {
                s.log_raw(raw);
            }
        });
        self.arriving.clear();
        // Our next ops are numbered past every applied change. When nothing
        // waits in automerge's queue before or after (so exactly these
        // changes were applied, none held back for a missing dependency and
        // no earlier one released), the highest op is known without a
        // probe at the next keystroke.
        if remote.error.is_none() && nothing_queued && self.am.get_missing_deps(&[]).is_empty() {
            let newest = stamps.iter().copied().max().unwrap_or(0);
            self.max_op = known_max_op.map(|m| m.max(newest));
        }
        remote.changes.extend(self.maintain(rope));
        remote
    }

    /// Layout owner: queues for repair the retired chunks that `changes`
    /// touch (made by peers that had not seen the split yet, or their undo).
    fn note_retired_edits(&mut self, changes: &[automerge::Change]) {
        if !self.splitter || self.retired.is_empty() {
            return;
        }
        for change in changes {
            let Ok(expanded) = contain("change", || change.decode()) else {
                continue;
            };
            for op in expanded.operations {
                if let automerge::legacy::ObjectId::Id(automerge::legacy::OpId(ctr, actor)) = op.obj
                {
                    let id = ObjId::Id(ctr, actor, 0);
                    if self.retired.contains_key(&id) && !self.dirty.contains(&id) {
                        self.dirty.push(id);
                    }
                }
            }
        }
    }

    /// Layout owner's upkeep after every edit and remote apply: moves edits
    /// made to split chunks onto the chunks that replaced them, then splits
    /// chunks whose history has grown past [`SPLIT_CHURN`]. Returns the
    /// rope changes made (the moved edits; a split changes no text).
    pub(crate) fn maintain(&mut self, rope: &mut Rope) -> Vec<Change> {
        if !self.splitter {
            self.dirty.clear();
            return Vec::new();
        }
        let mut out = Vec::new();
        if !self.dirty.is_empty() {
            let repaired = self.edit(rope, |ed| {
                // Repairs can dirty other retired chunks (a split chunk's
                // replacement split again); each round settles one.
                for _ in 0..4096 {
                    let Some(obj) = ed.dirty.pop() else { break };
                    ed.repair(&obj)?;
                }
                Ok(())
            });
            self.dirty.clear();
            if let Ok(((), changes)) = repaired {
                out = changes;
            }
        }
        if !self.splitting {
            return out;
        }
        for _ in 0..64 {
            let Some(i) = self
                .chunks
                .iter()
                .position(|c| c.churn > self.split_churn && c.obj.is_some())
            else {
                break;
            };
            if self.split(i).is_err() {
                // Never retried: a bug here must not cost every keystroke.
                self.chunks[i].churn = 0;
            }
        }
        out
    }

    /// Replaces chunk `i` by a group of fresh chunks holding its text, as
    /// one change. The text is unchanged; the old chunk is retired.
    fn split(&mut self, i: usize) -> Result<(), AutomergeError> {
        let Chunk { obj, parent, .. } = self.chunks[i].clone();
        let Some(obj) = obj else { return Ok(()) };
        let text = self.am.text(&obj)?;
        let sub = self
            .am
            .list_range(&parent, ..)
            .position(|item| item.id() == obj)
            .ok_or(AutomergeError::InvalidIndex(i))?;
        let mut tx = self.am.transaction();
        // Pieces well under the threshold, or they would split again soon.
        let piece = (self.split_churn / 4).clamp(1, CHUNK_CHARS);
        match split_into_group(&mut tx, &parent, sub, &text, piece) {
            Ok((group, chunks, refs)) => {
                tx.commit();
                self.max_op = None;
                self.unflushed = true;
                let pieces = chunks.iter().filter_map(|c| c.obj.clone()).collect();
                self.chunks.splice(i..=i, chunks);
                self.groups.insert(group);
                self.retired_ids.insert(obj.clone());
                self.retired.insert(
                    obj,
                    Retired {
                        text: text.chars().collect(),
                        pieces,
                        refs,
                        author: self.am.get_actor().clone(),
                        at: Vec::new(),
                    },
                );
                Ok(())
            }
            Err(e) => {
                tx.rollback();
                Err(e)
            }
        }
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
        self.text_cache = None;
        self.max_op = None;
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
        // (After a contained panic automerge is half-modified: not read
        // until `finish_remote` has rebuilt it.)
        let moved = outcome.is_ok() && self.am.get_heads() != heads_before;
        let owner_repairs = self.splitter && !self.retired.is_empty();
        // What the message brought, read once (for the log, for following
        // a split, for the owner's repairs); not for a big message unless
        // the owner needs it (a whole document's changes: the log takes a
        // save instead).
        let received: Vec<automerge::Change> = if moved && (!big || owner_repairs) {
            self.am.get_changes(&heads_before)
        } else {
            Vec::new()
        };
        if !self.splitter {
            self.arriving = received.iter().map(arrival).collect();
        }
        let mut remote = self.finish_remote(rope, outcome, plog, WHAT, |s| {
            if !moved {
                return;
            }
            if big {
                s.checkpoint = s.am.save();
                s.log.clear();
                s.log_bytes = 0;
            } else {
                for c in &received {
                    s.log_raw(c.raw_bytes().to_vec());
                }
            }
        });
        self.arriving.clear();
        if owner_repairs {
            self.note_retired_edits(&received);
        }
        if !self.held.is_empty() && self.am.get_heads() != heads_before {
            // What the sync brought may be what held changes waited for.
            let ready = self.take_ready(Vec::new());
            let released = self.apply_ready(rope, ready, None);
            remote.changes.extend(released.changes);
            remote.error = remote.error.or(released.error);
        }
        remote.changes.extend(self.maintain(rope));
        remote
    }

    /// Sorts `incoming` and the held changes into those that can be applied
    /// now (each dependency is in the document or among them), returned in
    /// an order automerge applies without queueing, and those that wait
    /// for a missing one (kept in `held`, oldest forgotten past
    /// [`MAX_HELD_BYTES`]).
    fn take_ready(
        &mut self,
        incoming: Vec<(automerge::Change, Vec<u8>)>,
    ) -> Vec<(automerge::Change, Vec<u8>)> {
        let mut batch = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        batch.extend(incoming);
        let mut seen = HashSet::new();
        batch.retain(|(c, _)| seen.insert(c.hash()));
        let index: HashMap<ChangeHash, usize> = batch
            .iter()
            .enumerate()
            .map(|(i, (c, _))| (c.hash(), i))
            .collect();
        // One lookup for every dependency outside the batch.
        let outside: Vec<ChangeHash> = batch
            .iter()
            .flat_map(|(c, _)| c.deps().iter().copied())
            .filter(|d| !index.contains_key(d))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let missing: HashSet<ChangeHash> = if outside.is_empty() {
            HashSet::new()
        } else {
            self.am.get_missing_deps(&outside).into_iter().collect()
        };
        // Kahn's algorithm over the batch: a change is ready once nothing
        // it depends on is missing or still waiting.
        let mut waiting_on = vec![0usize; batch.len()];
        let mut blocked = vec![false; batch.len()];
        let mut dependents: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, (c, _)) in batch.iter().enumerate() {
            for d in c.deps() {
                if let Some(&j) = index.get(d) {
                    waiting_on[i] += 1;
                    dependents.entry(j).or_default().push(i);
                } else if missing.contains(d) {
                    blocked[i] = true;
                }
            }
        }
        let mut order: Vec<usize> = (0..batch.len())
            .filter(|&i| waiting_on[i] == 0 && !blocked[i])
            .collect();
        let mut next = 0;
        while next < order.len() {
            if let Some(ds) = dependents.get(&order[next]) {
                for &i in ds {
                    waiting_on[i] -= 1;
                    if waiting_on[i] == 0 && !blocked[i] {
                        order.push(i);
                    }
                }
            }
            next += 1;
        }
        let mut slots: Vec<Option<(automerge::Change, Vec<u8>)>> =
            batch.into_iter().map(Some).collect();
        let ready = order.iter().filter_map(|&i| slots[i].take()).collect();
        let held: Vec<_> = slots.into_iter().flatten().collect();
        let mut keep = 0;
        let mut bytes = 0;
        for (_, raw) in held.iter().rev() {
            if bytes + raw.len() > MAX_HELD_BYTES {
                break;
            }
            bytes += raw.len();
            keep += 1;
        }
        self.held = held.into_iter().rev().take(keep).rev().collect();
        self.held_bytes = bytes;
        ready
    }

    /// How many remote changes wait for a change they depend on.
    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    /// Turns automerge patches into rope changes, keeping the chunk table.
    ///
    /// A layout change (a split, a chunk added inside a group) is not
    /// followed patch by patch: the rest is applied to the chunks the table
    /// knows, and the table is re-read at the end, with the rope patched
    /// only where chunks came or went (a split changes no text).
    fn patch_rope(&mut self, rope: &mut Rope, patches: &[automerge::Patch], out: &mut Vec<Change>) {
        let mut layout_changed = false;
        for patch in patches {
            if self.patch_one(rope, patch, out).is_ok() {
                continue;
            }
            let on_layout =
                self.list.as_ref() == Some(&patch.obj) || self.groups.contains(&patch.obj);
            if on_layout || (layout_changed && self.index_of(&patch.obj).is_none()) {
                // The layout, or a chunk that is new in it: read at the end.
                layout_changed = true;
                continue;
            }
            self.resync_rope(rope, out);
            return;
        }
        if layout_changed {
            self.resync_changed_chunks(rope, out);
        }
    }

    /// Re-reads the table after its layout changed and makes the rope
    /// follow, reading only the chunks between the longest unchanged prefix
    /// and suffix of the table (the rope already mirrors those). Falls back
    /// to [`Self::resync_rope`] if anything does not add up.
    fn resync_changed_chunks(&mut self, rope: &mut Rope, out: &mut Vec<Change>) {
        let old = self.chunks.clone();
        let churn: HashMap<ObjId, usize> = old
            .iter()
            .filter_map(|c| Some((c.obj.clone()?, c.churn)))
            .collect();
        self.rebuild_table();
        for c in &mut self.chunks {
            if let Some(n) = c.obj.as_ref().and_then(|o| churn.get(o)) {
                c.churn = (*n).max(c.len);
                self.hot |= c.churn > self.split_churn;
            }
        }
        let same = |a: &Chunk, b: &Chunk| a.obj.is_some() && a.obj == b.obj && a.len == b.len;
        let new = &self.chunks;
        let pre = old.iter().zip(new).take_while(|(a, b)| same(a, b)).count();
        let suf = old[pre..]
            .iter()
            .rev()
            .zip(new[pre..].iter().rev())
            .take_while(|(a, b)| same(a, b))
            .count();
        if !self.splitter {
            self.follow_split(&old[pre..old.len() - suf], pre, suf);
        }
        let new = &self.chunks;
        let start: usize = old[..pre].iter().map(|c| c.len).sum();
        let old_mid: usize = old[pre..old.len() - suf].iter().map(|c| c.len).sum();
        let tail: usize = old[old.len() - suf..].iter().map(|c| c.len).sum();
        if start + old_mid + tail != rope.len_chars() {
            return self.resync_rope(rope, out);
        }
        let mut text = String::new();
        for obj in new[pre..new.len() - suf]
            .iter()
            .filter_map(|c| c.obj.as_ref())
        {
            if let Ok(t) = self.am.text(obj) {
                text.push_str(&t);
            }
        }
        let region = Rope::from(rope.slice(start..start + old_mid));
        if let Some(mut change) = diff_ropes(&region, &Rope::from_str(&text)) {
            change.start += start;
            change.end += start;
            apply_to_rope(rope, &change);
            out.push(change);
        }
    }

    /// Not the layout owner: when the table changed by one chunk giving way
    /// to new ones made by one change (the owner split it), records which
    /// new char stands for each char the chunk had in that change, as the
    /// owner does. Our undo entries that name the old chunk
    /// are then carried out on the new chunks at once (see
    /// `ChunkEditor::apply_stable`) instead of landing in the retired chunk and
    /// showing only when the owner's repair comes back a round trip later.
    fn follow_split(&mut self, old_mid: &[Chunk], pre: usize, suf: usize) {
        let new_objs: HashSet<&ObjId> = self.chunks.iter().filter_map(|c| c.obj.as_ref()).collect();
        let gone: Vec<ObjId> = old_mid
            .iter()
            .filter_map(|c| c.obj.clone())
            .filter(|o| !new_objs.contains(o))
            .collect();
        let old_objs: HashSet<&ObjId> = old_mid.iter().filter_map(|c| c.obj.as_ref()).collect();
        // The new chunks, by the group they are in: one group per split,
        // in the order of the chunks they replaced.
        let mut groups: Vec<(ObjId, Vec<ObjId>)> = Vec::new();
        for c in &self.chunks[pre..self.chunks.len() - suf] {
            let Some(obj) = c.obj.as_ref().filter(|o| !old_objs.contains(o)) else {
                continue;
            };
            match groups.last_mut() {
                Some((parent, pieces)) if *parent == c.parent => pieces.push(obj.clone()),
                _ => groups.push((c.parent.clone(), vec![obj.clone()])),
            }
        }
        if gone.len() != groups.len() {
            return;
        }
        for (retired, (_, pieces)) in gone.into_iter().zip(groups) {
            self.record_split(retired, pieces);
        }
    }

    /// See [`Self::follow_split`]: `pieces` replaced `retired` (checked).
    fn record_split(&mut self, retired: ObjId, pieces: Vec<ObjId>) {
        if self.retired.contains_key(&retired) {
            return;
        }
        // The change that made the pieces: read both sides as of it, since
        // later changes in the same batch may have edited the pieces.
        let Some(ObjId::Id(made, author, _)) = pieces.first().cloned() else {
            return;
        };
        let Some(heads) = self
            .arriving
            .iter()
            .find(|(who, ops, _)| *who == author && ops.contains(&made))
            .map(|(_, _, hash)| vec![*hash])
        else {
            return;
        };
        let Ok(then) = self.am.text_at(&retired, &heads) else {
            return;
        };
        let text: Vec<char> = then.chars().collect();
        let mut refs = Vec::with_capacity(text.len());
        for (k, piece) in pieces.iter().enumerate() {
            for item in self.am.list_range_at(piece, .., &heads) {
                let ObjId::Id(ctr, actor, _) = item.id() else {
                    return;
                };
                let same = text.get(refs.len()).is_some_and(|&c| {
                    matches!(&item.value, ValueRef::Scalar(ScalarValueRef::Str(s))
                        if s.chars().eq(std::iter::once(c)))
                });
                if !same || actor != author {
                    return;
                }
                refs.push((k as u32, ctr));
            }
        }
        if refs.len() != text.len() {
            return;
        }
        self.retired.insert(
            retired,
            Retired {
                text,
                pieces,
                refs,
                author,
                at: heads,
            },
        );
    }

    /// One patch; `Err(())` when it changes the layout in a way only a full
    /// resync can follow.
    fn patch_one(
        &mut self,
        rope: &mut Rope,
        patch: &automerge::Patch,
        out: &mut Vec<Change>,
    ) -> Result<(), ()> {
        if matches!(patch.path.first(), Some((o, automerge::Prop::Map(k))) if *o == ROOT && k == ORDER_KEY)
        {
            // The owner's scratch text (see `ChunkEditor::outrank`).
            return Ok(());
        }
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
        if self.groups.contains(&patch.obj) {
            // Inside a group: the flat table has no cheap index for it.
            return Err(());
        }
        if self.list.as_ref() == Some(&patch.obj) {
            if !self.groups.is_empty() {
                return Err(());
            }
            return match &patch.action {
                PatchAction::Insert { index, values } => {
                    if *index > self.chunks.len() {
                        return Err(());
                    }
                    for (i, (value, id, _)) in values.iter().enumerate() {
                        let obj = matches!(value, Value::Object(ObjType::Text)).then(|| id.clone());
                        // A new chunk's content arrives as later patches on it.
                        let parent = patch.obj.clone();
                        self.chunks.insert(
                            index + i,
                            Chunk {
                                obj,
                                len: 0,
                                parent,
                                churn: 0,
                            },
                        );
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
            if self.retired_ids.contains(&patch.obj) {
                // Split away: the layout owner moves edits to it.
                return Ok(());
            }
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
                self.hot |= self.chunks[idx].churned(n, self.split_churn);
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
                self.hot |= self.chunks[idx].churned(*length, self.split_churn);
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
        f: impl FnOnce(&mut ChunkEditor<'_, '_>) -> Result<R, AutomergeError>,
    ) -> Result<(R, Vec<Change>), DocError> {
        let Some(list) = self.list.clone() else {
            return Err(DocError::ReadOnly(
                "the shared document has not arrived yet".into(),
            ));
        };
        self.text_cache = None;
        let actor = self.am.get_actor().clone();
        let max_op = self.max_op.or_else(|| probe_max_op(&mut self.am));
        let mut tx = self.am.transaction();
        let mut ed = ChunkEditor {
            tx: &mut tx,
            list: &list,
            chunks: &mut self.chunks,
            len: &mut self.len,
            rope,
            applied: Vec::new(),
            rope_undo: Vec::new(),
            retired_ids: &self.retired_ids,
            retired: &mut self.retired,
            owner: self.splitter,
            dirty: &mut self.dirty,
            actor,
            first_op: max_op.map(|n| n + 1),
            hot: &mut self.hot,
            split_churn: self.split_churn,
        };
        let result = f(&mut ed);
        let ChunkEditor {
            applied, rope_undo, ..
        } = ed;
        match result {
            Ok(r) => {
                let ops = tx.pending_ops() as u64;
                let (hash, _) = tx.commit();
                self.unflushed |= hash.is_some();
                self.max_op = max_op.map(|n| n + ops);
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

/// The highest op counter of `am`: a transaction numbers its ops from
/// max_op + 1, so a probe op (rolled back: nothing changes) tells it. Costs
/// about as much as one small local edit.
fn probe_max_op(am: &mut Automerge) -> Option<u64> {
    let mut tx = am.transaction();
    let n = match tx.put_object(ROOT, "lshed-probe", ObjType::Map) {
        Ok(ObjId::Id(ctr, _, _)) => ctr.checked_sub(1),
        _ => None,
    };
    tx.rollback();
    n
}

/// The chunks that replace a split one, and the stand-in of each char of
/// its text (index among those chunks, op counter).
type Group = (ObjId, Vec<Chunk>, Vec<(u32, u64)>);

/// Puts a new group at element `sub` of `parent` with `text` cut into
/// chunks.
fn split_into_group(
    tx: &mut Transaction<'_>,
    parent: &ObjId,
    sub: usize,
    text: &str,
    piece_chars: usize,
) -> Result<Group, AutomergeError> {
    let group = tx.put_object(parent, sub, ObjType::List)?;
    let mut chunks = Vec::new();
    let mut refs = Vec::new();
    let pieces = if text.is_empty() {
        vec![""]
    } else {
        cut(text, piece_chars)
    };
    for (k, piece) in pieces.into_iter().enumerate() {
        let obj = tx.insert_object(&group, k, ObjType::Text)?;
        let n = piece.chars().count();
        if n > 0 {
            tx.splice_text(&obj, 0, 0, piece)?;
            // One splice: consecutive counters from the first char's.
            let Some((_, ObjId::Id(ctr, _, _))) = tx.get(&obj, 0)? else {
                return Err(AutomergeError::InvalidIndex(0));
            };
            refs.extend((ctr..ctr + n as u64).map(|c| (k as u32, c)));
        }
        chunks.push(Chunk {
            obj: Some(obj),
            len: n,
            parent: group.clone(),
            churn: n,
        });
    }
    Ok((group, chunks, refs))
}

/// Appends the leaves of layout list `list` to `out`, depth first.
fn walk_layout(
    am: &Automerge,
    list: &ObjId,
    depth: usize,
    out: &mut Vec<Chunk>,
    groups: &mut HashSet<ObjId>,
) {
    for item in am.list_range(list, ..) {
        let id = item.id();
        match item.value {
            ValueRef::Object(ObjType::Text) => {
                let len = am.length(&id);
                out.push(Chunk {
                    obj: Some(id),
                    len,
                    parent: list.clone(),
                    churn: len,
                });
            }
            ValueRef::Object(ObjType::List) if depth < MAX_GROUP_DEPTH => {
                groups.insert(id.clone());
                walk_layout(am, &id, depth + 1, out, groups);
            }
            _ => out.push(Chunk {
                obj: None,
                len: 0,
                parent: list.clone(),
                churn: 0,
            }),
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

/// Where text inserted at a document offset goes
/// (`ChunkEditor::insert_target`).
enum InsertTarget {
    /// Into chunk `chunk` (table index) at char `offset`: the point is
    /// inside it, or at its edge and it has room.
    Inside { chunk: usize, offset: usize },
    /// Into new chunks taking table index `slot`, in the layout list of
    /// `beside` (a chunk's table index, and whether they go after it), or
    /// at the end of the top list when `None`: the point is between full
    /// chunks, or the text is a large paste.
    NewChunks {
        slot: usize,
        beside: Option<(usize, bool)>,
    },
}

/// One local transaction in progress: the automerge side plus the rope.
/// (Not the editor of `crate::editor`: it edits the chunks of one
/// document's CRDT state.)
pub(crate) struct ChunkEditor<'t, 'a> {
    tx: &'t mut Transaction<'a>,
    list: &'t ObjId,
    chunks: &'t mut Vec<Chunk>,
    len: &'t mut usize,
    rope: &'t mut Rope,
    /// Rope changes made, in order.
    applied: Vec<Change>,
    /// Their inverses, to restore the rope if the transaction fails.
    rope_undo: Vec<Change>,
    /// Chunks split away (see [`SharedState`]'s `retired_ids`).
    retired_ids: &'t HashSet<ObjId>,
    /// What this replica knows of split chunks (the owner: every chunk it
    /// split; others: the splits they could follow, see `follow_split`).
    retired: &'t mut HashMap<ObjId, Retired>,
    /// Whether this replica owns the layout (repairs retired chunks).
    owner: bool,
    /// Retired chunks edited in this transaction.
    dirty: &'t mut Vec<ObjId>,
    /// This replica's actor.
    actor: ActorId,
    /// Counter of this transaction's first op, if known.
    first_op: Option<u64>,
    /// See [`SharedState`]'s `hot` and `split_churn`.
    hot: &'t mut bool,
    split_churn: usize,
}

impl ChunkEditor<'_, '_> {
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

    /// Where chunk `obj` can be edited: `Ok(Some(slot))` in the table,
    /// `Ok(None)` a retired chunk (edited in automerge only, the layout
    /// owner moves the edit), `Err(())` neither.
    fn slot_of(&self, obj: &ObjId) -> Result<Option<usize>, ()> {
        match self.index_of(obj) {
            Some(i) => Ok(Some(i)),
            None if self.retired_ids.contains(obj) => Ok(None),
            None => Err(()),
        }
    }

    fn chunk_len(&self, slot: Option<usize>, obj: &ObjId) -> usize {
        match slot {
            Some(i) => self.chunks[i].len,
            None => self.tx.length(obj),
        }
    }

    fn mark_dirty(&mut self, obj: &ObjId) {
        if !self.dirty.contains(obj) {
            self.dirty.push(obj.clone());
        }
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
            let text = self.rope.slice(global..global + n).to_string();
            self.delete_undoable(Some(i), &obj, off, text, undo)?;
        }
        Ok(())
    }

    /// Deletes `text`, which stands at offset `off` of chunk `obj`, and
    /// pushes the stable operation that puts it back.
    fn delete_undoable(
        &mut self,
        slot: Option<usize>,
        obj: &ObjId,
        off: usize,
        text: String,
        undo: &mut Vec<StableOp>,
    ) -> Result<(), AutomergeError> {
        let anchor = self.char_id(obj, off)?;
        self.delete_in(slot, obj, off, text.chars().count())?;
        undo.push(StableOp::Reinsert {
            chunk: obj.clone(),
            anchor,
            text,
        });
        Ok(())
    }

    /// Deletes `n` chars at `off` of chunk `obj`, which is at `slot` of the
    /// table or retired.
    fn delete_in(
        &mut self,
        slot: Option<usize>,
        obj: &ObjId,
        off: usize,
        n: usize,
    ) -> Result<(), AutomergeError> {
        self.tx.splice_text(obj, off, n as isize, "")?;
        match slot {
            Some(i) => {
                self.chunks[i].len -= n;
                *self.hot |= self.chunks[i].churned(n, self.split_churn);
                *self.len -= n;
                let g = self.prefix(i) + off;
                self.rope_apply(Change::delete(g, g + n));
            }
            None => self.mark_dirty(obj),
        }
        Ok(())
    }

    /// Picks where text inserted at document offset `pos` goes.
    fn insert_target(&self, pos: usize, big: bool) -> InsertTarget {
        let mut at = 0;
        let mut candidate = None;
        for (i, c) in self.chunks.iter().enumerate() {
            if c.obj.is_none() {
                at += c.len;
                continue;
            }
            let (s, e) = (at, at + c.len);
            if s < pos && pos < e {
                // Strictly inside: no choice.
                return InsertTarget::Inside {
                    chunk: i,
                    offset: pos - s,
                };
            }
            if pos == e || pos == s {
                if c.len < CHUNK_FULL_CHARS && !big {
                    return InsertTarget::Inside {
                        chunk: i,
                        offset: pos - s,
                    };
                }
                candidate = Some(if pos == e {
                    InsertTarget::NewChunks {
                        slot: i + 1,
                        beside: Some((i, true)),
                    }
                } else {
                    InsertTarget::NewChunks {
                        slot: i,
                        beside: Some((i, false)),
                    }
                });
            }
            if s > pos {
                break;
            }
            at = e;
        }
        candidate.unwrap_or(InsertTarget::NewChunks {
            slot: self.chunks.len(),
            beside: None,
        })
    }

    /// Position of element `obj` in layout list `parent`.
    fn sub_index(&self, parent: &ObjId, obj: &ObjId) -> Option<usize> {
        self.tx
            .list_range(parent, ..)
            .position(|item| item.id() == *obj)
    }

    fn insert(
        &mut self,
        pos: usize,
        text: &str,
        undo: &mut Vec<StableOp>,
    ) -> Result<(), AutomergeError> {
        let big = text.len() > CHUNK_CHARS;
        match self.insert_target(pos, big) {
            InsertTarget::Inside { chunk, offset } => {
                let Some(obj) = self.chunks[chunk].obj.clone() else {
                    return Ok(());
                };
                self.insert_in(Some(chunk), &obj, offset, text, undo)
            }
            InsertTarget::NewChunks {
                mut slot,
                beside: neighbour,
            } => {
                // At a boundary with full neighbours (or a large paste):
                // new chunks, cut to the normal size, in the neighbour's list.
                let (parent, mut sub) = match neighbour {
                    Some((n, after)) => {
                        let parent = self.chunks[n].parent.clone();
                        let at = self.chunks[n]
                            .obj
                            .as_ref()
                            .and_then(|obj| self.sub_index(&parent, obj))
                            .ok_or(AutomergeError::InvalidIndex(n))?;
                        (parent, if after { at + 1 } else { at })
                    }
                    None => (self.list.clone(), self.tx.length(self.list)),
                };
                for piece in cut(text, CHUNK_CHARS) {
                    let obj = self.tx.insert_object(&parent, sub, ObjType::Text)?;
                    self.chunks.insert(
                        slot,
                        Chunk {
                            obj: Some(obj.clone()),
                            len: 0,
                            parent: parent.clone(),
                            churn: 0,
                        },
                    );
                    self.insert_in(Some(slot), &obj, 0, piece, undo)?;
                    slot += 1;
                    sub += 1;
                }
                Ok(())
            }
        }
    }

    /// Inserts `text` into chunk `obj` (at `slot` of the table, or retired)
    /// at offset `off`.
    fn insert_in(
        &mut self,
        slot: Option<usize>,
        obj: &ObjId,
        off: usize,
        text: &str,
        undo: &mut Vec<StableOp>,
    ) -> Result<(), AutomergeError> {
        let n = text.chars().count();
        if n == 0 {
            return Ok(());
        }
        let ops_before = self.tx.pending_ops() as u64;
        self.tx.splice_text(obj, off, 0, text)?;
        let ops = self.tx.pending_ops() as u64 - ops_before;
        match slot {
            Some(i) => {
                self.chunks[i].len += n;
                *self.hot |= self.chunks[i].churned(n, self.split_churn);
                *self.len += n;
                let global = self.prefix(i) + off;
                self.rope_apply(Change::insert(global, text));
            }
            None => self.mark_dirty(obj),
        }
        // The splice's insert ops are this transaction's next ones, with
        // consecutive counters.
        let first = match self.first_op {
            Some(base) => {
                let first = base + ops_before;
                debug_assert_eq!(
                    self.char_id(obj, off).ok().map(|c| (c.ctr, c.actor)),
                    Some((first, self.actor.clone())),
                    "op counters of our own splice"
                );
                first
            }
            None => self.char_id(obj, off)?.ctr,
        };
        undo.push(StableOp::RemoveInserted {
            chunk: obj.clone(),
            actor: self.actor.clone(),
            counters: first..=first + ops.max(1) - 1,
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
    /// On a chunk that was split, the operation edits the old chunk and the
    /// layout owner moves the edit onto the new ones (see `repair`).
    pub(crate) fn apply_stable(
        &mut self,
        op: &StableOp,
        inverse: &mut Vec<StableOp>,
    ) -> Result<(), AutomergeError> {
        if !self.owner && self.translate_stable(op, inverse)? {
            return Ok(());
        }
        match op {
            StableOp::RemoveInserted {
                chunk,
                actor,
                counters,
            } => {
                let Ok(slot) = self.slot_of(chunk) else {
                    return Ok(());
                };
                let clen = self.chunk_len(slot, chunk);
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
                for (s, _, text) in runs.into_iter().rev() {
                    self.delete_undoable(slot, chunk, s, text, inverse)?;
                }
                Ok(())
            }
            StableOp::Reinsert {
                chunk,
                anchor,
                text,
            } => {
                let Ok(slot) = self.slot_of(chunk) else {
                    return Ok(());
                };
                let Some(cursor) = anchor.cursor() else {
                    return Ok(());
                };
                let Ok(p) = self.tx.get_cursor_position(chunk, &cursor, None) else {
                    return Ok(());
                };
                let p = p.min(self.chunk_len(slot, chunk));
                self.insert_in(slot, chunk, p, text, inverse)
            }
        }
    }

    /// Not the layout owner: carries out `op`, which names a retired chunk,
    /// on the chars that replaced that chunk's text, using the record made
    /// when the split was followed. Only while the retired chunk still
    /// holds exactly the recorded text (nobody else's edit raced the
    /// split); otherwise returns `false` and `op` lands in the retired
    /// chunk, for the owner to move. Nothing is changed before every char
    /// it needs is found in a live chunk.
    fn translate_stable(
        &mut self,
        op: &StableOp,
        inverse: &mut Vec<StableOp>,
    ) -> Result<bool, AutomergeError> {
        let chunk = match op {
            StableOp::RemoveInserted { chunk, .. } | StableOp::Reinsert { chunk, .. } => chunk,
        };
        if !matches!(self.slot_of(chunk), Ok(None)) {
            return Ok(false);
        }
        let Some(rec) = self.retired.remove(chunk) else {
            return Ok(false);
        };
        let result = self.translate_with(op, &rec, inverse);
        self.retired.insert(chunk.clone(), rec);
        result
    }

    fn translate_with(
        &mut self,
        op: &StableOp,
        rec: &Retired,
        inverse: &mut Vec<StableOp>,
    ) -> Result<bool, AutomergeError> {
        if rec.at.is_empty() {
            return Ok(false);
        }
        let live = |ed: &Self, p: u32| {
            let piece = rec.pieces.get(p as usize)?;
            Some((ed.index_of(piece)?, piece.clone()))
        };
        match op {
            StableOp::RemoveInserted {
                chunk,
                actor,
                counters,
            } => {
                let ours = |id: ObjId| match id {
                    ObjId::Id(ctr, who, _) if who == *actor && counters.contains(&ctr) => Some(ctr),
                    _ => None,
                };
                // Our chars still in the retired chunk, and where each was
                // when it was split (one made since, in a race, is the
                // owner's to move: then all of `op` goes that way).
                let now: Vec<u64> = self
                    .tx
                    .list_range(chunk, ..)
                    .filter_map(|item| ours(item.id()))
                    .collect();
                if now.is_empty() {
                    return Ok(false);
                }
                let then: HashMap<u64, usize> = self
                    .tx
                    .list_range_at(chunk, .., &rec.at)
                    .filter_map(|item| Some((ours(item.id())?, item.index)))
                    .collect();
                let mut found: Vec<(usize, ObjId, usize)> = Vec::new();
                for ctr in now {
                    let Some(&(p, stand_in)) = then.get(&ctr).and_then(|&k| rec.refs.get(k)) else {
                        return Ok(false);
                    };
                    let Some((slot, piece)) = live(self, p) else {
                        return Ok(false);
                    };
                    if let Some((pos, true)) = self.locate(&piece, &rec.author, stand_in) {
                        found.push((slot, piece, pos));
                    }
                }
                found.sort_by_key(|(slot, _, pos)| (*slot, *pos));
                // Runs of consecutive stand-ins, deleted back to front.
                let mut runs: Vec<(usize, ObjId, usize, usize)> = Vec::new();
                for (slot, piece, pos) in found {
                    match runs.last_mut() {
                        Some(run) if run.0 == slot && run.3 == pos => run.3 += 1,
                        _ => runs.push((slot, piece, pos, pos + 1)),
                    }
                }
                for (slot, piece, s, e) in runs.into_iter().rev() {
                    let text: String = self.tx.text(&piece)?.chars().skip(s).take(e - s).collect();
                    self.delete_undoable(Some(slot), &piece, s, text, inverse)?;
                }
                Ok(true)
            }
            StableOp::Reinsert {
                chunk,
                anchor,
                text,
            } => {
                // Where the text went in the chunk as it was split.
                let Some(cursor) = anchor.cursor() else {
                    return Ok(false);
                };
                let Ok(k) = self.tx.get_cursor_position(chunk, &cursor, Some(&rec.at)) else {
                    return Ok(false);
                };
                let k = k.min(rec.refs.len());
                let (p, pos) = self.anchor_for(rec, k, k);
                let Some((slot, piece)) = live(self, p) else {
                    return Ok(false);
                };
                let pos = pos.min(self.chunks[slot].len);
                self.insert_in(Some(slot), &piece, pos, text, inverse)?;
                Ok(true)
            }
        }
    }

    /// Layout owner: moves what changed in retired chunk `obj` since the
    /// last repair (edits made concurrently with its split, undo entries
    /// that named it) onto the chars that replaced its text.
    pub(crate) fn repair(&mut self, obj: &ObjId) -> Result<(), AutomergeError> {
        let Some(mut rec) = self.retired.remove(obj) else {
            return Ok(());
        };
        let result = self.repair_with(obj, &mut rec);
        self.retired.insert(obj.clone(), rec);
        result
    }

    fn repair_with(&mut self, obj: &ObjId, rec: &mut Retired) -> Result<(), AutomergeError> {
        let now: Vec<char> = self.tx.text(obj)?.chars().collect();
        // Back to front, so the indices of earlier hunks hold.
        for (old, new) in char_hunks(&rec.text, &now).into_iter().rev() {
            self.repair_hunk(rec, old, &now[new])?;
        }
        Ok(())
    }

    /// Replaces the retired text's chars `old` with `text` in the new
    /// layout: deletes their stand-ins that are still there (others may
    /// have deleted some already), and inserts `text` after the stand-in
    /// of the char before them.
    fn repair_hunk(
        &mut self,
        rec: &mut Retired,
        old: std::ops::Range<usize>,
        text: &[char],
    ) -> Result<(), AutomergeError> {
        for k in old.clone().rev() {
            let (p, ctr) = rec.refs[k];
            let Some(piece) = rec.pieces.get(p as usize).cloned() else {
                continue;
            };
            let Ok(slot) = self.slot_of(&piece) else {
                continue;
            };
            if let Some((pos, true)) = self.locate(&piece, &rec.author, ctr) {
                self.delete_in(slot, &piece, pos, 1)?;
            }
        }
        let n = text.len();
        let mut refs = Vec::with_capacity(n);
        if n > 0 {
            self.outrank()?;
            let (p, pos) = self.anchor_for(rec, old.start, old.end);
            let piece = rec.pieces.get(p as usize).cloned();
            if let Some((piece, Ok(slot))) = piece.map(|o| (o.clone(), self.slot_of(&o))) {
                let mut made = Vec::new();
                let pos = pos.min(self.chunk_len(slot, &piece));
                let s: String = text.iter().collect();
                self.insert_in(slot, &piece, pos, &s, &mut made)?;
                if let Some(StableOp::RemoveInserted { counters, .. }) = made.first() {
                    refs.extend(counters.clone().map(|c| (p, c)));
                }
            }
        }
        // Keep `refs` aligned with `text` whatever happened (counter 0 is
        // no char: such a stand-in is skipped later).
        refs.resize(n, (0, 0));
        rec.text.splice(old.clone(), text.iter().copied());
        rec.refs.splice(old, refs);
        Ok(())
    }

    /// Raises the counter of the transaction's next op by [`REPAIR_RANK`].
    ///
    /// Why: text moved by a repair is the racing edit of someone who, until
    /// the repair reaches them, sees it gone and goes on typing right where
    /// it was. Their new chars and the moved ones are then inserted after
    /// the same char, concurrently, and automerge orders such siblings by
    /// op id, highest first: unless the moved text has the higher ids, it
    /// lands after what they typed next ("acb" for "abc"). What they can
    /// type in a round trip stays far below this margin.
    ///
    /// Done with one splice into a fresh scratch text (cheap to apply
    /// anywhere; ops on one map key whose history keeps growing are not:
    /// automerge 0.12 applies each in time linear in that history).
    fn outrank(&mut self) -> Result<(), AutomergeError> {
        let scratch = self.tx.put_object(ROOT, ORDER_KEY, ObjType::Text)?;
        self.tx
            .splice_text(&scratch, 0, 0, &".".repeat(REPAIR_RANK))
    }

    /// Where the owner's char `ctr` in `piece` is now, and whether it is
    /// still there (a deleted char resolves to where it was).
    fn locate(&self, piece: &ObjId, author: &ActorId, ctr: u64) -> Option<(usize, bool)> {
        let cursor = CharId {
            ctr,
            actor: author.clone(),
        }
        .cursor()?;
        let pos = self.tx.get_cursor_position(piece, &cursor, None).ok()?;
        let alive = matches!(self.tx.get(piece, pos), Ok(Some((_, ObjId::Id(c, ref a, _))))
            if c == ctr && a == author);
        Some((pos, alive))
    }

    /// Where text that goes at `pre` of a retired chunk's text (after its
    /// chars `pre..del_end` were deleted) goes in the new layout.
    /// Returns (index in `rec.pieces`, offset in that chunk).
    fn anchor_for(&self, rec: &Retired, pre: usize, del_end: usize) -> (u32, usize) {
        let at = |&(p, ctr): &(u32, u64)| {
            let piece = rec.pieces.get(p as usize)?;
            self.locate(piece, &rec.author, ctr).map(|found| (p, found))
        };
        if let Some((p, (pos, alive))) = pre
            .checked_sub(1)
            .and_then(|k| rec.refs.get(k))
            .and_then(at)
        {
            return (p, if alive { pos + 1 } else { pos });
        }
        if let Some((p, (pos, _))) = rec.refs.get(del_end).and_then(at) {
            return (p, pos);
        }
        (0, 0)
    }
}

/// Largest (old × new) changed middle diffed char by char; beyond it the
/// middle is one replacement (similar's LCS table costs this many cells).
const MAX_HUNK_CELLS: usize = 1 << 20;

/// The changed ranges between `old` and `new`, in order: (range of `old`,
/// range of `new`). Separate edits stay separate hunks, so that text
/// between them is not re-created by a repair.
fn char_hunks(old: &[char], new: &[char]) -> Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let pre = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let room = old.len().min(new.len()) - pre;
    let suf = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(room)
        .take_while(|(a, b)| a == b)
        .count();
    let (o_end, n_end) = (old.len() - suf, new.len() - suf);
    if pre == o_end && pre == n_end {
        return Vec::new();
    }
    let (om, nm) = (&old[pre..o_end], &new[pre..n_end]);
    if om.len().saturating_mul(nm.len()) > MAX_HUNK_CELLS || om.is_empty() || nm.is_empty() {
        return vec![(pre..o_end, pre..n_end)];
    }
    let mut ops: Vec<_> = similar::capture_diff_slices(similar::Algorithm::Lcs, om, nm)
        .into_iter()
        .filter(|op| !matches!(op, similar::DiffOp::Equal { .. }))
        .map(|op| (op.old_range(), op.new_range()))
        .collect();
    ops.sort_by_key(|(o, n)| (o.start, n.start));
    let mut hunks: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> = Vec::new();
    for (o, n) in ops {
        let (o, n) = (pre + o.start..pre + o.end, pre + n.start..pre + n.end);
        // Adjacent ops (a delete next to an insert) make one hunk.
        match hunks.last_mut() {
            Some((lo, ln)) if lo.end == o.start && ln.end == n.start => {
                lo.end = o.end;
                ln.end = n.end;
            }
            _ => hunks.push((o, n)),
        }
    }
    hunks
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
