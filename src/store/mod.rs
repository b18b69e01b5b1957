//! MySQL/MariaDB: connection, schema, batch writer, queries, summaries.

pub mod dedup;
pub mod schema;
