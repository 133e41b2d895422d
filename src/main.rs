//! The `weft` binary: parse the command line, run the command.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = weft::cli::Cli::parse();
    weft::cli::init_logging(&cli);
    weft::cli::run(cli)
}
