//! The tree pane's model: the local folder ([`FileTree`]) or, for a guest,
//! the host's folder as far as it has been listed ([`RemoteTree`]). Both
//! give the same rows, so drawing and keys are shared.

use std::path::{Path, PathBuf};

use crate::session::DirEntry;
use crate::workspace::{FileTree, TreeRow, WorkspaceError};

/// How the session names the shared folder itself.
pub const ROOT: &str = ".";

/// The host's folder, listed on demand through the session.
#[derive(Debug, Default)]
pub struct RemoteTree {
    rows: Vec<TreeRow>,
    /// Folders whose listing was asked for and not yet received.
    pub requests: Vec<String>,
}

impl RemoteTree {
    /// An empty tree; the root listing is requested.
    pub fn new() -> Self {
        Self {
            rows: Vec::new(),
            requests: vec![ROOT.to_string()],
        }
    }

    fn rel(row: &TreeRow) -> String {
        row.path.to_string_lossy().into_owned()
    }

    /// A listing of `dir` ("." = root) arrived.
    pub fn set_listing(&mut self, dir: &str, entries: &[DirEntry]) {
        let dir = if dir == ROOT { "" } else { dir };
        let mut sorted: Vec<&DirEntry> = entries.iter().collect();
        sorted.sort_by(|a, b| {
            b.is_dir
                .cmp(&a.is_dir)
                .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
        });
        let (insert_at, depth) = if dir.is_empty() {
            self.rows.clear();
            (0, 0)
        } else {
            let Some(i) = self.rows.iter().position(|r| Self::rel(r) == dir) else {
                return;
            };
            if !self.rows[i].expanded {
                return;
            }
            // Replace whatever was listed under it before.
            let d = self.rows[i].depth;
            let end = self.rows[i + 1..]
                .iter()
                .position(|r| r.depth <= d)
                .map(|p| i + 1 + p)
                .unwrap_or(self.rows.len());
            self.rows.drain(i + 1..end);
            (i + 1, d + 1)
        };
        let new_rows = sorted.into_iter().map(|e| {
            let rel = if dir.is_empty() {
                e.name.clone()
            } else {
                format!("{dir}/{}", e.name)
            };
            TreeRow {
                depth,
                name: e.name.clone(),
                path: PathBuf::from(rel),
                is_dir: e.is_dir,
                expanded: false,
                is_symlink: false,
            }
        });
        self.rows.splice(insert_at..insert_at, new_rows);
    }

    fn toggle(&mut self, idx: usize) {
        let Some(row) = self.rows.get(idx) else {
            return;
        };
        if !row.is_dir {
            return;
        }
        if row.expanded {
            self.collapse(idx);
        } else {
            self.rows[idx].expanded = true;
            let rel = Self::rel(&self.rows[idx]);
            self.requests.push(rel);
        }
    }

    fn collapse(&mut self, idx: usize) {
        let Some(row) = self.rows.get_mut(idx) else {
            return;
        };
        if !row.expanded {
            return;
        }
        row.expanded = false;
        let d = row.depth;
        let end = self.rows[idx + 1..]
            .iter()
            .position(|r| r.depth <= d)
            .map(|p| idx + 1 + p)
            .unwrap_or(self.rows.len());
        self.rows.drain(idx + 1..end);
    }

    fn refresh(&mut self) {
        self.requests.push(ROOT.to_string());
        for r in &self.rows {
            if r.expanded {
                self.requests.push(Self::rel(r));
            }
        }
    }
}

/// The tree pane's content.
#[derive(Debug)]
pub enum TreePane {
    /// The local folder.
    Local(FileTree),
    /// The host's folder (guest).
    Remote(RemoteTree),
}

impl TreePane {
    /// Rows as shown.
    pub fn visible(&self) -> &[TreeRow] {
        match self {
            TreePane::Local(t) => t.visible(),
            TreePane::Remote(t) => &t.rows,
        }
    }

    /// Opens or closes a folder row.
    pub fn toggle(&mut self, idx: usize) -> Result<bool, WorkspaceError> {
        match self {
            TreePane::Local(t) => t.toggle(idx),
            TreePane::Remote(t) => {
                t.toggle(idx);
                Ok(true)
            }
        }
    }

    /// Opens a folder row.
    pub fn expand(&mut self, idx: usize) -> Result<bool, WorkspaceError> {
        match self {
            TreePane::Local(t) => t.expand(idx),
            TreePane::Remote(t) => {
                if t.rows.get(idx).is_some_and(|r| r.is_dir && !r.expanded) {
                    t.toggle(idx);
                }
                Ok(true)
            }
        }
    }

    /// Closes a folder row.
    pub fn collapse(&mut self, idx: usize) -> bool {
        match self {
            TreePane::Local(t) => t.collapse(idx),
            TreePane::Remote(t) => {
                t.collapse(idx);
                true
            }
        }
    }

    /// Re-reads the folder (asks the host again, for a guest).
    pub fn refresh(&mut self) -> Result<(), WorkspaceError> {
        match self {
            TreePane::Local(t) => t.refresh(),
            TreePane::Remote(t) => {
                t.refresh();
                Ok(())
            }
        }
    }

    /// Shows `path` (expanding its folders) and returns its row.
    pub fn reveal(&mut self, path: &Path) -> Option<usize> {
        match self {
            TreePane::Local(t) => t.reveal(path),
            TreePane::Remote(t) => t.rows.iter().position(|r| r.path == path),
        }
    }

    /// Listing requests to send to the host (guest only).
    pub fn take_requests(&mut self) -> Vec<String> {
        match self {
            TreePane::Local(_) => Vec::new(),
            TreePane::Remote(t) => std::mem::take(&mut t.requests),
        }
    }

    /// Whether this is the host's folder.
    pub fn is_remote(&self) -> bool {
        matches!(self, TreePane::Remote(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, is_dir: bool) -> DirEntry {
        DirEntry {
            name: name.into(),
            is_dir,
        }
    }

    #[test]
    fn listings_fill_the_remote_tree() {
        let mut t = RemoteTree::new();
        assert_eq!(t.requests, vec![ROOT.to_string()]);
        t.requests.clear();
        t.set_listing(".", &[e("b.txt", false), e("src", true), e("a.txt", false)]);
        let names: Vec<_> = t.rows.iter().map(|r| r.name.clone()).collect();
        assert_eq!(names, ["src", "a.txt", "b.txt"]);
        t.toggle(0);
        assert_eq!(t.requests, vec!["src".to_string()]);
        t.set_listing("src", &[e("main.rs", false)]);
        assert_eq!(t.rows[1].path, PathBuf::from("src/main.rs"));
        assert_eq!(t.rows[1].depth, 1);
        t.collapse(0);
        assert_eq!(t.rows.len(), 3);
    }
}
