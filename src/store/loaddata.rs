//! `LOAD DATA LOCAL INFILE` of a batch: the same rows with the same column values as the batch
//! writer, streamed from memory through the driver's local-infile handler. It is the yardstick
//! the writer's speed is measured against (benches/store.rs), not the way ipta writes: it keeps
//! no summaries and reports only counts.
//!
//! The file is tab-separated with `LOAD DATA`'s default escapes (`\N` for NULL; backslash, tab,
//! newline and NUL escaped) and read as `CHARACTER SET binary`, so addresses travel as their raw
//! `INET6_ATON` bytes and text is stored byte for byte.

use std::io::Write;

use mysql::prelude::Queryable;
use mysql::{LocalInfileHandler, TxOpts};

use crate::record::{Record, RecordBatch};
use crate::record::dedup::record_hash;
use crate::store::row::{for_each_cell, Cell, INSERT_COLUMNS};
use crate::store::value::sql_time;
use crate::store::{map_err, StoreError, WriteStats};

fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            _ => out.push(b),
        }
    }
}

fn put_cell(out: &mut Vec<u8>, c: Cell<'_>) {
    match c {
        Cell::Null => out.extend_from_slice(b"\\N"),
        Cell::UInt(v) => {
            let _ = write!(out, "{v}");
        }
        Cell::Bool(b) => out.push(if b { b'1' } else { b'0' }),
        Cell::Text(s) => escaped(out, s.as_bytes()),
        Cell::Ip(b, len) => escaped(out, &b[..len as usize]),
        Cell::DateTime(t) => {
            let _ = write!(
                out,
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
                t.year, t.month, t.day, t.hour, t.minute, t.second, t.micro
            );
        }
    }
}

/// Appends one row of the `LOAD DATA` file.
pub(crate) fn put_row(out: &mut Vec<u8>, r: &Record<'_>, hash: u64, occ: u64) {
    let mut first = true;
    for_each_cell(r, hash, occ, |c| {
        if !first {
            out.push(b'\t');
        }
        first = false;
        put_cell(out, c);
    });
    out.push(b'\n');
}

/// The batch as a `LOAD DATA` file.
pub fn batch_file(batch: &RecordBatch) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(batch.len() * 200);
    for (i, (r, occ)) in batch.iter().enumerate() {
        if sql_time(r.ts).is_none() {
            return Err(StoreError::Refused(format!(
                "record {}: time outside what DATETIME holds",
                i + 1
            )));
        }
        put_row(&mut out, &r, record_hash(&r), occ);
    }
    Ok(out)
}

/// The statement that loads a batch file into `table` (validated), in [`INSERT_COLUMNS`]
/// order. LOCAL implies IGNORE for duplicate keys; it is spelled out for clarity. Tab and
/// newline are written as literal characters and the backslash as the session's string syntax
/// wants it (`NO_BACKSLASH_ESCAPES` changes how `'\\'` reads).
pub(crate) fn load_sql(table: &str, no_backslash_escapes: bool) -> String {
    let cols: Vec<String> = INSERT_COLUMNS.iter().map(|c| format!("`{c}`")).collect();
    let esc = if no_backslash_escapes { "\\" } else { "\\\\" };
    format!(
        "LOAD DATA LOCAL INFILE 'ipta-batch.tsv' IGNORE INTO TABLE `{table}` CHARACTER SET binary \
         FIELDS TERMINATED BY '\t' ESCAPED BY '{esc}' LINES TERMINATED BY '\n' ({})",
        cols.join(",")
    )
}

/// The warnings of the last statement other than duplicate keys (1062, expected for rows
/// loaded before), as text.
pub(crate) fn non_duplicate_warnings<Q: Queryable>(q: &mut Q) -> mysql::Result<Vec<String>> {
    let warnings: Vec<(String, u32, String)> = q.query("SHOW WARNINGS LIMIT 20")?;
    Ok(warnings
        .into_iter()
        .filter(|w| w.1 != 1062)
        .map(|w| format!("{} {}: {}", w.0, w.1, w.2))
        .collect())
}

/// Loads the batch with `LOAD DATA LOCAL INFILE` in one transaction. Rows whose key exists are
/// skipped (LOCAL implies IGNORE) and counted as duplicates. Any other warning (a value the
/// server had to change) rolls the batch back and is reported.
pub fn load_data(
    conn: &mut mysql::Conn,
    table: &str,
    batch: &RecordBatch,
) -> Result<WriteStats, StoreError> {
    crate::store::validate_identifier(table)?;
    if batch.is_empty() {
        return Ok(WriteStats::default());
    }
    let mut file = Some(batch_file(batch)?);
    conn.set_local_infile_handler(Some(LocalInfileHandler::new(move |_name, sink| {
        if let Some(f) = file.take() {
            sink.write_all(&f)?;
        }
        Ok(())
    })));
    let sql = load_sql(table, conn.no_backslash_escape());
    let result = (|| -> Result<WriteStats, StoreError> {
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .map_err(|e| map_err(e, table))?;
        tx.query_drop(&sql).map_err(|e| map_err(e, table))?;
        let inserted = tx.affected_rows();
        if tx.warnings() > 0 {
            let warnings: Vec<(String, u32, String)> = tx
                .query("SHOW WARNINGS LIMIT 20")
                .map_err(|e| map_err(e, table))?;
            // 1062: duplicate key, the expected outcome for rows loaded before.
            let bad: Vec<String> = warnings
                .into_iter()
                .filter(|w| w.1 != 1062)
                .map(|w| format!("{} {}: {}", w.0, w.1, w.2))
                .collect();
            if !bad.is_empty() {
                tx.rollback().map_err(|e| map_err(e, table))?;
                return Err(StoreError::Refused(format!(
                    "LOAD DATA changed values, batch rolled back: {}",
                    bad.join("; ")
                )));
            }
        }
        tx.commit().map_err(|e| map_err(e, table))?;
        Ok(WriteStats {
            inserted,
            duplicates: batch.len() as u64 - inserted,
        })
    })();
    conn.set_local_infile_handler(None);
    result
}
