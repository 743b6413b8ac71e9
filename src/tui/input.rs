//! A one-line text input (prompts, find bar, palette filter).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// One line of editable text with a cursor (a char index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineInput {
    text: String,
    cursor: usize,
    /// The whole text is "selected": typing replaces it (as when find is
    /// seeded with the editor's selection).
    all_selected: bool,
}

/// What a key did to the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputOutcome {
    /// The text changed.
    Changed,
    /// Only the cursor moved.
    Moved,
    /// Not an editing key; the caller handles it.
    Ignored,
}

impl LineInput {
    /// An input holding `text`, cursor at the end.
    pub fn with_text(text: &str) -> Self {
        Self {
            text: text.to_string(),
            cursor: text.chars().count(),
            all_selected: false,
        }
    }

    /// Sets the text, selected, so that typing replaces it.
    pub fn set_selected(&mut self, s: &str) {
        self.set(s);
        self.all_selected = !s.is_empty();
    }

    /// Whether typing will replace the whole text.
    pub fn is_all_selected(&self) -> bool {
        self.all_selected
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Cursor as a char index.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    fn byte_at(&self, char_idx: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_idx)
            .map(|(b, _)| b)
            .unwrap_or(self.text.len())
    }

    /// Inserts text at the cursor (line breaks become spaces: this is a
    /// single line, and a pasted link may arrive wrapped).
    pub fn insert(&mut self, s: &str) {
        if std::mem::take(&mut self.all_selected) {
            self.text.clear();
            self.cursor = 0;
        }
        let clean: String = s
            .chars()
            .map(|c| {
                if c == '\n' || c == '\r' || c == '\t' {
                    ' '
                } else {
                    c
                }
            })
            .filter(|c| !c.is_control())
            .collect();
        let at = self.byte_at(self.cursor);
        self.text.insert_str(at, &clean);
        self.cursor += clean.chars().count();
    }

    /// Replaces the whole text.
    pub fn set(&mut self, s: &str) {
        self.text.clear();
        self.cursor = 0;
        self.insert(s);
    }

    /// Handles an editing key.
    pub fn handle_key(&mut self, key: &KeyEvent) -> InputOutcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        if self.all_selected && matches!(key.code, KeyCode::Backspace | KeyCode::Delete) {
            self.set("");
            return InputOutcome::Changed;
        }
        if !matches!(key.code, KeyCode::Char(_)) {
            self.all_selected = false;
        }
        let len = self.text.chars().count();
        match key.code {
            KeyCode::Char(c) if !ctrl && !alt => {
                let mut b = [0u8; 4];
                self.insert(c.encode_utf8(&mut b));
                InputOutcome::Changed
            }
            KeyCode::Char('u') if ctrl => {
                let at = self.byte_at(self.cursor);
                self.text.drain(..at);
                self.cursor = 0;
                InputOutcome::Changed
            }
            KeyCode::Backspace if self.cursor > 0 => {
                let start = if ctrl || alt {
                    self.word_start()
                } else {
                    self.cursor - 1
                };
                let (a, b) = (self.byte_at(start), self.byte_at(self.cursor));
                self.text.drain(a..b);
                self.cursor = start;
                InputOutcome::Changed
            }
            KeyCode::Delete if self.cursor < len => {
                let (a, b) = (self.byte_at(self.cursor), self.byte_at(self.cursor + 1));
                self.text.drain(a..b);
                InputOutcome::Changed
            }
            KeyCode::Left => {
                self.cursor = self.cursor.saturating_sub(1);
                InputOutcome::Moved
            }
            KeyCode::Right => {
                self.cursor = (self.cursor + 1).min(len);
                InputOutcome::Moved
            }
            KeyCode::Home => {
                self.cursor = 0;
                InputOutcome::Moved
            }
            KeyCode::End => {
                self.cursor = len;
                InputOutcome::Moved
            }
            KeyCode::Backspace | KeyCode::Delete => InputOutcome::Moved,
            _ => InputOutcome::Ignored,
        }
    }

    fn word_start(&self) -> usize {
        let chars: Vec<char> = self.text.chars().collect();
        let mut i = self.cursor;
        while i > 0 && chars[i - 1] == ' ' {
            i -= 1;
        }
        while i > 0 && chars[i - 1] != ' ' {
            i -= 1;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn edit_keys() {
        let mut i = LineInput::default();
        i.insert("héllo");
        i.handle_key(&key(KeyCode::Left));
        i.handle_key(&key(KeyCode::Backspace));
        assert_eq!(i.text(), "hélo");
        i.handle_key(&key(KeyCode::Home));
        i.handle_key(&key(KeyCode::Delete));
        assert_eq!(i.text(), "élo");
        i.insert("a\nb");
        assert_eq!(i.text(), "a bélo");
    }
}
