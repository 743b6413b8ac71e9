//! Session benchmarks over loopback (direct QUIC, 127.0.0.1):
//!
//! - `keystroke_host_to_guest`: a host edit until the guest has applied it
//!   (criterion mean, plus p50/p99 printed).
//! - `join_first_text_1mb`: a new guest joins and opens a 1 MB file the
//!   host already shares, until the text is in the guest's store; the cold
//!   case (host loads and shares the file for the first time) is printed once.
//! - `host_driver_blocked_first_open_1mb`: no sockets; a host core (as its
//!   UI thread would run it) gets a guest's first `Open` of a 1 MB file;
//!   measured is the time spent *inside* the core's calls on the driver
//!   (the `Open` itself, then the polls until the snapshot is queued for
//!   the guest), not the wall time until the snapshot is ready.
//! - `swarm`: 1 host (a real `lshed share --headless` process, so its CPU
//!   time can be read from /proc) + 10 in-process guests each typing 10
//!   chars/s for `LSHED_BENCH_SWARM_SECS` (default 3) seconds; checks that
//!   all converge and prints the host's CPU time.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use lshed::config::GuestApproval;
use lshed::doc::Change;
use lshed::net::HostOptions;
use lshed::net::Path as NetPath;
use lshed::session::headless::HeadlessStore;
use lshed::session::protocol::{decode_host, encode_msg, GuestToHost, HostToGuest};
use lshed::session::runtime::Notify;
use lshed::session::{
    DocStore, NetCommand, NetEvent, Profile, SessionCore, SessionEvent, SessionOptions,
};

const WAIT: Duration = Duration::from_secs(20);

struct Driver {
    core: SessionCore,
    store: HeadlessStore,
    wake: mpsc::Receiver<()>,
    events: Vec<SessionEvent>,
}

fn notifier() -> (Notify, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    (
        Box::new(move || {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(());
            }
        }),
        rx,
    )
}

fn opts(ports: std::ops::RangeInclusive<u16>) -> SessionOptions {
    SessionOptions {
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        host: HostOptions {
            ports,
            ..Default::default()
        },
        approval: GuestApproval::Auto,
        ..Default::default()
    }
}

fn me(name: &str) -> Profile {
    Profile {
        name: name.into(),
        color: "#888".into(),
    }
}

impl Driver {
    fn host(root: &Path, ports: std::ops::RangeInclusive<u16>) -> Driver {
        Self::host_with(root, opts(ports))
    }

    fn host_with(root: &Path, options: SessionOptions) -> Driver {
        let (notify, wake) = notifier();
        let core = SessionCore::host(root.to_path_buf(), me("host"), options, notify);
        Driver {
            core,
            store: HeadlessStore::host(root.to_path_buf()),
            wake,
            events: Vec::new(),
        }
    }

    fn guest(link: &str, name: &str) -> Driver {
        let (notify, wake) = notifier();
        let link = link.parse().expect("link");
        let core = SessionCore::join(link, me(name), opts(46200..=46200), notify);
        Driver {
            core,
            store: HeadlessStore::guest(),
            wake,
            events: Vec::new(),
        }
    }

    /// Polls once if woken within `timeout`.
    fn step(&mut self, timeout: Duration) {
        if self.wake.recv_timeout(timeout).is_ok() {
            while self.wake.try_recv().is_ok() {}
            self.core.poll(&mut self.store);
            self.events.extend(self.core.drain_events());
        }
    }

    fn wait_until(&mut self, mut pred: impl FnMut(&mut Driver) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !pred(self) {
            assert!(Instant::now() < deadline, "timed out");
            self.step(Duration::from_millis(5));
        }
    }

    fn link(&mut self) -> String {
        self.wait_until(|d| d.core.invite_link().is_some());
        self.core.invite_link().unwrap_or_default()
    }
}

/// Steps two drivers until `pred` holds for the second.
fn pump2(a: &mut Driver, b: &mut Driver, mut pred: impl FnMut(&mut Driver) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !pred(b) {
        assert!(Instant::now() < deadline, "timed out");
        a.step(Duration::from_millis(1));
        b.step(Duration::from_millis(1));
    }
}

fn has_opened(d: &mut Driver, path: &str) -> bool {
    d.events
        .iter()
        .any(|e| matches!(e, SessionEvent::FileOpened { path: p, .. } if p == path))
}

fn is_ready(d: &mut Driver, path: &str) -> bool {
    d.events
        .iter()
        .any(|e| matches!(e, SessionEvent::FileReady { path: p, .. } if p == path))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// An in-process relay on loopback, for as long as the value lives.
struct LocalRelay {
    relay: Option<lshed::relay::Relay>,
    addr: lshed::net::RelayAddr,
    rt: tokio::runtime::Runtime,
    _state: tempfile::TempDir,
}

impl LocalRelay {
    fn start() -> LocalRelay {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let state = tempfile::tempdir().expect("tempdir");
        let identity = lshed::relay::load_or_create_identity(state.path()).expect("identity");
        let relay = rt
            .block_on(lshed::relay::Relay::start(
                lshed::relay::ServerConfig {
                    listen: (Ipv4Addr::LOCALHOST, 0).into(),
                    tokens: Vec::new(),
                    limits: lshed::relay::RelayLimits::default(),
                    tap: None,
                    join_page: None,
                },
                &identity,
                None,
            ))
            .expect("relay");
        let addr = relay.relay_addr(&relay.local_addr().to_string());
        LocalRelay {
            relay: Some(relay),
            addr,
            rt,
            _state: state,
        }
    }
}

impl Drop for LocalRelay {
    fn drop(&mut self) {
        if let Some(relay) = self.relay.take() {
            self.rt.block_on(relay.shutdown());
        }
    }
}

fn keystroke(c: &mut Criterion) {
    let direct = keystroke_over(c, "keystroke_host_to_guest", None);
    let relay = LocalRelay::start();
    let relayed = keystroke_over(c, "keystroke_host_to_guest_relayed", Some(&relay.addr));
    println!(
        "keystroke host->guest: relayed/direct p50 ratio {:.2}, p99 ratio {:.2}",
        relayed.0.as_secs_f64() / direct.0.as_secs_f64().max(1e-9),
        relayed.1.as_secs_f64() / direct.1.as_secs_f64().max(1e-9)
    );
}

/// Keystrokes on the host, applied at a guest: directly, or (with a
/// relay) through it in connection mode `relay`. Returns (p50, p99).
fn keystroke_over(
    c: &mut Criterion,
    name: &str,
    relay: Option<&lshed::net::RelayAddr>,
) -> (Duration, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("k.txt"), "fn main() {}\n".repeat(200)).expect("write");
    let mut options = opts(46200..=46209);
    if let Some(relay) = relay {
        options.connection_mode = lshed::config::ConnectionMode::Relay;
        options.relay = Some(relay.clone());
    }
    let mut host = Driver::host_with(dir.path(), options);
    let link = host.link();
    let mut guest = Driver::guest(&link, "g");
    pump2(&mut host, &mut guest, |g| {
        g.core.state().label() == "Joined"
    });
    guest.core.open("k.txt");
    // Wait until the CRDT state has arrived (the host builds it on a
    // worker after sending the text), so keystrokes flow at once.
    pump2(&mut host, &mut guest, |g| is_ready(g, "k.txt"));
    let mut samples = Vec::new();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let before = guest
                    .store
                    .doc_mut("k.txt")
                    .map(|d| d.revision())
                    .unwrap_or(0);
                let t = Instant::now();
                if let Some(doc) = host.store.doc_mut("k.txt") {
                    doc.apply_local(&[Change::insert((i % 100) as usize, "x")]);
                }
                host.core.local_edit("k.txt", &mut host.store);
                guest.wait_until(|g| {
                    g.store.doc_mut("k.txt").map(|d| d.revision()).unwrap_or(0) != before
                });
                let dt = t.elapsed();
                samples.push(dt);
                total += dt;
                guest.events.clear();
            }
            total
        })
    });
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!(
        "{name} over loopback ({}): p50 {p50:?}, p99 {p99:?} ({} samples)",
        if relay.is_some() { "relayed" } else { "direct" },
        samples.len()
    );
    drop(guest);
    drop(host);
    (p50, p99)
}

fn one_mb_text() -> String {
    let line = "let value = compute(alpha, beta, gamma); // some typical code line\n";
    line.repeat(1024 * 1024 / line.len() + 1)
}

/// Runs a host driver on its own thread (as the host's UI thread would be)
/// until the returned flag is set; returns the link.
fn host_thread(
    root: std::path::PathBuf,
    ports: std::ops::RangeInclusive<u16>,
) -> (String, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut host = Driver::host(&root, ports);
        let _ = tx.send(host.link());
        while !flag.load(Ordering::Relaxed) {
            host.step(Duration::from_millis(5));
            host.events.clear();
        }
    });
    let link = rx.recv_timeout(WAIT).expect("host link");
    (link, stop, handle)
}

fn join_and_open(link: &str, path: &str) -> (Duration, Duration, Driver) {
    let t = Instant::now();
    let mut g = Driver::guest(link, "late");
    g.wait_until(|g| g.core.state().label() == "Joined");
    g.core.open(path);
    g.wait_until(|g| has_opened(g, path));
    let shown = t.elapsed();
    g.wait_until(|g| is_ready(g, path));
    (shown, t.elapsed(), g)
}

fn join_first_text(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("big.rs"), one_mb_text()).expect("write");
    let (link, stop, host) = host_thread(dir.path().to_path_buf(), 46210..=46219);
    // Cold: the host loads and shares the file for this first guest.
    let (shown, ready, first) = join_and_open(&link, "big.rs");
    println!(
        "join -> first text of 1 MB, cold (host loads+shares): {shown:?}; editable after {ready:?}"
    );
    let mut ready_times = Vec::new();
    let mut group = c.benchmark_group("join");
    group.sample_size(10);
    group.bench_function("join_first_text_1mb", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (shown, ready, mut g) = join_and_open(&link, "big.rs");
                total += shown;
                ready_times.push(ready);
                g.core.leave();
                g.wait_until(|g| g.core.runtime_stopped());
            }
            total
        })
    });
    group.finish();
    ready_times.sort();
    if !ready_times.is_empty() {
        println!(
            "join -> 1 MB file editable at the guest (warm host): p50 {:?}",
            percentile(&ready_times, 0.5)
        );
    }
    drop(first);
    stop.store(true, Ordering::Relaxed);
    let _ = host.join();
}

fn has_snapshot(cmds: &[NetCommand]) -> bool {
    cmds.iter().any(|c| match c {
        NetCommand::Send { bytes, .. } => {
            matches!(decode_host(bytes), Ok(HostToGuest::OpenedState { .. }))
        }
        _ => false,
    })
}

/// One guest's first `Open` of `path` at a fresh in-memory host: the time
/// the host's driver spent inside core calls until the snapshot was queued,
/// as (in the `Open` call, in the polls after it).
fn host_first_open_blocked(root: &Path, path: &str) -> (Duration, Duration) {
    let mut store = HeadlessStore::host(root.to_path_buf());
    let mut core = SessionCore::new_host(root.to_path_buf(), me("host"), GuestApproval::Auto);
    core.handle_net(
        NetEvent::HostStarted {
            link: "lshed://bench".into(),
            url: None,
        },
        &mut store,
    );
    core.handle_net(
        NetEvent::GuestJoined {
            id: 1,
            name: "g".into(),
            color: "c".into(),
            path: NetPath::Direct,
        },
        &mut store,
    );
    core.take_commands();
    let open = encode_msg(&GuestToHost::Open { path: path.into() }).expect("encode");
    let t = Instant::now();
    core.handle_net(
        NetEvent::Message {
            from: 1,
            bytes: open,
        },
        &mut store,
    );
    let in_open = t.elapsed();
    let mut blocked = Duration::ZERO;
    let deadline = Instant::now() + WAIT;
    while !has_snapshot(&core.take_commands()) {
        assert!(Instant::now() < deadline, "no snapshot");
        // The UI thread's idle time between wake-ups.
        std::thread::sleep(Duration::from_millis(1));
        let t = Instant::now();
        core.poll(&mut store);
        blocked += t.elapsed();
    }
    (in_open, blocked)
}

fn host_driver_blocked(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("big.rs"), one_mb_text()).expect("write");
    let (in_open, in_polls) = host_first_open_blocked(dir.path(), "big.rs");
    println!("host driver blocked, first open of 1 MB: {in_open:?} in the Open, {in_polls:?} in the polls after it");
    let mut group = c.benchmark_group("host_driver");
    group.sample_size(10);
    group.bench_function("host_driver_blocked_first_open_1mb", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (a, b) = host_first_open_blocked(dir.path(), "big.rs");
                    a + b
                })
                .sum()
        })
    });
    group.finish();
}

fn cpu_ticks(pid: u32) -> u64 {
    // utime + stime, fields 14 and 15 of /proc/PID/stat (after the comm).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // rest starts at field 3 (state, not numeric, filtered out): utime is field 14.
    f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)
}

fn swarm(_c: &mut Criterion) {
    let secs: u64 = std::env::var("LSHED_BENCH_SWARM_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("s.txt"), "start\n").expect("write");
    std::fs::write(
        dir.path().join("config.toml"),
        "guest_approval = \"auto\"\n",
    )
    .expect("config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lshed"))
        .args([
            "share",
            dir.path().to_str().unwrap_or("."),
            "--headless",
            "--bind",
            "127.0.0.1",
            "--ports",
            "46220-46229",
        ])
        .env("LSHED_CONFIG", dir.path().join("config.toml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn host");
    let mut stdin = child.stdin.take().expect("stdin");
    let (line_tx, line_rx) = mpsc::channel::<serde_json::Value>();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = line_tx.send(v);
            }
        }
    });
    let first = line_rx.recv_timeout(WAIT).expect("shared line");
    let link = first["link"].as_str().unwrap_or_default().to_string();
    writeln!(stdin, r#"{{"cmd":"open","path":"s.txt"}}"#).ok();

    let (done_tx, done_rx) = mpsc::channel::<String>();
    let stop_at = Instant::now() + Duration::from_secs(2 + secs);
    let typing_from = Instant::now() + Duration::from_secs(2);
    let mut threads = Vec::new();
    for i in 0..10 {
        let link = link.clone();
        let done_tx = done_tx.clone();
        threads.push(std::thread::spawn(move || {
            let mut g = Driver::guest(&link, &format!("g{i}"));
            g.wait_until(|g| g.core.state().label() == "Joined");
            g.core.open("s.txt");
            g.wait_until(|g| is_ready(g, "s.txt"));
            let mut next = typing_from + Duration::from_millis(i * 10);
            let mut seed = 0x9e37_79b9_u64 + i;
            while Instant::now() < stop_at {
                if Instant::now() >= next {
                    next += Duration::from_millis(100);
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    if let Some(doc) = g.store.doc_mut("s.txt") {
                        let at = (seed as usize) % (doc.len_chars() + 1);
                        doc.apply_local(&[Change::insert(at, "k")]);
                    }
                    g.core.local_edit("s.txt", &mut g.store);
                }
                g.step(Duration::from_millis(5));
            }
            // Settle: keep applying what still arrives.
            let quiet = Instant::now() + Duration::from_secs(2);
            while Instant::now() < quiet {
                g.step(Duration::from_millis(20));
            }
            let _ = done_tx.send(g.store.text("s.txt").unwrap_or_default());
            g.core.leave();
            g.wait_until(|g| g.core.runtime_stopped());
        }));
    }
    while Instant::now() < typing_from {
        std::thread::sleep(Duration::from_millis(50));
    }
    let cpu0 = cpu_ticks(child.id());
    let mut texts = Vec::new();
    for _ in 0..10 {
        texts.push(
            done_rx
                .recv_timeout(WAIT + Duration::from_secs(secs))
                .expect("guest text"),
        );
    }
    let cpu1 = cpu_ticks(child.id());
    writeln!(stdin, r#"{{"cmd":"text","path":"s.txt","tag":"final"}}"#).ok();
    let host_text = loop {
        let v = line_rx.recv_timeout(WAIT).expect("host text");
        if v["tag"] == "final" {
            break v["text"].as_str().unwrap_or_default().to_string();
        }
    };
    for t in threads {
        let _ = t.join();
    }
    writeln!(stdin, r#"{{"cmd":"end"}}"#).ok();
    drop(stdin);
    let _ = child.wait();
    let converged = texts.iter().all(|t| *t == host_text);
    let typed = host_text.chars().count() - "start\n".chars().count();
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    println!(
        "swarm: 1 host + 10 guests x 10 chars/s for {secs}s: converged={converged}, {typed} chars typed, \
         host CPU {:.2}s over {:.1}s of typing+settling ({:.1}% of one core)",
        (cpu1 - cpu0) as f64 / ticks_per_sec,
        secs as f64 + 2.0,
        (cpu1 - cpu0) as f64 / ticks_per_sec / (secs as f64 + 2.0) * 100.0
    );
    assert!(converged, "swarm did not converge");
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = keystroke, join_first_text, host_driver_blocked, swarm
}
criterion_main!(benches);
