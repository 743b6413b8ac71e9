//! Real `lshed` processes for tests: headless peers speaking the JSON-lines
//! protocol, and a relay process. Included with `#[path]`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long any one expected line may take: generous, for a busy machine
/// (a test waits for events; this only bounds a test that has failed).
pub const WAIT: Duration = Duration::from_secs(60);

/// How long peers may take to converge: megabytes of changes on a loaded
/// two-core machine take a while.
pub const CONVERGE_WAIT: Duration = Duration::from_secs(180);

/// The `lshed` binary under test.
pub fn lshed() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lshed"))
}

/// The `lshed` binary under test, run inside the network namespace `ns`.
pub fn lshed_in(ns: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_lshed")]);
    cmd
}

/// A headless `lshed share` or `lshed join`.
pub struct Peer {
    pub name: String,
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub lines: mpsc::Receiver<Value>,
    pub next_id: u64,
    pub home: tempfile::TempDir,
}

impl Peer {
    /// Starts `cmd` (an `lshed` command line) with its own home folder
    /// whose config file holds `config`.
    pub fn launch(name: &str, mut cmd: Command, config: &str) -> Peer {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("config.toml"), config).unwrap();
        let mut child = cmd
            .env("HOME", home.path())
            .env("LSHED_CONFIG", home.path().join("config.toml"))
            .env("XDG_CONFIG_HOME", home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let who = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("{who}: not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Peer {
            name: name.into(),
            stdin: child.stdin.take(),
            child,
            lines: rx,
            next_id: 1,
            home,
        }
    }

    /// The host's first line must be `shared`; returns the link.
    pub fn shared_link(&mut self) -> String {
        let first = self.next_line();
        assert_eq!(
            first["event"], "shared",
            "{}: first line: {first}",
            self.name
        );
        first["link"].as_str().unwrap().to_string()
    }

    pub fn next_line(&mut self) -> Value {
        self.lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("{}: no output within {WAIT:?}", self.name))
    }

    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Sends a command and returns its result (or error) line.
    pub fn cmd(&mut self, mut c: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        c["tag"] = json!(id);
        self.send_raw(&c.to_string());
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{}: no answer to {c}", self.name));
            if v["tag"] == json!(id) {
                return v;
            }
        }
    }

    pub fn ok(&mut self, c: Value) -> Value {
        let v = self.cmd(c.clone());
        assert!(v.get("result").is_some(), "{}: {c} failed: {v}", self.name);
        v
    }

    pub fn wait_event(&mut self, event: &str) -> Value {
        self.wait_for(|v| v["event"] == event, event)
    }

    pub fn wait_for(&mut self, pred: impl Fn(&Value) -> bool, what: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("{}: no {what} within {WAIT:?}", self.name),
            }
        }
    }

    pub fn text(&mut self, path: &str) -> String {
        let v = self.ok(json!({"cmd": "text", "path": path}));
        v["text"].as_str().unwrap().to_string()
    }

    pub fn open(&mut self, path: &str) {
        self.ok(json!({"cmd": "open", "path": path}));
        self.wait_for(|v| v["event"] == "opened" && v["path"] == path, "opened");
    }

    pub fn my_id(&mut self) -> u64 {
        self.ok(json!({"cmd": "state"}))["id"].as_u64().unwrap()
    }

    /// Waits for the process to exit (closing stdin first); kills it after a while.
    pub fn finish(mut self) -> Option<i32> {
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not exit", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stdin.take();
        if self.child.try_wait().ok().flatten().is_none() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if self.child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A folder holding `files` (path, text).
pub fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p: PathBuf = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

/// Waits until every peer has the same text at `path`; returns it.
pub fn wait_converged(peers: &mut [&mut Peer], path: &str) -> String {
    let deadline = Instant::now() + CONVERGE_WAIT;
    loop {
        let texts: Vec<String> = peers.iter_mut().map(|p| p.text(path)).collect();
        if texts.windows(2).all(|w| w[0] == w[1]) {
            return texts[0].clone();
        }
        assert!(Instant::now() < deadline, "no convergence: {texts:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Each peer inserts a unique token; waits until all have every token once.
pub fn type_tokens_and_converge(peers: &mut [&mut Peer], path: &str) -> String {
    for (i, p) in peers.iter_mut().enumerate() {
        p.ok(json!({"cmd": "edit", "path": path, "offset": 0, "insert": format!("<tok{i}>")}));
    }
    let text = wait_converged(peers, path);
    for i in 0..peers.len() {
        assert_eq!(text.matches(&format!("<tok{i}>")).count(), 1, "{text}");
    }
    text
}

/// A real `lshed relay` process.
pub struct RelayProcess {
    pub child: Child,
    /// The `relay = "…"` value it printed.
    pub relay: String,
}

impl RelayProcess {
    /// Starts `cmd` (an `lshed` command; `relay` and the flags are added)
    /// and waits for its config line.
    pub fn start(cmd: Command, state: &Path, listen: &str) -> RelayProcess {
        Self::start_with(cmd, state, listen, &[], None).0
    }

    /// As `start`, with more flags, its log (stderr, at debug level) in
    /// `log`; also returns every line it printed up to its config line.
    pub fn start_with(
        mut cmd: Command,
        state: &Path,
        listen: &str,
        extra: &[&str],
        log: Option<std::fs::File>,
    ) -> (RelayProcess, Vec<String>) {
        let stderr = match log {
            Some(file) => Stdio::from(file),
            None => Stdio::null(),
        };
        let mut child = cmd
            .args(["relay", "--listen", listen, "--state-dir"])
            .arg(state)
            .args(extra)
            .env("LSHED_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + WAIT;
        let mut printed = Vec::new();
        let relay = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("the relay prints its config line");
            printed.push(line.clone());
            if let Some(value) = line.strip_prefix("relay = \"") {
                break value.trim_end_matches('"').to_string();
            }
        };
        (RelayProcess { child, relay }, printed)
    }

    /// SIGTERM, then waits for the exit status.
    pub fn stop(mut self) -> Option<i32> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the relay did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
