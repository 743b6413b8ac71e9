//! The terminal UI: event loop, keymap, widgets, themes.
//!
//! May depend on: editor and everything below it, ratatui, crossterm.

pub mod theme;
