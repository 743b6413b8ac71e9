//! End-to-end: the real binary in a pseudo-terminal. Opens a folder, opens
//! a file, types (with a bracketed multi-line paste and emoji), saves,
//! quits, and checks the file on disk and that the terminal was restored —
//! also when the process is killed by SIGTERM or SIGHUP.

use crate::support::common;

use common::pty::PtyApp;
use std::time::Duration;

#[test]
fn edit_paste_save_quit_restores_terminal() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.md"), "# Notes\n").unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/lib.rs"), "pub fn x() {}\n").unwrap();
    let mut app = PtyApp::spawn(&["."], dir.path(), home.path(), 100, 30);
    app.wait_text("Inactive");
    app.wait_text("notes.md");
    app.keys("<C-p>");
    app.wait_text("Open File");
    app.keys("notes");
    app.wait_for("quick open match", Duration::from_secs(10), |s| {
        s.contains("> notes")
    });
    app.keys("<ret>");
    app.wait_text("# Notes");
    // End of the document, then type and paste.
    app.keys("<C-end>");
    app.keys("typed 日本 🎉");
    app.keys("<ret>");
    app.paste("pasted one\npasted two 👩‍💻\n");
    app.wait_text("pasted two");
    app.keys("<C-s>");
    app.wait_text("saved notes.md");
    app.keys("<C-q>");
    let status = app.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    let on_disk = std::fs::read_to_string(dir.path().join("notes.md")).unwrap();
    assert_eq!(
        on_disk,
        "# Notes\ntyped 日本 🎉\npasted one\npasted two 👩‍💻\n"
    );
    app.assert_restored();
}

/// Keys that arrive faster than they are read (a paste into a terminal
/// without bracketed paste, a key macro) all reach the buffer at once. With
/// crossterm's default input source they stalled in the terminal after the
/// first 8 KiB (it stops reading at a full buffer and waits for the next
/// edge-triggered wake-up, which only the next keystroke gave).
#[test]
fn a_burst_of_keys_larger_than_the_input_buffer_arrives_whole() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("burst.txt"), "").unwrap();
    let mut app = PtyApp::spawn(&["burst.txt"], dir.path(), home.path(), 100, 30);
    app.wait_text("burst.txt");
    let burst: String = (1..=3000).map(|i| format!("{i:05} ")).collect();
    app.send_burst(burst.clone().into_bytes());
    app.wait_for("the whole burst", Duration::from_secs(20), |s| {
        s.contains("Col 18001")
    });
    app.keys("<C-s>");
    app.wait_text("saved burst.txt");
    app.keys("<C-q>");
    app.wait_exit(Duration::from_secs(10));
    let on_disk = std::fs::read_to_string(dir.path().join("burst.txt")).unwrap();
    assert_eq!(on_disk, burst);
}

#[test]
fn sigterm_restores_terminal_and_keeps_unsaved_work() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("draft.txt");
    std::fs::write(&file, "").unwrap();
    let mut app = PtyApp::spawn(&["draft.txt"], dir.path(), home.path(), 80, 24);
    app.wait_text("Inactive");
    app.keys("unsaved words");
    app.wait_text("unsaved words");
    let pid = app.child.process_id().expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("send SIGTERM");
    app.wait_exit(Duration::from_secs(10));
    app.assert_restored();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "",
        "the file itself is untouched"
    );
    let recovery = home.path().join(".local/state/lshed/recovery");
    let saved: Vec<_> = std::fs::read_dir(&recovery)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(
        saved.len(),
        1,
        "one recovery file in {}",
        recovery.display()
    );
    assert_eq!(std::fs::read_to_string(&saved[0]).unwrap(), "unsaved words");
}

#[test]
fn sighup_restores_terminal() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut app = PtyApp::spawn(&["."], dir.path(), home.path(), 80, 24);
    app.wait_text("Inactive");
    app.child.kill().unwrap(); // portable-pty sends SIGHUP
    app.wait_exit(Duration::from_secs(10));
    app.assert_restored();
}

#[test]
fn bad_path_is_one_clear_line() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lshed"))
        .arg("/definitely/not/here")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no such file or folder"), "{err}");
}

#[test]
fn not_a_terminal_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lshed"))
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a terminal"), "{err}");
}
