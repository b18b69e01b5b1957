//! MySQL/MariaDB: connection, schema, batch writer, queries, summaries.

pub mod dedup;
pub mod loaddata;
pub mod retention;
pub mod row;
pub mod schema;
pub mod sink;
pub mod summary;
pub mod tables;
pub mod tls;
pub mod writer;

use crate::config::DbSettings;

/// What can go wrong talking to the database. [`StoreError::class`] decides, in this one place
/// and by the server's error code, whether a failed write is the row's fault, an outage to wait
/// out, or a setup problem.
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
    /// The server answered a statement with an error: its code decides what it means.
    #[error("database error: {message} (error {code})")]
    Server { code: u16, message: String },
    /// A row that cannot be stored, found before it reached the server (e.g. a time outside
    /// what DATETIME holds) or by the server's warnings about changed values.
    #[error("bad row: {0}")]
    BadRow(String),
    /// Any other failure without a server code (driver trouble, an unexpected answer).
    #[error("database error: {0}")]
    Sql(String),
    /// The table exists but its layout is not one this program can use (not ipta's, newer).
    #[error("{0}")]
    Schema(String),
}

/// What a failed write means, from [`StoreError::class`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The row itself can never be stored as it is (a per-row data error, by code): it goes to
    /// the rejects (ipta-ingest) or is reported as rejected (import); the rest of its batch is
    /// stored.
    Rejected,
    /// An outage: the server is down, unreachable, read-only, full, busy, or said something not
    /// known to be the row's fault. Waiting and trying again is the answer; nothing is rejected.
    Retry,
    /// The database is not set up for ipta (access denied, unknown database, missing or foreign
    /// table, LOCAL INFILE forced but refused, a bad name): no amount of waiting fixes it, only
    /// an administrator. ipta-ingest keeps waiting (the fix can come live); `ipta --import`
    /// stops with exit status 5.
    Config,
}

/// Server codes that mean "this row's data cannot be stored" (with `sql_mode` strict, which
/// MariaDB and MySQL have by default). Only these reject a row; every other code is an outage.
/// The README lists them with the reason each is the row's fault.
pub const REJECTED_CODES: &[u16] = &[
    1048, // ER_BAD_NULL_ERROR: a NOT NULL column got NULL from this row
    1264, // ER_WARN_DATA_OUT_OF_RANGE: a value of this row does not fit its column's range
    1265, // WARN_DATA_TRUNCATED: a value of this row was cut to fit its column
    1292, // ER_TRUNCATED_WRONG_VALUE: a date/time or number of this row is malformed
    1300, // ER_INVALID_CHARACTER_STRING: this row's text is not valid in the column's charset
    1366, // ER_TRUNCATED_WRONG_VALUE_FOR_FIELD: this row's value does not convert (bad UTF-8)
    1367, // ER_ILLEGAL_VALUE_FOR_TYPE: this row's value is illegal for the column's type
    1406, // ER_DATA_TOO_LONG: this row's value is longer than its column
    1411, // ER_WRONG_VALUE_FOR_TYPE: this row's value is not valid for a conversion
    1690, // ER_DATA_OUT_OF_RANGE: a numeric value of this row overflows its type
    3819, // MySQL: a CHECK constraint fails for this row
    4025, // MariaDB ER_CONSTRAINT_FAILED: a CHECK constraint fails for this row
];

/// Server codes of the usual outages (all classed [`ErrorClass::Retry`], like any code not in
/// [`REJECTED_CODES`]); named so that messages and exit statuses can say "outage" for them.
pub const OUTAGE_CODES: &[u16] = &[
    1021, // ER_DISK_FULL
    1047, // ER_UNKNOWN_COM_ERROR: Galera node not ready (WSREP has not yet prepared node)
    1053, // ER_SERVER_SHUTDOWN
    1114, // ER_RECORD_FILE_FULL: the table is full
    1205, // ER_LOCK_WAIT_TIMEOUT
    1213, // ER_LOCK_DEADLOCK
    1290, // ER_OPTION_PREVENTS_STATEMENT: --read-only
    1317, // ER_QUERY_INTERRUPTED: KILL QUERY
    1836, // ER_READ_ONLY_MODE
    1927, // ER_CONNECTION_KILLED
];

/// Codes that mean LOCAL INFILE is not allowed here: 1148 (command not allowed), 3948 (MySQL 8:
/// loading local data is disabled), 2068 (client-side rejection), 4166 (MariaDB: disabled).
pub const LOCAL_INFILE_REFUSED: &[u16] = &[1148, 2068, 3948, 4166];

impl StoreError {
    /// The one place that decides what a failed write means. By code only, never by text.
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Server { code, .. } if REJECTED_CODES.contains(code) => ErrorClass::Rejected,
            StoreError::Server { code, .. } if LOCAL_INFILE_REFUSED.contains(code) => ErrorClass::Config,
            StoreError::BadRow(_) => ErrorClass::Rejected,
            StoreError::BadIdentifier { .. }
            | StoreError::AccessDenied(_)
            | StoreError::UnknownDatabase(_)
            | StoreError::MissingTable(_)
            | StoreError::Schema(_) => ErrorClass::Config,
            StoreError::Connect(_)
            | StoreError::ConnectionLost(_)
            | StoreError::Server { .. }
            | StoreError::Sql(_) => ErrorClass::Retry,
        }
    }

    /// The server's error code, when the server gave one.
    pub fn code(&self) -> Option<u16> {
        match self {
            StoreError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the connection itself is gone or was never made (server down, connection lost):
    /// a new connection is needed. Other outages (read-only, deadlock) keep the connection.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Connect(_) | StoreError::ConnectionLost(_))
    }

    /// A known outage: the connection is gone, or the server said one of [`OUTAGE_CODES`].
    pub fn is_outage(&self) -> bool {
        self.is_retryable() || self.code().is_some_and(|c| OUTAGE_CODES.contains(&c))
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
            mysql::Error::MySqlError(mysql::MySqlError {
                state: "HY000".into(),
                message: "whatever the text says".into(),
                code,
            }),
            "logs",
        )
    }

    #[test]
    fn every_listed_data_error_rejects_the_row() {
        for &c in REJECTED_CODES {
            let e = server(c);
            assert_eq!(e.code(), Some(c));
            assert_eq!(e.class(), ErrorClass::Rejected, "{c}");
            assert!(!e.is_outage());
        }
        assert_eq!(StoreError::BadRow("time".into()).class(), ErrorClass::Rejected);
    }

    #[test]
    fn outages_and_unknown_codes_are_retried_never_rejected() {
        // The codes the issue names, plus codes nobody listed: an unknown code is an outage.
        for c in [1290, 1836, 1114, 1021, 1205, 1213, 1317, 1047, 1062, 1064, 1054, 9999, 2000] {
            assert_eq!(server(c).class(), ErrorClass::Retry, "{c}");
        }
        for &c in OUTAGE_CODES {
            let e = server(c);
            assert_eq!(e.class(), ErrorClass::Retry, "{c}");
            assert!(e.is_outage(), "{c}");
        }
        // Deadlock and read-only keep the connection; a killed or lost one needs a new one.
        assert!(!server(1213).is_retryable() && !server(1290).is_retryable());
        for c in [2006, 2013, 1053, 1927] {
            let e = server(c);
            assert!(matches!(e, StoreError::ConnectionLost(_)) && e.is_retryable(), "{c}");
            assert_eq!(e.class(), ErrorClass::Retry);
        }
        // The message text plays no part: a "Data too long" text under an outage code is one.
        let e = StoreError::Server { code: 1290, message: "Data too long for column 'host'".into() };
        assert_eq!(e.class(), ErrorClass::Retry);
        assert_eq!(StoreError::Sql("driver".into()).class(), ErrorClass::Retry);
    }

    #[test]
    fn setup_errors_are_configuration() {
        assert!(matches!(server(1146), StoreError::MissingTable(ref t) if t == "logs"));
        for c in [1044, 1045, 1142, 1227, 1698] {
            assert!(matches!(server(c), StoreError::AccessDenied(_)), "{c}");
            assert_eq!(server(c).class(), ErrorClass::Config);
        }
        assert!(matches!(server(1049), StoreError::UnknownDatabase(_)));
        assert_eq!(server(1049).class(), ErrorClass::Config);
        assert_eq!(server(1146).class(), ErrorClass::Config);
        for &c in LOCAL_INFILE_REFUSED {
            assert_eq!(server(c).class(), ErrorClass::Config, "{c}");
        }
        assert_eq!(StoreError::Schema("newer".into()).class(), ErrorClass::Config);
    }

    #[test]
    fn driver_errors_are_classified() {
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
        assert_eq!(too_large.class(), ErrorClass::Retry);
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
