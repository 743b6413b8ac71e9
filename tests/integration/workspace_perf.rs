//! Measurements behind the figures in the workspace module docs. Ignored
//! by default (they write ~100 MB / 100,000 files and time things); run in
//! release, one at a time so peak-memory readings are per test:
//!
//! ```text
//! cargo test --release --test integration workspace_perf:: -- --ignored --nocapture --test-threads=1
//! ```
//!
//! Nothing here asserts on time: machines differ; the figures are printed.

use std::fs;
use std::path::Path;
use std::time::Instant;

use lshed::workspace::{fuzzy_match, load_file, FileIndex, FileTree};

/// Linux: (current RSS, peak RSS) in KiB from /proc/self/status.
fn rss_kib() -> (u64, u64) {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) of this thread, in ms (10 ms ticks): on a
/// loaded machine wall-clock time says more about the neighbours.
fn thread_cpu_ms() -> u64 {
    let stat = fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0)) * 10
}

/// Resets the peak-RSS mark to the current RSS (Linux >= 4.0).
fn reset_peak() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

fn make_100mb(path: &Path) -> u64 {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut n = 0u64;
    let mut i = 0u64;
    while n < 100_000_000 {
        let line = format!("    let value_{i} = compute(alpha, beta, {i}); // step {i}\n");
        w.write_all(line.as_bytes()).unwrap();
        n += line.len() as u64;
        i += 1;
    }
    w.flush().unwrap();
    n
}

#[test]
#[ignore]
fn perf_load_100mb_streaming() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("big.rs");
    let size = make_100mb(&p);
    let _ = fs::read(&p).map(drop); // warm the page cache
    reset_peak();
    let (before, _) = rss_kib();
    let t = Instant::now();
    let f = load_file(&p).unwrap();
    let took = t.elapsed();
    let (_, peak) = rss_kib();
    assert_eq!(f.rope.len_bytes() as u64, size);
    assert!(f.read_only.is_none());
    println!(
        "load_file {:.1} MB: {:?}, peak RSS growth {:.1} MB = {:.2}x file size",
        size as f64 / 1e6,
        took,
        (peak - before) as f64 * 1024.0 / 1e6,
        (peak - before) as f64 * 1024.0 / size as f64
    );
}

#[test]
#[ignore]
fn perf_load_100mb_read_then_from_str_for_comparison() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("big.rs");
    let size = make_100mb(&p);
    let _ = fs::read(&p).map(drop);
    reset_peak();
    let (before, _) = rss_kib();
    let t = Instant::now();
    let bytes = fs::read(&p).unwrap();
    let rope = ropey::Rope::from_str(std::str::from_utf8(&bytes).unwrap());
    drop(bytes);
    let took = t.elapsed();
    let (_, peak) = rss_kib();
    assert_eq!(rope.len_bytes() as u64, size);
    println!(
        "fs::read + from_utf8 + Rope::from_str: {:?}, peak RSS growth {:.2}x file size",
        took,
        (peak - before) as f64 * 1024.0 / size as f64
    );
}

#[test]
#[ignore]
fn perf_tree_100k_in_one_folder() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..100_000 {
        fs::File::create(d.path().join(format!("file_{i}.txt"))).unwrap();
    }
    fs::write(d.path().join(".gitignore"), "*.log\nbuild/\n/target\n").unwrap();
    let _ = FileTree::new(d.path()).unwrap(); // warm the dentry cache
    let mut times = Vec::new();
    let mut rows = 0;
    let cpu = thread_cpu_ms();
    for _ in 0..5 {
        let t = Instant::now();
        let tree = FileTree::new(d.path()).unwrap();
        times.push(t.elapsed());
        rows = tree.visible().len();
    }
    let cpu = (thread_cpu_ms() - cpu) / 5;
    times.sort();
    println!(
        "FileTree::new, 100,000 files in one folder ({rows} rows): min {:?}, median {:?}, CPU {cpu} ms each",
        times[0], times[2]
    );
}

#[test]
#[ignore]
fn perf_tree_and_index_100k_spread() {
    let d = tempfile::tempdir().unwrap();
    // 100 folders x 10 subfolders x 100 files.
    for a in 0..100 {
        for b in 0..10 {
            let dir = d.path().join(format!("mod_{a}/sub_{b}"));
            fs::create_dir_all(&dir).unwrap();
            for c in 0..100 {
                fs::File::create(dir.join(format!("item_{c}.rs"))).unwrap();
            }
        }
    }
    fs::write(d.path().join(".gitignore"), "*.log\nbuild/\n").unwrap();
    let _ = FileTree::new(d.path()).unwrap();
    let t = Instant::now();
    let mut tree = FileTree::new(d.path()).unwrap();
    println!(
        "FileTree::new, 100,000 files in 1,000 subfolders: root listed in {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    tree.expand(0).unwrap();
    tree.expand(1).unwrap();
    println!(
        "expand a folder + a subfolder of 100 files: {:?}",
        t.elapsed()
    );

    let t = Instant::now();
    let idx = FileIndex::spawn(d.path());
    assert!(idx.wait(std::time::Duration::from_secs(60)));
    println!("FileIndex: {} files walked in {:?}", idx.len(), t.elapsed());
    let paths = idx.snapshot();
    for q in ["itm5", "mod_42/sub_3/item_7", "zzz"] {
        let t = Instant::now();
        let hits = fuzzy_match(q, &paths, 50);
        println!(
            "fuzzy_match {q:?} over {} paths: {} hits in {:?}",
            paths.len(),
            hits.len(),
            t.elapsed()
        );
    }
}

/// For profiling: lists `$LSHED_PERF_DIR` 20 times (skips if unset).
#[test]
#[ignore]
fn perf_tree_list_existing_dir() {
    let Some(dir) = std::env::var_os("LSHED_PERF_DIR") else {
        println!("skipped: LSHED_PERF_DIR not set");
        return;
    };
    let mut times = Vec::new();
    let cpu = thread_cpu_ms();
    for _ in 0..20 {
        let t = Instant::now();
        let tree = FileTree::new(Path::new(&dir)).unwrap();
        times.push(t.elapsed());
        assert!(!tree.visible().is_empty());
    }
    let cpu = (thread_cpu_ms() - cpu) / 20;
    times.sort();
    println!(
        "listing {dir:?}: min {:?}, median {:?}, CPU {cpu} ms per listing",
        times[0], times[10]
    );
}
