//! Editor state: the open buffers, which one is active, the internal
//! clipboard register, and the operations on them that do not need a
//! terminal (open, close, save, replace all). Everything here can be driven
//! from tests without a screen.
//!
//! May depend on: doc, workspace, config, session. Not on tui,
//! ratatui or crossterm.

pub mod buffer;
pub mod collab;
pub mod command;
pub mod find;
pub mod syntax;
pub mod text;

use std::path::{Path, PathBuf};

pub use buffer::{Buffer, BufferId, EditError, EditKind, RemoteCursor, Selection};
pub use command::Command;

use crate::config::Config;
use crate::doc::Change;
use crate::workspace;

/// The editor: open buffers and shared state.
#[derive(Debug)]
pub struct Editor {
    /// The folder lshed was opened on (a file's parent for a single file).
    pub root: PathBuf,
    /// Open buffers, in tab order.
    pub buffers: Vec<Buffer>,
    /// Index of the active buffer.
    pub active: Option<usize>,
    /// Settings.
    pub config: Config,
    /// Internal clipboard: always holds the last copy.
    pub register: String,
    next_id: BufferId,
}

impl Editor {
    /// An editor on `root` with no buffers.
    pub fn new(root: PathBuf, config: Config) -> Self {
        Self {
            root,
            buffers: Vec::new(),
            active: None,
            config,
            register: String::new(),
            next_id: 1,
        }
    }

    /// A fresh buffer id.
    pub fn alloc_buffer_id(&mut self) -> BufferId {
        self.alloc_id()
    }

    fn alloc_id(&mut self) -> BufferId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The active buffer.
    pub fn buffer(&self) -> Option<&Buffer> {
        self.active.and_then(|i| self.buffers.get(i))
    }

    /// The active buffer, mutably.
    pub fn buffer_mut(&mut self) -> Option<&mut Buffer> {
        self.active.and_then(|i| self.buffers.get_mut(i))
    }

    /// Index of the buffer showing `path`, if open.
    pub fn find_open(&self, path: &Path) -> Option<usize> {
        let canon = std::fs::canonicalize(path).ok();
        self.buffers.iter().position(|b| match &b.path {
            Some(p) => p == path || (canon.is_some() && std::fs::canonicalize(p).ok() == canon),
            None => false,
        })
    }

    /// Opens `path` (or switches to it if already open). Returns a notice
    /// for the user when the file opened read-only.
    pub fn open(&mut self, path: &Path) -> Result<Option<String>, String> {
        if let Some(i) = self.find_open(path) {
            self.buffers[i].hidden = false;
            self.active = Some(i);
            return Ok(None);
        }
        let loaded = workspace::load_file(path).map_err(|e| e.to_string())?;
        let id = self.alloc_id();
        let buffer = Buffer::from_loaded(
            id,
            path.to_path_buf(),
            loaded,
            self.config.tab_width,
            self.config.insert_spaces,
        );
        let notice = buffer
            .read_only
            .as_ref()
            .map(|r| format!("{}: {r}", buffer.display_name()));
        self.buffers.push(buffer);
        self.active = Some(self.buffers.len() - 1);
        Ok(notice)
    }

    /// Opens a new, empty, unnamed buffer.
    pub fn new_scratch(&mut self) {
        let id = self.alloc_id();
        self.buffers
            .push(Buffer::scratch(id, self.config.tab_width.max(1)));
        self.active = Some(self.buffers.len() - 1);
    }

    /// Closes buffer `idx` without asking (the UI asks first).
    ///
    /// A buffer a collaborator still uses stays in memory, hidden.
    pub fn close(&mut self, idx: usize) {
        let keep = self
            .buffers
            .get(idx)
            .is_some_and(|b| b.shared_path.is_some() && b.doc.is_shared() && b.path.is_some());
        self.close_inner(idx, keep);
    }

    /// Closes buffer `idx` and forgets it, shared or not (a guest closing
    /// one of the host's files).
    pub fn discard(&mut self, idx: usize) {
        self.close_inner(idx, false);
    }

    fn close_inner(&mut self, idx: usize, keep: bool) {
        if idx >= self.buffers.len() {
            return;
        }
        if keep {
            self.buffers[idx].hidden = true;
        } else {
            self.buffers.remove(idx);
        }
        self.active = match self.active {
            Some(a) if a == idx => (0..idx.min(self.buffers.len()))
                .rev()
                .find(|i| !self.buffers[*i].hidden)
                .or_else(|| self.visible_buffers().next()),
            Some(a) if a > idx && !keep => Some(a - 1),
            other => other,
        };
    }

    /// Next tab, wrapping (hidden buffers are skipped).
    pub fn next_buffer(&mut self) {
        self.step_buffer(1);
    }

    /// Previous tab, wrapping.
    pub fn previous_buffer(&mut self) {
        self.step_buffer(-1);
    }

    fn step_buffer(&mut self, dir: isize) {
        let Some(a) = self.active else { return };
        let n = self.buffers.len() as isize;
        let mut i = a as isize;
        for _ in 0..n {
            i = (i + dir).rem_euclid(n);
            if !self.buffers[i as usize].hidden {
                self.active = Some(i as usize);
                return;
            }
        }
    }

    /// Indices of the buffers shown as tabs.
    pub fn visible_buffers(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.buffers.len()).filter(|i| !self.buffers[*i].hidden)
    }

    /// The buffer belonging to session path `path`.
    pub fn find_shared(&self, path: &str) -> Option<usize> {
        self.buffers
            .iter()
            .position(|b| b.shared_path.as_deref() == Some(path))
    }

    /// Indices of buffers with unsaved changes.
    pub fn dirty_buffers(&self) -> Vec<usize> {
        (0..self.buffers.len())
            .filter(|i| self.buffers[*i].is_dirty())
            .collect()
    }

    /// Replaces every match of the active buffer's query with
    /// `replacement`, as one undo step. Returns how many were replaced.
    pub fn replace_all(&mut self, replacement: &str) -> Result<usize, EditError> {
        let Some(buf) = self.buffer_mut() else {
            return Ok(0);
        };
        buf.matches.ensure(buf.doc.rope());
        let ranges: Vec<(usize, usize)> = buf.matches.ranges().to_vec();
        if ranges.is_empty() {
            return Ok(0);
        }
        // Back to front, so earlier ranges keep their indices.
        let changes: Vec<Change> = ranges
            .iter()
            .rev()
            .map(|(s, e)| Change::replace(*s, *e, replacement))
            .collect();
        let n = changes.len();
        buf.apply(&changes, EditKind::Other, None)?;
        Ok(n)
    }

    /// A file or folder moved on disk: point open buffers at the new path.
    pub fn on_path_renamed(&mut self, from: &Path, to: &Path) {
        for b in &mut self.buffers {
            if let Some(p) = b.path.clone() {
                if let Ok(rest) = p.strip_prefix(from) {
                    let np = if rest.as_os_str().is_empty() {
                        to.to_path_buf()
                    } else {
                        to.join(rest)
                    };
                    b.set_path(&np);
                }
            }
        }
    }

    /// Path of the active buffer relative to the root, for display.
    pub fn relative_name(&self, buf: &Buffer) -> String {
        match (&buf.path, &buf.shared_path) {
            (Some(p), _) => {
                workspace::relative(&self.root, p).unwrap_or_else(|| p.display().to_string())
            }
            (None, Some(shared)) => shared.clone(),
            (None, None) => "untitled".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_switch_close() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        let b = dir.path().join("b.txt");
        std::fs::write(&a, "A").unwrap();
        std::fs::write(&b, "B").unwrap();
        let mut ed = Editor::new(dir.path().to_path_buf(), Config::default());
        ed.open(&a).unwrap();
        ed.open(&b).unwrap();
        assert_eq!(ed.active, Some(1));
        ed.open(&a).unwrap();
        assert_eq!(ed.active, Some(0));
        assert_eq!(ed.buffers.len(), 2);
        ed.close(0);
        assert_eq!(ed.buffer().unwrap().rope().to_string(), "B");
        assert!(ed.open(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn replace_all_is_one_undo_step() {
        let mut ed = Editor::new(PathBuf::from("."), Config::default());
        ed.new_scratch();
        let b = ed.buffer_mut().unwrap();
        b.insert_text("a-b-c", EditKind::Other).unwrap();
        b.matches.set_query("-");
        assert_eq!(ed.replace_all("+").unwrap(), 2);
        let b = ed.buffer_mut().unwrap();
        assert_eq!(b.rope().to_string(), "a+b+c");
        b.undo().unwrap();
        assert_eq!(b.rope().to_string(), "a-b-c");
    }
}
