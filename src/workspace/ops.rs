//! File operations on the opened folder: create, rename, delete.
//!
//! Every path is a '/'-separated path relative to the root, as a guest
//! (or the tree UI, via [`super::paths::relative`]) would send it, and
//! goes through confinement first. Creating and renaming never overwrite
//! an existing entry. The root itself can never be deleted or renamed.
//!
//! Known limit: "does the target exist?" and the operation are two steps
//! (std has no `renameat2(RENAME_NOREPLACE)`), so a file created by
//! another process in between could be replaced by a rename. File
//! creation itself is race-free (`O_EXCL`).
//!
//! Depends on std only.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::paths::confine_entry;
use super::WorkspaceError;

/// Creates an empty file at `rel` (and any missing parent folders);
/// returns its path. Refuses if anything already exists there.
pub fn create_file(root: &Path, rel: &str) -> Result<PathBuf, WorkspaceError> {
    let path = confine_entry(root, rel)?;
    refuse_root(root, &path, "create")?;
    create_parents(&path)?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| WorkspaceError::from_io("create", &path, e))?;
    Ok(path)
}

/// Creates a folder at `rel` (and any missing parents); returns its path.
/// Refuses if anything already exists there.
pub fn create_dir(root: &Path, rel: &str) -> Result<PathBuf, WorkspaceError> {
    let path = confine_entry(root, rel)?;
    refuse_root(root, &path, "create")?;
    create_parents(&path)?;
    fs::create_dir(&path).map_err(|e| WorkspaceError::from_io("create", &path, e))?;
    Ok(path)
}

/// Renames (moves) `from_rel` to `to_rel`, both inside the root; missing
/// parent folders of the target are created. Refuses to overwrite, to
/// move the root, or to move a folder into itself. A symlink is renamed
/// as a link (its target is not touched). Returns the new path.
pub fn rename(root: &Path, from_rel: &str, to_rel: &str) -> Result<PathBuf, WorkspaceError> {
    let from = confine_entry(root, from_rel)?;
    let to = confine_entry(root, to_rel)?;
    refuse_root(root, &from, "rename")?;
    refuse_root(root, &to, "rename")?;
    let from_meta =
        fs::symlink_metadata(&from).map_err(|e| WorkspaceError::from_io("rename", &from, e))?;
    if fs::symlink_metadata(&to).is_ok() {
        return Err(WorkspaceError::AlreadyExists { path: to });
    }
    if from_meta.is_dir() && to.starts_with(&from) {
        return Err(WorkspaceError::IntoItself { path: from });
    }
    create_parents(&to)?;
    fs::rename(&from, &to).map_err(|e| WorkspaceError::from_io("rename", &from, e))?;
    Ok(to)
}

/// Deletes the file, symlink or folder (recursively) at `rel`. A symlink
/// is removed as a link; what it points to is never touched (std's
/// `remove_dir_all` does not follow symlinks inside the folder either).
pub fn delete(root: &Path, rel: &str) -> Result<(), WorkspaceError> {
    let path = confine_entry(root, rel)?;
    refuse_root(root, &path, "delete")?;
    let meta =
        fs::symlink_metadata(&path).map_err(|e| WorkspaceError::from_io("delete", &path, e))?;
    let result = if meta.is_dir() {
        fs::remove_dir_all(&path)
    } else {
        fs::remove_file(&path)
    };
    result.map_err(|e| WorkspaceError::from_io("delete", &path, e))
}

fn refuse_root(root: &Path, path: &Path, action: &'static str) -> Result<(), WorkspaceError> {
    let is_root = fs::canonicalize(root).is_ok_and(|r| r == path);
    if is_root {
        return Err(WorkspaceError::IsRoot { action });
    }
    Ok(())
}

fn create_parents(path: &Path) -> Result<(), WorkspaceError> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent).map_err(|e| match e.kind() {
            // A file where a folder is needed.
            io::ErrorKind::AlreadyExists => WorkspaceError::NotADirectory {
                path: parent.to_path_buf(),
            },
            _ => WorkspaceError::from_io("create", parent, e),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::PathError;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        fs::create_dir_all(root.join("dir/sub")).unwrap();
        fs::write(root.join("dir/a.txt"), "a").unwrap();
        fs::write(root.join("b.txt"), "b").unwrap();
        fs::write(d.path().join("outside.txt"), "precious").unwrap();
        (d, root)
    }

    #[test]
    fn create_file_and_dir() {
        let (_d, root) = setup();
        let p = create_file(&root, "new.txt").unwrap();
        assert!(p.is_file());
        let p = create_file(&root, "deep/er/new.rs").unwrap();
        assert!(p.is_file());
        assert!(create_dir(&root, "x/y/z").unwrap().is_dir());
        let e = create_file(&root, "b.txt").unwrap_err();
        assert!(matches!(e, WorkspaceError::AlreadyExists { .. }), "{e}");
        assert!(e.to_string().ends_with("b.txt already exists"));
        assert_eq!(fs::read_to_string(root.join("b.txt")).unwrap(), "b");
        assert!(matches!(
            create_dir(&root, "dir").unwrap_err(),
            WorkspaceError::AlreadyExists { .. }
        ));
        assert!(matches!(
            create_dir(&root, "b.txt").unwrap_err(),
            WorkspaceError::AlreadyExists { .. }
        ));
        assert!(matches!(
            create_file(&root, "b.txt/inner").unwrap_err(),
            WorkspaceError::NotADirectory { .. }
        ));
    }

    #[test]
    fn rename_refuses_overwrite_and_moves() {
        let (_d, root) = setup();
        let e = rename(&root, "b.txt", "dir/a.txt").unwrap_err();
        assert!(matches!(e, WorkspaceError::AlreadyExists { .. }), "{e}");
        assert_eq!(fs::read_to_string(root.join("dir/a.txt")).unwrap(), "a");
        let to = rename(&root, "b.txt", "moved/into/b2.txt").unwrap();
        assert_eq!(fs::read_to_string(&to).unwrap(), "b");
        assert!(!root.join("b.txt").exists());
        rename(&root, "dir", "dir2").unwrap();
        assert!(root.join("dir2/sub").is_dir());
        let e = rename(&root, "dir2", "dir2/sub/inside").unwrap_err();
        assert!(matches!(e, WorkspaceError::IntoItself { .. }), "{e}");
        assert!(matches!(
            rename(&root, "missing", "x").unwrap_err(),
            WorkspaceError::NotFound { .. }
        ));
    }

    #[test]
    fn delete_files_and_folders() {
        let (_d, root) = setup();
        delete(&root, "b.txt").unwrap();
        assert!(!root.join("b.txt").exists());
        delete(&root, "dir").unwrap();
        assert!(!root.join("dir").exists());
        assert!(matches!(
            delete(&root, "dir").unwrap_err(),
            WorkspaceError::NotFound { .. }
        ));
    }

    #[test]
    fn root_cannot_be_deleted_or_renamed() {
        let (_d, root) = setup();
        for rel in [".", "./", "dir/.."] {
            assert!(delete(&root, rel).is_err(), "{rel}");
        }
        let e = delete(&root, ".").unwrap_err();
        assert!(
            matches!(e, WorkspaceError::IsRoot { action: "delete" }),
            "{e}"
        );
        assert_eq!(e.to_string(), "cannot delete the opened folder itself");
        assert!(matches!(
            rename(&root, ".", "x").unwrap_err(),
            WorkspaceError::IsRoot { .. }
        ));
        assert!(root.join("b.txt").exists());
    }

    #[test]
    fn escapes_are_refused() {
        let (d, root) = setup();
        symlink(d.path(), root.join("up")).unwrap();
        symlink(d.path().join("outside.txt"), root.join("out_link")).unwrap();
        assert!(matches!(
            delete(&root, "../outside.txt").unwrap_err(),
            WorkspaceError::Path(PathError::ParentComponent { .. })
        ));
        assert!(matches!(
            delete(&root, "up/outside.txt").unwrap_err(),
            WorkspaceError::Path(PathError::Escape { .. })
        ));
        assert!(matches!(
            create_file(&root, "up/new.txt").unwrap_err(),
            WorkspaceError::Path(PathError::Escape { .. })
        ));
        assert!(matches!(
            rename(&root, "b.txt", "up/stolen.txt").unwrap_err(),
            WorkspaceError::Path(PathError::Escape { .. })
        ));
        assert!(matches!(
            rename(&root, "up/outside.txt", "mine.txt").unwrap_err(),
            WorkspaceError::Path(PathError::Escape { .. })
        ));
        assert!(matches!(
            create_file(&root, "/tmp/x").unwrap_err(),
            WorkspaceError::Path(PathError::Absolute { .. })
        ));
        // Deleting the symlink itself removes only the link.
        delete(&root, "out_link").unwrap();
        delete(&root, "up").unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("outside.txt")).unwrap(),
            "precious"
        );
        assert!(d.path().join("root/dir").is_dir());
    }

    #[test]
    fn delete_dir_does_not_follow_inner_symlinks() {
        let (d, root) = setup();
        symlink(d.path(), root.join("dir/escape")).unwrap();
        delete(&root, "dir").unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("outside.txt")).unwrap(),
            "precious"
        );
    }
}
