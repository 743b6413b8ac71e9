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
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Depth of [`contain`] calls on this thread.
    static CONTAINING: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`, turning a panic into [`DocError::Panicked`].
///
/// `AssertUnwindSafe` is sound here because every caller either discards
/// the state `f` touched or rebuilds it after a panic (see the module docs).
pub(crate) fn contain<T>(what: &'static str, f: impl FnOnce() -> T) -> Result<T, DocError> {
    quiet_panics_once();
    CONTAINING.with(|c| c.set(c.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(c.get().saturating_sub(1)));
    result.map_err(|_| DocError::Panicked { what })
}

/// The default panic hook prints a message and a backtrace hint to stderr,
/// which would scribble over the terminal UI. Contained panics are reported
/// through [`DocError`] instead, so the hook stays quiet about panics raised
/// while [`contain`] runs on this thread and defers to the previous hook for
/// every other panic.
fn quiet_panics_once() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CONTAINING.with(|c| c.get()) == 0 {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_and_later_panics_still_report() {
        let caught = contain("test input", || -> u32 { panic!("boom") });
        assert_eq!(caught, Err(DocError::Panicked { what: "test input" }));
        assert_eq!(contain("fine", || 7), Ok(7));
        CONTAINING.with(|c| assert_eq!(c.get(), 0));
    }
}
