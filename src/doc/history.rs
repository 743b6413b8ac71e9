//! The local user's undo and redo stacks.
//!
//! An entry is the inverse of what the user did, as a list of changes to
//! apply in order. Consecutive edits merge into one group until the editor
//! breaks the group (cursor moved, a pause, a save, a word boundary).

use super::Change;

/// Most undo groups kept; older ones are dropped.
pub const MAX_UNDO_GROUPS: usize = 10_000;

/// Undo and redo stacks of one user.
#[derive(Debug, Clone, Default)]
pub struct History {
    undo: Vec<Vec<Change>>,
    redo: Vec<Vec<Change>>,
    group_open: bool,
}

impl History {
    /// Records the inverse of a new local edit; clears redo.
    pub fn record(&mut self, inverse: Vec<Change>) {
        self.redo.clear();
        match self.undo.last_mut() {
            Some(group) if self.group_open => {
                // The inverse of a later edit must run before the older ones.
                let mut merged = inverse;
                merged.append(group);
                *group = merged;
            }
            _ => {
                self.undo.push(inverse);
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

    pub(crate) fn pop_undo(&mut self) -> Option<Vec<Change>> {
        self.group_open = false;
        self.undo.pop()
    }

    pub(crate) fn pop_redo(&mut self) -> Option<Vec<Change>> {
        self.group_open = false;
        self.redo.pop()
    }

    pub(crate) fn push_redo(&mut self, group: Vec<Change>) {
        self.redo.push(group);
    }

    pub(crate) fn push_undo(&mut self, group: Vec<Change>) {
        self.undo.push(group);
    }
}
