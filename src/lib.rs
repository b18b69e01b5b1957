//! ipta: an iptables/nftables log analyzer.
//!
//! The library follows the data: [`parse`] turns the bytes of a log line into a
//! [`record::Record`] (and [`record::dedup`] gives it its de-duplication key), [`store`] writes
//! records into MySQL/MariaDB and reads them back, [`ingest`] is the live path from rsyslog,
//! [`import`] the path from log files, [`report`] the analyzer, [`follow`] the live display and
//! the fan-out that feeds it, [`scan`] the database-less listing; [`units`] writes sizes and
//! reads ages for people. [`config`] is the one settings layer of both programs, [`cli`] is
//! `ipta`'s command line (flags, steps, exit statuses, man pages); the binaries in `src/bin/`
//! only parse arguments and call [`cli::run`] or [`ingest::run`].

pub mod cli;
pub mod config;
pub mod follow;
pub mod import;
pub mod ingest;
pub mod parse;
pub mod record;
pub mod report;
pub mod scan;
pub mod store;
pub mod units;
