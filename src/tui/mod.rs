//! The terminal UI: event loop, keymap, widgets, themes.
//!
//! [`run`] owns the real terminal: raw mode, the alternate screen, mouse
//! capture and bracketed paste, and restores all of it on every way out —
//! normal quit, a panic (hook), SIGTERM and SIGHUP (a signal thread turns
//! them into events so the loop exits through the same door). Everything
//! else ([`App`]) is independent of the terminal and is driven in tests
//! with scripted events on ratatui's `TestBackend`. Frames reach the
//! terminal through [`term_out::QuietBackend`] (one write per frame,
//! nothing for an unchanged one), and the loop takes at most one slice of
//! session work per frame, so a flood of remote edits never holds the
//! screen or the keys back.
//!
//! May depend on: editor and everything below it, ratatui, crossterm.

pub mod app;
pub mod browser;
pub mod clipboard;
pub mod collab;
pub mod input;
pub mod keymap;
pub mod render;
pub mod term_out;
pub mod theme;
pub mod tree_pane;

use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::{cursor, execute};
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::Terminal;
use term_out::QuietBackend;

pub use app::{App, AppEvent};

/// How often the loop wakes with no input (notifications expire, the
/// quick-open index fills).
pub const TICK: Duration = Duration::from_millis(250);

/// Puts the terminal back as we found it. Safe to call more than once and
/// from the panic hook.
pub fn restore_terminal() {
    let mut out = io::stdout();
    let _ = execute!(
        out,
        DisableBracketedPaste,
        DisableMouseCapture,
        LeaveAlternateScreen,
        cursor::Show
    );
    let _ = disable_raw_mode();
    let _ = out.flush();
}

/// Opens `path` in the editor on the real terminal and runs until quit.
pub fn run(path: &Path) -> anyhow::Result<()> {
    run_with(path, None, None)
}

/// Opens the editor on the current folder and joins the session at `link`
/// (`lshed join LINK`).
pub fn run_join(link: &str, mode: Option<crate::config::ConnectionMode>) -> anyhow::Result<()> {
    run_with(Path::new("."), Some(link.to_string()), mode)
}

fn run_with(
    path: &Path,
    join: Option<String>,
    mode: Option<crate::config::ConnectionMode>,
) -> anyhow::Result<()> {
    if !io::stdin().is_terminal() || !io::stdout().is_terminal() {
        anyhow::bail!("lshed needs a terminal (stdin and stdout must be a tty)");
    }
    // Syntax definitions load in the background so the first frame is not
    // kept waiting.
    std::thread::spawn(crate::editor::syntax::preload);
    let mut loaded = crate::config::load();
    if let Some(mode) = mode {
        // `--connection-mode` wins over the config, for this run.
        loaded.config.connection_mode = mode;
    }
    let mouse = loaded.config.mouse;
    let mut app =
        App::new(path, loaded, clipboard::Clipboard::detect()).map_err(anyhow::Error::msg)?;

    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        default_hook(info);
    }));

    enable_raw_mode()?;
    let mut stdout = io::stdout();
    let setup = if mouse {
        execute!(
            stdout,
            EnterAlternateScreen,
            EnableBracketedPaste,
            EnableMouseCapture
        )
    } else {
        execute!(stdout, EnterAlternateScreen, EnableBracketedPaste)
    };
    if let Err(e) = setup {
        restore_terminal();
        return Err(e.into());
    }
    let (tx, rx) = mpsc::channel();
    app.waker = Some(tx.clone());
    if let Some(link) = join {
        app.begin(collab::Intent::Join(link));
    }
    spawn_input_thread(tx.clone());
    spawn_signal_thread(tx);
    let result = (|| -> anyhow::Result<()> {
        // A frame is buffered whole and leaves in one write (see term_out).
        let out = io::BufWriter::with_capacity(1 << 16, io::stdout());
        let mut terminal = Terminal::new(QuietBackend::new(CrosstermBackend::new(out)))?;
        run_loop(&mut terminal, &mut app, &rx, &mut io::stdout())
    })();
    // End or leave the session cleanly (guests are told) before exiting.
    if let Some(mut s) = app.session.take() {
        if s.is_host() {
            s.end();
        } else {
            s.leave();
        }
    }
    restore_terminal();
    result
}

/// The event loop, generic over the backend: draw, wait for an event,
/// apply it (and everything else already queued), repeat.
pub fn run_loop<B: Backend>(
    terminal: &mut Terminal<QuietBackend<B>>,
    app: &mut App,
    rx: &Receiver<AppEvent>,
    out: &mut dyn Write,
) -> anyhow::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    // A session wake-up seen after this frame's one was handled: the
    // session has more (a flood, worked through in slices), taken right
    // after the next frame is drawn.
    let mut session_more = false;
    loop {
        terminal.draw(|f| app.render(f))?;
        for seq in app.pending_output.drain(..) {
            out.write_all(seq.as_bytes())?;
            out.flush()?;
        }
        if app.should_quit {
            return Ok(());
        }
        let first = if std::mem::take(&mut session_more) {
            AppEvent::SessionWake
        } else {
            match rx.recv_timeout(TICK) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout) => AppEvent::Tick,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        };
        let mut session_woke = matches!(first, AppEvent::SessionWake);
        if matches!(first, AppEvent::Term(crossterm::event::Event::Resize(..))) {
            terminal.backend().size_changed();
        }
        app.handle_event(first);
        // Apply everything already waiting before drawing again, so a
        // paste or a burst of keys costs one frame; but at most one slice
        // of session work per frame, so a flood of remote edits never
        // holds the screen or the keys back.
        while let Ok(ev) = rx.try_recv() {
            if matches!(ev, AppEvent::SessionWake) {
                if session_woke {
                    session_more = true;
                    continue;
                }
                session_woke = true;
            }
            if matches!(ev, AppEvent::Term(crossterm::event::Event::Resize(..))) {
                terminal.backend().size_changed();
            }
            app.handle_event(ev);
            if app.should_quit {
                break;
            }
        }
        if app.should_quit {
            return Ok(());
        }
    }
}

fn spawn_input_thread(tx: mpsc::Sender<AppEvent>) {
    std::thread::spawn(move || loop {
        match crossterm::event::read() {
            Ok(ev) => {
                if tx.send(AppEvent::Term(ev)).is_err() {
                    return;
                }
            }
            Err(_) => {
                // The terminal went away (hang-up): ask the loop to leave.
                let _ = tx.send(AppEvent::Signal(signal_hook::consts::SIGHUP));
                return;
            }
        }
    });
}

fn spawn_signal_thread(tx: mpsc::Sender<AppEvent>) {
    use signal_hook::consts::{SIGHUP, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            let _ = tx.send(AppEvent::Signal(sig));
        }
    });
}
