//! One open file: its document, where it lives on disk, how it is written
//! (line endings, indentation), its selection and scroll position, and the
//! editing and movement operations a user performs on it.
//!
//! Every edit goes through [`Buffer::apply`], which records undo, remaps the
//! selection and invalidates highlighting; movement never touches the text.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ropey::Rope;

use super::find::Matches;
use super::syntax::{detect_language, Highlighter, Language};
use super::text::{self, IndentStyle};
use crate::doc::{Assoc, Change, Document};
use crate::workspace::{self, LineEnding, LoadedFile, SaveOutcome};

/// Identifies a buffer for the lifetime of the editor.
pub type BufferId = u64;

/// Typing pauses longer than this start a new undo step.
pub const UNDO_GROUP_PAUSE: Duration = Duration::from_millis(1000);

/// A selection: `anchor` stays put while `head` (the cursor) moves.
/// Both are char indices on grapheme boundaries. Empty when equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Selection {
    /// The fixed end.
    pub anchor: usize,
    /// The moving end, where the cursor is drawn.
    pub head: usize,
}

impl Selection {
    /// A cursor with nothing selected.
    pub fn point(pos: usize) -> Self {
        Self {
            anchor: pos,
            head: pos,
        }
    }

    /// Lower end.
    pub fn start(&self) -> usize {
        self.anchor.min(self.head)
    }

    /// Upper end.
    pub fn end(&self) -> usize {
        self.anchor.max(self.head)
    }

    /// Nothing selected?
    pub fn is_empty(&self) -> bool {
        self.anchor == self.head
    }

    /// Maps both ends through a change.
    pub fn map(&self, change: &Change) -> Self {
        Self {
            anchor: change.map_pos(self.anchor, Assoc::After),
            head: change.map_pos(self.head, Assoc::After),
        }
    }
}

/// Another participant's cursor and selection in this buffer, resolved to
/// char indices (the session keeps them as stable positions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCursor {
    /// Participant id.
    pub id: u64,
    /// Display name, drawn beside the cursor.
    pub name: String,
    /// Their colour (`#rrggbb` or a colour name).
    pub color: String,
    /// Selection anchor.
    pub anchor: usize,
    /// Cursor.
    pub head: usize,
}

/// What kind of edit, for grouping undo steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditKind {
    /// Typing characters.
    Insert,
    /// Backspace / Delete.
    Delete,
    /// Anything else (paste, indent, replace...) is always its own step.
    Other,
}

/// Why an edit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The buffer cannot be edited.
    #[error("read-only: {0}")]
    ReadOnly(String),
}

/// Scroll position of the buffer's view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewState {
    /// First visible line.
    pub top_line: usize,
    /// First visible visual column (no-wrap mode).
    pub left_col: usize,
    /// The user scrolled away (mouse wheel): don't snap back to the cursor
    /// until it moves.
    pub scrolled_by_user: bool,
}

/// An open file (or an unnamed scratch buffer).
#[derive(Debug)]
pub struct Buffer {
    /// Stable id.
    pub id: BufferId,
    /// The text.
    pub doc: Document,
    /// Where it is saved; `None` for a scratch buffer.
    pub path: Option<PathBuf>,
    /// Line ending inserted by Enter (the file's own).
    pub line_ending: LineEnding,
    /// Indent unit for Tab.
    pub indent: IndentStyle,
    /// Tab display width.
    pub tab_width: usize,
    /// Detected language.
    pub language: Language,
    /// Syntax highlighting cache.
    pub highlighter: Highlighter,
    /// Why the buffer is read-only, if it is.
    pub read_only: Option<String>,
    /// The local user's selection.
    pub selection: Selection,
    /// Visual column that up/down try to keep.
    pub preferred_col: Option<usize>,
    /// Scroll position.
    pub view: ViewState,
    /// Find state (query and matches) of this buffer.
    pub matches: Matches,
    saved_revision: u64,
    last_edit: Option<(EditKind, Instant, usize)>,
    /// Modification time on disk when loaded or last saved.
    pub disk_mtime: Option<std::time::SystemTime>,
    /// Other participants' cursors.
    pub remote_cursors: Vec<RemoteCursor>,
    /// Open for a collaborator only: not shown as a tab until the local
    /// user opens it.
    pub hidden: bool,
    /// The path inside a session ('/'-separated, relative to the shared
    /// root) when this buffer belongs to one.
    pub shared_path: Option<String>,
}

impl Buffer {
    /// An empty, unnamed buffer.
    pub fn scratch(id: BufferId, tab_width: usize) -> Self {
        let language = detect_language(None, "");
        Self {
            id,
            doc: Document::new(),
            path: None,
            line_ending: LineEnding::Lf,
            indent: IndentStyle::Spaces(tab_width),
            tab_width,
            highlighter: Highlighter::new(&language),
            language,
            read_only: None,
            selection: Selection::default(),
            preferred_col: None,
            view: ViewState::default(),
            matches: Matches::default(),
            saved_revision: 0,
            last_edit: None,
            disk_mtime: None,
            remote_cursors: Vec::new(),
            hidden: false,
            shared_path: None,
        }
    }

    /// A buffer for a file loaded from disk.
    pub fn from_loaded(
        id: BufferId,
        path: PathBuf,
        loaded: LoadedFile,
        tab_width: usize,
        insert_spaces: Option<bool>,
    ) -> Self {
        let first_line: String = loaded.rope.line(0).chars().take(200).collect();
        let language = detect_language(Some(&path), &first_line);
        let default_indent = IndentStyle::Spaces(tab_width);
        let indent = match insert_spaces {
            Some(true) => default_indent,
            Some(false) => IndentStyle::Tabs,
            None => IndentStyle::detect(&loaded.rope, default_indent),
        };
        let read_only = loaded.read_only.map(|r| r.message().to_string());
        Self {
            id,
            doc: Document::from_rope(loaded.rope),
            path: Some(path),
            line_ending: loaded.line_ending,
            indent,
            tab_width,
            highlighter: Highlighter::new(&language),
            language,
            read_only,
            selection: Selection::default(),
            preferred_col: None,
            view: ViewState::default(),
            matches: Matches::default(),
            saved_revision: 0,
            last_edit: None,
            disk_mtime: loaded.mtime,
            remote_cursors: Vec::new(),
            hidden: false,
            shared_path: None,
        }
    }

    /// A buffer for a collaborator's file: it has no path on this
    /// machine, only its path inside the session.
    pub fn from_document(id: BufferId, shared_path: &str, doc: Document, tab_width: usize) -> Self {
        let name = std::path::Path::new(shared_path);
        let first_line: String = doc.rope().line(0).chars().take(200).collect();
        let language = detect_language(Some(name), &first_line);
        let line_ending = if doc.rope().line(0).chars().any(|c| c == '\r') {
            LineEnding::Crlf
        } else {
            LineEnding::Lf
        };
        let indent = IndentStyle::detect(doc.rope(), IndentStyle::Spaces(tab_width));
        let mut b = Self::scratch(id, tab_width);
        b.highlighter = Highlighter::new(&language);
        b.language = language;
        b.indent = indent;
        b.line_ending = line_ending;
        b.saved_revision = doc.revision();
        b.doc = doc;
        b.shared_path = Some(shared_path.to_string());
        b
    }

    /// Swaps in a new document for the same file (a guest's file was sent
    /// again): the selection is kept inside the new text.
    pub fn replace_doc(&mut self, doc: Document) {
        self.doc = doc;
        self.saved_revision = self.doc.revision();
        self.clamp_selection();
        self.highlighter.invalidate_from(0);
        self.matches.invalidate();
        self.last_edit = None;
    }

    /// The text.
    pub fn rope(&self) -> &Rope {
        self.doc.rope()
    }

    /// Changed since the last save?
    pub fn is_dirty(&self) -> bool {
        self.doc.revision() != self.saved_revision
    }

    /// Marks the current text as saved (used after a save elsewhere).
    pub fn mark_saved(&mut self) {
        self.saved_revision = self.doc.revision();
    }

    /// The name shown in tabs and the status line.
    pub fn display_name(&self) -> String {
        if let (None, Some(sp)) = (&self.path, &self.shared_path) {
            return sp.rsplit('/').next().unwrap_or(sp).to_string();
        }
        match &self.path {
            Some(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string()),
            None => "untitled".to_string(),
        }
    }

    /// Cursor position.
    pub fn cursor(&self) -> usize {
        self.selection.head
    }

    /// Cursor line (0-based) and visual column (0-based).
    pub fn cursor_line_col(&self) -> (usize, usize) {
        let rope = self.rope();
        let pos = self.cursor().min(rope.len_chars());
        (
            rope.char_to_line(pos),
            text::visual_col(rope, pos, self.tab_width),
        )
    }

    // ---- edits ----------------------------------------------------------

    fn check_writable(&self) -> Result<(), EditError> {
        if let Some(reason) = &self.read_only {
            return Err(EditError::ReadOnly(reason.clone()));
        }
        // A shared document can be read-only on its own (too large to edit
        // together, or its shared state still loading).
        if self.doc.is_read_only() {
            let reason = self.doc.read_only_reason().unwrap_or("read-only");
            return Err(EditError::ReadOnly(reason.to_string()));
        }
        Ok(())
    }

    /// Applies changes as one local edit and puts the cursor at `after`
    /// (or, if `None`, wherever the old selection maps to).
    pub fn apply(
        &mut self,
        changes: &[Change],
        kind: EditKind,
        after: Option<Selection>,
    ) -> Result<(), EditError> {
        self.check_writable()?;
        if changes.iter().all(|c| c.is_noop()) {
            return Ok(());
        }
        let now = Instant::now();
        let pos = self.cursor();
        let continues = match self.last_edit {
            Some((k, t, p)) => {
                k == kind && kind != EditKind::Other && now - t < UNDO_GROUP_PAUSE && p == pos
            }
            None => false,
        };
        if !continues {
            self.doc.break_undo_group();
        }
        let mut sel = self.selection;
        for change in changes {
            sel = sel.map(change);
            let info = highlight_edit(self.doc.rope(), change);
            // One at a time: each change's line numbers are known only
            // against the text the previous one left. They merge into the
            // same undo group.
            self.doc.apply_local(std::slice::from_ref(change));
            self.note_edit(info);
        }
        self.matches.invalidate();
        self.selection = after.unwrap_or(sel);
        self.clamp_selection();
        self.preferred_col = None;
        self.last_edit = Some((kind, now, self.cursor()));
        if kind == EditKind::Other {
            self.doc.break_undo_group();
        }
        Ok(())
    }

    /// Applies changes made by someone else (or by undo): the text changes,
    /// the selection is mapped through, nothing is recorded for undo here.
    ///
    /// `changes` must already be applied to the document; they are replayed
    /// here only for positions, so the highlighter is told to start over
    /// from the first touched line.
    pub fn after_external_changes(&mut self, changes: &[Change]) {
        let mut first = usize::MAX;
        let mut sel = self.selection;
        for change in changes {
            sel = sel.map(change);
            first = first.min(change.start);
        }
        self.selection = sel;
        self.clamp_selection();
        if first != usize::MAX {
            let line = self.rope().char_to_line(first.min(self.rope().len_chars()));
            self.highlighter.invalidate_from(line);
        }
        self.matches.invalidate();
    }

    /// Tells the highlighter about one applied change.
    fn note_edit(&mut self, info: HighlightEdit) {
        match info {
            HighlightEdit::Lines {
                line,
                removed,
                inserted,
            } => self.highlighter.edited(line, removed, inserted),
            HighlightEdit::From(line) => self.highlighter.invalidate_from(line),
        }
    }

    fn clamp_selection(&mut self) {
        let len = self.rope().len_chars();
        let slice = self.doc.rope().slice(..);
        self.selection.anchor = text::snap_to_boundary(slice, self.selection.anchor.min(len));
        self.selection.head = text::snap_to_boundary(slice, self.selection.head.min(len));
    }

    /// Replaces the selection with `text` (typing, paste).
    pub fn insert_text(&mut self, text: &str, kind: EditKind) -> Result<(), EditError> {
        let sel = self.selection;
        let text = self.normalize_line_endings(text);
        let end = sel.start() + text.chars().count();
        self.apply(
            &[Change::replace(sel.start(), sel.end(), text)],
            kind,
            Some(Selection::point(end)),
        )
    }

    /// Converts pasted text's line breaks to the buffer's own.
    fn normalize_line_endings(&self, text: &str) -> String {
        if !text.contains(['\r', '\n']) {
            return text.to_string();
        }
        let unified = text.replace("\r\n", "\n").replace('\r', "\n");
        match self.line_ending {
            LineEnding::Lf => unified,
            LineEnding::Crlf => unified.replace('\n', "\r\n"),
        }
    }

    /// Types one character.
    pub fn insert_char(&mut self, c: char) -> Result<(), EditError> {
        if c.is_whitespace() {
            // A word ends here: undo goes back word by word.
            self.doc.break_undo_group();
        }
        let mut buf = [0u8; 4];
        self.insert_text(c.encode_utf8(&mut buf), EditKind::Insert)
    }

    /// Enter: a line break plus the current line's indentation (and one
    /// more level after an opening bracket or a colon).
    pub fn newline(&mut self) -> Result<(), EditError> {
        self.check_writable()?;
        let rope = self.rope();
        let pos = self.selection.start();
        let line = rope.char_to_line(pos);
        let mut indent = text::line_indent(rope, line);
        let line_start = rope.line_to_char(line);
        let indent_len = indent.chars().count();
        if pos < line_start + indent_len {
            // Cursor inside the indentation: only keep what is before it.
            indent = indent.chars().take(pos - line_start).collect();
        }
        let before: String = rope.slice(line_start..pos).chars().collect();
        let trimmed = before.trim_end();
        if trimmed.ends_with(['{', '[', '(', ':']) {
            indent.push_str(&self.indent.unit());
        }
        let text = format!("{}{}", self.line_ending.as_str(), indent);
        self.doc.break_undo_group();
        self.insert_text(&text, EditKind::Other)
    }

    /// Backspace: the selection, or the grapheme before the cursor (or one
    /// indent level when in leading spaces).
    pub fn backspace(&mut self) -> Result<(), EditError> {
        let sel = self.selection;
        if !sel.is_empty() {
            return self.delete_selection();
        }
        let pos = sel.head;
        if pos == 0 {
            return Ok(());
        }
        let rope = self.rope();
        let line = rope.char_to_line(pos);
        let line_start = rope.line_to_char(line);
        let before: String = rope.slice(line_start..pos).chars().collect();
        let start = if let IndentStyle::Spaces(n) = self.indent {
            if !before.is_empty() && before.chars().all(|c| c == ' ') {
                let n = n.max(1);
                let remove = match before.len() % n {
                    0 => n,
                    r => r,
                };
                pos - remove.min(before.len())
            } else {
                text::prev_grapheme_boundary(rope.slice(..), pos)
            }
        } else {
            text::prev_grapheme_boundary(rope.slice(..), pos)
        };
        self.apply(
            &[Change::delete(start, pos)],
            EditKind::Delete,
            Some(Selection::point(start)),
        )
    }

    /// Delete: the selection, or the grapheme after the cursor.
    pub fn delete_forward(&mut self) -> Result<(), EditError> {
        let sel = self.selection;
        if !sel.is_empty() {
            return self.delete_selection();
        }
        let pos = sel.head;
        let end = text::next_grapheme_boundary(self.rope().slice(..), pos);
        self.apply(
            &[Change::delete(pos, end)],
            EditKind::Delete,
            Some(Selection::point(pos)),
        )
    }

    /// Deletes the selected text.
    pub fn delete_selection(&mut self) -> Result<(), EditError> {
        let sel = self.selection;
        self.apply(
            &[Change::delete(sel.start(), sel.end())],
            EditKind::Other,
            Some(Selection::point(sel.start())),
        )
    }

    /// Ctrl+Backspace.
    pub fn delete_word_back(&mut self) -> Result<(), EditError> {
        if !self.selection.is_empty() {
            return self.delete_selection();
        }
        let pos = self.cursor();
        let start = text::prev_word_boundary(self.rope(), pos);
        self.apply(
            &[Change::delete(start, pos)],
            EditKind::Delete,
            Some(Selection::point(start)),
        )
    }

    /// Ctrl+Delete.
    pub fn delete_word_forward(&mut self) -> Result<(), EditError> {
        if !self.selection.is_empty() {
            return self.delete_selection();
        }
        let pos = self.cursor();
        let end = text::next_word_boundary(self.rope(), pos);
        self.apply(
            &[Change::delete(pos, end)],
            EditKind::Delete,
            Some(Selection::point(pos)),
        )
    }

    /// Lines touched by the selection (first, last), inclusive.
    fn selected_lines(&self) -> (usize, usize) {
        let rope = self.rope();
        let sel = self.selection;
        let first = rope.char_to_line(sel.start());
        let mut last = rope.char_to_line(sel.end());
        if last > first && rope.line_to_char(last) == sel.end() {
            last -= 1;
        }
        (first, last)
    }

    /// Deletes the lines touched by the selection.
    pub fn delete_lines(&mut self) -> Result<(), EditError> {
        let (first, last) = self.selected_lines();
        let rope = self.rope();
        let start = rope.line_to_char(first);
        let end = if last + 1 < rope.len_lines() {
            rope.line_to_char(last + 1)
        } else {
            rope.len_chars()
        };
        // On the last line, also eat the break before it.
        let start = if end == rope.len_chars() && first > 0 && start == end {
            start
        } else if end == rope.len_chars() && first > 0 {
            let prev_end = rope.line_to_char(first);
            text::prev_grapheme_boundary(rope.slice(..), prev_end)
        } else {
            start
        };
        self.apply(
            &[Change::delete(start, end)],
            EditKind::Other,
            Some(Selection::point(start)),
        )
    }

    /// Duplicates the lines touched by the selection below them.
    pub fn duplicate_lines(&mut self) -> Result<(), EditError> {
        let (first, last) = self.selected_lines();
        let rope = self.rope();
        let start = rope.line_to_char(first);
        let end = rope.line_to_char(last) + text::line_len(rope, last);
        let body: String = rope.slice(start..end).chars().collect();
        let insert = format!("{}{}", self.line_ending.as_str(), body);
        let sel = self.selection;
        let shift = insert.chars().count();
        self.apply(
            &[Change::insert(end, insert)],
            EditKind::Other,
            Some(Selection {
                anchor: sel.anchor + shift,
                head: sel.head + shift,
            }),
        )
    }

    /// Tab: with a multi-line selection, indents those lines; otherwise
    /// inserts one indent unit (spaces up to the next tab stop).
    pub fn indent(&mut self) -> Result<(), EditError> {
        let (first, last) = self.selected_lines();
        if self.selection.is_empty() || first == last && !self.selection_covers_line(first) {
            let unit = match self.indent {
                IndentStyle::Tabs => "\t".to_string(),
                IndentStyle::Spaces(n) => {
                    let col = self.cursor_line_col().1;
                    let n = n.max(1);
                    " ".repeat(n - col % n)
                }
            };
            return self.insert_text(&unit, EditKind::Other);
        }
        let unit = self.indent.unit();
        let rope = self.rope();
        let mut changes = Vec::new();
        // Back to front so earlier indices stay valid.
        for line in (first..=last).rev() {
            if text::line_len(rope, line) == 0 {
                continue;
            }
            changes.push(Change::insert(rope.line_to_char(line), unit.clone()));
        }
        self.apply_keeping_line_selection(changes, first, last)
    }

    fn selection_covers_line(&self, line: usize) -> bool {
        let rope = self.rope();
        let start = rope.line_to_char(line);
        let end = start + text::line_len(rope, line);
        self.selection.start() <= start && self.selection.end() >= end && end > start
    }

    /// Shift+Tab: removes one indent level from the selected lines.
    pub fn outdent(&mut self) -> Result<(), EditError> {
        let (first, last) = self.selected_lines();
        let rope = self.rope();
        let width = match self.indent {
            IndentStyle::Tabs => self.tab_width.max(1),
            IndentStyle::Spaces(n) => n.max(1),
        };
        let mut changes = Vec::new();
        for line in (first..=last).rev() {
            let start = rope.line_to_char(line);
            let mut remove = 0;
            let mut cols = 0;
            for c in rope.line(line).chars() {
                if cols >= width {
                    break;
                }
                match c {
                    ' ' => {
                        cols += 1;
                        remove += 1;
                    }
                    '\t' => {
                        remove += 1;
                        break;
                    }
                    _ => break,
                }
            }
            if remove > 0 {
                changes.push(Change::delete(start, start + remove));
            }
        }
        self.apply_keeping_line_selection(changes, first, last)
    }

    fn apply_keeping_line_selection(
        &mut self,
        changes: Vec<Change>,
        first: usize,
        last: usize,
    ) -> Result<(), EditError> {
        if changes.is_empty() {
            return Ok(());
        }
        let was_empty = self.selection.is_empty();
        self.apply(&changes, EditKind::Other, None)?;
        if !was_empty {
            let rope = self.rope();
            let start = rope.line_to_char(first);
            let end = rope.line_to_char(last) + text::line_len(rope, last);
            self.selection = Selection {
                anchor: start,
                head: end,
            };
        }
        Ok(())
    }

    /// Undo the local user's last step.
    pub fn undo(&mut self) -> Result<bool, EditError> {
        self.check_writable()?;
        match self.doc.undo() {
            Some(applied) => {
                self.place_after_history(&applied);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Redo.
    pub fn redo(&mut self) -> Result<bool, EditError> {
        self.check_writable()?;
        match self.doc.redo() {
            Some(applied) => {
                self.place_after_history(&applied);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn place_after_history(&mut self, applied: &[Change]) {
        let first = applied.iter().map(|c| c.start).min().unwrap_or(0);
        let first_line = self.rope().char_to_line(first.min(self.rope().len_chars()));
        self.highlighter.invalidate_from(first_line);
        self.matches.invalidate();
        if let Some(last) = applied.last() {
            self.selection = Selection::point(last.start + last.inserted_len());
        }
        self.clamp_selection();
        self.last_edit = None;
        self.preferred_col = None;
    }

    // ---- movement -------------------------------------------------------

    /// Moves the cursor to `pos`, extending the selection if asked.
    pub fn move_to(&mut self, pos: usize, extend: bool) {
        let pos = text::snap_to_boundary(self.rope().slice(..), pos);
        self.selection.head = pos;
        if !extend {
            self.selection.anchor = pos;
        }
        self.last_edit = None;
    }

    /// A move that is not up/down: the wanted column is forgotten.
    fn jump(&mut self, pos: usize, extend: bool) {
        self.move_to(pos, extend);
        self.preferred_col = None;
    }

    /// Left arrow: collapses a selection to its start, else one grapheme.
    pub fn move_left(&mut self, extend: bool) {
        let pos = if !extend && !self.selection.is_empty() {
            self.selection.start()
        } else {
            text::prev_grapheme_boundary(self.rope().slice(..), self.cursor())
        };
        self.jump(pos, extend);
    }

    /// Right arrow.
    pub fn move_right(&mut self, extend: bool) {
        let pos = if !extend && !self.selection.is_empty() {
            self.selection.end()
        } else {
            text::next_grapheme_boundary(self.rope().slice(..), self.cursor())
        };
        self.jump(pos, extend);
    }

    /// Up/down by `delta` lines, keeping the visual column.
    pub fn move_lines(&mut self, delta: isize, extend: bool) {
        let (line, col) = self.cursor_line_col();
        let want = self.preferred_col.unwrap_or(col);
        let last = self.rope().len_lines().saturating_sub(1);
        let target = if delta < 0 {
            line.saturating_sub(delta.unsigned_abs())
        } else {
            (line + delta as usize).min(last)
        };
        let pos = if target == line && delta < 0 && line == 0 {
            0
        } else if target == line && delta > 0 && line == last {
            self.rope().len_chars()
        } else {
            text::char_at_visual_col(self.rope(), target, want, self.tab_width)
        };
        self.move_to(pos, extend);
        self.preferred_col = Some(want);
    }

    /// Home: first non-blank of the line, or column 0 if already there.
    pub fn move_home(&mut self, extend: bool) {
        let rope = self.rope();
        let line = rope.char_to_line(self.cursor());
        let start = rope.line_to_char(line);
        let indent = text::line_indent(rope, line).chars().count();
        let indent = indent.min(text::line_len(rope, line));
        let pos = if self.cursor() == start + indent {
            start
        } else {
            start + indent
        };
        self.jump(pos, extend);
    }

    /// End of line.
    pub fn move_end(&mut self, extend: bool) {
        let rope = self.rope();
        let line = rope.char_to_line(self.cursor());
        let pos = rope.line_to_char(line) + text::line_len(rope, line);
        self.jump(pos, extend);
    }

    /// Ctrl+Left.
    pub fn move_word_left(&mut self, extend: bool) {
        let pos = text::prev_word_boundary(self.rope(), self.cursor());
        self.jump(pos, extend);
    }

    /// Ctrl+Right.
    pub fn move_word_right(&mut self, extend: bool) {
        let pos = text::next_word_boundary(self.rope(), self.cursor());
        self.jump(pos, extend);
    }

    /// Ctrl+Home.
    pub fn move_doc_start(&mut self, extend: bool) {
        self.jump(0, extend);
    }

    /// Ctrl+End.
    pub fn move_doc_end(&mut self, extend: bool) {
        let len = self.rope().len_chars();
        self.jump(len, extend);
    }

    /// Selects everything.
    pub fn select_all(&mut self) {
        self.selection = Selection {
            anchor: 0,
            head: self.rope().len_chars(),
        };
    }

    /// The selected text, if any.
    pub fn selected_text(&self) -> Option<String> {
        let sel = self.selection;
        if sel.is_empty() {
            return None;
        }
        Some(self.rope().slice(sel.start()..sel.end()).to_string())
    }

    /// The current line including its break (copy/cut with no selection).
    pub fn current_line_text(&self) -> String {
        let rope = self.rope();
        let line = rope.char_to_line(self.cursor());
        rope.line(line).to_string()
    }

    /// Goes to a 1-based line (and optional 1-based column).
    pub fn goto_line(&mut self, line: usize, col: Option<usize>) {
        let rope = self.rope();
        let last = rope.len_lines().saturating_sub(1);
        let line = line.saturating_sub(1).min(last);
        let pos = match col {
            Some(c) => text::char_at_visual_col(rope, line, c.saturating_sub(1), self.tab_width),
            None => rope.line_to_char(line),
        };
        self.jump(pos, false);
    }

    // ---- disk -----------------------------------------------------------

    /// Writes the buffer to its path atomically.
    pub fn save(&mut self) -> Result<SaveOutcome, String> {
        if let Some(reason) = &self.read_only {
            return Err(format!("cannot save: {reason}"));
        }
        let Some(path) = self.path.clone() else {
            return Err("this buffer has no file name yet".to_string());
        };
        let outcome = workspace::save_atomic(&path, self.rope()).map_err(|e| e.to_string())?;
        self.saved_revision = self.doc.revision();
        self.disk_mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        self.doc.break_undo_group();
        Ok(outcome)
    }

    /// Points the buffer at a new path (after a rename).
    pub fn set_path(&mut self, path: &Path) {
        self.path = Some(path.to_path_buf());
    }
}

/// What the highlighter needs to know about a change.
#[derive(Debug, Clone, Copy)]
enum HighlightEdit {
    /// Lines `line..=line+removed` became `line..=line+inserted`.
    Lines {
        line: usize,
        removed: usize,
        inserted: usize,
    },
    /// Anything may have changed from this line on (a `\r` was involved,
    /// which can merge with or split from a neighbouring `\n`).
    From(usize),
}

/// Describes `change` (not yet applied to `rope`) for the highlighter.
fn highlight_edit(rope: &Rope, change: &Change) -> HighlightEdit {
    let len = rope.len_chars();
    let c = change.clamped(len);
    let line = rope.char_to_line(c.start);
    let touches_cr = c.text.contains('\r')
        || (c.start > 0 && rope.char(c.start - 1) == '\r')
        || (c.end < len && rope.char(c.end) == '\n')
        || rope.slice(c.start..c.end).chars().any(|ch| ch == '\r');
    if touches_cr {
        return HighlightEdit::From(line);
    }
    HighlightEdit::Lines {
        line,
        removed: rope.char_to_line(c.end) - line,
        inserted: c.text.matches('\n').count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(text: &str) -> Buffer {
        let mut b = Buffer::scratch(1, 4);
        b.doc = Document::from_text(text);
        b
    }

    #[test]
    fn typing_and_backspace() {
        let mut b = buf("");
        for c in "héllo 🎉".chars() {
            b.insert_char(c).unwrap();
        }
        assert_eq!(b.rope().to_string(), "héllo 🎉");
        b.backspace().unwrap();
        assert_eq!(b.rope().to_string(), "héllo ");
    }

    #[test]
    fn undo_groups_words() {
        let mut b = buf("");
        for c in "foo bar".chars() {
            b.insert_char(c).unwrap();
        }
        b.undo().unwrap();
        assert_eq!(b.rope().to_string(), "foo");
        b.undo().unwrap();
        assert_eq!(b.rope().to_string(), "");
        b.redo().unwrap();
        assert_eq!(b.rope().to_string(), "foo");
    }

    #[test]
    fn newline_auto_indents() {
        let mut b = buf("    if x {");
        b.move_doc_end(false);
        b.newline().unwrap();
        assert_eq!(b.rope().to_string(), "    if x {\n        ");
    }

    #[test]
    fn crlf_buffer_inserts_crlf() {
        let mut b = buf("a\r\nb");
        b.line_ending = LineEnding::Crlf;
        b.move_doc_end(false);
        b.insert_text("x\ny", EditKind::Other).unwrap();
        assert_eq!(b.rope().to_string(), "a\r\nbx\r\ny");
    }

    #[test]
    fn indent_and_outdent_lines() {
        let mut b = buf("a\nb\n");
        b.selection = Selection { anchor: 0, head: 3 };
        b.indent().unwrap();
        assert_eq!(b.rope().to_string(), "    a\n    b\n");
        b.outdent().unwrap();
        assert_eq!(b.rope().to_string(), "a\nb\n");
    }

    #[test]
    fn vertical_moves_keep_column() {
        let mut b = buf("abcdef\nab\nabcdef");
        b.move_to(5, false);
        b.move_lines(1, false);
        assert_eq!(b.cursor(), 9);
        b.move_lines(1, false);
        assert_eq!(b.cursor(), 15);
    }

    #[test]
    fn read_only_refuses_edits() {
        let mut b = buf("x");
        b.read_only = Some("binary".into());
        assert!(b.insert_char('y').is_err());
        assert_eq!(b.rope().to_string(), "x");
    }

    #[test]
    fn delete_and_duplicate_lines() {
        let mut b = buf("a\nb\nc");
        b.move_to(2, false);
        b.duplicate_lines().unwrap();
        assert_eq!(b.rope().to_string(), "a\nb\nb\nc");
        b.delete_lines().unwrap();
        assert_eq!(b.rope().to_string(), "a\nb\nc");
        b.move_doc_end(false);
        b.delete_lines().unwrap();
        assert_eq!(b.rope().to_string(), "a\nb");
    }
}
