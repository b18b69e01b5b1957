//! Entries of the systemd journal as `journalctl -o json` prints them (one JSON object a line),
//! turned into the line ipta reads everywhere else: `<RFC 3339 time> <host> kernel: <message>`,
//! the form of rsyslog's `ipta_line` template. `ipta -i` uses it for a file whose first byte is
//! `{`, and `ipta-ingest --journal-cursor` for its input, so the journal is read one way.
//!
//! Only entries the kernel logged (`_TRANSPORT=kernel`) are ipta's: a program can write any
//! text to the journal, with any identifier, but only the kernel writes with that transport
//! (journald sets trusted `_` fields itself). MESSAGE is a string, or an array of bytes when it
//! is not valid UTF-8; the time is `__REALTIME_TIMESTAMP` (microseconds since 1970, UTC);
//! control characters of the host and the message are written as `#` and three octal digits,
//! as rsyslog's escape-cc does, so a newline inside a message never splits a line.

use std::borrow::Cow;
use std::io::Write;

use serde::Deserialize;

/// What one JSON line was.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    /// A kernel entry; its line is in the output buffer. The cursor, when the entry has one.
    Kernel(Option<Cow<'a, str>>),
    /// An entry of another transport (not ipta's); its cursor, to move past it.
    Other(Option<Cow<'a, str>>),
}

/// Why a JSON line could not be read (a bad line of the file, never a reason to stop).
pub type Bad = &'static str;

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(rename = "MESSAGE", borrow, default)]
    message: Option<Message<'a>>,
    #[serde(rename = "__REALTIME_TIMESTAMP", borrow, default)]
    realtime: Option<Cow<'a, str>>,
    #[serde(rename = "_HOSTNAME", borrow, default)]
    host: Option<Cow<'a, str>>,
    #[serde(rename = "_TRANSPORT", borrow, default)]
    transport: Option<Cow<'a, str>>,
    #[serde(rename = "__CURSOR", borrow, default)]
    cursor: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Message<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Bytes(Vec<u8>),
}

/// Whether a file (its first bytes) is journal JSON rather than syslog lines.
pub fn is_journal_json(head: &[u8]) -> bool {
    head.first() == Some(&b'{')
}

/// Reads one JSON line; for a kernel entry, writes its line (without newline) into `out`
/// (cleared first).
pub fn render<'a>(json: &'a [u8], out: &mut Vec<u8>) -> Result<Entry<'a>, Bad> {
    out.clear();
    let raw: Raw<'a> = serde_json::from_slice(json).map_err(|_| "not a journal entry (journalctl -o json): bad JSON")?;
    if raw.transport.as_deref() != Some("kernel") {
        return Ok(Entry::Other(raw.cursor));
    }
    let micros: i64 = raw
        .realtime
        .as_deref()
        .and_then(|t| t.parse().ok())
        .ok_or("journal entry without a valid __REALTIME_TIMESTAMP")?;
    let t = chrono::DateTime::from_timestamp_micros(micros).ok_or("journal entry with __REALTIME_TIMESTAMP out of range")?;
    let msg: &[u8] = match &raw.message {
        Some(Message::Text(s)) => s.as_bytes(),
        Some(Message::Bytes(b)) => b,
        None => return Err("journal entry without MESSAGE (a field over 4096 bytes is null unless journalctl --all)"),
    };
    let _ = write!(out, "{} ", t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00"));
    match raw.host.as_deref() {
        Some(h) if !h.is_empty() => escape(h.as_bytes(), out, true),
        _ => out.extend_from_slice(b"localhost"),
    }
    out.extend_from_slice(b" kernel: ");
    escape(msg.strip_suffix(b"\n").unwrap_or(msg), out, false);
    Ok(Entry::Kernel(raw.cursor))
}

/// Copies `b`, control characters (and, in a host name, spaces) as `#ooo`.
fn escape(b: &[u8], out: &mut Vec<u8>, space_too: bool) {
    for &c in b {
        if c < 0x20 || c == 0x7f || (space_too && c == b' ') {
            let _ = write!(out, "#{c:03o}");
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(json: &str) -> (Result<bool, Bad>, String) {
        let mut out = Vec::new();
        let r = render(json.as_bytes(), &mut out).map(|e| matches!(e, Entry::Kernel(_)));
        (r, String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn a_kernel_entry_becomes_ipta_line() {
        let (r, l) = one(
            r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1733400000123456","_TRANSPORT":"kernel","_HOSTNAME":"deb12","MESSAGE":"IPT: DROP IN=eth0 OUT= SRC=192.0.2.1\n"}"#,
        );
        assert_eq!(r, Ok(true));
        assert_eq!(l, "2024-12-05T12:00:00.123456+00:00 deb12 kernel: IPT: DROP IN=eth0 OUT= SRC=192.0.2.1");
    }

    #[test]
    fn byte_array_messages_and_control_characters_are_kept_safe() {
        let mut out = Vec::new();
        let json = br#"{"__REALTIME_TIMESTAMP":"0","_TRANSPORT":"kernel","_HOSTNAME":"a b","MESSAGE":[73,80,84,58,32,255,10,27,91]}"#;
        assert!(matches!(render(json, &mut out), Ok(Entry::Kernel(None))));
        assert_eq!(out, b"1970-01-01T00:00:00.000000+00:00 a#040b kernel: IPT: \xff#012#033[");
    }

    #[test]
    fn other_transports_and_bad_lines() {
        let mut out = Vec::new();
        let e = render(br#"{"__CURSOR":"c9","_TRANSPORT":"syslog","MESSAGE":"IPT: DROP IN=x OUT="}"#, &mut out).unwrap();
        assert_eq!(e, Entry::Other(Some(Cow::Borrowed("c9"))));
        assert!(out.is_empty());
        for bad in [
            "{",
            "{\"_TRANSPORT\":\"kernel\"",
            r#"{"_TRANSPORT":"kernel","MESSAGE":"x"}"#,
            r#"{"_TRANSPORT":"kernel","__REALTIME_TIMESTAMP":"12","MESSAGE":null}"#,
            r#"{"_TRANSPORT":"kernel","__REALTIME_TIMESTAMP":"x","MESSAGE":"m"}"#,
            r#"{"_TRANSPORT":"kernel","__REALTIME_TIMESTAMP":"1","MESSAGE":["a","b"]}"#,
            "[1,2]",
            "{\"MESSAGE\":\"\u{0}\"}}",
        ] {
            assert!(render(bad.as_bytes(), &mut out).is_err(), "{bad}");
        }
    }
}
