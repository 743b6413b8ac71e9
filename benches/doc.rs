//! Benchmarks of the `doc` module (figures in benches/README.md).
//!
//! Run: `cargo bench --bench doc -- --warm-up-time 1 --measurement-time 3`
//! (add a filter such as `remote_keystroke` to run one group). Without a
//! filter, or with the filter `memory`, a one-shot memory and size report
//! is printed first (peak heap measured by a counting allocator).

#[path = "../tests/integration/support/trace.rs"]
#[allow(dead_code)]
mod trace;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ReadDoc, ROOT};
use criterion::{BatchSize, Criterion, Throughput};
use lshed::doc::{Change, Document, PeerSync, SharedState};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- memory

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f`; returns its result, the peak heap growth during it and the
/// heap growth still held after it (by the result).
fn measure_heap<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let held = CURRENT.load(Ordering::Relaxed).saturating_sub(base);
    (out, peak, held)
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

// ---------------------------------------------------------------- helpers

fn actor(n: u8) -> ActorId {
    ActorId::from(vec![n; 16])
}

fn changes(txn: &[(usize, usize, String)]) -> Vec<Change> {
    txn.iter()
        .map(|(pos, del, ins)| Change::replace(*pos, pos + del, ins.clone()))
        .collect()
}

/// Text of `n` chars that looks like source code (lines of ~40 chars).
fn code_text(n: usize) -> String {
    let line = "    let value = compute(alpha, beta);\n";
    let mut s = line.repeat(n / line.len() + 1);
    s.truncate(n);
    s
}

/// The paper trace through `doc` (shared, one automerge change per
/// transaction); with `send`, the change bytes are also taken after each
/// transaction, as a session sending every keystroke would; with
/// `viewers`, as a session host whose guests view the file (chunks split).
fn replay_doc(t: &trace::Trace, send: bool, viewers: bool) -> Document {
    let mut doc = Document::from_text(&t.start);
    doc.share(actor(1)).expect("share");
    if let Some(state) = doc.shared_state_mut() {
        state.set_splitting(viewers);
    }
    for txn in &t.txns {
        doc.apply_local(&changes(txn));
        if send {
            black_box(doc.take_outgoing());
        }
    }
    doc
}

/// The same trace through raw automerge: one Text object, `splice_text`
/// per patch, one commit per transaction.
fn replay_raw(t: &trace::Trace) -> AutoCommit {
    let mut am = AutoCommit::new();
    let text = am.put_object(ROOT, "text", ObjType::Text).expect("obj");
    am.splice_text(&text, 0, 0, &t.start).expect("seed");
    for txn in &t.txns {
        for (pos, del, ins) in txn {
            am.splice_text(&text, *pos, *del as isize, ins)
                .expect("splice");
        }
        am.commit();
    }
    am
}

/// Host and guest sharing `text`, plus a function that makes `n` remote
/// keystrokes on the host (untimed) for the guest to apply.
fn pair(text: &str) -> (Document, Document) {
    let mut host = Document::from_text(text);
    host.share(actor(1)).expect("share");
    host.shared_state_mut().expect("shared").set_splitting(true);
    let saved = host.save_crdt().expect("save");
    let guest = Document::from_shared(SharedState::load(&saved, actor(2)).expect("load"));
    (host, guest)
}

fn keystrokes(host: &mut Document, n: usize, seed: &mut usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_mul(2654435761).wrapping_add(12345);
            let at = *seed % host.len_chars().max(1);
            host.apply_local(&[Change::insert(at, "x")]);
            host.take_outgoing().expect("change")
        })
        .collect()
}

/// Raw automerge, the setup: one Text object of `n` chars seeded
/// with one splice, on two documents; returns (sender, receiver, text obj).
fn raw_pair(n: usize) -> (AutoCommit, AutoCommit, automerge::ObjId) {
    let mut a = AutoCommit::new().with_actor(actor(1));
    let text = a.put_object(ROOT, "text", ObjType::Text).expect("obj");
    a.splice_text(&text, 0, 0, &code_text(n)).expect("seed");
    a.commit();
    let b = AutoCommit::load(&a.save())
        .expect("load")
        .with_actor(actor(2));
    (a, b, text)
}

// ---------------------------------------------------------------- report

fn memory_report() {
    eprintln!("== doc memory/size report ==");
    let paper = trace::load_named("automerge-paper");
    let edits = paper.patch_count();

    let (doc, peak, held) = measure_heap(|| {
        let t0 = Instant::now();
        let d = replay_doc(&paper, true, false);
        eprintln!(
            "paper through doc (+ change bytes per txn): {:?}",
            t0.elapsed()
        );
        d
    });
    let state = doc.shared_state().expect("shared");
    eprintln!(
        "paper through doc: {edits} edits, {} chunks (longest {} chars), peak heap {:.0} MB, held {:.0} MB",
        state.chunk_count(),
        state.longest_chunk(),
        mb(peak),
        mb(held)
    );
    drop(doc);
    let (raw, peak, held) = measure_heap(|| {
        let t0 = Instant::now();
        let r = replay_raw(&paper);
        eprintln!("paper through raw automerge: {:?}", t0.elapsed());
        r
    });
    eprintln!(
        "paper through raw automerge: peak heap {:.0} MB, held {:.0} MB",
        mb(peak),
        mb(held)
    );
    drop(raw);

    // Making 1 MB shared: time and memory per shared 1 MB file.
    let text = code_text(1_000_000);
    let mut doc = Document::from_text(&text);
    let ((), peak, held) = measure_heap(|| {
        let t0 = Instant::now();
        doc.share(actor(1)).expect("share");
        eprintln!("share 1 MB: {:?}", t0.elapsed());
    });
    eprintln!(
        "share 1 MB: peak heap {:.0} MB, held by the CRDT state {:.0} MB",
        mb(peak),
        mb(held)
    );
    let (saved, _, _) = measure_heap(|| doc.save_crdt().expect("save"));
    let (loaded, peak, held) = measure_heap(|| {
        let t0 = Instant::now();
        let s = SharedState::load(&saved, actor(2)).expect("load");
        eprintln!(
            "load 1 MB ({} bytes saved): {:?}",
            saved.len(),
            t0.elapsed()
        );
        s
    });
    eprintln!(
        "load 1 MB: peak heap {:.0} MB, held {:.0} MB",
        mb(peak),
        mb(held)
    );
    drop(loaded);

    // Raw automerge, one object (the layout), for comparison.
    let ((a, _b, _), peak, held) = measure_heap(|| {
        let t0 = Instant::now();
        let p = raw_pair(1_000_000);
        eprintln!("raw one-object seed+load 1M (two docs): {:?}", t0.elapsed());
        p
    });
    eprintln!(
        "raw one-object 1M, two docs: peak heap {:.0} MB, held {:.0} MB",
        mb(peak),
        mb(held)
    );
    drop(a);

    // A guest following the host's split of a chunk in a 1 MB document
    // (the layout changes under it; its text does not).
    let (mut host, mut guest) = pair(&code_text(1_000_000));
    host.shared_state_mut()
        .expect("shared")
        .set_split_churn(1500);
    let (mut split_times, mut other_times) = (Vec::new(), Vec::new());
    for i in 0..4000 {
        host.apply_local(&[Change::insert(500_000 + i % 5, "k")]);
        let msg = host.take_outgoing().expect("change");
        let before = guest.shared_state().expect("shared").retired_count();
        let t0 = Instant::now();
        guest.apply_remote(&msg).expect("apply");
        let took = t0.elapsed();
        if guest.shared_state().expect("shared").retired_count() > before {
            split_times.push(took);
        } else {
            other_times.push(took);
        }
    }
    split_times.sort();
    other_times.sort();
    if let (Some(s), Some(o)) = (
        split_times.get(split_times.len() / 2),
        other_times.get(other_times.len() / 2),
    ) {
        eprintln!(
            "1 MB guest: keystroke that carries a split {s:?} (median of {}), other keystrokes {o:?}",
            split_times.len()
        );
    }
    drop((host, guest));

    // The whole trace as remote changes on a second document (the guest
    // of a session where the host types the paper).
    let mut host = Document::from_text(&paper.start);
    host.share(actor(1)).expect("share");
    host.shared_state_mut().expect("shared").set_splitting(true);
    let saved = host.save_crdt().expect("save");
    let msgs: Vec<Vec<u8>> = paper
        .txns
        .iter()
        .map(|txn| {
            host.apply_local(&changes(txn));
            host.take_outgoing().expect("change")
        })
        .collect();
    let mut guest = Document::from_shared(SharedState::load(&saved, actor(2)).expect("load"));
    let t0 = Instant::now();
    for m in &msgs {
        guest.apply_remote(m).expect("apply");
    }
    let took = t0.elapsed();
    assert_eq!(guest.rope().to_string(), paper.end);
    let gs = guest.shared_state().expect("shared");
    eprintln!(
        "paper as remote changes (all {} txns, {edits} edits): {took:?} = {:.0} edits/s; \
         guest ends with {} chunks (longest {} chars), {} splits followed",
        msgs.len(),
        edits as f64 / took.as_secs_f64(),
        gs.chunk_count(),
        gs.longest_chunk(),
        gs.retired_count()
    );
    drop(guest);
    drop(msgs);

    // Full sync of the final paper document to a fresh peer.
    let t0 = Instant::now();
    let mut host = replay_doc(&paper, false, true);
    eprintln!(
        "paper through doc (no sending, splitting as a host with viewers): {:?}",
        t0.elapsed()
    );
    let mut fresh = Document::from_shared(SharedState::empty(actor(3)));
    let (mut hs, mut fs) = (PeerSync::new(), PeerSync::new());
    let (mut bytes, mut msgs) = (0, 0);
    let t0 = Instant::now();
    loop {
        let mut quiet = true;
        if let Some(m) = host.generate_sync_message(&mut hs).expect("gen") {
            bytes += m.len();
            msgs += 1;
            fresh.receive_sync_message(&mut fs, &m).expect("recv");
            quiet = false;
        }
        if let Some(m) = fresh.generate_sync_message(&mut fs).expect("gen") {
            bytes += m.len();
            msgs += 1;
            host.receive_sync_message(&mut hs, &m).expect("recv");
            quiet = false;
        }
        if quiet {
            break;
        }
    }
    assert_eq!(fresh.rope().to_string(), paper.end);
    eprintln!(
        "full sync of paper to a fresh peer: {:?}, {msgs} messages, {bytes} bytes; full save {} bytes",
        t0.elapsed(),
        host.save_crdt().expect("save").len()
    );
    eprintln!("== end of report ==");
}

// ---------------------------------------------------------------- benches

fn bench_paper(c: &mut Criterion) {
    let paper = trace::load_named("automerge-paper");
    let edits = paper.patch_count() as u64;
    let mut g = c.benchmark_group("paper_replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements(edits));
    g.bench_function("doc", |b| {
        b.iter(|| black_box(replay_doc(&paper, false, false)))
    });
    g.bench_function("doc_host_with_viewers", |b| {
        b.iter(|| black_box(replay_doc(&paper, false, true)))
    });
    g.bench_function("doc_with_change_bytes", |b| {
        b.iter(|| black_box(replay_doc(&paper, true, false)))
    });
    g.bench_function("raw_automerge", |b| {
        b.iter(|| black_box(replay_raw(&paper)))
    });
    g.finish();

    // The same trace as remote changes on a second document, in two
    // windows (the whole trace is timed once in the report): the first
    // 20,000 transactions from empty, and the last 500 on top of a replica
    // that has all the others.
    let mut host = Document::from_text(&paper.start);
    host.share(actor(1)).expect("share");
    host.shared_state_mut().expect("shared").set_splitting(true);
    let saved = host.save_crdt().expect("save");
    let last = paper.txns.len().saturating_sub(500);
    let mut base_saved = Vec::new();
    let msgs: Vec<Vec<u8>> = paper
        .txns
        .iter()
        .enumerate()
        .map(|(i, txn)| {
            if i == last {
                base_saved = host.save_crdt().expect("save");
            }
            host.apply_local(&changes(txn));
            host.take_outgoing().expect("change")
        })
        .collect();
    let first = 20_000.min(msgs.len());
    let first_edits: u64 = paper.txns[..first].iter().map(|t| t.len() as u64).sum();
    let mut g = c.benchmark_group("paper_remote");
    g.sample_size(10);
    g.throughput(Throughput::Elements(first_edits));
    g.bench_function("first_20k_txns", |b| {
        b.iter_batched(
            || Document::from_shared(SharedState::load(&saved, actor(2)).expect("load")),
            |mut guest| {
                for m in &msgs[..first] {
                    guest.apply_remote(m).expect("apply");
                }
                guest
            },
            BatchSize::PerIteration,
        )
    });
    let last_edits: u64 = paper.txns[last..].iter().map(|t| t.len() as u64).sum();
    g.throughput(Throughput::Elements(last_edits));
    g.bench_function("last_500_txns", |b| {
        b.iter_batched(
            || Document::from_shared(SharedState::load(&base_saved, actor(2)).expect("load")),
            |mut guest| {
                for m in &msgs[last..] {
                    guest.apply_remote(m).expect("apply");
                }
                guest
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    // Full sync of the final document to a fresh peer.
    let mut g = c.benchmark_group("paper_full_sync");
    g.sample_size(10);
    g.bench_function("to_fresh_peer", |b| {
        b.iter(|| {
            let mut fresh = Document::from_shared(SharedState::empty(actor(3)));
            let (mut hs, mut fs) = (PeerSync::new(), PeerSync::new());
            loop {
                let mut quiet = true;
                if let Some(m) = host.generate_sync_message(&mut hs).expect("gen") {
                    fresh.receive_sync_message(&mut fs, &m).expect("recv");
                    quiet = false;
                }
                if let Some(m) = fresh.generate_sync_message(&mut fs).expect("gen") {
                    host.receive_sync_message(&mut hs, &m).expect("recv");
                    quiet = false;
                }
                if quiet {
                    break;
                }
            }
            fresh
        })
    });
    g.finish();
}

fn bench_keystrokes(c: &mut Criterion) {
    let mut g = c.benchmark_group("local_keystroke");
    let mut doc = Document::from_text(&code_text(1_000_000));
    doc.share(actor(1)).expect("share");
    let mut seed = 7usize;
    g.bench_function("1MB_edit_to_change_bytes", |b| {
        b.iter(|| {
            seed = seed.wrapping_mul(2654435761).wrapping_add(12345);
            let at = seed % doc.len_chars();
            doc.apply_local(&[Change::insert(at, "x")]);
            black_box(doc.take_outgoing())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("remote_keystroke");
    // The end of automerge-paper: 105k chars after 260k edits typed in one
    // place (the issue measured 32-42 ms per remote keystroke there with
    // raw automerge 0.12).
    let paper = trace::load_named("automerge-paper");
    let mut host = replay_doc(&paper, false, true);
    let saved = host.save_crdt().expect("save");
    let mut guest = Document::from_shared(SharedState::load(&saved, actor(2)).expect("load"));
    bench_remote(&mut g, "paper_final_105k", &mut host, &mut guest, 13);
    drop((host, guest));
    for n in [100_000usize, 1_000_000] {
        let (mut host, mut guest) = pair(&code_text(n));
        bench_remote(&mut g, &format!("doc_{n}"), &mut host, &mut guest, 11);
        // The reference: raw automerge 0.12, one Text object.
        let (mut a, mut b2, text) = raw_pair(n);
        g.bench_function(format!("raw_one_object_{n}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let at = (i as usize * 7919) % a.length(&text);
                    a.splice_text(&text, at, 0, "x").expect("splice");
                    let change = a.get_last_local_change().expect("change");
                    let t0 = Instant::now();
                    b2.apply_changes([change]).expect("apply");
                    total += t0.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

/// Times the guest applying remote keystrokes made (untimed) on the host.
fn bench_remote(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    host: &mut Document,
    guest: &mut Document,
    mut seed: usize,
) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let msgs = keystrokes(host, iters as usize, &mut seed);
            let t0 = Instant::now();
            for m in &msgs {
                black_box(guest.apply_remote(m).expect("apply"));
            }
            t0.elapsed()
        })
    });
}

fn bench_share(c: &mut Criterion) {
    let text = code_text(1_000_000);
    let mut g = c.benchmark_group("share");
    g.sample_size(10);
    g.bench_function("1MB", |b| {
        b.iter_batched(
            || Document::from_text(&text),
            |mut doc| {
                doc.share(actor(1)).expect("share");
                doc
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants_report = filters.is_empty() || filters.iter().any(|f| f.contains("memory"));
    // criterion is given --bench by cargo; filters that are option values
    // (e.g. the "3" of --measurement-time 3) are numbers.
    let wants_report = wants_report || filters.iter().all(|f| f.parse::<f64>().is_ok());
    if wants_report {
        memory_report();
    }
    let mut c = Criterion::default().configure_from_args();
    // The paper groups need ~10 s of untimed setup: skip it when a filter
    // excludes them.
    let named: Vec<&String> = filters
        .iter()
        .filter(|f| f.parse::<f64>().is_err())
        .collect();
    let wants = |group: &str| {
        named.is_empty()
            || named
                .iter()
                .any(|f| f.contains(group) || group.contains(f.as_str()))
    };
    bench_keystrokes(&mut c);
    bench_share(&mut c);
    if wants("paper") {
        bench_paper(&mut c);
    }
    c.final_summary();
}
