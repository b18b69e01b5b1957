//! `ipta --analyze`: the analyzer modules, their options, and the rendering of their results
//! as tables, JSON, CSV or an HTML page ([`html`]), into stdout, a file written atomically
//! ([`output`]) or a mail ([`mail`]); `-ai` the interactive SQL prompt.
//!
//! [`run`] decides per module whether the summary tables (`store::summary`) can answer it (no
//! time window, no host, local traffic included: the all-time summaries hold exactly that) or
//! whether it must aggregate the packet table itself (every other case). A window (`--since`,
//! `--until`, `--host`) reads the hourly time buckets for what they hold (`bucketpass`) and
//! its packets, once, for the modules keyed by source ([`onepass`]). Both paths return the
//! same rows in the same order, which the tests check.

mod bucketpass;
pub mod html;
pub mod interactive;
pub mod mail;
pub mod onepass;
pub mod output;
pub mod query;
pub mod rdns;
pub mod render;

use std::io::Write;
use std::str::FromStr;

use crate::record::Timestamp;
use crate::store::StoreError;

pub use interactive::interactive;

/// What can go wrong while analyzing.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("query failed: {0}")]
    Sql(String),
    #[error("cannot write the report: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    BadOption(String),
}

impl From<mysql::Error> for ReportError {
    fn from(e: mysql::Error) -> Self {
        match &e {
            mysql::Error::MySqlError(me) if me.code == 1146 => {
                ReportError::Store(StoreError::MissingTable(me.message.clone()))
            }
            mysql::Error::IoError(_) | mysql::Error::CodecError(_) => {
                ReportError::Store(StoreError::ConnectionLost(e.to_string()))
            }
            mysql::Error::DriverError(_) => ReportError::Store(StoreError::ConnectionLost(e.to_string())),
            _ => ReportError::Sql(e.to_string()),
        }
    }
}

/// One report of `--analyze`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Module {
    /// 1. Denied traffic (action != ACCEPT) by source, destination port, protocol, action.
    Denied,
    /// 2. ICMP traffic by source, destination, action.
    Icmp,
    /// 3. Most denied ports: by destination port, protocol, action.
    Ports,
    /// 4. Invalid packets (action INVALID) by source, destination port, protocol.
    Invalid,
    /// 5. Interface statistics: by input interface, action, protocol.
    Interfaces,
    /// 6. Denied packets per destination port and action, inbound only.
    Inbound,
    /// Port scans: sources that touched at least `scan_threshold` destination ports.
    Scans,
    /// Packets per hour (or day) by action, as a bar chart.
    Timeline,
    /// Top sources with first/last seen and their actions.
    Sources,
}

impl Module {
    /// Every module, in report order (the original's six first).
    pub const ALL: [Module; 9] = [
        Module::Denied,
        Module::Icmp,
        Module::Ports,
        Module::Invalid,
        Module::Interfaces,
        Module::Inbound,
        Module::Scans,
        Module::Timeline,
        Module::Sources,
    ];

    /// The name used by `--module` and as the JSON key.
    pub fn name(self) -> &'static str {
        match self {
            Module::Denied => "denied",
            Module::Icmp => "icmp",
            Module::Ports => "ports",
            Module::Invalid => "invalid",
            Module::Interfaces => "interfaces",
            Module::Inbound => "inbound",
            Module::Scans => "scans",
            Module::Timeline => "timeline",
            Module::Sources => "sources",
        }
    }

    /// The title line printed above the module's table.
    pub fn title(self) -> &'static str {
        match self {
            Module::Denied => "Denied traffic",
            Module::Icmp => "ICMP traffic",
            Module::Ports => "Most denied ports",
            Module::Invalid => "Invalid packets",
            Module::Interfaces => "Interface statistics",
            Module::Inbound => "Denied packets per destination port and action (inbound)",
            Module::Scans => "Port scans",
            Module::Timeline => "Timeline",
            Module::Sources => "Top sources",
        }
    }

    /// Parses a comma-separated module list (`ports,scans`); `all` selects every module.
    pub fn parse_list(s: &str) -> Result<Vec<Module>, String> {
        let mut v = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.eq_ignore_ascii_case("all") {
                v.extend(Module::ALL);
                continue;
            }
            v.push(part.parse()?);
        }
        v.sort();
        v.dedup();
        if v.is_empty() {
            return Err("no module given".into());
        }
        Ok(v)
    }
}

impl FromStr for Module {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let l = s.trim().to_ascii_lowercase();
        let m = match l.as_str() {
            "denied" | "1" => Module::Denied,
            "icmp" | "2" => Module::Icmp,
            "ports" | "3" => Module::Ports,
            "invalid" | "4" => Module::Invalid,
            "interfaces" | "iface" | "5" => Module::Interfaces,
            "inbound" | "6" => Module::Inbound,
            "scans" | "scan" => Module::Scans,
            "timeline" => Module::Timeline,
            "sources" | "top" => Module::Sources,
            _ => {
                let names: Vec<&str> = Module::ALL.iter().map(|m| m.name()).collect();
                return Err(format!("unknown module {s:?} (known: {})", names.join(", ")));
            }
        };
        Ok(m)
    }
}

/// Output format of the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Table,
    Json,
    Csv,
    /// One self-contained page ([`html`]).
    Html,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "table" | "text" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "html" => Ok(Format::Html),
            _ => Err(format!("unknown format {s:?} (table, json, csv or html)")),
        }
    }
}

/// What `--analyze` reports and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnalyzeOptions {
    /// Modules to run, in report order; empty means all.
    pub modules: Vec<Module>,
    /// Rows per module (`--limit`, default 10).
    pub limit: usize,
    /// Leave out packets that came in or went out on `lo`.
    pub no_local: bool,
    /// Leave out ACCEPTed packets.
    pub no_accept: bool,
    /// Only packets at or after this time (inclusive).
    pub since: Option<Timestamp>,
    /// Only packets before this time (exclusive).
    pub until: Option<Timestamp>,
    /// Only packets logged by this host (the syslog host name).
    pub host: Option<String>,
    /// Show names for the addresses of the rows shown.
    pub rdns: bool,
    pub format: Format,
    /// Distinct destination ports that make a source a port scanner (default 15).
    pub scan_threshold: u32,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            modules: Module::ALL.to_vec(),
            limit: 10,
            no_local: false,
            no_accept: false,
            since: None,
            until: None,
            host: None,
            rdns: false,
            format: Format::Table,
            scan_threshold: 15,
        }
    }
}

/// A fold of at least this many rows is announced on stderr (it takes seconds).
const FOLD_NOTICE_ROWS: u64 = 500_000;

/// A backlog of at least this many rows is folded with both lanes at once when a second
/// connection can be had (see [`build_with`]).
const PARALLEL_ROWS: u64 = 100_000;

/// Opens a second connection to the report's database, for folding the summaries' two lanes
/// at once (the server runs each connection on one core).
pub type Connect<'a> = &'a dyn Fn() -> Result<mysql::Conn, StoreError>;

/// Runs the selected modules on `table` and writes the report. An empty table or window is
/// reported as such and is not an error.
pub fn run(
    conn: &mut mysql::Conn,
    table: &str,
    opts: &AnalyzeOptions,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    run_with_dns(conn, table, opts, &rdns::DnsSettings::default(), out)
}

/// [`run`] with explicit reverse-DNS settings (cache table, TTL, timeout).
pub fn run_with_dns(
    conn: &mut mysql::Conn,
    table: &str,
    opts: &AnalyzeOptions,
    dns: &rdns::DnsSettings,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    let report = build(conn, table, opts, dns)?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    render(&report, opts, tty, out)
}

/// The report of `opts` on `table`, ready to render (in any format, any number of times: the
/// mail renders it as text and as a page).
pub fn build(
    conn: &mut mysql::Conn,
    table: &str,
    opts: &AnalyzeOptions,
    dns: &rdns::DnsSettings,
) -> Result<query::Report, ReportError> {
    build_with(conn, None, table, opts, dns)
}

/// [`build`]; a large fold (building the summaries, a backlog of [`PARALLEL_ROWS`] or more)
/// runs both lanes at once when `second` gives a second connection. Without one, or when it
/// fails, the fold runs on `conn` alone.
pub fn build_with(
    conn: &mut mysql::Conn,
    second: Option<Connect<'_>>,
    table: &str,
    opts: &AnalyzeOptions,
    dns: &rdns::DnsSettings,
) -> Result<query::Report, ReportError> {
    if let (Some(s), Some(u)) = (opts.since, opts.until) {
        if u <= s {
            return Err(ReportError::BadOption(format!(
                "--until ({}) is not after --since ({})",
                u.to_rfc3339(),
                s.to_rfc3339()
            )));
        }
    }
    crate::store::validate_identifier(table)?;
    // A table of a newer ipta (or not ipta's at all) is refused, an older one upgraded, before
    // anything is read from it.
    crate::store::schema::check_table(conn, table)?;
    // Windows (--since, --until, --host) read the summaries' time buckets too; --no-local cannot.
    if !opts.no_local && table.len() <= crate::store::summary::MAX_TABLE_LEN {
        // Summaries make the report fast; a table created before them (or by an older ipta,
        // whose set lacks a table of this one's) gets them once, here, and the analyzer folds
        // in what the writers added since the last fold. Without the privilege to create them
        // the report still works, from the packet table.
        use crate::store::summary;
        let backlog = summary::backlog(conn, table)?;
        let incomplete = backlog.is_some() && !summary::present(conn, table)?;
        let other = || second.and_then(|c| c().ok());
        let create = |conn: &mut mysql::Conn, verb: &str, why: &str| {
            eprintln!("ipta: {verb} the summary tables of `{table}` ({why}once; writers go on meanwhile)...");
            if let Err(e) = summary::create_with(conn, other().as_mut(), table) {
                eprintln!("ipta: cannot build summary tables ({e}); analyzing the packet table directly");
            }
        };
        match backlog {
            _ if incomplete => create(conn, "rebuilding", "an older set; "),
            None if table_exists(conn, table)? => create(conn, "building", ""),
            Some(rows) if rows >= PARALLEL_ROWS => {
                if rows >= FOLD_NOTICE_ROWS {
                    eprintln!("ipta: adding about {rows} new rows to the summary tables of `{table}`...");
                }
                // Any failure here is met again by the analyzer's own fold, which reports it.
                if let Some(mut o) = other() {
                    let _ = summary::fold_parallel(conn, &mut o, table, summary::FOLD_CHUNK_ROWS);
                }
            }
            _ => {}
        }
    }
    // A window reads its packets on a second connection, beside the rest of the report.
    let mut report = query::analyze_beside(conn, second, table, opts, query::Path::Auto)?;
    if let Some(note) = &report.summary_note {
        eprintln!("ipta: {note}");
    }
    if opts.rdns && report.packets > 0 {
        let resolver = rdns::Resolver::new(dns.clone());
        render::resolve_names(&mut report, &resolver, conn);
    }
    Ok(report)
}

/// Writes `report` in `opts.format`; `tty`: the table goes to a terminal (UTF-8 borders).
pub fn render(report: &query::Report, opts: &AnalyzeOptions, tty: bool, out: &mut dyn Write) -> Result<(), ReportError> {
    match opts.format {
        Format::Table => render::table(report, out, tty)?,
        Format::Json => render::json(report, out)?,
        Format::Csv => render::csv(report, out)?,
        Format::Html => {
            let nonce = html::new_nonce();
            let info = html::PageInfo { opts, generated: Timestamp(chrono::Utc::now().timestamp_micros()), nonce: &nonce };
            html::page(report, &info, out)?
        }
    }
    out.flush()?;
    Ok(())
}

fn table_exists(conn: &mut mysql::Conn, table: &str) -> Result<bool, ReportError> {
    use mysql::prelude::Queryable;
    let n: Option<u64> = conn.exec_first(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        (table,),
    )?;
    Ok(n.unwrap_or(0) > 0)
}

/// Parses `--since`/`--until`: a duration back from `now` (`90s`, `30m`, `24h`, `7d`, `2w`),
/// `now`, a date (`2026-11-01`, midnight), a date and time (`2026-11-01 10:00`,
/// `2026-11-01T10:00:30`) or RFC 3339 (`2026-11-01T10:00:00+01:00`). Times without an
/// offset are UTC, like the stored times.
pub fn parse_time_arg(s: &str, now: Timestamp) -> Result<Timestamp, String> {
    use chrono::{NaiveDate, NaiveDateTime};
    let t = s.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    let bytes = t.as_bytes();
    if bytes.len() >= 2 && bytes[..bytes.len() - 1].iter().all(u8::is_ascii_digit) {
        let n: i64 = t[..t.len() - 1]
            .parse()
            .map_err(|_| format!("bad duration {s:?}"))?;
        let unit: i64 = match bytes[bytes.len() - 1].to_ascii_lowercase() {
            b's' => 1,
            b'm' => 60,
            b'h' => 3600,
            b'd' => 86_400,
            b'w' => 7 * 86_400,
            _ => return Err(format!("bad duration {s:?}: use s, m, h, d or w, e.g. 24h")),
        };
        let us = n
            .checked_mul(unit)
            .and_then(|x| x.checked_mul(1_000_000))
            .ok_or_else(|| format!("duration {s:?} is too long"))?;
        return Ok(Timestamp(now.0 - us));
    }
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(Timestamp(d.timestamp_micros()));
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let dt = d.and_hms_opt(0, 0, 0).expect("midnight exists");
        return Ok(Timestamp(dt.and_utc().timestamp_micros()));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(Timestamp(dt.and_utc().timestamp_micros()));
        }
    }
    Err(format!(
        "cannot read time {s:?}: use 24h, 7d, 30m, 2026-11-01, '2026-11-01 10:00' or RFC 3339"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp(chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros())
    }

    #[test]
    fn time_args() {
        let now = ts("2026-11-25T10:00:00Z");
        assert_eq!(parse_time_arg("24h", now).unwrap(), ts("2026-11-24T10:00:00Z"));
        assert_eq!(parse_time_arg("7d", now).unwrap(), ts("2026-11-18T10:00:00Z"));
        assert_eq!(parse_time_arg("30m", now).unwrap(), ts("2026-11-25T09:30:00Z"));
        assert_eq!(parse_time_arg("2w", now).unwrap(), ts("2026-11-11T10:00:00Z"));
        assert_eq!(parse_time_arg("now", now).unwrap(), now);
        assert_eq!(parse_time_arg("2026-11-01", now).unwrap(), ts("2026-11-01T00:00:00Z"));
        assert_eq!(parse_time_arg("2026-11-01 10:00", now).unwrap(), ts("2026-11-01T10:00:00Z"));
        assert_eq!(parse_time_arg("2026-11-01T10:00:30", now).unwrap(), ts("2026-11-01T10:00:30Z"));
        assert_eq!(
            parse_time_arg("2026-11-01T10:00:00+01:00", now).unwrap(),
            ts("2026-11-01T09:00:00Z")
        );
        assert!(parse_time_arg("yesterday", now).is_err());
        assert!(parse_time_arg("5x", now).is_err());
        assert!(parse_time_arg("2026-13-01", now).is_err());
        assert!(parse_time_arg("99999999999999999d", now).is_err());
    }

    #[test]
    fn module_lists() {
        assert_eq!(Module::parse_list("scans,ports").unwrap(), vec![Module::Ports, Module::Scans]);
        assert_eq!(Module::parse_list("all").unwrap().len(), 9);
        assert!(Module::parse_list("nope").is_err());
        assert!(Module::parse_list("").is_err());
        assert_eq!("JSON".parse::<Format>().unwrap(), Format::Json);
        assert!("xml".parse::<Format>().is_err());
    }
}
