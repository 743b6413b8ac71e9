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
//! `paper_flood` (one-shot, printed): the whole of automerge-paper
//! (259,778 edits) pipelined by a headless guest into a headless host,
//! real release processes on loopback: when the guest has answered every
//! edit, when the host's text equals the trace's end, both processes' CPU
//! time, the host's `text` answer time sampled every 100 ms meanwhile, and
//! how many `edit` answers were not the length the guest's own edits imply.
//!
//! Run: `cargo bench --bench flood -- --warm-up-time 1 --measurement-time 5`
//! (`cargo bench --bench flood -- paper_flood` for the one-shot alone).

#[path = "../tests/integration/support/trace.rs"]
#[allow(dead_code)]
mod trace;

#[path = "../tests/integration/support/headless.rs"]
mod headless;

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

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime, in clock ticks (100 a second on Linux).
    (ticks(11) + ticks(12)) / 100.0
}

fn paper_flood() {
    use serde_json::json;
    use std::io::Write;
    use std::time::Instant;
    let t = trace::load_named("automerge-paper");
    let edits: Vec<(usize, usize, String)> = t.txns.into_iter().flatten().collect();
    let mut model: Vec<char> = t.start.chars().collect();
    let mut lens = Vec::with_capacity(edits.len());
    for (pos, del, ins) in &edits {
        model.splice(*pos..pos + del, ins.chars());
        lens.push(model.len());
    }
    let end: String = model.into_iter().collect();
    let dir = headless::folder(&[("paper.txt", &t.start)]);
    let mut cmd = headless::lshed();
    cmd.args(["share", dir.path().to_str().unwrap_or("."), "--headless"])
        .args(["--connection-mode", "direct", "--bind", "127.0.0.1"]);
    let config =
        |name: &str| format!("guest_approval = \"auto\"\n[identity]\ndisplay_name = \"{name}\"\n");
    let mut host = headless::Peer::launch("host", cmd, &config("host"));
    let link = host.shared_link();
    host.ok(json!({"cmd": "open", "path": "paper.txt"}));
    let mut cmd = headless::lshed();
    cmd.args(["join", &link, "--headless"]);
    let mut guest = headless::Peer::launch("guest", cmd, &config("guest"));
    guest.wait_event("joined");
    guest.open("paper.txt");

    let mut script = String::with_capacity(edits.len() * 80);
    for (i, (pos, del, ins)) in edits.iter().enumerate() {
        let line = json!({"cmd": "edit", "path": "paper.txt", "offset": pos,
                          "delete": del, "insert": ins, "tag": i});
        script.push_str(&line.to_string());
        script.push('\n');
    }
    let (host_cpu, guest_cpu) = (cpu_seconds(host.child.id()), cpu_seconds(guest.child.id()));
    let started = Instant::now();
    let Some(mut stdin) = guest.stdin.take() else {
        return;
    };
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(script.as_bytes());
        let _ = stdin.flush();
        stdin
    });
    let (mut answered, mut wrong) = (0usize, 0usize);
    let mut answered_at = None;
    let mut latencies = Vec::new();
    let converged = loop {
        while let Ok(v) = guest.lines.try_recv() {
            let Some(i) = v["tag"].as_u64().map(|i| i as usize) else {
                continue;
            };
            if v["len"].as_u64() != lens.get(i).map(|&l| l as u64) {
                wrong += 1;
            }
            answered += 1;
        }
        if answered == edits.len() && answered_at.is_none() {
            answered_at = Some(started.elapsed());
        }
        let asked = Instant::now();
        let text = host.text("paper.txt");
        latencies.push(asked.elapsed());
        if text == end {
            break Some(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(900) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    guest.stdin = writer.join().ok();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "paper_flood: {} edits; guest answered all at {:?}; host converged at {:?}; \
         CPU host {:.1} s, guest {:.1} s; host `text` during it p50 {:?}, max {:?} \
         ({} samples); wrong lengths {wrong}",
        edits.len(),
        answered_at,
        converged,
        cpu_seconds(host.child.id()) - host_cpu,
        cpu_seconds(guest.child.id()) - guest_cpu,
        pct(0.5),
        pct(1.0),
        latencies.len(),
    );
}

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    if filter.is_empty() || "paper_flood".contains(&filter) {
        paper_flood();
    }
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1));
    remote_batch(&mut c);
    c.final_summary();
}
