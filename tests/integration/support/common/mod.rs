//! Shared helpers for the integration tests: build an `App` on a temp
//! folder, feed it key scripts, draw it on a `TestBackend`.
#![allow(dead_code)]

use std::path::Path;

use crossterm::event::{Event, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use lshed::config::{Config, ConfigLoad};
use lshed::tui::clipboard::Clipboard;
use lshed::tui::keymap::parse_keys;
use lshed::tui::{App, AppEvent};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// An app on `path` with default settings and no system clipboard.
pub fn app_at(path: &Path) -> App {
    app_with(path, Config::default())
}

/// An app with the given settings.
pub fn app_with(path: &Path, config: Config) -> App {
    let loaded = ConfigLoad {
        config,
        path: path.join(".no-such-config-dir/config.toml"),
        warnings: Vec::new(),
    };
    App::new(path, loaded, Clipboard::none()).expect("app opens")
}

/// Feeds a key script (see `parse_keys`).
pub fn keys(app: &mut App, script: &str) {
    for k in parse_keys(script).expect("valid key script") {
        app.handle_event(AppEvent::Term(Event::Key(k)));
    }
}

/// Feeds one key event.
pub fn key(app: &mut App, k: KeyEvent) {
    app.handle_event(AppEvent::Term(Event::Key(k)));
}

/// A bracketed paste.
pub fn paste(app: &mut App, text: &str) {
    app.handle_event(AppEvent::Term(Event::Paste(text.to_string())));
}

/// A left click at (x, y).
pub fn click(app: &mut App, x: u16, y: u16) {
    for kind in [
        MouseEventKind::Down(MouseButton::Left),
        MouseEventKind::Up(MouseButton::Left),
    ] {
        app.handle_event(AppEvent::Term(Event::Mouse(MouseEvent {
            kind,
            column: x,
            row: y,
            modifiers: KeyModifiers::NONE,
        })));
    }
}

/// Draws the app at `w`x`h` and returns the screen as lines of text.
pub fn screen(app: &mut App, w: u16, h: u16) -> Vec<String> {
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    term.draw(|f| app.render(f)).expect("draw");
    let buf = term.backend().buffer().clone();
    (0..h)
        .map(|y| {
            let mut line = String::new();
            let mut x = 0;
            while x < w {
                let cell = &buf[(x, y)];
                line.push_str(cell.symbol());
                // A wide glyph covers the next cell(s), as on a terminal.
                x += lshed::editor::text::str_width(cell.symbol()).max(1) as u16;
            }
            line
        })
        .collect()
}

/// The active buffer's text.
pub fn text(app: &App) -> String {
    app.editor
        .buffer()
        .map(|b| b.rope().to_string())
        .unwrap_or_default()
}

/// The active buffer's cursor.
pub fn cursor(app: &App) -> usize {
    app.editor.buffer().map(|b| b.selection.head).unwrap_or(0)
}

pub mod pty;
