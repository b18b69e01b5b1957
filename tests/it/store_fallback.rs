//! The writer's automatic fallback: a server that refuses LOAD DATA LOCAL INFILE (as MySQL 8
//! does by default) still gets every row, exactly once, through prepared INSERTs. Runs against a
//! private throwaway mariadbd started with `--local-infile=0`, never the shared server.

use ipta::record::{Record, RecordBatch, Timestamp};
use ipta::store::writer::{WriteMethod, WriteStats, Writer};
use mysql::prelude::Queryable;

use crate::ingest_support::PrivateServer;

#[test]
fn refused_local_infile_falls_back_to_insert() {
    let mut server = PrivateServer::new();
    server.start_with(&["--local-infile=0"]);
    let settings = server.settings("ipta");
    let mut c = ipta::store::connect(&settings).unwrap();
    ipta::store::schema::ensure_table(&mut c, "logs").unwrap();

    let msgs: Vec<String> = (0..300)
        .map(|i| format!("IPT: DROP IN=eth0 n={i}"))
        .collect();
    let mut b = RecordBatch::new();
    for (i, m) in msgs.iter().enumerate() {
        let r = Record {
            ts: Timestamp(1_762_320_908_000_000 + i as i64),
            host: Some("fw1"),
            action: "DROP",
            prefix: "IPT: DROP ",
            pkt: ipta::record::Packet {
                src: Some("2001:db8::7".parse().unwrap()),
                ..Default::default()
            },
            repeat: 1,
            message: m.as_bytes(),
            ..Default::default()
        };
        b.push(&r, 0);
    }

    // LOAD DATA alone fails with a clear, non-retryable error.
    let mut only_load = Writer::new(ipta::store::connect(&settings).unwrap(), "logs")
        .with_method(WriteMethod::LoadData);
    let e = only_load.write(&b).unwrap_err();
    assert!(!e.is_retryable(), "{e:?}");

    let mut w = Writer::new(ipta::store::connect(&settings).unwrap(), "logs");
    assert_eq!(w.method(), WriteMethod::Auto);
    assert_eq!(
        w.write(&b).unwrap(),
        WriteStats {
            inserted: 300,
            duplicates: 0
        }
    );
    assert_eq!(w.method(), WriteMethod::Insert);
    assert_eq!(
        w.write(&b).unwrap(),
        WriteStats {
            inserted: 0,
            duplicates: 300
        }
    );
    let (n, src): (u64, String) = c
        .query_first("SELECT COUNT(*), MIN(INET6_NTOA(src)) FROM logs")
        .unwrap()
        .unwrap();
    assert_eq!((n, src.as_str()), (300, "2001:db8::7"));
}
