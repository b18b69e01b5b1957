//! The `logs` table: one row per packet, columns named as the record's fields.
//!
//! This is a public contract (README documents it): people query it by hand. Addresses are
//! `VARBINARY(16)` in `INET6_ATON` form so IPv4 and IPv6 share a column and `INET6_NTOA(src)`
//! reads them on MySQL and MariaDB alike. Every identifier is quoted with backquotes because
//! `window` and `repeat` are reserved words in MySQL 8.
//!
//! De-duplication: `line_hash` is a stable 64-bit hash of (time, host, netfilter message) and
//! `occ` counts the earlier identical lines of the same stream; `UNIQUE (ts, line_hash, occ)`
//! with `INSERT IGNORE` makes a replayed batch or a re-imported file add nothing, while
//! genuinely repeated packets get occ 0, 1, 2... and all count.

use mysql::prelude::Queryable;

use crate::store::{map_err, validate_identifier, StoreError};

/// The version of the table layout, kept in the table comment (`ipta-logs v<N>`).
pub const SCHEMA_VERSION: u32 = 2;

/// The marker every ipta table carries in its comment; only such tables are listed or deleted.
pub const TABLE_COMMENT_PREFIX: &str = "ipta-logs v";

/// Column definitions of the packet table, in order (name, SQL type).
pub const COLUMNS: &[(&str, &str)] = &[
    ("id", "BIGINT UNSIGNED NOT NULL AUTO_INCREMENT"),
    ("ts", "DATETIME(6) NOT NULL"),
    ("host", "VARCHAR(255) NULL"),
    ("action", "VARCHAR(64) NOT NULL"),
    ("prefix", "VARCHAR(255) NOT NULL"),
    ("if_in", "VARCHAR(32) NULL"),
    ("if_out", "VARCHAR(32) NULL"),
    ("phys_in", "VARCHAR(32) NULL"),
    ("phys_out", "VARCHAR(32) NULL"),
    ("mac", "VARCHAR(1024) NULL"),
    ("mac_src", "VARCHAR(64) NULL"),
    ("mac_dst", "VARCHAR(64) NULL"),
    ("src", "VARBINARY(16) NULL"),
    ("dst", "VARBINARY(16) NULL"),
    ("len", "INT UNSIGNED NULL"),
    ("tos", "TINYINT UNSIGNED NULL"),
    ("prec", "TINYINT UNSIGNED NULL"),
    ("ttl", "TINYINT UNSIGNED NULL"),
    ("ip_id", "INT UNSIGNED NULL"),
    ("tc", "TINYINT UNSIGNED NULL"),
    ("flowlbl", "INT UNSIGNED NULL"),
    ("df", "BOOLEAN NULL"),
    ("mf", "BOOLEAN NULL"),
    ("ce", "BOOLEAN NULL"),
    ("frag", "INT UNSIGNED NULL"),
    ("proto", "VARCHAR(8) NULL"),
    ("spt", "SMALLINT UNSIGNED NULL"),
    ("dpt", "SMALLINT UNSIGNED NULL"),
    ("seq", "INT UNSIGNED NULL"),
    ("ack", "INT UNSIGNED NULL"),
    ("window", "INT UNSIGNED NULL"),
    ("tcp_flags", "VARCHAR(40) NULL"),
    ("urgp", "INT UNSIGNED NULL"),
    ("udp_len", "INT UNSIGNED NULL"),
    ("icmp_type", "TINYINT UNSIGNED NULL"),
    ("icmp_code", "TINYINT UNSIGNED NULL"),
    ("icmp_id", "SMALLINT UNSIGNED NULL"),
    ("icmp_seq", "SMALLINT UNSIGNED NULL"),
    ("mtu", "INT UNSIGNED NULL"),
    ("spi", "INT UNSIGNED NULL"),
    ("uid", "INT UNSIGNED NULL"),
    ("gid", "INT UNSIGNED NULL"),
    ("mark", "INT UNSIGNED NULL"),
    ("repeat", "INT UNSIGNED NOT NULL DEFAULT 1"),
    ("inner_src", "VARBINARY(16) NULL"),
    ("inner_dst", "VARBINARY(16) NULL"),
    ("inner_proto", "VARCHAR(8) NULL"),
    ("inner_spt", "SMALLINT UNSIGNED NULL"),
    ("inner_dpt", "SMALLINT UNSIGNED NULL"),
    ("line_hash", "BIGINT UNSIGNED NOT NULL"),
    ("occ", "INT UNSIGNED NOT NULL"),
    // Version 2: the address of the relay that delivered the line (last, where the upgrade's
    // ADD COLUMN puts it, so created and upgraded tables are alike).
    ("relay", "VARCHAR(45) NULL"),
];

/// Keys of the packet table (analyzer indexes may be added by later schema versions).
pub const KEYS: &[&str] = &[
    "PRIMARY KEY (`id`)",
    "UNIQUE KEY `uk_line` (`ts`, `line_hash`, `occ`)",
];

/// `CREATE TABLE IF NOT EXISTS` for a packet table. `table` must already be validated.
pub fn create_table_sql(table: &str) -> String {
    let mut s = format!("CREATE TABLE IF NOT EXISTS `{table}` (\n");
    for (name, ty) in COLUMNS {
        s.push_str(&format!("  `{name}` {ty},\n"));
    }
    s.push_str("  ");
    s.push_str(&KEYS.join(",\n  "));
    s.push_str(&format!(
        "\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='{TABLE_COMMENT_PREFIX}{SCHEMA_VERSION}'"
    ));
    s
}

/// What `ensure_table` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableStatus {
    /// The table was created now.
    Created,
    /// The table was there, at the current version.
    Existed,
    /// The table was there at an older version and has been upgraded.
    Upgraded { from: u32 },
}

/// One upgrade step: the statements that take a table from `from` to `from + 1`. `{table}` in
/// a statement stands for the backquoted table name.
pub struct Upgrade {
    pub from: u32,
    pub statements: &'static [&'static str],
}

/// Every upgrade this program knows, oldest first; a layout change adds its step here and bumps
/// [`SCHEMA_VERSION`].
pub const UPGRADES: &[Upgrade] = &[Upgrade {
    from: 1,
    statements: &["ALTER TABLE {table} ADD COLUMN `relay` VARCHAR(45) NULL"],
}];

/// The schema version recorded in a table comment (`ipta-logs v<N>`), None for other comments.
pub fn parse_version(comment: &str) -> Option<u32> {
    comment
        .strip_prefix(TABLE_COMMENT_PREFIX)?
        .trim()
        .parse()
        .ok()
}

/// The comment of `table` in the current database, None when there is no such table.
pub fn table_comment(conn: &mut mysql::Conn, table: &str) -> Result<Option<String>, StoreError> {
    conn.exec_first(
        "SELECT TABLE_COMMENT FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        (table,),
    )
    .map_err(|e| map_err(e, table))
}

/// The schema version of an existing ipta table; errors for a table that is not ipta's.
pub fn table_version(conn: &mut mysql::Conn, table: &str) -> Result<Option<u32>, StoreError> {
    match table_comment(conn, table)? {
        None => Ok(None),
        Some(c) => parse_version(&c).map(Some).ok_or_else(|| {
            StoreError::Schema(format!(
                "table {table:?} exists but is not an ipta table (its comment is {c:?}, not \
                 \"{TABLE_COMMENT_PREFIX}<N>\"); choose another name with -t"
            ))
        }),
    }
}

/// Creates the packet table when it is missing, checks its version when it exists and
/// upgrades an older layout. A table of a newer ipta is an error (this program could corrupt
/// it). `table` is validated here.
pub fn ensure_table(conn: &mut mysql::Conn, table: &str) -> Result<TableStatus, StoreError> {
    validate_identifier(table)?;
    match table_version(conn, table)? {
        None => {
            // The summary tables of `--analyze` are named after the packet table plus a
            // suffix: a name with no room left for them is refused before anything exists.
            if table.len() > crate::store::summary::MAX_TABLE_LEN {
                return Err(StoreError::BadIdentifier {
                    name: table.to_string(),
                    why: "longer than 55 characters, leaving no room for the summary tables (`<table>__sinport`)",
                });
            }
            // Summary tables left behind by a packet table dropped by hand (not with
            // `--delete-table`) say every row is folded: a new table of that name would report
            // its predecessor's counts. It starts without them (the next report builds them).
            let state = crate::store::summary::name(table, crate::store::summary::STATE);
            if table_comment(conn, &state)?.is_some() {
                crate::store::summary::on_drop(conn, table)?;
            }
            conn.query_drop(create_table_sql(table))
                .map_err(|e| map_err(e, table))?;
            // Another process may have created it between the two statements: same outcome.
            Ok(TableStatus::Created)
        }
        Some(v) => check_and_upgrade(conn, table, v, SCHEMA_VERSION, UPGRADES),
    }
}

/// Errors unless `table` exists at the current version (for commands that only read or write).
pub fn check_table(conn: &mut mysql::Conn, table: &str) -> Result<(), StoreError> {
    validate_identifier(table)?;
    match table_version(conn, table)? {
        None => Err(StoreError::MissingTable(table.to_string())),
        Some(v) if v == SCHEMA_VERSION => Ok(()),
        Some(v) => check_and_upgrade(conn, table, v, SCHEMA_VERSION, UPGRADES).map(|_| ()),
    }
}

/// Brings a table at version `found` to `target` with `steps`. Public with explicit steps so
/// the upgrade machinery is tested before a real upgrade exists.
pub fn check_and_upgrade(
    conn: &mut mysql::Conn,
    table: &str,
    found: u32,
    target: u32,
    steps: &[Upgrade],
) -> Result<TableStatus, StoreError> {
    if found == target {
        return Ok(TableStatus::Existed);
    }
    if found > target {
        return Err(StoreError::Schema(format!(
            "table {table:?} has schema version {found}, newer than this ipta knows ({target}); \
             use a newer ipta"
        )));
    }
    let mut v = found;
    while v < target {
        let step = steps.iter().find(|s| s.from == v).ok_or_else(|| {
            StoreError::Schema(format!(
                "table {table:?} has schema version {found} and this ipta cannot upgrade \
                 version {v}; recreate the table (ipta -dt {table} && ipta -ct {table})"
            ))
        })?;
        for stmt in step.statements {
            let sql = stmt.replace("{table}", &format!("`{table}`"));
            conn.query_drop(sql).map_err(|e| map_err(e, table))?;
        }
        v += 1;
        // Recorded after each step, so an interrupted upgrade resumes where it stopped.
        conn.query_drop(format!(
            "ALTER TABLE `{table}` COMMENT = '{TABLE_COMMENT_PREFIX}{v}'"
        ))
        .map_err(|e| map_err(e, table))?;
    }
    Ok(TableStatus::Upgraded { from: found })
}
