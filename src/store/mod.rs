//! MySQL/MariaDB: connection and error classification (this file), the packet table's schema,
//! one record as a row's cells ([`row`]), how times and addresses are stored ([`value`]), the
//! batch writer ([`writer`], [`loaddata`]), the summary tables ([`summary`]), table commands,
//! retention and TLS.

pub mod loaddata;
pub mod retention;
pub mod row;
pub mod schema;
pub mod summary;
pub mod tables;
pub mod tls;
pub mod value;
pub mod writer;

use crate::config::DbSettings;

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Rows added.
    pub inserted: u64,
    /// Rows that were there already (same `(ts, line_hash, occ)`).
    pub duplicates: u64,
}

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

    /// InnoDB's deadlock (1213) or lock wait timeout (1205): the transaction was rolled back
    /// and running it again on the same connection may succeed. (`map_err` ends such `Sql`
    /// messages with `(error <code>)`.) The batch writer retries these itself.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Sql(m) if m.ends_with("(error 1213)") || m.ends_with("(error 1205)"))
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
            1044 | 1045 | 1142 | 1227 | 1698 => StoreError::AccessDenied(m.message.clone()),
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

/// Connection options for the settings (TCP, socket, TLS as configured).
pub fn opts(settings: &DbSettings) -> Result<mysql::OptsBuilder, StoreError> {
    let mut b = mysql::OptsBuilder::new()
        .user(Some(settings.user.clone()))
        .pass(Some(settings.password.clone()))
        .db_name((!settings.database.is_empty()).then(|| settings.database.clone()))
        .tcp_connect_timeout(Some(std::time::Duration::from_secs(10)));
    if let Some(sock) = settings.effective_socket() {
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
    Ok(b)
}

/// Opens one connection with the given settings (TCP, socket, TLS as configured). Errors say
/// where it tried to connect and as whom (with a hint when TLS is the cause); `map_err`
/// classifies them, so access denied and unknown database stay distinct from unreachable.
pub fn connect(settings: &DbSettings) -> Result<mysql::Conn, StoreError> {
    mysql::Conn::new(opts(settings)?).map_err(|e| {
        let what = format!("{} as user {:?}", settings.endpoint(), settings.user);
        let text = tls::explain_connect_error(settings, &e);
        match map_err(e, &settings.table) {
            StoreError::AccessDenied(_) => StoreError::AccessDenied(format!("{what}: {text}")),
            StoreError::UnknownDatabase(_) => {
                StoreError::UnknownDatabase(settings.database.clone())
            }
            StoreError::MissingTable(t) => StoreError::MissingTable(t),
            _ => StoreError::Connect(format!("{what}: {text}")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_recognised() {
        let e = |code: u16| {
            map_err(
                mysql::Error::MySqlError(mysql::MySqlError {
                    state: "40001".into(),
                    message: "Deadlock found".into(),
                    code,
                }),
                "logs",
            )
        };
        assert!(e(1213).is_transient());
        assert!(e(1205).is_transient());
        assert!(!e(1062).is_transient());
        assert!(!e(1213).is_retryable());
        assert!(matches!(e(1146), StoreError::MissingTable(ref t) if t == "logs"));
        assert!(matches!(e(2006), StoreError::ConnectionLost(_)));
        assert!(e(2013).is_retryable());
        assert!(matches!(e(1045), StoreError::AccessDenied(_)));
        assert!(matches!(e(1049), StoreError::UnknownDatabase(_)));
        use mysql_common::proto::codec::error::PacketCodecError;
        use std::io::{Error as IoError, ErrorKind};
        for k in [ErrorKind::BrokenPipe, ErrorKind::ConnectionReset] {
            let lost = map_err(
                mysql::Error::CodecError(PacketCodecError::Io(IoError::from(k))),
                "",
            );
            assert!(matches!(lost, StoreError::ConnectionLost(_)) && lost.is_retryable());
        }
        let io = map_err(
            mysql::Error::IoError(IoError::from(ErrorKind::TimedOut)),
            "",
        );
        assert!(io.is_retryable());
        let down = map_err(
            mysql::Error::DriverError(mysql::DriverError::CouldNotConnect(None)),
            "",
        );
        assert!(matches!(down, StoreError::Connect(_)) && down.is_retryable());
        let too_large = map_err(
            mysql::Error::CodecError(PacketCodecError::PacketTooLarge),
            "",
        );
        assert!(!too_large.is_retryable());
    }

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
