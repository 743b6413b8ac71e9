//! Runs the real `lshed` binary in a pseudo-terminal and reads its screen
//! through a vt100 emulator, as a person would see it.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};

/// A running lshed in a pty.
pub struct PtyApp {
    /// The emulated screen.
    pub parser: Arc<Mutex<vt100::Parser>>,
    /// The raw bytes written by the program.
    pub raw: Arc<Mutex<Vec<u8>>>,
    writer: Arc<Mutex<Box<dyn Write + Send>>>,
    /// The process.
    pub child: Box<dyn Child + Send + Sync>,
    /// The pty master.
    pub master: Box<dyn MasterPty + Send>,
}

impl PtyApp {
    /// Starts `lshed ARGS` in `cwd` with a private HOME / config dirs under
    /// `home`, at `cols`x`rows`.
    pub fn spawn(args: &[&str], cwd: &Path, home: &Path, cols: u16, rows: u16) -> Self {
        let pty = native_pty_system();
        let pair = pty
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("openpty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_lshed"));
        cmd.args(args);
        cmd.cwd(cwd);
        cmd.env("TERM", "xterm-256color");
        cmd.env("HOME", home);
        cmd.env("XDG_CONFIG_HOME", home.join(".config"));
        cmd.env("XDG_STATE_HOME", home.join(".local/state"));
        cmd.env("XDG_DATA_HOME", home.join(".local/share"));
        cmd.env("LSHED_CONFIG", home.join(".config/lshed/config.toml"));
        // A host started here listens on loopback only.
        cmd.env("LSHED_BIND", "127.0.0.1");
        cmd.env_remove("DISPLAY");
        cmd.env_remove("WAYLAND_DISPLAY");
        cmd.env_remove("SSH_TTY");
        cmd.env_remove("SSH_CONNECTION");
        let child = pair.slave.spawn_command(cmd).expect("spawn lshed");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("reader");
        let writer = pair.master.take_writer().expect("writer");
        let parser = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (p2, r2) = (parser.clone(), raw.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut p) = p2.lock() {
                            p.process(&buf[..n]);
                        }
                        if let Ok(mut r) = r2.lock() {
                            r.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            }
        });
        Self {
            parser,
            raw,
            writer: Arc::new(Mutex::new(writer)),
            child,
            master: pair.master,
        }
    }

    /// The screen as text.
    pub fn screen(&self) -> String {
        self.parser
            .lock()
            .map(|p| p.screen().contents())
            .unwrap_or_default()
    }

    /// Waits until the screen satisfies `pred`; panics with the screen
    /// after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return;
            }
            if start.elapsed() > timeout {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for `needle` on screen.
    pub fn wait_text(&self, needle: &str) {
        self.wait_for(needle, Duration::from_secs(20), |s| s.contains(needle));
    }

    /// Sends raw bytes (keys) to the program.
    pub fn send(&mut self, bytes: &[u8]) {
        {
            let mut w = self.writer.lock().expect("pty writer");
            w.write_all(bytes).expect("write to pty");
            w.flush().expect("flush pty");
        }
        // Let the program read each burst separately, like typing.
        std::thread::sleep(Duration::from_millis(30));
    }

    /// Sends more bytes than the pty buffers, from another thread: if the
    /// program stops reading, the test times out waiting for the screen
    /// instead of hanging in the write.
    pub fn send_burst(&mut self, bytes: Vec<u8>) {
        let writer = self.writer.clone();
        std::thread::spawn(move || {
            if let Ok(mut w) = writer.lock() {
                let _ = w.write_all(&bytes);
                let _ = w.flush();
            }
        });
    }

    /// Types a key script, as `keys.rs` writes them (`"abc<C-s><F5><ret>"`),
    /// each key as the bytes an xterm sends for it.
    pub fn keys(&mut self, script: &str) {
        let keys = lshed::tui::keymap::parse_keys(script).expect("valid key script");
        for key in keys {
            self.send(&key_bytes(&key));
        }
    }

    /// Sends text as a bracketed paste.
    pub fn paste(&mut self, text: &str) {
        let mut v = b"\x1b[200~".to_vec();
        v.extend_from_slice(text.as_bytes());
        v.extend_from_slice(b"\x1b[201~");
        self.send(&v);
    }

    /// Waits for the process to exit (and reaps it).
    pub fn wait_exit(&mut self, timeout: Duration) -> portable_pty::ExitStatus {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader thread drain the last bytes.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("lshed did not exit; screen:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the terminal is back to normal: main screen, cursor shown,
    /// no mouse reporting, no bracketed paste, and cooked mode (echo and
    /// line editing on).
    pub fn assert_restored(&self) {
        let p = self.parser.lock().expect("parser");
        let s = p.screen();
        assert!(!s.alternate_screen(), "still on the alternate screen");
        assert!(!s.hide_cursor(), "cursor still hidden");
        assert!(!s.bracketed_paste(), "bracketed paste still on");
        assert_eq!(
            s.mouse_protocol_mode(),
            vt100::MouseProtocolMode::None,
            "mouse reporting still on"
        );
        if let Some(t) = self.master.get_termios() {
            use nix::sys::termios::LocalFlags;
            assert!(
                t.local_flags.contains(LocalFlags::ICANON),
                "raw mode left on (ICANON off)"
            );
            assert!(
                t.local_flags.contains(LocalFlags::ECHO),
                "raw mode left on (ECHO off)"
            );
        }
    }
}

impl Drop for PtyApp {
    /// A failed test must not leave the program running.
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The bytes an xterm sends for `key` (the subset the tests use: chars,
/// Ctrl/Alt + char, Enter, Esc, Tab, Backspace, arrows, Home/End,
/// PageUp/PageDown, Insert/Delete and F1-F12, with modifiers where xterm
/// encodes them).
pub fn key_bytes(key: &crossterm::event::KeyEvent) -> Vec<u8> {
    use crossterm::event::{KeyCode, KeyModifiers};
    let m = key.modifiers;
    // xterm's modifier parameter: 1 + shift + 2·alt + 4·ctrl.
    let param = 1
        + u8::from(m.contains(KeyModifiers::SHIFT))
        + 2 * u8::from(m.contains(KeyModifiers::ALT))
        + 4 * u8::from(m.contains(KeyModifiers::CONTROL));
    let csi = |tail: char| -> Vec<u8> {
        if param == 1 {
            format!("\x1b[{tail}").into_bytes()
        } else {
            format!("\x1b[1;{param}{tail}").into_bytes()
        }
    };
    let tilde = |n: u8| -> Vec<u8> {
        if param == 1 {
            format!("\x1b[{n}~").into_bytes()
        } else {
            format!("\x1b[{n};{param}~").into_bytes()
        }
    };
    match key.code {
        KeyCode::Char(c) if m.contains(KeyModifiers::CONTROL) && c.is_ascii_alphabetic() => {
            vec![(c.to_ascii_lowercase() as u8) & 0x1f]
        }
        KeyCode::Char(c) => {
            let mut out = Vec::new();
            if m.contains(KeyModifiers::ALT) {
                out.push(0x1b);
            }
            out.extend_from_slice(c.to_string().as_bytes());
            out
        }
        KeyCode::Enter => b"\r".to_vec(),
        KeyCode::Esc => b"\x1b".to_vec(),
        KeyCode::Tab => b"\t".to_vec(),
        KeyCode::BackTab => b"\x1b[Z".to_vec(),
        KeyCode::Backspace => b"\x7f".to_vec(),
        KeyCode::Up => csi('A'),
        KeyCode::Down => csi('B'),
        KeyCode::Right => csi('C'),
        KeyCode::Left => csi('D'),
        KeyCode::Home => csi('H'),
        KeyCode::End => csi('F'),
        KeyCode::Insert => tilde(2),
        KeyCode::Delete => tilde(3),
        KeyCode::PageUp => tilde(5),
        KeyCode::PageDown => tilde(6),
        KeyCode::F(n @ 1..=4) => format!("\x1bO{}", (b'P' + n - 1) as char).into_bytes(),
        KeyCode::F(n) => {
            let code = match n {
                5 => 15,
                6 => 17,
                7 => 18,
                8 => 19,
                9 => 20,
                10 => 21,
                11 => 23,
                _ => 24,
            };
            tilde(code)
        }
        other => panic!("no xterm bytes for {other:?} in the test harness"),
    }
}

#[cfg(test)]
mod tests {
    use super::key_bytes;

    #[test]
    fn key_scripts_become_the_bytes_a_terminal_sends() {
        let bytes: Vec<Vec<u8>> =
            lshed::tui::keymap::parse_keys("a<C-p><F5><F10><C-home><C-end><down><ret><esc>")
                .unwrap()
                .iter()
                .map(key_bytes)
                .collect();
        let want: Vec<&[u8]> = vec![
            b"a",
            b"\x10",
            b"\x1b[15~",
            b"\x1b[21~",
            b"\x1b[1;5H",
            b"\x1b[1;5F",
            b"\x1b[B",
            b"\r",
            b"\x1b",
        ];
        assert_eq!(bytes, want.iter().map(|b| b.to_vec()).collect::<Vec<_>>());
    }
}
