//! The editor as the session's document store: a shared path ('/'
//! separated, relative to the shared root) maps to a buffer. Buffers a
//! collaborator opened but the local user did not are kept hidden.
//!
//! May depend on: editor, session, doc, workspace.

use crate::doc::{Change, Document};
use crate::session::DocStore;
use crate::workspace;

use super::{Buffer, Editor};

/// Adapts `&mut Editor` to [`DocStore`].
pub struct EditorStore<'a> {
    /// The editor.
    pub editor: &'a mut Editor,
    /// Paths whose text changed remotely during this call (for redraws).
    pub changed: Vec<String>,
}

impl<'a> EditorStore<'a> {
    /// Wraps the editor.
    pub fn new(editor: &'a mut Editor) -> Self {
        Self {
            editor,
            changed: Vec::new(),
        }
    }
}

impl DocStore for EditorStore<'_> {
    fn doc_mut(&mut self, path: &str) -> Option<&mut Document> {
        let i = self.editor.find_shared(path)?;
        Some(&mut self.editor.buffers[i].doc)
    }

    fn open_for_peer(&mut self, path: &str) -> Result<&mut Document, String> {
        let i = match self.editor.find_shared(path) {
            Some(i) => i,
            None => {
                let abs = workspace::confine(&self.editor.root, path).map_err(|e| e.to_string())?;
                let i = match self.editor.find_open(&abs) {
                    Some(i) => i,
                    None => {
                        let loaded = workspace::load_file(&abs).map_err(|e| e.to_string())?;
                        let id = self.editor.alloc_buffer_id();
                        let mut b = Buffer::from_loaded(
                            id,
                            abs,
                            loaded,
                            self.editor.config.tab_width,
                            self.editor.config.insert_spaces,
                        );
                        b.hidden = true;
                        self.editor.buffers.push(b);
                        self.editor.buffers.len() - 1
                    }
                };
                self.editor.buffers[i].shared_path = Some(path.to_string());
                i
            }
        };
        // The session core makes it shared once the guest has the text.
        let buf = &mut self.editor.buffers[i];
        Ok(&mut buf.doc)
    }

    fn adopt(&mut self, path: &str, doc: Document, read_only: bool) {
        if let Some(i) = self.editor.find_shared(path) {
            self.editor.buffers[i].replace_doc(doc);
            self.editor.buffers[i].hidden = false;
            self.editor.active = Some(i);
            return;
        }
        let id = self.editor.alloc_buffer_id();
        let mut b = Buffer::from_document(id, path, doc, self.editor.config.tab_width);
        if read_only {
            b.read_only = Some("the host made this session read-only for you".into());
        }
        self.editor.buffers.push(b);
        self.editor.active = Some(self.editor.buffers.len() - 1);
    }

    fn remote_changed(&mut self, path: &str, changes: &[Change]) {
        if let Some(i) = self.editor.find_shared(path) {
            self.editor.buffers[i].after_external_changes(changes);
            self.changed.push(path.to_string());
        }
    }

    fn renamed(&mut self, from: &str, to: &str) {
        let root = self.editor.root.clone();
        for b in &mut self.editor.buffers {
            let Some(new) = b
                .shared_path
                .as_deref()
                .and_then(|p| crate::session::renamed_path(p, from, to))
            else {
                continue;
            };
            // Host buffers are files under the shared root; a guest's have
            // no path of their own.
            if b.path.is_some() {
                b.set_path(&root.join(&new));
            }
            b.shared_path = Some(new);
        }
    }

    fn save(&mut self, path: &str) -> Result<(), String> {
        let i = self
            .editor
            .find_shared(path)
            .ok_or_else(|| format!("{path} is not open"))?;
        self.editor.buffers[i].save().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_rename_moves_shared_buffers_and_their_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("docs")).unwrap();
        let file = dir.path().join("docs/f.txt");
        std::fs::write(&file, "x").unwrap();
        let mut ed = Editor::new(dir.path().to_path_buf(), Config::default());
        ed.open(&file).unwrap();
        ed.buffers[0].shared_path = Some("docs/f.txt".into());
        // A guest's buffer: no file of its own.
        let id = ed.alloc_buffer_id();
        ed.buffers.push(Buffer::from_document(
            id,
            "docs/g.txt",
            Document::from_text("y"),
            4,
        ));
        let mut store = EditorStore::new(&mut ed);
        store.renamed("docs", "notes");
        assert_eq!(ed.buffers[0].shared_path.as_deref(), Some("notes/f.txt"));
        assert_eq!(
            ed.buffers[0].path.as_deref(),
            Some(dir.path().join("notes/f.txt").as_path())
        );
        assert_eq!(ed.buffers[1].shared_path.as_deref(), Some("notes/g.txt"));
        assert!(ed.buffers[1].path.is_none());
        assert!(store_find(&mut ed, "notes/f.txt"));
    }

    fn store_find(ed: &mut Editor, path: &str) -> bool {
        EditorStore::new(ed).doc_mut(path).is_some()
    }
}
