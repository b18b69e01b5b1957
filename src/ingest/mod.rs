//! ipta-ingest: rsyslog omprog on stdin -> batches -> MySQL, and the fan-out to live viewers.
//!
//! The pieces, in the order a line meets them: [`input`] reads stdin without ever blocking
//! signals or timers out, [`protocol`] decides what omprog's feedback protocol requires for each
//! line, [`session`] parses the line, numbers it for de-duplication, fills batches and replies,
//! [`worker`] writes the batches to the database from its own thread and survives outages,
//! [`rejects`] keeps the lines that could not be stored, `follow::fanout` copies lines to viewers,
//! [`fold`] brings the summary tables up to date behind the worker, [`expiry`] applies the
//! configured retention. [`journal`] stands in for rsyslog when the input is the systemd
//! journal (`--journal-cursor`). [`args`] defines the flags and [`run`] wires the pieces together.

pub mod args;
pub mod expiry;
pub mod fold;
pub mod input;
pub mod journal;
pub mod protocol;
pub mod rejects;
pub mod run;
pub mod session;
pub mod worker;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// What ipta-ingest has done so far; printed on SIGUSR1 and at exit.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages read from stdin (transaction marks not counted; a replayed batch counts again).
    pub read: AtomicU64,
    /// Rows added to the table.
    pub inserted: AtomicU64,
    /// Rows that were in the table already (a replayed batch).
    pub duplicates: AtomicU64,
    /// Lines refused by the parser or rows refused by the database (see the rejects file).
    pub rejected: AtomicU64,
    /// Lines that are not firewall lines of ipta's.
    pub not_ours: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Failed attempts to connect or write that were retried.
    pub retries: AtomicU64,
    /// Rows still unwritten when the process had to exit (database down at shutdown).
    pub unwritten: AtomicU64,
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = Counters::get;
        write!(
            f,
            "read {}, inserted {}, duplicates {}, rejected {}, not ipta's {}, batches {}, retries {}",
            g(&self.read),
            g(&self.inserted),
            g(&self.duplicates),
            g(&self.rejected),
            g(&self.not_ours),
            g(&self.batches),
            g(&self.retries),
        )?;
        let u = g(&self.unwritten);
        if u > 0 {
            write!(f, ", NOT WRITTEN {u}")?;
        }
        Ok(())
    }
}
