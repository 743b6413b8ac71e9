//! Containment of automerge panics at the `doc` boundary.
//!
//! automerge has known panics on malformed input (notably in the sync
//! protocol). Every call that touches foreign bytes runs inside [`contain`],
//! which turns a panic into [`DocError::Panicked`]. What happens to the
//! document after a caught panic is decided by the caller in
//! [`super::crdt`]: decoding runs first, on bytes only, so a panic there
//! leaves the document untouched; a panic while applying rebuilds the
//! automerge state from its last checkpoint and the log of changes known to
//! be good, so the document is never left half-applied.

use super::DocError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

/// Runs `f`, turning a panic into [`DocError::Panicked`].
///
/// `AssertUnwindSafe` is sound here because every caller either discards
/// the state `f` touched or rebuilds it after a panic (see the module docs).
pub(crate) fn contain<T>(what: &'static str, f: impl FnOnce() -> T) -> Result<T, DocError> {
    quiet_panics_once();
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| DocError::Panicked { what })
}

/// The default panic hook prints a message and a backtrace hint to stderr,
/// which would scribble over the terminal UI. Contained panics are reported
/// through [`DocError`] instead, so the hook is told to stay quiet about
/// panics raised inside automerge and to defer to the previous hook for
/// everything else.
fn quiet_panics_once() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let from_automerge = info
                .location()
                .map(|l| l.file().contains("automerge"))
                .unwrap_or(false);
            if !from_automerge {
                previous(info);
            }
        }));
    });
}
