//! The user's settings file: `config.toml` in the platform config directory
//! (`~/.config/lshed/config.toml` on Linux), or wherever `LSHED_CONFIG`
//! points. `assets/config.toml` is a commented sample of every key.
//!
//! A bad config never stops lshed: [`load`] always returns a usable
//! [`Config`] plus human-readable warnings, each naming the file, line and
//! column (`path:line:col: message`), for the UI to show. A TOML syntax
//! error means all defaults; a bad or unknown key costs only that key.
//!
//! The file is read with `toml_edit` rather than serde so that every key and
//! value keeps its position for those warnings, and so that
//! [`save_identity`] can change two values while keeping the user's layout
//! and comments.
//!
//! Layout: editor and collaboration settings are top-level keys; the
//! display name and colour live in `[identity]`; key bindings in `[keys]`.
//!
//! May depend on: std, toml_edit, directories, thiserror. A leaf: nothing
//! from the rest of lshed.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use toml_edit::{Item, TableLike};

/// Environment variable overriding the config file path.
pub const CONFIG_ENV: &str = "LSHED_CONFIG";

/// Largest accepted `tab_width`.
pub const MAX_TAB_WIDTH: usize = 16;

/// Longest accepted display name, in chars (it is drawn beside cursors).
/// Peers cut received names to the same length
/// (`net::limits::MAX_NAME_CHARS`).
pub const MAX_DISPLAY_NAME: usize = 40;

/// How a guest reaches the host (see the README, "Connection modes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConnectionMode {
    /// Try direct and relay at once, prefer direct.
    #[default]
    Auto,
    /// Only the host's own UDP port; no relay.
    Direct,
    /// Only through the relay; the host opens no port.
    Relay,
}

impl ConnectionMode {
    /// The name used in the config file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Direct => "direct",
            Self::Relay => "relay",
        }
    }
}

impl fmt::Display for ConnectionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectionMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "direct" => Ok(Self::Direct),
            "relay" | "relayed" => Ok(Self::Relay),
            _ => Err(format!(
                "unknown connection mode '{s}' (expected \"auto\", \"direct\" or \"relay\")"
            )),
        }
    }
}

/// Whether the host is asked before a guest joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GuestApproval {
    /// Ask the host to accept or reject each joiner.
    #[default]
    Prompt,
    /// Anyone with the link joins at once.
    Auto,
}

impl GuestApproval {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prompt => "prompt",
            Self::Auto => "auto",
        }
    }
}

impl fmt::Display for GuestApproval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GuestApproval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "prompt" | "ask" => Ok(Self::Prompt),
            "auto" => Ok(Self::Auto),
            _ => Err(format!(
                "unknown guest approval '{s}' (expected \"prompt\" or \"auto\")"
            )),
        }
    }
}

/// The user's settings. [`Default`] gives what lshed uses without a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Theme name (bundled or `themes/NAME.toml` beside the config).
    pub theme: String,
    /// Columns per tab stop, 1..=16.
    pub tab_width: usize,
    /// Indent with spaces (`true`) or tabs (`false`); `None` = detect from
    /// the file.
    pub insert_spaces: Option<bool>,
    /// Wrap long lines instead of scrolling sideways.
    pub soft_wrap: bool,
    /// Show the line-number gutter.
    pub line_numbers: bool,
    /// Capture the mouse (click, scroll, select).
    pub mouse: bool,
    /// Key chord (`"ctrl+s"`) → command name; overrides the default keymap.
    /// Neither side is checked here: the keymap reports bad ones.
    pub keys: BTreeMap<String, String>,
    /// The name shown to collaborators; asked for on first share or join.
    pub display_name: Option<String>,
    /// The user's colour as `"#rrggbb"` or an ANSI colour name.
    pub color: Option<String>,
    /// How guests connect.
    pub connection_mode: ConnectionMode,
    /// The relay, `FINGERPRINT@host:port` as `lshed relay` prints it
    /// (checked by the session layer when sharing); `None` = no relay.
    pub relay: Option<String>,
    /// The token of a private relay.
    pub relay_token: Option<String>,
    /// An HTTP CONNECT proxy for the relay's TCP fallback (`host:port`);
    /// `None` = `HTTPS_PROXY` from the environment, if set.
    pub proxy: Option<String>,
    /// Whether the host approves each joiner.
    pub guest_approval: GuestApproval,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            theme: "default".to_string(),
            tab_width: 4,
            insert_spaces: None,
            soft_wrap: false,
            line_numbers: true,
            mouse: true,
            keys: BTreeMap::new(),
            display_name: None,
            color: None,
            connection_mode: ConnectionMode::Auto,
            relay: None,
            relay_token: None,
            proxy: None,
            guest_approval: GuestApproval::Prompt,
        }
    }
}

/// The result of loading: always a usable config.
#[derive(Debug, Clone)]
pub struct ConfigLoad {
    /// The settings (defaults wherever the file had nothing usable).
    pub config: Config,
    /// The file that was (or would have been) read.
    pub path: PathBuf,
    /// Problems found, one line each, `path:line:col: message`.
    pub warnings: Vec<String>,
}

impl ConfigLoad {
    /// Where user themes live: `themes/` beside the config file.
    pub fn theme_dir(&self) -> PathBuf {
        theme_dir_for(&self.path)
    }
}

/// `themes/` beside the config file at `config_path`.
pub fn theme_dir_for(config_path: &Path) -> PathBuf {
    config_path
        .parent()
        .map(|d| d.join("themes"))
        .unwrap_or_else(|| PathBuf::from("themes"))
}

/// Why [`save_identity`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The existing file is not valid TOML; it is left untouched rather than
    /// overwritten.
    #[error("{path}:{line}:{column}: invalid TOML, not modified: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (chars).
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A value that would not load back (empty name, bad colour).
    #[error("{0}")]
    Invalid(String),
}

/// The config file path: `$LSHED_CONFIG` if set, else `config.toml` in the
/// platform config directory. `None` if there is no home directory.
pub fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    directories::ProjectDirs::from("", "", "lshed").map(|d| d.config_dir().join("config.toml"))
}

/// Load the config from [`config_path`].
pub fn load() -> ConfigLoad {
    match config_path() {
        Some(path) => load_from(&path),
        None => ConfigLoad {
            config: Config::default(),
            path: PathBuf::new(),
            warnings: vec![format!(
                "cannot find a home directory for the config file; set {CONFIG_ENV} to use one. \
                 Using default settings"
            )],
        },
    }
}

/// Load the config from `path`. A missing file gives the defaults and no
/// warning.
pub fn load_from(path: &Path) -> ConfigLoad {
    let mut out = ConfigLoad {
        config: Config::default(),
        path: path.to_path_buf(),
        warnings: Vec::new(),
    };
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let src = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let (line, col) = line_col(&src, at);
                out.warnings.push(format!(
                    "{}:{line}:{col}: not valid UTF-8; using default settings",
                    path.display()
                ));
                return out;
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        Err(e) => {
            out.warnings.push(format!(
                "{}: cannot read config: {e}; using default settings",
                path.display()
            ));
            return out;
        }
    };
    let (config, warnings) = parse(&text, &path.display().to_string());
    out.config = config;
    out.warnings = warnings;
    out
}

/// Parse config text; `file` is only used in warnings.
pub fn parse(text: &str, file: &str) -> (Config, Vec<String>) {
    let mut p = Parser {
        text,
        file,
        warnings: Vec::new(),
    };
    let config = p.parse();
    (config, p.warnings)
}

/// Top-level keys, for "did you mean" hints.
const TOP_KEYS: &[&str] = &[
    "theme",
    "tab_width",
    "insert_spaces",
    "soft_wrap",
    "line_numbers",
    "mouse",
    "connection_mode",
    "relay",
    "relay_token",
    "proxy",
    "guest_approval",
    "keys",
    "identity",
];
const IDENTITY_KEYS: &[&str] = &["display_name", "color"];

struct Parser<'a> {
    text: &'a str,
    file: &'a str,
    warnings: Vec<String>,
}

impl Parser<'_> {
    fn warn(&mut self, span: Option<Range<usize>>, message: String) {
        let (line, col) = line_col(self.text, span.map_or(0, |s| s.start));
        self.warnings
            .push(format!("{}:{line}:{col}: {message}", self.file));
    }

    fn parse(&mut self) -> Config {
        let mut config = Config::default();
        let doc = match toml_edit::Document::parse(self.text) {
            Ok(doc) => doc,
            Err(e) => {
                let message = e.message().trim_end().to_string();
                self.warn(
                    e.span(),
                    format!("invalid TOML: {message}; using default settings"),
                );
                return config;
            }
        };
        let root = doc.as_table();
        for (name, item) in root.iter() {
            let key_span = root.key(name).and_then(|k| k.span());
            let span = item.span().or_else(|| key_span.clone());
            let d = Config::default();
            match name {
                "theme" => {
                    config.theme = self.string(name, item, span).unwrap_or(d.theme);
                    if config.theme.trim().is_empty() {
                        self.warn(key_span, "theme: empty name; using \"default\"".into());
                        config.theme = Config::default().theme;
                    }
                }
                "tab_width" => config.tab_width = self.tab_width(item, span).unwrap_or(d.tab_width),
                "insert_spaces" => config.insert_spaces = self.insert_spaces(item, span),
                "soft_wrap" => {
                    config.soft_wrap = self.bool(name, item, span).unwrap_or(d.soft_wrap)
                }
                "line_numbers" => {
                    config.line_numbers = self.bool(name, item, span).unwrap_or(d.line_numbers)
                }
                "mouse" => config.mouse = self.bool(name, item, span).unwrap_or(d.mouse),
                "connection_mode" => {
                    config.connection_mode =
                        self.parsed(name, item, span).unwrap_or(d.connection_mode)
                }
                "guest_approval" => {
                    config.guest_approval =
                        self.parsed(name, item, span).unwrap_or(d.guest_approval)
                }
                "relay" => {
                    config.relay = self.string(name, item, span.clone()).and_then(|r| {
                        let r = r.trim().to_string();
                        if r.is_empty() {
                            self.warn(span, "relay: empty address; no relay is used".into());
                            None
                        } else {
                            Some(r)
                        }
                    })
                }
                "relay_token" => {
                    config.relay_token = self
                        .string(name, item, span)
                        .map(|t| t.trim().to_string())
                        .filter(|t| !t.is_empty())
                }
                "proxy" => {
                    config.proxy = self
                        .string(name, item, span)
                        .map(|t| t.trim().to_string())
                        .filter(|t| !t.is_empty())
                }
                "keys" => config.keys = self.keys(item, span),
                "identity" => self.identity(item, span, &mut config),
                other => {
                    let hint = suggestion(other, TOP_KEYS);
                    self.warn(key_span, format!("unknown key '{other}' (ignored){hint}"));
                }
            }
        }
        config
    }

    fn type_error(
        &mut self,
        key: &str,
        item: &Item,
        span: Option<Range<usize>>,
        expected: &str,
        default: &str,
    ) {
        let found = describe(item);
        self.warn(
            span,
            format!("{key}: expected {expected}, found {found}; using {default}"),
        );
    }

    fn string(&mut self, key: &str, item: &Item, span: Option<Range<usize>>) -> Option<String> {
        if let Some(s) = item.as_str() {
            return Some(s.to_string());
        }
        let default = match key {
            "theme" => "\"default\"",
            _ => "the default",
        };
        self.type_error(key, item, span, "a string", default);
        None
    }

    fn bool(&mut self, key: &str, item: &Item, span: Option<Range<usize>>) -> Option<bool> {
        if let Some(b) = item.as_bool() {
            return Some(b);
        }
        let default = match key {
            "soft_wrap" => "false",
            _ => "true",
        };
        self.type_error(key, item, span, "true or false", default);
        None
    }

    fn parsed<T>(&mut self, key: &str, item: &Item, span: Option<Range<usize>>) -> Option<T>
    where
        T: FromStr<Err = String> + Default + fmt::Display,
    {
        let default = T::default();
        let Some(s) = item.as_str() else {
            self.type_error(key, item, span, "a string", &format!("\"{default}\""));
            return None;
        };
        match s.parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.warn(span, format!("{key}: {e}; using \"{default}\""));
                None
            }
        }
    }

    fn tab_width(&mut self, item: &Item, span: Option<Range<usize>>) -> Option<usize> {
        let default = Config::default().tab_width;
        let Some(n) = item.as_integer() else {
            self.type_error(
                "tab_width",
                item,
                span,
                "a whole number",
                &default.to_string(),
            );
            return None;
        };
        match usize::try_from(n) {
            Ok(n) if (1..=MAX_TAB_WIDTH).contains(&n) => Some(n),
            _ => {
                self.warn(
                    span,
                    format!("tab_width: {n} is out of range 1..={MAX_TAB_WIDTH}; using {default}"),
                );
                None
            }
        }
    }

    fn insert_spaces(&mut self, item: &Item, span: Option<Range<usize>>) -> Option<bool> {
        if let Some(b) = item.as_bool() {
            return Some(b);
        }
        match item.as_str().map(|s| s.trim().to_ascii_lowercase()) {
            Some(s) if s == "auto" || s == "detect" => None,
            _ => {
                self.type_error(
                    "insert_spaces",
                    item,
                    span,
                    "true, false or \"auto\"",
                    "\"auto\" (detect from the file)",
                );
                None
            }
        }
    }

    fn keys(&mut self, item: &Item, span: Option<Range<usize>>) -> BTreeMap<String, String> {
        let mut keys = BTreeMap::new();
        let Some(table) = item.as_table_like() else {
            self.type_error(
                "keys",
                item,
                span,
                "a table like [keys]",
                "the default keymap",
            );
            return keys;
        };
        for (chord, value) in table.iter() {
            let key_span = table.key(chord).and_then(|k| k.span());
            match value.as_str() {
                Some(command) if !command.trim().is_empty() => {
                    keys.insert(chord.to_string(), command.trim().to_string());
                }
                _ => {
                    let found = describe(value);
                    self.warn(
                        value.span().or(key_span),
                        format!(
                            "keys.\"{chord}\": expected a command name string, found {found}; \
                             binding ignored"
                        ),
                    );
                }
            }
        }
        keys
    }

    fn identity(&mut self, item: &Item, span: Option<Range<usize>>, config: &mut Config) {
        let Some(table) = item.as_table_like() else {
            self.type_error(
                "identity",
                item,
                span,
                "a table like [identity]",
                "no identity",
            );
            return;
        };
        for (name, value) in table.iter() {
            let key_span = table.key(name).and_then(|k| k.span());
            let span = value.span().or_else(|| key_span.clone());
            match name {
                "display_name" => {
                    let Some(s) = value.as_str() else {
                        self.type_error("identity.display_name", value, span, "a string", "none");
                        continue;
                    };
                    match check_display_name(s) {
                        Ok(n) => config.display_name = Some(n),
                        Err(e) => self.warn(span, format!("identity.display_name: {e}; ignored")),
                    }
                }
                "color" => {
                    let Some(s) = value.as_str() else {
                        self.type_error("identity.color", value, span, "a string", "none");
                        continue;
                    };
                    match check_color(s) {
                        Ok(c) => config.color = Some(c),
                        Err(e) => self.warn(span, format!("identity.color: {e}; ignored")),
                    }
                }
                other => {
                    let hint = suggestion(other, IDENTITY_KEYS);
                    self.warn(
                        key_span,
                        format!("unknown key 'identity.{other}' (ignored){hint}"),
                    );
                }
            }
        }
    }
}

/// A trimmed, non-empty, short, single-line name.
fn check_display_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.chars().any(char::is_control) {
        return Err("the name contains control characters".into());
    }
    if name.chars().count() > MAX_DISPLAY_NAME {
        return Err(format!(
            "the name is longer than {MAX_DISPLAY_NAME} characters"
        ));
    }
    Ok(name.to_string())
}

/// The colour names a terminal knows; anything else must be `#rrggbb`.
const COLOR_NAMES: &[&str] = &[
    "black",
    "red",
    "green",
    "yellow",
    "blue",
    "magenta",
    "cyan",
    "gray",
    "darkgray",
    "lightred",
    "lightgreen",
    "lightyellow",
    "lightblue",
    "lightmagenta",
    "lightcyan",
    "white",
];

fn check_color(color: &str) -> Result<String, String> {
    let c = color.trim();
    let hex = c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|d| d.is_ascii_hexdigit());
    if hex || COLOR_NAMES.contains(&c.to_ascii_lowercase().as_str()) {
        Ok(c.to_string())
    } else {
        Err(format!(
            "'{color}' is not a colour (use \"#rrggbb\" or a name like \"lightblue\")"
        ))
    }
}

fn describe(item: &Item) -> String {
    match item {
        Item::Value(v) => match v {
            toml_edit::Value::String(s) => format!("string \"{}\"", s.value()),
            toml_edit::Value::Integer(i) => format!("integer {}", i.value()),
            toml_edit::Value::Float(f) => format!("float {}", f.value()),
            toml_edit::Value::Boolean(b) => format!("boolean {}", b.value()),
            other => other.type_name().to_string(),
        },
        other => other.type_name().to_string(),
    }
}

/// 1-based line and column (in chars) of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    // Snap to a char boundary so slicing cannot panic.
    let at = (0..=at)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// `" (did you mean 'x'?)"` for a near miss, else empty.
fn suggestion(unknown: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, k)) if d <= 2.max(unknown.len() / 4) => format!(" (did you mean '{k}'?)"),
        _ => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Store the display name and colour in `[identity]` of the config at
/// `path`, keeping everything else in the file (comments, order, other
/// keys) as it was. Creates the file and its folder if needed. Refuses to
/// touch a file that is not valid TOML.
pub fn save_identity(path: &Path, name: &str, color: &str) -> Result<(), ConfigError> {
    let name = check_display_name(name).map_err(ConfigError::Invalid)?;
    let color = check_color(color).map_err(ConfigError::Invalid)?;
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let (line, column) = line_col(&text, e.span().map_or(0, |s| s.start));
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().trim_end().to_string(),
        }
    })?;
    if !doc.get("identity").is_some_and(Item::is_table_like) {
        // Missing, or a wrong type the loader already ignores with a warning.
        doc.insert("identity", toml_edit::table());
    }
    if let Some(identity) = doc.get_mut("identity").and_then(Item::as_table_like_mut) {
        set_string(identity, "display_name", &name);
        set_string(identity, "color", &color);
    }

    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // Write beside and rename, so a crash never leaves half a config.
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, doc.to_string()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Replace a string value, keeping the comment/whitespace decoration around
/// the old one.
fn set_string(table: &mut dyn TableLike, key: &str, value: &str) {
    let mut new = toml_edit::Value::from(value);
    match table.get_mut(key) {
        // In place, so the key (and the comment above it) stays as written.
        Some(old) => {
            if let Some(v) = old.as_value() {
                *new.decor_mut() = v.decor().clone();
            }
            *old = Item::Value(new);
        }
        None => {
            table.insert(key, Item::Value(new));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn load_text(text: &str) -> ConfigLoad {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        fs::write(&path, text).unwrap();
        load_from(&path)
    }

    #[test]
    fn sample_config_is_clean_and_matches_defaults() {
        let (config, warnings) = parse(include_str!("../assets/config.toml"), "sample");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config, Config::default());
    }

    #[test]
    fn missing_file_is_defaults_without_warning() {
        let dir = tempfile::tempdir().unwrap();
        let l = load_from(&dir.path().join("nope.toml"));
        assert_eq!(l.config, Config::default());
        assert!(l.warnings.is_empty());
        assert_eq!(l.theme_dir(), dir.path().join("themes"));
    }

    #[test]
    fn full_config_loads() {
        let l = load_text(
            r##"
theme = "light"
tab_width = 2
insert_spaces = false
soft_wrap = true
line_numbers = false
mouse = false
connection_mode = "relay"
relay = "relay.example.org:5990"
guest_approval = "auto"

[identity]
display_name = "  Ada  "
color = "#e06c75"

[keys]
"ctrl+s" = "save"
"ctrl+shift+p" = "command_palette"
"##,
        );
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let c = l.config;
        assert_eq!(c.theme, "light");
        assert_eq!(c.tab_width, 2);
        assert_eq!(c.insert_spaces, Some(false));
        assert!(c.soft_wrap && !c.line_numbers && !c.mouse);
        assert_eq!(c.connection_mode, ConnectionMode::Relay);
        assert_eq!(c.relay.as_deref(), Some("relay.example.org:5990"));
        assert_eq!(c.guest_approval, GuestApproval::Auto);
        assert_eq!(c.display_name.as_deref(), Some("Ada"));
        assert_eq!(c.color.as_deref(), Some("#e06c75"));
        assert_eq!(c.keys.get("ctrl+s").map(String::as_str), Some("save"));
        assert_eq!(c.keys.len(), 2);
    }

    #[test]
    fn inline_tables_and_auto_insert_spaces() {
        let l = load_text("insert_spaces = \"auto\"\nidentity = { display_name = \"Bo\" }\nkeys = { \"f2\" = \"rename\" }\n");
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(l.config.insert_spaces, None);
        assert_eq!(l.config.display_name.as_deref(), Some("Bo"));
        assert_eq!(l.config.keys.get("f2").map(String::as_str), Some("rename"));
    }

    #[test]
    fn syntax_error_gives_defaults_and_position() {
        let l = load_text("theme = \"light\"\ntab_width = = 3\n");
        assert_eq!(l.config, Config::default());
        assert_eq!(l.warnings.len(), 1);
        let w = &l.warnings[0];
        assert!(w.contains("config.toml:2:"), "{w}");
        assert!(w.contains("invalid TOML"), "{w}");
    }

    #[test]
    fn bad_values_fall_back_per_key() {
        let l = load_text(
            "theme = 3\ntab_width = \"x\"\nconnection_mode = \"foo\"\nsoft_wrap = true\nmouse = \"yes\"\ntab_witdh = 1\n",
        );
        let c = &l.config;
        assert_eq!(c.theme, "default");
        assert_eq!(c.tab_width, 4);
        assert_eq!(c.connection_mode, ConnectionMode::Auto);
        assert!(c.mouse);
        assert!(c.soft_wrap, "valid keys are kept");
        let w = &l.warnings;
        assert_eq!(w.len(), 5, "{w:?}");
        assert!(
            w[0].contains("config.toml:1:9: theme: expected a string, found integer 3"),
            "{}",
            w[0]
        );
        assert!(
            w[1].contains(":2:13: tab_width:") && w[1].contains("\"x\""),
            "{}",
            w[1]
        );
        assert!(
            w[2].contains(":3:19: connection_mode:") && w[2].contains("foo"),
            "{}",
            w[2]
        );
        assert!(w[3].contains(":5:9: mouse:"), "{}", w[3]);
        assert!(
            w[4].contains(":6:1: unknown key 'tab_witdh'")
                && w[4].contains("did you mean 'tab_width'"),
            "{}",
            w[4]
        );
    }

    #[test]
    fn out_of_range_and_nested_problems() {
        let l = load_text(
            "tab_width = 0\n[identity]\ndisplay_name = \"\"\ncolor = \"chartreuse\"\nnick = \"x\"\n[keys]\n\"ctrl+s\" = 5\n\"ctrl+o\" = \"open\"\n",
        );
        let w = &l.warnings;
        assert_eq!(w.len(), 5, "{w:?}");
        assert!(
            w[0].contains(":1:13: tab_width: 0 is out of range"),
            "{}",
            w[0]
        );
        assert!(w[1].contains(":3:16: identity.display_name"), "{}", w[1]);
        assert!(
            w[2].contains(":4:9: identity.color") && w[2].contains("chartreuse"),
            "{}",
            w[2]
        );
        assert!(
            w[3].contains(":5:1: unknown key 'identity.nick'"),
            "{}",
            w[3]
        );
        assert!(w[4].contains(":7:12: keys.\"ctrl+s\""), "{}", w[4]);
        assert_eq!(l.config.keys.len(), 1);
        assert_eq!(l.config.tab_width, 4);
        assert_eq!(l.config.display_name, None);
    }

    #[test]
    fn unreadable_and_non_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let l = load_from(dir.path());
        assert_eq!(l.config, Config::default());
        assert_eq!(l.warnings.len(), 1);
        let path = dir.path().join("c.toml");
        fs::write(&path, b"theme = \"a\"\n\xff\n").unwrap();
        let l = load_from(&path);
        assert!(
            l.warnings[0].contains("c.toml:2:1: not valid UTF-8"),
            "{:?}",
            l.warnings
        );
    }

    #[test]
    fn env_var_overrides_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custom.toml");
        fs::write(&path, "tab_width = 8\n").unwrap();
        // The only test touching this variable, so no race with others.
        std::env::set_var(CONFIG_ENV, &path);
        let l = load();
        std::env::remove_var(CONFIG_ENV);
        assert_eq!(l.path, path);
        assert_eq!(l.config.tab_width, 8);
    }

    #[test]
    fn save_identity_keeps_comments_and_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let original = "# my settings\ntheme = \"light\" # the best\n\n[identity]\n# who I am\ndisplay_name = \"Old\" # old name\n\n[keys]\n\"ctrl+s\" = \"save\"\n";
        fs::write(&path, original).unwrap();
        save_identity(&path, "Ada Lovelace", "#98c379").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("# my settings"), "{text}");
        assert!(text.contains("theme = \"light\" # the best"), "{text}");
        assert!(text.contains("# who I am"), "{text}");
        assert!(
            text.contains("display_name = \"Ada Lovelace\" # old name"),
            "{text}"
        );
        assert!(text.contains("color = \"#98c379\""), "{text}");
        assert!(text.contains("\"ctrl+s\" = \"save\""), "{text}");
        let l = load_from(&path);
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(l.config.display_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(l.config.color.as_deref(), Some("#98c379"));
        assert_eq!(l.config.theme, "light");
    }

    #[test]
    fn save_identity_creates_file_and_refuses_broken_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/config.toml");
        save_identity(&path, "Bo", "lightblue").unwrap();
        let l = load_from(&path);
        assert_eq!(l.config.display_name.as_deref(), Some("Bo"));
        assert_eq!(l.config.color.as_deref(), Some("lightblue"));

        let broken = dir.path().join("broken.toml");
        fs::write(&broken, "theme = \n").unwrap();
        let e = save_identity(&broken, "Bo", "red").unwrap_err();
        assert!(e.to_string().contains("broken.toml:1:"), "{e}");
        assert_eq!(fs::read_to_string(&broken).unwrap(), "theme = \n");
        assert!(save_identity(&path, "  ", "red").is_err());
        assert!(save_identity(&path, "Bo", "nope").is_err());

        let wrong = dir.path().join("wrong.toml");
        fs::write(&wrong, "identity = 3\ntheme = \"light\"\n").unwrap();
        save_identity(&wrong, "Cy", "red").unwrap();
        let l = load_from(&wrong);
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(l.config.display_name.as_deref(), Some("Cy"));
        assert_eq!(l.config.theme, "light");
    }
}

#[cfg(test)]
mod cap_tests {
    #[test]
    fn one_display_name_cap() {
        assert_eq!(
            super::MAX_DISPLAY_NAME,
            crate::net::limits::MAX_NAME_CHARS,
            "the name a user may set and the name a peer keeps are one cap"
        );
    }
}
