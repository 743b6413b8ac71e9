//! The integration tests, in one binary (one link instead of one per
//! file): each file below is a module, run by `cargo test --test
//! integration` (all of them) or `cargo test --test integration relay::`
//! (one). Shared helpers live in `support/`.
//!
//! What each tests is said at the top of its file.

mod support;

mod doc_convergence;
mod doc_hostile;
mod doc_shared;
mod doc_split;
mod doc_traces;
mod e2e_editor;
mod e2e_session;
mod flood;
mod join_page;
mod keys;
mod net_abuse;
mod net_join;
mod netns;
mod relay;
mod render;
mod session_core;
mod session_headless;
mod themes;
mod workspace_flow;
mod workspace_perf;
