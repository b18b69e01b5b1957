//! `ipta -a --format html`: the report as one self-contained HTML page, for a browser or a
//! mail. It is built from the same [`Report`] the JSON output is rendered from, so every number
//! on the page is a number of `--format json`.
//!
//! The page needs nothing else: styles and script are inline, the charts are inline SVG, and a
//! Content-Security-Policy forbids every fetch (it works offline and as a mail attachment).
//! Everything is readable without JavaScript: tables are plain tables, the timeline is a
//! stacked bar chart, top sources, ports and scans are bar charts; the script only adds
//! sorting by column and tooltips. Log text (hosts, prefixes, actions, interfaces) and DNS
//! names are untrusted: every one goes through [`esc`], and the policy lets only the page's
//! own script (by its nonce) run, so a missed escape still could not run a script.
//!
//! Marks for machines: every chart bar carries its number in `data-value` (timeline bars
//! `data-time`, `data-action`, `data-count`), every chart row its label in `data-label`, every
//! table `data-module`, so tests (and users' scripts) can check the page against the JSON.

use std::fmt::Write as _;
use std::io::Write;

use super::query::{render_time, Cell, Report, Section, Timeline, Unit};
use super::render::{cell_text, group_digits};
use super::{AnalyzeOptions, Module};

/// Width of the horizontal bars' viewBox: a bar of the largest value is this wide.
pub const BAR_SPAN: f64 = 1000.0;
/// Height of the timeline's viewBox: the busiest bucket is this tall.
pub const TIMELINE_SPAN: f64 = 100.0;

/// `s` as HTML text or attribute value: the five markup characters as entities, control
/// characters (which a page cannot show) as U+FFFD.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// Length of a bar of `value` when `max` is [`BAR_SPAN`] (or `span`) long, with one decimal.
pub fn bar_len(value: u64, max: u64, span: f64) -> f64 {
    if max == 0 {
        return 0.0;
    }
    (value as f64 / max as f64 * span * 10.0).round() / 10.0
}

/// Colours of the actions: the usual ones fixed (DROP red, ACCEPT green, ...), others from a
/// palette in order of appearance, so one action has one colour on the whole page.
struct Palette {
    seen: Vec<String>,
}

const OTHER_COLOURS: [&str; 6] = ["#4e79a7", "#b07aa1", "#9c755f", "#edc948", "#76b7b2", "#bab0ac"];

impl Palette {
    fn colour(&mut self, action: &str) -> &'static str {
        match action.to_ascii_uppercase().as_str() {
            "DROP" | "DENY" | "BLOCK" => return "#e15759",
            "REJECT" => return "#f28e2b",
            "ACCEPT" | "ALLOW" => return "#59a14f",
            "INVALID" => return "#8c564b",
            _ => {}
        }
        let i = match self.seen.iter().position(|a| a == action) {
            Some(i) => i,
            None => {
                self.seen.push(action.to_string());
                self.seen.len() - 1
            }
        };
        OTHER_COLOURS[i % OTHER_COLOURS.len()]
    }
}

const STYLE: &str = r#"
:root{--fg:#1d2329;--muted:#5c6670;--line:#d8dde2;--bg:#fff;--head:#f3f5f7;--link:#0b62a4}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
header,main,footer{max-width:1100px;margin:0 auto;padding:0 16px}
header{padding-top:16px;border-bottom:1px solid var(--line)}
h1{font-size:1.45rem;margin:0 0 8px}
h2{font-size:1.15rem;margin:28px 0 8px}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0 0 12px}
.meta dt{color:var(--muted)}.meta dd{margin:0;overflow-wrap:anywhere}
nav{margin:8px 0 12px;display:flex;flex-wrap:wrap;gap:4px 12px;font-size:.92rem}
nav a{color:var(--link);text-decoration:none}nav a:hover{text-decoration:underline}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0 4px}
.card{border:1px solid var(--line);border-radius:6px;padding:6px 12px;min-width:120px}
.card b{display:block;font-size:1.3rem}.card span{color:var(--muted);font-size:.85rem}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table.data{border-collapse:collapse;font-size:.9rem;min-width:50%}
table.data th,table.data td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;white-space:nowrap}
table.data th{background:var(--head);font-weight:600}
table.data td.num,table.data th.num{text-align:right;font-variant-numeric:tabular-nums}
table.data td.wrap{white-space:normal;min-width:16em}
html.js table.data th{cursor:pointer;user-select:none}
html.js table.data th[aria-sort=ascending]::after{content:" \25B2";font-size:.7em}
html.js table.data th[aria-sort=descending]::after{content:" \25BC";font-size:.7em}
figure.chart{margin:8px 0 14px}
figure.chart figcaption{color:var(--muted);font-size:.88rem;margin-bottom:4px}
table.bars{border-collapse:collapse;width:100%;font-size:.88rem}
table.bars th{font-weight:normal;text-align:left;padding:2px 8px 2px 0;width:34%;overflow-wrap:anywhere;vertical-align:middle}
table.bars td{padding:2px 0;vertical-align:middle}
table.bars td.num{text-align:right;width:7em;padding-left:8px;font-variant-numeric:tabular-nums;white-space:nowrap}
table.bars svg{display:block;width:100%;height:14px}
svg.timeline{display:block;width:100%;height:190px;background:linear-gradient(var(--line),var(--line)) bottom/100% 1px no-repeat}
.axis{display:flex;justify-content:space-between;color:var(--muted);font-size:.8rem;gap:8px}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:.85rem;margin:4px 0}
.legend i{display:inline-block;width:.8em;height:.8em;margin-right:4px;vertical-align:-1px;border-radius:2px}
.none{color:var(--muted);font-style:italic}
details{margin:6px 0}summary{cursor:pointer;color:var(--link);font-size:.9rem}
footer{color:var(--muted);font-size:.8rem;padding:24px 16px}
.tip{position:fixed;z-index:9;pointer-events:none;background:#222;color:#fff;padding:3px 7px;border-radius:4px;font-size:.8rem;white-space:nowrap}
svg rect.hit:hover,svg rect.seg:hover{opacity:.75}
@media (max-width:600px){body{font-size:14px}header,main,footer{padding:0 10px}table.bars th{width:42%}table.bars td.num{width:5.5em}svg.timeline{height:140px}}
@media print{body{font-size:10.5pt}nav,.tip,details>summary{display:none}details{display:block}header,main,footer{max-width:none;padding:0}section{break-inside:avoid-page}table.data th{background:none}.scroll{overflow:visible}*{-webkit-print-color-adjust:exact;print-color-adjust:exact}a{color:inherit;text-decoration:none}}
"#;

/// The page's script: marks the document (`html.js`, `data-ready`), sorts tables by a click
/// on their header, shows a tooltip for chart bars (the SVG `<title>` does that without it),
/// opens the timeline's numbers for printing.
const SCRIPT: &str = r#"
(function(){
var root=document.documentElement;root.classList.add('js');
function key(td){var v=td.getAttribute('data-v');return v!==null?v:td.textContent;}
function cmp(a,b){var x=parseFloat(a),y=parseFloat(b);
 if(!isNaN(x)&&!isNaN(y)&&String(x)===a&&String(y)===b)return x-y;return a<b?-1:a>b?1:0;}
document.querySelectorAll('table.data').forEach(function(t){
 var ths=t.tHead?t.tHead.rows[0].cells:[];
 Array.prototype.forEach.call(ths,function(th,i){
  th.tabIndex=0;th.title='Sort';
  function go(){var asc=th.getAttribute('aria-sort')==='descending';
   Array.prototype.forEach.call(ths,function(o){o.removeAttribute('aria-sort');});
   th.setAttribute('aria-sort',asc?'ascending':'descending');
   var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows);
   rows.sort(function(r,s){var c=cmp(key(r.cells[i]),key(s.cells[i]));return asc?c:-c;});
   rows.forEach(function(r){b.appendChild(r);});}
  th.addEventListener('click',go);
  th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();go();}});
 });});
var tip=document.createElement('div');tip.className='tip';tip.hidden=true;document.body.appendChild(tip);
function show(e){var t=e.target.closest?e.target.closest('[data-tip]'):null;
 if(!t){tip.hidden=true;return;}
 tip.textContent=t.getAttribute('data-tip');tip.hidden=false;
 var x=Math.min(e.clientX+12,window.innerWidth-tip.offsetWidth-4);
 tip.style.left=Math.max(4,x)+'px';tip.style.top=(e.clientY+14)+'px';}
document.addEventListener('mousemove',show);
document.addEventListener('click',show);
window.addEventListener('beforeprint',function(){document.querySelectorAll('details').forEach(function(d){d.open=true;});});
root.setAttribute('data-ready','1');
})();
"#;

/// What the header says about the run besides the report itself.
pub struct PageInfo<'a> {
    pub opts: &'a AnalyzeOptions,
    /// When the page was made (shown in the header and the footer).
    pub generated: crate::record::Timestamp,
    /// The script's nonce for the Content-Security-Policy (letters and digits).
    pub nonce: &'a str,
}

/// A fresh nonce: 128 bits from the system's random source, hex.
pub fn new_nonce() -> String {
    let mut b = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    if ok.is_err() {
        // Without /dev/urandom the nonce still differs per run; it is defence in depth only
        // (every value on the page is escaped).
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = format!("{}{}{}", t.as_nanos(), std::process::id(), std::ptr::addr_of!(b) as usize);
        b = xxhash_rust::xxh3::xxh3_128(seed.as_bytes()).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The time window in words: the filters' bounds, else the stored packets' span.
pub fn window_text(rep: &Report, opts: &AnalyzeOptions) -> String {
    match (opts.since, opts.until) {
        (Some(s), Some(u)) => format!("{} to {} UTC", render_time(s), render_time(u)),
        (Some(s), None) => format!("since {} UTC", render_time(s)),
        (None, Some(u)) => format!("until {} UTC", render_time(u)),
        (None, None) => match (rep.first, rep.last) {
            (Some(f), Some(l)) => format!("all packets, {} to {} UTC", render_time(f), render_time(l)),
            _ => "all packets".to_string(),
        },
    }
}

/// Where a module goes on the page: the charts first (what a person looks at in the morning:
/// the timeline, top sources, ports, scans), then the other tables in the text report's order.
fn place(m: Module) -> (u8, Module) {
    match m {
        Module::Timeline => (0, m),
        Module::Sources => (1, m),
        Module::Ports => (2, m),
        Module::Scans => (3, m),
        _ => (4, m),
    }
}

/// The whole page.
pub fn page(rep: &Report, info: &PageInfo<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    let mut h = String::with_capacity(64 * 1024);
    let mut pal = Palette { seen: Vec::new() };
    let window = window_text(rep, info.opts);
    let nonce: String = info.nonce.chars().filter(char::is_ascii_alphanumeric).collect();
    let mut sections: Vec<&Section> = rep.sections.iter().collect();
    sections.sort_by_key(|s| place(s.module));
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; \
         script-src 'nonce-{nonce}'; img-src data:; base-uri 'none'; form-action 'none'\">\n\
         <meta name=\"generator\" content=\"ipta {ver}\">\n\
         <title>ipta report: {table}, {win}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<header>\n\
         <h1>Firewall report of <code>{table}</code></h1>\n<dl class=\"meta\">\n",
        ver = env!("CARGO_PKG_VERSION"),
        table = esc(&rep.table),
        win = esc(&window),
    );
    let host = match &info.opts.host {
        Some(x) => esc(x),
        None => "all hosts".to_string(),
    };
    let others: Vec<String> = rep
        .filters
        .iter()
        .filter(|f| !f.starts_with("since ") && !f.starts_with("until ") && !f.starts_with("host "))
        .map(|f| esc(f))
        .collect();
    let mut meta = vec![
        ("Window", esc(&window)),
        ("Hosts", host),
        ("Filters", if others.is_empty() { "none".to_string() } else { others.join(", ") }),
    ];
    // Without a window the Window line already gives the packets' span.
    let windowed = info.opts.since.is_some() || info.opts.until.is_some();
    if let (Some(f), Some(l), true) = (rep.first, rep.last, windowed) {
        meta.push(("Packets seen", format!("{} to {} UTC", render_time(f), render_time(l))));
    }
    meta.push(("Generated", format!("{} UTC", render_time(info.generated))));
    for (k, v) in meta {
        let _ = writeln!(h, "<dt>{k}</dt><dd data-meta=\"{}\">{v}</dd>", k.to_ascii_lowercase().replace(' ', "-"));
    }
    h.push_str("</dl>\n");
    let _ = write!(
        h,
        "<div class=\"cards\"><div class=\"card\"><b id=\"packets\" data-value=\"{}\">{}</b><span>packets</span></div>",
        rep.packets,
        group_digits(rep.packets)
    );
    for s in &sections {
        if s.module == Module::Scans {
            let _ = write!(
                h,
                "<div class=\"card\"><b data-value=\"{n}\">{n}</b><span>scanning sources shown</span></div>",
                n = s.rows.len()
            );
        }
    }
    h.push_str("</div>\n");
    if rep.packets > 0 && !rep.sections.is_empty() {
        h.push_str("<nav>");
        for s in &sections {
            let _ = write!(h, "<a href=\"#{}\">{}</a>", s.module.name(), esc(s.module.title()));
        }
        h.push_str("</nav>\n");
    }
    h.push_str("</header>\n<main>\n");
    if rep.packets == 0 {
        let why = if rep.filters.is_empty() {
            "The table is empty: no packets to analyze."
        } else {
            "No packets match these filters."
        };
        let _ = writeln!(h, "<p class=\"none\" id=\"empty\">{why}</p>");
    } else {
        for s in &sections {
            section(&mut h, s, rep, &mut pal);
        }
    }
    let _ = write!(
        h,
        "</main>\n<footer>Made by ipta {} on {} UTC from table <code>{}</code>; times are UTC.</footer>\n\
         <script nonce=\"{nonce}\">{SCRIPT}</script>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        render_time(info.generated),
        esc(&rep.table)
    );
    out.write_all(h.as_bytes())
}

fn section(h: &mut String, s: &Section, rep: &Report, pal: &mut Palette) {
    let title = match s.module {
        Module::Scans => format!("{} (sources on at least {} ports)", s.module.title(), rep.scan_threshold),
        _ => s.module.title().to_string(),
    };
    let _ = writeln!(h, "<section id=\"{}\">\n<h2>{}</h2>", s.module.name(), esc(&title));
    if let Some(tl) = &s.timeline {
        timeline(h, tl, pal);
        h.push_str("</section>\n");
        return;
    }
    if s.rows.is_empty() {
        h.push_str("<p class=\"none\">(none)</p>\n</section>\n");
        return;
    }
    match s.module {
        Module::Sources => source_chart(h, s, rep, pal),
        Module::Ports => column_chart(h, s, rep, "ports", "Packets per destination port", 0),
        Module::Scans => column_chart(h, s, rep, "scans", "Distinct destination ports per scanning source", 1),
        _ => {}
    }
    data_table(h, s, rep);
    h.push_str("</section>\n");
}

/// A row's label for a chart: its key cells (not counts or times) joined.
fn row_label(s: &Section, r: &[Cell], rep: &Report) -> String {
    let parts: Vec<String> = s
        .columns
        .iter()
        .zip(r)
        .filter(|(c, v)| !matches!(v, Cell::Count(_) | Cell::Time(_) | Cell::Actions(_)) && c.key != "count")
        .map(|(c, v)| match (c.key, v) {
            ("dpt", Cell::Port(Some(p))) => format!("port {p}"),
            ("dpt", Cell::Port(None)) => String::new(),
            _ => cell_text(v, rep),
        })
        .filter(|t| !t.is_empty())
        .collect();
    parts.join(" ")
}

/// Index of the column holding `key`.
fn col(s: &Section, key: &str) -> Option<usize> {
    s.columns.iter().position(|c| c.key == key)
}

fn count_at(r: &[Cell], i: usize) -> u64 {
    match r.get(i) {
        Some(Cell::Count(n)) => *n,
        _ => 0,
    }
}

/// Horizontal bars of one count column (`value_col`: the column index), one per row.
fn column_chart(h: &mut String, s: &Section, rep: &Report, name: &str, caption: &str, value_col: usize) {
    let Some(first_count) = s.rows.first().and_then(|r| r.iter().position(|c| matches!(c, Cell::Count(_)))) else {
        return;
    };
    // Ports: the count is the first column; scans: the ports column (after the source).
    let vi = if value_col == 0 { first_count } else { col(s, "ports").unwrap_or(first_count) };
    let max = s.rows.iter().map(|r| count_at(r, vi)).max().unwrap_or(0);
    let _ = writeln!(h, "<figure class=\"chart\" data-chart=\"{name}\">\n<figcaption>{}</figcaption>\n<table class=\"bars\">", esc(caption));
    for r in &s.rows {
        let v = count_at(r, vi);
        let label = row_label(s, r, rep);
        let w = bar_len(v, max, BAR_SPAN);
        let tip = format!("{label}: {}", group_digits(v));
        let _ = writeln!(
            h,
            "<tr data-label=\"{l}\"><th scope=\"row\">{l}</th><td><svg viewBox=\"0 0 {BAR_SPAN} 10\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{t}\">\
             <rect class=\"hit\" x=\"0\" y=\"0\" width=\"{w}\" height=\"10\" fill=\"#4e79a7\" data-value=\"{v}\" data-tip=\"{t}\"><title>{t}</title></rect></svg></td>\
             <td class=\"num\">{n}</td></tr>",
            l = esc(&label),
            t = esc(&tip),
            n = group_digits(v),
        );
    }
    h.push_str("</table>\n</figure>\n");
}

/// Top sources: one bar per source, split by action in the action's colour.
fn source_chart(h: &mut String, s: &Section, rep: &Report, pal: &mut Palette) {
    let (Some(ci), Some(si)) = (col(s, "count"), col(s, "src")) else { return };
    let ai = col(s, "actions");
    let max = s.rows.iter().map(|r| count_at(r, ci)).max().unwrap_or(0);
    h.push_str("<figure class=\"chart\" data-chart=\"sources\">\n<figcaption>Packets per source, by action</figcaption>\n<table class=\"bars\">\n");
    let mut legend: Vec<(String, &'static str)> = Vec::new();
    for r in &s.rows {
        let total = count_at(r, ci);
        let label = cell_text(&r[si], rep);
        let actions: Vec<(String, u64)> = match ai.and_then(|i| r.get(i)) {
            Some(Cell::Actions(v)) if !v.is_empty() => v.clone(),
            _ => vec![(String::new(), total)],
        };
        let _ = write!(
            h,
            "<tr data-label=\"{l}\" data-value=\"{total}\"><th scope=\"row\">{l}</th><td><svg viewBox=\"0 0 {BAR_SPAN} 10\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{l}: {n} packets\">",
            l = esc(&label),
            n = group_digits(total)
        );
        let mut x = 0.0f64;
        let mut cum = 0u64;
        for (a, n) in &actions {
            // Segments end where the running total ends, so rounding never adds up past the
            // bar of the row's total.
            cum += n;
            let end = bar_len(cum, max, BAR_SPAN);
            let colour = if a.is_empty() { "#4e79a7" } else { pal.colour(a) };
            if !a.is_empty() && !legend.iter().any(|(x, _)| x == a) {
                legend.push((a.clone(), colour));
            }
            let tip = format!("{label} {a}: {}", group_digits(*n));
            let _ = write!(
                h,
                "<rect class=\"seg\" x=\"{x}\" y=\"0\" width=\"{w:.1}\" height=\"10\" fill=\"{colour}\" data-action=\"{ae}\" data-value=\"{n}\" data-tip=\"{t}\"><title>{t}</title></rect>",
                w = (end - x).max(0.0),
                ae = esc(a),
                t = esc(&tip)
            );
            x = end;
        }
        let _ = writeln!(h, "</svg></td><td class=\"num\">{}</td></tr>", group_digits(total));
    }
    h.push_str("</table>\n");
    legend_html(h, &legend);
    h.push_str("</figure>\n");
}

fn legend_html(h: &mut String, legend: &[(String, &'static str)]) {
    if legend.is_empty() {
        return;
    }
    h.push_str("<div class=\"legend\">");
    for (a, c) in legend {
        let _ = write!(h, "<span data-action=\"{e}\"><i style=\"background:{c}\"></i>{e}</span>", e = esc(a));
    }
    h.push_str("</div>\n");
}

fn bucket_label(unit: Unit, t: crate::record::Timestamp) -> String {
    match unit {
        Unit::Hour => t.to_chrono().format("%Y-%m-%d %H:00").to_string(),
        Unit::Day => t.to_chrono().format("%Y-%m-%d").to_string(),
        Unit::Week => format!("{} +7d", t.to_chrono().format("%Y-%m-%d")),
    }
}

/// The timeline: a column per bucket, stacked by action (most packets at the bottom), a
/// legend, the time axis in HTML below (SVG text would be stretched with the bars), and the
/// numbers in a table under a disclosure.
fn timeline(h: &mut String, tl: &Timeline, pal: &mut Palette) {
    let n = tl.buckets.len();
    if n == 0 {
        h.push_str("<p class=\"none\">(none)</p>\n");
        return;
    }
    let totals: Vec<u64> = tl.buckets.iter().map(|b| b.1.iter().sum()).collect();
    let max = totals.iter().copied().max().unwrap_or(0);
    let colours: Vec<&'static str> = tl.actions.iter().map(|a| pal.colour(a)).collect();
    let _ = writeln!(
        h,
        "<figure class=\"chart\" data-chart=\"timeline\" data-unit=\"{u}\" data-max=\"{max}\">\n<figcaption>Packets per {u} (UTC), stacked by action; the highest bar is {m} packets</figcaption>",
        u = tl.unit.name(),
        m = group_digits(max)
    );
    let legend: Vec<(String, &'static str)> = tl.actions.iter().cloned().zip(colours.iter().copied()).collect();
    legend_html(h, &legend);
    let step = 10.0;
    let _ = write!(
        h,
        "<svg class=\"timeline\" viewBox=\"0 0 {w} {TIMELINE_SPAN}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"Packets per {u}\">",
        w = n as f64 * step,
        u = tl.unit.name()
    );
    for (i, (t, counts)) in tl.buckets.iter().enumerate() {
        let label = bucket_label(tl.unit, *t);
        let x = i as f64 * step + 1.0;
        let mut cum = 0u64;
        let mut y_top = TIMELINE_SPAN;
        let _ = write!(h, "<g data-time=\"{}\" data-count=\"{}\">", t.to_rfc3339(), totals[i]);
        for (j, c) in counts.iter().enumerate() {
            if *c == 0 {
                continue;
            }
            cum += c;
            let top = TIMELINE_SPAN - bar_len(cum, max, TIMELINE_SPAN);
            let tip = format!("{label}: {} {}", group_digits(*c), tl.actions[j]);
            let _ = write!(
                h,
                "<rect class=\"seg\" x=\"{x}\" y=\"{top:.1}\" width=\"{bw}\" height=\"{hgt:.1}\" fill=\"{col}\" data-action=\"{a}\" data-value=\"{c}\" data-tip=\"{tp}\"><title>{tp}</title></rect>",
                bw = step - 2.0,
                hgt = (y_top - top).max(0.0),
                col = colours[j],
                a = esc(&tl.actions[j]),
                tp = esc(&tip)
            );
            y_top = top;
        }
        h.push_str("</g>");
    }
    h.push_str("</svg>\n<div class=\"axis\">");
    // First, middle and last bucket under the chart.
    let mut ticks = vec![0usize];
    if n > 2 {
        ticks.push(n / 2);
    }
    if n > 1 {
        ticks.push(n - 1);
    }
    for i in ticks {
        let _ = write!(h, "<span>{}</span>", bucket_label(tl.unit, tl.buckets[i].0));
    }
    h.push_str("</div>\n</figure>\n<details><summary>Numbers of the timeline</summary><div class=\"scroll\"><table class=\"data\" data-module=\"timeline\"><thead><tr><th>Time (UTC)</th><th class=\"num\">Count</th>");
    for a in &tl.actions {
        let _ = write!(h, "<th class=\"num\">{}</th>", esc(a));
    }
    h.push_str("</tr></thead><tbody>\n");
    for (i, (t, counts)) in tl.buckets.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td data-v=\"{}\">{}</td><td class=\"num\" data-v=\"{}\">{}</td>",
            t.to_rfc3339(),
            bucket_label(tl.unit, *t),
            totals[i],
            group_digits(totals[i])
        );
        for c in counts {
            let _ = write!(h, "<td class=\"num\" data-v=\"{c}\">{}</td>", group_digits(*c));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div></details>\n");
}

/// A module's rows as a table (the text report's table); numbers carry their raw value for
/// sorting.
fn data_table(h: &mut String, s: &Section, rep: &Report) {
    let _ = write!(h, "<div class=\"scroll\"><table class=\"data\" data-module=\"{}\"><thead><tr>", s.module.name());
    let numeric: Vec<bool> = s
        .columns
        .iter()
        .enumerate()
        .map(|(i, _)| s.rows.first().is_some_and(|r| matches!(r.get(i), Some(Cell::Count(_) | Cell::Port(_)))))
        .collect();
    for (c, num) in s.columns.iter().zip(&numeric) {
        let _ = write!(h, "<th{} data-key=\"{}\">{}</th>", if *num { " class=\"num\"" } else { "" }, c.key, esc(c.header));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for r in &s.rows {
        h.push_str("<tr>");
        for c in r {
            let text = esc(&cell_text(c, rep));
            match c {
                Cell::Count(n) => {
                    let _ = write!(h, "<td class=\"num\" data-v=\"{n}\">{text}</td>");
                }
                Cell::Port(p) => {
                    let _ = write!(h, "<td class=\"num\" data-v=\"{}\">{text}</td>", p.map(i64::from).unwrap_or(-1));
                }
                Cell::Time(t) => {
                    let v = t.map(|t| t.to_rfc3339()).unwrap_or_default();
                    let _ = write!(h, "<td data-v=\"{v}\">{text}</td>");
                }
                Cell::Actions(_) => {
                    let _ = write!(h, "<td class=\"wrap\">{text}</td>");
                }
                _ => {
                    let _ = write!(h, "<td>{text}</td>");
                }
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Timestamp;
    use crate::report::query::{Col, Via};

    const EVIL: &str = "<script>alert(1)</script>";

    fn sample() -> Report {
        let cols = |v: &[(&'static str, &'static str)]| v.iter().map(|(h, k)| Col { header: h, key: k }).collect();
        Report {
            table: "logs".into(),
            packets: 460,
            first: Some(Timestamp(1_762_000_000_000_000)),
            last: Some(Timestamp(1_762_003_600_000_000)),
            filters: vec![format!("host {EVIL}")],
            scan_threshold: 15,
            sections: vec![
                Section {
                    module: Module::Ports,
                    columns: cols(&[("Count", "count"), ("Port", "dpt"), ("Proto", "proto"), ("Action", "action")]),
                    rows: vec![
                        vec![Cell::Count(400), Cell::Port(Some(22)), Cell::Text("TCP".into()), Cell::Text(EVIL.into())],
                        vec![Cell::Count(100), Cell::Port(Some(23)), Cell::Text("TCP".into()), Cell::Text("DROP".into())],
                        vec![Cell::Count(0), Cell::Port(None), Cell::Text("ICMP".into()), Cell::Text("DROP".into())],
                    ],
                    timeline: None,
                    via: Via::Summary,
                },
                Section {
                    module: Module::Sources,
                    columns: cols(&[("Count", "count"), ("Source", "src"), ("Actions", "actions")]),
                    rows: vec![vec![
                        Cell::Count(300),
                        Cell::Addr(vec![192, 0, 2, 1]),
                        Cell::Actions(vec![("DROP".into(), 200), (EVIL.into(), 100)]),
                    ]],
                    timeline: None,
                    via: Via::Summary,
                },
                Section {
                    module: Module::Timeline,
                    columns: vec![],
                    rows: vec![],
                    timeline: Some(Timeline {
                        unit: Unit::Hour,
                        actions: vec!["DROP".into(), EVIL.into()],
                        buckets: vec![
                            (Timestamp(1_762_000_000_000_000), vec![300, 100]),
                            (Timestamp(1_762_003_600_000_000), vec![50, 0]),
                        ],
                    }),
                    via: Via::Summary,
                },
            ],
            ..Default::default()
        }
    }

    fn render(rep: &Report) -> String {
        let opts = AnalyzeOptions { host: Some(EVIL.into()), ..Default::default() };
        let info = PageInfo { opts: &opts, generated: Timestamp(1_762_010_000_000_000), nonce: "abc123" };
        let mut out = Vec::new();
        page(rep, &info, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_markup_and_controls() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(esc("a\u{1b}[31mb"), "a\u{fffd}[31mb");
        assert_eq!(esc("plain 1.2.3.4"), "plain 1.2.3.4");
    }

    #[test]
    fn hostile_text_appears_only_escaped() {
        let p = render(&sample());
        assert!(!p.contains(EVIL), "raw markup on the page");
        assert!(p.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        // Exactly one script element: the page's own, with the nonce of the policy.
        assert_eq!(p.matches("<script").count(), 1);
        assert!(p.contains("<script nonce=\"abc123\">"));
        assert!(p.contains("script-src 'nonce-abc123'"));
        // No reference to anything outside the page.
        for needle in ["http://", "https://", "src=\"", "href=\"http", "@import", "url("] {
            assert!(!p.contains(needle), "external reference {needle:?}");
        }
    }

    /// The `width` (or `height`) attributes of the rects with `data-value`, in page order.
    fn rects(p: &str, chart: &str, attr: &str) -> Vec<(u64, f64)> {
        let start = p.find(&format!("data-chart=\"{chart}\"")).unwrap();
        let end = start + p[start..].find("</figure>").unwrap();
        p[start..end]
            .split("<rect ")
            .skip(1)
            .map(|r| {
                let get = |k: &str| {
                    let i = r.find(&format!(" {k}=\"")).unwrap() + k.len() + 3;
                    r[i..i + r[i..].find('"').unwrap()].to_string()
                };
                (get("data-value").parse().unwrap(), get(attr).parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn bars_are_proportional_to_their_numbers() {
        let p = render(&sample());
        let ports = rects(&p, "ports", "width");
        assert_eq!(ports.iter().map(|r| r.0).collect::<Vec<_>>(), vec![400, 100, 0]);
        assert_eq!(ports[0].1, BAR_SPAN);
        assert_eq!(ports[1].1, BAR_SPAN / 4.0);
        assert_eq!(ports[2].1, 0.0);
        // The stacked source bar: 200 + 100 of a maximum of 300.
        let src = rects(&p, "sources", "width");
        assert_eq!(src, vec![(200, 666.7), (100, 333.3)]);
        // Timeline: the 400-packet hour is full height, split 300/100; the next is 50/400.
        let tl = rects(&p, "timeline", "height");
        assert_eq!(tl, vec![(300, 75.0), (100, 25.0), (50, 12.5)]);
        assert_eq!(bar_len(1, 3, 1000.0), 333.3);
        assert_eq!(bar_len(5, 0, 1000.0), 0.0);
    }

    #[test]
    fn header_names_window_hosts_and_filters() {
        let mut rep = sample();
        rep.filters.push("no ACCEPT".into());
        let p = render(&rep);
        assert!(p.contains("<meta name=\"viewport\""));
        assert!(p.contains("@media print"));
        assert!(p.contains("data-meta=\"hosts\">&lt;script&gt;"));
        assert!(p.contains("data-meta=\"filters\">no ACCEPT<"));
        assert!(p.contains("all packets, 2025-11-01 12:26:40 to 2025-11-01 13:26:40 UTC"), "{p}");
        for m in ["ports", "sources", "timeline"] {
            assert!(p.contains(&format!("<section id=\"{m}\">")));
        }
    }

    #[test]
    fn an_empty_report_says_so() {
        let rep = Report { table: "logs".into(), ..Default::default() };
        let p = render(&rep);
        assert!(p.contains("The table is empty"));
        assert!(p.ends_with("</html>\n"));
    }
}
