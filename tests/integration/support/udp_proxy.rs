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

/// A UDP port that swallows everything, with a TCP forwarder to `target`
/// on the same port number: a relay seen from a network that blocks UDP.
pub struct UdpBlockedRelay {
    /// `127.0.0.1:port`.
    pub addr: SocketAddr,
    _udp: std::net::UdpSocket,
    task: tokio::task::JoinHandle<()>,
}

impl UdpBlockedRelay {
    /// Forwards TCP on a fresh port to `target`; UDP there goes nowhere.
    pub async fn start(target: SocketAddr) -> UdpBlockedRelay {
        for _ in 0..50 {
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
            let addr = udp.local_addr().expect("udp addr");
            let Ok(listener) = tokio::net::TcpListener::bind(addr).await else {
                continue;
            };
            let task = tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        if let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        }
                    });
                }
            });
            return UdpBlockedRelay {
                addr,
                _udp: udp,
                task,
            };
        }
        panic!("no port free for both UDP and TCP");
    }
}

impl Drop for UdpBlockedRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A minimal HTTP CONNECT proxy on loopback; records the targets asked for.
/// With `refuse`, it answers 403 to everything.
pub struct ConnectProxy {
    /// `127.0.0.1:port`.
    pub addr: SocketAddr,
    /// Every CONNECT target, in order.
    pub targets: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectProxy {
    /// Starts the proxy.
    pub async fn start(refuse: bool) -> ConnectProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let targets = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = targets.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if client.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let target = head
                        .lines()
                        .next()
                        .and_then(|l| l.strip_prefix("CONNECT "))
                        .and_then(|l| l.split_whitespace().next())
                        .unwrap_or_default()
                        .to_owned();
                    seen.lock().unwrap().push(target.clone());
                    if refuse {
                        let _ = client
                            .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                            .await;
                        return;
                    }
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    if client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .is_ok()
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        ConnectProxy {
            addr,
            targets,
            task,
        }
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
