//! Per-user undo for shared documents.
//!
//! In a shared document an undo entry does not say "delete chars 10..15";
//! by the time the user presses Ctrl+Z, other people may have typed before,
//! inside or over those chars. Instead an entry names the chars by their
//! CRDT identity:
//!
//! - [`StableOp::RemoveInserted`] undoes an insertion: it deletes, between
//!   the positions of the first and last inserted char, exactly the chars
//!   whose automerge op id is ours (our actor, counters of that insertion).
//!   Text that others typed inside our insertion stays; chars of ours that
//!   someone already deleted are simply gone.
//! - [`StableOp::Reinsert`] undoes a deletion: it puts the deleted text back
//!   at a cursor taken on the first deleted char before it was deleted,
//!   which automerge resolves to where that char would be now, even after
//!   others edited around it.
//!
//! Applying one kind produces the other as its inverse, so redo works the
//! same way. Other people's edits are never reverted, and an undo never
//! fails because the text moved: at worst an entry has nothing left to do.
//!
//! Entries recorded before the document became shared stay plain
//! [`Change`]s; they are mapped through every remote change so that they
//! keep pointing at the same text (best effort, see [`super::Document::share`]).

use super::Change;
use automerge::{ActorId, Cursor, ObjId};
use std::ops::RangeInclusive;

/// The automerge id of one char (its insert op): counter and actor.
#[derive(Debug, Clone)]
pub(crate) struct CharId {
    pub(crate) ctr: u64,
    pub(crate) actor: ActorId,
}

impl CharId {
    /// A cursor on this char, made only when an undo needs it (building
    /// cursors eagerly for every keystroke cost a measurable share of the
    /// local edit path).
    pub(crate) fn cursor(&self) -> Option<Cursor> {
        Cursor::try_from(format!("{}@{}", self.ctr, self.actor).as_str()).ok()
    }
}

/// One undo or redo operation on a shared document.
#[derive(Debug, Clone)]
pub(crate) enum StableOp {
    /// Delete our chars of one insertion that are still there.
    /// (Insert ops of one splice have consecutive counters.)
    RemoveInserted {
        chunk: ObjId,
        actor: ActorId,
        counters: RangeInclusive<u64>,
    },
    /// Put deleted text back where its first char was.
    Reinsert {
        chunk: ObjId,
        anchor: CharId,
        text: String,
    },
}

/// An entry of the document's history.
#[derive(Debug, Clone)]
pub(crate) enum UndoOp {
    /// Char-index change (unshared documents, and entries from before sharing).
    Plain(Change),
    /// CRDT-identity operation (shared documents).
    Stable(StableOp),
}

/// Rewrites a plain undo change, valid before remote change `remote`, so
/// that it is valid after it.
pub(crate) fn map_plain(op: &mut Change, remote: &Change) {
    if op.start == op.end {
        let p = remote.map_pos(op.start, super::Assoc::Before);
        op.start = p;
        op.end = p;
    } else {
        let s = remote.map_pos(op.start, super::Assoc::After);
        let e = remote.map_pos(op.end, super::Assoc::Before);
        op.start = s;
        op.end = e.max(s);
    }
}
