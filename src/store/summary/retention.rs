//! Retention's side of the summaries: before a chunk of old packet rows is deleted, the rows
//! already folded in are subtracted from every summary, so the summaries stay exact.

use mysql::prelude::Queryable;
use mysql::Value;

use super::fold::next_mark;
use super::gate::{lock_watermark, lock_watermark_if_any};
use super::*;
use crate::record::Timestamp;
use crate::store::StoreError;

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
    // Both lanes, in the folds' order (keys, then sources): no fold of either runs meanwhile.
    let Some(wk) = lock_watermark(tx, t, Lane::Keys)? else {
        return Ok(()); // no summaries
    };
    // No row 3: a set of an older ipta, rebuilt whole by the next report (which does not
    // take it for this one's, see `present`); nothing to keep exact in it meanwhile.
    let Some(ws) = lock_watermark_if_any(tx, t, Lane::Sources)? else {
        return Ok(());
    };
    // Whether the hourly counts keep their rows and id ranges (a set of an older ipta does not).
    let hour_rows = hour_ids(tx, t)?;
    let (cols, vals, shrink) = if hour_rows {
        (
            ",`nrows`",
            ", COUNT(*)",
            "`n_ranged` = `n_ranged` - LEAST(`n_ranged`, VALUES(`n`)), \
             `nrows` = `nrows` - LEAST(`nrows`, VALUES(`nrows`)), ",
        )
    } else {
        ("", "", "")
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
        // An hour keeps its id range (the ids of the rows left lie within it); its rows and
        // ranged packets go down, never below zero (an older ipta's folder may have added to
        // `n` only).
        format!(
            "INSERT INTO `{t}{HOUR}` (`hour`,`action`,`n`{cols}) SELECT DATE_FORMAT(`ts`, '%Y-%m-%d %H:00:00'), \
             `action`, SUM(`repeat`){vals} FROM `{t}` WHERE {range} GROUP BY 1, 2 \
             ON DUPLICATE KEY UPDATE {shrink}`n` = `n` - VALUES(`n`)"
        ),
        format!(
            "INSERT INTO `{t}{FLOW}` (`src`,`action`,`proto`,`dpt`,`n`,`first_ts`,`last_ts`,`nb`) \
             SELECT COALESCE(`src`,''), `action`, COALESCE(`proto`,''), COALESCE(`dpt`,-1), {agg} \
             FROM `{t}` WHERE {range} GROUP BY 1, 2, 3, 4 {sub}"
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
    tx.exec_drop(
        format!(
            "INSERT INTO `{t}{SOURCE}` (`src`,`n`,`first_ts`,`last_ts`,`nb`,`ports`,`hosts`,`pb`) \
             SELECT COALESCE(`src`,''), {agg}, 0, 0, 0 FROM `{t}` WHERE {range} GROUP BY 1 {sub}"
        ),
        p(ws),
    )
    .map_err(sql_err)?;
    // Pairs: those whose count drops to zero get this chunk's mark, then leave, and their
    // sources lose one distinct port (host) each.
    let mark = next_mark();
    for (suffix, col, cond, counter, bucket_col) in [
        (SRC_PORT, "dpt", "`dpt` IS NOT NULL", "ports", Some("pb")),
        (SRC_DST, "dst", "`dst` IS NOT NULL", "hosts", None),
    ] {
        tx.exec_drop(
            format!(
                "INSERT INTO `{t}{suffix}` (`src`,`{col}`,`n`,`mark`) \
                 SELECT COALESCE(`src`,''), `{col}`, SUM(`repeat`), 0 FROM `{t}` WHERE {range} AND {cond} \
                 GROUP BY 1, 2 ON DUPLICATE KEY UPDATE `mark` = IF(`n` = VALUES(`n`), ?, `mark`), \
                 `n` = `n` - VALUES(`n`)"
            ),
            vec![ts_value(from), ts_value(to), Value::UInt(ws), Value::UInt(mark)],
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
                "INSERT INTO `{t}{SOURCE}` (`src`,`n`,`first_ts`,`last_ts`,`nb`,`ports`,`hosts`,`pb`) \
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
