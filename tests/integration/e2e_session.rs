//! End-to-end collaboration on loopback with real processes in
//! pseudo-terminals: a host shares, the invite link is read off its screen,
//! a guest pastes it into the join prompt, the host approves, both type
//! into the same file at once, the guest saves, and the file on disk and
//! both screens agree. Then the guest leaves and the host ends.

use crate::support::common;

use crate::support::headless;

use base64::Engine;
use common::pty::PtyApp;
use std::path::Path;
use std::time::Duration;

/// Waits until `path` exists (or not).
fn wait_file(path: &Path, exists: bool) {
    let start = std::time::Instant::now();
    while path.exists() != exists {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} should {}exist",
            path.display(),
            if exists { "" } else { "not " }
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn identity(home: &Path, name: &str, extra: &str) {
    let dir = home.join(".config/lshed");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!("{extra}\n[identity]\ndisplay_name = \"{name}\"\ncolor = \"#61afef\"\n"),
    )
    .unwrap();
}

/// The host presses Share: returns the invite link read off its screen
/// (the box is still up).
fn share(host: &mut PtyApp) -> String {
    host.wait_text("Inactive");
    host.keys("<F5>");
    host.wait_text("Invite link");
    host.wait_text("Sharing");
    link_from_screen(&host.screen())
}

/// The guest pastes `link` into its join prompt and the host admits it.
fn join(guest: &mut PtyApp, host: &mut PtyApp, link: &str) {
    guest.wait_text("Inactive");
    guest.keys("<F6>");
    guest.wait_text("Join: paste the invite link");
    guest.paste(link);
    guest.keys("<ret>");
    guest.wait_text("Joining");
    host.wait_text("bob wants to join");
    // Keys typed in the first moments after the request appears are not
    // taken as an answer (APPROVAL_GRACE, unit-tested in tui::app).
    std::thread::sleep(lshed::tui::app::APPROVAL_GRACE + Duration::from_millis(100));
    host.keys("a");
}

/// The guest leaves (the session goes on), the host ends it, and both
/// quit with their terminals restored. `discard` answers the host's
/// question about an unsaved buffer.
fn leave_end_quit(guest: &mut PtyApp, host: &mut PtyApp, discard: bool) {
    guest.keys("<F9>");
    guest.wait_text("Inactive");
    host.wait_text("bob left");
    host.wait_text("Sharing");
    host.keys("<F10>");
    host.wait_for("host back to Inactive", Duration::from_secs(20), |s| {
        s.lines().last().is_some_and(|l| l.contains("Inactive")) || s.contains(" Inactive ")
    });
    guest.keys("<C-q>");
    guest.wait_exit(Duration::from_secs(10));
    guest.assert_restored();
    host.keys("<C-q>");
    if discard {
        host.keys("d");
    }
    host.wait_exit(Duration::from_secs(10));
    host.assert_restored();
}

/// The invite link as drawn in the "Invite link" box (it may wrap).
fn link_from_screen(screen: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in screen.lines() {
        let inner = line.split('│').nth(1).unwrap_or("").trim();
        if inner.starts_with("lshed://") {
            inside = true;
        }
        if inside {
            if inner.is_empty() {
                break;
            }
            out.push_str(inner);
        }
    }
    out
}

/// The text of the last OSC 52 escape the program wrote.
fn osc52_payload(raw: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(raw);
    let start = s.rfind("\x1b]52;c;")? + "\x1b]52;c;".len();
    let end = s[start..].find('\x07')? + start;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&s[start..end])
        .ok()?;
    String::from_utf8(bytes).ok()
}

#[test]
fn share_join_type_save_leave_end() {
    let host_home = tempfile::tempdir().unwrap();
    let guest_home = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    let guest_dir = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("README.md"), "# Demo\n").unwrap();
    std::fs::create_dir(shared.path().join("src")).unwrap();
    std::fs::write(shared.path().join("src/lib.rs"), "pub fn f() {}\n").unwrap();
    identity(host_home.path(), "alice", "guest_approval = \"prompt\"");
    identity(guest_home.path(), "bob", "");

    let mut host = PtyApp::spawn(&["."], shared.path(), host_home.path(), 100, 30);
    let link = share(&mut host);
    assert!(
        link.starts_with("lshed://join/v2/"),
        "link: {link}\n{}",
        host.screen()
    );
    let osc = osc52_payload(&host.raw.lock().unwrap()).expect("OSC 52 written");
    assert_eq!(osc, link, "the clipboard escape carries the same link");
    host.keys("<esc>");

    let mut guest = PtyApp::spawn(&["."], guest_dir.path(), guest_home.path(), 100, 30);
    join(&mut guest, &mut host, &link);
    guest.wait_text("Joined");
    host.wait_text("bob joined");
    // The guest's status line names the host's session, not its own folder.
    let folder = shared
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    guest.wait_text(&format!("alice's {folder}"));

    // The guest sees the host's tree and opens README.md from it.
    guest.wait_text("README.md");
    guest.keys("<down>");
    guest.keys("<ret>");
    guest.wait_text("# Demo");

    // The host opens the same file.
    host.keys("<C-p>");
    host.keys("README");
    host.wait_text(" 1/");
    host.keys("<ret>");
    host.wait_text("# Demo");

    // Both type at once.
    host.keys("<C-home>");
    guest.keys("<C-end>");
    host.keys("host-typed ");
    guest.keys("guest-typed");
    let both = |s: &str| s.contains("host-typed # Demo") && s.contains("guest-typed");
    host.wait_for("both edits on the host", Duration::from_secs(20), both);
    guest.wait_for("both edits on the guest", Duration::from_secs(20), both);

    // The guest saves: the host writes the file.
    guest.keys("<C-s>");
    guest.wait_text("saved README.md on the host");
    let on_disk = std::fs::read_to_string(shared.path().join("README.md")).unwrap();
    assert_eq!(on_disk, "host-typed # Demo\nguest-typed");

    // File operations in the guest's tree happen on the host's disk.
    guest.keys("<C-e>");
    guest.keys("a");
    guest.wait_text("New file");
    guest.keys("from-guest.txt");
    guest.keys("<ret>");
    wait_file(&shared.path().join("from-guest.txt"), true);
    guest.wait_text("from-guest.txt");
    // Rows: src/, from-guest.txt, README.md.
    guest.keys("<home>");
    guest.keys("<down>");
    guest.keys("r");
    guest.wait_text("Rename to");
    assert!(
        guest.screen().contains("from-guest.txt"),
        "{}",
        guest.screen()
    );
    guest.keys("<C-u>");
    guest.keys("renamed.txt");
    guest.keys("<ret>");
    wait_file(&shared.path().join("renamed.txt"), true);
    wait_file(&shared.path().join("from-guest.txt"), false);
    guest.wait_text("renamed.txt");
    guest.keys("<end>");
    guest.keys("d");
    guest.wait_text("Delete the file renamed.txt");
    guest.keys("y");
    wait_file(&shared.path().join("renamed.txt"), false);
    guest.keys("<esc>");

    // The guest leaves; the session goes on for the host, which ends it
    // (and discards its unsaved buffer on quitting).
    leave_end_quit(&mut guest, &mut host, true);
}

#[test]
fn share_and_join_through_a_relay_process() {
    let state = tempfile::tempdir().unwrap();
    let relay = headless::RelayProcess::start(headless::lshed(), state.path(), "127.0.0.1:0");
    let host_home = tempfile::tempdir().unwrap();
    let guest_home = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    let guest_dir = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("README.md"), "# Relayed\n").unwrap();
    identity(
        host_home.path(),
        "alice",
        &format!(
            "guest_approval = \"prompt\"\nconnection_mode = \"relay\"\nrelay = \"{}\"",
            relay.relay
        ),
    );
    identity(guest_home.path(), "bob", "");

    let mut host = PtyApp::spawn(&["."], shared.path(), host_home.path(), 100, 30);
    let link = share(&mut host);
    let parsed: lshed::net::InviteLink = link.parse().unwrap();
    assert!(parsed.direct.is_empty(), "relay mode: no direct address");
    assert_eq!(parsed.relay.unwrap().to_string(), relay.relay);
    host.keys("<esc>");

    let mut guest = PtyApp::spawn(&["."], guest_dir.path(), guest_home.path(), 100, 30);
    join(&mut guest, &mut host, &link);
    guest.wait_text("Joined · relayed");
    host.wait_text("bob joined");
    // The host's participants panel says how bob came in.
    host.keys("<F7>");
    host.wait_text("relayed");
    host.keys("<esc>");

    guest.wait_text("README.md");
    guest.keys("<down>");
    guest.keys("<ret>");
    guest.wait_text("# Relayed");
    guest.keys("<C-end>");
    guest.keys(" via relay");
    guest.keys("<C-s>");
    guest.wait_text("saved README.md on the host");
    assert_eq!(
        std::fs::read_to_string(shared.path().join("README.md")).unwrap(),
        "# Relayed\n via relay"
    );

    leave_end_quit(&mut guest, &mut host, false);
}

#[test]
fn a_guest_keeps_copies_when_the_session_ends_under_it() {
    let host_home = tempfile::tempdir().unwrap();
    let guest_home = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    let guest_dir = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("notes.md"), "start\n").unwrap();
    identity(host_home.path(), "alice", "guest_approval = \"prompt\"");
    identity(guest_home.path(), "bob", "");
    let mut host = PtyApp::spawn(&["."], shared.path(), host_home.path(), 100, 30);
    let link = share(&mut host);
    host.keys("<esc>");
    let mut guest = PtyApp::spawn(&["."], guest_dir.path(), guest_home.path(), 100, 30);
    join(&mut guest, &mut host, &link);
    guest.wait_text("Joined");
    guest.wait_text("notes.md");
    guest.keys("<down><ret>");
    guest.wait_text("start");
    // Editable once the file's shared state has arrived (read-only till then).
    guest.wait_for("notes.md editable", Duration::from_secs(20), |s| {
        s.lines()
            .last()
            .is_some_and(|l| l.contains("notes.md") && !l.contains("read-only"))
    });
    guest.keys("<C-end>typed-by-bob");
    guest.wait_text("typed-by-bob");
    host.wait_text("bob joined");
    // The host ends the session before anyone saved: the guest's buffer of
    // the host's file goes, but not without a copy.
    host.keys("<F10>");
    guest.wait_text("your changed copies kept in");
    let recovery = guest_home.path().join(".local/state/lshed/recovery");
    let kept: Vec<String> = std::fs::read_dir(&recovery)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(kept.iter().any(|t| t.contains("typed-by-bob")), "{kept:?}");
    guest.keys("<C-q>");
    guest.wait_exit(Duration::from_secs(10));
    // The host has bob's edit unsaved: discard it on quitting.
    host.keys("<C-q>d");
    host.wait_exit(Duration::from_secs(10));
}

/// A TUI host keeps drawing its own typing while a headless guest pipelines
/// 20,000 edits of automerge-paper into the file it has open (the session
/// works through the flood in slices, one per frame). Each host keystroke
/// must reach its screen within a bound far under the flood's length;
/// the figures are printed.
#[test]
fn a_tui_host_keeps_typing_while_a_guest_floods_its_file() {
    use serde_json::json;
    use std::io::Write;
    let paper = crate::support::trace::load_named("automerge-paper");
    let host_home = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("paper.txt"), &paper.start).unwrap();
    identity(host_home.path(), "alice", "guest_approval = \"auto\"");
    let mut host = PtyApp::spawn(&["."], shared.path(), host_home.path(), 100, 30);
    let link = share(&mut host);
    host.keys("<esc>");
    host.keys("<C-p>");
    host.keys("paper");
    host.wait_text(" 1/");
    host.keys("<ret>");
    host.wait_text("paper.txt");

    let mut cmd = headless::lshed();
    cmd.args(["join", &link, "--headless"]);
    let mut guest = headless::Peer::launch("flood", cmd, "[identity]\ndisplay_name = \"flood\"\n");
    guest.wait_event("joined");
    guest.open("paper.txt");
    let mut script = String::new();
    for (pos, del, ins) in paper.txns.iter().flatten().take(20_000) {
        let line = json!({"cmd": "edit", "path": "paper.txt", "offset": pos,
                          "delete": del, "insert": ins, "tag": "flood"});
        script.push_str(&line.to_string());
        script.push('\n');
    }
    let mut stdin = guest.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        stdin.write_all(script.as_bytes()).unwrap();
        stdin.flush().unwrap();
        stdin
    });
    // The host types a char the paper does not hold, and waits for it on
    // its own screen, while the flood comes in.
    let mut took = Vec::new();
    for k in 1..=8 {
        let sent = std::time::Instant::now();
        host.send("¤".as_bytes());
        host.wait_for(
            "the host's keystroke on its screen",
            Duration::from_secs(10),
            |s| s.matches('¤').count() >= k,
        );
        took.push(sent.elapsed());
    }
    guest.stdin = Some(writer.join().unwrap());
    took.sort();
    eprintln!(
        "host keystroke to its screen during the flood (incl. the harness's 30 ms pause \
         and 20 ms polling): median {:?}, max {:?}",
        took[took.len() / 2],
        took[took.len() - 1]
    );
    // The host's typing reached the guest too, once each.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let text = guest.text("paper.txt");
        if text.matches('¤').count() == 8 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the host's keys never reached the guest"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
