//! The user's settings file (TOML in the XDG config dir).
//!
//! May depend on: std, serde, toml, directories.
//! (Temporary minimal version; the full loader lands from the `look` branch.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How sessions connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectionMode {
    /// Try direct and relay, prefer direct.
    #[default]
    Auto,
    /// Only direct QUIC to the host.
    Direct,
    /// Only through a relay.
    Relay,
}

/// Whether the host approves each joiner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuestApproval {
    /// Ask the host.
    #[default]
    Prompt,
    /// Let everyone with the link in.
    Auto,
}

/// Settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Theme name.
    pub theme: String,
    /// Tab width.
    pub tab_width: usize,
    /// Force spaces (true) or tabs (false); None detects per file.
    pub insert_spaces: Option<bool>,
    /// Soft wrap long lines.
    pub soft_wrap: bool,
    /// Show line numbers.
    pub line_numbers: bool,
    /// Mouse support.
    pub mouse: bool,
    /// Key overrides: chord -> command name.
    pub keys: BTreeMap<String, String>,
    /// Display name in sessions.
    pub display_name: Option<String>,
    /// Colour in sessions.
    pub color: Option<String>,
    /// Connection mode.
    pub connection_mode: ConnectionMode,
    /// Relay address.
    pub relay: Option<String>,
    /// Guest approval policy.
    pub guest_approval: GuestApproval,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            theme: "default".into(),
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
            guest_approval: GuestApproval::Prompt,
        }
    }
}

/// The result of loading: always a usable config, plus warnings.
#[derive(Debug, Clone)]
pub struct ConfigLoad {
    /// The settings.
    pub config: Config,
    /// Where they came from.
    pub path: PathBuf,
    /// Problems found, one sentence each.
    pub warnings: Vec<String>,
}

/// Loads the user's config.
pub fn load() -> ConfigLoad {
    load_from(Path::new("config.toml"))
}

/// Loads a config file.
pub fn load_from(path: &Path) -> ConfigLoad {
    ConfigLoad {
        config: Config::default(),
        path: path.to_path_buf(),
        warnings: Vec::new(),
    }
}
