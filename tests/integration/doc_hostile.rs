//! Fuzz-style tests: random and mutated bytes fed to every decode path of
//! `doc` must give an error or a valid result, never a panic, and must never
//! leave the document corrupted (rope mirror = automerge text, and the
//! document still exchanges edits with an honest peer afterwards).

use lshed::doc::{ActorId, Change, DocError, Document, PeerSync, SharedState, StablePos};
use proptest::prelude::*;

use crate::support::doc as support;
use support::{actor, sync};

/// A host and a guest with some history, plus real messages of every kind.
struct Sample {
    host: Document,
    guest: Document,
    change_msg: Vec<u8>,
    sync_msgs: Vec<Vec<u8>>,
    saved: Vec<u8>,
    initial: Vec<u8>,
    pos: Vec<u8>,
    sync_state: Vec<u8>,
}

fn sample() -> Sample {
    let mut host = Document::from_text(&"héllo wörld 🎉\n".repeat(200));
    host.share(actor(1)).unwrap();
    let saved = host.save_crdt().unwrap();
    let guest = Document::from_shared(SharedState::load(&saved, actor(2)).unwrap());
    host.apply_local(&[Change::insert(3, "abc")]);
    host.apply_local(&[Change::replace(10, 40, "日本")]);
    let change_msg = host.take_outgoing().unwrap();
    let mut fresh = Document::from_shared(SharedState::empty(actor(3)));
    let (mut hs, mut fs) = (PeerSync::new(), PeerSync::new());
    let mut sync_msgs = Vec::new();
    for _ in 0..4 {
        if let Some(m) = host.generate_sync_message(&mut hs).unwrap() {
            fresh.receive_sync_message(&mut fs, &m).unwrap();
            sync_msgs.push(m);
        }
        if let Some(m) = fresh.generate_sync_message(&mut fs).unwrap() {
            host.receive_sync_message(&mut hs, &m).unwrap();
            sync_msgs.push(m);
        }
    }
    let saved2 = host.save_crdt().unwrap();
    let pos = host.stable_pos(100).unwrap().to_bytes();
    Sample {
        host,
        guest,
        change_msg,
        sync_msgs,
        saved: saved2,
        initial: saved,
        pos,
        sync_state: hs.encode(),
    }
}

/// The document is consistent and still works with an honest peer. (The
/// honest host's own later changes may have been pre-empted by a forged
/// change with the same actor and sequence number: automerge changes are
/// not signed, so the session layer must check who sends which actor's
/// changes, see `lshed::doc::change_actors`. A third peer is used here.)
fn assert_sound(doc: &mut Document, initial: &[u8]) {
    let state = doc.shared_state().unwrap();
    assert_eq!(state.text(), doc.rope().to_string(), "mirror corrupted");
    let mut third = Document::from_shared(SharedState::load(initial, actor(7)).unwrap());
    third.apply_local(&[Change::insert(0, "ok")]);
    let msg = third.take_outgoing().unwrap();
    doc.apply_remote(&msg).unwrap();
    assert!(doc.rope().to_string().starts_with("ok"));
    let state = doc.shared_state().unwrap();
    assert_eq!(state.text(), doc.rope().to_string(), "mirror corrupted");
}

fn mutate(base: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut out = base.to_vec();
    for &(at, kind, byte) in edits {
        if out.is_empty() {
            out.push(byte);
            continue;
        }
        let i = at % out.len();
        match kind % 4 {
            0 => out[i] = byte,
            1 => out[i] ^= 1 << (byte % 8),
            2 => out.truncate(i),
            _ => out.insert(i, byte),
        }
    }
    out
}

fn feed_everything(s: &mut Sample, bytes: &[u8]) {
    let _ = s.guest.apply_remote(bytes);
    let mut peer = PeerSync::new();
    let _ = s.guest.receive_sync_message(&mut peer, bytes);
    let _ = s.guest.generate_sync_message(&mut peer);
    let _ = SharedState::load(bytes, actor(9));
    if let Ok(p) = StablePos::from_bytes(bytes) {
        let _ = s.guest.resolve(&p);
    }
    if let Ok(mut st) = PeerSync::decode(bytes) {
        let _ = s.guest.generate_sync_message(&mut st);
        let _ = s.guest.receive_sync_message(&mut st, bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut s = sample();
        feed_everything(&mut s, &bytes);
        assert_sound(&mut s.guest, &s.initial.clone());
    }

    #[test]
    fn mutated_messages_never_panic_or_corrupt(
        which in 0..5usize,
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        let mut s = sample();
        let base = match which {
            0 => s.change_msg.clone(),
            1 => s.sync_msgs[0].clone(),
            2 => s.sync_msgs.last().cloned().unwrap_or_default(),
            3 => s.saved.clone(),
            _ => if edits[0].1 % 2 == 0 { s.pos.clone() } else { s.sync_state.clone() },
        };
        let bytes = mutate(&base, &edits);
        feed_everything(&mut s, &bytes);
        assert_sound(&mut s.guest, &s.initial.clone());
    }
}

#[test]
fn truncated_change_message_is_an_error_and_changes_nothing() {
    let mut s = sample();
    let before = s.guest.rope().to_string();
    for cut in [1, 4, 5, s.change_msg.len() / 2, s.change_msg.len() - 1] {
        assert!(
            s.guest.apply_remote(&s.change_msg[..cut]).is_err(),
            "cut {cut}"
        );
        assert_eq!(s.guest.rope().to_string(), before);
    }
    s.guest.apply_remote(&s.change_msg).unwrap();
    assert_eq!(s.guest.rope().to_string(), s.host.rope().to_string());
}

#[test]
fn a_document_without_the_layout_is_refused() {
    let mut am = automerge::AutoCommit::new();
    use automerge::transaction::Transactable;
    am.put(automerge::ROOT, "other", 1).unwrap();
    let bytes = am.save();
    assert!(matches!(
        SharedState::load(&bytes, actor(4)),
        Err(lshed::doc::DocError::NotADocument(_))
    ));
}

/// A well-formed change whose op names an object that does not exist makes
/// automerge 0.12 panic while applying ("Obj ... Missing from Index"), after
/// it has started changing its state. The document must contain the panic,
/// rebuild its automerge state from the checkpoint and the log of good
/// changes, keep its text, and go on working with the honest peer.
#[test]
fn a_change_that_panics_automerge_mid_apply_is_contained_and_recovered() {
    use automerge::legacy::{ObjectId, OpId};

    let mut host = Document::from_text("hello world\n");
    host.share(actor(1)).unwrap();
    let saved = host.save_crdt().unwrap();
    let mut guest = Document::from_shared(SharedState::load(&saved, actor(2)).unwrap());
    // Some good history on both sides since the checkpoint, so recovery has
    // a log to replay.
    for i in 0..20 {
        host.apply_local(&[Change::insert(5, if i % 2 == 0 { "," } else { "!" })]);
        let msg = host.take_outgoing().unwrap();
        guest.apply_remote(&msg).unwrap();
    }
    guest.apply_local(&[Change::insert(0, ">")]);
    let honest = guest.take_outgoing().unwrap();
    host.apply_remote(&honest).unwrap();
    let before = host.rope().to_string();

    // The guest's next change, rewritten to target an object nobody made.
    guest.apply_local(&[Change::insert(1, "x")]);
    let msg = guest.take_outgoing().unwrap();
    let raw = &msg[4..]; // one change: [u32 length][bytes]
    let change = automerge::Change::from_bytes(raw.to_vec()).unwrap();
    let mut expanded = change.decode();
    let author = expanded.actor_id.clone();
    for op in &mut expanded.operations {
        op.obj = ObjectId::Id(OpId(999_999, author.clone()));
    }
    let forged = automerge::Change::from(expanded);
    let mut bad = (forged.raw_bytes().len() as u32).to_le_bytes().to_vec();
    bad.extend_from_slice(forged.raw_bytes());

    let revision = host.revision();
    let err = host.apply_remote(&bad).expect_err("a forged change");
    assert!(
        matches!(err, DocError::Panicked { .. }),
        "automerge panicked and it was contained: {err:?}"
    );
    assert_eq!(host.rope().to_string(), before, "text kept");
    let state = host.shared_state().unwrap();
    assert_eq!(state.text(), before, "automerge state rebuilt");
    state.check_invariants().unwrap();
    assert!(host.revision() >= revision);

    // Life goes on: the real change still applies (the forged one left no
    // trace), and both sides keep editing and converge.
    host.apply_remote(&msg).unwrap();
    host.apply_local(&[Change::insert(0, "H")]);
    let out = host.take_outgoing().unwrap();
    guest.apply_remote(&out).unwrap();
    guest.apply_local(&[Change::insert(guest.len_chars(), "G")]);
    let out = guest.take_outgoing().unwrap();
    host.apply_remote(&out).unwrap();
    assert_eq!(host.rope().to_string(), guest.rope().to_string());
    assert!(host.rope().to_string().starts_with("H>x"));
    assert!(host.rope().to_string().ends_with('G'));
}

/// A peer that floods changes whose dependency never comes (hostile, or
/// after a lost message) costs bounded memory: they are held up to a limit
/// (16 MiB), the oldest forgotten past it, and the document stays sound
/// and catches up through the sync protocol once the dependency exists.
#[test]
fn changes_waiting_for_a_missing_dependency_are_held_within_a_bound() {
    use automerge::transaction::Transactable;
    let mut host = Document::from_text("shared text");
    host.share(actor(1)).unwrap();
    let saved = host.save_crdt().unwrap();
    let mut guest = Document::from_shared(SharedState::load(&saved, actor(2)).unwrap());
    let initial = guest.save_crdt().unwrap();
    // Changes made with raw automerge by the host's actor on top of a change
    // the guest never gets: each a 64 KiB value under a root key (not text).
    let mut raw = automerge::AutoCommit::load(&saved)
        .unwrap()
        .with_actor(ActorId::from(vec![9u8; 16]));
    raw.put(automerge::ROOT, "withheld", 1).unwrap();
    raw.commit();
    let msg = |raw: &mut automerge::AutoCommit| {
        let change = raw.get_last_local_change().unwrap().raw_bytes().to_vec();
        let mut out = (change.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&change);
        out
    };
    let withheld = msg(&mut raw);
    let big = "x".repeat(64 * 1024);
    for i in 0..320 {
        raw.put(automerge::ROOT, "junk", format!("{i}{big}"))
            .unwrap();
        raw.commit();
        assert!(guest.apply_remote(&msg(&mut raw)).unwrap().is_empty());
    }
    let held = guest.shared_state().unwrap().held_count();
    assert!(held < 320 && held > 200, "held {held}");
    assert_sound(&mut guest, &initial);
    // The dependency arrives: what was kept of the rest waits for what was
    // forgotten; nothing breaks.
    guest.apply_remote(&withheld).unwrap();
    assert!(guest.shared_state().unwrap().held_count() > 0);
    assert_sound(&mut guest, &initial);
    // A peer that has everything brings the forgotten ones back by sync.
    let mut full = Document::from_shared(SharedState::load(&raw.save(), actor(5)).unwrap());
    sync(&mut full, &mut guest, 8);
    assert_eq!(guest.shared_state().unwrap().held_count(), 0);
    assert_eq!(guest.rope().to_string(), full.rope().to_string());
}
