//! The one write path (`store::sink`) with the real writer against the real server: a row that
//! cannot be stored is isolated and the rest is stored, and a server that answers "not now"
//! (a lock wait timeout, by code 1205) is waited out without rejecting anything. The outages
//! that need a private server (read-only, restart, KILL) are tested on their own.
mod util;

use std::time::Duration;

use ipta::record::{Packet, Proto, Record, RecordBatch, Timestamp};
use ipta::store::sink::{BatchStore, Hooks, Policy, Sink, Sleep};
use ipta::store::writer::Writer;
use ipta::store::{schema, ErrorClass, StoreError};
use mysql::prelude::Queryable;

const T0: i64 = 1_762_320_908_123_456; // 2025-11-05T05:35:08.123456Z

fn record(ts: i64, message: &[u8]) -> Record<'_> {
    Record {
        ts: Timestamp(ts),
        host: Some("fw1"),
        action: "DROP",
        prefix: "IPT: DROP ",
        if_in: Some("eth0"),
        pkt: Packet {
            src: Some("203.0.113.9".parse().unwrap()),
            dst: Some("192.0.2.1".parse().unwrap()),
            proto: Some(Proto::Tcp),
            dpt: Some(22),
            ..Default::default()
        },
        repeat: 1,
        message,
        ..Default::default()
    }
}

fn policy() -> Policy {
    Policy {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
        max_attempts: Some(20),
        wait_on_config: false,
    }
}

fn count(c: &mut mysql::Conn) -> u64 {
    c.query_first("SELECT COUNT(*) FROM `logs`")
        .unwrap()
        .unwrap()
}

fn sink_on(conn: mysql::Conn) -> Sink<'static> {
    let no_reconnect = || -> Result<Box<dyn BatchStore>, StoreError> {
        Err(StoreError::Connect("test: no second connection".into()))
    };
    Sink::new(Box::new(no_reconnect), policy()).with_store(Box::new(Writer::new(conn, "logs")))
}

#[test]
fn a_row_that_cannot_be_stored_is_isolated_and_the_rest_is_stored() {
    let db = util::TestDb::new("sink_bad_row");
    let mut c = db.conn();
    schema::ensure_table(&mut c, "logs").unwrap();
    let m = b"IPT: DROP IN=eth0".to_vec();
    let mut b = RecordBatch::new();
    for i in 0..7 {
        // Row 5 has a time DATETIME cannot hold: the row's own fault.
        let ts = if i == 5 {
            -40_000_000_000_000_000
        } else {
            T0 + i
        };
        b.push(&record(ts, &m), 0);
    }
    let mut sink = sink_on(db.conn());
    let mut refused = Vec::new();
    let st = sink.write(&b, &mut Sleep, &mut refused).unwrap();
    assert_eq!(st.inserted, 6);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, 5);
    assert_eq!(
        refused[0].1.class(),
        ErrorClass::Rejected,
        "{:?}",
        refused[0].1
    );
    assert_eq!(count(&mut c), 6);
}

/// Hooks that let the table go at the first pause, and note each failure's code.
struct Unlock {
    holder: Option<mysql::Conn>,
    failed: Vec<Option<u16>>,
}

impl Hooks for Unlock {
    fn pause(&mut self, delay: Duration) -> bool {
        if let Some(mut c) = self.holder.take() {
            c.query_drop("UNLOCK TABLES").unwrap();
        }
        std::thread::sleep(delay);
        true
    }
    fn failed(&mut self, e: &StoreError) {
        self.failed.push(e.code());
    }
}

#[test]
fn a_lock_wait_timeout_is_waited_out_not_rejected() {
    let db = util::TestDb::new("sink_lock_wait");
    let mut c = db.conn();
    schema::ensure_table(&mut c, "logs").unwrap();
    // Another session holds the table; the writer's session gives up waiting after 1 s (a
    // session setting: the shared server's globals stay as they are).
    let mut holder = db.conn();
    holder.query_drop("LOCK TABLES `logs` WRITE").unwrap();
    let mut w = db.conn();
    w.query_drop("SET SESSION lock_wait_timeout = 1, innodb_lock_wait_timeout = 1")
        .unwrap();
    let mut sink = sink_on(w);
    let m = b"IPT: DROP IN=eth0".to_vec();
    let mut b = RecordBatch::new();
    for i in 0..3 {
        b.push(&record(T0 + i, &m), 0);
    }
    let mut hooks = Unlock {
        holder: Some(holder),
        failed: Vec::new(),
    };
    let mut refused = Vec::new();
    let st = sink.write(&b, &mut hooks, &mut refused).unwrap();
    assert_eq!(
        hooks.failed,
        [Some(1205)],
        "the lock wait timeout, by its code"
    );
    assert!(refused.is_empty(), "an outage never rejects: {refused:?}");
    assert_eq!(st.inserted, 3);
    assert_eq!(count(&mut c), 3);
}
