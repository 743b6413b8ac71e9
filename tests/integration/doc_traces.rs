//! Replays the real editing traces in tests/data/traces through `Document`.
//!
//! Every trace is replayed in full through the rope path (unshared) and
//! through the shared path (automerge + rope mirror), and must end at the
//! trace's endContent; a prefix of each is also sent change by change to a
//! second replica as remote changes. (automerge and its column store are
//! built optimised in the dev profile, see Cargo.toml, which keeps this
//! test fast in debug builds.)

use crate::support::trace;

use lshed::doc::{ActorId, Change, Document, SharedState};
use std::time::Instant;

fn changes(txn: &[(usize, usize, String)]) -> Vec<Change> {
    txn.iter()
        .map(|(pos, del, ins)| Change::replace(*pos, pos + del, ins.clone()))
        .collect()
}

#[test]
fn traces_replay_through_the_rope() {
    let traces = trace::all();
    assert!(traces.len() >= 8, "traces missing from tests/data/traces");
    for t in &traces {
        let mut doc = Document::from_text(&t.start);
        for txn in &t.txns {
            doc.apply_local(&changes(txn));
        }
        assert_eq!(doc.rope().to_string(), t.end, "{}", t.name);
    }
}

/// Transactions of each trace replayed to a second replica as remote
/// changes.
const DEBUG_PREFIX: usize = 1_500;

fn replay_shared(t: &trace::Trace, txns: usize) -> (String, String, String) {
    let started = Instant::now();
    let mut host = Document::from_text(&t.start);
    host.share(ActorId::from(vec![1u8; 16])).unwrap();
    let saved = host.save_crdt().unwrap();
    let mut guest =
        Document::from_shared(SharedState::load(&saved, ActorId::from(vec![2u8; 16])).unwrap());
    for txn in t.txns.iter().take(txns) {
        host.apply_local(&changes(txn));
        let msg = host.take_outgoing().unwrap();
        guest.apply_remote(&msg).unwrap();
    }
    eprintln!(
        "{}: {} txns, {} chunks, longest {} chars, {:?}",
        t.name,
        txns.min(t.txns.len()),
        host.shared_state().unwrap().chunk_count(),
        host.shared_state().unwrap().longest_chunk(),
        started.elapsed()
    );
    (
        host.rope().to_string(),
        guest.rope().to_string(),
        guest.shared_state().unwrap().text(),
    )
}

#[test]
fn trace_prefixes_replay_through_automerge_locally_and_remotely() {
    for t in trace::all() {
        let mut plain = Document::from_text(&t.start);
        for txn in t.txns.iter().take(DEBUG_PREFIX) {
            plain.apply_local(&changes(txn));
        }
        let expected = plain.rope().to_string();
        let (host, guest, guest_am) = replay_shared(&t, DEBUG_PREFIX);
        assert_eq!(host, expected, "{} (host)", t.name);
        assert_eq!(guest, expected, "{} (guest)", t.name);
        assert_eq!(guest_am, expected, "{} (guest automerge)", t.name);
    }
}

/// Every trace in full through automerge on one replica (the local path:
/// automerge splice + rope), checked against endContent. Replaying a whole
/// trace as *remote* changes is not done here: see the known limit in the
/// `doc` module docs (a trace typed into one chunk makes late remote ops
/// cost tens of ms each); the bench measures remote windows instead.
#[test]
fn traces_replay_through_automerge_in_full() {
    for t in trace::all() {
        let started = Instant::now();
        let mut doc = Document::from_text(&t.start);
        doc.share(ActorId::from(vec![1u8; 16])).unwrap();
        for txn in &t.txns {
            doc.apply_local(&changes(txn));
        }
        assert_eq!(doc.rope().to_string(), t.end, "{} (rope)", t.name);
        assert_eq!(
            doc.shared_state().unwrap().text(),
            t.end,
            "{} (automerge)",
            t.name
        );
        eprintln!("{} in full: {:?}", t.name, started.elapsed());
    }
}
