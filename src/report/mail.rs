//! `ipta -a --mail-to ADDR`: the report as a mail, handed to the local mailer. The message is
//! `multipart/alternative` with the text report and the HTML page ([`super::html`]) inline,
//! each base64-encoded (lines of 76 characters, whatever the log's lines hold) in UTF-8, with
//! the headers a mail needs (To, Subject naming the table and the window, Date, Message-ID,
//! MIME-Version, Auto-Submitted; From only when the key `mail_from` sets it, otherwise the
//! mailer fills it in).
//!
//! The mailer is the key `sendmail` (default `/usr/sbin/sendmail`, which every MTA on Debian
//! provides: exim, postfix, msmtp-mta, nullmailer), run as `sendmail -t -oi` with the message
//! on its standard input: recipients come from the To header, so no address ever becomes an
//! argument, and no password is on its command line (a relay's credentials belong in the
//! MTA's own configuration).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::query::Report;
use super::AnalyzeOptions;

/// The mailer when the key `sendmail` is not set.
pub const DEFAULT_SENDMAIL: &str = "/usr/sbin/sendmail";

/// What can go wrong while mailing.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot run the mailer {path}: {source} (install a mail transfer agent, or set the key sendmail)")]
    Spawn { path: String, source: std::io::Error },
    #[error("cannot hand the message to {path}: {source}")]
    Pipe { path: String, source: std::io::Error },
    #[error("the mailer {path} failed ({status}): {stderr}")]
    Failed { path: String, status: String, stderr: String },
}

/// Checks an address list as given to `--mail-to` or the key `mail_from`: printable ASCII
/// without the characters that would end or fold a header. The error says why.
pub fn check_address(a: &str) -> Result<(), String> {
    if a.trim().is_empty() {
        return Err("the address is empty".into());
    }
    if a.len() > 900 {
        return Err("the address list is longer than 900 characters".into());
    }
    if let Some(c) = a.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!("the address holds {c:?}: only printable ASCII is allowed"));
    }
    Ok(())
}

/// The Subject: table, window and packets, in ASCII (a header takes no raw UTF-8).
pub fn subject(rep: &Report, opts: &AnalyzeOptions) -> String {
    let s = format!(
        "ipta report of {}: {} ({} packets)",
        rep.table,
        super::html::window_text(rep, opts),
        super::render::group_digits(rep.packets)
    );
    s.chars().map(|c| if (' '..='~').contains(&c) { c } else { '?' }).collect()
}

/// `b` in base64, lines of 76 characters ending in `\n` (RFC 2045).
pub fn base64_lines(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::with_capacity(b.len() * 4 / 3 + b.len() / 57 + 4);
    for line in b.chunks(57) {
        for c in line.chunks(3) {
            let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
            o.push(A[(n >> 18) as usize & 63] as char);
            o.push(A[(n >> 12) as usize & 63] as char);
            o.push(if c.len() > 1 { A[(n >> 6) as usize & 63] as char } else { '=' });
            o.push(if c.len() > 2 { A[n as usize & 63] as char } else { '=' });
        }
        o.push('\n');
    }
    o
}

/// One message's headers and parts.
pub struct Message<'a> {
    pub to: &'a str,
    pub from: Option<&'a str>,
    pub subject: &'a str,
    pub date: chrono::DateTime<chrono::Utc>,
    /// Unique per message (letters and digits); also makes the boundary and Message-ID.
    pub token: &'a str,
    pub text: &'a [u8],
    pub html: &'a [u8],
}

impl Message<'_> {
    /// The message as the mailer reads it (lines end in `\n`, as `sendmail` expects locally).
    pub fn render(&self) -> Vec<u8> {
        // base64 never holds `=_`, so no part can contain the boundary.
        let boundary = format!("=_ipta_{}", self.token);
        let mut m = String::new();
        if let Some(f) = self.from {
            m.push_str(&format!("From: {f}\n"));
        }
        m.push_str(&format!("To: {}\n", self.to));
        m.push_str(&format!("Subject: {}\n", self.subject));
        m.push_str(&format!("Date: {}\n", self.date.to_rfc2822()));
        m.push_str(&format!("Message-ID: <{}.{}@ipta.invalid>\n", self.date.timestamp(), self.token));
        m.push_str("MIME-Version: 1.0\nAuto-Submitted: auto-generated\n");
        m.push_str(&format!("Content-Type: multipart/alternative; boundary=\"{boundary}\"\n\n"));
        m.push_str("This is a MIME message: the ipta report as text and as an HTML page.\n");
        for (kind, body) in [("plain", self.text), ("html", self.html)] {
            m.push_str(&format!(
                "\n--{boundary}\nContent-Type: text/{kind}; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
            ));
            m.push_str(&base64_lines(body));
        }
        m.push_str(&format!("\n--{boundary}--\n"));
        m.into_bytes()
    }
}

/// Runs `sendmail -t -oi` with `message` on its standard input and waits for it.
pub fn send(sendmail: &Path, message: &[u8]) -> Result<(), MailError> {
    let path = sendmail.display().to_string();
    let mut child = Command::new(sendmail)
        .args(["-t", "-oi"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| MailError::Spawn { path: path.clone(), source })?;
    let wrote = child.stdin.take().expect("piped").write_all(message);
    let out = child.wait_with_output().map_err(|source| MailError::Pipe { path: path.clone(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = crate::units::printable(stderr.trim()).chars().take(500).collect();
        return Err(MailError::Failed { path, status: out.status.to_string(), stderr });
    }
    wrote.map_err(|source| MailError::Pipe { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples_and_wraps() {
        assert_eq!(base64_lines(b""), "");
        assert_eq!(base64_lines(b"f"), "Zg==\n");
        assert_eq!(base64_lines(b"fo"), "Zm8=\n");
        assert_eq!(base64_lines(b"foobar"), "Zm9vYmFy\n");
        let long = base64_lines(&[0xffu8; 200]);
        assert!(long.lines().all(|l| l.len() <= 76));
        assert_eq!(long.lines().next().unwrap().len(), 76);
    }

    #[test]
    fn addresses_cannot_add_headers() {
        assert!(check_address("root").is_ok());
        assert!(check_address("Admin <admin@example.org>, ops@example.org").is_ok());
        assert!(check_address("a@b\nBcc: x@y").is_err());
        assert!(check_address("a@b\r").is_err());
        assert!(check_address("é@x").is_err());
        assert!(check_address(" ").is_err());
    }

    #[test]
    fn message_has_headers_and_both_parts() {
        let date = chrono::DateTime::from_timestamp(1_762_000_000, 0).unwrap();
        let m = Message {
            to: "root",
            from: None,
            subject: "ipta report",
            date,
            token: "abc",
            text: b"text",
            html: b"<p>x</p>",
        };
        let s = String::from_utf8(m.render()).unwrap();
        assert!(s.starts_with("To: root\nSubject: ipta report\nDate: Sat, 1 Nov 2025 12:26:40 +0000\n"), "{s}");
        assert!(s.contains("boundary=\"=_ipta_abc\""));
        assert!(s.contains("Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\nPHA+eDwvcD4=\n"));
        assert!(s.ends_with("\n--=_ipta_abc--\n"));
        assert!(!s.contains("From:"));
    }
}
