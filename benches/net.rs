//! Loopback figures for the net layer: message round trip (small and
//! large) and the cost of joining (QUIC + TLS + join handshake).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lshed::net::{connect_direct, ConnectOptions, GuestProfile, HostEndpoint, PeerConnection};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn me() -> GuestProfile {
    GuestProfile {
        name: "bench".into(),
        color: "#fff".into(),
    }
}

/// A host that echoes every message of every guest back.
async fn echo_host() -> lshed::net::InviteLink {
    let mut host = HostEndpoint::bind(LOCALHOST).expect("bind");
    let link = host.invite_link();
    tokio::spawn(async move {
        while let Some(pending) = host.accept().await {
            if let Ok(mut peer) = pending.accept().await {
                tokio::spawn(async move {
                    while let Some(msg) = peer.recv().await {
                        if peer.send(msg).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
    });
    link
}

async fn round_trips(guest: &mut PeerConnection, payload: &[u8], iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        guest.send(payload.to_vec()).await.expect("send");
        guest.recv().await.expect("echo");
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let link = rt.block_on(echo_host());
    let mut guest = rt
        .block_on(connect_direct(&link, &me(), &ConnectOptions::default()))
        .expect("join");

    let mut group = c.benchmark_group("net_round_trip");
    for size in [64usize, 64 * 1024, 1024 * 1024] {
        let payload = vec![0x5a; size];
        group.throughput(Throughput::Bytes(2 * size as u64));
        group.bench_function(format!("{size}B"), |b| {
            b.iter_custom(|iters| rt.block_on(round_trips(&mut guest, &payload, iters)))
        });
    }
    group.finish();

    c.bench_function("net_join", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let g = connect_direct(&link, &me(), &ConnectOptions::default())
                        .await
                        .expect("join");
                    drop(g);
                }
                start.elapsed()
            })
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
