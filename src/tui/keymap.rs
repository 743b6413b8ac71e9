//! Key chords and the keymap: which chord runs which [`Command`].
//!
//! Chords are written like `ctrl+s`, `shift+alt+left`, `f1`, `pagedown`.
//! The defaults are VS Code-like; the config's `[keys]` table overrides
//! them by command name (`"ctrl+k" = "delete_line"`, or `"ctrl+k" = "none"`
//! to unbind).

use std::collections::HashMap;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::editor::Command;

/// A key plus modifiers, normalized so that what the terminal sends and
/// what the config says compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyChord {
    /// The key.
    pub code: KeyCode,
    /// Ctrl / Alt / Shift.
    pub mods: KeyModifiers,
}

impl KeyChord {
    /// Builds a normalized chord.
    pub fn new(code: KeyCode, mods: KeyModifiers) -> Self {
        let mut mods = mods & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        let code = match code {
            KeyCode::Char(c) => {
                // Shift is already in the character itself; terminals send
                // the same byte for Ctrl+S and Ctrl+Shift+S.
                mods.remove(KeyModifiers::SHIFT);
                if mods.contains(KeyModifiers::CONTROL) {
                    KeyCode::Char(c.to_ascii_lowercase())
                } else {
                    KeyCode::Char(c)
                }
            }
            KeyCode::BackTab => {
                mods.insert(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            other => other,
        };
        Self { code, mods }
    }

    /// From a terminal key event.
    pub fn from_event(ev: &KeyEvent) -> Self {
        Self::new(ev.code, ev.modifiers)
    }

    /// Parses `ctrl+shift+z`, `f1`, `alt+left`...
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty key".into());
        }
        let parts: Vec<&str> = s.split('+').collect();
        // "ctrl++" means Ctrl and the plus key.
        let (mod_parts, key) = if s.ends_with("++") {
            (&parts[..parts.len() - 2], "+")
        } else {
            (&parts[..parts.len() - 1], parts[parts.len() - 1])
        };
        let mut mods = KeyModifiers::NONE;
        for m in mod_parts {
            match m.to_ascii_lowercase().as_str() {
                "ctrl" | "control" | "c" => mods |= KeyModifiers::CONTROL,
                "alt" | "meta" | "a" | "m" => mods |= KeyModifiers::ALT,
                "shift" | "s" => mods |= KeyModifiers::SHIFT,
                other => return Err(format!("unknown modifier '{other}' in '{s}'")),
            }
        }
        let lower = key.to_ascii_lowercase();
        let code = match lower.as_str() {
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pageup" | "pgup" => KeyCode::PageUp,
            "pagedown" | "pgdn" => KeyCode::PageDown,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "enter" | "ret" | "return" => KeyCode::Enter,
            "esc" | "escape" => KeyCode::Esc,
            "backspace" | "bs" => KeyCode::Backspace,
            "delete" | "del" => KeyCode::Delete,
            "insert" | "ins" => KeyCode::Insert,
            "space" => KeyCode::Char(' '),
            "plus" => KeyCode::Char('+'),
            "minus" => KeyCode::Char('-'),
            f if f.starts_with('f')
                && f.len() > 1
                && f[1..].chars().all(|c| c.is_ascii_digit()) =>
            {
                let n: u8 = f[1..]
                    .parse()
                    .map_err(|_| format!("bad function key '{key}'"))?;
                if !(1..=24).contains(&n) {
                    return Err(format!("no such function key '{key}'"));
                }
                KeyCode::F(n)
            }
            _ => {
                let mut chars = key.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => KeyCode::Char(c),
                    _ => return Err(format!("unknown key '{key}' in '{s}'")),
                }
            }
        };
        let code = if code == KeyCode::Tab && mods.contains(KeyModifiers::SHIFT) {
            KeyCode::BackTab
        } else {
            code
        };
        Ok(Self::new(code, mods))
    }
}

impl fmt::Display for KeyChord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("Ctrl+")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("Alt+")?;
        }
        if self.mods.contains(KeyModifiers::SHIFT) && self.code != KeyCode::BackTab {
            f.write_str("Shift+")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) => write!(f, "{}", c.to_ascii_uppercase()),
            KeyCode::F(n) => write!(f, "F{n}"),
            KeyCode::BackTab => f.write_str("Shift+Tab"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// The default bindings.
pub const DEFAULT_KEYS: &[(&str, Command)] = &[
    ("f1", Command::CommandPalette),
    ("f2", Command::Help),
    ("ctrl+p", Command::QuickOpen),
    ("ctrl+s", Command::Save),
    ("ctrl+n", Command::NewFile),
    ("ctrl+w", Command::CloseBuffer),
    ("alt+right", Command::NextBuffer),
    ("ctrl+pagedown", Command::NextBuffer),
    ("alt+left", Command::PreviousBuffer),
    ("ctrl+pageup", Command::PreviousBuffer),
    ("ctrl+q", Command::Quit),
    ("ctrl+z", Command::Undo),
    ("ctrl+y", Command::Redo),
    ("ctrl+c", Command::Copy),
    ("ctrl+x", Command::Cut),
    ("ctrl+v", Command::Paste),
    ("ctrl+a", Command::SelectAll),
    ("ctrl+f", Command::Find),
    ("f3", Command::FindNext),
    ("shift+f3", Command::FindPrevious),
    ("ctrl+r", Command::Replace),
    ("ctrl+h", Command::Replace),
    ("ctrl+g", Command::GotoLine),
    ("tab", Command::Indent),
    ("shift+tab", Command::Outdent),
    ("ctrl+k", Command::DeleteLine),
    ("ctrl+d", Command::DuplicateLine),
    ("ctrl+b", Command::ToggleFileTree),
    ("ctrl+e", Command::FocusFileTree),
    ("alt+z", Command::ToggleSoftWrap),
    ("left", Command::MoveLeft),
    ("right", Command::MoveRight),
    ("up", Command::MoveUp),
    ("down", Command::MoveDown),
    ("shift+left", Command::SelectLeft),
    ("shift+right", Command::SelectRight),
    ("shift+up", Command::SelectUp),
    ("shift+down", Command::SelectDown),
    ("ctrl+left", Command::WordLeft),
    ("ctrl+right", Command::WordRight),
    ("ctrl+shift+left", Command::SelectWordLeft),
    ("ctrl+shift+right", Command::SelectWordRight),
    ("home", Command::LineStart),
    ("end", Command::LineEnd),
    ("shift+home", Command::SelectLineStart),
    ("shift+end", Command::SelectLineEnd),
    ("pageup", Command::PageUp),
    ("pagedown", Command::PageDown),
    ("shift+pageup", Command::SelectPageUp),
    ("shift+pagedown", Command::SelectPageDown),
    ("ctrl+home", Command::DocStart),
    ("ctrl+end", Command::DocEnd),
    ("ctrl+shift+home", Command::SelectDocStart),
    ("ctrl+shift+end", Command::SelectDocEnd),
    ("enter", Command::InsertNewline),
    ("backspace", Command::DeleteBackward),
    ("delete", Command::DeleteForward),
    ("ctrl+backspace", Command::DeleteWordBackward),
    ("alt+backspace", Command::DeleteWordBackward),
    ("ctrl+delete", Command::DeleteWordForward),
    ("esc", Command::Escape),
    ("f5", Command::Share),
    ("f6", Command::Join),
    ("f7", Command::Participants),
    ("f8", Command::FollowParticipant),
    ("f9", Command::Leave),
    ("f10", Command::EndSession),
    ("alt+l", Command::CopyInviteLink),
    ("alt+o", Command::OpenJoinPage),
];

/// Chord → command, with the user's overrides applied.
#[derive(Debug, Clone)]
pub struct Keymap {
    map: HashMap<KeyChord, Command>,
}

impl Keymap {
    /// Defaults plus overrides (`chord → command name` or `"none"`).
    /// Returns the keymap and a warning per bad entry.
    pub fn with_overrides<'a>(
        overrides: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> (Self, Vec<String>) {
        let mut map = HashMap::new();
        for (chord, cmd) in DEFAULT_KEYS {
            if let Ok(k) = KeyChord::parse(chord) {
                map.insert(k, *cmd);
            }
        }
        let mut warnings = Vec::new();
        for (chord, name) in overrides {
            let key = match KeyChord::parse(chord) {
                Ok(k) => k,
                Err(e) => {
                    warnings.push(format!("[keys] {chord}: {e}"));
                    continue;
                }
            };
            if name == "none" {
                map.remove(&key);
                continue;
            }
            match Command::from_name(name) {
                Some(cmd) => {
                    map.insert(key, cmd);
                }
                None => warnings.push(format!("[keys] {chord}: unknown command '{name}'")),
            }
        }
        (Self { map }, warnings)
    }

    /// The default keymap.
    pub fn defaults() -> Self {
        Self::with_overrides(std::iter::empty()).0
    }

    /// The command bound to a chord.
    pub fn lookup(&self, chord: &KeyChord) -> Option<Command> {
        self.map.get(chord).copied()
    }

    /// Every chord bound to `cmd`, shortest first, for display.
    pub fn keys_for(&self, cmd: Command) -> Vec<String> {
        let mut keys: Vec<String> = self
            .map
            .iter()
            .filter(|(_, c)| **c == cmd)
            .map(|(k, _)| k.to_string())
            .collect();
        keys.sort_by_key(|k| (k.len(), k.clone()));
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_chord_parses_and_none_repeats() {
        let mut seen = std::collections::HashMap::new();
        for (chord, cmd) in DEFAULT_KEYS {
            let key = KeyChord::parse(chord)
                .unwrap_or_else(|e| panic!("default chord {chord:?} does not parse: {e}"));
            if let Some(other) = seen.insert(key, *cmd) {
                panic!("{chord:?} is bound twice: {other:?} and {cmd:?}");
            }
        }
        let (_, warnings) = Keymap::with_overrides(std::iter::empty());
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn parse_and_display() {
        let k = KeyChord::parse("ctrl+shift+left").unwrap();
        assert_eq!(k.to_string(), "Ctrl+Shift+Left");
        // Terminals send the same byte for Ctrl+Z and Ctrl+Shift+Z.
        assert_eq!(
            KeyChord::parse("ctrl+shift+z").unwrap().to_string(),
            "Ctrl+Z"
        );
        assert_eq!(KeyChord::parse("F1").unwrap().code, KeyCode::F(1));
        assert_eq!(KeyChord::parse("shift+tab").unwrap().code, KeyCode::BackTab);
        assert!(KeyChord::parse("hyper+x").is_err());
        assert!(KeyChord::parse("ctrl+nope").is_err());
    }

    #[test]
    fn terminal_events_match_config_chords() {
        // Ctrl+S arrives as Char('s') + CONTROL; uppercase letters carry SHIFT.
        let ev = KeyEvent::new(
            KeyCode::Char('S'),
            KeyModifiers::CONTROL | KeyModifiers::SHIFT,
        );
        assert_eq!(
            KeyChord::from_event(&ev),
            KeyChord::parse("ctrl+s").unwrap()
        );
        let ev = KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT);
        assert_eq!(
            KeyChord::from_event(&ev),
            KeyChord::parse("shift+tab").unwrap()
        );
    }

    #[test]
    fn overrides_apply_and_warn() {
        let mut o = std::collections::BTreeMap::new();
        o.insert("ctrl+j".to_string(), "delete_line".to_string());
        o.insert("ctrl+k".to_string(), "none".to_string());
        o.insert("ctrl+l".to_string(), "nope".to_string());
        let (km, warnings) = Keymap::with_overrides(&o);
        assert_eq!(
            km.lookup(&KeyChord::parse("ctrl+j").unwrap()),
            Some(Command::DeleteLine)
        );
        assert_eq!(km.lookup(&KeyChord::parse("ctrl+k").unwrap()), None);
        assert_eq!(warnings.len(), 1);
    }
}

/// Parses a key script such as `hello<ret><C-s>` into key events, for
/// tests and scripted sessions. Plain characters type themselves; `<...>`
/// names a key with optional `C-` / `A-` / `S-` prefixes (`<C-S-left>`),
/// and `<lt>` is a literal `<`.
pub fn parse_keys(script: &str) -> Result<Vec<KeyEvent>, String> {
    let mut out = Vec::new();
    let mut chars = script.chars();
    while let Some(c) = chars.next() {
        if c != '<' {
            out.push(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
            continue;
        }
        let mut name = String::new();
        let mut closed = false;
        for d in chars.by_ref() {
            if d == '>' {
                closed = true;
                break;
            }
            name.push(d);
        }
        if !closed {
            return Err(format!("unclosed '<{name}' in key script"));
        }
        let mut mods = KeyModifiers::NONE;
        let mut rest = name.as_str();
        loop {
            if let Some(r) = rest.strip_prefix("C-") {
                mods |= KeyModifiers::CONTROL;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("A-") {
                mods |= KeyModifiers::ALT;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("S-") {
                mods |= KeyModifiers::SHIFT;
                rest = r;
            } else {
                break;
            }
        }
        let code = match rest {
            "lt" => KeyCode::Char('<'),
            "gt" => KeyCode::Char('>'),
            "ret" | "enter" => KeyCode::Enter,
            "esc" => KeyCode::Esc,
            "tab" if mods.contains(KeyModifiers::SHIFT) => KeyCode::BackTab,
            "tab" => KeyCode::Tab,
            "bs" | "backspace" => KeyCode::Backspace,
            "del" | "delete" => KeyCode::Delete,
            "space" => KeyCode::Char(' '),
            other => match KeyChord::parse(other) {
                Ok(k) => k.code,
                Err(e) => return Err(e),
            },
        };
        out.push(KeyEvent::new(code, mods));
    }
    Ok(out)
}

#[cfg(test)]
mod script_tests {
    use super::*;

    #[test]
    fn parses_scripts() {
        let keys = parse_keys("a<C-s><S-left><lt><F1><ret>").unwrap();
        assert_eq!(keys.len(), 6);
        assert_eq!(
            keys[1],
            KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL)
        );
        assert_eq!(keys[2], KeyEvent::new(KeyCode::Left, KeyModifiers::SHIFT));
        assert_eq!(keys[3].code, KeyCode::Char('<'));
        assert!(parse_keys("<C-s").is_err());
    }
}
