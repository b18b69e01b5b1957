//! What the benchmark programs share: the workload generator and the throwaway databases of
//! the dev crate `ipta-dev` (the tests use the same), the built binaries, command-line
//! arguments, the benchmark's database settings and /proc figures. Each bench includes it as
//! `mod common;` and uses what it needs.
#![allow(dead_code, unused_imports)]

use ipta::config::DbSettings;

pub use ipta_dev::genlog;
pub use ipta_dev::testdb::{credentials, TestDb};

/// Path of a binary of this package, built by cargo for the benchmarks.
pub fn bin(name: &str) -> std::path::PathBuf {
    match name {
        "ipta" => env!("CARGO_BIN_EXE_ipta").into(),
        "ipta-ingest" => env!("CARGO_BIN_EXE_ipta-ingest").into(),
        other => panic!("no binary {other}"),
    }
}

/// The value after `name` on the command line (`--rows 1000`), if any.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// The number after `name` on the command line, else `default`.
pub fn num(name: &str, default: usize) -> usize {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Settings for `database` on the local server with the test account (IPTA_TEST_USER,
/// IPTA_TEST_PASSWORD, IPTA_TEST_SOCKET: run the bench under `scripts/test-account.sh`).
pub fn settings(database: &str) -> DbSettings {
    let (user, password) = credentials();
    DbSettings {
        user,
        password,
        database: database.into(),
        socket: Some(std::env::var("IPTA_TEST_SOCKET").unwrap_or_else(|_| "/run/mysqld/mysqld.sock".into()).into()),
        ..DbSettings::default()
    }
}

/// A field of `/proc/<pid>/status` in KiB (`pid` may be `self`); 0 when unreadable.
pub fn status_kib(pid: impl std::fmt::Display, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
