//! Helpers shared by the `doc` tests: actors, the text, the mirror check,
//! and a sync-protocol exchange between two documents. Included with
//! `#[path]`.
#![allow(dead_code)]

use lshed::doc::{ActorId, Document, PeerSync};

pub fn actor(n: u8) -> ActorId {
    ActorId::from(vec![n; 16])
}

pub fn text(doc: &Document) -> String {
    doc.rope().to_string()
}

/// The rope mirrors automerge, and the chunk table adds up.
pub fn check_mirror(doc: &Document) {
    let s = doc.shared_state().expect("shared");
    assert_eq!(s.text(), text(doc), "rope mirror differs from automerge");
    assert_eq!(s.len_chars(), doc.len_chars());
    s.check_invariants().expect("chunk table");
}

/// Runs the sync protocol between `a` and `b` (fresh sync states, as after
/// a reconnection) until neither has anything to say; returns the rounds
/// that carried a message. Panics if still talking after `max_rounds`.
pub fn sync(a: &mut Document, b: &mut Document, max_rounds: usize) -> usize {
    let (mut sa, mut sb) = (PeerSync::new(), PeerSync::new());
    for round in 0..max_rounds {
        let mut quiet = true;
        if let Some(m) = a.generate_sync_message(&mut sa).unwrap() {
            b.receive_sync_message(&mut sb, &m).unwrap();
            quiet = false;
        }
        if let Some(m) = b.generate_sync_message(&mut sb).unwrap() {
            a.receive_sync_message(&mut sa, &m).unwrap();
            quiet = false;
        }
        if quiet {
            return round;
        }
    }
    panic!("sync did not settle in {max_rounds} rounds");
}
