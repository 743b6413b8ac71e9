//! The relay's counters, served as Prometheus text (prometheus-client) on
//! `--metrics ADDR` at `/metrics`, with `/health` beside it (hyper).
//!
//! Metrics carry counts only: never a route, an address or any byte of
//! what is forwarded.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Reason = [(&'static str, &'static str); 1];

/// Why a client was turned away (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many handshakes at once.
    Handshakes,
    /// Too many connections from one address.
    PerAddress,
    /// No complete hello within the register deadline.
    RegisterTimeout,
    /// A hello that did not decode, or an oversize frame.
    Malformed,
    /// Another relay protocol version.
    Version,
    /// A private relay and no valid token.
    Token,
    /// The route is registered already.
    RouteTaken,
    /// The relay carries its maximum of sessions.
    Sessions,
    /// The session has its maximum of guests.
    Guests,
    /// A guest asked for a route nobody registered.
    UnknownRoute,
    /// The relay's own state was unusable.
    Internal,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Handshakes => "handshakes",
            Refusal::PerAddress => "per_address",
            Refusal::RegisterTimeout => "register_timeout",
            Refusal::Malformed => "malformed",
            Refusal::Version => "version",
            Refusal::Token => "token",
            Refusal::RouteTaken => "route_taken",
            Refusal::Sessions => "sessions",
            Refusal::Guests => "guests",
            Refusal::UnknownRoute => "unknown_route",
            Refusal::Internal => "internal",
        }
    }
}

/// Why a packet was not forwarded (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// Over the session's rate.
    RateLimited,
    /// The destination's queue was full (its oldest packet went).
    QueueFull,
    /// Tagged for a guest that is not there.
    UnknownPeer,
    /// Empty, or larger than an inner packet can be.
    Malformed,
}

impl Drop {
    fn label(self) -> &'static str {
        match self {
            Drop::RateLimited => "rate_limited",
            Drop::QueueFull => "queue_full",
            Drop::UnknownPeer => "unknown_peer",
            Drop::Malformed => "malformed",
        }
    }
}

/// Every counter of a relay.
pub struct Metrics {
    registry: Registry,
    sessions: Gauge,
    peers: Gauge,
    bytes: Counter,
    packets: Counter,
    dropped: Family<Reason, Counter>,
    refused: Family<Reason, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Zeroed counters, registered under `lshed_relay_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("lshed_relay");
        let sessions = Gauge::default();
        let peers = Gauge::default();
        let bytes = Counter::default();
        let packets = Counter::default();
        let dropped = Family::<Reason, Counter>::default();
        let refused = Family::<Reason, Counter>::default();
        registry.register("sessions", "Sessions registered", sessions.clone());
        registry.register(
            "peers",
            "Connected clients (hosts and guests)",
            peers.clone(),
        );
        registry.register(
            "forwarded_bytes",
            "Bytes of inner packets forwarded",
            bytes.clone(),
        );
        registry.register(
            "forwarded_packets",
            "Inner packets forwarded",
            packets.clone(),
        );
        registry.register(
            "dropped_packets",
            "Packets not forwarded, by reason",
            dropped.clone(),
        );
        registry.register(
            "refusals",
            "Clients turned away, by reason",
            refused.clone(),
        );
        Metrics {
            registry,
            sessions,
            peers,
            bytes,
            packets,
            dropped,
            refused,
        }
    }

    pub(crate) fn set_sessions(&self, n: usize) {
        self.sessions.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub(crate) fn peer_joined(&self) {
        self.peers.inc();
    }

    pub(crate) fn peer_left(&self) {
        self.peers.dec();
    }

    pub(crate) fn forwarded(&self, len: usize) {
        self.bytes.inc_by(len as u64);
        self.packets.inc();
    }

    pub(crate) fn dropped(&self, why: Drop) {
        self.dropped.get_or_create(&[("reason", why.label())]).inc();
    }

    pub(crate) fn refused(&self, why: Refusal) {
        self.refused.get_or_create(&[("reason", why.label())]).inc();
    }

    /// Sessions registered now.
    pub fn sessions(&self) -> i64 {
        self.sessions.get()
    }

    /// Clients connected now.
    pub fn peers(&self) -> i64 {
        self.peers.get()
    }

    /// Inner packets forwarded so far.
    pub fn forwarded_packets(&self) -> u64 {
        self.packets.get()
    }

    /// Packets dropped for `why` so far.
    pub fn dropped_count(&self, why: Drop) -> u64 {
        self.dropped.get_or_create(&[("reason", why.label())]).get()
    }

    /// Refusals for `why` so far.
    pub fn refused_count(&self, why: Refusal) -> u64 {
        self.refused.get_or_create(&[("reason", why.label())]).get()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The metrics page's answers: `/metrics` and `/health`.
pub(crate) fn page(metrics: &Metrics, path: &str) -> super::web::Answer {
    match path {
        "/metrics" => (
            hyper::StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            hyper::body::Bytes::from(metrics.render()),
        ),
        "/health" => super::web::health(),
        _ => super::web::not_found(),
    }
}
