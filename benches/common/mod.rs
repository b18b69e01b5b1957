//! What the benchmark programs share: the workload generator and the throwaway databases of
//! the dev crate `ipta-dev` (the tests use the same), the built binaries, command-line
//! arguments, the benchmark's database settings and /proc figures. Each bench includes it as
//! `mod common;` and uses what it needs.
#![allow(dead_code, unused_imports)]

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use ipta::config::DbSettings;
use ipta::parse::{Outcome, ParseOptions, Parser};
use ipta::record::dedup::{record_hash, Occurrences};
use ipta::record::{RecordBatch, Timestamp};
use ipta::store::loaddata::load_data;

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

/// The bare-statement limit of an import: parses `file` into batches of `per_batch` and sends
/// each with `load_data` into `table`. Returns the rows, the time spent in `load_data` alone and
/// the wall time.
pub fn load_data_run(conn: &mut mysql::Conn, table: &str, file: &Path, per_batch: usize) -> (u64, Duration, Duration) {
    let mtime = std::fs::metadata(file).unwrap().modified().unwrap();
    let reference = Timestamp(mtime.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64);
    let mut parser = Parser::new(ParseOptions {
        reference,
        year: None,
        tz: Some("UTC".into()),
        rules: Default::default(),
    })
    .unwrap();
    let mut occ = Occurrences::new();
    let mut r = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(file).unwrap());
    let mut line = Vec::new();
    let mut batch = RecordBatch::with_capacity(per_batch);
    let (mut rows, mut in_load) = (0u64, Duration::ZERO);
    let wall = Instant::now();
    let mut flush = |batch: &mut RecordBatch, rows: &mut u64, in_load: &mut Duration| {
        let t = Instant::now();
        let s = load_data(conn, table, batch).expect("load_data");
        *in_load += t.elapsed();
        *rows += s.inserted;
        batch.clear();
    };
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).unwrap() == 0 {
            break;
        }
        if let Outcome::Packet(rec) = parser.parse(&line) {
            let o = occ.next(rec.ts, record_hash(&rec));
            batch.push(&rec, u64::from(o));
            if batch.len() >= per_batch {
                flush(&mut batch, &mut rows, &mut in_load);
            }
        }
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut rows, &mut in_load);
    }
    (rows, in_load, wall.elapsed())
}

/// Runs `../shared/genlog.py ARGS` (or the script given with `--genlog PATH`) into `out`.
pub fn genlog(args: &[String], out: &Path) {
    let script = arg("--genlog").map(std::path::PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/genlog.py")
    });
    let script = if script.exists() { script } else { std::path::PathBuf::from("/work/shared/genlog.py") };
    let f = std::fs::File::create(out).expect("temp file");
    let st = std::process::Command::new("python3")
        .arg(&script)
        .args(args)
        .stdout(f)
        .status()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    assert!(st.success(), "genlog.py failed");
}
