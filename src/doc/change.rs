//! One replacement of a `char` range: the unit every edit is made of.

/// Replace the chars `start..end` with `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// First char replaced.
    pub start: usize,
    /// One past the last char replaced (`start` for a pure insert).
    pub end: usize,
    /// The text put in their place.
    pub text: String,
}

/// Which side a position sticks to when text is inserted exactly at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assoc {
    /// Stay before inserted text.
    Before,
    /// Move after inserted text.
    After,
}

impl Change {
    /// Insert `text` at `at`.
    pub fn insert(at: usize, text: impl Into<String>) -> Self {
        Self {
            start: at,
            end: at,
            text: text.into(),
        }
    }

    /// Delete `start..end`.
    pub fn delete(start: usize, end: usize) -> Self {
        Self {
            start,
            end,
            text: String::new(),
        }
    }

    /// Replace `start..end` with `text`.
    pub fn replace(start: usize, end: usize, text: impl Into<String>) -> Self {
        Self {
            start,
            end,
            text: text.into(),
        }
    }

    /// True when applying it changes nothing.
    pub fn is_noop(&self) -> bool {
        self.start == self.end && self.text.is_empty()
    }

    /// Number of chars inserted.
    pub fn inserted_len(&self) -> usize {
        self.text.chars().count()
    }

    /// The same change with its range forced inside a text of `len` chars.
    pub fn clamped(&self, len: usize) -> Self {
        let start = self.start.min(len);
        let end = self.end.clamp(start, len);
        Self {
            start,
            end,
            text: self.text.clone(),
        }
    }

    /// Where position `pos` (in the text before the change) ends up after it.
    pub fn map_pos(&self, pos: usize, assoc: Assoc) -> usize {
        let ins = self.inserted_len();
        if pos < self.start {
            pos
        } else if pos > self.end {
            pos - (self.end - self.start) + ins
        } else if pos == self.start && self.start == self.end {
            match assoc {
                Assoc::Before => pos,
                Assoc::After => pos + ins,
            }
        } else if pos == self.end && pos != self.start {
            // After a replaced range: stays after the new text.
            self.start + ins
        } else {
            // Inside the replaced range (or at its start): collapse to an edge.
            match assoc {
                Assoc::Before => self.start,
                Assoc::After => self.start + ins,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_pos_through_insert_and_delete() {
        let ins = Change::insert(3, "ab");
        assert_eq!(ins.map_pos(2, Assoc::After), 2);
        assert_eq!(ins.map_pos(3, Assoc::Before), 3);
        assert_eq!(ins.map_pos(3, Assoc::After), 5);
        assert_eq!(ins.map_pos(4, Assoc::Before), 6);
        let del = Change::delete(2, 5);
        assert_eq!(del.map_pos(1, Assoc::After), 1);
        assert_eq!(del.map_pos(3, Assoc::After), 2);
        assert_eq!(del.map_pos(5, Assoc::Before), 2);
        assert_eq!(del.map_pos(7, Assoc::Before), 4);
    }
}
