//! Chunk splitting by the layout owner (the host), and the moving of edits
//! that others made concurrently to a chunk it split (each author moves
//! its own as it follows the split; the host moves those of a peer that
//! left first).
//!
//! The strongest check here is an oracle on unique chars: every char ever
//! typed is distinct, so after any interleaving the final text must hold
//! exactly the chars inserted and not deleted by anyone, each once. A lost
//! concurrent edit (typed into a chunk the host had just split) or a
//! resurrected one (deleted there) breaks it.

use lshed::doc::{Assoc, Change, Document, SharedState, SPLIT_CHURN};
use std::collections::{HashSet, VecDeque};

use crate::support::rng;
use rng::Rng;

use crate::support::doc as support;
use support::{actor, check_mirror, text};

fn pair(initial: &str) -> (Document, Document) {
    let mut host = Document::from_text(initial);
    host.share(actor(1)).unwrap();
    host.shared_state_mut().unwrap().set_splitting(true);
    let saved = host.save_crdt().unwrap();
    let guest = Document::from_shared(SharedState::load(&saved, actor(2)).unwrap());
    (host, guest)
}

fn send(from: &mut Document, to: &mut Document) {
    if let Some(msg) = from.take_outgoing() {
        to.apply_remote(&msg).unwrap();
    }
}

/// Guest → host, then whatever the host has (the guest's edit moved, a
/// split) → guest.
fn round_trip(host: &mut Document, guest: &mut Document) {
    send(guest, host);
    send(host, guest);
}

#[test]
fn only_the_builder_owns_the_layout() {
    let (host, guest) = pair("abc");
    assert!(host.shared_state().unwrap().owns_layout());
    assert!(!guest.shared_state().unwrap().owns_layout());
}

#[test]
fn a_document_nobody_views_is_not_split() {
    let mut doc = Document::from_text("abc");
    doc.share(actor(1)).unwrap();
    for _ in 0..(SPLIT_CHURN + 100) {
        doc.apply_local(&[Change::insert(1, "x")]);
    }
    let state = doc.shared_state().unwrap();
    assert_eq!(state.retired_count(), 0);
    assert_eq!(state.chunk_count(), 1);
}

#[test]
fn a_long_session_in_one_place_keeps_every_chunk_small() {
    let (mut host, mut guest) = pair(&"x".repeat(3000));
    // Host and guest both type 12k chars at one spot in the middle, each
    // followed by a backspace now and then: one chunk absorbs all of it
    // unless the host splits it.
    for i in 0..12_000 {
        let at = 1500 + i / 2;
        if i % 2 == 0 {
            host.apply_local(&[Change::insert(at.min(host.len_chars()), "h")]);
            send(&mut host, &mut guest);
        } else {
            guest.apply_local(&[Change::insert(at.min(guest.len_chars()), "g")]);
            round_trip(&mut host, &mut guest);
        }
        if i % 7 == 0 {
            host.apply_local(&[Change::delete(at - 1, at)]);
            send(&mut host, &mut guest);
        }
    }
    assert_eq!(text(&host), text(&guest));
    check_mirror(&host);
    check_mirror(&guest);
    let hs = host.shared_state().unwrap();
    assert!(hs.retired_count() >= 2, "the host split the busy chunk");
    assert!(
        hs.longest_chunk() <= SPLIT_CHURN,
        "longest chunk {} chars",
        hs.longest_chunk()
    );
    assert!(guest.shared_state().unwrap().longest_chunk() <= SPLIT_CHURN);
    assert_eq!(
        guest.shared_state().unwrap().chunk_count(),
        hs.chunk_count()
    );
}

/// Host and guest share a text with a marker; the host splits the marker's
/// chunk while the guest, not yet knowing, edits next to the marker.
fn split_race(guest_edit: impl FnOnce(&mut Document, usize)) -> (Document, Document) {
    let initial = format!("{}<<M>>{}", "a".repeat(500), "b".repeat(500));
    let (mut host, mut guest) = pair(&initial);
    host.shared_state_mut().unwrap().set_split_churn(1100);
    let marker = text(&guest).find("<<M>>").unwrap() + 5; // ASCII: bytes = chars
    guest_edit(&mut guest, marker);
    // The host types at the start of the same chunk until it splits.
    for _ in 0..200 {
        host.apply_local(&[Change::insert(0, "H")]);
    }
    assert!(host.shared_state().unwrap().retired_count() >= 1);
    // The host's split reaches the guest first (its edit is in flight).
    send(&mut host, &mut guest);
    round_trip(&mut host, &mut guest);
    assert_eq!(text(&host), text(&guest));
    check_mirror(&host);
    check_mirror(&guest);
    (host, guest)
}

#[test]
fn an_insert_racing_a_split_is_kept_in_place() {
    let (host, _) = split_race(|g, at| g.apply_local(&[Change::insert(at, "XYZ")]));
    let t = text(&host);
    assert_eq!(t.matches("XYZ").count(), 1, "{t}");
    assert!(t.contains("<<M>>XYZbbb"), "misplaced: {t}");
    assert_eq!(t.matches('H').count(), 200);
}

#[test]
fn a_delete_racing_a_split_stays_deleted() {
    let (host, _) = split_race(|g, at| g.apply_local(&[Change::delete(at - 5, at + 3)]));
    let t = text(&host);
    assert!(!t.contains("<<M>>"), "resurrected: {t}");
    assert_eq!(t.matches('b').count(), 497);
    assert_eq!(t.matches('a').count(), 500);
    assert_eq!(t.matches('H').count(), 200);
}

#[test]
fn guest_undo_of_text_in_a_split_chunk_reverts_only_its_text() {
    let (mut host, mut guest) = pair(&"x".repeat(600));
    host.shared_state_mut().unwrap().set_split_churn(1000);
    guest.apply_local(&[Change::insert(300, "hello")]);
    guest.break_undo_group();
    round_trip(&mut host, &mut guest);
    for _ in 0..500 {
        host.apply_local(&[Change::insert(10, "H")]);
    }
    send(&mut host, &mut guest);
    assert!(host.shared_state().unwrap().retired_count() >= 1);
    assert!(guest.shared_state().unwrap().retired_count() >= 1);

    // The guest's undo names chars of the old chunk; the guest followed the
    // split, so it carries the undo out on the new chunks itself: its text
    // changes at once, and the host has nothing to move.
    let changes = guest.undo().expect("undo");
    assert!(!changes.is_empty(), "the guest's view changes at once");
    assert!(!text(&guest).contains("hello"), "{}", text(&guest));
    send(&mut guest, &mut host);
    assert!(host.take_outgoing().is_none(), "the host had to repair");
    assert!(!text(&host).contains("hello"), "{}", text(&host));
    assert_eq!(text(&host).matches('H').count(), 500);
    assert_eq!(text(&host).matches('x').count(), 600);
    assert_eq!(text(&host), text(&guest));
    // And redo puts it back where it was, at once too.
    let changes = guest.redo().expect("redo");
    assert!(!changes.is_empty());
    let at = text(&guest).find("hello").expect("back");
    send(&mut guest, &mut host);
    assert!(host.take_outgoing().is_none());
    assert_eq!(text(&host).find("hello"), Some(at));
    assert_eq!(text(&host).matches("hello").count(), 1);
    assert_eq!(text(&host), text(&guest));
    check_mirror(&host);
    check_mirror(&guest);
}

/// An edit of the guest's own that raced the split is moved by the guest
/// as it follows the split; undoing it (and an edit from before the split,
/// in the same chunk) then takes effect at once, and the host has nothing
/// to move.
#[test]
fn guest_undo_of_an_edit_that_raced_the_split_applies_at_once() {
    let (mut host, mut guest) = pair(&"x".repeat(600));
    host.shared_state_mut().unwrap().set_split_churn(1000);
    guest.apply_local(&[Change::insert(300, "hello")]);
    guest.break_undo_group();
    round_trip(&mut host, &mut guest);
    // A racing guest edit, in flight while the host splits.
    guest.apply_local(&[Change::insert(100, "race")]);
    let racing = guest.take_outgoing().unwrap();
    for _ in 0..500 {
        host.apply_local(&[Change::insert(10, "H")]);
    }
    let before = text(&guest);
    let changes = guest.apply_remote(&host.take_outgoing().unwrap()).unwrap();
    // The split and the move of "race" reach the guest's rope as one net
    // change: the host's 500 H, and nothing of its own text leaves.
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].text, "H".repeat(500));
    assert_eq!(text(&guest).replace('H', ""), before);
    host.apply_remote(&racing).unwrap();
    assert!(!text(&host).contains("race"), "not moved yet at the host");
    send(&mut guest, &mut host);
    assert!(text(&host).contains("race"), "{}", text(&host));
    assert!(host.take_outgoing().is_none(), "the host moved nothing");
    guest.break_undo_group();
    assert!(guest.undo().is_some());
    assert!(guest.undo().is_some());
    let t = text(&guest);
    assert!(!t.contains("race") && !t.contains("hello"), "{t}");
    round_trip(&mut host, &mut guest);
    let t = text(&host);
    assert!(!t.contains("hello") && !t.contains("race"), "{t}");
    assert_eq!(t.matches('H').count(), 500);
    assert_eq!(t.matches('x').count(), 600);
    assert_eq!(t, text(&guest));
    // Redo puts both back, once each.
    assert!(guest.redo().is_some());
    assert!(guest.redo().is_some());
    round_trip(&mut host, &mut guest);
    let t = text(&host);
    assert_eq!(t.matches("race").count(), 1, "{t}");
    assert_eq!(t.matches("hello").count(), 1, "{t}");
    assert_eq!(t, text(&guest));
    check_mirror(&host);
    check_mirror(&guest);
}

/// A guest whose edit raced a split and who left before it saw the split:
/// the host moves the edit for it, once.
#[test]
fn the_host_moves_the_racing_edit_of_a_guest_that_left() {
    let (mut host, mut guest) = pair(&format!("{}<<M>>{}", "a".repeat(300), "b".repeat(300)));
    host.shared_state_mut().unwrap().set_split_churn(1000);
    let at = text(&guest).find("<<M>>").unwrap() + 5;
    guest.apply_local(&[Change::insert(at, "LEFT"), Change::delete(0, 3)]);
    let racing = guest.take_outgoing().unwrap();
    for _ in 0..500 {
        host.apply_local(&[Change::insert(320, "H")]);
    }
    assert!(host.shared_state().unwrap().retired_count() >= 1);
    host.apply_remote(&racing).unwrap();
    assert!(!text(&host).contains("LEFT"));
    let changes = host.settle_for(&support::actor(2));
    assert!(!changes.is_empty());
    let t = text(&host);
    assert_eq!(t.matches("LEFT").count(), 1, "{t}");
    assert!(t.contains("<<M>>LEFTbbb"), "{t}");
    assert_eq!(t.matches('a').count(), 297, "its delete moved too");
    assert!(host.settle_for(&support::actor(2)).is_empty(), "only once");
    assert!(host.settle_for(&support::actor(9)).is_empty());
    check_mirror(&host);
}

#[test]
fn host_undo_of_text_in_a_split_chunk_applies_at_once() {
    let (mut host, mut guest) = pair(&"x".repeat(600));
    host.shared_state_mut().unwrap().set_split_churn(1000);
    host.apply_local(&[Change::insert(300, "mine")]);
    host.break_undo_group();
    send(&mut host, &mut guest);
    // The guest's typing makes the host split the chunk.
    for _ in 0..500 {
        guest.apply_local(&[Change::insert(5, "G")]);
        round_trip(&mut host, &mut guest);
    }
    assert!(host.shared_state().unwrap().retired_count() >= 1);
    let changes = host.undo().expect("undo");
    assert!(!changes.is_empty(), "the host's own view changes at once");
    assert!(!text(&host).contains("mine"));
    send(&mut host, &mut guest);
    assert_eq!(text(&host), text(&guest));
    assert_eq!(text(&guest).matches('G').count(), 500);
    check_mirror(&host);
    check_mirror(&guest);
}

/// Unique chars: CJK ideographs, one per typed char.
struct Fresh(u32);

impl Fresh {
    fn take(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| {
                self.0 += 1;
                char::from_u32(0x4E00 + self.0).expect("in the CJK block")
            })
            .collect()
    }
}

/// A host and guests in a star (the session's shape: each guest talks to
/// the host only, over an ordered stream; the host forwards a guest's
/// changes to the others and sends its own, repairs and splits included,
/// to everybody). Links deliver in random interleavings.
///
/// `guest_undo`: the first guest undoes, instead of the host. (One undoer
/// only: two people who delete the same char concurrently and both undo
/// each put it back, rightly.) Every replica moves its own edits that raced
/// a split as it follows the split, and carries its undo out on the new
/// chunks, so the oracle holds for the undoer's chars too: nothing lost,
/// nothing back from the dead, nothing twice.
fn star_run(seed: u64, guests: usize, steps: usize, guest_undo: bool, bursts: bool) {
    let mut rng = Rng(seed);
    let mut fresh = Fresh(0);
    let initial = fresh.take(300);
    let mut inserted: HashSet<char> = initial.chars().collect();
    let mut deleted: HashSet<char> = HashSet::new();

    let mut host = Document::from_text(&initial);
    host.share(actor(1)).unwrap();
    // Split very often, so that splits race with everything.
    host.shared_state_mut().unwrap().set_splitting(true);
    host.shared_state_mut().unwrap().set_split_churn(40);
    let saved = host.save_crdt().unwrap();
    let mut peers: Vec<Document> = (0..guests)
        .map(|g| Document::from_shared(SharedState::load(&saved, actor(2 + g as u8)).unwrap()))
        .collect();
    // to_host[g]: guest g → host; to_guest[g]: host → guest g.
    let mut to_host: Vec<VecDeque<Vec<u8>>> = vec![VecDeque::new(); guests];
    let mut to_guest: Vec<VecDeque<Vec<u8>>> = vec![VecDeque::new(); guests];

    let mut reborn: HashSet<char> = HashSet::new();
    let edit = |doc: &mut Document,
                rng: &mut Rng,
                fresh: &mut Fresh,
                inserted: &mut HashSet<char>,
                deleted: &mut HashSet<char>,
                reborn: &mut HashSet<char>,
                may_undo: bool| {
        let len = doc.len_chars();
        let at = rng.index(len + 1);
        match rng.index(10) {
            0..=5 => {
                let s = fresh.take(1 + rng.index(3));
                inserted.extend(s.chars());
                doc.apply_local(&[Change::insert(at, s)]);
            }
            6..=7 if len > 0 => {
                let end = (at + 1 + rng.index(4)).min(len);
                let start = at.min(end.saturating_sub(1));
                deleted.extend(doc.rope().slice(start..end).chars());
                doc.apply_local(&[Change::delete(start, end)]);
            }
            8 if may_undo => {
                let before: HashSet<char> = doc.rope().chars().collect();
                if doc.undo().is_some() {
                    let after: HashSet<char> = doc.rope().chars().collect();
                    deleted.extend(before.difference(&after));
                    // Put back by undo: a peer that had not seen the undo
                    // may still delete the original char, which leaves the
                    // put-back copy; either outcome is right.
                    for c in after.difference(&before) {
                        deleted.insert(*c);
                        reborn.insert(*c);
                    }
                }
            }
            _ => doc.break_undo_group(),
        }
    };
    let host_out = |host: &mut Document, to_guest: &mut Vec<VecDeque<Vec<u8>>>| {
        if let Some(msg) = host.take_outgoing() {
            for q in to_guest.iter_mut() {
                q.push_back(msg.clone());
            }
        }
    };

    for _ in 0..steps {
        match rng.index(4) {
            0 => {
                edit(
                    &mut host,
                    &mut rng,
                    &mut fresh,
                    &mut inserted,
                    &mut deleted,
                    &mut reborn,
                    !guest_undo,
                );
                host_out(&mut host, &mut to_guest);
            }
            1 => {
                let g = rng.index(guests);
                // A burst: a script's edits, one message each, sent without
                // waiting for anything.
                let n = if bursts && rng.index(8) == 0 {
                    20 + rng.index(180)
                } else {
                    1
                };
                for _ in 0..n {
                    edit(
                        &mut peers[g],
                        &mut rng,
                        &mut fresh,
                        &mut inserted,
                        &mut deleted,
                        &mut reborn,
                        guest_undo && g == 0,
                    );
                    if let Some(msg) = peers[g].take_outgoing() {
                        to_host[g].push_back(msg);
                    }
                }
            }
            2 => {
                let g = rng.index(guests);
                // With bursts, what waits is applied as one batch (as the
                // session merges queued messages).
                let take = if bursts { 1 + rng.index(64) } else { 1 };
                let batch: Vec<Vec<u8>> = (0..take).map_while(|_| to_host[g].pop_front()).collect();
                if !batch.is_empty() {
                    let msg = batch.concat();
                    host.apply_remote(&msg).unwrap();
                    for (o, q) in to_guest.iter_mut().enumerate() {
                        if o != g {
                            q.push_back(msg.clone());
                        }
                    }
                    host_out(&mut host, &mut to_guest);
                }
            }
            _ => {
                let g = rng.index(guests);
                let take = if bursts { 1 + rng.index(64) } else { 1 };
                let batch: Vec<Vec<u8>> =
                    (0..take).map_while(|_| to_guest[g].pop_front()).collect();
                if !batch.is_empty() {
                    peers[g].apply_remote(&batch.concat()).unwrap();
                    // What it moved as it followed a split.
                    if let Some(out) = peers[g].take_outgoing() {
                        to_host[g].push_back(out);
                    }
                }
            }
        }
    }
    // Settle: deliver everything until all queues are empty.
    loop {
        let mut moved = false;
        for (g, inbox) in to_host.iter_mut().enumerate() {
            while let Some(msg) = inbox.pop_front() {
                moved = true;
                host.apply_remote(&msg).unwrap();
                for (o, q) in to_guest.iter_mut().enumerate() {
                    if o != g {
                        q.push_back(msg.clone());
                    }
                }
                host_out(&mut host, &mut to_guest);
            }
        }
        for g in 0..guests {
            while let Some(msg) = to_guest[g].pop_front() {
                moved = true;
                peers[g].apply_remote(&msg).unwrap();
                if let Some(out) = peers[g].take_outgoing() {
                    to_host[g].push_back(out);
                }
            }
        }
        if !moved {
            break;
        }
    }

    let final_text = text(&host);
    check_mirror(&host);
    for (g, p) in peers.iter().enumerate() {
        assert_eq!(text(p), final_text, "seed {seed}: guest {g} differs");
        check_mirror(p);
    }
    let mut seen = HashSet::new();
    for c in final_text.chars() {
        let again = !seen.insert(c);
        assert!(!again, "seed {seed}: {c:?} appears twice");
        if reborn.contains(&c) {
            continue;
        }
        assert!(
            !deleted.contains(&c),
            "seed {seed}: deleted {c:?} came back"
        );
    }
    for c in inserted.difference(&deleted) {
        assert!(seen.contains(c), "seed {seed}: {c:?} was lost");
    }
    assert!(
        host.shared_state().unwrap().retired_count() > 0,
        "seed {seed}: no split happened"
    );
}

#[test]
fn random_star_sessions_with_constant_splitting_lose_and_resurrect_nothing() {
    for seed in 1..=60u64 {
        star_run(seed * 7919, 1 + (seed as usize % 3), 600, false, false);
    }
}

#[test]
fn random_star_sessions_with_guest_undo_lose_nothing_of_others() {
    for seed in 1..=40u64 {
        star_run(seed * 104_729, 1 + (seed as usize % 3), 600, true, false);
    }
}

/// Scripts in a star: guests send bursts of up to 200 edits without
/// waiting, and each side applies what waits for it in batches of up to
/// 64 messages, while the host splits every 40 chars of churn.
#[test]
fn random_star_sessions_with_bursts_lose_and_resurrect_nothing() {
    for seed in 1..=8u64 {
        star_run(
            seed * 65_537,
            1 + (seed as usize % 3),
            250,
            seed % 2 == 0,
            true,
        );
    }
}

#[test]
fn a_guest_follows_a_split_without_touching_its_text() {
    let initial: String = "0123456789\n".repeat(500);
    let (mut host, mut guest) = pair(&initial);
    host.shared_state_mut().unwrap().set_split_churn(600);
    let mut splits_seen = 0;
    for i in 0..3000u32 {
        let at = 2000 + (i % 7) as usize;
        // Distinct chars, so that the only right answer is exact.
        let k = char::from_u32(0x4E00 + i).unwrap().to_string();
        host.apply_local(&[Change::insert(at, k.clone())]);
        let msg = host.take_outgoing().unwrap();
        let before = guest.shared_state().unwrap().retired_count();
        let changes = guest.apply_remote(&msg).unwrap();
        if guest.shared_state().unwrap().retired_count() > before {
            splits_seen += 1;
        }
        // Only the keystroke reaches the rope (a split is not a rewrite of
        // the text under the guest's cursor).
        assert_eq!(changes, vec![Change::insert(at, k)], "keystroke {i}");
    }
    assert!(splits_seen >= 3, "{splits_seen} splits");
    check_mirror(&guest);
    assert_eq!(text(&host), text(&guest));
}

#[test]
fn two_racing_edits_far_apart_are_moved_separately() {
    // One chunk: ...<<L>>...MMMM...<<R>>...
    let initial = format!(
        "{}<<L>>{}MMMM{}<<R>>{}",
        "a".repeat(100),
        "b".repeat(200),
        "c".repeat(200),
        "d".repeat(100)
    );
    let (mut host, mut g1) = pair(&initial);
    let saved = host.save_crdt().unwrap();
    let mut g2 = Document::from_shared(SharedState::load(&saved, actor(3)).unwrap());
    host.shared_state_mut().unwrap().set_split_churn(700);
    // Guest 1, not knowing of any split, edits two far-apart places in one
    // change.
    let t = text(&g1);
    let (l, r) = (t.find("<<L>>").unwrap() + 5, t.find("<<R>>").unwrap() + 5);
    g1.apply_local(&[Change::insert(r, "y"), Change::insert(l, "x")]);
    // The host splits the chunk; guest 2 sees that and types in between.
    for _ in 0..100 {
        host.apply_local(&[Change::insert(0, "H")]);
    }
    assert!(host.shared_state().unwrap().retired_count() >= 1);
    let split = host.take_outgoing().unwrap();
    g2.apply_remote(&split).unwrap();
    let m = text(&g2).find("MMMM").unwrap() + 4;
    g2.apply_local(&[Change::insert(m, "Z")]);
    let z = g2.take_outgoing().unwrap();
    host.apply_remote(&z).unwrap();
    // Now guest 1's edit arrives, racing the split; guest 1 then gets the
    // split and guest 2's edit, and moves its own edit hunk by hunk.
    send(&mut g1, &mut host);
    g1.apply_remote(&split).unwrap();
    g1.apply_remote(&z).unwrap();
    send(&mut g1, &mut host);
    let t = text(&host);
    assert!(t.contains("<<L>>xbbb"), "{t}");
    assert!(t.contains("<<R>>yddd"), "{t}");
    assert!(t.contains("MMMMZccc"), "guest 2's edit stays in place: {t}");
    assert_eq!(t.matches('b').count(), 200);
    assert_eq!(t.matches('c').count(), 200);
    check_mirror(&host);
}

/// A guest types steadily at one spot while the host splits that chunk
/// again and again; messages take `lag` keystrokes to arrive, so the
/// guest's last keystrokes race every split (it moves them itself as it
/// follows each split). What it typed must end up in the order it typed
/// it.
#[test]
fn a_guest_typing_through_splits_keeps_its_text_in_order() {
    for lag in [1usize, 2, 4, 30] {
        let (mut host, mut guest) = pair(&"x".repeat(600));
        host.shared_state_mut().unwrap().set_split_churn(100);
        let mut fresh = Fresh(0);
        let typed = fresh.take(1200);
        let mut cursor = 300;
        // Messages with the keystroke they were sent at.
        let mut to_host: VecDeque<(usize, Vec<u8>)> = VecDeque::new();
        let mut to_guest: VecDeque<(usize, Vec<u8>)> = VecDeque::new();
        let deliver = |host: &mut Document,
                       guest: &mut Document,
                       to_host: &mut VecDeque<(usize, Vec<u8>)>,
                       to_guest: &mut VecDeque<(usize, Vec<u8>)>,
                       cursor: &mut usize,
                       now: usize| {
            while to_host.front().is_some_and(|(at, _)| at + lag <= now) {
                let (_, msg) = to_host.pop_front().unwrap();
                host.apply_remote(&msg).unwrap();
                to_guest.extend(host.take_outgoing().map(|m| (now, m)));
            }
            while to_guest.front().is_some_and(|(at, _)| at + lag <= now) {
                let (_, msg) = to_guest.pop_front().unwrap();
                for change in guest.apply_remote(&msg).unwrap() {
                    *cursor = change.map_pos(*cursor, Assoc::After);
                }
                // What it moved as it followed a split.
                to_host.extend(guest.take_outgoing().map(|m| (now, m)));
            }
        };
        for (i, c) in typed.chars().enumerate() {
            let before = guest.rope().clone();
            guest.apply_local(&[Change::insert(cursor, c.to_string())]);
            let mut expect = before;
            expect.insert(cursor, &c.to_string());
            assert!(guest.rope() == &expect, "lag {lag}: keystroke {i}");
            cursor += 1;
            to_host.extend(guest.take_outgoing().map(|m| (i, m)));
            deliver(
                &mut host,
                &mut guest,
                &mut to_host,
                &mut to_guest,
                &mut cursor,
                i,
            );
            // Its own text, in order, always in its view.
            let mine: String = guest.rope().chars().filter(|&c| c != 'x').collect();
            assert!(
                mine.chars().eq(typed.chars().take(i + 1)),
                "lag {lag}: keystroke {i}: the guest's view lost its text"
            );
        }
        let mut now = typed.chars().count();
        while !to_host.is_empty() || !to_guest.is_empty() {
            now += lag;
            deliver(
                &mut host,
                &mut guest,
                &mut to_host,
                &mut to_guest,
                &mut cursor,
                now,
            );
        }
        assert_eq!(text(&host), text(&guest));
        assert!(
            host.shared_state().unwrap().retired_count() > 10,
            "lag {lag}: few splits: {}",
            host.shared_state().unwrap().retired_count()
        );
        let got: String = text(&host).chars().filter(|&c| c != 'x').collect();
        assert!(got == typed, "lag {lag}: typed text out of order");
        check_mirror(&host);
        check_mirror(&guest);
    }
}

/// The guarantee for scripts that compute offsets from their own text: a
/// guest typing at any rate, through any number of splits, always sees
/// after each of its own edits exactly the text that edit implies, and
/// after each message from the host every char it typed and nobody
/// deleted, and none it deleted itself. Messages wait in flight for a
/// random number of steps (up to hundreds of edits), the host splits
/// every 40 chars of churn and types and deletes too, the guest undoes.
#[test]
fn a_guest_typing_at_any_rate_never_loses_sight_of_its_own_text() {
    for seed in 1..=24u64 {
        let mut rng = Rng(seed * 6_364_136_223);
        let mut fresh = Fresh(0);
        let initial = fresh.take(200);
        let (mut host, mut guest) = pair(&initial);
        host.shared_state_mut().unwrap().set_split_churn(40);
        let mut to_host: VecDeque<Vec<u8>> = VecDeque::new();
        let mut to_guest: VecDeque<Vec<u8>> = VecDeque::new();
        // Chars the guest typed, and chars anyone deleted.
        let mut typed: HashSet<char> = HashSet::new();
        let mut deleted: HashSet<char> = HashSet::new();
        let mut own_deleted: HashSet<char> = HashSet::new();
        let lag = 1 + rng.index(300);
        for step in 0..1500 {
            match rng.index(10) {
                0..=5 => {
                    let before = guest.rope().clone();
                    let len = before.len_chars();
                    let at = rng.index(len + 1);
                    let mut expect = before.clone();
                    if rng.index(4) == 0 && len > 0 {
                        let end = (at + 1 + rng.index(3)).min(len);
                        let start = at.min(end - 1);
                        let gone: Vec<char> = before.slice(start..end).chars().collect();
                        expect.remove(start..end);
                        guest.apply_local(&[Change::delete(start, end)]);
                        deleted.extend(gone.iter().copied());
                        own_deleted.extend(gone);
                    } else {
                        let s = fresh.take(1 + rng.index(3));
                        expect.insert(at, &s);
                        typed.extend(s.chars());
                        guest.apply_local(&[Change::insert(at, s)]);
                    }
                    assert_eq!(
                        guest.rope().to_string(),
                        expect.to_string(),
                        "seed {seed} step {step}: the guest's own edit"
                    );
                    to_host.extend(guest.take_outgoing());
                    if rng.index(8) == 0 {
                        guest.break_undo_group();
                    }
                }
                6 => {
                    let before: HashSet<char> = guest.rope().chars().collect();
                    if guest.undo().is_some() {
                        let after: HashSet<char> = guest.rope().chars().collect();
                        // What undo removed counts as deleted by the guest;
                        // what it put back may be deleted by others later.
                        for c in before.difference(&after) {
                            deleted.insert(*c);
                            own_deleted.insert(*c);
                        }
                        for c in after.difference(&before) {
                            own_deleted.remove(c);
                            deleted.insert(*c);
                        }
                        to_host.extend(guest.take_outgoing());
                    }
                }
                7 => {
                    let len = host.len_chars();
                    let at = rng.index(len + 1);
                    if rng.index(3) == 0 && len > 0 {
                        let end = (at + 1 + rng.index(3)).min(len);
                        let start = at.min(end - 1);
                        deleted.extend(host.rope().slice(start..end).chars());
                        host.apply_local(&[Change::delete(start, end)]);
                    } else {
                        host.apply_local(&[Change::insert(at, fresh.take(2))]);
                    }
                    to_guest.extend(host.take_outgoing());
                }
                _ => {
                    // Deliver what has waited longer than the lag, both ways.
                    while to_host.len() > lag {
                        host.apply_remote(&to_host.pop_front().unwrap()).unwrap();
                        to_guest.extend(host.take_outgoing());
                    }
                    while to_guest.len() > lag / 2 {
                        guest.apply_remote(&to_guest.pop_front().unwrap()).unwrap();
                        to_host.extend(guest.take_outgoing());
                        let now: HashSet<char> = guest.rope().chars().collect();
                        for c in typed.difference(&deleted) {
                            assert!(
                                now.contains(c),
                                "seed {seed} step {step}: {c:?} left the guest's view"
                            );
                        }
                        for c in &own_deleted {
                            assert!(!now.contains(c), "seed {seed} step {step}: {c:?} came back");
                        }
                    }
                }
            }
        }
        while !to_host.is_empty() || !to_guest.is_empty() {
            while let Some(m) = to_host.pop_front() {
                host.apply_remote(&m).unwrap();
                to_guest.extend(host.take_outgoing());
            }
            while let Some(m) = to_guest.pop_front() {
                guest.apply_remote(&m).unwrap();
                to_host.extend(guest.take_outgoing());
            }
        }
        let t = text(&host);
        assert_eq!(t, text(&guest), "seed {seed}");
        let mut seen = HashSet::new();
        for c in t.chars() {
            assert!(seen.insert(c), "seed {seed}: {c:?} twice");
        }
        for c in typed.difference(&deleted) {
            assert!(seen.contains(c), "seed {seed}: {c:?} lost");
        }
        assert!(
            host.shared_state().unwrap().retired_count() > 5,
            "seed {seed}: few splits"
        );
        check_mirror(&host);
        check_mirror(&guest);
    }
}
