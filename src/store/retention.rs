//! Retention: deleting packets older than an age (`ipta --expire 30d`, `expire = 30d`).
//!
//! A table that grows for years is not trimmed with one `DELETE ... WHERE ts < cutoff`: that one
//! transaction would lock millions of rows until it ends, grow the undo and binary logs by as
//! much, take as long again to roll back when interrupted, and exceed the transaction limits of
//! clustered engines (Galera, TiDB). `expire` instead walks the `uk_line (ts, line_hash, occ)` index from the oldest row
//! and deletes in chunks of about `chunk_rows` rows, each chunk its own short transaction over a
//! range of `ts`. Chunk ranges are half-open `[from, to)` with `to` the timestamp of the first row
//! of the next chunk, so a chunk never splits the rows of one timestamp (a chunk can therefore
//! exceed `chunk_rows` only when more than that many rows share one microsecond).
//!
//! Inside each chunk's transaction the range is first locked with a locking read, then the
//! summary tables are told (`summary::on_delete_range`), then the rows are deleted: summaries
//! change in the same transaction as the rows, and a writer inserting an old row into the range
//! at that moment waits for the chunk instead of slipping between the summary and the delete.
//! Writers inserting current packets never touch those old ranges, so they are not held up.

use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::TxOpts;

use crate::record::Timestamp;
use crate::store::value::ts_value;
use crate::store::{map_err, summary, validate_identifier, StoreError};

/// Rows per chunk when the caller has no better idea. Measured (tests/it/retention.rs, 2 cores,
/// MariaDB 10.11, moderate load): with 1,000-row chunks a concurrent writer's longest stall was
/// 4-38 ms, with 5,000 65-90 ms, with 20,000 ~140 ms (a chunk's commit delays the writer's).
/// Larger chunks delete faster on a busy machine (`cargo bench --bench expire`, README.md).
pub const DEFAULT_CHUNK_ROWS: usize = 1_000;

/// How often a long-running process (ipta-ingest) applies the configured retention.
pub const EXPIRE_INTERVAL: Duration = Duration::from_secs(3600);

/// What one `expire` run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpireStats {
    /// Rows deleted.
    pub rows: u64,
    /// Chunks (transactions) used.
    pub chunks: u64,
    /// The oldest row left in the table afterwards (`None`: the table is empty).
    pub oldest_remaining: Option<Timestamp>,
}

impl ExpireStats {
    /// One line for people: what went, up to when, and what is left.
    pub fn describe(&self, table: &str, cutoff: Timestamp) -> String {
        let left = match self.oldest_remaining {
            Some(t) => format!("oldest packet left: {}", t.to_rfc3339()),
            None => "the table is now empty".to_string(),
        };
        format!(
            "expired {} packet{} older than {} from {table} in {} chunk{}; {left}",
            self.rows,
            if self.rows == 1 { "" } else { "s" },
            cutoff.to_rfc3339(),
            self.chunks,
            if self.chunks == 1 { "" } else { "s" },
        )
    }
}

/// Expires what is older than `age` now: the cutoff is the current time minus `age`.
/// Returns the cutoff used with the statistics.
pub fn expire_older_than(
    conn: &mut mysql::Conn,
    table: &str,
    age: Duration,
    chunk_rows: usize,
) -> Result<(Timestamp, ExpireStats), StoreError> {
    let now = Timestamp(chrono::Utc::now().timestamp_micros());
    let cutoff = cutoff_before(now, age);
    Ok((cutoff, expire(conn, table, cutoff, chunk_rows)?))
}

/// Deletes the rows of `table` with `ts < cutoff` (a row at exactly `cutoff` stays), in chunks of
/// about `chunk_rows` rows, each in its own transaction. Safe to interrupt and to run again: every
/// committed chunk is final and a second run continues where the first stopped. The summary
/// tables are kept exact through `summary::on_delete_range`.
pub fn expire(
    conn: &mut mysql::Conn,
    table: &str,
    cutoff: Timestamp,
    chunk_rows: usize,
) -> Result<ExpireStats, StoreError> {
    expire_with(conn, table, cutoff, chunk_rows, summary::on_delete_range)
}

/// [`expire`] with another hook in place of `summary::on_delete_range`: `before_delete(tx,
/// table, from, to)` runs in each chunk's transaction after the range `from <= ts < to` is
/// locked and before its rows are deleted. An error from it rolls the chunk back and ends
/// the run.
pub fn expire_with<H>(
    conn: &mut mysql::Conn,
    table: &str,
    cutoff: Timestamp,
    chunk_rows: usize,
    mut before_delete: H,
) -> Result<ExpireStats, StoreError>
where
    H: FnMut(&mut mysql::Transaction<'_>, &str, Timestamp, Timestamp) -> Result<(), StoreError>,
{
    let table = validate_identifier(table)?;
    let chunk_rows = chunk_rows.max(1);
    let mut stats = ExpireStats::default();
    // Every ts travels as TIMESTAMPDIFF(MICROSECOND, epoch, ts): exact and independent of the
    // session time zone (DATETIME carries none; ipta stores UTC).
    let first_sql = format!(
        "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01', `ts`) FROM `{table}` \
         WHERE `ts` < ? ORDER BY `ts` LIMIT 1"
    );
    let boundary_sql = format!(
        "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01', `ts`) FROM `{table}` \
         WHERE `ts` >= ? AND `ts` < ? ORDER BY `ts` LIMIT 1 OFFSET ?"
    );
    let next_sql = format!(
        "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01', `ts`) FROM `{table}` \
         WHERE `ts` > ? AND `ts` < ? ORDER BY `ts` LIMIT 1"
    );
    let lock_sql =
        format!("SELECT COUNT(*) FROM `{table}` WHERE `ts` >= ? AND `ts` < ? FOR UPDATE");
    let delete_sql = format!("DELETE FROM `{table}` WHERE `ts` >= ? AND `ts` < ?");

    loop {
        let from: Option<i64> = conn
            .exec_first(&first_sql, (ts_value(cutoff),))
            .map_err(|e| map_err(e, table))?;
        let Some(from) = from.map(Timestamp) else {
            break;
        };
        // The chunk ends where the row after the first `chunk_rows` rows begins.
        let to: Option<i64> = conn
            .exec_first(
                &boundary_sql,
                (ts_value(from), ts_value(cutoff), chunk_rows as u64),
            )
            .map_err(|e| map_err(e, table))?;
        let to = match to.map(Timestamp) {
            None => cutoff,
            Some(t) if t > from => t,
            // More than chunk_rows rows share `from`: take that whole timestamp in one chunk.
            Some(_) => conn
                .exec_first::<i64, _, _>(&next_sql, (ts_value(from), ts_value(cutoff)))
                .map_err(|e| map_err(e, table))?
                .map(Timestamp)
                .unwrap_or(cutoff),
        };
        stats.rows += delete_chunk(
            conn,
            table,
            (from, to),
            (&lock_sql, &delete_sql),
            &mut before_delete,
        )?;
        stats.chunks += 1;
    }

    let oldest: Option<Option<i64>> = conn
        .exec_first(
            format!("SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01', MIN(`ts`)) FROM `{table}`"),
            (),
        )
        .map_err(|e| map_err(e, table))?;
    stats.oldest_remaining = oldest.flatten().map(Timestamp);
    Ok(stats)
}

/// One chunk: lock the range, tell the summaries, delete, commit. A deadlock or lock wait
/// timeout (a writer inserting old rows into the same range) rolls the chunk back; it is tried
/// again a few times before giving up.
fn delete_chunk<H>(
    conn: &mut mysql::Conn,
    table: &str,
    (from, to): (Timestamp, Timestamp),
    (lock_sql, delete_sql): (&str, &str),
    before_delete: &mut H,
) -> Result<u64, StoreError>
where
    H: FnMut(&mut mysql::Transaction<'_>, &str, Timestamp, Timestamp) -> Result<(), StoreError>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = (|| -> Result<u64, ChunkError> {
            let mut tx = conn.start_transaction(TxOpts::default())?;
            let _locked: Option<u64> = tx.exec_first(lock_sql, (ts_value(from), ts_value(to)))?;
            before_delete(&mut tx, table, from, to).map_err(ChunkError::Summary)?;
            tx.exec_drop(delete_sql, (ts_value(from), ts_value(to)))?;
            let n = tx.affected_rows();
            tx.commit()?;
            Ok(n)
        })();
        match result {
            Ok(n) => return Ok(n),
            Err(ChunkError::Db(e)) if attempt < 4 && is_lock_conflict(&e) => {
                std::thread::sleep(Duration::from_millis(50 * attempt));
            }
            Err(ChunkError::Db(e)) => return Err(map_err(e, table)),
            // The transaction was dropped, so rolled back: no row deleted without its summary.
            Err(ChunkError::Summary(e)) => return Err(e),
        }
    }
}

/// Why a chunk's transaction failed: the database, or the summary hook (already a StoreError).
enum ChunkError {
    Db(mysql::Error),
    Summary(StoreError),
}

impl From<mysql::Error> for ChunkError {
    fn from(e: mysql::Error) -> Self {
        ChunkError::Db(e)
    }
}

fn is_lock_conflict(e: &mysql::Error) -> bool {
    // 1213 deadlock, 1205 lock wait timeout: the transaction was rolled back, nothing happened.
    matches!(e, mysql::Error::MySqlError(m) if m.code == 1213 || m.code == 1205)
}

pub use crate::units::parse_age;

/// The cutoff for keeping `age` before `now`: rows with `ts < cutoff` are expired.
pub fn cutoff_before(now: Timestamp, age: Duration) -> Timestamp {
    Timestamp(
        now.0
            .saturating_sub(age.as_micros().min(i64::MAX as u128) as i64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_now_minus_age() {
        let now = Timestamp(1_000_000_000_000_000);
        assert_eq!(
            cutoff_before(now, Duration::from_secs(1)),
            Timestamp(999_999_999_000_000)
        );
    }

    #[test]
    fn stats_read_well() {
        let st = ExpireStats {
            rows: 1,
            chunks: 1,
            oldest_remaining: None,
        };
        assert_eq!(
            st.describe("logs", Timestamp(0)),
            "expired 1 packet older than 1970-01-01T00:00:00.000000Z from logs in 1 chunk; the table is now empty"
        );
    }


}
