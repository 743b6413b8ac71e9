//! Command-line arguments (clap) and the top-level dispatch.
//!
//! May depend on every layer: this is the top.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Live Share for the terminal.
#[derive(Debug, Parser)]
#[command(name = "lshed", version, about = "Live Share for the terminal: a collaborative editor", long_about = None)]
pub struct Cli {
    /// Folder or file to open.
    #[arg(default_value = ".")]
    pub path: PathBuf,

    /// What to do instead of opening the editor.
    #[command(subcommand)]
    pub command: Option<Sub>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Open a folder or file in the editor (the default).
    Open {
        /// Folder or file.
        #[arg(default_value = ".")]
        path: PathBuf,
    },
}

/// Parses arguments and runs. Returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let path = match cli.command {
        Some(Sub::Open { path }) => path,
        None => cli.path,
    };
    if let Err(e) = std::fs::metadata(&path) {
        eprintln!(
            "lshed: cannot open {}: {}",
            path.display(),
            crate::tui::app::describe_io(&e)
        );
        return 2;
    }
    match crate::tui::run(&path) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("lshed: {e:#}");
            1
        }
    }
}
