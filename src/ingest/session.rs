//! One run of ipta-ingest over one stdin stream: read lines, follow the omprog protocol, parse,
//! number, batch, hand batches to the database worker, reply only once it is safe to.
//!
//! The rules that keep a line from being lost or doubled:
//! - Nothing is confirmed (`OK`) before every row handed over up to that point is committed.
//!   Batches are written in order, so "the last batch handed over is done" is the test.
//! - Each packet gets its occurrence number (`record::dedup::Occurrences`) as it is read. When a
//!   unit that rsyslog will send again is given up (an abandoned transaction, a failed commit),
//!   its numbers are taken back, so the replay gets the same keys and the idempotent insert
//!   turns away whatever of it was written already.
//! - While ipta-ingest has to wait in confirm mode (a slow commit, a full buffer), it writes the
//!   keep-alive `.` every `keepalive` so rsyslog does not restart it. It does so even between
//!   lines (a timer flush blocked by a full buffer): rsyslog may already be waiting for the
//!   reply to a line not read yet, and a dot before a reply is skipped by rsyslog anyway.
//! - A line that is not ipta's is acknowledged and counted; a line the parser rejects is
//!   acknowledged, counted and written with its reason to the rejects file.
//!
//! Relays. On a central log host, rsyslog's template puts `@relay=<address> ` (the sending
//! relay's address, `%fromhost-ip%`) in front of each line. The session takes it off before
//! parsing and stores the address in the row's `relay` column. The sender cannot forge it: its
//! own text only starts after the prefix, and a line of the normal template always starts with a
//! time stamp, never with `@`. A prefix whose address does not parse rejects the line.

use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::follow::fanout::FanOut;
use crate::ingest::input::{read_line_capped, Control, LineSource};
use crate::ingest::protocol::{self, Ack, Mode, Protocol};
use crate::ingest::rejects::Rejects;
use crate::ingest::worker::{Pipeline, Submit};
use crate::ingest::Counters;
use crate::parse::{Outcome, Parser, MAX_LINE};
use crate::record::{RecordBatch, Timestamp};
use crate::record::dedup::{record_hash, Occurrences};

/// Anything that turns a line into an [`Outcome`]: the real parser, or a stand-in in tests.
pub trait LineParser {
    fn parse_line<'a>(&mut self, line: &'a [u8]) -> Outcome<'a>;
    /// The current time, for a parser that infers the year of year-less stamps from it.
    fn set_now(&mut self, _now: Timestamp) {}
}

impl LineParser for Parser {
    fn parse_line<'a>(&mut self, line: &'a [u8]) -> Outcome<'a> {
        self.parse(line)
    }
    fn set_now(&mut self, now: Timestamp) {
        self.set_reference(now);
    }
}

/// What a central log host's template puts in front of a line: `@relay=<address> `.
pub const RELAY_PREFIX: &[u8] = b"@relay=";

/// Splits `@relay=<address> ` off a line: `Ok(None)` when the line has no such prefix,
/// `Ok(Some((address, rest)))`, or `Err(())` for a prefix without a valid IP address.
fn split_relay(line: &[u8]) -> Result<Option<(&str, &[u8])>, ()> {
    let Some(rest) = line.strip_prefix(RELAY_PREFIX) else { return Ok(None) };
    let end = memchr::memchr(b' ', rest).ok_or(())?;
    let addr = std::str::from_utf8(&rest[..end]).map_err(|_| ())?;
    // Parsing an address allocates nothing.
    addr.parse::<std::net::IpAddr>().map_err(|_| ())?;
    Ok(Some((addr, &rest[end + 1..])))
}

/// How often the parser's reference time is moved to now. A year-less stamp is never put after
/// the reference (plus a day of tolerance); a reference fixed at start-up would, after a day of
/// uptime, push today's stamps back a year.
const REFERENCE_EVERY: Duration = Duration::from_secs(1);

/// Timing and sizes of a session (defaults documented in README.md).
#[derive(Clone, Debug)]
pub struct SessionOptions {
    pub mode: Mode,
    /// Rows per batch: a full batch is handed to the worker at once.
    pub batch_size: usize,
    /// A partly filled batch is handed over this long after its first row.
    pub flush: Duration,
    /// How long a confirmation may wait for the database before the error reply.
    pub commit_timeout: Duration,
    /// Interval of the keep-alive `.` while waiting in confirm mode.
    pub keepalive: Duration,
    /// After SIGTERM/SIGINT or end of input: how long to keep trying to write what is left.
    pub shutdown_timeout: Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            mode: Mode::Plain,
            batch_size: 500,
            flush: Duration::from_millis(200),
            commit_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(1),
            shutdown_timeout: Duration::from_millis(4000),
        }
    }
}

/// The reader side of ipta-ingest.
pub struct Session<P: LineParser, W: Write> {
    opts: SessionOptions,
    proto: Protocol,
    parser: P,
    out: W,
    pipeline: Option<Pipeline>,
    batch: RecordBatch,
    /// When the first row of the current batch arrived.
    batch_since: Option<Instant>,
    occ: Occurrences,
    /// The keys of the unit not yet confirmed (confirm mode): taken back on a rollback.
    unit: Vec<(Timestamp, u64)>,
    /// The last batch holding rows of the unit (0: none handed over): confirming the unit
    /// waits for that batch only, not for older batches of failed units still being retried.
    unit_seq: u64,
    /// The batch being filled holds rows of the unit.
    batch_has_unit_rows: bool,
    rejects: Option<Arc<Mutex<Rejects>>>,
    fanout: Option<FanOut>,
    counters: Arc<Counters>,
    control: Control,
    /// Set by SIGTERM/SIGINT: the time by which to be gone.
    stopping: Option<Instant>,
    /// Keep-alives are written (confirm mode, until shutdown).
    keepalives: bool,
    /// The input is paused because the buffer is full (logged once per pause).
    paused: bool,
    told_no_rejects: bool,
    /// When the parser's reference time was last moved to now (None: not yet).
    reference_at: Option<Instant>,
}

impl<P: LineParser, W: Write> Session<P, W> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        opts: SessionOptions,
        parser: P,
        out: W,
        pipeline: Pipeline,
        counters: Arc<Counters>,
        control: Control,
        rejects: Option<Arc<Mutex<Rejects>>>,
        fanout: Option<FanOut>,
    ) -> Self {
        let batch = pipeline.empty_batch(opts.batch_size);
        let keepalives = opts.mode == Mode::Confirm;
        Session {
            proto: Protocol::new(opts.mode),
            opts,
            parser,
            out,
            pipeline: Some(pipeline),
            batch,
            batch_since: None,
            occ: Occurrences::new(),
            unit: Vec::new(),
            unit_seq: 0,
            batch_has_unit_rows: false,
            rejects,
            fanout,
            counters,
            control,
            stopping: None,
            keepalives,
            paused: false,
            told_no_rejects: false,
            reference_at: None,
        }
    }

    fn pipeline(&mut self) -> &mut Pipeline {
        self.pipeline.as_mut().expect("pipeline lives until shutdown")
    }

    /// Runs until end of input or SIGTERM/SIGINT, then writes what is left (within the
    /// shutdown timeout). Returns how many rows could not be written.
    pub fn run<R: LineSource>(mut self, input: &mut R) -> io::Result<u64> {
        let res = self.read_loop(input);
        let unwritten = self.shutdown();
        res.map(|_| unwritten)
    }

    fn read_loop<R: LineSource>(&mut self, input: &mut R) -> io::Result<()> {
        if let Some(g) = self.proto.greeting() {
            self.reply(g)?;
        }
        // At most MAX_LINE + 1 bytes of a line are kept (see `read_line_capped`): the buffer
        // never grows past that, whatever arrives on stdin.
        let mut buf = Vec::with_capacity(8192);
        let mut seen = 0u64;
        loop {
            self.service();
            if self.stopping.is_some() {
                return Ok(());
            }
            input.set_wake(self.batch_since.map(|t| t + self.opts.flush));
            match read_line_capped(input, &mut buf, MAX_LINE, &mut seen) {
                Ok(false) => {
                    return Ok(());
                }
                Ok(true) => {
                    self.advance_reference();
                    self.line(&buf)?;
                    buf.clear();
                    self.flush_if_due()?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    // `buf` keeps a partial line; the next read_until appends the rest.
                    self.flush_if_due()?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves the parser's reference time to now, at most every [`REFERENCE_EVERY`] (one clock
    /// read per line otherwise, no system call: `Instant::now` goes through the vDSO).
    fn advance_reference(&mut self) {
        let now = Instant::now();
        if self.reference_at.is_some_and(|t| now.duration_since(t) < REFERENCE_EVERY) {
            return;
        }
        self.reference_at = Some(now);
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        self.parser.set_now(Timestamp(micros));
    }

    /// Acts on signals: counters, reopening the rejects file, stopping.
    fn service(&mut self) {
        if self.control.usr1.swap(false, Ordering::SeqCst) {
            eprintln!("ipta-ingest: {}", self.counters);
        }
        if self.control.hup.swap(false, Ordering::SeqCst) {
            if let Some(r) = &self.rejects {
                let mut r = r.lock().unwrap();
                if let Err(e) = r.reopen() {
                    eprintln!("ipta-ingest: cannot reopen {}: {e}", r.path().display());
                }
            }
        }
        if self.stopping.is_none() && self.control.term.load(Ordering::SeqCst) {
            let late = self.control.since_term();
            self.stopping = Some(Instant::now() + self.opts.shutdown_timeout.saturating_sub(late));
        }
    }

    fn flush_if_due(&mut self) -> io::Result<()> {
        match self.batch_since {
            Some(t) if t.elapsed() >= self.opts.flush => self.flush(),
            _ => Ok(()),
        }
    }

    fn reply(&mut self, r: &str) -> io::Result<()> {
        // One write per reply: a line-buffered stdout would otherwise send the word and the
        // newline in two system calls, and rsyslog would wake up twice per reply.
        let mut line = [0u8; 128];
        let n = r.len().min(line.len() - 1);
        line[..n].copy_from_slice(&r.as_bytes()[..n]);
        line[n] = b'\n';
        self.out.write_all(&line[..=n])?;
        self.out.flush()?;
        Ok(())
    }

    fn keepalive(&mut self) -> io::Result<()> {
        if self.keepalives {
            self.out.write_all(protocol::KEEPALIVE)?;
            self.out.flush()?;
        }
        Ok(())
    }

    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        let d = self.proto.on_line(protocol::classify(line));
        if d.rollback {
            self.rollback_unit();
        }
        if d.store {
            self.store(line)?;
        }
        if d.flush {
            self.flush()?;
        }
        match d.ack {
            Ack::None => {}
            Ack::Now(r) => self.reply(r)?,
            Ack::WhenDurable => {
                if self.wait_durable()? {
                    self.end_unit();
                    self.reply(protocol::OK)?;
                } else if self.stopping.is_some() {
                    // Going away: no reply at all. rsyslog sees the pipe close and keeps the
                    // unit for the next instance; the rows still reach the table if the
                    // worker manages it before exit, and the replay then finds them there.
                    self.rollback_unit();
                } else {
                    self.rollback_unit();
                    self.reply(self.proto.after_wait(false))?;
                }
            }
        }
        Ok(())
    }

    fn store(&mut self, line: &[u8]) -> io::Result<()> {
        self.counters.read.fetch_add(1, Ordering::Relaxed);
        let (relay, line) = match split_relay(line) {
            Ok(Some((a, rest))) => (Some(a), rest),
            Ok(None) => (None, line),
            Err(()) => {
                self.reject(line, "the relay prefix `@relay=<address> ` has no valid IP address");
                return Ok(());
            }
        };
        match self.parser.parse_line(line) {
            Outcome::Packet(mut rec) => {
                rec.relay = relay;
                let hash = record_hash(&rec);
                let occ = self.occ.next(rec.ts, hash);
                self.batch.push(&rec, u64::from(occ));
                if self.proto.mode() == Mode::Confirm {
                    self.unit.push((rec.ts, hash));
                    self.batch_has_unit_rows = true;
                }
                if let Some(f) = &mut self.fanout {
                    f.send(line);
                }
                if self.batch_since.is_none() {
                    self.batch_since = Some(Instant::now());
                }
                if self.batch.len() >= self.opts.batch_size {
                    self.flush()?;
                }
            }
            Outcome::NotOurs => {
                self.counters.not_ours.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Rejected(r) => self.reject(line, r.reason),
        }
        Ok(())
    }

    /// Counts a rejected line and keeps it, with its reason, in the rejects file.
    fn reject(&mut self, line: &[u8], reason: &str) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        match &self.rejects {
            Some(f) => f.lock().unwrap().write_line(line, reason),
            None if !self.told_no_rejects => {
                self.told_no_rejects = true;
                eprintln!("ipta-ingest: rejected a line ({reason}); give --rejects FILE to keep such lines");
            }
            None => {}
        }
    }

    /// Takes back the occurrence numbers of the unconfirmed unit (it will be sent again).
    fn rollback_unit(&mut self) {
        for (ts, h) in self.unit.drain(..) {
            self.occ.undo(ts, h);
        }
        self.end_unit();
    }

    /// The unit is settled (confirmed or given up): the next one starts with no rows.
    fn end_unit(&mut self) {
        self.unit.clear();
        self.unit_seq = 0;
        self.batch_has_unit_rows = false;
    }

    /// Hands the batch being filled to the worker, waiting (with keep-alives) while the buffer
    /// is full: that wait is what stops ipta-ingest reading and pushes back on rsyslog.
    fn flush(&mut self) -> io::Result<()> {
        self.batch_since = None;
        if self.batch.is_empty() {
            return Ok(());
        }
        let cap = self.opts.batch_size;
        let fresh = self.pipeline().empty_batch(cap);
        let full = std::mem::replace(&mut self.batch, fresh);
        let mut next = Some(full);
        // The sequence number is assigned on the first attempt, parked or not.
        let holds_unit = std::mem::replace(&mut self.batch_has_unit_rows, false);
        let mut first = true;
        loop {
            // Never sleep past the shutdown deadline.
            let wait = match self.stopping {
                Some(t) => self.opts.keepalive.min(t.saturating_duration_since(Instant::now())),
                None => self.opts.keepalive,
            };
            let r = self.pipeline().submit(next.take(), wait);
            if first && holds_unit {
                self.unit_seq = self.pipeline().submitted();
            }
            first = false;
            match r {
                Submit::Queued => {
                    if self.paused {
                        self.paused = false;
                        eprintln!("ipta-ingest: buffer has room again, reading input");
                    }
                    return Ok(());
                }
                Submit::Full => {
                    if !self.paused {
                        self.paused = true;
                        let queued = self.pipeline().submitted().saturating_sub(self.pipeline().done());
                        eprintln!(
                            "ipta-ingest: buffer full ({queued} batches waiting for the database): pausing input"
                        );
                    }
                    self.keepalive()?;
                    self.service();
                    if matches!(self.stopping, Some(t) if Instant::now() >= t) {
                        // Left parked; shutdown counts it as unwritten.
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Waits until every row of the unit is committed, with keep-alives; false on timeout or
    /// when the shutdown deadline passes first.
    fn wait_durable(&mut self) -> io::Result<bool> {
        let target = self.unit_seq;
        if target == 0 {
            return Ok(true);
        }
        if self.pipeline().has_parked() {
            return Ok(false);
        }
        let start = Instant::now();
        loop {
            let limit = match self.stopping {
                Some(t) => t,
                None => start + self.opts.commit_timeout,
            };
            let now = Instant::now();
            if now >= limit {
                return Ok(self.pipeline().done() >= target);
            }
            let step = self.opts.keepalive.min(limit - now);
            if self.pipeline().wait_done(target, step) {
                return Ok(true);
            }
            self.keepalive()?;
            self.service();
        }
    }

    /// End of input or stop signal: hand over the last rows and give the worker until the
    /// deadline to write them.
    fn shutdown(&mut self) -> u64 {
        let deadline = self.stopping.unwrap_or_else(|| Instant::now() + self.opts.shutdown_timeout);
        // An open transaction stays unconfirmed (rsyslog resends it); its rows are written
        // anyway, which the replay then finds present.
        self.proto.on_eof();
        // rsyslog has closed the pipe or is about to: nothing more goes to stdout.
        self.keepalives = false;
        self.stopping = Some(deadline);
        let mut unwritten = 0;
        if self.pipeline().has_parked() {
            unwritten += self.batch.len() as u64;
            self.batch.clear();
        } else {
            let _ = self.flush();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let pipeline = self.pipeline.take().expect("shutdown runs once");
        unwritten += pipeline.finish(left);
        if unwritten > 0 {
            self.counters.unwritten.store(unwritten, Ordering::SeqCst);
            eprintln!(
                "ipta-ingest: {unwritten} rows could not be written before exit (database unavailable)"
            );
        }
        unwritten
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::worker::WorkerOptions;
    use crate::parse::{Reject, RejectKind};
    use crate::record::Record;

    /// Stand-in parser: `<ts> IPT: <action> ...` is a packet at time `ts` (seconds), a line
    /// containing `IPT: BAD` is rejected, anything else is not ours.
    struct Fake;
    impl LineParser for Fake {
        fn parse_line<'a>(&mut self, line: &'a [u8]) -> Outcome<'a> {
            let s = std::str::from_utf8(line).unwrap();
            if s.contains("IPT: BAD") {
                return Outcome::Rejected(Reject { kind: RejectKind::Malformed, reason: "bad" });
            }
            let Some(i) = s.find("IPT: ") else { return Outcome::NotOurs };
            let ts: i64 = s[..i].trim().parse().unwrap_or(0);
            Outcome::Packet(Record {
                ts: Timestamp(ts * 1_000_000),
                action: "DROP",
                prefix: "IPT: DROP ",
                repeat: 1,
                message: &line[i..],
                ..Default::default()
            })
        }
    }

    /// The table in memory of the write path's tests.
    type Table = crate::store::sink::tests::Fake;

    fn opts(mode: Mode) -> SessionOptions {
        SessionOptions {
            mode,
            batch_size: 3,
            flush: Duration::from_millis(20),
            commit_timeout: Duration::from_millis(200),
            keepalive: Duration::from_millis(20),
            shutdown_timeout: Duration::from_millis(500),
        }
    }

    fn run(table: &Table, o: SessionOptions, input: &str) -> (String, Arc<Counters>, u64) {
        let counters = Arc::new(Counters::default());
        let wo = WorkerOptions {
            queue_batches: 4,
            buffer_rows: 12,
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_millis(10),
        };
        let p = Pipeline::start(table.connector(), wo, counters.clone(), None);
        let mut out = Vec::new();
        let s = Session::new(o, Fake, &mut out, p, counters.clone(), Control::default(), None, None);
        let unwritten = s.run(&mut input.as_bytes()).unwrap();
        (String::from_utf8(out).unwrap(), counters, unwritten)
    }

    #[test]
    fn plain_mode_writes_everything_and_says_nothing() {
        let t = Table::default();
        let input = "1 IPT: DROP a\n2 IPT: DROP b\nhello\n3 IPT: DROP c\n4 IPT: BAD\n5 IPT: DROP d";
        let (out, c, unwritten) = run(&t, opts(Mode::Plain), input);
        assert_eq!(out, "");
        assert_eq!(unwritten, 0);
        assert_eq!(t.len(), 4, "the last line has no newline and still counts");
        assert_eq!(Counters::get(&c.read), 6);
        assert_eq!(Counters::get(&c.not_ours), 1);
        assert_eq!(Counters::get(&c.rejected), 1);
        assert_eq!(Counters::get(&c.inserted), 4);
    }

    #[test]
    fn repeated_packets_all_count() {
        let t = Table::default();
        let (_, c, _) = run(&t, opts(Mode::Plain), "1 IPT: DROP a\n1 IPT: DROP a\n1 IPT: DROP a\n");
        assert_eq!(t.len(), 3);
        assert_eq!(Counters::get(&c.duplicates), 0);
    }

    #[test]
    fn confirm_mode_acks_each_line_after_commit() {
        let t = Table::default();
        let (out, _, _) = run(&t, opts(Mode::Confirm), "1 IPT: DROP a\nnoise\n2 IPT: BAD x\n");
        assert_eq!(out, "OK\nOK\nOK\nOK\n");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn transactions_commit_and_replays_are_idempotent() {
        let t = Table::default();
        let txn = "BEGIN TRANSACTION\n1 IPT: DROP a\n1 IPT: DROP a\n2 IPT: DROP b\n3 IPT: DROP c\nCOMMIT TRANSACTION\n";
        let (out, _, _) = run(&t, opts(Mode::Confirm), txn);
        assert_eq!(out, "OK\nOK\nDEFER_COMMIT\nDEFER_COMMIT\nDEFER_COMMIT\nDEFER_COMMIT\nOK\n");
        assert_eq!(t.len(), 4);
        // The same batch from a new instance (after a crash): nothing new.
        let (_, c, _) = run(&t, opts(Mode::Confirm), txn);
        assert_eq!(t.len(), 4);
        assert_eq!(Counters::get(&c.duplicates), 4);
    }

    #[test]
    fn abandoned_transaction_replays_with_the_same_keys() {
        let t = Table::default();
        // The first attempt is abandoned after part of it was handed over (batch size 3), then
        // sent again: the repeated packet `1 a` must stay two rows, not three or one.
        let input = "BEGIN TRANSACTION\n1 IPT: DROP a\n1 IPT: DROP a\n2 IPT: DROP b\n3 IPT: DROP c\n\
                     BEGIN TRANSACTION\n1 IPT: DROP a\n1 IPT: DROP a\n2 IPT: DROP b\n3 IPT: DROP c\nCOMMIT TRANSACTION\n";
        let (out, _, _) = run(&t, opts(Mode::Confirm), input);
        assert_eq!(out.lines().filter(|l| *l == "OK").count(), 4);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn failed_commit_gets_an_error_reply_and_the_replay_lands_once() {
        let t = Table::default();
        t.down.store(true, Ordering::SeqCst);
        let counters = Arc::new(Counters::default());
        let wo = WorkerOptions {
            queue_batches: 4,
            buffer_rows: 12,
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_millis(5),
        };
        let p = Pipeline::start(t.connector(), wo, counters.clone(), None);
        let (mut rd, wr) = std::os::unix::net::UnixStream::pair().unwrap();
        let out_buf = Arc::new(Mutex::new(Vec::new()));
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let s = Session::new(
            opts(Mode::Confirm),
            Fake,
            Shared(out_buf.clone()),
            p,
            counters.clone(),
            Control::default(),
            None,
            None,
        );
        let h = std::thread::spawn(move || s.run(&mut io::BufReader::new(wr)).unwrap());
        use std::io::Write as _;
        let txn = "BEGIN TRANSACTION\n1 IPT: DROP a\n1 IPT: DROP a\nCOMMIT TRANSACTION\n";
        rd.write_all(txn.as_bytes()).unwrap();
        // The commit cannot happen: after the commit timeout, keep-alives then an error.
        let t0 = Instant::now();
        loop {
            let o = String::from_utf8(out_buf.lock().unwrap().clone()).unwrap();
            if o.contains(protocol::ERR_NOT_COMMITTED) {
                assert!(o.contains("DEFER_COMMIT\n."), "keep-alives while waiting: {o:?}");
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "no error reply: {o:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Still down: a line with nothing to store is confirmed at once (no keep-alive dots),
        // it does not wait for the failed unit's rows.
        let before = out_buf.lock().unwrap().len();
        rd.write_all(b"not a firewall line\n").unwrap();
        let t0 = Instant::now();
        loop {
            let o = out_buf.lock().unwrap()[before..].to_vec();
            if o.ends_with(b"\n") {
                assert_eq!(o, b"OK\n");
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(1));
        }
        // Back up, rsyslog retries the whole transaction.
        t.down.store(false, Ordering::SeqCst);
        rd.write_all(txn.as_bytes()).unwrap();
        drop(rd);
        assert_eq!(h.join().unwrap(), 0);
        let o = String::from_utf8(out_buf.lock().unwrap().clone()).unwrap();
        assert!(o.ends_with("OK\nDEFER_COMMIT\nDEFER_COMMIT\nOK\n"), "{o:?}");
        assert_eq!(t.len(), 2, "two identical packets, written exactly once each");
    }

    #[test]
    fn stop_signal_ends_the_run() {
        let t = Table::default();
        let counters = Arc::new(Counters::default());
        let p = Pipeline::start(t.connector(), WorkerOptions::default(), counters.clone(), None);
        let control = Control::default();
        control.term.store(true, Ordering::SeqCst);
        let mut out = Vec::new();
        let s = Session::new(opts(Mode::Plain), Fake, &mut out, p, counters, control, None, None);
        // The input never ends; the pending flag stops the session before it reads.
        let mut endless = io::Cursor::new(vec![b'x'; 10]);
        assert_eq!(s.run(&mut endless).unwrap(), 0);
    }

    /// A session over the real parser, its reference time set `age_days` in the past (as if
    /// ipta-ingest had been started that long ago); returns the stored rows' times (seconds).
    fn run_real(age_days: i64, input: &[u8]) -> (Vec<i64>, Arc<Counters>) {
        let t = Table::default();
        let now = chrono::Utc::now().timestamp_micros();
        let parser = Parser::new(crate::parse::ParseOptions {
            reference: Timestamp(now - age_days * 86_400 * 1_000_000),
            year: None,
            tz: Some("UTC".into()),
            rules: Default::default(),
        })
        .unwrap();
        let counters = Arc::new(Counters::default());
        let p = Pipeline::start(t.connector(), WorkerOptions::default(), counters.clone(), None);
        let mut out = Vec::new();
        let s = Session::new(opts(Mode::Plain), parser, &mut out, p, counters.clone(), Control::default(), None, None);
        s.run(&mut io::Cursor::new(input)).unwrap();
        let rows = t.rows.lock().unwrap().iter().map(|r| r.0 / 1_000_000).collect();
        (rows, counters)
    }

    const BODY: &str = "fw kernel: IPT: DROP IN=eth0 OUT= SRC=192.0.2.1 DST=192.0.2.2 LEN=40 TTL=64 ID=1 PROTO=TCP SPT=1 DPT=22 SYN URGP=0";

    #[test]
    fn reference_time_follows_the_clock() {
        // A year-less stamp of now, read by an ingest that started 400 days ago: with the
        // start-up time as the reference it would be put in an earlier year.
        let now = chrono::Utc::now();
        let line = format!("{} {BODY}\n", now.format("%b %e %H:%M:%S"));
        let (rows, _) = run_real(400, line.as_bytes());
        assert_eq!(rows.len(), 1);
        assert!((rows[0] - now.timestamp()).abs() <= 5, "stored {} for now {}", rows[0], now.timestamp());
    }

    #[test]
    fn an_endless_line_is_rejected_in_bounded_memory_and_the_next_line_is_kept() {
        let now = chrono::Utc::now();
        let mut input = vec![0u8; 3 * MAX_LINE + 17];
        input.extend_from_slice(format!("\n{} {BODY}\n", now.format("%b %e %H:%M:%S")).as_bytes());
        let (rows, c) = run_real(0, &input);
        assert_eq!(rows.len(), 1, "the line after the long one is stored");
        assert_eq!(Counters::get(&c.rejected), 1, "the long line is rejected, not dropped");
        assert_eq!(Counters::get(&c.read), 2);
    }

    #[test]
    fn relay_prefix_is_split_off_and_checked() {
        assert_eq!(split_relay(b"2026-01-01T00:00:00Z fw1 x"), Ok(None));
        assert_eq!(split_relay(b"@relay=192.0.2.7 rest of line"), Ok(Some(("192.0.2.7", &b"rest of line"[..]))));
        assert_eq!(split_relay(b"@relay=2001:db8::1 x"), Ok(Some(("2001:db8::1", &b"x"[..]))));
        assert_eq!(split_relay(b"@relay=fw1.example.net x"), Err(()));
        assert_eq!(split_relay(b"@relay=192.0.2.7"), Err(()));
        assert_eq!(split_relay(b"@relay= x"), Err(()));
    }
}
