//! Windowed reports (`--since`, `--until`, `--host`) read the hourly time buckets plus the
//! partial edge hours from the packet table: every module, the totals and the timeline must
//! equal the packet table's own GROUP BY for windows on and off hour boundaries, for each host,
//! with `--no-accept`, and stay so through duplicates, re-imports, `--clear` and expiry.
//! The bucket table itself is checked against `rebuild_with_sql` (the server's GROUP BY).
use crate::util;
use ipta_dev::genlog::Rng;

use ipta::record::{Packet, Proto, Record, RecordBatch, Timestamp};
use ipta::report::query::{self, Path, Report, Via};
use ipta::report::{onepass, AnalyzeOptions, Module};
use ipta::store::{schema, summary, writer::Writer};
use mysql::prelude::Queryable;

/// 2026-11-01T00:00:00Z
const T0: i64 = 1_793_491_200_000_000;
const H: i64 = 3_600_000_000;
const M: i64 = 60_000_000;

/// `n` packets over 50 hours from T0 + `offset`, from three named hosts and rows without one;
/// few distinct keys, so ties and merges between buckets and edges happen.
fn batch(n: usize, offset: i64, seed: u64, salt: &str) -> RecordBatch {
    let mut r = Rng::new(seed);
    let mut b = RecordBatch::new();
    for i in 0..n {
        let at = T0 + offset + (r.next_u64() % (50 * H as u64)) as i64;
        let host = r.pick(&[Some("fw1"), Some("fw1"), Some("fw2"), Some("fw3"), None]);
        let action = r.pick(&["DROP", "DROP", "ACCEPT", "INVALID", "REJECT"]);
        let if_in = r.pick(&["eth0", "eth0", "eth1", "", "lo"]);
        let if_out = if if_in.is_empty() { "eth0" } else { "" };
        let proto = r.pick(&[Proto::Tcp, Proto::Tcp, Proto::Udp, Proto::Icmp]);
        let dpt = match proto {
            Proto::Tcp => Some(r.pick(&[22u16, 23, 80, 443, 8080])),
            Proto::Udp => Some(r.pick(&[53u16, 123])),
            _ => None,
        };
        let src = format!("203.0.113.{}", r.next_u64() % 6);
        // Three destinations, so that the distinct hosts of `scans` vary by source.
        let dst = format!("198.51.100.{}", 1 + r.next_u64() % 3);
        let msg = format!("IPT: {salt} {i}");
        let rec = Record {
            ts: Timestamp(at),
            host,
            action,
            prefix: "IPT: ",
            if_in: Some(if_in),
            if_out: Some(if_out),
            pkt: Packet {
                src: Some(src.parse().unwrap()),
                dst: Some(dst.parse().unwrap()),
                proto: Some(proto),
                spt: dpt.map(|_| 40000),
                dpt,
                ..Default::default()
            },
            repeat: 1 + (r.next_u64() % 3) as u32,
            message: msg.as_bytes(),
            ..Default::default()
        };
        b.push(&rec, 0);
    }
    b
}

fn windows() -> Vec<AnalyzeOptions> {
    let o = |since: Option<i64>, until: Option<i64>, host: Option<&str>, no_accept: bool| AnalyzeOptions {
        since: since.map(|s| Timestamp(T0 + s)),
        until: until.map(|u| Timestamp(T0 + u)),
        host: host.map(String::from),
        no_accept,
        scan_threshold: 2,
        limit: 7,
        ..Default::default()
    };
    vec![
        o(Some(0), Some(24 * H), None, false),           // whole hours
        o(Some(17 * M), Some(30 * H + 5 * M), None, false), // partial edges
        o(Some(3 * H + 1), None, None, false),           // open end
        o(None, Some(10 * H + 59 * M), None, false),     // open start
        o(Some(5 * H + 10 * M), Some(5 * H + 50 * M), None, false), // inside one hour
        o(Some(5 * H + 10 * M), Some(6 * H + 50 * M), None, false), // two partial hours, no whole one
        o(None, None, Some("fw2"), false),
        o(Some(2 * H + 30 * M), Some(40 * H), Some("fw1"), false),
        o(Some(2 * H + 30 * M), Some(40 * H), Some("fw1"), true),
        o(Some(-100 * H), Some(200 * H), None, true),     // wider than the data
        o(Some(300 * H), None, None, false),              // after the data: empty
        o(None, None, Some("nobody"), false),
    ]
}

fn both(c: &mut mysql::Conn, o: &AnalyzeOptions) -> (Report, Report) {
    (query::analyze_with(c, "logs", o, Path::Auto).unwrap(), query::analyze_with(c, "logs", o, Path::Packets).unwrap())
}

/// Every window: the bucket path equals the packet path, module by module; returns how many
/// sections came from the buckets (so a test can tell the buckets were used).
fn check_windows(c: &mut mysql::Conn, what: &str) -> usize {
    let mut from_buckets = 0;
    for o in windows() {
        let (fast, raw) = both(c, &o);
        let w = format!("{what}: since {:?} until {:?} host {:?} no_accept {}", o.since, o.until, o.host, o.no_accept);
        assert_eq!(fast.packets, raw.packets, "{w}");
        assert_eq!((fast.first, fast.last), (raw.first, raw.last), "{w}");
        for (a, b) in fast.sections.iter().zip(&raw.sections) {
            assert_eq!(a.module, b.module);
            assert_eq!(a.rows, b.rows, "{w}: module {:?}", a.module);
            assert_eq!(a.timeline, b.timeline, "{w}: module {:?}", a.module);
            assert_eq!(b.via, Via::Packets);
            if a.via == Via::Summary && fast.packets > 0 {
                from_buckets += 1;
            }
        }
    }
    from_buckets
}

fn buckets(c: &mut mysql::Conn) -> Vec<String> {
    let rows: Vec<mysql::Row> = c
        .query("SELECT `hour`,`host`,`if_in`,`action`,`proto`,`dpt`,`n`,`last_ts` FROM `logs__sbkt` ORDER BY 1,2,3,4,5,6")
        .unwrap();
    rows.into_iter().map(|r| r.unwrap().iter().map(|v| v.as_sql(true)).collect::<Vec<_>>().join(" ")).collect()
}

/// Folded buckets equal a rebuild by the server's GROUP BY (first-seen times too unless
/// expiry ran, which may leave them stale in the oldest hour: `with_first`).
fn check_buckets(c: &mut mysql::Conn, with_first: bool) {
    let firsts = |c: &mut mysql::Conn| -> Vec<String> {
        if !with_first {
            return Vec::new();
        }
        let rows: Vec<mysql::Row> = c.query("SELECT `first_ts` FROM `logs__sbkt` ORDER BY `hour`,`host`,`if_in`,`action`,`proto`,`dpt`").unwrap();
        rows.into_iter().map(|r| format!("{:?}", r.unwrap())).collect()
    };
    let before = (buckets(c), firsts(c));
    assert!(!before.0.is_empty());
    summary::rebuild_with_sql(c, "logs").unwrap();
    assert_eq!(before, (buckets(c), firsts(c)), "folded buckets differ from a rebuild");
}

/// A database with table `logs`, its summaries, and `rows` written (not folded yet).
fn with_summaries(tag: &str, rows: &RecordBatch) -> (util::TestDb, mysql::Conn) {
    let db = util::TestDb::new(tag);
    let mut c = db.conn();
    schema::ensure_table(&mut c, "logs").unwrap();
    summary::create(&mut c, "logs").unwrap();
    Writer::new(db.conn(), "logs").write(rows).unwrap();
    (db, c)
}

#[test]
fn windows_from_buckets_equal_the_packet_table() {
    let db = util::TestDb::new("an_win");
    let mut c = db.conn();
    c.query_drop("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ONLY_FULL_GROUP_BY')").unwrap();
    schema::ensure_table(&mut c, "logs").unwrap();
    summary::create(&mut c, "logs").unwrap();
    let mut w = Writer::new(db.conn(), "logs");
    assert_eq!(w.write(&batch(3000, 0, 1, "a")).unwrap().inserted, 3000);
    // Folded in small chunks (a key's counts spread over several chunks).
    summary::fold_with(&mut c, "logs", 701).unwrap();
    check_buckets(&mut c, true);
    assert!(check_windows(&mut c, "first load") > 20, "the windows did not use the buckets");

    // Duplicates (the same batch again) and a re-import of half of it with new rows.
    assert_eq!(w.write(&batch(3000, 0, 1, "a")).unwrap().inserted, 0);
    w.write(&batch(1500, 0, 1, "a")).unwrap();
    assert_eq!(w.write(&batch(1000, 7 * M, 2, "b")).unwrap().inserted, 1000);
    // Not folded yet: the report folds first.
    check_windows(&mut c, "after duplicates and new rows");
    check_buckets(&mut c, true);

    // Expiry of the first 9.5 hours (the hour holding the oldest row left is then partial).
    let st = ipta::store::retention::expire(&mut c, "logs", Timestamp(T0 + 9 * H + 30 * M), 97).unwrap();
    assert!(st.rows > 0);
    w.write(&batch(500, 20 * H, 3, "c")).unwrap(); // more rows, not folded yet
    check_windows(&mut c, "after expiry");
    check_buckets(&mut c, false);

    // Clear empties the buckets with the table; new rows count from zero.
    ipta::store::tables::clear_table(&mut c, "logs").unwrap();
    assert!(buckets(&mut c).is_empty());
    w.write(&batch(800, 3 * H, 4, "d")).unwrap();
    check_windows(&mut c, "after clear");
}

/// A window report on a table without summaries creates them (as an all-time one does) and
/// gives the same rows; `--no-local` reads the packet table (the buckets lack `if_out`).
#[test]
fn windows_without_summaries_and_no_local() {
    let db = util::TestDb::new("an_win_late");
    let mut c = db.conn();
    schema::ensure_table(&mut c, "logs").unwrap();
    Writer::new(db.conn(), "logs").write(&batch(600, 0, 9, "a")).unwrap();
    let o = AnalyzeOptions { since: Some(Timestamp(T0 + 90 * M)), scan_threshold: 2, ..Default::default() };
    let raw = query::analyze_with(&mut c, "logs", &o, Path::Packets).unwrap();
    ipta::report::run(&mut c, "logs", &o, &mut Vec::new()).unwrap();
    assert!(summary::present(&mut c, "logs").unwrap());
    let fast = query::analyze(&mut c, "logs", &o).unwrap();
    assert_eq!(fast.sections.iter().find(|s| s.module == Module::Ports).unwrap().via, Via::Summary);
    for (a, b) in fast.sections.iter().zip(&raw.sections) {
        assert_eq!((&a.rows, &a.timeline), (&b.rows, &b.timeline), "{:?}", a.module);
    }
    let nl = AnalyzeOptions { no_local: true, ..o };
    let rep = query::analyze(&mut c, "logs", &nl).unwrap();
    assert!(rep.sections.iter().all(|s| s.via == Via::Packets));
}

/// A table whose summaries an older ipta built (without the time buckets) gets the whole set
/// rebuilt by the next report, and windows then use it.
#[test]
fn an_older_summary_set_is_rebuilt() {
    let (_db, mut c) = with_summaries("an_win_old", &batch(400, 0, 5, "a"));
    c.query_drop("DROP TABLE `logs__sbkt`").unwrap();
    assert!(!summary::present(&mut c, "logs").unwrap());
    let o = AnalyzeOptions { since: Some(Timestamp(T0 + 2 * H)), scan_threshold: 2, ..Default::default() };
    ipta::report::run(&mut c, "logs", &o, &mut Vec::new()).unwrap();
    assert!(summary::present(&mut c, "logs").unwrap());
    let fast = query::analyze(&mut c, "logs", &o).unwrap();
    let raw = query::analyze_with(&mut c, "logs", &o, Path::Packets).unwrap();
    assert_eq!(fast.sections.iter().find(|s| s.module == Module::Timeline).unwrap().via, Via::Summary);
    assert_eq!(fast.packets, raw.packets);
    for (a, b) in fast.sections.iter().zip(&raw.sections) {
        assert_eq!((&a.rows, &a.timeline), (&b.rows, &b.timeline), "{:?}", a.module);
    }
}

/// A set whose hourly counts an older ipta built without their id ranges keeps working: folds
/// go on without them, and a window finds its rows through the time index, as before.
#[test]
fn hourly_counts_without_id_ranges_keep_working() {
    let (db, mut c) = with_summaries("an_win_noids", &batch(400, 0, 5, "a"));
    c.query_drop("ALTER TABLE `logs__shour` DROP COLUMN `nrows`, DROP COLUMN `n_ranged`, DROP COLUMN `min_id`, DROP COLUMN `max_id`").unwrap();
    assert!(summary::present(&mut c, "logs").unwrap());
    assert!(!summary::hour_ids(&mut c, "logs").unwrap());
    summary::fold(&mut c, "logs").unwrap();
    Writer::new(db.conn(), "logs").write(&batch(300, 0, 6, "b")).unwrap();
    let o = AnalyzeOptions { since: Some(Timestamp(T0 + 2 * H)), scan_threshold: 2, ..Default::default() };
    // The time index: the stretch holds no rows above a watermark.
    if let Some(st) = onepass::id_range(&mut c, "logs", &o).unwrap() {
        assert_eq!(st.above, None, "{st:?}");
    }
    let (fast, raw) = both(&mut c, &o);
    assert_eq!(fast.packets, raw.packets);
    for (a, b) in fast.sections.iter().zip(&raw.sections) {
        assert_eq!((a.module, &a.rows, &a.timeline), (b.module, &b.rows, &b.timeline));
    }
    summary::fold(&mut c, "logs").unwrap();
    check_buckets(&mut c, true);
}

/// The one pass over a window's packets holds its distinct keys in memory up to a cap; past it
/// it reads the window again in parts by source (the same rows as one pass and as the
/// packet-table queries), and past the most parts it gives nothing back, and the report
/// answers those modules with the server's GROUP BYs.
#[test]
fn the_one_pass_splits_the_window_by_source_past_its_key_cap() {
    let (_db, mut c) = with_summaries("an_cap", &batch(5000, 0, 7, "a"));
    let top7 = AnalyzeOptions { since: Some(Timestamp(T0 + H)), scan_threshold: 2, limit: 7, ..Default::default() };
    // Every row of every module: a key counted twice, or in part, shows.
    let every = AnalyzeOptions { limit: 100_000, scan_threshold: 0, ..top7.clone() };
    for o in [top7, every] {
        let mods = [Module::Denied, Module::Icmp, Module::Invalid, Module::Sources, Module::Scans];
        let (full, parts) = onepass::run_parts(&mut c, "logs", &o, &mods, usize::MAX).unwrap().unwrap();
        assert_eq!(parts, 1);
        assert_eq!(full.iter().map(|s| s.module).collect::<Vec<_>>(), mods, "in the order asked");
        let raw = query::analyze_with(&mut c, "logs", &o, Path::Packets).unwrap();
        for s in &full {
            let r = raw.sections.iter().find(|r| r.module == s.module).unwrap();
            assert!(!r.rows.is_empty(), "{:?}", s.module);
            assert_eq!(s.rows, r.rows, "{:?}", s.module);
        }
        // Smaller caps: the window is read in more parts (the first read narrowing itself to
        // the first part as it goes), with the same rows each time.
        let mut split = 0;
        for cap in [40_000, 14_000, 10_000, 8_000, 6_000, 4_000, 3_200, 2_600] {
            if let Some((parts_rows, parts)) = onepass::run_parts(&mut c, "logs", &o, &mods, cap).unwrap() {
                assert!(parts <= onepass::MAX_PARTS, "{parts}");
                split = split.max(parts);
                for (s, f) in parts_rows.iter().zip(&full) {
                    assert_eq!((s.module, &s.rows), (f.module, &f.rows), "cap {cap}, {parts} parts, limit {}", o.limit);
                }
            }
        }
        assert!(split > 1, "no cap split the window");
        // Too varied for every part: nothing, the caller falls back.
        assert!(onepass::run_parts(&mut c, "logs", &o, &mods, 400).unwrap().is_none());
        assert!(onepass::run_capped(&mut c, "logs", &o, &mods, 400).unwrap().is_empty());
    }
}

/// A window whose rows sit together in the id order is read as that stretch of ids (the
/// table's own order, several times faster than row by row through the time index); once
/// older rows come in later, with higher ids, its rows are spread over the ids and it goes
/// through the time index again. Either way the report equals the packet table's GROUP BY.
#[test]
fn a_window_is_read_by_its_stretch_of_ids_while_its_rows_sit_together() {
    let (db, mut c) = with_summaries("an_ids", &RecordBatch::new());
    let mut w = Writer::new(db.conn(), "logs");
    // Ten batches in time order, five hours each: ids follow time from batch to batch.
    for k in 0..10u64 {
        let mut b = RecordBatch::new();
        let one = batch(300, 0, 100 + k, &format!("t{k}"));
        for (r, _) in one.iter() {
            let mut r = r;
            r.ts = Timestamp(T0 + k as i64 * 5 * H + (r.ts.0 - T0) / 10);
            b.push(&r, 0);
        }
        assert_eq!(w.write(&b).unwrap().inserted, 300);
    }
    let o = AnalyzeOptions {
        // Inside the fifth batch, whose rows are in random order: the stretch holds rows of
        // other times too, which the window's filter leaves out.
        since: Some(Timestamp(T0 + 21 * H)),
        until: Some(Timestamp(T0 + 24 * H)),
        scan_threshold: 2,
        limit: 7,
        ..Default::default()
    };
    let same = |c: &mut mysql::Conn, what: &str| {
        let (fast, raw) = both(c, &o);
        assert!(fast.packets > 0, "{what}");
        assert_eq!((fast.packets, fast.first, fast.last), (raw.packets, raw.first, raw.last), "{what}");
        for (a, b) in fast.sections.iter().zip(&raw.sections) {
            assert_eq!((a.module, &a.rows, &a.timeline), (b.module, &b.rows, &b.timeline), "{what}");
        }
    };
    let n: u64 = c.query_first("SELECT COUNT(*) FROM `logs` WHERE `ts` >= '2026-11-01 21:00:00' AND `ts` < '2026-11-02 00:00:00'").unwrap().unwrap();
    let inside = |c: &mut mysql::Conn, st: &onepass::Stretch| -> u64 {
        let above = st.above.map_or(String::new(), |w| format!(" OR `id` > {w}"));
        c.query_first(format!("SELECT COUNT(*) FROM `logs` WHERE `id` BETWEEN {} AND {}{above}", st.lo, st.hi)).unwrap().unwrap()
    };
    // Nothing folded yet: every row is above the watermark, the whole table is the stretch,
    // too thin for the window.
    assert_eq!(onepass::id_range(&mut c, "logs", &o).unwrap(), None, "nothing folded: the whole table");
    // Folded: the hourly counts give the window's hours' ids, the fifth batch's.
    summary::fold(&mut c, "logs").unwrap();
    let st = onepass::id_range(&mut c, "logs", &o).unwrap().expect("rows in time order: read by id");
    assert_eq!(st.above, None, "everything folded");
    let got = inside(&mut c, &st);
    assert!(n > 100 && got > n && got <= 300, "the stretch {st:?} ({got} rows) is the fifth batch's, the window has {n}");
    same(&mut c, "rows in time order");
    // Rows of the window's hours written after the fold are read too (above the watermark).
    let mut more = RecordBatch::new();
    for (r, _) in batch(40, 0, 77, "more").iter() {
        let mut r = r;
        r.ts = Timestamp(T0 + 21 * H + (r.ts.0 - T0) % (3 * H));
        more.push(&r, 0);
    }
    assert_eq!(w.write(&more).unwrap().inserted, 40);
    let st = onepass::id_range(&mut c, "logs", &o).unwrap().expect("40 more rows: still read by id");
    assert!(st.above.is_some(), "{st:?}");
    let mods = [Module::Denied, Module::Icmp, Module::Invalid, Module::Sources, Module::Scans];
    let one = onepass::run(&mut c, "logs", &o, &mods).unwrap();
    let raw = query::analyze_with(&mut c, "logs", &o, Path::Packets).unwrap();
    for s in &one {
        let r = raw.sections.iter().find(|r| r.module == s.module).unwrap();
        assert_eq!(s.rows, r.rows, "{:?} with rows not folded yet", s.module);
    }
    same(&mut c, "rows written after a fold");
    // A folder of an older ipta adds to an hour's packets without growing its id range: that
    // hour's range is no longer trusted (here it is narrowed too, so trusting it would miss
    // rows), and the time index finds the window's rows.
    summary::fold(&mut c, "logs").unwrap();
    c.query_drop("UPDATE `logs__shour` SET `max_id` = `min_id` WHERE `hour` >= '2026-11-01 21:00:00' AND `hour` < '2026-11-02 00:00:00'")
        .unwrap();
    c.query_drop("UPDATE `logs__shour` SET `n` = `n` + 1 WHERE `hour` = '2026-11-01 22:00:00'").unwrap();
    let one = onepass::run(&mut c, "logs", &o, &mods).unwrap();
    for s in &one {
        let r = raw.sections.iter().find(|r| r.module == s.module).unwrap();
        assert_eq!(s.rows, r.rows, "{:?} with an hour an older folder counted", s.module);
    }
    c.query_drop("UPDATE `logs__shour` SET `n` = `n` - 1 WHERE `hour` = '2026-11-01 22:00:00'").unwrap();
    let narrowed = onepass::run(&mut c, "logs", &o, &mods).unwrap();
    assert!(narrowed.iter().zip(&one).any(|(a, b)| a.rows != b.rows), "the narrowed range misses no row: the test shows nothing");

    // Older rows over the whole 50 hours, written afterwards: their ids are higher.
    assert_eq!(w.write(&batch(3000, 0, 9, "late")).unwrap().inserted, 3000);
    summary::fold(&mut c, "logs").unwrap();
    assert_eq!(onepass::id_range(&mut c, "logs", &o).unwrap(), None, "the window's rows are spread over the ids");
    same(&mut c, "older rows written later");
    // No time bound: nothing to narrow.
    let host = AnalyzeOptions { host: Some("fw1".into()), ..Default::default() };
    assert_eq!(onepass::id_range(&mut c, "logs", &host).unwrap(), None);
}

/// Texts compare as their `utf8mb4_bin` columns do: trailing spaces do not count, so `DROP`
/// and `DROP ` (or `eth0` and `eth0 `) are one group in a window as in the server's GROUP BY,
/// in the buckets, the edge hours and the one pass alike. The server shows one of the spellings
/// for a group; the comparison drops trailing spaces on both sides.
#[test]
fn window_texts_group_as_their_collation_does() {
    let (_db, mut c) = with_summaries("an_pad", &RecordBatch::new());
    let mut rows = RecordBatch::new();
    let mut r = Rng::new(5);
    for i in 0..600 {
        let action = if i % 2 == 0 { "DROP" } else { "DROP " };
        let if_in = if i % 3 == 0 { "eth0 " } else { "eth0" };
        let proto = if i % 5 == 0 { Proto::Udp } else { Proto::Tcp };
        let src = format!("203.0.113.{}", r.next_u64() % 4);
        let msg = format!("IPT: pad {i}");
        let rec = Record {
            ts: Timestamp(T0 + (r.next_u64() % (10 * H as u64)) as i64),
            host: Some("fw1"),
            action,
            prefix: "IPT: ",
            if_in: Some(if_in),
            if_out: Some(""),
            pkt: Packet {
                src: Some(src.parse().unwrap()),
                dst: Some("198.51.100.1".parse().unwrap()),
                proto: Some(proto),
                spt: Some(40000),
                dpt: Some(r.pick(&[22u16, 80])),
                ..Default::default()
            },
            repeat: 1,
            message: msg.as_bytes(),
            ..Default::default()
        };
        rows.push(&rec, 0);
    }
    Writer::new(_db.conn(), "logs").write(&rows).unwrap();
    let spellings: u64 =
        c.query_first("SELECT COUNT(DISTINCT CAST(`action` AS BINARY)) FROM `logs`").unwrap().unwrap();
    assert_eq!(spellings, 2, "both spellings stored as written");
    let trim = |rows: &[Vec<query::Cell>]| -> Vec<Vec<query::Cell>> {
        rows.iter()
            .map(|r| {
                r.iter()
                    .map(|c| match c {
                        query::Cell::Text(t) => query::Cell::Text(t.trim_end().to_string()),
                        query::Cell::Actions(a) => {
                            query::Cell::Actions(a.iter().map(|(t, n)| (t.trim_end().to_string(), *n)).collect())
                        }
                        other => other.clone(),
                    })
                    .collect()
            })
            .collect()
    };
    // Whole hours from the buckets and partial ones from the packet table.
    let o = AnalyzeOptions {
        since: Some(Timestamp(T0 + 30 * M)),
        until: Some(Timestamp(T0 + 8 * H + 30 * M)),
        scan_threshold: 1,
        limit: 100,
        ..Default::default()
    };
    let (fast, raw) = both(&mut c, &o);
    assert_eq!(fast.packets, raw.packets);
    for (a, b) in fast.sections.iter().zip(&raw.sections) {
        assert_eq!((a.module, trim(&a.rows)), (b.module, trim(&b.rows)));
        for row in &a.rows {
            for cell in row {
                if let query::Cell::Text(t) = cell {
                    assert_eq!(t, t.trim_end(), "{:?}: shown without its trailing spaces", a.module);
                }
            }
        }
        if let (Some(x), Some(y)) = (&a.timeline, &b.timeline) {
            let names = |t: &query::Timeline| t.actions.iter().map(|s| s.trim_end().to_string()).collect::<Vec<_>>();
            assert_eq!(names(x), vec!["DROP"], "one action in the timeline");
            assert_eq!((names(x), &x.buckets), (names(y), &y.buckets));
        }
    }
    let ports = fast.sections.iter().find(|s| s.module == Module::Ports).unwrap();
    assert!(ports.rows.len() <= 4, "two ports x two protocols at most, DROP once: {:?}", ports.rows);
}
