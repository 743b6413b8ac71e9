//! End-to-end sessions with real `lshed` processes in headless mode, over
//! loopback: a host and guests speaking the JSON-lines protocol.
//!
//! Each host listens on 127.0.0.1 in a private port range so these tests
//! neither collide with the net tests nor need the real range.

use std::path::Path;

use serde_json::json;

use crate::support::headless;
use headless::{folder, lshed, type_tokens_and_converge, wait_converged, Peer, RelayProcess, WAIT};

use crate::support::rng;
use rng::Rng;

const PORTS: &str = "46100-46139";

fn config_for(name: &str, approval: &str) -> String {
    format!("guest_approval = \"{approval}\"\n[identity]\ndisplay_name = \"{name}\"\ncolor = \"#123456\"\n")
}

impl Peer {
    fn spawn(name: &str, args: &[&str], approval: &str) -> Peer {
        Self::spawn_env(name, args, approval, &[])
    }

    fn spawn_env(name: &str, args: &[&str], approval: &str, env: &[(&str, &str)]) -> Peer {
        let mut cmd = lshed();
        cmd.args(args).envs(env.iter().copied());
        Peer::launch(name, cmd, &config_for(name, approval))
    }

    fn host(name: &str, root: &Path) -> (Peer, String) {
        Self::host_on(name, root, PORTS)
    }

    fn host_on(name: &str, root: &Path, ports: &str) -> (Peer, String) {
        Self::host_env(name, root, ports, &[])
    }

    fn host_env(name: &str, root: &Path, ports: &str, env: &[(&str, &str)]) -> (Peer, String) {
        let root = root.to_str().unwrap();
        let mut host = Peer::spawn_env(
            name,
            &[
                "share",
                root,
                "--headless",
                "--connection-mode",
                "direct",
                "--bind",
                "127.0.0.1",
                "--ports",
                ports,
            ],
            "auto",
            env,
        );
        let first = host.next_line();
        assert_eq!(first["event"], "shared", "first line: {first}");
        let link = first["link"].as_str().unwrap().to_string();
        (host, link)
    }

    fn guest(name: &str, link: &str) -> Peer {
        let mut g = Peer::spawn(name, &["join", link, "--headless"], "prompt");
        let joined = g.wait_event("joined");
        assert_eq!(joined["path"], "direct");
        g
    }
}

#[test]
fn host_and_three_guests_converge_and_the_host_saves() {
    let dir = folder(&[("notes.txt", "hello world\n")]);
    let (mut host, link) = Peer::host("host", dir.path());
    let mut guests: Vec<Peer> = (1..=3)
        .map(|i| Peer::guest(&format!("g{i}"), &link))
        .collect();
    host.ok(json!({"cmd": "open", "path": "notes.txt"}));
    for g in &mut guests {
        g.open("notes.txt");
        assert_eq!(g.text("notes.txt"), "hello world\n");
    }
    let mut rng = Rng(0x5eed);
    let mut lens = [12u64; 4];
    for round in 0..25 {
        for i in 0..4 {
            let peer = if i == 0 {
                &mut host
            } else {
                &mut guests[i - 1]
            };
            let len = lens[i];
            let offset = rng.next() % (len + 1);
            let delete = if offset < len { rng.next() % 2 } else { 0 };
            let insert = format!(
                "{}{}",
                ["a", "é", "🎉", "\n"][(rng.next() % 4) as usize],
                round % 10
            );
            let v = peer.cmd(json!({"cmd": "edit", "path": "notes.txt", "offset": offset, "delete": delete, "insert": insert}));
            // A concurrent delete may have shortened the text: then retry at 0.
            let v = if v.get("result").is_none() {
                peer.ok(json!({"cmd": "edit", "path": "notes.txt", "offset": 0, "insert": "x"}))
            } else {
                v
            };
            lens[i] = v["len"].as_u64().unwrap();
        }
    }
    let text = {
        let (h, rest) = (&mut host, &mut guests);
        let mut all: Vec<&mut Peer> = vec![h];
        all.extend(rest.iter_mut());
        wait_converged(&mut all, "notes.txt")
    };
    assert!(text.chars().count() > 12);
    // A guest asks the host to save.
    guests[0].ok(json!({"cmd": "save", "path": "notes.txt"}));
    guests[0].wait_event("saved");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        text
    );
    let p = host.ok(json!({"cmd": "participants"}));
    assert_eq!(p["participants"].as_array().unwrap().len(), 4);
    for g in guests {
        assert_eq!(g.finish(), Some(0));
    }
    assert_eq!(host.finish(), Some(0));
}

#[test]
fn read_only_guest_is_refused_and_removed_guest_is_cut_off() {
    let dir = folder(&[("a.txt", "abc\n")]);
    let (mut host, link) = Peer::host("host", dir.path());
    let mut ro = Peer::guest("ro", &link);
    let mut other = Peer::guest("other", &link);
    ro.open("a.txt");
    other.open("a.txt");
    let ro_id = ro.my_id();
    host.ok(json!({"cmd": "read_only", "who": ro_id, "value": true}));
    let ev = ro.wait_event("read_only");
    assert_eq!(ev["value"], true);
    let refused = ro.cmd(json!({"cmd": "edit", "path": "a.txt", "offset": 0, "insert": "X"}));
    assert_eq!(refused["event"], "error", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("read-only"));
    ro.ok(json!({"cmd": "save", "path": "a.txt"}));
    let err = ro.wait_event("error");
    assert!(
        err["message"].as_str().unwrap().contains("read-only"),
        "{err}"
    );

    // The whole session read-only, then editable again.
    host.ok(json!({"cmd": "read_only", "who": null, "value": true}));
    other.wait_event("read_only");
    host.ok(json!({"cmd": "read_only", "who": null, "value": false}));
    other.wait_event("read_only");
    other.ok(json!({"cmd": "edit", "path": "a.txt", "offset": 0, "insert": "1"}));
    let mut all = [&mut host, &mut other, &mut ro];
    assert_eq!(wait_converged(&mut all, "a.txt"), "1abc\n");

    // Removal.
    host.ok(json!({"cmd": "remove", "who": ro_id}));
    ro.wait_event("removed");
    let ended = ro.wait_event("ended");
    assert!(
        ended["message"].as_str().unwrap().contains("removed"),
        "{ended}"
    );
    assert_eq!(ro.finish(), Some(0));
    host.wait_for(|v| v["event"] == "participant_left", "participant_left");
    // The others carry on.
    host.ok(json!({"cmd": "open", "path": "a.txt"}));
    host.ok(json!({"cmd": "edit", "path": "a.txt", "offset": 0, "insert": "2"}));
    let mut all = [&mut host, &mut other];
    assert_eq!(wait_converged(&mut all, "a.txt"), "21abc\n");
    let p = host.ok(json!({"cmd": "participants"}));
    assert_eq!(p["participants"].as_array().unwrap().len(), 2);
    // Ending the session tells the guest.
    host.ok(json!({"cmd": "end"}));
    let ended = other.wait_event("ended");
    assert_eq!(ended["message"], "the host ended the session");
    assert_eq!(other.finish(), Some(0));
    assert_eq!(host.finish(), Some(0));
}

#[test]
fn bad_links_get_distinct_messages() {
    let dir = folder(&[("a.txt", "x")]);
    // A port of its own: once this host is gone, nobody else answers there.
    let (host, link) = Peer::host_on("host", dir.path(), "46140-46149");
    let mut parsed: lshed::net::InviteLink = link.parse().unwrap();
    parsed.secret[0] ^= 1;
    let mut wrong = Peer::spawn(
        "wrong",
        &["join", &parsed.to_string(), "--headless"],
        "prompt",
    );
    let failed = wrong.wait_event("join_failed");
    let secret_msg = failed["message"].as_str().unwrap().to_string();
    assert!(secret_msg.contains("secret"), "{secret_msg}");
    assert_eq!(wrong.finish(), Some(1));

    let mut malformed = Peer::spawn(
        "bad",
        &["join", "lshed://join/v1/garbage", "--headless"],
        "prompt",
    );
    let failed = malformed.wait_event("join_failed");
    let bad_msg = failed["message"].as_str().unwrap().to_string();
    assert_ne!(bad_msg, secret_msg);
    assert_eq!(malformed.finish(), Some(1));

    assert_eq!(host.finish(), Some(0));
    // The session has ended (the host is gone): unreachable.
    let mut late = Peer::spawn("late", &["join", &link, "--headless"], "prompt");
    let failed = late.wait_event("join_failed");
    let late_msg = failed["message"].as_str().unwrap().to_string();
    assert!(
        late_msg.contains("reach") || late_msg.contains("ended"),
        "{late_msg}"
    );
    assert_ne!(late_msg, secret_msg);
    assert_eq!(late.finish(), Some(1));
}

#[test]
fn path_escape_and_hidden_files_are_refused() {
    let dir = folder(&[
        ("inside/a.txt", "a"),
        (".gitignore", "secret.txt\n"),
        ("secret.txt", "s"),
        (".git/config", "[core]"),
    ]);
    let outside = dir.path().join("..").join("lshed-outside-probe.txt");
    let _ = std::fs::write(&outside, "nope");
    let (host, link) = Peer::host("host", &dir.path().join("inside"));
    let mut g = Peer::guest("g", &link);
    for bad in [
        "../secret.txt",
        "/etc/passwd",
        "../../lshed-outside-probe.txt",
    ] {
        g.ok(json!({"cmd": "open", "path": bad}));
        let err = g.wait_event("error");
        assert!(err["message"].as_str().unwrap().contains("open"), "{err}");
    }
    drop(host);
    let _ = std::fs::remove_file(&outside);

    let (mut host, link) = Peer::host("host2", dir.path());
    let mut g = Peer::guest("g2", &link);
    for hidden in ["secret.txt", ".git/config"] {
        g.ok(json!({"cmd": "open", "path": hidden}));
        let err = g.wait_event("error");
        assert!(
            err["message"].as_str().unwrap().contains("not shared"),
            "{err}"
        );
    }
    // A refusal names the path inside the folder, never the host's own.
    let root_text = dir.path().to_string_lossy().to_string();
    for (missing, shown) in [
        ("no-such-file.txt", "no-such-file.txt"),
        ("inside/nope.rs", "inside/nope.rs"),
    ] {
        g.ok(json!({"cmd": "open", "path": missing}));
        let err = g.wait_event("error");
        let message = err["message"].as_str().unwrap();
        assert!(message.contains(shown), "{err}");
        assert!(
            !message.contains(&root_text),
            "the host's path leaked: {err}"
        );
    }
    g.ok(json!({"cmd": "list", "path": "."}));
    let listing = g.wait_event("listing");
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"inside") && !names.contains(&"secret.txt") && !names.contains(&".git"),
        "{names:?}"
    );
    // Still in the session.
    g.open("inside/a.txt");
    assert_eq!(g.text("inside/a.txt"), "a");
    host.ok(json!({"cmd": "state"}));
}

#[test]
fn garbage_from_one_guest_drops_only_that_guest() {
    let dir = folder(&[("a.txt", "abc")]);
    let (mut host, link) = Peer::host("host", dir.path());
    let mut good = Peer::guest("good", &link);
    good.open("a.txt");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reason = rt.block_on(async {
        let link: lshed::net::InviteLink = link.parse().unwrap();
        let me = lshed::net::GuestProfile {
            name: "evil".into(),
            color: "red".into(),
        };
        let mut conn = lshed::net::connect_direct(&link, &me, &Default::default())
            .await
            .unwrap();
        // The welcome arrives first; then garbage from us.
        let _welcome = conn.recv().await.unwrap();
        conn.send(vec![0xff, 0xfe, 0xfd, 0x00, 0x42]).await.unwrap();
        tokio::time::timeout(WAIT, conn.closed()).await.unwrap()
    });
    assert_eq!(
        reason,
        lshed::net::CloseReason::Remote(lshed::net::CloseCode::ProtocolViolation)
    );
    host.wait_for(
        |v| v["event"] == "participant_left" && v["name"] == "evil",
        "evil dropped",
    );
    good.ok(json!({"cmd": "edit", "path": "a.txt", "offset": 3, "insert": "d"}));
    host.ok(json!({"cmd": "open", "path": "a.txt"}));
    let mut all = [&mut host, &mut good];
    assert_eq!(wait_converged(&mut all, "a.txt"), "abcd");
}

#[test]
fn bad_json_is_an_error_line_not_a_crash() {
    let dir = folder(&[("a.txt", "abc")]);
    let (mut host, _link) = Peer::host("host", dir.path());
    host.send_raw("{not json");
    let e = host.wait_event("error");
    assert!(e["message"].as_str().unwrap().contains("bad JSON"));
    let e = host.cmd(json!({"cmd": "fly"}));
    assert_eq!(e["event"], "error");
    let e = host.cmd(json!({"cmd": "edit", "path": "a.txt", "offset": 0}));
    assert_eq!(e["event"], "error");
    host.ok(json!({"cmd": "open", "path": "a.txt"}));
    let e = host.cmd(json!({"cmd": "edit", "path": "a.txt", "offset": 99, "insert": "x"}));
    assert_eq!(e["event"], "error");
    host.ok(json!({"cmd": "end"}));
    assert_eq!(host.finish(), Some(0));
}

/// Two guests and the host type thousands of chars at one spot at once,
/// through real processes: the host splits the busy chunk
/// while edits race the splits. Everyone converges and every char typed is
/// there exactly once.
#[test]
fn long_concurrent_typing_in_one_place_loses_nothing() {
    let dir = folder(&[("hot.txt", &"0123456789\n".repeat(50))]);
    let (mut host, link) = Peer::host("host", dir.path());
    let mut guests: Vec<Peer> = (1..=2)
        .map(|i| Peer::guest(&format!("g{i}"), &link))
        .collect();
    host.ok(json!({"cmd": "open", "path": "hot.txt"}));
    for g in &mut guests {
        g.open("hot.txt");
    }
    let mut typed = Vec::new();
    let mut lens = [550u64; 3];
    // 4,800 inserts into a 550-char chunk: past SPLIT_CHURN (4,096) the host
    // splits it while the guests keep typing into it.
    for k in 0..4800u32 {
        let i = (k % 3) as usize;
        let peer = if i == 0 {
            &mut host
        } else {
            &mut guests[i - 1]
        };
        let c = char::from_u32(0x4E00 + k).unwrap();
        typed.push(c);
        let v = peer.ok(json!({"cmd": "edit", "path": "hot.txt", "offset": lens[i] / 2, "insert": c.to_string()}));
        lens[i] = v["len"].as_u64().unwrap();
    }
    let text = {
        let mut all: Vec<&mut Peer> = vec![&mut host];
        all.extend(guests.iter_mut());
        wait_converged(&mut all, "hot.txt")
    };
    for c in &typed {
        assert_eq!(text.matches(*c).count(), 1, "{c:?} lost or doubled");
    }
    assert_eq!(text.chars().count(), 550 + typed.len());
    for g in guests {
        assert_eq!(g.finish(), Some(0));
    }
    assert_eq!(host.finish(), Some(0));
}

/// A guest that stops taking its messages (here: its process suspended)
/// is dropped once its backlog passes the limit, instead of growing the
/// host's memory until the QUIC idle timeout; the others carry on.
#[test]
fn a_guest_that_stops_reading_is_dropped_not_buffered_forever() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let dir = folder(&[("big.txt", "start\n")]);
    let (mut host, link) = Peer::host_env(
        "host",
        dir.path(),
        PORTS,
        &[("LSHED_PEER_BACKLOG_MIB", "1")],
    );
    let mut stuck = Peer::guest("stuck", &link);
    let mut fine = Peer::guest("fine", &link);
    host.ok(json!({"cmd": "open", "path": "big.txt"}));
    stuck.open("big.txt");
    fine.open("big.txt");
    let stuck_id = stuck.my_id();
    let pid = Pid::from_raw(stuck.child.id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    let chunk = "x".repeat(256 * 1024);
    // Sent without waiting for each answer, so that the event is not
    // skipped while a command waits for its result.
    for k in 0..16 {
        let edit = json!({"cmd": "edit", "path": "big.txt", "offset": 0, "insert": chunk, "tag": 1000 + k});
        host.send_raw(&edit.to_string());
    }
    let left = host.wait_for(
        |v| v["event"] == "participant_left" && v["id"] == json!(stuck_id),
        "the stalled guest dropped",
    );
    kill(pid, Signal::SIGCONT).unwrap();
    assert!(
        left["reason"].as_str().unwrap().contains("too far behind"),
        "{left}"
    );
    let text = wait_converged(&mut [&mut host, &mut fine], "big.txt");
    assert_eq!(text.len(), 16 * 256 * 1024 + 6);
}

/// A headless host in relay mode: no direct port, registered with `relay`.
fn relay_host(name: &str, root: &Path, relay: &str) -> (Peer, String) {
    let mut cmd = lshed();
    cmd.args(["share", root.to_str().unwrap(), "--headless"]);
    let mut host = Peer::launch(
        name,
        cmd,
        &format!("relay = \"{relay}\"\nconnection_mode = \"relay\"\nguest_approval = \"auto\"\n[identity]\ndisplay_name = \"{name}\"\n"),
    );
    let link = host.shared_link();
    (host, link)
}

#[test]
fn a_session_through_a_real_relay_process() {
    let state = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(lshed(), state.path(), "127.0.0.1:0");
    let dir = folder(&[("notes.txt", "hello relay\n")]);
    let (mut host, link) = relay_host("alice", dir.path(), &relay.relay);
    let mut g1 = Peer::spawn("bob", &["join", &link, "--headless"], "prompt");
    assert_eq!(g1.wait_event("joined")["path"], "relayed");
    let mut g2 = Peer::spawn(
        "carol",
        &["join", &link, "--headless", "--connection-mode", "relay"],
        "prompt",
    );
    assert_eq!(g2.wait_event("joined")["path"], "relayed");
    host.ok(json!({"cmd": "open", "path": "notes.txt"}));
    g1.open("notes.txt");
    g2.open("notes.txt");
    let text = type_tokens_and_converge(&mut [&mut host, &mut g1, &mut g2], "notes.txt");
    g1.ok(json!({"cmd": "save", "path": "notes.txt"}));
    g1.wait_event("saved");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        text
    );

    // The relay stops: its guests are told why, at once.
    assert_eq!(relay.stop(), Some(0));
    let ended = g2.wait_event("ended");
    assert!(
        ended["message"].as_str().unwrap().contains("relay"),
        "{ended}"
    );
    // A restarted relay keeps its identity (same config line).
    let again = RelayProcess::start(lshed(), state.path(), "127.0.0.1:0");
    let fingerprint = |line: &str| line.split('@').next().unwrap().to_string();
    assert_eq!(fingerprint(&again.relay), fingerprint(&link_relay(&link)));
}

/// The relay fingerprint a link carries, as `lshed relay` prints it.
fn link_relay(link: &str) -> String {
    let parsed: lshed::net::InviteLink = link.parse().unwrap();
    parsed.relay.unwrap().to_string()
}

/// Tried as a hostile script would: a field of the wrong type is an error
/// naming the field (never a silent no-op), and a line that is not UTF-8
/// is an error line, after which the session goes on.
#[test]
fn wrong_typed_fields_and_non_utf8_lines_are_errors_and_the_session_goes_on() {
    use std::io::Write as _;
    let dir = folder(&[("a.txt", "abc")]);
    let (mut host, link) = Peer::host("host", dir.path());
    let mut g = Peer::guest("g", &link);
    host.ok(json!({"cmd": "open", "path": "a.txt"}));
    for (bad, field) in [
        (
            json!({"cmd": "edit", "path": "a.txt", "offset": 0, "delete": "5"}),
            "delete",
        ),
        (
            json!({"cmd": "edit", "path": "a.txt", "offset": 0, "delete": 1.5}),
            "delete",
        ),
        (
            json!({"cmd": "edit", "path": "a.txt", "offset": 0, "delete": -3}),
            "delete",
        ),
        (
            serde_json::from_str(
                r#"{"cmd":"edit","path":"a.txt","offset":0,"delete":18446744073709551616}"#,
            )
            .unwrap(),
            "delete",
        ),
        (
            json!({"cmd": "edit", "path": "a.txt", "offset": 0, "insert": 42}),
            "insert",
        ),
        (
            json!({"cmd": "edit", "path": "a.txt", "offset": -1, "insert": "x"}),
            "offset",
        ),
        (json!({"cmd": "open", "path": 7}), "path"),
        (
            json!({"cmd": "approve", "pending": 1, "accept": "yes"}),
            "accept",
        ),
        (json!({"cmd": "edit", "path": "a.txt", "ofset": 0}), "ofset"),
    ] {
        let e = host.cmd(bad.clone());
        assert_eq!(e["event"], "error", "{bad} was accepted: {e}");
        let message = e["message"].as_str().unwrap();
        assert!(message.contains(field), "{bad}: {message}");
        assert!(
            !message.contains("missing") || field == "ofset",
            "a wrong value is not a missing field: {message}"
        );
    }
    assert_eq!(host.text("a.txt"), "abc", "nothing was edited");
    // Invalid UTF-8 on the host's stdin: an error line, not the end.
    {
        let stdin = host.stdin.as_mut().unwrap();
        stdin
            .write_all(b"{\"cmd\":\"text\",\"path\":\"a\xff.txt\"}\n")
            .unwrap();
        stdin.flush().unwrap();
    }
    let e = host.wait_event("error");
    assert!(e["message"].as_str().unwrap().contains("UTF-8"), "{e}");
    // The session goes on for everyone.
    host.ok(json!({"cmd": "edit", "path": "a.txt", "offset": 3, "insert": "d"}));
    g.open("a.txt");
    assert_eq!(g.text("a.txt"), "abcd");
    let state = host.ok(json!({"cmd": "state"}));
    assert_eq!(state["state"], "Sharing");
}
