//! Benchmark of retention: how fast `store::retention::expire` deletes, and how long a
//! concurrent writer (single-row inserts of current packets, as ipta-ingest does) is held up,
//! for several chunk sizes and, for comparison, one plain `DELETE ... WHERE ts < cutoff`.
//!
//! `cargo bench --bench expire` (IPTA_BENCH_ROWS=N to change the table size, default
//! 1,000,000; the table is split in four equal time slices, one per way of deleting).
//! Prints figures, asserts nothing about time.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipta::record::Timestamp;
use ipta::store::retention::expire;
use ipta::store::value::ts_value;
use mysql::prelude::Queryable;

/// 2020-01-01T00:00:00Z.
const T0: i64 = 1_577_836_800_000_000;
/// Old rows are 1 ms apart.
const STEP: i64 = 1_000;

fn load(c: &mut mysql::Conn, n: usize) {
    const PER: usize = 1000;
    let row = "(?, 'DROP', 'IN=eth0 ', INET6_ATON('192.0.2.1'), INET6_ATON('198.51.100.7'), 'TCP', 443, ?, 0)";
    let mut start = 0;
    while start < n {
        let k = PER.min(n - start);
        let mut sql = String::from(
            "INSERT INTO `logs` (`ts`, `action`, `prefix`, `src`, `dst`, `proto`, `dpt`, `line_hash`, `occ`) VALUES ",
        );
        let mut params = Vec::with_capacity(2 * k);
        for i in 0..k {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(row);
            let j = (start + i) as i64;
            params.push(ts_value(Timestamp(T0 + j * STEP)));
            params.push(mysql::Value::UInt(j as u64));
        }
        c.exec_drop(sql, params).unwrap();
        start += k;
    }
}

fn writer(settings: ipta::config::DbSettings, stop: Arc<AtomicBool>, base: u64) -> Vec<Duration> {
    let mut c = ipta::store::connect(&settings).unwrap();
    let mut lat = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        c.exec_drop(
            "INSERT INTO `logs` (`ts`, `action`, `prefix`, `line_hash`, `occ`) VALUES (?, 'ACCEPT', 'x', ?, 0)",
            (ts_value(Timestamp(T0 + 400 * 86_400_000_000 + (base + i) as i64)), base + i),
        )
        .unwrap();
        lat.push(t.elapsed());
        i += 1;
    }
    lat
}

fn stats(lat: &mut [Duration]) -> String {
    if lat.is_empty() {
        return "no inserts".into();
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    format!(
        "{:>6} inserts, median {:>8.2?}, p99 {:>8.2?}, longest {:>9.2?}",
        lat.len(),
        p(0.5),
        p(0.99),
        lat.last().unwrap()
    )
}

/// Runs `work` while a writer inserts; returns the writer's latencies.
fn with_writer(db: &common::TestDb, base: u64, work: impl FnOnce()) -> Vec<Duration> {
    let stop = Arc::new(AtomicBool::new(false));
    let h = {
        let (s, st) = (db.settings.clone(), stop.clone());
        std::thread::spawn(move || writer(s, st, base))
    };
    std::thread::sleep(Duration::from_millis(100));
    work();
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap()
}

fn main() {
    let n: usize = std::env::var("IPTA_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let db = common::TestDb::new("bench_expire");
    let mut c = db.conn();
    c.query_drop(ipta::store::schema::create_table_sql("logs")).unwrap();
    let t = Instant::now();
    load(&mut c, n);
    println!("loaded {n} rows in {:.1?}", t.elapsed());

    let slice = (n / 4) as i64;
    let mut base = 1u64 << 40;
    let mut idle = with_writer(&db, base, || std::thread::sleep(Duration::from_secs(1)));
    println!("{:<28} {}", "writer alone (1 s)", stats(&mut idle));

    for (k, chunk) in [1_000usize, 5_000, 20_000].into_iter().enumerate() {
        base += 1 << 32;
        let cutoff = Timestamp(T0 + (k as i64 + 1) * slice * STEP);
        let mut st = Default::default();
        let mut took = Duration::ZERO;
        let mut lat = with_writer(&db, base, || {
            let t = Instant::now();
            st = expire(&mut c, "logs", cutoff, chunk).unwrap();
            took = t.elapsed();
        });
        println!(
            "expire, chunks of {chunk:>6}: {} rows in {} chunks, {:.2?} ({:.0} rows/s)",
            st.rows,
            st.chunks,
            took,
            st.rows as f64 / took.as_secs_f64()
        );
        println!("{:<28} {}", "  writer meanwhile", stats(&mut lat));
    }

    base += 1 << 32;
    let cutoff = Timestamp(T0 + 4 * slice * STEP);
    let mut rows = 0;
    let mut took = Duration::ZERO;
    let mut lat = with_writer(&db, base, || {
        let t = Instant::now();
        c.exec_drop("DELETE FROM `logs` WHERE `ts` < ?", (ts_value(cutoff),)).unwrap();
        rows = c.affected_rows();
        took = t.elapsed();
    });
    println!(
        "one DELETE (no chunks):     {rows} rows, {:.2?} ({:.0} rows/s)",
        took,
        rows as f64 / took.as_secs_f64()
    );
    println!("{:<28} {}", "  writer meanwhile", stats(&mut lat));
}
