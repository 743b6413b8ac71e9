//! Highlighting cost of what the editor does per frame: one keystroke
//! (edit + invalidate) followed by highlighting a 40-line window, on 10k- and
//! 1M-line Rust files; plus opening a file (first window from cold).

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use lshed::editor::syntax::{detect_language, preload, Highlighter};
use ropey::Rope;

/// A Rust-looking file of `lines` lines with varied constructs, no two
/// functions alike (so the line cache cannot cheat across them).
fn rust_source(lines: usize) -> String {
    let mut s = String::with_capacity(lines * 40);
    // Each block below is 11 lines.
    for i in 0..lines.div_ceil(11) {
        s.push_str(&format!(
            "/// Computes thing number {i}.\n\
             #[inline]\n\
             pub fn compute_{i}(input: &str, factor: u64) -> Result<u64, String> {{\n\
             \x20   // parse and scale\n\
             \x20   let value: u64 = input.trim().parse().map_err(|e| format!(\"bad {{}}: {{e}}\", {i}))?;\n\
             \x20   if value > {i} && factor != 0 {{\n\
             \x20       return Ok(value * factor + 0x{i:x});\n\
             \x20   }}\n\
             \x20   Ok(value)\n\
             }}\n\n"
        ));
    }
    s
}

fn keystroke_bench(c: &mut Criterion, name: &str, lines: usize) {
    let src = rust_source(lines);
    let mut rope = Rope::from_str(&src);
    let lang = detect_language(Some(Path::new("big.rs")), "");
    let mut h = Highlighter::new(&lang);
    let edit_line = rope.len_lines() / 2;
    let first = edit_line - 20;
    // Warm up as the editor would be: the view has been shown once.
    let _ = h.highlight_lines(&rope, first, 40);
    let pos = rope.line_to_char(edit_line) + 8;
    let mut inserted = false;
    c.bench_function(name, |b| {
        b.iter(|| {
            toggle_x(&mut rope, pos, &mut inserted);
            h.edited(edit_line, 0, 0);
            black_box(h.highlight_lines(&rope, first, 40))
        })
    });
}

/// One keystroke that leaves the text as it found it every other time:
/// inserts an `x` at `pos`, or removes the one inserted before.
fn toggle_x(rope: &mut Rope, pos: usize, inserted: &mut bool) {
    if *inserted {
        rope.remove(pos..pos + 1);
    } else {
        rope.insert_char(pos, 'x');
    }
    *inserted = !*inserted;
}

/// A collaborator types on line `edit_line` while we look at line 5,000.
fn remote_keystroke_bench(c: &mut Criterion, name: &str, edit_line: usize) {
    let src = rust_source(10_000);
    let mut rope = Rope::from_str(&src);
    let lang = detect_language(Some(Path::new("big.rs")), "");
    let mut h = Highlighter::new(&lang);
    // Scroll down to the view so the checkpoints above it are exact.
    for top in (0..=5_000).step_by(100) {
        let _ = h.highlight_lines(&rope, top, 40);
    }
    let pos = rope.line_to_char(edit_line) + 8;
    let mut inserted = false;
    c.bench_function(name, |b| {
        b.iter(|| {
            toggle_x(&mut rope, pos, &mut inserted);
            h.edited(edit_line, 0, 0);
            black_box(h.highlight_lines(&rope, 5_000, 40))
        })
    });
}

fn benches(c: &mut Criterion) {
    // What `preload` / the first `detect_language` pays once per process.
    c.bench_function("load syntax definitions (two-face, newlines)", |b| {
        b.iter(|| black_box(two_face::syntax::extra_newlines()))
    });
    // A process's very first frame: definitions loaded and the regexes of
    // the Rust grammar compiled on first use (syntect compiles lazily).
    c.bench_function(
        "cold first frame: load + compile + 40 lines (raw syntect)",
        |b| {
            let src = rust_source(40);
            let lines: Vec<String> = src.lines().map(|l| format!("{l}\n")).collect();
            b.iter(|| {
                let set = two_face::syntax::extra_newlines();
                let syntax = set.find_syntax_by_extension("rs").expect("rust syntax");
                let mut state = syntect::parsing::ParseState::new(syntax);
                for line in &lines {
                    black_box(state.parse_line(line, &set).expect("parses"));
                }
            })
        },
    );
    preload();
    keystroke_bench(c, "keystroke + 40-line window, 10k lines", 10_000);
    keystroke_bench(c, "keystroke + 40-line window, 1M lines", 1_000_000);

    remote_keystroke_bench(c, "remote keystroke 4,900 lines above a 40-line view", 100);

    let src = rust_source(10_000);
    let rope = Rope::from_str(&src);
    let lang = detect_language(Some(Path::new("big.rs")), "");
    c.bench_function("open: first 40 lines from cold", |b| {
        b.iter(|| {
            let mut h = Highlighter::new(&lang);
            black_box(h.highlight_lines(&rope, 0, 40))
        })
    });
    // Baseline: syntect alone, no lshed code, on the same text.
    c.bench_function("raw syntect parse_line x 200 lines", |b| {
        let set = two_face::syntax::extra_newlines();
        let syntax = set.find_syntax_by_extension("rs").expect("rust syntax");
        let lines: Vec<String> = src.lines().take(200).map(|l| format!("{l}\n")).collect();
        b.iter(|| {
            let mut state = syntect::parsing::ParseState::new(syntax);
            for line in &lines {
                black_box(state.parse_line(line, &set).expect("parses"));
            }
        })
    });
    c.bench_function(
        "jump to line 1,990 from cold (beyond the sync budget: approximate)",
        |b| {
            b.iter(|| {
                let mut h = Highlighter::new(&lang);
                black_box(h.highlight_lines(&rope, 1_990, 40))
            })
        },
    );
    c.bench_function("jump to line 9,000 from cold (approximate)", |b| {
        b.iter(|| {
            let mut h = Highlighter::new(&lang);
            black_box(h.highlight_lines(&rope, 9_000, 40))
        })
    });
    c.bench_function("scroll 1 line, 10k lines", |b| {
        let mut h = Highlighter::new(&lang);
        let mut top = 0;
        b.iter(|| {
            top = (top + 1) % 9_000;
            black_box(h.highlight_lines(&rope, top, 40))
        })
    });
}

criterion_group!(syntax, benches);
criterion_main!(syntax);
