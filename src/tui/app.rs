//! The application: editor state plus everything on screen around it
//! (file tree, overlays, find bar, notifications), and how each input
//! event changes it. Drawing lives in `render.rs`; the terminal loop in
//! `mod.rs`. `App` never touches the terminal itself, so tests drive it
//! with scripted events and draw it on a `TestBackend`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::Rect;

use super::clipboard::Clipboard;
use super::collab::Intent;
use super::input::{InputOutcome, LineInput};
use super::keymap::{KeyChord, Keymap};
use super::theme::Theme;
use super::tree_pane::TreePane;
use crate::config::ConfigLoad;
use crate::editor::{text, Command, EditError, EditKind, Editor, Selection};
use crate::workspace::{self, FileIndex, FileTree, SaveOutcome};

/// How long an info notification stays up.
pub const NOTICE_INFO_TTL: Duration = Duration::from_secs(4);
/// How long a warning or error stays up.
pub const NOTICE_ERROR_TTL: Duration = Duration::from_secs(8);
/// Mouse wheel step in lines.
pub const WHEEL_LINES: usize = 3;
/// Two clicks closer than this are a double click.
pub const DOUBLE_CLICK: Duration = Duration::from_millis(400);
/// Lines the highlighter may parse per idle tick.
pub const HIGHLIGHT_CATCHUP_PER_TICK: usize = 500;
/// How long quick open waits for the file index before showing the list.
pub const QUICK_OPEN_FIRST_WAIT: Duration = Duration::from_millis(50);
/// Entries shown in the palette and quick open.
pub const PICKER_LIMIT: usize = 200;

/// Something that happened, fed to [`App::handle_event`].
#[derive(Debug, Clone)]
pub enum AppEvent {
    /// Terminal input (keys, mouse, paste, resize).
    Term(Event),
    /// A Unix signal (SIGTERM, SIGHUP): save recovery data and leave.
    Signal(i32),
    /// Periodic wake-up: expire notifications, refresh background state.
    Tick,
    /// The collaboration session has news (network events are queued).
    SessionWake,
}

/// How serious a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Information.
    Info,
    /// Something the user may want to act on.
    Warning,
    /// Something failed.
    Error,
}

/// A message shown in a corner; it never takes the keyboard.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The text.
    pub text: String,
    /// Seriousness.
    pub level: Level,
    /// When it disappears.
    pub until: Instant,
}

/// Which pane gets the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The text.
    Editor,
    /// The file tree.
    Tree,
}

/// A list with a filter (palette, quick open).
#[derive(Debug, Clone, Default)]
pub struct Picker {
    /// The filter text.
    pub input: LineInput,
    /// What can be picked (label, detail shown on the right).
    pub all: Vec<(String, String)>,
    /// Filtered: index into `all`, matched char positions.
    pub shown: Vec<(usize, Vec<usize>)>,
    /// Selected row in `shown`.
    pub selected: usize,
}

impl Picker {
    fn new(all: Vec<(String, String)>) -> Self {
        let mut p = Self {
            all,
            ..Self::default()
        };
        p.refilter();
        p
    }

    /// Re-runs the fuzzy filter.
    pub fn refilter(&mut self) {
        let q = self.input.text().trim();
        if q.is_empty() {
            self.shown = (0..self.all.len().min(PICKER_LIMIT * 50))
                .map(|i| (i, Vec::new()))
                .collect();
        } else {
            let labels: Vec<&str> = self.all.iter().map(|(l, _)| l.as_str()).collect();
            self.shown = workspace::fuzzy_match(q, &labels, PICKER_LIMIT)
                .into_iter()
                .map(|h| (h.index, h.positions))
                .collect();
        }
        self.selected = self.selected.min(self.shown.len().saturating_sub(1));
    }

    fn move_sel(&mut self, delta: isize) {
        if self.shown.is_empty() {
            return;
        }
        let n = self.shown.len() as isize;
        self.selected = ((self.selected as isize + delta).rem_euclid(n)) as usize;
    }

    fn current(&self) -> Option<usize> {
        self.shown.get(self.selected).map(|(i, _)| *i)
    }
}

/// What a prompt asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptKind {
    /// `line` or `line:col`.
    GotoLine,
    /// A path for an untitled buffer.
    SaveAs,
    /// A new file's name, in this folder.
    NewFile(PathBuf),
    /// A new folder's name, in this folder.
    NewFolder(PathBuf),
    /// A new name for this path.
    Rename(PathBuf),
    /// An invite link.
    Join,
    /// The display name, asked once before sharing or joining.
    DisplayName(Intent),
}

impl PromptKind {
    /// The prompt's label.
    pub fn label(&self) -> &'static str {
        match self {
            PromptKind::GotoLine => "Go to line",
            PromptKind::SaveAs => "Save as",
            PromptKind::NewFile(_) => "New file",
            PromptKind::NewFolder(_) => "New folder",
            PromptKind::Rename(_) => "Rename to",
            PromptKind::Join => "Join: paste the invite link",
            PromptKind::DisplayName(_) => "Your name (shown to the others)",
        }
    }
}

/// A yes/no question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmKind {
    /// Close a buffer with unsaved changes: save / discard / cancel.
    CloseBuffer(u64),
    /// Quit with unsaved buffers: save all / discard / cancel.
    Quit,
    /// Delete a file or folder: yes / no.
    Delete(PathBuf),
    /// Host: someone wants to join: accept / reject.
    Approve(crate::session::PendingId),
}

/// An overlay that takes the keyboard until closed.
#[derive(Debug, Clone)]
pub enum Overlay {
    /// F1.
    Palette(Picker),
    /// Ctrl+P.
    QuickOpen(Picker),
    /// A one-line question.
    Prompt {
        /// What for.
        kind: PromptKind,
        /// The answer so far.
        input: LineInput,
        /// A problem with the last answer, shown under it.
        error: Option<String>,
    },
    /// A question with fixed answers.
    Confirm {
        /// What for.
        kind: ConfirmKind,
        /// The question.
        message: String,
    },
    /// The key list.
    Help {
        /// First row shown.
        scroll: usize,
    },
    /// Who is in the session.
    Participants {
        /// Selected row.
        selected: usize,
    },
    /// A message to read (and copy by hand), e.g. the invite link.
    Info {
        /// Title.
        title: String,
        /// Text.
        body: String,
    },
}

/// The find (and replace) bar.
#[derive(Debug, Clone, Default)]
pub struct FindBar {
    /// Search text.
    pub query: LineInput,
    /// Replacement text.
    pub replace: LineInput,
    /// Replace row shown?
    pub replace_mode: bool,
    /// Keys go to the replace field?
    pub on_replace: bool,
}

/// Screen regions remembered from the last frame, for the mouse.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Tab labels: (x start, x end, buffer index).
    pub tabs: Vec<(u16, u16, usize)>,
    /// Row of the tab bar.
    pub tabs_y: u16,
    /// The tree pane.
    pub tree: Rect,
    /// The text area (right of the gutter).
    pub text: Rect,
    /// For each text row: (line, first visual column drawn).
    pub rows: Vec<Option<(usize, usize)>>,
}

/// The whole application state.
pub struct App {
    /// Buffers and settings.
    pub editor: Editor,
    /// Colours.
    pub theme: Theme,
    /// Key bindings.
    pub keymap: Keymap,
    /// The file tree (None when a single file was opened outside a folder).
    pub tree: Option<TreePane>,
    /// Tree pane shown?
    pub tree_visible: bool,
    /// Selected tree row.
    pub tree_selected: usize,
    /// First tree row shown.
    pub tree_scroll: usize,
    /// Who gets keys.
    pub focus: Focus,
    /// The open overlay.
    pub overlay: Option<Overlay>,
    /// When the last join request was put on screen (see
    /// [`approval_answer`]).
    pub approval_shown: Option<std::time::Instant>,
    /// The user asked to leave the session (so its end loses nothing).
    pub leaving: bool,
    /// Join requests that came while another was on screen, oldest first:
    /// each is put up in turn, so none is lost behind another.
    pub approvals_waiting: VecDeque<(u64, String)>,
    /// The find bar, when open.
    pub find: Option<FindBar>,
    /// Notifications, oldest first.
    pub notices: VecDeque<Notice>,
    /// Set when the app should exit.
    pub should_quit: bool,
    /// System clipboard.
    pub clipboard: Clipboard,
    /// Escape sequences for the terminal (OSC 52), written after the frame.
    pub pending_output: Vec<String>,
    /// Session state shown in the status line.
    pub session_label: String,
    /// Regions of the last frame.
    pub layout: Layout,
    /// The collaboration session, when sharing or joined.
    pub session: Option<crate::session::SessionCore>,
    /// Sends events to the loop (the session's network half wakes it).
    pub waker: Option<std::sync::mpsc::Sender<AppEvent>>,
    /// Where the config lives (the display name is saved there).
    pub config_path: PathBuf,
    /// A guest's own folder tree, kept while the host's is shown.
    pub local_tree: Option<TreePane>,
    /// Following: the file we asked the host for, to show when it arrives.
    pub follow_pending: Option<String>,
    /// The last presence sent, to send only changes.
    pub last_presence: Option<super::collab::PresenceSent>,
    file_index: Option<FileIndex>,
    /// Guest: the host's files, for quick open (asked for at each open of
    /// it; the last list is shown meanwhile).
    pub remote_files: Option<Vec<String>>,
    drag_anchor: Option<usize>,
    last_click: Option<(Instant, u16, u16)>,
}

impl App {
    /// Builds the app for `path` (a folder or a file) with loaded settings.
    pub fn new(path: &Path, loaded: ConfigLoad, clipboard: Clipboard) -> Result<Self, String> {
        let config = loaded.config;
        let config_path = loaded.path.clone();
        let (keymap, key_warnings) = Keymap::with_overrides(&config.keys);
        let user_themes = Some(crate::config::theme_dir_for(&loaded.path));
        let mut warnings = loaded.warnings;
        warnings.extend(key_warnings);
        let theme = match super::theme::load_theme(&config.theme, user_themes.as_deref()) {
            Ok(t) => t,
            Err(e) => {
                warnings.push(format!("{e}; using the default theme"));
                super::theme::load_theme("default", None).unwrap_or_default()
            }
        };
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot open {}: {}", path.display(), describe_io(&e)))?;
        let (root, file) = if meta.is_dir() {
            (path.to_path_buf(), None)
        } else {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            (parent, Some(path.to_path_buf()))
        };
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        let tree = if file.is_none() {
            Some(TreePane::Local(
                FileTree::new(&root).map_err(|e| e.to_string())?,
            ))
        } else {
            None
        };
        let mut app = Self {
            editor: Editor::new(root, config),
            theme,
            keymap,
            tree_visible: tree.is_some(),
            tree,
            tree_selected: 0,
            tree_scroll: 0,
            focus: Focus::Editor,
            overlay: None,
            approval_shown: None,
            approvals_waiting: VecDeque::new(),
            leaving: false,
            find: None,
            notices: VecDeque::new(),
            should_quit: false,
            clipboard,
            pending_output: Vec::new(),
            session_label: "Inactive".to_string(),
            layout: Layout::default(),
            session: None,
            waker: None,
            config_path: config_path.clone(),
            local_tree: None,
            follow_pending: None,
            last_presence: None,
            file_index: None,
            remote_files: None,
            drag_anchor: None,
            last_click: None,
        };
        if let Some(f) = file {
            let abs = std::fs::canonicalize(&f).unwrap_or(f);
            app.open_path(&abs)?;
        } else {
            app.focus = Focus::Tree;
        }
        for w in warnings {
            app.notify(Level::Warning, w);
        }
        Ok(app)
    }

    /// Shows a notification.
    pub fn notify(&mut self, level: Level, text: impl Into<String>) {
        let ttl = match level {
            Level::Info => NOTICE_INFO_TTL,
            _ => NOTICE_ERROR_TTL,
        };
        self.notices.push_back(Notice {
            text: text.into(),
            level,
            until: Instant::now() + ttl,
        });
        while self.notices.len() > 5 {
            self.notices.pop_front();
        }
    }

    fn open_path(&mut self, path: &Path) -> Result<(), String> {
        let r = match self.editor.open(path) {
            Ok(Some(notice)) => {
                self.notify(Level::Warning, notice);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        // While hosting, every file the host opens is part of the session,
        // so guests see where the host is (and can follow).
        if r.is_ok() && self.session.as_ref().is_some_and(|s| s.is_host()) {
            let root = self.editor.root.clone();
            if let Some(b) = self.editor.buffer_mut() {
                if b.shared_path.is_none() {
                    b.shared_path = b
                        .path
                        .as_ref()
                        .and_then(|p| crate::workspace::relative(&root, p));
                }
            }
        }
        r
    }

    fn open_and_focus(&mut self, path: &Path) {
        match self.open_path(path) {
            Ok(()) => self.focus = Focus::Editor,
            Err(e) => self.notify(Level::Error, e),
        }
    }

    // ---- events -------------------------------------------------------

    /// Applies one event.
    pub fn handle_event(&mut self, event: AppEvent) {
        let before = self.before_input();
        let is_input = matches!(event, AppEvent::Term(_));
        self.dispatch(event);
        if is_input {
            self.after_input(before);
        }
    }

    fn dispatch(&mut self, event: AppEvent) {
        match event {
            AppEvent::Term(Event::Key(key)) => {
                if key.kind != KeyEventKind::Release {
                    self.handle_key(key);
                }
            }
            AppEvent::Term(Event::Paste(text)) => self.handle_paste(&text),
            AppEvent::Term(Event::Mouse(m)) => self.handle_mouse(m),
            AppEvent::Term(_) => {}
            AppEvent::Signal(_) => {
                self.save_recovery();
                self.should_quit = true;
            }
            AppEvent::Tick => self.tick(),
            AppEvent::SessionWake => self.on_session_wake(),
        }
    }

    /// Expires notifications and refreshes pickers fed by background work.
    pub fn tick(&mut self) {
        let now = Instant::now();
        self.notices.retain(|n| n.until > now);
        // Idle time: let the highlighter catch up after a far jump.
        if let Some(b) = self.editor.buffer_mut() {
            b.highlighter
                .advance(b.doc.rope(), HIGHLIGHT_CATCHUP_PER_TICK);
        }
        self.refresh_quick_open();
    }

    fn handle_key(&mut self, key: KeyEvent) {
        if self.overlay.is_some() {
            self.overlay_key(key);
            return;
        }
        if self.find.is_some() && self.find_key(&key) {
            return;
        }
        if self.focus == Focus::Tree && self.tree_visible && self.tree_key(&key) {
            return;
        }
        let chord = KeyChord::from_event(&key);
        if let Some(cmd) = self.keymap.lookup(&chord) {
            self.run(cmd);
            return;
        }
        if let KeyCode::Char(c) = key.code {
            let m = key.modifiers;
            if !m.contains(KeyModifiers::CONTROL) && !m.contains(KeyModifiers::ALT) {
                self.focus = Focus::Editor;
                self.edit(|b| b.insert_char(c));
            }
        }
    }

    fn handle_paste(&mut self, text: &str) {
        match &mut self.overlay {
            Some(Overlay::Prompt { input, error, .. }) => {
                input.insert(text);
                *error = None;
                return;
            }
            Some(Overlay::Palette(p)) | Some(Overlay::QuickOpen(p)) => {
                p.input.insert(text);
                p.refilter();
                return;
            }
            Some(_) => return,
            None => {}
        }
        if let Some(f) = &mut self.find {
            if f.on_replace {
                f.replace.insert(text);
            } else {
                f.query.insert(text);
                let q = f.query.text().to_string();
                self.update_search(&q, true);
            }
            return;
        }
        self.focus = Focus::Editor;
        self.edit(|b| b.insert_text(text, EditKind::Other));
    }

    /// Runs an edit on the active buffer, reporting read-only refusals.
    fn edit(&mut self, f: impl FnOnce(&mut crate::editor::Buffer) -> Result<(), EditError>) {
        let Some(buf) = self.editor.buffer_mut() else {
            return;
        };
        if let Err(e) = f(buf) {
            self.notify(Level::Warning, e.to_string());
        }
    }

    fn with_buffer(&mut self, f: impl FnOnce(&mut crate::editor::Buffer)) {
        if let Some(buf) = self.editor.buffer_mut() {
            f(buf);
        }
    }

    fn page_height(&self) -> usize {
        (self.layout.text.height as usize).max(1)
    }

    /// Runs a command.
    pub fn run(&mut self, cmd: Command) {
        let page = self.page_height() as isize;
        match cmd {
            Command::CommandPalette => self.open_palette(),
            Command::Help => self.overlay = Some(Overlay::Help { scroll: 0 }),
            Command::QuickOpen => self.open_quick_open(),
            Command::Save => self.save_active(),
            Command::SaveAs => self.open_prompt(PromptKind::SaveAs, ""),
            Command::NewFile => {
                self.editor.new_scratch();
                self.focus = Focus::Editor;
            }
            Command::CloseBuffer => self.close_active(),
            Command::NextBuffer => self.editor.next_buffer(),
            Command::PreviousBuffer => self.editor.previous_buffer(),
            Command::Quit => self.request_quit(),
            Command::Undo => self.undo_redo(true),
            Command::Redo => self.undo_redo(false),
            Command::Copy => self.copy(false),
            Command::Cut => self.copy(true),
            Command::Paste => self.paste(),
            Command::SelectAll => self.with_buffer(|b| b.select_all()),
            Command::Find => self.open_find(false),
            Command::Replace => self.open_find(true),
            Command::FindNext => self.find_step(true),
            Command::FindPrevious => self.find_step(false),
            Command::GotoLine => self.open_prompt(PromptKind::GotoLine, ""),
            Command::Indent => self.edit(|b| b.indent()),
            Command::Outdent => self.edit(|b| b.outdent()),
            Command::DeleteLine => self.edit(|b| b.delete_lines()),
            Command::DuplicateLine => self.edit(|b| b.duplicate_lines()),
            Command::ToggleFileTree => {
                if self.tree.is_none() {
                    self.notify(Level::Info, "no folder is open: there is no file tree");
                } else {
                    self.tree_visible = !self.tree_visible;
                    self.focus = if self.tree_visible {
                        Focus::Tree
                    } else {
                        Focus::Editor
                    };
                }
            }
            Command::FocusFileTree => {
                if self.tree.is_some() {
                    if self.focus == Focus::Tree {
                        self.focus = Focus::Editor;
                    } else {
                        self.tree_visible = true;
                        self.focus = Focus::Tree;
                    }
                }
            }
            Command::RevealInTree => self.reveal_active(),
            Command::TreeNewFile => {
                let dir = self.tree_target_dir();
                self.open_prompt(PromptKind::NewFile(dir), "");
            }
            Command::TreeNewFolder => {
                let dir = self.tree_target_dir();
                self.open_prompt(PromptKind::NewFolder(dir), "");
            }
            Command::TreeRename => {
                if let Some(path) = self.tree_selected_path() {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    self.open_prompt(PromptKind::Rename(path), &name);
                }
            }
            Command::TreeDelete => {
                if let Some(path) = self.tree_selected_path() {
                    let rel = workspace::relative(&self.editor.root, &path)
                        .unwrap_or_else(|| path.display().to_string());
                    let what = if path.is_dir() {
                        "folder and everything in it"
                    } else {
                        "file"
                    };
                    self.overlay = Some(Overlay::Confirm {
                        message: format!("Delete the {what} {rel}?  [y]es  [n]o"),
                        kind: ConfirmKind::Delete(path),
                    });
                }
            }
            Command::RefreshTree => {
                self.refresh_tree();
            }
            Command::ToggleSoftWrap => {
                self.editor.config.soft_wrap = !self.editor.config.soft_wrap;
                let state = if self.editor.config.soft_wrap {
                    "on"
                } else {
                    "off"
                };
                self.notify(Level::Info, format!("soft wrap {state}"));
            }
            Command::ToggleLineNumbers => {
                self.editor.config.line_numbers = !self.editor.config.line_numbers;
            }
            Command::MoveLeft => self.with_buffer(|b| b.move_left(false)),
            Command::MoveRight => self.with_buffer(|b| b.move_right(false)),
            Command::MoveUp => self.with_buffer(|b| b.move_lines(-1, false)),
            Command::MoveDown => self.with_buffer(|b| b.move_lines(1, false)),
            Command::SelectLeft => self.with_buffer(|b| b.move_left(true)),
            Command::SelectRight => self.with_buffer(|b| b.move_right(true)),
            Command::SelectUp => self.with_buffer(|b| b.move_lines(-1, true)),
            Command::SelectDown => self.with_buffer(|b| b.move_lines(1, true)),
            Command::WordLeft => self.with_buffer(|b| b.move_word_left(false)),
            Command::WordRight => self.with_buffer(|b| b.move_word_right(false)),
            Command::SelectWordLeft => self.with_buffer(|b| b.move_word_left(true)),
            Command::SelectWordRight => self.with_buffer(|b| b.move_word_right(true)),
            Command::LineStart => self.with_buffer(|b| b.move_home(false)),
            Command::LineEnd => self.with_buffer(|b| b.move_end(false)),
            Command::SelectLineStart => self.with_buffer(|b| b.move_home(true)),
            Command::SelectLineEnd => self.with_buffer(|b| b.move_end(true)),
            Command::PageUp => self.page(-page, false),
            Command::PageDown => self.page(page, false),
            Command::SelectPageUp => self.page(-page, true),
            Command::SelectPageDown => self.page(page, true),
            Command::DocStart => self.with_buffer(|b| b.move_doc_start(false)),
            Command::DocEnd => self.with_buffer(|b| b.move_doc_end(false)),
            Command::SelectDocStart => self.with_buffer(|b| b.move_doc_start(true)),
            Command::SelectDocEnd => self.with_buffer(|b| b.move_doc_end(true)),
            Command::InsertNewline => self.edit(|b| b.newline()),
            Command::DeleteBackward => self.edit(|b| b.backspace()),
            Command::DeleteForward => self.edit(|b| b.delete_forward()),
            Command::DeleteWordBackward => self.edit(|b| b.delete_word_back()),
            Command::DeleteWordForward => self.edit(|b| b.delete_word_forward()),
            Command::Share
            | Command::Join
            | Command::Leave
            | Command::EndSession
            | Command::CopyInviteLink
            | Command::OpenJoinPage
            | Command::FollowParticipant
            | Command::Participants => self.collab_command(cmd),
            Command::OpenLink => self.open_link_under_cursor(),
            Command::Escape => {
                if self.find.take().is_none() {
                    self.with_buffer(|b| {
                        let h = b.selection.head;
                        b.selection = Selection::point(h);
                    });
                }
                if let Some(b) = self.editor.buffer_mut() {
                    b.matches.clear();
                }
            }
        }
        if !matches!(
            cmd,
            Command::FocusFileTree
                | Command::ToggleFileTree
                | Command::TreeNewFile
                | Command::TreeNewFolder
                | Command::TreeRename
                | Command::TreeDelete
                | Command::RefreshTree
                | Command::RevealInTree
        ) && self.overlay.is_none()
            && self.editor.buffer().is_some()
            && is_editor_command(cmd)
        {
            self.focus = Focus::Editor;
        }
    }

    fn page(&mut self, delta: isize, extend: bool) {
        let h = self.page_height();
        self.with_buffer(|b| {
            b.move_lines(delta, extend);
            let top = b.view.top_line as isize + delta;
            b.view.top_line = top.max(0) as usize;
            let last = b.rope().len_lines().saturating_sub(1);
            b.view.top_line = b.view.top_line.min(last.saturating_sub(h / 2));
        });
    }

    fn undo_redo(&mut self, undo: bool) {
        let Some(buf) = self.editor.buffer_mut() else {
            return;
        };
        let r = if undo { buf.undo() } else { buf.redo() };
        match r {
            Ok(true) => {}
            Ok(false) => {
                let what = if undo {
                    "nothing to undo"
                } else {
                    "nothing to redo"
                };
                self.notify(Level::Info, what);
            }
            Err(e) => self.notify(Level::Warning, e.to_string()),
        }
    }

    fn copy(&mut self, cut: bool) {
        let Some(buf) = self.editor.buffer_mut() else {
            return;
        };
        let whole_line = buf.selection.is_empty();
        let text = buf
            .selected_text()
            .unwrap_or_else(|| buf.current_line_text());
        if cut {
            let r = if whole_line {
                buf.delete_lines()
            } else {
                buf.delete_selection()
            };
            if let Err(e) = r {
                self.notify(Level::Warning, e.to_string());
                return;
            }
        }
        self.copy_text(&text);
    }

    /// Opens the link under the cursor: an lshed invite in the join
    /// prompt, anything else in the browser (or, where there is none,
    /// copied, saying why).
    fn open_link_under_cursor(&mut self) {
        let found = self.editor.buffer().and_then(|b| {
            let rope = b.rope();
            let head = b.selection.head.min(rope.len_chars());
            let line = rope.char_to_line(head);
            let col = head - rope.line_to_char(line);
            super::browser::link_at(&rope.line(line).to_string(), col)
        });
        let Some(link) = found else {
            self.notify(Level::Info, "no link under the cursor");
            return;
        };
        if link.to_ascii_lowercase().starts_with("lshed://") {
            if self.session.is_some() {
                self.notify(Level::Info, "already in a session: leave it first");
            } else {
                self.open_prompt_pub(PromptKind::Join, &link);
            }
            return;
        }
        self.open_in_browser(&link, "the link");
    }

    /// Opens `url` in the browser, or copies it and says why not.
    pub fn open_in_browser(&mut self, url: &str, what: &str) {
        match super::browser::open_url(url) {
            super::browser::Opened::Browser => {
                self.notify(Level::Info, format!("opened {what} in your browser"))
            }
            super::browser::Opened::NoBrowser(why) => {
                self.copy_text(url);
                self.notify(Level::Info, format!("{why}: {what} is copied instead"));
            }
        }
    }

    /// Copies `text` to the register, the system clipboard and (over SSH)
    /// the terminal's clipboard.
    pub fn copy_text(&mut self, text: &str) {
        self.editor.register = text.to_string();
        let report = self.clipboard.copy(text);
        if let Some(seq) = report.osc52 {
            self.pending_output.push(seq);
        }
        if report.too_large_for_osc52 && !report.system {
            self.notify(
                Level::Warning,
                "copied inside lshed only: too large for the terminal clipboard",
            );
        }
    }

    fn paste(&mut self) {
        let text = self
            .clipboard
            .paste()
            .unwrap_or_else(|| self.editor.register.clone());
        if text.is_empty() {
            return;
        }
        self.handle_paste(&text);
    }

    fn save_active(&mut self) {
        let Some(buf) = self.editor.buffer_mut() else {
            return;
        };
        if buf.path.is_none() {
            if let (Some(sp), Some(core)) = (buf.shared_path.clone(), self.session.as_mut()) {
                core.save(&sp);
                self.notify(Level::Info, format!("saving {sp} on the host…"));
                return;
            }
            self.open_prompt(PromptKind::SaveAs, "");
            return;
        }
        let shared = buf.shared_path.clone();
        let name = buf.display_name();
        let saved = buf.save();
        match &saved {
            Ok(SaveOutcome::Saved { .. }) => self.notify(Level::Info, format!("saved {name}")),
            Ok(SaveOutcome::Recreated { .. }) => self.notify(
                Level::Warning,
                format!("{name} had been deleted on disk; saved it again"),
            ),
            Err(e) => self.notify(Level::Error, e.to_string()),
        }
        // Either way the file on disk now holds the buffer: the session
        // (guests' saved state, the disk watcher) must know, as for any save.
        if saved.is_ok() {
            if let (Some(sp), Some(core)) = (shared, self.session.as_mut()) {
                let mut store = crate::editor::collab::EditorStore::new(&mut self.editor);
                core.saved_locally(&sp, &mut store);
            }
        }
    }

    fn close_active(&mut self) {
        let Some(idx) = self.editor.active else {
            return;
        };
        let buf = &self.editor.buffers[idx];
        // A guest's copy of a host file: the host has the truth; stop
        // receiving its changes and forget it.
        if let (None, Some(sp), Some(core)) = (&buf.path, &buf.shared_path, self.session.as_mut()) {
            if !core.is_host() {
                let sp = sp.clone();
                core.close(&sp);
                self.editor.discard(idx);
                return;
            }
        }
        if buf.is_dirty() {
            let message = format!(
                "{} has unsaved changes.  [s]ave  [d]iscard  [c]ancel",
                buf.display_name()
            );
            self.overlay = Some(Overlay::Confirm {
                kind: ConfirmKind::CloseBuffer(buf.id),
                message,
            });
        } else {
            self.editor.close(idx);
        }
    }

    /// Quitting ends (host) or leaves (guest) the session; that happens as
    /// the loop exits, so cancelling here changes nothing.
    fn request_quit(&mut self) {
        let dirty = self.editor.dirty_buffers();
        if dirty.is_empty() {
            self.should_quit = true;
            return;
        }
        let names: Vec<String> = dirty
            .iter()
            .map(|i| self.editor.buffers[*i].display_name())
            .collect();
        self.overlay = Some(Overlay::Confirm {
            kind: ConfirmKind::Quit,
            message: format!(
                "Unsaved: {}.  [s]ave all and quit  [d]iscard and quit  [c]ancel",
                names.join(", ")
            ),
        });
    }

    /// Writes unsaved buffers to the recovery folder (on SIGTERM/SIGHUP),
    /// so that a dropped SSH connection loses nothing.
    pub fn save_recovery(&mut self) {
        let dirty = self.editor.dirty_buffers();
        if !dirty.is_empty() {
            let _ = write_recovery(&self.editor, &dirty);
        }
    }

    // ---- find -----------------------------------------------------------

    fn open_find(&mut self, replace: bool) {
        let selected = self
            .editor
            .buffer()
            .and_then(|b| b.selected_text())
            .filter(|s| !s.contains('\n'));
        let mut bar = self.find.take().unwrap_or_default();
        if let Some(s) = selected {
            bar.query.set_selected(&s);
        }
        bar.replace_mode = replace || bar.replace_mode && self.find.is_some();
        bar.on_replace = false;
        let q = bar.query.text().to_string();
        self.find = Some(bar);
        self.update_search(&q, false);
    }

    /// Sets the query and (if `jump`) moves to the first match from the
    /// cursor.
    fn update_search(&mut self, query: &str, jump: bool) {
        let Some(buf) = self.editor.buffer_mut() else {
            return;
        };
        buf.matches.set_query(query);
        buf.matches.ensure(buf.doc.rope());
        if jump {
            let from = buf.selection.start();
            if let Some((s, e)) = buf.matches.next_from(from) {
                buf.selection = Selection { anchor: s, head: e };
            }
        }
    }

    fn find_step(&mut self, forward: bool) {
        let query = self
            .find
            .as_ref()
            .map(|f| f.query.text().to_string())
            .or_else(|| self.editor.buffer().map(|b| b.matches.query().to_string()))
            .unwrap_or_default();
        if query.is_empty() {
            self.open_find(false);
            return;
        }
        let Some(buf) = self.editor.buffer_mut() else {
            return;
        };
        buf.matches.set_query(&query);
        buf.matches.ensure(buf.doc.rope());
        let hit = if forward {
            buf.matches.next_from(buf.selection.start() + 1)
        } else {
            buf.matches.prev_before(buf.selection.start())
        };
        match hit {
            Some((s, e)) => {
                buf.selection = Selection { anchor: s, head: e };
            }
            None => self.notify(Level::Info, format!("no match for '{query}'")),
        }
    }

    fn replace_one(&mut self) {
        let Some(f) = &self.find else { return };
        let replacement = f.replace.text().to_string();
        let Some(buf) = self.editor.buffer_mut() else {
            return;
        };
        buf.matches.ensure(buf.doc.rope());
        let sel = buf.selection;
        let on_match = buf
            .matches
            .ranges()
            .binary_search(&(sel.start(), sel.end()))
            .is_ok();
        if on_match {
            if let Err(e) = buf.insert_text(&replacement, EditKind::Other) {
                self.notify(Level::Warning, e.to_string());
                return;
            }
        }
        self.find_step(true);
    }

    fn replace_all(&mut self) {
        let Some(f) = &self.find else { return };
        let replacement = f.replace.text().to_string();
        match self.editor.replace_all(&replacement) {
            Ok(n) => self.notify(Level::Info, format!("replaced {n} match(es)")),
            Err(e) => self.notify(Level::Warning, e.to_string()),
        }
    }

    /// Keys for the find bar. Returns true when consumed.
    fn find_key(&mut self, key: &KeyEvent) -> bool {
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let shift = key.modifiers.contains(KeyModifiers::SHIFT);
        match key.code {
            KeyCode::Esc => {
                // Closing the bar forgets the query (and its highlights).
                self.run(Command::Escape);
                return true;
            }
            KeyCode::Enter if alt => {
                self.replace_all();
                return true;
            }
            KeyCode::Char('a') if alt => {
                self.replace_all();
                return true;
            }
            KeyCode::Enter => {
                let on_replace = self.find.as_ref().is_some_and(|f| f.on_replace);
                if on_replace {
                    self.replace_one();
                } else {
                    self.find_step(!shift);
                }
                return true;
            }
            KeyCode::Down => {
                self.find_step(true);
                return true;
            }
            KeyCode::Up => {
                self.find_step(false);
                return true;
            }
            KeyCode::Tab | KeyCode::BackTab => {
                if let Some(f) = &mut self.find {
                    if f.replace_mode {
                        f.on_replace = !f.on_replace;
                    }
                }
                return true;
            }
            _ => {}
        }
        let Some(f) = &mut self.find else {
            return false;
        };
        let field = if f.on_replace {
            &mut f.replace
        } else {
            &mut f.query
        };
        match field.handle_key(key) {
            InputOutcome::Changed => {
                if !f.on_replace {
                    let q = f.query.text().to_string();
                    self.update_search(&q, true);
                }
                true
            }
            InputOutcome::Moved => true,
            InputOutcome::Ignored => false,
        }
    }

    // ---- overlays -------------------------------------------------------

    fn open_palette(&mut self) {
        let items = Command::ALL
            .iter()
            .map(|c| {
                let keys = self.keymap.keys_for(*c);
                (
                    c.title().to_string(),
                    keys.first().cloned().unwrap_or_default(),
                )
            })
            .collect();
        self.overlay = Some(Overlay::Palette(Picker::new(items)));
    }

    /// Whether we are a guest in a session (the tree, quick open and
    /// opening files are the host's folder).
    fn in_host_folder(&self) -> bool {
        self.tree.as_ref().is_some_and(|t| t.is_remote())
    }

    /// Guest: the host's file list arrived; shown if quick open is up.
    pub fn set_remote_files(&mut self, paths: Vec<String>) {
        if let Some(Overlay::QuickOpen(p)) = &mut self.overlay {
            if self.tree.as_ref().is_some_and(|t| t.is_remote()) {
                p.all = paths.iter().map(|f| (f.clone(), String::new())).collect();
                p.refilter();
            }
        }
        self.remote_files = Some(paths);
    }

    /// Pulls newly indexed files into an open quick-open list.
    fn refresh_quick_open(&mut self) {
        if self.in_host_folder() {
            return;
        }
        if let (Some(Overlay::QuickOpen(p)), Some(idx)) = (&mut self.overlay, &self.file_index) {
            if idx.len() != p.all.len() {
                p.all = idx
                    .snapshot()
                    .into_iter()
                    .map(|f| (f.to_string(), String::new()))
                    .collect();
                p.refilter();
            }
        }
    }

    fn open_quick_open(&mut self) {
        if self.in_host_folder() {
            // The host's files: the last list at once, a fresh one to come.
            if let Some(core) = &mut self.session {
                core.list_files();
            }
            let items = self
                .remote_files
                .iter()
                .flatten()
                .map(|f| (f.clone(), String::new()))
                .collect();
            self.overlay = Some(Overlay::QuickOpen(Picker::new(items)));
            return;
        }
        if self.file_index.is_none() {
            let idx = FileIndex::spawn(&self.editor.root);
            // Most folders index in a few ms: wait that long so the list is
            // not empty at first; big ones fill in as the user types.
            idx.wait(QUICK_OPEN_FIRST_WAIT);
            self.file_index = Some(idx);
        }
        let files = self
            .file_index
            .as_ref()
            .map(|i| i.snapshot())
            .unwrap_or_default();
        let items = files
            .into_iter()
            .map(|f| (f.to_string(), String::new()))
            .collect();
        self.overlay = Some(Overlay::QuickOpen(Picker::new(items)));
    }

    /// Opens a prompt (for the collaboration glue).
    pub fn open_prompt_pub(&mut self, kind: PromptKind, initial: &str) {
        self.open_prompt(kind, initial);
    }

    /// Shows an error under the open prompt.
    pub fn set_prompt_error(&mut self, message: String) {
        if let Some(Overlay::Prompt { error, .. }) = &mut self.overlay {
            *error = Some(message);
        } else {
            self.notify(Level::Error, message);
        }
    }

    fn participants_key(&mut self, key: KeyEvent, selected: usize) {
        let Some(core) = self.session.as_mut() else {
            return;
        };
        let people = core.participants();
        let n = people.len();
        let selected = selected.min(n.saturating_sub(1));
        let chosen = people.get(selected).cloned();
        let host = core.is_host();
        let mut keep = true;
        let mut selected = selected;
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') => keep = false,
            KeyCode::Up => selected = selected.saturating_sub(1),
            KeyCode::Down => selected = (selected + 1).min(n.saturating_sub(1)),
            KeyCode::Enter | KeyCode::Char('f') => {
                if let Some(p) = &chosen {
                    if p.id != core.my_id() {
                        core.follow(Some(p.id));
                        let name = p.name.clone();
                        self.notify(Level::Info, format!("following {name} (move to stop)"));
                        keep = false;
                    }
                }
            }
            KeyCode::Char('r') if host => {
                if let Some(p) = chosen.filter(|p| !p.is_host) {
                    core.set_read_only(Some(p.id), !p.read_only);
                }
            }
            KeyCode::Char('R') if host => {
                let ro = core.session_read_only();
                core.set_read_only(None, !ro);
            }
            KeyCode::Char('x') | KeyCode::Delete if host => {
                if let Some(p) = chosen.filter(|p| !p.is_host) {
                    core.remove(p.id);
                }
            }
            _ => {}
        }
        if keep {
            self.overlay = Some(Overlay::Participants { selected });
        }
    }

    fn open_prompt(&mut self, kind: PromptKind, initial: &str) {
        self.overlay = Some(Overlay::Prompt {
            kind,
            input: LineInput::with_text(initial),
            error: None,
        });
    }

    fn overlay_key(&mut self, key: KeyEvent) {
        self.refresh_quick_open();
        let Some(overlay) = self.overlay.take() else {
            return;
        };
        match overlay {
            Overlay::Palette(mut p) => match key.code {
                KeyCode::Esc => {}
                KeyCode::Enter => {
                    if let Some(i) = p.current() {
                        if let Some(cmd) = Command::ALL.get(i) {
                            self.run(*cmd);
                        }
                    }
                }
                _ => {
                    picker_key(&mut p, &key);
                    self.overlay = Some(Overlay::Palette(p));
                }
            },
            Overlay::QuickOpen(mut p) => match key.code {
                KeyCode::Esc => {}
                KeyCode::Enter => {
                    if let Some(i) = p.current() {
                        let rel = p.all[i].0.clone();
                        if self.in_host_folder() {
                            self.open_in_host_folder(&rel);
                            return;
                        }
                        match workspace::confine(&self.editor.root, &rel) {
                            Ok(path) => self.open_and_focus(&path),
                            Err(e) => self.notify(Level::Error, e.to_string()),
                        }
                    }
                }
                _ => {
                    picker_key(&mut p, &key);
                    self.overlay = Some(Overlay::QuickOpen(p));
                }
            },
            Overlay::Prompt {
                kind,
                mut input,
                error,
            } => match key.code {
                KeyCode::Esc => {}
                KeyCode::Enter => {
                    let answer = input.text().trim().to_string();
                    if let Err(e) = self.answer_prompt(&kind, &answer) {
                        self.overlay = Some(Overlay::Prompt {
                            kind,
                            input,
                            error: Some(e),
                        });
                    }
                }
                _ => {
                    let error = match input.handle_key(&key) {
                        InputOutcome::Changed => None,
                        _ => error,
                    };
                    self.overlay = Some(Overlay::Prompt { kind, input, error });
                }
            },
            Overlay::Confirm { kind, message } => {
                let c = match key.code {
                    KeyCode::Char(c) => c.to_ascii_lowercase(),
                    KeyCode::Esc => 'c',
                    KeyCode::Enter => 'y',
                    _ => '?',
                };
                if !self.answer_confirm(&kind, c) {
                    self.overlay = Some(Overlay::Confirm { kind, message });
                } else if self.overlay.is_none() {
                    self.show_next_approval();
                }
            }
            // Gets out of the way: any key closes it, and every key but
            // Esc and Enter then does what it does (the next Ctrl+P, or
            // typing, is not lost on a box the user has read).
            Overlay::Info { .. } => {
                if !matches!(key.code, KeyCode::Esc | KeyCode::Enter) {
                    self.handle_key(key);
                }
            }
            Overlay::Participants { selected } => self.participants_key(key, selected),
            Overlay::Help { scroll } => {
                let scroll = match key.code {
                    KeyCode::Esc | KeyCode::Char('q') | KeyCode::Enter | KeyCode::F(2) => return,
                    KeyCode::Down | KeyCode::Char('j') => scroll + 1,
                    KeyCode::Up | KeyCode::Char('k') => scroll.saturating_sub(1),
                    KeyCode::PageDown | KeyCode::Char(' ') => scroll + 10,
                    KeyCode::PageUp => scroll.saturating_sub(10),
                    KeyCode::Home => 0,
                    _ => scroll,
                };
                let max = Command::ALL.len().saturating_sub(1);
                self.overlay = Some(Overlay::Help {
                    scroll: scroll.min(max),
                });
            }
        }
    }

    /// Guest: file operations happen on the host.
    fn remote_tree_op(&mut self, kind: &PromptKind, answer: &str) -> Option<Result<(), String>> {
        if !self.tree.as_ref().is_some_and(|t| t.is_remote()) {
            return None;
        }
        let core = self.session.as_mut()?;
        let under = |dir: &Path| {
            let d = dir.to_string_lossy();
            if dir.is_absolute() || d.is_empty() {
                answer.to_string()
            } else {
                format!("{d}/{answer}")
            }
        };
        match kind {
            PromptKind::NewFile(dir) => core.create(&under(dir), false),
            PromptKind::NewFolder(dir) => core.create(&under(dir), true),
            PromptKind::Rename(from) => {
                let to = match from.parent().map(|p| p.to_string_lossy().into_owned()) {
                    Some(p) if !p.is_empty() => format!("{p}/{answer}"),
                    _ => answer.to_string(),
                };
                core.rename(&from.to_string_lossy(), &to)
            }
            _ => return None,
        }
        Some(Ok(()))
    }

    fn answer_prompt(&mut self, kind: &PromptKind, answer: &str) -> Result<(), String> {
        if !answer.is_empty() {
            if let Some(r) = self.remote_tree_op(kind, answer) {
                return r;
            }
        }
        if let PromptKind::Join = kind {
            if answer.is_empty() {
                return Err("paste the invite link (Esc cancels)".into());
            }
            crate::net::InviteLink::from_str(answer).map_err(|e| e.to_string())?;
            self.begin(Intent::Join(answer.to_string()));
            return Ok(());
        }
        if let PromptKind::DisplayName(intent) = kind {
            return self.set_display_name(answer, intent.clone());
        }
        if answer.is_empty() && *kind != PromptKind::GotoLine {
            return Err("please type a name (Esc cancels)".into());
        }
        let root = self.editor.root.clone();
        match kind {
            PromptKind::GotoLine => {
                if answer.is_empty() {
                    return Ok(());
                }
                let mut parts = answer.splitn(2, [':', ',']);
                let line = parts
                    .next()
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .ok_or_else(|| format!("'{answer}' is not a line number"))?;
                let col = match parts.next() {
                    Some(c) => Some(
                        c.trim()
                            .parse::<usize>()
                            .map_err(|_| format!("'{c}' is not a column number"))?,
                    ),
                    None => None,
                };
                self.with_buffer(|b| b.goto_line(line, col));
                self.focus = Focus::Editor;
                Ok(())
            }
            PromptKind::SaveAs => {
                let path = if Path::new(answer).is_absolute() {
                    PathBuf::from(answer)
                } else {
                    root.join(answer)
                };
                if path.exists() {
                    return Err(format!("{answer} already exists"));
                }
                let Some(buf) = self.editor.buffer_mut() else {
                    return Ok(());
                };
                buf.set_path(&path);
                self.save_active();
                self.refresh_tree();
                Ok(())
            }
            PromptKind::NewFile(dir) => {
                let rel = join_rel(&root, dir, answer);
                let path = workspace::create_file(&root, &rel).map_err(|e| e.to_string())?;
                self.refresh_tree_and_reveal(&path);
                self.open_and_focus(&path);
                Ok(())
            }
            PromptKind::NewFolder(dir) => {
                let rel = join_rel(&root, dir, answer);
                let path = workspace::create_dir(&root, &rel).map_err(|e| e.to_string())?;
                self.refresh_tree_and_reveal(&path);
                Ok(())
            }
            PromptKind::Join | PromptKind::DisplayName(_) => Ok(()),
            PromptKind::Rename(from) => {
                let from_rel = workspace::relative(&root, from)
                    .ok_or_else(|| "that path is outside the folder".to_string())?;
                let parent = from.parent().unwrap_or(&root).to_path_buf();
                let to_rel = join_rel(&root, &parent, answer);
                let to = workspace::rename(&root, &from_rel, &to_rel).map_err(|e| e.to_string())?;
                self.editor.on_path_renamed(from, &to);
                if let Some(core) = self.session.as_mut() {
                    // Shared documents under it follow, at the guests too.
                    let mut store = crate::editor::collab::EditorStore::new(&mut self.editor);
                    core.renamed_here(&from_rel, &to_rel, &mut store);
                }
                self.refresh_tree_and_reveal(&to);
                Ok(())
            }
        }
    }

    /// Returns true when the answer closed the question.
    fn answer_confirm(&mut self, kind: &ConfirmKind, c: char) -> bool {
        match kind {
            ConfirmKind::CloseBuffer(id) => {
                let Some(idx) = self.editor.buffers.iter().position(|b| b.id == *id) else {
                    return true;
                };
                match c {
                    's' | 'y' => {
                        self.editor.active = Some(idx);
                        self.save_active();
                        if !self.editor.buffers[idx].is_dirty() {
                            self.editor.close(idx);
                        }
                        true
                    }
                    'd' | 'n' => {
                        self.editor.close(idx);
                        true
                    }
                    'c' => true,
                    _ => false,
                }
            }
            ConfirmKind::Quit => match c {
                's' | 'y' => {
                    for i in self.editor.dirty_buffers() {
                        self.editor.active = Some(i);
                        self.save_active();
                    }
                    if self.editor.dirty_buffers().is_empty() {
                        self.should_quit = true;
                    }
                    true
                }
                'd' => {
                    self.should_quit = true;
                    true
                }
                'c' | 'n' => true,
                _ => false,
            },
            ConfirmKind::Approve(pending) => {
                let shown = self.approval_shown.map(|t| t.elapsed());
                let Some(accept) = approval_answer(c, shown) else {
                    return false;
                };
                if let Some(s) = &mut self.session {
                    s.approve(*pending, accept);
                }
                true
            }
            ConfirmKind::Delete(path) => match c {
                'y' if self.tree.as_ref().is_some_and(|t| t.is_remote()) => {
                    if let Some(core) = &mut self.session {
                        core.delete(&path.to_string_lossy());
                    }
                    true
                }
                'y' => {
                    let root = self.editor.root.clone();
                    match workspace::relative(&root, path) {
                        Some(rel) => match workspace::delete(&root, &rel) {
                            Ok(()) => {
                                self.notify(Level::Info, format!("deleted {rel}"));
                                self.refresh_tree();
                                self.clamp_tree_selection();
                            }
                            Err(e) => self.notify(Level::Error, e.to_string()),
                        },
                        None => self.notify(Level::Error, "that path is outside the folder"),
                    }
                    true
                }
                'n' | 'c' => true,
                _ => false,
            },
        }
    }

    // ---- tree -----------------------------------------------------------

    fn tree_selected_path(&self) -> Option<PathBuf> {
        let tree = self.tree.as_ref()?;
        tree.visible()
            .get(self.tree_selected)
            .map(|r| r.path.clone())
    }

    /// The folder new files go in: the selected folder, or the selected
    /// file's folder, or the root.
    fn tree_target_dir(&self) -> PathBuf {
        let Some(tree) = self.tree.as_ref() else {
            return self.editor.root.clone();
        };
        match tree.visible().get(self.tree_selected) {
            Some(r) if r.is_dir => r.path.clone(),
            Some(r) => r
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.editor.root.clone()),
            None => self.editor.root.clone(),
        }
    }

    fn refresh_tree(&mut self) {
        let r = match &mut self.tree {
            Some(t) => t.refresh(),
            None => Ok(()),
        };
        if let Err(e) = r {
            self.notify(Level::Error, e.to_string());
        }
    }

    fn notices_error(&mut self, text: String) {
        self.notify(Level::Error, text);
    }

    fn clamp_tree_selection(&mut self) {
        let n = self.tree.as_ref().map(|t| t.visible().len()).unwrap_or(0);
        self.tree_selected = self.tree_selected.min(n.saturating_sub(1));
    }

    fn refresh_tree_and_reveal(&mut self, path: &Path) {
        self.refresh_tree();
        if let Some(t) = &mut self.tree {
            if let Some(i) = t.reveal(path) {
                self.tree_selected = i;
            }
        }
        self.clamp_tree_selection();
    }

    fn reveal_active(&mut self) {
        let Some(path) = self.editor.buffer().and_then(|b| b.path.clone()) else {
            return;
        };
        let Some(tree) = self.tree.as_mut() else {
            return;
        };
        match tree.reveal(&path) {
            Some(i) => {
                self.tree_selected = i;
                self.tree_visible = true;
                self.focus = Focus::Tree;
            }
            None => self.notify(Level::Info, "the current file is not in the tree"),
        }
    }

    fn tree_activate(&mut self, idx: usize) {
        let Some(tree) = self.tree.as_mut() else {
            return;
        };
        let Some(row) = tree.visible().get(idx).cloned() else {
            return;
        };
        self.tree_selected = idx;
        if row.is_dir {
            let toggled = tree.toggle(idx);
            let reqs = tree.take_requests();
            if let Err(e) = toggled {
                self.notify(Level::Error, e.to_string());
            }
            if let Some(core) = &mut self.session {
                for r in reqs {
                    core.list_dir(&r);
                }
            }
        } else if tree.is_remote() {
            let rel = row.path.to_string_lossy().into_owned();
            self.open_in_host_folder(&rel);
        } else {
            self.open_and_focus(&row.path);
        }
    }

    /// Guest: shows the host's file `rel`, asking the host for it if it is
    /// not open here yet.
    fn open_in_host_folder(&mut self, rel: &str) {
        match self.editor.find_shared(rel) {
            Some(i) => {
                self.editor.buffers[i].hidden = false;
                self.editor.active = Some(i);
                self.focus = Focus::Editor;
            }
            None => {
                if let Some(core) = &mut self.session {
                    core.open(rel);
                }
            }
        }
    }

    /// Keys while the tree has focus. Returns true when consumed.
    fn tree_key(&mut self, key: &KeyEvent) -> bool {
        let n = self.tree.as_ref().map(|t| t.visible().len()).unwrap_or(0);
        let page = (self.layout.tree.height as usize).max(1);
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        if ctrl || alt {
            return false;
        }
        match key.code {
            KeyCode::Up => self.tree_selected = self.tree_selected.saturating_sub(1),
            KeyCode::Down => self.tree_selected = (self.tree_selected + 1).min(n.saturating_sub(1)),
            KeyCode::PageUp => self.tree_selected = self.tree_selected.saturating_sub(page),
            KeyCode::PageDown => {
                self.tree_selected = (self.tree_selected + page).min(n.saturating_sub(1))
            }
            KeyCode::Home => self.tree_selected = 0,
            KeyCode::End => self.tree_selected = n.saturating_sub(1),
            KeyCode::Enter | KeyCode::Char(' ') => self.tree_activate(self.tree_selected),
            KeyCode::Right => {
                let sel = self.tree_selected;
                if let Some(t) = self.tree.as_mut() {
                    match t.visible().get(sel) {
                        Some(r) if r.is_dir && !r.expanded => {
                            if let Err(e) = t.expand(sel) {
                                self.notices_error(e.to_string());
                            }
                        }
                        Some(r) if r.is_dir => {
                            self.tree_selected = (sel + 1).min(t.visible().len().saturating_sub(1))
                        }
                        Some(_) => self.tree_activate(sel),
                        None => {}
                    }
                }
            }
            KeyCode::Left => {
                let sel = self.tree_selected;
                if let Some(t) = self.tree.as_mut() {
                    if let Some(r) = t.visible().get(sel).cloned() {
                        if r.is_dir && r.expanded {
                            t.collapse(sel);
                        } else if r.depth > 0 {
                            // Jump to the parent folder.
                            if let Some(p) =
                                (0..sel).rev().find(|i| t.visible()[*i].depth < r.depth)
                            {
                                self.tree_selected = p;
                            }
                        }
                    }
                }
            }
            KeyCode::Char('a') | KeyCode::Char('n') => self.run(Command::TreeNewFile),
            KeyCode::Char('A') | KeyCode::Char('N') => self.run(Command::TreeNewFolder),
            KeyCode::Char('r') => self.run(Command::TreeRename),
            KeyCode::Char('d') | KeyCode::Delete => self.run(Command::TreeDelete),
            KeyCode::Char('R') => self.run(Command::RefreshTree),
            KeyCode::Esc => {
                if self.editor.buffer().is_some() {
                    self.focus = Focus::Editor;
                }
            }
            KeyCode::Tab => self.focus = Focus::Editor,
            _ => return false,
        }
        true
    }

    // ---- mouse ----------------------------------------------------------

    fn handle_mouse(&mut self, m: MouseEvent) {
        if !self.editor.config.mouse || self.overlay.is_some() {
            return;
        }
        let (x, y) = (m.column, m.row);
        let in_rect = |r: Rect| {
            x >= r.x
                && x < r.x.saturating_add(r.width)
                && y >= r.y
                && y < r.y.saturating_add(r.height)
        };
        match m.kind {
            MouseEventKind::ScrollDown | MouseEventKind::ScrollUp => {
                let down = matches!(m.kind, MouseEventKind::ScrollDown);
                if self.tree_visible && in_rect(self.layout.tree) {
                    let n = self.tree.as_ref().map(|t| t.visible().len()).unwrap_or(0);
                    self.tree_scroll = if down {
                        (self.tree_scroll + WHEEL_LINES).min(n.saturating_sub(1))
                    } else {
                        self.tree_scroll.saturating_sub(WHEEL_LINES)
                    };
                } else if let Some(b) = self.editor.buffer_mut() {
                    let last = b.rope().len_lines().saturating_sub(1);
                    b.view.top_line = if down {
                        (b.view.top_line + WHEEL_LINES).min(last)
                    } else {
                        b.view.top_line.saturating_sub(WHEEL_LINES)
                    };
                    b.view.scrolled_by_user = true;
                }
            }
            MouseEventKind::Down(MouseButton::Left) => {
                if y == self.layout.tabs_y {
                    if let Some((_, _, i)) =
                        self.layout.tabs.iter().find(|(a, b, _)| x >= *a && x < *b)
                    {
                        self.editor.active = Some(*i);
                        self.focus = Focus::Editor;
                    }
                    return;
                }
                if self.tree_visible && in_rect(self.layout.tree) {
                    let idx = self.tree_scroll + (y - self.layout.tree.y) as usize;
                    self.focus = Focus::Tree;
                    self.tree_activate(idx);
                    if self
                        .tree
                        .as_ref()
                        .is_some_and(|t| t.visible().get(idx).is_some_and(|r| !r.is_dir))
                    {
                        self.focus = Focus::Editor;
                    }
                    return;
                }
                if let Some(pos) = self.pos_at(x, y) {
                    self.focus = Focus::Editor;
                    if m.modifiers.contains(KeyModifiers::CONTROL) {
                        // Ctrl+click: follow the link there.
                        if let Some(b) = self.editor.buffer_mut() {
                            b.move_to(pos, false);
                        }
                        self.open_link_under_cursor();
                        return;
                    }
                    let now = Instant::now();
                    let double = self
                        .last_click
                        .is_some_and(|(t, lx, ly)| now - t < DOUBLE_CLICK && lx == x && ly == y);
                    self.last_click = Some((now, x, y));
                    let extend = m.modifiers.contains(KeyModifiers::SHIFT);
                    if let Some(b) = self.editor.buffer_mut() {
                        if double {
                            let rope = b.rope();
                            let start =
                                text::prev_word_boundary(rope, (pos + 1).min(rope.len_chars()));
                            let end = word_end(rope, pos);
                            b.selection = Selection {
                                anchor: start.min(pos),
                                head: end,
                            };
                        } else {
                            b.move_to(pos, extend);
                        }
                        b.view.scrolled_by_user = false;
                        self.drag_anchor = Some(b.selection.anchor);
                    }
                }
            }
            MouseEventKind::Drag(MouseButton::Left) if self.drag_anchor.is_some() => {
                {
                    // Dragging past the edge scrolls.
                    let t = self.layout.text;
                    if y < t.y {
                        if let Some(b) = self.editor.buffer_mut() {
                            b.view.top_line = b.view.top_line.saturating_sub(1);
                        }
                    }
                    let yy = y.clamp(t.y, t.y + t.height.saturating_sub(1));
                    let xx = x.max(t.x);
                    if let Some(pos) = self.pos_at(xx, yy) {
                        if let Some(b) = self.editor.buffer_mut() {
                            b.move_to(pos, true);
                            b.view.scrolled_by_user = false;
                        }
                    }
                }
            }
            MouseEventKind::Up(MouseButton::Left) => self.drag_anchor = None,
            _ => {}
        }
    }

    /// The char position under screen cell (x, y) in the text area.
    fn pos_at(&self, x: u16, y: u16) -> Option<usize> {
        let t = self.layout.text;
        if y < t.y || y >= t.y + t.height || x < t.x.saturating_sub(8) {
            return None;
        }
        let buf = self.editor.buffer()?;
        let row = (y - t.y) as usize;
        let rope = buf.rope();
        match self.layout.rows.get(row).copied().flatten() {
            Some((line, start_col)) => {
                let col = start_col + x.saturating_sub(t.x) as usize;
                Some(text::char_at_visual_col(rope, line, col, buf.tab_width))
            }
            // Below the last line: the end of the text.
            None => Some(rope.len_chars()),
        }
    }

    /// The current file index (for tests).
    pub fn has_file_index(&self) -> bool {
        self.file_index.is_some()
    }
}

fn is_editor_command(cmd: Command) -> bool {
    !matches!(
        cmd,
        Command::CommandPalette | Command::Help | Command::QuickOpen | Command::Quit
    )
}

fn word_end(rope: &ropey::Rope, pos: usize) -> usize {
    let len = rope.len_chars();
    if pos >= len {
        return len;
    }
    let class = text::char_class(rope.char(pos));
    let mut i = pos;
    while i < len && text::char_class(rope.char(i)) == class {
        i += 1;
    }
    i
}

fn picker_key(p: &mut Picker, key: &KeyEvent) {
    match key.code {
        KeyCode::Up => p.move_sel(-1),
        KeyCode::Down => p.move_sel(1),
        KeyCode::PageUp => p.move_sel(-10),
        KeyCode::PageDown => p.move_sel(10),
        KeyCode::Tab => p.move_sel(1),
        KeyCode::BackTab => p.move_sel(-1),
        _ => {
            if p.input.handle_key(key) == InputOutcome::Changed {
                p.selected = 0;
                p.refilter();
            }
        }
    }
}

/// `answer` relative to the root, placed in `dir`.
fn join_rel(root: &Path, dir: &Path, answer: &str) -> String {
    let base = workspace::relative(root, dir).unwrap_or_default();
    if base.is_empty() {
        answer.to_string()
    } else {
        format!("{base}/{answer}")
    }
}

/// A short human description of an I/O error.
pub fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Writes buffers `which` of `editor` to the recovery folder (named after
/// the buffer, the time and this process); returns the folder.
pub fn write_recovery(editor: &Editor, which: &[usize]) -> Result<PathBuf, String> {
    let dir = recovery_dir().ok_or("no home folder for the recovery folder")?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for &i in which {
        let Some(buf) = editor.buffers.get(i) else {
            continue;
        };
        // A host file's shared path, flattened, says where it came from.
        let label = buf
            .shared_path
            .as_deref()
            .map(|p| p.replace('/', "_"))
            .unwrap_or_else(|| buf.display_name());
        let name = format!("{label}.{stamp}.{}", std::process::id());
        workspace::save_atomic(&dir.join(name), buf.rope()).map_err(|e| e.to_string())?;
    }
    Ok(dir)
}

/// Where unsaved work goes on SIGTERM / SIGHUP, and a guest's copies of
/// the host's files when a session ends under it.
pub fn recovery_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "lshed").map(|d| {
        d.state_dir()
            .unwrap_or_else(|| d.data_local_dir())
            .join("recovery")
    })
}

/// Keys typed this soon after a join request appears are not taken as an
/// answer: someone typing at that moment would otherwise let a stranger in
/// (or turn a colleague away) with whatever key came next.
pub const APPROVAL_GRACE: std::time::Duration = std::time::Duration::from_millis(700);

/// The answer to a join request that key `c` gives, `shown` after the
/// request appeared: `a` accepts, `r` or Esc rejects, only after
/// [`APPROVAL_GRACE`]; anything else (Enter and `y` included) is no answer.
pub fn approval_answer(c: char, shown: Option<std::time::Duration>) -> Option<bool> {
    if shown.is_some_and(|d| d < APPROVAL_GRACE) {
        return None;
    }
    match c {
        'a' => Some(true),
        // Esc arrives as 'c' (see the Confirm overlay's key handling).
        'r' | 'c' => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod approval_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_deliberate_keys_answer_a_join_request() {
        let later = Some(APPROVAL_GRACE + Duration::from_millis(1));
        assert_eq!(approval_answer('a', later), Some(true));
        assert_eq!(approval_answer('r', later), Some(false));
        assert_eq!(approval_answer('c', later), Some(false));
        for c in ['y', 'n', 'x', ' ', '?'] {
            assert_eq!(approval_answer(c, later), None, "{c:?}");
        }
        // Typing when it pops up answers nothing.
        let at_once = Some(Duration::from_millis(50));
        assert_eq!(approval_answer('a', at_once), None);
        assert_eq!(approval_answer('r', at_once), None);
    }
}
