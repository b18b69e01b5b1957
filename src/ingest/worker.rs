//! The database side of ipta-ingest: a worker thread that writes batches in order, one
//! transaction each, and reports how far it has durably got.
//!
//! The reader thread hands over numbered batches through a bounded channel: its capacity is the
//! buffer that absorbs a database outage, and once it is full the reader blocks, which stops it
//! reading stdin and pushes back on rsyslog's own (disk-assisted) queue. The batch goes through
//! the store's one write path (`store::sink`): any outage, including a server that answers
//! with an error that is not the row's fault (read-only, full, locked, killed), is waited out
//! with capped exponential back-off for as long as the process runs, and each change of state
//! (down, up again) is logged once. Only rows refused for their own fault (by error code) go to
//! the rejects file; the rest of their batch is stored.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender};

use crate::ingest::rejects::Rejects;
use crate::ingest::Counters;
use crate::record::RecordBatch;
use crate::store::sink::{RetryPolicy, Sink, SinkError, SinkEvent};
pub use crate::store::sink::{BatchStore, Connector};

/// Tuning of the worker.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Batches the channel holds (the outage buffer, in batches).
    pub queue_batches: usize,
    /// The same buffer in rows, for the log message.
    pub buffer_rows: usize,
    /// First retry delay; doubles on each failure up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            queue_batches: 100,
            buffer_rows: 50_000,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
        }
    }
}

struct Job {
    seq: u64,
    batch: RecordBatch,
}

/// How far the worker has got: the sequence number of the last batch it finished (committed,
/// or given up on at shutdown), with a condition variable to wait on.
#[derive(Default)]
struct Progress {
    done: Mutex<u64>,
    cv: Condvar,
    /// Rows written or rejected (not those given up at shutdown).
    rows_done: AtomicU64,
}

/// Why a hand-over did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum Submit {
    Queued,
    /// The queue stayed full for the whole wait; the batch is handed back.
    Full,
}

/// The reader's handle on the worker thread.
pub struct Pipeline {
    tx: Option<Sender<Job>>,
    free: Receiver<RecordBatch>,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    stop_tx: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    submitted: u64,
    /// Rows of the batches queued so far.
    rows_queued: u64,
    /// A batch handed back by a `Full` submit, kept for the retry.
    parked: Option<Job>,
}

impl Pipeline {
    /// Starts the worker thread. It connects lazily, so a database that is down at start only
    /// delays writing.
    pub fn start(
        connector: Connector<'static>,
        opts: WorkerOptions,
        counters: Arc<Counters>,
        rejects: Option<Arc<Mutex<Rejects>>>,
    ) -> Pipeline {
        let cap = opts.queue_batches.max(1);
        let (tx, rx) = crossbeam_channel::bounded::<Job>(cap);
        // Emptied batches travel back for reuse, so steady state allocates nothing.
        let (free_tx, free) = crossbeam_channel::bounded::<RecordBatch>(cap + 2);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
        let progress = Arc::new(Progress::default());
        let stop = Arc::new(AtomicBool::new(false));
        let policy = RetryPolicy {
            backoff_min: opts.backoff_min,
            backoff_max: opts.backoff_max,
            give_up_after: None,
            // An administrator can create the table or grant access while rsyslog keeps the
            // lines: wait for that too.
            wait_for_setup: true,
        };
        let pause = {
            let stop = stop.clone();
            Box::new(move |delay: Duration| {
                if stop.load(Ordering::SeqCst) {
                    return false;
                }
                match stop_rx.recv_timeout(delay) {
                    Err(RecvTimeoutError::Timeout) => !stop.load(Ordering::SeqCst),
                    _ => false,
                }
            })
        };
        let events = {
            let (counters, buffer_rows, backoff_max) = (counters.clone(), opts.buffer_rows, opts.backoff_max);
            Box::new(move |ev: SinkEvent<'_>| match ev {
                SinkEvent::Down(e) => eprintln!(
                    "ipta-ingest: database unavailable ({e}); buffering up to {buffer_rows} rows and retrying (back-off up to {} ms)",
                    backoff_max.as_millis()
                ),
                SinkEvent::Up(t) => eprintln!("ipta-ingest: database available again after {:.1} s", t.as_secs_f64()),
                SinkEvent::Retry => {
                    counters.retries.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let w = Worker {
            rx,
            free_tx,
            progress: progress.clone(),
            sink: Sink::new(connector, policy, pause, events),
            counters,
            rejects,
        };
        let thread = std::thread::Builder::new()
            .name("ipta-db-writer".into())
            .spawn(move || w.run())
            .expect("spawn the database writer thread");
        Pipeline {
            tx: Some(tx),
            free,
            progress,
            stop,
            stop_tx: Some(stop_tx),
            thread: Some(thread),
            submitted: 0,
            rows_queued: 0,
            parked: None,
        }
    }

    /// An empty batch, reused when one came back from the worker.
    pub fn empty_batch(&self, capacity: usize) -> RecordBatch {
        self.free.try_recv().unwrap_or_else(|_| RecordBatch::with_capacity(capacity))
    }

    /// Hands a batch to the worker, waiting at most `wait` for room. On `Full` the batch is
    /// kept inside and the next call with `None` retries it.
    pub fn submit(&mut self, batch: Option<RecordBatch>, wait: Duration) -> Submit {
        let job = match (batch, self.parked.take()) {
            (Some(b), None) => {
                self.submitted += 1;
                Job { seq: self.submitted, batch: b }
            }
            (None, Some(j)) => j,
            (None, None) => return Submit::Queued,
            (Some(_), Some(_)) => unreachable!("a parked batch must be retried first"),
        };
        let Some(tx) = &self.tx else { return Submit::Queued };
        let rows = job.batch.len() as u64;
        match tx.send_timeout(job, wait) {
            Ok(()) => {
                self.rows_queued += rows;
                Submit::Queued
            }
            Err(SendTimeoutError::Timeout(j)) | Err(SendTimeoutError::Disconnected(j)) => {
                self.parked = Some(j);
                Submit::Full
            }
        }
    }

    /// Whether a batch is waiting for room in the queue.
    pub fn has_parked(&self) -> bool {
        self.parked.is_some()
    }

    /// Rows of the parked batch (given up at shutdown).
    pub fn parked_rows(&self) -> usize {
        self.parked.as_ref().map_or(0, |j| j.batch.len())
    }

    /// Sequence number of the last batch handed over (or parked).
    pub fn submitted(&self) -> u64 {
        self.submitted
    }

    /// Sequence number of the last batch the worker finished.
    pub fn done(&self) -> u64 {
        *self.progress.done.lock().unwrap()
    }

    /// Waits until batch `seq` is finished or `timeout` passes; true when finished.
    pub fn wait_done(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut done = self.progress.done.lock().unwrap();
        while *done < seq {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            done = self.progress.cv.wait_timeout(done, deadline - now).unwrap().0;
        }
        true
    }

    /// Closes the queue and waits up to `timeout` for the worker to write what it holds.
    /// Returns how many rows were left unwritten (0 when all made it); in that case the worker
    /// is told to give up and left behind, since the process is about to exit.
    pub fn finish(mut self, timeout: Duration) -> u64 {
        self.tx = None;
        let all = self.wait_done(self.submitted, timeout) && self.parked.is_none();
        self.stop.store(true, Ordering::SeqCst);
        drop(self.stop_tx.take());
        if all {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
            return 0;
        }
        let done = self.progress.rows_done.load(Ordering::SeqCst);
        self.rows_queued.saturating_sub(done) + self.parked_rows() as u64
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.stop_tx = None;
        self.tx = None;
    }
}

struct Worker {
    rx: Receiver<Job>,
    free_tx: Sender<RecordBatch>,
    progress: Arc<Progress>,
    sink: Sink<'static>,
    counters: Arc<Counters>,
    rejects: Option<Arc<Mutex<Rejects>>>,
}

impl Worker {
    fn run(mut self) {
        // Connect (and create the table) at once, so a misconfiguration or an outage shows
        // in the log at start rather than with the first packet. Failing here only logs: the
        // first batch retries.
        self.sink.connect_now();
        // Blocks in recv while idle: no polling, no CPU.
        // Once a batch is given up (shutdown while the database is unavailable), `done` stays
        // before it for good: "done" means committed or rejected, and confirmations rest on it.
        let mut gave_up = false;
        while let Ok(mut job) = self.rx.recv() {
            match self.write_job(&job.batch) {
                Some(rows) => {
                    self.progress.rows_done.fetch_add(rows, Ordering::SeqCst);
                }
                None => gave_up = true,
            }
            job.batch.clear();
            let _ = self.free_tx.try_send(job.batch);
            if !gave_up {
                let mut d = self.progress.done.lock().unwrap();
                *d = job.seq;
                self.progress.cv.notify_all();
            }
        }
    }

    /// Writes one batch, retrying until it is committed or the process stops. Returns the
    /// rows dealt with (written, found present or rejected), or None when given up.
    fn write_job(&mut self, batch: &RecordBatch) -> Option<u64> {
        if batch.is_empty() {
            return Some(0);
        }
        match self.sink.write(batch) {
            Ok(w) => {
                let c = &self.counters;
                c.inserted.fetch_add(w.stats.inserted, Ordering::Relaxed);
                c.duplicates.fetch_add(w.stats.duplicates, Ordering::Relaxed);
                c.batches.fetch_add(1, Ordering::Relaxed);
                for (i, e) in &w.refused {
                    self.reject_row(batch, *i, &e.to_string());
                }
                Some(batch.len() as u64)
            }
            // Shutting down while the database was unavailable: the rows stay unwritten and
            // unconfirmed (counted by `Pipeline::finish`).
            Err(SinkError::Stopped) => None,
            // Not reached with this policy (it waits for everything); never confirmed either.
            Err(SinkError::Store(e)) => {
                eprintln!("ipta-ingest: a batch could not be written: {e}");
                None
            }
        }
    }

    fn reject_row(&self, batch: &RecordBatch, i: usize, why: &str) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        let (rec, _) = batch.get(i);
        match &self.rejects {
            Some(r) => {
                let mut r = r.lock().unwrap();
                r.write_record(&rec, why);
            }
            None => eprintln!("ipta-ingest: the database refused a row: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, Timestamp};
    use crate::store::sink::tests::{batch, Fake};

    fn fast() -> WorkerOptions {
        WorkerOptions {
            queue_batches: 2,
            buffer_rows: 2,
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_millis(5),
        }
    }

    #[test]
    fn batches_are_written_in_order_and_reported() {
        let fake = Fake::default();
        let c = Arc::new(Counters::default());
        let mut p = Pipeline::start(fake.connector(), fast(), c.clone(), None);
        assert_eq!(p.submit(Some(batch(&[1, 2], "DROP")), Duration::from_secs(1)), Submit::Queued);
        assert_eq!(p.submit(Some(batch(&[3], "DROP")), Duration::from_secs(1)), Submit::Queued);
        assert!(p.wait_done(2, Duration::from_secs(5)));
        assert_eq!(fake.rows.lock().unwrap().iter().map(|k| (k.0, k.2)).collect::<Vec<_>>(), vec![(1, 0), (2, 0), (3, 0)]);
        assert_eq!(p.finish(Duration::from_secs(1)), 0);
        assert_eq!(c.inserted.load(Ordering::SeqCst), 3);
        assert_eq!(c.batches.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn outage_is_retried_and_queue_pushes_back() {
        let fake = Fake::default();
        fake.down.store(true, Ordering::SeqCst);
        let c = Arc::new(Counters::default());
        let mut p = Pipeline::start(fake.connector(), fast(), c.clone(), None);
        // One batch in the worker's hands, two in the queue, then the queue is full.
        let mut full = false;
        for i in 0..5 {
            if p.submit(Some(batch(&[i], "DROP")), Duration::from_millis(50)) == Submit::Full {
                full = true;
                break;
            }
        }
        assert!(full, "a bounded queue must refuse more while the database is down");
        assert!(!p.wait_done(1, Duration::from_millis(30)));
        fake.down.store(false, Ordering::SeqCst);
        assert_eq!(p.submit(None, Duration::from_secs(5)), Submit::Queued);
        assert_eq!(p.finish(Duration::from_secs(5)), 0);
        assert_eq!(fake.rows.lock().unwrap().len(), 4);
        assert!(c.retries.load(Ordering::SeqCst) > 0);
    }

    #[test]
    fn refused_rows_are_isolated() {
        let fake = Fake::default();
        let c = Arc::new(Counters::default());
        let mut b = batch(&[1, 2], "DROP");
        let bad = Record { ts: Timestamp(9), action: "BAD", prefix: "IPT: ", repeat: 1, ..Default::default() };
        b.push(&bad, 0);
        let mut p = Pipeline::start(fake.connector(), fast(), c.clone(), None);
        p.submit(Some(b), Duration::from_secs(1));
        assert_eq!(p.finish(Duration::from_secs(5)), 0);
        assert_eq!(fake.rows.lock().unwrap().len(), 2);
        assert_eq!(c.rejected.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn finish_gives_up_while_down() {
        let fake = Fake::default();
        fake.down.store(true, Ordering::SeqCst);
        let c = Arc::new(Counters::default());
        let mut p = Pipeline::start(fake.connector(), fast(), c.clone(), None);
        p.submit(Some(batch(&[1], "DROP")), Duration::from_secs(1));
        let t = Instant::now();
        assert_eq!(p.finish(Duration::from_millis(100)), 1);
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_batch_given_up_is_never_reported_done() {
        let fake = Fake::default();
        fake.down.store(true, Ordering::SeqCst);
        let c = Arc::new(Counters::default());
        let mut p = Pipeline::start(fake.connector(), fast(), c.clone(), None);
        p.submit(Some(batch(&[1], "DROP")), Duration::from_secs(1));
        p.submit(Some(batch(&[2], "DROP")), Duration::from_secs(1));
        // Shutdown while down: the worker gives both batches up.
        p.tx = None;
        p.stop.store(true, Ordering::SeqCst);
        drop(p.stop_tx.take());
        if let Some(t) = p.thread.take() {
            t.join().unwrap();
        }
        assert_eq!(p.done(), 0, "nothing given up may count as done (confirmations rest on it)");
        assert!(!p.wait_done(1, Duration::from_millis(50)));
    }
}
