//! Replays the real editing traces in tests/data/traces through `Document`.
//!
//! Every trace is replayed through the rope path (unshared) and through the
//! shared path (automerge + rope mirror), and the shared replay is also sent
//! change by change to a second replica as remote changes. All must end at
//! the trace's endContent. (automerge is built optimised in the dev profile,
//! see Cargo.toml, which keeps this test at a few seconds per trace.)

#[path = "doc_support/trace.rs"]
#[allow(dead_code)] // shared with benches/doc.rs, which uses all of it
mod trace;

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

/// Transactions of each trace replayed through automerge in debug builds;
/// the full traces run in the release-only test below (and in the bench).
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

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "minutes in debug builds: cargo test --release --test doc_traces"
)]
fn traces_replay_through_automerge_locally_and_remotely() {
    for t in trace::all() {
        let (host, guest, guest_am) = replay_shared(&t, usize::MAX);
        assert_eq!(host, t.end, "{} (host)", t.name);
        assert_eq!(guest, t.end, "{} (guest)", t.name);
        assert_eq!(guest_am, t.end, "{} (guest automerge)", t.name);
    }
}
