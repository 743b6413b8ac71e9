//! Real networks, made by the test itself: network namespaces joined by a
//! bridge, with firewalls (iptables), an HTTP CONNECT proxy (Debian's
//! tinyproxy) and NAT routers, and real `lshed` processes (a relay, a
//! headless host, headless guests) in them.
//!
//! Needs root, `ip` (iproute2) and `iptables`; the proxy test needs
//! `tinyproxy`. Without them each test prints why and passes without
//! running (CI runs as root and installs them). Addresses are in
//! 10.199.0.0/24 and 192.168.{10,20}.0/24, inside the test's namespaces
//! only; every namespace is removed when its test ends.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Numbers nets and links, so tests running at once never share a name.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh name for one end of a veth pair (at most 15 bytes).
fn link_name() -> String {
    format!(
        "lv{}x{}",
        std::process::id() % 10_000,
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

use serde_json::json;

use crate::support::headless;
use headless::{folder, lshed_in, type_tokens_and_converge, Peer, RelayProcess};

/// Why these tests cannot run here, if they cannot.
fn unavailable(extra: &[&str]) -> Option<String> {
    // SAFETY-free check: geteuid via `id -u`.
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root".into());
    }
    for tool in ["ip", "iptables"].iter().chain(extra) {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    let probe = format!("lshprobe{}", std::process::id());
    let ok = run("ip", &["netns", "add", &probe]).is_ok();
    let _ = run("ip", &["netns", "del", &probe]);
    if !ok {
        return Some("cannot create network namespaces here".into());
    }
    None
}

macro_rules! require {
    ($($tool:expr),*) => {
        if let Some(why) = unavailable(&[$($tool),*]) {
            eprintln!("skipped: {why} (this test needs root, network namespaces and iptables)");
            return;
        }
    };
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn sh(ns: &str, script: &str) {
    let out = run("ip", &["netns", "exec", ns, "sh", "-ec", script]);
    if let Err(e) = out {
        panic!("in {ns}: {script}: {e}");
    }
}

/// A small network: a relay machine with a bridge, and machines plugged
/// into it (directly, or behind a NAT router). Removed on drop.
struct Net {
    tag: String,
    namespaces: Vec<String>,
    next_lan: u8,
}

const RELAY_IP: &str = "10.199.0.1";

impl Net {
    fn new() -> Net {
        let tag = format!(
            "{}x{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut net = Net {
            tag,
            namespaces: Vec::new(),
            next_lan: 10,
        };
        let relay = net.add_ns("relay");
        sh(
            &relay,
            &format!(
                "ip link set lo up; ip link add br0 type bridge; ip addr add {RELAY_IP}/24 dev br0; ip link set br0 up"
            ),
        );
        net
    }

    fn ns(&self, name: &str) -> String {
        format!("lsh{}{name}", self.tag)
    }

    fn add_ns(&mut self, name: &str) -> String {
        let ns = self.ns(name);
        let _ = run("ip", &["netns", "del", &ns]);
        run("ip", &["netns", "add", &ns]).unwrap();
        self.namespaces.push(ns.clone());
        ns
    }

    /// Plugs a new machine `name` into the bridge at 10.199.0.`host`.
    fn machine(&mut self, name: &str, host: u8) -> String {
        let ns = self.add_ns(name);
        let relay = self.ns("relay");
        let (a, b) = cable(&ns, &relay);
        sh(
            &relay,
            &format!("ip link set {b} master br0; ip link set {b} up"),
        );
        sh(
            &ns,
            &format!(
                "ip link set lo up; ip link set {a} name eth0; ip addr add 10.199.0.{host}/24 dev eth0; ip link set eth0 up"
            ),
        );
        ns
    }

    /// A machine behind its own NAT router (MASQUERADE, ports randomised:
    /// a symmetric NAT, through which hole punching fails); the router sits
    /// on the bridge at 10.199.0.`router`.
    fn behind_nat(&mut self, name: &str, router: u8) -> String {
        let lan = self.next_lan;
        self.next_lan += 10;
        let nat = self.machine(&format!("{name}nat"), router);
        let ns = self.add_ns(name);
        let (a, b) = cable(&ns, &nat);
        sh(
            &nat,
            &format!(
                "ip link set {b} name lan0; ip addr add 192.168.{lan}.1/24 dev lan0; ip link set lan0 up; \
                 sysctl -qw net.ipv4.ip_forward=1; \
                 iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE --random-fully; \
                 iptables -A FORWARD -i eth0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT; \
                 iptables -A FORWARD -i eth0 -j DROP"
            ),
        );
        sh(
            &ns,
            &format!(
                "ip link set lo up; ip link set {a} name eth0; ip addr add 192.168.{lan}.2/24 dev eth0; ip link set eth0 up; \
                 ip route add default via 192.168.{lan}.1"
            ),
        );
        ns
    }
}

/// A veth pair between namespaces `a` and `b`: the names of its ends in
/// each.
fn cable(a: &str, b: &str) -> (String, String) {
    let (end_a, end_b) = (link_name(), link_name());
    run(
        "ip",
        &[
            "link", "add", &end_a, "type", "veth", "peer", "name", &end_b,
        ],
    )
    .unwrap();
    run("ip", &["link", "set", &end_a, "netns", a]).unwrap();
    run("ip", &["link", "set", &end_b, "netns", b]).unwrap();
    (end_a, end_b)
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            // Processes still inside would keep it: the tests end theirs first.
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

fn start_relay(net: &Net) -> (RelayProcess, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(
        lshed_in(&net.ns("relay")),
        state.path(),
        &format!("{RELAY_IP}:5980"),
    );
    (relay, state)
}

/// A headless host in `ns`, sharing `root` in `mode` through `relay`.
fn host(ns: &str, root: &std::path::Path, relay: &str, mode: &str) -> (Peer, String) {
    let mut cmd = lshed_in(ns);
    cmd.args(["share", root.to_str().unwrap(), "--headless"]);
    let mut host = Peer::launch(
        "host",
        cmd,
        &format!("relay = \"{relay}\"\nconnection_mode = \"{mode}\"\nguest_approval = \"auto\"\n[identity]\ndisplay_name = \"alice\"\n"),
    );
    let link = host.shared_link();
    (host, link)
}

fn guest(ns: &str, name: &str, link: &str, extra: &[&str], env: &[(&str, &str)]) -> Peer {
    let mut cmd = lshed_in(ns);
    cmd.args(["join", link, "--headless"]).args(extra);
    cmd.envs(env.iter().copied());
    Peer::launch(
        name,
        cmd,
        &format!("[identity]\ndisplay_name = \"{name}\"\n"),
    )
}

/// The guest joins through the relay; both type and converge; both leave.
fn relayed_session(mut host: Peer, mut bob: Peer) {
    assert_eq!(bob.wait_event("joined")["path"], "relayed");
    edit_together(&mut host, &mut bob);
    assert_eq!(bob.finish(), Some(0));
    assert_eq!(host.finish(), Some(0));
}

/// Host and guest type, both ways, and end with the same text.
fn edit_together(host: &mut Peer, guest: &mut Peer) {
    host.ok(json!({"cmd": "open", "path": "notes.txt"}));
    guest.open("notes.txt");
    type_tokens_and_converge(&mut [host, guest], "notes.txt");
}

#[test]
fn a_host_behind_a_udp_firewall_is_reached_through_the_relay() {
    require!();
    let mut net = Net::new();
    let h = net.machine("host", 2);
    let g = net.machine("guest", 3);
    sh(&h, "iptables -A INPUT -p udp --dport 5990:5999 -j DROP");
    let (relay, _state) = start_relay(&net);
    let dir = folder(&[("notes.txt", "hello\n")]);
    let (mut host, link) = host(&h, dir.path(), &relay.relay, "auto");
    let parsed: lshed::net::InviteLink = link.parse().unwrap();
    assert!(!parsed.direct.is_empty() && parsed.relay.is_some());

    // direct: fails, and says the host cannot be reached.
    let mut direct = guest(&g, "dora", &link, &["--connection-mode", "direct"], &[]);
    let failed = direct.wait_event("join_failed");
    let msg = failed["message"].as_str().unwrap();
    assert!(msg.contains("cannot reach the host"), "{msg}");
    assert_eq!(direct.finish(), Some(1));

    // auto: through the relay, and says so.
    let mut bob = guest(&g, "bob", &link, &[], &[]);
    assert_eq!(bob.wait_event("joined")["path"], "relayed");
    edit_together(&mut host, &mut bob);
    let state = bob.ok(json!({"cmd": "state"}));
    assert_eq!(state["path"], "relayed");
    assert_eq!(bob.finish(), Some(0));
    assert_eq!(host.finish(), Some(0));
}

#[test]
fn relay_mode_opens_no_udp_port_on_the_host() {
    require!("ss");
    let mut net = Net::new();
    let h = net.machine("host", 2);
    let g = net.machine("guest", 3);
    let (relay, _state) = start_relay(&net);
    let dir = folder(&[("notes.txt", "hello\n")]);
    let (host, link) = host(&h, dir.path(), &relay.relay, "relay");
    let parsed: lshed::net::InviteLink = link.parse().unwrap();
    assert!(parsed.direct.is_empty(), "no direct address in the link");
    let sockets = run("ip", &["netns", "exec", &h, "ss", "-Huln"]).unwrap();
    for port in 5990..=5999 {
        assert!(
            !sockets.contains(&format!(":{port} ")),
            "the host listens on UDP {port}:\n{sockets}"
        );
    }
    let bob = guest(&g, "bob", &link, &[], &[]);
    relayed_session(host, bob);
}

#[test]
fn a_guest_with_all_udp_blocked_joins_over_tcp() {
    require!();
    let mut net = Net::new();
    let h = net.machine("host", 2);
    let g = net.machine("guest", 3);
    sh(
        &g,
        "iptables -A OUTPUT -p udp -j DROP; iptables -A INPUT -p udp -j DROP",
    );
    let (relay, _state) = start_relay(&net);
    let dir = folder(&[("notes.txt", "hello\n")]);
    let (host, link) = host(&h, dir.path(), &relay.relay, "auto");
    let bob = guest(&g, "bob", &link, &[], &[]);
    relayed_session(host, bob);
}

#[test]
fn a_guest_behind_an_http_connect_proxy() {
    require!("tinyproxy");
    let mut net = Net::new();
    let h = net.machine("host", 2);
    let g = net.machine("guest", 3);
    let p = net.machine("proxy", 4);
    // The guest may only talk to the proxy.
    sh(
        &g,
        "iptables -A OUTPUT -o lo -j ACCEPT; \
         iptables -A OUTPUT -p tcp -d 10.199.0.4 --dport 8888 -j ACCEPT; \
         iptables -A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT; \
         iptables -A OUTPUT -j DROP",
    );
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("tinyproxy.conf");
    let log = conf_dir.path().join("tinyproxy.log");
    std::fs::write(
        &conf,
        format!(
            "Port 8888\nListen 10.199.0.4\nTimeout 600\nAllow 10.199.0.0/24\nConnectPort 5980\nMaxClients 20\nLogFile \"{}\"\nLogLevel Connect\n",
            log.display()
        ),
    )
    .unwrap();
    let mut proxy = Command::new("ip")
        .args(["netns", "exec", &p, "tinyproxy", "-d", "-c"])
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (relay, _state) = start_relay(&net);
    let dir = folder(&[("notes.txt", "hello\n")]);
    let (mut host, link) = host(&h, dir.path(), &relay.relay, "auto");
    // tinyproxy may take a moment to listen; lshed's connect waits for it
    // within its own timeout, and a refused attempt is retried here.
    let mut joined = None;
    for _ in 0..20 {
        let mut bob = guest(
            &g,
            "bob",
            &link,
            &[],
            &[("HTTPS_PROXY", "http://10.199.0.4:8888")],
        );
        let ev = bob.wait_for(
            |v| v["event"] == "joined" || v["event"] == "join_failed",
            "joined or join_failed",
        );
        if ev["event"] == "joined" {
            assert_eq!(ev["path"], "relayed");
            joined = Some(bob);
            break;
        }
        let msg = ev["message"].as_str().unwrap_or_default().to_string();
        assert!(
            msg.contains("proxy"),
            "fails only while the proxy starts: {msg}"
        );
        let _ = bob.finish();
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut bob = joined.expect("joined through the proxy");
    edit_together(&mut host, &mut bob);
    assert_eq!(bob.finish(), Some(0));
    assert_eq!(host.finish(), Some(0));
    let _ = proxy.kill();
    let _ = proxy.wait();
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.contains("CONNECT") && logged.contains("5980"),
        "the proxy carried it: {logged}"
    );
}

#[test]
fn host_and_guest_each_behind_a_nat_meet_at_the_relay() {
    require!();
    let mut net = Net::new();
    let h = net.behind_nat("host", 12);
    let g = net.behind_nat("guest", 13);
    let (relay, _state) = start_relay(&net);
    let dir = folder(&[("notes.txt", "hello\n")]);
    let (mut host, link) = host(&h, dir.path(), &relay.relay, "auto");
    let mut bob = guest(&g, "bob", &link, &[], &[]);
    assert_eq!(bob.wait_event("joined")["path"], "relayed");
    edit_together(&mut host, &mut bob);
    bob.ok(json!({"cmd": "save", "path": "notes.txt"}));
    bob.wait_event("saved");
    assert_eq!(bob.finish(), Some(0));
    assert_eq!(host.finish(), Some(0));
}
