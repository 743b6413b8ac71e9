//! Joining over loopback: ports, the happy path, every refusal, timeouts,
//! IPv6, and closing. Network traffic goes to 127.0.0.1 / ::1 only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use lshed::net::limits::{DIRECT_PORTS, PROTOCOL_VERSION};
use lshed::net::{
    connect_direct, CloseCode, CloseReason, ConnectError, ConnectOptions, HostEndpoint, HostError,
    HostOptions, InviteLink, Path, PeerConnection,
};
use tokio::sync::mpsc;

use crate::support::net as support;
use support::{auto_accept, me, LOCALHOST};

fn quick() -> ConnectOptions {
    support::quick(3)
}

async fn join_as(link: &InviteLink, name: &str) -> Result<PeerConnection, ConnectError> {
    connect_direct(link, &me(name), &quick()).await
}

#[tokio::test]
async fn host_binds_in_range_and_a_second_host_takes_another_port() {
    let a = HostEndpoint::bind(LOCALHOST).unwrap();
    let b = HostEndpoint::bind(LOCALHOST).unwrap();
    assert!(DIRECT_PORTS.contains(&a.local_addr().port()));
    assert!(DIRECT_PORTS.contains(&b.local_addr().port()));
    assert_ne!(a.local_addr().port(), b.local_addr().port());
    assert_eq!(a.local_addrs(), vec![a.local_addr()]);
    assert_ne!(a.fingerprint(), b.fingerprint());
    let link = a.invite_link();
    assert_eq!(link.direct, vec![a.local_addr()]);
    assert_eq!(link.to_string().parse::<InviteLink>().unwrap(), link);
}

#[tokio::test]
async fn all_ports_taken_is_a_clear_error() {
    // A private range so this does not fight other tests for 5990–5999.
    let opts = HostOptions {
        ports: 47990..=47991,
        ..HostOptions::default()
    };
    let _a = HostEndpoint::bind_with(LOCALHOST, opts.clone()).unwrap();
    let _b = HostEndpoint::bind_with(LOCALHOST, opts.clone()).unwrap();
    let err = HostEndpoint::bind_with(LOCALHOST, opts).unwrap_err();
    assert!(matches!(
        err,
        HostError::AllPortsTaken {
            first: 47990,
            last: 47991,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "all UDP ports 47990–47991 on 127.0.0.1 are in use (is another lshed sharing?)"
    );
}

#[tokio::test]
async fn guests_join_and_messages_flow_both_ways() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (link, mut guests) = auto_accept(host);

    let started = Instant::now();
    let mut g1 = join_as(&link, "ada").await.unwrap();
    let join_time = started.elapsed();
    let mut h1 = guests.recv().await.unwrap();
    assert_eq!(g1.path(), Path::Direct);
    assert_eq!(g1.info().participant_id, 1);
    assert_eq!(h1.info().participant_id, 1);
    assert_eq!(h1.info().name, "ada");
    assert_eq!(h1.info().color, "#e5c07b");
    eprintln!("join (TLS + handshake) on loopback took {join_time:?}");

    g1.send(b"hello host".to_vec()).await.unwrap();
    assert_eq!(h1.recv().await.unwrap(), b"hello host");
    h1.send(b"hello guest".to_vec()).await.unwrap();
    assert_eq!(g1.recv().await.unwrap(), b"hello guest");

    // Order is kept, empty and large messages pass.
    for i in 0..100u32 {
        g1.send(i.to_be_bytes().to_vec()).await.unwrap();
    }
    g1.send(Vec::new()).await.unwrap();
    g1.send(vec![7u8; 3 * 1024 * 1024]).await.unwrap();
    for i in 0..100u32 {
        assert_eq!(h1.recv().await.unwrap(), i.to_be_bytes());
    }
    assert_eq!(h1.recv().await.unwrap(), b"");
    assert_eq!(h1.recv().await.unwrap().len(), 3 * 1024 * 1024);

    // A second guest, alongside the first.
    let mut g2 = join_as(&link, "\x1b[2Jbob").await.unwrap();
    let mut h2 = guests.recv().await.unwrap();
    assert_eq!(h2.info().participant_id, 2);
    assert_eq!(h2.info().name, "[2Jbob", "control characters are stripped");
    h2.send(b"to bob".to_vec()).await.unwrap();
    h1.send(b"to ada".to_vec()).await.unwrap();
    assert_eq!(g2.recv().await.unwrap(), b"to bob");
    assert_eq!(g1.recv().await.unwrap(), b"to ada");
    g2.send(b"from bob".to_vec()).await.unwrap();
    assert_eq!(h2.recv().await.unwrap(), b"from bob");
}

#[tokio::test]
async fn graceful_close_delivers_everything_then_the_reason() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (link, mut guests) = auto_accept(host);
    let g = join_as(&link, "ada").await.unwrap();
    let mut h = guests.recv().await.unwrap();
    for i in 0..200u32 {
        g.send(i.to_be_bytes().to_vec()).await.unwrap();
    }
    g.close(CloseCode::Left).await;
    for i in 0..200u32 {
        assert_eq!(h.recv().await.unwrap(), i.to_be_bytes());
    }
    assert!(h.recv().await.is_none());
    assert_eq!(h.close_reason(), Some(CloseReason::Remote(CloseCode::Left)));
}

#[tokio::test]
async fn guests_learn_that_the_session_ended() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (link, mut guests) = auto_accept(host);
    let mut g = join_as(&link, "ada").await.unwrap();
    let h = guests.recv().await.unwrap();
    h.send(b"bye".to_vec()).await.unwrap();
    h.close(CloseCode::SessionEnded).await;
    assert_eq!(g.recv().await.unwrap(), b"bye");
    assert!(g.recv().await.is_none());
    let reason = g.close_reason().unwrap();
    assert_eq!(reason, CloseReason::Remote(CloseCode::SessionEnded));
    assert_eq!(reason.to_string(), "the host ended the session");
}

#[tokio::test]
async fn dropping_the_host_endpoint_ends_the_session() {
    let mut host = HostEndpoint::bind(LOCALHOST).unwrap();
    let link = host.invite_link();
    let (guest, accepted) = tokio::join!(join_as(&link, "ada"), async {
        host.accept().await.unwrap().accept().await.unwrap()
    });
    let mut guest = guest.unwrap();
    drop(accepted);
    drop(host);
    assert!(guest.recv().await.is_none());
    assert!(matches!(
        guest.close_reason(),
        Some(CloseReason::Remote(
            CloseCode::Left | CloseCode::SessionEnded
        ))
    ));
}

#[tokio::test]
async fn end_session_closes_every_guest_and_refuses_late_joiners() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let link = host.invite_link();
    let (host_tx, mut host_rx) = mpsc::channel(1);
    let (end_tx, mut end_rx) = mpsc::channel::<()>(1);
    tokio::spawn(async move {
        let mut host = host;
        let mut peers = Vec::new();
        loop {
            tokio::select! {
                Some(p) = host.accept() => peers.push(p.accept().await.unwrap()),
                _ = end_rx.recv() => break,
            }
        }
        host.end_session();
        host_tx.send(()).await.unwrap();
        // Keep the endpoint (and the peers) alive so late joiners hear "ended".
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(peers);
    });
    let mut a = join_as(&link, "ada").await.unwrap();
    let mut b = join_as(&link, "bob").await.unwrap();
    end_tx.send(()).await.unwrap();
    host_rx.recv().await.unwrap();
    for g in [&mut a, &mut b] {
        assert!(g.recv().await.is_none());
        assert_eq!(
            g.close_reason(),
            Some(CloseReason::Remote(CloseCode::SessionEnded))
        );
    }
    let err = join_as(&link, "late").await.unwrap_err();
    assert!(matches!(err, ConnectError::SessionEnded), "{err:?}");
}

#[tokio::test]
async fn unspecified_bind_lists_usable_addresses() {
    let opts = HostOptions {
        ports: 47995..=47999,
        ..HostOptions::default()
    };
    let host = HostEndpoint::bind_with(IpAddr::V4(Ipv4Addr::UNSPECIFIED), opts).unwrap();
    let port = host.local_addr().port();
    let addrs = host.local_addrs();
    assert!(
        addrs.contains(&SocketAddr::new(LOCALHOST, port)),
        "{addrs:?}"
    );
    assert!(addrs
        .iter()
        .all(|a| !a.ip().is_unspecified() && a.port() == port));
    eprintln!("unspecified bind advertises {addrs:?}");
}

#[test]
fn binding_outside_a_runtime_is_an_error_not_a_panic() {
    assert!(matches!(
        HostEndpoint::bind(LOCALHOST),
        Err(HostError::NoRuntime)
    ));
}

#[tokio::test]
async fn long_names_are_cut_not_refused() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (link, mut guests) = auto_accept(host);
    let g = join_as(&link, &"n".repeat(10_000)).await.unwrap();
    let h = guests.recv().await.unwrap();
    assert_eq!(h.info().name.len(), lshed::net::limits::MAX_NAME_CHARS);
    assert_eq!(g.info().name, h.info().name);
}

#[tokio::test]
async fn wrong_secret_is_refused() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (mut link, _guests) = auto_accept(host);
    link.secret[0] ^= 1;
    let err = join_as(&link, "eve").await.unwrap_err();
    assert!(matches!(err, ConnectError::BadSecret), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the host refused the link's secret; copy the whole link again"
    );
}

#[tokio::test]
async fn wrong_fingerprint_is_a_certificate_mismatch() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (mut link, _guests) = auto_accept(host);
    link.fingerprint[31] ^= 0x80;
    let err = join_as(&link, "ada").await.unwrap_err();
    assert!(matches!(err, ConnectError::CertificateMismatch), "{err:?}");
}

#[tokio::test]
async fn another_protocol_version_gets_the_hosts_version() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (link, _guests) = auto_accept(host);
    let opts = ConnectOptions {
        protocol_version: PROTOCOL_VERSION + 1,
        ..quick()
    };
    let err = connect_direct(&link, &me("ada"), &opts).await.unwrap_err();
    match err {
        ConnectError::VersionMismatch {
            host_version,
            our_version,
        } => {
            assert_eq!(host_version, PROTOCOL_VERSION);
            assert_eq!(our_version, PROTOCOL_VERSION + 1);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unknown_session_is_reported_as_ended() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (mut link, _guests) = auto_accept(host);
    link.session_id = [0x55; 16];
    let err = join_as(&link, "ada").await.unwrap_err();
    assert!(matches!(err, ConnectError::SessionEnded), "{err:?}");
    assert_eq!(err.to_string(), "this session has ended");
}

#[tokio::test]
async fn ended_session_refuses_late_joiners() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    host.end_session();
    let (link, _guests) = auto_accept(host);
    let err = join_as(&link, "ada").await.unwrap_err();
    assert!(matches!(err, ConnectError::SessionEnded), "{err:?}");
}

#[tokio::test]
async fn host_can_reject_and_then_accept() {
    let mut host = HostEndpoint::bind(LOCALHOST).unwrap();
    let link = host.invite_link();
    let (guest, ()) = tokio::join!(join_as(&link, "mallory"), async {
        let pending = host.accept().await.unwrap();
        assert_eq!(pending.name(), "mallory");
        assert_eq!(pending.path(), Path::Direct);
        assert!(pending.remote_addr().ip().is_loopback());
        pending.reject();
    });
    let err = guest.unwrap_err();
    assert!(matches!(err, ConnectError::Rejected), "{err:?}");
    assert_eq!(err.to_string(), "the host declined your request to join");

    // Dropping a pending guest rejects it too.
    let (guest, ()) = tokio::join!(join_as(&link, "trudy"), async {
        drop(host.accept().await.unwrap());
    });
    assert!(matches!(guest.unwrap_err(), ConnectError::Rejected));

    // The rejected guests freed their slots.
    assert_eq!(host.guest_count(), 0);
    let (guest, accepted) = tokio::join!(join_as(&link, "ada"), async {
        host.accept().await.unwrap().accept().await
    });
    let _guest = guest.unwrap();
    let accepted = accepted.unwrap();
    assert_eq!(host.guest_count(), 1);
    drop(accepted);
    assert_eq!(host.guest_count(), 0, "a dropped connection frees its slot");
}

#[tokio::test]
async fn undecided_guest_times_out() {
    let opts = HostOptions {
        approval_timeout: Duration::from_millis(300),
        ..HostOptions::default()
    };
    let mut host = HostEndpoint::bind_with(LOCALHOST, opts).unwrap();
    let link = host.invite_link();
    let (guest, pending) = tokio::join!(join_as(&link, "ada"), async {
        host.accept().await.unwrap()
    });
    assert!(matches!(guest.unwrap_err(), ConnectError::ApprovalTimedOut));
    assert!(pending.accept().await.is_err(), "too late to accept");
}

#[tokio::test]
async fn a_guest_that_gave_up_cannot_be_accepted() {
    let mut host = HostEndpoint::bind(LOCALHOST).unwrap();
    let link = host.invite_link();
    let impatient = ConnectOptions {
        approval_timeout: Duration::from_millis(200),
        handshake_timeout: Duration::from_millis(100),
        ..quick()
    };
    let ada = me("ada");
    let (guest, pending) = tokio::join!(connect_direct(&link, &ada, &impatient), async {
        host.accept().await.unwrap()
    });
    assert!(matches!(guest.unwrap_err(), ConnectError::HandshakeTimeout));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = pending.accept().await.unwrap_err();
    assert!(
        matches!(err, lshed::net::AcceptError::GuestGone(_)),
        "{err:?}"
    );
    assert_eq!(host.guest_count(), 0);
}

#[tokio::test]
async fn a_full_session_refuses_more_guests() {
    let opts = HostOptions {
        max_guests: 1,
        ..HostOptions::default()
    };
    let host = HostEndpoint::bind_with(LOCALHOST, opts).unwrap();
    let (link, mut guests) = auto_accept(host);
    let _g1 = join_as(&link, "ada").await.unwrap();
    let h1 = guests.recv().await.unwrap();
    let err = join_as(&link, "bob").await.unwrap_err();
    assert!(matches!(err, ConnectError::Full), "{err:?}");
    // When ada's connection is dropped, her slot frees.
    drop(h1);
    let _g2 = join_as(&link, "bob").await.unwrap();
}

#[tokio::test]
async fn nothing_listening_is_unreachable_within_the_timeout() {
    // A socket that receives and never answers: the host "does not exist".
    let silent = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let mut link = host.invite_link();
    link.direct = vec![silent.local_addr().unwrap()];
    let opts = ConnectOptions {
        connect_timeout: Duration::from_millis(300),
        ..quick()
    };
    let started = Instant::now();
    let err = connect_direct(&link, &me("ada"), &opts).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, ConnectError::Unreachable { tried: 1, .. }),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_dead_address_beside_a_live_one_does_not_matter() {
    let silent = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (mut link, _guests) = auto_accept(host);
    link.direct.insert(0, silent.local_addr().unwrap());
    let started = Instant::now();
    join_as(&link, "ada").await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn ipv6_loopback_works() {
    let ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
    if std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_err() {
        eprintln!("SKIPPED ipv6_loopback_works: ::1 is not available on this machine");
        return;
    }
    let host = HostEndpoint::bind(ip).unwrap();
    assert!(host.local_addr().is_ipv6());
    let (link, mut guests) = auto_accept(host);
    let mut g = join_as(&link, "ada").await.unwrap();
    let mut h = guests.recv().await.unwrap();
    assert!(h.info().remote_addr.is_ipv6());
    g.send(b"v6".to_vec()).await.unwrap();
    assert_eq!(h.recv().await.unwrap(), b"v6");
    h.send(b"six".to_vec()).await.unwrap();
    assert_eq!(g.recv().await.unwrap(), b"six");
}

#[tokio::test]
async fn extra_listeners_and_caller_built_endpoints_share_the_session() {
    // The slot the relay will use: a second listener built from the host's
    // server config (here a plain ::1 socket), and a guest joining over an
    // endpoint it built itself.
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let mut host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (second, guest_ep) = match (
        quinn::Endpoint::server(host.server_config(), SocketAddr::new(v6, 0)),
        quinn::Endpoint::client(SocketAddr::new(v6, 0)),
    ) {
        (Ok(s), Ok(c)) => (s, c),
        _ => {
            eprintln!("SKIPPED extra_listeners…: ::1 is not available on this machine");
            return;
        }
    };
    let second_addr = second.local_addr().unwrap();
    assert!(host.add_listener(second, Path::Relayed));
    let link = host.invite_link();
    let ada = me("ada");
    let opts = quick();
    let (guest, accepted) = tokio::join!(
        lshed::net::connect_over(guest_ep, second_addr, Path::Relayed, &link, &ada, &opts),
        async {
            let pending = host.accept().await.unwrap();
            assert_eq!(pending.path(), Path::Relayed);
            pending.accept().await.unwrap()
        }
    );
    let mut guest = guest.unwrap();
    let mut accepted = accepted;
    assert_eq!(guest.path(), Path::Relayed);
    assert_eq!(accepted.path(), Path::Relayed);
    guest
        .send(b"via the second listener".to_vec())
        .await
        .unwrap();
    assert_eq!(accepted.recv().await.unwrap(), b"via the second listener");
    accepted.send(b"back".to_vec()).await.unwrap();
    assert_eq!(guest.recv().await.unwrap(), b"back");
    // The direct listener still works, and ids keep counting across listeners.
    let (g2, h2) = tokio::join!(join_as(&link, "bob"), async {
        host.accept().await.unwrap().accept().await.unwrap()
    });
    assert_eq!(g2.unwrap().info().participant_id, 2);
    assert_eq!(h2.path(), Path::Direct);
}

#[tokio::test]
async fn oversize_send_is_refused_locally_and_the_connection_stays() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (link, mut guests) = auto_accept(host);
    let g = join_as(&link, "ada").await.unwrap();
    let mut h = guests.recv().await.unwrap();
    let big = vec![0u8; lshed::net::limits::MAX_FRAME_LEN + 1];
    assert!(matches!(
        g.send(big).await,
        Err(lshed::net::SendError::TooLarge { .. })
    ));
    g.send(b"still here".to_vec()).await.unwrap();
    assert_eq!(h.recv().await.unwrap(), b"still here");
}
