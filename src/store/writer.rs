//! The batch writer: one transaction per batch, idempotent (see `dedup`), summaries kept exact.
//!
//! Rows travel as prepared multi-row `INSERT IGNORE` statements of up to 1,000 rows (the
//! fastest portable way measured, on par with `LOAD DATA LOCAL INFILE`; see
//! shared/notes/mysql.md). The statement texts are cached per row count and the remainder of a
//! batch is cut into power-of-two sizes, so a long-running writer prepares at most a dozen
//! distinct statements whatever its batch sizes.
//!
//! Duplicates are detected exactly, because the summary tables must count each row once:
//! - optimistic path (fresh data, the usual case): insert everything; if the server reports as
//!   many affected rows as rows sent, every row is new;
//! - otherwise the transaction is rolled back and redone pessimistically: the existing keys of
//!   the batch's time range are read first and only the new rows are sent. When the affected
//!   count still differs (another writer committed the same keys meanwhile), the batch is redone.
//!
//! The writer stays pessimistic while batches keep finding duplicates (a re-import), and goes
//! back to the optimistic path after a batch without any.

use std::collections::{HashMap, HashSet};

use mysql::prelude::Queryable;
use mysql::{TxOpts, Value};

use crate::record::RecordBatch;
use crate::store::dedup::record_hash;
use crate::store::row::{for_each_cell, sql_time, Cell, CivilTime, INSERT_COLUMNS};
use crate::store::{map_err, StoreError};

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Rows added.
    pub inserted: u64,
    /// Rows that were there already (same `(ts, line_hash, occ)`).
    pub duplicates: u64,
}

/// Rows per INSERT statement: 1,000 is where the measured rate levels off; the placeholder cap
/// (65,535 per statement) would allow 1,310 rows of 50 columns.
const MAX_ROWS_PER_STATEMENT: usize = 1000;

/// How often a batch is redone when concurrent writers keep inserting the same keys.
const MAX_ATTEMPTS: u32 = 5;

/// Writes batches of records into one packet table. A batch's tags are the rows' `occ`.
pub struct Writer {
    conn: mysql::Conn,
    table: String,
    /// INSERT texts by row count.
    sql: HashMap<usize, String>,
    rows_per_statement: usize,
    /// Per-batch scratch, kept to avoid allocating per batch.
    hashes: Vec<u64>,
    todo: Vec<u32>,
    inserted: Vec<bool>,
    pessimistic: bool,
}

impl Writer {
    /// `table` must be validated (`store::validate_identifier`).
    pub fn new(conn: mysql::Conn, table: &str) -> Self {
        Writer {
            conn,
            table: table.to_string(),
            sql: HashMap::new(),
            rows_per_statement: MAX_ROWS_PER_STATEMENT.min(65_535 / INSERT_COLUMNS.len()),
            hashes: Vec::new(),
            todo: Vec::new(),
            inserted: Vec::new(),
            pessimistic: false,
        }
    }

    /// The connection, e.g. for queries between batches.
    pub fn conn(&mut self) -> &mut mysql::Conn {
        &mut self.conn
    }

    /// Swaps in a new connection after the old one was lost (`StoreError::is_retryable`).
    pub fn reconnect(&mut self, conn: mysql::Conn) {
        self.conn = conn;
    }

    /// Gives the connection back.
    pub fn into_conn(self) -> mysql::Conn {
        self.conn
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes the batch in one transaction: all rows or none. Rows already present are
    /// counted as duplicates, not written again.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<WriteStats, StoreError> {
        let n = batch.len();
        if n == 0 {
            return Ok(WriteStats::default());
        }
        self.hashes.clear();
        for (i, (r, _)) in batch.iter().enumerate() {
            if sql_time(r.ts).is_none() {
                return Err(StoreError::Sql(format!(
                    "record {} of the batch: time {} is outside what DATETIME holds (years 1000-9999)",
                    i + 1,
                    r.ts.micros()
                )));
            }
            self.hashes.push(record_hash(&r));
        }
        if !self.pessimistic {
            if let Some(stats) = self.write_optimistic(batch)? {
                return Ok(stats);
            }
            self.pessimistic = true;
        }
        for _ in 0..MAX_ATTEMPTS {
            if let Some(stats) = self.write_pessimistic(batch)? {
                self.pessimistic = stats.duplicates > 0;
                return Ok(stats);
            }
        }
        Err(StoreError::Sql(format!(
            "table {}: the batch kept colliding with rows other writers inserted at the same time; \
             gave up after {MAX_ATTEMPTS} attempts",
            self.table
        )))
    }

    /// Inserts every row; None (rolled back) when some were already there.
    fn write_optimistic(&mut self, batch: &RecordBatch) -> Result<Option<WriteStats>, StoreError> {
        let n = batch.len();
        self.todo.clear();
        self.todo.extend(0..n as u32);
        let table = self.table.as_str();
        let mut tx = self
            .conn
            .start_transaction(TxOpts::default())
            .map_err(|e| map_err(e, table))?;
        let affected = insert_rows(
            &mut tx,
            &mut self.sql,
            self.rows_per_statement,
            table,
            batch,
            &self.hashes,
            &self.todo,
        )
        .map_err(|e| map_err(e, table))?;
        if affected != n as u64 {
            tx.rollback().map_err(|e| map_err(e, table))?;
            return Ok(None);
        }
        self.inserted.clear();
        self.inserted.resize(n, true);
        crate::store::summary::on_insert(&mut tx, table, batch, &self.inserted)?;
        tx.commit().map_err(|e| map_err(e, table))?;
        Ok(Some(WriteStats {
            inserted: n as u64,
            duplicates: 0,
        }))
    }

    /// Reads the existing keys first, inserts the rest; None (rolled back) when another writer
    /// got in between.
    fn write_pessimistic(&mut self, batch: &RecordBatch) -> Result<Option<WriteStats>, StoreError> {
        let n = batch.len();
        let table = self.table.as_str();
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for (r, _) in batch.iter() {
            lo = lo.min(r.ts.micros());
            hi = hi.max(r.ts.micros());
        }
        let mut tx = self
            .conn
            .start_transaction(TxOpts::default())
            .map_err(|e| map_err(e, table))?;
        let mut keys: HashSet<(i64, u64, u64)> = HashSet::new();
        tx.exec_map(
            format!("SELECT `ts`, `line_hash`, `occ` FROM `{table}` WHERE `ts` BETWEEN ? AND ?"),
            (
                date_value(CivilTime::from_micros(lo)),
                date_value(CivilTime::from_micros(hi)),
            ),
            |(ts, h, o): (Value, u64, u64)| {
                if let Some(us) = micros_of(&ts) {
                    keys.insert((us, h, o));
                }
            },
        )
        .map_err(|e| map_err(e, table))?;
        self.todo.clear();
        self.inserted.clear();
        for (i, (r, occ)) in batch.iter().enumerate() {
            // `insert` is false for keys present before or seen earlier in this batch.
            let new = keys.insert((r.ts.micros(), self.hashes[i], occ));
            self.inserted.push(new);
            if new {
                self.todo.push(i as u32);
            }
        }
        let expected = self.todo.len() as u64;
        let affected = insert_rows(
            &mut tx,
            &mut self.sql,
            self.rows_per_statement,
            table,
            batch,
            &self.hashes,
            &self.todo,
        )
        .map_err(|e| map_err(e, table))?;
        if affected != expected {
            tx.rollback().map_err(|e| map_err(e, table))?;
            return Ok(None);
        }
        crate::store::summary::on_insert(&mut tx, table, batch, &self.inserted)?;
        tx.commit().map_err(|e| map_err(e, table))?;
        Ok(Some(WriteStats {
            inserted: expected,
            duplicates: n as u64 - expected,
        }))
    }
}

/// The `INSERT IGNORE` text for `rows` rows.
fn insert_sql(table: &str, rows: usize) -> String {
    let cols: Vec<String> = INSERT_COLUMNS.iter().map(|c| format!("`{c}`")).collect();
    let one = format!("({})", vec!["?"; INSERT_COLUMNS.len()].join(","));
    let mut s = format!("INSERT IGNORE INTO `{table}` ({}) VALUES ", cols.join(","));
    s.reserve(rows * (one.len() + 1));
    for i in 0..rows {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&one);
    }
    s
}

fn date_value(c: CivilTime) -> Value {
    Value::Date(
        c.year as u16,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.micro,
    )
}

/// Microseconds of a DATETIME read back from the server.
fn micros_of(v: &Value) -> Option<i64> {
    match *v {
        Value::Date(y, mo, d, h, mi, s, us) => Some(
            CivilTime {
                year: i32::from(y),
                month: mo,
                day: d,
                hour: h,
                minute: mi,
                second: s,
                micro: us,
            }
            .to_micros(),
        ),
        _ => None,
    }
}

fn push_cell(out: &mut Vec<Value>, c: Cell<'_>) {
    out.push(match c {
        Cell::Null => Value::NULL,
        Cell::UInt(v) => Value::UInt(v),
        Cell::Bool(b) => Value::Int(i64::from(b)),
        Cell::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
        Cell::Ip(b, len) => Value::Bytes(b[..len as usize].to_vec()),
        Cell::DateTime(t) => date_value(t),
    });
}

fn is_packet_too_large(e: &mysql::Error) -> bool {
    use mysql_common::proto::codec::error::PacketCodecError;
    matches!(
        e,
        mysql::Error::CodecError(PacketCodecError::PacketTooLarge)
            | mysql::Error::DriverError(mysql::DriverError::PacketTooLarge)
    )
}

/// Inserts the rows `idx` of the batch; returns the affected (really inserted) count.
fn insert_rows(
    tx: &mut mysql::Transaction<'_>,
    sql: &mut HashMap<usize, String>,
    per_statement: usize,
    table: &str,
    batch: &RecordBatch,
    hashes: &[u64],
    idx: &[u32],
) -> Result<u64, mysql::Error> {
    let mut affected = 0;
    let mut rest = idx;
    while !rest.is_empty() {
        // Full statements, then the remainder in power-of-two pieces (few distinct texts).
        let take = if rest.len() >= per_statement {
            per_statement
        } else {
            1usize << (usize::BITS - 1 - rest.len().leading_zeros())
        };
        let (chunk, tail) = rest.split_at(take);
        affected += insert_chunk(tx, sql, table, batch, hashes, chunk)?;
        rest = tail;
    }
    Ok(affected)
}

/// One statement; halves the chunk when the packet would exceed `max_allowed_packet` (the
/// driver notices before sending, so the connection stays usable).
fn insert_chunk(
    tx: &mut mysql::Transaction<'_>,
    sql: &mut HashMap<usize, String>,
    table: &str,
    batch: &RecordBatch,
    hashes: &[u64],
    chunk: &[u32],
) -> Result<u64, mysql::Error> {
    let mut values = Vec::with_capacity(chunk.len() * INSERT_COLUMNS.len());
    for &i in chunk {
        let (r, occ) = batch.get(i as usize);
        for_each_cell(&r, hashes[i as usize], occ, |c| push_cell(&mut values, c));
    }
    let text = sql
        .entry(chunk.len())
        .or_insert_with(|| insert_sql(table, chunk.len()));
    match tx.exec_drop(text.as_str(), values) {
        Ok(()) => Ok(tx.affected_rows()),
        Err(e) if is_packet_too_large(&e) && chunk.len() > 1 => {
            let (a, b) = chunk.split_at(chunk.len() / 2);
            Ok(insert_chunk(tx, sql, table, batch, hashes, a)?
                + insert_chunk(tx, sql, table, batch, hashes, b)?)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_has_one_placeholder_per_cell() {
        let s = insert_sql("logs", 3);
        assert_eq!(s.matches('?').count(), 3 * INSERT_COLUMNS.len());
        assert!(s.starts_with("INSERT IGNORE INTO `logs` (`ts`,`host`"));
        assert!(s.contains("`repeat`"));
    }

    #[test]
    fn dates_read_back_as_micros() {
        let us = 1_762_320_908_123_456;
        assert_eq!(micros_of(&date_value(CivilTime::from_micros(us))), Some(us));
        assert_eq!(micros_of(&Value::NULL), None);
    }
}
