//! ipta-ingest's throughput and memory, measured as rsyslog drives it, next to
//! `LOAD DATA LOCAL INFILE` of the same rows into the same kind of table in the same run.
//! Prints figures and asserts nothing. Run: `cargo bench --bench ingest` (needs the server that
//! scripts/provision.sh sets up; `IPTA_TEST_SOCKET` overrides the socket). Options after `--`:
//! `--lines N` (default 1000000), `--txn N` rows per rsyslog transaction (default 500),
//! `--ingest-batch N` ipta-ingest's `--batch-size` in the transaction run (default: its own).
//!
//! What is measured:
//! 1. transaction mode as rsyslog's omprog does it: `BEGIN TRANSACTION`, then each line written
//!    and its `DEFER_COMMIT` awaited before the next, then `COMMIT TRANSACTION` and its `OK`
//!    (sent only once the rows are committed); wall time from the first line to the last `OK`;
//! 2. plain mode (no feedback): the lines piped in as fast as ipta-ingest takes them, until
//!    it has exited after writing everything;
//! 3. LOAD DATA LOCAL INFILE (store::loaddata) of the same parsed rows in chunks of 100,000
//!    (the parse is not timed: the yardstick gets the easier job);
//! 4. peak RSS (VmHWM) of ipta-ingest in each run, CPU time used while idle for 3 s, and peak
//!    RSS with the database unreachable once the outage buffer (`--buffer-rows`) is full.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipta::parse::{Outcome, ParseOptions, Parser};
use ipta::record::{RecordBatch, Timestamp};
use ipta::record::dedup::{record_hash, Occurrences};
use mysql::prelude::Queryable;

mod common;

use common::genlog;

/// The project's workload generator (`ipta_dev::genlog`, the same mix as shared/genlog.py),
/// in rsyslog's file format (RFC 3339 headers), seed 7.
fn workload(n: usize) -> Vec<u8> {
    let mut g = genlog::Gen::new(7, genlog::Style::Rfc3339);
    let mut out = Vec::with_capacity(n * 260);
    for _ in 0..n {
        g.line(&mut out);
        out.push(b'\n');
    }
    out
}

fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks * 1000 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64
}

struct Db {
    socket: String,
    name: String,
}

impl Db {
    fn opts(&self, db: bool) -> mysql::OptsBuilder {
        mysql::OptsBuilder::new()
            .user(Some(common::credentials().0))
            .pass(Some(common::credentials().1))
            .socket(Some(self.socket.clone()))
            .db_name(db.then(|| self.name.clone()))
    }
    fn conn(&self) -> mysql::Conn {
        mysql::Conn::new(self.opts(true)).unwrap()
    }
    fn count(&self, table: &str) -> u64 {
        self.conn().query_first(format!("SELECT COUNT(*) FROM `{table}`")).unwrap().unwrap_or(0)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Ok(mut c) = mysql::Conn::new(self.opts(false)) {
            let _ = c.query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name));
        }
    }
}

fn spawn(db: &Db, table: &str, extra: &[&str], socket: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ipta-ingest"))
        .args(["-u", &common::credentials().0, "-d", &db.name, "-t", table, "--db-socket", socket])
        .args(extra)
        .env("IPTA_DB_PASS", common::credentials().1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ipta-ingest")
}

fn finish(mut child: Child) -> String {
    drop(child.stdin.take());
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let st = child.wait().unwrap();
    assert!(st.success(), "ipta-ingest failed: {err}");
    err.lines().filter(|l| l.contains("exiting")).collect::<Vec<_>>().join("\n")
}

fn main() {
    let n = common::num("--lines", 1_000_000);
    let txn = common::num("--txn", 500);
    let ingest_batch = common::num("--ingest-batch", 0);
    let batch_flag = ingest_batch.to_string();
    let mut txn_args = vec!["--confirm"];
    if ingest_batch > 0 {
        txn_args.extend(["--batch-size", batch_flag.as_str()]);
    }
    let socket =
        std::env::var("IPTA_TEST_SOCKET").unwrap_or_else(|_| "/run/mysqld/mysqld.sock".into());
    let db = Db { socket: socket.clone(), name: format!("ipta_bench_ingest_{}", std::process::id()) };
    mysql::Conn::new(db.opts(false))
        .expect("connect with the test account")
        .query_drop(format!("CREATE DATABASE `{}` CHARACTER SET utf8mb4", db.name))
        .unwrap();

    let t = Instant::now();
    let data = workload(n);
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    println!(
        "ingest bench: {} lines (dev/src/genlog.rs, seed 7, RFC 3339 headers, {:.1} MB), made in {:.1?}",
        lines.len(),
        data.len() as f64 / 1e6,
        t.elapsed()
    );

    // 1. Transaction mode, as rsyslog drives it.
    let mut child = spawn(&db, "txn", &txn_args, &socket);
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut reply = String::new();
    let mut read_reply = |expect: &str| {
        reply.clear();
        stdout.read_line(&mut reply).unwrap();
        let r = reply.trim_start_matches('.').trim_end();
        assert_eq!(r, expect, "unexpected reply");
    };
    read_reply("OK");
    let mut msg = Vec::with_capacity(1024);
    let t = Instant::now();
    let mut commit_wait = Duration::ZERO;
    for chunk in lines.chunks(txn) {
        stdin.write_all(b"BEGIN TRANSACTION\n").unwrap();
        read_reply("OK");
        for l in chunk {
            msg.clear();
            msg.extend_from_slice(l);
            msg.push(b'\n');
            stdin.write_all(&msg).unwrap();
            read_reply("DEFER_COMMIT");
        }
        let c = Instant::now();
        stdin.write_all(b"COMMIT TRANSACTION\n").unwrap();
        read_reply("OK");
        commit_wait += c.elapsed();
    }
    let txn_secs = t.elapsed().as_secs_f64();
    let txn_rss = common::status_kib(pid, "VmHWM:");
    let txn_rows = db.count("txn");
    let cpu0 = cpu_ms(pid);
    std::thread::sleep(Duration::from_secs(3));
    let idle_cpu = cpu_ms(pid) - cpu0;
    child.stdin = Some(stdin);
    let txn_report = finish(child);

    // 2. Plain mode, lines piped in at full speed.
    let mut child = spawn(&db, "plain", &[], &socket);
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let t = Instant::now();
    let feeder = {
        let data = data.clone();
        std::thread::spawn(move || {
            stdin.write_all(&data).unwrap();
        })
    };
    let mut peak = 0;
    while !feeder.is_finished() {
        peak = peak.max(common::status_kib(pid, "VmHWM:"));
        std::thread::sleep(Duration::from_millis(20));
    }
    feeder.join().unwrap();
    peak = peak.max(common::status_kib(pid, "VmHWM:"));
    let plain_report = finish(child);
    let plain_secs = t.elapsed().as_secs_f64();
    let plain_rows = db.count("plain");

    // 3. LOAD DATA LOCAL INFILE of the same rows.
    let mut parser = Parser::new(ParseOptions {
        reference: Timestamp(chrono::Utc::now().timestamp_micros()),
        year: None,
        tz: None,
        rules: Default::default(),
    })
    .unwrap();
    let mut occ = Occurrences::new();
    let mut batches = Vec::new();
    let mut b = RecordBatch::with_capacity(100_000);
    for l in &lines {
        if let Outcome::Packet(r) = parser.parse(l) {
            let o = occ.next(r.ts, record_hash(&r));
            b.push(&r, u64::from(o));
            if b.len() == 100_000 {
                batches.push(std::mem::replace(&mut b, RecordBatch::with_capacity(100_000)));
            }
        }
    }
    if !b.is_empty() {
        batches.push(b);
    }
    let mut conn = db.conn();
    ipta::store::schema::ensure_table(&mut conn, "loaddata").unwrap();
    let t = Instant::now();
    let mut ld_rows = 0;
    for b in &batches {
        ld_rows += ipta::store::loaddata::load_data(&mut conn, "loaddata", b).unwrap().inserted;
    }
    let ld_secs = t.elapsed().as_secs_f64();

    // 4. Database unreachable: how much memory the outage buffer takes once full.
    let dir = std::env::temp_dir().join(format!("ipta-bench-nosock-{}", std::process::id()));
    let nosock = dir.join("none.sock");
    let mut child = spawn(&db, "down", &[], nosock.to_str().unwrap());
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let feed = lines.len().min(300_000);
    let feeder = {
        let data = data.clone();
        std::thread::spawn(move || {
            let end = data.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(feed - 1).map_or(data.len(), |(i, _)| i + 1);
            let _ = stdin.write_all(&data[..end]);
        })
    };
    // Wait until ingest stops taking input (the feeder stays blocked) and memory settles.
    let mut last = 0;
    let mut stable = 0;
    while stable < 10 && !feeder.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        let now = common::status_kib(pid, "VmHWM:");
        if now == last { stable += 1 } else { stable = 0; last = now; }
    }
    let down_rss = common::status_kib(pid, "VmHWM:");
    let blocked = !feeder.is_finished();
    let _ = child.kill();
    let _ = child.wait();
    let _ = feeder.join();

    let rate = |rows: u64, s: f64| rows as f64 / s;
    let ld_rate = rate(ld_rows, ld_secs);
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l[l.find(':').unwrap() + 2..].to_string()))
        .unwrap_or_default();
    println!("machine: {} x {machine}", std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!("| run | rows | seconds | rows/s | vs LOAD DATA | peak RSS |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| ipta-ingest, transactions of {txn} (rsyslog protocol) | {txn_rows} | {txn_secs:.2} | {:.0} | {:.2}x | {:.1} MiB |",
        rate(txn_rows, txn_secs),
        rate(txn_rows, txn_secs) / ld_rate,
        txn_rss as f64 / 1024.0
    );
    println!(
        "| ipta-ingest, plain mode (no feedback) | {plain_rows} | {plain_secs:.2} | {:.0} | {:.2}x | {:.1} MiB |",
        rate(plain_rows, plain_secs),
        rate(plain_rows, plain_secs) / ld_rate,
        peak as f64 / 1024.0
    );
    println!(
        "| LOAD DATA LOCAL INFILE, chunks of 100,000 (parse not timed) | {ld_rows} | {ld_secs:.2} | {ld_rate:.0} | 1.00x | - |"
    );
    println!(
        "transaction mode: {:.2} s of the {txn_secs:.2} s waiting for COMMIT replies, the rest in per-line round trips",
        commit_wait.as_secs_f64()
    );
    println!("idle: {idle_cpu} ms CPU in 3 s after the last commit (transaction-mode process)");
    println!(
        "database unreachable, {feed} lines offered: peak RSS {:.1} MiB, input {} (outage buffer: the default --buffer-rows)",
        down_rss as f64 / 1024.0,
        if blocked { "paused (back-pressure)" } else { "all taken" }
    );
    println!("transaction run: {txn_report}");
    println!("plain run: {plain_report}");
}

