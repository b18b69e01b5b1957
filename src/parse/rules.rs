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

/// Any prefix: the action is its last word, without surrounding `[` `]` and trailing `:`;
/// `LOG` when the prefix is empty.
fn any_rule(line: &[u8], start: usize, end: usize) -> Matched {
    let region = &line[start..end];
    let mut e = region.len();
    while e > 0 && matches!(region[e - 1], b' ' | b':' | b']') {
        e -= 1;
    }
    let mut a = e;
    while a > 0 && region[a - 1] != b' ' {
        a -= 1;
    }
    while a < e && region[a] == b'[' {
        a += 1;
    }
    if a == e {
        return Matched::Static(start, "LOG");
    }
    Matched::Action(start, start + a, start + e)
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
        assert_eq!(act(&mut any, "iptables DROP_INPUT: "), Some("DROP_INPUT".into()));
        let mut re = Rules::new(&ActionRules { regex: Some("FW-(?P<action>[A-Z]+)".into()), ..Default::default() }).unwrap();
        assert_eq!(act(&mut re, "x FW-REJECT "), Some("REJECT".into()));
        assert!(Rules::new(&ActionRules { regex: Some("FW-([A-Z]+)".into()), ..Default::default() }).is_err());
        assert!(Rules::new(&ActionRules { regex: Some("(".into()), ..Default::default() }).is_err());
    }
}
