//! The `weft` binary: parse the command line, run the command.

use std::process::ExitCode;

use clap::Parser;
use mimalloc::MiMalloc;

/// mimalloc instead of glibc malloc: the proxy allocates and frees small objects per request
/// on one thread (and span batches on the same thread), where glibc's bins and consolidation
/// showed up as 12-18 % of a loaded proxy's samples (BENCHMARKS.md "## Telemetry overhead").
/// The workspace builds it with `override`, so that C code (the bundled SQLite, aws-lc) uses
/// it too: SQLite's allocations through glibc were ~11 % of the collector's writer thread.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    let cli = weft::cli::Cli::parse();
    weft::cli::init_logging(&cli);
    weft::cli::run(cli)
}
