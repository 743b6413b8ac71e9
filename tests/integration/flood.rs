//! A script editing at machine speed, with real headless `lshed` processes
//! over loopback: a guest pipelines the first 20,000 edits of
//! automerge-paper without waiting for answers, while the host and a
//! second guest type in another shared file. Every `edit` answer of the
//! flooding guest reports exactly the length its own edits imply (nobody
//! else edits that file, so any other figure is text lost from its view or
//! misplaced); the host answers a `text` command sent mid-flood, and takes
//! the second guest's typing in, within a bound far under the flood's
//! length; everyone converges to the trace's text.
//!
//! The bound is generous (a debug build on a busy two-core machine): what
//! it rules out is the host answering nothing until the flood is applied.
//! The speed itself is measured by `benches/flood.rs` and
//! benches/README.md ("Speed under load").

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::headless::{folder, lshed, wait_converged, Peer, WAIT};
use crate::support::trace;

const PORTS: &str = "46150-46159";
const EDITS: usize = 20_000;
/// Most a host command may wait behind the flood.
const ANSWER_BOUND: Duration = Duration::from_secs(10);

fn config(name: &str) -> String {
    format!("guest_approval = \"auto\"\n[identity]\ndisplay_name = \"{name}\"\n")
}

fn host(root: &Path) -> (Peer, String) {
    let mut cmd = lshed();
    cmd.args([
        "share",
        root.to_str().unwrap(),
        "--headless",
        "--connection-mode",
        "direct",
        "--bind",
        "127.0.0.1",
        "--ports",
        PORTS,
    ]);
    let mut host = Peer::launch("host", cmd, &config("host"));
    let link = host.shared_link();
    (host, link)
}

fn guest(name: &str, link: &str) -> Peer {
    let mut cmd = lshed();
    cmd.args(["join", link, "--headless"]);
    let mut g = Peer::launch(name, cmd, &config(name));
    g.wait_event("joined");
    g
}

/// Sends `c` and waits for its answer; returns it and how long it took.
fn timed(peer: &mut Peer, c: Value) -> (Value, Duration) {
    let started = Instant::now();
    let v = peer.ok(c);
    (v, started.elapsed())
}

#[test]
fn a_guest_flooding_edits_stays_exact_and_the_host_stays_responsive() {
    let paper = trace::load_named("automerge-paper");
    let edits: Vec<(usize, usize, String)> =
        paper.txns.iter().flatten().take(EDITS).cloned().collect();
    // What the guest's text is after each of its edits.
    let mut model: Vec<char> = paper.start.chars().collect();
    let mut lens = Vec::with_capacity(edits.len());
    for (pos, del, ins) in &edits {
        model.splice(*pos..pos + del, ins.chars());
        lens.push(model.len());
    }
    let end: String = model.into_iter().collect();

    let dir = folder(&[("paper.txt", &paper.start), ("notes.txt", "")]);
    let (mut host, link) = host(dir.path());
    host.ok(json!({"cmd": "open", "path": "paper.txt"}));
    host.ok(json!({"cmd": "open", "path": "notes.txt"}));
    let mut flood = guest("flood", &link);
    flood.open("paper.txt");
    flood.open("notes.txt");
    let mut other = guest("other", &link);
    other.open("notes.txt");

    // The whole flood in one write, answers read afterwards: a script that
    // does not wait.
    let mut script = String::new();
    for (i, (pos, del, ins)) in edits.iter().enumerate() {
        let line = json!({"cmd": "edit", "path": "paper.txt", "offset": pos,
                          "delete": del, "insert": ins, "tag": format!("e{i}")});
        script.push_str(&line.to_string());
        script.push('\n');
    }
    let mut stdin = flood.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        stdin.write_all(script.as_bytes()).unwrap();
        stdin.flush().unwrap();
        stdin
    });

    // Mid-flood: the host answers, and takes the other guest's typing in.
    let mut worst = Duration::ZERO;
    for k in 0..5 {
        let (_, took) = timed(&mut host, json!({"cmd": "text", "path": "paper.txt"}));
        worst = worst.max(took);
        let token = format!("<o{k}>");
        other.ok(json!({"cmd": "edit", "path": "notes.txt", "offset": 0, "insert": token}));
        host.ok(
            json!({"cmd": "edit", "path": "notes.txt", "offset": 0, "insert": format!("<h{k}>")}),
        );
        let seen = Instant::now();
        loop {
            if host.text("notes.txt").contains(&token) {
                break;
            }
            assert!(
                seen.elapsed() < ANSWER_BOUND,
                "the host took no edit of the other guest for {ANSWER_BOUND:?} mid-flood"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        worst = worst.max(seen.elapsed());
    }
    assert!(
        worst < ANSWER_BOUND,
        "the host answered after {worst:?} mid-flood"
    );
    eprintln!("mid-flood, the host's slowest answer or take-in: {worst:?}");

    // Every answer of the flooding guest: the length its edits imply.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut answered = 0;
    while answered < EDITS {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = flood
            .lines
            .recv_timeout(left.min(WAIT))
            .expect("the flooding guest stopped answering");
        let Some(tag) = v["tag"].as_str().and_then(|t| t.strip_prefix('e')) else {
            continue;
        };
        let i: usize = tag.parse().unwrap();
        assert_eq!(v["result"], "edit", "edit {i}: {v}");
        assert_eq!(
            v["len"].as_u64(),
            Some(lens[i] as u64),
            "edit {i}: the guest's own text is not what its edits made"
        );
        assert_eq!(i, answered, "answers in order");
        answered += 1;
    }
    flood.stdin = Some(writer.join().unwrap());

    let text = wait_converged(&mut [&mut host, &mut flood], "paper.txt");
    assert!(text == end, "the paper's text differs from the trace's");
    let notes = wait_converged(&mut [&mut host, &mut flood, &mut other], "notes.txt");
    for k in 0..5 {
        assert_eq!(notes.matches(&format!("<o{k}>")).count(), 1, "{notes}");
        assert_eq!(notes.matches(&format!("<h{k}>")).count(), 1, "{notes}");
    }
}
