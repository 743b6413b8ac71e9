//! The relay and the connection modes, in-process on loopback: joining
//! through the relay, `auto` choosing a path, every refusal, limits, hostile
//! clients, a stuck receiver, a relay restart, and a check that the relay
//! only ever sees ciphertext. Network traffic goes to 127.0.0.1 only.

use std::net::SocketAddr;
use std::time::Duration;

use lshed::net::relay_client::{outer_transport, RelayError};
use lshed::net::relay_proto::{RelayAddr, RelayRefusal, RELAY_ALPN};
use lshed::net::tls::pinned_client_config;
use lshed::net::{
    connect, CloseReason, ConnectError, ConnectOptions, ConnectPaths, HostEndpoint, HostOptions,
    InviteLink, Path, PeerConnection, RelayConnectOptions,
};
use lshed::relay::metrics::{Drop as DropReason, Refusal};
use lshed::relay::{load_or_create_identity, Relay, RelayLimits, ServerConfig};
use tokio::sync::mpsc;

use crate::support::net as support;
use support::{auto_accept, me, LOCALHOST};

use crate::support::udp_proxy;
use udp_proxy::{ConnectProxy, UdpBlockedRelay, UdpProxy};

/// Long enough for a loaded machine; the tests wait for events, not time.
const DEADLINE: Duration = Duration::from_secs(30);

fn quick() -> ConnectOptions {
    support::quick(5)
}

/// Relay options that ignore the machine's proxy settings.
fn no_proxy() -> RelayConnectOptions {
    RelayConnectOptions {
        proxy: None,
        ..RelayConnectOptions::default()
    }
}

/// Host options with a private port range, so direct hosts here do not
/// fight other tests for 5990–5999.
fn host_options(first: u16) -> HostOptions {
    HostOptions {
        ports: first..=first + 9,
        ..HostOptions::default()
    }
}

struct TestRelay {
    relay: Relay,
    addr: RelayAddr,
    _state: tempfile::TempDir,
}

async fn start_relay(limits: RelayLimits, tokens: Vec<String>) -> TestRelay {
    start_relay_with(limits, tokens, None).await
}

async fn start_relay_with(
    limits: RelayLimits,
    tokens: Vec<String>,
    tap: Option<lshed::relay::Tap>,
) -> TestRelay {
    let state = tempfile::tempdir().unwrap();
    let identity = load_or_create_identity(state.path()).unwrap();
    let config = ServerConfig {
        listen: SocketAddr::new(LOCALHOST, 0),
        tokens,
        limits,
        tap,
        join_page: None,
    };
    let relay = Relay::start(config, &identity, Some(SocketAddr::new(LOCALHOST, 0)))
        .await
        .unwrap();
    let addr = relay.relay_addr(&relay.local_addr().to_string());
    TestRelay {
        relay,
        addr,
        _state: state,
    }
}

/// A host that listens only through `relay`, accepting everyone.
async fn relayed_host(relay: &RelayAddr) -> (InviteLink, mpsc::Receiver<PeerConnection>) {
    let mut host = HostEndpoint::unbound(HostOptions::default()).unwrap();
    host.register_relay(relay, None, Duration::from_secs(5))
        .await
        .unwrap();
    auto_accept(host)
}

async fn next_peer(rx: &mut mpsc::Receiver<PeerConnection>) -> PeerConnection {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("a guest in time")
        .expect("the host is still listening")
}

async fn recv(peer: &mut PeerConnection) -> Vec<u8> {
    tokio::time::timeout(DEADLINE, peer.recv())
        .await
        .expect("a message in time")
        .expect("the connection is open")
}

fn relay_refusal(err: &ConnectError) -> Option<RelayRefusal> {
    match err {
        ConnectError::Relay(RelayError::Refused(r)) => Some(*r),
        _ => None,
    }
}

#[tokio::test]
async fn a_guest_joins_through_the_relay_only_and_both_talk() {
    let relay = start_relay(RelayLimits::default(), vec![]).await;
    let (link, mut admitted) = relayed_host(&relay.addr).await;
    assert!(link.direct.is_empty(), "relay mode opens no direct port");
    assert_eq!(link.relay.as_ref(), Some(&relay.addr));
    let text = link.to_string();
    assert_eq!(text.parse::<InviteLink>().unwrap(), link);

    let mut guest = connect(&link, &me("bob"), &quick(), ConnectPaths::RelayOnly)
        .await
        .unwrap();
    let mut host_side = next_peer(&mut admitted).await;
    assert_eq!(guest.path(), Path::Relayed);
    assert_eq!(host_side.path(), Path::Relayed);
    assert_eq!(host_side.info().name, "bob");

    guest.send(b"hello host".to_vec()).await.unwrap();
    assert_eq!(recv(&mut host_side).await, b"hello host");
    // Larger than one packet, both ways.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    host_side.send(big.clone()).await.unwrap();
    assert_eq!(recv(&mut guest).await, big);
    guest.send(big.clone()).await.unwrap();
    assert_eq!(recv(&mut host_side).await, big);

    let m = relay.relay.metrics();
    assert_eq!(m.sessions(), 1);
    assert!(m.forwarded_packets() > 100);
    // The metrics page says the same, and /health answers.
    let page = http_get(relay.relay.metrics_addr().unwrap(), "/metrics").await;
    assert!(page.contains("lshed_relay_sessions 1"), "{page}");
    assert!(
        page.contains("lshed_relay_forwarded_packets_total"),
        "{page}"
    );
    let health = http_get(relay.relay.metrics_addr().unwrap(), "/health").await;
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
}

/// A minimal HTTP/1.1 GET on loopback; returns the whole response.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(DEADLINE, stream.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test]
async fn the_relay_sees_only_ciphertext() {
    let (tap_tx, mut tap_rx) = mpsc::unbounded_channel();
    let relay = start_relay_with(RelayLimits::default(), vec![], Some(tap_tx)).await;
    let (link, mut admitted) = relayed_host(&relay.addr).await;
    let mut guest = connect(&link, &me("bob"), &quick(), ConnectPaths::RelayOnly)
        .await
        .unwrap();
    let mut host_side = next_peer(&mut admitted).await;
    let marker = b"MARKER-typed-into-the-document-4f9a1c";
    guest.send(marker.to_vec()).await.unwrap();
    assert_eq!(recv(&mut host_side).await, marker);
    host_side.send(marker.to_vec()).await.unwrap();
    assert_eq!(recv(&mut guest).await, marker);

    let mut seen = Vec::new();
    while let Ok(packet) = tap_rx.try_recv() {
        seen.push(packet);
    }
    assert!(seen.len() > 5, "the tap saw the session's packets");
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for packet in &seen {
        assert!(!contains(packet, marker), "plaintext crossed the relay");
        assert!(
            !contains(packet, &link.secret),
            "the secret crossed the relay"
        );
        assert!(
            !contains(packet, &link.session_id),
            "the session id crossed the relay"
        );
        assert!(
            !contains(packet, b"bob"),
            "the guest's name crossed the relay in clear"
        );
    }
}

/// A host in `auto` mode: listening directly on loopback (ports from
/// `first`) and registered with `relay`, accepting everyone.
async fn auto_host(relay: &RelayAddr, first: u16) -> (InviteLink, mpsc::Receiver<PeerConnection>) {
    let mut host = HostEndpoint::bind_with(LOCALHOST, host_options(first)).unwrap();
    host.register_relay(relay, None, Duration::from_secs(5))
        .await
        .unwrap();
    auto_accept(host)
}

#[tokio::test]
async fn auto_prefers_direct_when_both_paths_work() {
    let relay = start_relay(RelayLimits::default(), vec![]).await;
    let (link, mut admitted) = auto_host(&relay.addr, 48100).await;
    assert!(!link.direct.is_empty() && link.relay.is_some());
    let guest = connect(&link, &me("bob"), &quick(), ConnectPaths::Both)
        .await
        .unwrap();
    let host_side = next_peer(&mut admitted).await;
    assert_eq!(guest.path(), Path::Direct);
    assert_eq!(host_side.path(), Path::Direct);
    // The host was asked about this guest once: no second guest arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), admitted.recv())
            .await
            .is_err(),
        "one approval per guest"
    );
}

#[tokio::test]
async fn auto_takes_the_relay_when_the_direct_address_does_not_answer() {
    let relay = start_relay(RelayLimits::default(), vec![]).await;
    let (mut link, mut admitted) = auto_host(&relay.addr, 48110).await;
    // A socket that takes packets and never answers: a firewalled port.
    let black_hole = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
    link.direct = vec![black_hole.local_addr().unwrap()];
    let mut guest = connect(&link, &me("bob"), &quick(), ConnectPaths::Both)
        .await
        .unwrap();
    let host_side = next_peer(&mut admitted).await;
    assert_eq!(guest.path(), Path::Relayed);
    assert_eq!(host_side.path(), Path::Relayed);
    host_side.send(b"through the relay".to_vec()).await.unwrap();
    assert_eq!(recv(&mut guest).await, b"through the relay");
}

#[tokio::test]
async fn direct_mode_fails_clearly_and_auto_without_a_relay_says_so() {
    let black_hole = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let host = HostEndpoint::bind_with(LOCALHOST, host_options(48120)).unwrap();
    let mut link = host.invite_link();
    link.direct = vec![black_hole.local_addr().unwrap()];
    let options = ConnectOptions {
        connect_timeout: Duration::from_millis(500),
        ..quick()
    };
    let err = connect(&link, &me("bob"), &options, ConnectPaths::DirectOnly)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err:?}");
    let err = connect(&link, &me("bob"), &options, ConnectPaths::Both)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("names no relay"),
        "auto says there was no other way: {err}"
    );
    let err = connect(&link, &me("bob"), &options, ConnectPaths::RelayOnly)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::NoRelay), "{err:?}");
}

#[tokio::test]
async fn a_wrong_relay_fingerprint_is_refused_on_both_sides() {
    let relay = start_relay(RelayLimits::default(), vec![]).await;
    let mut wrong = relay.addr.clone();
    wrong.fingerprint[0] ^= 1;
    let mut host = HostEndpoint::unbound(HostOptions::default()).unwrap();
    let err = host
        .register_relay(&wrong, None, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RelayError::CertificateMismatch { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("certificate does not match"));

    let (mut link, _admitted) = relayed_host(&relay.addr).await;
    link.relay = Some(wrong);
    let err = connect(&link, &me("bob"), &quick(), ConnectPaths::RelayOnly)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Relay(RelayError::CertificateMismatch { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn routes_are_private_unique_and_refusals_are_clear() {
    let relay = start_relay(RelayLimits::default(), vec![]).await;
    // A session nobody registered: the guest is told it is not there.
    let mut absent = HostEndpoint::unbound(HostOptions::default()).unwrap();
    absent.set_relay(relay.addr.clone());
    let err = connect(
        &absent.invite_link(),
        &me("bob"),
        &quick(),
        ConnectPaths::RelayOnly,
    )
    .await
    .unwrap_err();
    assert_eq!(
        relay_refusal(&err),
        Some(RelayRefusal::UnknownRoute),
        "{err:?}"
    );
    assert!(err.to_string().contains("not on the relay"));

    // A second registration of a live route is refused.
    let mut host = HostEndpoint::unbound(HostOptions::default()).unwrap();
    host.register_relay(&relay.addr, None, Duration::from_secs(5))
        .await
        .unwrap();
    let err = host
        .register_relay(&relay.addr, None, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err, RelayError::Refused(RelayRefusal::RouteTaken));

    // A guest holding a link with another secret finds nothing.
    let mut forged = host.invite_link();
    forged.secret[0] ^= 1;
    let err = connect(&forged, &me("eve"), &quick(), ConnectPaths::RelayOnly)
        .await
        .unwrap_err();
    assert_eq!(
        relay_refusal(&err),
        Some(RelayRefusal::UnknownRoute),
        "{err:?}"
    );
    let m = relay.relay.metrics();
    assert_eq!(m.refused_count(Refusal::UnknownRoute), 2);
    assert_eq!(m.refused_count(Refusal::RouteTaken), 1);
}

#[tokio::test]
async fn session_and_guest_limits() {
    let limits = RelayLimits {
        max_sessions: 1,
        max_guests_per_session: 1,
        ..RelayLimits::default()
    };
    let relay = start_relay(limits, vec![]).await;
    let (link, mut admitted) = relayed_host(&relay.addr).await;
    let mut second = HostEndpoint::unbound(HostOptions::default()).unwrap();
    let err = second
        .register_relay(&relay.addr, None, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err, RelayError::Refused(RelayRefusal::TooManySessions));
    assert!(err.to_string().contains("too many sessions"));

    let _bob = connect(&link, &me("bob"), &quick(), ConnectPaths::RelayOnly)
        .await
        .unwrap();
    let _bob_host_side = next_peer(&mut admitted).await;
    let err = connect(&link, &me("carol"), &quick(), ConnectPaths::RelayOnly)
        .await
        .unwrap_err();
    assert_eq!(
        relay_refusal(&err),
        Some(RelayRefusal::TooManyGuests),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_private_relay_wants_a_token_from_hosts_only() {
    let relay = start_relay(RelayLimits::default(), vec!["s3cret-token".into()]).await;
    for token in [None, Some("wrong".to_string())] {
        let mut host = HostEndpoint::unbound(HostOptions::default()).unwrap();
        let err = host
            .register_relay(&relay.addr, token, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err, RelayError::Refused(RelayRefusal::BadToken));
        assert!(err.to_string().contains("relay_token"));
    }
    let mut host = HostEndpoint::unbound(HostOptions::default()).unwrap();
    host.register_relay(
        &relay.addr,
        Some("s3cret-token".into()),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let (link, mut admitted) = auto_accept(host);
    // The guest needs no token: it rides on the host's registration.
    let guest = connect(&link, &me("bob"), &quick(), ConnectPaths::RelayOnly)
        .await
        .unwrap();
    let _host_side = next_peer(&mut admitted).await;
    assert_eq!(guest.path(), Path::Relayed);
    assert_eq!(relay.relay.metrics().refused_count(Refusal::Token), 2);
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let limits = RelayLimits {
        max_conns_per_ip: 2,
        ..RelayLimits::default()
    };
    let relay = start_relay(limits, vec![]).await;
    let (link, mut admitted) = relayed_host(&relay.addr).await;
    let _bob = connect(&link, &me("bob"), &quick(), ConnectPaths::RelayOnly)
        .await
        .unwrap();
    let _bob_host_side = next_peer(&mut admitted).await;
    let err = connect(&link, &me("carol"), &quick(), ConnectPaths::RelayOnly)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::Relay(RelayError::Busy { .. })),
        "{err:?}"
    );
    assert_eq!(relay.relay.metrics().refused_count(Refusal::PerAddress), 1);
}

/// An outer connection to the relay that speaks whatever the test says.
async fn raw_relay_connection(relay: &RelayAddr) -> (quinn::Endpoint, quinn::Connection) {
    let (config, _) =
        pinned_client_config(relay.fingerprint, RELAY_ALPN, outer_transport()).unwrap();
    let endpoint = quinn::Endpoint::client(SocketAddr::new(LOCALHOST, 0)).unwrap();
    let addr: SocketAddr = relay.addr.parse().unwrap();
    let conn = endpoint
        .connect_with(config, addr, "lshed-relay.invalid")
        .unwrap()
        .await
        .unwrap();
    (endpoint, conn)
}

#[tokio::test]
async fn garbage_and_oversize_frames_drop_only_that_client() {
    let relay = start_relay(RelayLimits::default(), vec![]).await;
    let (link, mut admitted) = relayed_host(&relay.addr).await;
    let mut guest = connect(&link, &me("bob"), &quick(), ConnectPaths::RelayOnly)
        .await
        .unwrap();
    let mut host_side = next_peer(&mut admitted).await;

    // A hello that does not decode.
    let (_e1, bad) = raw_relay_connection(&relay.addr).await;
    let (mut send, _recv) = bad.open_bi().await.unwrap();
    let mut frame = 12u32.to_be_bytes().to_vec();
    frame.extend_from_slice(&1u32.to_be_bytes());
    frame.extend_from_slice(&[0xff; 8]);
    send.write_all(&frame).await.unwrap();
    tokio::time::timeout(DEADLINE, bad.closed()).await.unwrap();

    // A frame announcing 1 GiB.
    let (_e2, huge) = raw_relay_connection(&relay.addr).await;
    let (mut send, _recv) = huge.open_bi().await.unwrap();
    send.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
    tokio::time::timeout(DEADLINE, huge.closed()).await.unwrap();

    // Datagrams before any hello, and raw UDP garbage at the relay's port.
    let (_e3, early) = raw_relay_connection(&relay.addr).await;
    let _ = early.send_datagram(bytes::Bytes::from_static(b"not yet"));
    let udp = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
    for n in [0usize, 1, 40, 1200, 1500] {
        let _ = udp.send_to(&vec![0xa5; n], relay.relay.local_addr());
    }

    // The session carried on throughout.
    guest.send(b"still here".to_vec()).await.unwrap();
    assert_eq!(recv(&mut host_side).await, b"still here");
    host_side.send(b"and here".to_vec()).await.unwrap();
    assert_eq!(recv(&mut guest).await, b"and here");
    assert_eq!(relay.relay.metrics().refused_count(Refusal::Malformed), 2);
}

#[tokio::test]
async fn the_rate_limit_slows_a_session_and_loses_nothing() {
    let limits = RelayLimits {
        rate_bytes_per_sec: 200_000,
        burst_bytes: 50_000,
        ..RelayLimits::default()
    };
    let relay = start_relay(limits, vec![]).await;
    let (link, mut admitted) = relayed_host(&relay.addr).await;
    let mut guest = connect(&link, &me("bob"), &quick(), ConnectPaths::RelayOnly)
        .await
        .unwrap();
    let host_side = next_peer(&mut admitted).await;
    let big: Vec<u8> = (0..400_000u32).map(|i| (i % 253) as u8).collect();
    host_side.send(big.clone()).await.unwrap();
    assert_eq!(
        recv(&mut guest).await,
        big,
        "QUIC resent what the relay dropped"
    );
    assert!(relay.relay.metrics().dropped_count(DropReason::RateLimited) > 0);
}

#[tokio::test]
async fn a_stuck_guest_does_not_slow_the_others() {
    let relay = start_relay(RelayLimits::default(), vec![]).await;
    let (link, mut admitted) = relayed_host(&relay.addr).await;
    // Stuck reaches the relay through a proxy the test can cut.
    let proxy = UdpProxy::start(relay.relay.local_addr()).await;
    let mut stuck_link = link.clone();
    stuck_link.relay = Some(RelayAddr {
        addr: proxy.addr.to_string(),
        fingerprint: relay.addr.fingerprint,
    });
    let _stuck = connect(&stuck_link, &me("stuck"), &quick(), ConnectPaths::RelayOnly)
        .await
        .unwrap();
    let stuck_host_side = next_peer(&mut admitted).await;
    let mut bob = connect(&link, &me("bob"), &quick(), ConnectPaths::RelayOnly)
        .await
        .unwrap();
    let mut bob_host_side = next_peer(&mut admitted).await;

    proxy.set_blackhole(true);
    // The host pours data at the stuck guest…
    let flood = tokio::spawn(async move {
        let chunk = vec![7u8; 64 * 1024];
        for _ in 0..64 {
            if stuck_host_side.send(chunk.clone()).await.is_err() {
                break;
            }
        }
        stuck_host_side
    });
    // …while bob and the host keep talking, promptly.
    for i in 0..50u32 {
        let msg = i.to_be_bytes().to_vec();
        bob.send(msg.clone()).await.unwrap();
        assert_eq!(recv(&mut bob_host_side).await, msg);
        bob_host_side.send(msg.clone()).await.unwrap();
        assert_eq!(recv(&mut bob).await, msg);
    }
    assert!(proxy.dropped() > 0, "the stuck guest's link was cut");
    flood.abort();
}

/// A relay stops mid-session: its guest learns at once, and why (not
/// after the idle timeout), whether its link ran over UDP or TCP.
async fn relay_restart_ends_the_session_clearly(udp: bool) {
    let relay = start_relay(RelayLimits::default(), vec![]).await;
    let (link, mut admitted) = if udp {
        relayed_host(&relay.addr).await
    } else {
        tcp_host(&relay.addr, None).await
    };
    let options = ConnectOptions {
        relay: RelayConnectOptions { udp, ..no_proxy() },
        ..quick()
    };
    let guest = connect(&link, &me("bob"), &options, ConnectPaths::RelayOnly)
        .await
        .unwrap();
    let _host_side = next_peer(&mut admitted).await;
    relay.relay.shutdown().await;
    let reason = tokio::time::timeout(DEADLINE, guest.closed())
        .await
        .expect("the guest learns at once, not after the idle timeout");
    assert!(matches!(reason, CloseReason::RelayLost(_)), "{reason:?}");
    assert!(
        reason.to_string().contains("relay is shutting down"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_relay_restart_ends_relayed_sessions_with_a_clear_message() {
    relay_restart_ends_the_session_clearly(true).await;
}

/// A host whose relay link runs over TCP only (UDP blocked), through
/// `proxy` if given.
async fn tcp_host(
    relay: &RelayAddr,
    proxy: Option<String>,
) -> (InviteLink, mpsc::Receiver<PeerConnection>) {
    let mut host = HostEndpoint::unbound(HostOptions::default()).unwrap();
    let options = RelayConnectOptions {
        udp: false,
        proxy,
        ..no_proxy()
    };
    let socket = host
        .register_relay_with(relay, None, &options)
        .await
        .unwrap();
    assert!(socket.is_tcp());
    auto_accept(host)
}

#[tokio::test]
async fn when_udp_is_blocked_the_tcp_fallback_carries_the_session() {
    let relay = start_relay(RelayLimits::default(), vec![]).await;
    // The host's UDP is blocked too: it registers over TCP.
    let (link, mut admitted) = tcp_host(&relay.addr, None).await;
    // The guest sees the relay at a port where UDP goes nowhere and TCP
    // gets through: it tries UDP, then falls back on its own.
    let blocked = UdpBlockedRelay::start(relay.relay.local_addr()).await;
    let mut guest_link = link.clone();
    guest_link.relay = Some(RelayAddr {
        addr: blocked.addr.to_string(),
        fingerprint: relay.addr.fingerprint,
    });
    let mut guest = connect(&guest_link, &me("bob"), &quick(), ConnectPaths::RelayOnly)
        .await
        .unwrap();
    let mut host_side = next_peer(&mut admitted).await;
    assert_eq!(guest.path(), Path::Relayed);
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 249) as u8).collect();
    host_side.send(big.clone()).await.unwrap();
    assert_eq!(recv(&mut guest).await, big);
    guest.send(b"over tcp".to_vec()).await.unwrap();
    assert_eq!(recv(&mut host_side).await, b"over tcp");
    assert_eq!(relay.relay.metrics().peers(), 2);
}

#[tokio::test]
async fn through_an_http_connect_proxy() {
    let relay = start_relay(RelayLimits::default(), vec![]).await;
    let proxy = ConnectProxy::start(false).await;
    let proxy_url = format!("http://{}", proxy.addr);
    let (link, mut admitted) = tcp_host(&relay.addr, Some(proxy_url.clone())).await;
    let options = ConnectOptions {
        relay: RelayConnectOptions {
            udp: false,
            proxy: Some(proxy_url),
            ..no_proxy()
        },
        ..quick()
    };
    let mut guest = connect(&link, &me("bob"), &options, ConnectPaths::Both)
        .await
        .unwrap();
    let host_side = next_peer(&mut admitted).await;
    host_side.send(b"via the proxy".to_vec()).await.unwrap();
    assert_eq!(recv(&mut guest).await, b"via the proxy");
    let targets = proxy.targets.lock().unwrap().clone();
    assert_eq!(
        targets,
        vec![relay.addr.addr.clone(), relay.addr.addr.clone()]
    );
}

#[tokio::test]
async fn a_proxy_that_refuses_is_named_in_the_error() {
    let relay = start_relay(RelayLimits::default(), vec![]).await;
    let (link, _admitted) = relayed_host(&relay.addr).await;
    let proxy = ConnectProxy::start(true).await;
    let text = refused_by_proxy(
        &link,
        RelayConnectOptions {
            udp: false,
            proxy: Some(format!("http://user:pw@{}", proxy.addr)),
            ..no_proxy()
        },
    )
    .await;
    assert!(
        !text.contains("pw"),
        "the proxy's password is not shown: {text}"
    );
}

#[tokio::test]
async fn a_relay_restart_ends_tcp_sessions_with_a_clear_message_too() {
    relay_restart_ends_the_session_clearly(false).await;
}

#[tokio::test]
async fn garbage_over_tcp_drops_only_that_client() {
    use tokio::io::AsyncWriteExt;
    let relay = start_relay(RelayLimits::default(), vec![]).await;
    let (link, mut admitted) = relayed_host(&relay.addr).await;
    let guest = connect(&link, &me("bob"), &quick(), ConnectPaths::RelayOnly)
        .await
        .unwrap();
    let mut host_side = next_peer(&mut admitted).await;
    // Not TLS at all.
    let mut raw = tokio::net::TcpStream::connect(relay.relay.local_addr())
        .await
        .unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(DEADLINE, tokio::io::AsyncReadExt::read(&mut raw, &mut buf)).await;
    guest.send(b"unbothered".to_vec()).await.unwrap();
    assert_eq!(recv(&mut host_side).await, b"unbothered");
}

#[tokio::test]
async fn a_proxy_refusal_is_reported_when_udp_is_silently_dropped() {
    let relay = start_relay(RelayLimits::default(), vec![]).await;
    let (mut link, _admitted) = relayed_host(&relay.addr).await;
    // UDP to this address goes nowhere (and never fails by itself).
    let black_hole = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
    link.relay = Some(RelayAddr {
        addr: black_hole.local_addr().unwrap().to_string(),
        fingerprint: relay.addr.fingerprint,
    });
    let proxy = ConnectProxy::start(true).await;
    refused_by_proxy(
        &link,
        RelayConnectOptions {
            timeout: Duration::from_secs(3),
            tcp_after: Duration::from_millis(200),
            proxy: Some(format!("http://{}", proxy.addr)),
            ..no_proxy()
        },
    )
    .await;
}

/// Joins `link` with `relay` options whose proxy refuses: the error names
/// the proxy and its 403. Returns the error's text.
async fn refused_by_proxy(link: &InviteLink, relay: RelayConnectOptions) -> String {
    let options = ConnectOptions { relay, ..quick() };
    let err = connect(link, &me("bob"), &options, ConnectPaths::RelayOnly)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("proxy") && text.contains("403"), "{text}");
    text
}
