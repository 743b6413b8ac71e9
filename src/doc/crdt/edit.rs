//! Local edits: one transaction over the chunks ([`ChunkEditor`]), with
//! per-user undo records and the repair of edits that raced a split.

use super::*;

impl SharedState {
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

/// Consecutive chars that one replica inserted into a chunk while it was
/// being split (`ChunkEditor::settle`): between the split text's chars
/// `prev` and `next` (indices; `None` at either end), their text and op
/// counters.
struct RacingRun {
    prev: Option<usize>,
    next: Option<usize>,
    text: String,
    ctrs: Vec<u64>,
}

/// One local transaction in progress: the automerge side plus the rope.
/// (Not the editor of `crate::editor`: it edits the chunks of one
/// document's CRDT state.)
pub(crate) struct ChunkEditor<'t, 'a> {
    pub(super) tx: &'t mut Transaction<'a>,
    pub(super) list: &'t ObjId,
    pub(super) chunks: &'t mut Vec<Chunk>,
    pub(super) len: &'t mut usize,
    pub(super) rope: &'t mut Rope,
    /// Rope changes made, in order.
    pub(super) applied: Vec<Change>,
    /// Their inverses, to restore the rope if the transaction fails.
    pub(super) rope_undo: Vec<Change>,
    /// Chunks split away (see [`SharedState`]'s `retired_ids`).
    pub(super) retired_ids: &'t HashSet<ObjId>,
    /// What this replica knows of split chunks (the owner: every chunk it
    /// split; others: the splits they could follow, see `follow_split`).
    pub(super) retired: &'t mut HashMap<ObjId, Retired>,
    /// Retired chunks this replica edited (see [`SharedState`]'s `dirty`).
    pub(super) dirty: &'t mut Vec<ObjId>,
    /// This replica's actor.
    pub(super) actor: ActorId,
    /// Counter of this transaction's first op, if known.
    pub(super) first_op: Option<u64>,
    /// See [`SharedState`]'s `hot` and `split_churn`.
    pub(super) hot: &'t mut bool,
    pub(super) split_churn: usize,
}

impl ChunkEditor<'_, '_> {
    /// Current length in chars.
    pub(crate) fn len(&self) -> usize {
        *self.len
    }

    pub(super) fn index_of(&self, obj: &ObjId) -> Option<usize> {
        self.chunks.iter().position(|c| c.obj.as_ref() == Some(obj))
    }

    pub(super) fn prefix(&self, idx: usize) -> usize {
        self.chunks[..idx].iter().map(|c| c.len).sum()
    }

    pub(super) fn rope_apply(&mut self, change: Change) {
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
    pub(super) fn slot_of(&self, obj: &ObjId) -> Result<Option<usize>, ()> {
        match self.index_of(obj) {
            Some(i) => Ok(Some(i)),
            None if self.retired_ids.contains(obj) => Ok(None),
            None => Err(()),
        }
    }

    pub(super) fn chunk_len(&self, slot: Option<usize>, obj: &ObjId) -> usize {
        match slot {
            Some(i) => self.chunks[i].len,
            None => self.tx.length(obj),
        }
    }

    pub(super) fn mark_dirty(&mut self, obj: &ObjId) {
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

    pub(super) fn delete(
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
    pub(super) fn delete_undoable(
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
    pub(super) fn delete_in(
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
    pub(super) fn sub_index(&self, parent: &ObjId, obj: &ObjId) -> Option<usize> {
        self.tx
            .list_range(parent, ..)
            .position(|item| item.id() == *obj)
    }

    pub(super) fn insert(
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
    pub(super) fn insert_in(
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
    pub(super) fn char_id(&self, obj: &ObjId, off: usize) -> Result<CharId, AutomergeError> {
        match self.tx.get(obj, off)? {
            Some((_, ObjId::Id(ctr, actor, _))) => Ok(CharId { ctr, actor }),
            _ => Err(AutomergeError::InvalidIndex(off)),
        }
    }

    /// Applies one undo/redo operation; pushes its inverse onto `inverse`.
    /// An operation whose chunk or cursor no longer resolves is skipped.
    /// On a chunk that was split, the operation is carried out on the new
    /// chunks (`translate_stable`), or else edits the old chunk and is
    /// moved from there (`settle`).
    pub(crate) fn apply_stable(
        &mut self,
        op: &StableOp,
        inverse: &mut Vec<StableOp>,
    ) -> Result<(), AutomergeError> {
        if self.translate_stable(op, inverse)? {
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

    /// Carries out `op`, which names a retired chunk, on the chars that
    /// replaced that chunk's text, using the record of the split (the
    /// owner's own, or the one made when the split was followed). Returns
    /// `false` if there is no record or a char it needs cannot be found;
    /// `op` then lands in the retired chunk and `maintain` moves it
    /// (`settle`). Nothing is changed before every char it needs is found
    /// in a live chunk.
    pub(super) fn translate_stable(
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

    pub(super) fn translate_with(
        &mut self,
        op: &StableOp,
        rec: &Retired,
        inverse: &mut Vec<StableOp>,
    ) -> Result<bool, AutomergeError> {
        if rec.at.is_empty() {
            return Ok(false);
        }
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
                // when it was split, or where it was moved to if it was
                // typed as the split was made.
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
                    let spot = match then.get(&ctr).and_then(|&k| rec.refs.get(k)) {
                        Some(&(p, stand_in)) => rec
                            .pieces
                            .get(p as usize)
                            .and_then(|piece| self.live_char(piece.clone(), &rec.author, stand_in)),
                        None => match rec.moved.get(&ctr) {
                            Some((piece, moved)) if *actor == self.actor => {
                                self.live_char(piece.clone(), actor, *moved)
                            }
                            _ => return Ok(false),
                        },
                    };
                    if let Some(found_at) = spot {
                        found.push(found_at);
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
                // Where the text went in the chunk as it was split, or
                // before the char that replaced our racing anchor char.
                let Some(cursor) = anchor.cursor() else {
                    return Ok(false);
                };
                let spot = match self.tx.get_cursor_position(chunk, &cursor, Some(&rec.at)) {
                    Ok(k) => {
                        let k = k.min(rec.refs.len());
                        let (p, pos) = self.anchor_for(rec, k, k);
                        rec.pieces
                            .get(p as usize)
                            .and_then(|piece| self.live_spot(piece.clone(), pos))
                    }
                    Err(_) => match rec.moved.get(&anchor.ctr) {
                        Some((piece, moved)) if anchor.actor == self.actor => self
                            .locate(piece, &self.actor, *moved)
                            .and_then(|(pos, _)| self.live_spot(piece.clone(), pos)),
                        _ => None,
                    },
                };
                let Some((slot, piece, pos)) = spot else {
                    return Ok(false);
                };
                self.insert_in(Some(slot), &piece, pos, text, inverse)?;
                Ok(true)
            }
        }
    }

    /// Moves the edits that `mover` made to retired chunk `obj` while it
    /// was being split (its inserts that are still there, its deletes) onto
    /// the chars that replaced the chunk's text. `newest`: the mover's
    /// newest change not in the split's past; the chunk read as of the
    /// split plus that change is the split's text with exactly the mover's
    /// racing edits in it (everyone else's edits since the split reached
    /// the mover only after the split did). Inserts already moved (this
    /// replica's own, see `Retired::moved`) are not moved again, and
    /// deleting a char that is already gone does nothing, so settling twice
    /// is harmless.
    pub(crate) fn settle(
        &mut self,
        obj: &ObjId,
        mover: &ActorId,
        newest: ChangeHash,
    ) -> Result<(), AutomergeError> {
        let Some(mut rec) = self.retired.remove(obj) else {
            return Ok(());
        };
        let result = self.settle_with(obj, &mut rec, mover, newest);
        self.retired.insert(obj.clone(), rec);
        result
    }

    fn settle_with(
        &mut self,
        obj: &ObjId,
        rec: &mut Retired,
        mover: &ActorId,
        newest: ChangeHash,
    ) -> Result<(), AutomergeError> {
        if rec.at.is_empty() {
            return Ok(());
        }
        let id_of = |id: ObjId| match id {
            ObjId::Id(ctr, actor, _) => Some((ctr, actor)),
            _ => None,
        };
        let then: Vec<(u64, ActorId)> = self
            .tx
            .list_range_at(obj, .., &rec.at)
            .filter_map(|item| id_of(item.id()))
            .collect();
        if then.len() != rec.refs.len() {
            return Ok(());
        }
        let index: HashMap<&(u64, ActorId), usize> =
            then.iter().enumerate().map(|(k, c)| (c, k)).collect();
        let mut heads = rec.at.clone();
        heads.push(newest);
        let view: Vec<((u64, ActorId), String)> = self
            .tx
            .list_range_at(obj, .., &heads)
            .filter_map(|item| {
                let s = match &item.value {
                    ValueRef::Scalar(ScalarValueRef::Str(s)) => s.to_string(),
                    _ => "\u{fffc}".to_string(),
                };
                Some((id_of(item.id())?, s))
            })
            .collect();
        // Its deletes: chars of the split text missing from its view. Their
        // stand-ins go (back to front, so that positions hold).
        let kept: HashSet<usize> = view
            .iter()
            .filter_map(|(c, _)| index.get(c).copied())
            .collect();
        for k in (0..then.len()).rev() {
            if kept.contains(&k) {
                continue;
            }
            let (p, ctr) = rec.refs[k];
            let Some(piece) = rec.pieces.get(p as usize).cloned() else {
                continue;
            };
            if let Some((slot, piece, pos)) = self.live_char(piece, &rec.author, ctr) {
                self.delete_in(Some(slot), &piece, pos, 1)?;
            }
        }
        // Its inserts: runs of its chars that the split text lacks, each
        // put after the stand-in of the split char before it.
        let mut runs: Vec<RacingRun> = Vec::new();
        let mut prev: Option<usize> = None;
        let mut open: Option<RacingRun> = None;
        for ((ctr, actor), s) in &view {
            if let Some(&k) = index.get(&(*ctr, actor.clone())) {
                if let Some(mut run) = open.take() {
                    run.next = Some(k);
                    runs.push(run);
                }
                prev = Some(k);
            } else if actor == mover && !rec.moved.contains_key(ctr) {
                let run = open.get_or_insert_with(|| RacingRun {
                    prev,
                    next: None,
                    text: String::new(),
                    ctrs: Vec::new(),
                });
                run.text.push_str(s);
                run.ctrs.push(*ctr);
            }
        }
        runs.extend(open);
        let mine = *mover == self.actor;
        for run in runs {
            let pre = run.prev.map_or(0, |k| k + 1);
            let (p, pos) = self.anchor_for(rec, pre, run.next.unwrap_or(then.len()));
            let Some(piece) = rec.pieces.get(p as usize).cloned() else {
                continue;
            };
            let (slot, piece, pos) = match self.live_spot(piece.clone(), pos) {
                Some((slot, piece, pos)) => (Some(slot), piece, pos),
                // A chain of splits it cannot follow: the text goes into
                // the old chunk, out of view but not lost from history.
                None => {
                    let len = self.tx.length(&piece);
                    (None, piece, pos.min(len))
                }
            };
            let mut made = Vec::new();
            self.insert_in(slot, &piece, pos, &run.text, &mut made)?;
            if let (true, Some(StableOp::RemoveInserted { counters, .. })) = (mine, made.first()) {
                for (old, new) in run.ctrs.into_iter().zip(counters.clone()) {
                    rec.moved.insert(old, (piece.clone(), new));
                }
            }
        }
        Ok(())
    }

    /// Where the owner's char `ctr` of `piece` is, following later splits
    /// of `piece` (records of this replica); `None` if it is gone or
    /// cannot be followed.
    fn live_char(
        &self,
        mut piece: ObjId,
        author: &ActorId,
        mut ctr: u64,
    ) -> Option<(usize, ObjId, usize)> {
        let mut author = author.clone();
        for _ in 0..MAX_GROUP_DEPTH {
            match self.slot_of(&piece) {
                Ok(Some(slot)) => {
                    let (pos, alive) = self.locate(&piece, &author, ctr)?;
                    return alive.then_some((slot, piece, pos));
                }
                Ok(None) => {}
                Err(()) => return None,
            }
            let rec = self.retired.get(&piece)?;
            let k = self.tx.list_range_at(&piece, .., &rec.at).position(
                |item| matches!(item.id(), ObjId::Id(c, ref a, _) if c == ctr && *a == author),
            )?;
            let &(p, next) = rec.refs.get(k)?;
            piece = rec.pieces.get(p as usize)?.clone();
            ctr = next;
            author = rec.author.clone();
        }
        None
    }

    /// The live chunk and offset for offset `pos` of `piece`, following
    /// later splits of `piece` (records of this replica) by the char
    /// before `pos`.
    fn live_spot(&self, mut piece: ObjId, mut pos: usize) -> Option<(usize, ObjId, usize)> {
        for _ in 0..MAX_GROUP_DEPTH {
            match self.slot_of(&piece) {
                Ok(Some(slot)) => return Some((slot, piece, pos.min(self.chunks[slot].len))),
                Ok(None) => {}
                Err(()) => return None,
            }
            let rec = self.retired.get(&piece)?;
            let k = match pos.checked_sub(1) {
                None => 0,
                Some(b) => {
                    let before = self.tx.list_range(&piece, b..=b).next()?.id();
                    self.tx
                        .list_range_at(&piece, .., &rec.at)
                        .position(|item| item.id() == before)?
                        + 1
                }
            };
            let (p, next) = self.anchor_for(rec, k, k);
            piece = rec.pieces.get(p as usize)?.clone();
            pos = next;
        }
        None
    }

    /// Where the owner's char `ctr` in `piece` is now, and whether it is
    /// still there (a deleted char resolves to where it was).
    pub(super) fn locate(
        &self,
        piece: &ObjId,
        author: &ActorId,
        ctr: u64,
    ) -> Option<(usize, bool)> {
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
    pub(super) fn anchor_for(&self, rec: &Retired, pre: usize, del_end: usize) -> (u32, usize) {
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
