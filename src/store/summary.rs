//! Summary tables that keep `ipta --analyze` fast as the packet table grows.
//!
//! Each packet table `T` may have a family of summary tables `T__s*` (see [`SUFFIXES`]): per
//! report key, the packet count `n` (SUM of `repeat`), first and last seen, and `nb`, the bit
//! length of `n`. `nb` is what makes top-N cheap without paying for an index on `n` (which
//! would be rewritten on every increment): it changes only when `n` crosses a power of two, and
//! the analyzer walks `nb` from the top down, reading one small bucket at a time (see
//! `report::query`). Per source, `ssrc` also keeps the number of distinct destination ports
//! and hosts; they stay exact because the pair tables `ssp`/`ssd` are filled with
//! `INSERT IGNORE` and a per-batch `mark`, so the new pairs of a batch are exactly the rows
//! carrying its mark.
//!
//! Exactness contract (the hooks below keep it; every one runs in the caller's transaction or
//! takes its own table locks):
//! - [`on_insert`]: the writer calls it after inserting a batch, in the same transaction, with
//!   `inserted[i]` true for the rows really added. Duplicates count nothing.
//! - `--clear` (`store::tables::clear_table`) drops them with [`on_drop`], truncates the packet
//!   table and rebuilds them with [`create`] (TRUNCATE cannot share a transaction).
//! - [`on_delete_range`]: retention (`--expire`, `store::retention`) calls it in each chunk's
//!   transaction before deleting the rows `from <= ts < to`: their counts are subtracted.
//! - [`on_drop`]: call when dropping the packet table (`--delete-table`).
//! - [`create`]: creates the tables and fills them from the packet table's current rows, under
//!   a table lock. The first `ipta --analyze` of a table without them calls it. When the summary
//!   tables do not exist, [`on_insert`] does nothing and the analyzer reads the packet table
//!   directly (slow, but correct): [`present`] tells which case holds.
//!
//! Summary tables carry the comment `ipta-summary` (not the packet tables' marker), so
//! `--list-tables` does not list them.
//!
//! Cost: each batch upserts its distinct keys per summary (about 1.3 summary rows per packet on
//! the generated workload), which leaves the writer 13-29% of its rate (benches/analyze.rs).
//! For a very large import, [`on_drop`] before and [`create`] after (one aggregate pass per
//! summary) is cheaper overall; live ingest rates are far below either figure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use mysql::prelude::Queryable;
use mysql::Value;

use crate::record::{Proto, Record, RecordBatch, Timestamp};
use crate::store::row::{fit, proto_name, MAX_ACTION, MAX_IF};
use crate::store::StoreError;

/// Suffixes of the summary tables of one packet table.
pub const SUFFIXES: &[&str] = &[
    "__sflow", "__sicmp", "__sport", "__sinport", "__siface", "__ssrc", "__ssp", "__ssd", "__shour",
];

/// The comment every summary table carries.
pub const SUMMARY_COMMENT: &str = "ipta-summary";

/// Longest packet-table name that still leaves room for the summary suffixes.
pub const MAX_TABLE_LEN: usize = 64 - 9;

const COUNTS: &str = "`n` BIGINT UNSIGNED NOT NULL, `first_ts` DATETIME(6) NOT NULL, \
     `last_ts` DATETIME(6) NOT NULL, `nb` TINYINT UNSIGNED NOT NULL";

/// The name of one summary table (`table` validated by the caller).
pub fn name(table: &str, suffix: &str) -> String {
    format!("{table}{suffix}")
}

fn ddl(table: &str) -> Vec<String> {
    let t = table;
    let tail = format!(
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='{SUMMARY_COMMENT}'"
    );
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}__sflow` (`src` VARBINARY(16) NOT NULL, \
             `action` VARCHAR(64) NOT NULL, `proto` VARCHAR(8) NOT NULL, `dpt` INT NOT NULL, {COUNTS}, \
             PRIMARY KEY (`src`, `action`, `proto`, `dpt`), KEY `k_nb` (`nb`), KEY `k_anb` (`action`, `nb`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}__sicmp` (`src` VARBINARY(16) NOT NULL, \
             `dst` VARBINARY(16) NOT NULL, `action` VARCHAR(64) NOT NULL, {COUNTS}, \
             PRIMARY KEY (`src`, `dst`, `action`), KEY `k_nb` (`nb`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}__sport` (`dpt` INT NOT NULL, `proto` VARCHAR(8) NOT NULL, \
             `action` VARCHAR(64) NOT NULL, {COUNTS}, \
             PRIMARY KEY (`dpt`, `proto`, `action`), KEY `k_nb` (`nb`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}__sinport` (`dpt` INT NOT NULL, \
             `action` VARCHAR(64) NOT NULL, {COUNTS}, \
             PRIMARY KEY (`dpt`, `action`), KEY `k_nb` (`nb`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}__siface` (`if_in` VARCHAR(32) NOT NULL, \
             `action` VARCHAR(64) NOT NULL, `proto` VARCHAR(8) NOT NULL, {COUNTS}, \
             PRIMARY KEY (`if_in`, `action`, `proto`), KEY `k_nb` (`nb`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}__ssrc` (`src` VARBINARY(16) NOT NULL, {COUNTS}, \
             `ports` INT UNSIGNED NOT NULL, `hosts` INT UNSIGNED NOT NULL, `pb` TINYINT UNSIGNED NOT NULL, \
             PRIMARY KEY (`src`), KEY `k_nb` (`nb`), KEY `k_pb` (`pb`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}__ssp` (`src` VARBINARY(16) NOT NULL, `dpt` INT NOT NULL, \
             `n` BIGINT UNSIGNED NOT NULL, `mark` BIGINT UNSIGNED NOT NULL, PRIMARY KEY (`src`, `dpt`), KEY `k_mark` (`mark`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}__ssd` (`src` VARBINARY(16) NOT NULL, `dst` VARBINARY(16) NOT NULL, \
             `n` BIGINT UNSIGNED NOT NULL, `mark` BIGINT UNSIGNED NOT NULL, PRIMARY KEY (`src`, `dst`), KEY `k_mark` (`mark`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}__shour` (`hour` DATETIME NOT NULL, \
             `action` VARCHAR(64) NOT NULL, `n` BIGINT UNSIGNED NOT NULL, \
             PRIMARY KEY (`hour`, `action`)){tail}"
        ),
    ]
}

fn sql_err(e: mysql::Error) -> StoreError {
    match &e {
        mysql::Error::MySqlError(me) if me.code == 1146 => StoreError::MissingTable(me.message.clone()),
        mysql::Error::IoError(_) | mysql::Error::CodecError(_) => StoreError::ConnectionLost(e.to_string()),
        _ => StoreError::Sql(e.to_string()),
    }
}

fn check_len(table: &str) -> Result<(), StoreError> {
    crate::store::validate_identifier(table)?;
    if table.len() > MAX_TABLE_LEN {
        return Err(StoreError::BadIdentifier {
            name: table.to_string(),
            why: "longer than 55 characters, leaving no room for the summary tables",
        });
    }
    Ok(())
}

/// Whether all summary tables of `table` exist (so they are maintained by every writer).
pub fn present(conn: &mut impl Queryable, table: &str) -> Result<bool, StoreError> {
    let n: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME LIKE ? AND TABLE_COMMENT = ?",
            (format!("{}\\_\\_s%", table.replace('_', "\\_")), SUMMARY_COMMENT),
        )
        .map_err(sql_err)?;
    Ok(n.unwrap_or(0) as usize >= SUFFIXES.len())
}

/// Creates the summary tables of `table` and fills them from its current rows. The packet
/// table is locked for writing meanwhile so no batch slips between the count and the
/// creation. Idempotent: existing summaries are rebuilt.
pub fn create(conn: &mut mysql::Conn, table: &str) -> Result<(), StoreError> {
    check_len(table)?;
    for s in ddl(table) {
        conn.query_drop(s).map_err(sql_err)?;
    }
    let mut locks = format!("LOCK TABLES `{table}` WRITE");
    for s in SUFFIXES {
        locks.push_str(&format!(", `{table}{s}` WRITE"));
    }
    let r = conn.query_drop(locks).map_err(sql_err).and_then(|_| rebuild_locked(conn, table));
    let u = conn.query_drop("UNLOCK TABLES").map_err(sql_err);
    if r.is_err() {
        // Half-filled summaries would be read as the truth: remove them, the analyzer then
        // reads the packet table.
        let _ = on_drop(conn, table);
    }
    r.and(u)
}

/// Drops the summary tables of `table` (for `--delete-table`).
pub fn on_drop(conn: &mut impl Queryable, table: &str) -> Result<(), StoreError> {
    crate::store::validate_identifier(table)?;
    for s in SUFFIXES {
        conn.query_drop(format!("DROP TABLE IF EXISTS `{table}{s}`")).map_err(sql_err)?;
    }
    Ok(())
}

/// Called by `store::retention` in each chunk's transaction BEFORE it deletes the rows with
/// `from <= ts < to` (the range is locked, so the reads here see exactly those rows). Subtracts
/// them from every summary: counts go down, groups and pairs left with nothing are deleted, and
/// the distinct port and host counts of a source drop by the pairs that vanished.
///
/// Retention deletes from the oldest row up, so a group that keeps rows keeps its last-seen
/// time, while its first-seen time may now lie before the oldest row left: the analyzer
/// notices that (first seen older than the table's oldest row) and looks the true value up for
/// the rows it shows. Nothing else is approximate.
pub fn on_delete_range(
    tx: &mut mysql::Transaction<'_>,
    table: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<(), StoreError> {
    let t = crate::store::validate_identifier(table)?;
    let range = "`ts` >= ? AND `ts` < ?";
    let p = || vec![ts_value(from), ts_value(to)];
    // Subtracting through INSERT ... SELECT ... ON DUPLICATE KEY UPDATE: every key exists (the
    // summaries are exact), assignments run left to right, so `nb` sees the old `n`.
    let sub = "ON DUPLICATE KEY UPDATE `nb` = IF(`n` = VALUES(`n`), 0, CHAR_LENGTH(BIN(`n` - VALUES(`n`)))), \
               `n` = `n` - VALUES(`n`)";
    let agg = "SUM(`repeat`), MIN(`ts`), MAX(`ts`), 1";
    match tx.exec_drop(
        format!(
            "INSERT INTO `{t}__shour` (`hour`,`action`,`n`) SELECT DATE_FORMAT(`ts`, '%Y-%m-%d %H:00:00'), \
             `action`, SUM(`repeat`) FROM `{t}` WHERE {range} GROUP BY 1, 2 \
             ON DUPLICATE KEY UPDATE `n` = `n` - VALUES(`n`)"
        ),
        p(),
    ) {
        Ok(()) => {}
        Err(mysql::Error::MySqlError(me)) if me.code == 1146 => return Ok(()), // no summaries
        Err(e) => return Err(sql_err(e)),
    }
    let stmts = [
        format!(
            "INSERT INTO `{t}__sflow` (`src`,`action`,`proto`,`dpt`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`src`,''), `action`, COALESCE(`proto`,''), COALESCE(`dpt`,-1), {agg} \
             FROM `{t}` WHERE {range} GROUP BY 1, 2, 3, 4 {sub}"
        ),
        format!(
            "INSERT INTO `{t}__sicmp` (`src`,`dst`,`action`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`src`,''), COALESCE(`dst`,''), `action`, {agg} \
             FROM `{t}` WHERE {range} AND `proto` IN ('ICMP','ICMPv6') GROUP BY 1, 2, 3 {sub}"
        ),
        format!(
            "INSERT INTO `{t}__sport` (`dpt`,`proto`,`action`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`dpt`,-1), COALESCE(`proto`,''), `action`, {agg} FROM `{t}` WHERE {range} \
             GROUP BY 1, 2, 3 {sub}"
        ),
        format!(
            "INSERT INTO `{t}__sinport` (`dpt`,`action`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`dpt`,-1), `action`, {agg} FROM `{t}` WHERE {range} AND `if_in` <> '' \
             GROUP BY 1, 2 {sub}"
        ),
        format!(
            "INSERT INTO `{t}__siface` (`if_in`,`action`,`proto`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`if_in`,''), `action`, COALESCE(`proto`,''), {agg} FROM `{t}` WHERE {range} \
             GROUP BY 1, 2, 3 {sub}"
        ),
        format!(
            "INSERT INTO `{t}__ssrc` (`src`,`n`,`first_ts`,`last_ts`,`nb`,`ports`,`hosts`,`pb`) \
             SELECT COALESCE(`src`,''), {agg}, 0, 0, 0 FROM `{t}` WHERE {range} GROUP BY 1 {sub}"
        ),
    ];
    for q in stmts {
        tx.exec_drop(q, p()).map_err(sql_err)?;
    }
    // Pairs: those whose count drops to zero get this chunk's mark, then leave, and their
    // sources lose one distinct port (host) each.
    let mark = next_mark();
    for (suffix, col, cond, counter, bucket_col) in [
        ("__ssp", "dpt", "`dpt` IS NOT NULL", "ports", Some("pb")),
        ("__ssd", "dst", "`dst` IS NOT NULL", "hosts", None),
    ] {
        tx.exec_drop(
            format!(
                "INSERT INTO `{t}{suffix}` (`src`,`{col}`,`n`,`mark`) \
                 SELECT COALESCE(`src`,''), `{col}`, SUM(`repeat`), 0 FROM `{t}` WHERE {range} AND {cond} \
                 GROUP BY 1, 2 ON DUPLICATE KEY UPDATE `mark` = IF(`n` = VALUES(`n`), ?, `mark`), \
                 `n` = `n` - VALUES(`n`)"
            ),
            vec![ts_value(from), ts_value(to), Value::UInt(mark)],
        )
        .map_err(sql_err)?;
        let b = match bucket_col {
            Some(bc) => format!(
                "`{bc}` = IF(`{counter}` = VALUES(`{counter}`), 0, CHAR_LENGTH(BIN(`{counter}` - VALUES(`{counter}`)))), "
            ),
            None => String::new(),
        };
        tx.exec_drop(
            format!(
                "INSERT INTO `{t}__ssrc` (`src`,`n`,`first_ts`,`last_ts`,`nb`,`ports`,`hosts`,`pb`) \
                 SELECT `src`, 0, '1970-01-01', '1970-01-01', 0, {ports}, {hosts}, 0 FROM `{t}{suffix}` \
                 WHERE `mark` = ? GROUP BY `src` \
                 ON DUPLICATE KEY UPDATE {b}`{counter}` = `{counter}` - VALUES(`{counter}`)",
                ports = if counter == "ports" { "COUNT(*)" } else { "0" },
                hosts = if counter == "hosts" { "COUNT(*)" } else { "0" },
            ),
            (mark,),
        )
        .map_err(sql_err)?;
        tx.exec_drop(format!("DELETE FROM `{t}{suffix}` WHERE `mark` = ?"), (mark,))
            .map_err(sql_err)?;
    }
    for s in ["__sflow", "__sicmp", "__sport", "__sinport", "__siface", "__ssrc"] {
        tx.query_drop(format!("DELETE FROM `{t}{s}` WHERE `nb` = 0")).map_err(sql_err)?;
    }
    tx.query_drop(format!("DELETE FROM `{t}__shour` WHERE `n` = 0")).map_err(sql_err)?;
    Ok(())
}

fn rebuild_locked(conn: &mut mysql::Conn, table: &str) -> Result<(), StoreError> {
    for s in SUFFIXES {
        conn.query_drop(format!("DELETE FROM `{table}{s}`")).map_err(sql_err)?;
    }
    fill_from_packets(conn, table)
}

/// Fills empty summary tables from the packet table with one aggregate per summary. The
/// expressions mirror [`on_insert`]'s keys: NULL text becomes '', a missing port -1.
fn fill_from_packets(conn: &mut impl Queryable, table: &str) -> Result<(), StoreError> {
    let t = table;
    let cnt = "SUM(`repeat`), MIN(`ts`), MAX(`ts`), CHAR_LENGTH(BIN(SUM(`repeat`)))";
    let stmts = [
        format!(
            "INSERT INTO `{t}__sflow` (`src`,`action`,`proto`,`dpt`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`src`,''), `action`, COALESCE(`proto`,''), COALESCE(`dpt`,-1), {cnt} \
             FROM `{t}` GROUP BY 1, 2, 3, 4"
        ),
        format!(
            "INSERT INTO `{t}__sicmp` (`src`,`dst`,`action`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`src`,''), COALESCE(`dst`,''), `action`, {cnt} \
             FROM `{t}` WHERE `proto` IN ('ICMP','ICMPv6') GROUP BY 1, 2, 3"
        ),
        format!(
            "INSERT INTO `{t}__sport` (`dpt`,`proto`,`action`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`dpt`,-1), COALESCE(`proto`,''), `action`, {cnt} FROM `{t}` GROUP BY 1, 2, 3"
        ),
        format!(
            "INSERT INTO `{t}__sinport` (`dpt`,`action`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`dpt`,-1), `action`, {cnt} FROM `{t}` WHERE `if_in` <> '' GROUP BY 1, 2"
        ),
        format!(
            "INSERT INTO `{t}__siface` (`if_in`,`action`,`proto`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`if_in`,''), `action`, COALESCE(`proto`,''), {cnt} FROM `{t}` GROUP BY 1, 2, 3"
        ),
        format!(
            "INSERT INTO `{t}__ssp` (`src`,`dpt`,`n`,`mark`) \
             SELECT COALESCE(`src`,''), `dpt`, SUM(`repeat`), 0 FROM `{t}` WHERE `dpt` IS NOT NULL GROUP BY 1, 2"
        ),
        format!(
            "INSERT INTO `{t}__ssd` (`src`,`dst`,`n`,`mark`) \
             SELECT COALESCE(`src`,''), `dst`, SUM(`repeat`), 0 FROM `{t}` WHERE `dst` IS NOT NULL GROUP BY 1, 2"
        ),
        format!(
            "INSERT INTO `{t}__ssrc` (`src`,`n`,`first_ts`,`last_ts`,`nb`,`ports`,`hosts`,`pb`) \
             SELECT COALESCE(`src`,''), {cnt}, 0, 0, 0 FROM `{t}` GROUP BY 1"
        ),
        format!(
            "UPDATE `{t}__ssrc` JOIN (SELECT `src`, COUNT(*) c FROM `{t}__ssp` GROUP BY `src`) p \
             ON p.`src` = `{t}__ssrc`.`src` SET `{t}__ssrc`.`ports` = p.c, `{t}__ssrc`.`pb` = CHAR_LENGTH(BIN(p.c))"
        ),
        format!(
            "UPDATE `{t}__ssrc` JOIN (SELECT `src`, COUNT(*) c FROM `{t}__ssd` GROUP BY `src`) d \
             ON d.`src` = `{t}__ssrc`.`src` SET `{t}__ssrc`.`hosts` = d.c"
        ),
        format!(
            "INSERT INTO `{t}__shour` (`hour`,`action`,`n`) \
             SELECT DATE_FORMAT(`ts`, '%Y-%m-%d %H:00:00'), `action`, SUM(`repeat`) FROM `{t}` GROUP BY 1, 2"
        ),
    ];
    for s in stmts {
        conn.query_drop(s).map_err(sql_err)?;
    }
    Ok(())
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
    pub fn bytes(&self) -> &[u8] {
        &self.b[..self.len as usize]
    }
    fn value(&self) -> Value {
        Value::Bytes(self.bytes().to_vec())
    }
}

/// Counts of one key within a batch.
#[derive(Clone, Copy)]
struct Agg {
    n: u64,
    first: Timestamp,
    last: Timestamp,
}

impl Agg {
    fn new(r: &Record<'_>) -> Agg {
        Agg { n: u64::from(r.repeat.max(1)), first: r.ts, last: r.ts }
    }
    fn add(&mut self, r: &Record<'_>) {
        self.n += u64::from(r.repeat.max(1));
        self.first = self.first.min(r.ts);
        self.last = self.last.max(r.ts);
    }
}

fn bump<K: std::hash::Hash + Eq>(m: &mut HashMap<K, Agg>, k: K, r: &Record<'_>) {
    m.entry(k).and_modify(|a| a.add(r)).or_insert_with(|| Agg::new(r));
}

/// Bit length of a count: the bucket the analyzer walks (0 only for 0).
pub fn bucket(n: u64) -> u8 {
    (64 - n.leading_zeros()) as u8
}

/// A `Value` for a DATETIME(6) column.
pub fn ts_value(t: Timestamp) -> Value {
    use chrono::{Datelike, Timelike};
    let d = t.to_chrono();
    Value::Date(
        d.year() as u16,
        d.month() as u8,
        d.day() as u8,
        d.hour() as u8,
        d.minute() as u8,
        d.second() as u8,
        t.subsec_micros(),
    )
}

fn proto_value(p: Option<Proto>) -> Value {
    Value::Bytes(p.map(proto_name).unwrap_or("").as_bytes().to_vec())
}

fn str_value(s: &str) -> Value {
    Value::Bytes(s.as_bytes().to_vec())
}

fn dpt_key(p: Option<u16>) -> i32 {
    p.map(i32::from).unwrap_or(-1)
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

/// Multi-row `INSERT ... ON DUPLICATE KEY UPDATE` adding counts. Rows are sorted by key first
/// so concurrent writers lock summary rows in the same order (no deadlock between them).
fn upsert_counts<K: Ord + Copy>(
    tx: &mut mysql::Transaction<'_>,
    table: &str,
    key_cols: &[&str],
    mut rows: Vec<(K, Agg)>,
    key_values: impl Fn(&K, &mut Vec<Value>),
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_unstable_by_key(|r| r.0);
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

/// Adds the batch's (src, x) pair counts; returns the number of new pairs per source: exactly
/// the rows that carry this batch's mark, which is set only when a row is inserted.
fn new_pairs(
    tx: &mut mysql::Transaction<'_>,
    table: &str,
    col: &str,
    mut pairs: Vec<((AddrKey, Value), u64)>,
    mark: u64,
) -> Result<HashMap<Vec<u8>, u64>, StoreError> {
    let mut out = HashMap::new();
    if pairs.is_empty() {
        return Ok(out);
    }
    pairs.sort_unstable_by(|a, b| a.0 .0.cmp(&b.0 .0).then_with(|| cmp_value(&a.0 .1, &b.0 .1)));
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

fn cmp_value(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        _ => std::cmp::Ordering::Equal,
    }
}

/// A mark no other batch uses: process id, a counter and the clock, hashed.
fn next_mark() -> u64 {
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

/// Proto as an ordered key (the name's order is irrelevant; only grouping and lock order).
fn proto_ord(p: Option<Proto>) -> (u8, u8) {
    match p {
        None => (0, 0),
        Some(Proto::Tcp) => (1, 0),
        Some(Proto::Udp) => (2, 0),
        Some(Proto::UdpLite) => (3, 0),
        Some(Proto::Icmp) => (4, 0),
        Some(Proto::Icmpv6) => (5, 0),
        Some(Proto::Esp) => (6, 0),
        Some(Proto::Ah) => (7, 0),
        Some(Proto::Other(n)) => (8, n),
    }
}

fn proto_from_ord(o: (u8, u8)) -> Option<Proto> {
    Some(match o.0 {
        0 => return None,
        1 => Proto::Tcp,
        2 => Proto::Udp,
        3 => Proto::UdpLite,
        4 => Proto::Icmp,
        5 => Proto::Icmpv6,
        6 => Proto::Esp,
        7 => Proto::Ah,
        _ => Proto::Other(o.1),
    })
}

/// The key of the flow summary: source, action, protocol (as ordered), destination port.
type FlowKey<'a> = (AddrKey, &'a str, (u8, u8), i32);

/// Called by the writer after inserting rows, in the same transaction. `inserted[i]` tells
/// whether the batch's i-th record was really added (not a duplicate). The batch is first
/// aggregated in memory (one map per summary, keys borrowed from the batch), then each
/// summary gets one multi-row upsert. Does nothing when the summary tables do not exist.
pub fn on_insert(
    tx: &mut mysql::Transaction<'_>,
    table: &str,
    batch: &RecordBatch,
    inserted: &[bool],
) -> Result<(), StoreError> {
    let mut flow: HashMap<FlowKey<'_>, Agg> = HashMap::new();
    let mut icmp: HashMap<(AddrKey, AddrKey, &str), Agg> = HashMap::new();
    let mut port: HashMap<(i32, (u8, u8), &str), Agg> = HashMap::new();
    let mut inport: HashMap<(i32, &str), Agg> = HashMap::new();
    let mut iface: HashMap<(&str, &str, (u8, u8)), Agg> = HashMap::new();
    let mut src: HashMap<AddrKey, Agg> = HashMap::new();
    let mut sp: HashMap<(AddrKey, i32), u64> = HashMap::new();
    let mut sd: HashMap<(AddrKey, AddrKey), u64> = HashMap::new();
    let mut hour: HashMap<(i64, &str), u64> = HashMap::new();
    let mut any = false;
    for (i, (r, _)) in batch.iter().enumerate() {
        if !inserted.get(i).copied().unwrap_or(false) {
            continue;
        }
        any = true;
        // Text is cut to its column exactly as the writer cuts it, so keys match the rows.
        let action = fit(r.action, MAX_ACTION);
        let if_in = r.if_in.map(|i| fit(i, MAX_IF));
        let s = AddrKey::of(r.pkt.src);
        let d = AddrKey::of(r.pkt.dst);
        let p = proto_ord(r.pkt.proto);
        let dpt = dpt_key(r.pkt.dpt);
        bump(&mut flow, (s, action, p, dpt), &r);
        if matches!(r.pkt.proto, Some(Proto::Icmp) | Some(Proto::Icmpv6)) {
            bump(&mut icmp, (s, d, action), &r);
        }
        bump(&mut port, (dpt, p, action), &r);
        if if_in.is_some_and(|i| !i.is_empty()) {
            bump(&mut inport, (dpt, action), &r);
        }
        bump(&mut iface, (if_in.unwrap_or(""), action, p), &r);
        bump(&mut src, s, &r);
        let packets = u64::from(r.repeat.max(1));
        if r.pkt.dpt.is_some() {
            *sp.entry((s, dpt)).or_insert(0) += packets;
        }
        if r.pkt.dst.is_some() {
            *sd.entry((s, d)).or_insert(0) += packets;
        }
        *hour.entry((r.ts.secs().div_euclid(3600), action)).or_insert(0) += u64::from(r.repeat.max(1));
    }
    if !any {
        return Ok(());
    }
    let t = table;
    // The first statement (the hourly counts: never empty when a row was inserted) tells
    // whether summaries exist; a missing table means "not maintained here".
    let mut hours: Vec<((i64, &str), u64)> = hour.into_iter().collect();
    hours.sort_unstable();
    match exec_fixed(
        tx,
        &format!("INSERT INTO `{t}__shour` (`hour`, `action`, `n`) VALUES "),
        "(?,?,?)",
        " ON DUPLICATE KEY UPDATE `n` = `n` + VALUES(`n`)",
        3,
        hours.len(),
        |i, pad, params| {
            let ((h, a), n) = hours[i];
            params.push(ts_value(Timestamp(h * 3600 * 1_000_000)));
            params.push(str_value(a));
            params.push(Value::UInt(if pad { 0 } else { n }));
        },
    ) {
        Ok(()) => {}
        Err(StoreError::MissingTable(_)) => return Ok(()),
        Err(e) => return Err(e),
    }
    let mark = next_mark();
    let new_ports = new_pairs(
        tx,
        &name(t, "__ssp"),
        "dpt",
        sp.into_iter().map(|((s, p), n)| ((s, Value::Int(i64::from(p))), n)).collect(),
        mark,
    )?;
    let new_hosts = new_pairs(
        tx,
        &name(t, "__ssd"),
        "dst",
        sd.into_iter().map(|((s, d), n)| ((s, d.value()), n)).collect(),
        mark,
    )?;
    upsert_counts(tx, &name(t, "__sflow"), &["src", "action", "proto", "dpt"], flow.into_iter().collect(), |k, v| {
        v.push(k.0.value());
        v.push(str_value(k.1));
        v.push(proto_value(proto_from_ord(k.2)));
        v.push(Value::Int(i64::from(k.3)));
    })?;
    upsert_counts(tx, &name(t, "__sicmp"), &["src", "dst", "action"], icmp.into_iter().collect(), |k, v| {
        v.push(k.0.value());
        v.push(k.1.value());
        v.push(str_value(k.2));
    })?;
    upsert_counts(tx, &name(t, "__sport"), &["dpt", "proto", "action"], port.into_iter().collect(), |k, v| {
        v.push(Value::Int(i64::from(k.0)));
        v.push(proto_value(proto_from_ord(k.1)));
        v.push(str_value(k.2));
    })?;
    upsert_counts(tx, &name(t, "__sinport"), &["dpt", "action"], inport.into_iter().collect(), |k, v| {
        v.push(Value::Int(i64::from(k.0)));
        v.push(str_value(k.1));
    })?;
    upsert_counts(tx, &name(t, "__siface"), &["if_in", "action", "proto"], iface.into_iter().collect(), |k, v| {
        v.push(str_value(k.0));
        v.push(str_value(k.1));
        v.push(proto_value(proto_from_ord(k.2)));
    })?;
    upsert_sources(tx, &name(t, "__ssrc"), src, &new_ports, &new_hosts)?;
    Ok(())
}

fn upsert_sources(
    tx: &mut mysql::Transaction<'_>,
    table: &str,
    src: HashMap<AddrKey, Agg>,
    new_ports: &HashMap<Vec<u8>, u64>,
    new_hosts: &HashMap<Vec<u8>, u64>,
) -> Result<(), StoreError> {
    let mut rows: Vec<(AddrKey, Agg)> = src.into_iter().collect();
    rows.sort_unstable_by_key(|r| r.0);
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
