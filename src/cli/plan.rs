//! What one `ipta` invocation does: the steps its flags ask for, in the original's order
//! (setup commands, clear, import, analyze, and follow, which does not end, last), and the
//! checks that can be made before the first step runs, so that `ipta -c -i FILE -a --since x`
//! does not clear the table and then fail on a typo.

use std::path::PathBuf;

use super::{Cli, Format};
use crate::parse::ActionRules;
use crate::record::Timestamp;
use crate::report;

/// One step, in execution order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    SaveDb,
    CreateDb,
    CreateTable(Option<String>),
    DeleteTable(String),
    DeleteAllTables,
    ListTables,
    Scan(PathBuf),
    DnsCreateTable,
    DnsPrune,
    Clear,
    Import(Vec<PathBuf>),
    Expire(String),
    Analyze,
    DnsDump,
    AnalyzeInteractive,
    Follow(Option<PathBuf>),
}

/// The steps the flags ask for, in execution order; empty when there is nothing to do.
pub fn plan(c: &Cli) -> Vec<Step> {
    let flags = [
        (c.save_db, Step::SaveDb),
        (c.create_db, Step::CreateDb),
        (c.delete_all_tables, Step::DeleteAllTables),
        (c.list_tables, Step::ListTables),
        (c.dns_create_table, Step::DnsCreateTable),
        (c.dns_prune, Step::DnsPrune),
        (c.clear, Step::Clear),
        (c.analyze, Step::Analyze),
        (c.dns_dump, Step::DnsDump),
        (c.analyze_interactive, Step::AnalyzeInteractive),
    ];
    let with_values = [
        c.create_table.clone().map(Step::CreateTable),
        c.delete_table.clone().map(Step::DeleteTable),
        c.scan.clone().map(Step::Scan),
        (!c.import.is_empty()).then(|| Step::Import(c.import.clone())),
        c.expire.clone().map(Step::Expire),
        c.follow.clone().map(Step::Follow),
    ];
    let mut steps: Vec<Step> = flags.into_iter().filter(|(on, _)| *on).map(|(_, s)| s).collect();
    steps.extend(with_values.into_iter().flatten());
    steps.sort_by_key(order);
    steps
}

/// A step's place in a run.
fn order(s: &Step) -> u8 {
    match s {
        Step::SaveDb => 0,
        Step::CreateDb => 1,
        Step::CreateTable(_) => 2,
        Step::DeleteTable(_) => 3,
        Step::DeleteAllTables => 4,
        Step::ListTables => 5,
        Step::Scan(_) => 6,
        Step::DnsCreateTable => 7,
        Step::DnsPrune => 8,
        Step::Clear => 9,
        Step::Import(_) => 10,
        Step::Expire(_) => 11,
        Step::Analyze => 12,
        Step::DnsDump => 13,
        Step::AnalyzeInteractive => 14,
        Step::Follow(_) => 15,
    }
}

/// Checks the flags' values that need no settings and no database; the error names the flag.
pub fn validate(c: &Cli, now: Timestamp) -> Result<(), String> {
    let mut rules = ActionRules::default();
    for p in &c.rules {
        rules.add_preset(p).map_err(|e| format!("--rules: {e}"))?;
    }
    if let Some(re) = &c.rule_regex {
        rules.regex = Some(re.clone());
        crate::parse::rules::Rules::new(&rules).map_err(|e| format!("--rule-regex: {e}"))?;
    }
    if let Some(tz) = &c.tz {
        crate::parse::time::Zone::parse(Some(tz)).map_err(|e| format!("--tz: {e}"))?;
    }
    for t in [&c.since, &c.until].into_iter().flatten() {
        report::parse_time_arg(t, now).map_err(|e| format!("--since/--until {t:?}: {e}"))?;
    }
    if !c.module.is_empty() {
        report::Module::parse_list(&c.module.join(",")).map_err(|e| format!("--module: {e}"))?;
    }
    if let Some(a) = &c.expire {
        crate::units::parse_age(a).map_err(|e| format!("--expire {a:?}: {e}"))?;
    }
    if c.scan.is_some() && c.format == Some(Format::Csv) {
        return Err("--scan prints text or json, not csv".into());
    }
    if c.format == Some(Format::Html) {
        let other = [(c.scan.is_some(), "--scan"), (c.list_tables, "--list-tables"), (c.follow.is_some(), "--follow")];
        if let Some((_, flag)) = other.iter().find(|(on, _)| *on) {
            return Err(format!("--format html is for --analyze; {flag} prints text, json or csv"));
        }
    }
    for (given, flag) in [(c.output.is_some(), "--output"), (c.mail_to.is_some(), "--mail-to")] {
        if given && !c.analyze {
            return Err(format!("{flag} writes the report of --analyze (-a): add -a"));
        }
    }
    if let Some(to) = &c.mail_to {
        crate::report::mail::check_address(to).map_err(|e| format!("--mail-to {to:?}: {e}"))?;
        if c.format.is_some_and(|f| f != Format::Html) {
            return Err("--mail-to sends the HTML page with the text report beside it: leave out --format or say --format html".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        let v = std::iter::once("ipta").chain(args.iter().copied()).map(std::ffi::OsString::from);
        Cli::try_parse_from(super::super::normalize_args(v)).unwrap()
    }

    #[test]
    fn steps_run_in_the_originals_order_whatever_the_flags_order() {
        let c = cli(&["-a", "-f", "-i", "x.log", "-c", "-ct", "--expire", "30d", "-lt", "-s"]);
        assert_eq!(
            plan(&c),
            vec![
                Step::SaveDb,
                Step::CreateTable(None),
                Step::ListTables,
                Step::Clear,
                Step::Import(vec!["x.log".into()]),
                Step::Expire("30d".into()),
                Step::Analyze,
                Step::Follow(None),
            ]
        );
        assert!(plan(&cli(&["-d", "db"])).is_empty());
    }

    #[test]
    fn mistakes_are_found_before_anything_runs() {
        let now = Timestamp(1_700_000_000_000_000);
        for (args, says) in [
            (&["--rules", "pf", "-a"][..], "--rules"),
            (&["--rule-regex", "X-([A-Z]+)", "-a"], "--rule-regex"),
            (&["--tz", "Nowhere/Land", "-a"], "--tz"),
            (&["--since", "yesterdayish", "-a"], "--since"),
            (&["--module", "nope", "-a"], "--module"),
            (&["--expire", "6m"], "--expire"),
            (&["--scan", "-", "--format", "csv"], "--scan"),
            (&["-lt", "--format", "html"], "--list-tables"),
            (&["-o", "r.html", "-lt"], "add -a"),
            (&["--mail-to", "root"], "add -a"),
            (&["-a", "--mail-to", "root\nBcc: x@y"], "printable ASCII"),
            (&["-a", "--mail-to", "root", "--format", "json"], "--format html"),
        ] {
            let e = validate(&cli(args), now).unwrap_err();
            assert!(e.contains(says), "{args:?}: {e}");
        }
        validate(&cli(&["-a", "--since", "24h", "--rules", "ufw", "--tz", "UTC"]), now).unwrap();
        validate(&cli(&["-a", "--format", "html", "-o", "r.html", "--mail-to", "root"]), now).unwrap();
        validate(&cli(&["-a", "--format", "csv", "-o", "r.csv"]), now).unwrap();
    }
}
