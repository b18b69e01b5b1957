//! Firewall lines that are not ipta's under the current rules: a tally of their prefixes, so
//! that an import or a scan can tell a new user that the file holds firewall lines of another
//! kind (UFW, firewalld, Shorewall...) and which option reads them, instead of only counting
//! them as "not ipta's".
//!
//! Only lines the parser already found not to be ipta's are looked at, and only those with the
//! netfilter fields (`IN= OUT= ...`) are counted. A tally keeps at most [`MAX_KINDS`] distinct
//! prefixes (each stored once, when first seen); the rest are counted together, so memory stays
//! bounded whatever the input.

use std::collections::HashMap;

/// Distinct prefixes kept by name.
pub const MAX_KINDS: usize = 64;
/// Prefixes are cut to this many bytes (a prefix is at most 29 characters in iptables' LOG).
const MAX_PREFIX: usize = 64;

/// How many skipped firewall lines carried each prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkippedPrefixes {
    counts: HashMap<Box<[u8]>, u64>,
    /// Lines whose prefix did not fit in the tally any more.
    others: u64,
    total: u64,
}

impl SkippedPrefixes {
    /// Counts one skipped firewall line with `prefix` (as [`super::Parser::other_prefix`] gives it).
    pub fn add(&mut self, prefix: &[u8]) {
        let prefix = &prefix[..prefix.len().min(MAX_PREFIX)];
        self.total += 1;
        if let Some(n) = self.counts.get_mut(prefix) {
            *n += 1;
        } else if self.counts.len() < MAX_KINDS {
            self.counts.insert(prefix.into(), 1);
        } else {
            self.others += 1;
        }
    }

    /// Adds another tally (several files of one import).
    pub fn merge(&mut self, other: &SkippedPrefixes) {
        for (p, n) in &other.counts {
            if let Some(m) = self.counts.get_mut(p) {
                *m += n;
            } else if self.counts.len() < MAX_KINDS {
                self.counts.insert(p.clone(), *n);
            } else {
                self.others += n;
            }
        }
        self.others += other.others;
        self.total += other.total;
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The line for a person, or None when no firewall line was skipped: how many, the most
    /// common prefixes, and the option that reads them, e.g.
    /// `1,234 firewall lines with other prefixes were skipped ([UFW BLOCK] 1,200, [UFW ALLOW] 34): add --rules ufw`.
    /// Prefixes are log text: control characters are shown escaped.
    pub fn describe(&self) -> Option<String> {
        if self.total == 0 {
            return None;
        }
        let mut top: Vec<(&[u8], u64)> = self.counts.iter().map(|(p, n)| (&p[..], *n)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let shown: Vec<String> =
            top.iter().take(3).map(|(p, n)| format!("{} {}", printable(p), crate::units::group_digits(*n))).collect();
        let more = if top.len() > 3 || self.others > 0 { ", ..." } else { "" };
        let has = |word: &str| top.iter().any(|(p, _)| contains_ignore_case(p, word.as_bytes()));
        let hint = if has("UFW") {
            "add --rules ufw (or rules = ufw in /etc/ipta.conf)".to_string()
        } else if has("Shorewall") {
            "add --rules shorewall (or rules = shorewall in /etc/ipta.conf)".to_string()
        } else {
            "add --rules any to read every netfilter line, or --rule-regex REGEX for these prefixes \
             (or rules = any / rule_regex = REGEX in /etc/ipta.conf)"
                .to_string()
        };
        Some(format!(
            "{} firewall line{} with other prefixes {} skipped ({}{}): {}",
            crate::units::group_digits(self.total),
            if self.total == 1 { "" } else { "s" },
            if self.total == 1 { "was" } else { "were" },
            shown.join(", "),
            more,
            hint
        ))
    }
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}


/// The prefix as text, empty shown as `(none)`, control characters and bytes that are not
/// UTF-8 escaped (log text is untrusted on a terminal too).
fn printable(p: &[u8]) -> String {
    if p.is_empty() {
        return "(no prefix)".into();
    }
    let mut out = String::new();
    for c in String::from_utf8_lossy(p).chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_common_prefixes_and_the_option_are_named() {
        let mut s = SkippedPrefixes::default();
        for _ in 0..1200 {
            s.add(b"[UFW BLOCK]");
        }
        for _ in 0..34 {
            s.add(b"[UFW ALLOW]");
        }
        assert_eq!(
            s.describe().unwrap(),
            "1,234 firewall lines with other prefixes were skipped ([UFW BLOCK] 1,200, [UFW ALLOW] 34): \
             add --rules ufw (or rules = ufw in /etc/ipta.conf)"
        );
        let mut f = SkippedPrefixes::default();
        f.add(b"\"filter_IN_public_REJECT: \"");
        let d = f.describe().unwrap();
        assert!(d.starts_with("1 firewall line with other prefixes was skipped"), "{d}");
        assert!(d.contains("--rules any"), "{d}");
        assert_eq!(SkippedPrefixes::default().describe(), None);
    }

    #[test]
    fn the_tally_stays_bounded_and_merges() {
        let mut s = SkippedPrefixes::default();
        for i in 0..1000 {
            s.add(format!("P{i}\x1b[31m").as_bytes());
        }
        assert_eq!(s.counts.len(), MAX_KINDS);
        assert_eq!(s.total(), 1000);
        assert_eq!(s.others, 1000 - MAX_KINDS as u64);
        let d = s.describe().unwrap();
        assert!(!d.contains('\x1b') && d.contains("\\u{1b}"), "{d}");
        let mut t = SkippedPrefixes::default();
        t.merge(&s);
        t.merge(&s);
        assert_eq!(t.total(), 2000);
    }
}
