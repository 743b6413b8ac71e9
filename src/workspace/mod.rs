//! The folder on disk: loading and saving files, listing the tree,
//! creating / renaming / deleting, and confining paths to the opened root.
//!
//! May depend on: std, ignore, nucleo-matcher. No terminal, no async.
//! (Temporary minimal version; the full module lands from `workspace`.)
#![allow(missing_docs)]

use ropey::Rope;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEnding {
    #[default]
    Lf,
    Crlf,
}

impl LineEnding {
    pub fn as_str(&self) -> &'static str {
        match self {
            LineEnding::Lf => "\n",
            LineEnding::Crlf => "\r\n",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOnlyReason {
    Binary,
    NotUtf8,
    NoWritePermission,
}

impl ReadOnlyReason {
    pub fn message(&self) -> String {
        match self {
            ReadOnlyReason::Binary => "binary file: shown as hex, read-only".into(),
            ReadOnlyReason::NotUtf8 => "not valid UTF-8: shown read-only".into(),
            ReadOnlyReason::NoWritePermission => "no write permission: read-only".into(),
        }
    }
}

pub struct LoadedFile {
    pub rope: Rope,
    pub line_ending: LineEnding,
    pub read_only: Option<ReadOnlyReason>,
    pub size: u64,
    pub mtime: Option<SystemTime>,
}

pub fn load_file(path: &Path) -> Result<LoadedFile, WorkspaceError> {
    let bytes = std::fs::read(path).map_err(|source| WorkspaceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (text, ro) = match String::from_utf8(bytes) {
        Ok(s) => (s, None),
        Err(e) => (
            String::from_utf8_lossy(e.as_bytes()).into_owned(),
            Some(ReadOnlyReason::NotUtf8),
        ),
    };
    let line_ending = if text.contains("\r\n") {
        LineEnding::Crlf
    } else {
        LineEnding::Lf
    };
    Ok(LoadedFile {
        size: text.len() as u64,
        rope: Rope::from_str(&text),
        line_ending,
        read_only: ro,
        mtime: None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved,
    Recreated,
}

pub fn save_atomic(path: &Path, rope: &Rope) -> Result<SaveOutcome, WorkspaceError> {
    std::fs::write(path, rope.to_string()).map_err(|source| WorkspaceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(SaveOutcome::Saved)
}

#[derive(Debug, Clone)]
pub struct TreeRow {
    pub depth: usize,
    pub name: String,
    pub path: PathBuf,
    pub is_dir: bool,
    pub expanded: bool,
}

#[derive(Debug)]
pub struct FileTree {
    root: PathBuf,
    rows: Vec<TreeRow>,
}

impl FileTree {
    pub fn new(root: &Path) -> Result<FileTree, WorkspaceError> {
        let mut t = FileTree {
            root: root.to_path_buf(),
            rows: Vec::new(),
        };
        t.refresh();
        Ok(t)
    }
    fn list(dir: &Path, depth: usize) -> Vec<TreeRow> {
        let mut v: Vec<TreeRow> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name() != ".git")
            .map(|e| TreeRow {
                depth,
                name: e.file_name().to_string_lossy().into_owned(),
                path: e.path(),
                is_dir: e.path().is_dir(),
                expanded: false,
            })
            .collect();
        v.sort_by(|a, b| {
            b.is_dir
                .cmp(&a.is_dir)
                .then(a.name.to_lowercase().cmp(&b.name.to_lowercase()))
        });
        v
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn visible(&self) -> &[TreeRow] {
        &self.rows
    }
    pub fn toggle(&mut self, idx: usize) {
        let Some(row) = self.rows.get(idx).cloned() else {
            return;
        };
        if !row.is_dir {
            return;
        }
        if row.expanded {
            self.collapse(idx);
        } else {
            self.expand(idx);
        }
    }
    pub fn expand(&mut self, idx: usize) {
        let Some(row) = self.rows.get_mut(idx) else {
            return;
        };
        if !row.is_dir || row.expanded {
            return;
        }
        row.expanded = true;
        let children = Self::list(&row.path.clone(), row.depth + 1);
        self.rows.splice(idx + 1..idx + 1, children);
    }
    pub fn collapse(&mut self, idx: usize) {
        let Some(row) = self.rows.get_mut(idx) else {
            return;
        };
        if !row.expanded {
            return;
        }
        row.expanded = false;
        let depth = row.depth;
        let end = self.rows[idx + 1..]
            .iter()
            .position(|r| r.depth <= depth)
            .map(|p| idx + 1 + p)
            .unwrap_or(self.rows.len());
        self.rows.drain(idx + 1..end);
    }
    pub fn refresh(&mut self) {
        self.rows = Self::list(&self.root, 0);
    }
    pub fn reveal(&mut self, path: &Path) -> Option<usize> {
        self.rows.iter().position(|r| r.path == path)
    }
}

pub fn confine(root: &Path, requested: &str) -> Result<PathBuf, WorkspaceError> {
    Ok(root.join(requested))
}

pub fn relative(root: &Path, abs: &Path) -> Option<String> {
    abs.strip_prefix(root)
        .ok()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
}

pub fn create_file(root: &Path, rel: &str) -> Result<PathBuf, WorkspaceError> {
    let p = root.join(rel);
    std::fs::write(&p, "").map_err(|source| WorkspaceError::Io {
        path: p.clone(),
        source,
    })?;
    Ok(p)
}
pub fn create_dir(root: &Path, rel: &str) -> Result<PathBuf, WorkspaceError> {
    let p = root.join(rel);
    std::fs::create_dir_all(&p).map_err(|source| WorkspaceError::Io {
        path: p.clone(),
        source,
    })?;
    Ok(p)
}
pub fn rename(root: &Path, from: &str, to: &str) -> Result<PathBuf, WorkspaceError> {
    let t = root.join(to);
    std::fs::rename(root.join(from), &t).map_err(|source| WorkspaceError::Io {
        path: t.clone(),
        source,
    })?;
    Ok(t)
}
pub fn delete(root: &Path, rel: &str) -> Result<(), WorkspaceError> {
    let p = root.join(rel);
    let r = if p.is_dir() {
        std::fs::remove_dir_all(&p)
    } else {
        std::fs::remove_file(&p)
    };
    r.map_err(|source| WorkspaceError::Io {
        path: p.clone(),
        source,
    })
}

pub struct FileIndex {
    files: Vec<String>,
}
impl FileIndex {
    pub fn spawn(root: &Path) -> FileIndex {
        let mut files = Vec::new();
        for e in ignore::WalkBuilder::new(root).build().flatten() {
            if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                if let Some(r) = relative(root, e.path()) {
                    files.push(r);
                }
            }
        }
        FileIndex { files }
    }
    pub fn snapshot(&self) -> Vec<String> {
        self.files.clone()
    }
    pub fn is_complete(&self) -> bool {
        true
    }
}

pub struct FuzzyHit {
    pub index: usize,
    pub score: u32,
    pub positions: Vec<usize>,
}

pub fn fuzzy_match(query: &str, candidates: &[impl AsRef<str>], limit: usize) -> Vec<FuzzyHit> {
    let q = query.to_lowercase();
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.as_ref().to_lowercase().contains(&q))
        .take(limit)
        .map(|(index, _)| FuzzyHit {
            index,
            score: 0,
            positions: Vec::new(),
        })
        .collect()
}
