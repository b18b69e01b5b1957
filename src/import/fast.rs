//! The import's fast path: fresh rows travel as `LOAD DATA LOCAL INFILE` (measured on this
//! machine, the server spends about half the CPU per row on it that it spends on multi-row
//! prepared INSERTs), inside the same kind of transaction as the store's [`Writer`], with the
//! summary hook called before the commit, so what ends up stored and counted is identical.
//!
//! It takes only the easy case: when every row of the batch is new and the server changed no
//! value (no warning at all). Anything else (a row already present, a value the server had to
//! truncate, a server that does not allow LOCAL INFILE) rolls the transaction back and hands
//! the batch to the [`Writer`], which counts duplicates exactly and reports bad values as
//! errors. While batches keep finding duplicates (a re-import), the writer takes them directly.

use std::io::Write;

use mysql::prelude::Queryable;
use mysql::{LocalInfileHandler, TxOpts};

use crate::import::Sink;
use crate::record::RecordBatch;
use crate::store::loaddata::batch_file;
use crate::store::row::INSERT_COLUMNS;
use crate::store::writer::{WriteStats, Writer};
use crate::store::{map_err, StoreError};

/// A [`Sink`] that tries `LOAD DATA LOCAL INFILE` first and falls back to the [`Writer`].
pub struct LoadDataSink {
    writer: Writer,
    table: String,
    sql: String,
    /// The server refused LOCAL INFILE once: the writer takes everything.
    disabled: bool,
    /// The last batch had duplicates: the writer takes the next one directly.
    duplicates_seen: bool,
    inserted: Vec<bool>,
}

impl LoadDataSink {
    /// `table` must be validated (`store::validate_identifier`).
    pub fn new(conn: mysql::Conn, table: &str) -> Self {
        let cols: Vec<String> = INSERT_COLUMNS.iter().map(|c| format!("`{c}`")).collect();
        let sql = format!(
            "LOAD DATA LOCAL INFILE 'ipta-import.tsv' IGNORE INTO TABLE `{table}` CHARACTER SET binary \
             FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
            cols.join(",")
        );
        LoadDataSink {
            writer: Writer::new(conn, table),
            table: table.to_string(),
            sql,
            disabled: false,
            duplicates_seen: false,
            inserted: Vec::new(),
        }
    }

    /// Some(stats) when the whole batch went in as new rows; None when the writer must take it
    /// (the transaction was rolled back).
    fn try_load(&mut self, batch: &RecordBatch) -> Result<Option<WriteStats>, StoreError> {
        let n = batch.len();
        // A record the writer would refuse (a time outside DATETIME) is the writer's to report.
        let Ok(file) = batch_file(batch) else { return Ok(None) };
        let table = self.table.as_str();
        let conn = self.writer.conn();
        let mut file = Some(file);
        conn.set_local_infile_handler(Some(LocalInfileHandler::new(move |_name, sink| {
            if let Some(f) = file.take() {
                sink.write_all(&f)?;
            }
            Ok(())
        })));
        let result = (|| {
            let mut tx = conn.start_transaction(TxOpts::default()).map_err(|e| map_err(e, table))?;
            if let Err(e) = tx.query_drop(&self.sql) {
                let refused = matches!(&e, mysql::Error::MySqlError(m) if matches!(m.code, 1148 | 3948 | 2068 | 4166));
                let e = map_err(e, table);
                if e.is_retryable() {
                    return Err(e);
                }
                let _ = tx.rollback();
                if refused {
                    self.disabled = true;
                }
                return Ok(None);
            }
            if tx.affected_rows() != n as u64 || tx.warnings() > 0 {
                tx.rollback().map_err(|e| map_err(e, table))?;
                return Ok(None);
            }
            self.inserted.clear();
            self.inserted.resize(n, true);
            crate::store::summary::on_insert(&mut tx, table, batch, &self.inserted)?;
            tx.commit().map_err(|e| map_err(e, table))?;
            Ok(Some(WriteStats { inserted: n as u64, duplicates: 0 }))
        })();
        conn.set_local_infile_handler(None);
        result
    }
}

impl Sink for LoadDataSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<WriteStats, StoreError> {
        if batch.is_empty() {
            return Ok(WriteStats::default());
        }
        if !self.disabled && !self.duplicates_seen {
            if let Some(stats) = self.try_load(batch)? {
                return Ok(stats);
            }
        }
        let stats = self.writer.write(batch)?;
        self.duplicates_seen = stats.duplicates > 0;
        Ok(stats)
    }
}
