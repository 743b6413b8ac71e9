//! Command-line arguments (clap) and the top-level dispatch.
//!
//! May depend on every layer: this is the top.
