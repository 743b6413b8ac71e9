//! `lshed relay`: a server that lets a host and its guests reach each other
//! when no direct path exists (a host behind a firewall or NAT, a guest on
//! a network that blocks the host's port).
//!
//! The relay is blind. A host registers a route (an HMAC of the session id
//! under the link's secret, see `net::relay_proto`), guests attach to it,
//! and the relay forwards the session's own QUIC packets between them. Those
//! are encrypted end to end (TLS 1.3 pinned to the host's certificate, which
//! only the host holds), so the relay can neither read nor alter them, and
//! never sees the session id or the secret.
//!
//! The relay's own identity is a certificate kept in its state folder
//! (made on first start, key file mode 0600), so a restart keeps its
//! fingerprint; hosts and guests pin that fingerprint ([`RelayAddr`]).
//!
//! Scaling: each session is pinned to the relay its link names, and relays
//! share nothing, so more capacity is more relays. What one relay holds is
//! bounded by [`limits`].
//!
//! May depend on: `net` (its framing, TLS and relay protocol), tokio,
//! quinn, governor, prometheus-client, hyper. Never on the session, the
//! editor or the UI.

pub mod limits;
pub mod metrics;
pub mod server;
pub mod web;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::net::relay_proto::RelayAddr;
use crate::net::tls::HostIdentity;

pub use limits::RelayLimits;
pub use metrics::Metrics;
pub use server::{ServerConfig, StartError, Tap};

/// Name in the relay's certificate (meaningless: clients pin the hash).
const CERT_NAME: &str = "lshed-relay.invalid";
const CERT_FILE: &str = "relay-cert.der";
const KEY_FILE: &str = "relay-key.der";

/// Why the relay's identity could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The state folder or a file in it could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Only one of the two files exists.
    #[error("{dir} has only one of {CERT_FILE} and {KEY_FILE}; restore the other or remove both to make a new identity (clients must then be given the new fingerprint)")]
    Incomplete {
        /// The state folder.
        dir: PathBuf,
    },
    /// A new certificate could not be made.
    #[error("cannot make the relay's certificate: {0}")]
    Generate(String),
}

/// Loads the relay's identity from `dir`, or makes one there (0600 key).
pub fn load_or_create_identity(dir: &Path) -> Result<HostIdentity, IdentityError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| IdentityError::Io { path, source }
    };
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            let cert = std::fs::read(&cert_path).map_err(io(&cert_path))?;
            let key = std::fs::read(&key_path).map_err(io(&key_path))?;
            Ok(HostIdentity::from_der(cert, key))
        }
        (false, false) => {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let identity = HostIdentity::generate_for(CERT_NAME)
                .map_err(|e| IdentityError::Generate(e.to_string()))?;
            write_private(&key_path, identity.key_der()).map_err(io(&key_path))?;
            std::fs::write(&cert_path, identity.cert_der()).map_err(io(&cert_path))?;
            Ok(identity)
        }
        _ => Err(IdentityError::Incomplete {
            dir: dir.to_path_buf(),
        }),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The default state folder: `$XDG_STATE_HOME/lshed/relay` (or the
/// platform's equivalent), else `./lshed-relay-state`.
pub fn default_state_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "lshed")
        .map(|d| {
            d.state_dir()
                .unwrap_or_else(|| d.data_local_dir())
                .join("relay")
        })
        .unwrap_or_else(|| PathBuf::from("lshed-relay-state"))
}

/// Reads a token file: one token per line; blank lines and `#` comments
/// ignored. An empty result is an error (a private relay nobody can use).
pub fn read_tokens(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if tokens.is_empty() {
        return Err(format!("{}: no token in the file", path.display()));
    }
    Ok(tokens)
}

/// A running relay: its QUIC server and, if asked for, its metrics page.
pub struct Relay {
    /// Taken by `shutdown`.
    server: Option<server::Server>,
    addr: SocketAddr,
    fingerprint: [u8; 32],
    metrics: Arc<Metrics>,
    metrics_addr: Option<SocketAddr>,
    web_addr: Option<SocketAddr>,
    join_page: Option<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Where and how the join page is served.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// TCP address for the page (HTTP, or HTTPS with `tls`).
    pub listen: SocketAddr,
    /// PEM certificate chain and key for HTTPS; `None` = plain HTTP (for a
    /// TLS reverse proxy in front).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The base URL people reach the page at (`https://relay.example.org`);
    /// links are `BASE/join#v2/…`. Default: `SCHEME://HOST:PORT` from
    /// `public_host` (else the listen address) and the bound port.
    pub public_url: Option<String>,
    /// The host name for the default base URL.
    pub public_host: Option<String>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Starts a relay with `identity` (inside a tokio runtime).
    pub async fn start(
        config: ServerConfig,
        identity: &HostIdentity,
        metrics_listen: Option<SocketAddr>,
    ) -> Result<Relay, StartError> {
        Self::start_with_web(config, identity, metrics_listen, None).await
    }

    /// As [`Relay::start`], serving the join page as `web` says.
    pub async fn start_with_web(
        mut config: ServerConfig,
        identity: &HostIdentity,
        metrics_listen: Option<SocketAddr>,
        web: Option<WebOptions>,
    ) -> Result<Relay, StartError> {
        let mut tasks = Vec::new();
        let mut web_addr = None;
        if let Some(web) = web {
            let tls = match &web.tls {
                Some((cert, key)) => Some(Arc::new(
                    web::tls_from_pem(cert, key).map_err(|e| StartError::Web(e.to_string()))?,
                )),
                None => None,
            };
            let listener = tokio::net::TcpListener::bind(web.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: web.listen,
                    source,
                })?;
            let bound = listener.local_addr().map_err(|source| StartError::Bind {
                addr: web.listen,
                source,
            })?;
            web_addr = Some(bound);
            let base = match &web.public_url {
                Some(url) => url.trim_end_matches('/').to_owned(),
                None => {
                    let scheme = if tls.is_some() { "https" } else { "http" };
                    match &web.public_host {
                        Some(host) => format!("{scheme}://{host}:{}", bound.port()),
                        // Listening everywhere: this machine's outward
                        // address, as for the relay line.
                        None => format!("{scheme}://{}", public_guess(bound)),
                    }
                }
            };
            let page = format!("{base}/join");
            if !crate::net::relay_proto::valid_join_page(&page) {
                return Err(StartError::Web(format!(
                    "its URL {page:?} is not an http(s) URL without '#' (see --public-url)"
                )));
            }
            tasks.push(tokio::spawn(web::serve_http(
                listener,
                tls,
                Arc::new(web::join_page),
            )));
            config.join_page = Some(page);
        }
        let metrics = Arc::new(Metrics::new());
        let join_page = config.join_page.clone();
        let server = server::Server::start(config, identity, metrics.clone()).await?;
        let addr = server.local_addr().map_err(|source| StartError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        let metrics_addr = match metrics_listen {
            Some(listen) => {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .map_err(|source| StartError::Bind {
                        addr: listen,
                        source,
                    })?;
                let bound = listener.local_addr().ok();
                let counters = metrics.clone();
                tasks.push(tokio::spawn(web::serve_http(
                    listener,
                    None,
                    Arc::new(move |path: &str| metrics::page(&counters, path)),
                )));
                bound
            }
            None => None,
        };
        Ok(Relay {
            server: Some(server),
            addr,
            fingerprint: identity.fingerprint(),
            metrics,
            metrics_addr,
            web_addr,
            join_page,
            tasks,
        })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// SHA-256 of the relay's certificate.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// How clients name this relay when it is reachable at `public`
    /// (`host:port`).
    pub fn relay_addr(&self, public: &str) -> RelayAddr {
        RelayAddr {
            addr: public.to_owned(),
            fingerprint: self.fingerprint,
        }
    }

    /// The metrics page's address, if serving one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The join page's address, if serving one.
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web_addr
    }

    /// The join page's public URL, if serving one.
    pub fn join_page(&self) -> Option<&str> {
        self.join_page.as_deref()
    }

    /// The counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Stops: clients are told the relay is shutting down.
    pub async fn shutdown(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

/// What `lshed relay` was asked to do (from its flags).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// `host:port` clients use; default: the listen address, or this
    /// machine's outward address when listening on every interface.
    pub public: Option<String>,
    /// The identity's folder.
    pub state_dir: PathBuf,
    /// A private relay's tokens file.
    pub token_file: Option<PathBuf>,
    /// Where to serve `/metrics` and `/health`.
    pub metrics: Option<SocketAddr>,
    /// The join page, if served.
    pub web: Option<WebOptions>,
    /// The limits.
    pub limits: RelayLimits,
}

/// Runs a relay in the foreground until Ctrl+C or SIGTERM. Returns the
/// process exit code; every failure is one line on stderr.
pub fn run(opts: RunOptions) -> i32 {
    let level = std::env::var("LSHED_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(level)
        .try_init();
    let tokens = match &opts.token_file {
        Some(path) => match read_tokens(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("lshed relay: --token-file {e}");
                return 2;
            }
        },
        None => Vec::new(),
    };
    let identity = match load_or_create_identity(&opts.state_dir) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("lshed relay: {e}");
            return 1;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lshed relay: cannot start the runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let private = !tokens.is_empty();
        let config = ServerConfig {
            listen: opts.listen,
            tokens,
            limits: opts.limits,
            tap: None,
            join_page: None,
        };
        let web = opts.web.clone();
        let relay = match Relay::start_with_web(config, &identity, opts.metrics, web).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("lshed relay: {e}");
                return 1;
            }
        };
        let public = opts
            .public
            .clone()
            .unwrap_or_else(|| public_guess(relay.local_addr()));
        let addr = relay.relay_addr(&public);
        println!(
            "lshed relay listening on {} (UDP, and TCP for clients whose UDP is blocked)",
            relay.local_addr()
        );
        println!(
            "fingerprint: {}",
            crate::net::link::hex(&relay.fingerprint())
        );
        if let Some(m) = relay.metrics_addr() {
            println!("metrics: http://{m}/metrics  health: http://{m}/health");
        }
        if let (Some(page), Some(addr)) = (relay.join_page(), relay.web_addr()) {
            println!(
                "join page: {page} (served on {addr}); invite links through this relay open there"
            );
        }
        if private {
            println!("private: hosts need a token from the token file (config key relay_token)");
        }
        println!("hosts put this line in their config (~/.config/lshed/config.toml):");
        println!("relay = \"{addr}\"");
        let _ = std::io::stdout().flush();
        tracing::info!(listen = %relay.local_addr(), "relay started");
        wait_for_stop().await;
        tracing::info!("stopping: telling clients");
        relay.shutdown().await;
        0
    })
}

/// Ctrl+C or SIGTERM.
async fn wait_for_stop() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `host:port` to print when the operator did not say: the listen address,
/// or the address the kernel would use outward when listening everywhere.
fn public_guess(bound: SocketAddr) -> String {
    if !bound.ip().is_unspecified() {
        return bound.to_string();
    }
    match crate::net::endpoint::outward_ip(bound.ip()) {
        Some(ip) => SocketAddr::new(ip, bound.port()).to_string(),
        None => format!("YOUR-HOST:{}", bound.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_identity_is_made_once_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("relay");
        let first = load_or_create_identity(&state).unwrap();
        let mode = std::fs::metadata(state.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is readable by its owner only");
        let again = load_or_create_identity(&state).unwrap();
        assert_eq!(
            first.fingerprint(),
            again.fingerprint(),
            "a restart keeps it"
        );
        std::fs::remove_file(state.join(CERT_FILE)).unwrap();
        let err = load_or_create_identity(&state).unwrap_err();
        assert!(matches!(err, IdentityError::Incomplete { .. }), "{err}");
    }

    #[test]
    fn token_files_ignore_comments_and_refuse_to_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# team a\n  alpha  \n\nbeta\n").unwrap();
        assert_eq!(read_tokens(&path).unwrap(), vec!["alpha", "beta"]);
        std::fs::write(&path, "# nothing\n\n").unwrap();
        assert!(read_tokens(&path).unwrap_err().contains("no token"));
        assert!(read_tokens(&dir.path().join("missing")).is_err());
    }
}
