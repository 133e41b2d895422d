//! The errors of building a collector.

use std::net::SocketAddr;

use crate::store::StoreError;

/// Why [`crate::Config::build`] failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error("cannot bind the {listener} listener on {addr}: {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}
