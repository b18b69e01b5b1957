//! The rejects file: every line ipta-ingest acknowledged but could not store, with the reason,
//! so that nothing disappears silently and the rsyslog queue never wedges on a bad line.
//!
//! One line per reject: `<time of rejection, RFC 3339 UTC> TAB <reason> TAB <the line>`. Tabs,
//! carriage returns and other control bytes of the line are written as `\xNN`, so one reject is
//! always one line. SIGHUP reopens the file (logrotate moves it away first). The file is opened
//! in append mode and flushed after every write: rejects are rare and must survive a SIGKILL.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::record::Record;

/// An append-only rejects file.
pub struct Rejects {
    path: PathBuf,
    file: File,
    /// The line being assembled, reused.
    buf: Vec<u8>,
    /// Write errors are reported once, not per line.
    failed: bool,
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o640).open(path)
}

impl Rejects {
    pub fn open(path: &Path) -> io::Result<Rejects> {
        Ok(Rejects { path: path.to_path_buf(), file: open(path)?, buf: Vec::new(), failed: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reopens the file by its name (after logrotate renamed it).
    pub fn reopen(&mut self) -> io::Result<()> {
        self.file = open(&self.path)?;
        self.failed = false;
        Ok(())
    }

    /// Records a raw input line the parser refused.
    pub fn write_line(&mut self, line: &[u8], reason: &str) {
        self.buf.clear();
        self.head(reason);
        escape_into(&mut self.buf, line);
        self.finish();
    }

    /// Records a parsed row the database refused (the raw line is gone by then: host and
    /// netfilter message stand for it).
    pub fn write_record(&mut self, r: &Record<'_>, reason: &str) {
        self.buf.clear();
        self.head(reason);
        self.buf.extend_from_slice(r.ts.to_rfc3339().as_bytes());
        self.buf.push(b' ');
        escape_into(&mut self.buf, r.host.unwrap_or("-").as_bytes());
        self.buf.push(b' ');
        escape_into(&mut self.buf, r.message);
        self.finish();
    }

    fn head(&mut self, reason: &str) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.buf.extend_from_slice(now.as_bytes());
        self.buf.push(b'\t');
        escape_into(&mut self.buf, reason.as_bytes());
        self.buf.push(b'\t');
    }

    fn finish(&mut self) {
        self.buf.push(b'\n');
        if let Err(e) = self.file.write_all(&self.buf) {
            if !self.failed {
                self.failed = true;
                eprintln!("ipta-ingest: cannot write the rejects file {}: {e}", self.path.display());
            }
        }
    }
}

/// Copies bytes, writing control bytes (tab, CR, LF, ...) as `\xNN`.
fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        if b < 0x20 || b == 0x7f || b == b'\\' {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        } else {
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_reject_and_reopen_after_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rejects.log");
        let mut r = Rejects::open(&p).unwrap();
        r.write_line(b"IPT: DROP SRC=1.2.3\tx\r", "SRC= is not an IP address");
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 1);
        let fields: Vec<&str> = text.trim_end().split('\t').collect();
        assert_eq!(fields.len(), 3);
        assert_eq!(fields[1], "SRC= is not an IP address");
        assert_eq!(fields[2], "IPT: DROP SRC=1.2.3\\x09x\\x0d");
        std::fs::rename(&p, dir.path().join("rejects.log.1")).unwrap();
        r.reopen().unwrap();
        r.write_line(b"second", "why");
        assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 1);
    }
}
