//! The user's settings file (TOML in the XDG config dir).
//!
//! May depend on: std, serde, toml, directories.
