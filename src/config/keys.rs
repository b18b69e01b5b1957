//! The settings that are not about the database, each parsed once into a typed value when the
//! files are read: which lines are ipta's (`rules`, `rule_regex`, `any_tag`), the zone of
//! stamps without one (`tz`), the fan-out directory (`follow_dir`), retention (`expire`), and
//! the report's knobs (`scan_threshold`, `ttl`), and the report mail's mailer and sender
//! (`sendmail`, `mail_from`). Both programs read them from here, so a value
//! means the same thing to `ipta --import` and to `ipta-ingest`, and a bad value is reported
//! once, with its file and line, before anything runs.

use std::path::PathBuf;
use std::time::Duration;

use crate::parse::ActionRules;

/// One key of this module: its name and what it means (README's table).
pub struct Key {
    pub key: &'static str,
    pub help: &'static str,
}

/// Every non-database key, documented in README.md.
pub const KEYS: &[Key] = &[
    Key { key: "rules", help: "presets of lines that are ipta's besides `IPT: `: ufw, shorewall, any (comma-separated)" },
    Key { key: "rule_regex", help: "a regex with a group named `action`, matched against the prefix" },
    Key { key: "any_tag", help: "yes: also lines of programs other than the kernel (default no)" },
    Key { key: "tz", help: "zone of stamps without one (default: the machine's)" },
    Key { key: "follow_dir", help: "fan-out directory of ipta-ingest and ipta --follow (default /run/ipta/follow)" },
    Key { key: "expire", help: "retention: packets older than this age are deleted, e.g. 30d (default: kept)" },
    Key { key: "scan_threshold", help: "ports a source must probe to be listed as a scan (default 15)" },
    Key { key: "ttl", help: "hours a cached reverse-DNS name stays valid (default 24)" },
    Key { key: "sendmail", help: "the mailer of --mail-to, run as `sendmail -t -oi` (default /usr/sbin/sendmail)" },
    Key { key: "mail_from", help: "From of the report mail (default: the mailer fills it in)" },
];

/// A retention age as written (`30d`) and as a duration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Age {
    pub text: String,
    pub duration: Duration,
}

/// The typed values of [`KEYS`]; `None`/empty means the key was not given.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    /// `rules`: preset names, validated (see `ActionRules::add_preset`).
    pub rules: Vec<String>,
    pub rule_regex: Option<String>,
    pub any_tag: bool,
    /// `tz`, validated as a zone.
    pub tz: Option<String>,
    /// `follow_dir`; an empty value names none.
    pub follow_dir: Option<PathBuf>,
    pub expire: Option<Age>,
    pub scan_threshold: Option<u32>,
    pub ttl_hours: Option<u32>,
    /// `sendmail`: an absolute path.
    pub sendmail: Option<PathBuf>,
    /// `mail_from`, checked as a header value.
    pub mail_from: Option<String>,
}

/// Why a value was refused (the caller adds the key, the value and where it was written).
pub type Why = String;

impl Keys {
    /// Sets `key` (normalised) from `value`. `Ok(false)`: not a key of this module.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, Why> {
        let v = value.trim();
        match key {
            "rules" => {
                let names: Vec<String> =
                    v.split(',').map(|x| x.trim().to_ascii_lowercase()).filter(|x| !x.is_empty()).collect();
                let mut probe = ActionRules::default();
                for n in &names {
                    probe.add_preset(n)?;
                }
                self.rules = names;
            }
            "rule_regex" => {
                let probe = ActionRules { regex: Some(value.to_string()), ..Default::default() };
                crate::parse::rules::Rules::new(&probe)?;
                self.rule_regex = (!value.is_empty()).then(|| value.to_string());
            }
            "any_tag" => self.any_tag = parse_bool(v)?,
            "tz" => {
                if !v.is_empty() {
                    crate::parse::time::Zone::parse(Some(v))?;
                }
                self.tz = (!v.is_empty()).then(|| v.to_string());
            }
            "follow_dir" => self.follow_dir = (!v.is_empty()).then(|| PathBuf::from(v)),
            "expire" => {
                let duration = crate::units::parse_age(v)?;
                self.expire = Some(Age { text: v.to_string(), duration });
            }
            "scan_threshold" => {
                self.scan_threshold = Some(v.parse().ok().filter(|&n| n > 0).ok_or("a number of ports, 1 or more")?)
            }
            "ttl" => self.ttl_hours = Some(v.parse().map_err(|_| "a number of hours")?),
            "sendmail" => {
                if !v.starts_with('/') {
                    return Err("the mailer's absolute path, e.g. /usr/sbin/sendmail".into());
                }
                self.sendmail = Some(PathBuf::from(v));
            }
            "mail_from" => {
                if !v.is_empty() {
                    crate::report::mail::check_address(v)?;
                }
                self.mail_from = (!v.is_empty()).then(|| v.to_string());
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Which lines are ipta's: the presets of `--rules` (`presets`) else the key `rules`, the
    /// pattern of `--rule-regex` (`regex`) else the key `rule_regex`, other programs' lines
    /// with `--any-tag` (`any_tag`) or the key. The error names the unknown preset.
    pub fn action_rules(&self, presets: &[String], regex: Option<&str>, any_tag: bool) -> Result<ActionRules, String> {
        let mut r = ActionRules { other_tags: any_tag || self.any_tag, ..Default::default() };
        for p in if presets.is_empty() { &self.rules } else { presets } {
            r.add_preset(p)?;
        }
        r.regex = regex.map(str::to_string).or_else(|| self.rule_regex.clone());
        Ok(r)
    }

    /// The zone of stamps without one: `--tz` (`flag`), else the key `tz`.
    pub fn time_zone(&self, flag: Option<&str>) -> Option<String> {
        flag.map(str::to_string).or_else(|| self.tz.clone())
    }

    /// The fan-out directory the settings name: `--follow-dir` (`flag`), else the key.
    pub fn follow_dir(&self, flag: Option<&std::path::Path>) -> Option<PathBuf> {
        flag.map(PathBuf::from).or_else(|| self.follow_dir.clone())
    }
}

fn parse_bool(v: &str) -> Result<bool, Why> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" | "" => Ok(false),
        _ => Err("yes or no".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_typed_once() {
        let mut k = Keys::default();
        let samples = [
            ("rules", "UFW, shorewall"),
            ("rule_regex", "MYFW-(?P<action>[A-Z]+)"),
            ("any_tag", "Yes"),
            ("tz", "Europe/Berlin"),
            ("follow_dir", "/run/x"),
            ("expire", "30d"),
            ("scan_threshold", "20"),
            ("ttl", "48"),
            ("sendmail", "/usr/local/bin/msmtp-send"),
            ("mail_from", "ipta <fw@example.org>"),
        ];
        // The samples cover the documented table, no more, no less.
        assert_eq!(samples.map(|(k, _)| k).to_vec(), KEYS.iter().map(|k| k.key).collect::<Vec<_>>());
        for (key, value) in samples {
            assert_eq!(k.set(key, value), Ok(true), "{key}");
        }
        assert_eq!(k.rules, ["ufw", "shorewall"]);
        assert!(k.any_tag);
        assert_eq!(k.expire.as_ref().map(|a| a.duration), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!((k.scan_threshold, k.ttl_hours), (Some(20), Some(48)));
        assert_eq!(k.follow_dir(None), Some(PathBuf::from("/run/x")));
        assert_eq!(k.time_zone(Some("UTC")).as_deref(), Some("UTC"));
        assert_eq!(k.sendmail, Some(PathBuf::from("/usr/local/bin/msmtp-send")));
        assert_eq!(k.mail_from.as_deref(), Some("ipta <fw@example.org>"));
        assert_eq!(k.set("colour", "blue"), Ok(false));
    }

    #[test]
    fn bad_values_say_why() {
        let mut k = Keys::default();
        for (key, value, says) in [
            ("rules", "ufw,pf", "unknown preset \"pf\""),
            ("rule_regex", "MYFW-([A-Z]+)", "named `action`"),
            ("rule_regex", "(", "regex"),
            ("any_tag", "maybe", "yes or no"),
            ("tz", "Mars/Olympus", ""),
            ("expire", "6m", "minutes or months"),
            ("scan_threshold", "0", "1 or more"),
            ("ttl", "a week", "hours"),
            ("sendmail", "sendmail", "absolute path"),
            ("mail_from", "a@b\u{7f}", "printable ASCII"),
        ] {
            let e = k.set(key, value).unwrap_err();
            assert!(e.contains(says), "{key} = {value}: {e}");
        }
        // Nothing was set by the refused values.
        assert!(k.rules.is_empty() && k.rule_regex.is_none() && k.tz.is_none() && k.expire.is_none());
        assert!(k.sendmail.is_none() && k.mail_from.is_none());
    }

    #[test]
    fn flags_win_over_keys() {
        let mut k = Keys::default();
        k.set("rules", "ufw").unwrap();
        k.set("rule_regex", "A-(?P<action>[A-Z]+)").unwrap();
        let r = k.action_rules(&[], None, false).unwrap();
        assert!(r.ufw && !r.shorewall && r.regex.as_deref() == Some("A-(?P<action>[A-Z]+)"));
        let r = k.action_rules(&["shorewall".into()], Some("B-(?P<action>X)"), true).unwrap();
        assert!(!r.ufw && r.shorewall && r.other_tags && r.regex.as_deref() == Some("B-(?P<action>X)"));
        assert!(k.action_rules(&["nope".into()], None, false).unwrap_err().contains("nope"));
    }
}
