//! Themes (temporary; real one from `look`).

use ratatui::style::{Color, Modifier, Style};
use std::path::Path;

/// A theme.
#[derive(Debug, Clone, Default)]
pub struct Theme;

/// Error.
#[derive(Debug, thiserror::Error)]
#[error("theme error")]
pub struct ThemeError;

impl Theme {
    /// Style for a key.
    pub fn style(&self, key: &str) -> Style {
        match key {
            "ui.selection" => Style::default().bg(Color::Blue),
            "ui.statusline" | "ui.tabs.active" | "ui.popup.selected" | "ui.tree.selected" => {
                Style::default().add_modifier(Modifier::REVERSED)
            }
            "ui.match" | "ui.match.current" => Style::default().bg(Color::Yellow).fg(Color::Black),
            "ui.message.error" => Style::default().fg(Color::Red),
            _ => Style::default(),
        }
    }
    /// Participant colour.
    pub fn participant_color(&self, _i: usize) -> Color {
        Color::Magenta
    }
    /// Name.
    pub fn name(&self) -> &str {
        "default"
    }
}

/// Loads a theme.
pub fn load_theme(_name: &str, _dir: Option<&Path>) -> Result<Theme, ThemeError> {
    Ok(Theme)
}
