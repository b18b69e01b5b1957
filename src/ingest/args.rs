//! The command line of `ipta-ingest`, defined once here: the binary parses it, and
//! `ipta --generate` makes the man page and shell completions from the same definition.

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser as ClapParser};

/// rsyslog omprog program: store iptables/nftables log lines in MySQL/MariaDB.
///
/// The database password is read from the config file or IPTA_DB_PASS, never from the command
/// line (rsyslog's process list would show it).
#[derive(ClapParser, Debug)]
#[command(name = "ipta-ingest", version, disable_help_flag = true)]
pub struct Args {
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    /// The database flags, shared with `ipta` (no password flag: it would show in the
    /// process list; the password comes from the config file or IPTA_DB_PASS).
    #[command(flatten)]
    pub db: crate::config::DbArgs,
    /// omprog confirmMessages="on": reply OK / DEFER_COMMIT on stdout.
    #[arg(long)]
    pub confirm: bool,
    /// Rows per database transaction.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub batch_size: usize,
    /// Write a partly filled batch this long after its first row.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub flush_ms: u64,
    /// Append lines that cannot be stored, with the reason, to FILE (reopened on SIGHUP).
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Copy each stored line to the `ipta --follow` viewers attached in DIR [default: config
    /// key follow_dir, else /run/ipta/follow when that directory exists].
    #[arg(long, value_name = "DIR")]
    pub follow_dir: Option<PathBuf>,
    /// Rows kept while the database is unavailable (or slower than the input) before input
    /// is paused; about 800 bytes each.
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    pub buffer_rows: usize,
    /// With --confirm: answer a commit that is still not durable after MS with an error.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub commit_timeout_ms: u64,
    /// Longest pause between reconnection attempts.
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    pub max_backoff_ms: u64,
    /// Read `journalctl -o json` on stdin instead of rsyslog's omprog protocol, and keep in
    /// FILE (mode 0600) the journal cursor of the last entry the database committed, for
    /// `journalctl --after-cursor` at the next start (see examples/ipta-journal-feed).
    #[arg(long, value_name = "FILE")]
    pub journal_cursor: Option<PathBuf>,
    /// After end of input or SIGTERM: how long to keep trying to write what is left.
    #[arg(long, value_name = "MS", default_value_t = 4_000)]
    pub shutdown_ms: u64,
}

/// The clap definition of `ipta-ingest` (for man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}
