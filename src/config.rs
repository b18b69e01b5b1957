//! Settings: command line > environment > user config file > system config file > defaults.

use std::path::PathBuf;

/// TLS towards the database server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsMode {
    #[default]
    Off,
    /// Encrypt, do not verify the server's certificate.
    Required,
    /// Encrypt and verify the certificate chain and host name.
    Verify,
}

/// Where the database is and who we are there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbSettings {
    pub host: String,
    pub port: Option<u16>,
    pub socket: Option<PathBuf>,
    pub user: String,
    pub password: String,
    pub database: String,
    pub table: String,
    pub tls: TlsMode,
    pub tls_ca: Option<PathBuf>,
}

impl Default for DbSettings {
    fn default() -> Self {
        DbSettings {
            host: "localhost".into(),
            port: None,
            socket: None,
            user: "ipta".into(),
            password: "ipta".into(),
            database: "ipta".into(),
            table: "logs".into(),
            tls: TlsMode::Off,
            tls_ca: None,
        }
    }
}
