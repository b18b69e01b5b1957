//! Folding beside an import: a thread with a connection of its own folds the rows the
//! import's writers commit while they go on, so that the summaries are (nearly) up to date
//! when the last file is read and the report after an import does not fold the whole import
//! back from the packet table.
//!
//! Why a thread and not each batch's transaction: the server runs each connection's
//! statements on one core, and an import keeps about one core busy (the writers' LOAD DATA);
//! the fold's statements run on the other. It waits until a chunk's worth of rows is behind
//! ([`MIN_BEHIND`]) because small chunks touch more summary rows per packet (keys repeat less
//! within a chunk), then folds everything committed so far. [`Beside::finish`] folds the rest.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{backlog, fold_parallel, FoldStats, FOLD_CHUNK_ROWS};
use crate::store::{ErrorClass, StoreError};

/// Rows committed and not yet folded before the thread folds during the import. Smaller:
/// less left for the end, but more summary rows touched per packet.
pub const MIN_BEHIND: u64 = 150_000;

/// How often the thread looks at the backlog while it is below [`MIN_BEHIND`].
const POLL: Duration = Duration::from_millis(100);

/// Outages on a live connection (lock waits, deadlocks) met in a row before the folder gives
/// up for this import, and the pause before each new try.
const MAX_RETRIES: u32 = 10;
const RETRY_PAUSE: Duration = Duration::from_millis(500);

const RUN: u8 = 0;
const FINISH: u8 = 1;
const ABANDON: u8 = 2;

/// The running folder; [`finish`](Beside::finish) stops it after a last fold,
/// [`abandon`](Beside::abandon) without one.
pub struct Beside {
    stop: Arc<AtomicU8>,
    handle: JoinHandle<Result<FoldStats, StoreError>>,
}

impl Beside {
    /// Starts folding `table` beside its writers on `conn` and `other` (the two lanes at
    /// once, see [`fold_parallel`]). The caller checked that the table has summaries; if they
    /// go away meanwhile the thread ends with `MissingTable`.
    pub fn start(conn: mysql::Conn, other: mysql::Conn, table: &str) -> std::io::Result<Beside> {
        Beside::start_with(conn, other, table, MIN_BEHIND, FOLD_CHUNK_ROWS)
    }

    /// [`start`](Beside::start) with the backlog that starts a fold and the chunk size given
    /// (tests use small ones).
    pub fn start_with(
        mut conn: mysql::Conn,
        mut other: mysql::Conn,
        table: &str,
        min_behind: u64,
        chunk_rows: usize,
    ) -> std::io::Result<Beside> {
        let stop = Arc::new(AtomicU8::new(RUN));
        let (flag, table) = (stop.clone(), table.to_string());
        let handle = std::thread::Builder::new().name("ipta-fold".into()).spawn(move || {
            let mut total = FoldStats::default();
            let mut failures = 0;
            while flag.load(Ordering::Acquire) == RUN {
                let step = backlog(&mut conn, &table).and_then(|behind| {
                    if behind.unwrap_or(0) < min_behind {
                        std::thread::sleep(POLL);
                        return Ok(FoldStats::default());
                    }
                    fold_parallel(&mut conn, &mut other, &table, chunk_rows)
                });
                match step {
                    Ok(s) => {
                        add(&mut total, s);
                        failures = 0;
                    }
                    // A lock wait or deadlock with retention or another folder: try again
                    // soon (the fold is idempotent per chunk); anything else ends the folder.
                    Err(e) if e.class() == ErrorClass::Outage && e.keeps_connection() && failures < MAX_RETRIES => {
                        failures += 1;
                        std::thread::sleep(RETRY_PAUSE);
                    }
                    Err(e) => return Err(e),
                }
            }
            if flag.load(Ordering::Acquire) == FINISH {
                add(&mut total, fold_parallel(&mut conn, &mut other, &table, chunk_rows)?);
            }
            Ok(total)
        })?;
        Ok(Beside { stop, handle })
    }

    /// Folds what the writers committed since the last fold and returns what the thread did
    /// in all. Call after every writer has finished.
    pub fn finish(self) -> Result<FoldStats, StoreError> {
        self.end(FINISH)
    }

    /// Stops after the fold under way, if any (the import failed: the next report folds).
    pub fn abandon(self) {
        let _ = self.end(ABANDON);
    }

    fn end(self, how: u8) -> Result<FoldStats, StoreError> {
        self.stop.store(how, Ordering::Release);
        self.handle.join().unwrap_or_else(|_| Err(StoreError::Sql("the summary folder thread panicked".into())))
    }
}

fn add(total: &mut FoldStats, s: FoldStats) {
    total.rows += s.rows;
    total.chunks += s.chunks;
    total.read_time += s.read_time;
    total.store_time += s.store_time;
}
