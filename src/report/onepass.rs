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
use mysql::Value;

use super::query::{columns_of, raw_filter, Cell, Section, Via};
use super::{AnalyzeOptions, Module, ReportError};
use crate::record::Timestamp;
use crate::store::summary::{bump, AddrKey, Agg, Names};
use crate::store::value::{ts_value, value_bytes as bytes, value_int as int, value_ts};

/// The memory a pass's keys may take, as [`Pass::size`] estimates it (entries only): about
/// 105 MiB, which with the hash tables' free slots, their growth and the report around them
/// comes to a peak of about 300 MiB (`/usr/bin/time`, 10M-row bench workload: its 7-day
/// window, 2,335,447 rows, holds 90.6 MB of entries and peaked at 251 MiB; its 15-day window,
/// 4,998,868 rows and 177 MB of entries, is read in two parts and peaked at 293 MiB). A window
/// with more is read again in parts (see [`MAX_PARTS`]).
pub const MAX_BYTES: usize = 110_000_000;

/// The most parts a window is split into by source when its keys pass [`MAX_BYTES`]: every
/// key of these modules starts with the source, so each part holds its sources' whole counts
/// and the report's top rows are the top rows of the parts' top rows. Each part reads the
/// whole window again (the server filters it), so a window needing more than this is left to
/// the server's GROUP BYs (in its temporary tables).
pub const MAX_PARTS: u32 = 16;

/// The modules this pass answers.
pub fn handles(m: Module) -> bool {
    matches!(m, Module::Denied | Module::Icmp | Module::Invalid | Module::Sources | Module::Scans)
}

/// The key orders of the grouping modules (the server's: bytes, numbers, texts as
/// `utf8mb4_bin` compares them, bytes without trailing spaces: callers give texts as their
/// columns compare them, see [`trim_end_spaces`]).
impl Names {
    fn denied_cmp(&self, a: &(AddrKey, i32, u32, u32), b: &(AddrKey, i32, u32, u32)) -> Ordering {
        (a.0.bytes(), a.1, self.get(a.2), self.get(a.3)).cmp(&(b.0.bytes(), b.1, self.get(b.2), self.get(b.3)))
    }
    fn icmp_cmp(&self, a: &(AddrKey, AddrKey, u32), b: &(AddrKey, AddrKey, u32)) -> Ordering {
        (a.0.bytes(), a.1.bytes(), self.get(a.2)).cmp(&(b.0.bytes(), b.1.bytes(), self.get(b.2)))
    }
    fn invalid_cmp(&self, a: &(AddrKey, i32, u32), b: &(AddrKey, i32, u32)) -> Ordering {
        (a.0.bytes(), a.1, self.get(a.2)).cmp(&(b.0.bytes(), b.1, self.get(b.2)))
    }
}

/// What the selected modules need, filled row by row.
#[derive(Default)]
struct Pass {
    names: Names,
    /// The window's sources, each once; the keys below hold a source's index in `srcs`
    /// (smaller keys: less memory and faster hashing for millions of them).
    src_ids: HashMap<AddrKey, u32>,
    srcs: Vec<AddrKey>,
    /// (src, dpt, proto, action) of every row: `denied` is its rows whose action is not
    /// ACCEPT, a source's packets per action (`sources`) and distinct ports (`scans`) are
    /// summed from it at the end. One map where there were three: a row's cost is the random
    /// reads of the maps it touches (millions of keys do not stay in the caches), so each map
    /// fewer takes a share of the window's time off.
    flow: Option<HashMap<(u32, i32, u32, u32), Agg>>,
    /// Whether `flow` is kept for `denied`, `sources`, `scans` (any of them).
    denied: bool,
    sources: bool,
    scans: bool,
    /// (src, dst, action) of ICMP rows.
    icmp: Option<HashMap<(u32, AddrKey, u32), Agg>>,
    /// (src, dpt, proto) of INVALID rows.
    invalid: Option<HashMap<(u32, i32, u32), Agg>>,
    /// Per source, by index (sources and scans).
    src: Option<Vec<SrcAgg>>,
    /// Distinct destinations of the sources that have more than one (scans); a source's first
    /// destination is kept in its `SrcAgg`, so a source that knocks on one host only (most
    /// do) never reaches this set.
    hosts: Option<HashSet<(u32, AddrKey)>>,
    /// Narrowed to the sources of part 0 of this many (see [`Pass::narrow`]): rows of other
    /// sources are skipped, and `gone` marks the sources dropped when narrowing.
    keep: Option<u32>,
    gone: Vec<bool>,
}

/// The part of `parts` a source falls in, as the server's `CRC32(COALESCE(src,'')) % parts`.
fn part_of(src: &AddrKey, parts: u32) -> u32 {
    crc32fast::hash(src.bytes()) % parts
}

/// The top rows of each module, kept across the parts of a window.
#[derive(Default)]
struct Tops {
    denied: Vec<((AddrKey, i32, u32, u32), Agg)>,
    icmp: Vec<((AddrKey, AddrKey, u32), Agg)>,
    invalid: Vec<((AddrKey, i32, u32), Agg)>,
    sources: Vec<SourceRow>,
    /// Source, distinct ports, counts, distinct hosts.
    scans: Vec<(AddrKey, u64, Agg, u64)>,
}

/// A source, its counts and its packets per action.
type SourceRow = (AddrKey, Agg, Vec<(String, u64)>);

/// A source's counts, and its first destination (`hosts`: None before one is seen).
#[derive(Clone, Copy)]
struct SrcAgg {
    a: Agg,
    dst: Option<AddrKey>,
    /// Whether it had another destination too (its pairs are then in `Pass::hosts`).
    many: bool,
}

/// Appends `part` to `kept` and keeps the `limit` first by `cmp`, in that order.
fn keep_top<T>(kept: &mut Vec<T>, part: Vec<T>, limit: usize, cmp: impl Fn(&T, &T) -> Ordering) {
    kept.extend(part);
    *kept = top(std::mem::take(kept), limit, cmp);
}

/// A module's groups, unordered.
fn all<K>(m: Option<HashMap<K, Agg>>) -> Vec<(K, Agg)> {
    m.unwrap_or_default().into_iter().collect()
}

/// Count descending, then the key's order.
fn by_count<K>(keys: impl Fn(&K, &K) -> Ordering) -> impl Fn(&(K, Agg), &(K, Agg)) -> Ordering {
    move |a, b| b.1.n.cmp(&a.1.n).then_with(|| keys(&a.0, &b.0))
}

fn scans_cmp(a: &(AddrKey, u64, Agg, u64), b: &(AddrKey, u64, Agg, u64)) -> Ordering {
    b.1.cmp(&a.1).then(b.2.n.cmp(&a.2.n)).then_with(|| a.0.bytes().cmp(b.0.bytes()))
}

fn sources_cmp(a: &SourceRow, b: &SourceRow) -> Ordering {
    b.1.n.cmp(&a.1.n).then_with(|| a.0.bytes().cmp(b.0.bytes()))
}

impl Pass {
    /// The memory its keys take, estimated from their number (each entry's size and its
    /// hash table's control byte; the tables' free slots and growth come on top, which
    /// [`MAX_BYTES`] allows for). By size, not by count: a source costs several times a
    /// (source, destination) pair.
    fn size(&self) -> usize {
        use std::mem::size_of;
        fn map<K, V>(m: &Option<HashMap<K, V>>) -> usize {
            m.as_ref().map_or(0, |m| m.len() * (size_of::<(K, V)>() + 1))
        }
        let per_src = size_of::<(AddrKey, u32)>() + 1 + size_of::<AddrKey>() + self.src.as_ref().map_or(0, |_| size_of::<SrcAgg>());
        self.src_ids.len() * per_src
            + map(&self.flow)
            + map(&self.icmp)
            + map(&self.invalid)
            + self.hosts.as_ref().map_or(0, |m| m.len() * (size_of::<(u32, AddrKey)>() + 1))
    }

    /// A pass for `mods` (its texts, `names`, come from the reading thread at the end).
    fn new(mods: &[Module]) -> Pass {
        let has = |m| mods.contains(&m);
        let mut p = Pass {
            denied: has(Module::Denied),
            sources: has(Module::Sources),
            scans: has(Module::Scans),
            ..Pass::default()
        };
        if p.denied || p.sources || p.scans {
            p.flow = Some(HashMap::new());
        }
        if has(Module::Icmp) {
            p.icmp = Some(HashMap::new());
        }
        if has(Module::Invalid) {
            p.invalid = Some(HashMap::new());
        }
        if p.sources || p.scans {
            p.src = Some(Vec::new());
        }
        if p.scans {
            p.hosts = Some(HashSet::new());
        }
        p
    }

    /// One row, as [`decode`] gives it.
    fn add(&mut self, r: &Rec) {
        if self.keep.is_some_and(|k| part_of(&r.src, k) != 0) {
            return;
        }
        let (src, dst, ts, n) = (r.src, r.dst, r.ts, r.n);
        let s = match self.src_ids.get(&src) {
            Some(&i) => i,
            None => {
                let i = self.srcs.len() as u32;
                self.srcs.push(src);
                self.src_ids.insert(src, i);
                if let Some(v) = &mut self.src {
                    v.push(SrcAgg { a: Agg { n: 0, first: ts, last: ts }, dst: None, many: false });
                }
                i
            }
        };
        if let Some(m) = &mut self.flow {
            bump(m, (s, r.dpt, r.proto, r.action), n, ts);
        }
        if let Some(m) = &mut self.icmp {
            if r.icmp {
                bump(m, (s, dst, r.action), n, ts);
            }
        }
        if let Some(m) = &mut self.invalid {
            if r.invalid {
                bump(m, (s, r.dpt, r.proto), n, ts);
            }
        }
        if let Some(g) = self.src.as_mut().and_then(|v| v.get_mut(s as usize)) {
            g.a.add(n, ts);
            if let (Some(set), true) = (&mut self.hosts, r.has_dst) {
                match g.dst {
                    None => g.dst = Some(dst),
                    Some(first) if first == dst => {}
                    Some(first) => {
                        if !g.many {
                            g.many = true;
                            set.insert((s, first));
                        }
                        set.insert((s, dst));
                    }
                }
            }
        }
    }

    /// Keeps only the sources of part 0 of `parts` (and their keys), and from now on only
    /// their rows: every key starts with its source, so what is kept stays whole.
    fn narrow(&mut self, parts: u32) {
        self.keep = Some(parts);
        self.gone = self.srcs.iter().map(|s| part_of(s, parts) != 0).collect();
        let gone = &self.gone;
        let out = |i: u32| gone[i as usize];
        self.src_ids.retain(|_, i| !out(*i));
        if let Some(m) = &mut self.flow {
            m.retain(|k, _| !out(k.0));
        }
        if let Some(m) = &mut self.icmp {
            m.retain(|k, _| !out(k.0));
        }
        if let Some(m) = &mut self.invalid {
            m.retain(|k, _| !out(k.0));
        }
        if let Some(m) = &mut self.hosts {
            m.retain(|k| !out(k.0));
        }
    }

    /// Adds this part's top rows of each module to `tops`; gives back the texts.
    fn finish(mut self, tops: &mut Tops, limit: usize, thr: u64) -> Names {
        let names = std::mem::take(&mut self.names);
        let n = &names;
        let srcs = &self.srcs;
        let src = |i: u32| srcs[i as usize];
        let flow = self.flow.take().unwrap_or_default();
        if self.denied {
            let accept = n.find(b"ACCEPT");
            // The top rows are picked with the sources' indexes (smaller rows to move), then
            // given their addresses.
            let full = |k: &(u32, i32, u32, u32)| (src(k.0), k.1, k.2, k.3);
            let denied = flow.iter().filter(|(k, _)| Some(k.3) != accept).map(|(k, a)| (*k, *a)).collect();
            let best = top(denied, limit, by_count(|a, b| n.denied_cmp(&full(a), &full(b))));
            let best = best.into_iter().map(|(k, a)| (full(&k), a)).collect();
            keep_top(&mut tops.denied, best, limit, by_count(|a, b| n.denied_cmp(a, b)));
        }
        let icmp = all(self.icmp.take()).into_iter().map(|(k, a)| ((src(k.0), k.1, k.2), a)).collect();
        keep_top(&mut tops.icmp, icmp, limit, by_count(|a, b| n.icmp_cmp(a, b)));
        let invalid = all(self.invalid.take()).into_iter().map(|(k, a)| ((src(k.0), k.1, k.2), a)).collect();
        keep_top(&mut tops.invalid, invalid, limit, by_count(|a, b| n.invalid_cmp(a, b)));
        let per_src = self.src.take().unwrap_or_default();
        let gone = &self.gone;
        let kept = |i: usize| !gone.get(i).copied().unwrap_or(false);
        if self.sources {
            let v: Vec<(u32, SourceRow)> = per_src
                .iter()
                .enumerate()
                .filter(|&(i, _)| kept(i))
                .map(|(i, g)| (i as u32, (src(i as u32), g.a, Vec::new())))
                .collect();
            let mut shown = top(v, limit, |a, b| sources_cmp(&a.1, &b.1));
            // The packets per action of the shown sources only, from their flows.
            let mut at = vec![usize::MAX; srcs.len()];
            for (i, r) in shown.iter().enumerate() {
                at[r.0 as usize] = i;
            }
            let mut acts: HashMap<(usize, u32), u64> = HashMap::new();
            for (k, a) in &flow {
                let i = at[k.0 as usize];
                if i != usize::MAX {
                    *acts.entry((i, k.3)).or_insert(0) += a.n;
                }
            }
            for ((i, a), c) in acts {
                shown[i].1 .2.push((n.text(a), c));
            }
            for r in &mut shown {
                r.1 .2.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
            }
            keep_top(&mut tops.sources, shown.into_iter().map(|r| r.1).collect(), limit, sources_cmp);
        }
        if self.scans {
            // Distinct ports per source: its distinct (source, port) pairs among the flows
            // (NULL ports, -1 here, are not counted, as COUNT(DISTINCT) does not).
            let mut pairs: Vec<u64> = flow.keys().filter(|k| k.1 >= 0).map(|k| u64::from(k.0) << 32 | k.1 as u64).collect();
            pairs.sort_unstable();
            pairs.dedup();
            let mut ports = vec![0u64; srcs.len()];
            for p in pairs {
                ports[(p >> 32) as usize] += 1;
            }
            let mut hosts: Vec<u64> = per_src.iter().map(|g| u64::from(g.dst.is_some() && !g.many)).collect();
            for (s, _) in self.hosts.take().unwrap_or_default() {
                hosts[s as usize] += 1;
            }
            let v: Vec<(AddrKey, u64, Agg, u64)> = per_src
                .iter()
                .enumerate()
                .filter(|&(i, _)| kept(i) && ports[i] >= thr)
                .map(|(i, g)| (src(i as u32), ports[i], g.a, hosts[i]))
                .collect();
            keep_top(&mut tops.scans, v, limit, scans_cmp);
        }
        names
    }
}

/// One packet row as the pass counts it: decoded, its texts interned, by the thread that
/// reads the window (see [`read_part`]).
#[derive(Clone, Copy)]
struct Rec {
    ts: Timestamp,
    src: AddrKey,
    /// The destination, empty when NULL (as `COALESCE(dst,'')` for `icmp`); `has_dst` tells
    /// which (`scans` counts only real destinations, as `COUNT(DISTINCT)`).
    dst: AddrKey,
    has_dst: bool,
    action: u32,
    proto: u32,
    /// -1 for NULL, as `COALESCE(dpt,-1)` in the queries (the column is unsigned).
    dpt: i32,
    n: u64,
    icmp: bool,
    invalid: bool,
}

/// A row of `ts, src, dst, action, proto, dpt, repeat` as a [`Rec`].
fn decode(row: &mysql::Row, names: &mut Names) -> Result<Rec, ReportError> {
    let bad = |what: &str| ReportError::Sql(format!("unexpected {what} in a packet row"));
    let ts = value_ts(row.as_ref(0)).ok_or_else(|| bad("ts"))?;
    let dst = bytes(row.as_ref(2));
    // The columns' collation (utf8mb4_bin) pads with spaces: `DROP` and `DROP ` are one
    // group and one value to the server's comparisons, so they are here too.
    let action = trim_end_spaces(bytes(row.as_ref(3)).ok_or_else(|| bad("action"))?);
    let proto = trim_end_spaces(bytes(row.as_ref(4)).unwrap_or(b""));
    Ok(Rec {
        ts,
        src: AddrKey::from_stored(bytes(row.as_ref(1))),
        dst: AddrKey::from_stored(dst),
        has_dst: dst.is_some(),
        icmp: proto == b"ICMP" || proto == b"ICMPv6",
        invalid: action == b"INVALID",
        action: names.id(action),
        proto: names.id(proto),
        dpt: int(row.as_ref(5)).map_or(-1, |p| p as i32),
        n: int(row.as_ref(6)).ok_or_else(|| bad("repeat"))? as u64,
    })
}

/// A text as its `utf8mb4_bin` column compares it: trailing spaces do not count.
pub(super) fn trim_end_spaces(mut s: &[u8]) -> &[u8] {
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

fn group_rows<K>(v: Vec<(K, Agg)>, cells: impl Fn(&K) -> Vec<Cell>) -> Vec<Vec<Cell>> {
    v.into_iter()
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
/// one read (or one per part, see [`MAX_PARTS`]). Returns their sections, in the order of
/// `mods`; none when even [`MAX_PARTS`] parts would each hold keys of more than [`MAX_BYTES`]
/// bytes.
pub fn run(
    conn: &mut mysql::Conn,
    table: &str,
    opts: &AnalyzeOptions,
    mods: &[Module],
) -> Result<Vec<Section>, ReportError> {
    run_capped(conn, table, opts, mods, MAX_BYTES)
}

/// [`run`] with the cap on the memory of a part's keys given, in bytes (tests use a small one).
pub fn run_capped(
    conn: &mut mysql::Conn,
    table: &str,
    opts: &AnalyzeOptions,
    mods: &[Module],
    max_bytes: usize,
) -> Result<Vec<Section>, ReportError> {
    Ok(run_parts(conn, table, opts, mods, max_bytes)?.map(|(s, _)| s).unwrap_or_default())
}

/// [`run_capped`], also telling into how many parts the window was read; None past
/// [`MAX_PARTS`].
pub fn run_parts(
    conn: &mut mysql::Conn,
    table: &str,
    opts: &AnalyzeOptions,
    mods: &[Module],
    max_bytes: usize,
) -> Result<Option<(Vec<Section>, u32)>, ReportError> {
    let mods: Vec<Module> = mods.iter().copied().filter(|m| handles(*m)).collect();
    if mods.is_empty() {
        return Ok(Some((Vec::new(), 1)));
    }
    // Where the window's rows are: found once for every read of it.
    let ids = id_range(conn, table, opts)?;
    let mut parts = 1u32;
    let (mut tops, names) = loop {
        match read_parts(conn, table, opts, ids, &mods, max_bytes, parts)? {
            Ok((tops, names, read)) => {
                parts = read;
                break (tops, names);
            }
            Err(need) if need > MAX_PARTS || parts >= MAX_PARTS => return Ok(None),
            Err(need) => parts = need.clamp(parts * 2, MAX_PARTS),
        }
    };
    let n = &names;
    let txt = |i: u32| n.text(i);
    let mut out = Vec::new();
    for m in &mods {
        let rows: Vec<Vec<Cell>> = match m {
            Module::Denied => group_rows(std::mem::take(&mut tops.denied), |&(s, d, p, a)| {
                vec![addr(&s), port(d), Cell::Text(txt(p)), Cell::Text(txt(a))]
            }),
            Module::Icmp => group_rows(std::mem::take(&mut tops.icmp), |&(s, d, a)| {
                vec![addr(&s), addr(&d), Cell::Text(txt(a))]
            }),
            Module::Invalid => group_rows(std::mem::take(&mut tops.invalid), |&(s, d, p)| {
                vec![addr(&s), port(d), Cell::Text(txt(p))]
            }),
            Module::Sources => std::mem::take(&mut tops.sources)
                .into_iter()
                .map(|(s, g, a)| {
                    vec![
                        Cell::Count(g.n),
                        addr(&s),
                        Cell::Time(Some(g.first)),
                        Cell::Time(Some(g.last)),
                        Cell::Actions(a),
                    ]
                })
                .collect(),
            Module::Scans => std::mem::take(&mut tops.scans)
                .into_iter()
                .map(|(s, p, g, h)| {
                    vec![
                        addr(&s),
                        Cell::Count(p),
                        Cell::Count(g.n),
                        Cell::Count(h),
                        Cell::Time(Some(g.first)),
                        Cell::Time(Some(g.last)),
                    ]
                })
                .collect(),
            _ => unreachable!("filtered by handles()"),
        };
        out.push(section(*m, rows));
    }
    Ok(Some((out, parts)))
}

/// The range of ids holding a time window's rows, when reading that range in id order (the
/// table's own order) costs less than reading the rows through the time index; None for
/// windows without a time bound, or whose rows are spread too thinly over the ids.
///
/// Why: through the time index the server fetches each row by its id, one B-tree dive per
/// row (measured at 10,000,000 rows: about 200,000 rows a second), where a range of the
/// primary key is read page by page (at 1,000,000 rows, a 7-day window of 233,316 rows: 0.27 s
/// against 0.90 s for the server's own choice, a full scan). Rows usually arrive in time order,
/// so a window's rows sit in one stretch of ids; rows imported later from older logs do not,
/// and then the range would hold many rows of other times.
///
/// The stretch comes from the hourly counts, which keep each hour's lowest and highest id
/// (one small read: the window's hours), and from the rows not folded into them yet (every id
/// above the per-key lane's watermark); for a set of an older ipta without those ids, or a
/// window with an hour an older ipta's folder added to, from the time index (it holds the
/// ids, so no row is read, but it is a scan of the window's entries: 0.31-0.33 s of the 7 days
/// at 10M rows). The window's filter still applies to every row
/// read, so the rows counted are the same either way; a row committed after this with a higher
/// id is left out, as if the report had started just before it.
pub fn id_range(conn: &mut mysql::Conn, table: &str, opts: &AnalyzeOptions) -> Result<Option<Stretch>, ReportError> {
    if opts.since.is_none() && opts.until.is_none() {
        return Ok(None);
    }
    match from_hours(conn, table, opts)? {
        Some(s) => Ok(s),
        None => from_time_index(conn, table, opts),
    }
}

/// Where a window's rows are: ids `lo..=hi`, and every id above `above` when some.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stretch {
    pub lo: u64,
    pub hi: u64,
    /// The per-key lane's watermark when rows above it are not in the hourly counts yet.
    pub above: Option<u64>,
}

impl Stretch {
    /// The stretch as a condition on `id`, with its parameters.
    fn sql(&self) -> (&'static str, Vec<Value>) {
        match self.above {
            None => ("`id` BETWEEN ? AND ?", vec![Value::UInt(self.lo), Value::UInt(self.hi)]),
            Some(w) => ("(`id` BETWEEN ? AND ? OR `id` > ?)", vec![Value::UInt(self.lo), Value::UInt(self.hi), Value::UInt(w)]),
        }
    }
}

/// The stretch from the hourly counts: Some(None) when the window's rows are spread too thinly
/// over it, None when the table's counts have no id ranges (no summaries, an older set, or an
/// hour whose range is not known).
///
/// Exact: every row up to the per-key lane's watermark is counted in the hour (and action)
/// of its time, whose range holds its id (unless a folder of an older ipta counted it: that
/// hour is then unsure and the time index is used), and the hours from the one holding the window's
/// start to the last one starting before its end hold every row of the window; the rows above
/// the watermark are read whole. The watermark and the counts come from one statement (one
/// snapshot: a fold commits both together).
fn from_hours(conn: &mut mysql::Conn, table: &str, opts: &AnalyzeOptions) -> Result<Option<Option<Stretch>>, ReportError> {
    use crate::store::summary::{name, HOUR, STATE};
    let mut c = Vec::new();
    let mut params = Vec::new();
    if let Some(s) = opts.since {
        c.push("`hour` >= ?");
        params.push(ts_value(super::query::floor_hour(s)));
    }
    if let Some(u) = opts.until {
        c.push("`hour` < ?");
        params.push(ts_value(u));
    }
    let sql = format!(
        "SELECT MIN(`min_id`), MAX(`max_id`), SUM(`nrows`), SUM(`n` <> `n_ranged`), \
         (SELECT `w` FROM `{st}` WHERE `k` = 2), (SELECT MAX(`id`) FROM `{table}`) FROM `{h}` WHERE {}",
        c.join(" AND "),
        st = name(table, STATE),
        h = name(table, HOUR),
    );
    type Got = (Option<u64>, Option<u64>, Option<u64>, Option<u64>, Option<u64>, Option<u64>);
    let got: Option<Got> = match conn.exec_first(sql, params) {
        Ok(g) => g,
        // No summaries (1146), or an older set's counts without ids (1054).
        Err(mysql::Error::MySqlError(me)) if me.code == 1146 || me.code == 1054 => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some((lo, hi, n, unsure, Some(w), max)) = got else { return Ok(None) };
    // An hour whose rows an older ipta's folder added to (it counts them in `n` alone, see
    // `summary::hour_ids`), or one it made (ids 0): its range may miss rows.
    if unsure.unwrap_or(0) > 0 || lo == Some(0) {
        return Ok(None);
    }
    let max = max.unwrap_or(0);
    let above = (max > w).then_some(w);
    // Hours without rows: an empty range (the rows above the watermark may still be there).
    let (lo, hi) = match (lo, hi) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => (1, 0),
    };
    // The window's folded rows (their hours' rows): the rows above the watermark are not known
    // to be in the window, so a large backlog makes the stretch too thin and the time index
    // reads it (a report has just folded, so there are few).
    let rows = n.unwrap_or(0);
    Ok(Some(compact(conn, table, Stretch { lo, hi, above }, rows)?))
}

/// `s` when reading it costs less than reading the window's `rows` through the time index,
/// from the server's estimate of the rows it holds (InnoDB looks at the B-tree at both ends of
/// each range: close for any size). A server whose EXPLAIN has no `rows` column keeps the time
/// index.
fn compact(conn: &mut mysql::Conn, table: &str, s: Stretch, rows: u64) -> Result<Option<Stretch>, ReportError> {
    let (cond, params) = s.sql();
    let plan: Option<mysql::Row> =
        conn.exec_first(format!("EXPLAIN SELECT `id` FROM `{table}` FORCE INDEX (PRIMARY) WHERE {cond}"), params)?;
    let Some(in_range) = plan.and_then(|r| r.get_opt::<u64, _>("rows")).and_then(Result::ok) else { return Ok(None) };
    // A row in id order costs about a fifth of one through the index: read the stretch while
    // it holds at most four times the window's rows.
    Ok((in_range <= rows.max(1).saturating_mul(4)).then_some(s))
}

/// The stretch from the time index: the lowest and highest id of the window's rows, and their
/// number.
fn from_time_index(conn: &mut mysql::Conn, table: &str, opts: &AnalyzeOptions) -> Result<Option<Stretch>, ReportError> {
    let mut c = Vec::new();
    let mut params = Vec::new();
    if let Some(s) = opts.since {
        c.push("`ts` >= ?");
        params.push(ts_value(s));
    }
    if let Some(u) = opts.until {
        c.push("`ts` < ?");
        params.push(ts_value(u));
    }
    if c.is_empty() {
        return Ok(None);
    }
    let window: Option<(Option<u64>, Option<u64>, u64)> = conn.exec_first(
        format!("SELECT MIN(`id`), MAX(`id`), COUNT(*) FROM `{table}` FORCE INDEX (`uk_line`) WHERE {}", c.join(" AND ")),
        params,
    )?;
    let Some((Some(lo), Some(hi), rows)) = window else { return Ok(None) };
    compact(conn, table, Stretch { lo, hi, above: None }, rows)
}

/// Reads the window in `parts` parts by source (one read when 1); returns the parts it took.
/// When the first part holds keys of more than `max_bytes` bytes ([`Pass::size`]) it narrows
/// itself as it goes: it keeps the sources of part 0 of twice as many parts (their counts so
/// far are whole, as every row was read) and skips the others' rows from then on, up to
/// [`MAX_PARTS`]; the later parts are read after it. That saves reading the window once more
/// to start over (15 days of the 10M-row bench: 3 reads before, 2 now). When a later part
/// passes the cap, gives up with the number of parts the window seems to need: the rest of
/// the part is still read (the server sends it anyway) and only counted, and its keys' size
/// is taken to grow in step with the rows, which overestimates it (keys repeat); `u32::MAX`
/// when the first part could not narrow enough. `ids`: the stretch of ids holding the window
/// (see [`id_range`]), or None to let the server choose how to find its rows.
fn read_parts(
    conn: &mut mysql::Conn,
    table: &str,
    opts: &AnalyzeOptions,
    ids: Option<Stretch>,
    mods: &[Module],
    max_bytes: usize,
    parts: u32,
) -> Result<Result<(Tops, Names, u32), u32>, ReportError> {
    let f = raw_filter(opts);
    let mut tops = Tops::default();
    let mut names = Names::default();
    let (mut parts, mut part) = (parts, 0);
    while part < parts {
        let mut pass = Pass::new(mods);
        let mut sql = "SELECT `ts`, `src`, `dst`, `action`, `proto`, `dpt`, `repeat` FROM ".to_string();
        let mut params = Vec::new();
        match ids {
            Some(st) => {
                let (cond, p) = st.sql();
                sql.push_str(&format!("`{table}` FORCE INDEX (PRIMARY) WHERE {cond} AND {}", f.sql));
                params.extend(p);
            }
            None => sql.push_str(&format!("`{table}` WHERE {}", f.sql)),
        }
        params.extend(f.params.iter().cloned());
        if parts > 1 {
            // A part: the sources whose hash falls in it (every key here starts with one).
            sql.push_str(" AND CRC32(COALESCE(`src`,'')) % ? = ?");
            params.push(Value::UInt(u64::from(parts)));
            params.push(Value::UInt(u64::from(part)));
        }
        // Rows read, and where the pass gave up (past the cap and narrowed as far as it goes):
        // the rest of the part is only counted (the server sends it anyway).
        let (mut rows, mut gave_up) = (0u64, None);
        let first = part == 0;
        let read = read_part(conn, &sql, params, names, |batch| {
            if gave_up.is_some() {
                rows += batch.len() as u64;
                return;
            }
            for (i, r) in batch.iter().enumerate() {
                pass.add(r);
                rows += 1;
                if pass.size() > max_bytes {
                    // The first part narrows itself as it goes: part 0 of twice as many parts
                    // (a subset of the sources it reads), and the later parts are read after.
                    if first && parts < MAX_PARTS {
                        parts *= 2;
                        pass.narrow(parts);
                        if pass.size() <= max_bytes {
                            continue;
                        }
                    }
                    gave_up = Some(rows);
                    rows += (batch.len() - i - 1) as u64;
                    return;
                }
            }
        })?;
        if let Some(at) = gave_up {
            if first {
                // Narrowed as far as it goes: even part 0 of the most parts is too varied.
                return Ok(Err(u32::MAX));
            }
            let size = pass.size() as f64 * rows as f64 / at as f64 * f64::from(parts);
            let need = (size / max_bytes.max(1) as f64).ceil().min(f64::from(MAX_PARTS)) as u32;
            return Ok(Err(need.max(1).next_power_of_two()));
        }
        pass.names = read;
        names = pass.finish(&mut tops, opts.limit, u64::from(opts.scan_threshold));
        part += 1;
    }
    Ok(Ok((tops, names, parts)))
}

/// Rows handed from the reading thread to the counting one at a time.
const BATCH: usize = 4096;

/// Reads the rows of `sql` on a thread of its own, decodes them into [`Rec`]s (interning their
/// texts in `names`) and hands them to `count` on this thread, in batches; gives back the
/// texts. A failed read or a row that does not decode ends it with that error.
///
/// Why a thread: decoding a row (the client library's protocol and its values' allocations,
/// the texts' lookups) is a good part of a pass, and counting (hash maps too large for the
/// processor's caches) most of the rest; on two threads they overlap, beside the server's
/// sending on a core of its own.
fn read_part(
    conn: &mut mysql::Conn,
    sql: &str,
    params: Vec<Value>,
    mut names: Names,
    mut count: impl FnMut(&[Rec]),
) -> Result<Names, ReportError> {
    use std::sync::mpsc;
    let (tx, rx) = mpsc::sync_channel::<Result<Vec<Rec>, ReportError>>(4);
    // Counted batches go back to the reader to be filled again.
    let (back, spare) = mpsc::channel::<Vec<Rec>>();
    std::thread::scope(|s| {
        let reader = std::thread::Builder::new()
            .name("ipta-window".into())
            .spawn_scoped(s, move || {
                let mut res = match conn.exec_iter(sql, params) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(e.into()));
                        return names;
                    }
                };
                let mut batch = Vec::with_capacity(BATCH);
                for row in res.by_ref() {
                    match row.map_err(ReportError::from).and_then(|row| decode(&row, &mut names)) {
                        Ok(r) => batch.push(r),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return names;
                        }
                    }
                    if batch.len() == BATCH {
                        let next = spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(BATCH));
                        // The report's thread stopped taking batches (it is unwinding):
                        // dropping the result reads the rest of it off the connection.
                        if tx.send(Ok(std::mem::replace(&mut batch, next))).is_err() {
                            return names;
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send(Ok(batch));
                }
                names
            })
            .map_err(ReportError::Io)?;
        let mut failed = None;
        for b in rx.iter() {
            match b {
                Ok(mut b) => {
                    count(&b);
                    b.clear();
                    let _ = back.send(b);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        drop(rx);
        let names = reader.join().map_err(|_| ReportError::Sql("the thread reading the window panicked".into()))?;
        failed.map_or(Ok(names), Err)
    })
}
