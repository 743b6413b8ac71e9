//! lshed: Live Share for the terminal.
//!
//! The crate is split into layers that depend downward only:
//!
//! ```text
//! main.rs / cli   parse args, pick a mode, run
//! tui             terminal, event loop, widgets, keymap, themes (ratatui, crossterm)
//! editor          editor state: buffers, views, selections, commands (no terminal)
//! session         share/join state machine, participants, protocol messages
//! net             QUIC endpoints, invite links, framing
//! doc             the text document (rope + CRDT), edits, undo; no I/O
//! workspace       the folder on disk: listing, loading, atomic save, confinement
//! config          the user's settings file
//! ```
//!
//! `doc`, `workspace` and `config` are leaves: they know nothing of
//! terminals, async runtimes or sockets.

#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![deny(rustdoc::broken_intra_doc_links)]
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod doc;
pub mod editor;
pub mod net;
pub mod relay;
pub mod session;
pub mod tui;
pub mod workspace;
