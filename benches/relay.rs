//! The relay's figures, on loopback, with a real `lshed relay` process (so
//! its CPU and memory can be read from /proc):
//!
//! - `relay_join`: a full join through the relay, over UDP and over the TCP
//!   fallback (criterion);
//! - `relay_forwarding`: one busy session pushing 1 MiB messages through
//!   the relay: MB/s, and the relay's CPU per MB (printed);
//! - `relay_many_sessions`: 100 sessions of 1 host + 3 guests, everyone
//!   sending a keystroke-sized message 10 times a second, for
//!   `LSHED_BENCH_RELAY_SECS` seconds (default 5; the figures in
//!   benches/README.md are for 30): the relay's CPU and RSS, and its memory
//!   per idle session (printed).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use lshed::net::{
    connect, ConnectOptions, ConnectPaths, GuestProfile, HostEndpoint, HostOptions, InviteLink,
    PeerConnection, RelayAddr, RelayConnectOptions,
};
use tokio::sync::mpsc;

/// A real relay process, unlimited rate, and its PID for /proc.
struct RelayProc {
    child: Child,
    addr: RelayAddr,
    _state: tempfile::TempDir,
}

impl RelayProc {
    fn start() -> RelayProc {
        let state = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_lshed"))
            .args([
                "relay",
                "--listen",
                "127.0.0.1:0",
                "--rate",
                "4000000000",
                "--burst",
                "4000000000",
                "--max-conns-per-ip",
                "10000",
                "--max-guests",
                "100000",
                "--state-dir",
            ])
            .arg(state.path())
            .env("LSHED_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn relay");
        let stdout = child.stdout.take().expect("stdout");
        let mut addr = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(v) = line.strip_prefix("relay = \"") {
                addr = v.trim_end_matches('"').parse().ok();
                break;
            }
        }
        RelayProc {
            child,
            addr: addr.expect("relay line"),
            _state: state,
        }
    }

    /// utime + stime in seconds.
    fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)) as f64 / 100.0
    }

    /// Resident memory in MiB.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn me(name: &str) -> GuestProfile {
    GuestProfile {
        name: name.into(),
        color: "#fff".into(),
    }
}

fn options(udp: bool) -> ConnectOptions {
    ConnectOptions {
        relay: RelayConnectOptions {
            udp,
            proxy: None,
            ..RelayConnectOptions::default()
        },
        ..ConnectOptions::default()
    }
}

/// A relay-only host that admits everyone; its guests' connections come
/// out of the receiver.
async fn host(relay: &RelayAddr) -> (InviteLink, mpsc::Receiver<PeerConnection>) {
    let mut host = HostEndpoint::unbound(HostOptions {
        max_guests: 100_000,
        ..HostOptions::default()
    })
    .expect("host");
    host.register_relay(relay, None, Duration::from_secs(10))
        .await
        .expect("register");
    let link = host.invite_link();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(pending) = host.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(peer) = pending.accept().await {
                    let _ = tx.send(peer).await;
                }
            });
        }
    });
    (link, rx)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn relay_join(c: &mut Criterion) {
    let rt = runtime();
    let relay = RelayProc::start();
    let (link, mut admitted) = rt.block_on(host(&relay.addr));
    // The host keeps each guest's connection until the guest closes it
    // (dropping it at once could close it before the guest has read its
    // welcome).
    rt.spawn(async move {
        while let Some(peer) = admitted.recv().await {
            tokio::spawn(async move {
                peer.closed().await;
            });
        }
    });
    let mut group = c.benchmark_group("relay_join");
    for (name, udp) in [("udp", true), ("tcp_fallback", false)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let g = connect(&link, &me("j"), &options(udp), ConnectPaths::RelayOnly)
                            .await
                            .expect("join");
                        drop(g);
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

fn relay_forwarding(_c: &mut Criterion) {
    let rt = runtime();
    let relay = RelayProc::start();
    for (name, udp) in [("udp", true), ("tcp", false)] {
        let (mb, secs, cpu) = rt.block_on(async {
            let (link, mut admitted) = host(&relay.addr).await;
            let mut guest = connect(&link, &me("g"), &options(udp), ConnectPaths::RelayOnly)
                .await
                .expect("join");
            let host_side = admitted.recv().await.expect("guest");
            let chunk = vec![0x5au8; 1024 * 1024];
            let total = 64;
            let cpu0 = relay.cpu_secs();
            let start = Instant::now();
            let sender = tokio::spawn(async move {
                for _ in 0..total {
                    host_side.send(chunk.clone()).await.expect("send");
                }
                host_side
            });
            for _ in 0..total {
                guest.recv().await.expect("recv");
            }
            let secs = start.elapsed().as_secs_f64();
            let cpu = relay.cpu_secs() - cpu0;
            let _ = sender.await;
            (total as f64 * 1.048_576, secs, cpu)
        });
        println!(
            "relay forwarding ({name}): {:.0} MB in {secs:.2} s = {:.1} MB/s; relay CPU {:.2} s = {:.1} ms per MB",
            mb,
            mb / secs,
            cpu,
            cpu * 1000.0 / mb
        );
    }
}

fn relay_many_sessions(_c: &mut Criterion) {
    let secs: u64 = std::env::var("LSHED_BENCH_RELAY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rt = runtime();
    let relay = RelayProc::start();
    std::thread::sleep(Duration::from_millis(200));
    let rss0 = relay.rss_mib();
    const SESSIONS: usize = 100;
    const GUESTS: usize = 3;
    let sessions = rt.block_on(async {
        let mut sessions = Vec::new();
        for _ in 0..SESSIONS {
            let (link, mut admitted) = host(&relay.addr).await;
            let mut guests = Vec::new();
            let mut host_sides = Vec::new();
            for g in 0..GUESTS {
                guests.push(
                    connect(
                        &link,
                        &me(&format!("g{g}")),
                        &options(true),
                        ConnectPaths::RelayOnly,
                    )
                    .await
                    .expect("join"),
                );
                host_sides.push(admitted.recv().await.expect("admitted"));
            }
            sessions.push((host_sides, guests));
        }
        sessions
    });
    std::thread::sleep(Duration::from_secs(1));
    let rss_idle = relay.rss_mib();
    let cpu0 = relay.cpu_secs();
    let received = rt.block_on(async {
        let stop = tokio::time::Instant::now() + Duration::from_secs(secs);
        let mut tasks = tokio::task::JoinSet::new();
        for (host_sides, guests) in sessions {
            // Each guest types: a keystroke-sized change 10 times a second…
            for mut g in guests {
                tasks.spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_millis(100));
                    let mut got = 0u64;
                    loop {
                        tokio::select! {
                            _ = tick.tick() => {
                                if tokio::time::Instant::now() >= stop { break; }
                                if g.send(vec![7u8; 150]).await.is_err() { break; }
                            }
                            m = g.recv() => match m { Some(_) => got += 1, None => break },
                        }
                    }
                    got
                });
            }
            // …and the host types too, and forwards each guest's change
            // to the other guests, as a session's host does.
            let senders: Vec<_> = host_sides.iter().map(|p| p.sender()).collect();
            for (i, mut side) in host_sides.into_iter().enumerate() {
                let others: Vec<_> = senders
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, s)| s.clone())
                    .collect();
                let own = senders[i].clone();
                tasks.spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_millis(300));
                    loop {
                        tokio::select! {
                            _ = tick.tick() => {
                                if tokio::time::Instant::now() >= stop { break; }
                                let _ = own.try_send(vec![9u8; 150]);
                            }
                            m = side.recv() => match m {
                                Some(m) => for o in &others { let _ = o.try_send(m.clone()); },
                                None => break,
                            },
                        }
                    }
                    0
                });
            }
        }
        let mut got = 0;
        while let Some(r) = tasks.join_next().await {
            got += r.unwrap_or(0);
        }
        got
    });
    let cpu = relay.cpu_secs() - cpu0;
    let rss_busy = relay.rss_mib();
    println!(
        "relay, {SESSIONS} sessions x (1 host + {GUESTS} guests) typing 10/s for {secs} s: \
         relay CPU {cpu:.2} s ({:.1}% of one core), RSS {rss0:.1} MiB empty, {rss_idle:.1} MiB idle \
         ({:.0} KiB per idle session of 4 peers), {rss_busy:.1} MiB busy; {received} messages delivered to guests",
        cpu / secs as f64 * 100.0,
        (rss_idle - rss0) * 1024.0 / SESSIONS as f64,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = relay_join, relay_forwarding, relay_many_sessions
}
criterion_main!(benches);
