//! Old text → new text as a list of [`Change`]s, for merging a file that
//! another program rewrote on the host's disk (a `git checkout`, a
//! formatter) into the live shared document.
//!
//! Line granularity (an LCS over the changed lines): a formatter that
//! touches three lines of a large file becomes three small replacements,
//! so guests' cursors elsewhere stay where they are. Changes are emitted
//! from the end of the text backwards, so each one's indices are valid on
//! the text the previous one left (the `Document::apply_local` contract)
//! and also on the original text.
//!
//! May depend on: similar, `doc::Change`.

use similar::{capture_diff_slices, Algorithm, DiffOp};

use crate::doc::Change;

/// Largest (changed old lines × changed new lines) diffed line by line;
/// beyond it the changed middle becomes one replacement. similar's LCS
/// table costs this many cells; its Myers, which would scale better,
/// returned out-of-order ops on some inputs (similar 2.7), so it is not used.
const MAX_LCS_CELLS: usize = 4_000_000;

/// The changes that turn `old` into `new` (char indices); empty if equal.
pub fn diff_text(old: &str, new: &str) -> Vec<Change> {
    if old == new {
        return Vec::new();
    }
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    // Common leading and trailing lines cost nothing to skip.
    let prefix = old_lines
        .iter()
        .zip(&new_lines)
        .take_while(|(a, b)| a == b)
        .count();
    let max_suffix = old_lines.len().min(new_lines.len()) - prefix;
    let suffix = old_lines
        .iter()
        .rev()
        .zip(new_lines.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    let mid_old = &old_lines[prefix..old_lines.len() - suffix];
    let mid_new = &new_lines[prefix..new_lines.len() - suffix];

    // Char offset of the start of every old line (plus the end).
    let mut old_starts = Vec::with_capacity(old_lines.len() + 1);
    let mut at = 0usize;
    for line in &old_lines {
        old_starts.push(at);
        at += line.chars().count();
    }
    old_starts.push(at);

    let whole = vec![DiffOp::Replace {
        old_index: 0,
        old_len: mid_old.len(),
        new_index: 0,
        new_len: mid_new.len(),
    }];
    let ops = if mid_old.len().saturating_mul(mid_new.len()) <= MAX_LCS_CELLS {
        let ops = capture_diff_slices(Algorithm::Lcs, mid_old, mid_new);
        if in_order(&ops) {
            ops
        } else {
            whole
        }
    } else {
        whole
    };

    let mut out = Vec::new();
    for op in ops.iter().rev() {
        let (old_range, new_range) = match *op {
            DiffOp::Equal { .. } => continue,
            DiffOp::Delete {
                old_index,
                old_len,
                new_index,
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
        if old_range.is_empty() && new_range.is_empty() {
            continue;
        }
        let start = old_starts[prefix + old_range.start];
        let end = old_starts[prefix + old_range.end];
        let text: String = mid_new[new_range].concat();
        out.push(Change::replace(start, end, text));
    }
    out
}

/// Whether ops cover the old and new slices left to right without gaps
/// (what applying them from the end backwards relies on).
fn in_order(ops: &[DiffOp]) -> bool {
    let (mut old_at, mut new_at) = (0, 0);
    for op in ops {
        if op.old_range().start != old_at || op.new_range().start != new_at {
            return false;
        }
        old_at = op.old_range().end;
        new_at = op.new_range().end;
    }
    true
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

    #[test]
    fn out_of_order_myers_case() {
        let (old, new) = ("b\nb\na日\nb\n\n", "\n\n\n\n日");
        assert_eq!(apply(old, &diff_text(old, new)), new);
    }

    proptest! {
        #[test]
        fn diff_applies(old in "[ab\n日]{0,40}", new in "[ab\n日]{0,40}") {
            prop_assert_eq!(apply(&old, &diff_text(&old, &new)), new);
        }
    }
}
