//! Rendering of a [`Report`]: comfy-table tables (numbers right-aligned, UTF-8 borders on a
//! terminal, plain ASCII otherwise), one JSON document, or CSV blocks; the timeline as a bar
//! chart. Times are UTC.

use std::io::Write;
use std::net::IpAddr;

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use serde_json::{json, Map, Value as J};

use super::query::{render_time, Cell, Report, Section, Timeline};
use super::rdns::Resolver;
use crate::store::value::addr_of;
use crate::units::human_size;

fn addr_text(b: &[u8]) -> String {
    match addr_of(b) {
        Some(a) => a.to_string(),
        None if b.is_empty() => "-".into(),
        None => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

/// Resolves the addresses of the rows shown (only those) and stores the names in the report.
pub fn resolve_names(rep: &mut Report, resolver: &Resolver, conn: &mut mysql::Conn) {
    let mut ips: Vec<IpAddr> = Vec::new();
    for s in &rep.sections {
        for r in &s.rows {
            for c in r {
                if let Cell::Addr(b) = c {
                    if let Some(a) = addr_of(b) {
                        ips.push(a);
                    }
                }
            }
        }
    }
    ips.sort();
    ips.dedup();
    for (ip, name) in resolver.resolve_all(&ips, Some(conn)) {
        let key = match ip {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        rep.names.insert(key, name);
    }
}

/// A cell as the text table shows it (also the HTML page's cell text, before escaping).
pub(crate) fn cell_text(c: &Cell, rep: &Report) -> String {
    match c {
        Cell::Count(n) => group_digits(*n),
        Cell::Addr(b) => rep.names.get(b).cloned().unwrap_or_else(|| addr_text(b)),
        Cell::Port(p) => p.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        Cell::Text(t) if t.is_empty() => "-".into(),
        Cell::Text(t) => t.clone(),
        Cell::Time(t) => t.map(render_time).unwrap_or_else(|| "-".into()),
        Cell::Actions(v) => v
            .iter()
            .map(|(a, n)| format!("{a} {}", group_digits(*n)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

pub use crate::units::group_digits;

fn header_line(rep: &Report) -> String {
    let mut s = format!("ipta analysis of `{}`: {} packets", rep.table, group_digits(rep.packets));
    if let (Some(f), Some(l)) = (rep.first, rep.last) {
        s.push_str(&format!(", {} to {} UTC", render_time(f), render_time(l)));
    }
    if !rep.filters.is_empty() {
        s.push_str(&format!(" [{}]", rep.filters.join(", ")));
    }
    s
}

/// Tables, one per module, each under its title.
pub fn table(rep: &Report, out: &mut dyn Write, tty: bool) -> std::io::Result<()> {
    writeln!(out, "{}", crate::units::printable(&header_line(rep)))?;
    if rep.packets == 0 {
        if rep.filters.is_empty() {
            writeln!(out, "The table is empty: no packets to analyze.")?;
        } else {
            writeln!(out, "No packets match these filters.")?;
        }
        return Ok(());
    }
    for s in &rep.sections {
        writeln!(out)?;
        let title = match s.module {
            super::Module::Scans => format!("{} (sources on at least {} ports)", s.module.title(), rep.scan_threshold),
            _ => s.module.title().to_string(),
        };
        writeln!(out, "{title}")?;
        if let Some(tl) = &s.timeline {
            timeline_chart(tl, out)?;
            continue;
        }
        if s.rows.is_empty() {
            writeln!(out, "  (none)")?;
            continue;
        }
        let mut t = text_table(tty);
        t.set_header(s.columns.iter().map(|c| c.header).collect::<Vec<_>>());
        for r in &s.rows {
            // Log text and DNS names are untrusted: no control character reaches a terminal.
            t.add_row(r.iter().map(|c| crate::units::printable(&cell_text(c, rep)).into_owned()).collect::<Vec<_>>());
        }
        if let Some(first) = s.rows.first() {
            for (i, c) in first.iter().enumerate() {
                if matches!(c, Cell::Count(_) | Cell::Port(_)) {
                    if let Some(col) = t.column_mut(i) {
                        col.set_cell_alignment(CellAlignment::Right);
                    }
                }
            }
        }
        writeln!(out, "{t}")?;
    }
    Ok(())
}

const BAR: usize = 50;
const MARKS: [char; 5] = ['#', '=', '+', '-', '.'];

/// The timeline as one line per bucket: time, count, a bar split by action.
fn timeline_chart(tl: &Timeline, out: &mut dyn Write) -> std::io::Result<()> {
    let legend: Vec<String> = tl
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if i < MARKS.len() - 1 {
                format!("{} {}", MARKS[i], crate::units::printable(a))
            } else if i == MARKS.len() - 1 {
                ". other".to_string()
            } else {
                String::new()
            }
        })
        .filter(|s| !s.is_empty())
        .collect();
    writeln!(out, "packets per {} (UTC); {}", tl.unit.name(), legend.join("  "))?;
    let max = tl.buckets.iter().map(|b| b.1.iter().sum::<u64>()).max().unwrap_or(0).max(1);
    let width = tl.buckets.iter().map(|b| group_digits(b.1.iter().sum()).len()).max().unwrap_or(1);
    for (t, counts) in &tl.buckets {
        let total: u64 = counts.iter().sum();
        let label = match tl.unit {
            super::query::Unit::Hour => t.to_chrono().format("%Y-%m-%d %H:00").to_string(),
            super::query::Unit::Day => t.to_chrono().format("%Y-%m-%d").to_string(),
            super::query::Unit::Week => format!("{} +7d", t.to_chrono().format("%Y-%m-%d")),
        };
        let mut bar = String::with_capacity(BAR);
        let mut cum = 0u64;
        let mut drawn = 0usize;
        for (j, c) in counts.iter().enumerate() {
            cum += c;
            let upto = ((cum as f64 / max as f64) * BAR as f64).round() as usize;
            let mark = MARKS[j.min(MARKS.len() - 1)];
            while drawn < upto {
                bar.push(mark);
                drawn += 1;
            }
        }
        writeln!(out, "{label}  {:>width$} |{bar}", group_digits(total))?;
    }
    Ok(())
}

fn cell_json(c: &Cell) -> J {
    match c {
        Cell::Count(n) => json!(n),
        Cell::Addr(b) => match addr_of(b) {
            Some(a) => json!(a.to_string()),
            None => J::Null,
        },
        Cell::Port(p) => p.map(|p| json!(p)).unwrap_or(J::Null),
        Cell::Text(t) => json!(t),
        Cell::Time(t) => t.map(|t| json!(t.to_rfc3339())).unwrap_or(J::Null),
        Cell::Actions(v) => J::Array(v.iter().map(|(a, n)| json!({"action": a, "count": n})).collect()),
    }
}

fn section_json(s: &Section, rep: &Report) -> J {
    let mut m = Map::new();
    m.insert("title".into(), json!(s.module.title()));
    if let Some(tl) = &s.timeline {
        m.insert("unit".into(), json!(tl.unit.name()));
        m.insert("actions".into(), json!(tl.actions));
        let b: Vec<J> = tl
            .buckets
            .iter()
            .map(|(t, counts)| {
                let per: Map<String, J> =
                    tl.actions.iter().zip(counts).map(|(a, n)| (a.clone(), json!(n))).collect();
                json!({"time": t.to_rfc3339(), "count": counts.iter().sum::<u64>(), "actions": per})
            })
            .collect();
        m.insert("buckets".into(), J::Array(b));
        return J::Object(m);
    }
    let rows: Vec<J> = s
        .rows
        .iter()
        .map(|r| {
            let mut o = Map::new();
            for (c, v) in s.columns.iter().zip(r) {
                o.insert(c.key.into(), cell_json(v));
                if let Cell::Addr(b) = v {
                    if let Some(n) = rep.names.get(b) {
                        o.insert(format!("{}_name", c.key), json!(n));
                    }
                }
            }
            J::Object(o)
        })
        .collect();
    m.insert("rows".into(), J::Array(rows));
    J::Object(m)
}

/// One JSON document holding every module run.
pub fn json(rep: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let mut modules = Map::new();
    for s in &rep.sections {
        modules.insert(s.module.name().into(), section_json(s, rep));
    }
    let doc = json!({
        "table": rep.table,
        "packets": rep.packets,
        "first_seen": rep.first.map(|t| t.to_rfc3339()),
        "last_seen": rep.last.map(|t| t.to_rfc3339()),
        "filters": rep.filters,
        "scan_threshold": rep.scan_threshold,
        "modules": J::Object(modules),
    });
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_cell(c: &Cell, rep: &Report) -> String {
    match c {
        Cell::Count(n) => n.to_string(),
        Cell::Addr(b) => rep
            .names
            .get(b)
            .cloned()
            .unwrap_or_else(|| addr_of(b).map(|a| a.to_string()).unwrap_or_default()),
        Cell::Port(p) => p.map(|p| p.to_string()).unwrap_or_default(),
        Cell::Text(t) => t.clone(),
        Cell::Time(t) => t.map(|t| t.to_rfc3339()).unwrap_or_default(),
        Cell::Actions(v) => v.iter().map(|(a, n)| format!("{a}:{n}")).collect::<Vec<_>>().join(" "),
    }
}

/// CSV: one block per module (header row first, first column the module name), blocks
/// separated by an empty line.
pub fn csv(rep: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let mut first = true;
    for s in &rep.sections {
        if !first {
            writeln!(out)?;
        }
        first = false;
        let name = s.module.name();
        if let Some(tl) = &s.timeline {
            let mut head = vec!["module".to_string(), "time".into(), "count".into()];
            head.extend(tl.actions.iter().map(|a| csv_field(a)));
            writeln!(out, "{}", head.join(","))?;
            for (t, counts) in &tl.buckets {
                let mut f = vec![name.to_string(), t.to_rfc3339(), counts.iter().sum::<u64>().to_string()];
                f.extend(counts.iter().map(|n| n.to_string()));
                writeln!(out, "{}", f.join(","))?;
            }
            continue;
        }
        let mut head = vec!["module"];
        head.extend(s.columns.iter().map(|c| c.key));
        writeln!(out, "{}", head.join(","))?;
        for r in &s.rows {
            let mut f = vec![name.to_string()];
            f.extend(r.iter().map(|c| csv_field(&csv_cell(c, rep))));
            writeln!(out, "{}", f.join(","))?;
        }
    }
    Ok(())
}

/// An empty text table as both the report and the SQL prompt draw them: UTF-8 borders on a
/// terminal, plain ASCII otherwise, never wrapped.
/// `ipta --list-tables`: ipta's tables with rows, first and last packet and size, in the
/// report's formats. `expire` is the configured retention (the key `expire`, which ipta-ingest
/// applies hourly and `ipta --expire` on demand): said under the table on a terminal, on `err`
/// for a pipe (stdout keeps only data, for scripts), a field in JSON.
pub fn table_list(
    list: &[crate::store::tables::TableInfo],
    database: &str,
    expire: Option<&str>,
    format: super::Format,
    tty: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    let time = |t: Option<crate::record::Timestamp>| t.map(render_time).unwrap_or_default();
    let retention = match expire {
        Some(age) => format!(
            "Retention: packets older than {age} are expired (config key expire; ipta-ingest applies it hourly)."
        ),
        None => "Retention: none (packets are kept until deleted; set expire = 30d in the config or run ipta --expire AGE).".into(),
    };
    let rfc = |t: Option<crate::record::Timestamp>| t.map(|x| x.to_rfc3339());
    match format {
        super::Format::Json => {
            let v: Vec<J> = list
                .iter()
                .map(|t| {
                    json!({
                        "table": t.name, "schema_version": t.version, "rows": t.rows,
                        "first": rfc(t.first), "last": rfc(t.last), "bytes": t.bytes,
                    })
                })
                .collect();
            writeln!(out, "{}", json!({ "database": database, "tables": v, "expire": expire }))
        }
        super::Format::Csv => {
            writeln!(out, "table,rows,first,last,bytes")?;
            for t in list {
                let (first, last) = (rfc(t.first).unwrap_or_default(), rfc(t.last).unwrap_or_default());
                writeln!(out, "{},{},{},{},{}", t.name, t.rows, first, last, t.bytes)?;
            }
            Ok(())
        }
        // --format html is refused for listings before they run (cli::plan); text if it gets here.
        super::Format::Table | super::Format::Html if list.is_empty() => {
            writeln!(out, "No ipta tables in database `{database}` (create one with: ipta --create-table).")
        }
        super::Format::Table | super::Format::Html if tty => {
            let mut t = text_table(true);
            t.set_header(["Table", "Rows", "First packet (UTC)", "Last packet (UTC)", "Size"]);
            for i in list {
                t.add_row([i.name.clone(), i.rows.to_string(), time(i.first), time(i.last), human_size(i.bytes)]);
            }
            for c in [1, 4] {
                if let Some(col) = t.column_mut(c) {
                    col.set_cell_alignment(CellAlignment::Right);
                }
            }
            writeln!(out, "Tables of ipta in database `{database}`:\n{t}")?;
            writeln!(out, "{retention}")
        }
        super::Format::Table | super::Format::Html => {
            writeln!(out, "table\trows\tfirst\tlast\tsize")?;
            for i in list {
                writeln!(out, "{}\t{}\t{}\t{}\t{}", i.name, i.rows, time(i.first), time(i.last), human_size(i.bytes))?;
            }
            writeln!(err, "{retention}")
        }
    }
}

pub(crate) fn text_table(tty: bool) -> Table {
    let mut t = Table::new();
    t.load_preset(if tty { presets::UTF8_FULL_CONDENSED } else { presets::ASCII_FULL_CONDENSED });
    if !tty {
        t.force_no_tty();
    }
    t.set_content_arrangement(ContentArrangement::Disabled);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Timestamp;
    use crate::report::query::{Col, Unit, Via};
    use crate::report::Module;

    fn sample() -> Report {
        Report {
            table: "logs".into(),
            packets: 1234,
            first: Some(Timestamp(1_762_000_000_000_000)),
            last: Some(Timestamp(1_762_003_600_000_000)),
            scan_threshold: 15,
            sections: vec![
                Section {
                    module: Module::Denied,
                    columns: vec![
                        Col { header: "Count", key: "count" },
                        Col { header: "Source", key: "src" },
                        Col { header: "Port", key: "dpt" },
                    ],
                    rows: vec![
                        vec![Cell::Count(1200), Cell::Addr(vec![192, 0, 2, 1]), Cell::Port(Some(22))],
                        vec![Cell::Count(34), Cell::Addr(vec![]), Cell::Port(None)],
                    ],
                    timeline: None,
                    via: Via::Summary,
                },
                Section {
                    module: Module::Timeline,
                    columns: vec![],
                    rows: vec![],
                    timeline: Some(Timeline {
                        unit: Unit::Hour,
                        actions: vec!["DROP".into(), "ACCEPT".into()],
                        buckets: vec![
                            (Timestamp(1_762_000_000_000_000), vec![100, 100]),
                            (Timestamp(1_762_003_600_000_000), vec![50, 0]),
                        ],
                    }),
                    via: Via::Summary,
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(1234567), "1,234,567");
    }

    #[test]
    fn plain_table_is_ascii_with_titles_and_right_aligned_counts() {
        let mut out = Vec::new();
        table(&sample(), &mut out, false).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.is_ascii(), "{s}");
        assert!(s.contains("Denied traffic"));
        assert!(s.contains("192.0.2.1"));
        assert!(s.contains("| 1,200 |"), "{s}");
        assert!(s.contains("|    34 |"), "{s}");
        // The bar of the full bucket is 50 wide: 25 DROP, 25 ACCEPT.
        assert!(s.contains(&format!("|{}{}", "#".repeat(25), "=".repeat(25))), "{s}");
        assert!(s.contains(&format!("|{}\n", "#".repeat(13))), "{s}");
    }

    #[test]
    fn json_is_one_document() {
        let mut out = Vec::new();
        json(&sample(), &mut out).unwrap();
        let v: J = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["packets"], 1234);
        assert_eq!(v["modules"]["denied"]["rows"][0]["src"], "192.0.2.1");
        assert_eq!(v["modules"]["denied"]["rows"][1]["src"], J::Null);
        assert_eq!(v["modules"]["denied"]["rows"][1]["dpt"], J::Null);
        assert_eq!(v["modules"]["timeline"]["buckets"][0]["actions"]["ACCEPT"], 100);
    }

    #[test]
    fn csv_blocks() {
        let mut out = Vec::new();
        csv(&sample(), &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("module,count,src,dpt\ndenied,1200,192.0.2.1,22\ndenied,34,,\n\n"), "{s}");
        assert!(s.contains("module,time,count,DROP,ACCEPT\n"));
        assert_eq!(csv_field("a,b\"c"), "\"a,b\"\"c\"");
    }
}
