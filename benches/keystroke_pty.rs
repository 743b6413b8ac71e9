//! Key to redraw in a real pseudo-terminal: lshed and, where installed,
//! vim, side by side in one run (figures in benches/README.md, "Speed under
//! load").
//!
//! Each editor opens the same 10,000-line Rust file in a 120x40 pty; then
//! 400 keys alternate a letter and Backspace at the start of the file. A
//! sample is the time from the write of the key to the arrival of the last
//! byte of the redraw it causes (the output that follows the key until the
//! terminal has been quiet for [`QUIET`]; the quiet time itself is not
//! counted). Rounds alternate between the editors so that both see the
//! same machine.
//!
//! Run: `cargo bench --bench keystroke_pty` (vim: `-u DEFAULTS`, syntax
//! on; skipped with a note when `vim` is not on PATH).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};

const KEYS: usize = 400;
const ROUNDS: usize = 3;
/// Silence that ends a redraw.
const QUIET: Duration = Duration::from_millis(25);
/// Silence that ends the start-up drawing.
const SETTLE: Duration = Duration::from_millis(600);

struct Editor {
    name: &'static str,
    child: Box<dyn Child + Send + Sync>,
    _master: Box<dyn MasterPty + Send>,
    writer: Box<dyn Write + Send>,
    output: mpsc::Receiver<Instant>,
}

impl Editor {
    fn spawn(name: &'static str, program: &str, args: &[&str], home: &Path) -> Self {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 40,
                cols: 120,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("openpty");
        let mut cmd = CommandBuilder::new(program);
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        cmd.env("HOME", home);
        cmd.env("XDG_CONFIG_HOME", home.join(".config"));
        cmd.env("XDG_STATE_HOME", home.join(".local/state"));
        cmd.env("LSHED_CONFIG", home.join("lshed.toml"));
        cmd.env_remove("DISPLAY");
        cmd.env_remove("WAYLAND_DISPLAY");
        let child = pair.slave.spawn_command(cmd).expect("spawn");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("reader");
        let writer = pair.master.take_writer().expect("writer");
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(Instant::now()).is_err() {
                    break;
                }
            }
        });
        let mut editor = Self {
            name,
            child,
            _master: pair.master,
            writer,
            output,
        };
        editor.quiet(SETTLE);
        editor
    }

    /// Waits until nothing has arrived for `gap`; returns when the last
    /// output arrived (if any did).
    fn quiet(&mut self, gap: Duration) -> Option<Instant> {
        let mut last = None;
        while let Ok(at) = self.output.recv_timeout(gap) {
            last = Some(at);
        }
        last
    }

    fn key(&mut self, bytes: &[u8]) -> Option<Duration> {
        let sent = Instant::now();
        self.writer.write_all(bytes).expect("write key");
        self.writer.flush().expect("flush");
        // The first byte may take longer than the quiet gap on a busy
        // machine: wait for it with a generous deadline.
        let first = self.output.recv_timeout(Duration::from_secs(5)).ok()?;
        let last = self.quiet(QUIET).unwrap_or(first).max(first);
        Some(last.duration_since(sent))
    }

    fn round(&mut self, samples: &mut Vec<Duration>) {
        let t = Instant::now();
        let before = samples.len();
        for i in 0..KEYS {
            let key: &[u8] = if i % 2 == 0 { b"x" } else { b"\x7f" };
            if let Some(d) = self.key(key) {
                samples.push(d);
            }
        }
        eprintln!(
            "{}: {} samples in {:.1} s",
            self.name,
            samples.len() - before,
            t.elapsed().as_secs_f64()
        );
    }
}

impl Drop for Editor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A 10,000-line Rust file.
fn rust_file() -> String {
    let mut s = String::new();
    for i in 0..2000 {
        s.push_str(&format!(
            "/// Adds {i} to the value, saturating.\npub fn add_{i}(x: u64) -> u64 {{\n    let y = x.saturating_add({i}); // keep it in range\n    if y > 1_000_000 {{ return y / 2; }}\n    y\n}}\n"
        ));
    }
    let lines: Vec<&str> = s.lines().take(10_000).collect();
    lines.join("\n") + "\n"
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that names another bench
    // skips this one.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    if !filter.is_empty() && !"keystroke_pty".contains(&filter) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("big.rs");
    std::fs::write(&file, rust_file()).expect("write file");
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".config")).expect("home");
    let file = file.to_str().expect("utf-8 path");
    let vim = which("vim");
    if vim.is_none() {
        println!("vim is not on PATH: lshed alone");
    }
    let mut lshed_samples = Vec::new();
    let mut vim_samples = Vec::new();
    for _ in 0..ROUNDS {
        // (LSHED_BENCH_BIN: another lshed binary, e.g. under `perf record`.)
        let bin = std::env::var("LSHED_BENCH_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_lshed").to_string());
        let mut lshed = Editor::spawn("lshed", &bin, &[file], &home);
        lshed.round(&mut lshed_samples);
        drop(lshed);
        if let Some(vim) = &vim {
            let mut v = Editor::spawn(
                "vim",
                vim,
                &["-u", "DEFAULTS", "-n", "-c", "syntax on", file],
                &home,
            );
            v.key(b"i");
            v.quiet(SETTLE);
            v.round(&mut vim_samples);
            let _ = v.writer.write_all(b"\x1b:q!\r");
            drop(v);
        }
    }
    let report = |name: &str, samples: &mut Vec<Duration>| {
        samples.sort();
        let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
        println!(
            "{name:>6} key to redraw in a 120x40 pty: p50 {:.3} ms, p99 {:.3} ms ({} samples)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            samples.len()
        );
        (p50, p99)
    };
    let (l50, l99) = report("lshed", &mut lshed_samples);
    if vim.is_some() {
        let (v50, v99) = report("vim", &mut vim_samples);
        println!(
            "lshed/vim: p50 ratio {:.2}, p99 ratio {:.2}",
            l50.as_secs_f64() / v50.as_secs_f64(),
            l99.as_secs_f64() / v99.as_secs_f64()
        );
    }
}

fn which(program: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .and_then(|p| p.to_str().map(str::to_string))
}
