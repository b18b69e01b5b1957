//! ipta-ingest: the program rsyslog's omprog runs. Reads syslog lines on stdin, stores ipta's
//! firewall lines in MySQL/MariaDB in batches, and (with `--confirm`) tells rsyslog on stdout
//! what is safely committed. See README.md for the setup and rsyslog/30-ipta.conf.
//!
//! This file only parses the flags; `ipta::ingest::run` does the rest and returns the exit
//! status (0 after end of input or SIGTERM/SIGINT, 2 for a usage or configuration error, 1 when
//! stdout, the feedback pipe, or stdin fails).

use clap::Parser;

fn main() {
    let args = ipta::ingest::args::Args::parse();
    std::process::exit(ipta::ingest::run::run(args));
}
