//! Retention's side of the summaries: before a chunk of old packet rows is deleted, the rows
//! already folded in are subtracted from every summary, so the summaries stay exact.

use mysql::prelude::Queryable;
use mysql::Value;

use super::gate::{lock_watermark, lock_watermark_if_any};
use super::*;
use crate::record::Timestamp;
use crate::store::StoreError;

/// Called by `store::retention` in each chunk's transaction BEFORE it deletes the rows with
/// `from <= ts < to` (the range is locked, so the reads here see exactly those rows). Locks the
/// watermark (so no fold runs meanwhile) and subtracts the rows already folded in from every
/// summary: counts go down, groups and pairs left with nothing are deleted, and
/// the distinct port count of a source drops by the ports none of its flows has left.
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
    // Both lanes, in the folds' order (keys, then sources): no fold of either runs meanwhile.
    let Some(wk) = lock_watermark(tx, t, Lane::Keys)? else {
        return Ok(()); // no summaries
    };
    // No row 3: a set of an older ipta, rebuilt whole by the next report (which does not
    // take it for this one's, see `present`); nothing to keep exact in it meanwhile.
    let Some(ws) = lock_watermark_if_any(tx, t, Lane::Sources)? else {
        return Ok(());
    };
    let range = "`ts` >= ? AND `ts` < ? AND `id` <= ?";
    // Each lane loses the rows it has folded in.
    let p = |w: u64| vec![ts_value(from), ts_value(to), Value::UInt(w)];
    // Subtracting through INSERT ... SELECT ... ON DUPLICATE KEY UPDATE: every key exists (the
    // summaries are exact), assignments run left to right, so `nb` sees the old `n`.
    let sub = "ON DUPLICATE KEY UPDATE `nb` = IF(`n` = VALUES(`n`), 0, CHAR_LENGTH(BIN(`n` - VALUES(`n`)))), \
               `n` = `n` - VALUES(`n`)";
    let agg = "SUM(`repeat`), MIN(`ts`), MAX(`ts`), 1";
    let stmts = [
        // A bucket keeps its first/last seen: only the hour holding the oldest row left can be
        // stale, and windowed reports read that hour from the packet table.
        format!(
            "INSERT INTO `{t}{BUCKET}` (`hour`,`host`,`if_in`,`action`,`proto`,`dpt`,`n`,`first_ts`,`last_ts`) \
             SELECT DATE_FORMAT(`ts`, '%Y-%m-%d %H:00:00'), COALESCE(`host`,''), COALESCE(`if_in`,''), `action`, \
             COALESCE(`proto`,''), COALESCE(`dpt`,-1), SUM(`repeat`), MIN(`ts`), MAX(`ts`) FROM `{t}` WHERE {range} \
             GROUP BY 1, 2, 3, 4, 5, 6 ON DUPLICATE KEY UPDATE `n` = `n` - VALUES(`n`)"
        ),
        format!(
            "INSERT INTO `{t}{HOUR}` (`hour`,`action`,`n`) SELECT DATE_FORMAT(`ts`, '%Y-%m-%d %H:00:00'), \
             `action`, SUM(`repeat`) FROM `{t}` WHERE {range} GROUP BY 1, 2 \
             ON DUPLICATE KEY UPDATE `n` = `n` - VALUES(`n`)"
        ),
        format!(
            "INSERT INTO `{t}{SOURCE}` (`src`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`src`,''), {agg} FROM `{t}` WHERE {range} GROUP BY 1 {sub}"
        ),
        format!(
            "INSERT INTO `{t}{ICMP}` (`src`,`dst`,`action`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`src`,''), COALESCE(`dst`,''), `action`, {agg} \
             FROM `{t}` WHERE {range} AND `proto` IN ('ICMP','ICMPv6') GROUP BY 1, 2, 3 {sub}"
        ),
        format!(
            "INSERT INTO `{t}{PORT}` (`dpt`,`proto`,`action`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`dpt`,-1), COALESCE(`proto`,''), `action`, {agg} FROM `{t}` WHERE {range} \
             GROUP BY 1, 2, 3 {sub}"
        ),
        format!(
            "INSERT INTO `{t}{INPORT}` (`dpt`,`action`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`dpt`,-1), `action`, {agg} FROM `{t}` WHERE {range} AND `if_in` <> '' \
             GROUP BY 1, 2 {sub}"
        ),
        format!(
            "INSERT INTO `{t}{IFACE}` (`if_in`,`action`,`proto`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`if_in`,''), `action`, COALESCE(`proto`,''), {agg} FROM `{t}` WHERE {range} \
             GROUP BY 1, 2, 3 {sub}"
        ),
    ];
    for q in stmts {
        tx.exec_drop(q, p(wk)).map_err(sql_err)?;
    }
    // The range's (source, destination) pairs, again below for the ones left with nothing
    // (the pair table has no index on its count).
    let pairs = |what: &str| {
        format!("SELECT COALESCE(`src`,'') AS `s`, `{what}` AS `x` FROM `{t}` WHERE {range} AND `{what}` IS NOT NULL GROUP BY 1, 2")
    };
    tx.exec_drop(
        format!(
            "INSERT INTO `{t}{SRC_DST}` (`src`,`dst`,`n`) \
             SELECT COALESCE(`src`,''), `dst`, SUM(`repeat`) FROM `{t}` WHERE {range} AND `dst` IS NOT NULL \
             GROUP BY 1, 2 ON DUPLICATE KEY UPDATE `n` = `n` - VALUES(`n`)"
        ),
        p(wk),
    )
    .map_err(sql_err)?;
    tx.exec_drop(
        format!(
            "DELETE d FROM `{t}{SRC_DST}` d JOIN ({}) r ON d.`src` = r.`s` AND d.`dst` = r.`x` WHERE d.`n` = 0",
            pairs("dst")
        ),
        p(wk),
    )
    .map_err(sql_err)?;
    // The per-source lane: flows, then the ports of a source whose every flow row of that
    // port is left with nothing.
    tx.exec_drop(
        format!(
            "INSERT INTO `{t}{FLOW}` (`src`,`dpt`,`action`,`proto`,`n`,`first_ts`,`last_ts`,`nb`,`mark`) \
             SELECT COALESCE(`src`,''), COALESCE(`dpt`,-1), `action`, COALESCE(`proto`,''), {agg}, 0 \
             FROM `{t}` WHERE {range} GROUP BY 1, 2, 3, 4 {sub}"
        ),
        p(ws),
    )
    .map_err(sql_err)?;
    tx.exec_drop(
        format!(
            "INSERT INTO `{t}{SCAN}` (`src`,`ports`,`pb`) \
             SELECT r.`s`, COUNT(*), 0 FROM ({}) r \
             WHERE NOT EXISTS (SELECT 1 FROM `{t}{FLOW}` o WHERE o.`src` = r.`s` AND o.`dpt` = r.`x` AND o.`n` > 0) \
             GROUP BY r.`s` \
             ON DUPLICATE KEY UPDATE `pb` = IF(`ports` = VALUES(`ports`), 0, CHAR_LENGTH(BIN(`ports` - VALUES(`ports`)))), \
             `ports` = `ports` - VALUES(`ports`)",
            pairs("dpt")
        ),
        p(ws),
    )
    .map_err(sql_err)?;
    tx.query_drop(format!("DELETE FROM `{t}{SCAN}` WHERE `pb` = 0")).map_err(sql_err)?;
    for s in [ICMP, PORT, INPORT, IFACE, SOURCE] {
        tx.query_drop(format!("DELETE FROM `{t}{s}` WHERE `nb` = 0")).map_err(sql_err)?;
    }
    // The per-flow summary has no index on `nb` alone: reach its emptied rows through
    // `(action, nb)`, per action.
    for (a, _) in flow_actions(tx, t).map_err(sql_err)? {
        tx.exec_drop(format!("DELETE FROM `{t}{FLOW}` WHERE `action` = ? AND `nb` = 0"), (a,))
            .map_err(sql_err)?;
    }
    tx.query_drop(format!("DELETE FROM `{t}{HOUR}` WHERE `n` = 0")).map_err(sql_err)?;
    tx.query_drop(format!("DELETE FROM `{t}{BUCKET}` WHERE `n` = 0")).map_err(sql_err)?;
    Ok(())
}
