//! Table and database commands: list, clear and delete ipta's tables, create the database.
//! Only tables whose comment carries ipta's marker (`ipta-logs v<N>`) are listed or deleted, so
//! other tables in a shared database are never touched.

use mysql::prelude::Queryable;

use crate::config::DbSettings;
use crate::record::Timestamp;
use crate::store::value::value_ts;
use crate::store::schema::{parse_version, table_version, TABLE_COMMENT_PREFIX};
use crate::store::{map_err, validate_identifier, StoreError};

/// One of ipta's tables, as `--list-tables` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    pub name: String,
    pub version: u32,
    pub rows: u64,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
    /// Data and index size on disk as the server reports it.
    pub bytes: u64,
}

/// Names of ipta's tables in the current database, sorted.
pub fn ipta_tables(conn: &mut mysql::Conn) -> Result<Vec<(String, u32)>, StoreError> {
    let rows: Vec<(String, String)> = conn
        .exec(
            "SELECT TABLE_NAME, TABLE_COMMENT FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' AND TABLE_COMMENT LIKE ? \
             ORDER BY TABLE_NAME",
            (format!("{TABLE_COMMENT_PREFIX}%"),),
        )
        .map_err(|e| map_err(e, ""))?;
    Ok(rows
        .into_iter()
        .filter_map(|(n, c)| parse_version(&c).map(|v| (n, v)))
        .collect())
}

/// ipta's tables with their row counts, packet time range and size.
pub fn list_tables(conn: &mut mysql::Conn) -> Result<Vec<TableInfo>, StoreError> {
    let mut out = Vec::new();
    for (name, version) in ipta_tables(conn)? {
        // Names come from the server's catalogue, but are checked before being quoted anyway.
        validate_identifier(&name)?;
        let (rows, first, last): (u64, mysql::Value, mysql::Value) = conn
            // The binary protocol (exec) returns times as dates, the text protocol as strings.
            .exec_first(
                format!("SELECT COUNT(*), MIN(`ts`), MAX(`ts`) FROM `{name}`"),
                (),
            )
            .map_err(|e| map_err(e, &name))?
            .unwrap_or((0, mysql::Value::NULL, mysql::Value::NULL));
        let bytes: Option<u64> = conn
            .exec_first(
                "SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (&name,),
            )
            .map_err(|e| map_err(e, &name))?;
        out.push(TableInfo {
            name,
            version,
            rows,
            first: value_ts(Some(&first)),
            last: value_ts(Some(&last)),
            bytes: bytes.unwrap_or(0),
        });
    }
    Ok(out)
}

/// Rows in an ipta table (errors for a missing or foreign table).
pub fn count_rows(conn: &mut mysql::Conn, table: &str) -> Result<u64, StoreError> {
    require_ipta_table(conn, table)?;
    let n: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM `{table}`"))
        .map_err(|e| map_err(e, table))?;
    Ok(n.unwrap_or(0))
}

fn require_ipta_table(conn: &mut mysql::Conn, table: &str) -> Result<u32, StoreError> {
    validate_identifier(table)?;
    table_version(conn, table)?.ok_or_else(|| StoreError::MissingTable(table.to_string()))
}

/// Deletes one of ipta's tables; a table that is not ipta's is refused. Returns its row count.
pub fn drop_table(conn: &mut mysql::Conn, table: &str) -> Result<u64, StoreError> {
    let rows = count_rows(conn, table)?;
    // Summaries first: left behind, they would be read as the truth for a new table of the
    // same name.
    crate::store::summary::on_drop(conn, table)?;
    conn.query_drop(format!("DROP TABLE `{table}`"))
        .map_err(|e| map_err(e, table))?;
    Ok(rows)
}

/// Deletes every packet of an ipta table (the table stays). Returns how many there were.
pub fn clear_table(conn: &mut mysql::Conn, table: &str) -> Result<u64, StoreError> {
    let rows = count_rows(conn, table)?;
    // TRUNCATE is instant whatever the size, unlike DELETE of every row, but it commits on its
    // own, so it cannot share a transaction with the summaries. Hence: drop the summaries
    // (writers then skip them), truncate, and create them again (empty, watermark 0) and fold
    // in what the table holds now (rows a writer added meanwhile). Whatever step an
    // interruption stops at, no summary disagrees with the table: missing ones are rebuilt by
    // the next `ipta --analyze`.
    let had_summaries = crate::store::summary::present(conn, table)?;
    crate::store::summary::on_drop(conn, table)?;
    conn.query_drop(format!("TRUNCATE TABLE `{table}`"))
        .map_err(|e| map_err(e, table))?;
    if had_summaries {
        crate::store::summary::create(conn, table)?;
    }
    Ok(rows)
}

/// Creates the configured database when it does not exist; true when it was created.
pub fn create_database(settings: &DbSettings) -> Result<bool, StoreError> {
    validate_identifier(&settings.database)?;
    let mut s = settings.clone();
    let db = std::mem::take(&mut s.database);
    let mut conn = crate::store::connect(&s)?;
    let exists: Option<String> = conn
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (&db,),
        )
        .map_err(|e| map_err(e, ""))?;
    if exists.is_some() {
        return Ok(false);
    }
    conn.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4"
    ))
    .map_err(|e| map_err(e, ""))?;
    Ok(true)
}
