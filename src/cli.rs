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

    /// Register lshed as the desktop's handler of lshed:// links (writes an
    /// XDG desktop entry to ~/.local/share/applications and, where xdg-mime
    /// exists, makes it the default), so "Launch lshed" on a relay's join
    /// page opens a terminal that joins.
    #[arg(long)]
    pub register_url_handler: bool,

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
    /// Share a folder: print the invite link and serve guests.
    Share {
        /// Folder to share.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// No editor: JSON lines on stdin/stdout (see docs/headless.md).
        #[arg(long)]
        headless: bool,
        /// auto, direct or relay (overrides the config).
        #[arg(long, value_name = "MODE")]
        connection_mode: Option<String>,
        /// Address to listen on (default: every interface).
        #[arg(long, value_name = "IP", hide = true)]
        bind: Option<std::net::IpAddr>,
        /// UDP port range to try, `FIRST-LAST` (default 5990-5999).
        #[arg(long, value_name = "FIRST-LAST", hide = true)]
        ports: Option<String>,
    },
    /// Join the session at an invite link.
    Join {
        /// The invite link (lshed://join/…).
        link: String,
        /// No editor: JSON lines on stdin/stdout (see docs/headless.md).
        #[arg(long)]
        headless: bool,
        /// auto, direct or relay (overrides the config).
        #[arg(long, value_name = "MODE")]
        connection_mode: Option<String>,
    },
    /// Run a relay server in the foreground (see "Running a relay" in the README).
    Relay(RelayArgs),
}

/// Flags of `lshed relay`.
#[derive(Debug, clap::Args)]
pub struct RelayArgs {
    /// Address to listen on: UDP, and TCP on the same port (for clients
    /// whose UDP is blocked).
    #[arg(long, value_name = "ADDR", default_value_t = std::net::SocketAddr::from(([0, 0, 0, 0], crate::relay::limits::DEFAULT_PORT)))]
    pub listen: std::net::SocketAddr,
    /// HOST:PORT that hosts and guests reach this relay at (printed in the
    /// config line; default: the listen address, or this machine's outward
    /// address).
    #[arg(long, value_name = "HOST:PORT")]
    pub public_addr: Option<String>,
    /// Folder for the relay's certificate and key (made on first start).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Makes the relay private: hosts must present one of the tokens in
    /// FILE (one per line).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (and /health).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Sessions this relay carries at most.
    #[arg(long, value_name = "N", default_value_t = crate::relay::limits::MAX_SESSIONS)]
    pub max_sessions: usize,
    /// Guests of one session at most.
    #[arg(long, value_name = "N", default_value_t = crate::relay::limits::MAX_GUESTS_PER_SESSION)]
    pub max_guests: usize,
    /// Connections from one IP address at most.
    #[arg(long, value_name = "N", default_value_t = crate::relay::limits::MAX_CONNS_PER_IP)]
    pub max_conns_per_ip: usize,
    /// A session's forwarding rate, bytes per second.
    #[arg(long, value_name = "BYTES", default_value_t = crate::relay::limits::SESSION_RATE_BYTES_PER_SEC)]
    pub rate: u32,
    /// A session's burst allowance, bytes.
    #[arg(long, value_name = "BYTES", default_value_t = crate::relay::limits::SESSION_BURST_BYTES)]
    pub burst: u32,
    /// Serve the join page (invite links that open in a browser) on this
    /// TCP address: plain HTTP, or HTTPS with --web-cert and --web-key.
    #[arg(long, value_name = "ADDR")]
    pub web_listen: Option<std::net::SocketAddr>,
    /// The base URL people reach the join page at, e.g.
    /// `https://relay.example.org` (default: from --public-addr's host and
    /// --web-listen's port).
    #[arg(long, value_name = "URL", requires = "web_listen")]
    pub public_url: Option<String>,
    /// PEM certificate chain for the join page (HTTPS).
    #[arg(long, value_name = "FILE", requires_all = ["web_listen", "web_key"])]
    pub web_cert: Option<PathBuf>,
    /// PEM private key for the join page (HTTPS).
    #[arg(long, value_name = "FILE", requires = "web_cert")]
    pub web_key: Option<PathBuf>,
}

/// Parses arguments and runs. Returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    if cli.register_url_handler {
        return register_url_handler();
    }
    let path = match cli.command {
        Some(Sub::Open { path }) => path,
        Some(Sub::Relay(args)) => return run_relay(args),
        None => cli.path,
        Some(Sub::Share {
            path,
            headless,
            connection_mode,
            bind,
            ports,
        }) => {
            if !headless {
                eprintln!("lshed: use the editor: open it with `lshed {}` and press the Share key (or run with --headless)", path.display());
                return 2;
            }
            return share_headless(path, connection_mode, bind, ports);
        }
        // The editor's join is the lead's (tui); headless is the session layer's.
        Some(Sub::Join {
            link,
            headless,
            connection_mode,
        }) => {
            if !headless {
                return join_ui(&link, connection_mode);
            }
            return join_headless(&link, connection_mode);
        }
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

/// Name of the desktop entry `--register-url-handler` writes.
const URL_HANDLER_ENTRY: &str = "lshed-join.desktop";

fn register_url_handler() -> i32 {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("lshed: cannot tell where this lshed is installed: {e}");
            return 1;
        }
    };
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    let Some(data) = data else {
        eprintln!(
            "lshed: neither XDG_DATA_HOME nor HOME is set: nowhere to write the desktop entry"
        );
        return 1;
    };
    let dir = data.join("applications");
    let path = dir.join(URL_HANDLER_ENTRY);
    // Desktop entries quote with double quotes; an exe path holding one
    // (or a newline) cannot be written safely.
    let exe_text = exe.to_string_lossy();
    if exe_text.contains(['"', '\n', '\\', '`', '$']) {
        eprintln!("lshed: cannot register {exe_text:?}: its path holds characters a desktop entry cannot quote");
        return 1;
    }
    let entry = format!(
        "[Desktop Entry]\nType=Application\nName=lshed (join a session)\nComment=Join an lshed session from an lshed:// invite link\nExec=\"{exe_text}\" join %u\nTerminal=true\nNoDisplay=true\nMimeType=x-scheme-handler/lshed;\n"
    );
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, entry)) {
        eprintln!("lshed: cannot write {}: {e}", path.display());
        return 1;
    }
    println!(
        "wrote {}: lshed:// links open `{exe_text} join LINK` in a terminal",
        path.display()
    );
    let ran = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if ran(
        "xdg-mime",
        &["default", URL_HANDLER_ENTRY, "x-scheme-handler/lshed"],
    ) {
        println!("made it the default handler of lshed:// links (xdg-mime)");
    } else {
        println!("xdg-mime is not available: to make it the default handler, run\n  xdg-mime default {URL_HANDLER_ENTRY} x-scheme-handler/lshed");
    }
    let _ = ran("update-desktop-database", &[&dir.to_string_lossy()]);
    println!("undo: rm {}", path.display());
    0
}

fn run_relay(args: RelayArgs) -> i32 {
    let limits = crate::relay::RelayLimits {
        max_sessions: args.max_sessions,
        max_guests_per_session: args.max_guests,
        max_conns_per_ip: args.max_conns_per_ip,
        rate_bytes_per_sec: args.rate,
        burst_bytes: args.burst,
        ..Default::default()
    };
    if let Some(public) = &args.public_addr {
        if crate::net::RelayAddr::validate_host(public).is_err() {
            eprintln!("lshed relay: --public-addr: expected HOST:PORT, got {public:?}");
            return 2;
        }
    }
    let web = args.web_listen.map(|listen| crate::relay::WebOptions {
        listen,
        tls: args.web_cert.zip(args.web_key),
        public_url: args.public_url,
        public_host: args
            .public_addr
            .as_deref()
            .and_then(|a| a.rsplit_once(':').map(|(h, _)| h.to_owned())),
    });
    crate::relay::run(crate::relay::RunOptions {
        web,
        listen: args.listen,
        public: args.public_addr,
        state_dir: args
            .state_dir
            .unwrap_or_else(crate::relay::default_state_dir),
        token_file: args.token_file,
        metrics: args.metrics,
        limits,
    })
}

/// `lshed join LINK` with the editor: the link is checked first, so a
/// malformed one is a single clear line rather than a screen.
fn join_ui(link: &str, connection_mode: Option<String>) -> i32 {
    use std::str::FromStr;
    if let Err(e) = crate::net::InviteLink::from_str(link) {
        eprintln!("lshed: {e}");
        return 2;
    }
    let mode = match connection_mode.map(|m| m.parse::<crate::config::ConnectionMode>()) {
        None => None,
        Some(Ok(mode)) => Some(mode),
        Some(Err(_)) => {
            eprintln!("lshed: --connection-mode: expected auto, direct or relay");
            return 2;
        }
    };
    match crate::tui::run_join(link, mode) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("lshed: {e:#}");
            1
        }
    }
}

/// Options and identity for a headless session, from the config and flags.
fn session_setup(
    connection_mode: Option<String>,
) -> Result<(crate::session::Profile, crate::session::SessionOptions), String> {
    let loaded = crate::config::load();
    for w in &loaded.warnings {
        eprintln!("lshed: {w}");
    }
    let config = loaded.config;
    let mut opts = crate::session::SessionOptions::from_config(&config)?;
    if let Some(mode) = connection_mode {
        opts.connection_mode = mode.parse().map_err(|_| {
            format!("--connection-mode: expected auto, direct or relay, got {mode:?}")
        })?;
    }
    let profile = crate::session::Profile {
        name: config
            .display_name
            .unwrap_or_else(crate::session::default_display_name),
        color: config.color.unwrap_or_else(|| DEFAULT_COLOR.to_string()),
    };
    Ok((profile, opts))
}

/// Cursor colour when the config has none.
const DEFAULT_COLOR: &str = "#61afef";

fn share_headless(
    path: PathBuf,
    connection_mode: Option<String>,
    bind: Option<std::net::IpAddr>,
    ports: Option<String>,
) -> i32 {
    match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            eprintln!("lshed: cannot share {}: not a folder", path.display());
            return 2;
        }
        Err(e) => {
            eprintln!(
                "lshed: cannot share {}: {}",
                path.display(),
                crate::tui::app::describe_io(&e)
            );
            return 2;
        }
    }
    let (profile, mut opts) = match session_setup(connection_mode) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("lshed: {e}");
            return 2;
        }
    };
    // --bind, else LSHED_BIND (as the editor reads it), else everywhere.
    let from_env = std::env::var("LSHED_BIND")
        .ok()
        .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok());
    if let Some(ip) = bind.or(from_env) {
        opts.bind_ip = ip;
    }
    if let Some(range) = ports {
        let parsed = range.split_once('-').and_then(|(a, b)| {
            Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
        });
        match parsed {
            Some((a, b)) if a <= b => opts.host.ports = a..=b,
            _ => {
                eprintln!("lshed: --ports: expected FIRST-LAST, got {range:?}");
                return 2;
            }
        }
    }
    crate::session::headless::run_host(path, profile, opts)
}

fn join_headless(link: &str, connection_mode: Option<String>) -> i32 {
    match session_setup(connection_mode) {
        Ok((profile, opts)) => crate::session::headless::run_guest(link, profile, opts),
        Err(e) => {
            eprintln!("lshed: {e}");
            2
        }
    }
}
