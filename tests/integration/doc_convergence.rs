//! Property test: 2 to 5 peers edit one shared document concurrently over a
//! simulated network that delays, reorders, duplicates and drops messages
//! (a peer whose messages were dropped is brought back with the sync
//! protocol). All peers must converge to the same text, every rope mirror
//! must equal its automerge text, and every stable cursor must resolve
//! inside the text.

use lshed::doc::{Change, Document, SharedState, StablePos};
use proptest::prelude::*;

use crate::support::doc as support;

const SNIPPETS: &[&str] = &[
    "a",
    "xy",
    "é",
    "日本",
    "🎉",
    "e\u{301}",
    "\r\n",
    "\n",
    "👩‍👩‍👧",
    "Zz9 ",
];

#[derive(Debug, Clone)]
enum Action {
    /// Peer edits: delete `del` chars at a position fraction, insert snippets.
    Edit {
        peer: usize,
        at: f64,
        del: usize,
        ins: Vec<usize>,
    },
    /// Deliver one queued packet (chosen by index: reordering).
    Deliver {
        inbox: usize,
        pick: usize,
        duplicate: bool,
    },
    /// Lose everything queued for a peer; it must resync later.
    Drop {
        inbox: usize,
    },
    /// Peer resyncs with another through the sync protocol.
    Resync {
        a: usize,
        b: usize,
    },
    Undo {
        peer: usize,
    },
    Redo {
        peer: usize,
    },
    BreakGroup {
        peer: usize,
    },
    /// Peer places its cursor.
    Cursor {
        peer: usize,
        at: f64,
    },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (0..5usize, 0.0..=1.0f64, 0..4usize, prop::collection::vec(0..SNIPPETS.len(), 0..3))
            .prop_map(|(peer, at, del, ins)| Action::Edit { peer, at, del, ins }),
        6 => (0..5usize, 0..64usize, prop::bool::weighted(0.2))
            .prop_map(|(inbox, pick, duplicate)| Action::Deliver { inbox, pick, duplicate }),
        1 => (0..5usize).prop_map(|inbox| Action::Drop { inbox }),
        1 => (0..5usize, 0..5usize).prop_map(|(a, b)| Action::Resync { a, b }),
        1 => (0..5usize).prop_map(|peer| Action::Undo { peer }),
        1 => (0..5usize).prop_map(|peer| Action::Redo { peer }),
        1 => (0..5usize).prop_map(|peer| Action::BreakGroup { peer }),
        1 => (0..5usize, 0.0..=1.0f64).prop_map(|(peer, at)| Action::Cursor { peer, at }),
    ]
}

/// Seen at most 4 in thousands of cases; automerge's summaries of what a
/// peer has are bloom filters, whose false positives can cost a round.
const MAX_SYNC_ROUNDS: usize = 8;

struct Net {
    peers: Vec<Document>,
    inboxes: Vec<Vec<Vec<u8>>>,
    cursors: Vec<Vec<u8>>, // encoded stable positions of all peers
}

impl Net {
    fn new(n: usize, initial: &str, split_churn: Option<usize>) -> Self {
        let mut host = Document::from_text(initial);
        host.share(support::actor(1)).unwrap();
        if let (Some(churn), Some(state)) = (split_churn, host.shared_state_mut()) {
            state.set_splitting(true);
            state.set_split_churn(churn);
        }
        let saved = host.save_crdt().unwrap();
        let mut peers = vec![host];
        for i in 1..n {
            let state = SharedState::load(&saved, support::actor(i as u8 + 1)).unwrap();
            peers.push(Document::from_shared(state));
        }
        Self {
            peers,
            inboxes: vec![Vec::new(); n],
            cursors: Vec::new(),
        }
    }

    fn broadcast(&mut self, from: usize) {
        if let Some(msg) = self.peers[from].take_outgoing() {
            for (i, inbox) in self.inboxes.iter_mut().enumerate() {
                if i != from {
                    inbox.push(msg.clone());
                }
            }
        }
    }

    fn sync_pair(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        // A few rounds, however much either side missed: changes that
        // arrived before their dependencies must not make a peer ask for
        // the missing ones one round trip at a time.
        let (lo, hi) = (a.min(b), a.max(b));
        let (left, right) = self.peers.split_at_mut(hi);
        support::sync(&mut left[lo], &mut right[0], MAX_SYNC_ROUNDS);
    }

    fn check_peer(&self, i: usize) {
        let doc = &self.peers[i];
        let state = doc.shared_state().unwrap();
        assert_eq!(
            state.text(),
            doc.rope().to_string(),
            "peer {i}: mirror != automerge"
        );
        for c in &self.cursors {
            let pos = StablePos::from_bytes(c).unwrap();
            if let Some(at) = doc.resolve(&pos) {
                assert!(at <= doc.len_chars(), "cursor past the end");
                // A char index is always a char boundary of the rope.
                let _ = doc.rope().char_to_byte(at);
            }
        }
    }
}

fn run(n: usize, initial: &str, actions: &[Action]) {
    run_with(n, initial, actions, None);
}

/// `split_churn`: peer 0 owns the layout and splits chunks past that churn
/// (as a session host does), sending its splits and repairs like edits.
/// Returns how many splits the peers saw.
fn run_with(n: usize, initial: &str, actions: &[Action], split_churn: Option<usize>) -> usize {
    let mut net = Net::new(n, initial, split_churn);
    for a in actions {
        match a.clone() {
            Action::Edit { peer, at, del, ins } => {
                let p = peer % n;
                let len = net.peers[p].len_chars();
                let pos = ((len as f64) * at) as usize;
                let text: String = ins.iter().map(|&i| SNIPPETS[i]).collect();
                net.peers[p].apply_local(&[Change::replace(pos, pos + del, text)]);
                net.broadcast(p);
            }
            Action::Deliver {
                inbox,
                pick,
                duplicate,
            } => {
                let i = inbox % n;
                if !net.inboxes[i].is_empty() {
                    let k = pick % net.inboxes[i].len();
                    let msg = if duplicate {
                        net.inboxes[i][k].clone()
                    } else {
                        net.inboxes[i].remove(k)
                    };
                    net.peers[i].apply_remote(&msg).unwrap();
                    net.check_peer(i);
                    // What the layout owner did on receiving it (a split,
                    // a racing edit moved) goes out like its edits.
                    net.broadcast(i);
                }
            }
            Action::Drop { inbox } => net.inboxes[inbox % n].clear(),
            Action::Resync { a, b } => {
                net.sync_pair(a % n, b % n);
                net.check_peer(a % n);
                net.check_peer(b % n);
            }
            Action::Undo { peer } => {
                net.peers[peer % n].undo();
                net.broadcast(peer % n);
            }
            Action::Redo { peer } => {
                net.peers[peer % n].redo();
                net.broadcast(peer % n);
            }
            Action::BreakGroup { peer } => net.peers[peer % n].break_undo_group(),
            Action::Cursor { peer, at } => {
                let p = peer % n;
                let pos = ((net.peers[p].len_chars() as f64) * at) as usize;
                let c = net.peers[p].stable_pos(pos).unwrap();
                assert_eq!(net.peers[p].resolve(&c), Some(pos));
                net.cursors.push(c.to_bytes());
            }
        }
    }
    // Heal the network: deliver what is left, then resync everybody (what
    // was dropped comes back through the sync protocol).
    for i in 0..n {
        for msg in std::mem::take(&mut net.inboxes[i]) {
            net.peers[i].apply_remote(&msg).unwrap();
        }
    }
    for i in 1..n {
        net.sync_pair(0, i);
    }
    for i in 1..n {
        net.sync_pair(0, i);
    }
    let expected = net.peers[0].rope().to_string();
    for i in 0..n {
        assert_eq!(
            net.peers[i].rope().to_string(),
            expected,
            "peer {i} diverged"
        );
        net.check_peer(i);
    }
    net.peers[0].shared_state().map_or(0, |s| s.retired_count())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn peers_converge(
        n in 2..=5usize,
        initial in prop::collection::vec(0..SNIPPETS.len(), 0..40),
        actions in prop::collection::vec(action(), 1..60),
    ) {
        let initial: String = initial.iter().map(|&i| SNIPPETS[i]).collect();
        run(n, &initial, &actions);
    }

    #[test]
    fn peers_converge_while_the_host_splits_chunks(
        n in 2..=5usize,
        initial in prop::collection::vec(0..SNIPPETS.len(), 0..40),
        actions in prop::collection::vec(action(), 1..60),
    ) {
        let initial: String = initial.iter().map(|&i| SNIPPETS[i]).collect();
        run_with(n, &initial, &actions, Some(12));
    }
}

/// Found by the property test: peer 1 loses what the host sent, then gets
/// the host's later changes, which wait for the lost ones. Its resync with
/// the splitting host used to fetch one lost change per round trip (more
/// than 20 rounds here) because automerge's queue of waiting changes
/// steered the sync protocol.
#[test]
fn resync_after_lost_messages_settles_in_a_few_rounds() {
    use Action::*;
    let edit = |peer, at, del, ins: &[usize]| Edit {
        peer,
        at,
        del,
        ins: ins.to_vec(),
    };
    let actions = vec![
        edit(1, 0.0, 0, &[0]),
        edit(0, 0.0, 0, &[]),
        edit(0, 0.0, 1, &[]),
        edit(0, 0.0, 0, &[9]),
        edit(3, 0.0, 1, &[8]),
        edit(0, 0.75, 2, &[8]),
        Resync { a: 4, b: 3 },
        edit(0, 0.0, 0, &[0]),
        edit(2, 0.0, 1, &[0]),
        edit(1, 0.0, 0, &[8]),
        edit(1, 0.0, 0, &[0]),
        Undo { peer: 0 },
        Undo { peer: 1 },
        edit(0, 0.0, 0, &[0]),
        Undo { peer: 2 },
        edit(3, 0.0, 1, &[]),
        Drop { inbox: 1 },
        edit(1, 0.0, 0, &[0]),
        edit(4, 0.0, 1, &[]),
    ];
    let initial: String = [4usize, 0].iter().map(|&i| SNIPPETS[i]).collect();
    run_with(5, &initial, &actions, Some(12));
}

/// Larger texts, so edits cross chunk boundaries and create new chunks.
#[test]
fn converge_on_a_multi_chunk_text() {
    run(3, &"abc日本🎉\r\n".repeat(800), &multi_chunk_actions());
}

/// The same with the host splitting every few dozen chars of churn, so
/// that splits race with edits, undo, duplicates, drops and resyncs.
#[test]
fn converge_on_a_multi_chunk_text_while_the_host_splits() {
    let splits = run_with(
        3,
        &"abc日本🎉\r\n".repeat(800),
        &multi_chunk_actions(),
        Some(64),
    );
    assert!(splits > 0, "no split happened");
}

fn multi_chunk_actions() -> Vec<Action> {
    let mut actions = Vec::new();
    let mut rng = 12345u64;
    let mut next = || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) as usize
    };
    for _ in 0..400 {
        let r = next() % 10;
        actions.push(match r {
            0..=4 => Action::Edit {
                peer: next(),
                at: (next() % 1000) as f64 / 1000.0,
                del: if next() % 10 == 0 {
                    next() % 3000
                } else {
                    next() % 3
                },
                ins: (0..next() % 3).map(|_| next() % SNIPPETS.len()).collect(),
            },
            5..=7 => Action::Deliver {
                inbox: next(),
                pick: next(),
                duplicate: next() % 5 == 0,
            },
            8 => Action::Undo { peer: next() },
            _ => Action::Cursor {
                peer: next(),
                at: (next() % 1000) as f64 / 1000.0,
            },
        });
    }
    actions
}
