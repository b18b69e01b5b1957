//! `-ai` (the SQL prompt) from a pipe, and reverse DNS through the cache table
//! (`--dns-create-table`, `--dns-prune`, `--dns-dump`, names in the report).
use crate::util;

use std::io::Cursor;
use std::net::IpAddr;

use ipta::record::{Packet, Proto, Record, RecordBatch, Timestamp};
use ipta::report::rdns::{self, DnsSettings, Resolver};
use ipta::report::{self, AnalyzeOptions, Format};
use ipta::store::{schema, summary, writer::Writer};
use mysql::prelude::Queryable;

#[test]
fn prompt_runs_statements_and_survives_errors() {
    let db = util::TestDb::new("an_ai");
    let mut c = db.conn();
    let input = "CREATE TABLE t (a INT, b VARCHAR(10));\n\
                 INSERT INTO t VALUES (1, 'x;y'), (22, NULL);\n\
                 SELECT nosuch FROM t;\n\
                 SELECT a,\n  b FROM t\n  ORDER BY a;\n\
                 SELECT 'still here' AS s; -- trailing comment\n\
                 quit\n\
                 SELECT 'never';\n";
    let mut out = Vec::new();
    let failed = report::interactive(&mut c, &mut Cursor::new(input), &mut out, false).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(failed, 1, "{text}");
    assert!(text.contains("OK, 2 row(s) affected"), "{text}");
    assert!(text.contains("ERROR 1054"), "{text}");
    assert!(text.contains("| x;y  |"), "{text}");
    assert!(text.contains("| 22 | NULL |"), "{text}");
    assert!(text.contains("still here"), "{text}");
    assert!(!text.contains("never"), "{text}");
    assert!(!text.contains("ipta>"), "no prompt on a pipe: {text}");
    // A statement left open at the end of input is reported, not run.
    let mut out = Vec::new();
    report::interactive(&mut c, &mut Cursor::new("SELECT 1"), &mut out, true).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("ipta> ") && text.contains("incomplete"), "{text}");
}

#[test]
fn dns_cache_table_feeds_the_report() {
    let db = util::TestDb::new("an_dns");
    let mut c = db.conn();
    rdns::create_table(&mut c, "ipta_dns").unwrap();
    rdns::create_table(&mut c, "ipta_dns").unwrap(); // idempotent
    c.exec_drop(
        "INSERT INTO ipta_dns (ip, name, resolved_at) VALUES (INET6_ATON('203.0.113.5'), 'scanner.example', UTC_TIMESTAMP()), \
         (INET6_ATON('2001:db8::9'), NULL, UTC_TIMESTAMP()), \
         (INET6_ATON('198.51.100.77'), 'old.example', UTC_TIMESTAMP() - INTERVAL 3 HOUR)",
        (),
    )
    .unwrap();
    // Cached answers come back without the network; the expired one is not used.
    let r = Resolver::new(DnsSettings { ttl_hours: 2, ..Default::default() });
    let ip: IpAddr = "203.0.113.5".parse().unwrap();
    let names = r.resolve_all(&[ip, "2001:db8::9".parse().unwrap()], Some(&mut c));
    assert_eq!(names.get(&ip).map(String::as_str), Some("scanner.example"));
    assert_eq!(names.len(), 1);
    assert_eq!(r.name(ip, std::time::Instant::now()).as_deref(), Some("scanner.example"));
    // The report shows the name for the rows shown.
    schema::ensure_table(&mut c, "logs").unwrap();
    summary::create(&mut c, "logs").unwrap();
    let msg = b"IPT: DROP x".to_vec();
    let mut b = RecordBatch::new();
    b.push(
        &Record {
            ts: Timestamp(1_793_491_200_000_000),
            host: Some("fw1"),
            action: "DROP",
            prefix: "IPT: DROP ",
            if_in: Some("eth0"),
            if_out: Some(""),
            pkt: Packet {
                src: Some(ip),
                dst: Some("192.0.2.1".parse().unwrap()),
                proto: Some(Proto::Tcp),
                dpt: Some(22),
                ..Default::default()
            },
            repeat: 1,
            message: &msg,
            ..Default::default()
        },
        0,
    );
    Writer::new(db.conn(), "logs").write(&b).unwrap();
    let mut out = Vec::new();
    let o = AnalyzeOptions { rdns: true, modules: vec![ipta::report::Module::Denied], ..Default::default() };
    report::run(&mut c, "logs", &o, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("scanner.example"), "{text}");
    let mut out = Vec::new();
    report::run(&mut c, "logs", &AnalyzeOptions { format: Format::Json, ..o }, &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["modules"]["denied"]["rows"][0]["src"], "203.0.113.5");
    assert_eq!(v["modules"]["denied"]["rows"][0]["src_name"], "scanner.example");
    // Dump, then prune what is older than 2 hours.
    let mut out = Vec::new();
    rdns::dump(&mut c, "ipta_dns", &mut out).unwrap();
    let dump = String::from_utf8(out).unwrap();
    assert!(dump.contains("203.0.113.5\tscanner.example\t"), "{dump}");
    assert!(dump.contains("2001:db8::9\t-\t"), "{dump}");
    assert_eq!(rdns::prune(&mut c, "ipta_dns", 2).unwrap(), 1);
    let left: u64 = c.query_first("SELECT COUNT(*) FROM ipta_dns").unwrap().unwrap();
    assert!(left >= 2, "{left}");
}
