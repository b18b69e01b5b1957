//! `ipta --analyze` when the fold of the summary tables meets an outage: the report fails with
//! the server's error (classed by code, like a write) instead of quietly analyzing the packet
//! table; once the server takes the fold again, the report works. The outage is a lock held
//! past the report session's own `innodb_lock_wait_timeout` (the shared server's globals stay
//! as they are).
use crate::util;

use ipta::record::{Packet, Proto, Record, RecordBatch, Timestamp};
use ipta::report::query::{self, Path};
use ipta::report::{AnalyzeOptions, ReportError};
use ipta::store::{schema, summary, writer::Writer, ErrorClass};
use mysql::prelude::Queryable;

const T0: i64 = 1_762_320_908_123_456; // 2025-11-05T05:35:08.123456Z

fn rows(n: i64) -> RecordBatch {
    let mut b = RecordBatch::new();
    for i in 0..n {
        let r = Record {
            ts: Timestamp(T0 + i * 1_000_000),
            host: Some("fw1"),
            action: "DROP",
            prefix: "IPT: DROP ",
            pkt: Packet {
                src: Some("203.0.113.9".parse().unwrap()),
                dst: Some("192.0.2.1".parse().unwrap()),
                proto: Some(Proto::Tcp),
                dpt: Some(22),
                ..Default::default()
            },
            repeat: 1,
            message: b"IPT: DROP IN=eth0",
            ..Default::default()
        };
        b.push(&r, 0);
    }
    b
}

#[test]
fn an_outage_during_the_fold_is_a_database_error_not_a_fallback() {
    let db = util::TestDb::new("an_fold_outage");
    let mut c = db.conn();
    schema::ensure_table(&mut c, "logs").unwrap();
    summary::create(&mut c, "logs").unwrap();
    Writer::new(db.conn(), "logs").write(&rows(5)).unwrap();

    // Another session holds the summaries' state row, as a long fold elsewhere would.
    let mut holder = db.conn();
    holder.query_drop("START TRANSACTION").unwrap();
    holder
        .query_drop("SELECT `k` FROM `logs__sstate` WHERE `k` = 1 FOR UPDATE")
        .unwrap();
    let mut r = db.conn();
    r.query_drop("SET SESSION innodb_lock_wait_timeout = 1")
        .unwrap();
    let opts = AnalyzeOptions::default();
    match query::analyze_with(&mut r, "logs", &opts, Path::Auto) {
        Err(ReportError::Store(e)) => {
            assert_eq!(e.server_code(), Some(1205), "{e:?}");
            assert_eq!(e.class(), ErrorClass::Outage);
        }
        Err(other) => panic!("expected the server's error, got {other:?}"),
        Ok(rep) => panic!(
            "an outage fell back on the packet table: {:?}",
            rep.summary_note
        ),
    }

    holder.query_drop("ROLLBACK").unwrap();
    let rep = query::analyze_with(&mut r, "logs", &opts, Path::Auto).unwrap();
    assert_eq!(rep.summary_note, None);
    assert_eq!(rep.packets, 5);
}
