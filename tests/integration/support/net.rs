//! Helpers shared by the `net` tests. Included with `#[path]`.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

use std::time::Duration;

use lshed::net::{
    ConnectOptions, GuestProfile, HostEndpoint, InviteLink, PeerConnection, RelayConnectOptions,
};
use tokio::sync::mpsc;

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Accepts every guest and hands the connections to the test.
pub fn auto_accept(mut host: HostEndpoint) -> (InviteLink, mpsc::Receiver<PeerConnection>) {
    let link = host.invite_link();
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        while let Some(pending) = host.accept().await {
            if let Ok(peer) = pending.accept().await {
                if tx.send(peer).await.is_err() {
                    break;
                }
            }
        }
    });
    (link, rx)
}

/// A guest called `name`.
pub fn me(name: &str) -> GuestProfile {
    GuestProfile {
        name: name.into(),
        color: "#e5c07b".into(),
    }
}

/// Connect options with every wait `secs` long, and no proxy from the
/// machine's environment.
pub fn quick(secs: u64) -> ConnectOptions {
    let wait = Duration::from_secs(secs);
    ConnectOptions {
        connect_timeout: wait,
        handshake_timeout: wait,
        approval_timeout: wait,
        relay: RelayConnectOptions {
            proxy: None,
            ..RelayConnectOptions::default()
        },
        ..ConnectOptions::default()
    }
}
