//! Syntax highlighting: language detection and incremental, cached
//! highlighting of the visible lines of a rope.
//!
//! The output is terminal-free: per line, a list of [`Span`]s whose
//! [`HighlightKind`] the UI maps to a theme key (`syntax.keyword`, ...). The
//! hundreds of TextMate scopes syntect produces are folded into that small
//! set of kinds here, so themes stay short.
//!
//! # How it stays fast
//!
//! syntect with the pure-Rust regex engine (`default-fancy`) costs 50–200 µs
//! per line of Rust on our shared 2-core machines (`benches/syntax.rs`), so
//! the rule is: parse as few lines as possible, and never many in one frame.
//! Highlighting a line needs the parser state at its start, which depends on
//! every line above. [`Highlighter`] therefore keeps:
//!
//! * **checkpoints**: parser states every [`CHECKPOINT_INTERVAL`] lines. An
//!   edit reported with [`Highlighter::edited`] does not throw away the ones
//!   below it: they are shifted and kept as *stale*; when parsing down through
//!   the edit meets one with an equal state, it and every stale one up to the
//!   next edited line are right again. So a collaborator typing at the top of
//!   a file costs someone reading line 5,000 a line or two of parsing;
//! * **a line cache** keyed by *(line text, start state)*: a line whose text
//!   and start state are unchanged is not parsed again. No line number in the
//!   key, so lines moving up or down keep their entries; after a keystroke
//!   usually only the edited line is parsed.
//!
//! Deliberate approximations (what makes a 1,000,000-line file usable):
//!
//! * A window that would need more than [`FAR_JUMP_LINES`] lines parsed to
//!   reach from the exact checkpoints is highlighted from a fresh state
//!   [`APPROX_LOOKBEHIND`] lines above it. Code there is usually right, but a
//!   block comment or string opened far above is missed. Approximate states
//!   are kept apart from exact ones. [`Highlighter::advance`], called by the
//!   app when idle, extends the exact checkpoints toward the window a bounded
//!   number of lines at a time (up to [`BACKGROUND_CATCHUP_LINES`] in all),
//!   after which the window is exact again.
//! * Lines longer than [`MAX_LINE_CHARS`] chars are not parsed (no spans) and
//!   leave the parser state unchanged: regex engines on huge minified lines
//!   are what makes editors freeze.
//! * Plain Text is never parsed.
//!
//! Costs measured with `cargo bench --bench syntax` (machine shared with
//! other builds, so upper bounds): loading the definitions ~1–3 ms; the
//! first window of a language ~40–120 ms more, as syntect compiles regexes
//! on first use ([`preload`] only does the first part); a keystroke that
//! leaves the line's end state unchanged 30–70 µs for a 40-line window; one
//! that changes it (typing `"` or `/*`) re-parses the rest of the window at
//! the per-line cost above.
//!
//! May depend on: std, ropey, syntect, two-face. No terminal types.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::OnceLock;

use ropey::Rope;
use syntect::parsing::{ParseState, Scope, ScopeStack, SyntaxReference, SyntaxSet};

/// Lines between two stored parser-state checkpoints.
pub const CHECKPOINT_INTERVAL: usize = 32;
/// A window starting further than this past the last exact checkpoint is
/// highlighted approximately (see the module docs) instead of parsing every
/// line in between.
pub const FAR_JUMP_LINES: usize = 200;
/// How far above the window approximate parsing starts, so that constructs
/// opened a little above the window (a doc comment, a string) still come out
/// right.
pub const APPROX_LOOKBEHIND: usize = 40;
/// [`Highlighter::advance`] gives up on a window further than this past the
/// exact checkpoints: exact colours there are not worth minutes of CPU.
pub const BACKGROUND_CATCHUP_LINES: usize = 20_000;
/// Lines longer than this (in chars) are not highlighted.
pub const MAX_LINE_CHARS: usize = 4_096;
/// Upper bound on cached lines; a screen needs ~100, an editing session a few
/// thousand.
const MAX_CACHED_LINES: usize = 8_192;
/// Display name of the fallback language.
pub const PLAIN_TEXT: &str = "Plain Text";

static SYNTAX_SET: OnceLock<SyntaxSet> = OnceLock::new();

/// The syntax definitions (syntect's defaults plus bat's extras via
/// two-face), loaded on first use. Loading takes tens of milliseconds, so the
/// app may call [`preload`] on a background thread at start.
fn syntax_set() -> &'static SyntaxSet {
    // The newline variant: syntect's own docs say its definitions are the
    // more correct ones; we append '\n' to every line we parse.
    SYNTAX_SET.get_or_init(two_face::syntax::extra_newlines)
}

/// Load the syntax definitions now (e.g. on a background thread at start-up)
/// so that opening the first file does not pay for it. Cheap when already
/// loaded.
pub fn preload() {
    let _ = syntax_set();
}

/// Whether [`preload`] (or any detection) has loaded the definitions yet.
pub fn is_loaded() -> bool {
    SYNTAX_SET.get().is_some()
}

/// A language the highlighter knows, as detected for a buffer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Language {
    /// Display name ("Rust", "Python", "Plain Text", ...).
    pub name: String,
    /// Index into the syntax set; `None` for plain text.
    syntax: Option<usize>,
}

impl Language {
    /// Plain text: no highlighting at all.
    pub fn plain() -> Self {
        Self {
            name: PLAIN_TEXT.to_string(),
            syntax: None,
        }
    }

    /// Whether this is plain text (nothing to highlight).
    pub fn is_plain(&self) -> bool {
        self.syntax.is_none()
    }

    /// A language by display name, case-insensitively ("rust", "TOML"); for a
    /// "set language" command. `None` if unknown.
    pub fn by_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case(PLAIN_TEXT) {
            return Some(Self::plain());
        }
        let set = syntax_set();
        set.syntaxes()
            .iter()
            .position(|s| s.name.eq_ignore_ascii_case(name))
            .map(|i| Self::from_index(set, i))
    }

    fn from_index(set: &SyntaxSet, index: usize) -> Self {
        let syntax = &set.syntaxes()[index];
        if syntax.name == PLAIN_TEXT {
            return Self::plain();
        }
        Self {
            name: syntax.name.clone(),
            syntax: Some(index),
        }
    }
}

impl Default for Language {
    fn default() -> Self {
        Self::plain()
    }
}

/// Names of every language that can be selected, sorted.
pub fn language_names() -> Vec<String> {
    let mut names: Vec<String> = syntax_set()
        .syntaxes()
        .iter()
        .filter(|s| !s.hidden)
        .map(|s| s.name.clone())
        .collect();
    names.sort_unstable_by_key(|n| n.to_lowercase());
    names.dedup();
    names
}

/// Pick the language of a buffer from its path (full file name first, e.g.
/// `Makefile`, `.bashrc`, then the extension) and else its first line
/// (shebang `#!/usr/bin/env python3`, modelines, `<?xml`). Falls back to
/// Plain Text.
pub fn detect_language(path: Option<&Path>, first_line: &str) -> Language {
    let set = syntax_set();
    let by_path = path.and_then(|p| syntax_for_path(set, p));
    let found = by_path.or_else(|| syntax_for_first_line(set, first_line));
    match found {
        Some(syntax) => set
            .syntaxes()
            .iter()
            .position(|s| std::ptr::eq(s, syntax))
            .map(|i| Language::from_index(set, i))
            .unwrap_or_else(Language::plain),
        None => Language::plain(),
    }
}

fn syntax_for_path<'a>(set: &'a SyntaxSet, path: &Path) -> Option<&'a SyntaxReference> {
    let file_name = path.file_name()?.to_str()?;
    // Names the bundled definitions get wrong or miss.
    let overridden = match file_name {
        "Cargo.lock" | "Pipfile" | "poetry.lock" | "uv.lock" => Some("toml"),
        "go.mod" | "go.sum" => None,
        _ => None,
    };
    if let Some(ext) = overridden {
        return set.find_syntax_by_extension(ext);
    }
    // syntect matches whole file names listed among a syntax's "extensions"
    // (Makefile, .bashrc, Dockerfile ...) with the same call.
    if let Some(s) = set.find_syntax_by_extension(file_name) {
        return Some(s);
    }
    let ext = path.extension()?.to_str()?;
    set.find_syntax_by_extension(ext).or_else(|| {
        let lower = ext.to_ascii_lowercase();
        set.find_syntax_by_extension(&lower)
    })
}

fn syntax_for_first_line<'a>(set: &'a SyntaxSet, first_line: &str) -> Option<&'a SyntaxReference> {
    if first_line.is_empty() {
        return None;
    }
    // Bound the work: a 100 MB single-line file must not be regex-scanned.
    let line = match first_line.char_indices().nth(MAX_LINE_CHARS) {
        Some((cut, _)) => &first_line[..cut],
        None => first_line,
    };
    set.find_syntax_by_first_line(line)
}

/// What a piece of text is, as far as colouring goes. Themes map each kind
/// to a style under [`HighlightKind::theme_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HighlightKind {
    /// `fn`, `if`, `return`, `pub`, `self`.
    Keyword,
    /// String and character literals, regexes.
    String,
    /// Comments, including doc comments.
    Comment,
    /// Function names at definition and call.
    Function,
    /// Type, class, trait names and built-in types (`i32`, `int`).
    Type,
    /// Numeric literals.
    Number,
    /// `true`, `None`, named constants.
    Constant,
    /// `+`, `=>`, `&&`.
    Operator,
    /// Variables and parameters.
    Variable,
    /// Brackets, separators.
    Punctuation,
    /// Rust attributes, decorators, HTML attribute names.
    Attribute,
    /// HTML/XML tag names, YAML/TOML keys.
    Tag,
    /// Macro invocations and preprocessor directives.
    Macro,
    /// Module and namespace names.
    Namespace,
    /// Object fields, JSON keys.
    Property,
    /// Markdown headings.
    Heading,
    /// Links and URLs.
    Link,
    /// Italic text.
    Emphasis,
    /// Bold text.
    Strong,
    /// Inline and block code in markup.
    Code,
    /// Quotations in markup.
    Quote,
    /// Added lines in diffs.
    Inserted,
    /// Removed lines in diffs.
    Deleted,
    /// Changed lines in diffs.
    Changed,
    /// Escape sequences inside strings (`\n`).
    Escape,
}

impl HighlightKind {
    /// Every kind, for themes and tests that must cover them all.
    pub const ALL: [HighlightKind; 25] = [
        Self::Keyword,
        Self::String,
        Self::Comment,
        Self::Function,
        Self::Type,
        Self::Number,
        Self::Constant,
        Self::Operator,
        Self::Variable,
        Self::Punctuation,
        Self::Attribute,
        Self::Tag,
        Self::Macro,
        Self::Namespace,
        Self::Property,
        Self::Heading,
        Self::Link,
        Self::Emphasis,
        Self::Strong,
        Self::Code,
        Self::Quote,
        Self::Inserted,
        Self::Deleted,
        Self::Changed,
        Self::Escape,
    ];

    /// The theme key styling this kind, e.g. `"syntax.keyword"`.
    pub fn theme_key(&self) -> &'static str {
        match self {
            Self::Keyword => "syntax.keyword",
            Self::String => "syntax.string",
            Self::Comment => "syntax.comment",
            Self::Function => "syntax.function",
            Self::Type => "syntax.type",
            Self::Number => "syntax.number",
            Self::Constant => "syntax.constant",
            Self::Operator => "syntax.operator",
            Self::Variable => "syntax.variable",
            Self::Punctuation => "syntax.punctuation",
            Self::Attribute => "syntax.attribute",
            Self::Tag => "syntax.tag",
            Self::Macro => "syntax.macro",
            Self::Namespace => "syntax.namespace",
            Self::Property => "syntax.property",
            Self::Heading => "syntax.heading",
            Self::Link => "syntax.link",
            Self::Emphasis => "syntax.emphasis",
            Self::Strong => "syntax.strong",
            Self::Code => "syntax.code",
            Self::Quote => "syntax.quote",
            Self::Inserted => "syntax.inserted",
            Self::Deleted => "syntax.deleted",
            Self::Changed => "syntax.changed",
            Self::Escape => "syntax.escape",
        }
    }
}

/// A highlighted piece of one line. `start..end` are **char** offsets within
/// the line (not bytes); text outside every span is plain. Spans are sorted,
/// never overlap, and never cover the line break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// First char of the span.
    pub start: usize,
    /// One past the last char.
    pub end: usize,
    /// What the text is.
    pub kind: HighlightKind,
}

/// How one scope contributes to the kind of the text under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// No opinion (`source.rust`, most `meta.*`).
    None,
    /// Used only when no scope further in or out is `Strong`: punctuation
    /// like a string's quotes takes the kind of the string around it.
    Weak(HighlightKind),
    /// The innermost strong scope decides.
    Strong(HighlightKind),
    /// Bare `storage.type`: a built-in type (`i32`, `int`), except that some
    /// grammars (Rust's `let`, C's `typedef`) put declaration keywords there
    /// too; the token text decides (see [`DECLARATION_KEYWORDS`]).
    StorageType,
    /// Wins over everything inside it: JSON object keys are strings, but
    /// read as keys.
    Dominant(HighlightKind),
}

/// Words that are keywords even when a grammar scopes them `storage.type`.
const DECLARATION_KEYWORDS: &[&str] = &[
    "let",
    "var",
    "const",
    "static",
    "type",
    "typedef",
    "fn",
    "func",
    "function",
    "def",
    "class",
    "struct",
    "enum",
    "union",
    "trait",
    "impl",
    "interface",
    "mod",
    "module",
    "namespace",
    "extern",
    "macro_rules",
    "package",
];

/// Fold a TextMate scope name into a [`Class`]. Order matters: the more
/// specific prefixes come first.
fn classify_scope(name: &str) -> Class {
    use HighlightKind as K;
    let has = |prefix: &str| {
        name == prefix
            || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'.'))
    };
    let strong = |k| Class::Strong(k);
    if has("meta.mapping.key") {
        return Class::Dominant(K::Property);
    }
    // The first prefix that matches wins.
    const TABLE: &[(&str, HighlightKind, bool)] = &[
        // (prefix, kind, strong?)
        ("comment", K::Comment, true),
        ("string.other.link", K::Link, true),
        ("markup.underline.link", K::Link, true),
        ("string.regexp", K::String, true),
        ("string.unquoted.heredoc", K::String, true),
        ("string", K::String, true),
        ("constant.character.escape", K::Escape, true),
        ("constant.other.placeholder", K::Escape, true),
        ("constant.numeric", K::Number, true),
        ("constant", K::Constant, true),
        ("support.constant", K::Constant, true),
        ("variable.other.constant", K::Constant, true),
        ("entity.name.constant", K::Constant, true),
        ("support.macro", K::Macro, true),
        ("entity.name.macro", K::Macro, true),
        ("variable.function.macro", K::Macro, true),
        ("keyword.other.preprocessor", K::Macro, true),
        ("meta.preprocessor", K::Macro, false),
        ("entity.name.function", K::Function, true),
        ("support.function", K::Function, true),
        ("variable.function", K::Function, true),
        ("meta.function-call.identifier", K::Function, true),
        ("entity.name.tag", K::Tag, true),
        ("entity.other.attribute-name", K::Attribute, true),
        ("meta.annotation", K::Attribute, false),
        ("meta.attribute", K::Attribute, false),
        ("meta.decorator", K::Attribute, false),
        ("storage.type.annotation", K::Attribute, true),
        ("variable.annotation", K::Attribute, true),
        ("entity.name.namespace", K::Namespace, true),
        ("entity.name.module", K::Namespace, true),
        ("entity.name.section", K::Heading, true),
        ("entity.name.table", K::Namespace, true),
        ("markup.heading", K::Heading, true),
        ("entity.name.label", K::Constant, true),
        ("entity.name", K::Type, true),
        ("entity.other.inherited-class", K::Type, true),
        ("support.type.property-name", K::Property, true),
        ("support.type", K::Type, true),
        ("support.class", K::Type, true),
        // `fn`, `struct`, `class`, `def` are scoped storage.type.<what>; they
        // read as keywords. Bare storage.type is a built-in type (`i32`).
        ("storage.type.string", K::String, true),
        ("storage.type.function", K::Keyword, true),
        ("storage.type.struct", K::Keyword, true),
        ("storage.type.enum", K::Keyword, true),
        ("storage.type.union", K::Keyword, true),
        ("storage.type.class", K::Keyword, true),
        ("storage.type.trait", K::Keyword, true),
        ("storage.type.impl", K::Keyword, true),
        ("storage.type.type", K::Keyword, true),
        ("storage.type.module", K::Keyword, true),
        ("storage.type.interface", K::Keyword, true),
        ("storage.type.namespace", K::Keyword, true),
        ("storage.type.macro", K::Keyword, true),
        ("storage", K::Keyword, true),
        ("keyword.operator.word", K::Keyword, true),
        ("keyword.operator", K::Operator, true),
        ("keyword", K::Keyword, true),
        ("variable.language", K::Keyword, true),
        ("variable.other.member", K::Property, true),
        ("variable.other.property", K::Property, true),
        ("variable.other.object.property", K::Property, true),
        ("variable", K::Variable, true),
        ("markup.bold", K::Strong, true),
        ("markup.italic", K::Emphasis, true),
        ("markup.raw", K::Code, true),
        ("markup.quote", K::Quote, true),
        ("markup.inserted", K::Inserted, true),
        ("markup.deleted", K::Deleted, true),
        ("markup.changed", K::Changed, true),
        ("meta.link", K::Link, false),
        ("punctuation.definition.heading", K::Heading, false),
        ("punctuation", K::Punctuation, false),
    ];
    for &(prefix, kind, is_strong) in TABLE {
        // Reached only when no specific storage.type.<what> row matched.
        if prefix == "storage" && has("storage.type") {
            return Class::StorageType;
        }
        if has(prefix) {
            return if is_strong {
                strong(kind)
            } else {
                Class::Weak(kind)
            };
        }
    }
    Class::None
}

/// Maps scopes to classes, memoised: scope→string conversion is too slow to
/// do per token.
#[derive(Debug, Default)]
struct Classifier {
    memo: HashMap<Scope, Class>,
}

impl Classifier {
    fn class(&mut self, scope: Scope) -> Class {
        *self
            .memo
            .entry(scope)
            .or_insert_with(|| classify_scope(&scope.build_string()))
    }

    /// The kind of text under `stack` (outermost first); `StorageType` when
    /// the token text must decide.
    fn kind(&mut self, stack: &[Scope]) -> Option<Class> {
        let mut weak = None;
        let mut inner = None;
        for &scope in stack.iter().rev() {
            match self.class(scope) {
                c @ Class::Dominant(_) => return Some(c),
                c @ (Class::Strong(_) | Class::StorageType) if inner.is_none() => inner = Some(c),
                Class::Strong(_) | Class::StorageType => {}
                c @ Class::Weak(_) => {
                    if weak.is_none() {
                        weak = Some(c);
                    }
                }
                Class::None => {}
            }
        }
        inner.or(weak)
    }
}

/// Parser state at the start of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    parse: ParseState,
    scopes: ScopeStack,
}

impl State {
    fn fresh(syntax: &SyntaxReference) -> Self {
        Self {
            parse: ParseState::new(syntax),
            scopes: ScopeStack::new(),
        }
    }
}

#[derive(Debug)]
struct CacheEntry {
    text: Box<str>,
    start: State,
    end: State,
    spans: Vec<Span>,
    last_used: u64,
}

/// Incremental highlighter for one buffer. Owns no text: pass the current
/// rope to [`Highlighter::highlight_lines`] and report every edit, local or
/// remote, with [`Highlighter::edited`] (or the blunter
/// [`Highlighter::invalidate_from`]).
///
/// Checkpoints come in three sorts:
/// * *exact*: the state at that line, right for the current text;
/// * *stale*: right before some later edit above them, shifted to their
///   current line. Parsing from an exact checkpoint down through an edit
///   and meeting a stale one with an equal state proves it right again, and
///   with it every stale checkpoint up to the next edited line: the text
///   between is unchanged. That is what makes a collaborator typing at the
///   top of a file cheap for someone reading the bottom;
/// * *approximate*: from a fresh state near a far window (module docs).
#[derive(Debug)]
pub struct Highlighter {
    language: Language,
    /// `None` for plain text.
    syntax: Option<&'static SyntaxReference>,
    /// Always holds line 0 (when there is a syntax).
    exact: BTreeMap<usize, State>,
    stale: BTreeMap<usize, State>,
    /// First lines of edits made since the stale checkpoints after them were
    /// computed. A stale checkpoint proven right vouches for the following
    /// ones only up to the next of these.
    dirty: BTreeSet<usize>,
    approx: BTreeMap<usize, State>,
    cache: HashMap<u64, Vec<CacheEntry>>,
    cached_lines: usize,
    classifier: Classifier,
    generation: u64,
    line_buf: String,
    /// End of the last window asked for: where [`Highlighter::advance`]
    /// heads.
    wanted: usize,
    /// Lines actually run through syntect (not served from the cache).
    parsed: u64,
    /// The last window highlighted exactly, for the next frame: lines not
    /// edited since are served from it without hashing, looking up or
    /// cloning parser states (a redraw after a keystroke re-highlights the
    /// edited line and checks that the state after it is unchanged).
    window: Option<Window>,
}

/// See [`Highlighter`]'s `window`.
#[derive(Debug)]
struct Window {
    first: usize,
    /// The document's line count when it was made (any edit that changes
    /// it drops the window).
    total: usize,
    /// Its length in chars then: a change of length with no edit reported
    /// (a caller that forgot to) drops the window too.
    chars: usize,
    /// The state at the start of `first`.
    start: State,
    /// Per line: its spans and the state at the start of the next line.
    lines: Vec<(Vec<Span>, State)>,
    /// Lines edited since (text changed within the line).
    touched: BTreeSet<usize>,
}

impl Highlighter {
    /// A highlighter for `language`. Cheap for plain text; otherwise loads the
    /// syntax definitions if nobody has yet.
    pub fn new(language: &Language) -> Self {
        let syntax = language.syntax.and_then(|i| syntax_set().syntaxes().get(i));
        let mut exact = BTreeMap::new();
        if let Some(s) = syntax {
            exact.insert(0, State::fresh(s));
        }
        Self {
            language: language.clone(),
            syntax,
            exact,
            stale: BTreeMap::new(),
            dirty: BTreeSet::new(),
            approx: BTreeMap::new(),
            cache: HashMap::new(),
            cached_lines: 0,
            classifier: Classifier::default(),
            generation: 0,
            line_buf: String::new(),
            wanted: 0,
            parsed: 0,
            window: None,
        }
    }

    /// The language this highlighter was made for.
    pub fn language(&self) -> &Language {
        &self.language
    }

    /// The text changed at or after `line`, extent unknown: forget every
    /// state below `line`. Correct for any edit; prefer
    /// [`Highlighter::edited`], which keeps what is still usable.
    pub fn invalidate_from(&mut self, line: usize) {
        self.window = None;
        // The state at the start of `line` depends only on the lines above.
        drop(self.exact.split_off(&(line + 1)));
        drop(self.stale.split_off(&(line + 1)));
        drop(self.approx.split_off(&(line + 1)));
        drop(self.dirty.split_off(&(line + 1)));
    }

    /// An edit starting on `line` replaced text containing `removed_breaks`
    /// line breaks with text containing `inserted_breaks` (count the `\n`s
    /// of the removed and the inserted text; typing a letter is `(line, 0,
    /// 0)`, Enter `(line, 0, 1)`, joining two lines `(line, 1, 0)`). Cheap;
    /// the work happens on the next [`Highlighter::highlight_lines`].
    pub fn edited(&mut self, line: usize, removed_breaks: usize, inserted_breaks: usize) {
        if removed_breaks == 0 && inserted_breaks == 0 {
            if let Some(w) = self.window.as_mut() {
                w.touched.insert(line);
            }
        } else {
            self.window = None;
        }
        let old_end = line.saturating_add(removed_breaks);
        // Old line number → new, or None if the line was inside the edit.
        let shift = |k: usize| {
            if k <= line {
                Some(k)
            } else if k <= old_end {
                None
            } else {
                Some(k - removed_breaks + inserted_breaks)
            }
        };
        let moved_exact = self.exact.split_off(&(line + 1));
        let moved_stale = self.stale.split_off(&(line + 1));
        for (k, s) in moved_stale.into_iter().chain(moved_exact) {
            if let Some(k) = shift(k) {
                self.stale.insert(k, s);
            }
        }
        let moved_dirty = self.dirty.split_off(&(line + 1));
        self.dirty.extend(moved_dirty.into_iter().filter_map(shift));
        self.dirty.insert(line);
        // Approximate states are cheap to rebuild (the line cache has them).
        drop(self.approx.split_off(&(line + 1)));
    }

    /// The furthest line whose start state is known exactly; for tests and
    /// diagnostics.
    pub fn exact_lines(&self) -> usize {
        self.exact.keys().next_back().copied().unwrap_or(0)
    }

    /// How many lines syntect has parsed so far (cache hits excluded); for
    /// tests and benchmarks.
    pub fn parsed_lines(&self) -> u64 {
        self.parsed
    }

    /// Spans for lines `first .. first + count` of `rope`, clamped to the
    /// document: one `Vec<Span>` per line.
    pub fn highlight_lines(&mut self, rope: &Rope, first: usize, count: usize) -> Vec<Vec<Span>> {
        let total = rope.len_lines();
        let first = first.min(total);
        let end = first.saturating_add(count).min(total);
        let Some(syntax) = self.syntax else {
            return vec![Vec::new(); end - first];
        };
        if end == first {
            return Vec::new();
        }
        self.generation += 1;
        self.wanted = end;
        if let Some(out) = self.reuse_window(syntax, rope, first, end) {
            return out;
        }

        let (mut state, exact) =
            match self.catch_up(syntax, rope, first, FAR_JUMP_LINES, true, true) {
                Some(state) => (state, true),
                None => {
                    let (line, state) = self.approx_start(syntax, first);
                    (self.approx_walk(syntax, rope, line, state, first), false)
                }
            };
        let window_start = state.clone();
        let mut out = Vec::with_capacity(end - first);
        let mut ends = Vec::with_capacity(end - first);
        for line in first..end {
            self.checkpoint(line, &state, exact);
            out.push(self.highlight_line(syntax, rope, line, &mut state, true));
            ends.push(state.clone());
        }
        self.checkpoint(end, &state, exact);
        self.evict();
        self.window = exact.then(|| Window {
            first,
            total,
            chars: rope.len_chars(),
            start: window_start,
            lines: out.iter().cloned().zip(ends).collect(),
            touched: BTreeSet::new(),
        });
        out
    }

    /// The same window as last time, from [`Highlighter`]'s `window`: the
    /// lines edited since are highlighted again, from the state before
    /// them, until the state after one matches what it was (the text below
    /// is unchanged, so is its highlighting). `None` if the window moved
    /// or the line count changed.
    fn reuse_window(
        &mut self,
        syntax: &SyntaxReference,
        rope: &Rope,
        first: usize,
        end: usize,
    ) -> Option<Vec<Vec<Span>>> {
        let mut w = self.window.take()?;
        if w.first != first || w.first + w.lines.len() != end || w.total != rope.len_lines() {
            return None;
        }
        if w.touched.is_empty() && w.chars != rope.len_chars() {
            return None;
        }
        if w.touched.range(..first).next().is_some() {
            // An edit above may change the state the window starts in.
            return None;
        }
        let touched: Vec<usize> = w.touched.range(first..end).copied().collect();
        let last_touched = touched.last().copied();
        if let Some(&from) = touched.first() {
            let mut state = match from.checked_sub(first + 1) {
                None => w.start.clone(),
                Some(i) => w.lines[i].1.clone(),
            };
            for line in from..end {
                let spans = self.highlight_line(syntax, rope, line, &mut state, true);
                let slot = &mut w.lines[line - first];
                let settled = state == slot.1 && last_touched.is_none_or(|t| line >= t);
                slot.0 = spans;
                slot.1 = state.clone();
                if settled {
                    break;
                }
            }
        }
        w.touched.clear();
        w.chars = rope.len_chars();
        let out = w.lines.iter().map(|(spans, _)| spans.clone()).collect();
        self.window = Some(w);
        Some(out)
    }

    /// Background work: parse up to `max_lines` lines to extend the exact
    /// checkpoints toward the window last asked for. Returns whether more
    /// work remains. Call it when idle (e.g. 100 lines per tick) and redraw
    /// afterwards: an approximately highlighted window may change colours
    /// once exact states reach it.
    pub fn advance(&mut self, rope: &Rope, max_lines: usize) -> bool {
        let Some(syntax) = self.syntax else {
            return false;
        };
        let target = self.wanted.min(rope.len_lines());
        let Some(&from) = self.exact.range(..=target).next_back().map(|(k, _)| k) else {
            return false;
        };
        // Within one interval of the window, its own highlighting is exact.
        if from + CHECKPOINT_INTERVAL > target || target - from > BACKGROUND_CATCHUP_LINES {
            return false;
        }
        if self
            .catch_up(syntax, rope, target, max_lines.max(1), false, false)
            .is_some()
        {
            return false;
        }
        let from = self.exact_lines();
        from + CHECKPOINT_INTERVAL <= target
    }

    /// Walk from the nearest exact checkpoint to the start of line `target`,
    /// parsing at most `budget` lines (cache hits and proven stale stretches
    /// are free). The exact state at `target`, or `None` if over budget; the
    /// checkpoints found on the way are kept either way. `give_up_early`:
    /// return `None` at once when the budget surely cannot reach `target`.
    fn catch_up(
        &mut self,
        syntax: &SyntaxReference,
        rope: &Rope,
        target: usize,
        budget: usize,
        fill_cache: bool,
        give_up_early: bool,
    ) -> Option<State> {
        let (&start, state) = self.exact.range(..=target).next_back()?;
        // Without a stale stretch to skip, a far target is hopeless: don't
        // spend the budget finding out.
        // (BTreeMap::range panics on an empty inclusive range: guard it.)
        let skippable = start < target && self.stale.range(start + 1..=target).next().is_some();
        if give_up_early && target - start > budget && !skippable {
            return None;
        }
        let mut state = state.clone();
        let mut line = start;
        let parsed_before = self.parsed;
        // Hits cost ~1 µs a line, so bound the walk too.
        let mut walked = 0;
        loop {
            if let Some((to, s)) = self.resolve_stale(line, &state, target) {
                line = to;
                state = s;
            }
            if line >= target {
                return Some(state);
            }
            if self.parsed - parsed_before >= budget as u64 || walked >= budget * 8 {
                return None;
            }
            self.checkpoint(line, &state, true);
            let _ = self.highlight_line(syntax, rope, line, &mut state, fill_cache);
            line += 1;
            walked += 1;
        }
    }

    /// The walk reached `line` in the exact `state`. If a stale checkpoint
    /// sits there, settle it; if it proves right, also every stale one after
    /// it up to the next edited line (at most `limit`), and return the last
    /// of those to continue from.
    fn resolve_stale(
        &mut self,
        line: usize,
        state: &State,
        limit: usize,
    ) -> Option<(usize, State)> {
        let old = self.stale.remove(&line)?;
        // Every stale checkpoint above is settled now, so edits above have
        // nothing left to guard.
        self.dirty = self.dirty.split_off(&line);
        if old != *state {
            return None;
        }
        self.exact.insert(line, old);
        let bound = self
            .dirty
            .iter()
            .next()
            .copied()
            .unwrap_or(usize::MAX)
            .min(limit);
        if bound <= line {
            return None;
        }
        let proven: Vec<usize> = self
            .stale
            .range(line + 1..=bound)
            .map(|(k, _)| *k)
            .collect();
        let mut last = None;
        for k in proven {
            if let Some(s) = self.stale.remove(&k) {
                last = Some((k, s.clone()));
                self.exact.insert(k, s);
            }
        }
        last
    }

    /// Where approximate parsing for a window at `first` starts.
    fn approx_start(&mut self, syntax: &SyntaxReference, first: usize) -> (usize, State) {
        if let Some((&line, state)) = self.approx.range(..=first).next_back() {
            if first - line <= FAR_JUMP_LINES {
                return (line, state.clone());
            }
        }
        let anchor = first.saturating_sub(APPROX_LOOKBEHIND);
        let state = State::fresh(syntax);
        self.approx.insert(anchor, state.clone());
        (anchor, state)
    }

    fn approx_walk(
        &mut self,
        syntax: &SyntaxReference,
        rope: &Rope,
        from: usize,
        mut state: State,
        to: usize,
    ) -> State {
        for line in from..to {
            self.checkpoint(line, &state, false);
            let _ = self.highlight_line(syntax, rope, line, &mut state, true);
        }
        state
    }

    /// Note the state at the start of `line`: settles a stale checkpoint
    /// there, and keeps one every [`CHECKPOINT_INTERVAL`] lines.
    fn checkpoint(&mut self, line: usize, state: &State, exact: bool) {
        if exact {
            let _ = self.resolve_stale(line, state, line);
            if line.is_multiple_of(CHECKPOINT_INTERVAL) {
                self.exact.entry(line).or_insert_with(|| state.clone());
            }
        } else if line.is_multiple_of(CHECKPOINT_INTERVAL) {
            self.approx.entry(line).or_insert_with(|| state.clone());
        }
    }

    /// Highlight one line starting in `state`, leaving the state at the start
    /// of the next line in `state`. The cache is always consulted; a parsed
    /// line is added to it if `fill_cache`.
    fn highlight_line(
        &mut self,
        syntax: &SyntaxReference,
        rope: &Rope,
        line: usize,
        state: &mut State,
        fill_cache: bool,
    ) -> Vec<Span> {
        let slice = rope.line(line);
        if slice.len_chars() > MAX_LINE_CHARS {
            return Vec::new();
        }
        self.line_buf.clear();
        for chunk in slice.chunks() {
            self.line_buf.push_str(chunk);
        }
        strip_line_break(&mut self.line_buf);
        let content_len = self.line_buf.len();
        self.line_buf.push('\n');

        let mut h = DefaultHasher::new();
        self.line_buf.hash(&mut h);
        let key = h.finish();
        if let Some(entries) = self.cache.get_mut(&key) {
            if let Some(e) = entries
                .iter_mut()
                .find(|e| e.start == *state && *e.text == *self.line_buf)
            {
                e.last_used = self.generation;
                state.clone_from(&e.end);
                return e.spans.clone();
            }
        }

        self.parsed += 1;
        let start = fill_cache.then(|| state.clone());
        let spans = match parse_line(&mut self.classifier, state, &self.line_buf, content_len) {
            Some(spans) => spans,
            None => {
                // A broken grammar or a regex that gave up: show the line
                // plain and carry on from a clean state rather than a
                // half-updated one.
                *state = State::fresh(syntax);
                Vec::new()
            }
        };
        if let Some(start) = start {
            self.cache.entry(key).or_default().push(CacheEntry {
                text: self.line_buf.as_str().into(),
                start,
                end: state.clone(),
                spans: spans.clone(),
                last_used: self.generation,
            });
            self.cached_lines += 1;
        }
        spans
    }

    fn evict(&mut self) {
        if self.cached_lines <= MAX_CACHED_LINES {
            return;
        }
        // Keep what the last few frames used; the rest is old scroll history.
        let keep_after = self.generation.saturating_sub(4);
        self.cache.retain(|_, entries| {
            entries.retain(|e| e.last_used >= keep_after);
            !entries.is_empty()
        });
        self.cached_lines = self.cache.values().map(Vec::len).sum();
        if self.cached_lines > MAX_CACHED_LINES {
            self.cache.clear();
            self.cached_lines = 0;
        }
    }
}

/// Remove one trailing line break of any kind ropey recognises.
fn strip_line_break(s: &mut String) {
    if s.ends_with("\r\n") {
        s.truncate(s.len() - 2);
    } else if let Some(c) = s.chars().next_back() {
        if matches!(
            c,
            '\n' | '\r' | '\u{000B}' | '\u{000C}' | '\u{0085}' | '\u{2028}' | '\u{2029}'
        ) {
            s.truncate(s.len() - c.len_utf8());
        }
    }
}

/// Parse `text` (one line, ending in '\n'; the content is `text[..content_len]`)
/// and turn scope changes into spans. `None` if syntect failed.
fn parse_line(
    classifier: &mut Classifier,
    state: &mut State,
    text: &str,
    content_len: usize,
) -> Option<Vec<Span>> {
    let set = syntax_set();
    let ops = state.parse.parse_line(text, set).ok()?;
    let ascii = text.is_ascii();
    // Byte→char conversion walks forward only, as ops come sorted.
    let mut conv = (0usize, 0usize);
    let mut to_char = |byte: usize| -> usize {
        if ascii {
            return byte;
        }
        let (b, c) = conv;
        let byte = byte.max(b);
        let chars = text.get(b..byte).map_or(0, |s| s.chars().count());
        conv = (byte, c + chars);
        c + chars
    };

    let mut spans: Vec<Span> = Vec::new();
    let push =
        |spans: &mut Vec<Span>, start: usize, end: usize, class: Option<Class>, token: &str| {
            let kind = match class {
                Some(Class::Strong(k) | Class::Weak(k) | Class::Dominant(k)) => k,
                Some(Class::StorageType) if DECLARATION_KEYWORDS.contains(&token) => {
                    HighlightKind::Keyword
                }
                Some(Class::StorageType) => HighlightKind::Type,
                Some(Class::None) | None => return,
            };
            if start >= end {
                return;
            }
            match spans.last_mut() {
                Some(last) if last.kind == kind && last.end == start => last.end = end,
                _ => spans.push(Span { start, end, kind }),
            }
        };

    let mut kind = classifier.kind(state.scopes.as_slice());
    let mut prev_byte = 0;
    let mut prev_char = 0;
    for (byte, op) in ops {
        let byte = byte.min(content_len);
        if byte > prev_byte {
            let ch = to_char(byte);
            let token = text.get(prev_byte..byte).unwrap_or_default();
            push(&mut spans, prev_char, ch, kind, token);
            prev_byte = byte;
            prev_char = ch;
        }
        state.scopes.apply(&op).ok()?;
        kind = classifier.kind(state.scopes.as_slice());
    }
    if content_len > prev_byte {
        let ch = to_char(content_len);
        let token = text.get(prev_byte..content_len).unwrap_or_default();
        push(&mut spans, prev_char, ch, kind, token);
    }
    Some(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn lang(path: &str) -> Language {
        detect_language(Some(Path::new(path)), "")
    }

    /// The text and kind of each span of `line`.
    fn pieces(line: &str, spans: &[Span]) -> Vec<(String, HighlightKind)> {
        let chars: Vec<char> = line.chars().collect();
        spans
            .iter()
            .map(|s| (chars[s.start..s.end].iter().collect(), s.kind))
            .collect()
    }

    fn kind_of(line: &str, spans: &[Span], needle: &str) -> Option<HighlightKind> {
        let byte = line.find(needle)?;
        let ch = line[..byte].chars().count();
        spans
            .iter()
            .find(|s| s.start <= ch && ch < s.end)
            .map(|s| s.kind)
    }

    #[test]
    fn detects_common_languages() {
        let cases = [
            ("main.rs", "Rust"),
            ("a.py", "Python"),
            ("a.js", "JavaScript"),
            ("a.ts", "TypeScript"),
            ("a.go", "Go"),
            ("a.c", "C"),
            ("a.cpp", "C++"),
            ("README.md", "Markdown"),
            ("a.json", "JSON"),
            ("Cargo.toml", "TOML"),
            ("Cargo.lock", "TOML"),
            ("a.yaml", "YAML"),
            ("a.yml", "YAML"),
            ("a.sh", "Bourne Again Shell (bash)"),
            ("Makefile", "Makefile"),
            ("A.RS", "Rust"),
        ];
        for (path, name) in cases {
            assert_eq!(lang(path).name, name, "{path}");
        }
        assert_eq!(
            detect_language(None, "#!/usr/bin/env python3").name,
            "Python"
        );
        assert_eq!(
            detect_language(None, "#!/bin/bash").name,
            "Bourne Again Shell (bash)"
        );
        assert_eq!(
            detect_language(Some(Path::new("script")), "#!/bin/sh").name,
            "Bourne Again Shell (bash)"
        );
        let plain = detect_language(Some(Path::new("notes.unknownext")), "hello");
        assert_eq!(plain.name, PLAIN_TEXT);
        assert!(plain.is_plain());
        assert!(detect_language(None, "").is_plain());
        assert_eq!(
            Language::by_name("rust").map(|l| l.name),
            Some("Rust".into())
        );
        assert!(language_names().iter().any(|n| n == "TOML"));
    }

    #[test]
    fn rust_kinds() {
        let src = "// a comment\nfn main() {\n    let s = \"hi\\n\"; // tail\n    let n: i32 = 42;\n    println!(\"{}\", s);\n}\n";
        let rope = Rope::from_str(src);
        let mut h = Highlighter::new(&lang("x.rs"));
        let lines = h.highlight_lines(&rope, 0, 100);
        assert_eq!(lines.len(), rope.len_lines());
        let text: Vec<&str> = src.split('\n').collect();
        assert_eq!(
            pieces(text[0], &lines[0]),
            vec![("// a comment".to_string(), HighlightKind::Comment)]
        );
        assert_eq!(
            kind_of(text[1], &lines[1], "fn"),
            Some(HighlightKind::Keyword)
        );
        assert_eq!(
            kind_of(text[1], &lines[1], "main"),
            Some(HighlightKind::Function)
        );
        assert_eq!(
            kind_of(text[2], &lines[2], "let"),
            Some(HighlightKind::Keyword)
        );
        assert_eq!(
            kind_of(text[2], &lines[2], "\"hi"),
            Some(HighlightKind::String)
        );
        assert_eq!(
            kind_of(text[2], &lines[2], "\\n"),
            Some(HighlightKind::Escape)
        );
        assert_eq!(
            kind_of(text[2], &lines[2], "// tail"),
            Some(HighlightKind::Comment)
        );
        assert_eq!(
            kind_of(text[3], &lines[3], "i32"),
            Some(HighlightKind::Type)
        );
        assert_eq!(
            kind_of(text[3], &lines[3], "42"),
            Some(HighlightKind::Number)
        );
        assert_eq!(
            kind_of(text[4], &lines[4], "println!"),
            Some(HighlightKind::Macro)
        );
        // Spans are sorted, disjoint, non-empty and inside the line.
        for (spans, line) in lines.iter().zip(&text) {
            let mut at = 0;
            for s in spans {
                assert!(s.start >= at && s.start < s.end && s.end <= line.chars().count());
                at = s.end;
            }
        }
    }

    #[test]
    fn char_offsets_with_emoji_and_cjk() {
        let src = "let s = \"😀日本語\"; // 注释 🎉\nlet t = 1;\n";
        let rope = Rope::from_str(src);
        let mut h = Highlighter::new(&lang("x.rs"));
        let lines = h.highlight_lines(&rope, 0, 2);
        let line0 = src.split('\n').next().unwrap_or_default();
        let p = pieces(line0, &lines[0]);
        assert!(
            p.contains(&("\"😀日本語\"".to_string(), HighlightKind::String)),
            "{p:?}"
        );
        assert!(
            p.contains(&("// 注释 🎉".to_string(), HighlightKind::Comment)),
            "{p:?}"
        );
        let last = lines[0].last().copied();
        assert_eq!(last.map(|s| s.end), Some(line0.chars().count()));
    }

    /// The window reused from the last frame: after single-line edits
    /// (one that opens a block comment, one that closes it, plain typing,
    /// an edit above the window, a change nobody reported) the result is
    /// what a fresh highlighter gives.
    #[test]
    fn the_reused_window_equals_a_fresh_highlighting_after_every_edit() {
        let mut src = String::new();
        for i in 0..120 {
            src.push_str(&format!("let x{i} = \"s{i}\"; // c\n"));
        }
        let mut rope = Rope::from_str(&src);
        let mut h = Highlighter::new(&lang("x.rs"));
        let (first, count) = (40, 40);
        let _ = h.highlight_lines(&rope, first, count);
        // (line, char in line, text): each edit stays within its line.
        let edits: [(usize, usize, &str); 6] = [
            (50, 0, "/* "),
            (52, 3, "z"),
            (60, 0, "*/ "),
            (45, 4, "q"),
            (10, 0, "/*"),
            (10, 0, "x"),
        ];
        for (k, (line, at, text)) in edits.into_iter().enumerate() {
            let pos = rope.line_to_char(line) + at;
            rope.insert(pos, text);
            // The last edit is not reported: the window must not be used.
            if k < edits.len() - 1 {
                h.edited(line, 0, 0);
            }
            let got = h.highlight_lines(&rope, first, count);
            let mut fresh = Highlighter::new(&lang("x.rs"));
            assert_eq!(
                got,
                fresh.highlight_lines(&rope, first, count),
                "after edit {k}"
            );
        }
    }

    #[test]
    fn invalidation_opens_block_comment() {
        let mut src = String::new();
        for i in 0..200 {
            src.push_str(&format!("let x{i} = {i};\n"));
        }
        let mut rope = Rope::from_str(&src);
        let mut h = Highlighter::new(&lang("x.rs"));
        let before = h.highlight_lines(&rope, 100, 40);
        assert!(before[10].iter().any(|s| s.kind == HighlightKind::Keyword));

        // Open a block comment at line 50: everything below becomes comment.
        let at = rope.line_to_char(50);
        rope.insert(at, "/* ");
        h.invalidate_from(50);
        let after = h.highlight_lines(&rope, 100, 40);
        for (i, spans) in after.iter().enumerate() {
            let line = rope.line(100 + i).to_string();
            let len = line.trim_end_matches('\n').chars().count();
            assert_eq!(
                spans,
                &vec![Span {
                    start: 0,
                    end: len,
                    kind: HighlightKind::Comment
                }],
                "line {}",
                100 + i
            );
        }

        // Close it again: back to code.
        let start = rope.line_to_char(50);
        rope.remove(start..start + 3);
        h.invalidate_from(50);
        let again = h.highlight_lines(&rope, 100, 40);
        assert_eq!(again, before);
    }

    #[test]
    fn inserted_lines_reuse_cache_and_stay_right() {
        let mut src = String::new();
        for i in 0..100 {
            src.push_str(&format!("fn f{i}() -> u32 {{ {i} }}\n"));
        }
        let mut rope = Rope::from_str(&src);
        let mut h = Highlighter::new(&lang("x.rs"));
        let _ = h.highlight_lines(&rope, 0, 60);
        let at = rope.line_to_char(10);
        rope.insert(at, "// new line\n");
        h.invalidate_from(10);
        let got = h.highlight_lines(&rope, 0, 60);
        let mut fresh = Highlighter::new(&lang("x.rs"));
        assert_eq!(got, fresh.highlight_lines(&rope, 0, 60));
    }

    #[test]
    fn plain_text_and_long_lines() {
        let rope = Rope::from_str("fn main() {}\n");
        let mut h = Highlighter::new(&Language::plain());
        assert_eq!(h.highlight_lines(&rope, 0, 10), vec![Vec::<Span>::new(); 2]);

        let long = format!(
            "let s = \"{}\";\nlet x = 1;\n",
            "a".repeat(MAX_LINE_CHARS + 10)
        );
        let rope = Rope::from_str(&long);
        let mut h = Highlighter::new(&lang("x.rs"));
        let lines = h.highlight_lines(&rope, 0, 3);
        assert!(lines[0].is_empty());
        assert!(lines[1].iter().any(|s| s.kind == HighlightKind::Keyword));
    }

    #[test]
    fn highlighter_can_move_to_a_worker_thread() {
        fn send<T: Send>() {}
        send::<Highlighter>();
        send::<Language>();
    }

    #[test]
    fn window_is_clamped() {
        let rope = Rope::from_str("a\nb\n");
        let mut h = Highlighter::new(&lang("x.rs"));
        assert_eq!(h.highlight_lines(&rope, 1, 100).len(), 2);
        assert!(h.highlight_lines(&rope, 10, 5).is_empty());
        assert!(h.highlight_lines(&rope, 0, 0).is_empty());
    }

    #[test]
    fn far_jump_is_approximate_and_fast() {
        let mut src = String::new();
        for i in 0..200_000 {
            src.push_str(&format!(
                "    let value_{i} = compute({i}, \"text\"); // note\n"
            ));
        }
        let rope = Rope::from_str(&src);
        let mut h = Highlighter::new(&lang("x.rs"));
        let _ = h.highlight_lines(&rope, 0, 40);
        let t = Instant::now();
        let lines = h.highlight_lines(&rope, 150_000, 40);
        let took = t.elapsed();
        assert_eq!(lines.len(), 40);
        assert!(lines[0].iter().any(|s| s.kind == HighlightKind::String));
        // Only the lines near the window were parsed, not 150,000.
        assert!(h.exact_lines() < 1_000, "exact lines {}", h.exact_lines());
        assert!(took < Duration::from_secs(1), "far jump took {took:?}");
        // Edits in the approximate region keep working.
        h.invalidate_from(150_010);
        let again = h.highlight_lines(&rope, 150_000, 40);
        assert_eq!(again, lines);
    }

    #[test]
    fn advance_makes_a_far_window_exact() {
        // A block comment opened at the top and never closed: only exact
        // parsing knows line 400 is inside it.
        let mut src = String::from("/*\n");
        for i in 0..600 {
            src.push_str(&format!("let x{i} = {i};\n"));
        }
        let rope = Rope::from_str(&src);
        let mut h = Highlighter::new(&lang("x.rs"));
        assert!(!h.advance(&rope, 100), "nothing asked for yet");
        let _ = h.highlight_lines(&rope, 0, 40);
        assert!(!h.advance(&rope, 100), "the window is already exact");

        let approx = h.highlight_lines(&rope, 400, 40);
        assert!(approx[0].iter().any(|s| s.kind == HighlightKind::Keyword));
        let mut rounds = 0;
        while h.advance(&rope, 100) {
            rounds += 1;
            assert!(rounds < 10);
        }
        assert!(h.exact_lines() >= 400 - CHECKPOINT_INTERVAL);
        let exact = h.highlight_lines(&rope, 400, 40);
        for spans in &exact {
            assert!(
                spans.iter().all(|s| s.kind == HighlightKind::Comment),
                "{spans:?}"
            );
        }
        let mut fresh = Highlighter::new(&lang("x.rs"));
        assert_eq!(exact, fresh.highlight_lines_exact_for_test(&rope, 400, 40));
    }

    impl Highlighter {
        /// Highlight by walking up from line 0 in steps the sync limit
        /// allows, so the result is exact.
        fn highlight_lines_exact_for_test(
            &mut self,
            rope: &Rope,
            first: usize,
            count: usize,
        ) -> Vec<Vec<Span>> {
            let mut at = 0;
            while at < first {
                let _ = self.highlight_lines(rope, at, 1);
                at += FAR_JUMP_LINES / 2;
            }
            self.highlight_lines(rope, first, count)
        }
    }

    #[test]
    fn other_languages() {
        let check = |path: &str, line: &str, cases: &[(&str, HighlightKind)]| {
            let rope = Rope::from_str(line);
            let mut h = Highlighter::new(&lang(path));
            let spans = h.highlight_lines(&rope, 0, 1).remove(0);
            for (needle, kind) in cases {
                assert_eq!(
                    kind_of(line, &spans, needle),
                    Some(*kind),
                    "{path}: {needle} in {spans:?}"
                );
            }
        };
        use HighlightKind as K;
        check(
            "a.json",
            r#"{"key": [1, true, "s"]}"#,
            &[
                ("key", K::Property),
                ("1", K::Number),
                ("true", K::Constant),
                ("s\"", K::String),
            ],
        );
        check(
            "a.py",
            "def f(x: int): return f\"a\" # c",
            &[
                ("def", K::Keyword),
                ("f(", K::Function),
                ("int", K::Type),
                ("return", K::Keyword),
                ("f\"", K::String),
                ("# c", K::Comment),
            ],
        );
        check(
            "a.toml",
            "name = \"x\" # c",
            &[("name", K::Tag), ("\"x", K::String), ("# c", K::Comment)],
        );
        check(
            "a.go",
            "func main() { var x int = 1 }",
            &[
                ("func", K::Keyword),
                ("main", K::Function),
                ("int", K::Type),
            ],
        );
        check(
            "a.ts",
            "const x: number = 1;",
            &[("const", K::Keyword), ("number", K::Type), ("1", K::Number)],
        );
    }

    /// Apply `text` over `range` the way the editor would, and tell `h`.
    fn edit(rope: &mut Rope, h: &mut Highlighter, range: std::ops::Range<usize>, text: &str) {
        let line = rope.char_to_line(range.start);
        let removed = rope
            .slice(range.clone())
            .chars()
            .filter(|c| *c == '\n')
            .count();
        rope.remove(range.clone());
        rope.insert(range.start, text);
        h.edited(line, removed, text.matches('\n').count());
    }

    fn exact_reference(rope: &Rope, first: usize, count: usize) -> Vec<Vec<Span>> {
        let mut fresh = Highlighter::new(&lang("x.rs"));
        fresh.highlight_lines_exact_for_test(rope, first, count)
    }

    #[test]
    fn edit_far_above_the_view_is_cheap_and_right() {
        let mut src = String::new();
        for i in 0..600 {
            src.push_str(&format!("let x{i} = \"{i}\"; // n\n"));
        }
        let mut rope = Rope::from_str(&src);
        let mut h = Highlighter::new(&lang("x.rs"));
        let _ = h.highlight_lines_exact_for_test(&rope, 500, 40);

        // A collaborator types a letter on line 10, then presses Enter.
        let at = rope.line_to_char(10) + 4;
        edit(&mut rope, &mut h, at..at, "y");
        let before = h.parsed_lines();
        let got = h.highlight_lines(&rope, 500, 40);
        assert!(
            h.parsed_lines() - before <= 2,
            "parsed {}",
            h.parsed_lines() - before
        );
        assert_eq!(got, exact_reference(&rope, 500, 40));

        edit(&mut rope, &mut h, at..at, "\n");
        let before = h.parsed_lines();
        let got = h.highlight_lines(&rope, 501, 40);
        assert!(
            h.parsed_lines() - before <= 4,
            "parsed {}",
            h.parsed_lines() - before
        );
        assert_eq!(got, exact_reference(&rope, 501, 40));

        // Opening a block comment changes every state below: still right.
        edit(&mut rope, &mut h, at..at, "/*");
        let got = h.highlight_lines_exact_for_test(&rope, 501, 40);
        assert!(got
            .iter()
            .flatten()
            .all(|s| s.kind == HighlightKind::Comment));
        assert_eq!(got, exact_reference(&rope, 501, 40));
    }

    #[test]
    fn random_edits_match_a_fresh_highlighter() {
        let mut src = String::new();
        for i in 0..60 {
            src.push_str(match i % 6 {
                0 => "fn f(a: u32) -> u32 {\n",
                1 => "    // comment \"q\"\n",
                2 => "    let s = \"str /* x */\";\n",
                3 => "    /* block\n",
                4 => "       end */ a + 1\n",
                _ => "}\n",
            });
        }
        let mut rope = Rope::from_str(&src);
        let mut h = Highlighter::new(&lang("x.rs"));
        let inserts = ["x", "\"", "/*", "*/", "\n", "//", "{", "\n\n", "é", "😀"];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) as usize) % n.max(1)
        };
        for round in 0..40 {
            for _ in 0..1 + next(3) {
                let len = rope.len_chars();
                let start = next(len + 1);
                if next(3) == 0 && len > 0 {
                    let end = (start + 1 + next(30)).min(len);
                    edit(&mut rope, &mut h, start..end, "");
                } else {
                    edit(
                        &mut rope,
                        &mut h,
                        start..start,
                        inserts[next(inserts.len())],
                    );
                }
            }
            let total = rope.len_lines();
            let first = next(total);
            let got = h.highlight_lines(&rope, first, 20);
            let mut fresh = Highlighter::new(&lang("x.rs"));
            let all = fresh.highlight_lines(&rope, 0, total);
            let want = all[first..(first + 20).min(total)].to_vec();
            assert_eq!(got, want, "round {round}, window at {first}:\n{rope}");
        }
    }

    #[test]
    fn markdown_kinds() {
        let src = "# Title\n\nSome *em* and **strong** and `code` and [link](http://x).\n";
        let rope = Rope::from_str(src);
        let mut h = Highlighter::new(&lang("a.md"));
        let lines = h.highlight_lines(&rope, 0, 3);
        let l2 = src.split('\n').nth(2).unwrap_or_default();
        assert_eq!(
            kind_of("# Title", &lines[0], "Title"),
            Some(HighlightKind::Heading)
        );
        assert_eq!(kind_of(l2, &lines[2], "em*"), Some(HighlightKind::Emphasis));
        assert_eq!(
            kind_of(l2, &lines[2], "strong"),
            Some(HighlightKind::Strong)
        );
        assert_eq!(kind_of(l2, &lines[2], "code"), Some(HighlightKind::Code));
        assert_eq!(kind_of(l2, &lines[2], "link"), Some(HighlightKind::Link));
    }
}

/// A tool for tuning [`classify_scope`], not a check: prints each token's
/// scope stack. `DUMP_PATH=a.py DUMP_SRC="$(cat a.py)" cargo test --lib
/// dump_scopes -- --ignored --nocapture`
#[cfg(test)]
mod dump {
    use super::*;
    #[test]
    #[ignore]
    fn dump_scopes() {
        let path = std::env::var("DUMP_PATH").unwrap_or_else(|_| "x.rs".into());
        let src = std::env::var("DUMP_SRC").unwrap();
        let l = detect_language(Some(Path::new(&path)), "");
        let set = syntax_set();
        let syn = &set.syntaxes()[l.syntax.unwrap()];
        let mut ps = ParseState::new(syn);
        let mut st = ScopeStack::new();
        for line in src.lines() {
            let text = format!("{line}\n");
            let ops = ps.parse_line(&text, set).unwrap();
            let mut prev = 0;
            for (b, op) in ops {
                if b > prev {
                    let names: Vec<String> =
                        st.as_slice().iter().map(|s| s.build_string()).collect();
                    println!("{:?} {:?}", &text[prev..b], names);
                    prev = b;
                }
                st.apply(&op).unwrap();
            }
        }
    }
}
