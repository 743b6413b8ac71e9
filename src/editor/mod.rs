//! Editor state: buffers, selections, views, commands. No terminal.
//!
//! May depend on: doc, workspace, config (and session, later).

pub mod syntax;
