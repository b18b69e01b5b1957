//! `ipta --analyze` speed versus the original's design (shared/reference/seed-style.sql), and
//! the writer's rate with and without the summary tables. Prints figures, asserts nothing.
//!
//! Rows follow shared/genlog.py's distributions (Zipf-like sources over a 50,000-address pool
//! plus 5% fresh ones, DROP/ACCEPT/INVALID/CBLK 60/20/15/5, 12% IPv6, 3% lo, TCP/UDP/ICMP
//! 70/22/8, the same port mix), spread evenly over 30 days, built as Records directly. Each
//! batch goes through the real writer into `logs` (summaries maintained) and into
//! `logs_plain` (no summary tables: the writer's rate without them), and the same packets into
//! seed_logs (the original's table). At each checkpoint the default `ipta --analyze` (all
//! modules, no window) and the six seed queries are timed on the same server in the same run.
//!
//! The summaries run behind the writers (`store::summary`): at each checkpoint the rows not
//! yet folded are folded (timed and printed), then the analyzer is timed.
//!
//! Run: `cargo bench --bench analyze` (needs the server scripts/provision.sh sets up;
//! `IPTA_TEST_SOCKET` overrides the socket). Options after `--`: `--rows 1000000,10000000`
//! (checkpoints of one load spread over 30 days; run the bench once per size for a 30-day
//! spread at each size), `--batch 5000`, `--keep` (leave the database `ipta_bench_analyze`),
//! `--no-plain` (skip the writer comparison), `--concurrent-fold` (write the rows into
//! `logs_plain` first, then into `logs` while a folder folds every 2 s beside the writer, as
//! ipta-ingest's does, instead of alternating batches and folding only at the checkpoints), `--fold-chunk N` (rows per fold transaction at the checkpoints).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

mod common;

use ipta::record::{Packet, Proto, Record, RecordBatch, TcpFlags, Timestamp};
use ipta::report::{self, AnalyzeOptions};
use ipta::store::{schema, summary, writer::Writer};
use mysql::prelude::Queryable;
use mysql::Value;

const DB: &str = "ipta_bench_analyze";

/// splitmix64: small, fast, deterministic.
#[derive(Clone)]
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u32 = items.iter().map(|i| i.1).sum();
        let mut x = self.below(u64::from(total)) as u32;
        for (v, w) in items {
            if x < *w {
                return *v;
            }
            x -= w;
        }
        items[items.len() - 1].0
    }
}

const FIRST_OCTETS: [u8; 11] = [45, 61, 89, 103, 112, 117, 185, 193, 194, 212, 222];

#[derive(Clone)]
struct Gen {
    rng: Rng,
    pool: Vec<Ipv4Addr>,
    t0: i64,
    step: i64,
    i: u64,
}

impl Gen {
    fn new(total: u64) -> Gen {
        let mut pr = Rng(12345);
        let pool = (0..50_000)
            .map(|_| {
                Ipv4Addr::new(
                    FIRST_OCTETS[pr.below(11) as usize],
                    pr.below(256) as u8,
                    pr.below(256) as u8,
                    1 + pr.below(254) as u8,
                )
            })
            .collect();
        // 30 days, evenly: 2026-10-01 .. 2026-10-31.
        let t0 = 1_790_812_800_000_000i64;
        Gen { rng: Rng(1), pool, t0, step: (30 * 86_400_000_000i64) / total as i64, i: 0 }
    }

    fn ip4(&mut self) -> Ipv4Addr {
        let r = &mut self.rng;
        if r.f() < 0.05 {
            return Ipv4Addr::new(FIRST_OCTETS[r.below(11) as usize], r.below(256) as u8, r.below(256) as u8, 1 + r.below(254) as u8);
        }
        let k = (50_000f64.powf(r.f()) as usize).saturating_sub(1).min(49_999);
        self.pool[k]
    }

    fn ip6(&mut self) -> Ipv6Addr {
        let r = &mut self.rng;
        Ipv6Addr::new(0x2001, 0xdb8, r.below(65536) as u16, r.below(65536) as u16, 0, 0, 0, 1 + r.below(65535) as u16)
    }

    /// Fills `b` with the next `n` records; `seed` receives the original's columns.
    fn fill(&mut self, b: &mut RecordBatch, n: usize, seed: &mut Vec<Value>) {
        b.clear();
        seed.clear();
        let host4 = IpAddr::V4(Ipv4Addr::new(188, 126, 93, 160));
        let host6 = IpAddr::V6("2001:db8:1::160".parse().unwrap());
        for _ in 0..n {
            let i = self.i;
            self.i += 1;
            let action = self.rng.weighted(&[("DROP", 60), ("ACCEPT", 20), ("INVALID", 15), ("CBLK", 5)]);
            let inbound = self.rng.f() < 0.9;
            let (mut if_in, mut if_out) = if inbound { ("eth0", "") } else { ("", "eth0") };
            if self.rng.f() < 0.03 {
                (if_in, if_out) = ("lo", "");
            }
            let v6 = self.rng.f() < 0.12;
            let (mut src, mut dst) = if v6 { (IpAddr::V6(self.ip6()), host6) } else { (IpAddr::V4(self.ip4()), host4) };
            if !inbound {
                std::mem::swap(&mut src, &mut dst);
            }
            if if_in == "lo" {
                let l: IpAddr = if v6 { Ipv6Addr::LOCALHOST.into() } else { Ipv4Addr::LOCALHOST.into() };
                (src, dst) = (l, l);
            }
            let proto = self.rng.weighted(&[(Proto::Tcp, 70), (Proto::Udp, 22), (Proto::Icmp, 8)]);
            let proto = if proto == Proto::Icmp && v6 { Proto::Icmpv6 } else { proto };
            let rand_port = 1 + self.rng.below(65535) as u16;
            let dpt = match proto {
                Proto::Tcp => Some(self.rng.weighted(&[
                    (22u16, 10), (23, 12), (25, 5), (80, 15), (443, 10), (445, 8), (1433, 5), (3306, 4),
                    (3389, 8), (5900, 3), (8080, 5), (rand_port, 15),
                ])),
                Proto::Udp => Some([53u16, 123, 137, 161, 1900, 5060, 5353, rand_port][self.rng.below(8) as usize]),
                _ => None,
            };
            let spt = dpt.map(|_| 1024 + self.rng.below(64512) as u16);
            let msg = format!(
                "IPT: {action} IN={if_in} OUT={if_out} SRC={src} DST={dst} LEN=60 PROTO={proto} SPT={spt:?} DPT={dpt:?} ID={i}"
            );
            let prefix = format!("IPT: {action} ");
            let r = Record {
                ts: Timestamp(self.t0 + i as i64 * self.step),
                host: Some("fw1"),
                action,
                prefix: &prefix,
                if_in: Some(if_in),
                if_out: Some(if_out),
                mac: (inbound && if_in != "lo").then_some("00:16:3e:11:22:33:52:54:00:12:34:56:08:00"),
                pkt: Packet {
                    src: Some(src),
                    dst: Some(dst),
                    len: Some(60),
                    tos: Some(0),
                    prec: Some(0),
                    ttl: Some(52),
                    ip_id: Some((i % 65536) as u32),
                    df: Some(true),
                    proto: Some(proto),
                    spt,
                    dpt,
                    window: (proto == Proto::Tcp).then_some(29200),
                    tcp_flags: (proto == Proto::Tcp).then_some(TcpFlags(TcpFlags::SYN)),
                    urgp: (proto == Proto::Tcp).then_some(0),
                    udp_len: (proto == Proto::Udp).then_some(40),
                    icmp_type: matches!(proto, Proto::Icmp | Proto::Icmpv6).then_some(8),
                    icmp_code: matches!(proto, Proto::Icmp | Proto::Icmpv6).then_some(0),
                    ..Default::default()
                },
                repeat: 1,
                message: msg.as_bytes(),
                ..Default::default()
            };
            b.push(&r, 0);
            // seed_logs: ts, if_in, if_out, src_ip, src_prt, dst_ip, dst_prt, proto, action, mac
            let v4 = |a: IpAddr| match a {
                IpAddr::V4(x) => Value::UInt(u64::from(u32::from(x))),
                IpAddr::V6(_) => Value::NULL, // the original stored IPv6 as NULL
            };
            seed.push(ipta::store::value::ts_value(r.ts));
            seed.push(Value::Bytes(if_in.as_bytes().to_vec()));
            seed.push(Value::Bytes(if_out.as_bytes().to_vec()));
            seed.push(v4(src));
            seed.push(spt.map_or(Value::NULL, |p| Value::UInt(u64::from(p))));
            seed.push(v4(dst));
            seed.push(dpt.map_or(Value::NULL, |p| Value::UInt(u64::from(p))));
            seed.push(Value::Bytes(proto.to_string().into_bytes()));
            seed.push(Value::Bytes(action.as_bytes().to_vec()));
            seed.push(r.mac.map_or(Value::NULL, |m| Value::Bytes(m.as_bytes().to_vec())));
        }
    }
}

const SEED_TABLE: &str = "CREATE TABLE IF NOT EXISTS seed_logs (
  id INT PRIMARY KEY NOT NULL AUTO_INCREMENT,
  ts TIMESTAMP NULL,
  if_in VARCHAR(10), if_out VARCHAR(10),
  src_ip INT UNSIGNED, src_prt INT UNSIGNED,
  dst_ip INT UNSIGNED, dst_prt INT UNSIGNED,
  proto VARCHAR(10), action VARCHAR(10),
  mac VARCHAR(41)
)";

/// The six queries of seed-style.sql, verbatim.
const SEED_QUERIES: [&str; 6] = [
    "SELECT COUNT(*) n, INET_NTOA(src_ip), dst_prt, proto, action FROM seed_logs
 WHERE action <> 'ACCEPT' AND if_in <> 'lo' AND if_out <> 'lo'
 GROUP BY src_ip, dst_prt, action, proto ORDER BY n DESC LIMIT 10",
    "SELECT COUNT(*) n, INET_NTOA(src_ip), INET_NTOA(dst_ip), action FROM seed_logs
 WHERE proto = 'ICMP' AND if_in <> 'lo' AND if_out <> 'lo'
 GROUP BY src_ip, dst_ip, action ORDER BY n DESC LIMIT 10",
    "SELECT COUNT(*) n, dst_prt, proto, action FROM seed_logs
 WHERE action <> 'ACCEPT' AND if_in <> 'lo' AND if_out <> 'lo'
 GROUP BY dst_prt, action, proto ORDER BY n DESC LIMIT 10",
    "SELECT COUNT(*) n, INET_NTOA(src_ip), dst_prt, proto FROM seed_logs
 WHERE action = 'INVALID' AND if_in <> 'lo' AND if_out <> 'lo'
 GROUP BY src_ip, dst_prt, proto ORDER BY n DESC LIMIT 10",
    "SELECT COUNT(*) n, if_in, action, proto FROM seed_logs
 WHERE action <> 'ACCEPT' GROUP BY if_in, action, proto ORDER BY n DESC LIMIT 10",
    "SELECT COUNT(*) n, dst_prt, action FROM seed_logs
 WHERE if_in <> 'lo' AND if_in <> '' AND action <> 'ACCEPT'
 GROUP BY dst_prt, action ORDER BY n DESC LIMIT 10",
];

fn seed_insert(c: &mut mysql::Conn, vals: &[Value]) {
    for chunk in vals.chunks(10 * 1000) {
        let rows = chunk.len() / 10;
        let sql = format!(
            "INSERT INTO seed_logs (ts, if_in, if_out, src_ip, src_prt, dst_ip, dst_prt, proto, action, mac) VALUES {}",
            vec!["(?,?,?,?,?,?,?,?,?,?)"; rows].join(",")
        );
        c.exec_drop(sql, chunk.to_vec()).expect("seed insert");
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn checkpoint(c: &mut mysql::Conn, rows: u64) {
    println!("\n== {rows} rows ==");
    let mut times = Vec::new();
    for run in 0..3 {
        let t = Instant::now();
        let mut out = Vec::new();
        report::run(c, "logs", &AnalyzeOptions::default(), &mut out).expect("analyze");
        times.push(t.elapsed());
        if run == 0 {
            let text = String::from_utf8_lossy(&out);
            println!("{}", text.lines().next().unwrap_or(""));
        }
    }
    let best = times.iter().min().copied().unwrap_or_default();
    println!(
        "ipta --analyze (all 9 modules, no window): runs {:.3} s, {:.3} s, {:.3} s",
        secs(times[0]),
        secs(times[1]),
        secs(times[2])
    );
    let t = Instant::now();
    for q in SEED_QUERIES {
        if let Err(e) = c.query::<mysql::Row, _>(q) {
            println!("seed query failed: {e}");
        }
    }
    let seed = t.elapsed();
    println!("seed-style.sql six queries:                  {:.3} s", secs(seed));
    println!(
        "speed-up (seed / ipta, first run): {:.1}x; (seed / ipta, best run): {:.1}x",
        secs(seed) / secs(times[0]),
        secs(seed) / secs(best)
    );
    // The same report with a window reads the packet table (index on ts): one day, one week.
    for (label, since) in [("last 24h", "24h"), ("last 7d", "7d")] {
        let last: Option<mysql::Value> = c.query_first("SELECT MAX(ts) FROM logs").unwrap();
        let now = ipta::store::value::value_ts(last.as_ref()).unwrap_or_default();
        let o = AnalyzeOptions {
            since: Some(report::parse_time_arg(since, now).unwrap()),
            ..Default::default()
        };
        let t = Instant::now();
        match report::run(c, "logs", &o, &mut Vec::new()) {
            Ok(()) => println!("ipta --analyze --since {since} ({label}, packet table): {:.3} s", secs(t.elapsed())),
            Err(e) => println!("ipta --analyze --since {since}: failed: {e}"),
        }
    }
}

/// Writes the rows `span.0..span.1` of `g` into `w` in batches; returns the time spent in the
/// writer. `after` gets each batch's rows for the original's table.
fn write_span(
    g: &mut Gen,
    w: &mut Writer,
    b: &mut RecordBatch,
    seed: &mut Vec<Value>,
    span: (u64, u64),
    batch: usize,
    mut after: impl FnMut(&[Value]),
) -> Duration {
    let (mut k, end) = span;
    let mut spent = Duration::ZERO;
    while k < end {
        let n = batch.min((end - k) as usize);
        g.fill(b, n, seed);
        let t = Instant::now();
        w.write(b).expect("write");
        spent += t.elapsed();
        after(seed);
        k += n as u64;
    }
    spent
}

fn main() {
    let checkpoints: Vec<u64> = common::arg("--rows")
        .unwrap_or_else(|| "1000000,10000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let batch: usize = common::arg("--batch").and_then(|s| s.parse().ok()).unwrap_or(5000);
    let keep = std::env::args().any(|a| a == "--keep");
    let no_plain = std::env::args().any(|a| a == "--no-plain");
    let concurrent = std::env::args().any(|a| a == "--concurrent-fold");
    let chunk: usize = common::arg("--fold-chunk").and_then(|s| s.parse().ok()).unwrap_or(summary::FOLD_CHUNK_ROWS);
    let total = *checkpoints.iter().max().expect("--rows");

    let mut admin = ipta::store::connect(&common::settings("")).expect("connect with the test account");
    admin.query_drop(format!("DROP DATABASE IF EXISTS `{DB}`")).unwrap();
    admin.query_drop(format!("CREATE DATABASE `{DB}` CHARACTER SET utf8mb4")).unwrap();
    let mut c = ipta::store::connect(&common::settings(DB)).unwrap();
    schema::ensure_table(&mut c, "logs").unwrap();
    summary::create(&mut c, "logs").unwrap();
    schema::ensure_table(&mut c, "logs_plain").unwrap();
    c.query_drop(SEED_TABLE).unwrap();
    let mut w_sum = Writer::new(ipta::store::connect(&common::settings(DB)).unwrap(), "logs");
    let mut w_plain = Writer::new(ipta::store::connect(&common::settings(DB)).unwrap(), "logs_plain");
    let bp: Option<u64> = c.query_first("SELECT @@innodb_buffer_pool_size").unwrap();
    println!(
        "analyze bench: {total} rows over 30 days, batches of {batch}; MariaDB buffer pool {} MiB",
        bp.unwrap_or(0) >> 20
    );

    let mut g = Gen::new(total);
    let mut b = RecordBatch::with_capacity(batch);
    let mut seed = Vec::new();
    let (mut t_sum, mut t_plain, mut t_seed, mut t_fold) = (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut seg_sum, mut seg_plain) = (Duration::ZERO, Duration::ZERO);
    let mut done = 0u64;
    let mut seg_start = 0u64;
    for &cp in &checkpoints {
        if concurrent {
            // The plain table first, no folder anywhere; then the same rows (a second generator
            // from the same seed) into `logs` while a folder on its own connection folds every
            // 2 s: the writer's rate with the whole cost of the summaries running beside it.
            let mut g2 = g.clone();
            let p = write_span(&mut g, &mut w_plain, &mut b, &mut seed, (done, cp), batch, |seed| {
                let t = Instant::now();
                seed_insert(&mut c, seed);
                t_seed += t.elapsed();
            });
            t_plain += p;
            seg_plain += p;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let folder = {
                let stop = stop.clone();
                let mut fc = ipta::store::connect(&common::settings(DB)).unwrap();
                std::thread::spawn(move || {
                    let mut rows = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        rows += summary::fold(&mut fc, "logs").expect("fold").rows;
                        std::thread::sleep(Duration::from_secs(2));
                    }
                    rows
                })
            };
            let a = write_span(&mut g2, &mut w_sum, &mut b, &mut seed, (done, cp), batch, |_| {});
            t_sum += a;
            seg_sum += a;
            done = cp;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let during = folder.join().expect("folder thread");
            let seg = (done - seg_start) as f64;
            println!(
                "\nwriter, rows {seg_start}..{done}: into logs_plain (no summaries, no folder) {:.0} rows/s; \
                 into logs with a folder beside it {:.0} rows/s ({:.0}% kept; the folder folded {during} rows meanwhile)",
                seg / secs(seg_plain),
                seg / secs(seg_sum),
                100.0 * secs(seg_plain) / secs(seg_sum),
            );
        }
        while !concurrent && done < cp {
            let n = batch.min((cp - done) as usize);
            g.fill(&mut b, n, &mut seed);
            // Alternate the order so neither table always writes into a warmer cache.
            let (a, p) = if no_plain {
                let t = Instant::now();
                w_sum.write(&b).expect("write logs");
                (t.elapsed(), Duration::ZERO)
            } else if (done / batch as u64) % 2 == 0 {
                let t = Instant::now();
                w_sum.write(&b).expect("write logs");
                let a = t.elapsed();
                let t = Instant::now();
                w_plain.write(&b).expect("write logs_plain");
                (a, t.elapsed())
            } else {
                let t = Instant::now();
                w_plain.write(&b).expect("write logs_plain");
                let p = t.elapsed();
                let t = Instant::now();
                w_sum.write(&b).expect("write logs");
                (t.elapsed(), p)
            };
            t_sum += a;
            t_plain += p;
            seg_sum += a;
            seg_plain += p;
            let t = Instant::now();
            seed_insert(&mut c, &seed);
            t_seed += t.elapsed();
            done += n as u64;
        }
        let seg = (done - seg_start) as f64;
        if no_plain {
            println!("\nwriter, rows {seg_start}..{done}: {:.0} rows/s into the table with summaries", seg / secs(seg_sum));
        } else if !concurrent {
            println!(
                "\nwriter, rows {seg_start}..{done}: into the table with summaries {:.0} rows/s, without {:.0} rows/s ({:.0}% kept); seed_logs inserts so far {:.1} s",
                seg / secs(seg_sum),
                seg / secs(seg_plain),
                100.0 * secs(seg_plain) / secs(seg_sum),
                secs(t_seed)
            );
        }
        let rss_before = common::status_kib("self", "VmRSS:");
        let t = Instant::now();
        let st = summary::fold_with(&mut c, "logs", chunk).expect("fold");
        let f = t.elapsed();
        println!(
            "bench process memory: {} MiB resident before the fold, peak so far {} MiB",
            rss_before >> 10,
            common::status_kib("self", "VmHWM:") >> 10
        );
        t_fold += f;
        println!(
            "fold of the remaining {} rows: {:.1} s ({:.0} rows/s, {} chunks of up to {chunk} rows; reading back and aggregating {:.1} s, storing {:.1} s)",
            st.rows,
            secs(f),
            st.rows as f64 / secs(f).max(1e-9),
            st.chunks,
            secs(st.read_time),
            secs(st.store_time)
        );
        seg_start = done;
        seg_sum = Duration::ZERO;
        seg_plain = Duration::ZERO;
        checkpoint(&mut c, done);
    }
    if !no_plain {
        println!(
            "\nwriter overall: into the table with summaries {:.0} rows/s, without {:.0} rows/s ({:.0}% kept); \
             folds after the writes {:.1} s: writes + folds = {:.0} rows/s ({:.0}% of the writer without summaries)",
            done as f64 / secs(t_sum),
            done as f64 / secs(t_plain),
            100.0 * secs(t_plain) / secs(t_sum),
            secs(t_fold),
            done as f64 / (secs(t_sum) + secs(t_fold)),
            100.0 * secs(t_plain) / (secs(t_sum) + secs(t_fold))
        );
    }
    let sizes: Vec<(String, u64, u64)> = c
        .query(format!(
            "SELECT TABLE_NAME, TABLE_ROWS, DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = '{DB}' ORDER BY TABLE_NAME"
        ))
        .unwrap();
    println!("\ntable sizes (InnoDB estimates):");
    for (t, r, b) in sizes {
        println!("  {t:<20} ~{r:>10} rows {:>8.1} MiB", b as f64 / 1048576.0);
    }
    if !keep {
        admin.query_drop(format!("DROP DATABASE IF EXISTS `{DB}`")).unwrap();
    }
}

