//! The syslog line around the netfilter message: `<PRI>`, the time stamp (RFC 3164, RFC 3339,
//! ctime as `dmesg -T` and OpenWrt's `logread` write it), a relay's header before the real one,
//! the host, the program tag (`kernel:`, `vmunix:`, `kernel[12]:`), the kernel's `[uptime]`
//! stamp and caller id, and rsyslog's `message repeated N times: [ ... ]` wrapper.
//!
//! The header is read by position and shape only: everything here is bounded by the bytes it
//! looks at, so a header costs constant time plus the length of its words.

use super::time::parse_offset;

/// A time stamp as written, before the zone and the year are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamp {
    /// No time stamp (journald message, dmesg line).
    None,
    /// `Nov  5 06:35:08` (no year, no zone).
    Rfc3164 { mon: u32, day: u32, h: u32, mi: u32, s: u32 },
    /// A stamp with its year: `2026-11-05T06:35:08.123456+01:00` (RFC 3339, or journalctl's
    /// `+0100`), or ctime's `Thu Mar 11 20:05:08 2021`; `offset` None when it has no zone.
    Dated { y: i32, mon: u32, day: u32, h: u32, mi: u32, s: u32, micros: u32, offset: Option<i32> },
    /// Looks like a time stamp but is not a valid one.
    Bad(&'static str),
}

/// What the header told: the stamp, the host (a byte range), and where the message starts.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub stamp: Stamp,
    pub host: Option<(usize, usize)>,
    /// First byte of the message (after tag, uptime stamp and repeat wrapper).
    pub msg_start: usize,
    /// One past the last byte of the message (the wrapper's `]` is excluded).
    pub msg_end: usize,
    /// N of `message repeated N times`, else 1.
    pub repeat: u32,
    /// The repeat count was there but unreadable.
    pub bad_repeat: bool,
    /// The header names a program other than the kernel as the line's author (`sshd[12]:`).
    pub program_tag: bool,
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

#[inline]
fn digit(b: &[u8], i: usize) -> Option<u32> {
    let c = *b.get(i)?;
    c.is_ascii_digit().then(|| u32::from(c - b'0'))
}

#[inline]
fn two(b: &[u8], i: usize) -> Option<u32> {
    Some(digit(b, i)? * 10 + digit(b, i + 1)?)
}

/// End of the word starting at `i` (the next space or the end).
#[inline]
pub fn word_end(b: &[u8], i: usize) -> usize {
    match memchr::memchr(b' ', &b[i.min(b.len())..]) {
        Some(n) => i + n,
        None => b.len(),
    }
}

#[inline]
fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    i
}

/// `HH:MM:SS` at `i`; returns (h, m, s, end).
fn hms(b: &[u8], i: usize) -> Option<(u32, u32, u32)> {
    let h = two(b, i)?;
    let mi = two(b, i + 3)?;
    let s = two(b, i + 6)?;
    if b[i + 2] != b':' || b[i + 5] != b':' {
        return None;
    }
    Some((h, mi, s))
}

/// RFC 3164 stamp at `i` (month name, day padded with a space or not, time). Returns the stamp
/// and the index after it, or None when the bytes do not start like one.
fn rfc3164(b: &[u8], i: usize) -> Option<(Stamp, usize)> {
    let name = b.get(i..i + 3)?;
    let mon = MONTHS.iter().position(|m| &m[..] == name)? as u32 + 1;
    if b.get(i + 3) != Some(&b' ') {
        return None;
    }
    let mut j = skip_spaces(b, i + 3);
    let d0 = digit(b, j)?;
    j += 1;
    let day = match digit(b, j) {
        Some(d1) => {
            j += 1;
            d0 * 10 + d1
        }
        None => d0,
    };
    let after_day = j;
    let bad = |why| Some((Stamp::Bad(why), word_end(b, after_day)));
    if b.get(j) != Some(&b' ') {
        return bad("the RFC 3164 time stamp is not `Mmm dd hh:mm:ss`");
    }
    j += 1;
    let Some((h, mi, s)) = hms(b, j) else {
        return bad("the RFC 3164 time stamp is not `Mmm dd hh:mm:ss`");
    };
    j += 8;
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return bad("the time stamp has a day, hour, minute or second out of range");
    }
    // Some writers add fractions to 3164 stamps: read past them, the second is what counts.
    if b.get(j) == Some(&b'.') {
        j += 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
    }
    Some((Stamp::Rfc3164 { mon, day, h, mi, s: s.min(59) }, j))
}

/// RFC 3339 / ISO 8601 stamp at `i`: `YYYY-MM-DDTHH:MM:SS[.frac][Z|+HH:MM]`.
fn rfc3339(b: &[u8], i: usize) -> Option<(Stamp, usize)> {
    let y = digit(b, i)? * 1000 + digit(b, i + 1)? * 100 + two(b, i + 2)?;
    if b.get(i + 4) != Some(&b'-') {
        return None;
    }
    // `2026-11-05T06:35:08`, or with a space instead of the T as some relays write it.
    let spaced = b.get(i + 10) == Some(&b' ') && b.get(i + 13) == Some(&b':');
    let end = word_end(b, if spaced { i + 11 } else { i });
    let bad = |why| Some((Stamp::Bad(why), end));
    let w = &b[i..end];
    const SHAPE: &str = "the RFC 3339 time stamp is not `YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm)`";
    if w.len() < 19 || w[7] != b'-' || !matches!(w[10], b'T' | b't' | b' ') {
        return bad(SHAPE);
    }
    let (Some(mon), Some(day), Some((h, mi, s))) = (two(w, 5), two(w, 8), hms(w, 11)) else {
        return bad(SHAPE);
    };
    let y = y as i32;
    if !(1..=12).contains(&mon)
        || day == 0
        || day > super::time::days_in_month(y, mon)
        || h > 23
        || mi > 59
        || s > 60
    {
        return bad("the time stamp has a month, day, hour, minute or second out of range");
    }
    let mut j = 19;
    let mut micros = 0u32;
    if w.get(j) == Some(&b'.') || w.get(j) == Some(&b',') {
        j += 1;
        let start = j;
        while j < w.len() && w[j].is_ascii_digit() {
            if j - start < 6 {
                micros = micros * 10 + u32::from(w[j] - b'0');
            }
            j += 1;
        }
        if j == start {
            return bad(SHAPE);
        }
        for _ in (j - start)..6 {
            micros *= 10;
        }
    }
    let offset = match &w[j..] {
        [] => None,
        [b'Z'] | [b'z'] => Some(0),
        rest => match parse_offset(rest) {
            Some(o) => Some(o),
            None => return bad("the time stamp's zone offset is not Z or +hh:mm"),
        },
    };
    Some((Stamp::Dated { y, mon, day, h, mi, s: s.min(59), micros, offset }, end))
}

const WEEKDAYS: [&[u8; 3]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];

/// ctime's stamp at `i`: `Thu Mar 11 20:05:08 2021` (day padded with a space or not), as
/// OpenWrt's `logread` starts its lines and `dmesg -T` writes in brackets. A local wall time
/// with its year. None when the bytes do not start like one.
fn ctime(b: &[u8], i: usize) -> Option<(Stamp, usize)> {
    let wd = b.get(i..i + 3)?;
    if !WEEKDAYS.iter().any(|w| &w[..] == wd) || b.get(i + 3) != Some(&b' ') {
        return None;
    }
    let (st, j) = rfc3164(b, i + 4)?;
    let Stamp::Rfc3164 { mon, day, h, mi, s } = st else {
        return Some((st, j));
    };
    let year = (|| Some(digit(b, j + 1)? * 1000 + digit(b, j + 2)? * 100 + two(b, j + 3)?))();
    let end = j + 5;
    match year {
        Some(y) if b.get(j) == Some(&b' ') && matches!(b.get(end), None | Some(b' ' | b']')) => {
            let y = y as i32;
            if day > super::time::days_in_month(y, mon) {
                return Some((Stamp::Bad("the date does not exist (day out of range for its month)"), end));
            }
            Some((Stamp::Dated { y, mon, day, h, mi, s, micros: 0, offset: None }, end))
        }
        _ => Some((Stamp::Bad("the ctime stamp is not `Www Mmm dd hh:mm:ss yyyy`"), word_end(b, j))),
    }
}

/// The stamp at `i` in any of the forms a line may start with. For `dmesg -T`'s bracketed
/// ctime stamp, the flag is true: such a line has no host and no tag after its stamp.
fn stamp_at(b: &[u8], i: usize) -> Option<(Stamp, usize, bool)> {
    match b.get(i)? {
        b'0'..=b'9' => rfc3339(b, i).map(|(s, e)| (s, e, false)),
        b'[' => {
            let (s, e) = ctime(b, i + 1)?;
            if matches!(s, Stamp::Bad(_)) || b.get(e) != Some(&b']') {
                return Some((Stamp::Bad("the dmesg -T stamp is not `[Www Mmm dd hh:mm:ss yyyy]`"), word_end(b, e), true));
            }
            Some((s, e + 1, true))
        }
        _ => rfc3164(b, i).or_else(|| ctime(b, i)).map(|(s, e)| (s, e, false)),
    }
}

/// A known kernel program tag: `kernel:`, `vmunix:`, `klogd:`, or any `name[pid]:`.
fn is_tag(w: &[u8]) -> bool {
    let Some(name) = w.strip_suffix(b":") else {
        return false;
    };
    if matches!(name, b"kernel" | b"vmunix" | b"klogd") {
        return true;
    }
    if let Some(inner) = name.strip_suffix(b"]") {
        if let Some(open) = memchr::memchr(b'[', inner) {
            let (prog, pid) = (&inner[..open], &inner[open + 1..]);
            return !prog.is_empty()
                && !pid.is_empty()
                && pid.iter().all(u8::is_ascii_digit)
                && prog.iter().all(|c| c.is_ascii_alphanumeric() || b"_-./".contains(c));
        }
    }
    false
}

/// The kernel's own tags: `kernel:`, `vmunix:`, `klogd:`, `kernel[0]:`.
fn is_kernel_tag(w: &[u8]) -> bool {
    let name = w.strip_suffix(b":").unwrap_or(w);
    let prog = memchr::memchr(b'[', name).map_or(name, |i| &name[..i]);
    matches!(prog, b"kernel" | b"vmunix" | b"klogd")
}

/// `facility.level` as some relays write before the tag (`user.info`, `kern.warning`).
fn is_facility_level(w: &[u8]) -> bool {
    match memchr::memchr(b'.', w) {
        Some(dot) => {
            dot > 0
                && dot + 1 < w.len()
                && w.iter().enumerate().all(|(k, c)| k == dot || c.is_ascii_lowercase())
        }
        None => false,
    }
}

/// A syslog `facility.level` by its names (`kern.warn`, `user.info`, `local7.debug`): stricter
/// than [`is_facility_level`], for the places where the word stands where a host could be
/// (`gw.lan` is a host, `kern.warn` is not).
fn is_syslog_facility_level(w: &[u8]) -> bool {
    let Some(dot) = memchr::memchr(b'.', w) else {
        return false;
    };
    let (f, l) = (&w[..dot], &w[dot + 1..]);
    let facility = matches!(
        f,
        b"kern" | b"user" | b"mail" | b"daemon" | b"auth" | b"syslog" | b"lpr" | b"news" | b"uucp" | b"cron"
            | b"authpriv" | b"ftp" | b"ntp" | b"security" | b"console" | b"solaris-cron"
    ) || (f.len() == 6 && f.starts_with(b"local") && (b'0'..=b'7').contains(&f[5]));
    facility
        && matches!(
            l,
            b"emerg" | b"panic" | b"alert" | b"crit" | b"err" | b"error" | b"warn" | b"warning" | b"notice" | b"info" | b"debug"
        )
}

/// The kernel's `[   12.345678]` uptime stamp at `i`: index after it and its space, if any.
fn uptime(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let j = digits_then(b, skip_spaces(b, i + 1), b'.')?;
    let j = digits_then(b, j, b']')?;
    Some(skip_spaces(b, j))
}

/// At least one digit from `j`, then `end`: the index after `end`.
fn digits_then(b: &[u8], j: usize, end: u8) -> Option<usize> {
    let mut k = j;
    while k < b.len() && b[k].is_ascii_digit() {
        k += 1;
    }
    (k > j && b.get(k) == Some(&end)).then_some(k + 1)
}

/// After the uptime stamp, the kernel's caller id when it was built with
/// `CONFIG_PRINTK_CALLER`: `[    C0]` (a CPU) or `[  T1234]` (a task), glued to the stamp or
/// after a space. Returns the index after it and its space, or `i` unchanged.
fn caller_id(b: &[u8], i: usize) -> usize {
    if b.get(i) != Some(&b'[') {
        return i;
    }
    let k = skip_spaces(b, i + 1);
    if !matches!(b.get(k), Some(b'C' | b'T')) {
        return i;
    }
    match digits_then(b, k + 1, b']') {
        Some(end) => skip_spaces(b, end),
        None => i,
    }
}

/// Reads the header of `line` (already stripped of trailing white space). `anchor` is where the
/// netfilter fields start (`IN=`), if they were found: a word that runs into it is message, not
/// host or tag.
pub fn parse(line: &[u8], anchor: Option<usize>) -> Header {
    let b = line;
    let limit = anchor.unwrap_or(b.len());
    let mut i = 0;
    // <PRI>
    if b.first() == Some(&b'<') {
        let mut j = 1;
        while j < b.len() && j <= 4 && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > 1 && b.get(j) == Some(&b'>') {
            i = j + 1;
        }
    }
    let mut stamp = Stamp::None;
    let mut host = None;
    let mut program_tag = false;
    // At most two headers: a relay's (`kern.info: ` after its own stamp and host, as some
    // forwarders write) and then the real one, whose stamp and host are the line's.
    for round in 0..2 {
        let mut dmesg = false;
        let stamp_start = i;
        if let Some((st, end, bracketed)) = stamp_at(b, i) {
            stamp = st;
            dmesg = bracketed;
            i = skip_spaces(b, end);
        }
        // A stamp is followed by the host, unless the next word is a tag, a relay's
        // `facility.level:`, `facility.level` before a tag (OpenWrt's logread, which writes
        // no host), the message prefix (`DENY:`, `[UFW BLOCK]`) or the netfilter fields.
        if i != stamp_start && i < limit && !dmesg {
            let e = word_end(b, i);
            let w = &b[i..e];
            let logread = is_syslog_facility_level(w) && {
                let t = skip_spaces(b, e);
                is_tag(&b[t..word_end(b, t)])
            };
            if e < limit && !w.ends_with(b":") && !w.starts_with(b"[") && !w.is_empty() && !logread {
                host = Some((i, e));
                i = skip_spaces(b, e);
            }
        }
        if round == 0 && i < limit {
            let e = word_end(b, i);
            if e > i && e < limit && b[e - 1] == b':' && is_syslog_facility_level(&b[i..e - 1]) {
                let j = skip_spaces(b, e);
                if matches!(stamp_at(b, j), Some((st, _, _)) if st != Stamp::None) {
                    i = j;
                    host = None;
                    continue;
                }
            }
        }
        break;
    }
    // Optional facility.level, then the tag.
    if i < limit {
        let e = word_end(b, i);
        if e < limit && is_facility_level(&b[i..e]) {
            let e2 = word_end(b, skip_spaces(b, e));
            let j = skip_spaces(b, e);
            if e2 < limit && is_tag(&b[j..e2]) {
                i = j;
            }
        }
        let e = word_end(b, i);
        if e <= limit && is_tag(&b[i..e]) {
            program_tag = !is_kernel_tag(&b[i..e]);
            i = skip_spaces(b, e);
        }
    }
    if let Some(j) = uptime(b, i) {
        i = caller_id(b, j);
    }
    let mut msg_end = b.len();
    let mut repeat = 1;
    let mut bad_repeat = false;
    // rsyslog's repeat reduction: `message repeated 3 times: [ IPT: ... ]`.
    if b[i..].starts_with(b"message repeated ") {
        let j = i + 17;
        let e = word_end(b, j);
        if b[e..].starts_with(b" times: [") {
            let n = &b[j..e];
            match parse_u32(n) {
                Some(v) if v > 0 => repeat = v,
                _ => bad_repeat = true,
            }
            i = skip_spaces(b, e + 9);
            if b.last() == Some(&b']') && b.len() > i {
                msg_end = b.len() - 1;
                while msg_end > i && b[msg_end - 1] == b' ' {
                    msg_end -= 1;
                }
            }
            if let Some(k) = uptime(b, i) {
                i = caller_id(b, k);
            }
        }
    }
    Header { stamp, host, msg_start: i.min(msg_end), msg_end, repeat, bad_repeat, program_tag }
}

fn parse_u32(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    u32::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host<'a>(l: &'a [u8], h: &Header) -> Option<&'a [u8]> {
        h.host.map(|(a, b)| &l[a..b])
    }

    #[test]
    fn rfc3164_with_uptime() {
        let l = b"Nov  5 06:35:08 fw1 kernel: [1749207.946614] IPT: DROP IN=eth0";
        let h = parse(l, Some(l.len() - 8));
        assert_eq!(h.stamp, Stamp::Rfc3164 { mon: 11, day: 5, h: 6, mi: 35, s: 8 });
        assert_eq!(host(l, &h), Some(&b"fw1"[..]));
        assert_eq!(&l[h.msg_start..], b"IPT: DROP IN=eth0");
    }

    #[test]
    fn rfc3339_pri_and_no_tag() {
        let l = b"<6>2021-03-12T14:10:18.5Z Hostname [wan-lan-default-D]IN=eth0 OUT=";
        let a = memchr::memmem::find(l, b"IN=").unwrap();
        let h = parse(l, Some(a));
        assert_eq!(
            h.stamp,
            Stamp::Dated { y: 2021, mon: 3, day: 12, h: 14, mi: 10, s: 18, micros: 500_000, offset: Some(0) }
        );
        assert_eq!(host(l, &h), Some(&b"Hostname"[..]));
        assert_eq!(&l[h.msg_start..a], b"[wan-lan-default-D]");
    }

    #[test]
    fn no_host_prefix_after_stamp() {
        let l = b"Jan  8 03:37:09 DENY: IN=eth0 OUT=";
        let h = parse(l, Some(22));
        assert_eq!(h.host, None);
        assert_eq!(&l[h.msg_start..], b"DENY: IN=eth0 OUT=");
    }

    #[test]
    fn repeat_wrapper() {
        let l = b"Nov  5 06:35:08 fw1 kernel: message repeated 3 times: [ IPT: DROP IN=eth0 OUT= ]";
        let h = parse(l, None);
        assert_eq!(h.repeat, 3);
        assert_eq!(&l[h.msg_start..h.msg_end], b"IPT: DROP IN=eth0 OUT=");
    }

    #[test]
    fn dmesg_t_logread_relay_and_caller_id() {
        let l = b"[Thu Mar 11 20:05:08 2021] DROP IN=eth0 OUT=";
        let h = parse(l, Some(32));
        assert_eq!(h.stamp, Stamp::Dated { y: 2021, mon: 3, day: 11, h: 20, mi: 5, s: 8, micros: 0, offset: None });
        assert_eq!(h.host, None);
        assert_eq!(&l[h.msg_start..], b"DROP IN=eth0 OUT=");

        let l = b"Thu Mar  1 20:05:08 2021 kern.warn kernel: [17748.07] DROP(src wan)IN=eth0 OUT=";
        let a = memchr::memmem::find(l, b"IN=").unwrap();
        let h = parse(l, Some(a));
        assert_eq!(h.stamp, Stamp::Dated { y: 2021, mon: 3, day: 1, h: 20, mi: 5, s: 8, micros: 0, offset: None });
        assert_eq!(h.host, None);
        assert!(!h.program_tag);
        assert_eq!(&l[h.msg_start..a], b"DROP(src wan)");

        let l = b"Oct 12 10:50:35 relay kern.info: Oct 12 10:50:34 fw1 kernel: [1.5][  T1234] IPT: DROP IN=eth0 OUT=";
        let a = memchr::memmem::find(l, b"IN=").unwrap();
        let h = parse(l, Some(a));
        assert_eq!(h.stamp, Stamp::Rfc3164 { mon: 10, day: 12, h: 10, mi: 50, s: 34 });
        assert_eq!(host(l, &h), Some(&b"fw1"[..]));
        assert_eq!(&l[h.msg_start..a], b"IPT: DROP ");

        // A host with one dot is a host, not OpenWrt's facility.level.
        let l = b"Mar 11 20:05:08 gw.lan kernel: IPT: DROP IN=eth0 OUT=";
        let h = parse(l, Some(l.len() - 12));
        assert_eq!(host(l, &h), Some(&b"gw.lan"[..]));
        assert_eq!(&l[h.msg_start..], b"IPT: DROP IN=eth0 OUT=");
        assert!(is_syslog_facility_level(b"local7.debug") && !is_syslog_facility_level(b"local8.info"));

        // Only one relay header is unwrapped; a caller id needs C or T and digits.
        let l = b"kern.info: kern.info: Oct 12 10:50:34 fw1 kernel: [1.5] [X1] IN=eth0 OUT=";
        let a = memchr::memmem::find(l, b"IN=").unwrap();
        let h = parse(l, Some(a));
        assert_eq!(h.stamp, Stamp::None);
        assert_eq!(&l[h.msg_start..a], &l[..a]);
        let l = b"[1.5][    C0]";
        assert_eq!(caller_id(l, 5), l.len());
        assert_eq!(caller_id(b"[1.5][ C]", 5), 5);
        assert!(matches!(parse(b"[Thu Mar 11 20:05:08 2021 x", None).stamp, Stamp::Bad(_)));
        assert!(matches!(parse(b"Thu Mar 11 20:05:08 21 x", None).stamp, Stamp::Bad(_)));
    }

    #[test]
    fn message_only() {
        let l = b"[2948936.567854] OUTPUT reject: IN= OUT=eth0";
        let h = parse(l, Some(32));
        assert_eq!(h.stamp, Stamp::None);
        assert_eq!(&l[h.msg_start..], b"OUTPUT reject: IN= OUT=eth0");
        assert!(matches!(parse(b"Nov 45 06:35:08 x", None).stamp, Stamp::Bad(_)));
        assert!(matches!(parse(b"2026-02-30T06:35:08Z x", None).stamp, Stamp::Bad(_)));
    }
}
