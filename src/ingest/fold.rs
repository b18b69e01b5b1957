//! The background folder of ipta-ingest: keeps the summary tables (`store::summary`) close
//! behind the rows the worker commits, on a connection of its own, so that `ipta --analyze`
//! finds little left to fold.
//!
//! It folds when the worker has been quiet for a poll interval (the usual case: firewall logs
//! come in bursts) or, under sustained load, once every [`MAX_LAG`]: the writer then shares the
//! server with it for a moment, but never waits for it (a fold chunk locks nothing a writer
//! needs, apart from the instant of its cut). Stopping the process mid-fold loses nothing:
//! each chunk commits with its watermark.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::DbSettings;
use crate::ingest::Counters;
use crate::store::{summary, StoreError};

/// Rows per fold transaction: smaller than `summary::FOLD_CHUNK_ROWS`, so that ipta-ingest
/// stays small (about 100 bytes per distinct key of a chunk are held while it is stored).
pub const CHUNK_ROWS: usize = 50_000;

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
    let mut at_last_poll = 0;
    let mut at_last_fold = 0;
    let mut last_fold = Instant::now();
    // An error is said once, then again only after a fold worked in between.
    let mut said = false;
    loop {
        std::thread::sleep(POLL);
        let inserted = counters.inserted.load(Ordering::Relaxed);
        let fold_now = due(inserted, at_last_poll, at_last_fold, last_fold.elapsed());
        at_last_poll = inserted;
        if !fold_now {
            continue;
        }
        let res = match conn.as_mut() {
            Some(c) => summary::fold_with(c, &db.table, CHUNK_ROWS),
            None => crate::store::connect(&db).and_then(|c| summary::fold_with(conn.insert(c), &db.table, CHUNK_ROWS)),
        };
        match res {
            // No summaries (nobody ran ipta --analyze on this table yet): nothing to keep.
            Ok(_) | Err(StoreError::MissingTable(_)) => {
                at_last_fold = inserted;
                last_fold = Instant::now();
                said = false;
            }
            Err(e) => {
                if !said {
                    eprintln!("ipta-ingest: updating the summary tables failed (retried later): {e}");
                    said = true;
                }
                conn = None;
            }
        }
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
}
