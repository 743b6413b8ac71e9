//! The folder on disk: loading and saving files, listing the tree,
//! creating / renaming / deleting, and confining paths to the opened root.
//!
//! May depend on: std, ignore, nucleo-matcher. No terminal, no async.
