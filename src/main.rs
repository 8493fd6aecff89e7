//! The `portcullis` command: parse arguments, build the runtime, run one command, exit with
//! a code (0 ok, 64 bad configuration or usage, 1 any other failure).

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    cli::run(args)
}
