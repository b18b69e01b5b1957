//! `ipta`: the reporting command line. It only parses the arguments; `ipta::cli::run` reads
//! the settings, runs the requested steps in the original's order and returns the documented
//! exit status (`ipta::cli::exit`).

use std::process::ExitCode;

use clap::Parser;
use ipta::cli::{self, exit, Cli};

fn main() -> ExitCode {
    let args = cli::normalize_args(std::env::args_os());
    match Cli::try_parse_from(args) {
        Ok(c) => ExitCode::from(cli::run::run(c)),
        Err(e) => {
            // Help and version go to stdout with status 0; mistakes to stderr with 2.
            let _ = e.print();
            ExitCode::from(if e.use_stderr() { exit::USAGE } else { exit::OK })
        }
    }
}
