//! The locks that keep the summaries exact while writers, folders and retention run at once:
//! the writers' gate (row 1 of the state table, shared) and the two lanes' watermarks (rows 2
//! and 3, each exclusive to one fold chunk of its lane or one retention chunk at a time; taken
//! in that order).

use mysql::prelude::Queryable;
use mysql::{IsolationLevel, TxOpts};

use super::*;
use crate::store::StoreError;

/// The statement [`gate`] runs for `table` (validated by the caller); writers keep it.
pub fn gate_sql(table: &str) -> String {
    format!("SELECT `k` FROM `{table}{STATE}` WHERE `k` = 1 LOCK IN SHARE MODE")
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

pub(super) fn read_committed() -> TxOpts {
    TxOpts::default().set_isolation_level(Some(IsolationLevel::ReadCommitted))
}

/// Locks the watermark row of `lane` (row 2 or 3 of the state table) and returns its `w`:
/// None when the table has no summaries.
pub(super) fn lock_watermark(tx: &mut mysql::Transaction<'_>, table: &str, lane: Lane) -> Result<Option<u64>, StoreError> {
    match lock_row(tx, table, lane)? {
        Some(Some(w)) => Ok(Some(w)),
        Some(None) => Err(StoreError::Sql(format!(
            "the summary state of table {table} is damaged (row {k} of {table}{STATE} is missing); \
             rebuild the summaries: ipta --clear keeps nothing, so drop the {table}__s* tables \
             and run ipta --analyze",
            k = lane.state_row()
        ))),
        None => Ok(None),
    }
}

/// Like [`lock_watermark`], but a missing row is `Ok(None)` too: retention meets the single
/// watermark of an older ipta's set that way (see `on_delete_range`).
pub(super) fn lock_watermark_if_any(
    tx: &mut mysql::Transaction<'_>,
    table: &str,
    lane: Lane,
) -> Result<Option<u64>, StoreError> {
    Ok(lock_row(tx, table, lane)?.flatten())
}

/// The lane's row locked: None without the state table, Some(None) without the row.
fn lock_row(tx: &mut mysql::Transaction<'_>, table: &str, lane: Lane) -> Result<Option<Option<u64>>, StoreError> {
    let k = lane.state_row();
    match tx.query_first::<u64, _>(format!("SELECT `w` FROM `{table}{STATE}` WHERE `k` = {k} FOR UPDATE")) {
        Ok(w) => Ok(Some(w)),
        Err(mysql::Error::MySqlError(me)) if me.code == 1146 => Ok(None),
        Err(e) => Err(sql_err(e)),
    }
}
