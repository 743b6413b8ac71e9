//! Shared documents: exchange, sync, cursors, undo, save/load.

use lshed::doc::{Attach, Change, Document, SharedState, StablePos, CHUNK_CHARS};

use crate::support::doc as support;
use support::{actor, check_mirror, sync, text};

/// Host shares `initial`; guest loads its saved state.
fn pair(initial: &str) -> (Document, Document) {
    let mut host = Document::from_text(initial);
    host.share(actor(1)).unwrap();
    let saved = host.save_crdt().unwrap();
    let guest = Document::from_shared(SharedState::load(&saved, actor(2)).unwrap());
    (host, guest)
}

fn send(from: &mut Document, to: &mut Document) -> Vec<Change> {
    match from.take_outgoing() {
        Some(msg) => to.apply_remote(&msg).unwrap(),
        None => Vec::new(),
    }
}

#[test]
fn local_edit_reaches_peer_as_patches() {
    let (mut host, mut guest) = pair("hello world");
    host.apply_local(&[Change::insert(5, ",")]);
    let patches = send(&mut host, &mut guest);
    assert_eq!(patches, vec![Change::insert(5, ",")]);
    assert_eq!(text(&guest), "hello, world");
    guest.apply_local(&[Change::replace(7, 12, "there")]);
    send(&mut guest, &mut host);
    assert_eq!(text(&host), "hello, there");
    check_mirror(&host);
    check_mirror(&guest);
}

#[test]
fn unicode_indices_agree_end_to_end() {
    let initial = "日本語🎉e\u{301}\r\nx👩‍👩‍👧z\r\n";
    let (mut host, mut guest) = pair(initial);
    host.apply_local(&[Change::insert(4, "🎈")]);
    host.apply_local(&[Change::delete(6, 8)]); // "\u{301}\r"
    host.apply_local(&[Change::replace(0, 2, "中\r\n")]);
    let patches = send(&mut host, &mut guest);
    assert_eq!(text(&guest), text(&host));
    assert_eq!(patches.len(), 4);
    guest.apply_local(&[Change::insert(guest.len_chars(), "ё\u{308}")]);
    send(&mut guest, &mut host);
    assert_eq!(text(&guest), text(&host));
    check_mirror(&host);
    check_mirror(&guest);
}

#[test]
fn big_text_is_chunked_and_new_chunks_travel() {
    let initial: String = "0123456789\n".repeat(1000); // 11k chars
    let (mut host, mut guest) = pair(&initial);
    assert!(host.shared_state().unwrap().chunk_count() >= 10);
    // Typing at the end keeps going, into fresh chunks.
    for i in 0..3000 {
        let at = host.len_chars();
        host.apply_local(&[Change::insert(at, if i % 50 == 0 { "\n" } else { "é" })]);
    }
    // A large paste in the middle, at a chunk boundary and not.
    let big: String = "xyz🎉".repeat(2 * CHUNK_CHARS);
    host.apply_local(&[Change::insert(CHUNK_CHARS, big.clone())]);
    host.apply_local(&[Change::insert(CHUNK_CHARS + 7, big)]);
    // A delete across several chunks.
    host.apply_local(&[Change::delete(500, 5000)]);
    send(&mut host, &mut guest);
    assert_eq!(text(&guest), text(&host));
    check_mirror(&host);
    check_mirror(&guest);
    assert!(
        host.shared_state().unwrap().longest_chunk() <= 2 * CHUNK_CHARS + 8 * CHUNK_CHARS + 100
    );
}

#[test]
fn concurrent_edits_converge() {
    let (mut host, mut guest) = pair("abc def ghi");
    host.apply_local(&[Change::insert(3, "X")]);
    guest.apply_local(&[Change::delete(4, 7)]);
    let h = host.take_outgoing().unwrap();
    let g = guest.take_outgoing().unwrap();
    host.apply_remote(&g).unwrap();
    guest.apply_remote(&h).unwrap();
    assert_eq!(text(&host), text(&guest));
    assert_eq!(text(&host), "abcX  ghi");
    // Duplicates are harmless.
    host.apply_remote(&g).unwrap();
    assert_eq!(text(&host), "abcX  ghi");
}

#[test]
fn sync_protocol_brings_an_empty_peer_up_to_date() {
    let mut host = Document::from_text(&"line\n".repeat(2000));
    host.share(actor(1)).unwrap();
    host.apply_local(&[Change::insert(3, "!!")]);
    let mut guest = Document::loading(&text(&host));
    assert!(guest.is_read_only());
    guest
        .attach(SharedState::empty(actor(2)), Attach::TakeSharedText)
        .unwrap();
    assert!(guest.is_read_only(), "no layout yet");
    sync(&mut host, &mut guest, 10);
    assert_eq!(text(&guest), text(&host));
    assert!(!guest.is_read_only());
    check_mirror(&guest);
    // Offline edits on both sides, then reconnect with fresh sync states.
    host.apply_local(&[Change::insert(0, "H")]);
    guest.apply_local(&[Change::insert(guest.len_chars(), "G")]);
    host.take_outgoing();
    guest.take_outgoing();
    sync(&mut host, &mut guest, 10);
    assert_eq!(text(&guest), text(&host));
    assert!(text(&host).starts_with('H') && text(&host).ends_with('G'));
    check_mirror(&host);
    check_mirror(&guest);
}

#[test]
fn stable_positions_follow_edits() {
    let initial: String = "abcdefghij".repeat(300);
    let (mut host, mut guest) = pair(&initial);
    let at = 2500;
    let pos = guest.stable_pos(at).unwrap();
    let end = guest.stable_pos(guest.len_chars()).unwrap();
    let bytes = pos.to_bytes();
    let pos2 = StablePos::from_bytes(&bytes).unwrap();
    host.apply_local(&[Change::insert(10, "12345")]);
    host.apply_local(&[Change::delete(2000, 2100)]);
    send(&mut host, &mut guest);
    assert_eq!(guest.resolve(&pos), Some(at + 5 - 100));
    assert_eq!(host.resolve(&pos2), Some(at + 5 - 100));
    assert_eq!(guest.resolve(&end), Some(guest.len_chars()));
    // Its char deleted: collapses to where the char was.
    host.apply_local(&[Change::delete(2300, 2500)]);
    send(&mut host, &mut guest);
    assert_eq!(guest.resolve(&pos), Some(2300));
}

#[test]
fn undo_reverts_only_own_edits() {
    let (mut host, mut guest) = pair("The quick fox.");
    host.apply_local(&[Change::insert(10, "brown ")]); // The quick brown fox.
    send(&mut host, &mut guest);
    // The guest types inside the host's insertion and elsewhere.
    guest.apply_local(&[Change::insert(13, "-ish")]); // The quick bro-ishwn fox.
    guest.apply_local(&[Change::insert(0, ">> ")]);
    send(&mut guest, &mut host);
    assert_eq!(text(&host), ">> The quick bro-ishwn fox.");
    let applied = host.undo().unwrap();
    assert!(!applied.is_empty());
    assert_eq!(text(&host), ">> The quick -ishfox.");
    send(&mut host, &mut guest);
    assert_eq!(text(&guest), text(&host));
    host.redo().unwrap();
    assert_eq!(text(&host), ">> The quick bro-ishwn fox.");
    send(&mut host, &mut guest);
    assert_eq!(text(&guest), text(&host));
    check_mirror(&host);
    check_mirror(&guest);
}

#[test]
fn undo_of_a_delete_puts_text_back_where_it_belongs() {
    let (mut host, mut guest) = pair("one two three four");
    host.apply_local(&[Change::delete(4, 8)]); // "one three four"
    send(&mut host, &mut guest);
    guest.apply_local(&[Change::insert(0, "zero ")]);
    guest.break_undo_group();
    guest.apply_local(&[Change::insert(guest.len_chars(), " five")]);
    send(&mut guest, &mut host);
    host.undo().unwrap();
    assert_eq!(text(&host), "zero one two three four five");
    // Guest's own undo leaves the host's work alone.
    send(&mut host, &mut guest);
    guest.undo().unwrap();
    guest.undo().unwrap();
    assert_eq!(text(&guest), "one two three four");
    assert!(!guest.can_undo());
}

#[test]
fn undo_when_others_deleted_our_text() {
    let (mut host, mut guest) = pair("abc");
    host.apply_local(&[Change::insert(3, "def")]);
    host.break_undo_group();
    host.apply_local(&[Change::insert(0, "1")]);
    send(&mut host, &mut guest);
    guest.apply_local(&[Change::delete(0, 7)]); // all of it, ours included
    send(&mut guest, &mut host);
    assert_eq!(text(&host), "");
    // Nothing of ours left: undo is harmless and does not resurrect others' deletes.
    host.undo();
    assert_eq!(text(&host), "");
    check_mirror(&host);
}

#[test]
fn history_from_before_sharing_still_undoes() {
    let mut doc = Document::from_text("hello");
    doc.apply_local(&[Change::insert(5, " world")]);
    doc.share(actor(1)).unwrap();
    let saved = doc.save_crdt().unwrap();
    let mut guest = Document::from_shared(SharedState::load(&saved, actor(2)).unwrap());
    guest.apply_local(&[Change::insert(0, ">")]);
    send(&mut guest, &mut doc);
    doc.undo().unwrap();
    assert_eq!(text(&doc), ">hello");
    send(&mut doc, &mut guest);
    assert_eq!(text(&guest), ">hello");
}

#[test]
fn save_load_round_trip_and_crash_recovery() {
    let (mut host, mut guest) = pair("abc");
    host.apply_local(&[Change::insert(3, "def")]);
    send(&mut host, &mut guest);
    let saved = guest.save_crdt().unwrap();
    // Guest "crashes" and comes back with a new actor, then keeps syncing.
    let mut back = Document::from_shared(SharedState::load(&saved, actor(3)).unwrap());
    assert_eq!(text(&back), "abcdef");
    back.apply_local(&[Change::insert(0, "<")]);
    send(&mut back, &mut host);
    assert_eq!(text(&host), "<abcdef");
}

#[test]
fn host_attach_keeps_edits_made_while_building() {
    let mut doc = Document::from_text("base text");
    let snapshot = doc.rope().clone();
    let state = std::thread::spawn(move || SharedState::build(&snapshot, actor(1)).unwrap())
        .join()
        .unwrap();
    doc.apply_local(&[Change::insert(4, "d")]); // typed while building
    doc.attach(state, Attach::KeepLocalText).unwrap();
    assert_eq!(text(&doc), "based text");
    check_mirror(&doc);
    let msg = doc.take_outgoing().unwrap();
    let mut guest =
        Document::from_shared(SharedState::load(&doc.save_crdt().unwrap(), actor(2)).unwrap());
    guest.apply_remote(&msg).unwrap(); // duplicate of what the save holds
    assert_eq!(text(&guest), "based text");
}

#[test]
fn detach_for_sync_runs_on_a_worker() {
    let (mut host, mut guest) = pair("abc");
    host.apply_local(&[Change::insert(3, "def")]);
    let msg = host.take_outgoing().unwrap();
    let mut worker = guest.detach_for_sync().unwrap();
    assert!(guest.is_read_only());
    let worker = std::thread::spawn(move || {
        worker.apply_remote(&msg).unwrap();
        worker
    })
    .join()
    .unwrap();
    let patches = guest.reattach(worker);
    assert_eq!(patches, vec![Change::insert(3, "def")]);
    assert_eq!(text(&guest), "abcdef");
    assert!(!guest.is_read_only());
    check_mirror(&guest);
}

#[test]
fn too_large_files_are_shared_read_only() {
    let big = "x".repeat(lshed::doc::MAX_SHARED_EDITABLE_BYTES + 1);
    let mut doc = Document::from_text(&big);
    assert_eq!(
        doc.share(actor(1)).unwrap(),
        lshed::doc::ShareMode::ReadOnly
    );
    assert!(!doc.is_shared());
    let reason = doc.read_only_reason().unwrap().to_string();
    assert!(reason.contains("read-only"), "{reason}");
    let rev = doc.revision();
    doc.apply_local(&[Change::insert(0, "y")]);
    assert_eq!(doc.revision(), rev);
    doc.unshare();
    doc.apply_local(&[Change::insert(0, "y")]);
    assert_eq!(doc.len_chars(), big.len() + 1);
}

#[test]
fn unshared_document_behaves_as_before() {
    let mut doc = Document::from_text("x");
    assert!(doc.take_outgoing().is_none());
    assert!(doc.stable_pos(0).is_none());
    assert!(doc.apply_remote(b"junk").is_err());
    let copy = doc.clone();
    assert_eq!(text(&copy), "x");
}

#[test]
fn a_change_that_arrives_before_its_dependency_waits_for_it() {
    let (mut host, mut guest) = pair("abc");
    let mut msgs = Vec::new();
    for (i, s) in ["1", "2", "3"].iter().enumerate() {
        host.apply_local(&[Change::insert(i, *s)]);
        msgs.push(host.take_outgoing().unwrap());
    }
    let held = |d: &Document| d.shared_state().unwrap().held_count();
    assert!(guest.apply_remote(&msgs[2]).unwrap().is_empty());
    assert!(guest.apply_remote(&msgs[1]).unwrap().is_empty());
    assert_eq!((text(&guest).as_str(), held(&guest)), ("abc", 2));
    // A duplicate of a waiting change is held once.
    guest.apply_remote(&msgs[2]).unwrap();
    assert_eq!(held(&guest), 2);
    guest.apply_remote(&msgs[0]).unwrap();
    assert_eq!((text(&guest).as_str(), held(&guest)), ("123abc", 0));
    check_mirror(&guest);
    // Local editing goes on as normal afterwards, and reaches the host.
    guest.apply_local(&[Change::insert(6, "!")]);
    send(&mut guest, &mut host);
    assert_eq!(text(&host), "123abc!");
}

/// A guest that lost a long run of the host's changes and then got later
/// ones (which wait for the lost) catches up through the sync protocol in
/// a few round trips, not one per lost change.
#[test]
fn a_peer_that_lost_many_changes_catches_up_in_a_few_sync_rounds() {
    let (mut host, mut guest) = pair(&"0123456789\n".repeat(500));
    if let Some(state) = host.shared_state_mut() {
        state.set_splitting(true);
        state.set_split_churn(64);
    }
    let mut msgs = Vec::new();
    for i in 0..300 {
        host.apply_local(&[Change::insert((i * 7) % host.len_chars(), "ab")]);
        if i % 3 == 0 {
            host.apply_local(&[Change::delete(i, i + 1)]);
        }
        msgs.extend(host.take_outgoing());
    }
    for m in &msgs[250..] {
        guest.apply_remote(m).unwrap();
    }
    assert!(guest.shared_state().unwrap().held_count() > 0);
    // Panics past 5 rounds that carry messages.
    let rounds = sync(&mut host, &mut guest, 5);
    assert!(rounds <= 4, "sync took {rounds} rounds");
    assert_eq!(text(&guest), text(&host));
    assert_eq!(guest.shared_state().unwrap().held_count(), 0);
    assert!(host.shared_state().unwrap().retired_count() > 0, "no split");
    check_mirror(&guest);
}
