//! The part of a window report that the hourly time buckets answer (the totals, `ports`,
//! `inbound`, `interfaces` and the timeline), from one read of the window's bucket rows,
//! aggregated here. The partial hours at the window's edges still come from the packet table
//! (`query::group_module_window` and friends add them).
//!
//! Why: one GROUP BY per module on the server built a temporary table of every group and read
//! the window's buckets again for each. Measured on the 10,000,000-row bench table (30 days),
//! the last 7 days: `ports` 2.76 s and `inbound` 2.13 s of GROUP BY over 423,390 bucket rows,
//! where reading them once takes a fraction of a second.
//!
//! The groups are those of the server's GROUP BY: texts compare as their `utf8mb4_bin`
//! columns do (trailing spaces ignored: `DROP` and `DROP ` are one group, shown without them),
//! the same filters (`action <> 'ACCEPT'`, `if_in <> ''`) with the same meaning.

use std::collections::HashMap;

use mysql::prelude::Queryable;

use super::onepass::trim_end_spaces;
use crate::store::summary::Names;
use super::query::{add_counts, bucket_filter, GroupCounts, KeyPart, Window};
use super::{AnalyzeOptions, Module, ReportError};
use crate::record::Timestamp;
use crate::store::summary;
use crate::store::value::{value_bytes as bytes, value_int as int, value_ts};

const US_DAY: i64 = 86_400_000_000;

/// The window's bucket rows, aggregated for every module that reads them.
#[derive(Default)]
pub(super) struct BucketPass {
    /// Texts (interfaces, actions, protocols), each once, without trailing spaces.
    names: Names,
    /// Packets, first and last seen over all rows.
    pub(super) totals: GroupCounts,
    /// (dpt, proto, action) of rows whose action is not ACCEPT.
    ports: HashMap<(i64, u32, u32), GroupCounts>,
    /// (dpt, action) of inbound rows whose action is not ACCEPT.
    inbound: HashMap<(i64, u32), GroupCounts>,
    /// (if_in, action, proto).
    ifaces: HashMap<(u32, u32, u32), GroupCounts>,
    /// Packets per hour and action.
    hours: HashMap<(i64, u32), u64>,
}

fn bad(what: &str) -> ReportError {
    ReportError::Sql(format!("unexpected {what} in a time bucket row"))
}

impl BucketPass {
    /// Reads the whole hours of window `w` (with the options' host and `--no-accept`).
    pub(super) fn read(conn: &mut mysql::Conn, table: &str, opts: &AnalyzeOptions, w: &Window) -> Result<BucketPass, ReportError> {
        let f = bucket_filter(w, opts);
        let sql = format!(
            "SELECT `hour`, `if_in`, `action`, `proto`, `dpt`, `n`, `first_ts`, `last_ts` FROM `{}` WHERE {}",
            summary::name(table, summary::BUCKET),
            f.sql
        );
        let mut p = BucketPass::default();
        let accept = p.id(b"ACCEPT");
        let none = p.id(b"");
        for row in conn.exec_iter(sql, f.params)? {
            let row = row?;
            let hour = value_ts(row.as_ref(0)).ok_or_else(|| bad("hour"))?;
            let if_in = p.id(bytes(row.as_ref(1)).unwrap_or(b""));
            let action = p.id(bytes(row.as_ref(2)).ok_or_else(|| bad("action"))?);
            let proto = p.id(bytes(row.as_ref(3)).unwrap_or(b""));
            let dpt = int(row.as_ref(4)).ok_or_else(|| bad("port"))?;
            let n = int(row.as_ref(5)).ok_or_else(|| bad("count"))? as u64;
            let (first, last) = (value_ts(row.as_ref(6)), value_ts(row.as_ref(7)));
            add_counts(&mut p.totals, n, first, last);
            if action != accept {
                add_counts(p.ports.entry((dpt, proto, action)).or_insert((0, None, None)), n, first, last);
                if if_in != none {
                    add_counts(p.inbound.entry((dpt, action)).or_insert((0, None, None)), n, first, last);
                }
            }
            add_counts(p.ifaces.entry((if_in, action, proto)).or_insert((0, None, None)), n, first, last);
            *p.hours.entry((hour.0, action)).or_insert(0) += n;
        }
        Ok(p)
    }

    fn id(&mut self, s: &[u8]) -> u32 {
        self.names.id(trim_end_spaces(s))
    }

    fn text(&self, i: u32) -> KeyPart {
        KeyPart::Text(self.names.get(i).to_vec())
    }

    /// The groups of a bucketable grouping module, keyed as `query`'s spec orders its keys.
    pub(super) fn groups(&self, m: Module) -> HashMap<Vec<KeyPart>, GroupCounts> {
        match m {
            Module::Ports => {
                self.ports.iter().map(|(&(d, p, a), &g)| (vec![KeyPart::Int(d), self.text(p), self.text(a)], g)).collect()
            }
            Module::Inbound => self.inbound.iter().map(|(&(d, a), &g)| (vec![KeyPart::Int(d), self.text(a)], g)).collect(),
            Module::Interfaces => {
                self.ifaces.iter().map(|(&(i, a, p), &g)| (vec![self.text(i), self.text(a), self.text(p)], g)).collect()
            }
            _ => HashMap::new(),
        }
    }

    /// The timeline's cells: packets per hour (or per day when `daily`) and action.
    pub(super) fn cells(&self, daily: bool) -> Vec<(Timestamp, String, u64)> {
        let mut m: HashMap<(i64, u32), u64> = HashMap::new();
        for (&(h, a), &n) in &self.hours {
            let t = if daily { h.div_euclid(US_DAY) * US_DAY } else { h };
            *m.entry((t, a)).or_insert(0) += n;
        }
        m.into_iter()
            .map(|((t, a), n)| (Timestamp(t), self.names.text(a), n))
            .collect()
    }
}
