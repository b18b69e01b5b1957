//! Flags and settings turned into what each step needs: the parser's options, the importer's,
//! the analyzer's, the live view's. A flag wins over its config key, the config key over the
//! default; each rule is written here once, so `ipta --import`, `--scan`, `--follow` and
//! `--analyze` read the same settings the same way (and ipta-ingest reads the keys through the
//! same [`crate::config::Keys`]).

use std::path::PathBuf;

use super::{Cli, Format};
use crate::config::Settings;
use crate::parse::{ActionRules, ParseOptions};
use crate::record::Timestamp;
use crate::report::{self, rdns};

/// One invocation's flags and settings.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    pub cli: &'a Cli,
    pub settings: &'a Settings,
}

impl<'a> Options<'a> {
    pub fn new(cli: &'a Cli, settings: &'a Settings) -> Self {
        Options { cli, settings }
    }

    pub fn format(&self) -> Format {
        self.cli.format.unwrap_or_default()
    }

    /// Which lines are ipta's: `--rules`/`--rule-regex`/`--any-tag`, else the config keys.
    pub fn rules(&self) -> Result<ActionRules, String> {
        let c = self.cli;
        self.settings.keys.action_rules(&c.rules, c.rule_regex.as_deref(), c.any_tag).map_err(|e| format!("--rules: {e}"))
    }

    /// The parser's options for input whose year-less stamps are read near `reference`.
    pub fn parse(&self, reference: Timestamp) -> Result<ParseOptions, String> {
        Ok(ParseOptions {
            reference,
            year: self.cli.year,
            tz: self.settings.keys.time_zone(self.cli.tz.as_deref()),
            rules: self.rules()?,
        })
    }

    /// The importer's options; `progress` when stderr is a terminal.
    pub fn import(&self, now: Timestamp, progress: bool) -> Result<crate::import::ImportOptions, String> {
        let p = self.parse(now)?;
        Ok(crate::import::ImportOptions { year: p.year, tz: p.tz, rules: p.rules, progress, ..Default::default() })
    }

    /// Reverse DNS: `--ttl`, else the key `ttl`, else the default lifetime.
    pub fn dns(&self) -> rdns::DnsSettings {
        let mut d = rdns::DnsSettings::default();
        if let Some(t) = self.cli.ttl.or(self.settings.keys.ttl_hours) {
            d.ttl_hours = t;
        }
        d
    }

    /// The analyzer's options; `--since`/`--until` are read relative to `now`.
    pub fn analyze(&self, now: Timestamp) -> Result<report::AnalyzeOptions, String> {
        let c = self.cli;
        let time = |s: &Option<String>| {
            s.as_deref().map(|t| report::parse_time_arg(t, now).map_err(|e| format!("{t:?}: {e}"))).transpose()
        };
        let mut opts = report::AnalyzeOptions {
            limit: c.limit.unwrap_or(10) as usize,
            no_local: c.no_local,
            no_accept: c.no_accept,
            since: time(&c.since)?,
            until: time(&c.until)?,
            host: c.host.clone(),
            rdns: c.rdns,
            // A mail carries the page (and the text report beside it).
            format: match (self.cli.format, &c.mail_to) {
                (None, Some(_)) => report::Format::Html,
                _ => report_format(self.format()),
            },
            ..Default::default()
        };
        if !c.module.is_empty() {
            opts.modules = report::Module::parse_list(&c.module.join(",")).map_err(|e| format!("--module: {e}"))?;
        }
        if let Some(n) = c.scan_threshold.or(self.settings.keys.scan_threshold) {
            opts.scan_threshold = n;
        }
        Ok(opts)
    }

    /// The mailer of `--mail-to`: the key `sendmail`, else /usr/sbin/sendmail.
    pub fn sendmail(&self) -> PathBuf {
        self.settings.keys.sendmail.clone().unwrap_or_else(|| report::mail::DEFAULT_SENDMAIL.into())
    }

    /// The fan-out directory viewers attach to: `--follow-dir`, else the key, else the default.
    pub fn follow_dir(&self) -> PathBuf {
        self.settings
            .keys
            .follow_dir(self.cli.follow_dir.as_deref())
            .unwrap_or_else(|| crate::follow::DEFAULT_FOLLOW_DIR.into())
    }

    /// The live view's options.
    pub fn follow(&self, now: Timestamp) -> Result<crate::follow::FollowOptions, String> {
        let c = self.cli;
        Ok(crate::follow::FollowOptions {
            no_header: c.no_header,
            no_counter: c.no_counter,
            no_local: c.no_local,
            no_accept: c.no_accept,
            rdns: c.rdns,
            format: if self.format() == Format::Json {
                crate::follow::FollowFormat::Json
            } else {
                crate::follow::FollowFormat::Text
            },
            width: None,
            parse: self.parse(now)?,
            follow_dir: self.follow_dir(),
        })
    }
}

/// The report's format for a `--format` value.
pub fn report_format(f: Format) -> report::Format {
    match f {
        Format::Text => report::Format::Table,
        Format::Json => report::Format::Json,
        Format::Csv => report::Format::Csv,
        Format::Html => report::Format::Html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        let v = std::iter::once("ipta").chain(args.iter().copied()).map(std::ffi::OsString::from);
        Cli::try_parse_from(super::super::normalize_args(v)).unwrap()
    }

    fn settings(lines: &[(&str, &str)]) -> Settings {
        let mut s = Settings::default();
        for (k, v) in lines {
            assert_eq!(s.keys.set(k, v), Ok(true), "{k}");
        }
        s
    }

    const NOW: Timestamp = Timestamp(1_700_000_000_000_000);

    #[test]
    fn config_keys_apply_when_no_flag_is_given() {
        let s = settings(&[
            ("rules", "ufw"),
            ("tz", "Europe/Berlin"),
            ("scan_threshold", "30"),
            ("ttl", "12"),
            ("follow_dir", "/srv/fan"),
        ]);
        let c = cli(&["-a"]);
        let o = Options::new(&c, &s);
        let p = o.parse(NOW).unwrap();
        assert!(p.rules.ufw && !p.rules.shorewall);
        assert_eq!(p.tz.as_deref(), Some("Europe/Berlin"));
        assert_eq!(o.analyze(NOW).unwrap().scan_threshold, 30);
        assert_eq!(o.dns().ttl_hours, 12);
        assert_eq!(o.follow_dir(), PathBuf::from("/srv/fan"));
        let i = o.import(NOW, false).unwrap();
        assert!(i.rules.ufw && i.tz.as_deref() == Some("Europe/Berlin"));
    }

    #[test]
    fn flags_win_over_config_keys() {
        let s = settings(&[("rules", "ufw"), ("tz", "Europe/Berlin"), ("scan_threshold", "30"), ("ttl", "12")]);
        let c = cli(&[
            "-a", "--rules", "shorewall", "--tz", "UTC", "--scan-threshold", "5", "--ttl", "1", "--follow-dir", "/x",
            "--since", "24h", "--format", "json", "-l", "3",
        ]);
        let o = Options::new(&c, &s);
        let p = o.parse(NOW).unwrap();
        assert!(!p.rules.ufw && p.rules.shorewall);
        assert_eq!(p.tz.as_deref(), Some("UTC"));
        let a = o.analyze(NOW).unwrap();
        assert_eq!((a.scan_threshold, a.limit), (5, 3));
        assert_eq!(a.since, Some(Timestamp(NOW.0 - 86_400_000_000)));
        assert_eq!(a.format, report::Format::Json);
        assert_eq!(o.dns().ttl_hours, 1);
        assert_eq!(o.follow_dir(), PathBuf::from("/x"));
    }

    #[test]
    fn defaults_without_flags_or_keys() {
        let s = Settings::default();
        let c = cli(&["-a"]);
        let o = Options::new(&c, &s);
        assert_eq!(o.follow_dir(), PathBuf::from(crate::follow::DEFAULT_FOLLOW_DIR));
        assert_eq!(o.analyze(NOW).unwrap().scan_threshold, report::AnalyzeOptions::default().scan_threshold);
        assert_eq!(o.dns().ttl_hours, rdns::DnsSettings::default().ttl_hours);
        assert_eq!(o.format(), Format::Text);
        assert_eq!(o.sendmail(), PathBuf::from("/usr/sbin/sendmail"));
    }

    #[test]
    fn a_mail_is_html_unless_told_otherwise() {
        let s = settings(&[("sendmail", "/opt/mta/sendmail")]);
        let c = cli(&["-a", "--mail-to", "root"]);
        let o = Options::new(&c, &s);
        assert_eq!(o.analyze(NOW).unwrap().format, report::Format::Html);
        assert_eq!(o.sendmail(), PathBuf::from("/opt/mta/sendmail"));
        let c = cli(&["-a", "--format", "html", "-o", "r.html"]);
        assert_eq!(Options::new(&c, &s).analyze(NOW).unwrap().format, report::Format::Html);
    }
}
