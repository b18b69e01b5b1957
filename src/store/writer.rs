//! The batch writer: one transaction per batch, idempotent (see `dedup`), summaries kept exact.

use crate::record::RecordBatch;
use crate::store::StoreError;

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Rows added.
    pub inserted: u64,
    /// Rows that were there already (same `(ts, line_hash, occ)`).
    pub duplicates: u64,
}

/// Writes batches of records into one packet table. A batch's tags are the rows' `occ`.
pub struct Writer {
    conn: mysql::Conn,
    table: String,
}

impl Writer {
    /// `table` must be validated (`store::validate_identifier`).
    pub fn new(conn: mysql::Conn, table: &str) -> Self {
        Writer { conn, table: table.to_string() }
    }

    /// Writes the batch in one transaction: all rows or none. Rows already present are
    /// counted as duplicates, not written again.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<WriteStats, StoreError> {
        let _ = (&mut self.conn, &self.table, batch);
        Err(StoreError::Sql("writer not implemented yet".into()))
    }
}
