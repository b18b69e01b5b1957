//! What the summary tables cost on the way from a log file to its first report, and how fast
//! windowed reports are, in one run (issue 14's figures). Prints figures, asserts nothing.
//!
//! Per round (default 3; the machine is shared, so the median is printed last):
//! - `ipta -i FILE` into `plain`, a table without summaries (the built binary, timed from start
//!   to exit);
//! - `ipta -i FILE -a` into `summ`, a table that already has (empty) summaries, as every table
//!   has after its first report: the import, then the report folding every row in;
//! - LOAD DATA LOCAL INFILE of the same rows, in statements of 10,000 rows, into a third
//!   identical table, counting only the time inside the statements: the bare-statement limit;
//! - the bare cost of storing what the fold stored: `summ`'s summary rows copied by the server
//!   into empty copies of its summary tables (`INSERT ... SELECT`), the limit of any fold that
//!   stores these summaries.
//!
//! Then windows: a second workload spread over 30 days from several hosts (`genlog.py N
//! --seed 11 --style 3339 --rate R --hosts 4`) is imported with `-a` into `win`, and the default
//! report (all modules) is timed, first run, for `--since` the last 24 h, the last 7 days, a
//! 15-day `--since/--until` range and `--host fw2`, with the path each module took.
//!
//! Then, with `--flood N` (or `--flood-workload FILE`), the flood: N lines of `genlog.py N
//! --seed 11 --style 3164` piped into the built `ipta-ingest` (plain mode, as fast as it reads)
//! into a table without summaries and into one with them (made by a report while empty), the
//! order alternating per round; then the rows its summaries are behind when it has exited, and
//! the first and second `ipta -a` on it, timed.
//!
//! Run: `scripts/test-account.sh -- cargo bench --bench summaries -- [options]`. Options:
//! `--lines N` (default 1000000: `genlog.py N --seed 11 --style 3164`), `--workload FILE` (a
//! file generated before), `--window-lines N` (default = --lines; 0 skips the windows),
//! `--window-workload FILE`, `--rounds N` (default 3; the flood does `--flood-rounds`, default
//! 1), `--no-import` (windows and flood only), `--flood N`, `--flood-workload FILE`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ipta::record::Timestamp;
use ipta::report::query::{self, Path as QPath};
use ipta::report::AnalyzeOptions;
use ipta::store::{schema, summary};
use mysql::prelude::Queryable;

/// The built `ipta` pointed at the bench database (password through the environment), with a
/// private HOME and no system config.
fn ipta(db: &common::TestDb, home: &Path, table: &str) -> Command {
    let mut c = db.ipta_command(&common::bin("ipta"), home);
    c.args(["-t", table, "--tz", "UTC"]);
    c
}

/// Runs it and returns the wall-clock seconds (panics with its output when it fails).
fn timed(mut c: Command) -> f64 {
    let t = Instant::now();
    let out = c.output().expect("run ipta");
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "ipta failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').take(3).collect::<Vec<_>>().join(" ")
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn fresh_table(conn: &mut mysql::Conn, t: &str, with_summaries: bool) {
    summary::on_drop(conn, t).unwrap();
    conn.query_drop(format!("DROP TABLE IF EXISTS `{t}`")).unwrap();
    conn.query_drop(schema::create_table_sql(t)).unwrap();
    if with_summaries {
        summary::create(conn, t).unwrap();
    }
}

fn import_rounds(db: &common::TestDb, conn: &mut mysql::Conn, file: &Path, home: &Path) {
    let rounds = common::num("--rounds", 3).max(1);
    let (mut plain, mut with, mut ld, mut ratios) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        fresh_table(conn, "plain", false);
        fresh_table(conn, "summ", true);
        fresh_table(conn, "ld", false);
        let l0 = load();
        // Alternate the order: neither always gets the fresher server.
        let (p, s) = if round % 2 == 1 {
            let p = timed({
                let mut c = ipta(db, home, "plain");
                c.arg("-i").arg(file);
                c
            });
            let s = timed({
                let mut c = ipta(db, home, "summ");
                c.arg("-i").arg(file).arg("-a");
                c
            });
            (p, s)
        } else {
            let s = timed({
                let mut c = ipta(db, home, "summ");
                c.arg("-i").arg(file).arg("-a");
                c
            });
            let p = timed({
                let mut c = ipta(db, home, "plain");
                c.arg("-i").arg(file);
                c
            });
            (p, s)
        };
        let (rows, in_ld, _) = common::load_data_run(conn, "ld", file, 10_000);
        let ld_s = in_ld.as_secs_f64();
        let (keys, bare) = bare_summary_insert(conn, "summ");
        println!(
            "round {round}/{rounds}: import alone (no summaries) {p:.2} s; import + first report (summaries) {s:.2} s = {:.2}x; \
             LOAD DATA {rows} rows {ld_s:.2} s inside the statements (time ratios to it: import alone {:.2}x, import + report {:.2}x); load average {l0} -> {}",
            s / p,
            p / ld_s,
            s / ld_s,
            load()
        );
        println!(
            "  the limit: the {keys} summary rows ({:.2} per packet) copied by the server into empty copies of the summary tables \
             (INSERT ... SELECT, no client, no read-back) take {bare:.2} s: import alone + that = {:.2}x the import alone, one statement after the other",
            keys as f64 / rows.max(1) as f64,
            (p + bare) / p
        );
        plain.push(p);
        with.push(s);
        ld.push(ld_s);
        ratios.push(s / p);
    }
    println!(
        "median of {rounds}: import alone {:.2} s, import + first report {:.2} s, ratio {:.2}x (per round: {}), LOAD DATA {:.2} s (import+report / LOAD DATA {:.2}x)",
        median(&plain),
        median(&with),
        median(&ratios),
        ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", "),
        median(&ld),
        median(&with) / median(&ld)
    );
}

/// The bare server cost of storing what a fold stores: every row of `table`'s summaries copied
/// by one `INSERT ... SELECT` per summary table into an empty copy (same keys and indexes).
/// Returns the rows copied and the seconds the statements took.
fn bare_summary_insert(conn: &mut mysql::Conn, table: &str) -> (u64, f64) {
    let (mut rows, mut secs) = (0u64, 0.0);
    for suf in summary::SUFFIXES.iter().filter(|s| **s != summary::STATE) {
        let (src, copy) = (format!("{table}{suf}"), format!("bare{suf}"));
        conn.query_drop(format!("DROP TABLE IF EXISTS `{copy}`")).unwrap();
        conn.query_drop(format!("CREATE TABLE `{copy}` LIKE `{src}`")).unwrap();
        let t = Instant::now();
        conn.query_drop(format!("INSERT INTO `{copy}` SELECT * FROM `{src}`")).unwrap();
        secs += t.elapsed().as_secs_f64();
        rows += conn.affected_rows();
        conn.query_drop(format!("DROP TABLE `{copy}`")).unwrap();
    }
    (rows, secs)
}

fn windows(db: &common::TestDb, conn: &mut mysql::Conn, file: &Path, home: &Path) {
    fresh_table(conn, "win", true);
    let s = timed({
        let mut c = ipta(db, home, "win");
        c.arg("-i").arg(file).arg("-a");
        c
    });
    let (rows, last): (u64, Option<mysql::Value>) =
        conn.query_first("SELECT COUNT(*), MAX(`ts`) FROM `win`").unwrap().unwrap();
    let last = ipta::store::value::value_ts(last.as_ref()).expect("rows");
    println!("windows: {rows} rows in `win` (import + first report {s:.2} s); load average {}", load());
    const H: i64 = 3_600_000_000;
    let d = 24 * H;
    let end = Timestamp(last.0 + 1);
    let cases: Vec<(&str, AnalyzeOptions)> = vec![
        ("--since last 24 h", AnalyzeOptions { since: Some(Timestamp(end.0 - d)), ..Default::default() }),
        ("--since last 7 days", AnalyzeOptions { since: Some(Timestamp(end.0 - 7 * d)), ..Default::default() }),
        (
            "--since/--until 15 days",
            AnalyzeOptions {
                since: Some(Timestamp(end.0 - 20 * d)),
                until: Some(Timestamp(end.0 - 5 * d)),
                ..Default::default()
            },
        ),
        ("--host fw2", AnalyzeOptions { host: Some("fw2".into()), ..Default::default() }),
        (
            "--host fw2 --since last 7 days",
            AnalyzeOptions { host: Some("fw2".into()), since: Some(Timestamp(end.0 - 7 * d)), ..Default::default() },
        ),
        ("all time", AnalyzeOptions::default()),
    ];
    for (name, o) in cases {
        let mut c = db.conn();
        let t = Instant::now();
        let rep = query::analyze_with(&mut c, "win", &o, QPath::Auto).unwrap();
        let first = t.elapsed().as_secs_f64();
        let t = Instant::now();
        query::analyze_with(&mut c, "win", &o, QPath::Auto).unwrap();
        let second = t.elapsed().as_secs_f64();
        let summ = rep.sections.iter().filter(|s| s.via == query::Via::Summary).count();
        println!(
            "  {name:32} first {first:8.3} s, second {second:8.3} s, {} packets, {summ}/{} modules from summaries",
            rep.packets,
            rep.sections.len()
        );
    }
    if std::env::args().any(|a| a == "--packets-too") {
        for (name, o) in [
            ("--since last 7 days (packet table)", AnalyzeOptions { since: Some(Timestamp(end.0 - 7 * d)), ..Default::default() }),
            ("--host fw2 (packet table)", AnalyzeOptions { host: Some("fw2".into()), ..Default::default() }),
        ] {
            let mut c = db.conn();
            let t = Instant::now();
            query::analyze_with(&mut c, "win", &o, QPath::Packets).unwrap();
            println!("  {name:32} first {:8.3} s", t.elapsed().as_secs_f64());
        }
    }
}

/// `ipta-ingest -t table < file` (plain mode) timed; panics with its stderr when it fails.
fn ingest(db: &common::TestDb, home: &Path, table: &str, file: &Path) -> f64 {
    let mut c = db.ipta_command(&common::bin("ipta-ingest"), home);
    c.args(["-t", table]).stdin(std::fs::File::open(file).expect("the flood workload"));
    timed(c)
}

fn flood(db: &common::TestDb, conn: &mut mysql::Conn, file: &Path, home: &Path) {
    let rounds = common::num("--flood-rounds", 1).max(1);
    for round in 1..=rounds {
        fresh_table(conn, "fplain", false);
        fresh_table(conn, "fsumm", true);
        let l0 = load();
        let (p, s) = if round % 2 == 1 {
            let p = ingest(db, home, "fplain", file);
            (p, ingest(db, home, "fsumm", file))
        } else {
            let s = ingest(db, home, "fsumm", file);
            (ingest(db, home, "fplain", file), s)
        };
        let rows: u64 = conn.query_first("SELECT COUNT(*) FROM `fsumm`").unwrap().unwrap();
        let behind = summary::backlog(conn, "fsumm").unwrap().unwrap_or(0);
        let first = timed({
            let mut c = ipta(db, home, "fsumm");
            c.arg("-a");
            c
        });
        let second = timed({
            let mut c = ipta(db, home, "fsumm");
            c.arg("-a");
            c
        });
        println!(
            "flood round {round}/{rounds}: {rows} rows; ipta-ingest without summaries {:.0} rows/s, with {:.0} rows/s = {:.2}x; \
             {behind} rows behind when it exited; first ipta -a after {first:.2} s, second {second:.2} s; load average {l0} -> {}",
            rows as f64 / p,
            rows as f64 / s,
            p / s,
            load()
        );
    }
}

fn main() {
    let lines = common::num("--lines", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let db = common::TestDb::new("bench_summ");
    let mut conn = db.conn();
    if !std::env::args().any(|a| a == "--no-import") {
        let file = match common::arg("--workload") {
            Some(f) => PathBuf::from(f),
            None => {
                let f = dir.path().join("workload.log");
                common::genlog(&[lines.to_string(), "--seed".into(), "11".into(), "--style".into(), "3164".into()], &f);
                f
            }
        };
        println!("workload: {} ({} lines asked: genlog.py N --seed 11 --style 3164)", file.display(), lines);
        import_rounds(&db, &mut conn, &file, &home);
    }
    let wl = common::num("--window-lines", lines);
    if wl > 0 {
        let file = match common::arg("--window-workload") {
            Some(f) => PathBuf::from(f),
            None => {
                let f = dir.path().join("windows.log");
                let rate = wl as f64 / (30.0 * 86_400.0);
                common::genlog(
                    &[
                        wl.to_string(),
                        "--seed".into(),
                        "11".into(),
                        "--style".into(),
                        "3339".into(),
                        "--start".into(),
                        "2026-10-01T00:00:00".into(),
                        "--rate".into(),
                        format!("{rate}"),
                        "--hosts".into(),
                        "4".into(),
                    ],
                    &f,
                );
                f
            }
        };
        println!("window workload: {} (genlog.py {wl} --seed 11 --style 3339 over 30 days, 4 hosts)", file.display());
        windows(&db, &mut conn, &file, &home);
    }
    let fl = common::num("--flood", 0);
    let file = match common::arg("--flood-workload") {
        Some(f) => Some(PathBuf::from(f)),
        None if fl > 0 => {
            let f = dir.path().join("flood.log");
            common::genlog(&[fl.to_string(), "--seed".into(), "11".into(), "--style".into(), "3164".into()], &f);
            Some(f)
        }
        None => None,
    };
    if let Some(file) = file {
        println!("flood workload: {} (genlog.py N --seed 11 --style 3164)", file.display());
        flood(&db, &mut conn, &file, &home);
    }
}
