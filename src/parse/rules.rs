//! Which lines are ipta's, and what action they mean: the original's `IPT: <ACTION>` rule,
//! the UFW and Shorewall presets, a user regex, and `any`.
//!
//! Rules look only at the prefix: the bytes between the end of the syslog header and the
//! netfilter fields (`IN=`). A rule's match decides where the prefix (and so the message and
//! its de-duplication hash) starts.

use memchr::memmem;
use regex::bytes::{CaptureLocations, Regex};

use super::ActionRules;

/// A rule's verdict on a prefix region: where the prefix starts and the action's byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matched {
    /// Prefix starts at `.0`; the action is `line[.1 .. .2]`.
    Action(usize, usize, usize),
    /// Prefix starts at `.0`; the action is the static word `.1` (`any` with no word: `LOG`).
    Static(usize, &'static str),
    /// The rule's marker is there but no action word follows it.
    NoAction,
    None,
}

/// The rules, compiled once per parser.
#[derive(Clone, Debug)]
pub struct Rules {
    ufw: bool,
    shorewall: bool,
    /// The user regex, the index of its `action` group, and reused capture slots (so a match
    /// allocates nothing).
    regex: Option<(Regex, usize, CaptureLocations)>,
    any: bool,
    ipt: memmem::Finder<'static>,
}

impl Rules {
    pub fn new(r: &ActionRules) -> Result<Rules, String> {
        let regex = match &r.regex {
            Some(src) => {
                let re = Regex::new(src).map_err(|e| format!("action regex: {e}"))?;
                let Some(group) = re.capture_names().position(|n| n == Some("action")) else {
                    return Err("action regex: it needs a capture group named `action`, e.g. `MYFW-(?P<action>[A-Z]+)`".into());
                };
                let locs = re.capture_locations();
                Some((re, group, locs))
            }
            None => None,
        };
        Ok(Rules { ufw: r.ufw, shorewall: r.shorewall, regex, any: r.any, ipt: memmem::Finder::new(b"IPT:") })
    }

    /// Matches the prefix region `line[start..end]` (end = the `IN=` anchor). Rules are tried
    /// in a fixed order: `IPT:`, UFW, Shorewall, the regex, `any`.
    pub fn match_prefix(&mut self, line: &[u8], start: usize, end: usize) -> Matched {
        match self.ipt_rule(line, start, end) {
            Matched::None => {}
            m => return m,
        }
        if self.ufw {
            match ufw_rule(line, start, end) {
                Matched::None => {}
                m => return m,
            }
        }
        if self.shorewall {
            match shorewall_rule(line, start, end) {
                Matched::None => {}
                m => return m,
            }
        }
        if let Some((re, group, locs)) = &mut self.regex {
            if let Some(m) = re.captures_read(locs, &line[start..end]) {
                return match locs.get(*group) {
                    Some((a, e)) if e > a => Matched::Action(start + m.start(), start + a, start + e),
                    _ => Matched::NoAction,
                };
            }
        }
        if self.any {
            return any_rule(line, start, end);
        }
        Matched::None
    }

    /// For a line without netfilter fields: does one of the marker rules (`IPT:`, UFW,
    /// Shorewall) claim it anyway? Such a line is ipta's but broken (cut short, garbled).
    pub fn claims(&self, line: &[u8], start: usize, end: usize) -> bool {
        self.ipt_rule(line, start, end) != Matched::None
            || (self.ufw && ufw_rule(line, start, end) != Matched::None)
            || (self.shorewall && shorewall_rule(line, start, end) != Matched::None)
    }

    /// The word `IPT:` (a separate word) followed by the action word.
    fn ipt_rule(&self, line: &[u8], start: usize, end: usize) -> Matched {
        let region = &line[start..end];
        for at in self.ipt.find_iter(region) {
            let before_ok = at == 0 || region[at - 1] == b' ';
            let after = at + 4;
            if !before_ok || (after < region.len() && region[after] != b' ') {
                continue;
            }
            let mut a = after;
            while a < region.len() && region[a] == b' ' {
                a += 1;
            }
            let mut e = a;
            while e < region.len() && region[e] != b' ' {
                e += 1;
            }
            if e == a {
                return Matched::NoAction;
            }
            return Matched::Action(start + at, start + a, start + e);
        }
        Matched::None
    }
}

/// `[UFW BLOCK]`, `[UFW ALLOW]`, `[UFW AUDIT]`, `[UFW LIMIT BLOCK]`, ...: the action is the
/// text between `[UFW ` and `]`.
fn ufw_rule(line: &[u8], start: usize, end: usize) -> Matched {
    let region = &line[start..end];
    let Some(at) = memmem::find(region, b"[UFW ") else {
        return Matched::None;
    };
    let a = at + 5;
    match memchr::memchr(b']', &region[a..]) {
        Some(0) | None => Matched::NoAction,
        Some(n) => Matched::Action(start + at, start + a, start + a + n),
    }
}

/// `Shorewall:<chain>:<ACTION>:` (glued to `IN=`).
fn shorewall_rule(line: &[u8], start: usize, end: usize) -> Matched {
    let region = &line[start..end];
    let Some(at) = memmem::find(region, b"Shorewall:") else {
        return Matched::None;
    };
    let chain = at + 10;
    let Some(c) = memchr::memchr(b':', &region[chain..]) else {
        return Matched::NoAction;
    };
    let a = chain + c + 1;
    let e = memchr::memchr2(b':', b' ', &region[a..]).map_or(region.len(), |n| a + n);
    if e == a {
        return Matched::NoAction;
    }
    Matched::Action(start + at, start + a, start + e)
}

/// Any prefix: the verdict word it names (see [`verdict`]), else its last word without
/// surrounding brackets, parentheses, quotes and a trailing `:`; `LOG` when the prefix is empty.
fn any_rule(line: &[u8], start: usize, end: usize) -> Matched {
    let region = &line[start..end];
    if let Some(v) = verdict(region) {
        return Matched::Static(start, v);
    }
    let mut e = region.len();
    while e > 0 && matches!(region[e - 1], b' ' | b':' | b']' | b')' | b'"' | b'\'') {
        e -= 1;
    }
    let mut a = e;
    while a > 0 && region[a - 1] != b' ' {
        a -= 1;
    }
    while a < e && matches!(region[a], b'[' | b'(' | b'"' | b'\'') {
        a += 1;
    }
    if a == e {
        return Matched::Static(start, "LOG");
    }
    Matched::Action(start, start + a, start + e)
}

/// The words that name what a firewall did with a packet, in their forms seen in log prefixes,
/// each with the verdict it is stored as. Compared without regard to case.
const VERDICTS: &[(&[u8], &str)] = &[
    (b"DROP", "DROP"),
    (b"DROPPED", "DROP"),
    (b"DROPPING", "DROP"),
    (b"REJECT", "REJECT"),
    (b"REJECTED", "REJECT"),
    (b"REJECTING", "REJECT"),
    (b"ACCEPT", "ACCEPT"),
    (b"ACCEPTED", "ACCEPT"),
    (b"ACCEPTING", "ACCEPT"),
    (b"BLOCK", "BLOCK"),
    (b"BLOCKED", "BLOCK"),
    (b"BLOCKING", "BLOCK"),
    (b"DENY", "DENY"),
    (b"DENIED", "DENY"),
    (b"ALLOW", "ALLOW"),
    (b"ALLOWED", "ALLOW"),
    (b"INVALID", "INVALID"),
];

/// The verdict a prefix names: the last verdict word in it, where a word is a run of ASCII
/// letters (so `filter_IN_public_REJECT`, `DROP(src wan)`, `"Dropped: "` and `InputDrop` all
/// have one, and `dropbear` or `Blockade` have none). `INVALID` (a connection state more than a
/// verdict) counts only when no other verdict word is there: `STATE_INVALID_DROP` is DROP.
/// Static words, no allocation; linear in the prefix's length.
pub fn verdict(prefix: &[u8]) -> Option<&'static str> {
    let mut found: Option<&'static str> = None;
    let mut i = 0;
    while i < prefix.len() {
        if !prefix[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        // A word ends at a byte that is not a letter, or where a lower-case letter is followed
        // by an upper-case one (`InputDrop`).
        let a = i;
        i += 1;
        while i < prefix.len()
            && prefix[i].is_ascii_alphabetic()
            && !(prefix[i].is_ascii_uppercase() && prefix[i - 1].is_ascii_lowercase())
        {
            i += 1;
        }
        let w = &prefix[a..i];
        if w.len() < 4 || w.len() > 9 {
            continue;
        }
        if let Some((_, v)) = VERDICTS.iter().find(|(f, _)| f.eq_ignore_ascii_case(w)) {
            if *v != "INVALID" || !matches!(found, Some(f) if f != "INVALID") {
                found = Some(v);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(r: &mut Rules, s: &str) -> Option<String> {
        let b = s.as_bytes();
        match r.match_prefix(b, 0, b.len()) {
            Matched::Action(_, a, e) => Some(s[a..e].to_string()),
            Matched::Static(_, w) => Some(w.to_string()),
            Matched::NoAction => Some("<none>".into()),
            Matched::None => None,
        }
    }

    #[test]
    fn rules() {
        let mut all = Rules::new(&ActionRules { ufw: true, shorewall: true, regex: None, any: false, other_tags: false }).unwrap();
        assert_eq!(act(&mut all, "IPT: DROP "), Some("DROP".into()));
        assert_eq!(act(&mut all, "x IPT:  CBLK "), Some("CBLK".into()));
        assert_eq!(act(&mut all, "IPT:DROP "), None);
        assert_eq!(act(&mut all, "XIPT: DROP "), None);
        assert_eq!(act(&mut all, "IPT: "), Some("<none>".into()));
        assert_eq!(act(&mut all, "[UFW LIMIT BLOCK] "), Some("LIMIT BLOCK".into()));
        assert_eq!(act(&mut all, "Shorewall:net2fw:DROP:"), Some("DROP".into()));
        assert_eq!(act(&mut all, "Shorewall:net2fw:"), Some("<none>".into()));
        let mut any = Rules::new(&ActionRules { any: true, ..Default::default() }).unwrap();
        assert_eq!(act(&mut any, ""), Some("LOG".into()));
        assert_eq!(act(&mut any, "[WAN_IN-default-D]"), Some("WAN_IN-default-D".into()));
        assert_eq!(act(&mut any, "iptables DROP_INPUT: "), Some("DROP".into()));
        assert_eq!(act(&mut any, "\"filter_IN_public_REJECT: \""), Some("REJECT".into()));
        assert_eq!(act(&mut any, "DROP(src wan)"), Some("DROP".into()));
        assert_eq!(act(&mut any, "DROP INPUT: "), Some("DROP".into()));
        assert_eq!(act(&mut any, "nft Dropped: "), Some("DROP".into()));
        assert_eq!(act(&mut any, "STATE_INVALID_DROP: "), Some("DROP".into()));
        assert_eq!(act(&mut any, "DROP INVALID "), Some("DROP".into()));
        assert_eq!(act(&mut any, "invalid: "), Some("INVALID".into()));
        assert_eq!(act(&mut any, "fw denied "), Some("DENY".into()));
        assert_eq!(act(&mut any, "InputAllowed "), Some("ALLOW".into()));
        assert_eq!(act(&mut any, "dropbear-guard: "), Some("dropbear-guard".into()));
        assert_eq!(act(&mut any, "\"nft-in-log: \""), Some("nft-in-log".into()));
        assert_eq!(act(&mut any, "(log only) "), Some("only".into()));
        let mut re = Rules::new(&ActionRules { regex: Some("FW-(?P<action>[A-Z]+)".into()), ..Default::default() }).unwrap();
        assert_eq!(act(&mut re, "x FW-REJECT "), Some("REJECT".into()));
        assert!(Rules::new(&ActionRules { regex: Some("FW-([A-Z]+)".into()), ..Default::default() }).is_err());
        assert!(Rules::new(&ActionRules { regex: Some("(".into()), ..Default::default() }).is_err());
    }
}
