//! Invite links people can click: a relay serving its join page, a host
//! handing out `http(s)://relay/join#v2/…` links, the page rendered by a
//! real headless Chromium (its copy text is the exact `lshed join` command
//! for the link), lshed joining with the web form of the link, and the
//! relay's logs and metrics never holding the invite (the URL fragment).
//!
//! The Chromium part needs Debian's `chromium`; without it that part says
//! so and the rest still runs. Loopback only.

use std::process::Command;

use serde_json::json;

use crate::support::headless;
use headless::{folder, lshed, type_tokens_and_converge, Peer, RelayProcess};

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new("sh")
                .args(["-c", &format!("command -v {b}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
}

/// The page after its script ran, as Chromium serialises it.
fn render(browser: &str, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of the element with `id` in serialised HTML (no nesting).
fn element_text(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!("id=\"{id}\""))?;
    let open_end = start + html[start..].find('>')? + 1;
    let close = open_end + html[open_end..].find("</")?;
    Some(
        html[open_end..close]
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#39;", "'")
            .replace("&quot;", "\""),
    )
}

fn attribute(html: &str, id: &str, attr: &str) -> Option<String> {
    let start = html.find(&format!("id=\"{id}\""))?;
    let tag_start = html[..start].rfind('<')?;
    let tag_end = start + html[start..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let at = tag.find(&format!("{attr}=\""))? + attr.len() + 2;
    let end = at + tag[at..].find('"')?;
    Some(tag[at..end].replace("&amp;", "&"))
}

/// GET over plain HTTP on loopback; the whole response.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_join_page_turns_a_web_link_into_the_command_and_the_relay_never_sees_the_invite() {
    let state = tempfile::tempdir().unwrap();
    let log_path = state.path().join("relay.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let (relay, printed) = RelayProcess::start_with(
        lshed(),
        state.path(),
        "127.0.0.1:0",
        &["--web-listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"],
        Some(log),
    );
    let page_line = printed
        .iter()
        .find(|l| l.starts_with("join page: "))
        .expect("the relay names its join page");
    let page = page_line
        .trim_start_matches("join page: ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(
        page.starts_with("http://127.0.0.1:") && page.ends_with("/join"),
        "{page}"
    );
    let web_addr = page
        .trim_start_matches("http://")
        .trim_end_matches("/join")
        .to_string();
    let metrics_addr = printed
        .iter()
        .find_map(|l| l.strip_prefix("metrics: http://"))
        .and_then(|l| l.split('/').next())
        .expect("metrics address")
        .to_string();

    // A host in relay mode gets both forms of the link.
    let dir = folder(&[("notes.txt", "hello\n")]);
    let mut cmd = lshed();
    cmd.args(["share", dir.path().to_str().unwrap(), "--headless"]);
    let mut host = Peer::launch(
        "alice",
        cmd,
        &format!(
            "relay = \"{}\"\nconnection_mode = \"relay\"\nguest_approval = \"auto\"\n[identity]\ndisplay_name = \"alice\"\n",
            relay.relay
        ),
    );
    let shared = host.next_line();
    assert_eq!(shared["event"], "shared", "{shared}");
    let link = shared["link"].as_str().unwrap().to_string();
    let url = shared["url"].as_str().expect("a web link").to_string();
    let invite = link.trim_start_matches("lshed://join/").to_string();
    assert_eq!(url, format!("{page}#{invite}"));

    // The page itself: served, locked down, and without the invite.
    let response = http_get(&web_addr, "/join");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(lower.contains("content-security-policy: default-src 'none'"));
    assert!(lower.contains("referrer-policy: no-referrer"));
    assert!(http_get(&web_addr, "/nope").starts_with("HTTP/1.1 404"));

    // lshed joins with the web form of the link.
    let mut bob = Peer::launch(
        "bob",
        {
            let mut c = lshed();
            c.args(["join", &url, "--headless"]);
            c
        },
        "[identity]\ndisplay_name = \"bob\"\n",
    );
    assert_eq!(bob.wait_event("joined")["path"], "relayed");
    host.ok(json!({"cmd": "open", "path": "notes.txt"}));
    bob.open("notes.txt");
    type_tokens_and_converge(&mut [&mut host, &mut bob], "notes.txt");

    match chromium() {
        Some(browser) => {
            let html = render(browser, &url);
            let command = element_text(&html, "command").expect("the command is shown");
            assert_eq!(command, format!("lshed join '{link}'"));
            assert_eq!(
                attribute(&html, "launch", "href").as_deref(),
                Some(link.as_str())
            );
            // Without the fragment the page says what is missing.
            let bare = render(browser, &page);
            let problem_tag = &bare[bare.find("id=\"problem\"").unwrap() - 40..][..60];
            assert!(!problem_tag.contains("hidden"), "{problem_tag}");
        }
        None => eprintln!(
            "chromium is not installed: the page was not rendered (CI installs Debian's chromium)"
        ),
    }

    let metrics = http_get(&metrics_addr, "/metrics");
    assert!(metrics.contains("lshed_relay_sessions 1"), "{metrics}");
    assert_eq!(bob.finish(), Some(0));
    assert_eq!(host.finish(), Some(0));
    let relay_log = std::fs::read_to_string(&log_path).unwrap();
    let payload = invite.trim_start_matches("v2/");
    for (what, text) in [("log", &relay_log), ("metrics", &metrics)] {
        assert!(
            !text.contains(payload),
            "the relay's {what} holds the invite"
        );
        assert!(
            !text.contains(&payload[..16]),
            "the relay's {what} holds part of the invite"
        );
    }
    assert!(
        relay_log.contains("session registered"),
        "the log is real: {relay_log}"
    );
}
