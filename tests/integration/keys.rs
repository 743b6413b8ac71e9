//! Key-sequence tests: the real `App` driven by scripted keys, checked on
//! the buffer, the selection, the disk and the screen.

use crate::support::common;

use common::*;
use std::fs;

fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        let p = dir.path().join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(p, body).unwrap();
    }
    dir
}

#[test]
fn type_save_and_quit() {
    let dir = folder(&[("notes.txt", "")]);
    let file = dir.path().join("notes.txt");
    let mut app = app_at(&file);
    keys(&mut app, "hello 世界 🎉<ret>second line<C-s>");
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "hello 世界 🎉\nsecond line"
    );
    assert!(!app.editor.buffer().unwrap().is_dirty());
    keys(&mut app, "<C-q>");
    assert!(app.should_quit);
}

#[test]
fn status_line_shows_inactive_file_and_position() {
    let dir = folder(&[("a.rs", "fn main() {}\n")]);
    let mut app = app_at(&dir.path().join("a.rs"));
    keys(&mut app, "<end>");
    let s = screen(&mut app, 80, 10);
    let status = &s[9];
    assert!(status.contains("Inactive"), "{status}");
    assert!(status.contains("a.rs"), "{status}");
    assert!(status.contains("Ln 1, Col 13"), "{status}");
    keys(&mut app, "x");
    let s = screen(&mut app, 80, 10);
    assert!(s[9].contains('●'), "dirty marker: {}", s[9]);
    assert!(s[0].contains("a.rs ●"), "tab marker: {}", s[0]);
}

#[test]
fn cursor_never_lands_inside_a_grapheme() {
    let dir = folder(&[("u.txt", "e\u{301}👨‍👩‍👧x")]);
    let mut app = app_at(&dir.path().join("u.txt"));
    keys(&mut app, "<right>");
    assert_eq!(cursor(&app), 2);
    keys(&mut app, "<right>");
    assert_eq!(cursor(&app), 2 + "👨‍👩‍👧".chars().count());
    keys(&mut app, "<bs>");
    assert_eq!(text(&app), "e\u{301}x");
    keys(&mut app, "<left><del>");
    assert_eq!(text(&app), "x");
}

#[test]
fn undo_redo_by_word_and_not_past_start() {
    let dir = folder(&[("t.txt", "")]);
    let mut app = app_at(&dir.path().join("t.txt"));
    keys(&mut app, "one two three");
    keys(&mut app, "<C-z>");
    assert_eq!(text(&app), "one two");
    keys(&mut app, "<C-z><C-z>");
    assert_eq!(text(&app), "");
    keys(&mut app, "<C-z>");
    assert_eq!(text(&app), "");
    keys(&mut app, "<C-y><C-y>");
    assert_eq!(text(&app), "one two");
}

#[test]
fn shift_selection_copy_cut_paste() {
    let dir = folder(&[("t.txt", "alpha beta\n")]);
    let mut app = app_at(&dir.path().join("t.txt"));
    keys(&mut app, "<C-S-right>");
    assert_eq!(
        app.editor.buffer().unwrap().selected_text().as_deref(),
        Some("alpha ")
    );
    keys(&mut app, "<C-x>");
    assert_eq!(text(&app), "beta\n");
    keys(&mut app, "<end><C-v>");
    assert_eq!(text(&app), "betaalpha \n");
    // Copy with no selection copies the line.
    keys(&mut app, "<C-c><down><C-v>");
    assert_eq!(text(&app), "betaalpha \nbetaalpha \n");
}

#[test]
fn bracketed_paste_inserts_multiline_text_once() {
    let dir = folder(&[("t.txt", "")]);
    let mut app = app_at(&dir.path().join("t.txt"));
    paste(&mut app, "line one\nline two 🎉\n");
    assert_eq!(text(&app), "line one\nline two 🎉\n");
    keys(&mut app, "<C-z>");
    assert_eq!(text(&app), "");
}

#[test]
fn auto_indent_and_tab_indent_with_file_style() {
    let dir = folder(&[("a.py", "def f():\n  return 1\n")]);
    let mut app = app_at(&dir.path().join("a.py"));
    keys(&mut app, "<end><ret>x");
    assert_eq!(text(&app), "def f():\n  x\n  return 1\n");
    keys(&mut app, "<home><tab>");
    assert_eq!(text(&app), "def f():\n    x\n  return 1\n");
    keys(&mut app, "<S-tab>");
    assert_eq!(text(&app), "def f():\n  x\n  return 1\n");
}

#[test]
fn find_next_previous_and_replace_all() {
    let dir = folder(&[("t.txt", "cat dog cat bird cat")]);
    let mut app = app_at(&dir.path().join("t.txt"));
    keys(&mut app, "<C-f>cat");
    let sel = app.editor.buffer().unwrap().selection;
    assert_eq!((sel.start(), sel.end()), (0, 3));
    keys(&mut app, "<ret>");
    assert_eq!(app.editor.buffer().unwrap().selection.start(), 8);
    keys(&mut app, "<ret>");
    assert_eq!(app.editor.buffer().unwrap().selection.start(), 17);
    keys(&mut app, "<ret>");
    assert_eq!(app.editor.buffer().unwrap().selection.start(), 0, "wraps");
    let s = screen(&mut app, 60, 8);
    assert!(s.iter().any(|l| l.contains("1 of 3")), "{s:#?}");
    keys(&mut app, "<esc><C-r>cat<tab>cow<A-a>");
    assert_eq!(text(&app), "cow dog cow bird cow");
    keys(&mut app, "<esc><C-z>");
    assert_eq!(text(&app), "cat dog cat bird cat");
}

#[test]
fn replace_one_at_a_time() {
    let dir = folder(&[("t.txt", "a1 a2 a3")]);
    let mut app = app_at(&dir.path().join("t.txt"));
    keys(&mut app, "<C-r>a<tab>b<ret>");
    assert_eq!(text(&app), "b1 a2 a3");
    keys(&mut app, "<ret>");
    assert_eq!(text(&app), "b1 b2 a3");
}

#[test]
fn goto_line_and_column() {
    let dir = folder(&[("t.txt", "one\ntwo\nthree\n")]);
    let mut app = app_at(&dir.path().join("t.txt"));
    keys(&mut app, "<C-g>3:2<ret>");
    assert_eq!(cursor(&app), 9);
    keys(&mut app, "<C-g>abc<ret>");
    let s = screen(&mut app, 60, 10);
    assert!(s.iter().any(|l| l.contains("not a line number")), "{s:#?}");
    keys(&mut app, "<esc>");
    assert!(app.overlay.is_none());
}

#[test]
fn quick_open_and_palette() {
    let dir = folder(&[("src/main.rs", "fn main() {}\n"), ("README.md", "# hi\n")]);
    let mut app = app_at(dir.path());
    keys(&mut app, "<C-p>");
    // The index fills on a background thread.
    for _ in 0..100 {
        app.tick();
        if let Some(lshed::tui::app::Overlay::QuickOpen(p)) = &app.overlay {
            if p.all.len() == 2 {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    keys(&mut app, "mainrs<ret>");
    assert_eq!(text(&app), "fn main() {}\n");
    keys(&mut app, "<F1>go to line<ret>");
    assert!(matches!(
        app.overlay,
        Some(lshed::tui::app::Overlay::Prompt { .. })
    ));
}

#[test]
fn tree_create_rename_delete() {
    let dir = folder(&[("a.txt", "A")]);
    let mut app = app_at(dir.path());
    // The tree has focus on a folder.
    keys(&mut app, "anew.txt<ret>");
    assert!(dir.path().join("new.txt").exists());
    assert_eq!(app.editor.buffer().unwrap().display_name(), "new.txt");
    keys(&mut app, "typed<C-s><C-e>");
    keys(&mut app, "r<C-u>renamed.txt<ret>");
    assert!(dir.path().join("renamed.txt").exists());
    assert!(!dir.path().join("new.txt").exists());
    assert_eq!(app.editor.buffer().unwrap().display_name(), "renamed.txt");
    keys(&mut app, "d");
    let s = screen(&mut app, 80, 12);
    assert!(
        s.iter().any(|l| l.contains("Delete the file renamed.txt")),
        "{s:#?}"
    );
    keys(&mut app, "n");
    assert!(dir.path().join("renamed.txt").exists());
    keys(&mut app, "dy");
    assert!(!dir.path().join("renamed.txt").exists());
    keys(&mut app, "Asub<ret>");
    assert!(dir.path().join("sub").is_dir());
}

#[test]
fn tree_respects_gitignore_and_lshedignore() {
    let dir = folder(&[
        (".gitignore", "target\n"),
        (".lshedignore", "secret.txt\n"),
        ("target/x", ""),
        ("secret.txt", ""),
        ("visible.txt", ""),
    ]);
    let mut app = app_at(dir.path());
    let s = screen(&mut app, 80, 12).join("\n");
    assert!(s.contains("visible.txt"));
    assert!(!s.contains("target"), "{s}");
    assert!(!s.contains("secret.txt"), "{s}");
}

#[test]
fn quit_with_unsaved_work_asks() {
    let dir = folder(&[("t.txt", "x")]);
    let file = dir.path().join("t.txt");
    let mut app = app_at(&file);
    keys(&mut app, "y<C-q>");
    assert!(!app.should_quit);
    keys(&mut app, "c");
    assert!(!app.should_quit);
    assert_eq!(text(&app), "yx");
    keys(&mut app, "<C-q>s");
    assert!(app.should_quit);
    assert_eq!(fs::read_to_string(&file).unwrap(), "yx");
}

#[test]
fn close_buffer_with_unsaved_changes_asks() {
    let dir = folder(&[("t.txt", "x")]);
    let mut app = app_at(&dir.path().join("t.txt"));
    keys(&mut app, "y<C-w>");
    assert_eq!(app.editor.buffers.len(), 1);
    keys(&mut app, "d");
    assert_eq!(app.editor.buffers.len(), 0);
    assert_eq!(fs::read_to_string(dir.path().join("t.txt")).unwrap(), "x");
}

#[test]
fn crlf_file_keeps_crlf() {
    let dir = folder(&[("w.txt", "a\r\nb\r\n")]);
    let file = dir.path().join("w.txt");
    let mut app = app_at(&file);
    keys(&mut app, "<end><ret>c<C-s>");
    assert_eq!(fs::read(&file).unwrap(), b"a\r\nc\r\nb\r\n");
    let s = screen(&mut app, 80, 6);
    assert!(s[5].contains("CRLF"), "{}", s[5]);
}

#[test]
fn non_utf8_file_is_read_only_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latin1.txt");
    fs::write(&file, b"caf\xe9\n").unwrap();
    let mut app = app_at(&file);
    keys(&mut app, "x<C-s>");
    assert_eq!(fs::read(&file).unwrap(), b"caf\xe9\n");
    let s = screen(&mut app, 80, 8).join("\n");
    assert!(s.contains("read-only"), "{s}");
}

#[test]
fn mouse_click_moves_cursor() {
    let dir = folder(&[("t.txt", "hello\nworld\n")]);
    let mut app = app_at(&dir.path().join("t.txt"));
    let _ = screen(&mut app, 40, 8);
    let t = app.layout.text;
    click(&mut app, t.x + 3, t.y + 1);
    assert_eq!(cursor(&app), 9);
}

#[test]
fn renders_at_every_size_down_to_20x5() {
    let dir = folder(&[
        ("src/lib.rs", "pub fn x() {}\n"),
        ("b.txt", "日本語 🎉 wide text\n"),
    ]);
    let mut app = app_at(dir.path());
    keys(&mut app, "<C-p>");
    keys(&mut app, "<esc>");
    app.editor.open(&dir.path().join("b.txt")).unwrap();
    for (w, h) in [
        (20, 5),
        (21, 6),
        (33, 7),
        (80, 24),
        (200, 60),
        (1, 1),
        (5, 2),
    ] {
        let s = screen(&mut app, w, h);
        assert_eq!(s.len(), h as usize);
        if w >= 20 && h >= 5 {
            assert!(s[h as usize - 1].contains("Inactive"), "{w}x{h}: {s:#?}");
        }
    }
    for overlay in ["<F1>", "<F2>", "<C-g>", "<C-f>"] {
        keys(&mut app, overlay);
        for (w, h) in [(20, 5), (80, 24)] {
            let _ = screen(&mut app, w, h);
        }
        keys(&mut app, "<esc>");
    }
}

#[test]
fn help_lists_every_command_with_keys() {
    let dir = folder(&[]);
    let mut app = app_at(dir.path());
    keys(&mut app, "<F2>");
    let s = screen(&mut app, 100, 80).join("\n");
    assert!(s.contains("Ctrl+S") && s.contains("Save"), "{s}");
    assert!(s.contains("Quick Open File"), "{s}");
}

#[test]
fn soft_wrap_shows_long_lines_on_several_rows() {
    let dir = folder(&[("t.txt", &"abcdefghij".repeat(10))]);
    let config = lshed::config::Config {
        soft_wrap: true,
        ..Default::default()
    };
    let mut app = app_with(&dir.path().join("t.txt"), config);
    let s = screen(&mut app, 40, 8);
    let text_rows = s.iter().filter(|l| l.contains("abcdefghij")).count();
    assert!(text_rows >= 3, "{s:#?}");
    keys(&mut app, "<C-end>");
    let s = screen(&mut app, 40, 8);
    assert!(s.iter().any(|l| l.contains("ghij")), "{s:#?}");
}

#[test]
fn horizontal_scroll_follows_cursor() {
    let dir = folder(&[("t.txt", &format!("{}END", "x".repeat(200)))]);
    let mut app = app_at(&dir.path().join("t.txt"));
    keys(&mut app, "<end>");
    let s = screen(&mut app, 40, 6);
    assert!(s[1].contains("END"), "{s:#?}");
}

#[test]
fn remote_cursor_is_drawn_with_its_name() {
    let dir = folder(&[("t.txt", "hello world\nsecond\n")]);
    let mut app = app_at(&dir.path().join("t.txt"));
    app.editor
        .buffer_mut()
        .unwrap()
        .remote_cursors
        .push(lshed::editor::RemoteCursor {
            id: 7,
            name: "alice".into(),
            color: "#e06c75".into(),
            anchor: 6,
            head: 11,
        });
    let s = screen(&mut app, 60, 8);
    assert!(s[1].contains("hello world  alice"), "{s:#?}");
}

#[test]
fn hidden_buffers_are_not_tabs() {
    let dir = folder(&[("a.txt", "A"), ("b.txt", "B")]);
    let mut app = app_at(dir.path());
    app.editor.open(&dir.path().join("a.txt")).unwrap();
    app.editor.open(&dir.path().join("b.txt")).unwrap();
    app.editor.buffers[1].hidden = true;
    app.editor.active = Some(0);
    let s = screen(&mut app, 60, 8);
    assert!(
        s[0].contains("a.txt") && !s[0].contains("b.txt"),
        "{}",
        s[0]
    );
    keys(&mut app, "<A-right>");
    assert_eq!(app.editor.active, Some(0));
}

#[test]
fn closing_find_forgets_the_query_so_typing_does_not_search() {
    let dir = folder(&[("t.txt", "cat dog cat")]);
    let mut app = app_at(&dir.path().join("t.txt"));
    keys(&mut app, "<C-f>cat<esc>");
    assert!(app.find.is_none());
    assert_eq!(app.editor.buffer().unwrap().matches.query(), "");
    // F3 still searches again for what is selected / asked.
    keys(&mut app, "<C-f>dog<esc><F3>");
    assert!(app.find.is_some(), "F3 with no query opens the find bar");
}

#[test]
fn an_info_box_gets_out_of_the_way_of_the_next_key() {
    use lshed::tui::app::Overlay;
    let dir = folder(&[("a.txt", "abc")]);
    let mut app = app_at(&dir.path().join("a.txt"));
    let info = || Overlay::Info {
        title: "Invite link".into(),
        body: "lshed://join/v2/…".into(),
    };
    // Typing goes to the buffer, not nowhere.
    app.overlay = Some(info());
    keys(&mut app, "x");
    assert!(app.overlay.is_none());
    assert_eq!(text(&app), "xabc");
    // A command key runs its command.
    app.overlay = Some(info());
    keys(&mut app, "<C-p>");
    assert!(
        matches!(app.overlay, Some(Overlay::QuickOpen(_))),
        "quick open is up"
    );
    // Esc only closes.
    keys(&mut app, "<esc>");
    app.overlay = Some(info());
    keys(&mut app, "<esc>");
    assert!(app.overlay.is_none());
    assert_eq!(text(&app), "xabc");
}

#[test]
fn open_link_under_cursor_copies_it_where_there_is_no_browser() {
    let dir = folder(&[(
        "links.md",
        "docs at https://example.org/guide, invite lshed://join/v2/AAAA\n",
    )]);
    let mut app = app_at(&dir.path().join("links.md"));
    std::env::remove_var("DISPLAY");
    std::env::remove_var("WAYLAND_DISPLAY");
    // Nothing under the cursor at column 0 ("docs").
    app.run(lshed::editor::Command::OpenLink);
    assert!(app.editor.register.is_empty());
    // On the URL: no browser in a test, so it is copied, and the user told.
    keys(
        &mut app,
        "<right><right><right><right><right><right><right><right><right><right>",
    );
    app.run(lshed::editor::Command::OpenLink);
    assert_eq!(app.editor.register, "https://example.org/guide");
    let s = screen(&mut app, 100, 10).join("\n");
    assert!(s.contains("copied instead"), "{s}");
    // On an lshed link: the join prompt, holding it.
    keys(&mut app, "<end><left>");
    app.run(lshed::editor::Command::OpenLink);
    let s = screen(&mut app, 100, 10).join("\n");
    assert!(s.contains("lshed://join/v2/AAAA"), "{s}");
    assert!(
        matches!(app.overlay, Some(lshed::tui::app::Overlay::Prompt { .. })),
        "the join prompt is up"
    );
}

#[test]
fn join_requests_wait_their_turn_and_none_is_lost() {
    use lshed::tui::app::Overlay;
    let dir = folder(&[("a.txt", "abc")]);
    let mut app = app_at(&dir.path().join("a.txt"));
    app.approvals_waiting.push_back((1, "bob".into()));
    app.approvals_waiting.push_back((2, "carol".into()));
    app.show_next_approval();
    let s = screen(&mut app, 100, 12).join("\n");
    assert!(
        s.contains("bob wants to join") && s.contains("1 more waiting"),
        "{s}"
    );
    // Answered after the grace period: carol's request comes up.
    app.approval_shown = Some(std::time::Instant::now() - std::time::Duration::from_secs(2));
    keys(&mut app, "r");
    let s = screen(&mut app, 100, 12).join("\n");
    assert!(s.contains("carol wants to join"), "{s}");
    assert!(!s.contains("more waiting"), "{s}");
    app.approval_shown = Some(std::time::Instant::now() - std::time::Duration::from_secs(2));
    keys(&mut app, "a");
    assert!(app.overlay.is_none() || !matches!(app.overlay, Some(Overlay::Confirm { .. })));
    assert!(app.approvals_waiting.is_empty());
}
