//! Errors of the `doc` module.
//!
//! Every path that decodes bytes from a peer or from disk returns one of
//! these instead of panicking; see [`super::guard`] for how automerge's own
//! panics are contained.

/// What went wrong while sharing, syncing or loading a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    /// The call needs CRDT state, but the document is not shared.
    #[error("the document is not shared")]
    NotShared,
    /// The document is read-only (too large to edit together, or still loading).
    #[error("the document is read-only: {0}")]
    ReadOnly(String),
    /// Bytes that could not be decoded at all.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being decoded ("change message", "sync message", ...).
        what: &'static str,
        /// Why it failed.
        detail: String,
    },
    /// Bytes that decoded but that automerge refused to apply.
    #[error("rejected {what}: {detail}")]
    Rejected {
        /// What was being applied.
        what: &'static str,
        /// automerge's reason.
        detail: String,
    },
    /// automerge panicked on foreign input. The panic was caught and the
    /// document was restored to its state before the input.
    #[error("automerge panicked on a {what}; the input was dropped and the document restored")]
    Panicked {
        /// What was being processed.
        what: &'static str,
    },
    /// Saved or received state that loads, but is not an lshed document.
    #[error("the state is not an lshed document: {0}")]
    NotADocument(String),
}

impl DocError {
    pub(crate) fn malformed(what: &'static str, err: impl std::fmt::Display) -> Self {
        DocError::Malformed {
            what,
            detail: err.to_string(),
        }
    }

    pub(crate) fn rejected(what: &'static str, err: impl std::fmt::Display) -> Self {
        DocError::Rejected {
            what,
            detail: err.to_string(),
        }
    }
}
