//! Summary tables that keep `ipta --analyze` fast as the packet table grows.
//!
//! Each packet table `T` may have a family of summary tables `T__s*` (see [`SUFFIXES`]): per
//! report key, the packet count `n` (SUM of `repeat`), first and last seen, and `nb`, the bit
//! length of `n`. `nb` is what makes top-N cheap without paying for an index on `n` (which
//! would be rewritten on every increment): it changes only when `n` crosses a power of two, and
//! the analyzer walks `nb` from the top down, reading one small bucket at a time (see
//! `report::query`). Per source, `ssrc` also keeps the number of distinct destination ports
//! and hosts; they stay exact because the pair tables `ssp`/`ssd` are filled with a per-fold
//! `mark` set only on insertion, so the new pairs of a fold are exactly the rows carrying it.
//!
//! The summaries run behind the writers. They cover exactly the packet rows with
//! `id <= w`, the watermark kept in `T__sstate`; [`fold`] adds the rows after it, read back from
//! the packet table in chunks of [`FOLD_CHUNK_ROWS`], and moves the watermark in the same
//! transaction. Writers only insert packet rows: maintaining the summaries in each batch's
//! transaction cost them 70-87% of their rate, because on real traffic (many sources, random
//! ports, fresh IPv6 addresses) a batch touches more summary rows than it inserts packets;
//! folding in large chunks touches fewer (keys repeat across batches) and costs the writers
//! nothing. ipta-ingest folds in the background, `ipta --analyze` folds what is left before it
//! reads, so a report is always exact.
//!
//! Exactness contract:
//! - Writers call [`gate`] first in each transaction: a shared lock on `T__sstate` row 1. A
//!   fold first takes that row exclusively and reads `MAX(id)` (its "cut"): every writer that
//!   got ids before has committed, every later one gets larger ids, so no row below the cut
//!   can still appear. AUTO_INCREMENT never hands out an id twice (persistent in MariaDB 10.2+
//!   and MySQL 8).
//! - Row 2 holds `w`. A fold chunk and a retention chunk each lock it first, so they never
//!   overlap: [`on_delete_range`] subtracts only rows with `id <= w`, the folder never sees
//!   rows already deleted.
//! - `--clear` (`store::tables::clear_table`) drops them with [`on_drop`], truncates the packet
//!   table and recreates them with [`create`] (TRUNCATE cannot share a transaction).
//! - [`on_drop`]: call when dropping the packet table (`--delete-table`).
//! - [`create`]: creates the tables (empty, `w = 0`) and folds the table's rows in, without
//!   stopping the writers. The first `ipta --analyze` of a table without them calls it. When
//!   they do not exist, the analyzer reads the packet table directly (slow, but correct):
//!   [`present`] tells which case holds.
//!
//! Summary tables carry the comment `ipta-summary` (not the packet tables' marker), so
//! `--list-tables` does not list them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use mysql::prelude::Queryable;
use mysql::{IsolationLevel, TxOpts, Value};

use crate::record::Timestamp;
use crate::store::StoreError;

/// Suffixes of the summary tables of one packet table (the state table last: [`present`]
/// needs them all).
pub const SUFFIXES: &[&str] = &[
    "__sflow", "__sicmp", "__sport", "__sinport", "__siface", "__ssrc", "__ssp", "__ssd", "__shour", "__sstate",
];

/// The comment every summary table carries.
pub const SUMMARY_COMMENT: &str = "ipta-summary";

/// Longest packet-table name that still leaves room for the summary suffixes.
pub const MAX_TABLE_LEN: usize = 64 - 9;

/// Packet rows read back and aggregated per fold transaction. Larger chunks touch fewer
/// summary rows per packet (measured on the generated workload: 2.0 summary rows per packet
/// for chunks of 100,000 rows, 1.5 for 1,000,000) but hold more in memory (about 100 bytes per
/// distinct key) and keep a retention chunk waiting longer.
pub const FOLD_CHUNK_ROWS: usize = 200_000;

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
        // Row 1: the writers' gate; row 2: `w`, the last packet id folded in. Created with
        // its rows in one statement, and last: once `present` sees it, it is usable.
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}__sstate` (`k` TINYINT UNSIGNED NOT NULL, \
             `w` BIGINT UNSIGNED NOT NULL, PRIMARY KEY (`k`)){tail} SELECT 1 AS `k`, 0 AS `w` UNION ALL SELECT 2, 0"
        ),
    ]
}

fn sql_err(e: mysql::Error) -> StoreError {
    match &e {
        mysql::Error::MySqlError(me) if me.code == 1146 => StoreError::MissingTable(me.message.clone()),
        _ => crate::store::map_err(e, ""),
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

/// Whether all summary tables of `table` exist (so folds keep them and the analyzer reads them).
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

/// Creates the summary tables of `table` (dropping any earlier ones) and folds its current
/// rows in. Writers go on meanwhile: only a writer caught between finding no summaries and
/// inserting is made to retry its batch (see [`gate`]).
pub fn create(conn: &mut mysql::Conn, table: &str) -> Result<FoldStats, StoreError> {
    check_len(table)?;
    on_drop(conn, table)?;
    for s in ddl(table) {
        conn.query_drop(s).map_err(sql_err)?;
    }
    // A writer that inserted before the state table existed took no gate: wait for it to
    // finish (its transaction holds the table's metadata lock), so the first cut sees its rows.
    conn.query_drop(format!("LOCK TABLES `{table}` WRITE")).map_err(sql_err)?;
    conn.query_drop("UNLOCK TABLES").map_err(sql_err)?;
    fold(conn, table)
}

/// Drops the summary tables of `table` (for `--delete-table`).
pub fn on_drop(conn: &mut impl Queryable, table: &str) -> Result<(), StoreError> {
    crate::store::validate_identifier(table)?;
    for s in SUFFIXES {
        conn.query_drop(format!("DROP TABLE IF EXISTS `{table}{s}`")).map_err(sql_err)?;
    }
    Ok(())
}

/// The statement [`gate`] runs for `table` (validated by the caller); writers keep it.
pub fn gate_sql(table: &str) -> String {
    format!("SELECT `k` FROM `{table}__sstate` WHERE `k` = 1 LOCK IN SHARE MODE")
}

/// Run by every writer in its transaction BEFORE inserting packet rows (`sql` from
/// [`gate_sql`]): takes the shared lock that makes a fold's cut wait for this transaction.
/// Returns false when the table has no summaries. A writer that got false must call it again
/// before committing and, if it then returns true (the summaries were created meanwhile),
/// roll back and write the batch again: its rows may have ids below the first cut.
pub fn gate(tx: &mut mysql::Transaction<'_>, sql: &str) -> Result<bool, StoreError> {
    match tx.query_drop(sql) {
        Ok(()) => Ok(true),
        Err(mysql::Error::MySqlError(me)) if me.code == 1146 => Ok(false),
        Err(e) => Err(sql_err(e)),
    }
}

fn read_committed() -> TxOpts {
    TxOpts::default().set_isolation_level(Some(IsolationLevel::ReadCommitted))
}

/// Locks row 2 of the state table and returns `w`: None when the table has no summaries.
fn lock_watermark(tx: &mut mysql::Transaction<'_>, table: &str) -> Result<Option<u64>, StoreError> {
    match tx.query_first::<u64, _>(format!("SELECT `w` FROM `{table}__sstate` WHERE `k` = 2 FOR UPDATE")) {
        Ok(Some(w)) => Ok(Some(w)),
        Ok(None) => Err(StoreError::Sql(format!(
            "the summary state of table {table} is damaged (row 2 of {table}__sstate is missing); \
             rebuild the summaries: ipta --clear keeps nothing, so drop the {table}__s* tables \
             and run ipta --analyze"
        ))),
        Err(mysql::Error::MySqlError(me)) if me.code == 1146 => Ok(None),
        Err(e) => Err(sql_err(e)),
    }
}

/// Brings the summaries of `table` up to date: folds in every packet row committed before
/// the call. Several folders may run at once (they take turns per chunk); an interrupted fold
/// loses nothing (each chunk commits with its watermark). Fails with `MissingTable` when the
/// table has no summaries.
pub fn fold(conn: &mut mysql::Conn, table: &str) -> Result<FoldStats, StoreError> {
    fold_with(conn, table, FOLD_CHUNK_ROWS)
}

/// [`fold`] in chunks of `chunk_rows` rows (tests use small ones).
pub fn fold_with(conn: &mut mysql::Conn, table: &str, chunk_rows: usize) -> Result<FoldStats, StoreError> {
    let t = crate::store::validate_identifier(table)?;
    let chunk_rows = chunk_rows.max(1);
    // The cut: with row 1 held exclusively, no writer holds ids it has not committed.
    let cut = {
        let mut tx = conn.start_transaction(read_committed()).map_err(sql_err)?;
        let gate: Option<u8> = tx
            .query_first(format!("SELECT `k` FROM `{t}__sstate` WHERE `k` = 1 FOR UPDATE"))
            .map_err(sql_err)?;
        if gate.is_none() {
            return Err(StoreError::Sql(format!("the summary state of table {t} is damaged (row 1 is missing)")));
        }
        let max: Option<u64> =
            tx.query_first(format!("SELECT COALESCE(MAX(`id`), 0) FROM `{t}`")).map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        max.unwrap_or(0)
    };
    let read_sql = format!(
        "SELECT `id`, `ts`, `action`, `if_in`, `src`, `dst`, `proto`, `dpt`, `repeat` FROM `{t}` \
         WHERE `id` > ? AND `id` <= ? ORDER BY `id` LIMIT ?"
    );
    let mut stats = FoldStats::default();
    let mut acc = Fold::default();
    loop {
        let mut tx = conn.start_transaction(read_committed()).map_err(sql_err)?;
        let Some(w) = lock_watermark(&mut tx, t)? else {
            return Err(StoreError::MissingTable(format!("{t}__sstate")));
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
                last = acc.add_row(&row)?;
                rows += 1;
            }
        }
        // Fewer rows than asked: nothing else below the cut (gaps are rolled-back ids).
        let new_w = if rows < chunk_rows as u64 { cut } else { last };
        let read = started.elapsed();
        acc.store(&mut tx, t)?;
        tx.exec_drop(format!("UPDATE `{t}__sstate` SET `w` = ? WHERE `k` = 2"), (new_w,))
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
    match conn.query_first::<(u64, Option<u64>), _>(format!(
        "SELECT s.`w`, (SELECT MAX(`id`) FROM `{t}`) FROM `{t}__sstate` s WHERE s.`k` = 2"
    )) {
        Ok(Some((w, max))) => Ok(Some(max.unwrap_or(0).saturating_sub(w))),
        Ok(None) => Ok(None),
        Err(mysql::Error::MySqlError(me)) if me.code == 1146 => Ok(None),
        Err(e) => Err(sql_err(e)),
    }
}

/// Called by `store::retention` in each chunk's transaction BEFORE it deletes the rows with
/// `from <= ts < to` (the range is locked, so the reads here see exactly those rows). Locks the
/// watermark (so no fold runs meanwhile) and subtracts the rows already folded in from every
/// summary: counts go down, groups and pairs left with nothing are deleted, and
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
    let Some(w) = lock_watermark(tx, t)? else {
        return Ok(()); // no summaries
    };
    let range = "`ts` >= ? AND `ts` < ? AND `id` <= ?";
    let p = || vec![ts_value(from), ts_value(to), Value::UInt(w)];
    // Subtracting through INSERT ... SELECT ... ON DUPLICATE KEY UPDATE: every key exists (the
    // summaries are exact), assignments run left to right, so `nb` sees the old `n`.
    let sub = "ON DUPLICATE KEY UPDATE `nb` = IF(`n` = VALUES(`n`), 0, CHAR_LENGTH(BIN(`n` - VALUES(`n`)))), \
               `n` = `n` - VALUES(`n`)";
    let agg = "SUM(`repeat`), MIN(`ts`), MAX(`ts`), 1";
    let stmts = [
        format!(
            "INSERT INTO `{t}__shour` (`hour`,`action`,`n`) SELECT DATE_FORMAT(`ts`, '%Y-%m-%d %H:00:00'), \
             `action`, SUM(`repeat`) FROM `{t}` WHERE {range} GROUP BY 1, 2 \
             ON DUPLICATE KEY UPDATE `n` = `n` - VALUES(`n`)"
        ),
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
            vec![ts_value(from), ts_value(to), Value::UInt(w), Value::UInt(mark)],
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

/// Rebuilds the summaries of `table` another way: one server-side GROUP BY per summary over
/// the whole packet table, with the table locked for writing (writers wait). Slower than
/// [`create`] and kept as an independent check of [`fold`]: the tests compare the two. The
/// expressions mirror the fold's keys: NULL text becomes '', a missing port -1.
pub fn rebuild_with_sql(conn: &mut mysql::Conn, table: &str) -> Result<(), StoreError> {
    check_len(table)?;
    on_drop(conn, table)?;
    for s in ddl(table) {
        conn.query_drop(s).map_err(sql_err)?;
    }
    let mut locks = format!("LOCK TABLES `{table}` WRITE");
    for s in SUFFIXES {
        locks.push_str(&format!(", `{table}{s}` WRITE"));
    }
    conn.query_drop(locks).map_err(sql_err)?;
    let r = fill_from_packets(conn, table);
    let u = conn.query_drop("UNLOCK TABLES").map_err(sql_err);
    if r.is_err() {
        let _ = on_drop(conn, table);
    }
    r.and(u)
}

fn fill_from_packets(conn: &mut mysql::Conn, table: &str) -> Result<(), StoreError> {
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
        format!("UPDATE `{t}__sstate` SET `w` = (SELECT COALESCE(MAX(`id`), 0) FROM `{t}`) WHERE `k` = 2"),
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

/// Counts of one key within a fold chunk.
#[derive(Clone, Copy)]
struct Agg {
    n: u64,
    first: Timestamp,
    last: Timestamp,
}

impl Agg {
    fn add(&mut self, n: u64, ts: Timestamp) {
        self.n += n;
        self.first = self.first.min(ts);
        self.last = self.last.max(ts);
    }
}

fn bump<K: std::hash::Hash + Eq>(m: &mut HashMap<K, Agg>, k: K, n: u64, ts: Timestamp) {
    m.entry(k).and_modify(|a| a.add(n, ts)).or_insert(Agg { n, first: ts, last: ts });
}

/// The few distinct texts of a chunk (actions, interfaces, protocols), each stored once, so
/// that keys are fixed-size and a row costs no allocation.
#[derive(Default)]
struct Names {
    ids: HashMap<Box<[u8]>, u32>,
    list: Vec<Box<[u8]>>,
}

impl Names {
    fn id(&mut self, s: &[u8]) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(s.into());
        self.ids.insert(s.into(), i);
        i
    }
    fn get(&self, i: u32) -> &[u8] {
        &self.list[i as usize]
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
    hour: HashMap<(i64, u32), u64>,
}

fn cell_bytes(v: Option<&Value>) -> Option<&[u8]> {
    match v {
        Some(Value::Bytes(b)) => Some(b),
        _ => None,
    }
}

fn cell_int(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Int(i)) => Some(*i),
        Some(Value::UInt(u)) => Some(*u as i64),
        Some(Value::Bytes(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

const US_PER_HOUR: i64 = 3_600_000_000;

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
    }

    /// Adds one row of `id, ts, action, if_in, src, dst, proto, dpt, repeat`; returns its id.
    fn add_row(&mut self, row: &mysql::Row) -> Result<u64, StoreError> {
        let bad = |what: &str| StoreError::Sql(format!("fold: unexpected {what} in a packet row"));
        let id = cell_int(row.as_ref(0)).ok_or_else(|| bad("id"))? as u64;
        let ts = row
            .as_ref(1)
            .and_then(crate::store::writer::micros_of)
            .map(Timestamp)
            .ok_or_else(|| bad("ts"))?;
        let action = self.names.id(cell_bytes(row.as_ref(2)).ok_or_else(|| bad("action"))?);
        let if_in = cell_bytes(row.as_ref(3));
        let inbound = if_in.is_some_and(|i| !i.is_empty());
        let if_in = self.names.id(if_in.unwrap_or(b""));
        let src = AddrKey::from_stored(cell_bytes(row.as_ref(4)));
        let dst_cell = cell_bytes(row.as_ref(5));
        let dst = AddrKey::from_stored(dst_cell);
        let proto_text = cell_bytes(row.as_ref(6)).unwrap_or(b"");
        let icmp = proto_text == b"ICMP" || proto_text == b"ICMPv6";
        let proto = self.names.id(proto_text);
        let dpt_cell = cell_int(row.as_ref(7)).map(|p| p as i32);
        let dpt = dpt_cell.unwrap_or(-1);
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
        bump(&mut self.src, src, n, ts);
        if dpt_cell.is_some() {
            *self.sp.entry((src, dpt)).or_insert(0) += n;
        }
        if dst_cell.is_some() {
            *self.sd.entry((src, dst)).or_insert(0) += n;
        }
        *self.hour.entry((ts.micros().div_euclid(US_PER_HOUR), action)).or_insert(0) += n;
        Ok(id)
    }

    /// Adds the chunk's counts to the summaries, in the caller's transaction. Each summary's
    /// rows go in key order (the B-tree's order: fewer pages touched).
    fn store(&mut self, tx: &mut mysql::Transaction<'_>, t: &str) -> Result<(), StoreError> {
        let names = &self.names;
        let txt = |i: u32| names.get(i);
        let mark = next_mark();

        let mut sp: Vec<((AddrKey, i32), u64)> = self.sp.drain().collect();
        sp.sort_unstable();
        let sp: Vec<((AddrKey, Value), u64)> =
            sp.into_iter().map(|((s, p), n)| ((s, Value::Int(i64::from(p))), n)).collect();
        let new_ports = new_pairs(tx, &name(t, "__ssp"), "dpt", &sp, mark)?;
        drop(sp);
        let mut sd: Vec<((AddrKey, AddrKey), u64)> = self.sd.drain().collect();
        sd.sort_unstable();
        let sd: Vec<((AddrKey, Value), u64)> = sd.into_iter().map(|((s, d), n)| ((s, d.value()), n)).collect();
        let new_hosts = new_pairs(tx, &name(t, "__ssd"), "dst", &sd, mark)?;
        drop(sd);

        let mut flow: Vec<_> = self.flow.drain().collect();
        flow.sort_unstable_by(|a, b| {
            let (x, y) = (&a.0, &b.0);
            (x.0, txt(x.1), txt(x.2), x.3).cmp(&(y.0, txt(y.1), txt(y.2), y.3))
        });
        upsert_counts(tx, &name(t, "__sflow"), &["src", "action", "proto", "dpt"], &flow, |k, v| {
            v.push(k.0.value());
            v.push(bytes_value(txt(k.1)));
            v.push(bytes_value(txt(k.2)));
            v.push(Value::Int(i64::from(k.3)));
        })?;
        drop(flow);
        let mut icmp: Vec<_> = self.icmp.drain().collect();
        icmp.sort_unstable_by(|a, b| (a.0 .0, a.0 .1, txt(a.0 .2)).cmp(&(b.0 .0, b.0 .1, txt(b.0 .2))));
        upsert_counts(tx, &name(t, "__sicmp"), &["src", "dst", "action"], &icmp, |k, v| {
            v.push(k.0.value());
            v.push(k.1.value());
            v.push(bytes_value(txt(k.2)));
        })?;
        let mut port: Vec<_> = self.port.drain().collect();
        port.sort_unstable_by(|a, b| (a.0 .0, txt(a.0 .1), txt(a.0 .2)).cmp(&(b.0 .0, txt(b.0 .1), txt(b.0 .2))));
        upsert_counts(tx, &name(t, "__sport"), &["dpt", "proto", "action"], &port, |k, v| {
            v.push(Value::Int(i64::from(k.0)));
            v.push(bytes_value(txt(k.1)));
            v.push(bytes_value(txt(k.2)));
        })?;
        let mut inport: Vec<_> = self.inport.drain().collect();
        inport.sort_unstable_by(|a, b| (a.0 .0, txt(a.0 .1)).cmp(&(b.0 .0, txt(b.0 .1))));
        upsert_counts(tx, &name(t, "__sinport"), &["dpt", "action"], &inport, |k, v| {
            v.push(Value::Int(i64::from(k.0)));
            v.push(bytes_value(txt(k.1)));
        })?;
        let mut iface: Vec<_> = self.iface.drain().collect();
        iface.sort_unstable_by(|a, b| {
            (txt(a.0 .0), txt(a.0 .1), txt(a.0 .2)).cmp(&(txt(b.0 .0), txt(b.0 .1), txt(b.0 .2)))
        });
        upsert_counts(tx, &name(t, "__siface"), &["if_in", "action", "proto"], &iface, |k, v| {
            v.push(bytes_value(txt(k.0)));
            v.push(bytes_value(txt(k.1)));
            v.push(bytes_value(txt(k.2)));
        })?;
        let mut src: Vec<_> = self.src.drain().collect();
        src.sort_unstable_by_key(|r| r.0);
        upsert_sources(tx, &name(t, "__ssrc"), &src, &new_ports, &new_hosts)?;
        drop(src);

        let mut hours: Vec<_> = self.hour.drain().collect();
        hours.sort_unstable_by(|a, b| (a.0 .0, txt(a.0 .1)).cmp(&(b.0 .0, txt(b.0 .1))));
        exec_fixed(
            tx,
            &format!("INSERT INTO `{t}__shour` (`hour`, `action`, `n`) VALUES "),
            "(?,?,?)",
            " ON DUPLICATE KEY UPDATE `n` = `n` + VALUES(`n`)",
            3,
            hours.len(),
            |i, pad, params| {
                let ((h, a), n) = hours[i];
                params.push(ts_value(Timestamp(h * US_PER_HOUR)));
                params.push(bytes_value(txt(a)));
                params.push(Value::UInt(if pad { 0 } else { n }));
            },
        )?;
        Ok(())
    }
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

fn bytes_value(s: &[u8]) -> Value {
    Value::Bytes(s.to_vec())
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
