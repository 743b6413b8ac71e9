//! Syntax highlighting (temporary plain version; real one from `look`).

use std::path::Path;

/// A language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language {
    /// Display name.
    pub name: String,
}

/// Detects the language.
pub fn detect_language(_path: Option<&Path>, _first_line: &str) -> Language {
    Language {
        name: "Plain Text".into(),
    }
}

/// Highlight kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HighlightKind {
    /// Keyword.
    Keyword,
}

impl HighlightKind {
    /// Theme key.
    pub fn theme_key(&self) -> &'static str {
        "syntax.keyword"
    }
}

/// A highlighted span of a line (char offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Start.
    pub start: usize,
    /// End.
    pub end: usize,
    /// Kind.
    pub kind: HighlightKind,
}

/// Highlighter.
#[derive(Debug)]
pub struct Highlighter;

impl Highlighter {
    /// New.
    pub fn new(_l: &Language) -> Self {
        Highlighter
    }
    /// Invalidate.
    pub fn invalidate_from(&mut self, _line: usize) {}
    /// Highlight.
    pub fn highlight_lines(
        &mut self,
        rope: &ropey::Rope,
        first: usize,
        count: usize,
    ) -> Vec<Vec<Span>> {
        let n = rope.len_lines().saturating_sub(first).min(count);
        vec![Vec::new(); n]
    }
}
