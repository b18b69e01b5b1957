//! The background folder of ipta-ingest: keeps the summary tables (`store::summary`) close
//! behind the rows the worker commits, on a connection of its own, so that `ipta --analyze`
//! finds little left to fold.
//!
//! It folds when the worker has been quiet for a poll interval (the usual case: firewall logs
//! come in bursts), once every [`MAX_LAG`] under a steady trickle, and without pause while
//! [`BUSY_ROWS`] or more rows are behind (a flood): the writer then shares the server with it,
//! but never waits for it (a fold chunk locks nothing a writer needs, apart from the instant of
//! its cut), and the summaries stay as close behind as the fold's speed allows. Stopping the process mid-fold loses nothing:
//! each chunk commits with its watermark.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::DbSettings;
use crate::ingest::Counters;
use crate::store::{summary, ErrorClass, StoreError};

/// Rows per fold transaction: smaller than `summary::FOLD_CHUNK_ROWS`, so that ipta-ingest
/// stays small (about 100 bytes per distinct key of a chunk are held while it is stored).
pub const CHUNK_ROWS: usize = 50_000;

/// Rows behind at which the folder stops waiting for a quiet moment: under a flood it folds
/// one chunk after the other.
pub const BUSY_ROWS: u64 = 100_000;

/// Rows per fold transaction under a flood: larger chunks touch fewer summary rows per packet
/// (keys repeat more within a chunk), for about 30 MiB more while one is stored.
pub const BUSY_CHUNK_ROWS: usize = 200_000;

/// Whether the folder is behind by a flood's worth of rows.
pub fn busy(inserted: u64, at_last_fold: u64) -> bool {
    inserted.saturating_sub(at_last_fold) >= BUSY_ROWS
}

/// How often the folder looks at the worker's progress.
pub const POLL: Duration = Duration::from_secs(2);

/// The longest the summaries stay behind while rows keep coming.
pub const MAX_LAG: Duration = Duration::from_secs(60);

/// Whether to fold now: rows were committed since the last fold, and either none came during
/// the last poll (quiet) or the last fold is [`MAX_LAG`] old.
pub fn due(inserted: u64, at_last_poll: u64, at_last_fold: u64, since_fold: Duration) -> bool {
    inserted != at_last_fold && (inserted == at_last_poll || since_fold >= MAX_LAG)
}

/// Starts the folder thread (detached: the process may exit at any time).
pub fn start(db: DbSettings, counters: Arc<Counters>) {
    let spawned = std::thread::Builder::new().name("ipta-fold".into()).spawn(move || run(db, counters));
    if let Err(e) = spawned {
        eprintln!("ipta-ingest: cannot start the summary folder thread: {e}");
    }
}

fn run(db: DbSettings, counters: Arc<Counters>) {
    let mut conn: Option<mysql::Conn> = None;
    let mut other: Option<mysql::Conn> = None;
    let mut at_last_poll = 0;
    let mut at_last_fold = 0;
    let mut last_fold = Instant::now();
    // An error is said once, then again only after a fold worked in between.
    let mut said = false;
    loop {
        let flood = busy(counters.inserted.load(Ordering::Relaxed), at_last_fold);
        if !flood {
            std::thread::sleep(POLL);
        }
        let inserted = counters.inserted.load(Ordering::Relaxed);
        let fold_now = flood || due(inserted, at_last_poll, at_last_fold, last_fold.elapsed());
        at_last_poll = inserted;
        if !fold_now {
            continue;
        }
        let chunk = if flood { BUSY_CHUNK_ROWS } else { CHUNK_ROWS };
        // Two connections: the two lanes of the summaries fold at once (`summary::fold_parallel`).
        let res = connected(&db, &mut conn)
            .and_then(|c| Ok((c, connected(&db, &mut other)?)))
            .and_then(|(c, o)| summary::fold_parallel(c, o, &db.table, chunk));
        match res {
            // No summaries (nobody ran ipta --analyze on this table yet): nothing to keep.
            Ok(_) | Err(StoreError::MissingTable(_)) => {
                at_last_fold = inserted;
                last_fold = Instant::now();
                said = false;
            }
            Err(e) => {
                // Classed like a write (`StoreError::class`): an outage or a set-up problem is
                // waited out (the next occasion tries again, like the writer's back-off, the
                // committed rows stay behind in the packet table meanwhile); a fold has no row to
                // reject. The connection is kept when the server itself answered.
                if !said {
                    eprintln!("ipta-ingest: {} (retried later): {e}", failure_text(&e));
                    said = true;
                }
                if !e.keeps_connection() {
                    conn = None;
                    other = None;
                }
                // Under a flood the loop does not sleep: wait here before trying again.
                if flood {
                    std::thread::sleep(POLL);
                }
            }
        }
    }
}

/// The connection kept in `slot`, made first when there is none.
fn connected<'a>(db: &DbSettings, slot: &'a mut Option<mysql::Conn>) -> Result<&'a mut mysql::Conn, StoreError> {
    match slot {
        Some(c) => Ok(c),
        None => Ok(slot.insert(crate::store::connect(db)?)),
    }
}

/// How a failed fold is logged, by the error's class.
fn failure_text(e: &StoreError) -> &'static str {
    match e.class() {
        ErrorClass::Setup => "cannot update the summary tables: the database is not set up for it",
        ErrorClass::Outage => "updating the summary tables failed: database unavailable",
        ErrorClass::Row => "updating the summary tables failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_when_quiet_or_late_and_only_after_new_rows() {
        let s = Duration::from_secs(1);
        assert!(!due(0, 0, 0, s), "nothing written");
        assert!(!due(100, 100, 100, MAX_LAG), "nothing new since the last fold");
        assert!(due(100, 100, 0, s), "quiet for a poll");
        assert!(!due(200, 100, 0, s), "rows still coming");
        assert!(due(200, 100, 0, MAX_LAG), "rows still coming, but the last fold is old");
    }

    #[test]
    fn a_flood_is_folded_without_waiting_for_quiet() {
        assert!(!busy(BUSY_ROWS - 1, 0));
        assert!(busy(BUSY_ROWS, 0));
        assert!(busy(5 * BUSY_ROWS, 3 * BUSY_ROWS));
        assert!(!busy(5 * BUSY_ROWS, 5 * BUSY_ROWS - 10), "just folded");
    }

    #[test]
    fn fold_failures_are_told_by_class() {
        let read_only = StoreError::Server { code: 1290, message: "read-only".into() };
        assert!(failure_text(&read_only).ends_with("database unavailable"));
        assert!(failure_text(&StoreError::AccessDenied("no".into())).contains("not set up"));
    }
}
