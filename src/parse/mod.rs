//! Bytes of a log line -> [`Record`]: the syslog header, the action rules and the netfilter
//! fields. The parser works on bytes, never panics, allocates nothing per line and costs linear
//! time in the line's length.
//!
//! A `Parser` is stateful per stream: year-less (RFC 3164) timestamps take their year from the
//! reference time and move to the next year on a Dec -> Jan step inside the stream.

pub mod header;
pub mod journal;
pub mod netfilter;
pub mod rules;
pub mod skipped;
pub mod time;

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
    /// Also accept lines a program other than the kernel wrote (a tag such as `root:` or
    /// `myfw[12]:` before the prefix). Off by default: `logger -p kern.warning "IPT: ..."`
    /// lands in kern.log too, and only the kernel's lines are packets.
    pub other_tags: bool,
}

impl ActionRules {
    /// The preset names of `--rules` and the config key `rules`, defined here once.
    pub const PRESETS: &'static [&'static str] = &["ufw", "shorewall", "any"];

    /// Turns on the preset `name` (any case; `ipt`/`default` name the original's rule, which is
    /// always on). The error names the unknown preset and the known ones.
    pub fn add_preset(&mut self, name: &str) -> Result<(), String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "ufw" => self.ufw = true,
            "shorewall" => self.shorewall = true,
            "any" => self.any = true,
            "ipt" | "default" | "" => {}
            other => return Err(format!("unknown preset {other:?} (known: {})", Self::PRESETS.join(", "))),
        }
        Ok(())
    }
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
// The record is large and the other variants small; boxing it would cost an allocation per line.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<'a> {
    Packet(Record<'a>),
    /// Not a firewall line of ipta's (skipped and counted, not an error).
    NotOurs,
    Rejected(Reject),
}

/// Lines longer than this are rejected as too long without being read: the kernel cuts its
/// lines at about 1 KiB, so anything this long is not a netfilter line, and the cap bounds the
/// memory a reader needs.
pub const MAX_LINE: usize = 64 * 1024;

/// Whether the text before the prefix is one word ending in `:` (`root: IPT: ...`): a program's
/// syslog tag, as `logger` writes it, that the header did not take for one.
fn is_tag_word(before: &[u8]) -> bool {
    let w = before.trim_ascii();
    w.len() > 1 && w.ends_with(b":") && !w.contains(&b' ')
}

/// A per-stream parser.
pub struct Parser {
    opts: ParseOptions,
    rules: rules::Rules,
    clock: time::Clock,
    anchor: memchr::memmem::Finder<'static>,
    /// The latest plausible time of a line, in seconds: the reference plus a day (kept here so
    /// that the hot path compares, never divides).
    latest_secs: i64,
}

impl Parser {
    /// Compiles the rules and the zone. Err (a message for a person) for an unknown zone or a
    /// regex that does not compile or has no `action` group.
    pub fn new(opts: ParseOptions) -> Result<Self, String> {
        let zone = time::Zone::parse(opts.tz.as_deref())?;
        let rules = rules::Rules::new(&opts.rules)?;
        let clock = time::Clock::new(zone, opts.reference.secs(), opts.year);
        let latest_secs = opts.reference.secs() + time::FUTURE_TOLERANCE_SECS;
        Ok(Parser { opts, rules, clock, anchor: memchr::memmem::Finder::new(b"IN="), latest_secs })
    }

    pub fn options(&self) -> &ParseOptions {
        &self.opts
    }

    /// Moves the reference (a live stream may advance it to "now" from time to time). Year
    /// inference already under way keeps its year; the reference also becomes the time of
    /// lines that carry none.
    pub fn set_reference(&mut self, reference: Timestamp) {
        self.opts.reference = reference;
        self.latest_secs = reference.secs() + time::FUTURE_TOLERANCE_SECS;
        self.clock.set_reference(reference.secs());
    }

    /// For a line [`Parser::parse`] found not to be ipta's: its log prefix (the message up to
    /// the netfilter fields, trimmed) when it is a firewall line all the same, None otherwise.
    /// For the summaries of skipped lines (`skipped`); no allocation.
    pub fn other_prefix<'a>(&self, line: &'a [u8]) -> Option<&'a [u8]> {
        if line.len() > MAX_LINE {
            return None;
        }
        let a = self.find_anchor(line)?;
        let h = header::parse(line, Some(a));
        // Lines the rules do claim (an ARP packet under ipta's prefix) are not "other".
        if a < h.msg_start || a > h.msg_end || self.rules.claims(line, h.msg_start, a) {
            return None;
        }
        Some(line[h.msg_start..a].trim_ascii())
    }

    /// Where the netfilter fields start: the first `IN=<word> ` followed by `OUT=`, `MAC=`,
    /// `PHYSIN=` or `SRC=` (a prefix may itself contain `IN=`: the kernel's own `IN=` is the
    /// one followed by the next field). Interface words are bounded, so this stays linear.
    fn find_anchor(&self, line: &[u8]) -> Option<usize> {
        const MAX_IFACE: usize = 64;
        for pos in self.anchor.find_iter(line) {
            let v = pos + 3;
            let lim = (v + MAX_IFACE + 1).min(line.len());
            let Some(sp) = memchr::memchr(b' ', &line[v..lim]) else { continue };
            let next = &line[v + sp + 1..];
            if next.starts_with(b"OUT=")
                || next.starts_with(b"MAC=")
                || next.starts_with(b"PHYSIN=")
                || next.starts_with(b"SRC=")
            {
                return Some(pos);
            }
        }
        None
    }

    /// Parses one line (without its trailing newline; a trailing `\r` or white space is ignored).
    pub fn parse<'a>(&mut self, line: &'a [u8]) -> Outcome<'a> {
        if line.len() > MAX_LINE {
            return Outcome::Rejected(Reject { kind: RejectKind::TooLong, reason: "the line is longer than 64 KiB" });
        }
        let mut end = line.len();
        while end > 0 && line[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        let line = &line[..end];
        let anchor = self.find_anchor(line);
        let h = header::parse(line, anchor);
        let a = match anchor {
            Some(a) if a >= h.msg_start && a < h.msg_end => a,
            _ => {
                return if self.rules.claims(line, h.msg_start, h.msg_end) {
                    Outcome::Rejected(Reject {
                        kind: RejectKind::MissingField,
                        reason: "the prefix is there but the netfilter fields (IN= OUT= ... SRC= DST=) are not",
                    })
                } else {
                    Outcome::NotOurs
                };
            }
        };
        let (pstart, action) = match self.rules.match_prefix(line, h.msg_start, a) {
            rules::Matched::None => return Outcome::NotOurs,
            rules::Matched::NoAction => {
                return Outcome::Rejected(Reject { kind: RejectKind::NoAction, reason: "the prefix has no action word after its marker" })
            }
            rules::Matched::Static(p, w) => (p, w),
            rules::Matched::Action(p, s, e) => match std::str::from_utf8(&line[s..e]) {
                Ok(w) => (p, w),
                Err(_) => return reject(RejectKind::BadUtf8, "the action word is not valid UTF-8"),
            },
        };
        if !self.opts.rules.other_tags && (h.program_tag || is_tag_word(&line[h.msg_start..pstart])) {
            return reject(
                RejectKind::BadHeader,
                "written by a program, not by the kernel (its syslog tag is not kernel:); --any-tag reads such lines",
            );
        }
        if h.bad_repeat {
            return reject(RejectKind::Malformed, "`message repeated N times` has no valid count N");
        }
        let ts = match self.timestamp(h.stamp) {
            Ok(ts) => ts,
            Err(r) => return Outcome::Rejected(r),
        };
        let host = match h.host.map(|(s, e)| std::str::from_utf8(&line[s..e])) {
            None => None,
            Some(Ok(s)) => Some(s),
            Some(Err(_)) => return reject(RejectKind::BadUtf8, "the host name is not valid UTF-8"),
        };
        let Ok(prefix) = std::str::from_utf8(&line[pstart..a]) else {
            return reject(RejectKind::BadUtf8, "the log prefix is not valid UTF-8");
        };
        // The record is built in its final place: it is a few hundred bytes, and moving it
        // into the outcome afterwards showed up as a measurable share of the parse time.
        let mut out = Outcome::Packet(Record {
            ts,
            host,
            action,
            prefix,
            repeat: h.repeat,
            message: &line[pstart..h.msg_end],
            ..Record::default()
        });
        if let Outcome::Packet(rec) = &mut out {
            match netfilter::parse_body(&line[a..h.msg_end], rec) {
                Ok(()) => {}
                Err(netfilter::BodyError::Arp) => out = Outcome::NotOurs,
                Err(netfilter::BodyError::Reject(r)) => out = Outcome::Rejected(r),
            }
        }
        out
    }

    fn timestamp(&mut self, st: header::Stamp) -> Result<Timestamp, Reject> {
        use header::Stamp;
        Ok(match st {
            Stamp::None => self.opts.reference,
            Stamp::Bad(why) => return Err(Reject { kind: RejectKind::BadTimestamp, reason: why }),
            Stamp::Rfc3164 { mon, day, h, mi, s } => {
                let (_, secs) = self.clock.resolve_yearless(mon, day, h, mi, s).ok_or(Reject {
                    kind: RejectKind::BadTimestamp,
                    reason: "the date does not exist in the year it falls in (Feb 29 outside a leap year?)",
                })?;
                Timestamp(secs * 1_000_000)
            }
            Stamp::Dated { y, mon, day, h, mi, s, micros, offset } => {
                // Its year is its own: it does not steer the year of the year-less stamps
                // around it, so one line from a host with a wrong clock (or a forged one)
                // cannot re-date the rest of the stream.
                let secs = match offset {
                    Some(o) => {
                        time::days_from_civil(y, mon, day) * 86_400
                            + i64::from(h * 3600 + mi * 60 + s)
                            - i64::from(o)
                    }
                    None => self.clock.wall_to_utc(y, mon, day, h, mi, s),
                };
                // A line from the future (a wrong clock, or forged) would escape expiry and
                // disturb de-duplication. Year-less stamps are never placed there (see `time`).
                if secs > self.latest_secs {
                    return Err(Reject {
                        kind: RejectKind::BadTimestamp,
                        reason: "dated more than a day after the time it was read (now, or the file's modification time): implausible",
                    });
                }
                Timestamp(secs * 1_000_000 + i64::from(micros))
            }
        })
    }
}

fn reject<'a>(kind: RejectKind, reason: &'static str) -> Outcome<'a> {
    Outcome::Rejected(Reject { kind, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(line: &str, other_tags: bool) -> Result<String, RejectKind> {
        let mut p = Parser::new(ParseOptions {
            reference: Timestamp(1_767_300_000_000_000),
            year: None,
            tz: Some("UTC".into()),
            rules: ActionRules { other_tags, ..Default::default() },
        })
        .unwrap();
        match p.parse(line.as_bytes()) {
            Outcome::Packet(r) => Ok(r.action.to_string()),
            Outcome::Rejected(r) => Err(r.kind),
            Outcome::NotOurs => Ok("not ours".into()),
        }
    }

    /// Only the kernel's lines are packets: `logger -p kern.warning "IPT: ..."` writes the same
    /// text into kern.log under the user's tag, and `--any-tag` is needed to read such lines.
    #[test]
    fn lines_of_other_programs_are_refused_unless_any_tag() {
        let body = "IPT: DROP IN=eth0 OUT= SRC=198.51.100.1 DST=192.0.2.1 LEN=40 TTL=56 ID=1 PROTO=TCP SPT=5 DPT=22 WINDOW=512 RES=0x00 SYN URGP=0";
        for ok in [
            format!("Dec  5 04:00:00 fw1 kernel: [ 1.5] {body}"),
            format!("Dec  5 04:00:00 fw1 kernel[0]: {body}"),
            format!("Dec  5 04:00:00 fw1 vmunix: {body}"),
            format!("Dec  5 04:00:00 fw1 {body}"),
            body.to_string(),
            format!("[12345.678901] {body}"),
        ] {
            assert_eq!(parse_with(&ok, false), Ok("DROP".into()), "{ok}");
        }
        for forged in [
            format!("Dec  5 04:00:00 fw1 root: {body}"),
            format!("Dec  5 04:00:00 fw1 myfw[123]: {body}"),
            format!("2025-12-05T04:00:00+00:00 fw1 admin: {body}"),
        ] {
            assert_eq!(parse_with(&forged, false), Err(RejectKind::BadHeader), "{forged}");
            assert_eq!(parse_with(&forged, true), Ok("DROP".into()), "{forged}");
        }
    }

    /// The reference is 2026-01-01T20:40Z: a line a day and a bit later is implausible, one
    /// within the day is kept, and a year-less stamp is never placed after it.
    #[test]
    fn lines_dated_more_than_a_day_ahead_are_rejected() {
        let body = "fw1 kernel: IPT: DROP IN=eth0 OUT= SRC=198.51.100.1 DST=192.0.2.1 LEN=40 TTL=56 ID=1 PROTO=TCP SPT=5 DPT=22 WINDOW=512 RES=0x00 SYN URGP=0";
        assert_eq!(parse_with(&format!("2026-01-02T20:00:00+00:00 {body}"), false), Ok("DROP".into()));
        assert_eq!(parse_with(&format!("2026-01-02T21:00:00+00:00 {body}"), false), Err(RejectKind::BadTimestamp));
        assert_eq!(parse_with(&format!("2030-06-01T00:00:00+00:00 {body}"), false), Err(RejectKind::BadTimestamp));
        assert_eq!(parse_with(&format!("Jun  1 00:00:00 {body}"), false), Ok("DROP".into()));
    }
}
