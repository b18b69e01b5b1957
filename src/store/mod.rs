//! MySQL/MariaDB: connection and error classification (this file), the packet table's schema,
//! one record as a row's cells ([`row`]), how times and addresses are stored ([`value`]), the
//! batch writer ([`writer`], [`loaddata`]), the summary tables ([`summary`]), table commands,
//! retention and TLS.

pub mod loaddata;
pub mod retention;
pub mod row;
pub mod schema;
pub mod sink;
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

/// What can go wrong talking to the database. The server's own refusals keep its error code
/// ([`StoreError::Server`]); [`StoreError::class`] is the one place that decides what an error
/// means for the line being written (see [`ErrorClass`]).
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
    /// The server answered a statement with an error: its code and message.
    #[error("database error: {message} (error {code})")]
    Server { code: u16, message: String },
    /// ipta itself refuses a row the server could not store faithfully (a time outside what
    /// DATETIME holds, a value the server would have altered while loading).
    #[error("{0}")]
    Refused(String),
    /// Anything else: a driver failure without a server code, or an inconsistency ipta found.
    #[error("database error: {0}")]
    Sql(String),
    /// The table exists but its layout is not one this program can use (not ipta's, newer).
    #[error("{0}")]
    Schema(String),
}

/// What an error means for the rows being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The row itself can never be stored (proven by the server's code, or by ipta before
    /// sending it): it goes to the rejects, the others are stored.
    Row,
    /// The server or the way to it is not able to store anything right now (down, read-only,
    /// full, locked, killed, any code not known to be the row's fault): wait and retry the
    /// whole batch; nothing is confirmed meanwhile.
    Outage,
    /// Set-up: no such table or database, no access, a bad name. Waiting alone does not fix
    /// it, an administrator does: the live path waits for that, a one-shot command stops.
    Setup,
}

/// Server error codes that are the row's own fault: the same statement with other values
/// would succeed, and the same values will fail on any healthy server. Nothing else rejects a
/// line. (README, "How rows are written", gives the same list.)
pub const ROW_FAULT_CODES: [(u16, &str); 9] = [
    (1048, "a column that must have a value got none"),
    (1264, "a number is out of the column's range"),
    (1265, "a value was truncated to fit its column"),
    (1292, "a date, time or number is not valid for its column"),
    (1300, "a text is not valid in the column's character set"),
    (1366, "a value is not valid for its column's type or character set"),
    (1406, "a text is longer than its column"),
    (3819, "a CHECK constraint refuses the row (MySQL)"),
    (4025, "a CHECK constraint refuses the row (MariaDB)"),
];

impl StoreError {
    /// The one decision about what an error means (by type and server code, never by text).
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Refused(_) => ErrorClass::Row,
            StoreError::Server { code, .. } if ROW_FAULT_CODES.iter().any(|(c, _)| c == code) => ErrorClass::Row,
            StoreError::BadIdentifier { .. }
            | StoreError::AccessDenied(_)
            | StoreError::UnknownDatabase(_)
            | StoreError::MissingTable(_)
            | StoreError::Schema(_) => ErrorClass::Setup,
            StoreError::Connect(_) | StoreError::ConnectionLost(_) | StoreError::Server { .. } | StoreError::Sql(_) => {
                ErrorClass::Outage
            }
        }
    }

    /// Whether the server could not be reached or the connection broke (for exit statuses).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Connect(_) | StoreError::ConnectionLost(_))
    }

    /// Whether the connection that saw the error can still be used: only when the server
    /// answered with an error of its own (the protocol is in step). After anything else the
    /// writer starts again on a new connection.
    pub fn keeps_connection(&self) -> bool {
        matches!(self, StoreError::Server { .. })
    }

    /// The server's error code, when the server gave one.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            StoreError::Server { code, .. } => Some(*code),
            _ => None,
        }
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
            code => StoreError::Server { code, message: m.message.clone() },
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

    fn server(code: u16) -> StoreError {
        map_err(
            mysql::Error::MySqlError(mysql::MySqlError { state: "HY000".into(), message: "m".into(), code }),
            "logs",
        )
    }

    #[test]
    fn errors_are_classed_by_code() {
        for (code, _) in ROW_FAULT_CODES {
            assert_eq!(server(code).class(), ErrorClass::Row, "{code}");
        }
        // Read-only (1290, 1836), table or disk full (1114, 1021), lock wait (1205), deadlock
        // (1213), query interrupted (1317), Galera not ready (1047), and codes nobody listed:
        // outages, retried, never a reject.
        for code in [1290, 1836, 1114, 1021, 1205, 1213, 1317, 1047, 1064, 1062, 9999] {
            let e = server(code);
            assert_eq!(e.class(), ErrorClass::Outage, "{code}");
            assert_eq!(e.server_code(), Some(code));
            assert!(e.keeps_connection());
        }
        assert_eq!(StoreError::Refused("x".into()).class(), ErrorClass::Row);
        assert_eq!(StoreError::Sql("x".into()).class(), ErrorClass::Outage);
        assert!(matches!(server(1146), StoreError::MissingTable(ref t) if t == "logs"));
        assert_eq!(server(1146).class(), ErrorClass::Setup);
        for code in [2006, 2013, 1053, 1927] {
            assert!(matches!(server(code), StoreError::ConnectionLost(_)), "{code}");
            assert_eq!(server(code).class(), ErrorClass::Outage);
            assert!(!server(code).keeps_connection());
        }
        assert!(matches!(server(1045), StoreError::AccessDenied(_)));
        assert_eq!(server(1045).class(), ErrorClass::Setup);
        assert!(matches!(server(1049), StoreError::UnknownDatabase(_)));
        assert!(server(2013).is_retryable());
        assert!(!server(1213).is_retryable());
        use mysql_common::proto::codec::error::PacketCodecError;
        use std::io::{Error as IoError, ErrorKind};
        for k in [ErrorKind::BrokenPipe, ErrorKind::ConnectionReset] {
            let lost = map_err(mysql::Error::CodecError(PacketCodecError::Io(IoError::from(k))), "");
            assert!(matches!(lost, StoreError::ConnectionLost(_)) && lost.is_retryable());
        }
        let io = map_err(mysql::Error::IoError(IoError::from(ErrorKind::TimedOut)), "");
        assert!(io.is_retryable());
        let down = map_err(mysql::Error::DriverError(mysql::DriverError::CouldNotConnect(None)), "");
        assert!(matches!(down, StoreError::Connect(_)) && down.is_retryable());
        let too_large = map_err(mysql::Error::CodecError(PacketCodecError::PacketTooLarge), "");
        assert!(!too_large.is_retryable());
        assert_eq!(too_large.class(), ErrorClass::Outage);
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
