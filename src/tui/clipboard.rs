//! The system clipboard, with fallbacks that work over SSH.
//!
//! Copy always fills the editor's internal register. It also goes to the
//! system clipboard through arboard when a display is reachable, and is
//! emitted as an OSC 52 escape (`ESC ] 52 ; c ; BASE64 BEL`) when running
//! over SSH or when arboard is unavailable, so the clipboard of the
//! person's own terminal receives it (tmux with `set-clipboard on` stores
//! it too). Plain OSC 52, not DCS-wrapped: tmux 3.3 handles the plain form.

use base64::Engine;

/// OSC 52 payloads above this many bytes are not sent: many terminals
/// drop or truncate them, and a huge escape can stall a slow SSH link.
pub const MAX_OSC52_BYTES: usize = 100_000;

/// Where a copy went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// The system clipboard (arboard) took it.
    pub system: bool,
    /// An OSC 52 escape to write to the terminal.
    pub osc52: Option<String>,
    /// Too large for OSC 52.
    pub too_large_for_osc52: bool,
}

/// System clipboard access.
pub struct Clipboard {
    system: Option<arboard::Clipboard>,
    over_ssh: bool,
}

impl std::fmt::Debug for Clipboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clipboard")
            .field("system", &self.system.is_some())
            .field("over_ssh", &self.over_ssh)
            .finish()
    }
}

impl Clipboard {
    /// Connects to the system clipboard if a display is reachable.
    pub fn detect() -> Self {
        let has_display = std::env::var_os("DISPLAY").is_some()
            || std::env::var_os("WAYLAND_DISPLAY").is_some()
            || cfg!(target_os = "macos")
            || cfg!(windows);
        let system = if has_display {
            arboard::Clipboard::new().ok()
        } else {
            None
        };
        let over_ssh =
            std::env::var_os("SSH_TTY").is_some() || std::env::var_os("SSH_CONNECTION").is_some();
        Self { system, over_ssh }
    }

    /// No system clipboard at all (tests): OSC 52 only.
    pub fn none() -> Self {
        Self {
            system: None,
            over_ssh: false,
        }
    }

    /// Whether a system clipboard is connected.
    pub fn has_system(&self) -> bool {
        self.system.is_some()
    }

    /// Copies `text`.
    pub fn copy(&mut self, text: &str) -> CopyReport {
        let mut report = CopyReport::default();
        if let Some(cb) = self.system.as_mut() {
            report.system = cb.set_text(text.to_string()).is_ok();
        }
        if !report.system || self.over_ssh {
            match osc52(text) {
                Some(seq) => report.osc52 = Some(seq),
                None => report.too_large_for_osc52 = true,
            }
        }
        report
    }

    /// Text from the system clipboard, if there is one.
    pub fn paste(&mut self) -> Option<String> {
        self.system.as_mut().and_then(|cb| cb.get_text().ok())
    }
}

/// The OSC 52 escape that sets the terminal's clipboard to `text`.
pub fn osc52(text: &str) -> Option<String> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    if b64.len() > MAX_OSC52_BYTES {
        return None;
    }
    Some(format!("\x1b]52;c;{b64}\x07"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_is_plain_and_base64() {
        assert_eq!(osc52("hi").unwrap(), "\x1b]52;c;aGk=\x07");
        assert!(osc52(&"x".repeat(MAX_OSC52_BYTES)).is_none());
    }

    #[test]
    fn without_system_clipboard_copy_emits_osc52() {
        let mut cb = Clipboard::none();
        let r = cb.copy("link");
        assert!(!r.system);
        assert!(r.osc52.is_some());
    }
}
