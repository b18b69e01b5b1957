//! TLS towards the database server, through the mysql crate's rustls backend (no system OpenSSL).
//!
//! `db_tls = required` encrypts without checking who answers (protects against eavesdropping on
//! the wire, not against an active man in the middle); `db_tls = verify` also checks the
//! certificate chain, against `db_tls_ca` when given or else the bundled web PKI roots, and that
//! the certificate names the host we connect to (DNS name or IP address in subjectAltName).
//! TLS only applies to TCP: a Unix socket is local and is never encrypted (as with the MySQL
//! client), so `store::connect` keeps a TLS connection on TCP instead of switching to the socket.

use std::io::Read;

use crate::config::{DbSettings, TlsMode};
use crate::store::StoreError;

/// The mysql crate's TLS options for these settings, or `None` when TLS is off.
///
/// The CA file is checked here, before any connection, so a typo in `db_tls_ca` is reported as
/// such and not as an obscure handshake failure.
pub fn ssl_opts(settings: &DbSettings) -> Result<Option<mysql::SslOpts>, StoreError> {
    // `required` with a CA file given verifies: whoever names the CA wants it checked.
    let mode = match settings.tls {
        TlsMode::Required if settings.tls_ca.is_some() => TlsMode::Verify,
        m => m,
    };
    match mode {
        TlsMode::Off => Ok(None),
        TlsMode::Required => Ok(Some(
            mysql::SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        )),
        TlsMode::Verify => {
            let mut opts = mysql::SslOpts::default();
            if let Some(ca) = &settings.tls_ca {
                check_ca_file(ca)?;
                opts = opts.with_root_cert_path(Some(ca.clone()));
            }
            Ok(Some(opts))
        }
    }
}

/// The CA file must be readable and hold at least one PEM certificate (or be a DER one).
fn check_ca_file(path: &std::path::Path) -> Result<(), StoreError> {
    let bad = |why: String| StoreError::Connect(format!("TLS CA file {}: {why}", path.display()));
    let mut data = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|e| bad(e.to_string()))?;
    if data.is_empty() {
        return Err(bad("the file is empty".into()));
    }
    let is_pem = memchr::memmem::find(&data, b"-----BEGIN CERTIFICATE-----").is_some();
    // A DER certificate is an ASN.1 SEQUENCE: it starts with byte 0x30.
    let is_der = data[0] == 0x30;
    if !is_pem && !is_der {
        return Err(bad(
            "no certificate in it (expected PEM `BEGIN CERTIFICATE` or DER)".into(),
        ));
    }
    Ok(())
}

/// Turns a connection error into a message that says what to do when it is about TLS.
/// `store::connect` passes every connect error through here.
pub fn explain_connect_error(settings: &DbSettings, err: &mysql::Error) -> String {
    let text = err.to_string();
    match tls_hint(settings, err, &text) {
        Some(hint) => format!("{text} ({hint})"),
        None => text,
    }
}

fn tls_hint(settings: &DbSettings, err: &mysql::Error, text: &str) -> Option<String> {
    if let mysql::Error::MySqlError(e) = err {
        let over_tcp = settings.socket.is_none();
        return match e.code {
            // MySQL 8: ER_SECURE_TRANSPORT_REQUIRED.
            3159 => Some(
                "the server only accepts encrypted connections: set db_tls = required or verify"
                    .into(),
            ),
            // MariaDB answers a plain connection under require_secure_transport with "access
            // denied", indistinguishable from a wrong password: mention both causes.
            1045 if over_tcp && settings.tls == TlsMode::Off => Some(
                "check the user and password; if the server requires encrypted connections \
                 (require_secure_transport), set db_tls = required or verify"
                    .into(),
            ),
            _ => None,
        };
    }
    if let mysql::Error::DriverError(mysql::DriverError::TlsNotSupported) = err {
        return Some(
            "the server does not offer TLS: give it ssl_cert and ssl_key, or set db_tls = off"
                .into(),
        );
    }
    // rustls reports certificate problems as I/O errors whose text is its CertificateError:
    // the variant's name (`UnknownIssuer`) or, for the variants with context, a sentence.
    let lower = text.to_ascii_lowercase();
    if text.contains("UnknownIssuer") || lower.contains("unknown issuer") {
        return Some(match &settings.tls_ca {
            Some(ca) => format!(
                "the server's certificate is not signed by the CA in {} (db_tls_ca)",
                ca.display()
            ),
            None => "the server's certificate is not signed by a known CA: set db_tls_ca to the \
                     CA certificate that signed it"
                .into(),
        });
    }
    if text.contains("NotValidForName") || lower.contains("not valid for name") {
        return Some(format!(
            "the server's certificate does not name {:?}: connect by a name or address listed \
             in its subjectAltName",
            settings.host
        ));
    }
    if lower.contains("expired") || text.contains("NotValidYet") || lower.contains("not valid yet")
    {
        return Some(
            "the server's certificate is outside its validity period: check it and this \
             machine's clock"
                .into(),
        );
    }
    if text.contains("invalid peer certificate") {
        return Some("the server's certificate was rejected (db_tls = verify)".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!(TlsMode::parse("off"), Ok(TlsMode::Off));
        assert_eq!(TlsMode::parse("Required"), Ok(TlsMode::Required));
        assert_eq!(TlsMode::parse(" verify "), Ok(TlsMode::Verify));
        assert_eq!(TlsMode::parse("VERIFY_IDENTITY"), Ok(TlsMode::Verify));
        // VERIFY_CA (chain without the name) is not offered: it would accept any certificate of
        // the CA for any host.
        let e = TlsMode::parse("verify_ca").unwrap_err();
        assert!(e.contains("use off, required"), "{e}");
    }

    #[test]
    fn off_means_no_tls() {
        let s = DbSettings::default();
        assert!(ssl_opts(&s).unwrap().is_none());
    }

    #[test]
    fn yes_means_verify_and_a_ca_file_makes_required_verify() {
        for v in ["on", "YES", "true"] {
            assert_eq!(TlsMode::parse(v), Ok(TlsMode::Verify), "{v}");
        }
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
        let s = DbSettings { tls: TlsMode::Required, tls_ca: Some(ca), ..DbSettings::default() };
        let o = ssl_opts(&s).unwrap().unwrap();
        assert!(!o.accept_invalid_certs() && !o.skip_domain_validation());
    }

    #[test]
    fn required_does_not_verify() {
        let s = DbSettings {
            tls: TlsMode::Required,
            ..DbSettings::default()
        };
        let o = ssl_opts(&s).unwrap().unwrap();
        assert!(o.accept_invalid_certs());
        assert!(o.skip_domain_validation());
    }

    #[test]
    fn verify_checks_everything() {
        let s = DbSettings {
            tls: TlsMode::Verify,
            ..DbSettings::default()
        };
        let o = ssl_opts(&s).unwrap().unwrap();
        assert!(!o.accept_invalid_certs());
        assert!(!o.skip_domain_validation());
        assert!(o.root_cert_path().is_none());
    }

    #[test]
    fn missing_or_bogus_ca_file_is_reported() {
        let dir = std::env::temp_dir().join(format!("ipta-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("nope.pem");
        let s = DbSettings {
            tls: TlsMode::Verify,
            tls_ca: Some(missing.clone()),
            ..DbSettings::default()
        };
        let e = ssl_opts(&s).unwrap_err().to_string();
        assert!(e.contains("nope.pem"), "{e}");

        let bogus = dir.join("bogus.pem");
        std::fs::write(&bogus, "hello, not a certificate\n").unwrap();
        let s = DbSettings {
            tls_ca: Some(bogus),
            ..s
        };
        let e = ssl_opts(&s).unwrap_err().to_string();
        assert!(e.contains("no certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
