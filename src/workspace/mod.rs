//! The folder on disk: everything that touches the opened folder.
//!
//! - [`load`]: read a file into a rope, exactly as on disk (line endings kept),
//!   with binary / non-UTF-8 / huge files opened read-only instead of garbled.
//! - [`save`]: atomic save (temp file in the same folder, fsync, rename,
//!   fsync the folder), keeping permissions and symlinks.
//! - [`tree`]: the lazy file tree model the UI draws (respects `.gitignore`
//!   and `.lshedignore`, always hides `.git`), plus [`list_folder`] and
//!   [`is_hidden`] for answering guests with the same rules.
//! - [`ops`]: create / rename / delete, always through path confinement.
//! - [`paths`]: confinement of guest-supplied relative paths to the root
//!   (no absolute paths, no `..`, no symlink escapes) and its inverse.
//! - [`index`]: the background quick-open file index and the fuzzy matcher
//!   (also used for the command palette).
//!
//! The editor uses this module directly; the collaboration host service
//! uses it on behalf of guests, who send '/'-separated relative paths that
//! must go through [`paths::confine`] (or the [`ops`] functions and
//! [`list_folder`], which do). Whether guests may open what the tree hides
//! (`.git/config`, ignored files) is the host service's policy:
//! [`is_hidden`] answers the question.
//!
//! Nothing here watches the disk: callers re-list with
//! [`FileTree::refresh`], compare mtimes with [`modified_on_disk`] and
//! re-spawn the [`FileIndex`] when they want fresh state.
//!
//! May depend on: std, ignore, nucleo-matcher, ropey, thiserror and rustix
//! (for `faccessat`, a safe wrapper; the crate denies `unsafe`). No
//! terminal, no async runtime, no network: everything here is plain
//! blocking std I/O, so callers on an async runtime should use
//! `spawn_blocking` (the index already runs on its own thread).
//!
//! Unix is the target (Linux CI): permissions, symlinks and fsync of a
//! directory use `std::os::unix`.

mod error;
mod rules;

pub mod index;
pub mod load;
pub mod ops;
pub mod paths;
pub mod save;
pub mod tree;

pub use error::{PathError, WorkspaceError};
pub use index::{fuzzy_match, fuzzy_match_plain, FileIndex, FuzzyHit};
pub use load::{load_file, LineEnding, LoadedFile, ReadOnlyReason};
pub use ops::{create_dir, create_file, delete, rename};
pub use paths::{confine, confine_entry, relative};
pub use save::{modified_on_disk, save_atomic, SaveOutcome};
pub use tree::{is_hidden, list_folder, FileTree, TreeRow};
