//! The session core without sockets: one host core and guest cores wired
//! by an in-memory network that delays (links delivered in random order),
//! reorders change messages within a link, and duplicates some.

use std::collections::VecDeque;
use std::path::Path;

use lshed::config::GuestApproval;
use lshed::doc::Change;
use lshed::net::Path as NetPath;
use lshed::session::headless::HeadlessStore;
use lshed::session::protocol::{decode_guest, decode_host, GuestToHost, HostToGuest};

use lshed::session::{
    DocStore, NetCommand, NetEvent, Profile, SessionCore, SessionEvent, SessionState,
};

use crate::support::rng;
use rng::Rng;

struct Node {
    core: SessionCore,
    store: HeadlessStore,
}

/// Node 0 is the host; node i is guest i.
struct Net {
    nodes: Vec<Node>,
    /// links[(from, to)] queues, as a flat list of (from, to, queue).
    links: Vec<(usize, usize, VecDeque<Vec<u8>>)>,
    rng: Rng,
    chaos: bool,
}

fn profile(name: &str) -> Profile {
    Profile {
        name: name.into(),
        color: "#abcdef".into(),
    }
}

impl Net {
    fn new(root: &Path, guests: usize, seed: u64, chaos: bool) -> Net {
        let mut host = Node {
            core: SessionCore::new_host(root.to_path_buf(), profile("host"), GuestApproval::Auto),
            store: HeadlessStore::host(root.to_path_buf()),
        };
        host.core.handle_net(
            NetEvent::HostStarted {
                link: "lshed://test".into(),
                url: None,
            },
            &mut host.store,
        );
        assert_eq!(host.core.state(), SessionState::Sharing);
        let mut net = Net {
            nodes: vec![host],
            links: Vec::new(),
            rng: Rng(seed | 1),
            chaos,
        };
        for i in 1..=guests {
            net.add_guest(i);
        }
        net.pump_all();
        net
    }

    fn add_guest(&mut self, i: usize) {
        let name = format!("g{i}");
        let host = &mut self.nodes[0];
        host.core.handle_net(
            NetEvent::GuestPending {
                pending: i as u64,
                name: name.clone(),
                color: "c".into(),
            },
            &mut host.store,
        );
        let approved = host.core.take_commands();
        assert!(approved.contains(&NetCommand::Approve {
            pending: i as u64,
            accept: true
        }));
        host.core.handle_net(
            NetEvent::GuestJoined {
                id: i as u64,
                name: name.clone(),
                color: "c".into(),
                path: NetPath::Direct,
            },
            &mut host.store,
        );
        let mut g = Node {
            core: SessionCore::new_guest(profile(&name)),
            store: HeadlessStore::guest(),
        };
        g.core.handle_net(
            NetEvent::Joined {
                id: i as u64,
                path: NetPath::Direct,
            },
            &mut g.store,
        );
        self.nodes.push(g);
        self.links.push((0, i, VecDeque::new()));
        self.links.push((i, 0, VecDeque::new()));
        self.collect();
    }

    /// Moves every node's queued commands onto the links.
    fn collect(&mut self) -> Vec<(usize, NetCommand)> {
        let mut other = Vec::new();
        for from in 0..self.nodes.len() {
            for cmd in self.nodes[from].core.take_commands() {
                match cmd {
                    NetCommand::Send { to, bytes } => {
                        let to = to as usize;
                        if let Some(link) = self.links.iter_mut().find(|l| l.0 == from && l.1 == to)
                        {
                            link.2.push_back(bytes);
                        }
                    }
                    other_cmd => other.push((from, other_cmd)),
                }
            }
        }
        other
    }

    fn is_sync(bytes: &[u8], from: usize) -> bool {
        if from == 0 {
            matches!(decode_host(bytes), Ok(HostToGuest::Sync { .. }))
        } else {
            matches!(decode_guest(bytes), Ok(GuestToHost::Sync { .. }))
        }
    }

    /// Delivers one message from a random non-empty link. Returns false if none.
    fn deliver_one(&mut self) -> bool {
        let busy: Vec<usize> = (0..self.links.len())
            .filter(|&i| !self.links[i].2.is_empty())
            .collect();
        if busy.is_empty() {
            return false;
        }
        let li = busy[self.rng.below(busy.len() as u64) as usize];
        let (from, to) = (self.links[li].0, self.links[li].1);
        // Change messages may be reordered among themselves and duplicated.
        if self.chaos && self.links[li].2.len() >= 2 && self.rng.below(5) == 0 {
            let q = &mut self.links[li].2;
            if Self::is_sync(&q[0], from) && Self::is_sync(&q[1], from) {
                q.swap(0, 1);
            }
        }
        let bytes = self.links[li].2.pop_front().unwrap_or_default();
        if self.chaos && Self::is_sync(&bytes, from) && self.rng.below(8) == 0 {
            self.links[li].2.push_back(bytes.clone());
        }
        self.hand(from, to, bytes);
        true
    }

    /// Gives node `to` one message from `from`, and collects what it sends.
    fn hand(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        let node = &mut self.nodes[to];
        node.core.handle_net(
            NetEvent::Message {
                from: from as u64,
                bytes,
            },
            &mut node.store,
        );
        self.collect();
    }

    /// Delivers everything, letting every node finish its document work
    /// (CRDT builds, loads, large messages) whenever the links run dry.
    fn pump_all(&mut self) {
        loop {
            while self.deliver_one() {}
            self.settle();
            if self.links.iter().all(|l| l.2.is_empty()) {
                return;
            }
        }
    }

    /// Every node's pending document work, done and taken in.
    fn settle(&mut self) {
        for n in 0..self.nodes.len() {
            self.settle_node(n);
        }
    }

    /// Node `n`'s pending document work, done and taken in.
    fn settle_node(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.core.wait_for_doc_work(&mut node.store);
        self.collect();
    }

    /// Guest `g` asks for `path` and the host takes the request in (and
    /// nothing else is delivered).
    fn ask_open(&mut self, g: usize, path: &str) {
        self.nodes[g].core.open(path);
        self.collect();
        self.deliver(g, 0);
    }

    fn text(&self, node: usize, path: &str) -> Option<String> {
        self.nodes[node].store.text(path)
    }

    fn edit(&mut self, node: usize, path: &str, change: Change) {
        let n = &mut self.nodes[node];
        let Some(doc) = n.store.doc_mut(path) else {
            return;
        };
        doc.apply_local(&[change]);
        n.core.local_edit(path, &mut n.store);
        self.collect();
    }

    /// Delivers, in order, everything queued from `from` to `to` (and
    /// nothing else); returns how many messages.
    fn deliver(&mut self, from: usize, to: usize) -> usize {
        let mut n = 0;
        loop {
            let Some(link) = self.links.iter_mut().find(|l| l.0 == from && l.1 == to) else {
                return n;
            };
            let Some(bytes) = link.2.pop_front() else {
                return n;
            };
            self.hand(from, to, bytes);
            n += 1;
        }
    }

    /// What the host has queued for `guest`, decoded.
    fn queued_to_guest(&self, guest: usize) -> Vec<HostToGuest> {
        self.links
            .iter()
            .find(|l| l.0 == 0 && l.1 == guest)
            .map(|l| l.2.iter().map(|b| decode_host(b).unwrap()).collect())
            .unwrap_or_default()
    }

    fn events(&mut self, node: usize) -> Vec<SessionEvent> {
        self.nodes[node].core.drain_events()
    }
}

fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn open_everywhere(net: &mut Net, path: &str) {
    let host = &mut net.nodes[0];
    host.store.open_for_peer(path).unwrap();
    for g in 1..net.nodes.len() {
        net.nodes[g].core.open(path);
    }
    net.collect();
    net.pump_all();
    for g in 1..net.nodes.len() {
        assert_eq!(
            net.text(g, path),
            net.text(0, path),
            "guest {g} got the file"
        );
    }
}

fn random_change(rng: &mut Rng, len: usize) -> Change {
    let start = rng.below(len as u64 + 1) as usize;
    let del = if start < len {
        rng.below(3).min((len - start) as u64) as usize
    } else {
        0
    };
    let text = ["a", "ß", "🎉", "\n", "xyz", ""][rng.below(6) as usize];
    Change::replace(start, start + del, text)
}

#[test]
fn random_concurrent_edits_converge_over_a_chaotic_network() {
    for seed in 1..=12u64 {
        let dir = folder(&[("f.txt", "the quick brown fox\n")]);
        let mut net = Net::new(dir.path(), 3, seed * 7919, true);
        open_everywhere(&mut net, "f.txt");
        let mut rng = Rng(seed * 104729);
        for _ in 0..150 {
            let who = rng.below(4) as usize;
            let len = net.text(who, "f.txt").unwrap().chars().count();
            let change = random_change(&mut rng, len);
            net.edit(who, "f.txt", change);
            for _ in 0..rng.below(4) {
                net.deliver_one();
            }
        }
        net.pump_all();
        let host = net.text(0, "f.txt").unwrap();
        for g in 1..=3 {
            assert_eq!(net.text(g, "f.txt").unwrap(), host, "seed {seed} guest {g}");
        }
        for n in 0..=3 {
            let doc = net.nodes[n].store.doc_mut("f.txt").unwrap();
            assert_eq!(
                doc.shared_state().unwrap().text(),
                doc.rope().to_string(),
                "rope mirror"
            );
        }
    }
}

#[test]
fn read_only_guest_edits_are_refused_and_undone_by_reopening() {
    let dir = folder(&[("f.txt", "abc")]);
    let mut net = Net::new(dir.path(), 2, 3, false);
    open_everywhere(&mut net, "f.txt");
    net.nodes[0].core.set_read_only(Some(1), true);
    net.collect();
    net.pump_all();
    assert!(net.nodes[1].core.is_read_only());
    assert!(!net.nodes[2].core.is_read_only());
    assert!(net
        .events(1)
        .contains(&SessionEvent::ReadOnlyChanged { read_only: true }));
    // A client that ignores the flag: the host refuses.
    net.edit(1, "f.txt", Change::insert(0, "HACK"));
    net.pump_all();
    assert_eq!(net.text(0, "f.txt").unwrap(), "abc");
    assert_eq!(net.text(2, "f.txt").unwrap(), "abc");
    assert_eq!(
        net.text(1, "f.txt").unwrap(),
        "abc",
        "reopened from the host"
    );
    assert!(net
        .events(1)
        .iter()
        .any(|e| matches!(e, SessionEvent::Error { message } if message.contains("read-only"))));
    // The whole session read-only refuses guest 2 too.
    net.nodes[0].core.set_read_only(None, true);
    net.collect();
    net.pump_all();
    net.edit(2, "f.txt", Change::insert(0, "Z"));
    net.pump_all();
    assert_eq!(net.text(0, "f.txt").unwrap(), "abc");
    net.nodes[0].core.set_read_only(None, false);
    net.collect();
    net.pump_all();
    net.edit(2, "f.txt", Change::insert(0, "Z"));
    net.pump_all();
    assert_eq!(net.text(0, "f.txt").unwrap(), "Zabc");
    assert_eq!(net.text(1, "f.txt").unwrap(), "Zabc");
}

#[test]
fn path_escapes_and_hidden_paths_are_refused_not_fatal() {
    let dir = folder(&[
        ("root/a.txt", "a"),
        ("root/.lshedignore", "private*\n"),
        ("root/private.txt", "p"),
        ("outside.txt", "o"),
    ]);
    let root = dir.path().join("root");
    let mut net = Net::new(&root, 1, 5, false);
    for bad in [
        "../outside.txt",
        "/etc/passwd",
        "private.txt",
        ".git",
        "a.txt/../../outside.txt",
    ] {
        net.nodes[1].core.open(bad);
        net.collect();
        net.pump_all();
        let evs = net.events(1);
        assert!(
            evs.iter().any(|e| matches!(e, SessionEvent::Error { message } if message.starts_with(&format!("open {bad}")))),
            "{bad}: {evs:?}"
        );
        assert!(net.text(1, bad).is_none());
    }
    for (op, check) in [("create", "../evil.txt"), ("delete", "../outside.txt")] {
        match op {
            "create" => net.nodes[1].core.create(check, false),
            _ => net.nodes[1].core.delete(check),
        }
        net.collect();
        net.pump_all();
        assert!(net
            .events(1)
            .iter()
            .any(|e| matches!(e, SessionEvent::Error { .. })));
    }
    assert!(dir.path().join("outside.txt").exists());
    assert!(!dir.path().join("evil.txt").exists());
    assert_eq!(net.nodes[0].core.participants().len(), 2, "the guest stays");
    // Allowed operations work.
    net.nodes[1].core.create("new/b.txt", false);
    net.collect();
    net.pump_all();
    assert!(root.join("new/b.txt").exists());
    net.nodes[1].core.list_dir(".");
    net.collect();
    net.pump_all();
    let listing = net.events(1).into_iter().find_map(|e| match e {
        SessionEvent::DirListing { entries, .. } => Some(entries),
        _ => None,
    });
    let names: Vec<String> = listing.unwrap().into_iter().map(|e| e.name).collect();
    assert!(
        names.contains(&"a.txt".to_string()) && !names.contains(&"private.txt".to_string()),
        "{names:?}"
    );
}

/// A guest's quick open lists the host's files (not its own folder's),
/// with the host's ignore rules, walked on a worker.
#[test]
fn a_guest_gets_the_hosts_file_list_for_quick_open() {
    let dir = folder(&[
        ("a.txt", "a"),
        ("src/lib.rs", "fn x() {}"),
        ("src/deep/m.rs", ""),
        (".lshedignore", "private*\n"),
        ("private.txt", "p"),
    ]);
    let mut net = Net::new(dir.path(), 1, 21, false);
    net.nodes[1].core.list_files();
    net.collect();
    net.pump_all();
    let (paths, truncated) = net
        .events(1)
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::FileList { paths, truncated } => Some((paths, truncated)),
            _ => None,
        })
        .expect("a file list");
    assert!(!truncated);
    for want in ["a.txt", "src/lib.rs", "src/deep/m.rs"] {
        assert!(paths.iter().any(|p| p == want), "{want} missing: {paths:?}");
    }
    assert!(!paths.iter().any(|p| p.contains("private")), "{paths:?}");
    // What it lists opens.
    net.nodes[1].core.open("src/deep/m.rs");
    net.collect();
    net.pump_all();
    assert_eq!(net.text(1, "src/deep/m.rs").as_deref(), Some(""));
}

#[test]
fn presence_resolves_through_concurrent_edits_and_follow_reports_moves() {
    let dir = folder(&[("f.txt", "0123456789")]);
    let mut net = Net::new(dir.path(), 2, 9, false);
    open_everywhere(&mut net, "f.txt");
    net.nodes[2].core.follow(Some(1));
    net.collect();
    net.pump_all();
    {
        let n = &mut net.nodes[1];
        n.core.local_presence(Some("f.txt"), 2, 5, &mut n.store);
    }
    net.collect();
    net.edit(0, "f.txt", Change::insert(0, "XX"));
    net.pump_all();
    for node in [0, 2] {
        let p = net.nodes[node]
            .core
            .participants()
            .into_iter()
            .find(|p| p.id == 1)
            .unwrap();
        assert_eq!(p.file.as_deref(), Some("f.txt"));
        let (a, h) = p.cursor.unwrap();
        let doc = net.nodes[node].store.doc_mut("f.txt").unwrap();
        assert_eq!(
            (doc.resolve(&a), doc.resolve(&h)),
            (Some(4), Some(7)),
            "node {node}"
        );
    }
    let evs = net.events(2);
    assert!(
        evs.iter()
            .any(|e| matches!(e, SessionEvent::Follow { path, pos: Some(_) } if path == "f.txt")),
        "{evs:?}"
    );
    let host_view = net.nodes[0].core.participants();
    assert_eq!(
        host_view.iter().find(|p| p.id == 2).unwrap().following,
        Some(1)
    );
}

#[test]
fn garbage_drops_only_that_guest() {
    let dir = folder(&[("f.txt", "abc")]);
    let mut net = Net::new(dir.path(), 2, 11, false);
    open_everywhere(&mut net, "f.txt");
    {
        let host = &mut net.nodes[0];
        host.core.handle_net(
            NetEvent::Message {
                from: 2,
                bytes: vec![0xff, 0, 1],
            },
            &mut host.store,
        );
    }
    let other = net.collect();
    assert!(other
        .iter()
        .any(|(from, c)| *from == 0 && matches!(c, NetCommand::Drop { to: 2, .. })));
    // Bad CRDT bytes inside a well-formed message: dropped as well.
    let bad_sync = lshed::session::protocol::encode_msg(&GuestToHost::Sync {
        path: "f.txt".into(),
        changes: vec![9, 0, 0, 0, 1, 2, 3],
    })
    .unwrap();
    {
        let host = &mut net.nodes[0];
        host.core.handle_net(
            NetEvent::Message {
                from: 1,
                bytes: bad_sync,
            },
            &mut host.store,
        );
    }
    let other = net.collect();
    assert!(other
        .iter()
        .any(|(_, c)| matches!(c, NetCommand::Drop { to: 1, .. })));
    assert_eq!(net.nodes[0].core.participants().len(), 1);
    assert_eq!(net.text(0, "f.txt").unwrap(), "abc");
}

#[test]
fn end_and_leave() {
    let dir = folder(&[("f.txt", "abc")]);
    let mut net = Net::new(dir.path(), 2, 13, false);
    assert_eq!(net.nodes[1].core.state().label(), "Joined");
    net.nodes[1].core.leave();
    let cmds = net.collect();
    assert!(cmds
        .iter()
        .any(|(f, c)| *f == 1 && *c == NetCommand::Shutdown));
    assert_eq!(net.nodes[1].core.state().label(), "Inactive");
    {
        let host = &mut net.nodes[0];
        host.core.handle_net(
            NetEvent::PeerClosed {
                id: 1,
                reason: lshed::net::CloseReason::Remote(lshed::net::CloseCode::Left),
            },
            &mut host.store,
        );
    }
    assert_eq!(net.nodes[0].core.participants().len(), 2);
    net.nodes[0].core.end();
    net.collect();
    net.pump_all();
    assert_eq!(net.nodes[0].core.state().label(), "Inactive");
    assert_eq!(net.nodes[2].core.state().label(), "Inactive");
    assert!(net.events(2).contains(&SessionEvent::SessionEnded {
        message: "the host ended the session".into()
    }));
}

#[test]
fn disk_changes_by_other_programs_are_merged_but_our_saves_are_not() {
    let dir = folder(&[("f.txt", "one\ntwo\nthree\n")]);
    let mut net = Net::new(dir.path(), 1, 17, false);
    open_everywhere(&mut net, "f.txt");
    let tick = |net: &mut Net| {
        let host = &mut net.nodes[0];
        host.core.handle_net(NetEvent::Tick, &mut host.store);
        net.collect();
        net.pump_all();
    };
    // A formatter rewrites the file.
    std::fs::write(dir.path().join("f.txt"), "one\nTWO\nthree\nfour\n").unwrap();
    for _ in 0..3 {
        tick(&mut net);
    }
    assert_eq!(net.text(0, "f.txt").unwrap(), "one\nTWO\nthree\nfour\n");
    assert_eq!(net.text(1, "f.txt").unwrap(), "one\nTWO\nthree\nfour\n");
    // Our own save (guest asks) is not merged back as a change.
    net.edit(1, "f.txt", Change::insert(0, "> "));
    net.pump_all();
    net.nodes[1].core.save("f.txt");
    net.collect();
    net.pump_all();
    assert!(net.events(1).contains(&SessionEvent::Saved {
        path: "f.txt".into()
    }));
    let rev = net.nodes[0].store.doc_mut("f.txt").unwrap().revision();
    for _ in 0..3 {
        tick(&mut net);
    }
    assert_eq!(net.nodes[0].store.doc_mut("f.txt").unwrap().revision(), rev);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("f.txt")).unwrap(),
        "> one\nTWO\nthree\nfour\n"
    );
}

#[test]
fn disk_changes_merge_with_unsaved_session_edits() {
    let dir = folder(&[("f.txt", "one\ntwo\nthree\n")]);
    let mut net = Net::new(dir.path(), 1, 19, false);
    open_everywhere(&mut net, "f.txt");
    let tick = |net: &mut Net| {
        let host = &mut net.nodes[0];
        host.core.handle_net(NetEvent::Tick, &mut host.store);
        net.collect();
        net.pump_all();
    };
    // The guest edits the first line (not saved)...
    net.edit(1, "f.txt", Change::insert(0, "> "));
    net.pump_all();
    // ...while a formatter rewrites the last lines on disk.
    std::fs::write(dir.path().join("f.txt"), "one\ntwo\nTHREE\nfour\n").unwrap();
    for _ in 0..3 {
        tick(&mut net);
    }
    let want = "> one\ntwo\nTHREE\nfour\n";
    assert_eq!(net.text(0, "f.txt").unwrap(), want);
    assert_eq!(net.text(1, "f.txt").unwrap(), want);
}

#[test]
fn a_guest_cannot_send_changes_under_another_identity() {
    let dir = folder(&[("f.txt", "abc")]);
    let mut net = Net::new(dir.path(), 2, 23, false);
    open_everywhere(&mut net, "f.txt");
    // Guest 1's own change, delivered by guest 1: applied.
    let bytes = {
        let doc = net.nodes[1].store.doc_mut("f.txt").unwrap();
        doc.apply_local(&[Change::insert(3, "d")]);
        doc.take_outgoing().unwrap()
    };
    let sync = |changes: Vec<u8>| {
        lshed::session::protocol::encode_msg(&GuestToHost::Sync {
            path: "f.txt".into(),
            changes,
        })
        .unwrap()
    };
    {
        let host = &mut net.nodes[0];
        host.core.handle_net(
            NetEvent::Message {
                from: 1,
                bytes: sync(bytes.clone()),
            },
            &mut host.store,
        );
    }
    net.collect();
    assert_eq!(net.text(0, "f.txt").unwrap(), "abcd");
    // The same change replayed by guest 2: guest 1's identity, dropped.
    {
        let host = &mut net.nodes[0];
        host.core.handle_net(
            NetEvent::Message {
                from: 2,
                bytes: sync(bytes),
            },
            &mut host.store,
        );
    }
    let cmds = net.collect();
    assert!(cmds
        .iter()
        .any(|(_, c)| matches!(c, NetCommand::Drop { to: 2, .. })));
    // A change made under the host's own actor, sent by guest 1: dropped too.
    let host_bytes = {
        let doc = net.nodes[0].store.doc_mut("f.txt").unwrap();
        let mut fork = lshed::doc::Document::from_shared(
            lshed::doc::SharedState::load(
                &doc.save_crdt().unwrap(),
                doc.shared_state().unwrap().actor().clone(),
            )
            .unwrap(),
        );
        fork.apply_local(&[Change::insert(0, "X")]);
        fork.take_outgoing().unwrap()
    };
    {
        let host = &mut net.nodes[0];
        host.core.handle_net(
            NetEvent::Message {
                from: 1,
                bytes: sync(host_bytes),
            },
            &mut host.store,
        );
    }
    let cmds = net.collect();
    assert!(cmds
        .iter()
        .any(|(_, c)| matches!(c, NetCommand::Drop { to: 1, .. })));
    assert_eq!(net.text(0, "f.txt").unwrap(), "abcd");
}

// ------------------------------------------------ work off the driver thread

fn is_shared(net: &mut Net, node: usize, path: &str) -> bool {
    net.nodes[node]
        .store
        .doc_mut(path)
        .is_some_and(|d| d.is_shared())
}

/// Whether the host has a snapshot (`OpenedState`) queued for `guest`.
fn snapshot_queued_for(net: &Net, guest: usize) -> bool {
    net.queued_to_guest(guest)
        .iter()
        .any(|m| matches!(m, HostToGuest::OpenedState { .. }))
}

/// The host's text of `path`, after checking every guest has the same.
fn same_text_everywhere(net: &Net, path: &str) -> String {
    let want = net.text(0, path).unwrap();
    for g in 1..net.nodes.len() {
        assert_eq!(net.text(g, path).unwrap(), want, "guest {g}");
    }
    want
}

#[test]
fn host_edits_made_while_the_state_builds_follow_the_snapshot() {
    let dir = folder(&[("f.txt", "hello world\n")]);
    let mut net = Net::new(dir.path(), 2, 31, false);
    net.ask_open(1, "f.txt");
    // The text went out at once; the state is being built elsewhere.
    assert!(net.nodes[0].core.doc_work_pending("f.txt"));
    assert!(!is_shared(&mut net, 0, "f.txt"));
    let sent = net.queued_to_guest(1);
    assert!(
        matches!(&sent[..], [HostToGuest::Opened { text, live: true, .. }] if text == "hello world\n"),
        "{sent:?}"
    );
    // The host keeps typing meanwhile (rope only), and a second guest
    // opens the file: it waits for the same build.
    net.edit(0, "f.txt", Change::insert(0, "HOST "));
    net.ask_open(2, "f.txt");
    assert!(net.nodes[0].core.doc_work_pending("f.txt"));
    net.settle_node(0);
    assert!(is_shared(&mut net, 0, "f.txt"));
    // Each guest: its text, one snapshot (the same one: one build), then
    // the host's edit as a Sync.
    let (one, two) = (net.queued_to_guest(1), net.queued_to_guest(2));
    let snapshot = |msgs: &[HostToGuest]| match msgs {
        [HostToGuest::Opened { .. }, HostToGuest::OpenedState { state, .. }, HostToGuest::Sync { .. }] => {
            state.clone()
        }
        other => panic!("unexpected order: {other:?}"),
    };
    assert_eq!(snapshot(&one), snapshot(&two));
    net.pump_all();
    for g in 1..=2 {
        assert_eq!(net.text(g, "f.txt").unwrap(), "HOST hello world\n");
        assert!(is_shared(&mut net, g, "f.txt"));
    }
    // And they keep converging.
    net.edit(1, "f.txt", Change::insert(16, "!"));
    net.edit(0, "f.txt", Change::insert(0, ">"));
    net.pump_all();
    assert_eq!(same_text_everywhere(&net, "f.txt"), ">HOST hello world!\n");
}

#[test]
fn a_sync_arriving_while_the_snapshot_loads_is_applied_after_it() {
    let dir = folder(&[("f.txt", "abc\n")]);
    let mut net = Net::new(dir.path(), 1, 37, false);
    net.ask_open(1, "f.txt");
    net.settle_node(0);
    net.edit(0, "f.txt", Change::insert(3, "d"));
    net.edit(0, "f.txt", Change::insert(0, "<"));
    let kinds: Vec<_> = net
        .queued_to_guest(1)
        .iter()
        .map(|m| match m {
            HostToGuest::Opened { .. } => "opened",
            HostToGuest::OpenedState { .. } => "state",
            HostToGuest::Sync { .. } => "sync",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["opened", "state", "sync", "sync"]);
    // All four arrive before the guest's worker is done loading.
    assert_eq!(net.deliver(0, 1), 4);
    assert!(net.nodes[1].core.doc_work_pending("f.txt"));
    {
        let doc = net.nodes[1].store.doc_mut("f.txt").unwrap();
        assert!(doc.is_read_only() && !doc.is_shared());
        assert_eq!(doc.rope().to_string(), "abc\n");
    }
    assert!(!net.events(1).iter().any(|e| matches!(
        e,
        SessionEvent::FileReady { .. } | SessionEvent::Error { .. }
    )));
    net.settle_node(1);
    assert!(!net.nodes[1].core.doc_work_pending("f.txt"));
    assert_eq!(net.text(1, "f.txt").unwrap(), "<abcd\n");
    let events = net.events(1);
    assert!(events.iter().any(
        |e| matches!(e, SessionEvent::FileReady { path, read_only: false } if path == "f.txt")
    ));
    assert!(!events
        .iter()
        .any(|e| matches!(e, SessionEvent::Error { .. })));
    // Live: the guest's own edit reaches the host.
    net.edit(1, "f.txt", Change::insert(5, "e"));
    net.pump_all();
    assert_eq!(net.text(0, "f.txt").unwrap(), "<abcde\n");
}

/// Text that automerge's compression cannot shrink much.
fn noise(rng: &mut Rng, chars: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n";
    (0..chars)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char)
        .collect()
}

#[test]
fn a_large_message_is_applied_on_a_worker_and_later_ones_wait_for_it() {
    let dir = folder(&[("f.txt", "start\n")]);
    let mut net = Net::new(dir.path(), 2, 41, false);
    open_everywhere(&mut net, "f.txt");
    // Guest 1 pastes a lot, then types a little: three messages.
    let paste = noise(&mut Rng(99), 400_000);
    let mut sent = Vec::new();
    for (at, text) in [(0, paste.as_str()), (0, "x"), (1, "y")] {
        let g = &mut net.nodes[1];
        let doc = g.store.doc_mut("f.txt").unwrap();
        doc.apply_local(&[Change::insert(at, text)]);
        let bytes = doc.take_outgoing().unwrap();
        sent.push(bytes.clone());
        let msg = lshed::session::protocol::encode_msg(&GuestToHost::Sync {
            path: "f.txt".into(),
            changes: bytes,
        })
        .unwrap();
        net.links
            .iter_mut()
            .find(|l| l.0 == 1 && l.1 == 0)
            .unwrap()
            .2
            .push_back(msg);
    }
    assert!(sent[0].len() > lshed::session::OFF_THREAD_CHANGE_BYTES);
    assert!(sent[1].len() < lshed::session::OFF_THREAD_CHANGE_BYTES);
    let want = net.text(1, "f.txt").unwrap();
    // The host takes all three in; the first goes to a worker, with the
    // document shown, read-only, meanwhile; the others wait.
    assert_eq!(net.deliver(1, 0), 3);
    assert!(net.nodes[0].core.doc_work_pending("f.txt"));
    {
        let doc = net.nodes[0].store.doc_mut("f.txt").unwrap();
        assert!(doc.is_read_only());
        assert_eq!(doc.rope().to_string(), "start\n");
    }
    assert!(net.queued_to_guest(2).is_empty());
    net.settle_node(0);
    assert_eq!(net.text(0, "f.txt").unwrap(), want);
    assert!(!net.nodes[0].store.doc_mut("f.txt").unwrap().is_read_only());
    // Guest 2 gets the three, as sent, in order; not guest 1.
    let forwarded: Vec<Vec<u8>> = net
        .queued_to_guest(2)
        .into_iter()
        .map(|m| match m {
            HostToGuest::Sync { changes, .. } => changes,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(forwarded, sent);
    assert!(net.queued_to_guest(1).is_empty());
    // Guest 2 does the same: worker for the first, the others after.
    assert_eq!(net.deliver(0, 2), 3);
    assert!(net.nodes[2].core.doc_work_pending("f.txt"));
    assert_eq!(net.text(2, "f.txt").unwrap(), "start\n");
    net.settle_node(2);
    assert_eq!(net.text(2, "f.txt").unwrap(), want);
    assert!(!net
        .events(2)
        .iter()
        .any(|e| matches!(e, SessionEvent::Error { .. })));
    assert!(!net.events(0).iter().any(|e| matches!(
        e,
        SessionEvent::Error { .. } | SessionEvent::ParticipantLeft { .. }
    )));
    // Everyone still edits together.
    net.edit(2, "f.txt", Change::insert(0, "2"));
    net.edit(0, "f.txt", Change::insert(0, "0"));
    net.pump_all();
    let end = same_text_everywhere(&net, "f.txt");
    assert!(end.starts_with("02") || end.starts_with("20"));
}

#[test]
fn results_arriving_after_the_session_ended_are_dropped() {
    // Host: the session ends while a build is in flight.
    let dir = folder(&[("f.txt", "abc\n")]);
    let mut net = Net::new(dir.path(), 1, 43, false);
    net.ask_open(1, "f.txt");
    assert!(net.nodes[0].core.doc_work_pending("f.txt"));
    {
        let host = &mut net.nodes[0];
        host.core.end();
        host.core.wait_for_doc_work(&mut host.store);
        assert!(!host.core.doc_work_pending("f.txt"));
        assert!(!host.store.doc_mut("f.txt").unwrap().is_shared());
    }
    let after_end: Vec<_> = net
        .collect()
        .into_iter()
        .map(|(_, c)| c)
        .chain(net.nodes[0].core.take_commands())
        .collect();
    assert!(!after_end
        .iter()
        .any(|c| matches!(c, NetCommand::Send { .. })));
    assert!(!snapshot_queued_for(&net, 1));

    // Guest: it leaves while the snapshot loads.
    let mut net = Net::new(dir.path(), 1, 47, false);
    net.ask_open(1, "f.txt");
    net.settle_node(0);
    net.deliver(0, 1);
    assert!(net.nodes[1].core.doc_work_pending("f.txt"));
    {
        let g = &mut net.nodes[1];
        g.core.leave();
        g.core.wait_for_doc_work(&mut g.store);
        assert!(!g.store.doc_mut("f.txt").unwrap().is_shared());
    }
    assert!(!net
        .events(1)
        .iter()
        .any(|e| matches!(e, SessionEvent::FileReady { .. })));

    // Host: the only guest waiting for a build leaves; the host's own
    // document still becomes shared (for whoever opens it next).
    let mut net = Net::new(dir.path(), 1, 53, false);
    net.ask_open(1, "f.txt");
    {
        let host = &mut net.nodes[0];
        host.core.handle_net(
            NetEvent::PeerClosed {
                id: 1,
                reason: lshed::net::CloseReason::Remote(lshed::net::CloseCode::Left),
            },
            &mut host.store,
        );
        host.core.wait_for_doc_work(&mut host.store);
        assert!(host.store.doc_mut("f.txt").unwrap().is_shared());
    }
    assert!(!snapshot_queued_for(&net, 1));
}

/// Two guests type thousands of chars at one spot of a file: the host
/// splits the busy chunk as they go (its split and the moved racing edits
/// reach every guest through the session), everyone converges, nothing
/// typed is lost and no chunk stays big.
#[test]
fn long_typing_in_one_place_is_split_by_the_host_through_the_session() {
    let dir = folder(&[("f.txt", "0123456789\n")]);
    let mut net = Net::new(dir.path(), 2, 4242, true);
    open_everywhere(&mut net, "f.txt");
    // Split every few hundred chars (default: every 4096), so that splits
    // race with the guests' typing many times.
    let host_doc = net.nodes[0].store.doc_mut("f.txt").unwrap();
    host_doc.shared_state_mut().unwrap().set_split_churn(400);
    let mut typed = 0;
    for i in 0..3000 {
        let who = 1 + i % 2;
        let len = net.text(who, "f.txt").unwrap().chars().count();
        // Both type in the middle of the text, one char each turn.
        net.edit(who, "f.txt", Change::insert(len / 2, "é"));
        typed += 1;
        if i % 5 == 0 {
            net.deliver_one();
        }
        if i % 97 == 0 {
            net.pump_all();
        }
    }
    net.pump_all();
    let text = same_text_everywhere(&net, "f.txt");
    assert_eq!(text.chars().filter(|&c| c == 'é').count(), typed);
    let host = net.nodes[0].store.doc_mut("f.txt").unwrap();
    let state = host.shared_state().unwrap();
    assert!(state.retired_count() > 0, "the host split the busy chunk");
    assert!(state.longest_chunk() <= lshed::doc::SPLIT_CHURN);
    let host_chunks = state.chunk_count();
    for g in 1..=2 {
        let doc = net.nodes[g].store.doc_mut("f.txt").unwrap();
        let s = doc.shared_state().unwrap();
        assert_eq!(s.chunk_count(), host_chunks, "guest {g} follows the layout");
        assert_eq!(s.text(), doc.rope().to_string(), "guest {g} mirror");
    }
}

/// Guests who open a file after it was shared and edited get the cached
/// snapshot plus one `Sync` of what changed since (no save on the host's
/// driver); once that grows past the refresh size, a new snapshot is made
/// on a worker and later guests get it instead.
#[test]
fn later_guests_get_the_cached_snapshot_and_the_changes_since() {
    let dir = folder(&[("f.txt", "hello world\n")]);
    let mut net = Net::new(dir.path(), 3, 99, false);
    // Guest 1 opens: the state is built, the snapshot cached.
    net.ask_open(1, "f.txt");
    net.pump_all();
    net.edit(0, "f.txt", Change::insert(5, ","));
    net.edit(1, "f.txt", Change::insert(0, ">"));
    net.pump_all();
    // Guest 2 opens: snapshot, then a Sync of both edits.
    net.ask_open(2, "f.txt");
    let queued = net.queued_to_guest(2);
    let kinds: Vec<&str> = queued
        .iter()
        .map(|m| match m {
            HostToGuest::Opened { .. } => "opened",
            HostToGuest::OpenedState { .. } => "state",
            HostToGuest::Sync { .. } => "sync",
            _ => "other",
        })
        .filter(|k| *k != "other")
        .collect();
    assert_eq!(kinds, ["opened", "state", "sync"]);
    net.pump_all();
    assert_eq!(
        same_text_everywhere_but(&net, "f.txt", 3),
        ">hello, world\n"
    );
    // A big edit: the next opener's backlog would pass the refresh size,
    // so a new snapshot is made (on a worker) while guest 3 is served.
    let big = "x".repeat(300 * 1024);
    net.edit(0, "f.txt", Change::insert(0, big));
    net.pump_all();
    net.ask_open(3, "f.txt");
    net.pump_all();
    let text = same_text_everywhere(&net, "f.txt");
    assert!(text.ends_with(">hello, world\n"));
    // The refreshed snapshot includes everything: nothing more to send.
    net.edit(0, "f.txt", Change::insert(0, "!"));
    net.pump_all();
    net.nodes[3].core.close("f.txt");
    net.collect();
    net.pump_all();
    net.ask_open(3, "f.txt");
    let queued = net.queued_to_guest(3);
    let sync_bytes: usize = queued
        .iter()
        .filter_map(|m| match m {
            HostToGuest::Sync { changes, .. } => Some(changes.len()),
            _ => None,
        })
        .sum();
    assert!(
        sync_bytes < 4096,
        "{sync_bytes} bytes since the new snapshot"
    );
    net.pump_all();
    same_text_everywhere(&net, "f.txt");
}

/// The host's text of `path`, checked equal at guests 1..n (the others
/// have not opened it).
fn same_text_everywhere_but(net: &Net, path: &str, n: usize) -> String {
    let want = net.text(0, path).unwrap();
    for g in 1..n {
        assert_eq!(net.text(g, path).unwrap(), want, "guest {g}");
    }
    want
}

/// A guest renames a file that everyone has open: the host renames it on
/// disk, and every document follows under the new path (nobody's edits are
/// lost, saves go to the new file, the old one is not recreated).
#[test]
fn renaming_an_open_file_retargets_everyones_document() {
    let dir = folder(&[("docs/f.txt", "hello\n")]);
    let mut net = Net::new(dir.path(), 2, 5, false);
    open_everywhere(&mut net, "docs/f.txt");
    net.edit(1, "docs/f.txt", Change::insert(0, "A"));
    net.pump_all();
    // Guest 2 renames the folder the file is in.
    net.nodes[2].core.rename("docs", "notes");
    net.collect();
    net.pump_all();
    assert!(dir.path().join("notes/f.txt").exists());
    assert!(!dir.path().join("docs").exists());
    for n in 0..3 {
        assert!(
            net.text(n, "docs/f.txt").is_none(),
            "node {n} still has the old path"
        );
        assert_eq!(
            net.text(n, "notes/f.txt").as_deref(),
            Some("Ahello\n"),
            "node {n}"
        );
    }
    // Editing goes on under the new name, both ways.
    net.edit(2, "notes/f.txt", Change::insert(1, "B"));
    net.edit(0, "notes/f.txt", Change::insert(0, "H"));
    net.pump_all();
    assert_eq!(same_text_everywhere(&net, "notes/f.txt"), "HABhello\n");
    // A guest's save lands in the renamed file.
    net.nodes[1].core.save("notes/f.txt");
    net.collect();
    net.pump_all();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes/f.txt")).unwrap(),
        "HABhello\n"
    );
    assert!(!dir.path().join("docs").exists(), "the old path came back");
}

/// A guest's edit raced the host's split of its chunk, and the guest left
/// before it saw the split (so it never moved the edit itself): the host
/// moves it when the guest is gone, and the others get it.
#[test]
fn the_host_moves_the_racing_edit_of_a_guest_that_left() {
    let initial = format!("{}<<M>>{}", "a".repeat(300), "b".repeat(300));
    let dir = folder(&[("f.txt", &initial)]);
    let mut net = Net::new(dir.path(), 2, 29, false);
    open_everywhere(&mut net, "f.txt");
    let at = initial.find("<<M>>").unwrap() + 5;
    net.edit(1, "f.txt", Change::insert(at, "LEFT"));
    // The host types inside the same chunk until it splits it (its churn
    // passes lshed::doc::SPLIT_CHURN), while guest 1's edit is in flight.
    for _ in 0..5 {
        net.edit(0, "f.txt", Change::insert(10, "H".repeat(900)));
    }
    let retired = net.nodes[0]
        .store
        .doc_mut("f.txt")
        .and_then(|d| d.shared_state().map(|s| s.retired_count()))
        .unwrap();
    assert!(retired >= 1, "the host split the chunk");
    net.deliver(1, 0);
    assert!(!net.text(0, "f.txt").unwrap().contains("LEFT"), "raced");
    {
        let host = &mut net.nodes[0];
        host.core.handle_net(
            NetEvent::PeerClosed {
                id: 1,
                reason: lshed::net::CloseReason::Remote(lshed::net::CloseCode::Left),
            },
            &mut host.store,
        );
    }
    net.collect();
    let text = net.text(0, "f.txt").unwrap();
    assert_eq!(text.matches("LEFT").count(), 1, "moved once");
    assert!(text.contains("<<M>>LEFTbbb"), "in place");
    net.pump_all();
    assert_eq!(net.text(2, "f.txt").unwrap(), text, "guest 2 has it too");
}
