//! Retention (`store::retention::expire`) against the real server: exactly the rows before the
//! cutoff go (a row at the cutoff stays), in as many chunks as asked, idempotently, and writers
//! keep inserting while a large expiry runs (the longest insert stall is measured and printed).

use crate::util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipta::record::Timestamp;
use ipta::store::retention::expire;
use ipta::store::value::ts_value;
use ipta::store::StoreError;
use mysql::prelude::Queryable;

/// 2020-01-01T00:00:00Z.
const T0: i64 = 1_577_836_800_000_000;
const SEC: i64 = 1_000_000;
/// Chunk size of the concurrent test: the default.
const CHUNK: usize = ipta::store::retention::DEFAULT_CHUNK_ROWS;

fn new_table(tag: &str) -> (util::TestDb, mysql::Conn) {
    let db = util::TestDb::new(tag);
    let mut c = db.conn();
    c.query_drop(ipta::store::schema::create_table_sql("logs"))
        .unwrap();
    (db, c)
}

/// Inserts one row per timestamp (line_hash = running number, occ 0), 1,000 rows a statement.
fn insert_rows(c: &mut mysql::Conn, ts: &[i64], first_hash: u64) {
    for (k, chunk) in ts.chunks(1000).enumerate() {
        let mut sql = String::from(
            "INSERT INTO `logs` (`ts`, `action`, `prefix`, `src`, `line_hash`, `occ`) VALUES ",
        );
        let mut params = Vec::with_capacity(chunk.len() * 3);
        for (i, &t) in chunk.iter().enumerate() {
            sql.push_str(if i == 0 {
                "(?, 'DROP', 'IN=eth0 ', INET6_ATON('192.0.2.1'), ?, ?)"
            } else {
                ", (?, 'DROP', 'IN=eth0 ', INET6_ATON('192.0.2.1'), ?, ?)"
            });
            params.push(ts_value(Timestamp(t)));
            params.push(mysql::Value::UInt(first_hash + (k * 1000 + i) as u64));
            params.push(mysql::Value::UInt(0));
        }
        c.exec_drop(sql, params).unwrap();
    }
}

fn count(c: &mut mysql::Conn) -> u64 {
    c.query_first("SELECT COUNT(*) FROM `logs`")
        .unwrap()
        .unwrap()
}

fn remaining_ts(c: &mut mysql::Conn) -> Vec<i64> {
    c.query("SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01', `ts`) FROM `logs` ORDER BY `ts`")
        .unwrap()
}

#[test]
fn expire_keeps_the_cutoff_edge() {
    let (_db, mut c) = new_table("ret_edge");
    let cutoff = T0 + 100 * SEC;
    // Around the cutoff at microsecond precision, plus rows far on both sides.
    let ts = [
        T0,
        cutoff - 2,
        cutoff - 1,
        cutoff,
        cutoff,
        cutoff + 1,
        T0 + 1000 * SEC,
    ];
    insert_rows(&mut c, &ts, 0);
    let st = expire(&mut c, "logs", Timestamp(cutoff), 2).unwrap();
    assert_eq!(st.rows, 3, "{st:?}");
    assert_eq!(st.oldest_remaining, Some(Timestamp(cutoff)));
    assert_eq!(
        remaining_ts(&mut c),
        vec![cutoff, cutoff, cutoff + 1, T0 + 1000 * SEC]
    );
}

#[test]
fn expire_in_many_chunks_and_again() {
    let (_db, mut c) = new_table("ret_chunks");
    // 5,000 rows one second apart; expire the first 3,000 in chunks of 100.
    let ts: Vec<i64> = (0..5000).map(|i| T0 + i * SEC).collect();
    insert_rows(&mut c, &ts, 0);
    let cutoff = Timestamp(T0 + 3000 * SEC);
    let st = expire(&mut c, "logs", cutoff, 100).unwrap();
    assert_eq!(st.rows, 3000);
    assert_eq!(st.chunks, 30);
    assert_eq!(st.oldest_remaining, Some(cutoff));
    assert_eq!(count(&mut c), 2000);

    // Idempotent: a second run finds nothing to do and changes nothing.
    let again = expire(&mut c, "logs", cutoff, 100).unwrap();
    assert_eq!((again.rows, again.chunks), (0, 0));
    assert_eq!(again.oldest_remaining, Some(cutoff));
    assert_eq!(count(&mut c), 2000);

    // Everything: the table is empty afterwards and says so.
    let all = expire(&mut c, "logs", Timestamp(T0 + 10_000 * SEC), 700).unwrap();
    assert_eq!((all.rows, all.chunks), (2000, 3));
    assert_eq!(all.oldest_remaining, None);
}

#[test]
fn many_rows_in_one_microsecond_are_one_chunk() {
    let (_db, mut c) = new_table("ret_same");
    // 250 rows share T0 (repeated packets, occ differs in real life; line_hash here), then 10 more.
    let mut ts = vec![T0; 250];
    ts.extend((1..=10).map(|i| T0 + i * SEC));
    insert_rows(&mut c, &ts, 0);
    let st = expire(&mut c, "logs", Timestamp(T0 + 100 * SEC), 50).unwrap();
    // The 250 equal timestamps cannot be split by a ts range: one chunk, then 10 rows in one more.
    assert_eq!(st.rows, 260);
    assert_eq!(st.chunks, 2);
    assert_eq!(count(&mut c), 0);
}

#[test]
fn expire_on_empty_and_missing_tables() {
    let (_db, mut c) = new_table("ret_empty");
    let st = expire(&mut c, "logs", Timestamp(T0), 1000).unwrap();
    assert_eq!(st, Default::default());
    match expire(&mut c, "nosuchtable", Timestamp(T0), 1000) {
        Err(StoreError::MissingTable(t)) => assert_eq!(t, "nosuchtable"),
        other => panic!("expected MissingTable, got {other:?}"),
    }
    assert!(matches!(
        expire(&mut c, "logs`; DROP TABLE logs; --", Timestamp(T0), 1000),
        Err(StoreError::BadIdentifier { .. })
    ));
}

/// Inserts single rows at "now" (far after the cutoff) until told to stop; returns each
/// insert's latency.
fn writer(
    settings: ipta::config::DbSettings,
    stop: Arc<AtomicBool>,
    first_hash: u64,
) -> Vec<Duration> {
    let mut c = ipta::store::connect(&settings).unwrap();
    let mut lat = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        c.exec_drop(
            "INSERT INTO `logs` (`ts`, `action`, `prefix`, `line_hash`, `occ`) VALUES (?, 'ACCEPT', 'x', ?, 0)",
            (ts_value(Timestamp(T0 + 400 * 86_400 * SEC + i as i64)), first_hash + i),
        )
        .unwrap();
        lat.push(t.elapsed());
        i += 1;
    }
    lat
}

fn describe(lat: &mut [Duration]) -> String {
    lat.sort();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    format!(
        "{} inserts, median {:?}, p99 {:?}, longest {:?}",
        lat.len(),
        p(0.5),
        p(0.99),
        lat.last().unwrap()
    )
}

#[test]
fn writers_keep_going_during_a_large_expire() {
    let (db, mut c) = new_table("ret_conc");
    let n = 100_000i64;
    let t = Instant::now();
    // Old rows: 100,000 packets, 10 ms apart.
    let ts: Vec<i64> = (0..n).map(|i| T0 + i * 10_000).collect();
    insert_rows(&mut c, &ts, 0);
    eprintln!("loaded {n} old rows in {:?}", t.elapsed());

    // Baseline: the same writer with nothing else running, for comparison.
    let stop = Arc::new(AtomicBool::new(false));
    let h = {
        let (s, st) = (db.settings.clone(), stop.clone());
        std::thread::spawn(move || writer(s, st, 10_000_000))
    };
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let mut base = h.join().unwrap();
    eprintln!("baseline writer alone: {}", describe(&mut base));

    let stop = Arc::new(AtomicBool::new(false));
    let h = {
        let (s, st) = (db.settings.clone(), stop.clone());
        std::thread::spawn(move || writer(s, st, 20_000_000))
    };
    let t = Instant::now();
    let st = expire(&mut c, "logs", Timestamp(T0 + n * 10_000), CHUNK).unwrap();
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut during = h.join().unwrap();
    eprintln!(
        "expire: {} rows in {} chunks of {CHUNK} in {:?} ({:.0} rows/s)",
        st.rows,
        st.chunks,
        took,
        st.rows as f64 / took.as_secs_f64()
    );
    eprintln!("writer during expire: {}", describe(&mut during));

    assert_eq!(st.rows, n as u64);
    assert_eq!(st.chunks, (n as usize / CHUNK) as u64);
    assert!(
        !during.is_empty(),
        "the writer must have inserted while expire ran"
    );
    // Every row the writers added is still there; only the old ones went.
    assert_eq!(count(&mut c), (base.len() + during.len()) as u64);
}

#[test]
fn expire_by_age_from_now() {
    let (_db, mut c) = new_table("ret_age");
    let now = chrono::Utc::now().timestamp_micros();
    let hour = 3_600 * SEC;
    insert_rows(&mut c, &[now - 49 * hour, now - 47 * hour, now - hour], 0);
    let age = ipta::store::retention::parse_age("2d").unwrap();
    let (cutoff, st) =
        ipta::store::retention::expire_older_than(&mut c, "logs", age, 1000).unwrap();
    assert!(
        (cutoff.0 - (now - 48 * hour)).abs() < 60 * SEC,
        "cutoff {cutoff:?}"
    );
    assert_eq!(st.rows, 1);
    assert_eq!(st.oldest_remaining, Some(Timestamp(now - 47 * hour)));
    eprintln!("{}", st.describe("logs", cutoff));
}

#[test]
fn the_hook_sees_each_chunk_before_it_goes() {
    let (_db, mut c) = new_table("ret_hook");
    let ts: Vec<i64> = (0..1000).map(|i| T0 + i * SEC).collect();
    insert_rows(&mut c, &ts, 0);
    let cutoff = Timestamp(T0 + 950 * SEC);
    let mut seen: Vec<(i64, i64, u64)> = Vec::new();
    let st =
        ipta::store::retention::expire_with(&mut c, "logs", cutoff, 100, |tx, table, from, to| {
            assert_eq!(table, "logs");
            // Inside the chunk's transaction, before the DELETE: the rows are still there.
            let n: u64 = tx
                .exec_first(
                    "SELECT COUNT(*) FROM `logs` WHERE `ts` >= ? AND `ts` < ?",
                    (ts_value(from), ts_value(to)),
                )
                .unwrap()
                .unwrap();
            seen.push((from.0, to.0, n));
            Ok(())
        })
        .unwrap();
    assert_eq!(st.rows, 950);
    assert_eq!(seen.len(), 10);
    assert_eq!(seen[0].0, T0, "the first range starts at the oldest row");
    assert_eq!(
        seen.last().unwrap().1,
        cutoff.0,
        "the last range ends at the cutoff"
    );
    for w in seen.windows(2) {
        assert_eq!(w[0].1, w[1].0, "ranges are contiguous: {seen:?}");
    }
    assert_eq!(
        seen.iter().map(|r| r.2).sum::<u64>(),
        950,
        "the hook saw every deleted row"
    );
}

#[test]
fn a_failing_hook_rolls_its_chunk_back() {
    let (_db, mut c) = new_table("ret_hookfail");
    let ts: Vec<i64> = (0..500).map(|i| T0 + i * SEC).collect();
    insert_rows(&mut c, &ts, 0);
    let mut calls = 0;
    let r = ipta::store::retention::expire_with(
        &mut c,
        "logs",
        Timestamp(T0 + 500 * SEC),
        100,
        |_, _, _, _| {
            calls += 1;
            if calls == 3 {
                Err(StoreError::Sql("summary update failed".into()))
            } else {
                Ok(())
            }
        },
    );
    match r {
        Err(StoreError::Sql(m)) => assert_eq!(m, "summary update failed"),
        other => panic!("expected the hook's error, got {other:?}"),
    }
    // Two chunks committed; the third was rolled back with its summary update.
    assert_eq!(count(&mut c), 300);
    assert_eq!(remaining_ts(&mut c)[0], T0 + 200 * SEC);
}
