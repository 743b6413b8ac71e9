//! Helpers shared by the `net` tests. Included with `#[path]`.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

use lshed::net::{HostEndpoint, InviteLink, PeerConnection};
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
