//! Editor benchmarks: one keystroke plus a full frame, opening a 100 MB
//! file, and startup on a folder of 100,000 files. Figures go in
//! benches/README.md.
//!
//! Peak memory cannot be read inside criterion's process (everything else
//! it did counts too), so `main` re-runs this binary as a child that only
//! opens the 100 MB file, draws one frame and reports its VmHWM.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BatchSize, Criterion};
use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use lshed::config::{Config, ConfigLoad};
use lshed::tui::clipboard::Clipboard;
use lshed::tui::{App, AppEvent};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn app_on(path: &Path) -> App {
    let loaded = ConfigLoad {
        config: Config::default(),
        path: path.with_extension("no-config"),
        warnings: Vec::new(),
    };
    App::new(path, loaded, Clipboard::none()).expect("open")
}

fn rust_source(lines: usize) -> String {
    let body = [
        "fn compute(values: &[u64]) -> u64 {",
        "    // Sum the even values, doubled.",
        "    let mut total = 0u64;",
        "    for v in values.iter().filter(|v| *v % 2 == 0) {",
        "        total += v * 2; /* inline */",
        "    }",
        "    println!(\"total = {}\", total);",
        "    total",
        "}",
        "",
    ];
    let mut s = String::with_capacity(lines * 40);
    for i in 0..lines {
        s.push_str(body[i % body.len()]);
        s.push('\n');
    }
    s
}

fn keystroke_bench(c: &mut Criterion, lines: usize, name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("big.rs");
    std::fs::write(&file, rust_source(lines)).expect("write");
    let mut app = app_on(&file);
    let mut term = Terminal::new(TestBackend::new(120, 40)).expect("backend");
    // Put the cursor in the middle of the file, as when working in it.
    if let Some(b) = app.editor.buffer_mut() {
        b.goto_line(lines / 2, Some(5));
    }
    term.draw(|f| app.render(f)).expect("draw");
    let key = AppEvent::Term(Event::Key(KeyEvent::new(
        KeyCode::Char('x'),
        KeyModifiers::NONE,
    )));
    let bs = AppEvent::Term(Event::Key(KeyEvent::new(
        KeyCode::Backspace,
        KeyModifiers::NONE,
    )));
    let mut flip = false;
    c.bench_function(name, |b| {
        b.iter(|| {
            flip = !flip;
            app.handle_event(if flip { key.clone() } else { bs.clone() });
            term.draw(|f| app.render(f)).expect("draw");
        })
    });
}

fn keystrokes(c: &mut Criterion) {
    keystroke_bench(c, 10_000, "keystroke+frame 10k lines");
    keystroke_bench(c, 1_000_000, "keystroke+frame 1M lines");
}

fn large_file_text() -> String {
    // ~100 MB of Rust-like text.
    rust_source(4_150_000)
}

fn large_file(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("huge.rs");
    std::fs::write(&file, large_file_text()).expect("write");
    let mut g = c.benchmark_group("large file");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    g.bench_function("open 100 MB + first frame", |b| {
        b.iter_batched(
            || (),
            |_| {
                let mut app = app_on(&file);
                let mut term = Terminal::new(TestBackend::new(120, 40)).expect("backend");
                term.draw(|f| app.render(f)).expect("draw");
                app
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn many_files(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    for d in 0..100 {
        let sub = dir.path().join(format!("dir{d:03}"));
        std::fs::create_dir(&sub).expect("mkdir");
        for f in 0..990 {
            std::fs::write(sub.join(format!("file{f:04}.txt")), "").expect("write");
        }
    }
    for f in 0..1000 {
        std::fs::write(dir.path().join(format!("top{f:04}.rs")), "").expect("write");
    }
    let flat = tempfile::tempdir().expect("tempdir");
    for f in 0..100_000 {
        std::fs::write(flat.path().join(format!("f{f:06}.txt")), "").expect("write");
    }
    let mut g = c.benchmark_group("startup");
    g.sample_size(20);
    for (name, path) in [
        ("100k files in 100 folders to first frame", dir.path()),
        ("100k files in one folder to first frame", flat.path()),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut app = app_on(path);
                let mut term = Terminal::new(TestBackend::new(120, 40)).expect("backend");
                term.draw(|f| app.render(f)).expect("draw");
                app
            })
        });
    }
    g.finish();
}

criterion_group!(benches, keystrokes, large_file, many_files);

fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn child_measure_large() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("huge.rs");
    let text = large_file_text();
    let size = text.len();
    std::fs::write(&file, &text).expect("write");
    drop(text);
    // The generator's own peak is not the editor's: measure from here.
    let before = peak_rss_kb().unwrap_or(0);
    let _ = before;
    let start = Instant::now();
    let mut app = app_on(&file);
    let mut term = Terminal::new(TestBackend::new(120, 40)).expect("backend");
    term.draw(|f| app.render(f)).expect("draw");
    let first_frame = start.elapsed();
    let peak = peak_rss_kb().unwrap_or(0);
    println!(
        "large file: {:.1} MB, first frame {:.0} ms, peak RSS {:.1} MB ({:.2}x the file)",
        size as f64 / 1e6,
        first_frame.as_secs_f64() * 1e3,
        peak as f64 / 1e3,
        peak as f64 * 1e3 / size as f64
    );
}

fn main() {
    if std::env::var_os("LSHED_BENCH_CHILD").is_some() {
        child_measure_large();
        return;
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    if let Ok(exe) = std::env::current_exe() {
        let _ = std::process::Command::new(exe)
            .env("LSHED_BENCH_CHILD", "1")
            .status();
    }
}
