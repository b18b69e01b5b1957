//! The live display of `ipta --follow`: one line per packet in fixed columns (Time, Count, IF,
//! Source, Port, Destination, Port, Proto, Action, and Host once lines come from several hosts),
//! a header every 20 shown lines, the `--no-local` / `--no-accept` filters, and fitting to the
//! terminal's width.
//!
//! Layout rules. Without a width (output piped) nothing is ever cut: cells are padded to their
//! column width and a longer value simply pushes the rest of the line to the right. With a width
//! (a terminal) the address columns share what the fixed columns leave, the date is dropped from
//! the time when space is short, a value longer than its column is cut from the left with a
//! leading `*` (the end of a host name is the informative part), and the line never exceeds the
//! width. The layout changes (and a header is printed at once) when a second host or the first
//! IPv6 address appears. All rendering goes through buffers reused from line to line.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::IpAddr;

use chrono::{Local, TimeZone};

use crate::record::{Proto, Record, Timestamp};

/// Shown lines between two headers.
pub const HEADER_EVERY: u32 = 20;

/// How wide the output may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// Piped: never cut anything.
    Plain,
    /// A fixed width in columns.
    Fixed(usize),
    /// The terminal on stdout; its size is read again at every header.
    Terminal,
}

/// Display settings (the text-format part of `FollowOptions`).
#[derive(Clone, Copy, Debug)]
pub struct DisplayOptions {
    pub no_header: bool,
    pub no_counter: bool,
    pub no_local: bool,
    pub no_accept: bool,
    pub rdns: bool,
    pub width: Width,
}

/// Whether a packet passes `--no-local` (lo on either side) and `--no-accept`.
pub fn passes(r: &Record<'_>, no_local: bool, no_accept: bool) -> bool {
    if no_local && (r.if_in == Some("lo") || r.if_out == Some("lo")) {
        return false;
    }
    if no_accept && r.action.eq_ignore_ascii_case("ACCEPT") {
        return false;
    }
    true
}

/// The width of the terminal on stdout, if stdout is one.
pub fn terminal_width() -> Option<usize> {
    // SAFETY: isatty and ioctl(TIOCGWINSZ) only read the descriptor's state into `ws`.
    unsafe {
        if libc::isatty(libc::STDOUT_FILENO) != 1 {
            return None;
        }
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) != 0 || ws.ws_col == 0 {
            return None;
        }
        Some(ws.ws_col as usize)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// Column widths of the current layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    long_time: bool,
    count: usize,
    ifc: usize,
    addr: usize,
    port: usize,
    proto: usize,
    action: usize,
    host: usize,
    /// Some(w): cut cells and lines to fit w columns.
    fit: Option<usize>,
}

const TIME_LONG: usize = 15; // "Nov 25 10:16:44"
const TIME_SHORT: usize = 8; // "10:16:44"
const COUNT_W: usize = 5;
// IF and Host start narrow and grow (with a new header) to the longest value seen, up to a cap;
// longer values are cut like any other cell.
const IF_MIN: usize = 6;
const IF_MAX: usize = 12;
const HOST_MIN: usize = 4;
const HOST_MAX: usize = 20;
const PORT_W: usize = 5;
const PROTO_W: usize = 6;
const ACTION_W: usize = 7;
const ADDR_V4: usize = 15;
const ADDR_WIDE: usize = 39; // a full IPv6 address; also the room given to names
const ADDR_MIN: usize = 7;

/// The live display's state: counters, layout, reusable buffers.
pub struct Display {
    opts: DisplayOptions,
    /// Shown packet lines (the Count column).
    shown: u64,
    /// Shown lines since the last header; `None` = a header is due before the next line.
    since_header: Option<u32>,
    first_host: Option<String>,
    multi_host: bool,
    seen_v6: bool,
    count_w: usize,
    if_w: usize,
    host_w: usize,
    layout: Layout,
    line: Vec<u8>,
    cell: String,
}

impl Display {
    pub fn new(opts: DisplayOptions) -> Self {
        let mut d = Display {
            opts,
            shown: 0,
            since_header: None,
            first_host: None,
            multi_host: false,
            seen_v6: false,
            count_w: COUNT_W,
            if_w: IF_MIN,
            host_w: HOST_MIN,
            layout: Layout {
                long_time: true,
                count: 0,
                ifc: 0,
                addr: 0,
                port: 0,
                proto: 0,
                action: 0,
                host: 0,
                fit: None,
            },
            line: Vec::with_capacity(256),
            cell: String::with_capacity(64),
        };
        d.relayout();
        d
    }

    /// Packet lines shown so far.
    pub fn shown(&self) -> u64 {
        self.shown
    }

    /// Whether the packet passes the filters.
    pub fn accepts(&self, r: &Record<'_>) -> bool {
        passes(r, self.opts.no_local, self.opts.no_accept)
    }

    fn current_width(&self) -> Option<usize> {
        match self.opts.width {
            Width::Plain => None,
            Width::Fixed(w) => Some(w.max(1)),
            Width::Terminal => terminal_width(),
        }
    }

    /// Recomputes the column widths; true if they changed.
    fn relayout(&mut self) -> bool {
        let fit = self.current_width();
        let count = if self.opts.no_counter { 0 } else { self.count_w };
        let host = if self.multi_host { self.host_w } else { 0 };
        let ifc = self.if_w;
        let pref = if self.opts.rdns || self.seen_v6 { ADDR_WIDE } else { ADDR_V4 };
        // Widths of every column but the two addresses, with all separating spaces:
        // time _ [count _] if _ SRC _ port _ DST _ port _ proto _ action [_ host].
        let fixed = |time: usize| {
            let mut w = time + 1 + ifc + 1 + 1 + PORT_W + 1 + 1 + PORT_W + 1 + PROTO_W + 1 + ACTION_W;
            if count > 0 {
                w += count + 1;
            }
            if host > 0 {
                w += 1 + host;
            }
            w
        };
        let mut long_time = true;
        let mut addr = pref;
        if let Some(w) = fit {
            let room = |time: usize| w.saturating_sub(fixed(time)) / 2;
            addr = room(TIME_LONG).min(pref);
            if addr < ADDR_V4.min(pref) {
                long_time = false;
                addr = room(TIME_SHORT).min(pref);
            }
            addr = addr.max(ADDR_MIN);
        }
        let new = Layout {
            long_time,
            count,
            ifc,
            addr,
            port: PORT_W,
            proto: PROTO_W,
            action: ACTION_W,
            host,
            fit,
        };
        let changed = new != self.layout;
        self.layout = new;
        changed
    }

    /// Takes note of a packet about to be shown; a layout change forces a header.
    fn observe(&mut self, r: &Record<'_>) {
        let mut changed = false;
        if !self.multi_host {
            if let Some(h) = r.host {
                match &self.first_host {
                    None => self.first_host = Some(h.to_string()),
                    Some(f) if f != h => {
                        self.multi_host = true;
                        changed = true;
                    }
                    Some(_) => {}
                }
            }
        }
        if !self.seen_v6 && (matches!(r.pkt.src, Some(IpAddr::V6(_))) || matches!(r.pkt.dst, Some(IpAddr::V6(_)))) {
            self.seen_v6 = true;
            changed = true;
        }
        let ifc_len = match (r.if_in.filter(|s| !s.is_empty()), r.if_out.filter(|s| !s.is_empty())) {
            (Some(i), _) => i.chars().count(),
            (None, Some(o)) => 1 + o.chars().count(),
            (None, None) => 0,
        };
        if ifc_len > self.if_w && self.if_w < IF_MAX {
            self.if_w = ifc_len.min(IF_MAX);
            changed = true;
        }
        let host_len = r.host.map_or(0, |h| h.chars().count());
        if host_len > self.host_w && self.host_w < HOST_MAX {
            self.host_w = host_len.min(HOST_MAX);
            changed = true;
        }
        let digits = (self.shown + 1).checked_ilog10().unwrap_or(0) as usize + 1;
        if !self.opts.no_counter && digits > self.count_w {
            self.count_w = digits;
            changed = true;
        }
        if changed && self.relayout() {
            self.since_header = None;
        }
    }

    /// Appends one cell: padded to `width`, or (when fitting) cut from the left with `*`.
    /// Control characters become `?`: log fields and PTR names are untrusted text bound for a
    /// terminal (an escape sequence must not reach it).
    fn put_cell(line: &mut Vec<u8>, text: &str, width: usize, align: Align, fit: bool, last: bool) {
        let chars = text.chars().count();
        let (text, chars) = if fit && chars > width {
            if width == 0 {
                return;
            }
            line.push(b'*');
            let skip = chars - (width - 1);
            let start = text.char_indices().nth(skip).map_or(text.len(), |(i, _)| i);
            (&text[start..], width)
        } else {
            (text, chars)
        };
        // `chars` is now the cell's width as shown (a cut cell fills its column exactly).
        let pad = width.saturating_sub(chars);
        if align == Align::Right {
            line.resize(line.len() + pad, b' ');
        }
        crate::units::push_printable(line, text);
        if align == Align::Left && !last {
            line.resize(line.len() + pad, b' ');
        }
    }

    /// Finishes a line: trailing blanks off, cut to the width, newline, written out.
    fn finish_line(&mut self, out: &mut dyn Write) -> io::Result<()> {
        while self.line.last() == Some(&b' ') {
            self.line.pop();
        }
        if let Some(w) = self.layout.fit {
            // Cut at a character boundary after at most w characters.
            if let Ok(s) = std::str::from_utf8(&self.line) {
                if let Some((i, _)) = s.char_indices().nth(w) {
                    self.line.truncate(i);
                }
            }
        }
        self.line.push(b'\n');
        out.write_all(&self.line)?;
        self.line.clear();
        Ok(())
    }

    fn write_header(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.opts.width == Width::Terminal {
            self.relayout();
        }
        let l = self.layout;
        let fit = l.fit.is_some();
        self.line.clear();
        let time_w = if l.long_time { TIME_LONG } else { TIME_SHORT };
        let mut cols: Vec<(&str, usize, Align)> = Vec::with_capacity(10);
        cols.push(("Time", time_w, Align::Left));
        if l.count > 0 {
            cols.push(("Count", l.count, Align::Right));
        }
        cols.push(("IF", l.ifc, Align::Left));
        cols.push(("Source", l.addr, Align::Left));
        cols.push(("Port", l.port, Align::Right));
        cols.push(("Destination", l.addr, Align::Left));
        cols.push(("Port", l.port, Align::Right));
        cols.push(("Proto", l.proto, Align::Left));
        cols.push(("Action", l.action, Align::Left));
        if l.host > 0 {
            cols.push(("Host", l.host, Align::Left));
        }
        let n = cols.len();
        for (i, (label, w, a)) in cols.into_iter().enumerate() {
            if i > 0 {
                self.line.push(b' ');
            }
            // Labels are cut at the right, never starred.
            let label = &label[..label.len().min(w.max(1))];
            Self::put_cell(&mut self.line, label, w, a, fit, i + 1 == n);
        }
        self.finish_line(out)
    }

    fn header_if_due(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.opts.no_header {
            return Ok(());
        }
        match self.since_header {
            Some(n) if n < HEADER_EVERY => {}
            _ => {
                self.write_header(out)?;
                self.since_header = Some(0);
            }
        }
        Ok(())
    }

    /// Shows one packet (already filtered). `src_name` / `dst_name` replace the addresses when
    /// reverse DNS found names.
    pub fn write_record(
        &mut self,
        r: &Record<'_>,
        src_name: Option<&str>,
        dst_name: Option<&str>,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        self.observe(r);
        self.header_if_due(out)?;
        self.shown += 1;
        if let Some(n) = self.since_header.as_mut() {
            *n += 1;
        }
        let l = self.layout;
        let fit = l.fit.is_some();
        self.line.clear();

        // Time: the packet's own, in the local zone.
        self.cell.clear();
        write_time(&mut self.cell, r.ts, l.long_time);
        let tw = if l.long_time { TIME_LONG } else { TIME_SHORT };
        Self::put_cell(&mut self.line, &self.cell, tw, Align::Left, fit, false);

        if l.count > 0 {
            self.cell.clear();
            let _ = write!(self.cell, "{}", self.shown);
            self.line.push(b' ');
            Self::put_cell(&mut self.line, &self.cell, l.count, Align::Right, fit, false);
        }

        // IF: the input interface; `>eth1` for a packet that only has an output interface.
        self.cell.clear();
        match (r.if_in.filter(|s| !s.is_empty()), r.if_out.filter(|s| !s.is_empty())) {
            (Some(i), _) => self.cell.push_str(i),
            (None, Some(o)) => {
                self.cell.push('>');
                self.cell.push_str(o);
            }
            (None, None) => {}
        }
        self.line.push(b' ');
        Self::put_cell(&mut self.line, &self.cell, l.ifc, Align::Left, fit, false);

        let icmp = matches!(r.pkt.proto, Some(Proto::Icmp) | Some(Proto::Icmpv6));
        // Source, Port, Destination, Port.
        for (addr, name, port) in [(r.pkt.src, src_name, r.pkt.spt), (r.pkt.dst, dst_name, r.pkt.dpt)] {
            self.cell.clear();
            match (name, addr) {
                (Some(n), _) => self.cell.push_str(n),
                (None, Some(a)) => {
                    let _ = write!(self.cell, "{a}");
                }
                (None, None) => {}
            }
            self.line.push(b' ');
            Self::put_cell(&mut self.line, &self.cell, l.addr, Align::Left, fit, false);
            self.cell.clear();
            if let Some(p) = port {
                let _ = write!(self.cell, "{p}");
            }
            self.line.push(b' ');
            Self::put_cell(&mut self.line, &self.cell, l.port, Align::Right, fit, false);
        }
        // ICMP has no ports: the destination's Port column shows type/code instead.
        if icmp && r.pkt.dpt.is_none() {
            if let Some(t) = r.pkt.icmp_type {
                self.cell.clear();
                let _ = write!(self.cell, "{t}");
                if let Some(c) = r.pkt.icmp_code {
                    let _ = write!(self.cell, "/{c}");
                }
                // Replace the blank Port cell just written.
                self.line.truncate(self.line.len() - l.port);
                Self::put_cell(&mut self.line, &self.cell, l.port, Align::Right, fit, false);
            }
        }

        self.cell.clear();
        if let Some(p) = r.pkt.proto {
            let _ = write!(self.cell, "{p}");
        }
        self.line.push(b' ');
        Self::put_cell(&mut self.line, &self.cell, l.proto, Align::Left, fit, false);

        // Action, with the repeat count of a `message repeated N times` line.
        self.cell.clear();
        self.cell.push_str(r.action);
        if r.repeat > 1 {
            let _ = write!(self.cell, " x{}", r.repeat);
        }
        self.line.push(b' ');
        Self::put_cell(&mut self.line, &self.cell, l.action, Align::Left, fit, l.host == 0);

        if l.host > 0 {
            self.line.push(b' ');
            Self::put_cell(&mut self.line, r.host.unwrap_or(""), l.host, Align::Left, fit, true);
        }
        self.finish_line(out)
    }

    /// Shows that `n` lines were lost (a full pipe on the fan-out). Not counted as a shown line.
    pub fn write_dropped(&mut self, n: u64, out: &mut dyn Write) -> io::Result<()> {
        self.line.clear();
        let _ = write!(self.line, "--- {n} {} lost ---", if n == 1 { "line" } else { "lines" });
        self.finish_line(out)
    }

    /// Shows a notice (e.g. a rejected line) on a line of its own. Not counted.
    pub fn write_notice(&mut self, msg: &str, out: &mut dyn Write) -> io::Result<()> {
        self.line.clear();
        self.line.extend_from_slice(b"--- ");
        self.line.extend_from_slice(msg.as_bytes());
        self.line.extend_from_slice(b" ---");
        self.finish_line(out)
    }
}

/// `Nov 25 10:16:44` (long) or `10:16:44`, in the local zone.
fn write_time(s: &mut String, ts: Timestamp, long: bool) {
    match Local.timestamp_micros(ts.micros()).single() {
        Some(t) => {
            let _ = if long {
                write!(s, "{}", t.format("%b %d %H:%M:%S"))
            } else {
                write!(s, "{}", t.format("%H:%M:%S"))
            };
        }
        None => s.push('?'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Packet;

    fn opts(width: Width) -> DisplayOptions {
        DisplayOptions {
            no_header: false,
            no_counter: false,
            no_local: false,
            no_accept: false,
            rdns: false,
            width,
        }
    }

    fn rec<'a>(host: &'a str, src: &str, action: &'a str) -> Record<'a> {
        Record {
            ts: Timestamp(1_764_065_804_000_000),
            host: Some(host),
            action,
            prefix: "IPT: ",
            if_in: Some("eth0"),
            if_out: Some(""),
            pkt: Packet {
                src: Some(src.parse().unwrap()),
                dst: Some("192.0.2.10".parse().unwrap()),
                proto: Some(Proto::Tcp),
                spt: Some(40000),
                dpt: Some(22),
                ..Default::default()
            },
            repeat: 1,
            message: b"IPT: DROP",
            ..Default::default()
        }
    }

    fn render(d: &mut Display, recs: &[Record<'_>]) -> String {
        let mut out = Vec::new();
        for r in recs {
            if d.accepts(r) {
                d.write_record(r, None, None, &mut out).unwrap();
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn header_every_twenty_lines() {
        let mut d = Display::new(opts(Width::Plain));
        let recs: Vec<_> = (0..45).map(|_| rec("fw1", "198.51.100.7", "DROP")).collect();
        let s = render(&mut d, &recs);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 45 + 3);
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(l.starts_with("Time"), i % 21 == 0, "line {i}: {l}");
        }
        assert!(lines[0].contains("Count") && lines[0].contains("Destination") && !lines[0].contains("Host"));
        // The counter counts shown lines: 1..=45.
        assert!(lines[1].split_whitespace().nth(3) == Some("1"), "{}", lines[1]);
        assert!(lines[47].split_whitespace().nth(3) == Some("45"), "{}", lines[47]);
    }

    #[test]
    fn no_header_no_counter() {
        let mut d = Display::new(DisplayOptions { no_header: true, no_counter: true, ..opts(Width::Plain) });
        let s = render(&mut d, &[rec("fw1", "198.51.100.7", "DROP"), rec("fw1", "198.51.100.8", "DROP")]);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2);
        let w: Vec<&str> = lines[0].split_whitespace().collect();
        // Nov 25 HH:MM:SS eth0 src port dst port proto action
        assert_eq!(&w[3..], ["eth0", "198.51.100.7", "40000", "192.0.2.10", "22", "TCP", "DROP"]);
    }

    #[test]
    fn filters_and_counter_counts_shown_only() {
        let mut d = Display::new(DisplayOptions {
            no_header: true,
            no_local: true,
            no_accept: true,
            ..opts(Width::Plain)
        });
        let mut lo = rec("fw1", "127.0.0.1", "DROP");
        lo.if_in = Some("lo");
        let mut lo_out = rec("fw1", "127.0.0.1", "REJECT");
        lo_out.if_in = Some("");
        lo_out.if_out = Some("lo");
        let s = render(
            &mut d,
            &[lo, rec("fw1", "198.51.100.1", "ACCEPT"), lo_out, rec("fw1", "198.51.100.2", "DROP")],
        );
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 1, "{s}");
        assert!(lines[0].contains("198.51.100.2"));
        assert_eq!(lines[0].split_whitespace().nth(3), Some("1"));
        assert_eq!(d.shown(), 1);
    }

    #[test]
    fn host_column_appears_with_a_second_host() {
        let mut d = Display::new(opts(Width::Plain));
        let s = render(
            &mut d,
            &[rec("fw1", "198.51.100.1", "DROP"), rec("fw1", "198.51.100.1", "DROP"), rec("fw2", "198.51.100.1", "DROP")],
        );
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 5, "{s}");
        assert!(!lines[0].contains("Host"));
        assert!(!lines[2].ends_with("fw1"));
        assert!(lines[3].starts_with("Time") && lines[3].ends_with("Host"), "{}", lines[3]);
        assert!(lines[4].ends_with("fw2"));
    }

    #[test]
    fn fits_width_and_cuts_from_the_left() {
        for w in [60usize, 80, 100, 200] {
            let mut d = Display::new(opts(Width::Fixed(w)));
            let mut r = rec("fw1", "2001:db8:1234:5678:9abc:def0:1234:5678", "DROP");
            r.if_in = Some("verylonginterface0");
            let s = render(&mut d, &[r]);
            for l in s.lines() {
                assert!(l.chars().count() <= w, "width {w}: {l:?}");
            }
            // Every cut cell fills its column exactly: columns stay aligned with the header.
            let hdr = s.lines().next().unwrap();
            let data = s.lines().nth(1).unwrap();
            if let Some(at) = hdr.find("Proto") {
                assert!(data[at..].starts_with("TCP"), "{w}: {hdr}\n{data}");
            } else {
                assert!(w < 70, "{w}: {hdr}");
            }
            if w == 80 {
                assert!(data.contains(" *ginterface0 "), "{data}");
                assert!(data.contains("*"), "{data}");
            }
            if w == 200 {
                assert!(s.contains("2001:db8:1234:5678:9abc:def0:1234:5678"));
            }
        }
        let mut d = Display::new(DisplayOptions { rdns: true, ..opts(Width::Fixed(80)) });
        let mut out = Vec::new();
        let r = rec("fw1", "198.51.100.1", "DROP");
        d.write_record(&r, Some("a-very-long-reverse-name.dynamic.example-provider.net"), None, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        let data = s.lines().nth(1).unwrap();
        assert!(data.contains(" *e-provider.net "), "{data}");
        assert!(data.chars().count() <= 80);
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let mut d = Display::new(DisplayOptions { no_header: true, ..opts(Width::Plain) });
        let mut out = Vec::new();
        let r = rec("fw\x1b[2J1", "198.51.100.1", "DROP");
        d.write_record(&r, Some("evil\x1b]0;x\x07.example"), None, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(!s.contains('\x1b') && !s.contains('\x07'), "{s:?}");
        assert!(s.contains("evil?]0;x?.example"), "{s:?}");
    }

    #[test]
    fn columns_grow_for_long_counts_interfaces_and_hosts() {
        let mut d = Display::new(opts(Width::Fixed(120)));
        let s1 = render(&mut d, &[rec("fw1", "198.51.100.1", "DROP")]);
        d.shown = 99_999;
        let mut r = rec("fw1", "198.51.100.1", "DROP");
        r.if_in = Some("wlp0s20f3");
        let s2 = render(&mut d, &[r]);
        let l: Vec<&str> = s1.lines().chain(s2.lines()).collect();
        assert_eq!(l.len(), 4, "{l:#?}");
        assert!(l[2].starts_with("Time"), "a header when the layout changes");
        // Right edge of Count and left edge of Source line up with the header.
        let c_end = l[2].find("Count").unwrap() + 5;
        assert_eq!(&l[3][c_end - 6..c_end], "100000", "{l:#?}");
        let src = l[2].find("Source").unwrap();
        assert!(l[3][src..].starts_with("198.51.100.1"), "{l:#?}");
        assert!(l[3].contains(" wlp0s20f3 "), "{l:#?}");
    }

    #[test]
    fn header_fits_exactly_with_a_host_column() {
        for w in [70usize, 80, 81, 100, 120] {
            let mut d = Display::new(opts(Width::Fixed(w)));
            let s = render(&mut d, &[rec("fw1", "198.51.100.1", "DROP"), rec("fw2", "2001:db8::1", "DROP")]);
            let hdr = s.lines().nth(2).unwrap();
            assert!(hdr.ends_with(" Host") && hdr.chars().count() <= w, "{w}: {hdr:?}");
        }
    }

    #[test]
    fn plain_never_cuts() {
        let mut d = Display::new(DisplayOptions { no_header: true, ..opts(Width::Plain) });
        let mut out = Vec::new();
        let r = rec("fw1", "198.51.100.1", "DROP");
        let name = "a-very-long-reverse-name.dynamic.example-provider.net";
        d.write_record(&r, Some(name), None, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains(name));
    }

    #[test]
    fn icmp_shows_type_and_code_and_repeat() {
        let mut d = Display::new(DisplayOptions { no_header: true, ..opts(Width::Plain) });
        let mut r = rec("fw1", "198.51.100.1", "DROP");
        r.pkt.proto = Some(Proto::Icmp);
        r.pkt.spt = None;
        r.pkt.dpt = None;
        r.pkt.icmp_type = Some(8);
        r.pkt.icmp_code = Some(0);
        r.repeat = 3;
        let s = render(&mut d, &[r]);
        let w: Vec<&str> = s.split_whitespace().collect();
        assert_eq!(&w[4..], ["eth0", "198.51.100.1", "192.0.2.10", "8/0", "ICMP", "DROP", "x3"], "{s}");
    }

    #[test]
    fn dropped_notice_is_not_counted() {
        let mut d = Display::new(DisplayOptions { no_header: true, ..opts(Width::Plain) });
        let mut out = Vec::new();
        d.write_dropped(12, &mut out).unwrap();
        d.write_record(&rec("fw1", "198.51.100.1", "DROP"), None, None, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("--- 12 lines lost ---\n"), "{s}");
        assert_eq!(d.shown(), 1);
    }

    #[test]
    fn time_is_the_packets_own_in_local_zone() {
        let mut d = Display::new(DisplayOptions { no_header: true, ..opts(Width::Plain) });
        let s = render(&mut d, &[rec("fw1", "198.51.100.1", "DROP")]);
        let want = Local
            .timestamp_micros(1_764_065_804_000_000)
            .unwrap()
            .format("%b %d %H:%M:%S")
            .to_string();
        assert!(s.starts_with(&want), "{s} vs {want}");
    }
}
