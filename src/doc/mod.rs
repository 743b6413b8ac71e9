//! The text document: the buffer type every layer above builds on.
//!
//! A [`Document`] is a rope ([`ropey::Rope`]) that the editor renders and
//! measures, plus the local user's undo history, plus — only once the
//! buffer is shared — its CRDT state ([`SharedState`], automerge). Positions
//! are `char` indices into the rope everywhere (never bytes, never
//! graphemes): the editor snaps them to grapheme boundaries, this module
//! does not care. automerge is used with its code-point text encoding, so
//! its indices are the same `char` indices (see `crdt.rs`).
//!
//! An edit is a plain value: a list of [`Change`]s applied in order, each
//! replacing a `char` range with new text. Unshared, undo entries are edits
//! too, so undo and redo are just "apply the inverse". Shared, undo entries
//! name chars by their CRDT identity, so undo reverts only this user's
//! edits (see `undo.rs`).
//!
//! May depend on: std, ropey, automerge, similar, thiserror. Nothing async, nothing
//! terminal, nothing network: the session layer moves the bytes.
//!
//! # Life of a shared buffer
//!
//! - Host: [`Document::share`] builds the CRDT state from the current text
//!   (or build it on a worker with [`SharedState::build`] from a cheap
//!   `rope().clone()` and [`Document::attach`] it with
//!   [`Attach::KeepLocalText`], which folds in edits made meanwhile).
//!   Local editing before that is rope-only, whatever the file size.
//! - Guest: [`Document::loading`] shows the text received at once
//!   (read-only), while a worker runs [`SharedState::load`] on the saved
//!   state (or the guest starts from [`SharedState::empty`] and the sync
//!   protocol); then [`Document::attach`] with [`Attach::TakeSharedText`].
//! - Every local edit is committed as one automerge change; the session
//!   sends [`Document::take_outgoing`] to every peer, which applies it with
//!   [`Document::apply_remote`]. A peer that joins or reconnects is brought
//!   up to date with the sync protocol ([`Document::generate_sync_message`],
//!   [`Document::receive_sync_message`], one [`PeerSync`] per peer).
//!   Changes that arrived before one they depend on (a message was lost)
//!   wait in our own buffer, not in automerge's queue: automerge's sync
//!   protocol, seeing queued changes that reach back to the other peer's
//!   heads, asks for the missing changes one round trip at a time. Kept
//!   out, a peer that lost N changes catches up in a few round trips.
//! - Presence: [`Document::stable_pos`] / [`Document::resolve`].
//! - Crash recovery / reconnection: [`Document::save_crdt`] and
//!   [`SharedState::load`].
//! - Actor ids: one fresh [`ActorId`] per replica per process run
//!   (`ActorId::random()`); reusing one on two live replicas corrupts the
//!   change history of both.
//!
//! # Hostile input
//!
//! Every decode path (change messages, sync messages, saved state, stable
//! positions, sync states) returns a [`DocError`], never panics. automerge
//! calls on foreign bytes run inside `catch_unwind`; bytes are fully
//! decoded before the document is touched, and if applying them panics
//! anyway, the automerge state is rebuilt from its last checkpoint plus the
//! log of changes known to be good (see `guard.rs` and `crdt.rs`), so a bad
//! peer can never leave the document half-applied.
//!
//! # Too large to share editable
//!
//! A buffer over [`MAX_SHARED_EDITABLE_BYTES`] is shared read-only (no CRDT
//! state at all, for everybody): building and holding automerge state for
//! it would freeze the editor for seconds and cost gigabytes.
//! [`Document::read_only_reason`] gives the message to show.
//!
//! # automerge version and layout: a measured choice
//!
//! **Choice: automerge 0.12 (the newest), with the text cut into chunks**
//! (a list of Text objects of about [`CHUNK_CHARS`] chars, see `crdt.rs`),
//! CRDT state built only when a buffer becomes shared, and history
//! compacted between sessions (fresh state at each share) and within one
//! (the host splits chunks whose history grew, see below).
//!
//! Why: automerge 0.7+ stores ops in compressed columns. That made it far
//! smaller and faster to load than 0.5/0.6, but applying a *remote* op
//! costs time linear in the size of the object it lands in. Measured by
//! `benches/automerge_versions.rs` (
//! opt-in: `cargo bench --features automerge-versions --bench
//! automerge_versions`; release build, one remote 1-char insert into a
//! Text object seeded with one splice, each version in its own process):
//!
//! | automerge | remote, 100k | remote, 1M | seed 1M | load 1M | peak RSS 1M |
//! |---|---|---|---|---|---|
//! | 0.5.12 | 0.018 ms | 0.21 ms | 1.95 s | 2.09 s | 1.01 GB |
//! | 0.6.1 | 0.011 ms | 0.029 ms | 1.98 s | 2.15 s | 1.01 GB |
//! | 0.12.0 | 16.2 ms | 159 ms | 1.43 s | 0.30 s | 0.30 GB |
//!
//! 0.5/0.6 apply remote ops fast but hold a gigabyte for a 1 MB file and
//! take seconds to load one (a guest joining); 0.12 is small and loads
//! fast, but one big Text object cannot keep up with typing. So: 0.12,
//! with the text in chunks (benches/doc.rs, one remote 1-char insert):
//!
//! | layout (automerge 0.12.0) | 100k chars | 1M chars |
//! |---|---|---|
//! | one Text object | 16.7 ms | 169 ms |
//! | `doc`: chunked, incl. rope patch | 0.24 ms | 0.31 ms |
//!
//! so the cost is linear in the *chunk*, not the file, and a remote
//! keystroke stays under 1 ms at 100k chars and 5 ms at 1M with room to spare,
//! without paying 0.5/0.6's memory. Other figures: one local keystroke into
//! 1 MB, edit to change bytes ready: 23 µs; making 1 MB shared: 0.41 s,
//! peak heap 11 MB, state held afterwards ≈ 1 MB (compressed columns);
//! loading that state: 0.31 s, peak 93 MB. automerge-paper replayed
//! locally: 1.15x raw `splice_text` (benches/README.md).
//!
//! Remote changes never block the UI thread: with chunks, one remote
//! keystroke costs time linear in one chunk's history (bounded by
//! splitting, below), well under a millisecond; everything bigger runs on
//! a worker thread in the session layer: building state
//! ([`SharedState::build`]), loading it ([`SharedState::load`]), and large
//! change messages ([`Document::detach_for_sync`] / [`Document::reattach`];
//! the document stays visible, read-only, meanwhile). `Document` and
//! `SharedState` are `Send`. [`Document::attach`] then costs little: the
//! worker also made the text rope it compares.
//!
//! # Splitting: history compaction within a session
//!
//! Text typed strictly inside a chunk has to stay in it, so a long session
//! in one place would grow one chunk back towards the one-object cost
//! (automerge-paper, typed into one paragraph, ends as one 105k-char chunk
//! with 260k ops of history: tens of ms per remote keystroke). The replica
//! that built the state (the host) owns the layout: while others view the
//! file ([`SharedState::set_splitting`]) it replaces a chunk whose churn
//! (chars inserted and deleted since it was made) passes [`SPLIT_CHURN`] by
//! a group of fresh chunks holding the same text, put on the same list
//! element (so concurrent chunk inserts next to it keep their place). The
//! old chunk is retired, not deleted. An edit that a peer made to it
//! concurrently with the split (typed before the split reached it) lands
//! in the retired chunk, out of everyone's view; so every replica, as it
//! follows a split, moves *its own* racing edits onto the chars that now
//! stand for the old ones (`ChunkEditor::settle`), in the same call that
//! applies the split: its rope never loses them, and a script that
//! computes offsets from its own text is never wrong, at any rate. The
//! others see the moved text one round trip later. Everyone moves only
//! their own edits, so nothing is moved twice; the host moves those of a
//! peer that left before it saw the split ([`Document::settle_for`]). Undo
//! entries that name the retired chunk are carried out on the new chunks
//! the same way, from the record each replica keeps of each split
//! (`ChunkEditor::translate_stable`). Only one replica splits, so splits
//! never conflict. (Before protocol v5 the host diffed retired chunks and
//! moved everyone's racing edits itself: the author lost sight of them for
//! a round trip, and under a flood the host spent its time diffing.) Measured
//! (benches/README.md): the paper as remote changes now replays in full at ~2,700 edits/s (it would take hours
//! unsplit), 0.34 ms per remote keystroke at its end; the price is paid by
//! the host's own edits, which get slower as automerge's cost per local op
//! grows with the whole document and every split copies a chunk's text
//! (paper replay 1.56x raw automerge with splitting, 1.15x without — which
//! is why a document nobody else views is never split).

mod change;
mod crdt;
mod error;
mod guard;
mod history;
mod undo;

pub use automerge::{ActorId, ChangeHash};
pub use change::{Assoc, Change};
pub use crdt::{
    change_actors, PeerSync, SharedState, StablePos, CHUNK_CHARS, CHUNK_FULL_CHARS, SPLIT_CHURN,
};
pub use error::DocError;
pub use history::History;

use ropey::Rope;
use undo::{StableOp, UndoOp};

/// Buffers larger than this (UTF-8 bytes) are shared read-only.
///
/// Measured on our 2-core machines, making 1 MB shared takes about 0.4 s
/// (on a worker) and loading it about 0.3 s at each guest, and automerge's
/// cost per op grows with the document; at 4 MiB a guest would wait
/// seconds before it can type, and every keystroke would cost more for
/// everyone.
pub const MAX_SHARED_EDITABLE_BYTES: usize = 4 * 1024 * 1024;

/// Undo groups from before sharing that are kept when a buffer is shared.
const MAX_LEGACY_GROUPS: usize = 100;

/// What [`Document::share`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareMode {
    /// The buffer has CRDT state; everyone may edit it.
    Editable,
    /// The buffer is too large: shared read-only, see
    /// [`Document::read_only_reason`].
    ReadOnly,
}

/// Which text wins when CRDT state is attached to a document whose rope may
/// differ from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// The rope is the truth (host: edits made while the state was being
    /// built are applied to the CRDT as one local edit and sent to peers).
    KeepLocalText,
    /// The CRDT is the truth (guest: the rope is patched to match it).
    TakeSharedText,
}

/// A text document: a rope, the local user's undo history and, once shared,
/// its CRDT state.
///
/// `Clone` gives an independent *local* copy: a clone of a shared document
/// is not shared (two replicas with one actor id would corrupt the shared
/// history) and has no undo history.
#[derive(Debug, Default)]
pub struct Document {
    rope: Rope,
    history: History<UndoOp>,
    revision: u64,
    shared: Option<Box<SharedState>>,
    read_only: Option<String>,
    /// The history holds plain entries from before sharing, which must be
    /// mapped through remote changes.
    legacy_undo: bool,
}

impl Clone for Document {
    fn clone(&self) -> Self {
        Self {
            rope: self.rope.clone(),
            history: if self.shared.is_some() || self.read_only.is_some() {
                History::default()
            } else {
                self.history.clone()
            },
            revision: self.revision,
            shared: None,
            read_only: None,
            legacy_undo: false,
        }
    }
}

impl Document {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// A document holding `text`; no undo history.
    pub fn from_text(text: &str) -> Self {
        Self::from_rope(Rope::from_str(text))
    }

    /// A document from an already built rope (used by loaders of large files).
    pub fn from_rope(rope: Rope) -> Self {
        Self {
            rope,
            ..Self::default()
        }
    }

    /// A guest's view of a shared file whose CRDT state is still loading:
    /// shows `text` at once, read-only until [`Document::attach`].
    pub fn loading(text: &str) -> Self {
        Self {
            rope: Rope::from_str(text),
            read_only: Some("loading the shared document…".into()),
            ..Self::default()
        }
    }

    /// A shared document from loaded CRDT state (rope built from its text).
    pub fn from_shared(state: SharedState) -> Self {
        let mut doc = Self::from_text(&state.text());
        doc.shared = Some(Box::new(state));
        doc
    }

    /// The current text.
    pub fn rope(&self) -> &Rope {
        &self.rope
    }

    /// Length in chars.
    pub fn len_chars(&self) -> usize {
        self.rope.len_chars()
    }

    /// Increments on every change to the text, local, remote or undo/redo.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Whether the document has CRDT state.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Grows each time the document's chunk layout changes under existing
    /// positions (a chunk split and retired): a [`StablePos`] taken before
    /// may name a retired chunk, which others cannot resolve, so a cursor
    /// sent to peers should be sent again. 0 for a local document.
    pub fn layout_generation(&self) -> usize {
        self.shared.as_deref().map_or(0, |s| s.retired_count())
    }

    /// Whether local edits are refused (see [`Document::read_only_reason`]).
    /// [`Document::apply_local`], `undo` and `redo` do nothing then.
    pub fn is_read_only(&self) -> bool {
        self.read_only_reason().is_some()
    }

    /// Why the document is read-only, as a message for the user.
    pub fn read_only_reason(&self) -> Option<&str> {
        if let Some(reason) = &self.read_only {
            return Some(reason);
        }
        match &self.shared {
            Some(s) if !s.has_layout() => Some("waiting for the shared document…"),
            _ => None,
        }
    }

    /// The CRDT state, if shared (diagnostics, benchmarks).
    pub fn shared_state(&self) -> Option<&SharedState> {
        self.shared.as_deref()
    }

    /// Makes the buffer shared: builds CRDT state from the current text as
    /// one change by `actor` (a fresh id for this replica, see the module
    /// docs). Runs on the calling thread; for large buffers use
    /// [`SharedState::build`] on a worker and [`Document::attach`].
    ///
    /// Above [`MAX_SHARED_EDITABLE_BYTES`] no CRDT state is built and the
    /// document becomes read-only ([`ShareMode::ReadOnly`]) until
    /// [`Document::unshare`].
    ///
    /// The undo history survives (its newest groups, mapped through remote
    /// changes from then on; best effort when others edit the same text).
    pub fn share(&mut self, actor: ActorId) -> Result<ShareMode, DocError> {
        if self.shared.is_some() {
            return Ok(ShareMode::Editable);
        }
        let bytes = self.rope.len_bytes();
        if bytes > MAX_SHARED_EDITABLE_BYTES {
            self.read_only = Some(format!(
                "this file is {:.1} MiB, over the {} MiB limit for editing together: \
                 it is shared read-only so that nobody's editor freezes",
                bytes as f64 / (1024.0 * 1024.0),
                MAX_SHARED_EDITABLE_BYTES / (1024 * 1024)
            ));
            return Ok(ShareMode::ReadOnly);
        }
        let state = SharedState::build(&self.rope, actor)?;
        self.install(state);
        Ok(ShareMode::Editable)
    }

    /// Drops the CRDT state (the session ended): back to a local buffer.
    /// The shared undo history is dropped with it.
    pub fn unshare(&mut self) {
        if self.shared.take().is_some() {
            self.history.clear();
        }
        self.read_only = None;
        self.legacy_undo = false;
    }

    fn install(&mut self, state: SharedState) {
        self.history.truncate_to(MAX_LEGACY_GROUPS);
        self.legacy_undo = self.history.can_undo() || self.history.can_redo();
        self.shared = Some(Box::new(state));
        self.read_only = None;
    }

    /// Attaches CRDT state built or loaded elsewhere (possibly on another
    /// thread). With [`Attach::TakeSharedText`] the rope is patched to the
    /// CRDT text and the changes made are returned; with
    /// [`Attach::KeepLocalText`] the CRDT is patched to the rope (as a local
    /// edit, sent to peers) and nothing is returned. O(n) once, to compare.
    pub fn attach(
        &mut self,
        mut state: SharedState,
        policy: Attach,
    ) -> Result<Vec<Change>, DocError> {
        let target = state.take_text_rope();
        self.install(state);
        // The usual case (nothing typed while a worker built or loaded the
        // state): equal ropes, compared chunk by chunk, far faster than
        // the char-by-char diff.
        if target == self.rope {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        match policy {
            Attach::TakeSharedText => {
                if let Some(change) = crdt::diff_ropes(&self.rope, &target) {
                    crdt::apply_to_rope(&mut self.rope, &change);
                    self.after_remote(std::slice::from_ref(&change));
                    out.push(change);
                }
            }
            Attach::KeepLocalText => {
                if let (Some(change), Some(shared)) =
                    (crdt::diff_ropes(&target, &self.rope), self.shared.as_mut())
                {
                    // Put the CRDT at the state the rope is at now by
                    // applying the difference to a scratch rope equal to it.
                    let mut scratch = target;
                    shared.edit(&mut scratch, |ed| ed.splice(&change, &mut Vec::new()))?;
                }
            }
        }
        Ok(out)
    }

    /// Moves the CRDT state and undo history into a new document (with a
    /// copy of the rope) that a worker thread can own, to apply a large
    /// batch of remote data (a reconnection's sync) without blocking the UI.
    /// This document stays visible but read-only until
    /// [`Document::reattach`]. `None` if not shared.
    pub fn detach_for_sync(&mut self) -> Option<Document> {
        let shared = self.shared.take()?;
        let worker = Document {
            rope: self.rope.clone(),
            history: std::mem::take(&mut self.history),
            revision: self.revision,
            shared: Some(shared),
            read_only: None,
            legacy_undo: self.legacy_undo,
        };
        self.read_only = Some("synchronising…".into());
        Some(worker)
    }

    /// Takes back what [`Document::detach_for_sync`] gave out, patching the
    /// rope to the worker's text; returns the changes applied to the rope.
    pub fn reattach(&mut self, worker: Document) -> Vec<Change> {
        let mut out = Vec::new();
        if let Some(change) = crdt::diff_ropes(&self.rope, &worker.rope) {
            crdt::apply_to_rope(&mut self.rope, &change);
            self.revision += 1;
            out.push(change);
        }
        self.revision = self.revision.max(worker.revision);
        self.history = worker.history;
        self.shared = worker.shared;
        self.legacy_undo = worker.legacy_undo;
        self.read_only = None;
        out
    }

    /// Applies a local edit and records it for undo (merged into the open
    /// undo group; see [`Document::break_undo_group`]).
    ///
    /// Changes are applied in order; each one's indices refer to the text as
    /// left by the previous one. Out-of-range indices are clamped, so a stale
    /// position can never panic the rope. Does nothing on a read-only
    /// document. Shared, the edit becomes one automerge change, queued for
    /// [`Document::take_outgoing`].
    pub fn apply_local(&mut self, changes: &[Change]) {
        if self.is_read_only() {
            return;
        }
        if let Some(shared) = self.shared.as_mut() {
            let mut undo = Vec::new();
            let result = shared.edit(&mut self.rope, |ed| {
                for change in changes {
                    let change = change.clamped(ed.len());
                    if !change.is_noop() {
                        ed.splice(&change, &mut undo)?;
                    }
                }
                Ok(())
            });
            // An automerge error on our own, in-range edit would be a bug;
            // `edit` left both sides as they were, so the edit is dropped.
            if let Ok(((), applied)) = result {
                self.revision += applied.len() as u64;
                // Splits a chunk this edit made too big (host); never
                // changes text here (only undo and remote edits reach
                // retired chunks).
                let moved = shared.maintain(&mut self.rope);
                self.revision += moved.len() as u64;
                if !undo.is_empty() {
                    undo.reverse();
                    self.history
                        .record(undo.into_iter().map(UndoOp::Stable).collect());
                }
            }
            return;
        }
        let mut inverse = Vec::with_capacity(changes.len());
        for change in changes {
            if let Some(inv) = self.apply_one(change) {
                inverse.push(UndoOp::Plain(inv));
            }
        }
        if !inverse.is_empty() {
            inverse.reverse();
            self.history.record(inverse);
        }
    }

    /// Closes the open undo group: the next local edit starts a new one.
    pub fn break_undo_group(&mut self) {
        self.history.break_group();
    }

    /// Whether there is anything to undo.
    pub fn can_undo(&self) -> bool {
        !self.is_read_only() && self.history.can_undo()
    }

    /// Whether there is anything to redo.
    pub fn can_redo(&self) -> bool {
        !self.is_read_only() && self.history.can_redo()
    }

    /// Reverts the last undo group of the local user. Returns the changes
    /// that were applied to the text, so the caller can place the cursor.
    ///
    /// Shared, only this user's edits are reverted: text others typed inside
    /// or around ours stays, and text of ours that others already deleted
    /// stays deleted. A group left with nothing to revert is skipped.
    pub fn undo(&mut self) -> Option<Vec<Change>> {
        self.step(true)
    }

    /// Re-applies the last undone group.
    pub fn redo(&mut self) -> Option<Vec<Change>> {
        self.step(false)
    }

    fn step(&mut self, undo: bool) -> Option<Vec<Change>> {
        if self.is_read_only() {
            return None;
        }
        loop {
            let group = if undo {
                self.history.pop_undo()?
            } else {
                self.history.pop_redo()?
            };
            let (applied, inverse) = match self.shared.is_some() {
                true => self.apply_group_shared(&group)?,
                false => self.apply_group_plain(&group),
            };
            // (A shared group can act without changing the rope here: an
            // undo in a chunk the host split reaches the text via the host.)
            if applied.is_empty()
                && inverse.is_empty()
                && (undo && self.history.can_undo() || !undo && self.history.can_redo())
            {
                continue;
            }
            if undo {
                self.history.push_redo(inverse);
            } else {
                self.history.push_undo(inverse);
            }
            return Some(applied);
        }
    }

    fn apply_group_plain(&mut self, group: &[UndoOp]) -> (Vec<Change>, Vec<UndoOp>) {
        let mut applied = Vec::with_capacity(group.len());
        let mut inverse = Vec::with_capacity(group.len());
        for op in group {
            // Stable ops cannot exist unshared (unshare clears the history).
            let UndoOp::Plain(change) = op else { continue };
            let clamped = change.clamped(self.rope.len_chars());
            if let Some(inv) = self.apply_one(&clamped) {
                applied.push(clamped);
                inverse.push(UndoOp::Plain(inv));
            }
        }
        inverse.reverse();
        (applied, inverse)
    }

    fn apply_group_shared(&mut self, group: &[UndoOp]) -> Option<(Vec<Change>, Vec<UndoOp>)> {
        let shared = self.shared.as_mut()?;
        let mut inverse: Vec<StableOp> = Vec::new();
        let result = shared.edit(&mut self.rope, |ed| {
            for op in group {
                match op {
                    UndoOp::Plain(change) => {
                        let change = change.clamped(ed.len());
                        if !change.is_noop() {
                            ed.splice(&change, &mut inverse)?;
                        }
                    }
                    UndoOp::Stable(op) => ed.apply_stable(op, &mut inverse)?,
                }
            }
            Ok(())
        });
        // On error `edit` left both sides untouched; the group is dropped.
        let ((), mut applied) = result.ok()?;
        // Undo of text in a chunk that was split edits the old chunk; the
        // host moves that onto the new chunks here (a guest's undo reaches
        // the host, which moves it and sends the result).
        applied.extend(shared.maintain(&mut self.rope));
        self.revision += applied.len() as u64;
        inverse.reverse();
        Some((applied, inverse.into_iter().map(UndoOp::Stable).collect()))
    }

    /// The local changes made since the last call, as one message to send
    /// to every peer as it is; `None` if none (or not shared). Small: one
    /// automerge change per [`Document::apply_local`] call.
    pub fn take_outgoing(&mut self) -> Option<Vec<u8>> {
        self.shared.as_mut()?.take_outgoing()
    }

    /// Applies a message from a peer's [`Document::take_outgoing`] (in any
    /// order, duplicated or not: a change that arrives before one it
    /// depends on is held until that one comes, by message or sync, and
    /// what the document has is ignored). Returns the changes made to the rope, in
    /// order, so the editor can remap selections and re-highlight.
    ///
    /// On `Err` the text may still have changed (part of a message applied,
    /// or the state restored after a contained panic): watch
    /// [`Document::revision`]. The document is consistent either way.
    pub fn apply_remote(&mut self, bytes: &[u8]) -> Result<Vec<Change>, DocError> {
        let shared = self.shared.as_mut().ok_or(DocError::NotShared)?;
        let outcome = shared.apply_remote(&mut self.rope, bytes);
        self.after_remote(&outcome.changes);
        match outcome.error {
            None => Ok(outcome.changes),
            Some(e) => Err(e),
        }
    }

    /// The next sync-protocol message for `peer`, if any. Call it after
    /// every local or remote change and after each received sync message,
    /// until it returns `None`.
    pub fn generate_sync_message(
        &mut self,
        peer: &mut PeerSync,
    ) -> Result<Option<Vec<u8>>, DocError> {
        self.shared
            .as_ref()
            .ok_or(DocError::NotShared)?
            .generate_sync_message(peer)
    }

    /// Applies a sync-protocol message from `peer`; returns the rope changes
    /// as [`Document::apply_remote`] does.
    pub fn receive_sync_message(
        &mut self,
        peer: &mut PeerSync,
        msg: &[u8],
    ) -> Result<Vec<Change>, DocError> {
        let shared = self.shared.as_mut().ok_or(DocError::NotShared)?;
        let outcome = shared.receive_sync_message(&mut self.rope, peer, msg);
        self.after_remote(&outcome.changes);
        match outcome.error {
            None => Ok(outcome.changes),
            Some(e) => Err(e),
        }
    }

    fn after_remote(&mut self, changes: &[Change]) {
        self.revision += changes.len() as u64;
        if self.legacy_undo {
            for op in self.history.ops_mut() {
                if let UndoOp::Plain(c) = op {
                    for remote in changes {
                        undo::map_plain(c, remote);
                    }
                }
            }
        }
    }

    /// Layout owner (the host): moves the edits that `actor` made to a
    /// chunk while it was being split, which their author moves itself
    /// when it sees the split — unless it left first. Call when a peer
    /// leaves for good, with each actor it used. Returns the changes made
    /// to the rope. Does nothing elsewhere, or twice.
    pub fn settle_for(&mut self, actor: &ActorId) -> Vec<Change> {
        let Some(shared) = self.shared.as_mut() else {
            return Vec::new();
        };
        let changes = shared.settle_for(&mut self.rope, actor);
        self.after_remote(&changes);
        changes
    }

    /// A position that survives concurrent edits, for char index `pos`
    /// (clamped). `None` if not shared.
    pub fn stable_pos(&self, pos: usize) -> Option<StablePos> {
        self.shared.as_ref()?.stable_pos(pos)
    }

    /// The char index of a stable position now. `None` if not shared or if
    /// the position belongs to another document.
    pub fn resolve(&self, pos: &StablePos) -> Option<usize> {
        self.shared.as_ref()?.resolve(pos)
    }

    /// The CRDT state, mutably (tuning and diagnostics; edits go through
    /// the document).
    pub fn shared_state_mut(&mut self) -> Option<&mut SharedState> {
        self.shared.as_deref_mut()
    }

    /// Full save of the CRDT state (load with [`SharedState::load`]).
    pub fn save_crdt(&mut self) -> Result<Vec<u8>, DocError> {
        Ok(self.shared.as_mut().ok_or(DocError::NotShared)?.save())
    }

    /// Applies one change to the rope; returns its inverse, or `None` if it
    /// was a no-op.
    fn apply_one(&mut self, change: &Change) -> Option<Change> {
        let change = change.clamped(self.rope.len_chars());
        if change.is_noop() {
            return None;
        }
        let removed: String = self.rope.slice(change.start..change.end).to_string();
        crdt::apply_to_rope(&mut self.rope, &change);
        self.revision += 1;
        Some(Change {
            start: change.start,
            end: change.start + change.text.chars().count(),
            text: removed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_undo_redo_round_trip() {
        let mut doc = Document::from_text("hello world");
        doc.apply_local(&[Change::insert(5, ",")]);
        doc.apply_local(&[Change::replace(7, 12, "there")]);
        assert_eq!(doc.rope().to_string(), "hello, there");
        doc.undo();
        assert_eq!(doc.rope().to_string(), "hello world");
        doc.redo();
        assert_eq!(doc.rope().to_string(), "hello, there");
    }

    #[test]
    fn groups_split_on_break() {
        let mut doc = Document::new();
        doc.apply_local(&[Change::insert(0, "a")]);
        doc.apply_local(&[Change::insert(1, "b")]);
        doc.break_undo_group();
        doc.apply_local(&[Change::insert(2, "c")]);
        doc.undo();
        assert_eq!(doc.rope().to_string(), "ab");
        doc.undo();
        assert_eq!(doc.rope().to_string(), "");
        assert!(!doc.can_undo());
    }

    #[test]
    fn new_edit_clears_redo() {
        let mut doc = Document::from_text("x");
        doc.apply_local(&[Change::insert(1, "y")]);
        doc.undo();
        assert!(doc.can_redo());
        doc.apply_local(&[Change::insert(1, "z")]);
        assert!(!doc.can_redo());
    }

    #[test]
    fn out_of_range_is_clamped() {
        let mut doc = Document::from_text("abc");
        doc.apply_local(&[Change::replace(2, 99, "Z")]);
        assert_eq!(doc.rope().to_string(), "abZ");
    }

    #[test]
    fn documents_and_states_can_move_to_a_worker_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Document>();
        assert_send::<SharedState>();
        assert_send::<PeerSync>();
    }

    #[test]
    fn unicode_indices_are_chars() {
        let mut doc = Document::from_text("日本🎉e\u{301}");
        doc.apply_local(&[Change::delete(2, 3)]);
        assert_eq!(doc.rope().to_string(), "日本e\u{301}");
    }
}
