//! Every theme file in `themes/` loads, defines every key the UI uses, and
//! is compiled into the binary. The folder is read at test time, so a new
//! theme file is checked without touching this test.

use std::path::{Path, PathBuf};

use lshed::editor::syntax::HighlightKind;
use lshed::tui::theme::{bundled_theme_names, load_theme, UI_KEYS};
use ratatui::style::Color;

fn theme_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("themes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("themes/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "expected at least 3 themes, found {files:?}"
    );
    files
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .expect("utf-8 file name")
        .to_string()
}

#[test]
fn every_theme_file_is_complete() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("themes");
    for file in theme_files() {
        let name = stem(&file);
        // Loading through the folder checks the files on disk (and resolves
        // `inherits` against them), not the copies compiled in.
        let theme = load_theme(&name, Some(&dir)).unwrap_or_else(|e| panic!("{e}"));
        let mut missing: Vec<&str> = UI_KEYS
            .iter()
            .copied()
            .filter(|k| !theme.defines(k))
            .collect();
        missing.extend(
            HighlightKind::ALL
                .iter()
                .map(|k| k.theme_key())
                .filter(|k| !theme.defines(k)),
        );
        assert!(
            missing.is_empty(),
            "{}: missing keys {missing:?}",
            file.display()
        );

        assert!(
            theme.participant_count() >= 8,
            "{}: needs at least 8 participant colours",
            file.display()
        );
        let colors: Vec<Color> = (0..8).map(|i| theme.participant_color(i)).collect();
        for (i, c) in colors.iter().enumerate() {
            assert!(
                !colors[..i].contains(c),
                "{}: participant colour {i} repeats",
                file.display()
            );
        }

        // Text must differ from the background it is drawn on.
        let bg = theme.style("ui.background").bg;
        for key in HighlightKind::ALL.iter().map(|k| k.theme_key()).chain([
            "ui.text",
            "ui.linenr",
            "ui.text.dim",
        ]) {
            let fg = theme.style(key).fg;
            assert!(
                fg.is_none() || fg != bg,
                "{}: {key} has the background colour",
                file.display()
            );
        }
    }
}

#[test]
fn every_theme_file_is_bundled_and_identical() {
    let bundled = bundled_theme_names();
    for file in theme_files() {
        let name = stem(&file);
        assert!(
            bundled.contains(&name.as_str()),
            "{} is not compiled in: add it to BUNDLED in src/tui/theme.rs",
            file.display()
        );
        let from_disk = load_theme(&name, file.parent()).expect("loads from disk");
        let compiled = load_theme(&name, None).expect("bundled loads");
        for key in UI_KEYS {
            assert_eq!(from_disk.style(key), compiled.style(key), "{name}: {key}");
        }
    }
}

#[test]
fn fallback_never_breaks() {
    for name in bundled_theme_names() {
        let theme = load_theme(name, None).expect("bundled loads");
        assert_eq!(theme.name(), name);
        assert_eq!(
            theme.style("ui.linenr.current.something.new"),
            theme.style("ui.linenr.current")
        );
        assert_eq!(theme.style("no.such.key"), theme.style("ui.text"));
    }
}
