//! `ipta --follow`: tailing a file or attaching to ipta-ingest's fan-out, and the live display.
//!
//! Both sources feed the same pipeline ([`Follower`]): bytes are cut into whole lines, parsed,
//! filtered, optionally resolved (reverse DNS with a deadline per read), and shown as text
//! columns ([`display`]) or JSON Lines ([`packet`], which `--scan` uses too). [`tail`] follows a
//! file across appends, rotation and truncation; [`fanout`] is the protocol both ends of the
//! fan-out speak and its writing end (ipta-ingest copies every line to the viewers through it);
//! [`viewer`] is the reading end.

pub mod display;
pub mod fanout;
pub mod packet;
pub mod tail;
pub mod viewer;

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::follow::fanout::DROPPED_MARKER;
use crate::parse::{Outcome, ParseOptions, Parser};
use crate::record::{RecordBatch, Timestamp};
use crate::report::rdns::{DnsSettings, Resolver};

use display::{Display, DisplayOptions, Width};

/// The default fan-out directory (config `follow_dir`, `--follow-dir`).
pub const DEFAULT_FOLLOW_DIR: &str = "/run/ipta/follow";

/// How long a line may wait for reverse DNS before it is shown with its address.
pub const RDNS_TIMEOUT: Duration = Duration::from_millis(500);
/// A live stream's parser takes "now" as its year-inference reference; it is renewed this often.
const REFERENCE_REFRESH: Duration = Duration::from_secs(60);

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FollowFormat {
    #[default]
    Text,
    /// JSON Lines, one object per packet, as `--scan --format json`.
    Json,
}

/// What `ipta --follow` was asked for.
#[derive(Clone, Debug)]
pub struct FollowOptions {
    pub no_header: bool,
    pub no_counter: bool,
    pub no_local: bool,
    pub no_accept: bool,
    pub rdns: bool,
    pub format: FollowFormat,
    /// Some(n): fit the text to n columns; Some(0): plain (never cut); None: the terminal's
    /// width when stdout is a terminal, else plain.
    pub width: Option<usize>,
    /// The parser's settings; `reference` is replaced by the current time (a live stream).
    pub parse: ParseOptions,
    /// The fan-out directory of ipta-ingest.
    pub follow_dir: PathBuf,
}

/// Why following stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "the follow directory {} does not exist: is ipta-ingest running with this follow_dir? \
         (set it with --follow-dir or follow_dir in the config file)",
        dir.display()
    )]
    NoFollowDir { dir: PathBuf },
    #[error(
        "no permission to watch through {}: {source}; the directory's group decides who may \
         watch (ls -ld {0}; ask to be added to its group)",
        dir.display()
    )]
    Permission { dir: PathBuf, source: io::Error },
    #[error("follow directory {}: {source}", dir.display())]
    FollowDir { dir: PathBuf, source: io::Error },
    #[error("invalid parser settings: {0}")]
    Parser(String),
    /// Writing the output failed (for a closed pipe, see [`FollowError::is_broken_pipe`]).
    #[error("writing output: {0}")]
    Output(#[source] io::Error),
}

impl FollowError {
    /// The output was closed by its reader (`ipta --follow | head`): not worth an error message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, FollowError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// Follows `path` from its current end: appended lines at once, across rotation and truncation.
pub fn follow_file(
    path: &Path,
    opts: &FollowOptions,
    out: &mut dyn Write,
    stop: &AtomicBool,
) -> Result<(), FollowError> {
    let mut f = Follower::new(opts)?;
    tail::tail_lines(path, stop, &mut |data| f.process(data, out))
}

/// Attaches to ipta-ingest's fan-out in `opts.follow_dir` and shows what it sends.
pub fn follow_ingest(opts: &FollowOptions, out: &mut dyn Write, stop: &AtomicBool) -> Result<(), FollowError> {
    let mut f = Follower::new(opts)?;
    viewer::view_lines(&opts.follow_dir, stop, &mut |data| f.process(data, out))
}

/// Receives runs of whole lines (see [`Follower::process`]).
pub type LineSink<'a> = dyn FnMut(&[u8]) -> Result<(), FollowError> + 'a;

fn now_ts() -> Timestamp {
    Timestamp(chrono::Utc::now().timestamp_micros())
}

/// One line's fate, in arrival order, while a chunk of lines is processed.
#[derive(Clone, Copy)]
enum Item {
    /// Index into the batch.
    Packet(usize),
    Dropped(u64),
    Rejected(&'static str),
}

/// The pipeline shared by both sources: lines in, display or JSON out.
pub struct Follower {
    parser: Parser,
    parser_since: Instant,
    format: FollowFormat,
    display: Display,
    batch: RecordBatch,
    items: Vec<Item>,
    resolver: Option<Resolver>,
    json: Vec<u8>,
}

impl Follower {
    pub fn new(opts: &FollowOptions) -> Result<Self, FollowError> {
        let mut parse_opts = opts.parse.clone();
        parse_opts.reference = now_ts();
        let parser = Parser::new(parse_opts).map_err(FollowError::Parser)?;
        let width = match opts.width {
            Some(0) => Width::Plain,
            Some(w) => Width::Fixed(w),
            None if display::terminal_width().is_some() => Width::Terminal,
            None => Width::Plain,
        };
        let display = Display::new(DisplayOptions {
            no_header: opts.no_header,
            no_counter: opts.no_counter,
            no_local: opts.no_local,
            no_accept: opts.no_accept,
            rdns: opts.rdns,
            width,
        });
        Ok(Follower {
            parser,
            parser_since: Instant::now(),
            format: opts.format,
            display,
            batch: RecordBatch::with_capacity(256),
            items: Vec::with_capacity(256),
            resolver: (opts.rdns && opts.format == FollowFormat::Text).then(|| Resolver::new(DnsSettings::live())),
            json: Vec::with_capacity(1024),
        })
    }

    /// Packet lines shown so far.
    pub fn shown(&self) -> u64 {
        self.display.shown()
    }

    /// Processes `data`, a run of whole lines (each ending in `\n`; a last line without one is
    /// taken as whole too), and flushes the output.
    pub fn process(&mut self, data: &[u8], out: &mut dyn Write) -> Result<(), FollowError> {
        if self.parser_since.elapsed() >= REFERENCE_REFRESH {
            // Year-less stamps are never put after the reference: keep it at "now".
            self.parser.set_reference(now_ts());
            self.parser_since = Instant::now();
        }
        let arrived = Instant::now();
        self.batch.clear();
        self.items.clear();
        let data = data.strip_suffix(b"\n").unwrap_or(data);
        if data.is_empty() {
            return Ok(());
        }
        for line in data.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(rest) = line.strip_prefix(DROPPED_MARKER.as_bytes()) {
                if let Some(n) = std::str::from_utf8(rest).ok().and_then(|s| s.trim().parse().ok()) {
                    self.items.push(Item::Dropped(n));
                    continue;
                }
            }
            match self.parser.parse(line) {
                Outcome::Packet(r) => {
                    if self.display.accepts(&r) {
                        self.items.push(Item::Packet(self.batch.len()));
                        self.batch.push(&r, 0);
                    }
                }
                Outcome::NotOurs => {}
                Outcome::Rejected(rej) => self.items.push(Item::Rejected(rej.reason)),
            }
        }
        if let Some(res) = &self.resolver {
            // Ask for every address of the chunk first, so the lookups run side by side.
            for (r, _) in self.batch.iter() {
                for a in [r.pkt.src, r.pkt.dst].into_iter().flatten() {
                    res.request(a);
                }
            }
        }
        let deadline = arrived + RDNS_TIMEOUT;
        for i in 0..self.items.len() {
            let res = match self.items[i] {
                Item::Packet(k) => {
                    let (r, _) = self.batch.get(k);
                    match self.format {
                        FollowFormat::Json => {
                            self.json.clear();
                            write_json(&r, &mut self.json);
                            self.json.push(b'\n');
                            out.write_all(&self.json)
                        }
                        FollowFormat::Text => {
                            let name = |a: Option<IpAddr>| match (&self.resolver, a) {
                                (Some(res), Some(a)) => res.name(a, deadline),
                                _ => None,
                            };
                            let (s, d) = (name(r.pkt.src), name(r.pkt.dst));
                            self.display.write_record(&r, s.as_deref(), d.as_deref(), out)
                        }
                    }
                }
                Item::Dropped(n) => match self.format {
                    FollowFormat::Text => self.display.write_dropped(n, out),
                    FollowFormat::Json => {
                        // JSON Lines stay pure records; the loss goes to stderr.
                        eprintln!("ipta: {n} lines lost (the viewer was too slow)");
                        Ok(())
                    }
                },
                Item::Rejected(reason) => match self.format {
                    FollowFormat::Text => self.display.write_notice(&format!("unreadable line: {reason}"), out),
                    FollowFormat::Json => {
                        eprintln!("ipta: unreadable line: {reason}");
                        Ok(())
                    }
                },
            };
            res.map_err(FollowError::Output)?;
        }
        out.flush().map_err(FollowError::Output)
    }
}

/// JSON of one record, as `--scan --format json` prints it.
fn write_json(r: &crate::record::Record<'_>, buf: &mut Vec<u8>) {
    crate::follow::packet::write_json(r, buf)
}

/// A read buffer that hands out whole lines and keeps a partial last line for the next read.
pub(crate) struct LineBuf {
    buf: Vec<u8>,
    filled: usize,
}

/// Lines longer than this are cut (the rest is discarded up to the next newline).
const MAX_LINE: usize = 1 << 20;

impl LineBuf {
    pub(crate) fn new() -> Self {
        LineBuf { buf: vec![0; 64 << 10], filled: 0 }
    }

    /// The free part to read into.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        if self.filled == self.buf.len() {
            let n = (self.buf.len() * 2).min(MAX_LINE.max(self.buf.len()));
            if n > self.buf.len() {
                self.buf.resize(n, 0);
            }
        }
        &mut self.buf[self.filled..]
    }

    /// Records `n` bytes read into `spare()`; returns the whole lines now available (through the
    /// last newline). A buffer full without a newline is returned whole (an over-long line).
    pub(crate) fn commit(&mut self, n: usize) -> usize {
        self.filled += n;
        match memchr::memrchr(b'\n', &self.buf[..self.filled]) {
            Some(i) => i + 1,
            None if self.filled == self.buf.len() && self.buf.len() >= MAX_LINE => self.filled,
            None => 0,
        }
    }

    pub(crate) fn data(&self, upto: usize) -> &[u8] {
        &self.buf[..upto]
    }

    /// Drops the first `n` bytes (lines processed).
    pub(crate) fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.filled, 0);
        self.filled -= n;
    }

    /// The partial line held, if any.
    pub(crate) fn partial(&self) -> &[u8] {
        &self.buf[..self.filled]
    }

    pub(crate) fn clear(&mut self) {
        self.filled = 0;
    }
}

/// Reads once into `lb` and passes the whole lines now available to `sink`. Returns bytes read (0 = nothing
/// available / end of file).
pub(crate) fn read_lines(
    lb: &mut LineBuf,
    mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    sink: &mut LineSink<'_>,
    skip_partial: &mut bool,
) -> Result<io::Result<usize>, FollowError> {
    let n = match read(lb.spare()) {
        Ok(n) => n,
        Err(e) => return Ok(Err(e)),
    };
    if n == 0 {
        return Ok(Ok(0));
    }
    let upto = lb.commit(n);
    if upto > 0 {
        let mut start = 0;
        if *skip_partial {
            // The tail of a line that was being written when we started, or the rest of a line
            // cut at MAX_LINE: not a line of ours. It may span several buffers.
            match memchr::memchr(b'\n', lb.data(upto)) {
                Some(i) => {
                    start = i + 1;
                    *skip_partial = false;
                }
                None => start = upto,
            }
        }
        if start < upto {
            sink(&lb.buf[start..upto])?;
            // A full buffer without a newline is the head of an over-long line, handed out cut:
            // the rest of that line, up to its newline, is dropped, never shown as a line.
            if lb.data(upto).last() != Some(&b'\n') {
                *skip_partial = true;
            }
        }
        lb.consume(upto);
    }
    Ok(Ok(n))
}

#[cfg(test)]
mod line_tests {
    use super::*;

    /// A line of 3 MiB, then a normal one, read in small and large pieces: the long line is
    /// handed out once, cut at MAX_LINE, its rest is dropped, and the next line comes whole.
    #[test]
    fn the_rest_of_an_over_long_line_is_dropped_not_shown_as_a_line() {
        let mut data = vec![b'x'; 3 << 20];
        data.extend_from_slice(b" IPT: DROP IN=eth0 OUT= SRC=192.0.2.1 DST=192.0.2.2 PROTO=TCP SPT=1 DPT=2\nnext line\n");
        for piece in [4096, 1 << 20, 5 << 20] {
            let mut lb = LineBuf::new();
            let mut input = std::io::Cursor::new(&data);
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut skip = false;
            let mut sink = |chunk: &[u8]| -> Result<(), FollowError> {
                got.push(chunk.to_vec());
                Ok(())
            };
            loop {
                let r = read_lines(&mut lb, |b| { let k = b.len().min(piece); std::io::Read::read(&mut input, &mut b[..k]) }, &mut sink, &mut skip);
                if r.unwrap().unwrap() == 0 {
                    break;
                }
            }
            assert_eq!(got.len(), 2, "piece {piece}: {:?}", got.iter().map(Vec::len).collect::<Vec<_>>());
            assert_eq!(got[0].len(), MAX_LINE);
            assert!(got[0].iter().all(|&b| b == b'x'));
            assert_eq!(got[1], b"next line\n");
        }
    }
}
