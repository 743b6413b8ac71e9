//! Error types of the workspace module.
//!
//! Every message is a sentence a user can act on and names the path
//! involved, because these strings go straight to the status line (and,
//! for guests, over the wire).

use std::io;
use std::path::{Path, PathBuf};

/// Something that went wrong with a file or folder of the workspace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkspaceError {
    /// The file or folder does not exist.
    #[error("{} does not exist", path.display())]
    NotFound {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// The OS refused access (read, list or write).
    #[error("permission denied: {}", path.display())]
    PermissionDenied {
        /// The path that was refused.
        path: PathBuf,
    },
    /// A file was expected but the path is a directory.
    #[error("{} is a folder, not a file", path.display())]
    IsDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// A folder was expected but the path is something else.
    #[error("{} is not a folder", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A device, socket or pipe: never opened or overwritten.
    #[error("{} is not a regular file (device, pipe or socket)", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Saving refused: the file has no write permission.
    #[error("{} is read-only (no write permission); not saved", path.display())]
    ReadOnly {
        /// The file.
        path: PathBuf,
    },
    /// Saving failed: the containing folder does not accept new files.
    #[error("cannot save {}: the folder {} is not writable", path.display(), dir.display())]
    DirNotWritable {
        /// The file being saved.
        path: PathBuf,
        /// Its folder.
        dir: PathBuf,
    },
    /// Saving failed: the containing folder was deleted or moved away.
    #[error("cannot save {}: the folder {} no longer exists", path.display(), dir.display())]
    FolderGone {
        /// The file being saved.
        path: PathBuf,
        /// Its (missing) folder.
        dir: PathBuf,
    },
    /// Writing failed: no space left (or quota exceeded).
    #[error("cannot write {}: the disk is full", path.display())]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// Writing failed: the file system is mounted read-only.
    #[error("cannot write {}: the file system is read-only", path.display())]
    ReadOnlyFilesystem {
        /// The file being written.
        path: PathBuf,
    },
    /// Create or rename refused because the target exists.
    #[error("{} already exists", path.display())]
    AlreadyExists {
        /// The existing path.
        path: PathBuf,
    },
    /// An operation that would act on the opened folder itself.
    #[error("cannot {action} the opened folder itself")]
    IsRoot {
        /// What was attempted ("delete", "rename").
        action: &'static str,
    },
    /// Rename of a folder into itself or one of its subfolders.
    #[error("cannot move {} into itself", path.display())]
    IntoItself {
        /// The folder.
        path: PathBuf,
    },
    /// A requested path was refused by confinement.
    #[error(transparent)]
    Path(#[from] PathError),
    /// Any other I/O failure, with what we were doing.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What we were doing: "read", "write", "list", ...
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

// errno values we classify by number because std's ErrorKind for them is
// either unstable or newer than our MSRV. Linux values; this module
// targets Unix/Linux.
const ENOTDIR: i32 = 20;
const EISDIR: i32 = 21;
const ENOSPC: i32 = 28;
const EROFS: i32 = 30;
const EDQUOT: i32 = 122;

impl WorkspaceError {
    /// Classifies an I/O error for `path` into the clearest variant.
    pub(crate) fn from_io(action: &'static str, path: &Path, err: io::Error) -> Self {
        let path = path.to_path_buf();
        match err.raw_os_error() {
            Some(EISDIR) => return Self::IsDirectory { path },
            // "a/b" where "a" is a file: to a user that simply does not exist.
            Some(ENOTDIR) => return Self::NotFound { path },
            Some(ENOSPC) | Some(EDQUOT) => return Self::DiskFull { path },
            Some(EROFS) => return Self::ReadOnlyFilesystem { path },
            _ => {}
        }
        match err.kind() {
            io::ErrorKind::NotFound => Self::NotFound { path },
            io::ErrorKind::PermissionDenied => Self::PermissionDenied { path },
            io::ErrorKind::AlreadyExists => Self::AlreadyExists { path },
            _ => Self::Io {
                action,
                path,
                source: err,
            },
        }
    }
}

/// Why a requested (guest-supplied) path was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The request was empty.
    #[error("empty path")]
    Empty,
    /// The request contained a NUL byte.
    #[error("path contains a NUL byte")]
    NulByte,
    /// The request was absolute.
    #[error("{requested:?} is an absolute path; only paths inside the shared folder are allowed")]
    Absolute {
        /// The request.
        requested: String,
    },
    /// The request contained a `..` component.
    #[error("{requested:?} contains '..'; only paths inside the shared folder are allowed")]
    ParentComponent {
        /// The request.
        requested: String,
    },
    /// A symlink along the path leads outside the root.
    #[error("{requested:?} leads outside the shared folder through a symbolic link")]
    Escape {
        /// The request.
        requested: String,
    },
    /// A symlink along the path points at nothing; we cannot tell where
    /// writing through it would land, so it is refused.
    #[error("{requested:?} goes through a broken symbolic link")]
    DanglingSymlink {
        /// The request.
        requested: String,
    },
    /// The shared folder itself is gone or unreadable.
    #[error("the shared folder {} is not accessible: {source}", root.display())]
    Root {
        /// The root.
        root: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Checking the path failed (e.g. permission denied on a folder).
    #[error("cannot check {requested:?}: {source}")]
    Io {
        /// The request.
        requested: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}
