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

/// The version of the table layout, kept in the table comment (`ipta-logs v<N>`).
pub const SCHEMA_VERSION: u32 = 1;

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
