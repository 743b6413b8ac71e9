//! Splitting busy chunks (the layout owner) and following splits (every
//! other replica), with the records that map a retired chunk's chars onto
//! the new ones.

use super::*;

impl SharedState {
    /// Upkeep after every edit and remote apply: moves this replica's own
    /// edits that landed in split chunks onto the chunks that replaced them
    /// (see [`Self::settle_own`]), then, on the layout owner, splits chunks
    /// whose history has grown past [`SPLIT_CHURN`]. Returns the rope
    /// changes made (the moved edits; a split changes no text).
    pub(crate) fn maintain(&mut self, rope: &mut Rope) -> Vec<Change> {
        let out = if self.dirty.is_empty() {
            Vec::new()
        } else {
            self.settle_own(rope)
        };
        if !self.splitter || !self.splitting {
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

    /// Moves this replica's own edits in the retired chunks marked dirty
    /// (splits it just followed while its edits were in flight, undo that
    /// reached a retired chunk) onto the chunks that replaced them, as one
    /// local change. Everyone moves only their own edits, so nothing is
    /// moved twice, and the author never sees its text leave: the split
    /// and the move reach its rope in the same call.
    pub(super) fn settle_own(&mut self, rope: &mut Rope) -> Vec<Change> {
        let dirty = std::mem::take(&mut self.dirty);
        let me = self.am.get_actor().clone();
        let jobs: Vec<(ObjId, ChangeHash)> = dirty
            .into_iter()
            .filter_map(|obj| {
                let rec = self.retired.get(&obj)?;
                let newest = self.newest_after(&rec.at, &me)?;
                Some((obj, newest))
            })
            .collect();
        if jobs.is_empty() {
            return Vec::new();
        }
        let result = self.edit(rope, |ed| {
            for (obj, newest) in &jobs {
                ed.settle(obj, &me, *newest)?;
            }
            Ok(())
        });
        // (A move into a chunk that could not be followed marks it again;
        // trying again would not help.)
        self.dirty.clear();
        match result {
            Ok(((), changes)) => {
                self.settled |= !changes.is_empty();
                changes
            }
            Err(_) => Vec::new(),
        }
    }

    /// Layout owner: moves the edits that `actor` made to chunks while the
    /// owner split them, for a peer that left before it saw the split (and
    /// so never moved them itself). Call when a peer leaves for good.
    /// Returns the rope changes made.
    pub(crate) fn settle_for(&mut self, rope: &mut Rope, actor: &ActorId) -> Vec<Change> {
        if !self.splitter || self.retired.is_empty() || actor == self.am.get_actor() {
            return Vec::new();
        }
        // The peer's newest change, and every change not in its past: a
        // split among those is one the peer never saw. (Reads the whole
        // history's metadata once; only when a peer leaves.)
        let Some(newest) = self.newest_after(&[], actor) else {
            return Vec::new();
        };
        let unseen: HashSet<ChangeHash> = self
            .am
            .get_changes_meta(&[newest])
            .into_iter()
            .map(|c| c.hash)
            .collect();
        let jobs: Vec<ObjId> = self
            .retired
            .iter_mut()
            .filter(|(_, rec)| {
                !rec.settled_for.contains(actor) && rec.at.iter().all(|h| unseen.contains(h))
            })
            .map(|(obj, rec)| {
                rec.settled_for.push(actor.clone());
                obj.clone()
            })
            .collect();
        if jobs.is_empty() {
            return Vec::new();
        }
        let result = self.edit(rope, |ed| {
            for obj in &jobs {
                ed.settle(obj, actor, newest)?;
            }
            Ok(())
        });
        self.dirty.clear();
        result.map(|((), changes)| changes).unwrap_or_default()
    }

    /// The newest change by `actor` that is not in the past of `heads`.
    pub(super) fn newest_after(&self, heads: &[ChangeHash], actor: &ActorId) -> Option<ChangeHash> {
        self.am
            .get_changes_meta(heads)
            .into_iter()
            .filter(|c| *c.actor == *actor)
            .max_by_key(|c| c.seq)
            .map(|c| c.hash)
    }

    /// Replaces chunk `i` by a group of fresh chunks holding its text, as
    /// one change. The text is unchanged; the old chunk is retired.
    pub(super) fn split(&mut self, i: usize) -> Result<(), AutomergeError> {
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
                let (hash, _) = tx.commit();
                self.max_op = None;
                self.unflushed = true;
                let pieces = chunks.iter().filter_map(|c| c.obj.clone()).collect();
                self.chunks.splice(i..=i, chunks);
                self.groups.insert(group);
                self.retired_ids.insert(obj.clone());
                self.retired.insert(
                    obj,
                    Retired {
                        pieces,
                        refs,
                        author: self.am.get_actor().clone(),
                        at: hash.into_iter().collect(),
                        moved: HashMap::new(),
                        settled_for: Vec::new(),
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

    /// Not the layout owner: when the table changed by one chunk giving way
    /// to new ones made by one change (the owner split it), records which
    /// new char stands for each char the chunk had in that change, as the
    /// owner does. Our undo entries that name the old chunk are then
    /// carried out on the new chunks (see `ChunkEditor::translate_stable`),
    /// and our edits that raced the split are moved there
    /// (`ChunkEditor::settle`).
    pub(super) fn follow_split(&mut self, old_mid: &[Chunk], pre: usize, suf: usize) {
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
    pub(super) fn record_split(&mut self, retired: ObjId, pieces: Vec<ObjId>) {
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
        // Our own edits that were in flight as the split was made are in
        // the old chunk: `maintain` moves them.
        self.dirty.push(retired.clone());
        self.retired.insert(
            retired,
            Retired {
                pieces,
                refs,
                author,
                at: heads,
                moved: HashMap::new(),
                settled_for: Vec::new(),
            },
        );
    }
}

/// Puts a new group at element `sub` of `parent` with `text` cut into
/// chunks.
pub(super) fn split_into_group(
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

/// The changed ranges between `old` and `new`, in order: (range of `old`,
/// range of `new`). Separate edits stay separate hunks, so that text
/// between them is not re-created by a repair.
pub(super) fn char_hunks(
    old: &[char],
    new: &[char],
) -> Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> {
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
pub(super) fn cut(text: &str, n: usize) -> Vec<&str> {
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
