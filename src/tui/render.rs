//! Drawing the application into a ratatui frame: tabs, file tree, text with
//! highlighting / selection / matches, find bar, status line, overlays and
//! notifications. Works at any size down to 20x5 (panes drop out as space
//! runs short).

use ratatui::layout::{Position, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;
use unicode_segmentation::UnicodeSegmentation;

use super::app::{App, Focus, Level, Overlay, Picker};
use crate::editor::syntax::Span as HlSpan;
use crate::editor::{text, Buffer, Command};

/// Widest the file tree gets.
pub const TREE_MAX_WIDTH: u16 = 32;
/// Below this terminal width the tree is not drawn.
pub const TREE_MIN_TERMINAL_WIDTH: u16 = 50;
/// Lines kept visible above/below the cursor when scrolling.
pub const SCROLL_OFF: usize = 2;

impl App {
    /// Draws the whole screen.
    pub fn render(&mut self, frame: &mut Frame<'_>) {
        let area = frame.area();
        if area.width == 0 || area.height == 0 {
            return;
        }
        fill_style(frame.buffer_mut(), area, self.theme.style("ui.background"));
        let status = Rect::new(area.x, area.y + area.height - 1, area.width, 1);
        let mut body = Rect::new(area.x, area.y, area.width, area.height - 1);
        // Tabs only when there is room for text under them.
        if body.height >= 3 {
            self.render_tabs(frame, Rect::new(body.x, body.y, body.width, 1));
            self.layout.tabs_y = body.y;
            body.y += 1;
            body.height -= 1;
        } else {
            self.layout.tabs.clear();
            self.layout.tabs_y = u16::MAX;
        }
        if let Some(find) = &self.find {
            let rows = if find.replace_mode { 2 } else { 1 };
            if body.height > rows + 1 {
                body.height -= rows;
                let r = Rect::new(body.x, body.y + body.height, body.width, rows);
                self.render_find(frame, r);
            }
        }
        let show_tree =
            self.tree_visible && self.tree.is_some() && area.width >= TREE_MIN_TERMINAL_WIDTH;
        if show_tree {
            let w = (area.width / 4).clamp(16, TREE_MAX_WIDTH);
            let tree_area = Rect::new(body.x, body.y, w, body.height);
            self.render_tree(frame, tree_area);
            body.x += w;
            body.width -= w;
        } else {
            self.layout.tree = Rect::default();
        }
        self.render_editor(frame, body);
        self.render_status(frame, status);
        self.render_overlay(frame, area);
        self.render_notices(
            frame,
            Rect::new(area.x, area.y, area.width, area.height - 1),
        );
    }

    fn render_tabs(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let base = self.theme.style("ui.tabs");
        let active = self.theme.style("ui.tabs.active");
        let buf = frame.buffer_mut();
        fill_style(buf, area, base);
        self.layout.tabs.clear();
        let mut x = area.x;
        let end = area.x + area.width;
        for (i, b) in self
            .editor
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.hidden)
        {
            let dirty = if b.is_dirty() { " ●" } else { "" };
            let label = format!(" {}{} ", b.display_name(), dirty);
            let w = text::str_width(&label) as u16;
            if x >= end {
                break;
            }
            let style = if Some(i) == self.editor.active {
                active
            } else {
                base
            };
            let (nx, _) = buf.set_stringn(x, area.y, &label, (end - x) as usize, style);
            self.layout.tabs.push((x, nx.min(x + w), i));
            x = nx;
            if x < end {
                buf.set_stringn(x, area.y, "│", 1, base);
                x += 1;
            }
        }
        if self.layout.tabs.is_empty() {
            buf.set_stringn(area.x, area.y, " lshed ", area.width as usize, base);
        }
    }

    fn render_tree(&mut self, frame: &mut Frame<'_>, area: Rect) {
        self.layout.tree = area;
        let Some(tree) = &self.tree else { return };
        let rows = tree.visible();
        let h = area.height as usize;
        if self.tree_selected >= rows.len() {
            self.tree_selected = rows.len().saturating_sub(1);
        }
        if self.tree_selected < self.tree_scroll {
            self.tree_scroll = self.tree_selected;
        } else if h > 0 && self.tree_selected >= self.tree_scroll + h {
            self.tree_scroll = self.tree_selected + 1 - h;
        }
        let base = self.theme.style("ui.tree");
        let dir_style = self.theme.style("ui.tree.dir");
        let sel_style = self.theme.style("ui.tree.selected");
        let border = self.theme.style("ui.popup.border");
        let focused = self.focus == Focus::Tree;
        let text_w = area.width.saturating_sub(1);
        let buf = frame.buffer_mut();
        fill_style(buf, area, base);
        let open_path = self.editor.buffer().and_then(|b| b.path.clone());
        for (i, row) in rows.iter().enumerate().skip(self.tree_scroll).take(h) {
            let y = area.y + (i - self.tree_scroll) as u16;
            let icon = if row.is_dir {
                if row.expanded {
                    "▾ "
                } else {
                    "▸ "
                }
            } else {
                "  "
            };
            let label = format!("{}{}{}", "  ".repeat(row.depth), icon, row.name);
            let mut style = if row.is_dir { dir_style } else { base };
            if open_path.as_ref() == Some(&row.path) {
                style = style.add_modifier(Modifier::BOLD);
            }
            if i == self.tree_selected {
                style = if focused {
                    sel_style
                } else {
                    style.add_modifier(Modifier::UNDERLINED)
                };
                buf.set_style(Rect::new(area.x, y, text_w, 1), style);
            }
            buf.set_stringn(area.x, y, &label, text_w as usize, style);
        }
        if rows.is_empty() && h > 0 {
            buf.set_stringn(area.x, area.y, " (empty folder)", text_w as usize, base);
        }
        for y in area.y..area.y + area.height {
            buf.set_stringn(area.x + area.width - 1, y, "│", 1, border);
        }
    }

    fn render_editor(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let line_numbers = self.editor.config.line_numbers;
        let wrap = self.editor.config.soft_wrap;
        let focused = self.focus == Focus::Editor && self.overlay.is_none();
        let find_open = self.find.is_some();
        let theme = &self.theme;
        let Some(idx) = self.editor.active else {
            self.layout.text = area;
            self.layout.rows.clear();
            render_welcome(frame, area, self);
            return;
        };
        let buf = &mut self.editor.buffers[idx];
        let rope_lines = buf.rope().len_lines();
        let gutter_w = if line_numbers && area.width >= 12 {
            (digits(rope_lines).max(3) + 2) as u16
        } else {
            0
        };
        let text_area = Rect::new(
            area.x + gutter_w,
            area.y,
            area.width.saturating_sub(gutter_w),
            area.height,
        );
        self.layout.text = text_area;
        if text_area.width == 0 || text_area.height == 0 {
            self.layout.rows.clear();
            return;
        }
        if !buf.view.scrolled_by_user {
            scroll_to_cursor(buf, text_area, wrap);
        }
        let top = buf.view.top_line.min(rope_lines.saturating_sub(1));
        let height = text_area.height as usize;
        let highlights = buf.highlighter.highlight_lines(buf.doc.rope(), top, height);
        if find_open || !buf.matches.query().is_empty() {
            buf.matches.ensure(buf.doc.rope());
        }
        let styles = LineStyles {
            text: theme.style("ui.text"),
            selection: theme.style("ui.selection"),
            cursorline: theme.style("ui.cursorline"),
            matched: theme.style("ui.match"),
            matched_current: theme.style("ui.match.current"),
            whitespace: theme.style("ui.whitespace"),
            linenr: theme.style("ui.linenr"),
            linenr_current: theme.style("ui.linenr.current"),
        };
        let rope = buf.doc.rope();
        let sel = buf.selection;
        let cursor = sel.head.min(rope.len_chars());
        let cursor_line = rope.char_to_line(cursor);
        let mut rows: Vec<Option<(usize, usize)>> = Vec::with_capacity(height);
        let mut cursor_pos: Option<(u16, u16)> = None;
        let fb = frame.buffer_mut();
        let mut line = top;
        let mut hl_iter = highlights.into_iter();
        while rows.len() < height && line < rope_lines {
            let spans = hl_iter.next().unwrap_or_default();
            let line_start = rope.line_to_char(line);
            let content = text::line_without_break(rope, line);
            let line_end = line_start + content.len_chars();
            let is_cursor_line = line == cursor_line;
            let matches: &[(usize, usize)] = if find_open {
                buf.matches
                    .in_range(line_start, line_end.max(line_start + 1))
            } else {
                &[]
            };
            // Lay out graphemes into rows.
            let row_w = text_area.width as usize;
            let first_row = rows.len();
            let mut row_start_col = if wrap { 0 } else { buf.view.left_col };
            let mut col = 0usize;
            let mut off = 0usize;
            let mut span_i = 0usize;
            let mut y = text_area.y + rows.len() as u16;
            rows.push(Some((line, row_start_col)));
            if is_cursor_line {
                fill_style(fb, Rect::new(area.x, y, area.width, 1), styles.cursorline);
            }
            // The line as one string (borrowed when it lies in one rope
            // chunk), cut to what can show: graphemes are then found in
            // place, without a rope lookup or an allocation per char.
            let shown = if wrap {
                height * row_w
            } else {
                row_start_col + row_w
            };
            let visible = content.slice(..content.len_chars().min(shown.saturating_mul(2) + 256));
            let line_text: std::borrow::Cow<'_, str> = match visible.as_str() {
                Some(s) => s.into(),
                None => visible.to_string().into(),
            };
            // (ASCII, the usual case, is one grapheme per byte: a line
            // without its break holds no "\r\n".)
            let ascii = line_text.is_ascii();
            let mut bytes = (0..line_text.len()).map(|i| &line_text[i..i + 1]);
            let mut clusters = line_text.graphemes(true);
            let next_grapheme = move || if ascii { bytes.next() } else { clusters.next() };
            for g in std::iter::from_fn(next_grapheme) {
                let glen = g.chars().count();
                let w = text::grapheme_width(g, col, buf.tab_width);
                let abs = line_start + off;
                if wrap && col + w > row_start_col + row_w && col > row_start_col {
                    // Next visual row.
                    if rows.len() >= height {
                        break;
                    }
                    row_start_col = col;
                    y = text_area.y + rows.len() as u16;
                    rows.push(Some((line, row_start_col)));
                    if is_cursor_line {
                        fill_style(fb, Rect::new(area.x, y, area.width, 1), styles.cursorline);
                    }
                }
                if !wrap && col >= row_start_col + row_w {
                    break;
                }
                if abs == cursor && col >= row_start_col && col < row_start_col + row_w {
                    cursor_pos = Some((text_area.x + (col - row_start_col) as u16, y));
                }
                if col + w > row_start_col {
                    let mut style = styles.text;
                    if is_cursor_line {
                        style = style.patch(styles.cursorline);
                    }
                    while span_i < spans.len() && spans[span_i].end <= off {
                        span_i += 1;
                    }
                    if let Some(s) = spans.get(span_i) {
                        if s.start <= off {
                            style = style.patch(syntax_style(theme, s));
                        }
                    }
                    if let Some(m) = matches.iter().find(|m| m.0 <= abs && abs < m.1) {
                        let current = m.0 == sel.start() && m.1 == sel.end();
                        style = style.patch(if current {
                            styles.matched_current
                        } else {
                            styles.matched
                        });
                    }
                    if abs >= sel.start() && abs < sel.end() {
                        style = style.patch(styles.selection);
                    }
                    let x = text_area.x + col.saturating_sub(row_start_col) as u16;
                    let visible_w = (col + w).min(row_start_col + row_w) - col.max(row_start_col);
                    let symbol: std::borrow::Cow<'_, str> = if g == "\t" {
                        " ".repeat(visible_w).into()
                    } else if col < row_start_col || visible_w < w {
                        // A wide char cut by the edge: blank it.
                        " ".repeat(visible_w).into()
                    } else if g.chars().all(|c| c.is_control()) {
                        style = style.patch(styles.whitespace);
                        control_picture(g).into()
                    } else {
                        g.into()
                    };
                    match fb.cell_mut((x, y)) {
                        // One cell, one grapheme (nearly every cell): set
                        // it directly; `set_stringn` would segment and
                        // measure the grapheme again.
                        Some(cell) if w == 1 && visible_w == 1 => {
                            cell.set_symbol(&symbol);
                            cell.set_style(style);
                        }
                        _ => {
                            fb.set_stringn(x, y, &symbol, visible_w, style);
                        }
                    }
                }
                col += w;
                off += glen;
            }
            // Selected line break: show one cell so a selection of empty lines is visible.
            let after = line_end;
            if after >= sel.start()
                && after < sel.end()
                && col >= row_start_col
                && col < row_start_col + row_w
            {
                let x = text_area.x + (col - row_start_col) as u16;
                let y = text_area.y + rows.len() as u16 - 1;
                fb.set_stringn(x, y, " ", 1, styles.text.patch(styles.selection));
            }
            if cursor == line_end && is_cursor_line && cursor_pos.is_none() {
                if col >= row_start_col && col < row_start_col + row_w {
                    let y = text_area.y + rows.len() as u16 - 1;
                    cursor_pos = Some((text_area.x + (col - row_start_col) as u16, y));
                } else if wrap && col == row_start_col + row_w && rows.len() < height {
                    let y = text_area.y + rows.len() as u16;
                    rows.push(Some((line, col)));
                    cursor_pos = Some((text_area.x, y));
                }
            }
            if gutter_w > 0 {
                let y0 = text_area.y + first_row as u16;
                let num = format!("{:>w$} ", line + 1, w = gutter_w as usize - 1);
                let st = if is_cursor_line {
                    styles.linenr_current
                } else {
                    styles.linenr
                };
                fb.set_stringn(area.x, y0, &num, gutter_w as usize, st);
            }
            line += 1;
        }
        // Rows past the end of the text.
        while rows.len() < height {
            rows.push(None);
        }
        draw_remote_cursors(fb, buf, text_area, &rows, theme);
        self.layout.rows = rows;
        if focused && !find_open {
            if let Some((x, y)) = cursor_pos {
                frame.set_cursor_position(Position::new(x, y));
            }
        } else if let Some((x, y)) = cursor_pos {
            // Still show where the cursor is when something else has focus.
            if let Some(cell) = frame.buffer_mut().cell_mut((x, y)) {
                cell.set_style(Style::default().add_modifier(Modifier::REVERSED));
            }
        }
    }

    fn render_find(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let Some(find) = &self.find else { return };
        let style = self.theme.style("ui.prompt");
        let dim = self.theme.style("ui.text.dim");
        let fb = frame.buffer_mut();
        fill_style(fb, area, style);
        let (count, current) = match self.editor.buffer() {
            Some(b) => {
                let n = b.matches.ranges().len();
                let cur = b.matches.index_of(b.selection.start()).filter(|_| {
                    b.matches
                        .ranges()
                        .binary_search(&(b.selection.start(), b.selection.end()))
                        .is_ok()
                });
                let more = if b.matches.truncated() { "+" } else { "" };
                (format!("{n}{more}"), cur)
            }
            None => ("0".into(), None),
        };
        let info = match current {
            Some(c) => format!(" {c} of {count} "),
            None if find.query.text().is_empty() => String::new(),
            None => format!(" {count} matches "),
        };
        let label = " Find: ";
        let lw = label.len() as u16;
        fb.set_stringn(
            area.x,
            area.y,
            label,
            area.width as usize,
            style.add_modifier(Modifier::BOLD),
        );
        let field_w = area.width.saturating_sub(lw + info.len() as u16) as usize;
        let q = tail_fit(find.query.text(), field_w);
        fb.set_stringn(area.x + lw, area.y, &q, field_w, style);
        let iw = info.len() as u16;
        if area.width > iw {
            fb.set_stringn(area.x + area.width - iw, area.y, &info, iw as usize, dim);
        }
        let mut cursor = if !find.on_replace {
            Some((area.x + lw + text::str_width(&q) as u16, area.y))
        } else {
            None
        };
        if find.replace_mode && area.height > 1 {
            let y = area.y + 1;
            let label = " Repl: ";
            fb.set_stringn(
                area.x,
                y,
                label,
                area.width as usize,
                style.add_modifier(Modifier::BOLD),
            );
            let hint = " Enter: one  Alt+A: all ";
            let hw = hint.len() as u16;
            let field_w = area.width.saturating_sub(lw + hw) as usize;
            let r = tail_fit(find.replace.text(), field_w);
            fb.set_stringn(area.x + lw, y, &r, field_w, style);
            if area.width > hw + lw {
                fb.set_stringn(area.x + area.width - hw, y, hint, hw as usize, dim);
            }
            if find.on_replace {
                cursor = Some((area.x + lw + text::str_width(&r) as u16, y));
            }
        }
        if self.overlay.is_none() {
            if let Some((x, y)) = cursor {
                frame.set_cursor_position(Position::new(x.min(area.x + area.width - 1), y));
            }
        }
    }

    fn render_status(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let base = self.theme.style("ui.statusline");
        let badge = self.theme.style("ui.statusline.session");
        let dirty_style = self.theme.style("ui.statusline.dirty");
        let ro_style = self.theme.style("ui.readonly");
        let mut left: Vec<Span<'_>> =
            vec![Span::styled(format!(" {} ", self.session_badge()), badge)];
        let mut right = String::new();
        if let Some(b) = self.editor.buffer() {
            left.push(Span::styled(
                format!(" {}", self.editor.relative_name(b)),
                base,
            ));
            if b.is_dirty() {
                left.push(Span::styled(" ●", dirty_style));
            }
            if b.read_only.is_some() {
                left.push(Span::styled(" [read-only]", ro_style));
            }
            let (line, col) = b.cursor_line_col();
            let sel = if b.selection.is_empty() {
                String::new()
            } else {
                format!(" ({} selected)", b.selection.end() - b.selection.start())
            };
            let le = match b.line_ending {
                crate::workspace::LineEnding::Lf => "LF",
                crate::workspace::LineEnding::Crlf => "CRLF",
            };
            let indent = match b.indent {
                text::IndentStyle::Tabs => "Tabs".to_string(),
                text::IndentStyle::Spaces(n) => format!("Spaces:{n}"),
            };
            right = format!(
                "Ln {}, Col {}{}  {}  {}  {} ",
                line + 1,
                col + 1,
                sel,
                b.language.name,
                le,
                indent
            );
        } else {
            // A guest is in the host's folder, not its own.
            let place = match self.session.as_ref().and_then(|s| s.session_label()) {
                Some(label) => label,
                None => self.editor.root.display().to_string(),
            };
            left.push(Span::styled(format!(" {place}"), base));
        }
        let fb = frame.buffer_mut();
        fill_style(fb, area, base);
        let left_line = Line::from(left);
        let lw = left_line.width() as u16;
        // The right part yields to the left when space runs short.
        let rw = text::str_width(&right) as u16;
        fb.set_line(area.x, area.y, &left_line, area.width);
        if lw + rw < area.width {
            fb.set_stringn(area.x + area.width - rw, area.y, &right, rw as usize, base);
        } else if lw + 12 < area.width {
            let avail = area.width - lw - 1;
            let short: String = right.chars().take(avail as usize).collect();
            fb.set_stringn(
                area.x + area.width - avail,
                area.y,
                &short,
                avail as usize,
                base,
            );
        }
    }

    fn render_notices(&mut self, frame: &mut Frame<'_>, area: Rect) {
        if area.height < 2 || area.width < 10 {
            return;
        }
        let max_w = (area.width as usize * 3 / 5)
            .max(20)
            .min(area.width as usize);
        let mut y = area.y + area.height;
        for n in self.notices.iter().rev().take(3) {
            if y <= area.y {
                break;
            }
            y -= 1;
            let key = match n.level {
                Level::Info => "ui.message.info",
                Level::Warning => "ui.message.warning",
                Level::Error => "ui.message.error",
            };
            let style = self.theme.style("ui.popup").patch(self.theme.style(key));
            let text = format!(" {} ", n.text);
            let w = text::str_width(&text).min(max_w) as u16;
            let x = area.x + area.width - w;
            let r = Rect::new(x, y, w, 1);
            frame.render_widget(Clear, r);
            frame
                .buffer_mut()
                .set_stringn(x, y, &text, w as usize, style);
        }
    }

    fn render_overlay(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let Some(overlay) = &self.overlay else { return };
        let popup = self.theme.style("ui.popup");
        let border = self.theme.style("ui.popup.border");
        match overlay {
            Overlay::Palette(p) => {
                render_picker(frame, area, self, p, " Command Palette ");
            }
            Overlay::QuickOpen(p) => {
                render_picker(frame, area, self, p, " Open File ");
            }
            Overlay::Prompt { kind, input, error } => {
                let w = area.width.min(70).max(area.width.min(20));
                let h = if error.is_some() { 4 } else { 3 }.min(area.height);
                let r = centered(area, w, h, 3);
                frame.render_widget(Clear, r);
                let block = Block::default()
                    .borders(Borders::ALL)
                    .border_style(border)
                    .style(popup)
                    .title(format!(" {} ", kind.label()));
                let inner = block.inner(r);
                frame.render_widget(block, r);
                if inner.height == 0 || inner.width == 0 {
                    return;
                }
                let shown = tail_fit(input.text(), inner.width.saturating_sub(1) as usize);
                frame.buffer_mut().set_stringn(
                    inner.x,
                    inner.y,
                    &shown,
                    inner.width as usize,
                    popup,
                );
                let cx = inner.x + (text::str_width(&shown) as u16).min(inner.width - 1);
                frame.set_cursor_position(Position::new(cx, inner.y));
                if let (Some(e), true) = (error, inner.height > 1) {
                    let st = popup.patch(self.theme.style("ui.message.error"));
                    frame.buffer_mut().set_stringn(
                        inner.x,
                        inner.y + 1,
                        e,
                        inner.width as usize,
                        st,
                    );
                }
            }
            Overlay::Confirm { message, .. } => {
                let w = (text::str_width(message) as u16 + 4).min(area.width);
                let lines = if w < text::str_width(message) as u16 + 4 {
                    2
                } else {
                    1
                };
                let r = centered(area, w, (lines + 2).min(area.height), 3);
                frame.render_widget(Clear, r);
                let p = Paragraph::new(message.as_str())
                    .wrap(ratatui::widgets::Wrap { trim: true })
                    .style(popup)
                    .block(Block::default().borders(Borders::ALL).border_style(border));
                frame.render_widget(p, r);
            }
            Overlay::Info { title, body } => {
                let w = area.width.min(76);
                let inner_w = w.saturating_sub(2).max(1) as usize;
                let lines: usize = body
                    .lines()
                    .map(|l| (text::str_width(l) / inner_w) + 1)
                    .sum();
                let h = (lines as u16 + 2).min(area.height);
                let r = centered(area, w, h, 2);
                frame.render_widget(Clear, r);
                let p = Paragraph::new(body.as_str())
                    .wrap(ratatui::widgets::Wrap { trim: false })
                    .style(popup)
                    .block(
                        Block::default()
                            .borders(Borders::ALL)
                            .border_style(border)
                            .title(format!(" {title} ")),
                    );
                frame.render_widget(p, r);
            }
            Overlay::Participants { selected } => {
                let Some(core) = &self.session else { return };
                let people = core.participants();
                let me = core.my_id();
                let host = core.is_host();
                let following = core.following();
                let selected_style = self.theme.style("ui.popup.selected");
                let mut lines: Vec<Line<'_>> = Vec::new();
                for (i, p) in people.iter().enumerate() {
                    let color = participant_color(&self.theme, &p.color, i);
                    let mut tags = Vec::new();
                    if p.is_host {
                        tags.push("host".to_string());
                    }
                    if p.id == me {
                        tags.push("you".to_string());
                    }
                    if p.read_only {
                        tags.push("read-only".to_string());
                    }
                    if let Some(path) = p.path {
                        tags.push(path.to_string());
                    }
                    if following == Some(p.id) {
                        tags.push("following".to_string());
                    }
                    if let Some(t) = p.following {
                        if t == me {
                            tags.push("follows you".to_string());
                        }
                    }
                    let base = if i == *selected {
                        selected_style
                    } else {
                        popup
                    };
                    lines.push(Line::from(vec![
                        Span::styled(" ● ", base.fg(color)),
                        Span::styled(
                            format!("{:<16}", fit_name(&p.name, 15)),
                            base.add_modifier(Modifier::BOLD),
                        ),
                        Span::styled(format!("{:<28}", p.file.clone().unwrap_or_default()), base),
                        Span::styled(tags.join(", "), base),
                    ]));
                }
                lines.push(Line::from(""));
                let help = if host {
                    " Enter follow · r read-only · R whole session read-only · x remove · Esc"
                } else {
                    " Enter follow · Esc close"
                };
                lines.push(Line::from(Span::styled(
                    help,
                    self.theme.style("ui.text.dim"),
                )));
                let w = area.width.min(90);
                let h = (lines.len() as u16 + 2).min(area.height);
                let r = centered(area, w, h, 2);
                frame.render_widget(Clear, r);
                let title = match core.invite_link() {
                    Some(_) => " Participants (Alt+L: invite link) ",
                    None => " Participants ",
                };
                frame.render_widget(
                    Paragraph::new(lines).style(popup).block(
                        Block::default()
                            .borders(Borders::ALL)
                            .border_style(border)
                            .title(title),
                    ),
                    r,
                );
            }
            Overlay::Help { scroll } => {
                let w = area.width.min(90);
                let h = area.height.saturating_sub(2).max(area.height.min(3));
                let r = centered(area, w, h, 1);
                frame.render_widget(Clear, r);
                let keyst = self.theme.style("ui.help.key");
                let mut lines: Vec<Line<'_>> = Vec::new();
                for cmd in Command::ALL.iter().skip(*scroll) {
                    let mut keys = self.keymap.keys_for(*cmd).join(", ");
                    if keys.chars().count() > 21 {
                        // Keep the columns aligned: the first keys are enough here.
                        keys = keys.chars().take(20).collect::<String>() + "…";
                    }
                    lines.push(Line::from(vec![
                        Span::styled(format!(" {keys:<22}"), keyst),
                        Span::styled(
                            format!("{:<22}", cmd.title()),
                            popup.add_modifier(Modifier::BOLD),
                        ),
                        Span::styled(cmd.description().to_string(), popup),
                    ]));
                }
                let p = Paragraph::new(lines).style(popup).block(
                    Block::default()
                        .borders(Borders::ALL)
                        .border_style(border)
                        .title(" Help — keys (↑↓ scroll, Esc close; F1 runs any command by name) "),
                );
                frame.render_widget(p, r);
            }
        }
    }
}

struct LineStyles {
    text: Style,
    selection: Style,
    cursorline: Style,
    matched: Style,
    matched_current: Style,
    whitespace: Style,
    linenr: Style,
    linenr_current: Style,
}

fn syntax_style(theme: &super::theme::Theme, span: &HlSpan) -> Style {
    theme.syntax_style(span.kind)
}

/// Screen cell of `(line, col)` given the row map of the frame.
fn cell_of(
    rows: &[Option<(usize, usize)>],
    area: Rect,
    line: usize,
    col: usize,
) -> Option<(u16, u16)> {
    let w = area.width as usize;
    let mut found = None;
    for (r, row) in rows.iter().enumerate() {
        if let Some((l, start)) = row {
            if *l == line && col >= *start && col < start + w.max(1) {
                found = Some((area.x + (col - start) as u16, area.y + r as u16));
            }
        }
    }
    found
}

/// `name` cut to `cols` terminal columns (with `…` when cut), so a long
/// name never runs into the next column.
fn fit_name(name: &str, cols: usize) -> String {
    if text::str_width(name) <= cols {
        return name.to_string();
    }
    let mut out = String::new();
    let mut width = 0;
    for c in name.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if width + w > cols.saturating_sub(1) {
            break;
        }
        width += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// Other participants' selections (tinted) and cursors (a block in their
/// colour with their name beside it).
fn draw_remote_cursors(
    fb: &mut ratatui::buffer::Buffer,
    buf: &Buffer,
    area: Rect,
    rows: &[Option<(usize, usize)>],
    theme: &super::theme::Theme,
) {
    if buf.remote_cursors.is_empty() {
        return;
    }
    let rope = buf.doc.rope();
    let len = rope.len_chars();
    let first_line = rows.iter().flatten().map(|r| r.0).min();
    let last_line = rows.iter().flatten().map(|r| r.0).max();
    let (Some(first_line), Some(last_line)) = (first_line, last_line) else {
        return;
    };
    for (i, rc) in buf.remote_cursors.iter().enumerate() {
        let color = participant_color(theme, &rc.color, i);
        let (s, e) = (
            rc.anchor.min(rc.head).min(len),
            rc.anchor.max(rc.head).min(len),
        );
        if s < e {
            let l0 = rope.char_to_line(s).max(first_line);
            let l1 = rope.char_to_line(e).min(last_line);
            for line in l0..=l1 {
                let ls = rope.line_to_char(line);
                let le = ls + text::line_len(rope, line);
                let (a, b) = (s.max(ls), e.min(le));
                if a >= b {
                    continue;
                }
                let ca = text::visual_col(rope, a, buf.tab_width);
                let cb = text::visual_col(rope, b, buf.tab_width);
                for col in ca..cb {
                    if let Some((x, y)) = cell_of(rows, area, line, col) {
                        if let Some(cell) = fb.cell_mut((x, y)) {
                            cell.set_style(
                                Style::default().bg(color).fg(ratatui::style::Color::Black),
                            );
                        }
                    }
                }
            }
        }
        let head = rc.head.min(len);
        let line = rope.char_to_line(head);
        if line < first_line || line > last_line {
            continue;
        }
        let col = text::visual_col(rope, head, buf.tab_width);
        let Some((x, y)) = cell_of(rows, area, line, col) else {
            continue;
        };
        if let Some(cell) = fb.cell_mut((x, y)) {
            cell.set_style(Style::default().bg(color).fg(ratatui::style::Color::Black));
        }
        // The name goes after the end of the line's text, so it never
        // hides what is written; when that is off screen, next to the cursor.
        let label = format!(" {} ", rc.name);
        let lw = text::str_width(&label) as u16;
        let right = area.x + area.width;
        let line_end = rope.line_to_char(line) + text::line_len(rope, line);
        let end_col = text::visual_col(rope, line_end, buf.tab_width);
        let lx = match cell_of(rows, area, line, end_col) {
            Some((ex, ey)) if ey == y && ex + 1 + lw <= right => ex + 1,
            _ if x + 1 + lw <= right => x + 1,
            _ => x.saturating_sub(lw).max(area.x),
        };
        fb.set_stringn(
            lx,
            y,
            &label,
            (right - lx) as usize,
            Style::default()
                .bg(color)
                .fg(ratatui::style::Color::Black)
                .add_modifier(Modifier::BOLD),
        );
    }
}

/// A participant's colour: theirs if it parses, else the theme's i-th.
pub fn participant_color(
    theme: &super::theme::Theme,
    color: &str,
    i: usize,
) -> ratatui::style::Color {
    color
        .parse::<ratatui::style::Color>()
        .unwrap_or_else(|_| theme.participant_color(i))
}

/// Moves the view so the cursor is on screen.
fn scroll_to_cursor(buf: &mut Buffer, area: Rect, wrap: bool) {
    let rope = buf.doc.rope();
    let cursor = buf.selection.head.min(rope.len_chars());
    let line = rope.char_to_line(cursor);
    let h = area.height as usize;
    let off = SCROLL_OFF.min(h.saturating_sub(1) / 2);
    if line < buf.view.top_line + off {
        buf.view.top_line = line.saturating_sub(off);
    }
    if wrap {
        buf.view.left_col = 0;
        // Count visual rows from top to the cursor line; scroll until it fits.
        let w = (area.width as usize).max(1);
        loop {
            let mut rows = 0usize;
            for l in buf.view.top_line..line {
                rows += wrapped_rows(rope, l, w, buf.tab_width);
                if rows > h {
                    break;
                }
            }
            let col = text::visual_col(rope, cursor, buf.tab_width);
            rows += col / w + 1;
            if rows + off <= h || buf.view.top_line >= line {
                break;
            }
            buf.view.top_line += 1;
        }
    } else {
        if line + off >= buf.view.top_line + h {
            buf.view.top_line = line + off + 1 - h;
        }
        let col = text::visual_col(rope, cursor, buf.tab_width);
        let w = area.width as usize;
        let hoff = 4.min(w / 4);
        if col < buf.view.left_col + hoff {
            buf.view.left_col = col.saturating_sub(hoff);
        } else if col + hoff >= buf.view.left_col + w {
            buf.view.left_col = col + hoff + 1 - w;
        }
    }
}

fn wrapped_rows(rope: &ropey::Rope, line: usize, w: usize, tab: usize) -> usize {
    let len = text::line_len(rope, line);
    if len == 0 {
        return 1;
    }
    let end = rope.line_to_char(line) + len;
    text::visual_col(rope, end, tab) / w.max(1) + 1
}

fn digits(n: usize) -> usize {
    n.max(1).ilog10() as usize + 1
}

fn control_picture(g: &str) -> String {
    g.chars()
        .map(|c| match c as u32 {
            0..=0x1f => char::from_u32(0x2400 + c as u32).unwrap_or('?'),
            0x7f => '␡',
            _ => '?',
        })
        .take(1)
        .collect()
}

/// The end of `s` that fits in `w` cells (so the cursor stays visible).
fn tail_fit(s: &str, w: usize) -> String {
    let mut out: Vec<char> = Vec::new();
    let mut width = 0;
    for c in s.chars().rev() {
        let cw = text::str_width(c.encode_utf8(&mut [0u8; 4]));
        if width + cw > w {
            break;
        }
        width += cw;
        out.push(c);
    }
    out.into_iter().rev().collect()
}

fn centered(area: Rect, w: u16, h: u16, top: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    let x = area.x + (area.width - w) / 2;
    let y = area.y + top.min(area.height - h);
    Rect::new(x, y, w, h)
}

fn render_picker(frame: &mut Frame<'_>, area: Rect, app: &App, p: &Picker, title: &str) {
    let popup = app.theme.style("ui.popup");
    let border = app.theme.style("ui.popup.border");
    let selected = app.theme.style("ui.popup.selected");
    let matched = app.theme.style("ui.popup.match");
    let dim = app.theme.style("ui.text.dim");
    let w = area.width.min(80);
    let h = area.height.saturating_sub(4).clamp(area.height.min(3), 20);
    let r = centered(area, w, h, 2);
    frame.render_widget(Clear, r);
    let count = format!(" {}/{} ", p.shown.len(), p.all.len());
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(border)
        .style(popup)
        .title(title.to_string())
        .title_bottom(Line::from(count).right_aligned());
    let inner = block.inner(r);
    frame.render_widget(block, r);
    if inner.height == 0 || inner.width < 2 {
        return;
    }
    let fb = frame.buffer_mut();
    let prompt = format!(
        "> {}",
        tail_fit(p.input.text(), inner.width.saturating_sub(3) as usize)
    );
    fb.set_stringn(inner.x, inner.y, &prompt, inner.width as usize, popup);
    let cursor_x = inner.x + (text::str_width(&prompt) as u16).min(inner.width - 1);
    let list_h = inner.height.saturating_sub(1) as usize;
    let start = p.selected.saturating_sub(list_h.saturating_sub(1));
    for (row, (idx, positions)) in p.shown.iter().enumerate().skip(start).take(list_h) {
        let y = inner.y + 1 + (row - start) as u16;
        let Some((label, detail)) = p.all.get(*idx) else {
            continue;
        };
        let base = if row == p.selected { selected } else { popup };
        fb.set_style(Rect::new(inner.x, y, inner.width, 1), base);
        let mut x = inner.x + 1;
        let end = inner.x + inner.width;
        for (ci, c) in label.chars().enumerate() {
            if x >= end {
                break;
            }
            let st = if positions.contains(&ci) {
                base.patch(matched)
            } else {
                base
            };
            let s = c.to_string();
            let (nx, _) = fb.set_stringn(x, y, &s, (end - x) as usize, st);
            x = nx;
        }
        let dw = text::str_width(detail) as u16;
        if !detail.is_empty() && x + dw + 2 < end {
            fb.set_stringn(end - dw - 1, y, detail, dw as usize, base.patch(dim));
        }
    }
    if p.shown.is_empty() && list_h > 0 {
        fb.set_stringn(
            inner.x + 1,
            inner.y + 1,
            "no match",
            inner.width as usize - 1,
            dim,
        );
    }
    frame.set_cursor_position(Position::new(cursor_x, inner.y));
}

fn render_welcome(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let style = app.theme.style("ui.text.dim");
    let key = |c: Command| app.keymap.keys_for(c).first().cloned().unwrap_or_default();
    let row = |c: Command, what: &str| Line::from(format!("{:>10}  {:<14}", key(c), what));
    let lines = vec![
        Line::from(Span::styled(
            format!("{:^26}", "lshed"),
            style.add_modifier(Modifier::BOLD),
        )),
        Line::from(""),
        row(Command::QuickOpen, "open a file"),
        row(Command::CommandPalette, "all commands"),
        row(Command::Help, "keys"),
        row(Command::FocusFileTree, "file tree"),
        row(Command::NewFile, "new file"),
        row(Command::Quit, "quit"),
    ];
    let h = (lines.len() as u16).min(area.height);
    let r = Rect::new(
        area.x,
        area.y + area.height.saturating_sub(h) / 2,
        area.width,
        h,
    );
    frame.render_widget(
        Paragraph::new(lines)
            .style(style)
            .alignment(ratatui::layout::Alignment::Center),
        r,
    );
}

/// `Buffer::set_style` a row at a time: ratatui's looks every cell up by
/// position (bounds checks and an index computation per cell), which was a
/// tenth of a frame when the whole screen's background is set.
fn fill_style(buf: &mut ratatui::buffer::Buffer, area: Rect, style: Style) {
    let area = buf.area.intersection(area);
    if area.is_empty() {
        return;
    }
    let width = buf.area.width as usize;
    for y in area.top()..area.bottom() {
        let row = (y - buf.area.y) as usize * width;
        let from = row + (area.x - buf.area.x) as usize;
        if let Some(cells) = buf.content.get_mut(from..from + area.width as usize) {
            for cell in cells {
                cell.set_style(style);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fit_name;

    #[test]
    fn long_names_are_cut_to_their_column() {
        assert_eq!(fit_name("bob", 15), "bob");
        assert_eq!(fit_name("a".repeat(15).as_str(), 15), "a".repeat(15));
        assert_eq!(
            fit_name("Maximilian-Alexander von Humboldt", 15),
            "Maximilian-Ale…"
        );
        // Wide chars count two columns.
        let cut = fit_name("漢字漢字漢字漢字漢字", 15);
        assert!(crate::editor::text::str_width(&cut) <= 15, "{cut}");
        assert!(cut.ends_with('…'));
    }
}
