//! The rope mirror: keeping the document's rope equal to the automerge
//! text (patches, chunk re-reads), and positions that survive edits.

use super::*;

impl SharedState {
    /// Re-reads the chunk table (the leaves of the layout tree, in order)
    /// from automerge. Chunks that were in the table and are no longer are
    /// remembered as retired.
    pub(super) fn rebuild_table(&mut self) {
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

    /// Turns automerge patches into rope changes, keeping the chunk table.
    ///
    /// A layout change (a split, a chunk added inside a group) is not
    /// followed patch by patch: the rest is applied to the chunks the table
    /// knows, and the table is re-read at the end, with the rope patched
    /// only where chunks came or went (a split changes no text).
    pub(super) fn patch_rope(
        &mut self,
        rope: &mut Rope,
        patches: &[automerge::Patch],
        out: &mut Vec<Change>,
    ) {
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
    pub(super) fn resync_changed_chunks(&mut self, rope: &mut Rope, out: &mut Vec<Change>) {
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

    /// One patch; `Err(())` when it changes the layout in a way only a full
    /// resync can follow.
    pub(super) fn patch_one(
        &mut self,
        rope: &mut Rope,
        patch: &automerge::Patch,
        out: &mut Vec<Change>,
    ) -> Result<(), ()> {
        if matches!(patch.path.first(), Some((o, automerge::Prop::Map(k))) if *o == ROOT && k == ORDER_KEY)
        {
            // An older layout owner's scratch text (see `ORDER_KEY`).
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
                // Split away: edits to it are moved by their authors.
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

    pub(super) fn emit(&self, rope: &mut Rope, out: &mut Vec<Change>, change: Change) {
        if !change.is_noop() {
            apply_to_rope(rope, &change);
            out.push(change);
        }
    }

    pub(super) fn index_of(&self, obj: &ObjId) -> Option<usize> {
        self.chunks.iter().position(|c| c.obj.as_ref() == Some(obj))
    }

    pub(super) fn prefix(&self, idx: usize) -> usize {
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
}

/// Appends the leaves of layout list `list` to `out`, depth first.
pub(super) fn walk_layout(
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

/// The changes, in order, that turn `old` into `new`: the part between
/// their common prefix and suffix, cut into separate hunks where that is
/// cheap to find (so that positions between two far-apart edits stay
/// put), else one replacement.
pub(crate) fn net_changes(old: &Rope, new: &Rope) -> Vec<Change> {
    let Some(whole) = diff_ropes(old, new) else {
        return Vec::new();
    };
    let old_mid: Vec<char> = old.slice(whole.start..whole.end).chars().collect();
    let new_mid: Vec<char> = whole.text.chars().collect();
    let mut out = Vec::new();
    // Each change's offsets are in the text as left by the ones before.
    let mut at = whole.start;
    let mut done = 0;
    for (o, n) in char_hunks(&old_mid, &new_mid) {
        at += o.start - done;
        let text: String = new_mid[n.clone()].iter().collect();
        out.push(Change::replace(at, at + o.len(), text));
        at += n.len();
        done = o.end;
    }
    out
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
