//! `ipta --import`: historical and rotated log files, compressed or not, into the packet table,
//! each packet stored once, fast, with progress.
//!
//! One reader thread opens the files in import order (a rotated set oldest first, see
//! [`files::import_order`]), detects gzip by its magic bytes and `journalctl -o json` output by its
//! first byte `{` (`parse::journal`), parses every line with a parser of
//! its own per file (year-less stamps take their year from the file's modification time; the
//! Dec -> Jan rollover is per stream), tags each packet with its occurrence number
//! (`record::dedup`, one counter per file) and fills [`RecordBatch`]es. Writer threads, each with
//! its own connection, store the batches; the unique key `(ts, line_hash, occ)` makes a file
//! imported again, its rotated or compressed copy, or lines ipta-ingest stored live add nothing.
//! The main thread collects what both sides report into an [`ImportSummary`].
//!
//! Memory is bounded whatever the file size: a fixed set of batches circulates between the
//! reader and the writers, lines are capped at [`files::MAX_LINE`], and the occurrence counter
//! forgets lines older than its window.

pub mod files;
pub mod outcome;

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::DbSettings;
use crate::parse::{journal, ActionRules, Outcome, ParseOptions, Parser, RejectKind};
use crate::record::{RecordBatch, Timestamp};
use crate::record::dedup::{record_hash, Occurrences};
use crate::store::sink::{BatchStore, RetryPolicy, Sink, SinkError, SinkEvent};
use crate::store::writer::{WriteMethod, WriteStats, Writer};
use crate::store::{self, StoreError};

pub use outcome::{FileSummary, ImportSummary, Rejections};

/// Records per batch (one transaction each) unless the options say otherwise. Measured with
/// `cargo bench --bench import`: 10,000 beat 2,000 and 5,000 (fewer commits).
pub const DEFAULT_BATCH_ROWS: usize = 10_000;
/// Writer connections unless the options say otherwise. Measured: two connections beat one
/// (one builds and sends a batch while the server stores the other's).
pub const DEFAULT_WRITERS: usize = 2;
/// A batch is also sent when its lines add up to this many bytes, so that long lines cannot
/// make the batches (and the memory they keep) grow without bound.
const MAX_BATCH_BYTES: usize = 4 << 20;

/// How long an import waits for a database that stopped taking writes (down, read-only,
/// locked...) before it stops with a database error; `ImportOptions::outage_wait` overrides it.
pub const DEFAULT_OUTAGE_WAIT: Duration = Duration::from_secs(60);

/// The parser's words for the same rejection, so `--scan` and `--import` agree.
const TOO_LONG: &str = "the line is longer than 64 KiB";
const REFUSED: &str = "the database refused the row";

/// How to import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Year of year-less stamps (`--year`); None = inferred from each file's modification time.
    pub year: Option<i32>,
    /// Zone of zone-less stamps (`--tz`); None = the local zone.
    pub tz: Option<String>,
    /// Which lines are ipta's.
    pub rules: ActionRules,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Writer connections; 0 = [`DEFAULT_WRITERS`].
    pub writers: usize,
    /// Records per batch and transaction; 0 = [`DEFAULT_BATCH_ROWS`].
    pub batch_rows: usize,
    /// Send rows with prepared INSERTs only, never with `LOAD DATA LOCAL INFILE` (the store
    /// writer's default, see `store::writer::WriteMethod`).
    pub no_load_data: bool,
    /// How long to wait out a database outage; None = [`DEFAULT_OUTAGE_WAIT`].
    pub outage_wait: Option<Duration>,
}

/// What stops an import as a whole. Problems with single files or lines do not: they are in
/// the [`ImportSummary`].
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// `--year`, `--tz` or the action rules are not usable.
    #[error("{0}")]
    Options(String),
    /// The database cannot be reached or refuses the writes (after retrying).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database stopped taking writes (down, read-only, full, locked...) for longer than
    /// the import waits. Nothing was counted as refused for it.
    #[error("{0} (waited for the database to take writes again; no row was counted as refused for this)")]
    Unavailable(StoreError),
    #[error("cannot write the import summary: {0}")]
    Report(#[source] io::Error),
}

/// Opens a new store (a new connection); called once per writer and again after a failure
/// that broke one.
pub type Connect<'a> = dyn Fn() -> Result<Box<dyn BatchStore>, StoreError> + Sync + 'a;

/// Imports `files` (`-` = stdin) into the table of `db` and writes the summary to `report`.
pub fn run(
    db: &DbSettings,
    files: &[PathBuf],
    opts: &ImportOptions,
    report: &mut dyn Write,
) -> Result<ImportSummary, ImportError> {
    let table = store::validate_identifier(&db.table)?.to_string();
    // A missing table (or one of a newer ipta) stops the import before any file is read; the
    // connection that checked it becomes the first writer's.
    let mut conn = store::connect(db)?;
    store::schema::check_table(&mut conn, &table)?;
    // A table with summaries gets them folded beside the writers, on connections of their own
    // (the server runs each on one core): the report after an import then has little to fold.
    // Folding is optional: when it cannot start, the import goes on and says so.
    let mut beside_note = None;
    let beside = if store::summary::present(&mut conn, &table)? {
        let started = store::connect(db)
            .and_then(|a| Ok((a, store::connect(db)?)))
            .and_then(|(a, b)| {
                store::summary::Beside::start(a, b, &table).map_err(|e| StoreError::Sql(format!("no thread: {e}")))
            });
        match started {
            Ok(b) => Some(b),
            Err(e) => {
                beside_note = Some(e);
                None
            }
        }
    } else {
        None
    };
    let first = std::sync::Mutex::new(Some(conn));
    let fast_path = !opts.no_load_data;
    let connect = move || -> Result<Box<dyn BatchStore>, StoreError> {
        let spare = first.lock().ok().and_then(|mut c| c.take());
        let conn = match spare {
            Some(c) => c,
            None => store::connect(db)?,
        };
        let method = if fast_path { WriteMethod::Auto } else { WriteMethod::Insert };
        Ok(Box::new(Writer::new(conn, &table).with_method(method)))
    };
    let summary = match run_with(&connect, files, opts, report) {
        Ok(s) => s,
        Err(e) => {
            if let Some(b) = beside {
                b.abandon();
            }
            return Err(e);
        }
    };
    if let Some(b) = beside {
        beside_note = b.finish().err();
    }
    if let Some(e) = beside_note {
        // The import itself is complete; the next report folds what is left.
        let _ = writeln!(report, "summary tables: not brought up to date ({e}); the next ipta --analyze folds the rest");
    }
    if summary.added() > 0 {
        // The summaries of `--analyze` follow behind the writers: say when the next report
        // has a large fold to do first (a failure to ask changes nothing of the import).
        let backlog = store::connect(db).ok().and_then(|mut c| store::summary::backlog(&mut c, &db.table).ok().flatten());
        if let Some(n) = backlog.filter(|&n| n >= NOTE_BACKLOG_ROWS) {
            let _ = writeln!(
                report,
                "summary tables: about {n} rows not folded in yet; ipta-ingest's folder or the next ipta --analyze adds them"
            );
        }
    }
    Ok(summary)
}

/// A backlog of at least this many rows for the summary tables is mentioned after an import.
const NOTE_BACKLOG_ROWS: u64 = 100_000;

fn parse_options(opts: &ImportOptions, reference: Timestamp) -> ParseOptions {
    ParseOptions { reference, year: opts.year, tz: opts.tz.clone(), rules: opts.rules.clone() }
}

/// A batch on its way from the reader to a writer, with the line number of each record.
struct Chunk {
    file: usize,
    batch: RecordBatch,
    lines: Vec<u64>,
}

enum Event {
    /// A writer stored a batch of `file`; `refused` are rows the database would not take.
    Written { file: usize, stats: WriteStats, refused: Vec<(u64, String)> },
    /// The reader is done with `file`.
    Read { file: usize, summary: FileSummary },
    /// The database failed for good: the import stops.
    Fatal(StoreError),
}

/// [`run`] with any sink: the import pipeline itself.
pub fn run_with(
    connect: &Connect<'_>,
    files: &[PathBuf],
    opts: &ImportOptions,
    report: &mut dyn Write,
) -> Result<ImportSummary, ImportError> {
    let started = Instant::now();
    // Bad options fail before any connection is made or file is read.
    Parser::new(parse_options(opts, Timestamp(0))).map_err(ImportError::Options)?;
    let writers = if opts.writers == 0 { DEFAULT_WRITERS } else { opts.writers };
    let batch_rows = if opts.batch_rows == 0 { DEFAULT_BATCH_ROWS } else { opts.batch_rows };
    // Every writer connects first: a wrong password or a missing database stops the import
    // before any file is read.
    let mut stores = Vec::with_capacity(writers);
    for _ in 0..writers {
        stores.push(connect()?);
    }
    let policy = RetryPolicy {
        backoff_min: Duration::from_millis(200),
        backoff_max: Duration::from_secs(4),
        give_up_after: Some(opts.outage_wait.unwrap_or(DEFAULT_OUTAGE_WAIT)),
        wait_for_setup: false,
    };

    let order = files::import_order(files);
    let mut summary = ImportSummary {
        files: order.iter().map(|&i| FileSummary::new(files[i].display().to_string())).collect(),
        elapsed: Duration::ZERO,
    };
    let total_bytes = order.iter().try_fold(0u64, |acc, &i| {
        if files::is_stdin(&files[i]) {
            None
        } else {
            Some(acc + std::fs::metadata(&files[i]).map(|m| m.len()).unwrap_or(0))
        }
    });
    let pb = progress_bar(opts.progress, total_bytes);

    let abort = AtomicBool::new(false);
    let (work_tx, work_rx) = bounded::<Chunk>(writers);
    let (free_tx, free_rx) = unbounded::<Chunk>();
    // The batches in circulation: one being filled, one queued per writer, one being written
    // per writer. This bounds memory whatever the input size.
    for _ in 0..2 * writers + 1 {
        let _ = free_tx.send(Chunk {
            file: 0,
            batch: RecordBatch::with_capacity(batch_rows),
            lines: Vec::with_capacity(batch_rows),
        });
    }
    let (ev_tx, ev_rx) = unbounded::<Event>();
    let mut fatal: Option<StoreError> = None;

    std::thread::scope(|s| {
        for store in stores {
            let (work_rx, free_tx, ev_tx, abort) = (work_rx.clone(), free_tx.clone(), ev_tx.clone(), &abort);
            let sink = import_sink(connect, policy.clone(), abort).with_store(store);
            s.spawn(move || writer_loop(sink, work_rx, free_tx, ev_tx, abort));
        }
        {
            let (ev_tx, abort, pb, order) = (ev_tx.clone(), &abort, pb.clone(), &order);
            let reader = Reader { opts, batch_rows, work_tx, free_rx, ev_tx, abort, pb, started, spare: RefCell::new(None) };
            s.spawn(move || reader.read_files(files, order));
        }
        // Only the threads hold the channels now: the event loop ends when they are all done.
        drop((ev_tx, work_rx, free_tx));
        for ev in ev_rx.iter() {
            match ev {
                Event::Written { file, stats, refused } => {
                    let f = &mut summary.files[file];
                    f.added += stats.inserted;
                    f.already_present += stats.duplicates;
                    for (line, why) in refused {
                        f.reject(None, &format!("{REFUSED}: {why}"), line);
                    }
                }
                Event::Read { file, summary: read } => merge_read(&mut summary.files[file], read),
                Event::Fatal(e) => {
                    fatal.get_or_insert(e);
                }
            }
        }
    });
    pb.finish_and_clear();
    summary.elapsed = started.elapsed();
    summary.write_to(report).map_err(ImportError::Report)?;
    match fatal {
        Some(e) => {
            let _ = writeln!(report, "import stopped: {e} (the rows counted as added are stored)");
            Err(match e.class() {
                store::ErrorClass::Outage => ImportError::Unavailable(e),
                _ => ImportError::Store(e),
            })
        }
        None => Ok(summary),
    }
}

/// Puts the reader's side of a file into its summary (the writers' side may be there already).
fn merge_read(into: &mut FileSummary, read: FileSummary) {
    into.gzip = read.gzip;
    into.bytes = read.bytes;
    into.lines = read.lines;
    into.packets = read.packets;
    into.not_ours = read.not_ours;
    into.skipped = read.skipped;
    into.failures.extend(read.failures);
    // The writers' entries (rows the database refused) may be there already; the reader's
    // come first, as they are the usual ones.
    let writers = std::mem::replace(&mut into.rejected, read.rejected);
    for w in writers {
        match into.rejected.iter_mut().find(|r| r.kind == w.kind && r.reason == w.reason) {
            Some(r) => {
                r.count += w.count;
                r.first_lines.extend(w.first_lines);
                r.first_lines.sort_unstable();
                r.first_lines.truncate(outcome::FIRST_LINES);
            }
            None => into.rejected.push(w),
        }
    }
}

fn progress_bar(wanted: bool, total_bytes: Option<u64>) -> ProgressBar {
    if !wanted || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(total_bytes, ProgressDrawTarget::stderr_with_hz(4));
    let template = if total_bytes.is_some() {
        "{elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}"
    } else {
        "{spinner} {elapsed_precise} {bytes} {binary_bytes_per_sec} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// The reader thread's state.
struct Reader<'a> {
    opts: &'a ImportOptions,
    batch_rows: usize,
    work_tx: Sender<Chunk>,
    free_rx: Receiver<Chunk>,
    ev_tx: Sender<Event>,
    abort: &'a AtomicBool,
    pb: ProgressBar,
    started: Instant,
    /// A batch left unused at the end of a file, for the next one.
    spare: RefCell<Option<Chunk>>,
}

/// The import was stopped (the database failed): no more reading.
struct Stopped;

impl Reader<'_> {
    fn read_files(self, files: &[PathBuf], order: &[usize]) {
        let mut done_bytes = 0u64;
        let mut done_lines = 0u64;
        for (k, &i) in order.iter().enumerate() {
            if self.abort.load(Ordering::Relaxed) {
                break;
            }
            let path = &files[i];
            let mut fs = FileSummary::new(path.display().to_string());
            let stopped = match files::open(path) {
                Err(e) => {
                    fs.failures.push(e.to_string());
                    false
                }
                Ok(mut input) => {
                    fs.gzip = input.compression == files::Compression::Gzip;
                    let mut stopped = false;
                    if let files::Compression::Unsupported(kind) = input.compression {
                        fs.failures.push(format!(
                            "{kind}-compressed, which is not supported: decompress it into ipta -i - instead"
                        ));
                    } else {
                        match Parser::new(parse_options(self.opts, input.reference)) {
                            Err(e) => fs.failures.push(e),
                            Ok(mut parser) => {
                                let consumed = input.consumed.clone();
                                let tick = |lines: u64| {
                                    self.tick(done_bytes + consumed.load(Ordering::Relaxed), done_lines + lines)
                                };
                                stopped = self
                                    .read_stream(&mut input.reader, &mut parser, k, &mut fs, &tick)
                                    .is_err();
                            }
                        }
                    }
                    fs.bytes = input.consumed.load(Ordering::Relaxed);
                    stopped
                }
            };
            done_bytes += fs.bytes;
            done_lines += fs.lines;
            self.tick(done_bytes, done_lines);
            let _ = self.ev_tx.send(Event::Read { file: k, summary: fs });
            if stopped {
                break;
            }
        }
    }

    fn tick(&self, bytes: u64, lines: u64) {
        if self.pb.is_hidden() {
            return;
        }
        self.pb.set_position(bytes);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        self.pb.set_message(format!("{lines} lines, {:.0} lines/s", lines as f64 / secs));
    }

    /// A free batch, or Stopped when the import is being stopped.
    fn take(&self, file: usize) -> Result<Chunk, Stopped> {
        if self.abort.load(Ordering::Relaxed) {
            return Err(Stopped);
        }
        let spare = self.spare.borrow_mut().take();
        let mut c = match spare {
            Some(c) => c,
            None => self.free_rx.recv().map_err(|_| Stopped)?,
        };
        c.file = file;
        c.batch.clear();
        c.lines.clear();
        Ok(c)
    }

    fn send(&self, c: Chunk) -> Result<(), Stopped> {
        self.work_tx.send(c).map_err(|_| Stopped)
    }

    /// Reads one stream to its end (or its first read error, which is recorded as a failure
    /// of the file: the lines before it are imported).
    fn read_stream<R: BufRead + ?Sized>(
        &self,
        r: &mut R,
        parser: &mut Parser,
        file: usize,
        fs: &mut FileSummary,
        tick: &dyn Fn(u64),
    ) -> Result<(), Stopped> {
        let mut occ = Occurrences::new();
        let mut line = Vec::with_capacity(4096);
        let mut chunk = self.take(file)?;
        let mut chunk_bytes = 0usize;
        let mut n: u64 = 0;
        // `journalctl -o json` output (first byte `{`): each line is an entry, rendered into
        // `entry` as the line it stands for; only kernel entries are ipta's.
        let journal = r.fill_buf().is_ok_and(journal::is_journal_json);
        let mut entry = Vec::new();
        loop {
            match files::read_line(r, &mut line, files::MAX_LINE) {
                Ok(files::Line::Eof) => break,
                Ok(files::Line::TooLong { .. }) => {
                    n += 1;
                    fs.reject(Some(RejectKind::TooLong), TOO_LONG, n);
                }
                Ok(files::Line::Line) => {
                    n += 1;
                    let line: &[u8] = if journal {
                        match journal::render(&line, &mut entry) {
                            Ok(journal::Entry::Kernel(_)) => &entry,
                            Ok(journal::Entry::Other(_)) => {
                                fs.not_ours += 1;
                                continue;
                            }
                            Err(why) => {
                                fs.reject(Some(RejectKind::Malformed), why, n);
                                continue;
                            }
                        }
                    } else {
                        &line
                    };
                    match parser.parse(line) {
                        Outcome::Packet(rec) => {
                            let o = occ.next(rec.ts, record_hash(&rec));
                            chunk.batch.push(&rec, u64::from(o));
                            chunk.lines.push(n);
                            chunk_bytes += line.len();
                            fs.packets += 1;
                            if chunk.batch.len() >= self.batch_rows || chunk_bytes >= MAX_BATCH_BYTES {
                                chunk_bytes = 0;
                                self.send(chunk)?;
                                fs.lines = n;
                                tick(n);
                                chunk = self.take(file)?;
                            }
                        }
                        Outcome::NotOurs => {
                            fs.not_ours += 1;
                            if let Some(p) = parser.other_prefix(line) {
                                fs.skipped.add(p);
                            }
                        }
                        Outcome::Rejected(rj) => fs.reject(Some(rj.kind), rj.reason, n),
                    }
                }
                Err(e) => {
                    fs.failures.push(if fs.gzip {
                        format!("corrupt or truncated gzip data after line {n} (the lines before it are imported): {e}")
                    } else {
                        format!("read error after line {n} (the lines before it are imported): {e}")
                    });
                    break;
                }
            }
        }
        fs.lines = n;
        if chunk.batch.is_empty() {
            // Keep the unused batch for the next file rather than sending nothing to a writer.
            *self.spare.borrow_mut() = Some(chunk);
            return Ok(());
        }
        self.send(chunk)
    }
}

/// A writer's sink: waits out an outage for the policy's time (saying so on stderr once per
/// outage), and stops waiting when another writer has stopped the import.
fn import_sink<'a>(connect: &'a Connect<'a>, policy: RetryPolicy, abort: &'a AtomicBool) -> Sink<'a> {
    let wait = policy.give_up_after.unwrap_or_default();
    let pause = move |delay: Duration| {
        let until = Instant::now() + delay;
        while !abort.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(100)));
        }
        false
    };
    let events = move |ev: SinkEvent<'_>| match ev {
        SinkEvent::Down(e) => eprintln!(
            "ipta: database unavailable ({e}); waiting up to {} s for it to take writes again",
            wait.as_secs()
        ),
        SinkEvent::Up(t) => eprintln!("ipta: database available again after {:.1} s", t.as_secs_f64()),
        SinkEvent::Retry => {}
    };
    Sink::new(Box::new(connect), policy, Box::new(pause), Box::new(events))
}

fn writer_loop(
    mut sink: Sink<'_>,
    work_rx: Receiver<Chunk>,
    free_tx: Sender<Chunk>,
    ev_tx: Sender<Event>,
    abort: &AtomicBool,
) {
    for chunk in work_rx.iter() {
        if !abort.load(Ordering::Relaxed) {
            match write_chunk(&mut sink, &chunk) {
                Ok((stats, refused)) => {
                    let _ = ev_tx.send(Event::Written { file: chunk.file, stats, refused });
                }
                // Another writer stopped the import; it reported why.
                Err(SinkError::Stopped) => {}
                Err(SinkError::Store(e)) => {
                    abort.store(true, Ordering::Relaxed);
                    let _ = ev_tx.send(Event::Fatal(e));
                }
            }
        }
        // Always hand the batch back, even when stopping, so the reader never waits forever.
        let _ = free_tx.send(chunk);
    }
}

/// Writes a chunk through the sink: the rows refused for their own fault are reported with
/// their line numbers, the rest is stored. If every row of a chunk of several is refused, the
/// cause is not likely the data (a column changed under ipta, say): the import stops.
fn write_chunk(sink: &mut Sink<'_>, chunk: &Chunk) -> Result<(WriteStats, Vec<(u64, String)>), SinkError> {
    let mut w = sink.write(&chunk.batch)?;
    let len = chunk.batch.len();
    if len > 1 && w.refused.len() == len {
        return Err(SinkError::Store(w.refused.swap_remove(0).1));
    }
    let refused = w.refused.into_iter().map(|(i, e)| (chunk.lines[i], e.to_string())).collect();
    Ok((w.stats, refused))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use std::collections::HashSet;
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Arc, Mutex};

    /// A table in memory: the unique key `(ts, line_hash, occ)`, rows refused when their host
    /// is `bad` (error 1406), a number of writes that fail as if the connection was lost, and
    /// a number that the server answers with `read_only_code` (an outage, not the data).
    #[derive(Clone, Default)]
    struct MemTable {
        keys: Arc<Mutex<HashSet<(i64, u64, u64)>>>,
        lose_connection: Arc<AtomicUsize>,
        read_only: Arc<AtomicUsize>,
        connects: Arc<AtomicUsize>,
        fail_all: bool,
    }

    impl BatchStore for MemTable {
        fn write(&mut self, batch: &RecordBatch) -> Result<WriteStats, StoreError> {
            if self.lose_connection.load(Ordering::SeqCst) > 0 {
                self.lose_connection.fetch_sub(1, Ordering::SeqCst);
                return Err(StoreError::ConnectionLost("gone".into()));
            }
            if self.read_only.load(Ordering::SeqCst) > 0 {
                self.read_only.fetch_sub(1, Ordering::SeqCst);
                return Err(StoreError::Server { code: 1290, message: "read-only".into() });
            }
            if self.fail_all {
                return Err(StoreError::MissingTable("logs".into()));
            }
            if batch.iter().any(|(r, _)| r.host == Some("bad")) {
                return Err(StoreError::Server { code: 1406, message: "Data too long for column 'host'".into() });
            }
            let mut keys = self.keys.lock().unwrap();
            let mut s = WriteStats::default();
            for (r, occ) in batch.iter() {
                if keys.insert((r.ts.0, record_hash(&r), occ)) {
                    s.inserted += 1;
                } else {
                    s.duplicates += 1;
                }
            }
            Ok(s)
        }
    }

    fn import(t: &MemTable, files: &[PathBuf]) -> (Result<ImportSummary, ImportError>, String) {
        let connect = || -> Result<Box<dyn BatchStore>, StoreError> {
            t.connects.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(t.clone()))
        };
        let mut out = Vec::new();
        let opts = ImportOptions { writers: 2, batch_rows: 3, ..Default::default() };
        let r = run_with(&connect, files, &opts, &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_missing_file_fails_alone_and_bad_bytes_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("a.log");
        let mut data = b"first\n\xff\xfe\x00binary\n".to_vec();
        data.extend(vec![b'x'; 200_000]);
        data.extend(b"\nlast");
        std::fs::write(&good, &data).unwrap();
        let missing = dir.path().join("missing.log");
        let t = MemTable::default();
        let (r, out) = import(&t, &[missing.clone(), good.clone()]);
        let s = r.unwrap();
        assert!(s.has_failures());
        assert_eq!(s.files.len(), 2);
        assert_eq!(s.files[0].name, missing.display().to_string());
        assert!(s.files[0].failures[0].starts_with("cannot open"), "{:?}", s.files[0]);
        let f = &s.files[1];
        assert_eq!(f.lines, 4);
        assert_eq!(f.bytes, data.len() as u64);
        assert_eq!(f.rejected.len(), 1);
        assert_eq!(f.rejected[0].kind, Some(RejectKind::TooLong));
        assert_eq!(f.rejected[0].first_lines, [3]);
        assert_eq!(f.lines, f.packets + f.not_ours + f.rejected_total());
        assert!(out.contains("FAILED: cannot open"), "{out}");
        assert!(out.contains("imported 2 files: 4 lines"), "{out}");
    }

    #[test]
    fn a_corrupt_gzip_keeps_the_lines_before_the_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fw.log.2.gz");
        let mut body = Vec::new();
        for n in 0..50_000 {
            writeln!(body, "line {n} that is not a firewall line").unwrap();
        }
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&body).unwrap();
        let mut z = e.finish().unwrap();
        z.truncate(z.len() * 2 / 3);
        std::fs::write(&p, &z).unwrap();
        let (r, out) = import(&MemTable::default(), &[p]);
        let s = r.unwrap();
        let f = &s.files[0];
        assert!(f.gzip);
        assert!(f.lines > 10_000 && f.lines < 50_000, "{}", f.lines);
        assert_eq!(f.not_ours, f.lines);
        assert_eq!(f.failures.len(), 1);
        assert!(f.failures[0].contains("gzip"), "{:?}", f.failures);
        assert!(out.contains("(gzip)") && out.contains("FAILED"), "{out}");
    }

    #[test]
    fn unsupported_compression_is_reported_not_imported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fw.log.xz");
        std::fs::write(&p, [0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2, 3]).unwrap();
        let s = import(&MemTable::default(), &[p]).0.unwrap();
        assert_eq!(s.files[0].lines, 0);
        assert!(s.files[0].failures[0].contains("xz"));
    }

    #[test]
    fn bad_options_and_a_dead_database_stop_before_reading() {
        let connect = || -> Result<Box<dyn BatchStore>, StoreError> { Err(StoreError::Connect("refused".into())) };
        let mut out = Vec::new();
        let r = run_with(&connect, &[PathBuf::from("/nonexistent")], &ImportOptions::default(), &mut out);
        assert!(matches!(r, Err(ImportError::Store(StoreError::Connect(_)))));
        assert!(out.is_empty());
    }

    fn rec(host: &'static str, n: i64) -> Record<'static> {
        Record { ts: Timestamp(n * 1_000_000), host: Some(host), action: "DROP", prefix: "IPT: DROP ", repeat: 1, message: b"IPT: DROP IN=eth0", ..Default::default() }
    }

    fn chunk_of(recs: &[Record<'_>]) -> Chunk {
        let mut c = Chunk { file: 0, batch: RecordBatch::new(), lines: Vec::new() };
        for (i, r) in recs.iter().enumerate() {
            c.batch.push(r, 0);
            c.lines.push(i as u64 + 1);
        }
        c
    }

    fn test_sink<'a>(connect: &'a Connect<'a>, abort: &'a AtomicBool) -> Sink<'a> {
        let policy = RetryPolicy {
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_millis(4),
            give_up_after: Some(Duration::from_secs(5)),
            wait_for_setup: false,
        };
        import_sink(connect, policy, abort)
    }

    #[test]
    fn refused_rows_are_isolated_and_the_rest_is_stored() {
        let t = MemTable::default();
        let connect = || -> Result<Box<dyn BatchStore>, StoreError> { Ok(Box::new(t.clone())) };
        let abort = AtomicBool::new(false);
        let mut sink = test_sink(&connect, &abort);
        let recs: Vec<Record> = (0..9).map(|i| rec(if i == 4 || i == 7 { "bad" } else { "fw1" }, i)).collect();
        let (stats, refused) = write_chunk(&mut sink, &chunk_of(&recs)).unwrap();
        assert_eq!(stats.inserted, 7);
        assert_eq!(refused.iter().map(|r| r.0).collect::<Vec<_>>(), [5, 8]);
        // A chunk where every row is refused is not a data problem: it stops the import.
        let all_bad: Vec<Record> = (0..4).map(|i| rec("bad", i)).collect();
        assert!(write_chunk(&mut sink, &chunk_of(&all_bad)).is_err());
    }

    #[test]
    fn a_lost_connection_is_retried_on_a_new_one() {
        let t = MemTable::default();
        t.lose_connection.store(2, Ordering::SeqCst);
        let connect = || -> Result<Box<dyn BatchStore>, StoreError> {
            t.connects.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(t.clone()))
        };
        let abort = AtomicBool::new(false);
        let mut sink = test_sink(&connect, &abort);
        let recs: Vec<Record> = (0..3).map(|i| rec("fw1", i)).collect();
        let (stats, _) = write_chunk(&mut sink, &chunk_of(&recs)).unwrap();
        assert_eq!(stats.inserted, 3);
        assert_eq!(t.connects.load(Ordering::SeqCst), 3);
        // Written again: all duplicates.
        let (stats, _) = write_chunk(&mut sink, &chunk_of(&recs)).unwrap();
        assert_eq!((stats.inserted, stats.duplicates), (0, 3));
    }

    #[test]
    fn a_read_only_server_is_waited_out_and_nothing_is_counted_as_refused() {
        let t = MemTable::default();
        t.read_only.store(4, Ordering::SeqCst);
        let connect = || -> Result<Box<dyn BatchStore>, StoreError> { Ok(Box::new(t.clone())) };
        let abort = AtomicBool::new(false);
        let mut sink = test_sink(&connect, &abort);
        let recs: Vec<Record> = (0..5).map(|i| rec("fw1", i)).collect();
        let (stats, refused) = write_chunk(&mut sink, &chunk_of(&recs)).unwrap();
        assert_eq!(stats.inserted, 5);
        assert!(refused.is_empty(), "{refused:?}");
        // Past the policy's wait the import stops with the server's error, still rejecting nothing.
        t.read_only.store(usize::MAX, Ordering::SeqCst);
        let policy = RetryPolicy {
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_millis(2),
            give_up_after: Some(Duration::from_millis(30)),
            wait_for_setup: false,
        };
        let mut sink = import_sink(&connect, policy, &abort);
        match write_chunk(&mut sink, &chunk_of(&[rec("fw1", 100)])) {
            Err(SinkError::Store(e)) => assert_eq!(e.server_code(), Some(1290)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_read_error_mid_file_is_that_files_failure_only() {
        // /proc/self/mem opens like a file and fails on read (EIO), as a file on a vanished
        // network mount does.
        let bad = PathBuf::from("/proc/self/mem");
        if !bad.exists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("b.log");
        std::fs::write(&good, "one\ntwo\n").unwrap();
        let s = import(&MemTable::default(), &[bad, good]).0.unwrap();
        assert!(s.files[0].failures[0].contains("read error at the start"), "{:?}", s.files[0]);
        assert_eq!(s.files[1].lines, 2);
        assert!(s.files[1].failures.is_empty());
    }

    #[test]
    fn reader_and_writer_rejections_merge() {
        let mut into = FileSummary::new("a");
        into.reject(None, "the database refused the row: x", 40);
        let mut read = FileSummary { lines: 50, packets: 45, not_ours: 2, ..FileSummary::new("a") };
        read.reject(Some(RejectKind::BadAddress), "SRC= is not an IP address", 7);
        read.reject(Some(RejectKind::BadAddress), "SRC= is not an IP address", 9);
        read.failures.push("read error".into());
        merge_read(&mut into, read);
        assert_eq!((into.lines, into.packets, into.not_ours), (50, 45, 2));
        assert_eq!(into.rejected.len(), 2);
        assert_eq!(into.rejected[0].first_lines, [7, 9]);
        assert_eq!(into.rejected[1].count, 1);
        assert_eq!(into.rejected_total(), 3);
        assert_eq!(into.failures, ["read error"]);
    }

    #[test]
    fn stdin_name_and_order_are_kept() {
        assert_eq!(files::import_order(&[PathBuf::from("-")]), [0]);
    }
}
