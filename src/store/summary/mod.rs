//! Summary tables that keep `ipta --analyze` fast as the packet table grows.
//!
//! Each packet table `T` may have a family of summary tables `T__s*` (see [`SUFFIXES`]): per
//! report key, the packet count `n` (SUM of `repeat`), first and last seen, and `nb`, the bit
//! length of `n`. `nb` is what makes top-N cheap without paying for an index on `n` (which
//! would be rewritten on every increment): it changes only when `n` crosses a power of two, and
//! the analyzer walks `nb` from the top down, reading one small bucket at a time (see
//! `report::query`; the per-flow table, the largest, indexes `nb` only after `action`, and is
//! walked action by action: see [`flow_actions`]). Per source, `ssrc` also keeps the number of distinct destination ports
//! and hosts; they stay exact because the pair tables `ssp`/`ssd` are filled with a per-fold
//! `mark` set only on insertion, so the new pairs of a fold are exactly the rows carrying it.
//!
//! The summaries run behind the writers. They cover exactly the packet rows with
//! `id <= w`, the watermark kept in `T__sstate`; [`fold`] adds the rows after it, read back from
//! the packet table in chunks of [`FOLD_CHUNK_ROWS`], and moves the watermark in the same
//! transaction. There are two watermarks, one per [`Lane`] (per-key and per-source tables),
//! so that [`fold_parallel`] can fold both at once on two connections. Writers only insert packet rows: maintaining the summaries in each batch's
//! transaction cost them 70-87% of their rate, because on real traffic (many sources, random
//! ports, fresh IPv6 addresses) a batch touches more summary rows than it inserts packets;
//! folding in large chunks touches fewer (keys repeat across batches) and costs the writers
//! nothing. ipta-ingest folds in the background, `ipta --analyze` folds what is left before it
//! reads, so a report is always exact.
//!
//! Exactness contract:
//! - Writers call [`gate`] first in each transaction: a shared lock on `T__sstate` row 1. A
//!   fold first takes that row exclusively and reads `MAX(id)` (its "cut"): every writer that
//!   got ids before has committed, every later one gets larger ids, so no row below the cut
//!   can still appear. AUTO_INCREMENT never hands out an id twice (persistent in MariaDB 10.2+
//!   and MySQL 8).
//! - Rows 2 and 3 hold `w` of each lane. A fold chunk locks its lane's row, a retention chunk
//!   both (row 2 first, as everyone), so they never overlap: [`on_delete_range`] subtracts from
//!   each lane only rows with `id <=` its `w`, the folder never sees rows already deleted.
//! - `--clear` (`store::tables::clear_table`) drops them with [`on_drop`], truncates the packet
//!   table and recreates them with [`create`] (TRUNCATE cannot share a transaction).
//! - [`on_drop`]: call when dropping the packet table (`--delete-table`); creating a packet
//!   table (`schema::ensure_table`) also calls it when summaries of that name were left behind.
//! - [`create`]: creates the tables (empty, `w = 0`) and folds the table's rows in, without
//!   stopping the writers. The first `ipta --analyze` of a table without them calls it. When
//!   they do not exist, the analyzer reads the packet table directly (slow, but correct):
//!   [`present`] tells which case holds.
//!
//! Summary tables carry the comment `ipta-summary` (not the packet tables' marker), so
//! `--list-tables` does not list them.
//!
//! The code is split by concern: `schema.rs` (DDL, create, drop, rebuild), `gate.rs` (the
//! locks), `fold.rs` (the fold engine), `beside.rs` (folding on a thread beside an import's
//! writers), `retention.rs` (subtracting deleted rows), each
//! re-exported here so callers name `store::summary::X` only. This file holds what
//! they share: the table names, defined once, and the error and length checks.

mod beside;
mod fold;
mod gate;
mod retention;
mod schema;

pub use beside::Beside;
pub use fold::{backlog, bucket, bump, fold, fold_parallel, fold_with, AddrKey, Agg, FoldStats, Names, FOLD_CHUNK_ROWS};
pub use gate::{gate, gate_sql};
pub use retention::on_delete_range;
pub use schema::{create, create_with, hour_ids, on_drop, present, rebuild_with_sql};

use mysql::Value;

use crate::store::StoreError;
use crate::store::value::ts_value;

// The summary tables of a packet table `T` are `T` followed by one of these suffixes: the
// only place they are spelled (the DDL, the fold, retention and the analyzer's queries all
// name them through these constants).
/// Per source, action, protocol and destination port.
pub const FLOW: &str = "__sflow";
/// ICMP per source, destination and action.
pub const ICMP: &str = "__sicmp";
/// Per destination port, protocol and action.
pub const PORT: &str = "__sport";
/// Inbound, per destination port and action.
pub const INPORT: &str = "__sinport";
/// Per input interface, action and protocol.
pub const IFACE: &str = "__siface";
/// Per source, with its distinct destination port and host counts. (The `2` of the three
/// per-source tables: they got their own watermark, row 3 of `STATE`; an older ipta still
/// running beside this one then fails on them instead of counting their rows twice.)
pub const SOURCE: &str = "__ssrc2";
/// The (source, destination port) pairs behind `SOURCE`'s port count.
pub const SRC_PORT: &str = "__ssp2";
/// The (source, destination) pairs behind `SOURCE`'s host count.
pub const SRC_DST: &str = "__ssd2";
/// The per-source tables of older ipta versions (one watermark for all): dropped with the
/// rest, so that an older set is rebuilt whole.
/// Per hour and action.
pub const HOUR: &str = "__shour";
/// Per hour, host, input interface, action, protocol and destination port: the time buckets
/// that windowed reports (`--since`, `--until`, `--host`) read for the modules and totals
/// whose keys it holds (see `report::query`).
pub const BUCKET: &str = "__sbkt";
/// Row 1 the writers' gate, rows 2 and 3 the watermarks `w` of the two lanes (see [`Lane`]).
pub const STATE: &str = "__sstate";

/// Suffixes an older ipta used and this one no longer does (see [`SOURCE`]).
pub const LEGACY: &[&str] = &["__ssrc", "__ssp", "__ssd"];

/// The summaries fall in two lanes, each folded in its own transactions with its own
/// watermark, so that two connections can fold at once (the server runs each on one core):
/// the per-key summaries, and the per-source ones (whose distinct port and host counts need
/// the pair tables in the same transaction). Both are folded to the same cut by every fold;
/// they differ only while one is under way or after one failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// FLOW, ICMP, PORT, INPORT, IFACE, HOUR, BUCKET: watermark in row 2.
    Keys,
    /// SOURCE, SRC_PORT, SRC_DST: watermark in row 3.
    Sources,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Keys, Lane::Sources];
    /// The state table's row holding the lane's watermark.
    pub fn state_row(self) -> u8 {
        match self {
            Lane::Keys => 2,
            Lane::Sources => 3,
        }
    }
}

/// Suffixes of the summary tables of one packet table (the state table last: [`present`]
/// needs them all).
pub const SUFFIXES: &[&str] = &[
    FLOW, ICMP, PORT, INPORT, IFACE, SOURCE, SRC_PORT, SRC_DST, HOUR, BUCKET, STATE,
];

/// The comment every summary table carries.
pub const SUMMARY_COMMENT: &str = "ipta-summary";

/// Longest packet-table name that still leaves room for the summary suffixes (`INPORT` is the
/// longest; a unit test checks that against [`SUFFIXES`]).
pub const MAX_TABLE_LEN: usize = 64 - INPORT.len();

/// The name of one summary table (`table` validated by the caller).
pub fn name(table: &str, suffix: &str) -> String {
    format!("{table}{suffix}")
}

/// The actions of the per-flow summary `table` + [`FLOW`], each with its highest `nb`. That
/// table has no index on `nb` alone (it would be rewritten on most of a fold's inserts), so
/// walks and deletions by bucket go through `(action, nb)` per action. A skip scan: each
/// query is a single index dive (`MIN(action) > last`, `MAX(nb)` of one action), whatever
/// the table's size; a `GROUP BY action` may or may not get a loose index scan, as the
/// optimizer's statistics have it (measured: a full index scan of 500,000 rows, 0.1 s).
pub fn flow_actions(conn: &mut impl mysql::prelude::Queryable, table: &str) -> Result<Vec<(Vec<u8>, u8)>, mysql::Error> {
    let ft = name(table, FLOW);
    let mut out: Vec<(Vec<u8>, u8)> = Vec::new();
    loop {
        let next: Option<Option<Vec<u8>>> = match out.last() {
            None => conn.query_first(format!("SELECT MIN(`action`) FROM `{ft}`"))?,
            Some((a, _)) => conn.exec_first(format!("SELECT MIN(`action`) FROM `{ft}` WHERE `action` > ?"), (a,))?,
        };
        let Some(a) = next.flatten() else { return Ok(out) };
        let max: Option<Option<u8>> = conn.exec_first(format!("SELECT MAX(`nb`) FROM `{ft}` WHERE `action` = ?"), (&a,))?;
        out.push((a, max.flatten().unwrap_or(0)));
    }
}

fn sql_err(e: mysql::Error) -> StoreError {
    match &e {
        mysql::Error::MySqlError(me) if me.code == 1146 => StoreError::MissingTable(me.message.clone()),
        _ => crate::store::map_err(e, ""),
    }
}

fn check_len(table: &str) -> Result<(), StoreError> {
    crate::store::validate_identifier(table)?;
    if table.len() > MAX_TABLE_LEN {
        return Err(StoreError::BadIdentifier {
            name: table.to_string(),
            why: "longer than 55 characters, leaving no room for the summary tables",
        });
    }
    Ok(())
}

fn bytes_value(s: &[u8]) -> Value {
    Value::Bytes(s.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_summary_name_fits_beside_the_longest_table_name() {
        assert_eq!(MAX_TABLE_LEN, 55);
        for s in SUFFIXES {
            assert!(MAX_TABLE_LEN + s.len() <= 64, "{s}");
        }
    }
}
