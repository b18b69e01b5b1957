//! The command line of `ipta`: every option of the original and of this version, parsed with
//! clap. [`DbArgs`] (defined with the settings) is shared with `ipta-ingest`; [`command`] is
//! the clap definition that man pages and shell completions are generated from.
//!
//! From flags to a run: [`plan`] orders the steps the flags ask for and checks what can be
//! checked before anything runs, [`options`] turns flags and settings into each step's typed
//! options, [`run`] executes the steps and maps errors to the exit statuses of [`exit`],
//! [`advice`] says what to do about a database error, [`docgen`] writes the man pages and
//! completions of both programs from their flag definitions.
//!
//! The original's two-letter short options (`-ai -pi -lt -dt -da -ct -cd -dp`) cannot be
//! declared in clap, which would read `-ai` as `-a -i`: [`normalize_args`] rewrites them to
//! their long forms first. `-h` is `--db-host` as in the original; help is `--help`.

use std::ffi::OsString;
use std::path::PathBuf;

pub mod advice;
pub mod docgen;
pub mod options;
pub mod plan;
pub mod run;

use clap::{ArgAction, CommandFactory, Parser, ValueEnum};

pub use crate::config::args::{DbArgs, PasswordArgs};

/// Output format of listings and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
    Csv,
    /// One self-contained page with charts (reports only)
    Html,
}

/// `ipta`: iptables/nftables log analyzer.
#[derive(Parser, Clone, Debug, Default, PartialEq, Eq)]
#[command(
    name = "ipta",
    version,
    about = "iptables/nftables log analyzer: import firewall logs into MySQL/MariaDB and report on them",
    long_about = None,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true,
    after_help = "Two-letter short options as in the original ipta: -ai (--analyze-interactive), \
-pi (--db-pass-i), -lt (--list-tables), -dt (--delete-table), -da (--delete-all-tables), \
-ct (--create-table), -cd (--create-db), -dp (--dns-prune). -h is --db-host; help is --help.\n\
Modes combine in this order: clear, import, analyze (ipta -c -i FILE -a).\n\
Settings: command line > environment (IPTA_DB_*) > ~/.ipta-conf (or ~/.ipta, or --config FILE) \
> /etc/ipta.conf > defaults. Exit status: 0 ok, 1 error, 2 usage, 3 database unreachable, \
4 partial failure, 5 database not set up (access, database, table)."
)]
pub struct Cli {
    // ---- Modes ----
    /// Delete every packet of the table (asks first on a terminal; --yes skips)
    #[arg(short = 'c', long = "clear", help_heading = "Modes")]
    pub clear: bool,
    /// Import log files (plain or gzip; - for stdin), each packet stored once
    #[arg(short = 'i', long = "import", value_name = "FILE", num_args = 1.., help_heading = "Modes")]
    pub import: Vec<PathBuf>,
    /// Print the analysis reports
    #[arg(short = 'a', long = "analyze", help_heading = "Modes")]
    pub analyze: bool,
    /// SQL prompt on the configured database (-ai)
    #[arg(long = "analyze-interactive", help_heading = "Modes")]
    pub analyze_interactive: bool,
    /// Follow a log file live, or ipta-ingest's stream when no FILE is given
    #[arg(short = 'f', long = "follow", value_name = "FILE", num_args = 0..=1, help_heading = "Modes")]
    pub follow: Option<Option<PathBuf>>,
    /// Print the packets of a log file (- for stdin) from its start and exit; no database
    #[arg(long = "scan", value_name = "FILE", help_heading = "Modes")]
    pub scan: Option<PathBuf>,
    /// Delete packets older than AGE (e.g. 30d, 12h)
    #[arg(long = "expire", value_name = "AGE", help_heading = "Modes")]
    pub expire: Option<String>,

    // ---- Tables ----
    /// Create the packet table (the configured one, or NAME) (-ct)
    #[arg(long = "create-table", value_name = "NAME", num_args = 0..=1, help_heading = "Tables")]
    pub create_table: Option<Option<String>>,
    /// List ipta's tables with rows, first and last packet time and size (-lt)
    #[arg(long = "list-tables", help_heading = "Tables")]
    pub list_tables: bool,
    /// Delete one of ipta's tables (-dt)
    #[arg(long = "delete-table", value_name = "NAME", help_heading = "Tables")]
    pub delete_table: Option<String>,
    /// Delete all of ipta's tables in the database, no other table (-da)
    #[arg(long = "delete-all-tables", help_heading = "Tables")]
    pub delete_all_tables: bool,
    /// Create the database when it does not exist (-cd)
    #[arg(long = "create-db", help_heading = "Tables")]
    pub create_db: bool,
    /// Write the effective database settings to ~/.ipta-conf (mode 0600)
    #[arg(short = 's', long = "save-db", help_heading = "Tables")]
    pub save_db: bool,
    /// Answer yes to confirmations (needed for -c, -dt, -da when not on a terminal)
    #[arg(long = "yes", help_heading = "Tables")]
    pub yes: bool,

    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub password: PasswordArgs,

    // ---- Import and parsing ----
    /// Year of year-less syslog stamps (default: from the file's modification time)
    #[arg(long = "year", value_name = "YEAR", value_parser = clap::value_parser!(i32).range(1000..=9999), help_heading = "Import")]
    pub year: Option<i32>,
    /// Time zone of zone-less stamps: IANA name, UTC or +01:00 (default: local)
    #[arg(long = "tz", value_name = "ZONE", help_heading = "Import")]
    pub tz: Option<String>,
    /// Also read these log prefixes: ufw, shorewall (comma-separated)
    #[arg(
        long = "rules",
        value_name = "PRESETS",
        value_delimiter = ',',
        help_heading = "Import"
    )]
    pub rules: Vec<String>,
    /// Also read prefixes matching REGEX; its capture group `action` is the action
    #[arg(long = "rule-regex", value_name = "REGEX", help_heading = "Import")]
    pub rule_regex: Option<String>,
    /// Also read lines a program wrote under a syslog tag other than the kernel's (by default
    /// only the kernel's lines are packets: `logger "IPT: ..."` lines are refused)
    #[arg(long = "any-tag", help_heading = "Import")]
    pub any_tag: bool,

    // ---- Reports ----
    /// Report modules to show (comma-separated; default: all)
    #[arg(
        long = "module",
        value_name = "LIST",
        value_delimiter = ',',
        help_heading = "Reports"
    )]
    pub module: Vec<String>,
    /// Only packets since TIME (24h, 7d, 2026-11-01, RFC 3339)
    #[arg(long = "since", value_name = "TIME", help_heading = "Reports")]
    pub since: Option<String>,
    /// Only packets until TIME
    #[arg(long = "until", value_name = "TIME", help_heading = "Reports")]
    pub until: Option<String>,
    /// Only packets logged by HOST
    #[arg(long = "host", value_name = "HOST", help_heading = "Reports")]
    pub host: Option<String>,
    /// Port scans: sources on at least N distinct destination ports [default: 15, or config
    /// key scan_threshold]
    #[arg(long = "scan-threshold", value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Reports")]
    pub scan_threshold: Option<u32>,
    /// Rows per report [default: 10]
    #[arg(
        short = 'l',
        long = "limit",
        visible_alias = "lines",
        value_name = "N",
        help_heading = "Reports"
    )]
    pub limit: Option<u32>,
    /// Output format
    #[arg(
        long = "format",
        value_name = "FORMAT",
        value_enum,
        help_heading = "Reports"
    )]
    pub format: Option<Format>,
    /// Write the report into FILE (atomically: the old file stays whole until the new one is complete)
    #[arg(short = 'o', long = "output", value_name = "FILE", help_heading = "Reports")]
    pub output: Option<PathBuf>,
    /// Mail the report (text and HTML) to ADDR through the local mailer (key sendmail)
    #[arg(long = "mail-to", value_name = "ADDR", help_heading = "Reports")]
    pub mail_to: Option<String>,
    /// Hide packets on the loopback interface
    #[arg(long = "no-local", visible_alias = "no-lo", help_heading = "Reports")]
    pub no_local: bool,
    /// Hide accepted packets
    #[arg(long = "no-accept", help_heading = "Reports")]
    pub no_accept: bool,
    /// Show host names instead of addresses (reverse DNS, cached)
    #[arg(short = 'r', long = "rdns", help_heading = "Reports")]
    pub rdns: bool,
    /// Create the reverse-DNS cache table
    #[arg(long = "dns-create-table", help_heading = "Reports")]
    pub dns_create_table: bool,
    /// Remove expired names from the reverse-DNS cache (-dp)
    #[arg(long = "dns-prune", help_heading = "Reports")]
    pub dns_prune: bool,
    /// Lifetime of cached names in hours
    #[arg(long = "ttl", value_name = "HOURS", help_heading = "Reports")]
    pub ttl: Option<u32>,
    /// Print the reverse-DNS cache
    #[arg(long = "dns-dump", help_heading = "Reports")]
    pub dns_dump: bool,

    // ---- Follow ----
    /// Fan-out directory of ipta-ingest [default: /run/ipta/follow]
    #[arg(long = "follow-dir", value_name = "DIR", help_heading = "Follow")]
    pub follow_dir: Option<PathBuf>,
    /// No header lines in follow mode
    #[arg(long = "no-header", help_heading = "Follow")]
    pub no_header: bool,
    /// No counter column in follow mode
    #[arg(
        short = 'C',
        long = "no-counter",
        visible_alias = "no-count",
        help_heading = "Follow"
    )]
    pub no_counter: bool,

    // ---- Misc ----
    /// Print the license
    #[arg(long = "license", help_heading = "Misc")]
    pub license: bool,
    /// Print a short usage summary
    #[arg(long = "usage", help_heading = "Misc")]
    pub usage: bool,
    /// Print the version
    #[arg(short = 'v', long = "version", action = ArgAction::Version, help_heading = "Misc")]
    pub version: (),
    /// Print help (-h is --db-host)
    #[arg(long = "help", action = ArgAction::Help, help_heading = "Misc")]
    pub help: (),
    /// Write the man pages and shell completions into DIR (for packaging)
    #[arg(long = "generate", value_name = "DIR", hide = true)]
    pub generate: Option<PathBuf>,
}

/// The clap definition of `ipta` (for man pages and completions).
pub fn command() -> clap::Command {
    Cli::command()
}

/// The original's two-letter short options and their long forms.
pub const TWO_LETTER_OPTIONS: &[(&str, &str)] = &[
    ("-ai", "--analyze-interactive"),
    ("-pi", "--db-pass-i"),
    ("-lt", "--list-tables"),
    ("-dt", "--delete-table"),
    ("-da", "--delete-all-tables"),
    ("-ct", "--create-table"),
    ("-cd", "--create-db"),
    ("-dp", "--dns-prune"),
];

/// Rewrites the two-letter short options (also as `-dt=NAME`) to their long forms, up to a
/// `--` that ends the options. The first word (the program name) is kept as is.
pub fn normalize_args<I: IntoIterator<Item = OsString>>(args: I) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut options_ended = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || options_ended {
            out.push(a);
            continue;
        }
        if a == "--" {
            options_ended = true;
            out.push(a);
            continue;
        }
        let rewritten = a.to_str().and_then(|s| {
            let (word, value) = match s.split_once('=') {
                Some((w, v)) => (w, Some(v)),
                None => (s, None),
            };
            TWO_LETTER_OPTIONS
                .iter()
                .find(|(short, _)| *short == word)
                .map(|(_, long)| match value {
                    Some(v) => OsString::from(format!("{long}={v}")),
                    None => OsString::from(*long),
                })
        });
        out.push(rewritten.unwrap_or(a));
    }
    out
}

/// Exit statuses of `ipta` (documented in README.md and `--help`).
pub mod exit {
    pub const OK: u8 = 0;
    /// Something failed (bad file, SQL error, ...).
    pub const ERROR: u8 = 1;
    /// Bad command line: unknown option, bad value or name, missing confirmation.
    pub const USAGE: u8 = 2;
    /// The database server cannot be reached, or the connection was lost.
    pub const UNREACHABLE: u8 = 3;
    /// Some of the work failed, the rest was done (e.g. one of several files).
    pub const PARTIAL: u8 = 4;
    /// The server answered but the database is not set up: access denied, unknown database,
    /// missing or foreign table, newer schema.
    pub const NOT_SET_UP: u8 = 5;
}

/// The short usage text of `--usage` (the original's synopsis, with this version's additions).
pub const USAGE: &str = "\
Usage: ipta [OPTIONS]
  ipta -i FILE... [-c]          import log files (-c clears the table first)
  ipta -a [-l N] [--no-local] [--no-accept] [-r] [--since 24h] [--format json|csv|html]
        [-o FILE] [--mail-to ADDR]  print, write or mail the reports
  ipta -f [FILE]                follow a log file, or ipta-ingest's live stream
  ipta --scan FILE              print the packets of a file, no database
  ipta -ct [NAME] | -lt | -dt NAME | -da | -cd | -c
                                create, list, delete tables; create the database; clear
  ipta -s                       save the database settings to ~/.ipta-conf
Database: -d NAME -h HOST --db-port N --db-socket PATH -u USER -p PASS | -pi  -t TABLE
          --db-tls off|required|verify --db-tls-ca FILE --config FILE
More: ipta --help, ipta --license, ipta --version
";

/// The text of `--license`.
pub const LICENSE: &str = "\
ipta - iptables/nftables log analyzer
Copyright (C) the ipta authors

This program is free software: you can redistribute it and/or modify it under the terms of
the GNU General Public License as published by the Free Software Foundation, either version 3
of the License, or (at your option) any later version (SPDX: GPL-3.0-or-later).

This program is distributed in the hope that it will be useful, but WITHOUT ANY WARRANTY;
without even the implied warranty of MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.
See the GNU General Public License for more details.

The full text is in the file LICENSE of the source distribution, on Debian and Ubuntu in
/usr/share/common-licenses/GPL-3, and at <https://www.gnu.org/licenses/gpl-3.0.html>.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut v = vec!["ipta".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        Cli::try_parse_from(normalize_args(v.into_iter().map(OsString::from)))
    }

    #[test]
    fn db_args_flatten_into_another_command() {
        #[derive(Parser, Debug)]
        #[command(name = "other", disable_help_flag = true)]
        struct Other {
            #[command(flatten)]
            db: DbArgs,
            #[command(flatten)]
            password: PasswordArgs,
            #[arg(long, action = ArgAction::Help)]
            help: (),
        }
        Other::command().debug_assert();
        let o = Other::try_parse_from(
            ["other", "-h", "db1", "--db-port", "3307", "-pi"]
                .map(OsString::from)
                .to_vec(),
        )
        .err()
        .map(|e| e.kind());
        // -pi is not rewritten without normalize_args: it reads as -p with value "i".
        assert_eq!(o, None);
        let args = normalize_args(["other", "-h", "db1", "-pi"].map(OsString::from));
        let o = Other::try_parse_from(args).unwrap();
        assert_eq!(o.db.db_host.as_deref(), Some("db1"));
        assert!(o.password.db_pass_i);
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn two_letter_options_are_rewritten() {
        let c = parse(&["-ai", "-pi", "-lt", "-dt", "x", "-da", "-ct", "-cd", "-dp"]).unwrap();
        assert!(c.analyze_interactive && c.password.db_pass_i && c.list_tables && c.delete_all_tables);
        assert!(c.create_db && c.dns_prune && !c.analyze && c.import.is_empty());
        assert_eq!(c.delete_table.as_deref(), Some("x"));
        assert_eq!(c.create_table, Some(None));
        let c = parse(&["-ct", "fw2", "-dt=old"]).unwrap();
        assert_eq!(c.create_table, Some(Some("fw2".into())));
        assert_eq!(c.delete_table.as_deref(), Some("old"));
        // After `--` nothing is rewritten.
        let v = normalize_args(["ipta", "--", "-ai"].map(OsString::from));
        assert_eq!(v[2], "-ai");
    }

    #[test]
    fn the_originals_options_parse() {
        let c = parse(&[
            "-d",
            "db",
            "-h",
            "dbhost",
            "-u",
            "me",
            "-p",
            "pw",
            "-t",
            "tbl",
            "-c",
            "-i",
            "a.log",
            "b.log.1.gz",
            "-a",
            "-r",
            "-l",
            "5",
            "--no-header",
            "--no-counter",
            "--no-local",
            "--no-accept",
        ])
        .unwrap();
        assert_eq!(c.db.db_name.as_deref(), Some("db"));
        assert_eq!(c.db.db_host.as_deref(), Some("dbhost"));
        assert_eq!(c.db.db_user.as_deref(), Some("me"));
        assert_eq!(c.password.db_pass.as_deref(), Some("pw"));
        assert_eq!(c.db.db_table.as_deref(), Some("tbl"));
        assert!(
            c.clear
                && c.analyze
                && c.rdns
                && c.no_header
                && c.no_counter
                && c.no_local
                && c.no_accept
        );
        assert_eq!(c.import.len(), 2);
        assert_eq!(c.limit, Some(5));
        let c = parse(&["--no-lo", "--no-count", "--lines", "7", "-f"]).unwrap();
        assert!(c.no_local && c.no_counter);
        assert_eq!(c.limit, Some(7));
        assert_eq!(c.follow, Some(None));
        let c = parse(&["-C", "-f", "/var/log/iptables.log", "-s"]).unwrap();
        assert!(c.no_counter && c.save_db);
        assert_eq!(c.follow, Some(Some(PathBuf::from("/var/log/iptables.log"))));
        let c = parse(&[
            "--scan",
            "-",
            "--format",
            "json",
            "--rules",
            "ufw,shorewall",
        ])
        .unwrap();
        assert_eq!(c.scan, Some(PathBuf::from("-")));
        assert_eq!(c.format, Some(Format::Json));
        assert_eq!(c.rules, vec!["ufw", "shorewall"]);
        let c = parse(&[
            "--dns-create-table",
            "--ttl",
            "48",
            "--dns-dump",
            "--db-tls",
            "verify",
            "--db-port",
            "3307",
        ])
        .unwrap();
        assert!(c.dns_create_table && c.dns_dump);
        assert_eq!(c.ttl, Some(48));
        assert_eq!(c.db.db_tls, Some(crate::config::TlsMode::Verify));
        assert_eq!(c.db.db_port, Some(3307));
    }

    #[test]
    fn usage_errors_and_help() {
        use clap::error::ErrorKind;
        assert_eq!(
            parse(&["--bogus"]).unwrap_err().kind(),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            parse(&["-l", "many"]).unwrap_err().kind(),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            parse(&["--format", "xml"]).unwrap_err().kind(),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            parse(&["--db-port", "0"]).unwrap_err().kind(),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            parse(&["--help"]).unwrap_err().kind(),
            ErrorKind::DisplayHelp
        );
        assert_eq!(
            parse(&["-v"]).unwrap_err().kind(),
            ErrorKind::DisplayVersion
        );
        assert_eq!(parse(&["-h"]).unwrap_err().kind(), ErrorKind::InvalidValue);
    }
}
