//! `ipta --import` speed and memory next to `LOAD DATA LOCAL INFILE` of the same rows into an
//! identical empty table, in the same run. Prints figures, asserts nothing.
//!
//! Run: `cargo bench --bench import` (needs the server scripts/provision.sh sets up;
//! `IPTA_TEST_SOCKET` overrides the socket). The workload is `genlog.py N --seed 7` (the
//! project's shared generator, found at ../shared/genlog.py from the repository's parent, or
//! given with `--genlog PATH`; `--workload FILE` uses a file generated before). Options after
//! `--`: `--lines N` (default 1000000),
//! `--writers N` and `--batch N` (import defaults otherwise), `--load-batch N` (rows per
//! LOAD DATA statement, default 10000), `--rounds N` (default 3: import and LOAD DATA N times,
//! alternating which goes first, both tables emptied before each round; the median is printed
//! last: the machine is shared, and one round can be disturbed), `--no-load-data` (the import uses only the INSERT writer).
//!
//! The import runs in a child process (this program started again) so that its peak RSS
//! (VmHWM) is the import's alone. The LOAD DATA figure counts only the time spent inside
//! `load_data` calls, not parsing the file into rows: a stricter yardstick than the import's
//! wall-clock time, which includes reading, decompressing and parsing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ipta::config::DbSettings;
use ipta::import::{self, ImportOptions};
use mysql::prelude::Queryable;

/// The child: imports the file into table `imp` and prints one line of figures.
/// The benchmark's settings: table `imp` in `database`.
fn settings(database: &str) -> DbSettings {
    DbSettings { table: "imp".into(), ..common::settings(database) }
}

fn child(database: &str, file: &Path) {
    let opts = ImportOptions {
        tz: Some("UTC".into()),
        writers: common::num("--writers", 0),
        batch_rows: common::num("--batch", 0),
        no_load_data: std::env::args().any(|a| a == "--no-load-data"),
        ..Default::default()
    };
    let t = Instant::now();
    let mut report = Vec::new();
    let s = import::run(&settings(database), &[file.to_path_buf()], &opts, &mut report).expect("import");
    let secs = t.elapsed().as_secs_f64();
    eprint!("{}", String::from_utf8_lossy(&report));
    println!("RESULT {} {} {secs} {}", s.lines(), s.added(), common::status_kib("self", "VmHWM:"));
}

/// CPU seconds (user + system) the local database server has used so far, when it runs on
/// this machine and /proc lets us read it: where the time goes is on the server side.
fn server_cpu_secs() -> Option<f64> {
    let tick = 100.0; // USER_HZ on Linux
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() == "mariadbd" || comm.trim() == "mysqld" {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split(' ').collect();
            let (u, s): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
            return Some((u + s) / tick);
        }
    }
    None
}

fn cpu_delta(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.2} s", b - a),
        _ => "n/a".into(),
    }
}

fn main() {
    if let Some(db) = common::arg("--child-import") {
        child(&db, Path::new(&common::arg("--file").expect("--file")));
        return;
    }
    // `cargo bench` passes --bench; nothing else to handle.
    let lines = common::num("--lines", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let file = match common::arg("--workload") {
        // A workload generated before (e.g. to run several configurations on the same file).
        Some(f) => PathBuf::from(f),
        None => {
            let file = dir.path().join("workload.log");
            let t = Instant::now();
            common::genlog(&[lines.to_string(), "--seed".into(), "7".into()], &file);
            println!("workload: genlog.py {lines} --seed 7, generated in {:.1} s", t.elapsed().as_secs_f64());
            file
        }
    };
    let size = std::fs::metadata(&file).unwrap().len();
    println!("workload file: {} ({:.1} MiB)", file.display(), size as f64 / 1048576.0);

    let db = common::TestDb::new("bench_import");
    let mut conn = db.conn();
    for t in ["imp", "ld"] {
        conn.query_drop(ipta::store::schema::create_table_sql(t)).unwrap();
    }

    let rounds = common::num("--rounds", 3).max(1);
    let per_batch = common::num("--load-batch", 10_000);
    let (mut imp_rates, mut ld_rates, mut ratios, mut peak) = (Vec::new(), Vec::new(), Vec::new(), 0f64);
    for round in 1..=rounds {
        // Both tables empty again: every round measures an import into an empty table.
        for t in ["imp", "ld"] {
            conn.query_drop(format!("TRUNCATE TABLE `{t}`")).unwrap();
        }
        // The import, in a child process of its own.
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--child-import", &db.settings.database, "--file"]).arg(&file);
        for o in ["--writers", "--batch"] {
            if let Some(v) = common::arg(o) {
                cmd.args([o, &v]);
            }
        }
        if std::env::args().any(|a| a == "--no-load-data") {
            cmd.arg("--no-load-data");
        }
        // Odd rounds import first, even rounds load first: neither always gets the fresher
        // server.
        let import_first = round % 2 == 1;
        let mut ld = None;
        let mut ld_cpu = None;
        if !import_first {
            let c = server_cpu_secs();
            ld = Some(common::load_data_run(&mut conn, "ld", &file, per_batch));
            ld_cpu = c.zip(server_cpu_secs()).map(|(a, b)| b - a);
        }
        let cpu0 = server_cpu_secs();
        let out = cmd.output().expect("run the import child");
        let cpu1 = server_cpu_secs();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let result = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| {
            panic!("import child failed: {}\n{stdout}\n{stderr}", out.status)
        });
        let f: Vec<f64> = result.split(' ').map(|v| v.parse().unwrap()).collect();
        let (imp_lines, imp_rows, imp_secs, hwm) = (f[0], f[1], f[2], f[3]);
        if round == 1 {
            print!("{stderr}");
        }

        // LOAD DATA of the same rows into the identical empty table.
        let (ld_rows, ld_load, ld_wall) = match ld {
            Some(r) => r,
            None => {
                let c = server_cpu_secs();
                let r = common::load_data_run(&mut conn, "ld", &file, per_batch);
                ld_cpu = c.zip(server_cpu_secs()).map(|(a, b)| b - a);
                r
            }
        };

        let imp_rate = imp_lines / imp_secs;
        let ld_rate = imp_lines / ld_load.as_secs_f64();
        println!("round {round}/{rounds} ({} first):", if import_first { "import" } else { "LOAD DATA" });
        println!(
            "  import:    {imp_lines:.0} lines, {imp_rows:.0} rows in {imp_secs:.2} s = {imp_rate:.0} lines/s, peak RSS {:.1} MiB (VmHWM of the import process)",
            hwm / 1024.0
        );
        println!(
            "  LOAD DATA: {ld_rows} rows in {:.2} s inside load_data ({per_batch} rows per statement) = {ld_rate:.0} lines/s; with parsing, single-threaded: {:.2} s",
            ld_load.as_secs_f64(),
            ld_wall.as_secs_f64()
        );
        println!(
            "  ratio {:.2}x; database server CPU (all its clients): import {}, LOAD DATA {}; load average {}",
            imp_rate / ld_rate,
            cpu_delta(cpu0, cpu1),
            ld_cpu.map_or("n/a".to_string(), |c| format!("{c:.2} s")),
            std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').next().unwrap_or("?")
        );
        imp_rates.push(imp_rate);
        ld_rates.push(ld_rate);
        ratios.push(imp_rate / ld_rate);
        peak = peak.max(hwm / 1024.0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!(
        "median of {rounds}: import {:.0} lines/s, LOAD DATA {:.0} lines/s, ratio import / LOAD DATA {:.2}x (per-round ratios: {}); peak RSS of the import {:.1} MiB",
        median(&mut imp_rates),
        median(&mut ld_rates),
        median(&mut ratios.clone()),
        ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", "),
        peak
    );
}

