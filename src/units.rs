//! Text written for people: byte counts as `512 B`, `1.5 MiB`, counts as `1,234,567`, and log
//! text made safe for a terminal. Reports, summaries and live views share these, so each is
//! written one way.

use std::borrow::Cow;

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
}
