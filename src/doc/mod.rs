//! The text document: the buffer type every layer above builds on.
//!
//! A [`Document`] is a rope ([`ropey::Rope`]) that the editor renders and
//! measures, plus the local user's undo history. Positions are `char`
//! indices into the rope everywhere (never bytes, never graphemes): the
//! editor snaps them to grapheme boundaries, this module does not care.
//!
//! An edit is a plain value: a list of [`Change`]s applied in order, each
//! replacing a `char` range with new text. Undo entries are edits too, so
//! undo and redo are just "apply the inverse".
//!
//! May depend on: std, ropey, automerge. Nothing async, nothing terminal,
//! nothing network.

mod change;
mod history;

pub use change::{Assoc, Change};
pub use history::History;

use ropey::Rope;

/// A text document: a rope plus the local user's undo history.
#[derive(Debug, Clone, Default)]
pub struct Document {
    rope: Rope,
    history: History,
    revision: u64,
}

impl Document {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// A document holding `text`; no undo history.
    pub fn from_text(text: &str) -> Self {
        Self {
            rope: Rope::from_str(text),
            history: History::default(),
            revision: 0,
        }
    }

    /// A document from an already built rope (used by loaders of large files).
    pub fn from_rope(rope: Rope) -> Self {
        Self {
            rope,
            history: History::default(),
            revision: 0,
        }
    }

    /// The current text.
    pub fn rope(&self) -> &Rope {
        &self.rope
    }

    /// Length in chars.
    pub fn len_chars(&self) -> usize {
        self.rope.len_chars()
    }

    /// Whether the document has CRDT state (is part of a session).
    pub fn is_shared(&self) -> bool {
        false
    }

    /// Increments on every change to the text, local or undo/redo.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Applies a local edit and records it for undo (merged into the open
    /// undo group; see [`Document::break_undo_group`]).
    ///
    /// Changes are applied in order; each one's indices refer to the text as
    /// left by the previous one. Out-of-range indices are clamped, so a stale
    /// position can never panic the rope.
    pub fn apply_local(&mut self, changes: &[Change]) {
        let mut inverse = Vec::with_capacity(changes.len());
        for change in changes {
            if let Some(inv) = self.apply_one(change) {
                inverse.push(inv);
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
        self.history.can_undo()
    }

    /// Whether there is anything to redo.
    pub fn can_redo(&self) -> bool {
        self.history.can_redo()
    }

    /// Reverts the last undo group of the local user. Returns the changes
    /// that were applied to the text, so the caller can place the cursor.
    pub fn undo(&mut self) -> Option<Vec<Change>> {
        let group = self.history.pop_undo()?;
        let (applied, inverse) = self.apply_all(&group);
        self.history.push_redo(inverse);
        Some(applied)
    }

    /// Re-applies the last undone group.
    pub fn redo(&mut self) -> Option<Vec<Change>> {
        let group = self.history.pop_redo()?;
        let (applied, inverse) = self.apply_all(&group);
        self.history.push_undo(inverse);
        Some(applied)
    }

    fn apply_all(&mut self, changes: &[Change]) -> (Vec<Change>, Vec<Change>) {
        let mut applied = Vec::with_capacity(changes.len());
        let mut inverse = Vec::with_capacity(changes.len());
        for change in changes {
            let clamped = change.clamped(self.rope.len_chars());
            if let Some(inv) = self.apply_one(&clamped) {
                applied.push(clamped);
                inverse.push(inv);
            }
        }
        inverse.reverse();
        (applied, inverse)
    }

    /// Applies one change to the rope; returns its inverse, or `None` if it
    /// was a no-op.
    fn apply_one(&mut self, change: &Change) -> Option<Change> {
        let change = change.clamped(self.rope.len_chars());
        if change.is_noop() {
            return None;
        }
        let removed: String = self.rope.slice(change.start..change.end).to_string();
        if change.end > change.start {
            self.rope.remove(change.start..change.end);
        }
        if !change.text.is_empty() {
            self.rope.insert(change.start, &change.text);
        }
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
    fn unicode_indices_are_chars() {
        let mut doc = Document::from_text("日本🎉e\u{301}");
        doc.apply_local(&[Change::delete(2, 3)]);
        assert_eq!(doc.rope().to_string(), "日本e\u{301}");
    }
}
