//! Writer rate versus `LOAD DATA LOCAL INFILE` of the same rows into the same table layout.
//! Prints figures, asserts nothing. Run: `cargo bench --bench store` (needs the server that
//! scripts/provision.sh sets up; `IPTA_TEST_SOCKET` overrides the socket). Options after `--`:
//! `--rows N` (default 200000), `--batch N` (default 5000), `--only load|insert|ld` (one of the three, for profiling).

use std::time::Instant;

use ipta::record::{Packet, Proto, Record, RecordBatch, TcpFlags, Timestamp};
use ipta::store::loaddata::load_data;
use ipta::store::writer::{WriteMethod, Writer};
mod common;

use mysql::prelude::Queryable;

/// Batches of records shaped like the corpus: mostly TCP/UDP drops from many sources, some ICMP
/// and IPv6, realistic text lengths.
fn batches(rows: usize, per_batch: usize) -> Vec<RecordBatch> {
    let t0 = 1_762_320_908_000_000i64;
    let mut out = Vec::new();
    let mut b = RecordBatch::with_capacity(per_batch);
    for i in 0..rows {
        let src = if i % 10 == 7 {
            format!("2001:db8:{:x}::{:x}", i % 4096, i % 65536)
        } else {
            format!(
                "{}.{}.{}.{}",
                1 + i % 223,
                (i / 7) % 256,
                (i / 13) % 256,
                i % 251
            )
        };
        let (proto, dpt) = match i % 5 {
            0..=2 => (Proto::Tcp, Some(((i * 31) % 65535) as u16)),
            3 => (Proto::Udp, Some(((i * 17) % 65535) as u16)),
            _ => (Proto::Icmp, None),
        };
        let action = ["DROP", "REJECT", "ACCEPT", "INVALID"][i % 4];
        let msg = format!(
            "IPT: {action} IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC={src} DST=192.0.2.1 LEN=60 TTL=51 PROTO={proto} DPT={dpt:?} n={i}"
        );
        let prefix = format!("IPT: {action} ");
        let r = Record {
            ts: Timestamp(t0 + (i as i64) * 3_000),
            host: Some("fw1.example.net"),
            action,
            prefix: &prefix,
            if_in: Some("eth0"),
            if_out: Some(""),
            mac: Some("52:54:00:12:34:56:52:54:00:65:43:21:08:00"),
            pkt: Packet {
                src: Some(src.parse().unwrap()),
                dst: Some("192.0.2.1".parse().unwrap()),
                len: Some(60),
                tos: Some(0),
                prec: Some(0),
                ttl: Some(51),
                ip_id: Some((i % 65536) as u32),
                df: Some(true),
                proto: Some(proto),
                spt: dpt.map(|_| 40000 + (i % 20000) as u16),
                dpt,
                window: (proto == Proto::Tcp).then_some(64240),
                tcp_flags: (proto == Proto::Tcp).then_some(TcpFlags(TcpFlags::SYN)),
                urgp: (proto == Proto::Tcp).then_some(0),
                udp_len: (proto == Proto::Udp).then_some(40),
                icmp_type: (proto == Proto::Icmp).then_some(8),
                icmp_code: (proto == Proto::Icmp).then_some(0),
                ..Default::default()
            },
            repeat: 1,
            message: msg.as_bytes(),
            ..Default::default()
        };
        b.push(&r, 0);
        if b.len() == per_batch {
            out.push(std::mem::replace(
                &mut b,
                RecordBatch::with_capacity(per_batch),
            ));
        }
    }
    if !b.is_empty() {
        out.push(b);
    }
    out
}

fn main() {
    let rows = common::num("--rows", 200_000);
    let per_batch = common::num("--batch", 5000);
    let socket =
        std::env::var("IPTA_TEST_SOCKET").unwrap_or_else(|_| "/run/mysqld/mysqld.sock".into());
    let db = format!("ipta_bench_store_{}", std::process::id());
    let opts = |db: Option<&str>| {
        mysql::OptsBuilder::new()
            .user(Some(common::credentials().0))
            .pass(Some(common::credentials().1))
            .socket(Some(socket.clone()))
            .db_name(db.map(str::to_string))
    };
    let mut admin =
        mysql::Conn::new(opts(None)).expect("connect with the test account");
    admin
        .query_drop(format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4"))
        .unwrap();
    let connect = || mysql::Conn::new(opts(Some(&db))).unwrap();

    let t = Instant::now();
    let bs = batches(rows, per_batch);
    println!(
        "store bench: {rows} rows in batches of {per_batch} (built in {:.2?})",
        t.elapsed()
    );

    let mut c = connect();
    let only = std::env::args()
        .skip_while(|a| a != "--only")
        .nth(1)
        .unwrap_or_default();
    let run = |what: &str| only.is_empty() || only == what;
    let rate = |label: &str, n: u64, t: Instant| {
        let el = t.elapsed().as_secs_f64();
        println!(
            "{label:<34}: {n:>8} rows in {el:6.2} s = {:>8.0} rows/s",
            n as f64 / el
        );
    };

    // The three ways take turns batch by batch, each into its own table, so that a machine whose
    // load changes during the run (other builds) affects them alike.
    let mut writers: Vec<(String, Option<Writer>, f64, u64)> = Vec::new();
    for (name, method) in [
        ("load", Some(WriteMethod::Auto)),
        ("insert", Some(WriteMethod::Insert)),
        ("ld", None),
    ] {
        if !run(name) {
            continue;
        }
        let table = format!("t_{name}");
        c.query_drop(ipta::store::schema::create_table_sql(&table))
            .unwrap();
        let w = method.map(|m| Writer::new(connect(), &table).with_method(m));
        writers.push((table, w, 0.0, 0));
    }
    let k = writers.len();
    for (i, b) in bs.iter().enumerate() {
        // Who goes first rotates too.
        writers.rotate_left(if i == 0 { 0 } else { 1 % k.max(1) });
        for (table, w, secs, n) in writers.iter_mut() {
            let t = Instant::now();
            *n += match w {
                Some(w) => w.write(b).unwrap().inserted,
                None => load_data(&mut c, table, b).unwrap().inserted,
            };
            *secs += t.elapsed().as_secs_f64();
        }
    }
    let label = |w: &Option<Writer>| match w {
        Some(w) if w.method() == WriteMethod::Insert => "Writer, prepared INSERT".to_string(),
        Some(_) => "Writer, LOAD DATA (method Auto)".to_string(),
        None => "load_data (LOAD DATA LOCAL INFILE)".to_string(),
    };
    writers.sort_by_key(|w| w.0.clone());
    let ld_rate = writers
        .iter()
        .find(|w| w.1.is_none())
        .map(|w| w.3 as f64 / w.2);
    for (_, w, secs, n) in &writers {
        let r = *n as f64 / secs;
        let vs = ld_rate
            .map(|l| format!("  ({:.2}x load_data)", r / l))
            .unwrap_or_default();
        println!(
            "{:<42}: {n:>8} new rows in {secs:6.2} s = {r:>8.0} rows/s{vs}",
            label(w)
        );
    }
    // The same batches again: every row is a duplicate.
    for (_, w, _, _) in writers.iter_mut() {
        let Some(w) = w else { continue };
        let t = Instant::now();
        let mut dup = 0;
        for b in &bs {
            dup += w.write(b).unwrap().duplicates;
        }
        let label = if w.method() == WriteMethod::Insert {
            "Writer, prepared INSERT"
        } else {
            "Writer, LOAD DATA"
        };
        rate(&format!("{label} (all duplicates)"), dup, t);
    }

    admin.query_drop(format!("DROP DATABASE `{db}`")).unwrap();
}

