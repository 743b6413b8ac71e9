//! Old text → new text as a list of [`Change`]s, for merging a file that
//! another program rewrote on the host's disk (a `git checkout`, a
//! formatter) into the live shared document.
//!
//! Line granularity (similar's Myers diff over lines): a formatter that
//! touches three lines of a large file becomes three small replacements,
//! so guests' cursors elsewhere stay where they are. Changes are emitted
//! from the end of the text backwards, so each one's indices are valid on
//! the text the previous one left (the `Document::apply_local` contract)
//! and also on the original text.
//!
//! May depend on: similar, `doc::Change`.

use similar::{DiffOp, TextDiff};

use crate::doc::Change;

/// The changes that turn `old` into `new` (char indices); empty if equal.
pub fn diff_text(old: &str, new: &str) -> Vec<Change> {
    if old == new {
        return Vec::new();
    }
    let diff = TextDiff::configure().diff_lines(old, new);
    let old_lines: Vec<&str> = diff.old_slices().to_vec();
    let new_lines: Vec<&str> = diff.new_slices().to_vec();
    // Char offset of the start of every old line (plus the end).
    let mut old_starts = Vec::with_capacity(old_lines.len() + 1);
    let mut at = 0usize;
    for line in &old_lines {
        old_starts.push(at);
        at += line.chars().count();
    }
    old_starts.push(at);

    let mut out = Vec::new();
    for op in diff.ops().iter().rev() {
        let (old_range, new_range) = match *op {
            DiffOp::Equal { .. } => continue,
            DiffOp::Delete {
                old_index,
                old_len,
                new_index,
                ..
            } => (old_index..old_index + old_len, new_index..new_index),
            DiffOp::Insert {
                old_index,
                new_index,
                new_len,
            } => (old_index..old_index, new_index..new_index + new_len),
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => (
                old_index..old_index + old_len,
                new_index..new_index + new_len,
            ),
        };
        let start = old_starts[old_range.start];
        let end = old_starts[old_range.end];
        let text: String = new_lines[new_range].concat();
        out.push(Change::replace(start, end, text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::Document;
    use proptest::prelude::*;

    fn apply(old: &str, changes: &[Change]) -> String {
        let mut doc = Document::from_text(old);
        doc.apply_local(changes);
        doc.rope().to_string()
    }

    #[test]
    fn small_edits_stay_small() {
        let old = "a\nb\nc\nd\n";
        let new = "a\nB\nc\nd\ne\n";
        let changes = diff_text(old, new);
        assert_eq!(changes.len(), 2);
        assert_eq!(apply(old, &changes), new);
    }

    #[test]
    fn unicode_and_missing_final_newline() {
        let old = "日本\n🎉x";
        let new = "日本語\n🎉x\ny";
        assert_eq!(apply(old, &diff_text(old, new)), new);
        assert!(diff_text(old, old).is_empty());
    }

    proptest! {
        #[test]
        fn diff_applies(old in "[ab\n日]{0,40}", new in "[ab\n日]{0,40}") {
            prop_assert_eq!(apply(&old, &diff_text(&old, &new)), new);
        }
    }
}
