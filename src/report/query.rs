//! The analyzer's queries: every module as rows of typed cells, computed either from the
//! summary tables (fast path), from the hourly time buckets plus the partial edge hours of the
//! packet table (windows and `--host`, for the modules whose keys the buckets hold: see
//! `Window`), or from the packet table (any filter).
//!
//! Every query is valid under ONLY_FULL_GROUP_BY: rows show only group keys, aggregates
//! (count, first/last seen, numbers of distinct values), never a column a group holds several
//! values of. Ties are broken by the key columns, in the same order on both paths.
//!
//! Top-N on a summary table walks the `nb` buckets (bit length of the count, indexed) from the
//! highest down, reading one bucket at a time with `ORDER BY n DESC LIMIT N`; once N rows are
//! collected no lower bucket can hold a larger count, so the walk stops. This reads a few
//! hundred rows at most, where `ORDER BY n DESC` without an index would sort the whole table.
//! The per-flow summary indexes the bucket after the action only: its walks name the actions
//! (`summary::flow_actions`) and read each bucket of all of them at once.

use std::collections::HashMap;

use mysql::prelude::Queryable;
use mysql::{Row, Value};

use super::bucketpass::BucketPass;
use super::onepass::trim_end_spaces;
use super::{AnalyzeOptions, Module, ReportError};
use crate::record::Timestamp;
use crate::store::summary;
use crate::store::value::{ts_value, value_ts};

/// One value of a report row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// A packet count or another count (ports, hosts).
    Count(u64),
    /// An address in `INET6_ATON` form; empty when the packet had none.
    Addr(Vec<u8>),
    /// A port; None for packets without ports (ICMP).
    Port(Option<u16>),
    Text(String),
    Time(Option<Timestamp>),
    /// Actions with their packet counts, largest first.
    Actions(Vec<(String, u64)>),
}

/// A column: its header in tables and CSV, and its key in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Col {
    pub header: &'static str,
    pub key: &'static str,
}

/// Where a section's rows came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Summary,
    Packets,
}

/// Bucket size of the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Hour,
    Day,
    /// Seven days, for windows of more than 120 days (years of logs stay a readable chart).
    Week,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Hour => "hour",
            Unit::Day => "day",
            Unit::Week => "week",
        }
    }
    fn micros(self) -> i64 {
        match self {
            Unit::Hour => 3_600_000_000,
            Unit::Day => 86_400_000_000,
            Unit::Week => 7 * 86_400_000_000,
        }
    }
}

/// Packets per time bucket and action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    pub unit: Unit,
    /// Actions, most packets first; `buckets[i].1[j]` counts `actions[j]`.
    pub actions: Vec<String>,
    /// Bucket start and counts, in time order, empty buckets included.
    pub buckets: Vec<(Timestamp, Vec<u64>)>,
}

/// One module's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub module: Module,
    pub columns: Vec<Col>,
    pub rows: Vec<Vec<Cell>>,
    pub timeline: Option<Timeline>,
    pub via: Via,
}

/// The whole report.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub table: String,
    /// Packets matching the filters (SUM of `repeat`).
    pub packets: u64,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
    /// The filters in words, for the header.
    pub filters: Vec<String>,
    pub scan_threshold: u32,
    pub sections: Vec<Section>,
    /// Names found by reverse DNS, by address bytes.
    pub names: HashMap<Vec<u8>, String>,
    /// Why the summaries could not be used, when they exist but failed (for stderr).
    pub summary_note: Option<String>,
}

/// Which path to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Summaries where they can answer, the packet table otherwise.
    Auto,
    /// Always the packet table (tests compare both paths).
    Packets,
}

const COUNT: Col = Col { header: "Count", key: "count" };
const SOURCE: Col = Col { header: "Source", key: "src" };
const DEST: Col = Col { header: "Destination", key: "dst" };
const PORT: Col = Col { header: "Port", key: "dpt" };
const PROTO: Col = Col { header: "Proto", key: "proto" };
const ACTION: Col = Col { header: "Action", key: "action" };
const IFACE: Col = Col { header: "Interface", key: "if_in" };
const ACTIONS: Col = Col { header: "Actions", key: "actions" };
const PORTS: Col = Col { header: "Ports", key: "ports" };
const PACKETS: Col = Col { header: "Packets", key: "packets" };
const HOSTS: Col = Col { header: "Hosts", key: "hosts" };
const FIRST: Col = Col { header: "First seen", key: "first_seen" };
const LAST: Col = Col { header: "Last seen", key: "last_seen" };

#[derive(Clone, Copy)]
enum Kind {
    Addr,
    Port,
    Text,
}

/// A grouping module: its keys on the packet table and on its summary.
struct GroupSpec {
    /// (expression on the packet table, summary column, kind, column)
    keys: &'static [(&'static str, &'static str, Kind, Col)],
    raw_where: &'static str,
    suffix: &'static str,
    sum_where: &'static str,
}

const K_SRC: (&str, &str, Kind, Col) = ("COALESCE(`src`,'')", "`src`", Kind::Addr, SOURCE);
const K_DST: (&str, &str, Kind, Col) = ("COALESCE(`dst`,'')", "`dst`", Kind::Addr, DEST);
const K_DPT: (&str, &str, Kind, Col) = ("COALESCE(`dpt`,-1)", "`dpt`", Kind::Port, PORT);
const K_PROTO: (&str, &str, Kind, Col) = ("COALESCE(`proto`,'')", "`proto`", Kind::Text, PROTO);
const K_ACTION: (&str, &str, Kind, Col) = ("`action`", "`action`", Kind::Text, ACTION);
const K_IFACE: (&str, &str, Kind, Col) = ("COALESCE(`if_in`,'')", "`if_in`", Kind::Text, IFACE);

fn spec(m: Module) -> Option<GroupSpec> {
    Some(match m {
        Module::Denied => GroupSpec {
            keys: &[K_SRC, K_DPT, K_PROTO, K_ACTION],
            raw_where: "`action` <> 'ACCEPT'",
            suffix: summary::FLOW,
            sum_where: "`action` <> 'ACCEPT'",
        },
        Module::Icmp => GroupSpec {
            keys: &[K_SRC, K_DST, K_ACTION],
            raw_where: "`proto` IN ('ICMP','ICMPv6')",
            suffix: summary::ICMP,
            sum_where: "1=1",
        },
        Module::Ports => GroupSpec {
            keys: &[K_DPT, K_PROTO, K_ACTION],
            raw_where: "`action` <> 'ACCEPT'",
            suffix: summary::PORT,
            sum_where: "`action` <> 'ACCEPT'",
        },
        Module::Invalid => GroupSpec {
            keys: &[K_SRC, K_DPT, K_PROTO],
            raw_where: "`action` = 'INVALID'",
            suffix: summary::FLOW,
            sum_where: "`action` = 'INVALID'",
        },
        Module::Interfaces => GroupSpec {
            keys: &[K_IFACE, K_ACTION, K_PROTO],
            raw_where: "1=1",
            suffix: summary::IFACE,
            sum_where: "1=1",
        },
        Module::Inbound => GroupSpec {
            keys: &[K_DPT, K_ACTION],
            raw_where: "`action` <> 'ACCEPT' AND `if_in` <> ''",
            suffix: summary::INPORT,
            sum_where: "`action` <> 'ACCEPT'",
        },
        _ => return None,
    })
}

/// The packet-table filter of the options, as SQL and parameters.
pub(super) struct Filter {
    pub(super) sql: String,
    pub(super) params: Vec<Value>,
}

pub(super) fn raw_filter(opts: &AnalyzeOptions) -> Filter {
    raw_filter_between(opts, opts.since, opts.until)
}

/// [`raw_filter`] with the time bounds given (a window's edge pieces).
fn raw_filter_between(opts: &AnalyzeOptions, since: Option<Timestamp>, until: Option<Timestamp>) -> Filter {
    let mut c: Vec<&str> = vec!["1=1"];
    let mut params = Vec::new();
    if opts.no_local {
        c.push("COALESCE(`if_in`,'') <> 'lo' AND COALESCE(`if_out`,'') <> 'lo'");
    }
    if opts.no_accept {
        c.push("`action` <> 'ACCEPT'");
    }
    if let Some(s) = since {
        c.push("`ts` >= ?");
        params.push(ts_value(s));
    }
    if let Some(u) = until {
        c.push("`ts` < ?");
        params.push(ts_value(u));
    }
    if let Some(h) = &opts.host {
        c.push("`host` = ?");
        params.push(Value::Bytes(h.as_bytes().to_vec()));
    }
    Filter { sql: c.join(" AND "), params }
}

fn describe_filters(opts: &AnalyzeOptions) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(s) = opts.since {
        v.push(format!("since {} (inclusive)", render_time(s)));
    }
    if let Some(u) = opts.until {
        v.push(format!("until {} (exclusive)", render_time(u)));
    }
    if let Some(h) = &opts.host {
        v.push(format!("host {h}"));
    }
    if opts.no_local {
        v.push("no local (lo) traffic".into());
    }
    if opts.no_accept {
        v.push("no ACCEPT".into());
    }
    v
}

/// `2026-11-01 10:00:00` (UTC), the table rendering of a time.
pub fn render_time(t: Timestamp) -> String {
    t.to_chrono().format("%Y-%m-%d %H:%M:%S").to_string()
}

fn params(mut head: Vec<Value>, tail: &[Value]) -> Vec<Value> {
    head.extend_from_slice(tail);
    head
}

/// Reads an integer aggregate (SUM comes back as a decimal string).
fn get_u64(row: &Row, i: usize) -> u64 {
    match row.as_ref(i) {
        Some(Value::Int(n)) => (*n).max(0) as u64,
        Some(Value::UInt(n)) => *n,
        Some(Value::Bytes(b)) => {
            let s = String::from_utf8_lossy(b);
            s.split('.').next().unwrap_or("0").parse().unwrap_or(0)
        }
        Some(Value::Double(d)) => *d as u64,
        Some(Value::Float(d)) => *d as u64,
        _ => 0,
    }
}

fn get_i64(row: &Row, i: usize) -> i64 {
    match row.as_ref(i) {
        Some(Value::Int(n)) => *n,
        Some(Value::UInt(n)) => *n as i64,
        Some(Value::Bytes(b)) => String::from_utf8_lossy(b).parse().unwrap_or(0),
        _ => 0,
    }
}

fn get_bytes(row: &Row, i: usize) -> Vec<u8> {
    match row.as_ref(i) {
        Some(Value::Bytes(b)) => b.clone(),
        _ => Vec::new(),
    }
}

fn get_text(row: &Row, i: usize) -> String {
    String::from_utf8_lossy(&get_bytes(row, i)).into_owned()
}

fn cell(row: &Row, i: usize, k: Kind) -> Cell {
    match k {
        Kind::Addr => Cell::Addr(get_bytes(row, i)),
        Kind::Port => {
            let p = get_i64(row, i);
            Cell::Port(u16::try_from(p).ok())
        }
        Kind::Text => Cell::Text(get_text(row, i)),
    }
}

/// The value of a key cell as a query parameter (the packet-table expression's form).
fn cell_param(c: &Cell) -> Value {
    match c {
        Cell::Addr(b) => Value::Bytes(b.clone()),
        Cell::Port(p) => Value::Int(p.map(i64::from).unwrap_or(-1)),
        Cell::Text(t) => Value::Bytes(t.as_bytes().to_vec()),
        Cell::Count(n) => Value::UInt(*n),
        _ => Value::NULL,
    }
}

/// Retention deletes the oldest rows and leaves the summaries' first-seen times of surviving
/// groups pointing before the oldest row left (see `summary::on_delete_range`). For the rows
/// shown, such a time is replaced by the group's true first packet, found by reading the packet
/// table in time order from its start (quick for the busy groups a report shows).
fn fix_first_seen(
    conn: &mut mysql::Conn,
    table: &str,
    rows: &mut [Vec<Cell>],
    first_col: usize,
    keys: &[(usize, &str)],
    cond: &str,
) -> Result<(), ReportError> {
    let oldest: Option<Row> = conn.query_first(format!("SELECT `ts` FROM `{table}` ORDER BY `ts` LIMIT 1"))?;
    let Some(oldest) = oldest.and_then(|r| value_ts(r.as_ref(0))) else { return Ok(()) };
    for r in rows.iter_mut() {
        let stale = matches!(r.get(first_col), Some(Cell::Time(Some(t))) if *t < oldest);
        if !stale {
            continue;
        }
        let w: Vec<String> = keys.iter().map(|(_, e)| format!("{e} = ?")).collect();
        let p: Vec<Value> = keys.iter().map(|(i, _)| cell_param(&r[*i])).collect();
        let sql = format!(
            "SELECT `ts` FROM `{table}` WHERE {cond} AND {} ORDER BY `ts` LIMIT 1",
            w.join(" AND ")
        );
        let f: Option<Row> = conn.exec_first(sql, p)?;
        r[first_col] = Cell::Time(f.and_then(|f| value_ts(f.as_ref(0))));
    }
    Ok(())
}

/// Top-N over a summary table by walking its bucket column from the top (see module doc).
/// `sql` selects with the bucket as its first placeholder and `LIMIT ?` as its last.
fn walk(
    conn: &mut mysql::Conn,
    table: &str,
    bucket_col: &str,
    min_bucket: u8,
    sql: &str,
    extra: &[Value],
    limit: usize,
) -> Result<Vec<Row>, ReportError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    // MAX of an empty summary (no ICMP packet yet, say) is NULL: nothing to walk.
    let max: Option<Option<u8>> = conn.query_first(format!("SELECT MAX(`{bucket_col}`) FROM `{table}`"))?;
    walk_from(conn, max.flatten(), min_bucket, sql, extra, limit)
}

/// [`walk`] from a highest bucket found by the caller (None: nothing to walk).
fn walk_from(
    conn: &mut mysql::Conn,
    max: Option<u8>,
    min_bucket: u8,
    sql: &str,
    extra: &[Value],
    limit: usize,
) -> Result<Vec<Row>, ReportError> {
    let mut got: Vec<Row> = Vec::new();
    let Some(max) = max else { return Ok(got) };
    if limit == 0 {
        return Ok(got);
    }
    let mut b = max;
    while b >= min_bucket.max(1) {
        let mut p = vec![Value::UInt(u64::from(b))];
        p.extend_from_slice(extra);
        p.push(Value::UInt((limit - got.len()) as u64));
        let rows: Vec<Row> = conn.exec(sql, p)?;
        got.extend(rows);
        if got.len() >= limit {
            break;
        }
        b -= 1;
    }
    got.truncate(limit);
    Ok(got)
}

fn group_module(
    conn: &mut mysql::Conn,
    table: &str,
    m: Module,
    g: &GroupSpec,
    opts: &AnalyzeOptions,
    fast: bool,
) -> Result<Section, ReportError> {
    let columns = columns_of(m);
    let nk = g.keys.len();
    let rows: Vec<Row> = if fast {
        let st = summary::name(table, g.suffix);
        let cols: Vec<&str> = g.keys.iter().map(|k| k.1).collect();
        let accept = if opts.no_accept { " AND `action` <> 'ACCEPT'" } else { "" };
        // The per-flow summary has no index on `nb` alone: its walk goes through
        // `(action, nb)`, naming every action (the module's condition stays in the query).
        let acts = if g.suffix == summary::FLOW { Some(summary::flow_actions(conn, table)?) } else { None };
        let in_actions = match &acts {
            Some(a) => format!(" AND `action` IN ({})", vec!["?"; a.len()].join(",")),
            None => String::new(),
        };
        let sql = format!(
            "SELECT `n`, {c}, `first_ts`, `last_ts` FROM `{st}` WHERE `nb` = ?{in_actions} AND {w}{accept} \
             ORDER BY `n` DESC, {c} LIMIT ?",
            c = cols.join(", "),
            w = g.sum_where
        );
        match acts {
            Some(acts) => {
                let max = acts.iter().map(|a| a.1).max();
                let extra: Vec<Value> = acts.into_iter().map(|a| Value::Bytes(a.0)).collect();
                walk_from(conn, max, 1, &sql, &extra, opts.limit)?
            }
            None => walk(conn, &st, "nb", 1, &sql, &[], opts.limit)?,
        }
    } else {
        let f = raw_filter(opts);
        let sel: Vec<String> = g.keys.iter().enumerate().map(|(i, k)| format!("{} AS k{i}", k.0)).collect();
        let ks: Vec<String> = (0..nk).map(|i| format!("k{i}")).collect();
        let sql = format!(
            "SELECT SUM(`repeat`) AS n, {sel}, MIN(`ts`), MAX(`ts`) FROM `{table}` \
             WHERE {w} AND {f} GROUP BY {ks} ORDER BY n DESC, {ks} LIMIT ?",
            sel = sel.join(", "),
            w = g.raw_where,
            f = f.sql,
            ks = ks.join(", ")
        );
        conn.exec(sql, params(f.params, &[Value::UInt(opts.limit as u64)]))?
    };
    let mut rows: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            let mut v = vec![Cell::Count(get_u64(r, 0))];
            for (i, k) in g.keys.iter().enumerate() {
                v.push(cell(r, 1 + i, k.2));
            }
            v.push(Cell::Time(value_ts(r.as_ref(1 + nk))));
            v.push(Cell::Time(value_ts(r.as_ref(2 + nk))));
            v
        })
        .collect();
    if fast {
        let keys: Vec<(usize, &str)> = g.keys.iter().enumerate().map(|(i, k)| (1 + i, k.0)).collect();
        fix_first_seen(conn, table, &mut rows, 1 + nk, &keys, g.raw_where)?;
    }
    Ok(Section { module: m, columns, rows, timeline: None, via: if fast { Via::Summary } else { Via::Packets } })
}

fn sources_module(
    conn: &mut mysql::Conn,
    table: &str,
    opts: &AnalyzeOptions,
    fast: bool,
) -> Result<Section, ReportError> {
    let columns = columns_of(Module::Sources);
    let f = raw_filter(opts);
    let top: Vec<Row> = if fast {
        let st = summary::name(table, summary::SOURCE);
        let sql = format!(
            "SELECT `n`, `src`, `first_ts`, `last_ts` FROM `{st}` WHERE `nb` = ? ORDER BY `n` DESC, `src` LIMIT ?"
        );
        walk(conn, &st, "nb", 1, &sql, &[], opts.limit)?
    } else {
        let sql = format!(
            "SELECT SUM(`repeat`) AS n, COALESCE(`src`,'') AS s, MIN(`ts`), MAX(`ts`) FROM `{table}` \
             WHERE {f} GROUP BY s ORDER BY n DESC, s LIMIT ?",
            f = f.sql
        );
        conn.exec(sql, params(f.params.clone(), &[Value::UInt(opts.limit as u64)]))?
    };
    let srcs: Vec<Vec<u8>> = top.iter().map(|r| get_bytes(r, 1)).collect();
    let mut actions: HashMap<Vec<u8>, Vec<(String, u64)>> = HashMap::new();
    if !srcs.is_empty() {
        let marks = vec!["?"; srcs.len()].join(",");
        let (sql, p) = if fast {
            (
                format!(
                    "SELECT `src`, `action`, SUM(`n`) FROM `{}` WHERE `src` IN ({marks}) GROUP BY `src`, `action`",
                    summary::name(table, summary::FLOW)
                ),
                srcs.iter().map(|s| Value::Bytes(s.clone())).collect::<Vec<_>>(),
            )
        } else {
            (
                format!(
                    "SELECT COALESCE(`src`,'') AS s, `action`, SUM(`repeat`) FROM `{table}` \
                     WHERE {f} AND COALESCE(`src`,'') IN ({marks}) GROUP BY s, `action`",
                    f = f.sql
                ),
                params(f.params.clone(), &srcs.iter().map(|s| Value::Bytes(s.clone())).collect::<Vec<_>>()),
            )
        };
        let rows: Vec<Row> = conn.exec(sql, p)?;
        for r in &rows {
            actions.entry(get_bytes(r, 0)).or_default().push((get_text(r, 1), get_u64(r, 2)));
        }
        for v in actions.values_mut() {
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        }
    }
    let mut rows = Vec::with_capacity(top.len());
    for r in &top {
        let s = get_bytes(r, 1);
        let acts = actions.remove(&s).unwrap_or_default();
        rows.push(vec![
            Cell::Count(get_u64(r, 0)),
            Cell::Addr(s),
            Cell::Time(value_ts(r.as_ref(2))),
            Cell::Time(value_ts(r.as_ref(3))),
            Cell::Actions(acts),
        ]);
    }
    if fast {
        fix_first_seen(conn, table, &mut rows, 2, &[(1, "COALESCE(`src`,'')")], "1=1")?;
    }
    Ok(Section { module: Module::Sources, columns, rows, timeline: None, via: if fast { Via::Summary } else { Via::Packets } })
}

fn scans_module(
    conn: &mut mysql::Conn,
    table: &str,
    opts: &AnalyzeOptions,
    fast: bool,
) -> Result<Section, ReportError> {
    let columns = columns_of(Module::Scans);
    let thr = Value::UInt(u64::from(opts.scan_threshold));
    let rows: Vec<Row> = if fast {
        let st = summary::name(table, summary::SOURCE);
        let sql = format!(
            "SELECT `src`, `ports`, `n`, `hosts`, `first_ts`, `last_ts` FROM `{st}` \
             WHERE `pb` = ? AND `ports` >= ? ORDER BY `ports` DESC, `n` DESC, `src` LIMIT ?"
        );
        walk(conn, &st, "pb", summary::bucket(u64::from(opts.scan_threshold)), &sql, &[thr], opts.limit)?
    } else {
        let f = raw_filter(opts);
        let sql = format!(
            "SELECT COALESCE(`src`,'') AS s, COUNT(DISTINCT `dpt`) AS ports, SUM(`repeat`) AS n, \
             COUNT(DISTINCT `dst`) AS hosts, MIN(`ts`), MAX(`ts`) FROM `{table}` WHERE {f} \
             GROUP BY s HAVING ports >= ? ORDER BY ports DESC, n DESC, s LIMIT ?",
            f = f.sql
        );
        conn.exec(sql, params(f.params, &[thr, Value::UInt(opts.limit as u64)]))?
    };
    let mut rows: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            vec![
                Cell::Addr(get_bytes(r, 0)),
                Cell::Count(get_u64(r, 1)),
                Cell::Count(get_u64(r, 2)),
                Cell::Count(get_u64(r, 3)),
                Cell::Time(value_ts(r.as_ref(4))),
                Cell::Time(value_ts(r.as_ref(5))),
            ]
        })
        .collect();
    if fast {
        fix_first_seen(conn, table, &mut rows, 4, &[(0, "COALESCE(`src`,'')")], "1=1")?;
    }
    Ok(Section { module: Module::Scans, columns, rows, timeline: None, via: if fast { Via::Summary } else { Via::Packets } })
}

/// How a windowed report (`--since`, `--until`, `--host`) splits its window: whole hours in
/// `[lo, hi)` are read from the time buckets (`summary::BUCKET`), the rest of the window (at
/// most one partial hour at each end, plus the hour of the oldest row, whose bucket first-seen
/// times retention may have left stale) from the packet table, with the same filters. Both
/// pieces are exact, and they do not overlap, so their sums are the window's counts.
pub(super) struct Window {
    lo: Timestamp,
    /// None: up to the newest row.
    hi: Option<Timestamp>,
    /// Time ranges read from the packet table.
    edges: Vec<(Option<Timestamp>, Option<Timestamp>)>,
}

const US_HOUR: i64 = 3_600_000_000;

pub(super) fn floor_hour(t: Timestamp) -> Timestamp {
    Timestamp(t.0.div_euclid(US_HOUR) * US_HOUR)
}

fn ceil_hour(t: Timestamp) -> Timestamp {
    Timestamp(-(-t.0).div_euclid(US_HOUR) * US_HOUR)
}

/// The split of the options' window; None when the whole window is best read from the packet
/// table (it covers no whole bucket hour) or the table is empty.
fn plan_window(conn: &mut mysql::Conn, table: &str, opts: &AnalyzeOptions) -> Result<Option<Window>, ReportError> {
    let oldest: Option<Row> = conn.query_first(format!("SELECT `ts` FROM `{table}` ORDER BY `ts` LIMIT 1"))?;
    let Some(oldest) = oldest.and_then(|r| value_ts(r.as_ref(0))) else { return Ok(None) };
    let after_oldest = Timestamp(floor_hour(oldest).0 + US_HOUR);
    let lo = match opts.since {
        Some(s) => ceil_hour(s).max(after_oldest),
        None => after_oldest,
    };
    let hi = opts.until.map(floor_hour);
    if hi.is_some_and(|h| h <= lo) {
        return Ok(None);
    }
    let mut edges = vec![(opts.since, Some(lo))];
    if let Some(h) = hi {
        edges.push((Some(h), opts.until));
    }
    Ok(Some(Window { lo, hi, edges }))
}

/// The bucket-table filter of a window (host and `--no-accept` included), as SQL and parameters.
pub(super) fn bucket_filter(w: &Window, opts: &AnalyzeOptions) -> Filter {
    let mut c = vec!["`hour` >= ?"];
    let mut params = vec![ts_value(w.lo)];
    if let Some(h) = w.hi {
        c.push("`hour` < ?");
        params.push(ts_value(h));
    }
    if let Some(h) = &opts.host {
        c.push("`host` = ?");
        params.push(Value::Bytes(h.as_bytes().to_vec()));
    }
    if opts.no_accept {
        c.push("`action` <> 'ACCEPT'");
    }
    Filter { sql: c.join(" AND "), params }
}

/// Whether a module's keys are all in the time buckets.
fn bucketable(m: Module) -> bool {
    matches!(m, Module::Ports | Module::Inbound | Module::Interfaces | Module::Timeline)
}

/// One part of a group key, ordered as the server orders the packet path's keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum KeyPart {
    Int(i64),
    /// Text in a `utf8mb4_bin` column: compared byte by byte as if padded with spaces (PAD SPACE).
    Text(Vec<u8>),
}

impl Ord for KeyPart {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        match (self, o) {
            (KeyPart::Int(a), KeyPart::Int(b)) => a.cmp(b),
            (KeyPart::Text(a), KeyPart::Text(b)) => {
                let n = a.len().max(b.len());
                let at = |v: &Vec<u8>, i: usize| v.get(i).copied().unwrap_or(b' ');
                (0..n).map(|i| at(a, i).cmp(&at(b, i))).find(|c| c.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
            }
            (KeyPart::Int(_), KeyPart::Text(_)) => std::cmp::Ordering::Less,
            (KeyPart::Text(_), KeyPart::Int(_)) => std::cmp::Ordering::Greater,
        }
    }
}

impl PartialOrd for KeyPart {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// A group's packets, first and last seen.
pub(super) type GroupCounts = (u64, Option<Timestamp>, Option<Timestamp>);

/// Adds `n` packets first and last seen at `first` and `last` to a group.
pub(super) fn add_counts(e: &mut GroupCounts, n: u64, first: Option<Timestamp>, last: Option<Timestamp>) {
    e.0 += n;
    e.1 = match (e.1, first) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    e.2 = e.2.max(last);
}

/// A grouping module over a window: every group of the bucket hours and of the edge pieces,
/// merged, then ordered and cut as the packet path does (count descending, then the keys).
fn group_module_window(
    conn: &mut mysql::Conn,
    table: &str,
    m: Module,
    g: &GroupSpec,
    opts: &AnalyzeOptions,
    w: &Window,
    bp: &BucketPass,
) -> Result<Section, ReportError> {
    let nk = g.keys.len();
    let mut groups: HashMap<Vec<KeyPart>, GroupCounts> = bp.groups(m);
    let mut add = |rows: Vec<Row>| {
        for r in &rows {
            let key: Vec<KeyPart> = g
                .keys
                .iter()
                .enumerate()
                .map(|(i, k)| match k.2 {
                    Kind::Port => KeyPart::Int(get_i64(r, 1 + i)),
                    Kind::Addr => KeyPart::Text(get_bytes(r, 1 + i)),
                    // As the bucket pass keeps them (the collation ignores trailing spaces).
                    Kind::Text => KeyPart::Text(trim_end_spaces(&get_bytes(r, 1 + i)).to_vec()),
                })
                .collect();
            let (n, f, l) = (get_u64(r, 0), value_ts(r.as_ref(1 + nk)), value_ts(r.as_ref(2 + nk)));
            add_counts(groups.entry(key).or_insert((0, None, None)), n, f, l);
        }
    };
    for (a, b) in &w.edges {
        let f = raw_filter_between(opts, *a, *b);
        let sel: Vec<String> = g.keys.iter().enumerate().map(|(i, k)| format!("{} AS k{i}", k.0)).collect();
        let ks: Vec<String> = (0..nk).map(|i| format!("k{i}")).collect();
        let sql = format!(
            "SELECT SUM(`repeat`), {sel}, MIN(`ts`), MAX(`ts`) FROM `{table}` WHERE {gw} AND {f} GROUP BY {ks}",
            sel = sel.join(", "),
            gw = g.raw_where,
            f = f.sql,
            ks = ks.join(", ")
        );
        add(conn.exec(sql, f.params)?);
    }
    let mut all: Vec<(Vec<KeyPart>, GroupCounts)> =
        groups.into_iter().filter(|(_, v)| v.0 > 0).collect();
    all.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));
    all.truncate(opts.limit);
    let rows = all
        .into_iter()
        .map(|(key, (n, f, l))| {
            let mut v = vec![Cell::Count(n)];
            for (k, part) in g.keys.iter().zip(key) {
                v.push(match (k.2, part) {
                    (Kind::Port, KeyPart::Int(p)) => Cell::Port(u16::try_from(p).ok()),
                    (Kind::Addr, KeyPart::Text(b)) => Cell::Addr(b),
                    (_, KeyPart::Text(b)) => Cell::Text(String::from_utf8_lossy(&b).into_owned()),
                    (_, KeyPart::Int(p)) => Cell::Text(p.to_string()),
                });
            }
            v.push(Cell::Time(f));
            v.push(Cell::Time(l));
            v
        })
        .collect();
    Ok(Section { module: m, columns: columns_of(m), rows, timeline: None, via: Via::Summary })
}

/// The window's totals: packets, first and last seen.
fn window_totals(
    conn: &mut mysql::Conn,
    table: &str,
    opts: &AnalyzeOptions,
    w: &Window,
    bp: Option<&BucketPass>,
) -> Result<(u64, Option<Timestamp>, Option<Timestamp>), ReportError> {
    let (mut n, mut first, mut last) = (0u64, None::<Timestamp>, None::<Timestamp>);
    let mut parts: Vec<Option<Row>> = Vec::new();
    match bp {
        Some(b) => (n, first, last) = b.totals,
        None => {
            let bf = bucket_filter(w, opts);
            parts.push(conn.exec_first(
                format!(
                    "SELECT SUM(`n`), MIN(`first_ts`), MAX(`last_ts`) FROM `{}` WHERE {}",
                    summary::name(table, summary::BUCKET),
                    bf.sql
                ),
                bf.params,
            )?);
        }
    }
    for (a, b) in &w.edges {
        let f = raw_filter_between(opts, *a, *b);
        parts.push(conn.exec_first(
            format!("SELECT SUM(`repeat`), MIN(`ts`), MAX(`ts`) FROM `{table}` WHERE {}", f.sql),
            f.params,
        )?);
    }
    for r in parts.into_iter().flatten() {
        n += get_u64(&r, 0);
        if let Some(f) = value_ts(r.as_ref(1)) {
            first = Some(first.map_or(f, |x| x.min(f)));
        }
        last = last.max(value_ts(r.as_ref(2)));
    }
    Ok((n, first, last))
}

/// Windows longer than this are drawn per day.
const HOURLY_MAX_US: i64 = 48 * 3_600_000_000;
/// Windows longer than this are drawn per week.
const DAILY_MAX_US: i64 = 120 * 86_400_000_000;
/// At most this many buckets are drawn (the oldest are dropped beyond: 38 years of weeks).
const MAX_BUCKETS: usize = 2000;

fn timeline_module(
    conn: &mut mysql::Conn,
    table: &str,
    opts: &AnalyzeOptions,
    fast: bool,
    win: Option<(&Window, &BucketPass)>,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
) -> Result<Section, ReportError> {
    let columns = columns_of(Module::Timeline);
    let start = opts.since.or(first);
    let end = opts.until.or(last.map(|t| Timestamp(t.0 + 1)));
    let unit = match (start, end) {
        (Some(s), Some(e)) if e.0 - s.0 > DAILY_MAX_US => Unit::Week,
        (Some(s), Some(e)) if e.0 - s.0 > HOURLY_MAX_US => Unit::Day,
        _ => Unit::Hour,
    };
    let packet_bucket = match unit {
        Unit::Hour => "CAST(DATE_FORMAT(`ts`, '%Y-%m-%d %H:00:00') AS DATETIME)",
        Unit::Day | Unit::Week => "CAST(DATE(`ts`) AS DATETIME)",
    };
    // Actions as their column compares them (trailing spaces do not count), as the buckets'.
    let cell = |r: &Row| {
        value_ts(r.as_ref(0))
            .map(|t| (t, String::from_utf8_lossy(trim_end_spaces(&get_bytes(r, 1))).into_owned(), get_u64(r, 2)))
    };
    let cells: Vec<(Timestamp, String, u64)> = if let Some((w, bp)) = win {
        // Bucket hours, then the edge pieces: cells of the same time and action add up below.
        let mut cells = bp.cells(unit != Unit::Hour);
        for (a, e) in &w.edges {
            let f = raw_filter_between(opts, *a, *e);
            let more: Vec<Row> = conn.exec(
                format!(
                    "SELECT {packet_bucket} AS b, `action`, SUM(`repeat`) FROM `{table}` WHERE {} GROUP BY b, `action`",
                    f.sql
                ),
                f.params,
            )?;
            cells.extend(more.iter().filter_map(cell));
        }
        cells
    } else if fast {
        let st = summary::name(table, summary::HOUR);
        let accept = if opts.no_accept { "WHERE `action` <> 'ACCEPT'" } else { "" };
        let sql = match unit {
            Unit::Hour => format!("SELECT `hour`, `action`, `n` FROM `{st}` {accept}"),
            // Weeks are made of day cells below.
            Unit::Day | Unit::Week => format!(
                "SELECT CAST(DATE(`hour`) AS DATETIME) AS d, `action`, SUM(`n`) FROM `{st}` {accept} GROUP BY d, `action`"
            ),
        };
        conn.exec(sql, ())?.iter().filter_map(cell).collect()
    } else {
        let f = raw_filter(opts);
        let b = packet_bucket;
        let sql = format!(
            "SELECT {b} AS b, `action`, SUM(`repeat`) FROM `{table}` WHERE {f} GROUP BY b, `action`",
            f = f.sql
        );
        conn.exec(sql, f.params)?.iter().filter_map(cell).collect()
    };
    let mut totals: HashMap<String, u64> = HashMap::new();
    for (_, a, n) in &cells {
        *totals.entry(a.clone()).or_insert(0) += n;
    }
    let mut actions: Vec<(String, u64)> = totals.into_iter().collect();
    actions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let idx: HashMap<&str, usize> = actions.iter().enumerate().map(|(i, a)| (a.0.as_str(), i)).collect();
    let mut buckets: Vec<(Timestamp, Vec<u64>)> = Vec::new();
    if let (Some(lo), Some(hi)) = (cells.iter().map(|c| c.0).min(), cells.iter().map(|c| c.0).max()) {
        let u = unit.micros();
        // Rounded up: week buckets are made of day cells, and the oldest one must be covered.
        let n = (((hi.0 - lo.0 + u - 1) / u) as usize + 1).min(MAX_BUCKETS);
        let base = hi.0 - (n as i64 - 1) * u;
        buckets = (0..n).map(|i| (Timestamp(base + i as i64 * u), vec![0; actions.len()])).collect();
        for (t, a, c) in &cells {
            if t.0 < base {
                continue;
            }
            let i = ((t.0 - base) / u) as usize;
            if let (Some(b), Some(&j)) = (buckets.get_mut(i), idx.get(a.as_str())) {
                b.1[j] += c;
            }
        }
    }
    let tl = Timeline { unit, actions: actions.into_iter().map(|a| a.0).collect(), buckets };
    Ok(Section {
        module: Module::Timeline,
        columns,
        rows: Vec::new(),
        timeline: Some(tl),
        via: if fast || win.is_some() { Via::Summary } else { Via::Packets },
    })
}

/// The columns of a module's rows.
pub fn columns_of(m: Module) -> Vec<Col> {
    match m {
        Module::Sources => vec![COUNT, SOURCE, FIRST, LAST, ACTIONS],
        Module::Scans => vec![SOURCE, PORTS, PACKETS, HOSTS, FIRST, LAST],
        Module::Timeline => vec![Col { header: "Time", key: "time" }, COUNT],
        _ => {
            let g = spec(m).expect("grouping module");
            let mut c = vec![COUNT];
            c.extend(g.keys.iter().map(|k| k.3));
            c.push(FIRST);
            c.push(LAST);
            c
        }
    }
}

/// `summary::fold`, sent again twice (after 0.1 and 0.2 s) when the server answered with an
/// outage on a connection still in step: a deadlock or lock wait with ipta-ingest's folder or
/// a writer rolls the fold back, and it usually goes through at once. A report does not wait
/// longer than that: anything else is returned, classed by `StoreError::class`.
fn fold_briefly_retrying(conn: &mut mysql::Conn, table: &str) -> Result<summary::FoldStats, crate::store::StoreError> {
    let mut delay = std::time::Duration::from_millis(100);
    for _ in 0..2 {
        match summary::fold(conn, table) {
            Err(e) if e.class() == crate::store::ErrorClass::Outage && e.keeps_connection() => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            r => return r,
        }
    }
    summary::fold(conn, table)
}

/// Whether the packet table exists.
fn table_exists(conn: &mut mysql::Conn, table: &str) -> Result<bool, ReportError> {
    let n: Option<u64> = conn.exec_first(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        (table,),
    )?;
    Ok(n.unwrap_or(0) > 0)
}

/// Runs the selected modules (the summaries where they can answer).
pub fn analyze(conn: &mut mysql::Conn, table: &str, opts: &AnalyzeOptions) -> Result<Report, ReportError> {
    analyze_with(conn, table, opts, Path::Auto)
}

/// Runs the selected modules on the chosen path.
pub fn analyze_with(
    conn: &mut mysql::Conn,
    table: &str,
    opts: &AnalyzeOptions,
    path: Path,
) -> Result<Report, ReportError> {
    analyze_beside(conn, None, table, opts, path)
}

/// [`analyze_with`]; a window's modules keyed by source read its packets on a connection
/// `second` opens, when given (and it opens one), beside the rest of the report.
pub fn analyze_beside(
    conn: &mut mysql::Conn,
    second: Option<super::Connect<'_>>,
    table: &str,
    opts: &AnalyzeOptions,
    path: Path,
) -> Result<Report, ReportError> {
    crate::store::validate_identifier(table)?;
    if !table_exists(conn, table)? {
        return Err(crate::store::StoreError::MissingTable(table.to_string()).into());
    }
    let unfiltered = !opts.no_local && opts.host.is_none() && opts.since.is_none() && opts.until.is_none();
    let mut rep = Report {
        table: table.to_string(),
        filters: describe_filters(opts),
        scan_threshold: opts.scan_threshold,
        ..Default::default()
    };
    // The summaries run behind the writers: fold in what they have not seen yet, so the
    // report counts every committed row. Without the privilege (or on any failure) the
    // packet table answers, and the report says why.
    // Windows (--since, --until, --host) read the time buckets where a module's keys are in
    // them; --no-local needs `if_out`, which they lack, and an empty host name matches only
    // rows whose host is '' (the buckets also hold rows without one there).
    let windowed = !unfiltered && !opts.no_local && opts.host.as_deref() != Some("");
    let have = path == Path::Auto
        && (unfiltered || windowed)
        && summary::present(conn, table)?
        && match fold_briefly_retrying(conn, table) {
            Ok(_) => true,
            // An outage (read-only, full, killed, lost) is a database error of the report, as
            // for any query; only a fold ipta may not do (set-up: no privilege) falls back.
            Err(e) if e.class() != crate::store::ErrorClass::Setup => return Err(e.into()),
            Err(e) => {
                rep.summary_note = Some(format!("cannot update the summary tables ({e}); analyzing the packet table directly"));
                false
            }
        };
    let win = if have && windowed { plan_window(conn, table, opts)? } else { None };
    let have = have && unfiltered;
    let mut mods = if opts.modules.is_empty() { Module::ALL.to_vec() } else { opts.modules.clone() };
    mods.sort();
    mods.dedup();
    // The modules keyed by source read the window's packets, the longest part of a window's
    // report: on a second connection they start now, beside the bucket pass and the totals
    // (the server runs each connection on one core; 7 days at 10M rows: 2.52-2.72 s before,
    // 2.42-2.56 s after).
    let pass_beside = win.is_some() && mods.iter().any(|m| super::onepass::handles(*m));
    let beside = second.filter(|_| pass_beside).and_then(|c| c().ok()).map(|mut c| {
        let (table, opts, mods) = (table.to_string(), opts.clone(), mods.clone());
        std::thread::spawn(move || super::onepass::run(&mut c, &table, &opts, &mods))
    });
    // A window's whole hours, read once for the modules the buckets answer (and the totals).
    let bp = match &win {
        Some(w) if mods.iter().any(|m| bucketable(*m)) => Some(BucketPass::read(conn, table, opts, w)?),
        _ => None,
    };
    // Totals first: an empty table or window ends the report here.
    if let Some(w) = &win {
        (rep.packets, rep.first, rep.last) = window_totals(conn, table, opts, w, bp.as_ref())?;
    } else if have {
        let accept = if opts.no_accept { "WHERE `action` <> 'ACCEPT'" } else { "" };
        let n: Option<Row> = conn.query_first(format!(
            "SELECT SUM(`n`) FROM `{}` {accept}",
            summary::name(table, summary::HOUR)
        ))?;
        rep.packets = n.map(|r| get_u64(&r, 0)).unwrap_or(0);
        if rep.packets > 0 {
            let w = if opts.no_accept { "WHERE `action` <> 'ACCEPT'" } else { "" };
            let f: Option<Row> = conn.query_first(format!("SELECT `ts` FROM `{table}` {w} ORDER BY `ts` LIMIT 1"))?;
            let l: Option<Row> = conn.query_first(format!("SELECT `ts` FROM `{table}` {w} ORDER BY `ts` DESC LIMIT 1"))?;
            rep.first = f.and_then(|r| value_ts(r.as_ref(0)));
            rep.last = l.and_then(|r| value_ts(r.as_ref(0)));
        }
    } else {
        let f = raw_filter(opts);
        let r: Option<Row> = conn.exec_first(
            format!("SELECT SUM(`repeat`), MIN(`ts`), MAX(`ts`) FROM `{table}` WHERE {}", f.sql),
            f.params,
        )?;
        if let Some(r) = r {
            rep.packets = get_u64(&r, 0);
            rep.first = value_ts(r.as_ref(1));
            rep.last = value_ts(r.as_ref(2));
        }
    }
    // A window reads the packet table for the modules keyed by source: once for all of them.
    let mut by_source = match beside {
        Some(pass) => {
            let got = pass.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            // An empty window's modules are said to be empty below, as without the thread.
            if rep.packets > 0 {
                got
            } else {
                Vec::new()
            }
        }
        None if win.is_some() && rep.packets > 0 => super::onepass::run(conn, table, opts, &mods)?,
        None => Vec::new(),
    };
    for m in mods {
        if let Some(i) = by_source.iter().position(|s| s.module == m) {
            rep.sections.push(by_source.swap_remove(i));
            continue;
        }
        if rep.packets == 0 {
            // Nothing to aggregate: every module is empty, say so without querying.
            // The timeline keeps its shape (no bucket), so JSON and CSV readers need no
            // special case for an empty table.
            let timeline = (m == Module::Timeline).then(|| Timeline { unit: Unit::Hour, actions: Vec::new(), buckets: Vec::new() });
            rep.sections.push(Section {
                module: m,
                columns: columns_of(m),
                rows: Vec::new(),
                timeline,
                via: if have || (win.is_some() && bucketable(m)) { Via::Summary } else { Via::Packets },
            });
            continue;
        }
        let s = match m {
            Module::Sources => sources_module(conn, table, opts, have && !opts.no_accept)?,
            Module::Scans => scans_module(conn, table, opts, have && !opts.no_accept)?,
            Module::Timeline => {
                let wb = win.as_ref().zip(bp.as_ref());
                timeline_module(conn, table, opts, have, wb, rep.first, rep.last)?
            }
            _ => {
                let g = spec(m).expect("grouping module");
                match (&win, &bp) {
                    (Some(w), Some(b)) if bucketable(m) => group_module_window(conn, table, m, &g, opts, w, b)?,
                    _ => group_module(conn, table, m, &g, opts, have)?,
                }
            }
        };
        rep.sections.push(s);
    }
    Ok(rep)
}
