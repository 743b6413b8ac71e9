//! A UDP proxy on loopback for network tests: forwards between one client
//! and a target, and can be told to drop everything (a stuck or cut link).
//! Included with `#[path]`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;

/// A running proxy; stops when dropped.
pub struct UdpProxy {
    /// Where clients send to.
    pub addr: SocketAddr,
    blackhole: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl UdpProxy {
    /// Forwards datagrams from whoever sends to `addr` to `target`, and
    /// `target`'s answers back to the last client.
    pub async fn start(target: SocketAddr) -> UdpProxy {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind front"));
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind back"));
        back.connect(target).await.expect("connect back");
        let addr = front.local_addr().expect("front addr");
        let blackhole = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let (hole, count) = (blackhole.clone(), dropped.clone());
        let task = tokio::spawn(async move {
            let mut client: Option<SocketAddr> = None;
            let mut a = vec![0u8; 65536];
            let mut b = vec![0u8; 65536];
            loop {
                tokio::select! {
                    r = front.recv_from(&mut a) => {
                        let Ok((n, from)) = r else { continue };
                        client = Some(from);
                        if hole.load(Ordering::SeqCst) {
                            count.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let _ = back.send(&a[..n]).await;
                    }
                    r = back.recv(&mut b) => {
                        let Ok(n) = r else { continue };
                        if hole.load(Ordering::SeqCst) {
                            count.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        if let Some(to) = client {
                            let _ = front.send_to(&b[..n], to).await;
                        }
                    }
                }
            }
        });
        UdpProxy {
            addr,
            blackhole,
            dropped,
            task,
        }
    }

    /// Drops every packet both ways from now on (`true`), or forwards again.
    pub fn set_blackhole(&self, on: bool) {
        self.blackhole.store(on, Ordering::SeqCst);
    }

    /// Packets dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
