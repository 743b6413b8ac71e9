//! Text measurement on a rope: grapheme boundaries, display widths, word
//! boundaries, indentation. Every position is a `char` index; these
//! functions are how the editor keeps the cursor off the inside of a
//! grapheme cluster (emoji sequences, combining marks, `\r\n`).

use ropey::{Rope, RopeSlice};
use unicode_segmentation::{GraphemeCursor, GraphemeIncomplete, UnicodeSegmentation};
use unicode_width::UnicodeWidthStr;

/// Gives the cursor the chunk that ends at byte `n` (it asked to look back).
fn provide_context(cursor: &mut GraphemeCursor, slice: RopeSlice, n: usize) {
    let (ctx, ctx_start, _, _) = slice.chunk_at_byte(n.saturating_sub(1));
    cursor.provide_context(&ctx[..n - ctx_start], ctx_start);
}

/// The next grapheme boundary after `char_idx` (or the end of the text).
pub fn next_grapheme_boundary(slice: RopeSlice, char_idx: usize) -> usize {
    let len = slice.len_chars();
    if char_idx >= len {
        return len;
    }
    let mut byte_idx = slice.char_to_byte(char_idx);
    let (mut chunk, mut chunk_start, _, _) = slice.chunk_at_byte(byte_idx);
    let mut cursor = GraphemeCursor::new(byte_idx, slice.len_bytes(), true);
    // A bounded loop: each iteration either returns or moves to another chunk.
    for _ in 0..slice.len_bytes() + 2 {
        match cursor.next_boundary(chunk, chunk_start) {
            Ok(None) => return len,
            Ok(Some(b)) => {
                byte_idx = b;
                return slice.byte_to_char(byte_idx);
            }
            Err(GraphemeIncomplete::NextChunk) => {
                chunk_start += chunk.len();
                if chunk_start >= slice.len_bytes() {
                    return len;
                }
                let (c, s, _, _) = slice.chunk_at_byte(chunk_start);
                chunk = c;
                chunk_start = s;
            }
            Err(GraphemeIncomplete::PreContext(n)) => provide_context(&mut cursor, slice, n),
            Err(_) => break,
        }
    }
    (char_idx + 1).min(len)
}

/// The previous grapheme boundary before `char_idx` (or 0).
pub fn prev_grapheme_boundary(slice: RopeSlice, char_idx: usize) -> usize {
    if char_idx == 0 {
        return 0;
    }
    let char_idx = char_idx.min(slice.len_chars());
    let byte_idx = slice.char_to_byte(char_idx);
    let (mut chunk, mut chunk_start, _, _) = slice.chunk_at_byte(byte_idx);
    if byte_idx == chunk_start && byte_idx > 0 {
        let (c, s, _, _) = slice.chunk_at_byte(byte_idx - 1);
        chunk = c;
        chunk_start = s;
    }
    let mut cursor = GraphemeCursor::new(byte_idx, slice.len_bytes(), true);
    for _ in 0..slice.len_bytes() + 2 {
        match cursor.prev_boundary(chunk, chunk_start) {
            Ok(None) => return 0,
            Ok(Some(b)) => return slice.byte_to_char(b),
            Err(GraphemeIncomplete::PrevChunk) => {
                if chunk_start == 0 {
                    return 0;
                }
                let (c, s, _, _) = slice.chunk_at_byte(chunk_start - 1);
                chunk = c;
                chunk_start = s;
            }
            Err(GraphemeIncomplete::PreContext(n)) => provide_context(&mut cursor, slice, n),
            Err(_) => break,
        }
    }
    char_idx - 1
}

/// Whether `char_idx` lies on a grapheme boundary.
pub fn is_grapheme_boundary(slice: RopeSlice, char_idx: usize) -> bool {
    if char_idx == 0 || char_idx >= slice.len_chars() {
        return true;
    }
    next_grapheme_boundary(slice, prev_grapheme_boundary(slice, char_idx)) == char_idx
}

/// Moves `char_idx` back onto the nearest grapheme boundary at or before it.
pub fn snap_to_boundary(slice: RopeSlice, char_idx: usize) -> usize {
    let idx = char_idx.min(slice.len_chars());
    if is_grapheme_boundary(slice, idx) {
        idx
    } else {
        prev_grapheme_boundary(slice, idx)
    }
}

/// Display width of one grapheme at visual column `col` (tabs expand to the
/// next multiple of `tab_width`).
pub fn grapheme_width(g: &str, col: usize, tab_width: usize) -> usize {
    if g == "\t" {
        let tw = tab_width.max(1);
        return tw - (col % tw);
    }
    if g.starts_with(['\n', '\r']) {
        return 0;
    }
    if g.chars().all(|c| c.is_control()) {
        // Control characters are drawn as a placeholder of width 1.
        return 1;
    }
    UnicodeWidthStr::width(g).max(1)
}

/// The text of line `line` without its line break.
pub fn line_without_break(rope: &Rope, line: usize) -> RopeSlice<'_> {
    let slice = rope.line(line);
    let mut len = slice.len_chars();
    while len > 0 {
        let c = slice.char(len - 1);
        if c == '\n' || c == '\r' {
            len -= 1;
        } else {
            break;
        }
    }
    slice.slice(..len)
}

/// Number of chars in line `line`, not counting its line break.
pub fn line_len(rope: &Rope, line: usize) -> usize {
    line_without_break(rope, line).len_chars()
}

/// Visual column of `char_idx` within its line.
pub fn visual_col(rope: &Rope, char_idx: usize, tab_width: usize) -> usize {
    let line = rope.char_to_line(char_idx);
    let start = rope.line_to_char(line);
    let slice = rope.slice(start..char_idx);
    let mut col = 0;
    for g in graphemes(slice) {
        col += grapheme_width(&g, col, tab_width);
    }
    col
}

/// The char index in `line` whose visual column is the closest at or
/// before `col` (never inside a grapheme, never past the line's end).
pub fn char_at_visual_col(rope: &Rope, line: usize, col: usize, tab_width: usize) -> usize {
    let start = rope.line_to_char(line);
    let slice = line_without_break(rope, line);
    let mut c = 0;
    let mut idx = start;
    for g in graphemes(slice) {
        let w = grapheme_width(&g, c, tab_width);
        if c + w > col {
            break;
        }
        c += w;
        idx += g.chars().count();
    }
    idx
}

/// Graphemes of a slice as owned strings (chunk-spanning safe).
pub fn graphemes(slice: RopeSlice<'_>) -> impl Iterator<Item = String> + '_ {
    GraphemeIter {
        slice,
        pos: 0,
        end: slice.len_chars(),
    }
}

struct GraphemeIter<'a> {
    slice: RopeSlice<'a>,
    pos: usize,
    end: usize,
}

impl Iterator for GraphemeIter<'_> {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        if self.pos >= self.end {
            return None;
        }
        // Fast path: plain ASCII that is not followed by a combining mark
        // is its own grapheme (except "\r\n").
        let c = self.slice.char(self.pos);
        if c.is_ascii() && c != '\r' {
            let next_is_ascii =
                self.pos + 1 >= self.end || self.slice.char(self.pos + 1).is_ascii();
            if next_is_ascii {
                self.pos += 1;
                return Some(c.to_string());
            }
        }
        let next = next_grapheme_boundary(self.slice, self.pos).max(self.pos + 1);
        let s = self.slice.slice(self.pos..next).to_string();
        self.pos = next;
        Some(s)
    }
}

/// Character class used for word movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharClass {
    /// Letters, digits, underscore.
    Word,
    /// Punctuation and symbols.
    Punct,
    /// Spaces and tabs.
    Space,
    /// Line breaks.
    Eol,
}

/// The class of a char.
pub fn char_class(c: char) -> CharClass {
    if c == '\n' || c == '\r' {
        CharClass::Eol
    } else if c.is_whitespace() {
        CharClass::Space
    } else if c.is_alphanumeric() || c == '_' {
        CharClass::Word
    } else {
        CharClass::Punct
    }
}

/// Start of the next word after `pos` (Ctrl+Right): skips the rest of the
/// current run, then whitespace on the same line.
pub fn next_word_boundary(rope: &Rope, pos: usize) -> usize {
    let len = rope.len_chars();
    if pos >= len {
        return len;
    }
    let mut i = pos;
    let first = char_class(rope.char(i));
    if first == CharClass::Eol {
        // Step over the line break (treat \r\n as one).
        i += 1;
        if rope.char(i - 1) == '\r' && i < len && rope.char(i) == '\n' {
            i += 1;
        }
        return i;
    }
    while i < len && char_class(rope.char(i)) == first && first != CharClass::Space {
        i += 1;
    }
    while i < len && char_class(rope.char(i)) == CharClass::Space {
        i += 1;
    }
    i
}

/// Start of the previous word before `pos` (Ctrl+Left).
pub fn prev_word_boundary(rope: &Rope, pos: usize) -> usize {
    if pos == 0 {
        return 0;
    }
    let mut i = pos.min(rope.len_chars());
    while i > 0 && char_class(rope.char(i - 1)) == CharClass::Space {
        i -= 1;
    }
    if i == 0 {
        return 0;
    }
    let class = char_class(rope.char(i - 1));
    if class == CharClass::Eol {
        i -= 1;
        if i > 0 && rope.char(i) == '\n' && rope.char(i - 1) == '\r' {
            i -= 1;
        }
        return i;
    }
    while i > 0 && char_class(rope.char(i - 1)) == class {
        i -= 1;
    }
    i
}

/// The leading whitespace of line `line`.
pub fn line_indent(rope: &Rope, line: usize) -> String {
    rope.line(line)
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect()
}

/// How a file indents: detected from its content, or the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndentStyle {
    /// Hard tabs.
    Tabs,
    /// This many spaces.
    Spaces(usize),
}

impl IndentStyle {
    /// The text of one indent level.
    pub fn unit(&self) -> String {
        match self {
            IndentStyle::Tabs => "\t".to_string(),
            IndentStyle::Spaces(n) => " ".repeat((*n).max(1)),
        }
    }

    /// Guesses the style from the first few thousand lines.
    pub fn detect(rope: &Rope, default: IndentStyle) -> IndentStyle {
        let mut tabs = 0usize;
        let mut spaces = 0usize;
        let mut widths = [0usize; 9];
        let mut prev_width = 0usize;
        for line in rope.lines().take(2_000) {
            let mut chars = line.chars();
            match chars.next() {
                Some('\t') => tabs += 1,
                Some(' ') => {
                    let w = 1 + chars.take_while(|c| *c == ' ').count();
                    spaces += 1;
                    let delta = w.abs_diff(prev_width);
                    if (2..=8).contains(&delta) {
                        widths[delta] += 1;
                    }
                    prev_width = w;
                    continue;
                }
                _ => {}
            }
            let trimmed_empty = line.chars().all(|c| c.is_whitespace());
            if !trimmed_empty {
                prev_width = 0;
            }
        }
        if tabs == 0 && spaces == 0 {
            return default;
        }
        if tabs > spaces {
            return IndentStyle::Tabs;
        }
        let best = (2..=8)
            .max_by_key(|w| (widths[*w], usize::MAX - *w))
            .unwrap_or(4);
        if widths[best] == 0 {
            default
        } else {
            IndentStyle::Spaces(best)
        }
    }
}

/// Display width of a plain string (for UI labels).
pub fn str_width(s: &str) -> usize {
    s.graphemes(true).map(|g| grapheme_width(g, 0, 4)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grapheme_moves_skip_clusters() {
        let rope = Rope::from_str("ae\u{301}👨‍👩‍👧x\r\ny");
        let s = rope.slice(..);
        assert_eq!(next_grapheme_boundary(s, 0), 1);
        assert_eq!(next_grapheme_boundary(s, 1), 3); // e + combining acute
        let fam_end = 3 + "👨‍👩‍👧".chars().count();
        assert_eq!(next_grapheme_boundary(s, 3), fam_end);
        assert_eq!(prev_grapheme_boundary(s, fam_end), 3);
        assert_eq!(next_grapheme_boundary(s, fam_end + 1), fam_end + 3); // \r\n
        assert!(!is_grapheme_boundary(s, 2));
        assert_eq!(snap_to_boundary(s, 2), 1);
    }

    #[test]
    fn widths_of_cjk_emoji_tabs() {
        let rope = Rope::from_str("\t日本🎉x");
        assert_eq!(visual_col(&rope, 1, 4), 4);
        assert_eq!(visual_col(&rope, 3, 4), 8);
        assert_eq!(visual_col(&rope, 4, 4), 10);
        assert_eq!(char_at_visual_col(&rope, 0, 5, 4), 1);
        assert_eq!(char_at_visual_col(&rope, 0, 6, 4), 2);
        assert_eq!(char_at_visual_col(&rope, 0, 100, 4), 5);
    }

    #[test]
    fn word_moves() {
        let rope = Rope::from_str("foo.bar  baz\nqux");
        assert_eq!(next_word_boundary(&rope, 0), 3);
        assert_eq!(next_word_boundary(&rope, 3), 4);
        assert_eq!(next_word_boundary(&rope, 4), 9);
        assert_eq!(next_word_boundary(&rope, 12), 13);
        assert_eq!(prev_word_boundary(&rope, 12), 9);
        assert_eq!(prev_word_boundary(&rope, 9), 4);
        assert_eq!(prev_word_boundary(&rope, 13), 12);
    }

    #[test]
    fn indent_detection() {
        let two = Rope::from_str("fn a() {\n  x\n  if y {\n    z\n  }\n}\n");
        assert_eq!(
            IndentStyle::detect(&two, IndentStyle::Spaces(4)),
            IndentStyle::Spaces(2)
        );
        let tabs = Rope::from_str("a\n\tb\n\t\tc\n");
        assert_eq!(
            IndentStyle::detect(&tabs, IndentStyle::Spaces(4)),
            IndentStyle::Tabs
        );
        let none = Rope::from_str("a\nb\n");
        assert_eq!(
            IndentStyle::detect(&none, IndentStyle::Spaces(4)),
            IndentStyle::Spaces(4)
        );
    }
}
