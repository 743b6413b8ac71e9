//! The workspace module as the editor and the host service use it,
//! through the public API only.

use std::fs;
use std::path::Path;

use lshed::workspace::{
    confine, create_file, load_file, modified_on_disk, relative, rename, save_atomic, FileTree,
    LineEnding, PathError, SaveOutcome, WorkspaceError,
};

#[test]
fn open_edit_save_reload_keeps_line_endings() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("win.txt");
    fs::write(&p, b"first\r\nsecond\r\n").unwrap();
    let mut f = load_file(&p).unwrap();
    assert_eq!(f.line_ending, LineEnding::Crlf);
    // The editor inserts a new line with the file's own ending.
    let at = f.rope.line_to_char(1);
    f.rope
        .insert(at, &format!("inserted{}", f.line_ending.as_str()));
    assert!(!modified_on_disk(&p, f.mtime));
    let out = save_atomic(&p, &f.rope).unwrap();
    assert!(matches!(out, SaveOutcome::Saved { .. }));
    assert_eq!(fs::read(&p).unwrap(), b"first\r\ninserted\r\nsecond\r\n");
    assert!(!modified_on_disk(&p, out.mtime()));
}

#[test]
fn guest_requests_go_through_confinement() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("shared");
    fs::create_dir(&root).unwrap();
    fs::write(d.path().join("private.txt"), "host only").unwrap();
    std::os::unix::fs::symlink(d.path(), root.join("escape")).unwrap();

    // A guest creates and writes a file: confined path, atomic save.
    let created = create_file(&root, "notes/todo.md").unwrap();
    let path = confine(&root, "notes/todo.md").unwrap();
    assert_eq!(path, created);
    save_atomic(&path, &ropey::Rope::from_str("- ship it\n")).unwrap();
    assert_eq!(relative(&root, &path).as_deref(), Some("notes/todo.md"));

    // Hostile requests.
    assert!(matches!(
        confine(&root, "escape/private.txt"),
        Err(PathError::Escape { .. })
    ));
    assert!(matches!(
        confine(&root, "../private.txt"),
        Err(PathError::ParentComponent { .. })
    ));
    assert!(matches!(
        rename(&root, "notes/todo.md", "escape/stolen.md"),
        Err(WorkspaceError::Path(PathError::Escape { .. }))
    ));
    assert_eq!(
        fs::read_to_string(d.path().join("private.txt")).unwrap(),
        "host only"
    );

    // The tree shows the new file once revealed.
    let mut tree = FileTree::new(&root).unwrap();
    let idx = tree.reveal(Path::new("notes/todo.md")).unwrap();
    assert_eq!(tree.visible()[idx].path, path);
}
