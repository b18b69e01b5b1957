//! The summary tables' schema: their DDL, whether a packet table has them, creating them
//! (and folding the existing rows in), dropping them, and rebuilding them with the server's
//! GROUP BY as an independent check of the fold.

use mysql::prelude::Queryable;

use super::*;
use crate::store::StoreError;

const COUNTS: &str = "`n` BIGINT UNSIGNED NOT NULL, `first_ts` DATETIME(6) NOT NULL, \
     `last_ts` DATETIME(6) NOT NULL, `nb` TINYINT UNSIGNED NOT NULL";

fn ddl(table: &str) -> Vec<String> {
    let t = table;
    let tail = format!(
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='{SUMMARY_COMMENT}'"
    );
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}{FLOW}` (`src` VARBINARY(16) NOT NULL, \
             `action` VARCHAR(64) NOT NULL, `proto` VARCHAR(8) NOT NULL, `dpt` INT NOT NULL, {COUNTS}, \
             PRIMARY KEY (`src`, `action`, `proto`, `dpt`), KEY `k_anb` (`action`, `nb`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}{ICMP}` (`src` VARBINARY(16) NOT NULL, \
             `dst` VARBINARY(16) NOT NULL, `action` VARCHAR(64) NOT NULL, {COUNTS}, \
             PRIMARY KEY (`src`, `dst`, `action`), KEY `k_nb` (`nb`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}{PORT}` (`dpt` INT NOT NULL, `proto` VARCHAR(8) NOT NULL, \
             `action` VARCHAR(64) NOT NULL, {COUNTS}, \
             PRIMARY KEY (`dpt`, `proto`, `action`), KEY `k_nb` (`nb`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}{INPORT}` (`dpt` INT NOT NULL, \
             `action` VARCHAR(64) NOT NULL, {COUNTS}, \
             PRIMARY KEY (`dpt`, `action`), KEY `k_nb` (`nb`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}{IFACE}` (`if_in` VARCHAR(32) NOT NULL, \
             `action` VARCHAR(64) NOT NULL, `proto` VARCHAR(8) NOT NULL, {COUNTS}, \
             PRIMARY KEY (`if_in`, `action`, `proto`), KEY `k_nb` (`nb`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}{SOURCE}` (`src` VARBINARY(16) NOT NULL, {COUNTS}, \
             `ports` INT UNSIGNED NOT NULL, `hosts` INT UNSIGNED NOT NULL, `pb` TINYINT UNSIGNED NOT NULL, \
             PRIMARY KEY (`src`), KEY `k_nb` (`nb`), KEY `k_pb` (`pb`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}{SRC_PORT}` (`src` VARBINARY(16) NOT NULL, `dpt` INT NOT NULL, \
             `n` BIGINT UNSIGNED NOT NULL, `mark` BIGINT UNSIGNED NOT NULL, PRIMARY KEY (`src`, `dpt`), KEY `k_mark` (`mark`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}{SRC_DST}` (`src` VARBINARY(16) NOT NULL, `dst` VARBINARY(16) NOT NULL, \
             `n` BIGINT UNSIGNED NOT NULL, `mark` BIGINT UNSIGNED NOT NULL, PRIMARY KEY (`src`, `dst`), KEY `k_mark` (`mark`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}{HOUR}` (`hour` DATETIME NOT NULL, \
             `action` VARCHAR(64) NOT NULL, `n` BIGINT UNSIGNED NOT NULL, \
             `nrows` BIGINT UNSIGNED NOT NULL DEFAULT 0, `n_ranged` BIGINT UNSIGNED NOT NULL DEFAULT 0, \
             `min_id` BIGINT UNSIGNED NOT NULL DEFAULT 0, `max_id` BIGINT UNSIGNED NOT NULL DEFAULT 0, \
             PRIMARY KEY (`hour`, `action`)){tail}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}{BUCKET}` (`hour` DATETIME NOT NULL, `host` VARCHAR(255) NOT NULL, \
             `if_in` VARCHAR(32) NOT NULL, `action` VARCHAR(64) NOT NULL, `proto` VARCHAR(8) NOT NULL, \
             `dpt` INT NOT NULL, `n` BIGINT UNSIGNED NOT NULL, `first_ts` DATETIME(6) NOT NULL, \
             `last_ts` DATETIME(6) NOT NULL, PRIMARY KEY (`hour`, `host`, `if_in`, `action`, `proto`, `dpt`)){tail}"
        ),
        // Row 1: the writers' gate; rows 2 and 3: `w`, the last packet id folded in, of each
        // lane. Created with its rows in one statement, and last: once `present` sees it, it
        // is usable.
        format!(
            "CREATE TABLE IF NOT EXISTS `{t}{STATE}` (`k` TINYINT UNSIGNED NOT NULL, \
             `w` BIGINT UNSIGNED NOT NULL, PRIMARY KEY (`k`)){tail} \
             SELECT 1 AS `k`, 0 AS `w` UNION ALL SELECT 2, 0 UNION ALL SELECT 3, 0"
        ),
    ]
}

/// Whether all summary tables of `table` exist (so folds keep them and the analyzer reads them).
pub fn present(conn: &mut impl Queryable, table: &str) -> Result<bool, StoreError> {
    // By name: an older set (other per-source tables, see `LEGACY`) is not this one.
    let marks = vec!["?"; SUFFIXES.len()].join(", ");
    let mut params: Vec<mysql::Value> = SUFFIXES.iter().map(|s| mysql::Value::from(name(table, s))).collect();
    params.push(SUMMARY_COMMENT.into());
    let n: Option<u64> = conn
        .exec_first(
            format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
                 AND TABLE_NAME IN ({marks}) AND TABLE_COMMENT = ?"
            ),
            params,
        )
        .map_err(sql_err)?;
    if n.unwrap_or(0) as usize != SUFFIXES.len() {
        return Ok(false);
    }
    // An older ipta's --clear or --delete-table may have left this set's tables beside a
    // state table of its own, with one watermark: that is not this set either.
    let lanes: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM `{table}{STATE}` WHERE `k` = 3"))
        .map_err(sql_err)?;
    Ok(lanes == Some(1))
}

/// Whether the hourly counts of `table` keep each hour's rows (`nrows`, packet rows rather
/// than packets) and lowest and highest packet id (`min_id`, `max_id`), with the packets of
/// the rows counted so (`n_ranged`: a folder of an older ipta adds to `n` only, and an hour
/// where the two differ has a range that may miss rows). A set built by an older ipta has
/// none of them, and works on without them (its windows find their rows through the time
/// index).
pub fn hour_ids(conn: &mut impl Queryable, table: &str) -> Result<bool, StoreError> {
    let n: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME = ? AND COLUMN_NAME IN ('nrows', 'n_ranged', 'min_id', 'max_id')",
            (name(table, HOUR),),
        )
        .map_err(sql_err)?;
    Ok(n == Some(4))
}

/// Creates the summary tables of `table` (dropping any earlier ones) and folds its current
/// rows in. Writers go on meanwhile: only a writer caught between finding no summaries and
/// inserting is made to retry its batch (see [`gate`]).
pub fn create(conn: &mut mysql::Conn, table: &str) -> Result<FoldStats, StoreError> {
    create_with(conn, None, table)
}

/// [`create`], folding the rows in with both lanes at once when `other` (a second connection
/// to the same database) is given.
pub fn create_with(conn: &mut mysql::Conn, other: Option<&mut mysql::Conn>, table: &str) -> Result<FoldStats, StoreError> {
    check_len(table)?;
    on_drop(conn, table)?;
    for s in ddl(table) {
        conn.query_drop(s).map_err(sql_err)?;
    }
    // A writer that inserted before the state table existed took no gate: wait for it to
    // finish (its transaction holds the table's metadata lock), so the first cut sees its rows.
    conn.query_drop(format!("LOCK TABLES `{table}` WRITE")).map_err(sql_err)?;
    conn.query_drop("UNLOCK TABLES").map_err(sql_err)?;
    match other {
        Some(o) => fold_parallel(conn, o, table, FOLD_CHUNK_ROWS),
        None => fold(conn, table),
    }
}

/// Drops the summary tables of `table` (for `--delete-table`).
pub fn on_drop(conn: &mut impl Queryable, table: &str) -> Result<(), StoreError> {
    crate::store::validate_identifier(table)?;
    for s in SUFFIXES.iter().chain(LEGACY) {
        conn.query_drop(format!("DROP TABLE IF EXISTS `{table}{s}`")).map_err(sql_err)?;
    }
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
            "INSERT INTO `{t}{FLOW}` (`src`,`action`,`proto`,`dpt`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`src`,''), `action`, COALESCE(`proto`,''), COALESCE(`dpt`,-1), {cnt} \
             FROM `{t}` GROUP BY 1, 2, 3, 4"
        ),
        format!(
            "INSERT INTO `{t}{ICMP}` (`src`,`dst`,`action`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`src`,''), COALESCE(`dst`,''), `action`, {cnt} \
             FROM `{t}` WHERE `proto` IN ('ICMP','ICMPv6') GROUP BY 1, 2, 3"
        ),
        format!(
            "INSERT INTO `{t}{PORT}` (`dpt`,`proto`,`action`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`dpt`,-1), COALESCE(`proto`,''), `action`, {cnt} FROM `{t}` GROUP BY 1, 2, 3"
        ),
        format!(
            "INSERT INTO `{t}{INPORT}` (`dpt`,`action`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`dpt`,-1), `action`, {cnt} FROM `{t}` WHERE `if_in` <> '' GROUP BY 1, 2"
        ),
        format!(
            "INSERT INTO `{t}{IFACE}` (`if_in`,`action`,`proto`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`if_in`,''), `action`, COALESCE(`proto`,''), {cnt} FROM `{t}` GROUP BY 1, 2, 3"
        ),
        format!(
            "INSERT INTO `{t}{SRC_PORT}` (`src`,`dpt`,`n`,`mark`) \
             SELECT COALESCE(`src`,''), `dpt`, SUM(`repeat`), 0 FROM `{t}` WHERE `dpt` IS NOT NULL GROUP BY 1, 2"
        ),
        format!(
            "INSERT INTO `{t}{SRC_DST}` (`src`,`dst`,`n`,`mark`) \
             SELECT COALESCE(`src`,''), `dst`, SUM(`repeat`), 0 FROM `{t}` WHERE `dst` IS NOT NULL GROUP BY 1, 2"
        ),
        format!(
            "INSERT INTO `{t}{SOURCE}` (`src`,`n`,`first_ts`,`last_ts`,`nb`,`ports`,`hosts`,`pb`) \
             SELECT COALESCE(`src`,''), {cnt}, 0, 0, 0 FROM `{t}` GROUP BY 1"
        ),
        format!(
            "UPDATE `{t}{SOURCE}` JOIN (SELECT `src`, COUNT(*) c FROM `{t}{SRC_PORT}` GROUP BY `src`) p \
             ON p.`src` = `{t}{SOURCE}`.`src` SET `{t}{SOURCE}`.`ports` = p.c, `{t}{SOURCE}`.`pb` = CHAR_LENGTH(BIN(p.c))"
        ),
        format!(
            "UPDATE `{t}{SOURCE}` JOIN (SELECT `src`, COUNT(*) c FROM `{t}{SRC_DST}` GROUP BY `src`) d \
             ON d.`src` = `{t}{SOURCE}`.`src` SET `{t}{SOURCE}`.`hosts` = d.c"
        ),
        format!(
            "INSERT INTO `{t}{HOUR}` (`hour`,`action`,`n`,`nrows`,`n_ranged`,`min_id`,`max_id`) \
             SELECT DATE_FORMAT(`ts`, '%Y-%m-%d %H:00:00'), `action`, SUM(`repeat`), COUNT(*), SUM(`repeat`), \
             MIN(`id`), MAX(`id`) \
             FROM `{t}` GROUP BY 1, 2"
        ),
        format!(
            "INSERT INTO `{t}{BUCKET}` (`hour`,`host`,`if_in`,`action`,`proto`,`dpt`,`n`,`first_ts`,`last_ts`) \
             SELECT DATE_FORMAT(`ts`, '%Y-%m-%d %H:00:00'), COALESCE(`host`,''), COALESCE(`if_in`,''), `action`, \
             COALESCE(`proto`,''), COALESCE(`dpt`,-1), SUM(`repeat`), MIN(`ts`), MAX(`ts`) FROM `{t}` GROUP BY 1, 2, 3, 4, 5, 6"
        ),
        format!("UPDATE `{t}{STATE}` SET `w` = (SELECT COALESCE(MAX(`id`), 0) FROM `{t}`) WHERE `k` IN (2, 3)"),
    ];
    for s in stmts {
        conn.query_drop(s).map_err(sql_err)?;
    }
    Ok(())
}
