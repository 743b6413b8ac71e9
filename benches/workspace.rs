//! Criterion benchmarks of the workspace hot paths: opening a big folder,
//! quick-open matching, loading a file. Peak-memory figures and the
//! 100 MB / 100,000-file measurements are in `tests/workspace_perf.rs`
//! (ignored tests), since criterion cannot measure memory.

use std::fs;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use lshed::workspace::{fuzzy_match, load_file, FileTree};

fn tree(c: &mut Criterion) {
    let d = tempfile::tempdir().expect("tempdir");
    for i in 0..20_000 {
        fs::File::create(d.path().join(format!("file_{i}.rs"))).expect("create");
    }
    fs::write(d.path().join(".gitignore"), "*.log\ntarget/\n").expect("write");
    c.bench_function("tree: open a folder of 20,000 files", |b| {
        b.iter(|| black_box(FileTree::new(d.path()).expect("tree").visible().len()))
    });
}

fn fuzzy(c: &mut Criterion) {
    let paths: Vec<String> = (0..100_000)
        .map(|i| format!("crates/mod_{}/src/sub_{}/item_{i}.rs", i % 97, i % 13))
        .collect();
    c.bench_function("fuzzy: 'itm42' over 100,000 paths", |b| {
        b.iter(|| black_box(fuzzy_match("itm42", &paths, 50)))
    });
    c.bench_function("fuzzy: 'mod_4/sub_1/item_77' over 100,000 paths", |b| {
        b.iter(|| black_box(fuzzy_match("mod_4/sub_1/item_77", &paths, 50)))
    });
}

fn load(c: &mut Criterion) {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("big.rs");
    let text: String = (0..200_000)
        .map(|i| format!("    let value_{i} = compute(alpha, beta, {i});\n"))
        .collect();
    fs::write(&p, &text).expect("write");
    c.bench_function("load: 10 MB source file", |b| {
        b.iter(|| black_box(load_file(&p).expect("load").rope.len_lines()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = tree, fuzzy, load
}
criterion_main!(benches);
