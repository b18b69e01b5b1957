//! `ipta-ingest --journal-cursor FILE`: live ingest from the systemd journal, for machines
//! without rsyslog. Its input is `journalctl -o json` (see `examples/ipta-journal-feed`, which
//! starts journalctl right after the cursor this module saves).
//!
//! Nothing lost, nothing repeated across restarts: the cursor file names the last entry whose
//! rows the database has COMMITTED, never one merely read. This module plays rsyslog's part for
//! the [`Session`](super::session::Session) in confirm mode: [`Feed`] turns the JSON entries
//! into omprog transactions (`BEGIN TRANSACTION`, the rendered lines, `COMMIT TRANSACTION`,
//! a commit every `--batch-size` entries or `--flush-ms` after the first), and [`Replies`]
//! reads the session's answers: on `OK` to a commit the cursor of its last entry is written
//! (a temporary file, mode 0600, fsync, rename: a crash leaves the old cursor or the new one,
//! never half of one); on an error reply the same transaction is sent again, as rsyslog would.
//! At shutdown (end of input, SIGTERM) the session writes what it holds; only when every row
//! reached the table is the cursor of the last entry read saved too. So an entry read but not
//! committed when the process dies is read again from the journal next time, and one committed
//! is never read again. Everything else (batches, outages, de-duplication, the fan-out) is the
//! session's and the worker's, as for rsyslog.

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::input::{read_line_capped, LineSource, StdinSource};
use super::Counters;
use crate::parse::journal::{self, Entry};

/// The longest JSON line kept (a kernel entry is under 2 KiB; journald's own limit on a
/// field shown by journalctl is 4096 bytes unless --all).
const MAX_JSON: usize = 64 * 1024;

const BEGIN: &[u8] = b"BEGIN TRANSACTION\n";
const COMMIT: &[u8] = b"COMMIT TRANSACTION\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No transaction open.
    Idle,
    /// BEGIN sent, entries being sent.
    Open,
    /// COMMIT sent; the reply decides.
    Committing,
    /// The commit was refused: send the same transaction again.
    Resend,
}

/// What the input side and the reply side share (one thread: the session's).
struct State {
    cursor_file: PathBuf,
    phase: Phase,
    /// The rendered lines of the open transaction (kept for a resend).
    txn: Vec<Vec<u8>>,
    /// The cursor of the last entry of the open transaction (entries of other transports
    /// included: committing moves past them too).
    txn_cursor: Option<String>,
    /// The cursor of the last entry the session has taken whole.
    consumed_cursor: Option<String>,
    /// The last cursor written to the file.
    saved: Option<String>,
    /// An error writing the cursor file (reported once per kind).
    told_save_error: bool,
}

impl State {
    fn save(&mut self, cursor: Option<String>) {
        let Some(c) = cursor else { return };
        if self.saved.as_deref() == Some(c.as_str()) {
            return;
        }
        match write_cursor(&self.cursor_file, &c) {
            Ok(()) => {
                self.saved = Some(c);
                self.told_save_error = false;
            }
            Err(e) if !self.told_save_error => {
                self.told_save_error = true;
                eprintln!("ipta-ingest: cannot save the journal cursor to {}: {e}", self.cursor_file.display());
            }
            Err(_) => {}
        }
    }
}

/// Writes the cursor atomically: a temporary file next to it (mode 0600), fsync, rename.
pub fn write_cursor(path: &Path, cursor: &str) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(cursor.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself durable (best effort: some file systems refuse fsync on a directory).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Reads the saved cursor (None when there is none yet).
pub fn read_cursor(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The session's input: journal entries on stdin as omprog transactions.
pub struct Feed {
    state: Rc<RefCell<State>>,
    raw: StdinSource,
    counters: Arc<Counters>,
    batch_size: usize,
    flush: Duration,
    /// The line being handed to the session, and how much of it it took.
    out: Vec<u8>,
    pos: usize,
    /// Its cursor, recorded as consumed once the session took it whole.
    out_cursor: Option<String>,
    /// Index of the next line of a resent transaction (0: BEGIN, 1..=n: lines, n+1: COMMIT).
    resend_at: usize,
    json: Vec<u8>,
    seen: u64,
    entry: Vec<u8>,
    /// When the first entry of the open transaction arrived.
    since: Option<Instant>,
    session_wake: Option<Instant>,
    eof: bool,
    told_bad: bool,
}

/// The session's output: its replies, which decide when the cursor moves.
pub struct Replies {
    state: Rc<RefCell<State>>,
    line: Vec<u8>,
}

/// The pair for a session; `cursor_file` is where the cursor of the last committed entry goes.
pub fn feed(cursor_file: &Path, raw: StdinSource, counters: Arc<Counters>, batch_size: usize, flush: Duration) -> (Feed, Replies) {
    let saved = read_cursor(cursor_file).ok().flatten();
    let state = Rc::new(RefCell::new(State {
        cursor_file: cursor_file.to_path_buf(),
        phase: Phase::Idle,
        txn: Vec::new(),
        txn_cursor: None,
        consumed_cursor: None,
        saved,
        told_save_error: false,
    }));
    let f = Feed {
        state: state.clone(),
        raw,
        counters,
        batch_size: batch_size.max(1),
        flush,
        out: Vec::with_capacity(4096),
        pos: 0,
        out_cursor: None,
        resend_at: 0,
        json: Vec::with_capacity(8192),
        seen: 0,
        entry: Vec::with_capacity(4096),
        since: None,
        session_wake: None,
        eof: false,
        told_bad: false,
    };
    (f, Replies { state, line: Vec::new() })
}

impl Feed {
    /// After the session has stopped: saves the cursor of the last entry it took, when every
    /// row it took reached the table (`unwritten == 0`).
    pub fn finish(self, unwritten: u64) {
        let mut st = self.state.borrow_mut();
        if unwritten == 0 {
            let c = st.consumed_cursor.clone();
            st.save(c);
        }
    }

    fn emit(&mut self, line: &[u8], cursor: Option<String>) {
        self.out.clear();
        self.out.extend_from_slice(line);
        self.pos = 0;
        self.out_cursor = cursor;
    }

    fn commit(&mut self) {
        self.state.borrow_mut().phase = Phase::Committing;
        self.since = None;
        self.emit(COMMIT, None);
    }

    /// Produces the next line for the session into `out`; Ok(false) at the end of input.
    fn next(&mut self) -> io::Result<bool> {
        loop {
            let phase = self.state.borrow().phase;
            match phase {
                Phase::Resend => {
                    let st = self.state.borrow();
                    let n = st.txn.len();
                    let i = self.resend_at;
                    let line = if i == 0 { BEGIN.to_vec() } else if i <= n { st.txn[i - 1].clone() } else { COMMIT.to_vec() };
                    drop(st);
                    self.resend_at += 1;
                    if i > n {
                        self.resend_at = 0;
                        self.state.borrow_mut().phase = Phase::Committing;
                    }
                    self.emit(&line, None);
                    return Ok(true);
                }
                // The session reads again only after replying; no reply means it is stopping.
                Phase::Committing => return Err(io::Error::from(io::ErrorKind::TimedOut)),
                Phase::Idle | Phase::Open => {}
            }
            let open = phase == Phase::Open;
            if open && (self.state.borrow().txn.len() >= self.batch_size || self.eof) {
                self.commit();
                return Ok(true);
            }
            if self.eof {
                return Ok(false);
            }
            let deadline = self.since.map(|t| t + self.flush);
            let wake = match (deadline, self.session_wake) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.raw.set_wake(wake);
            match read_line_capped(&mut self.raw, &mut self.json, MAX_JSON, &mut self.seen) {
                Ok(false) => {
                    self.eof = true;
                    continue;
                }
                Ok(true) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    if open && deadline.is_some_and(|d| Instant::now() >= d) {
                        self.commit();
                        return Ok(true);
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
            self.seen = 0;
            let json = std::mem::take(&mut self.json);
            let r = self.entry_line(&json);
            self.json = json;
            self.json.clear();
            if r {
                return Ok(true);
            }
        }
    }

    /// Handles one JSON line; true when a line for the session is ready in `out`.
    fn entry_line(&mut self, json: &[u8]) -> bool {
        let bad = |f: &mut Feed, why: &str| {
            f.counters.read.fetch_add(1, Ordering::Relaxed);
            f.counters.rejected.fetch_add(1, Ordering::Relaxed);
            if !f.told_bad {
                f.told_bad = true;
                eprintln!("ipta-ingest: skipped a journal line ({why}); further ones are only counted");
            }
            false
        };
        if json.len() > MAX_JSON {
            return bad(self, "longer than 64 KiB");
        }
        let mut entry = std::mem::take(&mut self.entry);
        let r = journal::render(json, &mut entry);
        let ready = match r {
            Err(why) => bad(self, why),
            Ok(Entry::Other(cursor)) => {
                self.counters.read.fetch_add(1, Ordering::Relaxed);
                self.counters.not_ours.fetch_add(1, Ordering::Relaxed);
                let c = cursor.map(|c| c.into_owned());
                let mut st = self.state.borrow_mut();
                if st.phase == Phase::Open {
                    st.txn_cursor = c;
                } else if c.is_some() {
                    // Between transactions: taken as soon as it is read.
                    st.consumed_cursor = c;
                }
                false
            }
            Ok(Entry::Kernel(cursor)) => {
                let c = cursor.map(|c| c.into_owned());
                entry.push(b'\n');
                let begin = {
                    let mut st = self.state.borrow_mut();
                    let begin = st.phase == Phase::Idle;
                    if begin {
                        st.phase = Phase::Open;
                        st.txn.clear();
                    }
                    st.txn.push(entry.clone());
                    st.txn_cursor = c.clone();
                    begin
                };
                if begin {
                    self.since = Some(Instant::now());
                    // BEGIN and the first entry in one piece: the entry counts as taken only
                    // once the session has read all of it.
                    let mut both = BEGIN.to_vec();
                    both.extend_from_slice(&entry);
                    self.emit(&both, c);
                } else {
                    self.emit(&entry, c);
                }
                true
            }
        };
        self.entry = entry;
        ready
    }
}

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Feed {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.out.len() && !self.next()? {
            return Ok(&[]);
        }
        Ok(&self.out[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.out.len());
        if self.pos == self.out.len() {
            if let Some(c) = self.out_cursor.take() {
                self.state.borrow_mut().consumed_cursor = Some(c);
            }
        }
    }
}

impl LineSource for Feed {
    fn set_wake(&mut self, at: Option<Instant>) {
        self.session_wake = at;
    }
}

impl Write for Replies {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            match b {
                b'\n' => {
                    let line = std::mem::take(&mut self.line);
                    self.reply(&line);
                }
                // Keep-alives.
                b'.' if self.line.is_empty() => {}
                _ => self.line.push(b),
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Replies {
    fn reply(&mut self, line: &[u8]) {
        let mut st = self.state.borrow_mut();
        if st.phase != Phase::Committing {
            // The greeting, the OK to BEGIN, DEFER_COMMIT.
            return;
        }
        if line == super::protocol::OK.as_bytes() {
            st.phase = Phase::Idle;
            st.txn.clear();
            let c = st.txn_cursor.take();
            st.save(c);
        } else {
            // Not committed (database unavailable): the same entries again.
            st.phase = Phase::Resend;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_file_is_private_and_replaced_whole() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cursor");
        assert_eq!(read_cursor(&p).unwrap(), None);
        write_cursor(&p, "s=1;i=2").unwrap();
        write_cursor(&p, "s=1;i=3").unwrap();
        assert_eq!(read_cursor(&p).unwrap().as_deref(), Some("s=1;i=3"));
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!d.path().join("cursor.tmp").exists());
    }
}
