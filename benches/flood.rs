//! Remote edits at machine speed (figures in benches/README.md, "Speed
//! under load").
//!
//! `remote_batch`: a guest types the first edits of automerge-paper
//! without hearing from the host (a flood: every edit races the host's
//! splits), one change message per edit; the host applies them in
//! batches of 1, 10, 100 and 1000 messages (concatenated, as the session
//! does with what is queued), against raw automerge 0.12 applying the
//! same edits as changes to one Text object in the same batches.
//!
//! Run: `cargo bench --bench flood -- --warm-up-time 1 --measurement-time 5`

#[path = "../tests/integration/support/trace.rs"]
#[allow(dead_code)]
mod trace;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ROOT};
use criterion::{BatchSize, Criterion, Throughput};
use lshed::doc::{Change, Document, SharedState};
use std::hint::black_box;
use std::time::Duration;

/// Edits typed by the flooding guest.
const EDITS: usize = 4000;

fn edits() -> (String, Vec<(usize, usize, String)>) {
    let t = trace::load_named("automerge-paper");
    let edits = t.txns.into_iter().flatten().take(EDITS).collect();
    (t.start, edits)
}

fn remote_batch(c: &mut Criterion) {
    let (start, edits) = edits();
    // lshed: the host's state, and the guest's change messages.
    let mut host = Document::from_text(&start);
    host.share(ActorId::from(vec![1u8; 16])).expect("share");
    let saved = host.save_crdt().expect("save");
    let host_state: SharedState = host.shared_state().expect("shared").clone();
    let mut guest = Document::from_shared(
        SharedState::load(&saved, ActorId::from(vec![2u8; 16])).expect("load"),
    );
    let mut msgs = Vec::with_capacity(edits.len());
    for (pos, del, ins) in &edits {
        guest.apply_local(&[Change::replace(*pos, pos + del, ins.clone())]);
        msgs.extend(guest.take_outgoing());
    }
    let end = guest.rope().to_string();

    // Raw automerge: one Text object, the same edits as changes.
    let mut raw_host = AutoCommit::new_with_encoding(automerge::TextEncoding::UnicodeCodePoint)
        .with_actor(ActorId::from(vec![3u8; 16]));
    let text = raw_host
        .put_object(ROOT, "text", ObjType::Text)
        .expect("text");
    raw_host.splice_text(&text, 0, 0, &start).expect("start");
    raw_host.commit();
    let mut raw_guest = raw_host.fork().with_actor(ActorId::from(vec![4u8; 16]));
    let mut raw_changes = Vec::with_capacity(edits.len());
    for (pos, del, ins) in &edits {
        raw_guest
            .splice_text(&text, *pos, *del as isize, ins)
            .expect("splice");
        raw_guest.commit();
        raw_changes.extend(raw_guest.get_last_local_change());
    }

    let mut g = c.benchmark_group("remote_batch");
    g.sample_size(10);
    g.throughput(Throughput::Elements(edits.len() as u64));
    for batch in [1usize, 10, 100, 1000] {
        g.bench_function(format!("lshed_{batch}"), |b| {
            b.iter_batched(
                || {
                    let mut doc = Document::from_shared(host_state.clone());
                    if let Some(s) = doc.shared_state_mut() {
                        s.set_splitting(true);
                    }
                    doc
                },
                |mut doc| {
                    for group in msgs.chunks(batch) {
                        let joined: Vec<u8> = group.concat();
                        doc.apply_remote(&joined).expect("apply");
                    }
                    assert_eq!(doc.len_chars(), end.chars().count());
                    black_box(doc)
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function(format!("automerge_{batch}"), |b| {
            b.iter_batched(
                || raw_host.clone(),
                |mut doc| {
                    for group in raw_changes.chunks(batch) {
                        doc.apply_changes(group.iter().cloned()).expect("apply");
                    }
                    black_box(doc)
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1));
    remote_batch(&mut c);
    c.final_summary();
}
