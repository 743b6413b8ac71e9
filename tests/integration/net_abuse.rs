//! Misbehaving peers are dropped and the host keeps serving others.
//! The attacker here is a raw quinn client on loopback that speaks as much
//! of the protocol as each test needs.

use std::net::Ipv4Addr;
use std::time::Duration;

use lshed::net::frame::{read_frame, write_frame};
use lshed::net::handshake::{
    connection_proof, decode_control, encode_control, GuestToHost, Hello, HostToGuest,
};
use lshed::net::limits::{MAX_CONTROL_FRAME_LEN, PROTOCOL_VERSION, SERVER_NAME};
use lshed::net::tls::client_config;
use lshed::net::{
    connect_direct, CloseCode, CloseReason, ConnectOptions, GuestProfile, HostEndpoint,
    HostOptions, InviteLink, PeerConnection,
};
use tokio::sync::mpsc;

use crate::support::net as support;
use support::{auto_accept, LOCALHOST};

/// A QUIC connection with the pinned certificate, and nothing else.
async fn raw_connect(link: &InviteLink) -> (quinn::Endpoint, quinn::Connection) {
    let (config, _) = client_config(link.fingerprint).unwrap();
    let endpoint = quinn::Endpoint::client((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
    let conn = endpoint
        .connect_with(config, link.direct[0], SERVER_NAME)
        .unwrap()
        .await
        .unwrap();
    (endpoint, conn)
}

/// Waits for the host to close `conn`; returns its application code.
async fn closed_code(conn: &quinn::Connection) -> u64 {
    match tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("host did not drop the bad peer")
    {
        quinn::ConnectionError::ApplicationClosed(close) => close.error_code.into_inner(),
        other => panic!("unexpected close: {other:?}"),
    }
}

/// A well-behaved guest still gets in and can talk.
async fn good_guest_still_served(link: &InviteLink, guests: &mut mpsc::Receiver<PeerConnection>) {
    let me = GuestProfile {
        name: "ada".into(),
        color: "red".into(),
    };
    let g = connect_direct(link, &me, &ConnectOptions::default())
        .await
        .unwrap();
    let mut h = guests.recv().await.unwrap();
    g.send(b"ok".to_vec()).await.unwrap();
    assert_eq!(h.recv().await.unwrap(), b"ok");
}

#[tokio::test]
async fn garbage_hello_is_dropped() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (link, mut guests) = auto_accept(host);
    let (_ep, conn) = raw_connect(&link).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    let mut garbage = PROTOCOL_VERSION.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xff; 40]);
    write_frame(&mut send, &garbage, MAX_CONTROL_FRAME_LEN)
        .await
        .unwrap();
    assert_eq!(
        closed_code(&conn).await,
        CloseCode::ProtocolViolation.to_code() as u64
    );
    good_guest_still_served(&link, &mut guests).await;
}

#[tokio::test]
async fn oversize_hello_length_is_dropped() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (link, mut guests) = auto_accept(host);
    let (_ep, conn) = raw_connect(&link).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert_eq!(
        closed_code(&conn).await,
        CloseCode::ProtocolViolation.to_code() as u64
    );
    good_guest_still_served(&link, &mut guests).await;
}

#[tokio::test]
async fn silent_client_is_dropped_after_the_handshake_timeout() {
    let opts = HostOptions {
        handshake_timeout: Duration::from_millis(300),
        ..HostOptions::default()
    };
    let host = HostEndpoint::bind_with(LOCALHOST, opts).unwrap();
    let (link, mut guests) = auto_accept(host);
    let (_ep, conn) = raw_connect(&link).await;
    // Opens the stream but never sends a Hello.
    let (_send, _recv) = conn.open_bi().await.unwrap();
    assert_eq!(
        closed_code(&conn).await,
        CloseCode::ProtocolViolation.to_code() as u64
    );
    good_guest_still_served(&link, &mut guests).await;
}

/// Does the handshake by hand, returning the streams after `Welcome`.
async fn raw_join(
    link: &InviteLink,
) -> (
    quinn::Endpoint,
    quinn::Connection,
    quinn::SendStream,
    quinn::RecvStream,
) {
    let (ep, conn) = raw_connect(link).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let proof = connection_proof(&conn, &link.secret, &link.session_id).unwrap();
    let hello = GuestToHost::Hello(Hello {
        session_id: link.session_id,
        proof,
        name: "eve".into(),
        color: "black".into(),
    });
    let frame = encode_control(PROTOCOL_VERSION, &hello).unwrap();
    write_frame(&mut send, &frame, MAX_CONTROL_FRAME_LEN)
        .await
        .unwrap();
    let reply = read_frame(&mut recv, MAX_CONTROL_FRAME_LEN)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        decode_control::<HostToGuest>(&reply).unwrap(),
        HostToGuest::Welcome { .. }
    ));
    (ep, conn, send, recv)
}

#[tokio::test]
async fn a_proof_from_another_connection_is_refused() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (link, mut guests) = auto_accept(host);
    // Proof computed on connection A, replayed on connection B.
    let (_ea, conn_a) = raw_connect(&link).await;
    let replayed = connection_proof(&conn_a, &link.secret, &link.session_id).unwrap();
    let (_eb, conn_b) = raw_connect(&link).await;
    let (mut send, mut recv) = conn_b.open_bi().await.unwrap();
    let hello = GuestToHost::Hello(Hello {
        session_id: link.session_id,
        proof: replayed,
        name: "eve".into(),
        color: "black".into(),
    });
    write_frame(
        &mut send,
        &encode_control(PROTOCOL_VERSION, &hello).unwrap(),
        MAX_CONTROL_FRAME_LEN,
    )
    .await
    .unwrap();
    let reply = read_frame(&mut recv, MAX_CONTROL_FRAME_LEN)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        decode_control::<HostToGuest>(&reply).unwrap(),
        HostToGuest::Refused(lshed::net::RefusalReason::BadSecret)
    );
    good_guest_still_served(&link, &mut guests).await;
}

#[tokio::test]
async fn oversize_message_frame_drops_only_that_guest() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (link, mut guests) = auto_accept(host);

    // A good guest first, to check it survives.
    let me = GuestProfile {
        name: "ada".into(),
        color: "red".into(),
    };
    let mut good = connect_direct(&link, &me, &ConnectOptions::default())
        .await
        .unwrap();
    let mut good_h = guests.recv().await.unwrap();

    let (_ep, conn, mut send, _recv) = raw_join(&link).await;
    let mut bad_h = guests.recv().await.unwrap();
    // One fine message, then a length prefix of 4 GiB - 1.
    write_frame(&mut send, b"fine", 64).await.unwrap();
    send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert_eq!(bad_h.recv().await.unwrap(), b"fine");
    assert!(bad_h.recv().await.is_none());
    let reason = bad_h.close_reason().unwrap();
    match &reason {
        CloseReason::ProtocolViolation(detail) => assert!(detail.contains("exceeds"), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        closed_code(&conn).await,
        CloseCode::ProtocolViolation.to_code() as u64
    );

    good.send(b"still fine".to_vec()).await.unwrap();
    assert_eq!(good_h.recv().await.unwrap(), b"still fine");
    good_h.send(b"yes".to_vec()).await.unwrap();
    assert_eq!(good.recv().await.unwrap(), b"yes");
    good_guest_still_served(&link, &mut guests).await;
}

#[tokio::test]
async fn frame_cut_off_by_stream_end_drops_the_guest() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (link, mut guests) = auto_accept(host);
    let (_ep, conn, mut send, _recv) = raw_join(&link).await;
    let mut bad_h = guests.recv().await.unwrap();
    send.write_all(&[0, 0, 0, 10, 1, 2, 3]).await.unwrap();
    send.finish().unwrap();
    assert!(bad_h.recv().await.is_none());
    assert!(matches!(
        bad_h.close_reason(),
        Some(CloseReason::ProtocolViolation(_))
    ));
    assert_eq!(
        closed_code(&conn).await,
        CloseCode::ProtocolViolation.to_code() as u64
    );
    good_guest_still_served(&link, &mut guests).await;
}

#[tokio::test]
async fn session_layer_can_drop_a_peer_for_garbage() {
    let host = HostEndpoint::bind(LOCALHOST).unwrap();
    let (link, mut guests) = auto_accept(host);
    let (_ep, conn, mut send, _recv) = raw_join(&link).await;
    let mut bad_h = guests.recv().await.unwrap();
    write_frame(&mut send, b"\xde\xad\xbe\xef", 64)
        .await
        .unwrap();
    let msg = bad_h.recv().await.unwrap();
    // The session layer fails to decode it and drops the peer.
    assert_eq!(msg, b"\xde\xad\xbe\xef");
    bad_h.close_now(CloseCode::ProtocolViolation, "undecodable message");
    assert_eq!(
        closed_code(&conn).await,
        CloseCode::ProtocolViolation.to_code() as u64
    );
    assert!(bad_h.recv().await.is_none());
    good_guest_still_served(&link, &mut guests).await;
}
