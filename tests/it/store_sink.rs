//! The one write path (`store::sink`) with the real writer against the real server: a row that
//! cannot be stored is isolated and the rest is stored, and a server that answers "not now"
//! (a lock wait timeout, by code 1205) is waited out without rejecting anything. The outages
//! that need a private server (read-only, restart, KILL) are tested on their own.
use crate::util;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipta::record::{Packet, Proto, Record, RecordBatch, Timestamp};
use ipta::store::sink::{BatchStore, RetryPolicy, Sink, SinkEvent};
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

fn count(c: &mut mysql::Conn) -> u64 {
    c.query_first("SELECT COUNT(*) FROM `logs`")
        .unwrap()
        .unwrap()
}

fn no_reconnect() -> ipta::store::sink::Connector<'static> {
    Box::new(|| -> Result<Box<dyn BatchStore>, StoreError> {
        Err(StoreError::Connect("test: no second connection".into()))
    })
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
    let mut sink = Sink::waiting(no_reconnect(), Duration::from_secs(10))
        .with_store(Box::new(Writer::new(db.conn(), "logs")));
    let w = sink.write(&b).unwrap();
    let refused = w.refused;
    assert_eq!(w.stats.inserted, 6);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, 5);
    assert_eq!(refused[0].1.class(), ErrorClass::Row, "{:?}", refused[0].1);
    assert_eq!(count(&mut c), 6);
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
    // The sink's pause lets the table go at the first wait; its events note each failure.
    let failed = Arc::new(Mutex::new(Vec::new()));
    let mut holder = Some(holder);
    let pause = move |d: Duration| {
        if let Some(mut h) = holder.take() {
            h.query_drop("UNLOCK TABLES").unwrap();
        }
        std::thread::sleep(d);
        true
    };
    let seen = failed.clone();
    let events = move |ev: SinkEvent<'_>| {
        if let SinkEvent::Down(e) = ev {
            seen.lock().unwrap().push(e.server_code());
        }
    };
    let policy = RetryPolicy {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
        give_up_after: Some(Duration::from_secs(20)),
        wait_for_setup: false,
    };
    let mut sink = Sink::new(no_reconnect(), policy, Box::new(pause), Box::new(events))
        .with_store(Box::new(Writer::new(w, "logs")));
    let m = b"IPT: DROP IN=eth0".to_vec();
    let mut b = RecordBatch::new();
    for i in 0..3 {
        b.push(&record(T0 + i, &m), 0);
    }
    let w = sink.write(&b).unwrap();
    assert_eq!(
        *failed.lock().unwrap(),
        [Some(1205)],
        "the lock wait timeout, by its code"
    );
    assert!(
        w.refused.is_empty(),
        "an outage never rejects: {:?}",
        w.refused
    );
    assert_eq!(w.stats.inserted, 3);
    assert_eq!(count(&mut c), 3);
}
