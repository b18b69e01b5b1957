//! The batch writer, `load_data` and the schema functions against the real server: idempotency,
//! repeated packets, NULLs, IPv4/IPv6 round trips, hostile text stored verbatim, versions.
use crate::util;

use ipta::record::{Packet, Proto, Record, RecordBatch, TcpFlags, Timestamp};
use ipta::store::schema::{self, TableStatus, Upgrade};
use ipta::store::writer::{WriteMethod, WriteStats, Writer};
use ipta::store::StoreError;
use mysql::prelude::Queryable;

const T0: i64 = 1_762_320_908_123_456; // 2025-11-05T05:35:08.123456Z

fn tcp_record<'a>(ts: i64, src: &str, dpt: u16, message: &'a [u8]) -> Record<'a> {
    Record {
        ts: Timestamp(ts),
        host: Some("fw1"),
        action: "DROP",
        prefix: "IPT: DROP ",
        if_in: Some("eth0"),
        if_out: Some(""),
        mac: Some("00:11:22:33:44:55:66:77:88:99:aa:bb:08:00"),
        pkt: Packet {
            src: Some(src.parse().unwrap()),
            dst: Some("192.0.2.1".parse().unwrap()),
            len: Some(60),
            ttl: Some(51),
            df: Some(true),
            proto: Some(Proto::Tcp),
            spt: Some(40000),
            dpt: Some(dpt),
            window: Some(1024),
            tcp_flags: Some(TcpFlags(TcpFlags::SYN)),
            ..Default::default()
        },
        repeat: 1,
        message,
        ..Default::default()
    }
}

fn setup(tag: &str) -> (util::TestDb, mysql::Conn) {
    let db = util::TestDb::new(tag);
    let mut c = db.conn();
    assert_eq!(
        schema::ensure_table(&mut c, "logs").unwrap(),
        TableStatus::Created
    );
    (db, c)
}

/// Both ways of sending rows must behave the same.
const METHODS: [WriteMethod; 2] = [WriteMethod::LoadData, WriteMethod::Insert];

fn writer(db: &util::TestDb, m: WriteMethod) -> Writer {
    Writer::new(db.conn(), "logs").with_method(m)
}

/// One row of the NULL/address test: src, dst, action, dpt, tcp_flags, repeat.
type Row = (
    Option<String>,
    Option<String>,
    String,
    Option<u16>,
    Option<String>,
    u32,
);

fn count(c: &mut mysql::Conn, table: &str) -> u64 {
    c.query_first(format!("SELECT COUNT(*) FROM `{table}`"))
        .unwrap()
        .unwrap()
}

#[test]
fn same_batch_twice_adds_nothing() {
    for method in METHODS {
        let (db, mut c) = setup(&format!("sw_idem_{}", method as u8));
        let msgs: Vec<String> = (0..2500)
            .map(|i| format!("IPT: DROP IN=eth0 SRC=10.0.0.{} DPT={i}", i % 250))
            .collect();
        let mut b = RecordBatch::new();
        for (i, m) in msgs.iter().enumerate() {
            b.push(
                &tcp_record(
                    T0 + i as i64 * 1000,
                    "10.0.0.1",
                    (i % 65535) as u16,
                    m.as_bytes(),
                ),
                0,
            );
        }
        let mut w = writer(&db, method);
        assert_eq!(
            w.write(&b).unwrap(),
            WriteStats {
                inserted: 2500,
                duplicates: 0
            }
        );
        assert_eq!(
            w.write(&b).unwrap(),
            WriteStats {
                inserted: 0,
                duplicates: 2500
            }
        );
        assert_eq!(count(&mut c, "logs"), 2500);

        // A batch that overlaps: half old rows, half new ones.
        let mut b2 = RecordBatch::new();
        for i in 1250..3750usize {
            let m = msgs
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("new line {i}"));
            b2.push(
                &tcp_record(T0 + i as i64 * 1000, "10.0.0.1", 1, m.as_bytes()),
                0,
            );
        }
        // Lines 1250..2500 are rebuilt with the same message and time: same keys.
        assert_eq!(
            w.write(&b2).unwrap(),
            WriteStats {
                inserted: 1250,
                duplicates: 1250
            }
        );
        assert_eq!(count(&mut c, "logs"), 3750);
        // Fresh data afterwards goes in fully again.
        let mut b3 = RecordBatch::new();
        let m = b"IPT: DROP later".to_vec();
        b3.push(&tcp_record(T0 + 10_000_000_000, "10.0.0.1", 1, &m), 0);
        assert_eq!(
            w.write(&b3).unwrap(),
            WriteStats {
                inserted: 1,
                duplicates: 0
            }
        );
        assert_eq!(w.write(&RecordBatch::new()).unwrap(), WriteStats::default());
    }
}

#[test]
fn repeated_identical_lines_all_count() {
    for method in METHODS {
        let (db, mut c) = setup(&format!("sw_occ_{}", method as u8));
        let m = b"IPT: DROP IN=eth0 SRC=203.0.113.9 DPT=22".to_vec();
        let r = tcp_record(T0, "203.0.113.9", 22, &m);
        let mut b = RecordBatch::new();
        for occ in 0..3 {
            b.push(&r, occ);
        }
        let mut w = writer(&db, method);
        assert_eq!(w.write(&b).unwrap().inserted, 3);
        assert_eq!(w.write(&b).unwrap().duplicates, 3);
        let occs: Vec<u32> = c.query("SELECT occ FROM logs ORDER BY occ").unwrap();
        assert_eq!(occs, vec![0, 1, 2]);
        // The same key twice inside one batch is stored once.
        let mut b2 = RecordBatch::new();
        b2.push(&r, 3);
        b2.push(&r, 3);
        assert_eq!(
            w.write(&b2).unwrap(),
            WriteStats {
                inserted: 1,
                duplicates: 1
            }
        );
        assert_eq!(count(&mut c, "logs"), 4);
    }
}

#[test]
fn absent_fields_are_null_and_addresses_round_trip() {
    for method in METHODS {
        let (db, mut c) = setup(&format!("sw_null_{}", method as u8));
        let m1 = b"IPT: ACCEPT v6".to_vec();
        let m2 = b"IPT: DROP bare".to_vec();
        let m3 = b"IPT: REJECT icmp".to_vec();
        let v6 = tcp_record(T0, "2001:db8::1", 443, &m1);
        let v6 = Record {
            action: "ACCEPT",
            pkt: Packet {
                dst: Some("fe80::1:2".parse().unwrap()),
                ..v6.pkt
            },
            ..v6
        };
        let bare = Record {
            ts: Timestamp(T0 + 1),
            action: "DROP",
            prefix: "IPT: DROP ",
            repeat: 1,
            message: &m2,
            ..Default::default()
        };
        let icmp = Record {
            ts: Timestamp(T0 + 2),
            host: Some("fw2"),
            action: "REJECT",
            prefix: "IPT: REJECT ",
            pkt: Packet {
                src: Some("::ffff:192.0.2.7".parse().unwrap()),
                dst: Some("198.51.100.2".parse().unwrap()),
                proto: Some(Proto::Icmp),
                icmp_type: Some(3),
                icmp_code: Some(3),
                ..Default::default()
            },
            inner: Some(Packet {
                src: Some("198.51.100.2".parse().unwrap()),
                dst: Some("192.0.2.7".parse().unwrap()),
                proto: Some(Proto::Udp),
                spt: Some(53),
                dpt: Some(33434),
                ..Default::default()
            }),
            repeat: 4,
            message: &m3,
            ..Default::default()
        };
        let mut b = RecordBatch::new();
        b.push(&v6, 0);
        b.push(&bare, 0);
        b.push(&icmp, 0);
        writer(&db, method).write(&b).unwrap();

        let rows: Vec<Row> = c
            .query(
                "SELECT INET6_NTOA(src), INET6_NTOA(dst), action, dpt, tcp_flags, `repeat` FROM logs ORDER BY ts",
            )
            .unwrap();
        assert_eq!(
            rows[0],
            (
                Some("2001:db8::1".into()),
                Some("fe80::1:2".into()),
                "ACCEPT".into(),
                Some(443),
                Some("SYN".into()),
                1
            )
        );
        assert_eq!(rows[1], (None, None, "DROP".into(), None, None, 1));
        assert_eq!(
            rows[2],
            (
                Some("::ffff:192.0.2.7".into()),
                Some("198.51.100.2".into()),
                "REJECT".into(),
                None,
                None,
                4
            )
        );

        // Every optional column of the bare record is NULL.
        let nulls: u32 = c
            .query_first(
                "SELECT (host IS NULL) + (if_in IS NULL) + (mac IS NULL) + (len IS NULL) + (ttl IS NULL) \
                 + (df IS NULL) + (proto IS NULL) + (spt IS NULL) + (icmp_type IS NULL) + (uid IS NULL) \
                 + (inner_src IS NULL) + (inner_proto IS NULL) FROM logs WHERE action = 'DROP'",
            )
            .unwrap()
            .unwrap();
        assert_eq!(nulls, 12);
        // Stored bytes are exactly INET6_ATON's, and the inner packet has its own columns.
        let same: u32 = c
            .query_first(
                "SELECT src = INET6_ATON('::ffff:192.0.2.7') AND dst = INET6_ATON('198.51.100.2') \
                 AND LENGTH(dst) = 4 AND INET6_NTOA(inner_src) = '198.51.100.2' AND inner_proto = 'UDP' \
                 AND inner_dpt = 33434 AND icmp_type = 3 AND host = 'fw2' FROM logs WHERE action = 'REJECT'",
            )
            .unwrap()
            .unwrap();
        assert_eq!(same, 1);
        let ts: String = c
            .query_first("SELECT CAST(ts AS CHAR) FROM logs WHERE action = 'ACCEPT'")
            .unwrap()
            .unwrap();
        assert_eq!(ts, "2025-11-05 05:35:08.123456");
    }
}

#[test]
fn hostile_text_is_stored_verbatim() {
    for method in METHODS {
        let (db, mut c) = setup(&format!("sw_quote_{}", method as u8));
        let host = "x'); DROP TABLE logs; --";
        let prefix = "IPT: \"DROP\" \\ 'q' `b` \t% _ é😀";
        let m = format!("{prefix} IN=eth0").into_bytes();
        let r = Record {
            ts: Timestamp(T0),
            host: Some(host),
            action: "DR\\OP'",
            prefix,
            if_in: Some("eth0\\n"),
            repeat: 1,
            message: &m,
            ..Default::default()
        };
        let mut b = RecordBatch::new();
        b.push(&r, 0);
        writer(&db, method).write(&b).unwrap();
        let row: (String, String, String, String) = c
            .query_first("SELECT host, action, prefix, if_in FROM logs")
            .unwrap()
            .unwrap();
        assert_eq!(
            row,
            (
                host.to_string(),
                "DR\\OP'".to_string(),
                prefix.to_string(),
                "eth0\\n".to_string()
            )
        );
        assert_eq!(count(&mut c, "logs"), 1);
    }
}

#[test]
fn no_backslash_escapes_mode_is_handled() {
    let (db, mut c) = setup("sw_nbe");
    let m = b"IPT: DROP a\\b".to_vec();
    let mut b = RecordBatch::new();
    b.push(
        &Record {
            if_in: Some("e\\t\t"),
            ..tcp_record(T0, "9.10.92.0", 1, &m)
        },
        0,
    );
    let mut w = Writer::new(db.conn(), "logs");
    w.conn()
        .query_drop("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
        .unwrap();
    assert_eq!(w.write(&b).unwrap().inserted, 1);
    let row: (String, String) = c
        .query_first("SELECT if_in, INET6_NTOA(src) FROM logs")
        .unwrap()
        .unwrap();
    assert_eq!(row, ("e\\t\t".to_string(), "9.10.92.0".to_string()));
    let mut c2 = db.conn();
    c2.query_drop("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'")
        .unwrap();
    c2.query_drop(schema::create_table_sql("logs2")).unwrap();
    let s = ipta::store::loaddata::load_data(&mut c2, "logs2", &b).unwrap();
    assert_eq!(s.inserted, 1);
}

#[test]
fn long_text_is_cut_to_the_column() {
    for method in METHODS {
        let (db, mut c) = setup(&format!("sw_long_{}", method as u8));
        let host = "h".repeat(300);
        let m = b"IPT: DROP x".to_vec();
        let r = Record {
            ts: Timestamp(T0),
            host: Some(&host),
            action: "DROP",
            prefix: "IPT: DROP ",
            repeat: 1,
            message: &m,
            ..Default::default()
        };
        let mut b = RecordBatch::new();
        b.push(&r, 0);
        writer(&db, method).write(&b).unwrap();
        let len: u32 = c
            .query_first("SELECT CHAR_LENGTH(host) FROM logs")
            .unwrap()
            .unwrap();
        assert_eq!(len, 255);
    }
}

#[test]
fn load_data_writes_the_same_rows() {
    let (db, mut c) = setup("sw_load");
    c.query_drop(schema::create_table_sql("logs2")).unwrap();
    let m1 = b"IPT: DROP a\tb\\c".to_vec();
    let m2 = b"IPT: ACCEPT v6".to_vec();
    let mut b = RecordBatch::new();
    let r1 = tcp_record(T0, "10.1.2.3", 9, &m1);
    let r1 = Record {
        host: Some("h\t\\N\n'x"),
        prefix: "IPT: \\N ",
        ..r1
    };
    b.push(&r1, 0);
    b.push(&r1, 1);
    b.push(
        &Record {
            if_out: None,
            ..tcp_record(T0 + 5, "2001:db8::9", 80, &m2)
        },
        0,
    );
    // A source address whose bytes contain tab, newline, backslash and NUL.
    let m3 = b"IPT: DROP odd".to_vec();
    b.push(&tcp_record(T0 + 6, "9.10.92.0", 1, &m3), 0);
    Writer::new(db.conn(), "logs").write(&b).unwrap();
    let s = ipta::store::loaddata::load_data(&mut c, "logs2", &b).unwrap();
    assert_eq!(
        s,
        WriteStats {
            inserted: 4,
            duplicates: 0
        }
    );
    let s = ipta::store::loaddata::load_data(&mut c, "logs2", &b).unwrap();
    assert_eq!(
        s,
        WriteStats {
            inserted: 0,
            duplicates: 4
        }
    );
    let cols: Vec<String> = ipta::store::row::INSERT_COLUMNS
        .iter()
        .map(|c| format!("`{c}`"))
        .collect();
    let cols = cols.join(",");
    let diff: u64 = c
        .query_first(format!(
            "SELECT COUNT(*) FROM (SELECT {cols} FROM logs UNION ALL SELECT {cols} FROM logs2) u \
             GROUP BY {cols} HAVING COUNT(*) <> 2 LIMIT 1"
        ))
        .unwrap()
        .unwrap_or(0);
    assert_eq!(diff, 0, "the two tables differ");
    assert_eq!(count(&mut c, "logs2"), 4);
}

#[test]
fn missing_table_and_bad_time_are_clear_errors() {
    let db = util::TestDb::new("sw_err");
    let m = b"IPT: DROP".to_vec();
    let mut b = RecordBatch::new();
    b.push(&tcp_record(T0, "10.0.0.1", 1, &m), 0);
    let mut w = Writer::new(db.conn(), "nope");
    let e = w.write(&b).unwrap_err();
    assert!(
        matches!(e, StoreError::MissingTable(ref t) if t == "nope"),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("--create-table"));
    let mut c = db.conn();
    schema::ensure_table(&mut c, "logs").unwrap();
    let mut bad = RecordBatch::new();
    bad.push(&tcp_record(-40_000_000_000_000_000, "10.0.0.1", 1, &m), 0);
    let e = Writer::new(db.conn(), "logs").write(&bad).unwrap_err();
    assert!(e.to_string().contains("DATETIME"), "{e}");
    assert!(!e.is_retryable());
}

#[test]
fn schema_versions_are_checked_and_upgraded() {
    let db = util::TestDb::new("sw_schema");
    let mut c = db.conn();
    assert_eq!(
        schema::ensure_table(&mut c, "logs").unwrap(),
        TableStatus::Created
    );
    assert_eq!(
        schema::ensure_table(&mut c, "logs").unwrap(),
        TableStatus::Existed
    );
    schema::check_table(&mut c, "logs").unwrap();
    assert!(matches!(
        schema::check_table(&mut c, "other"),
        Err(StoreError::MissingTable(_))
    ));

    // A newer version is refused.
    c.query_drop("ALTER TABLE logs COMMENT = 'ipta-logs v99'")
        .unwrap();
    let e = schema::ensure_table(&mut c, "logs").unwrap_err();
    assert!(e.to_string().contains("newer"), "{e}");

    // A table that is not ipta's is refused.
    c.query_drop("CREATE TABLE foreign_t (x INT) COMMENT 'payroll'")
        .unwrap();
    let e = schema::ensure_table(&mut c, "foreign_t").unwrap_err();
    assert!(e.to_string().contains("not an ipta table"), "{e}");

    // The upgrade machinery runs each step and records the version after it.
    c.query_drop("ALTER TABLE logs COMMENT = 'ipta-logs v1'")
        .unwrap();
    const STEPS: &[Upgrade] = &[
        Upgrade {
            from: 1,
            statements: &["ALTER TABLE {table} ADD COLUMN `extra1` INT NULL"],
        },
        Upgrade {
            from: 2,
            statements: &["ALTER TABLE {table} ADD COLUMN `extra2` INT NULL"],
        },
    ];
    let s = schema::check_and_upgrade(&mut c, "logs", 1, 3, STEPS).unwrap();
    assert_eq!(s, TableStatus::Upgraded { from: 1 });
    assert_eq!(schema::table_version(&mut c, "logs").unwrap(), Some(3));
    let n: u32 = c
        .query_first("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'logs' AND COLUMN_NAME LIKE 'extra%'")
        .unwrap()
        .unwrap();
    assert_eq!(n, 2);
    // A missing step is a clear error.
    let e = schema::check_and_upgrade(&mut c, "logs", 3, 5, STEPS).unwrap_err();
    assert!(e.to_string().contains("cannot upgrade"), "{e}");
    assert!(schema::ensure_table(&mut c, "bad-name").is_err());
}

#[test]
fn concurrent_writers_count_each_row_once() {
    for method in METHODS {
        let (db, mut c) = setup(&format!("sw_conc_{}", method as u8));
        let msgs: Vec<String> = (0..4000).map(|i| format!("IPT: DROP conc {i}")).collect();
        let batches: Vec<RecordBatch> = msgs
            .chunks(500)
            .enumerate()
            .map(|(k, ms)| {
                let mut b = RecordBatch::new();
                for (j, m) in ms.iter().enumerate() {
                    let i = k * 500 + j;
                    b.push(
                        &tcp_record(T0 + i as i64 * 1000, "10.0.0.1", 1, m.as_bytes()),
                        0,
                    );
                }
                b
            })
            .collect();
        let batches = std::sync::Arc::new(batches);
        // Two writers deliver the same batches, one forwards and one backwards, so they meet;
        // through the one write path, which sends a batch again after a deadlock.
        let handles: Vec<_> = [false, true]
            .into_iter()
            .map(|rev| {
                let batches = batches.clone();
                let settings = db.settings.clone();
                let connector: ipta::store::sink::Connector<'static> = Box::new(move || {
                    let w = Writer::new(ipta::store::connect(&settings)?, "logs").with_method(method);
                    Ok(Box::new(w) as Box<dyn ipta::store::sink::BatchStore>)
                });
                let mut w = ipta::store::sink::Sink::waiting(connector, std::time::Duration::from_secs(30));
                std::thread::spawn(move || {
                    let mut total = WriteStats::default();
                    let order: Vec<usize> = if rev {
                        (0..batches.len()).rev().collect()
                    } else {
                        (0..batches.len()).collect()
                    };
                    for i in order {
                        let s = w.write(&batches[i]).unwrap();
                        assert!(s.refused.is_empty(), "{:?}", s.refused);
                        total.inserted += s.stats.inserted;
                        total.duplicates += s.stats.duplicates;
                    }
                    total
                })
            })
            .collect();
        let totals: Vec<WriteStats> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let inserted: u64 = totals.iter().map(|t| t.inserted).sum();
        let duplicates: u64 = totals.iter().map(|t| t.duplicates).sum();
        assert_eq!(
            (inserted, duplicates),
            (4000, 4000),
            "{method:?}: {totals:?}"
        );
        assert_eq!(count(&mut c, "logs"), 4000);
    }
}
