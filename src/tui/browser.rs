//! Opening links: in the user's browser where there is one (webbrowser),
//! and finding the link under the cursor in a line of text.
//!
//! Over SSH, or without a graphical display, a browser would open on the
//! wrong machine or not at all (and a text browser would take over the
//! terminal), so lshed does not try: the caller copies the link instead
//! and says why.
//!
//! May depend on: webbrowser, std.

/// What became of a request to open a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Handed to the browser.
    Browser,
    /// No browser can be used here; the reason, for the user.
    NoBrowser(String),
}

/// Opens `url` in the user's browser if one can be used from here.
pub fn open_url(url: &str) -> Opened {
    if std::env::var_os("SSH_CONNECTION").is_some() || std::env::var_os("SSH_TTY").is_some() {
        return Opened::NoBrowser("over SSH a browser would open on the remote machine".into());
    }
    let graphical = cfg!(target_os = "macos")
        || cfg!(windows)
        || std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if !graphical {
        return Opened::NoBrowser("no graphical display here".into());
    }
    let mut options = webbrowser::BrowserOptions::new();
    options.with_suppress_output(true);
    match webbrowser::open_browser_with_options(webbrowser::Browser::Default, url, &options) {
        Ok(()) => Opened::Browser,
        Err(e) => Opened::NoBrowser(format!("no browser found ({e})")),
    }
}

/// The link (`http://`, `https://` or `lshed://`) that covers char column
/// `col` of `line`, if any. Trailing punctuation and closing brackets that
/// usually end a sentence around a link are not part of it.
pub fn link_at(line: &str, col: usize) -> Option<String> {
    let chars: Vec<char> = line.chars().collect();
    let is_break = |c: char| c.is_whitespace() || "\"'<>()[]{}`".contains(c);
    let mut start = col.min(chars.len());
    while start > 0 && !is_break(chars[start - 1]) {
        start -= 1;
    }
    let mut end = col.min(chars.len());
    while end < chars.len() && !is_break(chars[end]) {
        end += 1;
    }
    let mut word: String = chars[start..end].iter().collect();
    while word.ends_with(['.', ',', ';', ':', '!', '?']) {
        word.pop();
    }
    let lower = word.to_ascii_lowercase();
    let scheme_ok = ["http://", "https://", "lshed://"]
        .iter()
        .any(|s| lower.starts_with(s) && lower.len() > s.len());
    (scheme_ok && col < start + word.chars().count().max(1)).then_some(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_link_under_the_cursor() {
        let line = "see (https://example.org/a?b=1#c), or lshed://join/v2/abc.";
        assert_eq!(
            link_at(line, 5).as_deref(),
            Some("https://example.org/a?b=1#c")
        );
        assert_eq!(
            link_at(line, 20).as_deref(),
            Some("https://example.org/a?b=1#c")
        );
        assert_eq!(link_at(line, 45).as_deref(), Some("lshed://join/v2/abc"));
        assert_eq!(link_at(line, 0), None);
        assert_eq!(link_at(line, 36), None, "the comma's space");
        assert_eq!(link_at("http://", 3), None, "a scheme alone is no link");
        assert_eq!(link_at("", 0), None);
        assert_eq!(link_at("ftp://x", 2), None);
        assert_eq!(link_at("x https://a.b", 99), None, "past the end");
    }

    #[test]
    fn no_browser_without_a_display() {
        // Tests run without a display; over SSH the answer is the same.
        if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
            assert!(matches!(
                open_url("https://example.org"),
                Opened::NoBrowser(_)
            ));
        }
    }
}
