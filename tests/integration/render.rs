//! Render tests: the main screens drawn on ratatui's TestBackend and
//! compared with stored snapshots (text only; `cargo insta review` or
//! INSTA_UPDATE=always to accept a deliberate change).

use crate::support::common;

use common::*;
use std::fs;

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("src")).unwrap();
    fs::write(
        dir.path().join("src/main.rs"),
        "fn main() {\n    // greet\n    println!(\"hello, 世界 🎉\");\n}\n",
    )
    .unwrap();
    fs::write(dir.path().join("README.md"), "# Demo\n\nText.\n").unwrap();
    fs::write(dir.path().join(".gitignore"), "target\n").unwrap();
    fs::create_dir_all(dir.path().join("target")).unwrap();
    dir
}

fn snap(app: &mut lshed::tui::App, w: u16, h: u16) -> String {
    let root = app.editor.root.display().to_string();
    screen(app, w, h)
        .into_iter()
        .map(|l| l.replace(&root, "[ROOT]").trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn folder_with_tree_and_welcome() {
    let dir = project();
    let mut app = app_at(dir.path());
    insta::assert_snapshot!(snap(&mut app, 80, 14));
}

#[test]
fn file_open_in_editor() {
    let dir = project();
    let mut app = app_at(dir.path());
    keys(&mut app, "<ret>");
    keys(&mut app, "<down><ret>");
    insta::assert_snapshot!(snap(&mut app, 80, 10));
}

#[test]
fn find_bar_with_matches() {
    let dir = project();
    let mut app = app_at(&dir.path().join("src/main.rs"));
    keys(&mut app, "<C-f>e");
    insta::assert_snapshot!(snap(&mut app, 70, 9));
}

#[test]
fn command_palette_filtered() {
    let dir = project();
    let mut app = app_at(&dir.path().join("README.md"));
    keys(&mut app, "<F1>save");
    insta::assert_snapshot!(snap(&mut app, 70, 14));
}

#[test]
fn unsaved_quit_question() {
    let dir = project();
    let mut app = app_at(&dir.path().join("README.md"));
    keys(&mut app, "x<C-q>");
    insta::assert_snapshot!(snap(&mut app, 90, 8));
}

#[test]
fn tiny_terminal() {
    let dir = project();
    let mut app = app_at(&dir.path().join("src/main.rs"));
    insta::assert_snapshot!(snap(&mut app, 20, 5));
}
