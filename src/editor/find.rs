//! Find and replace within one buffer.
//!
//! Matching is literal, smart-case (case-insensitive unless the query has
//! an uppercase letter), in char indices. Matches are recomputed lazily
//! after the text or the query changes, and capped so that a query such as
//! "e" in a 100 MB file cannot stall the editor.

use ropey::Rope;

/// At most this many matches are collected (and highlighted).
pub const MAX_MATCHES: usize = 100_000;

/// The find state of a buffer.
#[derive(Debug, Clone, Default)]
pub struct Matches {
    query: String,
    ranges: Vec<(usize, usize)>,
    valid: bool,
    truncated: bool,
}

impl Matches {
    /// The current query.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// Sets the query (matches are recomputed on the next `ensure`).
    pub fn set_query(&mut self, query: &str) {
        if self.query != query {
            self.query = query.to_string();
            self.valid = false;
        }
    }

    /// Clears the query.
    pub fn clear(&mut self) {
        self.query.clear();
        self.ranges.clear();
        self.valid = true;
    }

    /// The text changed: recompute later.
    pub fn invalidate(&mut self) {
        self.valid = false;
    }

    /// Recomputes the matches if needed.
    pub fn ensure(&mut self, rope: &Rope) {
        if self.valid {
            return;
        }
        let (ranges, truncated) = find_all(rope, &self.query, MAX_MATCHES);
        self.ranges = ranges;
        self.truncated = truncated;
        self.valid = true;
    }

    /// All matches (call `ensure` first).
    pub fn ranges(&self) -> &[(usize, usize)] {
        &self.ranges
    }

    /// Whether the cap was hit.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The first match starting at or after `pos`, wrapping around.
    pub fn next_from(&self, pos: usize) -> Option<(usize, usize)> {
        let i = self.ranges.partition_point(|r| r.0 < pos);
        self.ranges.get(i).or_else(|| self.ranges.first()).copied()
    }

    /// The last match starting before `pos`, wrapping around.
    pub fn prev_before(&self, pos: usize) -> Option<(usize, usize)> {
        let i = self.ranges.partition_point(|r| r.0 < pos);
        if i == 0 {
            self.ranges.last().copied()
        } else {
            self.ranges.get(i - 1).copied()
        }
    }

    /// 1-based index of the match starting at `start`, for "3 of 10".
    pub fn index_of(&self, start: usize) -> Option<usize> {
        self.ranges
            .binary_search_by_key(&start, |r| r.0)
            .ok()
            .map(|i| i + 1)
    }

    /// Matches that intersect `start..end` (for drawing).
    pub fn in_range(&self, start: usize, end: usize) -> &[(usize, usize)] {
        let lo = self.ranges.partition_point(|r| r.1 <= start);
        let hi = self.ranges.partition_point(|r| r.0 < end);
        &self.ranges[lo..hi.max(lo)]
    }
}

fn fold(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// Every match of `query` in `rope`, up to `limit`. Returns (ranges, truncated).
pub fn find_all(rope: &Rope, query: &str, limit: usize) -> (Vec<(usize, usize)>, bool) {
    let mut out = Vec::new();
    if query.is_empty() {
        return (out, false);
    }
    let case_sensitive = query.chars().any(|c| c.is_uppercase());
    let norm = |c: char| if case_sensitive { c } else { fold(c) };
    let pattern: Vec<char> = query.chars().map(norm).collect();
    let plen = pattern.len();
    if query.contains('\n') {
        // Rare: a multi-line query searches the whole text at once.
        let hay: Vec<char> = rope.chars().map(norm).collect();
        let mut i = 0;
        while i + plen <= hay.len() {
            if hay[i..i + plen] == pattern[..] {
                out.push((i, i + plen));
                if out.len() >= limit {
                    return (out, true);
                }
                i += plen;
            } else {
                i += 1;
            }
        }
        return (out, false);
    }
    let mut line_buf: Vec<char> = Vec::new();
    let mut line_start = 0usize;
    for line in rope.lines() {
        line_buf.clear();
        line_buf.extend(line.chars().map(norm));
        let mut i = 0;
        while i + plen <= line_buf.len() {
            if line_buf[i] == pattern[0] && line_buf[i..i + plen] == pattern[..] {
                out.push((line_start + i, line_start + i + plen));
                if out.len() >= limit {
                    return (out, true);
                }
                i += plen;
            } else {
                i += 1;
            }
        }
        line_start += line_buf.len();
    }
    (out, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_case_and_unicode() {
        let rope = Rope::from_str("Foo foo FOO\n日本foo");
        let (m, _) = find_all(&rope, "foo", 100);
        assert_eq!(m, vec![(0, 3), (4, 7), (8, 11), (14, 17)]);
        let (m, _) = find_all(&rope, "Foo", 100);
        assert_eq!(m, vec![(0, 3)]);
    }

    #[test]
    fn next_and_prev_wrap() {
        let rope = Rope::from_str("ab ab ab");
        let mut m = Matches::default();
        m.set_query("ab");
        m.ensure(&rope);
        assert_eq!(m.next_from(1), Some((3, 5)));
        assert_eq!(m.next_from(7), Some((0, 2)));
        assert_eq!(m.prev_before(0), Some((6, 8)));
        assert_eq!(m.index_of(3), Some(2));
        assert_eq!(m.in_range(2, 4), &[(3, 5)]);
    }

    #[test]
    fn cap_applies() {
        let rope = Rope::from_str(&"e".repeat(50));
        let (m, t) = find_all(&rope, "e", 10);
        assert_eq!(m.len(), 10);
        assert!(t);
    }
}
