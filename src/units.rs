//! Text written for and read from people: byte counts as `512 B`, `1.5 MiB`, counts as
//! `1,234,567`, log text made safe for a terminal, and ages such as `30d`. Reports, summaries,
//! live views and the settings share these, so each is written one way.

use std::borrow::Cow;
use std::time::Duration;

/// `1234567` as `1,234,567`.
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Log text (untrusted) for a terminal: every control character (escape sequences, bells,
/// carriage returns, newlines) becomes `?`; text without one is borrowed as it is.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| if c.is_control() { '?' } else { c }).collect())
}

/// [`printable`] appended to a byte buffer, without allocating.
pub fn push_printable(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    let mut tmp = [0u8; 4];
    for c in s.chars() {
        let c = if c.is_control() { '?' } else { c };
        out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
    }
}

/// `b` bytes in binary units with one decimal (`3.2 GiB`); below 1 KiB the exact count.
pub fn human_size(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Parses a retention age: a positive whole number and a unit, `90min`, `12h`, `30d`, `2w`
/// (minutes, hours, days, weeks; `s` seconds is accepted too). Months and years are not
/// offered because their length varies: write `30d` or `365d`.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "invalid age {s:?}: expected a number and a unit, like 30d"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid age {s:?}: number too large"))?;
    let unit_secs: u64 = match unit.trim() {
        "s" => 1,
        // `m` alone could mean minutes or months: refused with a hint (`min` is minutes).
        "m" => {
            return Err(format!(
                "invalid age {s:?}: `m` could mean minutes or months; write {num}min for minutes, \
                 or days for months (180d)"
            ))
        }
        "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "" => {
            return Err(format!(
                "invalid age {s:?}: add a unit (min, h, d or w), like 30d"
            ))
        }
        u => {
            return Err(format!(
                "invalid age {s:?}: unknown unit {u:?} (use min, h, d or w)"
            ))
        }
    };
    if n == 0 {
        return Err(format!("invalid age {s:?}: must be more than zero"));
    }
    // Beyond ~292,000 years the cutoff would not fit the timestamp: no real retention is that long.
    let secs = n
        .checked_mul(unit_secs)
        .filter(|&x| x <= i64::MAX as u64 / 1_000_000)
        .ok_or_else(|| format!("invalid age {s:?}: too long"))?;
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_log_text_for_people() {
        assert_eq!(group_digits(1_234_567), "1,234,567");
        assert_eq!(group_digits(999), "999");
        assert_eq!(printable("fw1"), "fw1");
        assert_eq!(printable("a\x1b[2Jb\u{7}\n\u{9b}c"), "a?[2Jb??" .to_string() + "?c");
        let mut v = Vec::new();
        push_printable(&mut v, "h\x1b]0;pwned\x07é");
        assert_eq!(String::from_utf8(v).unwrap(), "h?]0;pwned?é");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
        assert_eq!(human_size(3 << 40), "3.0 TiB");
        assert_eq!(human_size(5000 << 40), "5000.0 TiB");
    }

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_age("90min"), Ok(Duration::from_secs(90 * 60)));
        let e = parse_age("6m").unwrap_err();
        assert!(e.contains("minutes or months") && e.contains("6min"), "{e}");
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_age(" 45s "), Ok(Duration::from_secs(45)));
    }

    #[test]
    fn bad_ages_are_explained() {
        for (bad, says) in [
            ("", "expected a number"),
            ("d", "expected a number"),
            ("30", "add a unit"),
            ("30y", "unknown unit"),
            ("1mo", "unknown unit"),
            ("-3d", "expected a number"),
            ("0d", "more than zero"),
            ("99999999999999999999d", "too large"),
            ("9999999999999w", "too long"),
        ] {
            let e = parse_age(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}
