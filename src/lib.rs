//! weft: an observability-first service mesh. This crate is the `weft`
//! command line and the `weft demo` mesh; the parts live in the workspace
//! crates `weft-config`, `weft-proxy`, `weft-control`, `weft-collector` and
//! `weft-dashboard`.

pub mod cli;
pub mod demo;
