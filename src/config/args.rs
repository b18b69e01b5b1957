//! The database flags, the command line's part of the settings: shared by `ipta` and
//! `ipta-ingest` (one definition, so both spell and document them alike), read by
//! [`super::load`] with the environment and the files.

use std::path::PathBuf;

use clap::Args;

use super::TlsMode;

/// Database connection options, shared by `ipta` and `ipta-ingest`. Every field is optional so
/// that `config::load` can tell "not given" from "given": settings absent here come from the
/// environment, the config files or the defaults.
///
/// `-h` is `--db-host` (as in the original), so a command that flattens these options must
/// declare `#[command(disable_help_flag = true)]` and its own `--help`
/// (`#[arg(long, action = clap::ArgAction::Help)] help: ()`), as `ipta`'s `cli::Cli` does.
#[derive(Args, Clone, Debug, Default, PartialEq, Eq)]
#[command(next_help_heading = "Database")]
pub struct DbArgs {
    /// Database name [default: ipta]
    #[arg(short = 'd', long = "db-name", value_name = "NAME")]
    pub db_name: Option<String>,
    /// Database server host [default: localhost]
    #[arg(short = 'h', long = "db-host", value_name = "HOST")]
    pub db_host: Option<String>,
    /// Database server TCP port [default: 3306]
    #[arg(long = "db-port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub db_port: Option<u16>,
    /// Unix socket of the database server (instead of TCP)
    #[arg(long = "db-socket", value_name = "PATH")]
    pub db_socket: Option<PathBuf>,
    /// Database user [default: ipta]
    #[arg(short = 'u', long = "db-user", value_name = "USER")]
    pub db_user: Option<String>,
    /// Packet table [default: logs]
    #[arg(short = 't', long = "db-table", value_name = "TABLE")]
    pub db_table: Option<String>,
    /// TLS to the database server: off, required (encrypt), verify (encrypt, check certificate)
    #[arg(long = "db-tls", value_name = "MODE")]
    pub db_tls: Option<TlsMode>,
    /// CA certificate (PEM) to verify the server with (implies --db-tls verify)
    #[arg(long = "db-tls-ca", value_name = "FILE")]
    pub db_tls_ca: Option<PathBuf>,
    /// Config file to read instead of ~/.ipta-conf (/etc/ipta.conf is still read first)
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The password flags: `ipta` only. ipta-ingest has none, because a long-running process's
/// command line is visible to every user (its password comes from the file or IPTA_DB_PASS).
#[derive(Args, Clone, Debug, Default, PartialEq, Eq)]
#[command(next_help_heading = "Database")]
pub struct PasswordArgs {
    /// Database password [default: ipta]; visible to other users in the process list: prefer
    /// -pi, IPTA_DB_PASS or the config file
    #[arg(short = 'p', long = "db-pass", value_name = "PASSWORD")]
    pub db_pass: Option<String>,
    /// Prompt for the database password (-pi)
    #[arg(long = "db-pass-i")]
    pub db_pass_i: bool,
}
