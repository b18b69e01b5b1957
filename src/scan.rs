//! `ipta --scan FILE`: every packet of a file, one line (or one JSON object) each; no database.
//!
//! Lines are read into one reused buffer by import's capped reader ([`read_line`]: at most
//! [`MAX_LINE`] bytes of each; the rest of a longer line is skipped without being stored, so a
//! 10 MB line costs no more memory than a short one), parsed, rendered into a reused output buffer and written in large chunks.
//! Rejected lines are reported on `err` as `line N: <reason>`; lines that are not ipta's are
//! counted. A closed output pipe (`ipta --scan log | head`) ends the scan quietly.

use std::io::{self, BufRead, Write};

use crate::parse::{Outcome, ParseOptions, Parser, MAX_LINE};
use crate::follow::packet::{write_json, write_text};
use crate::import::files::{read_line, Line};

/// How packets are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScanFormat {
    /// One readable line per packet.
    #[default]
    Text,
    /// JSON Lines: one object per packet with the record's keys.
    Json,
}

#[derive(Clone, Debug)]
pub struct ScanOptions {
    pub format: ScanFormat,
    pub parse: ParseOptions,
}

/// What a scan saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanSummary {
    pub lines: u64,
    pub packets: u64,
    pub not_ours: u64,
    pub rejected: u64,
    /// The firewall lines among `not_ours`, by prefix (another firewall's lines).
    pub skipped: crate::parse::skipped::SkippedPrefixes,
}

/// Output is written when this much has gathered (and at the end).
const OUT_CHUNK: usize = 64 * 1024;

fn quiet_pipe(r: io::Result<()>) -> io::Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

/// Scans `input` to its end. Errors: the parse options are invalid (a bad zone or regex:
/// `InvalidInput`), or reading/writing failed (other than a closed output pipe).
pub fn run(input: &mut dyn BufRead, out: &mut dyn Write, err: &mut dyn Write, opts: &ScanOptions) -> io::Result<ScanSummary> {
    let mut parser = Parser::new(opts.parse.clone()).map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
    let mut sum = ScanSummary::default();
    let mut line = Vec::with_capacity(4096);
    let mut obuf = Vec::with_capacity(OUT_CHUNK + 4096);
    loop {
        let too_long = match read_line(input, &mut line, MAX_LINE)? {
            Line::Eof => break,
            Line::Line => false,
            Line::TooLong { .. } => true,
        };
        sum.lines += 1;
        if too_long {
            sum.rejected += 1;
            if !quiet_pipe(writeln!(err, "line {}: the line is longer than {} bytes (skipped)", sum.lines, MAX_LINE))? {
                return Ok(sum);
            }
            continue;
        }
        match parser.parse(&line) {
            Outcome::Packet(r) => {
                sum.packets += 1;
                match opts.format {
                    ScanFormat::Text => write_text(&r, &mut obuf),
                    ScanFormat::Json => write_json(&r, &mut obuf),
                }
                obuf.push(b'\n');
                if obuf.len() >= OUT_CHUNK {
                    if !quiet_pipe(out.write_all(&obuf))? {
                        return Ok(sum);
                    }
                    obuf.clear();
                }
            }
            Outcome::NotOurs => {
                sum.not_ours += 1;
                if let Some(p) = parser.other_prefix(&line) {
                    sum.skipped.add(p);
                }
            }
            Outcome::Rejected(rej) => {
                sum.rejected += 1;
                // Keep stdout and stderr in order for a person watching both.
                if !quiet_pipe(out.write_all(&obuf))? {
                    return Ok(sum);
                }
                obuf.clear();
                if !quiet_pipe(writeln!(err, "line {}: {}", sum.lines, rej.reason))? {
                    return Ok(sum);
                }
            }
        }
    }
    if !quiet_pipe(out.write_all(&obuf).and_then(|()| out.flush()))? {
        return Ok(sum);
    }
    Ok(sum)
}
