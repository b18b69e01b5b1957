//! `ipta --analyze` against a hand-counted fixture written through the real writer: every
//! module on both paths (summaries and packet table), every filter, window edges, IPv6-only
//! data, JSON shape, an empty table, and summaries staying exact through duplicates and clear.
//! Connections run with ONLY_FULL_GROUP_BY so every query is checked for well-defined values.
use crate::util;

use ipta::record::{Packet, Proto, Record, RecordBatch, Timestamp};
use ipta::report::query::{self, Cell, Path, Report, Via};
use ipta::report::{self, AnalyzeOptions, Format, Module};
use ipta::store::{schema, summary, writer::Writer};
use mysql::prelude::Queryable;

/// 2026-11-01T00:00:00Z
const T0: i64 = 1_793_491_200_000_000;
const H: i64 = 3_600_000_000;

struct Spec {
    at: i64,
    host: &'static str,
    action: &'static str,
    if_in: &'static str,
    if_out: &'static str,
    src: &'static str,
    dst: &'static str,
    proto: Proto,
    dpt: Option<u16>,
    repeat: u32,
}

#[allow(clippy::too_many_arguments)] // one fixture row per call, its columns in order
const fn s(
    at: i64,
    host: &'static str,
    action: &'static str,
    if_in: &'static str,
    if_out: &'static str,
    src: &'static str,
    dst: &'static str,
    proto: Proto,
    dpt: Option<u16>,
    repeat: u32,
) -> Spec {
    Spec { at, host, action, if_in, if_out, src, dst, proto, dpt, repeat }
}

/// The fixture (see the expected counts in each test).
const FIXTURE: &[Spec] = &[
    s(0, "fw1", "DROP", "eth0", "", "203.0.113.5", "198.51.100.1", Proto::Tcp, Some(22), 1),
    s(10_000_000, "fw1", "DROP", "eth0", "", "203.0.113.5", "198.51.100.1", Proto::Tcp, Some(22), 3),
    s(H, "fw1", "DROP", "eth0", "", "203.0.113.5", "198.51.100.1", Proto::Tcp, Some(23), 1),
    s(H, "fw1", "INVALID", "eth0", "", "203.0.113.9", "198.51.100.1", Proto::Tcp, Some(80), 2),
    s(2 * H, "fw1", "ACCEPT", "eth0", "", "203.0.113.9", "198.51.100.1", Proto::Tcp, Some(443), 1),
    s(2 * H, "fw1", "ACCEPT", "lo", "", "127.0.0.1", "127.0.0.1", Proto::Tcp, Some(3306), 5),
    s(3 * H, "fw2", "DROP", "eth1", "", "203.0.113.5", "198.51.100.2", Proto::Icmp, None, 1),
    s(3 * H, "fw2", "REJECT", "", "eth0", "198.51.100.2", "203.0.113.7", Proto::Udp, Some(53), 1),
    s(25 * H, "fw1", "DROP", "eth0", "", "2001:db8::5", "2001:db8::1", Proto::Tcp, Some(22), 1),
    s(25 * H, "fw1", "DROP", "eth0", "", "2001:db8::5", "2001:db8::1", Proto::Icmpv6, None, 1),
];

fn batch_of(specs: &[Spec], salt: &str) -> RecordBatch {
    let msgs: Vec<String> = specs.iter().enumerate().map(|(i, _)| format!("IPT: msg {salt} {i}")).collect();
    let mut b = RecordBatch::new();
    for (sp, m) in specs.iter().zip(&msgs) {
        let r = Record {
            ts: Timestamp(T0 + sp.at),
            host: Some(sp.host),
            action: sp.action,
            prefix: "IPT: ",
            if_in: Some(sp.if_in),
            if_out: Some(sp.if_out),
            pkt: Packet {
                src: Some(sp.src.parse().unwrap()),
                dst: Some(sp.dst.parse().unwrap()),
                proto: Some(sp.proto),
                spt: sp.dpt.map(|_| 40000),
                dpt: sp.dpt,
                ..Default::default()
            },
            repeat: sp.repeat,
            message: m.as_bytes(),
            ..Default::default()
        };
        b.push(&r, 0);
    }
    b
}

fn strict(c: &mut mysql::Conn) {
    c.query_drop("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ONLY_FULL_GROUP_BY')").unwrap();
}

/// A database with the packet table and its summaries, the fixture written by the writer.
fn setup(tag: &str, specs: &[Spec]) -> (util::TestDb, mysql::Conn) {
    let db = util::TestDb::new(tag);
    let mut c = db.conn();
    strict(&mut c);
    schema::ensure_table(&mut c, "logs").unwrap();
    summary::create(&mut c, "logs").unwrap();
    if !specs.is_empty() {
        let mut w = Writer::new(db.conn(), "logs");
        let st = w.write(&batch_of(specs, "a")).unwrap();
        assert_eq!(st.inserted as usize, specs.len());
    }
    (db, c)
}

fn opts() -> AnalyzeOptions {
    AnalyzeOptions { scan_threshold: 2, ..Default::default() }
}

fn both(c: &mut mysql::Conn, o: &AnalyzeOptions) -> (Report, Report) {
    let fast = query::analyze_with(c, "logs", o, Path::Auto).unwrap();
    let raw = query::analyze_with(c, "logs", o, Path::Packets).unwrap();
    (fast, raw)
}

/// A section's rows as text, for compact expectations.
fn rows(rep: &Report, m: Module) -> Vec<String> {
    let s = rep.sections.iter().find(|s| s.module == m).expect("module present");
    s.rows
        .iter()
        .map(|r| {
            r.iter()
                .filter(|c| !matches!(c, Cell::Time(_)))
                .map(|c| match c {
                    Cell::Count(n) => n.to_string(),
                    Cell::Addr(b) => ipta::store::value::addr_of(b).map(|a| a.to_string()).unwrap_or("-".into()),
                    Cell::Port(p) => p.map(|p| p.to_string()).unwrap_or("-".into()),
                    Cell::Text(t) if t.is_empty() => "-".into(),
                    Cell::Text(t) => t.clone(),
                    Cell::Actions(v) => v.iter().map(|(a, n)| format!("{a}:{n}")).collect::<Vec<_>>().join("+"),
                    Cell::Time(_) => unreachable!(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn via(rep: &Report, m: Module) -> Via {
    rep.sections.iter().find(|s| s.module == m).unwrap().via
}

/// Both paths agree on every module, timeline and times included.
fn assert_same(fast: &Report, raw: &Report) {
    assert_eq!(fast.packets, raw.packets);
    assert_eq!(fast.first, raw.first);
    assert_eq!(fast.last, raw.last);
    for (a, b) in fast.sections.iter().zip(&raw.sections) {
        assert_eq!(a.module, b.module);
        assert_eq!(a.rows, b.rows, "module {:?}", a.module);
        assert_eq!(a.timeline, b.timeline, "module {:?}", a.module);
    }
}

#[test]
fn every_module_matches_hand_counts_on_both_paths() {
    let (_db, mut c) = setup("an_mod", FIXTURE);
    let (fast, raw) = both(&mut c, &opts());
    assert_eq!(fast.packets, 17);
    assert_eq!(fast.first, Some(Timestamp(T0)));
    assert_eq!(fast.last, Some(Timestamp(T0 + 25 * H)));
    for m in [Module::Denied, Module::Icmp, Module::Ports, Module::Sources, Module::Scans, Module::Timeline] {
        assert_eq!(via(&fast, m), Via::Summary);
        assert_eq!(via(&raw, m), Via::Packets);
    }
    assert_same(&fast, &raw);
    for rep in [&fast, &raw] {
        assert_eq!(
            rows(rep, Module::Denied),
            [
                "4 203.0.113.5 22 TCP DROP",
                "2 203.0.113.9 80 TCP INVALID",
                "1 2001:db8::5 - ICMPv6 DROP",
                "1 2001:db8::5 22 TCP DROP",
                "1 198.51.100.2 53 UDP REJECT",
                "1 203.0.113.5 - ICMP DROP",
                "1 203.0.113.5 23 TCP DROP",
            ]
        );
        assert_eq!(
            rows(rep, Module::Icmp),
            ["1 2001:db8::5 2001:db8::1 DROP", "1 203.0.113.5 198.51.100.2 DROP"]
        );
        assert_eq!(
            rows(rep, Module::Ports),
            ["5 22 TCP DROP", "2 80 TCP INVALID", "1 - ICMP DROP", "1 - ICMPv6 DROP", "1 23 TCP DROP", "1 53 UDP REJECT"]
        );
        assert_eq!(rows(rep, Module::Invalid), ["2 203.0.113.9 80 TCP"]);
        assert_eq!(
            rows(rep, Module::Interfaces),
            [
                "6 eth0 DROP TCP",
                "5 lo ACCEPT TCP",
                "2 eth0 INVALID TCP",
                "1 - REJECT UDP",
                "1 eth0 ACCEPT TCP",
                "1 eth0 DROP ICMPv6",
                "1 eth1 DROP ICMP",
            ]
        );
        assert_eq!(rows(rep, Module::Inbound), ["5 22 DROP", "2 - DROP", "2 80 INVALID", "1 23 DROP"]);
        assert_eq!(rows(rep, Module::Scans), ["203.0.113.5 2 6 2", "203.0.113.9 2 3 1"]);
        assert_eq!(
            rows(rep, Module::Sources),
            [
                "6 203.0.113.5 DROP:6",
                "5 127.0.0.1 ACCEPT:5",
                "3 203.0.113.9 INVALID:2+ACCEPT:1",
                "2 2001:db8::5 DROP:2",
                "1 198.51.100.2 REJECT:1",
            ]
        );
    }
    // First/last seen of the (203.0.113.5, 22) group: the two rows 10 s apart.
    let d = &fast.sections.iter().find(|s| s.module == Module::Denied).unwrap().rows[0];
    assert_eq!(d[5], Cell::Time(Some(Timestamp(T0))));
    assert_eq!(d[6], Cell::Time(Some(Timestamp(T0 + 10_000_000))));
    // Timeline: 26 hourly buckets (the data spans 25 h), hand counts per hour.
    let tl = fast.sections.iter().find(|s| s.module == Module::Timeline).unwrap().timeline.clone().unwrap();
    assert_eq!(tl.unit, query::Unit::Hour);
    assert_eq!(tl.buckets.len(), 26);
    assert_eq!(tl.actions, ["DROP", "ACCEPT", "INVALID", "REJECT"]);
    assert_eq!(tl.buckets[0], (Timestamp(T0), vec![4, 0, 0, 0]));
    assert_eq!(tl.buckets[1].1, vec![1, 0, 2, 0]);
    assert_eq!(tl.buckets[2].1, vec![0, 6, 0, 0]);
    assert_eq!(tl.buckets[3].1, vec![1, 0, 0, 1]);
    assert_eq!(tl.buckets[25], (Timestamp(T0 + 25 * H), vec![2, 0, 0, 0]));
    assert!(tl.buckets[4..25].iter().all(|b| b.1.iter().all(|&n| n == 0)));
}

#[test]
fn limit_and_module_selection() {
    let (_db, mut c) = setup("an_lim", FIXTURE);
    let o = AnalyzeOptions { limit: 2, modules: vec![Module::Scans, Module::Ports], ..opts() };
    let (fast, raw) = both(&mut c, &o);
    assert_same(&fast, &raw);
    assert_eq!(fast.sections.len(), 2);
    assert_eq!(rows(&fast, Module::Ports), ["5 22 TCP DROP", "2 80 TCP INVALID"]);
    let o = AnalyzeOptions { scan_threshold: 3, ..opts() };
    let (fast, raw) = both(&mut c, &o);
    assert_same(&fast, &raw);
    assert!(rows(&fast, Module::Scans).is_empty());
}

#[test]
fn filters_apply_to_every_module() {
    let (_db, mut c) = setup("an_filt", FIXTURE);
    // --no-local: the lo row (5 packets of 127.0.0.1) disappears everywhere.
    let o = AnalyzeOptions { no_local: true, ..opts() };
    let (fast, raw) = both(&mut c, &o);
    assert_same(&fast, &raw);
    assert_eq!(fast.packets, 12);
    assert!(rows(&fast, Module::Sources).iter().all(|r| !r.contains("127.0.0.1")));
    assert!(rows(&fast, Module::Interfaces).iter().all(|r| !r.contains(" lo ")));
    // --no-accept: both ACCEPT rows go; 203.0.113.9 keeps only its INVALID packets.
    let o = AnalyzeOptions { no_accept: true, ..opts() };
    let (fast, raw) = both(&mut c, &o);
    assert_same(&fast, &raw);
    assert_eq!(fast.packets, 11);
    assert_eq!(via(&fast, Module::Denied), Via::Summary);
    assert!(rows(&fast, Module::Sources).contains(&"2 203.0.113.9 INVALID:2".to_string()));
    assert!(rows(&fast, Module::Interfaces).iter().all(|r| !r.contains("ACCEPT")));
    assert_eq!(rows(&fast, Module::Scans), ["203.0.113.5 2 6 2"]);
    // --host: only fw2's two rows.
    let o = AnalyzeOptions { host: Some("fw2".into()), ..opts() };
    let rep = query::analyze(&mut c, "logs", &o).unwrap();
    assert_eq!(rep.packets, 2);
    assert_eq!(via(&rep, Module::Denied), Via::Packets);
    assert_eq!(rows(&rep, Module::Denied), ["1 198.51.100.2 53 UDP REJECT", "1 203.0.113.5 - ICMP DROP"]);
    assert_eq!(rows(&rep, Module::Sources), ["1 198.51.100.2 REJECT:1", "1 203.0.113.5 DROP:1"]);
}

#[test]
fn window_edges_since_inclusive_until_exclusive() {
    let (_db, mut c) = setup("an_win", FIXTURE);
    let o = AnalyzeOptions { since: Some(Timestamp(T0 + H)), until: Some(Timestamp(T0 + 3 * H)), ..opts() };
    let rep = query::analyze(&mut c, "logs", &o).unwrap();
    // Rows at 1 h (3 packets) and 2 h (6) are in; the rows exactly at 3 h are out.
    assert_eq!(rep.packets, 9);
    assert_eq!(rep.first, Some(Timestamp(T0 + H)));
    assert_eq!(rep.last, Some(Timestamp(T0 + 2 * H)));
    assert_eq!(rows(&rep, Module::Denied), ["2 203.0.113.9 80 TCP INVALID", "1 203.0.113.5 23 TCP DROP"]);
    let tl = rep.sections.iter().find(|s| s.module == Module::Timeline).unwrap().timeline.clone().unwrap();
    assert_eq!(tl.buckets.len(), 2);
    // One microsecond later the first rows drop out; one earlier the 3 h rows stay out.
    let o = AnalyzeOptions { since: Some(Timestamp(T0 + H + 1)), until: Some(Timestamp(T0 + 3 * H - 1)), ..opts() };
    assert_eq!(query::analyze(&mut c, "logs", &o).unwrap().packets, 6);
    let o = AnalyzeOptions { since: Some(Timestamp(T0 + 3 * H)), until: Some(Timestamp(T0 + 3 * H + 1)), ..opts() };
    assert_eq!(query::analyze(&mut c, "logs", &o).unwrap().packets, 2);
    // A window longer than 48 h is drawn per day.
    let o = AnalyzeOptions { since: Some(Timestamp(T0)), until: Some(Timestamp(T0 + 72 * H)), ..opts() };
    let rep = query::analyze(&mut c, "logs", &o).unwrap();
    let tl = rep.sections.iter().find(|s| s.module == Module::Timeline).unwrap().timeline.clone().unwrap();
    assert_eq!(tl.unit, query::Unit::Day);
    assert_eq!(tl.buckets.len(), 2);
    assert_eq!(tl.buckets[0].1.iter().sum::<u64>(), 15);
    // An empty window says so and is not an error.
    let o = AnalyzeOptions { since: Some(Timestamp(T0 + 100 * H)), ..opts() };
    let mut out = Vec::new();
    report::run(&mut c, "logs", &o, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("No packets match these filters."), "{text}");
    // until <= since is refused with a clear message.
    let o = AnalyzeOptions { since: Some(Timestamp(T0 + H)), until: Some(Timestamp(T0 + H)), ..opts() };
    let e = report::run(&mut c, "logs", &o, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("not after"), "{e}");
}

#[test]
fn ipv6_only_data() {
    let v6: Vec<Spec> = (0..20u16)
        .map(|i| {
            s(i64::from(i) * 1_000_000, "fw6", "DROP", "eth0", "", "2001:db8:bad::1", "2001:db8::1", Proto::Tcp, Some(1000 + i), 1)
        })
        .chain([s(30_000_000, "fw6", "ACCEPT", "eth0", "", "2001:db8:cafe::2", "2001:db8::1", Proto::Icmpv6, None, 4)])
        .collect();
    let (_db, mut c) = setup("an_v6", &v6);
    let (fast, raw) = both(&mut c, &AnalyzeOptions::default());
    assert_same(&fast, &raw);
    assert_eq!(fast.packets, 24);
    assert_eq!(rows(&fast, Module::Scans), ["2001:db8:bad::1 20 20 1"]);
    assert_eq!(rows(&fast, Module::Icmp), ["4 2001:db8:cafe::2 2001:db8::1 ACCEPT"]);
    assert_eq!(rows(&fast, Module::Sources)[0], "20 2001:db8:bad::1 DROP:20");
    let mut out = Vec::new();
    report::run(&mut c, "logs", &AnalyzeOptions { format: Format::Json, ..Default::default() }, &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["modules"]["scans"]["rows"][0]["src"], "2001:db8:bad::1");
}

#[test]
fn json_document_shape() {
    let (_db, mut c) = setup("an_json", FIXTURE);
    let mut out = Vec::new();
    report::run(&mut c, "logs", &AnalyzeOptions { format: Format::Json, ..opts() }, &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).expect("one JSON document");
    assert_eq!(v["table"], "logs");
    assert_eq!(v["packets"], 17);
    assert_eq!(v["first_seen"], "2026-11-01T00:00:00.000000Z");
    let m = v["modules"].as_object().unwrap();
    let names: Vec<&str> = Module::ALL.iter().map(|m| m.name()).collect();
    for n in &names {
        assert!(m.contains_key(*n), "module {n} missing");
        assert!(m[*n]["title"].is_string());
    }
    let d = &m["denied"]["rows"][0];
    assert_eq!(d["count"], 4);
    assert_eq!(d["src"], "203.0.113.5");
    assert_eq!(d["dpt"], 22);
    assert_eq!(d["proto"], "TCP");
    assert_eq!(d["action"], "DROP");
    assert_eq!(d["first_seen"], "2026-11-01T00:00:00.000000Z");
    assert_eq!(d["last_seen"], "2026-11-01T00:00:10.000000Z");
    assert_eq!(m["icmp"]["rows"][0]["dpt"], serde_json::Value::Null);
    assert_eq!(m["sources"]["rows"][2]["actions"][0]["action"], "INVALID");
    assert_eq!(m["timeline"]["unit"], "hour");
    assert_eq!(m["timeline"]["buckets"][0]["count"], 4);
    // CSV and the table render too, with titles.
    let mut out = Vec::new();
    report::run(&mut c, "logs", &AnalyzeOptions { format: Format::Csv, ..opts() }, &mut out).unwrap();
    assert!(String::from_utf8(out).unwrap().contains("denied,4,203.0.113.5,22,TCP,DROP,"));
    let mut out = Vec::new();
    report::run(&mut c, "logs", &opts(), &mut out).unwrap();
    let t = String::from_utf8(out).unwrap();
    println!("{t}"); // visible with --nocapture
    for m in Module::ALL {
        assert!(t.contains(m.title()), "{t}");
    }
}

#[test]
fn empty_table_says_so() {
    let (_db, mut c) = setup("an_empty", &[]);
    for f in [Format::Table, Format::Json, Format::Csv, Format::Html] {
        let mut out = Vec::new();
        report::run(&mut c, "logs", &AnalyzeOptions { format: f, ..Default::default() }, &mut out).unwrap();
        let t = String::from_utf8(out).unwrap();
        match f {
            Format::Table => assert!(t.contains("The table is empty"), "{t}"),
            Format::Json => {
                let v = serde_json::from_str::<serde_json::Value>(&t).unwrap();
                assert_eq!(v["packets"], 0);
                // The timeline keeps its documented shape.
                assert_eq!(v["modules"]["timeline"]["buckets"], serde_json::json!([]), "{t}");
            }
            Format::Csv => assert!(t.starts_with("module,"), "{t}"),
            Format::Html => assert!(t.contains("The table is empty") && t.ends_with("</html>\n"), "{t}"),
        }
    }
    let e = report::run(&mut c, "nosuch", &AnalyzeOptions::default(), &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
}

/// Every summary row (marks aside: they only identify batches).
fn snapshot(c: &mut mysql::Conn) -> Vec<String> {
    let mut v = Vec::new();
    for suf in summary::SUFFIXES.iter().filter(|s| **s != "__sstate") {
        let (cols, order) = match *suf {
            summary::SRC_PORT => ("`src`, `dpt`, `n`", "1, 2"),
            summary::SRC_DST => ("`src`, `dst`, `n`", "1, 2"),
            summary::SOURCE => ("*", "1"),
            "__sinport" | "__shour" => ("*", "1, 2"),
            "__sbkt" => ("*", "1, 2, 3, 4, 5, 6"),
            _ => ("*", "1, 2, 3"),
        };
        let rows: Vec<mysql::Row> = c.query(format!("SELECT {cols} FROM `logs{suf}` ORDER BY {order}")).unwrap();
        for r in rows {
            let vals: Vec<String> = r.unwrap().iter().map(|x| x.as_sql(true)).collect();
            v.push(format!("{suf} {}", vals.join(" ")));
        }
    }
    v
}

/// Like `snapshot` without first-seen times (which expiry leaves for the analyzer to correct).
fn snapshot_counts(c: &mut mysql::Conn) -> Vec<String> {
    let q = [
        "SELECT `src`,`action`,`proto`,`dpt`,`n`,`last_ts`,`nb` FROM `logs__sflow` ORDER BY 1,2,3,4",
        "SELECT `src`,`dpt`,`n` FROM `logs__ssp2` ORDER BY 1,2",
        "SELECT `src`,`dst`,`action`,`n`,`last_ts`,`nb` FROM `logs__sicmp` ORDER BY 1,2,3",
        "SELECT `dpt`,`proto`,`action`,`n`,`last_ts`,`nb` FROM `logs__sport` ORDER BY 1,2,3",
        "SELECT `dpt`,`action`,`n`,`last_ts`,`nb` FROM `logs__sinport` ORDER BY 1,2",
        "SELECT `if_in`,`action`,`proto`,`n`,`last_ts`,`nb` FROM `logs__siface` ORDER BY 1,2,3",
        "SELECT `src`,`n`,`last_ts`,`nb`,`ports`,`hosts`,`pb` FROM `logs__ssrc2` ORDER BY 1",
        "SELECT `src`,`dst`,`n` FROM `logs__ssd2` ORDER BY 1,2",
        "SELECT `hour`,`action`,`n`,`nrows`,`n_ranged` FROM `logs__shour` ORDER BY 1,2",
        "SELECT `hour`,`host`,`if_in`,`action`,`proto`,`dpt`,`n`,`last_ts` FROM `logs__sbkt` ORDER BY 1,2,3,4,5,6",
    ];
    let mut v = Vec::new();
    for sql in q {
        let rows: Vec<mysql::Row> = c.query(sql).unwrap();
        for r in rows {
            v.push(format!("{sql}: {}", r.unwrap().iter().map(|x| x.as_sql(true)).collect::<Vec<_>>().join(" ")));
        }
    }
    v
}

/// The summaries' counts equal the server's GROUP BY (`rebuild_with_sql`, which then replaces
/// them), and the report from them equals the packet table's.
fn counts_match_a_rebuild(c: &mut mysql::Conn, what: &str) {
    let kept = snapshot_counts(c);
    let ranges = hour_ids(c);
    summary::rebuild_with_sql(c, "logs").unwrap();
    assert_eq!(kept, snapshot_counts(c), "{what}");
    // Each hour's id range holds its rows' ids (expiry may leave it wider than they are now).
    for ((h, lo, hi), (h2, lo2, hi2)) in ranges.iter().zip(&hour_ids(c)) {
        assert!(h == h2 && lo <= lo2 && hi >= hi2, "{what}: hour {h} ids {lo}..{hi}, its rows {lo2}..{hi2}");
    }
    let (fast, raw) = both(c, &opts());
    assert_same(&fast, &raw);
}

/// Each (hour, action) of the hourly counts with its id range.
fn hour_ids(c: &mut mysql::Conn) -> Vec<(String, u64, u64)> {
    c.query_map("SELECT CONCAT(`hour`, ' ', `action`), `min_id`, `max_id` FROM `logs__shour` ORDER BY `hour`, `action`", |r| r)
        .unwrap()
}

/// The watermark: packet rows with ids up to it are in the summaries (of both lanes).
fn watermark(c: &mut mysql::Conn) -> u64 {
    c.query_first("SELECT MIN(`w`) FROM `logs__sstate` WHERE `k` IN (2, 3)").unwrap().unwrap()
}

#[test]
fn summaries_stay_exact_through_duplicates_and_clear() {
    let (db, mut c) = setup("an_exact", FIXTURE);
    let mut w = Writer::new(db.conn(), "logs");
    // The summaries run behind the writers: nothing folded yet.
    assert_eq!(watermark(&mut c), 0);
    assert!(summary::backlog(&mut c, "logs").unwrap() >= Some(10));
    // The same batch again: all duplicates, nothing counted.
    let st = w.write(&batch_of(FIXTURE, "a")).unwrap();
    assert_eq!((st.inserted, st.duplicates), (0, 10));
    // Half old, half new rows (new messages at the same times).
    let mut mixed = batch_of(&FIXTURE[..5], "a");
    let fresh = batch_of(&FIXTURE[5..], "b");
    for (r, t) in fresh.iter() {
        mixed.push(&r, t);
    }
    let st = w.write(&mixed).unwrap();
    assert_eq!((st.inserted, st.duplicates), (5, 5));
    // Folded in chunks of 3 rows: 15 rows, 5 chunks (the last one finds the cut).
    let st = summary::fold_with(&mut c, "logs", 3).unwrap();
    assert_eq!(st.rows, 15);
    assert_eq!(summary::fold(&mut c, "logs").unwrap().rows, 0, "a second fold finds nothing");
    assert_eq!(summary::backlog(&mut c, "logs").unwrap(), Some(0));
    let before = snapshot(&mut c);
    summary::rebuild_with_sql(&mut c, "logs").unwrap(); // the server's GROUP BY
    assert_eq!(before, snapshot(&mut c), "folded summaries differ from a rebuild");
    let (fast, raw) = both(&mut c, &opts());
    assert_same(&fast, &raw);
    assert_eq!(fast.packets, 17 + 9); // the new half: 5 + 1 + 1 + 1 + 1 packets
    // Rows written after a fold are in the next report: the analyzer folds first.
    w.write(&batch_of(&FIXTURE[..2], "late")).unwrap();
    let (fast, raw) = both(&mut c, &opts());
    assert_same(&fast, &raw);
    assert_eq!(via(&fast, Module::Denied), Via::Summary);
    assert_eq!(summary::backlog(&mut c, "logs").unwrap(), Some(0));
    // Clear (what `ipta --clear` runs): packet table and summaries emptied together, the
    // summaries still there, then refilled exactly.
    assert_eq!(ipta::store::tables::clear_table(&mut c, "logs").unwrap(), 17);
    assert!(summary::present(&mut c, "logs").unwrap());
    assert_eq!(query::analyze(&mut c, "logs", &opts()).unwrap().packets, 0);
    assert!(snapshot(&mut c).is_empty(), "summaries left after clear");
    w.write(&batch_of(FIXTURE, "c")).unwrap();
    summary::fold(&mut c, "logs").unwrap();
    let before = snapshot(&mut c);
    summary::rebuild_with_sql(&mut c, "logs").unwrap();
    assert_eq!(before, snapshot(&mut c));
    // Retention with rows on both sides of the watermark: "c" is folded, "d" not yet. Expire
    // the first day (8 rows of each) in chunks of 2 rows: the hook subtracts only the folded
    // rows; the next fold never sees the deleted ones.
    w.write(&batch_of(FIXTURE, "d")).unwrap();
    // (An estimate from the ids: a bulk insert may leave gaps.)
    assert!(summary::backlog(&mut c, "logs").unwrap() >= Some(10));
    let st = ipta::store::retention::expire(&mut c, "logs", Timestamp(T0 + 24 * H), 2).unwrap();
    assert_eq!(st.rows, 16);
    assert_eq!(summary::fold_with(&mut c, "logs", 4).unwrap().rows, 2);
    counts_match_a_rebuild(&mut c, "summaries after expire differ from a rebuild");
    assert_eq!(query::analyze(&mut c, "logs", &opts()).unwrap().packets, 4);
}

#[test]
fn table_without_summaries_gets_them_on_first_analyze() {
    let db = util::TestDb::new("an_late");
    let mut c = db.conn();
    strict(&mut c);
    schema::ensure_table(&mut c, "logs").unwrap();
    // Written while no summaries exist: the hook does nothing, the writer works (also for a
    // batch without any port, which skips the port-pair statement).
    let mut w = Writer::new(db.conn(), "logs");
    w.write(&batch_of(&FIXTURE[6..7], "icmp-only")).unwrap();
    w.write(&batch_of(FIXTURE, "a")).unwrap();
    assert!(!summary::present(&mut c, "logs").unwrap());
    let raw = query::analyze(&mut c, "logs", &opts()).unwrap();
    assert_eq!(via(&raw, Module::Denied), Via::Packets);
    report::run(&mut c, "logs", &opts(), &mut Vec::new()).unwrap();
    assert!(summary::present(&mut c, "logs").unwrap());
    let fast = query::analyze(&mut c, "logs", &opts()).unwrap();
    assert_eq!(via(&fast, Module::Denied), Via::Summary);
    assert_same(&fast, &raw);
}

/// `--delete-table` removes the summaries with the table: a new table of the same name must not
/// inherit its predecessor's counts.
#[test]
fn deleting_a_table_removes_its_summaries() {
    let (_db, mut c) = setup("an_drop", FIXTURE);
    assert!(summary::present(&mut c, "logs").unwrap());
    ipta::store::tables::drop_table(&mut c, "logs").unwrap();
    assert!(!summary::present(&mut c, "logs").unwrap());
    let left: Vec<String> = c
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    schema::ensure_table(&mut c, "logs").unwrap();
    assert_eq!(query::analyze(&mut c, "logs", &opts()).unwrap().packets, 0);
}

/// A packet table dropped by hand leaves its summaries behind; a new table of the same name
/// starts without them instead of reporting its predecessor's counts.
#[test]
fn a_table_dropped_by_hand_leaves_no_summaries_to_a_new_one() {
    let (_db, mut c) = setup("an_orphan", FIXTURE);
    assert!(summary::present(&mut c, "logs").unwrap());
    c.query_drop("DROP TABLE `logs`").unwrap();
    assert!(summary::present(&mut c, "logs").unwrap(), "the summaries outlive a DROP TABLE");
    schema::ensure_table(&mut c, "logs").unwrap();
    assert!(!summary::present(&mut c, "logs").unwrap());
    Writer::new(_db.conn(), "logs").write(&batch_of(&FIXTURE[..1], "new")).unwrap();
    let (fast, raw) = both(&mut c, &opts());
    assert_same(&fast, &raw);
    assert_eq!(fast.packets, raw.packets);
    assert_eq!(fast.packets, 1, "only the new table's row");
}

/// Years of logs: the timeline goes per week past 120 days, and its buckets add up to every
/// packet (nothing dropped off the chart). The data has no ICMP and no INVALID packet: empty
/// summaries must not upset the report (they made it panic once).
#[test]
fn long_windows_are_drawn_per_week() {
    const D: i64 = 24 * H;
    let specs = [
        s(0, "fw1", "DROP", "eth0", "", "203.0.113.5", "198.51.100.1", Proto::Tcp, Some(22), 2),
        s(3 * D, "fw1", "DROP", "eth0", "", "203.0.113.5", "198.51.100.1", Proto::Tcp, Some(22), 1),
        s(400 * D, "fw1", "ACCEPT", "eth0", "", "203.0.113.6", "198.51.100.1", Proto::Udp, Some(53), 1),
        s(1500 * D, "fw1", "DROP", "eth0", "", "203.0.113.7", "198.51.100.1", Proto::Tcp, Some(80), 4),
    ];
    let (_db, mut c) = setup("an_weeks", &specs);
    let mut out = Vec::new();
    report::run(&mut c, "logs", &AnalyzeOptions { format: Format::Json, ..Default::default() }, &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let tl = &v["modules"]["timeline"];
    assert_eq!(tl["unit"], "week", "{tl}");
    let buckets = tl["buckets"].as_array().unwrap();
    // Aligned on the newest day: 1,500 days back need 215 full weeks before it.
    assert_eq!(buckets.len(), 1500_usize.div_ceil(7) + 1);
    let total: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 8);
}

/// Writers, a folder and retention at once: the gate makes every fold's cut wait for the
/// writers' open transactions, so no row is skipped or counted twice, whatever the timing.
#[test]
fn folds_beside_concurrent_writers_and_expiry_stay_exact() {
    let (db, mut c) = setup("an_concurrent", &[]);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The writers go through the one write path, as ipta-ingest and the import do: a deadlock
    // with the folder or the expiry is an outage there, and the batch is sent again.
    let writers: Vec<_> = (0..2)
        .map(|k| {
            let settings = db.settings.clone();
            let connector: ipta::store::sink::Connector<'static> = Box::new(move || {
                Ok(Box::new(Writer::new(ipta::store::connect(&settings)?, "logs")) as Box<dyn ipta::store::sink::BatchStore>)
            });
            let mut sink = ipta::store::sink::Sink::waiting(connector, std::time::Duration::from_secs(30));
            std::thread::spawn(move || {
                for i in 0..40 {
                    let w = sink.write(&batch_of(FIXTURE, &format!("w{k}-{i}"))).unwrap();
                    assert!(w.refused.is_empty(), "{:?}", w.refused);
                }
            })
        })
        .collect();
    let folder = {
        let mut fc = db.conn();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut folds = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                summary::fold_with(&mut fc, "logs", 37).unwrap();
                folds += 1;
            }
            folds
        })
    };
    let expirer = {
        let mut ec = db.conn();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut rows = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                // The first hour goes, chunk by chunk, while rows of it keep coming.
                rows += ipta::store::retention::expire(&mut ec, "logs", Timestamp(T0 + H), 7).unwrap().rows;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            rows
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(folder.join().unwrap() > 0);
    let expired = expirer.join().unwrap();
    let left: u64 = c.query_first("SELECT COUNT(*) FROM `logs`").unwrap().unwrap();
    assert_eq!(left + expired, 800, "every row written is either there or expired");
    summary::fold(&mut c, "logs").unwrap();
    counts_match_a_rebuild(&mut c, "folded beside writers and expiry, then rebuilt");
}

/// The race the gate closes, made deterministic: a writer holds an uncommitted row with a
/// lower id while another commits a higher one. A fold must wait for the first (or it would
/// move its watermark past a row it never saw).
#[test]
fn a_fold_waits_for_writers_holding_lower_ids() {
    let (db, mut c) = setup("an_gate", &[]);
    let insert = "INSERT INTO `logs` (`ts`, `action`, `prefix`, `line_hash`, `occ`) VALUES ('2026-01-01 00:00:00', 'DROP', 'IPT: DROP', ?, 0)";
    let mut a = db.conn();
    let mut tx = a.start_transaction(mysql::TxOpts::default()).unwrap();
    assert!(summary::gate(&mut tx, &summary::gate_sql("logs")).unwrap());
    tx.exec_drop(insert, (1u64,)).unwrap(); // the lower id, not committed yet
    let mut b = db.conn();
    b.exec_drop(insert, (2u64,)).unwrap(); // autocommit: the higher id, visible
    let folder = {
        let mut fc = db.conn();
        std::thread::spawn(move || summary::fold(&mut fc, "logs").unwrap().rows)
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!folder.is_finished(), "the fold's cut must wait for the open writer");
    tx.commit().unwrap();
    assert_eq!(folder.join().unwrap(), 2);
    let n: u64 = c.query_first("SELECT SUM(`n`) FROM `logs__shour`").unwrap().unwrap();
    assert_eq!(n, 2);
}

/// A writer that last saw no summaries skips the gate before inserting; when they exist by
/// its commit, it must write the batch again behind the gate, counted once.
#[test]
fn a_writer_notices_summaries_created_between_its_batches() {
    let db = util::TestDb::new("an_appear");
    let mut c = db.conn();
    schema::ensure_table(&mut c, "logs").unwrap();
    let mut w = Writer::new(db.conn(), "logs");
    assert_eq!(w.write(&batch_of(FIXTURE, "before")).unwrap().inserted, 10);
    summary::create(&mut c, "logs").unwrap();
    let st = w.write(&batch_of(FIXTURE, "after")).unwrap();
    assert_eq!((st.inserted, st.duplicates), (10, 0), "the retried batch counts once");
    let n: u64 = c.query_first("SELECT COUNT(*) FROM `logs`").unwrap().unwrap();
    assert_eq!(n, 20);
    let (fast, raw) = both(&mut c, &opts());
    assert_same(&fast, &raw);
    assert_eq!(fast.packets, 2 * 17);
}

/// Host names, actions and interfaces are log text: the report's tables show `?` for each
/// control character, so a forged line cannot drive the terminal of whoever reads the report.
#[test]
fn report_tables_strip_control_characters() {
    let evil = [s(0, "fw\x1b]0;pwned\x07", "DR\x1b[2JOP", "eth\x1b[31m0", "", "203.0.113.5", "198.51.100.1", Proto::Tcp, Some(22), 1)];
    let (_db, mut c) = setup("an_ctrl", &evil);
    let mut out = Vec::new();
    report::run(&mut c, "logs", &AnalyzeOptions { format: Format::Table, ..opts() }, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(!text.bytes().any(|b| b == 0x1b || b == 0x07), "{text:?}");
    assert!(text.contains("DR?[2JOP"), "{text}");
}

/// The import's folder (`summary::Beside`): it folds while the writers still write (without
/// waiting for the end), and its last fold leaves nothing behind; the summaries then equal the
/// server's GROUP BY.
#[test]
fn the_folder_beside_an_import_keeps_up_and_leaves_nothing_behind() {
    let (db, mut c) = setup("an_beside", &[]);
    let folder = summary::Beside::start_with(db.conn(), db.conn(), "logs", 40, 15).unwrap();
    let mut w = Writer::new(db.conn(), "logs");
    for i in 0..5 {
        w.write(&batch_of(FIXTURE, &format!("a{i}"))).unwrap();
    }
    // 50 rows are behind, more than the 40 that start a fold: it folds them, unasked.
    let waited = std::time::Instant::now();
    while summary::backlog(&mut c, "logs").unwrap() != Some(0) {
        if waited.elapsed() > std::time::Duration::from_secs(20) {
            // The thread's own result says why (it ends on an error it does not retry).
            panic!("the folder did not fold during the writes: {:?}", folder.finish());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Fewer than 40 rows behind (the backlog is an estimate from the ids, which a multi-row
    // insert may leave gaps between): left for the last fold.
    let folded_before = watermark(&mut c);
    w.write(&batch_of(FIXTURE, "b")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(watermark(&mut c), folded_before, "10 rows wait below the threshold");
    let st = folder.finish().unwrap();
    assert_eq!(st.rows, 60, "every row folded once");
    assert!(st.chunks >= 5, "chunks of 15 rows: {}", st.chunks);
    assert_eq!(summary::backlog(&mut c, "logs").unwrap(), Some(0));
    let folded = snapshot(&mut c);
    summary::rebuild_with_sql(&mut c, "logs").unwrap();
    assert_eq!(folded, snapshot(&mut c), "folded beside the writer, then rebuilt");
}

/// `ipta --import` into a table that has summaries brings them up to date itself (no fold is
/// left for the report); into one without, it creates none.
#[test]
fn an_import_into_a_table_with_summaries_folds_its_rows() {
    let (db, mut c) = setup("an_import_fold", FIXTURE);
    assert_eq!(watermark(&mut c), 0, "the fixture is not folded yet");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fw.log");
    let lines: String = (0..300u32)
        .map(|n| {
            let src = format!("203.0.113.{}", n % 250 + 1);
            let stamp = format!("Nov  1 10:{:02}:{:02}", n / 60, n % 60);
            util::Syn { stamp: &stamp, src: &src, dst: "198.51.100.1", spt: 1024 + n, id: n, ..Default::default() }.line()
                + "\n"
        })
        .collect();
    std::fs::write(&file, lines).unwrap();
    let o = ipta::import::ImportOptions { tz: Some("UTC".into()), year: Some(2026), ..Default::default() };
    let s = ipta::import::run(&db.settings, std::slice::from_ref(&file), &o, &mut Vec::new()).unwrap();
    assert_eq!(s.added(), 300);
    assert_eq!(summary::backlog(&mut c, "logs").unwrap(), Some(0), "the import left rows to fold");
    let folded = snapshot(&mut c);
    summary::rebuild_with_sql(&mut c, "logs").unwrap();
    assert_eq!(folded, snapshot(&mut c));
    let (fast, raw) = both(&mut c, &opts());
    assert_same(&fast, &raw);
    assert_eq!(fast.packets, 17 + 300);
    // A table without summaries stays without.
    c.query_drop("CREATE TABLE `bare` LIKE `logs`").unwrap();
    let bare = ipta::config::DbSettings { table: "bare".into(), ..db.settings.clone() };
    ipta::import::run(&bare, &[file], &o, &mut Vec::new()).unwrap();
    assert!(!summary::present(&mut c, "bare").unwrap());
}

/// The two lanes keep their own watermarks: one may be behind the other (a fold that failed
/// in one lane, a fold under way), and folds and retention still count every row once.
#[test]
fn lanes_behind_each_other_are_caught_up_and_expired_exactly() {
    let (db, mut c) = setup("an_lanes", FIXTURE);
    summary::fold(&mut c, "logs").unwrap();
    // The per-source lane as if it had never folded: its tables empty, its watermark 0.
    for t in [summary::SOURCE, summary::SRC_PORT, summary::SRC_DST] {
        c.query_drop(format!("DELETE FROM `logs{t}`")).unwrap();
    }
    c.query_drop("UPDATE `logs__sstate` SET `w` = 0 WHERE `k` = 3").unwrap();
    assert_eq!(watermark(&mut c), 0);
    // More rows; retention of the first day: the per-key lane subtracts its folded rows, the
    // per-source lane has none folded, so it subtracts nothing.
    let mut w = Writer::new(db.conn(), "logs");
    w.write(&batch_of(FIXTURE, "b")).unwrap();
    let st = ipta::store::retention::expire(&mut c, "logs", Timestamp(T0 + 24 * H), 3).unwrap();
    assert_eq!(st.rows, 16);
    // Two connections, both lanes at once: the per-source lane folds every row left, the
    // other only the new ones.
    let mut other = db.conn();
    let folded = summary::fold_parallel(&mut c, &mut other, "logs", 3).unwrap();
    assert_eq!(folded.rows, 4, "the per-source lane reads the 4 rows left");
    assert_eq!(summary::backlog(&mut c, "logs").unwrap(), Some(0));
    counts_match_a_rebuild(&mut c, "lanes caught up after expiry differ from a rebuild");
}

/// A set of summaries an older ipta built (one watermark, the per-source tables under their
/// old names) is not taken for this one's: the next report rebuilds it whole.
#[test]
fn an_older_single_lane_set_is_rebuilt_by_the_next_report() {
    let (_db, mut c) = setup("an_legacy", FIXTURE);
    summary::fold(&mut c, "logs").unwrap();
    for (new, old) in [(summary::SOURCE, "__ssrc"), (summary::SRC_PORT, "__ssp"), (summary::SRC_DST, "__ssd")] {
        c.query_drop(format!("RENAME TABLE `logs{new}` TO `logs{old}`")).unwrap();
    }
    c.query_drop("DELETE FROM `logs__sstate` WHERE `k` = 3").unwrap();
    assert!(!summary::present(&mut c, "logs").unwrap(), "an older set counts as present");
    // A folder of this ipta (ipta-ingest's, say) leaves it alone: moving its one watermark
    // would skip rows for the older binaries' per-source tables. Retention deletes without
    // subtracting (the set is rebuilt whole anyway).
    Writer::new(_db.conn(), "logs").write(&batch_of(FIXTURE, "late")).unwrap();
    let row2 = |c: &mut mysql::Conn| -> u64 { c.query_first("SELECT `w` FROM `logs__sstate` WHERE `k` = 2").unwrap().unwrap() };
    let before = row2(&mut c);
    let e = summary::fold(&mut c, "logs").unwrap_err();
    assert!(matches!(e, ipta::store::StoreError::MissingTable(_)), "{e}");
    assert_eq!(row2(&mut c), before, "an older set's watermark moved");
    ipta::store::retention::expire(&mut c, "logs", Timestamp(T0 + H), 5).unwrap();
    report::run(&mut c, "logs", &opts(), &mut Vec::new()).unwrap();
    assert!(summary::present(&mut c, "logs").unwrap());
    let old: Vec<String> = c.query("SHOW TABLES LIKE 'logs\\_\\_ss%'").unwrap();
    assert!(!old.iter().any(|t| ["logs__ssrc", "logs__ssp", "logs__ssd"].contains(&t.as_str())), "{old:?}");
    let kept = snapshot(&mut c);
    summary::rebuild_with_sql(&mut c, "logs").unwrap();
    assert_eq!(kept, snapshot(&mut c));
}

/// A source's distinct port count: a later fold that brings a (source, port) pair already
/// known under another action or protocol adds no port, a new port adds one; expiry that
/// takes some of a pair's packets keeps the port while one is left, and takes it with the last.
#[test]
fn port_counts_follow_pairs_across_flows_folds_and_expiry() {
    const A: &str = "203.0.113.5";
    let first = [s(0, "fw1", "DROP", "eth0", "", A, "198.51.100.1", Proto::Tcp, Some(22), 1)];
    let later = [
        s(H, "fw1", "ACCEPT", "eth0", "", A, "198.51.100.1", Proto::Tcp, Some(22), 1),
        s(H, "fw1", "DROP", "eth0", "", A, "198.51.100.1", Proto::Udp, Some(22), 1),
        s(2 * H, "fw1", "DROP", "eth0", "", A, "198.51.100.1", Proto::Tcp, Some(80), 1),
        s(3 * H, "fw1", "DROP", "eth0", "", A, "198.51.100.1", Proto::Icmp, None, 1),
    ];
    let (db, mut c) = setup("an_pairs", &first);
    let ports = |c: &mut mysql::Conn| -> u64 {
        c.query_first(format!("SELECT `ports` FROM `logs{}` WHERE `src` = INET6_ATON('{A}')", summary::SOURCE))
            .unwrap()
            .unwrap()
    };
    summary::fold(&mut c, "logs").unwrap();
    assert_eq!(ports(&mut c), 1);
    Writer::new(db.conn(), "logs").write(&batch_of(&later, "b")).unwrap();
    summary::fold(&mut c, "logs").unwrap();
    assert_eq!(ports(&mut c), 2, "port 22 again under other flows, port 80 new, ICMP none");
    counts_match_a_rebuild(&mut c, "after the second fold");
    // The first hour goes: one of port 22's three flow rows; the port stays.
    ipta::store::retention::expire(&mut c, "logs", Timestamp(T0 + H), 10).unwrap();
    assert_eq!(ports(&mut c), 2);
    counts_match_a_rebuild(&mut c, "after expiring one flow of a pair");
    // The second hour: port 22's last rows go, and the port with them.
    ipta::store::retention::expire(&mut c, "logs", Timestamp(T0 + 2 * H), 10).unwrap();
    assert_eq!(ports(&mut c), 1);
    counts_match_a_rebuild(&mut c, "after expiring a pair's last flows");
}

/// The first report of a table builds its summaries with both lanes at once when it can have
/// a second connection; the result is the same as the server's GROUP BY.
#[test]
fn a_first_report_with_a_second_connection_builds_both_lanes_at_once() {
    let db = util::TestDb::new("an_second");
    let mut c = db.conn();
    strict(&mut c);
    schema::ensure_table(&mut c, "logs").unwrap();
    Writer::new(db.conn(), "logs").write(&batch_of(FIXTURE, "a")).unwrap();
    let asked = std::sync::atomic::AtomicUsize::new(0);
    let settings = db.settings.clone();
    let second = || {
        asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ipta::store::connect(&settings)
    };
    let rep = report::build_with(&mut c, Some(&second), "logs", &opts(), &Default::default()).unwrap();
    assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 1, "the build asks for one second connection");
    assert_eq!(via(&rep, Module::Denied), Via::Summary);
    assert_eq!(summary::backlog(&mut c, "logs").unwrap(), Some(0));
    let built = snapshot(&mut c);
    summary::rebuild_with_sql(&mut c, "logs").unwrap();
    assert_eq!(built, snapshot(&mut c));
    // A small backlog is folded by the report on its own connection: no second one asked for.
    Writer::new(db.conn(), "logs").write(&batch_of(FIXTURE, "b")).unwrap();
    report::build_with(&mut c, Some(&second), "logs", &opts(), &Default::default()).unwrap();
    assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(summary::backlog(&mut c, "logs").unwrap(), Some(0));
}
