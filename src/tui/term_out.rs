//! The terminal output of a frame: what ratatui writes, minus what the
//! terminal already shows, in one write.
//!
//! ratatui's `Terminal::draw` ends every frame by showing the cursor and
//! moving it, and its crossterm backend resets colours after every diff,
//! empty or not; so an idle editor redrawn on a timer wrote bytes to the
//! terminal four times a second (over SSH, packets), and a keystroke's
//! frame went out in several writes (the standard output's line buffer
//! holds 1 KiB). [`QuietBackend`] skips a diff with no cells and a cursor
//! change that changes nothing, and the frame is buffered whole and
//! flushed once. It also remembers the terminal's size between resize
//! events instead of asking before every frame.
//!
//! May depend on: ratatui. Nothing else of lshed.

use ratatui::backend::{Backend, ClearType, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};

/// A backend wrapper that leaves out output that would not change the
/// screen (see the module docs).
#[derive(Debug)]
pub struct QuietBackend<B> {
    inner: B,
    /// Cursor visibility as last set (`None`: unknown, after a clear).
    cursor_shown: Option<bool>,
    /// Where the cursor was last put; `None` once cells were drawn since
    /// (drawing moves the terminal's cursor).
    cursor_at: Option<Position>,
    /// The terminal's size as last asked. ratatui asks before every frame,
    /// and crossterm opens `/dev/tty` to answer: a tenth of a keystroke's
    /// time. Asked again after [`QuietBackend::size_changed`].
    size: std::cell::Cell<Option<Size>>,
}

impl<B: Backend> QuietBackend<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            cursor_shown: None,
            cursor_at: None,
            size: std::cell::Cell::new(None),
        }
    }

    /// The terminal was resized: ask its size again before the next frame.
    pub fn size_changed(&self) {
        self.size.set(None);
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: Backend> Backend for QuietBackend<B> {
    type Error = B::Error;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        let mut content = content.peekable();
        if content.peek().is_none() {
            return Ok(());
        }
        self.cursor_at = None;
        self.inner.draw(content)
    }

    fn append_lines(&mut self, n: u16) -> Result<(), Self::Error> {
        self.cursor_at = None;
        self.inner.append_lines(n)
    }

    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        if self.cursor_shown == Some(false) {
            return Ok(());
        }
        self.cursor_shown = Some(false);
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        if self.cursor_shown == Some(true) {
            return Ok(());
        }
        self.cursor_shown = Some(true);
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> Result<Position, Self::Error> {
        self.inner.get_cursor_position()
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Self::Error> {
        let position = position.into();
        if self.cursor_at == Some(position) {
            return Ok(());
        }
        self.cursor_at = Some(position);
        self.inner.set_cursor_position(position)
    }

    fn clear(&mut self) -> Result<(), Self::Error> {
        // (A full clear follows a return from a suspend or a shell, when
        // the terminal may have been resized without an event reaching
        // us: ask its size again too.)
        self.cursor_at = None;
        self.cursor_shown = None;
        self.size.set(None);
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Self::Error> {
        self.cursor_at = None;
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> Result<Size, Self::Error> {
        if let Some(size) = self.size.get() {
            return Ok(size);
        }
        let size = self.inner.size()?;
        self.size.set(Some(size));
        Ok(size)
    }

    fn window_size(&mut self) -> Result<WindowSize, Self::Error> {
        self.inner.window_size()
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::CrosstermBackend;
    use ratatui::Terminal;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// What the backend wrote, readable from the test.
    #[derive(Clone, Default)]
    struct Out(Rc<RefCell<Vec<u8>>>);

    impl std::io::Write for Out {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Draws `text` with the cursor at (2, 0); returns what was written.
    fn frame(
        term: &mut Terminal<QuietBackend<CrosstermBackend<Out>>>,
        out: &Out,
        text: &str,
    ) -> String {
        out.0.borrow_mut().clear();
        term.draw(|f| {
            f.render_widget(ratatui::widgets::Paragraph::new(text.to_string()), f.area());
            f.set_cursor_position((2, 0));
        })
        .expect("draw");
        String::from_utf8_lossy(&out.0.borrow()).into_owned()
    }

    #[test]
    fn an_unchanged_frame_writes_nothing_and_a_change_writes_only_itself() {
        let out = Out::default();
        let backend = QuietBackend::new(CrosstermBackend::new(out.clone()));
        let mut term = Terminal::with_options(
            backend,
            ratatui::TerminalOptions {
                viewport: ratatui::Viewport::Fixed(ratatui::layout::Rect::new(0, 0, 20, 3)),
            },
        )
        .expect("terminal");
        assert!(frame(&mut term, &out, "hello").contains("hello"));
        assert_eq!(frame(&mut term, &out, "hello"), "", "an idle frame");
        let changed = frame(&mut term, &out, "hellO");
        assert!(
            changed.contains('O') && !changed.contains("hell"),
            "{changed:?}"
        );
    }
}
