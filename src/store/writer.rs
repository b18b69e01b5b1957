//! The batch writer: one transaction per batch, idempotent (see `record::dedup`).
//!
//! Two ways of sending rows, chosen per writer ([`WriteMethod`]):
//! - `LOAD DATA LOCAL INFILE ... IGNORE` of the batch streamed from memory (the default): the
//!   server's fastest path. The rows travel as a tab-separated data stream with every special
//!   byte escaped, never as SQL text, so a forged log line cannot change the statement.
//! - prepared multi-row `INSERT IGNORE` statements of up to 1,000 rows: the fallback when the
//!   server refuses LOCAL INFILE (MySQL 8 turns `local_infile` off by default). Measured on this
//!   50-column table it reaches about two thirds of LOAD DATA's rate: the server's per-placeholder
//!   work dominates. Statement texts are cached per row count and the remainder of a batch is
//!   cut into power-of-two sizes, so a writer prepares at most a dozen distinct statements.
//!
//! Duplicates are skipped by the unique key (`IGNORE`) and counted from the server's affected
//! rows. The summary tables are not written here: they follow the packet table behind the
//! writers (`summary::fold`); each transaction only takes the summaries' gate first.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use mysql::prelude::Queryable;
use mysql::{TxOpts, Value};

use crate::record::RecordBatch;
use crate::record::dedup::record_hash;
use crate::store::row::{for_each_cell, Cell, INSERT_COLUMNS};
use crate::store::value::{datetime_value, sql_time};
pub use crate::store::WriteStats;
use crate::store::{loaddata, map_err, summary, StoreError};

/// Rows per INSERT statement: 1,000 is where the measured rate levels off; the placeholder cap
/// (65,535 per statement) would allow 1,310 rows of 50 columns.
const MAX_ROWS_PER_STATEMENT: usize = 1000;

/// How often a batch is redone when its table's summaries keep appearing and disappearing.
const MAX_ATTEMPTS: u32 = 5;

/// How a [`Writer`] sends rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMethod {
    /// LOAD DATA LOCAL INFILE, falling back to `Insert` for good when the server refuses it.
    Auto,
    /// LOAD DATA LOCAL INFILE only.
    LoadData,
    /// Prepared multi-row INSERT only.
    Insert,
}

/// Writes batches of records into one packet table. A batch's tags are the rows' `occ`.
pub struct Writer {
    conn: mysql::Conn,
    table: String,
    send: Sender,
    /// Set when the last failure was the server refusing LOCAL INFILE.
    refused: bool,
    /// Per-batch scratch, kept to avoid allocating per batch.
    hashes: Vec<u64>,
    /// `summary::gate_sql` of the table, run first in every transaction.
    gate_sql: String,
    /// Whether the last batch found summary tables (then the gate is taken first).
    summaries: bool,
}

impl Writer {
    /// `table` must be validated (`store::validate_identifier`).
    pub fn new(conn: mysql::Conn, table: &str) -> Self {
        let file = Arc::new(Mutex::new(Vec::new()));
        let mut conn = conn;
        install_handler(&mut conn, &file);
        Writer {
            conn,
            table: table.to_string(),
            send: Sender {
                method: WriteMethod::Auto,
                table: table.to_string(),
                sql: HashMap::new(),
                rows_per_statement: MAX_ROWS_PER_STATEMENT.min(65_535 / INSERT_COLUMNS.len()),
                file,
                load_sql: [
                    loaddata::load_sql(table, false),
                    loaddata::load_sql(table, true),
                ],
                no_backslash_escapes: false,
            },
            refused: false,
            hashes: Vec::new(),
            gate_sql: summary::gate_sql(table),
            summaries: true,
        }
    }

    /// Chooses how rows are sent (the default is [`WriteMethod::Auto`]).
    pub fn with_method(mut self, method: WriteMethod) -> Self {
        self.send.method = method;
        self
    }

    /// How rows are being sent (`Auto` turns into `Insert` when the server refuses LOAD DATA).
    pub fn method(&self) -> WriteMethod {
        self.send.method
    }

    /// The connection, e.g. for queries between batches.
    pub fn conn(&mut self) -> &mut mysql::Conn {
        &mut self.conn
    }

    /// Swaps in a new connection after the old one was lost (`StoreError::is_retryable`).
    pub fn reconnect(&mut self, conn: mysql::Conn) {
        self.conn = conn;
        install_handler(&mut self.conn, &self.send.file);
    }

    /// Gives the connection back.
    pub fn into_conn(mut self) -> mysql::Conn {
        self.conn.set_local_infile_handler(None);
        self.conn
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes the batch in one transaction: all rows or none. Rows already present are
    /// counted as duplicates, not written again.
    /// Nothing is retried here: what an error means is `StoreError::class`'s to say, and the
    /// sink (`store::sink`) acts on it.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<WriteStats, StoreError> {
        self.write_fallback(batch)
    }

    /// One write, switching to INSERT when the server refuses LOAD DATA.
    fn write_fallback(&mut self, batch: &RecordBatch) -> Result<WriteStats, StoreError> {
        self.refused = false;
        match self.write_once(batch) {
            Err(_) if self.refused && self.send.method == WriteMethod::Auto => {
                // The server (or its configuration) does not take LOCAL INFILE: INSERT from now
                // on. Nothing of this batch was written: its transaction was rolled back.
                self.send.method = WriteMethod::Insert;
                self.write_once(batch)
            }
            r => r,
        }
    }

    fn write_once(&mut self, batch: &RecordBatch) -> Result<WriteStats, StoreError> {
        let n = batch.len();
        if n == 0 {
            return Ok(WriteStats::default());
        }
        self.hashes.clear();
        for (i, (r, _)) in batch.iter().enumerate() {
            if sql_time(r.ts).is_none() {
                return Err(StoreError::Refused(format!(
                    "record {} of the batch: time {} is outside what DATETIME holds (years 1000-9999)",
                    i + 1,
                    r.ts.micros()
                )));
            }
            self.hashes.push(record_hash(&r));
        }
        for _ in 0..MAX_ATTEMPTS {
            if let Some(stats) = self.write_gated(batch)? {
                return Ok(stats);
            }
        }
        Err(StoreError::Sql(format!(
            "table {}: its summary tables kept being created and dropped during the batch; \
             gave up after {MAX_ATTEMPTS} attempts",
            self.table
        )))
    }

    /// Inserts the rows (`IGNORE`: those already there are skipped and counted as duplicates)
    /// behind the summaries' gate. None (rolled back) when the summaries were created during
    /// the transaction: the batch must be written again.
    fn write_gated(&mut self, batch: &RecordBatch) -> Result<Option<WriteStats>, StoreError> {
        let n = batch.len();
        self.send.no_backslash_escapes = self.conn.no_backslash_escape();
        let mut tx = self
            .conn
            .start_transaction(TxOpts::default())
            .map_err(|e| map_err(e, &self.table))?;
        // Before any id is taken (see `summary::gate`). While the table has no summaries the
        // check before commit is enough (summaries that appear meanwhile make the batch go
        // again, gated), so the usual case costs one query per batch either way.
        let gated = self.summaries && summary::gate(&mut tx, &self.gate_sql)?;
        let affected = send(
            &mut self.send,
            &mut tx,
            batch,
            &self.hashes,
            &mut self.refused,
        )?;
        if !gated && summary::gate(&mut tx, &self.gate_sql)? {
            self.summaries = true;
            tx.rollback().map_err(|e| map_err(e, &self.table))?;
            return Ok(None);
        }
        self.summaries = gated;
        tx.commit().map_err(|e| map_err(e, &self.table))?;
        Ok(Some(WriteStats {
            inserted: affected,
            duplicates: n as u64 - affected,
        }))
    }
}

/// What sending rows needs, apart from the connection (borrowed by the transaction).
struct Sender {
    method: WriteMethod,
    table: String,
    /// INSERT texts by row count.
    sql: HashMap<usize, String>,
    rows_per_statement: usize,
    /// The LOAD DATA text of the rows being sent, shared with the connection's infile handler.
    file: Arc<Mutex<Vec<u8>>>,
    /// LOAD DATA text for the normal and the `NO_BACKSLASH_ESCAPES` string syntax.
    load_sql: [String; 2],
    no_backslash_escapes: bool,
}

/// Error codes that mean "LOCAL INFILE is not allowed here": 1148 (command not allowed),
/// 3948 (MySQL 8: loading local data is disabled), 2068 (client-side rejection), 4166
/// (MariaDB: LOCAL INFILE disabled).
fn is_local_infile_refusal(e: &mysql::Error) -> bool {
    matches!(e, mysql::Error::MySqlError(m) if matches!(m.code, 1148 | 3948 | 2068 | 4166))
}

/// Sends the rows of the batch; returns how many the server really inserted.
fn send(
    s: &mut Sender,
    tx: &mut mysql::Transaction<'_>,
    batch: &RecordBatch,
    hashes: &[u64],
    refused: &mut bool,
) -> Result<u64, StoreError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let table = s.table.as_str();
    if s.method == WriteMethod::Insert {
        return insert_rows(
            tx,
            &mut s.sql,
            s.rows_per_statement,
            table,
            batch,
            hashes,
        )
        .map_err(|e| map_err(e, table));
    }
    {
        let mut f = s.file.lock().unwrap_or_else(|p| p.into_inner());
        f.clear();
        for (i, (r, occ)) in batch.iter().enumerate() {
            loaddata::put_row(&mut f, &r, hashes[i], occ);
        }
    }
    match tx.query_drop(&s.load_sql[usize::from(s.no_backslash_escapes)]) {
        Ok(()) => {}
        Err(e) => {
            *refused = is_local_infile_refusal(&e);
            return Err(map_err(e, table));
        }
    }
    let affected = tx.affected_rows();
    if tx.warnings() > 0 && affected == batch.len() as u64 {
        // All rows went in, yet the server changed something: refuse silently altered data.
        let bad = loaddata::non_duplicate_warnings(tx).map_err(|e| map_err(e, table))?;
        if !bad.is_empty() {
            return Err(StoreError::Refused(format!(
                "the server changed values while loading (batch rolled back): {}",
                bad.join("; ")
            )));
        }
    }
    Ok(affected)
}

fn install_handler(conn: &mut mysql::Conn, file: &Arc<Mutex<Vec<u8>>>) {
    let file = Arc::clone(file);
    conn.set_local_infile_handler(Some(mysql::LocalInfileHandler::new(move |_name, sink| {
        let f = file.lock().unwrap_or_else(|p| p.into_inner());
        sink.write_all(&f)
    })));
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

fn push_cell(out: &mut Vec<Value>, c: Cell<'_>) {
    out.push(match c {
        Cell::Null => Value::NULL,
        Cell::UInt(v) => Value::UInt(v),
        Cell::Bool(b) => Value::Int(i64::from(b)),
        Cell::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
        Cell::Ip(b, len) => Value::Bytes(b[..len as usize].to_vec()),
        Cell::DateTime(t) => datetime_value(t),
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

/// Inserts the rows of the batch; returns the affected (really inserted) count.
fn insert_rows(
    tx: &mut mysql::Transaction<'_>,
    sql: &mut HashMap<usize, String>,
    per_statement: usize,
    table: &str,
    batch: &RecordBatch,
    hashes: &[u64],
) -> Result<u64, mysql::Error> {
    let mut affected = 0;
    let mut start = 0;
    while start < batch.len() {
        let left = batch.len() - start;
        // Full statements, then the remainder in power-of-two pieces (few distinct texts).
        let take = if left >= per_statement {
            per_statement
        } else {
            1usize << (usize::BITS - 1 - left.leading_zeros())
        };
        affected += insert_chunk(tx, sql, table, batch, hashes, start..start + take)?;
        start += take;
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
    chunk: std::ops::Range<usize>,
) -> Result<u64, mysql::Error> {
    let mut values = Vec::with_capacity(chunk.len() * INSERT_COLUMNS.len());
    for i in chunk.clone() {
        let (r, occ) = batch.get(i);
        for_each_cell(&r, hashes[i], occ, |c| push_cell(&mut values, c));
    }
    let text = sql
        .entry(chunk.len())
        .or_insert_with(|| insert_sql(table, chunk.len()));
    match tx.exec_drop(text.as_str(), values) {
        Ok(()) => Ok(tx.affected_rows()),
        Err(e) if is_packet_too_large(&e) && chunk.len() > 1 => {
            let mid = chunk.start + chunk.len() / 2;
            Ok(insert_chunk(tx, sql, table, batch, hashes, chunk.start..mid)?
                + insert_chunk(tx, sql, table, batch, hashes, mid..chunk.end)?)
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


}
