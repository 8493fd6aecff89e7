//! The `portcullis` command: parse arguments, build the runtime, run one command, exit with
//! a code (0 ok, 64 bad configuration or usage, 1 any other failure).

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    match cli::Args::try_parse() {
        Ok(args) => cli::run(args),
        // --help and --version print and succeed; a usage error is the documented 64
        // (EX_USAGE), not clap's own 2.
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                ExitCode::from(cli::EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
