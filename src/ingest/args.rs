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
    /// Database server host.
    #[arg(short = 'h', long = "db-host", value_name = "HOST")]
    pub db_host: Option<String>,
    /// Database user.
    #[arg(short = 'u', long = "db-user", value_name = "USER")]
    pub db_user: Option<String>,
    /// Database name.
    #[arg(short = 'd', long = "db-name", value_name = "NAME")]
    pub db_name: Option<String>,
    /// Table to write into (created when missing).
    #[arg(short = 't', long = "db-table", value_name = "TABLE")]
    pub db_table: Option<String>,
    /// Database server TCP port.
    #[arg(long = "db-port", value_name = "PORT")]
    pub db_port: Option<u16>,
    /// Unix socket of the database server (instead of TCP).
    #[arg(long = "db-socket", value_name = "PATH")]
    pub db_socket: Option<PathBuf>,
    /// TLS to the database server: off, required (encrypt), verify (encrypt, check certificate).
    #[arg(long = "db-tls", value_name = "MODE")]
    pub db_tls: Option<crate::config::TlsMode>,
    /// CA certificate (PEM) to verify the server with (implies --db-tls verify).
    #[arg(long = "db-tls-ca", value_name = "FILE")]
    pub db_tls_ca: Option<PathBuf>,
    /// Config file (`key = value`), read after /etc/ipta.conf.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
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
    /// After end of input or SIGTERM: how long to keep trying to write what is left.
    #[arg(long, value_name = "MS", default_value_t = 4_000)]
    pub shutdown_ms: u64,
}

impl Args {
    /// The database options as `ipta`'s, for the shared settings loader. There is no password
    /// option: it comes from the config file or IPTA_DB_PASS only.
    pub fn db_args(&self) -> crate::cli::DbArgs {
        crate::cli::DbArgs {
            db_name: self.db_name.clone(),
            db_host: self.db_host.clone(),
            db_port: self.db_port,
            db_socket: self.db_socket.clone(),
            db_user: self.db_user.clone(),
            db_pass: None,
            db_pass_i: false,
            db_table: self.db_table.clone(),
            db_tls: self.db_tls,
            db_tls_ca: self.db_tls_ca.clone(),
            config: self.config.clone(),
        }
    }
}

/// The clap definition of `ipta-ingest` (for man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}
