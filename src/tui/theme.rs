//! Colour themes: TOML files mapping dotted keys (`ui.linenr.current`,
//! `syntax.keyword`) to ratatui styles.
//!
//! The format is helix-like; `themes/default.toml` documents it. The bundled
//! themes are compiled in with `include_str!`, so the binary needs no files
//! beside it; a user's `<config dir>/themes/NAME.toml` takes precedence over a
//! bundled theme of the same name and may `inherits = "NAME"` it to change
//! only a few keys.
//!
//! Inheritance merges the *raw* tables (palette with palette, keys with keys)
//! before any colour is resolved, so a child theme can restyle everything by
//! redefining palette entries alone.
//!
//! [`Theme::style`] never fails: a missing key falls back along its dots and
//! finally to `ui.text`, so a theme written for an older lshed keeps working.
//!
//! May depend on: std, ratatui (style types only), toml, thiserror, and
//! `editor::syntax` for the list of syntax kinds.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use toml::{Table, Value};

use crate::editor::syntax::HighlightKind;

/// The themes compiled into the binary: (name, TOML source).
const BUNDLED: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

/// Colours for collaborators when a theme names none (same as default.toml).
const FALLBACK_PARTICIPANTS: [Color; 8] = [
    Color::Rgb(0xe0, 0x6c, 0x75),
    Color::Rgb(0x98, 0xc3, 0x79),
    Color::Rgb(0x61, 0xaf, 0xef),
    Color::Rgb(0xe5, 0xc0, 0x7b),
    Color::Rgb(0xc6, 0x78, 0xdd),
    Color::Rgb(0x56, 0xb6, 0xc2),
    Color::Rgb(0xd1, 0x9a, 0x66),
    Color::Rgb(0xbe, 0x50, 0x46),
];

/// Every `ui.*` key the interface uses; each theme should define them all
/// (the tests check the bundled ones).
pub const UI_KEYS: &[&str] = &[
    "ui.background",
    "ui.text",
    "ui.text.dim",
    "ui.cursor",
    "ui.cursor.primary",
    "ui.selection",
    "ui.cursorline",
    "ui.linenr",
    "ui.linenr.current",
    "ui.gutter",
    "ui.statusline",
    "ui.statusline.mode",
    "ui.statusline.session",
    "ui.statusline.dirty",
    "ui.tabs",
    "ui.tabs.active",
    "ui.tree",
    "ui.tree.selected",
    "ui.tree.dir",
    "ui.tree.ignored",
    "ui.popup",
    "ui.popup.border",
    "ui.popup.selected",
    "ui.popup.match",
    "ui.prompt",
    "ui.match",
    "ui.match.current",
    "ui.message.info",
    "ui.message.warning",
    "ui.message.error",
    "ui.help.key",
    "ui.whitespace",
    "ui.scrollbar",
    "ui.readonly",
];

/// Deepest `inherits` chain followed; deeper is surely a mistake.
const MAX_INHERIT_DEPTH: usize = 16;

/// Why a theme could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    /// No user or bundled theme of that name.
    #[error("theme '{name}' not found (bundled themes: {available})")]
    NotFound {
        /// The requested name.
        name: String,
        /// Bundled names, comma-separated.
        available: String,
    },
    /// A name that could escape the themes folder.
    #[error("invalid theme name '{0}': use letters, digits, '-', '_' and '.' only")]
    InvalidName(String),
    /// The file exists but could not be read.
    #[error("{path}: cannot read theme: {source}")]
    Read {
        /// The theme file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML.
    #[error("{file}: {message}")]
    Parse {
        /// The theme file (or `<bundled>/NAME.toml`).
        file: String,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A key with a value that is not a style, colour or modifier.
    #[error("{file}: key '{key}': {message}")]
    Invalid {
        /// The theme file.
        file: String,
        /// The offending key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// `inherits` loops.
    #[error("theme inheritance loops: {0}")]
    Cycle(String),
}

/// A resolved theme: dotted key → style.
#[derive(Debug, Clone)]
pub struct Theme {
    name: String,
    styles: HashMap<String, Style>,
    syntax: [Style; HighlightKind::ALL.len()],
    participants: Vec<Color>,
}

impl Theme {
    /// The theme's name (as passed to [`load_theme`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The style for `key`, falling back along the dots
    /// (`ui.linenr.current` → `ui.linenr` → `ui`) and finally to `ui.text`;
    /// an unknown key gives the default style, never an error.
    pub fn style(&self, key: &str) -> Style {
        self.lookup(key)
            .or_else(|| self.styles.get("ui.text").copied())
            .unwrap_or_default()
    }

    /// The style of a syntax kind; same as `style(kind.theme_key())`, but an
    /// array index instead of hashing on every highlighted span.
    pub fn syntax_style(&self, kind: HighlightKind) -> Style {
        HighlightKind::ALL
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.syntax.get(i).copied())
            .unwrap_or_default()
    }

    /// Whether `key` itself (not a fallback) is defined; for tests and
    /// theme authors.
    pub fn defines(&self, key: &str) -> bool {
        self.styles.contains_key(key)
    }

    /// The colour of the `i`-th collaborator (wraps around).
    pub fn participant_color(&self, i: usize) -> Color {
        let colors: &[Color] = if self.participants.is_empty() {
            &FALLBACK_PARTICIPANTS
        } else {
            &self.participants
        };
        colors[i % colors.len()]
    }

    /// How many distinct participant colours the theme has.
    pub fn participant_count(&self) -> usize {
        if self.participants.is_empty() {
            FALLBACK_PARTICIPANTS.len()
        } else {
            self.participants.len()
        }
    }

    fn lookup(&self, key: &str) -> Option<Style> {
        let mut key = key;
        loop {
            if let Some(style) = self.styles.get(key) {
                return Some(*style);
            }
            key = &key[..key.rfind('.')?];
        }
    }

    /// A theme with no keys at all: everything renders in the terminal's
    /// default colours. The last resort if even the bundled theme failed.
    pub fn plain() -> Self {
        Self::from_styles("plain".into(), HashMap::new(), Vec::new())
    }

    fn from_styles(name: String, styles: HashMap<String, Style>, participants: Vec<Color>) -> Self {
        let mut theme = Self {
            name,
            styles,
            syntax: [Style::default(); HighlightKind::ALL.len()],
            participants,
        };
        // Syntax styles fall back to nothing rather than ui.text: the text
        // underneath already carries ui.text.
        theme.syntax =
            HighlightKind::ALL.map(|kind| theme.lookup(kind.theme_key()).unwrap_or_default());
        theme
    }
}

impl Default for Theme {
    /// The bundled default theme.
    fn default() -> Self {
        load_theme("default", None).unwrap_or_else(|_| Self::plain())
    }
}

/// Names of the themes compiled into the binary.
pub fn bundled_theme_names() -> Vec<&'static str> {
    BUNDLED.iter().map(|(name, _)| *name).collect()
}

/// Names of all themes available: bundled plus `*.toml` in `user_theme_dir`,
/// sorted, without duplicates.
pub fn available_theme_names(user_theme_dir: Option<&Path>) -> Vec<String> {
    let mut names: Vec<String> = bundled_theme_names()
        .into_iter()
        .map(String::from)
        .collect();
    if let Some(entries) = user_theme_dir.and_then(|d| std::fs::read_dir(d).ok()) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                    names.push(stem.to_string());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Load theme `name`: `user_theme_dir/NAME.toml` if it exists, else the
/// bundled theme of that name; `inherits` chains are followed (a user theme
/// inheriting its own name gets the bundled one).
pub fn load_theme(name: &str, user_theme_dir: Option<&Path>) -> Result<Theme, ThemeError> {
    let mut chain: Vec<Source> = Vec::new();
    let merged = load_raw(name, user_theme_dir, true, &mut chain)?;
    let file = chain
        .first()
        .map(Source::display)
        .unwrap_or_else(|| name.to_string());
    resolve(name, &file, merged)
}

/// Where a theme's TOML came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    User(PathBuf),
    Bundled(&'static str),
}

impl Source {
    fn display(&self) -> String {
        match self {
            Self::User(p) => p.display().to_string(),
            Self::Bundled(n) => format!("<bundled>/themes/{n}.toml"),
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Find and parse theme `name` and everything it inherits, merged into one
/// table (child over parent). `allow_user` is false when a user theme
/// inherits its own name.
fn load_raw(
    name: &str,
    user_dir: Option<&Path>,
    allow_user: bool,
    chain: &mut Vec<Source>,
) -> Result<Table, ThemeError> {
    if !valid_name(name) {
        return Err(ThemeError::InvalidName(name.to_string()));
    }
    let user_path = user_dir
        .filter(|_| allow_user)
        .map(|d| d.join(format!("{name}.toml")))
        .filter(|p| p.is_file());
    let (source, text) = match user_path {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|source| ThemeError::Read {
                path: path.clone(),
                source,
            })?;
            (Source::User(path), text)
        }
        None => match BUNDLED.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => (Source::Bundled(n), (*text).to_string()),
            None => {
                return Err(ThemeError::NotFound {
                    name: name.to_string(),
                    available: bundled_theme_names().join(", "),
                })
            }
        },
    };
    if chain.contains(&source) {
        let mut names: Vec<String> = chain.iter().map(Source::display).collect();
        names.push(source.display());
        return Err(ThemeError::Cycle(names.join(" -> ")));
    }
    if chain.len() >= MAX_INHERIT_DEPTH {
        return Err(ThemeError::Cycle(format!(
            "more than {MAX_INHERIT_DEPTH} levels at {}",
            source.display()
        )));
    }
    let file = source.display();
    let is_user = matches!(source, Source::User(_));
    chain.push(source);

    let mut table: Table = toml::from_str(&text).map_err(|e| ThemeError::Parse {
        file: file.clone(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let parent = match table.remove("inherits") {
        None => None,
        Some(Value::String(parent)) => Some(parent),
        Some(other) => {
            return Err(ThemeError::Invalid {
                file,
                key: "inherits".into(),
                message: format!("expected a theme name, found {}", other.type_str()),
            })
        }
    };
    let Some(parent) = parent else {
        return Ok(table);
    };
    // A user's "default.toml" saying `inherits = "default"` means the
    // bundled default, not itself.
    let allow_user = !(is_user && parent == name);
    let mut base = match load_raw(&parent, user_dir, allow_user, chain) {
        Ok(base) => base,
        // Say which file asked for the missing theme.
        Err(ThemeError::NotFound { name, available }) => {
            return Err(ThemeError::Invalid {
                file,
                key: "inherits".into(),
                message: format!("theme '{name}' not found (bundled themes: {available})"),
            })
        }
        Err(e) => return Err(e),
    };
    merge(&mut base, table);
    Ok(base)
}

/// Child keys replace parent keys; the palettes merge entry by entry.
fn merge(base: &mut Table, child: Table) {
    for (key, value) in child {
        match (key.as_str(), value) {
            ("palette", Value::Table(palette)) => {
                if let Some(Value::Table(base_palette)) = base.get_mut("palette") {
                    base_palette.extend(palette);
                } else {
                    base.insert(key, Value::Table(palette));
                }
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Turn the merged table into styles.
fn resolve(name: &str, file: &str, mut table: Table) -> Result<Theme, ThemeError> {
    let invalid = |key: &str, message: String| ThemeError::Invalid {
        file: file.to_string(),
        key: key.to_string(),
        message,
    };
    let palette: BTreeMap<String, String> = match table.remove("palette") {
        None => BTreeMap::new(),
        Some(Value::Table(p)) => p
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                other => Err(invalid(
                    &format!("palette.{k}"),
                    format!("expected a colour string, found {}", other.type_str()),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(invalid(
                "palette",
                format!("expected a table, found {}", other.type_str()),
            ))
        }
    };
    let colors = Colors { palette: &palette };

    let participants = match table.remove("participants") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let key = format!("participants[{i}]");
                match v {
                    Value::String(s) => colors.parse(s).map_err(|m| invalid(&key, m)),
                    other => Err(invalid(
                        &key,
                        format!("expected a colour string, found {}", other.type_str()),
                    )),
                }
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(invalid(
                "participants",
                format!("expected a list of colours, found {}", other.type_str()),
            ))
        }
    };

    let mut styles = HashMap::new();
    let mut flat = Vec::new();
    flatten(String::new(), table, &mut flat);
    for (key, value) in flat {
        let style = colors.style(&value).map_err(|m| invalid(&key, m))?;
        styles.insert(key, style);
    }
    Ok(Theme::from_styles(name.to_string(), styles, participants))
}

/// Is this table a style (`{ fg, bg, modifiers }`) rather than a group of
/// keys (`[ui] linenr = "..."`)?
fn is_style_table(t: &Table) -> bool {
    !t.is_empty()
        && t.keys()
            .all(|k| matches!(k.as_str(), "fg" | "bg" | "modifiers" | "underline"))
}

/// Unquoted dotted keys and `[ui]` sections come out of TOML as nested
/// tables; bring them back to "ui.linenr"-style keys.
fn flatten(prefix: String, table: Table, out: &mut Vec<(String, Value)>) {
    for (key, value) in table {
        let full = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Table(t) if !is_style_table(&t) => flatten(full, t, out),
            v => out.push((full, v)),
        }
    }
}

struct Colors<'a> {
    palette: &'a BTreeMap<String, String>,
}

impl Colors<'_> {
    /// A palette name (one level: palette entries are literal colours) or a
    /// literal colour.
    fn parse(&self, s: &str) -> Result<Color, String> {
        let literal = self.palette.get(s).map(String::as_str).unwrap_or(s);
        Color::from_str(literal).map_err(|_| {
            if literal == s {
                format!(
                    "'{s}' is not a colour: use \"#rrggbb\", an ANSI name like \"red\" or \
                     \"lightblue\", 0-255, or a palette name"
                )
            } else {
                format!("palette entry '{s}' = '{literal}' is not a colour")
            }
        })
    }

    fn style(&self, value: &Value) -> Result<Style, String> {
        match value {
            Value::String(s) => Ok(Style::default().fg(self.parse(s)?)),
            Value::Table(t) => {
                let mut style = Style::default();
                for (k, v) in t {
                    match (k.as_str(), v) {
                        ("fg", Value::String(s)) => style = style.fg(self.parse(s)?),
                        ("bg", Value::String(s)) => style = style.bg(self.parse(s)?),
                        ("underline", Value::String(s)) => {
                            style = style.underline_color(self.parse(s)?)
                        }
                        ("modifiers", Value::Array(mods)) => {
                            for m in mods {
                                let m = m
                                    .as_str()
                                    .ok_or_else(|| "modifiers must be strings".to_string())?;
                                style = style.add_modifier(modifier(m)?);
                            }
                        }
                        ("fg" | "bg" | "underline", other) => {
                            return Err(format!(
                                "'{k}' must be a colour string, found {}",
                                other.type_str()
                            ))
                        }
                        ("modifiers", other) => {
                            return Err(format!(
                                "'modifiers' must be a list like [\"bold\"], found {}",
                                other.type_str()
                            ))
                        }
                        (other, _) => {
                            return Err(format!(
                                "unknown field '{other}' (expected fg, bg, modifiers, underline)"
                            ))
                        }
                    }
                }
                Ok(style)
            }
            other => Err(format!(
                "expected a colour string or {{ fg, bg, modifiers }}, found {}",
                other.type_str()
            )),
        }
    }
}

fn modifier(name: &str) -> Result<Modifier, String> {
    Ok(match name.to_ascii_lowercase().replace('-', "_").as_str() {
        "bold" => Modifier::BOLD,
        "dim" => Modifier::DIM,
        "italic" => Modifier::ITALIC,
        "underlined" | "underline" => Modifier::UNDERLINED,
        "slow_blink" => Modifier::SLOW_BLINK,
        "rapid_blink" => Modifier::RAPID_BLINK,
        "reversed" => Modifier::REVERSED,
        "hidden" => Modifier::HIDDEN,
        "crossed_out" => Modifier::CROSSED_OUT,
        _ => {
            return Err(format!(
                "unknown modifier '{name}' (expected bold, dim, italic, underlined, \
                 slow_blink, rapid_blink, reversed, hidden, crossed_out)"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn bundled_themes_load() {
        for name in bundled_theme_names() {
            let theme = load_theme(name, None).unwrap();
            assert_eq!(theme.name(), name);
            for key in UI_KEYS {
                assert!(theme.defines(key), "{name}: {key}");
            }
        }
    }

    #[test]
    fn fallback_along_dots() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("t.toml"),
            "\"ui.text\" = \"#010203\"\n\"ui.linenr\" = { fg = \"red\", modifiers = [\"bold\"] }\n",
        )
        .unwrap();
        let t = load_theme("t", Some(dir.path())).unwrap();
        let linenr = Style::default().fg(Color::Red).add_modifier(Modifier::BOLD);
        assert_eq!(t.style("ui.linenr.current"), linenr);
        assert_eq!(t.style("ui.linenr.current.deeper"), linenr);
        assert_eq!(
            t.style("ui.popup"),
            Style::default().fg(Color::Rgb(1, 2, 3))
        );
        assert_eq!(
            t.style("nonsense"),
            Style::default().fg(Color::Rgb(1, 2, 3))
        );
        assert_eq!(t.syntax_style(HighlightKind::Keyword), Style::default());
        assert_eq!(t.participant_color(9), FALLBACK_PARTICIPANTS[1]);
    }

    #[test]
    fn user_theme_overrides_and_inherits_bundled_of_same_name() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("default.toml"),
            "inherits = \"default\"\n\"syntax.keyword\" = \"#ff0000\"\n[palette]\nbg = \"#000000\"\n",
        )
        .unwrap();
        let t = load_theme("default", Some(dir.path())).unwrap();
        let red = Some(Color::Rgb(255, 0, 0));
        assert_eq!(t.style("syntax.keyword").fg, red);
        assert_eq!(t.syntax_style(HighlightKind::Keyword).fg, red);
        // The palette override reaches keys defined in the parent.
        assert_eq!(t.style("ui.background").bg, Some(Color::Rgb(0, 0, 0)));
        assert_eq!(
            t.style("ui.statusline.session").bg,
            Some(Color::Rgb(0x98, 0xc3, 0x79))
        );
    }

    #[test]
    fn nested_tables_flatten() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("n.toml"),
            "[ui]\ntext = \"blue\"\n[ui.tree]\ndir = { fg = \"green\" }\n",
        )
        .unwrap();
        let t = load_theme("n", Some(dir.path())).unwrap();
        assert_eq!(t.style("ui.text").fg, Some(Color::Blue));
        assert_eq!(t.style("ui.tree.dir").fg, Some(Color::Green));
    }

    #[test]
    fn errors_name_file_and_problem() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("a.toml"), "inherits = \"b\"\n").unwrap();
        fs::write(d.join("b.toml"), "inherits = \"a\"\n").unwrap();
        fs::write(d.join("bad.toml"), "\"ui.text\" = \n").unwrap();
        fs::write(d.join("color.toml"), "\"ui.text\" = \"#12345\"\n").unwrap();
        fs::write(
            d.join("mod.toml"),
            "\"ui.text\" = { modifiers = [\"shiny\"] }\n",
        )
        .unwrap();
        fs::write(
            d.join("pal.toml"),
            "\"ui.text\" = \"x\"\n[palette]\nx = \"nope\"\n",
        )
        .unwrap();

        let e = load_theme("a", Some(d)).unwrap_err().to_string();
        assert!(
            e.contains("loops") && e.contains("a.toml") && e.contains("b.toml"),
            "{e}"
        );
        let e = load_theme("bad", Some(d)).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("line 1"), "{e}");
        let e = load_theme("color", Some(d)).unwrap_err().to_string();
        assert!(
            e.contains("color.toml") && e.contains("ui.text") && e.contains("#12345"),
            "{e}"
        );
        let e = load_theme("mod", Some(d)).unwrap_err().to_string();
        assert!(e.contains("shiny"), "{e}");
        let e = load_theme("pal", Some(d)).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        fs::write(d.join("orphan.toml"), "inherits = \"gone\"\n").unwrap();
        let e = load_theme("orphan", Some(d)).unwrap_err().to_string();
        assert!(
            e.contains("orphan.toml") && e.contains("inherits") && e.contains("gone"),
            "{e}"
        );
        let e = load_theme("nosuch", Some(d)).unwrap_err().to_string();
        assert!(e.contains("nosuch") && e.contains("default"), "{e}");
        assert!(matches!(
            load_theme("../etc/passwd", Some(d)),
            Err(ThemeError::InvalidName(_))
        ));
    }

    #[test]
    fn available_names_include_user_themes() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("mine.toml"), "").unwrap();
        let names = available_theme_names(Some(dir.path()));
        assert!(names.contains(&"mine".to_string()));
        assert!(names.contains(&"high-contrast".to_string()));
    }
}
