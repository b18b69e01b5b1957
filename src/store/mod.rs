//! MySQL/MariaDB: connection, schema, batch writer, queries, summaries.

pub mod dedup;
pub mod loaddata;
pub mod retention;
pub mod row;
pub mod schema;
pub mod summary;
pub mod tls;
pub mod writer;

use crate::config::DbSettings;

/// What can go wrong talking to the database. `is_retryable` tells the writers whether waiting
/// and reconnecting can help (server down, connection lost) or not (bad data, no such table).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid name {name:?}: {why}")]
    BadIdentifier { name: String, why: &'static str },
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("unknown database {0:?}")]
    UnknownDatabase(String),
    #[error("table {0:?} does not exist (run ipta --create-table)")]
    MissingTable(String),
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    #[error("database error: {0}")]
    Sql(String),
    /// The table exists but its layout is not one this program can use (not ipta's, newer).
    #[error("{0}")]
    Schema(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Connect(_) | StoreError::ConnectionLost(_))
    }
}

/// Translates a driver error. `table` names the table the statement touched (for 1146).
/// Only connection-level failures become retryable variants: the server went away, the socket
/// broke, or it could not be reached at all.
pub fn map_err(e: mysql::Error, table: &str) -> StoreError {
    use mysql::error::{DriverError, Error};
    use std::io::ErrorKind;
    let io_lost = |k: ErrorKind| {
        matches!(
            k,
            ErrorKind::BrokenPipe
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::UnexpectedEof
                | ErrorKind::NotConnected
        )
    };
    match e {
        Error::CodecError(mysql_common::proto::codec::error::PacketCodecError::Io(ref io))
            if io_lost(io.kind()) =>
        {
            StoreError::ConnectionLost(e.to_string())
        }
        Error::IoError(_) => StoreError::ConnectionLost(e.to_string()),
        Error::DriverError(DriverError::CouldNotConnect(_) | DriverError::ConnectTimeout) => {
            StoreError::Connect(e.to_string())
        }
        Error::MySqlError(ref m) => match m.code {
            // 2006 gone away, 2013 lost during query, 1053 shutdown, 1927 connection killed.
            2006 | 2013 | 1053 | 1927 => StoreError::ConnectionLost(m.message.clone()),
            1146 => StoreError::MissingTable(table.to_string()),
            1044 | 1045 | 1142 | 1227 => StoreError::AccessDenied(m.message.clone()),
            1049 => StoreError::UnknownDatabase(m.message.clone()),
            _ => StoreError::Sql(format!("{} (error {})", m.message, m.code)),
        },
        other => StoreError::Sql(other.to_string()),
    }
}

/// Checks a table or database name: letters, digits and underscore, 1 to 64 characters.
pub fn validate_identifier(name: &str) -> Result<&str, StoreError> {
    let bad = |why| StoreError::BadIdentifier {
        name: name.to_string(),
        why,
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > 64 {
        return Err(bad("it is longer than 64 characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(bad("only letters, digits and underscore are allowed"));
    }
    Ok(name)
}

/// Opens one connection with the given settings (TCP, socket, TLS as configured).
pub fn connect(settings: &DbSettings) -> Result<mysql::Conn, StoreError> {
    let mut b = mysql::OptsBuilder::new()
        .user(Some(settings.user.clone()))
        .pass(Some(settings.password.clone()))
        .db_name(Some(settings.database.clone()));
    if let Some(sock) = &settings.socket {
        b = b.socket(Some(sock.to_string_lossy().into_owned()));
    } else {
        b = b
            .ip_or_hostname(Some(settings.host.clone()))
            .tcp_port(settings.port.unwrap_or(3306));
    }
    if let Some(ssl) = tls::ssl_opts(settings)? {
        // The crate would otherwise move a loopback TCP connection to the server's Unix socket,
        // where it never encrypts: asked for TLS, stay on TCP.
        b = b.ssl_opts(ssl).prefer_socket(false);
    }
    mysql::Conn::new(b).map_err(|e| StoreError::Connect(tls::explain_connect_error(settings, &e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked() {
        assert!(validate_identifier("logs_2026").is_ok());
        assert!(validate_identifier("").is_err());
        assert!(validate_identifier("a-b").is_err());
        assert!(validate_identifier("x`; DROP TABLE y").is_err());
        assert!(validate_identifier(&"a".repeat(65)).is_err());
        assert!(validate_identifier(&"a".repeat(64)).is_ok());
    }
}
