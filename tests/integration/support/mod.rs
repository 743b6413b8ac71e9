//! Helpers shared by the integration tests: an `App` driven by key
//! scripts (`common`), real processes in pseudo-terminals
//! (`common::pty`), headless peers and relay processes (`headless`),
//! net-level helpers (`net`), a UDP proxy and a CONNECT proxy
//! (`udp_proxy`), document helpers (`doc`), the editing traces (`trace`)
//! and a seeded random generator (`rng`).
#![allow(dead_code)]

pub mod common;
pub mod doc;
pub mod headless;
pub mod net;
pub mod rng;
pub mod trace;
pub mod udp_proxy;
