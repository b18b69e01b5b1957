//! The fold: reads the packet rows after a lane's watermark back in chunks, aggregates them per
//! summary key in memory (fixed-size keys, no allocation per row) and adds the counts to the
//! lane's summary tables with multi-row upserts, moving the watermark in the same transaction.
//! The two lanes (see `Lane`) fold one after the other on one connection, or at once on two.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use mysql::prelude::Queryable;
use mysql::Value;

use super::gate::{lock_watermark, read_committed};
use super::*;
use crate::record::Timestamp;
use crate::store::value::{value_bytes as cell_bytes, value_int as cell_int, value_ts};
use crate::store::StoreError;

/// Packet rows read back and aggregated per fold transaction. Larger chunks touch fewer
/// summary rows per packet (measured on the generated workload: 2.0 summary rows per packet
/// for chunks of 100,000 rows, 1.5 for 1,000,000) but hold more in memory (about 100 bytes per
/// distinct key) and keep a retention chunk waiting longer. 500,000 rather than 200,000: fewer
/// summary rows touched per packet on the way from a log file to its first report (measure with
/// `cargo bench --bench summaries`), for about 60 MiB more at the peak of a fold.
pub const FOLD_CHUNK_ROWS: usize = 500_000;

/// What one [`fold`] did.
#[derive(Clone, Copy, Debug, Default)]
pub struct FoldStats {
    /// Packet rows added to the summaries.
    pub rows: u64,
    /// Transactions (chunks) it took.
    pub chunks: u64,
    /// Time spent reading the rows back and aggregating them, and storing the aggregates.
    pub read_time: std::time::Duration,
    pub store_time: std::time::Duration,
}

/// Brings the summaries of `table` up to date: folds in every packet row committed before
/// the call, one lane after the other on `conn`. Several folders may run at once (they take
/// turns per chunk and lane); an interrupted fold loses nothing (each chunk commits with its
/// lane's watermark). Fails with `MissingTable` when the table has no summaries.
pub fn fold(conn: &mut mysql::Conn, table: &str) -> Result<FoldStats, StoreError> {
    fold_with(conn, table, FOLD_CHUNK_ROWS)
}

/// [`fold`] in chunks of `chunk_rows` rows (tests use small ones).
pub fn fold_with(conn: &mut mysql::Conn, table: &str, chunk_rows: usize) -> Result<FoldStats, StoreError> {
    let t = crate::store::validate_identifier(table)?;
    let cut = take_cut(conn, t)?;
    let mut stats = FoldStats::default();
    for lane in Lane::ALL {
        merge(&mut stats, fold_lane(conn, t, lane, cut, chunk_rows.max(1))?);
    }
    Ok(stats)
}

/// [`fold_with`] with the two lanes at once, the per-source one on `other` (a second
/// connection to the same database): the server runs them on two cores, so a large fold takes
/// about the time of its larger lane instead of the sum of both.
pub fn fold_parallel(
    conn: &mut mysql::Conn,
    other: &mut mysql::Conn,
    table: &str,
    chunk_rows: usize,
) -> Result<FoldStats, StoreError> {
    let t = crate::store::validate_identifier(table)?;
    let cut = take_cut(conn, t)?;
    let chunk_rows = chunk_rows.max(1);
    let (keys, sources) = std::thread::scope(|s| {
        let h = s.spawn(move || fold_lane(other, t, Lane::Sources, cut, chunk_rows));
        let keys = fold_lane(conn, t, Lane::Keys, cut, chunk_rows);
        let sources = h.join().unwrap_or_else(|_| Err(StoreError::Sql("the summary fold thread panicked".into())));
        (keys, sources)
    });
    let mut stats = keys?;
    merge(&mut stats, sources?);
    Ok(stats)
}

/// Two lanes' stats as one fold's: rows and chunks of the lane that did more (both fold the
/// same rows unless one was behind), times added.
fn merge(into: &mut FoldStats, s: FoldStats) {
    into.rows = into.rows.max(s.rows);
    into.chunks = into.chunks.max(s.chunks);
    into.read_time += s.read_time;
    into.store_time += s.store_time;
}

/// The cut: with row 1 held exclusively, no writer holds ids it has not committed, so every
/// row up to `MAX(id)` is there to be read.
fn take_cut(conn: &mut mysql::Conn, t: &str) -> Result<u64, StoreError> {
    let mut tx = conn.start_transaction(read_committed()).map_err(sql_err)?;
    let gate: Option<u8> = tx
        .query_first(format!("SELECT `k` FROM `{t}{STATE}` WHERE `k` = 1 FOR UPDATE"))
        .map_err(sql_err)?;
    if gate.is_none() {
        return Err(StoreError::Sql(format!("the summary state of table {t} is damaged (row 1 is missing)")));
    }
    // A set of an older ipta has one watermark (no row 3) and other per-source tables: folding
    // its per-key lane would move the older binaries' watermark past rows their per-source
    // tables never got. Leave it alone: the next report rebuilds it (see `present`).
    let lanes: Option<u64> =
        tx.query_first(format!("SELECT COUNT(*) FROM `{t}{STATE}` WHERE `k` IN (2, 3)")).map_err(sql_err)?;
    if lanes != Some(2) {
        return Err(StoreError::MissingTable(format!(
            "{t}{STATE} row 3 (an older summary set: the next ipta --analyze rebuilds it)"
        )));
    }
    let max: Option<u64> = tx.query_first(format!("SELECT COALESCE(MAX(`id`), 0) FROM `{t}`")).map_err(sql_err)?;
    tx.commit().map_err(sql_err)?;
    Ok(max.unwrap_or(0))
}

/// Folds the rows of one lane from its watermark up to `cut`, chunk by chunk.
fn fold_lane(conn: &mut mysql::Conn, t: &str, lane: Lane, cut: u64, chunk_rows: usize) -> Result<FoldStats, StoreError> {
    // The per-source lane needs fewer columns: less to read back.
    let cols = match lane {
        Lane::Keys => "`id`, `ts`, `action`, `if_in`, `src`, `dst`, `proto`, `dpt`, `repeat`, `host`",
        Lane::Sources => "`id`, `ts`, `src`, `dst`, `dpt`, `repeat`",
    };
    let read_sql = format!("SELECT {cols} FROM `{t}` WHERE `id` > ? AND `id` <= ? ORDER BY `id` LIMIT ?");
    // Whether the hourly counts keep their id ranges (a set of an older ipta does not).
    let ids = lane == Lane::Keys && super::hour_ids(conn, t)?;
    let mut stats = FoldStats::default();
    let mut acc = Fold::default();
    loop {
        let mut tx = conn.start_transaction(read_committed()).map_err(sql_err)?;
        let Some(w) = lock_watermark(&mut tx, t, lane)? else {
            return Err(StoreError::MissingTable(format!("{t}{STATE}")));
        };
        if w >= cut {
            tx.commit().map_err(sql_err)?;
            break;
        }
        acc.clear();
        let started = std::time::Instant::now();
        let mut rows = 0u64;
        let mut last = w;
        {
            let mut res = tx.exec_iter(&read_sql, (w, cut, chunk_rows as u64)).map_err(sql_err)?;
            for row in res.by_ref() {
                let row = row.map_err(sql_err)?;
                last = match lane {
                    Lane::Keys => acc.add_keys(&row)?,
                    Lane::Sources => acc.add_sources(&row)?,
                };
                rows += 1;
            }
        }
        // Fewer rows than asked: nothing else below the cut (gaps are rolled-back ids).
        let new_w = if rows < chunk_rows as u64 { cut } else { last };
        let read = started.elapsed();
        match lane {
            Lane::Keys => acc.store_keys(&mut tx, t, ids)?,
            Lane::Sources => acc.store_sources(&mut tx, t)?,
        }
        tx.exec_drop(format!("UPDATE `{t}{STATE}` SET `w` = ? WHERE `k` = {}", lane.state_row()), (new_w,))
            .map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        stats.rows += rows;
        stats.chunks += 1;
        stats.read_time += read;
        stats.store_time += started.elapsed() - read;
    }
    Ok(stats)
}

/// How many packet rows are waiting to be folded (an estimate from the ids: rolled-back and
/// expired ids count too). None when the table has no summaries.
pub fn backlog(conn: &mut impl Queryable, table: &str) -> Result<Option<u64>, StoreError> {
    let t = crate::store::validate_identifier(table)?;
    // The lane furthest behind (an older set has only row 2: the report rebuilds it).
    match conn.query_first::<(u64, Option<u64>), _>(format!(
        "SELECT MIN(s.`w`), (SELECT MAX(`id`) FROM `{t}`) FROM `{t}{STATE}` s WHERE s.`k` IN (2, 3) HAVING COUNT(*) > 0"
    )) {
        Ok(Some((w, max))) => Ok(Some(max.unwrap_or(0).saturating_sub(w))),
        Ok(None) => Ok(None),
        Err(mysql::Error::MySqlError(me)) if me.code == 1146 => Ok(None),
        Err(e) => Err(sql_err(e)),
    }
}

/// An address as stored: `INET6_ATON` form (4 bytes for IPv4, 16 for IPv6); none is empty.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct AddrKey {
    len: u8,
    b: [u8; 16],
}

impl AddrKey {
    pub fn of(ip: Option<IpAddr>) -> AddrKey {
        let mut k = AddrKey::default();
        match ip {
            Some(IpAddr::V4(a)) => {
                k.len = 4;
                k.b[..4].copy_from_slice(&a.octets());
            }
            Some(IpAddr::V6(a)) => {
                k.len = 16;
                k.b = a.octets();
            }
            None => {}
        }
        k
    }
    /// From the stored bytes (NULL: none). Longer values than an address are cut to 16
    /// bytes: they cannot come from ipta, and the key must stay fixed-size.
    pub fn from_stored(b: Option<&[u8]>) -> AddrKey {
        let mut k = AddrKey::default();
        if let Some(b) = b {
            let n = b.len().min(16);
            k.len = n as u8;
            k.b[..n].copy_from_slice(&b[..n]);
        }
        k
    }
    pub fn bytes(&self) -> &[u8] {
        &self.b[..self.len as usize]
    }
    fn value(&self) -> Value {
        Value::Bytes(self.bytes().to_vec())
    }
}

/// Counts of one key within a fold chunk (and of one group in the report's one-pass window
/// modules): packets, first and last seen.
#[derive(Clone, Copy)]
pub struct Agg {
    pub n: u64,
    pub first: Timestamp,
    pub last: Timestamp,
}

impl Agg {
    /// Adds `n` packets seen at `ts`.
    pub fn add(&mut self, n: u64, ts: Timestamp) {
        self.n += n;
        self.first = self.first.min(ts);
        self.last = self.last.max(ts);
    }
}

/// Adds `n` packets seen at `ts` to key `k`.
pub fn bump<K: std::hash::Hash + Eq>(m: &mut HashMap<K, Agg>, k: K, n: u64, ts: Timestamp) {
    m.entry(k).and_modify(|a| a.add(n, ts)).or_insert(Agg { n, first: ts, last: ts });
}

/// The few distinct texts of a chunk or a report's pass (actions, interfaces, protocols,
/// hosts), each stored once, so that keys are fixed-size and a row costs no allocation.
#[derive(Default)]
pub struct Names {
    ids: HashMap<Box<[u8]>, u32>,
    list: Vec<Box<[u8]>>,
}

impl Names {
    /// The id of `s`, given it if new.
    pub fn id(&mut self, s: &[u8]) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(s.into());
        self.ids.insert(s.into(), i);
        i
    }
    /// The text of an id, as stored.
    pub fn get(&self, i: u32) -> &[u8] {
        &self.list[i as usize]
    }
    /// The text of an id, for display (the columns hold UTF-8).
    pub fn text(&self, i: u32) -> String {
        String::from_utf8_lossy(self.get(i)).into_owned()
    }
    /// The id of `s` if it was seen.
    pub fn find(&self, s: &[u8]) -> Option<u32> {
        self.ids.get(s).copied()
    }
    fn clear(&mut self) {
        self.ids.clear();
        self.list.clear();
    }
}

/// One chunk of packet rows, aggregated per summary key. Texts are name ids (see [`Names`]);
/// a missing port is -1, a missing text or address empty, as in [`rebuild_with_sql`].
#[derive(Default)]
struct Fold {
    names: Names,
    flow: HashMap<(AddrKey, u32, u32, i32), Agg>,
    icmp: HashMap<(AddrKey, AddrKey, u32), Agg>,
    port: HashMap<(i32, u32, u32), Agg>,
    inport: HashMap<(i32, u32), Agg>,
    iface: HashMap<(u32, u32, u32), Agg>,
    src: HashMap<AddrKey, Agg>,
    sp: HashMap<(AddrKey, i32), u64>,
    sd: HashMap<(AddrKey, AddrKey), u64>,
    /// (hour, action): packets, rows, and the lowest and highest id (see [`hour_ids`]).
    hour: HashMap<(i64, u32), (u64, u64, u64, u64)>,
    /// (hour, host, if_in, action, proto, dpt): the time buckets of windowed reports.
    bkt: HashMap<(i64, u32, u32, u32, u32, i32), Agg>,
}

const US_PER_HOUR: i64 = 3_600_000_000;

fn bad(what: &str) -> StoreError {
    StoreError::Sql(format!("fold: unexpected {what} in a packet row"))
}

impl Fold {
    fn clear(&mut self) {
        self.names.clear();
        self.flow.clear();
        self.icmp.clear();
        self.port.clear();
        self.inport.clear();
        self.iface.clear();
        self.src.clear();
        self.sp.clear();
        self.sd.clear();
        self.hour.clear();
        self.bkt.clear();
    }

    /// Adds one row of `id, ts, action, if_in, src, dst, proto, dpt, repeat, host` to the
    /// per-key summaries; returns its id.
    fn add_keys(&mut self, row: &mysql::Row) -> Result<u64, StoreError> {
        let id = cell_int(row.as_ref(0)).ok_or_else(|| bad("id"))? as u64;
        let ts = value_ts(row.as_ref(1)).ok_or_else(|| bad("ts"))?;
        let action = self.names.id(cell_bytes(row.as_ref(2)).ok_or_else(|| bad("action"))?);
        let if_in = cell_bytes(row.as_ref(3));
        let inbound = if_in.is_some_and(|i| !i.is_empty());
        let if_in = self.names.id(if_in.unwrap_or(b""));
        let src = AddrKey::from_stored(cell_bytes(row.as_ref(4)));
        let dst = AddrKey::from_stored(cell_bytes(row.as_ref(5)));
        let proto_text = cell_bytes(row.as_ref(6)).unwrap_or(b"");
        let icmp = proto_text == b"ICMP" || proto_text == b"ICMPv6";
        let proto = self.names.id(proto_text);
        let dpt = cell_int(row.as_ref(7)).map(|p| p as i32).unwrap_or(-1);
        let n = cell_int(row.as_ref(8)).ok_or_else(|| bad("repeat"))? as u64;

        bump(&mut self.flow, (src, action, proto, dpt), n, ts);
        if icmp {
            bump(&mut self.icmp, (src, dst, action), n, ts);
        }
        bump(&mut self.port, (dpt, proto, action), n, ts);
        if inbound {
            bump(&mut self.inport, (dpt, action), n, ts);
        }
        bump(&mut self.iface, (if_in, action, proto), n, ts);
        let hour = ts.micros().div_euclid(US_PER_HOUR);
        let h = self.hour.entry((hour, action)).or_insert((0, 0, u64::MAX, 0));
        *h = (h.0 + n, h.1 + 1, h.2.min(id), h.3.max(id));
        let host = self.names.id(cell_bytes(row.as_ref(9)).unwrap_or(b""));
        bump(&mut self.bkt, (hour, host, if_in, action, proto, dpt), n, ts);
        Ok(id)
    }

    /// Adds one row of `id, ts, src, dst, dpt, repeat` to the per-source summaries; returns
    /// its id.
    fn add_sources(&mut self, row: &mysql::Row) -> Result<u64, StoreError> {
        let id = cell_int(row.as_ref(0)).ok_or_else(|| bad("id"))? as u64;
        let ts = value_ts(row.as_ref(1)).ok_or_else(|| bad("ts"))?;
        let src = AddrKey::from_stored(cell_bytes(row.as_ref(2)));
        let dst_cell = cell_bytes(row.as_ref(3));
        let dst = AddrKey::from_stored(dst_cell);
        let dpt_cell = cell_int(row.as_ref(4)).map(|p| p as i32);
        let n = cell_int(row.as_ref(5)).ok_or_else(|| bad("repeat"))? as u64;
        bump(&mut self.src, src, n, ts);
        if let Some(d) = dpt_cell {
            *self.sp.entry((src, d)).or_insert(0) += n;
        }
        if dst_cell.is_some() {
            *self.sd.entry((src, dst)).or_insert(0) += n;
        }
        Ok(id)
    }

    /// Adds the chunk's per-key counts to the summaries, in the caller's transaction. Each
    /// summary's rows go in key order (the B-tree's order: fewer pages touched).
    fn store_keys(&mut self, tx: &mut mysql::Transaction<'_>, t: &str, hour_ids: bool) -> Result<(), StoreError> {
        let names = &self.names;
        let txt = |i: u32| names.get(i);

        let mut flow: Vec<_> = self.flow.drain().collect();
        flow.sort_unstable_by(|a, b| {
            let (x, y) = (&a.0, &b.0);
            (x.0, txt(x.1), txt(x.2), x.3).cmp(&(y.0, txt(y.1), txt(y.2), y.3))
        });
        upsert_counts(tx, &name(t, FLOW), &["src", "action", "proto", "dpt"], &flow, |k, v| {
            v.push(k.0.value());
            v.push(bytes_value(txt(k.1)));
            v.push(bytes_value(txt(k.2)));
            v.push(Value::Int(i64::from(k.3)));
        })?;
        drop(flow);
        let mut icmp: Vec<_> = self.icmp.drain().collect();
        icmp.sort_unstable_by(|a, b| (a.0 .0, a.0 .1, txt(a.0 .2)).cmp(&(b.0 .0, b.0 .1, txt(b.0 .2))));
        upsert_counts(tx, &name(t, ICMP), &["src", "dst", "action"], &icmp, |k, v| {
            v.push(k.0.value());
            v.push(k.1.value());
            v.push(bytes_value(txt(k.2)));
        })?;
        let mut port: Vec<_> = self.port.drain().collect();
        port.sort_unstable_by(|a, b| (a.0 .0, txt(a.0 .1), txt(a.0 .2)).cmp(&(b.0 .0, txt(b.0 .1), txt(b.0 .2))));
        upsert_counts(tx, &name(t, PORT), &["dpt", "proto", "action"], &port, |k, v| {
            v.push(Value::Int(i64::from(k.0)));
            v.push(bytes_value(txt(k.1)));
            v.push(bytes_value(txt(k.2)));
        })?;
        let mut inport: Vec<_> = self.inport.drain().collect();
        inport.sort_unstable_by(|a, b| (a.0 .0, txt(a.0 .1)).cmp(&(b.0 .0, txt(b.0 .1))));
        upsert_counts(tx, &name(t, INPORT), &["dpt", "action"], &inport, |k, v| {
            v.push(Value::Int(i64::from(k.0)));
            v.push(bytes_value(txt(k.1)));
        })?;
        let mut iface: Vec<_> = self.iface.drain().collect();
        iface.sort_unstable_by(|a, b| {
            (txt(a.0 .0), txt(a.0 .1), txt(a.0 .2)).cmp(&(txt(b.0 .0), txt(b.0 .1), txt(b.0 .2)))
        });
        upsert_counts(tx, &name(t, IFACE), &["if_in", "action", "proto"], &iface, |k, v| {
            v.push(bytes_value(txt(k.0)));
            v.push(bytes_value(txt(k.1)));
            v.push(bytes_value(txt(k.2)));
        })?;

        let mut hours: Vec<_> = self.hour.drain().collect();
        hours.sort_unstable_by(|a, b| (a.0 .0, txt(a.0 .1)).cmp(&(b.0 .0, txt(b.0 .1))));
        // With the id ranges (see `hour_ids`), each hour's rows and range grow with its new
        // rows (a padding row adds no row and repeats its row's range: no change).
        let (cols, marks, grow, per_row) = if hour_ids {
            (
                ", `nrows`, `n_ranged`, `min_id`, `max_id`",
                "(?,?,?,?,?,?,?)",
                ", `nrows` = `nrows` + VALUES(`nrows`), `n_ranged` = `n_ranged` + VALUES(`n_ranged`), \
                 `min_id` = LEAST(`min_id`, VALUES(`min_id`)), `max_id` = GREATEST(`max_id`, VALUES(`max_id`))",
                7,
            )
        } else {
            ("", "(?,?,?)", "", 3)
        };
        exec_fixed(
            tx,
            &format!("INSERT INTO `{t}{HOUR}` (`hour`, `action`, `n`{cols}) VALUES "),
            marks,
            &format!(" ON DUPLICATE KEY UPDATE `n` = `n` + VALUES(`n`){grow}"),
            per_row,
            hours.len(),
            |i, pad, params| {
                let ((h, a), (n, rows, lo, hi)) = hours[i];
                let (n, rows) = if pad { (0, 0) } else { (n, rows) };
                params.push(ts_value(Timestamp(h * US_PER_HOUR)));
                params.push(bytes_value(txt(a)));
                params.push(Value::UInt(n));
                if hour_ids {
                    params.extend([Value::UInt(rows), Value::UInt(n), Value::UInt(lo), Value::UInt(hi)]);
                }
            },
        )?;

        let mut bkt: Vec<_> = self.bkt.drain().collect();
        bkt.sort_unstable_by(|a, b| {
            let (x, y) = (&a.0, &b.0);
            (x.0, txt(x.1), txt(x.2), txt(x.3), txt(x.4), x.5).cmp(&(y.0, txt(y.1), txt(y.2), txt(y.3), txt(y.4), y.5))
        });
        exec_fixed(
            tx,
            &format!(
                "INSERT INTO `{t}{BUCKET}` (`hour`, `host`, `if_in`, `action`, `proto`, `dpt`, `n`, `first_ts`, `last_ts`) VALUES "
            ),
            "(?,?,?,?,?,?,?,?,?)",
            " ON DUPLICATE KEY UPDATE `n` = `n` + VALUES(`n`), `first_ts` = LEAST(`first_ts`, VALUES(`first_ts`)), \
             `last_ts` = GREATEST(`last_ts`, VALUES(`last_ts`))",
            9,
            bkt.len(),
            |i, pad, params| {
                let ((h, host, if_in, a, p, d), g) = bkt[i];
                params.push(ts_value(Timestamp(h * US_PER_HOUR)));
                params.push(bytes_value(txt(host)));
                params.push(bytes_value(txt(if_in)));
                params.push(bytes_value(txt(a)));
                params.push(bytes_value(txt(p)));
                params.push(Value::Int(i64::from(d)));
                params.push(Value::UInt(if pad { 0 } else { g.n }));
                params.push(ts_value(g.first));
                params.push(ts_value(g.last));
            },
        )?;
        Ok(())
    }

    /// Adds the chunk's per-source counts (pairs first: the sources' distinct counts grow by
    /// the pairs new in this fold), in the caller's transaction, in key order.
    fn store_sources(&mut self, tx: &mut mysql::Transaction<'_>, t: &str) -> Result<(), StoreError> {
        let mark = next_mark();
        let mut sp: Vec<((AddrKey, i32), u64)> = self.sp.drain().collect();
        sp.sort_unstable();
        let sp: Vec<((AddrKey, Value), u64)> =
            sp.into_iter().map(|((s, p), n)| ((s, Value::Int(i64::from(p))), n)).collect();
        let new_ports = new_pairs(tx, &name(t, SRC_PORT), "dpt", &sp, mark)?;
        drop(sp);
        let mut sd: Vec<((AddrKey, AddrKey), u64)> = self.sd.drain().collect();
        sd.sort_unstable();
        let sd: Vec<((AddrKey, Value), u64)> = sd.into_iter().map(|((s, d), n)| ((s, d.value()), n)).collect();
        let new_hosts = new_pairs(tx, &name(t, SRC_DST), "dst", &sd, mark)?;
        drop(sd);
        let mut src: Vec<_> = self.src.drain().collect();
        src.sort_unstable_by_key(|r| r.0);
        upsert_sources(tx, &name(t, SOURCE), &src, &new_ports, &new_hosts)?;
        drop(src);
        Ok(())
    }
}

/// Bit length of a count: the bucket the analyzer walks (0 only for 0).
pub fn bucket(n: u64) -> u8 {
    (64 - n.leading_zeros()) as u8
}

/// Statement sizes in rows. Every statement has one of these sizes (the last one of a batch
/// is padded with neutral rows: the previous row's key again with a count of 0, which changes
/// nothing), so the connection's statement cache holds two texts per summary and no batch
/// prepares a statement anew. Measured: preparing a new multi-row text per batch cost about as
/// much as executing it.
const SIZES: [usize; 2] = [64, 512];

/// Runs `INSERT ...` in fixed-size statements. `row(i, out)` pushes row i's values; rows past
/// the end are asked for as `row(last, out)` with `pad` true (the caller pushes a neutral copy).
fn exec_fixed(
    tx: &mut mysql::Transaction<'_>,
    head: &str,
    placeholder: &str,
    tail: &str,
    per_row: usize,
    n: usize,
    mut row: impl FnMut(usize, bool, &mut Vec<Value>),
) -> Result<(), StoreError> {
    let mut start = 0;
    while start < n {
        let left = n - start;
        let size = SIZES.iter().copied().find(|&s| s >= left).unwrap_or(SIZES[SIZES.len() - 1]);
        let real = left.min(size);
        let mut sql = String::with_capacity(head.len() + size * (placeholder.len() + 1) + tail.len());
        sql.push_str(head);
        let mut params = Vec::with_capacity(size * per_row);
        for i in 0..size {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(placeholder);
            if i < real {
                row(start + i, false, &mut params);
            } else {
                row(start + real - 1, true, &mut params);
            }
        }
        sql.push_str(tail);
        tx.exec_drop(sql, params).map_err(sql_err)?;
        start += real;
    }
    Ok(())
}

/// Multi-row `INSERT ... ON DUPLICATE KEY UPDATE` adding counts (rows in the order given: the
/// caller sorts them by key, which keeps the B-tree writes local).
fn upsert_counts<K>(
    tx: &mut mysql::Transaction<'_>,
    table: &str,
    key_cols: &[&str],
    rows: &[(K, Agg)],
    key_values: impl Fn(&K, &mut Vec<Value>),
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let ncols = key_cols.len() + 4;
    let cols: Vec<String> = key_cols.iter().map(|c| format!("`{c}`")).collect();
    let head = format!(
        "INSERT INTO `{table}` ({}, `n`, `first_ts`, `last_ts`, `nb`) VALUES ",
        cols.join(", ")
    );
    let tail = " ON DUPLICATE KEY UPDATE `nb` = CHAR_LENGTH(BIN(`n` + VALUES(`n`))), \
                `n` = `n` + VALUES(`n`), `first_ts` = LEAST(`first_ts`, VALUES(`first_ts`)), \
                `last_ts` = GREATEST(`last_ts`, VALUES(`last_ts`))";
    let ph = format!("({})", vec!["?"; ncols].join(","));
    exec_fixed(tx, &head, &ph, tail, ncols, rows.len(), |i, pad, params| {
        let (k, a) = &rows[i];
        let n = if pad { 0 } else { a.n };
        key_values(k, params);
        params.push(Value::UInt(n));
        params.push(ts_value(a.first));
        params.push(ts_value(a.last));
        params.push(Value::UInt(u64::from(bucket(n))));
    })
}

/// Adds the chunk's (src, x) pair counts (sorted by the caller); returns the number of new
/// pairs per source: exactly the rows that carry this fold's mark, set only on insertion.
fn new_pairs(
    tx: &mut mysql::Transaction<'_>,
    table: &str,
    col: &str,
    pairs: &[((AddrKey, Value), u64)],
    mark: u64,
) -> Result<HashMap<Vec<u8>, u64>, StoreError> {
    let mut out = HashMap::new();
    if pairs.is_empty() {
        return Ok(out);
    }
    let head = format!("INSERT INTO `{table}` (`src`, `{col}`, `n`, `mark`) VALUES ");
    let tail = " ON DUPLICATE KEY UPDATE `n` = `n` + VALUES(`n`)";
    // A padding row repeats the previous pair with a count of 0.
    exec_fixed(tx, &head, "(?,?,?,?)", tail, 4, pairs.len(), |i, pad, params| {
        let ((s, x), n) = &pairs[i];
        params.push(s.value());
        params.push(x.clone());
        params.push(Value::UInt(if pad { 0 } else { *n }));
        params.push(Value::UInt(mark));
    })?;
    let rows: Vec<(Vec<u8>, u64)> = tx
        .exec(
            format!("SELECT `src`, COUNT(*) FROM `{table}` WHERE `mark` = ? GROUP BY `src`"),
            (mark,),
        )
        .map_err(sql_err)?;
    out.extend(rows);
    Ok(out)
}

/// A mark no other fold uses: process id, a counter and the clock, hashed.
pub(super) fn next_mark() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let c = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&u64::from(std::process::id()).to_le_bytes());
    h.update(&c.to_le_bytes());
    h.update(&now.to_le_bytes());
    // 0 is the mark of rows filled by `create`; never hand it out.
    h.digest().max(1)
}

fn upsert_sources(
    tx: &mut mysql::Transaction<'_>,
    table: &str,
    rows: &[(AddrKey, Agg)],
    new_ports: &HashMap<Vec<u8>, u64>,
    new_hosts: &HashMap<Vec<u8>, u64>,
) -> Result<(), StoreError> {
    // MariaDB and MySQL evaluate ON DUPLICATE KEY UPDATE assignments left to right, so the
    // buckets are computed from old + added before the counts themselves are updated.
    let tail = " ON DUPLICATE KEY UPDATE `nb` = CHAR_LENGTH(BIN(`n` + VALUES(`n`))), \
                `n` = `n` + VALUES(`n`), `first_ts` = LEAST(`first_ts`, VALUES(`first_ts`)), \
                `last_ts` = GREATEST(`last_ts`, VALUES(`last_ts`)), \
                `pb` = CHAR_LENGTH(BIN(`ports` + VALUES(`ports`))), \
                `ports` = `ports` + VALUES(`ports`), `hosts` = `hosts` + VALUES(`hosts`)";
    let head = format!(
        "INSERT INTO `{table}` (`src`, `n`, `first_ts`, `last_ts`, `nb`, `ports`, `hosts`, `pb`) VALUES "
    );
    exec_fixed(tx, &head, "(?,?,?,?,?,?,?,?)", tail, 8, rows.len(), |i, pad, params| {
        let (k, a) = &rows[i];
        let (n, ports, hosts) = if pad {
            (0, 0, 0)
        } else {
            (
                a.n,
                new_ports.get(k.bytes()).copied().unwrap_or(0),
                new_hosts.get(k.bytes()).copied().unwrap_or(0),
            )
        };
        params.push(k.value());
        params.push(Value::UInt(n));
        params.push(ts_value(a.first));
        params.push(ts_value(a.last));
        params.push(Value::UInt(u64::from(bucket(n))));
        params.push(Value::UInt(ports));
        params.push(Value::UInt(hosts));
        params.push(Value::UInt(u64::from(bucket(ports))));
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_bit_lengths() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 1);
        assert_eq!(bucket(2), 2);
        assert_eq!(bucket(3), 2);
        assert_eq!(bucket(4), 3);
        assert_eq!(bucket(u64::MAX), 64);
    }

    #[test]
    fn addresses_use_inet6_aton_form() {
        let v4 = AddrKey::of(Some("192.0.2.1".parse().unwrap()));
        assert_eq!(v4.bytes(), &[192, 0, 2, 1]);
        let v6 = AddrKey::of(Some("2001:db8::1".parse().unwrap()));
        assert_eq!(v6.bytes().len(), 16);
        assert!(AddrKey::of(None).bytes().is_empty());
    }
}
