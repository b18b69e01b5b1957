//! The modules keyed by source (`denied`, `icmp`, `invalid`, `sources`, `scans`) of a window
//! report, from one read of the window's packet rows, aggregated here.
//!
//! Why: the time buckets cannot hold these modules (nearly every packet of a busy firewall
//! has a source key of its own per hour), so a window reads them from the packet table. Five
//! GROUP BYs on the server each read the window again and build a temporary table per
//! module; reading the rows once in the order the index gives and counting them in hash
//! maps here is several times faster (`cargo bench --bench summaries` prints both).
//!
//! The result is the same as the packet-table queries of `query` (which the tests keep as
//! the independent check): the same filter, the same keys (a missing address or text is
//! empty, a missing port -1), the same order (count descending, then the keys in the
//! server's order: bytes for addresses and `utf8mb4_bin` texts, numbers for ports).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use mysql::prelude::Queryable;

use super::query::{columns_of, raw_filter, Cell, Section, Via};
use super::{AnalyzeOptions, Module, ReportError};
use crate::store::summary::{bump, AddrKey, Agg};
use crate::store::value::{value_bytes as bytes, value_int as int, value_ts};

/// Distinct keys (groups, pairs, sources) the pass holds at most, about 85 bytes each (measured:
/// 134 MiB peak for the 1,575,393 keys of all 1,000,000 packets of the 30-day bench workload):
/// about 340 MiB. A window
/// with more is left to the server's GROUP BYs (slower, in the server's temporary tables).
pub const MAX_KEYS: usize = 4_000_000;

/// The modules this pass answers.
pub fn handles(m: Module) -> bool {
    matches!(m, Module::Denied | Module::Icmp | Module::Invalid | Module::Sources | Module::Scans)
}

/// The few distinct texts of the window (actions, protocols), each kept once.
#[derive(Default)]
struct Names {
    ids: HashMap<Vec<u8>, u32>,
    list: Vec<String>,
}

impl Names {
    fn id(&mut self, s: &[u8]) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(String::from_utf8_lossy(s).into_owned());
        self.ids.insert(s.to_vec(), i);
        i
    }
    fn get(&self, i: u32) -> &str {
        &self.list[i as usize]
    }
}

/// What the selected modules need, filled row by row.
#[derive(Default)]
struct Pass {
    names: Names,
    /// (src, dpt, proto, action) of rows whose action is not ACCEPT.
    denied: Option<HashMap<(AddrKey, i32, u32, u32), Agg>>,
    /// (src, dst, action) of ICMP rows.
    icmp: Option<HashMap<(AddrKey, AddrKey, u32), Agg>>,
    /// (src, dpt, proto) of INVALID rows.
    invalid: Option<HashMap<(AddrKey, i32, u32), Agg>>,
    /// Per source (sources and scans), with the packets per action for `sources`.
    src: Option<HashMap<AddrKey, Agg>>,
    src_action: Option<HashMap<(AddrKey, u32), u64>>,
    /// Distinct ports and destinations per source (scans).
    ports: Option<HashSet<(AddrKey, i32)>>,
    hosts: Option<HashSet<(AddrKey, AddrKey)>>,
}

impl Pass {
    /// Distinct keys held so far.
    fn keys(&self) -> usize {
        let n = |m: Option<usize>| m.unwrap_or(0);
        n(self.denied.as_ref().map(HashMap::len))
            + n(self.icmp.as_ref().map(HashMap::len))
            + n(self.invalid.as_ref().map(HashMap::len))
            + n(self.src.as_ref().map(HashMap::len))
            + n(self.src_action.as_ref().map(HashMap::len))
            + n(self.ports.as_ref().map(HashSet::len))
            + n(self.hosts.as_ref().map(HashSet::len))
    }

    fn new(mods: &[Module]) -> Pass {
        let has = |m| mods.contains(&m);
        let mut p = Pass::default();
        if has(Module::Denied) {
            p.denied = Some(HashMap::new());
        }
        if has(Module::Icmp) {
            p.icmp = Some(HashMap::new());
        }
        if has(Module::Invalid) {
            p.invalid = Some(HashMap::new());
        }
        if has(Module::Sources) || has(Module::Scans) {
            p.src = Some(HashMap::new());
        }
        if has(Module::Sources) {
            p.src_action = Some(HashMap::new());
        }
        if has(Module::Scans) {
            p.ports = Some(HashSet::new());
            p.hosts = Some(HashSet::new());
        }
        p
    }

    /// One row of `ts, src, dst, action, proto, dpt, repeat`.
    fn add(&mut self, row: &mysql::Row) -> Result<(), ReportError> {
        let bad = |what: &str| ReportError::Sql(format!("unexpected {what} in a packet row"));
        let ts = value_ts(row.as_ref(0)).ok_or_else(|| bad("ts"))?;
        let src = AddrKey::from_stored(bytes(row.as_ref(1)));
        let dst_cell = bytes(row.as_ref(2));
        let dst = AddrKey::from_stored(dst_cell);
        // The columns' collation (utf8mb4_bin) pads with spaces: `DROP` and `DROP ` are one
        // group and one value to the server's comparisons, so they are here too.
        let action_text = trim_end_spaces(bytes(row.as_ref(3)).ok_or_else(|| bad("action"))?);
        let proto_text = trim_end_spaces(bytes(row.as_ref(4)).unwrap_or(b""));
        let dpt_cell = int(row.as_ref(5)).map(|p| p as i32);
        let dpt = dpt_cell.unwrap_or(-1);
        let n = int(row.as_ref(6)).ok_or_else(|| bad("repeat"))? as u64;
        let action = self.names.id(action_text);
        let proto = self.names.id(proto_text);
        if let Some(m) = &mut self.denied {
            if action_text != b"ACCEPT" {
                bump(m, (src, dpt, proto, action), n, ts);
            }
        }
        if let Some(m) = &mut self.icmp {
            if proto_text == b"ICMP" || proto_text == b"ICMPv6" {
                bump(m, (src, dst, action), n, ts);
            }
        }
        if let Some(m) = &mut self.invalid {
            if action_text == b"INVALID" {
                bump(m, (src, dpt, proto), n, ts);
            }
        }
        if let Some(m) = &mut self.src {
            bump(m, src, n, ts);
        }
        if let Some(m) = &mut self.src_action {
            *m.entry((src, action)).or_insert(0) += n;
        }
        if let (Some(s), Some(d)) = (&mut self.ports, dpt_cell) {
            s.insert((src, d));
        }
        if let (Some(s), Some(_)) = (&mut self.hosts, dst_cell) {
            s.insert((src, dst));
        }
        Ok(())
    }
}

fn trim_end_spaces(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' '] = s {
        s = rest;
    }
    s
}

/// The `limit` largest of `v` by `cmp` (count first, then keys), in that order.
fn top<T>(mut v: Vec<T>, limit: usize, cmp: impl Fn(&T, &T) -> Ordering) -> Vec<T> {
    if v.len() > limit {
        v.select_nth_unstable_by(limit, &cmp);
        v.truncate(limit);
    }
    v.sort_unstable_by(cmp);
    v
}

/// The rows of a grouping module: the `limit` groups with the most packets (ties in the key
/// order `keys` gives), each as its count, the cells `cells` makes of its key, first and last
/// seen (the shape of the packet-table queries' rows).
fn group_rows<K>(
    groups: Option<HashMap<K, Agg>>,
    limit: usize,
    keys: impl Fn(&K, &K) -> Ordering,
    cells: impl Fn(&K) -> Vec<Cell>,
) -> Vec<Vec<Cell>> {
    let v: Vec<(K, Agg)> = groups.unwrap_or_default().into_iter().collect();
    top(v, limit, |a, b| b.1.n.cmp(&a.1.n).then_with(|| keys(&a.0, &b.0)))
        .into_iter()
        .map(|(k, g)| {
            let mut row = vec![Cell::Count(g.n)];
            row.extend(cells(&k));
            row.push(Cell::Time(Some(g.first)));
            row.push(Cell::Time(Some(g.last)));
            row
        })
        .collect()
}

fn port(p: i32) -> Cell {
    Cell::Port(u16::try_from(p).ok())
}

fn addr(a: &AddrKey) -> Cell {
    Cell::Addr(a.bytes().to_vec())
}

fn section(module: Module, rows: Vec<Vec<Cell>>) -> Section {
    Section { module, columns: columns_of(module), rows, timeline: None, via: Via::Packets }
}

/// Runs the modules of `mods` that [`handles`] takes over the packet rows `opts` selects, in
/// one read. Returns their sections, in the order of `mods`.
pub fn run(conn: &mut mysql::Conn, table: &str, opts: &AnalyzeOptions, mods: &[Module]) -> Result<Vec<Section>, ReportError> {
    run_capped(conn, table, opts, mods, MAX_KEYS)
}

/// [`run`] with the cap on distinct keys given (tests use a small one).
pub fn run_capped(
    conn: &mut mysql::Conn,
    table: &str,
    opts: &AnalyzeOptions,
    mods: &[Module],
    max_keys: usize,
) -> Result<Vec<Section>, ReportError> {
    let mods: Vec<Module> = mods.iter().copied().filter(|m| handles(*m)).collect();
    if mods.is_empty() {
        return Ok(Vec::new());
    }
    let mut pass = Pass::new(&mods);
    let f = raw_filter(opts);
    let sql = format!(
        "SELECT `ts`, `src`, `dst`, `action`, `proto`, `dpt`, `repeat` FROM `{table}` WHERE {}",
        f.sql
    );
    {
        let mut res = conn.exec_iter(sql, f.params)?;
        for (i, row) in res.by_ref().enumerate() {
            pass.add(&row?)?;
            // Past the cap the window is too varied to count here: the server's GROUP BYs
            // (the caller's fallback for every module not returned) answer instead.
            if i % 4096 == 4095 && pass.keys() > max_keys {
                return Ok(Vec::new());
            }
        }
    }
    let limit = opts.limit;
    let names = &pass.names;
    let txt = |i: u32| names.get(i);
    let mut out = Vec::new();
    for m in mods {
        let rows: Vec<Vec<Cell>> = match m {
            Module::Denied => group_rows(
                pass.denied.take(),
                limit,
                |a, b| (a.0.bytes(), a.1, txt(a.2), txt(a.3)).cmp(&(b.0.bytes(), b.1, txt(b.2), txt(b.3))),
                |&(s, d, p, a)| vec![addr(&s), port(d), Cell::Text(txt(p).into()), Cell::Text(txt(a).into())],
            ),
            Module::Icmp => group_rows(
                pass.icmp.take(),
                limit,
                |a, b| (a.0.bytes(), a.1.bytes(), txt(a.2)).cmp(&(b.0.bytes(), b.1.bytes(), txt(b.2))),
                |&(s, d, a)| vec![addr(&s), addr(&d), Cell::Text(txt(a).into())],
            ),
            Module::Invalid => group_rows(
                pass.invalid.take(),
                limit,
                |a, b| (a.0.bytes(), a.1, txt(a.2)).cmp(&(b.0.bytes(), b.1, txt(b.2))),
                |&(s, d, p)| vec![addr(&s), port(d), Cell::Text(txt(p).into())],
            ),
            Module::Sources => {
                let v: Vec<(AddrKey, Agg)> = pass.src.as_ref().map(|m| m.iter().map(|(k, a)| (*k, *a)).collect()).unwrap_or_default();
                let shown = top(v, limit, |a, b| b.1.n.cmp(&a.1.n).then_with(|| a.0.bytes().cmp(b.0.bytes())));
                let want: HashSet<AddrKey> = shown.iter().map(|(s, _)| *s).collect();
                let mut acts: HashMap<AddrKey, Vec<(String, u64)>> = HashMap::new();
                for ((s, a), n) in pass.src_action.iter().flatten() {
                    if want.contains(s) {
                        acts.entry(*s).or_default().push((txt(*a).to_string(), *n));
                    }
                }
                shown
                    .into_iter()
                    .map(|(s, g)| {
                        let mut a = acts.remove(&s).unwrap_or_default();
                        a.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
                        vec![Cell::Count(g.n), addr(&s), Cell::Time(Some(g.first)), Cell::Time(Some(g.last)), Cell::Actions(a)]
                    })
                    .collect()
            }
            Module::Scans => {
                let mut ports: HashMap<AddrKey, u64> = HashMap::new();
                for (s, _) in pass.ports.iter().flatten() {
                    *ports.entry(*s).or_insert(0) += 1;
                }
                let mut hosts: HashMap<AddrKey, u64> = HashMap::new();
                for (s, _) in pass.hosts.iter().flatten() {
                    *hosts.entry(*s).or_insert(0) += 1;
                }
                let thr = u64::from(opts.scan_threshold);
                let v: Vec<(AddrKey, u64, Agg)> = pass
                    .src
                    .as_ref()
                    .map(|m| {
                        m.iter()
                            .filter_map(|(s, g)| {
                                let p = ports.get(s).copied().unwrap_or(0);
                                (p >= thr).then_some((*s, p, *g))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                top(v, limit, |a, b| b.1.cmp(&a.1).then(b.2.n.cmp(&a.2.n)).then_with(|| a.0.bytes().cmp(b.0.bytes())))
                    .into_iter()
                    .map(|(s, p, g)| {
                        vec![
                            addr(&s),
                            Cell::Count(p),
                            Cell::Count(g.n),
                            Cell::Count(hosts.get(&s).copied().unwrap_or(0)),
                            Cell::Time(Some(g.first)),
                            Cell::Time(Some(g.last)),
                        ]
                    })
                    .collect()
            }
            _ => unreachable!("filtered by handles()"),
        };
        out.push(section(m, rows));
    }
    Ok(out)
}
