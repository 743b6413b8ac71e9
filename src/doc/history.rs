//! The local user's undo and redo stacks.
//!
//! An entry is the inverse of what the user did, as a list of operations to
//! apply in order. Consecutive edits merge into one group until the editor
//! breaks the group (cursor moved, a pause, a save, a word boundary).
//!
//! The stacks are generic over the operation type: an unshared document
//! stores plain [`Change`]s (char indices), a shared one stores stable
//! operations that name the characters by their CRDT identity (see
//! `undo.rs`), so that undo reverts only this user's edits.

use super::Change;

/// Most undo groups kept; older ones are dropped.
pub const MAX_UNDO_GROUPS: usize = 10_000;

/// Undo and redo stacks of one user.
///
/// Each group is stored in *reverse* application order, so that merging a
/// new edit into the open group is a push at the end (O(1)) rather than a
/// prepend (O(group size), quadratic over a long run of typing).
#[derive(Debug, Clone)]
pub struct History<T = Change> {
    undo: Vec<Vec<T>>,
    redo: Vec<Vec<T>>,
    group_open: bool,
}

impl<T> Default for History<T> {
    fn default() -> Self {
        Self {
            undo: Vec::new(),
            redo: Vec::new(),
            group_open: false,
        }
    }
}

impl<T> History<T> {
    /// Records the inverse of a new local edit; clears redo.
    pub fn record(&mut self, inverse: Vec<T>) {
        self.redo.clear();
        match self.undo.last_mut() {
            Some(group) if self.group_open => {
                // The inverse of a later edit must run before the older ones:
                // with groups stored reversed, that is an append.
                group.extend(inverse.into_iter().rev());
            }
            _ => {
                self.undo.push(inverse.into_iter().rev().collect());
                if self.undo.len() > MAX_UNDO_GROUPS {
                    self.undo.remove(0);
                }
            }
        }
        self.group_open = true;
    }

    /// Closes the open group.
    pub fn break_group(&mut self) {
        self.group_open = false;
    }

    /// Anything to undo?
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Anything to redo?
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    /// The newest undo group, in application order.
    pub(crate) fn pop_undo(&mut self) -> Option<Vec<T>> {
        self.group_open = false;
        self.undo.pop().map(reversed)
    }

    /// The newest redo group, in application order.
    pub(crate) fn pop_redo(&mut self) -> Option<Vec<T>> {
        self.group_open = false;
        self.redo.pop().map(reversed)
    }

    /// Pushes a group given in application order.
    pub(crate) fn push_redo(&mut self, group: Vec<T>) {
        self.redo.push(reversed(group));
    }

    /// Pushes a group given in application order.
    pub(crate) fn push_undo(&mut self, group: Vec<T>) {
        self.undo.push(reversed(group));
    }

    /// Keeps only the newest `keep` groups of each stack.
    pub(crate) fn truncate_to(&mut self, keep: usize) {
        for stack in [&mut self.undo, &mut self.redo] {
            if stack.len() > keep {
                stack.drain(..stack.len() - keep);
            }
        }
    }

    /// Every operation of both stacks, for rewriting in place.
    pub(crate) fn ops_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.undo
            .iter_mut()
            .chain(self.redo.iter_mut())
            .flat_map(|g| g.iter_mut())
    }

    /// Drops everything.
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }
}

fn reversed<T>(mut group: Vec<T>) -> Vec<T> {
    group.reverse();
    group
}
