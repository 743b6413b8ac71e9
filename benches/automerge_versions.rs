//! Reproduces the table of automerge versions: one remote
//! 1-character change applied to a document of N characters seeded with one
//! splice (two documents in the process), the seed and load times at 1M, and
//! the peak RSS. This is the measurement behind the choice written in the
//! `doc` module docs (automerge 0.12, text cut into chunks).
//!
//! Opt-in, because it compiles two more automerge versions:
//! `cargo bench --features automerge-versions --bench automerge_versions`.
//! Each version runs in its own child process (this binary, re-run), so
//! that its peak RSS is its own. Prints a Markdown table.

use std::process::Command;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "LSHED_AMV_CHILD";
const SIZES: [usize; 2] = [100_000, 1_000_000];
/// Remote keystrokes timed per size (the median is reported).
const KEYSTROKES: usize = 15;

struct Row {
    remote_ms: Vec<f64>,
    seed_1m: Duration,
    load_1m: Duration,
}

/// The same measurement for each version: their APIs agree on everything
/// used here.
macro_rules! measure {
    ($am:ident) => {{
        use $am::transaction::Transactable;
        use $am::{AutoCommit, ObjType, ROOT};
        let mut remote_ms = Vec::new();
        let mut seed_1m = Duration::ZERO;
        let mut load_1m = Duration::ZERO;
        for &n in &SIZES {
            let text = "abcdefghij\n".repeat(n / 11 + 1)[..n].to_string();
            let mut a = AutoCommit::new();
            let t0 = Instant::now();
            let obj = a
                .put_object(ROOT, "text", ObjType::Text)
                .expect("put_object");
            a.splice_text(&obj, 0, 0, &text).expect("seed splice");
            a.commit();
            let seed = t0.elapsed();
            let saved = a.save();
            let t0 = Instant::now();
            let mut b = AutoCommit::load(&saved).expect("load");
            let load = t0.elapsed();
            if n == 1_000_000 {
                seed_1m = seed;
                load_1m = load;
            }
            let mut times = Vec::new();
            for k in 0..KEYSTROKES {
                a.splice_text(&obj, (k * 7919) % n, 0, "x")
                    .expect("keystroke");
                let change = a.save_incremental();
                let t0 = Instant::now();
                b.load_incremental(&change).expect("apply");
                times.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            remote_ms.push(times[times.len() / 2]);
        }
        Row {
            remote_ms,
            seed_1m,
            load_1m,
        }
    }};
}

/// Peak resident set of this process, from /proc (Linux); 0 elsewhere.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn child(version: &str) {
    let row = match version {
        "0.5.12" => measure!(am05),
        "0.6.1" => measure!(am06),
        _ => measure!(automerge),
    };
    println!(
        "| {version} | {:.3} ms | {:.3} ms | {:.2} s | {:.2} s | {:.2} GB |",
        row.remote_ms[0],
        row.remote_ms[1],
        row.seed_1m.as_secs_f64(),
        row.load_1m.as_secs_f64(),
        peak_rss_mb() / 1024.0
    );
}

fn main() {
    if let Ok(version) = std::env::var(CHILD_ENV) {
        return child(&version);
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass
    // nothing: only run when asked to bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    println!(
        "| automerge | remote keystroke, N = 100k | N = 1M | seed 1M | load 1M | peak RSS at 1M |"
    );
    println!("|---|---|---|---|---|---|");
    for version in ["0.5.12", "0.6.1", "0.12.0"] {
        let out = Command::new(&exe)
            .env(CHILD_ENV, version)
            .output()
            .expect("run child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            eprintln!("{version}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
