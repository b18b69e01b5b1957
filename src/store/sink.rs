//! The one write path of ipta-ingest and `ipta --import`: a [`Sink`] sees a batch through to
//! the database or says exactly why it could not.
//!
//! Every batch goes to the store's [`Writer`] (one transaction, idempotent: see `dedup`), and
//! what happens on an error is decided by [`StoreError::class`] alone, never by message text:
//! - an outage (server down, connection lost, read-only, full, locked, deadlocked, a statement
//!   killed, any code not known to be the row's fault) is waited out: the same batch is sent
//!   again with capped exponential back-off, on a new connection unless the server itself
//!   answered (then its connection is still good). Since the insert is idempotent, sending again
//!   a batch whose COMMIT outcome was unknown stores nothing twice;
//! - a row fault (a data-error code, or a row ipta refuses itself) is isolated: the batch is
//!   halved until the refused rows stand alone; the rest is stored and the refused rows are
//!   returned with their errors, for the rejects file or the import summary;
//! - a set-up error (no table, no access) is waited out like an outage or ends the write,
//!   as the [`RetryPolicy`] says.
//!
//! The owner decides what waiting means: ingest waits until told to stop (rsyslog keeps the
//! lines meanwhile, nothing is confirmed), import waits a bounded time and then stops.

use std::time::{Duration, Instant};

use crate::record::RecordBatch;
use crate::store::writer::{WriteStats, Writer};
use crate::store::{ErrorClass, StoreError};

/// Something batches can be written to: the store's [`Writer`], or a stand-in in tests.
pub trait BatchStore: Send {
    fn write(&mut self, batch: &RecordBatch) -> Result<WriteStats, StoreError>;
}

impl BatchStore for Writer {
    fn write(&mut self, batch: &RecordBatch) -> Result<WriteStats, StoreError> {
        Writer::write(self, batch)
    }
}

/// Opens a fresh store (a new connection); called again after every failure that broke one.
pub type Connector<'a> = Box<dyn FnMut() -> Result<Box<dyn BatchStore>, StoreError> + Send + 'a>;

/// How long and how a sink waits.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// First wait after a failure; doubles on each failure up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long one outage may last before the write gives up (None: until told to stop).
    pub give_up_after: Option<Duration>,
    /// Whether set-up errors (no table, no access) are waited out as well.
    pub wait_for_setup: bool,
}

/// What the sink reports while it works, for the owner's log and counters.
pub enum SinkEvent<'e> {
    /// The database stopped taking writes (reported once per outage).
    Down(&'e StoreError),
    /// It takes them again after `Duration`.
    Up(Duration),
    /// A write is about to be tried again.
    Retry,
}

/// Why a batch was not (wholly) dealt with.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The owner said stop (shutdown) while the database was not taking writes.
    #[error("stopped while the database was unavailable")]
    Stopped,
    /// The write gave up: a set-up error not waited for, or an outage longer than allowed.
    #[error(transparent)]
    Store(StoreError),
}

/// What a batch came to: the rows stored or found present, and the rows refused for their
/// own fault (index in the batch, the error).
#[derive(Debug, Default)]
pub struct Written {
    pub stats: WriteStats,
    pub refused: Vec<(usize, StoreError)>,
}

/// Writes batches with the retry and isolation rules above.
pub struct Sink<'a> {
    connector: Connector<'a>,
    store: Option<Box<dyn BatchStore>>,
    policy: RetryPolicy,
    /// Sleeps for the given time unless told to stop; false means stop now.
    pause: Box<dyn FnMut(Duration) -> bool + Send + 'a>,
    events: Box<dyn FnMut(SinkEvent<'_>) + Send + 'a>,
    down_since: Option<Instant>,
    /// Rows of a refused batch while it is being halved (kept to avoid allocating again).
    scratch: RecordBatch,
}

impl<'a> Sink<'a> {
    /// A sink that connects on its first write (or is given a connected store first with
    /// [`Sink::with_store`]).
    pub fn new(
        connector: Connector<'a>,
        policy: RetryPolicy,
        pause: Box<dyn FnMut(Duration) -> bool + Send + 'a>,
        events: Box<dyn FnMut(SinkEvent<'_>) + Send + 'a>,
    ) -> Sink<'a> {
        Sink { connector, store: None, policy, pause, events, down_since: None, scratch: RecordBatch::new() }
    }

    /// A sink that waits out outages for up to `give_up_after` (back-off from 20 ms to 1 s),
    /// sleeping between attempts and reporting nothing: for tools, benches and tests that
    /// write from several connections at once (their deadlocks are outages like any other).
    pub fn waiting(connector: Connector<'a>, give_up_after: Duration) -> Sink<'a> {
        let policy = RetryPolicy {
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_secs(1),
            give_up_after: Some(give_up_after),
            wait_for_setup: false,
        };
        let pause = |d| {
            std::thread::sleep(d);
            true
        };
        Sink::new(connector, policy, Box::new(pause), Box::new(|_| {}))
    }

    /// Uses `store` until it fails.
    pub fn with_store(mut self, store: Box<dyn BatchStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Connects now (to show a misconfiguration or an outage at start rather than with the
    /// first row). A failure is only reported: the first write tries again.
    pub fn connect_now(&mut self) {
        if self.store.is_none() {
            match (self.connector)() {
                Ok(s) => self.store = Some(s),
                Err(e) => self.went_down(&e),
            }
        }
    }

    /// Writes the batch: all of it, or all but the rows refused for their own fault.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<Written, SinkError> {
        let mut out = Written::default();
        if batch.is_empty() {
            return Ok(out);
        }
        match self.attempt(batch)? {
            Ok(stats) => out.stats = stats,
            Err(e) if batch.len() == 1 => out.refused.push((0, e)),
            Err(_) => {
                let mid = batch.len() / 2;
                self.isolate(batch, 0, mid, &mut out)?;
                self.isolate(batch, mid, batch.len(), &mut out)?;
            }
        }
        Ok(out)
    }

    /// Writes rows `lo..hi` of `batch`, halving further while the server refuses data.
    fn isolate(&mut self, batch: &RecordBatch, lo: usize, hi: usize, out: &mut Written) -> Result<(), SinkError> {
        let mut part = std::mem::take(&mut self.scratch);
        part.clear();
        for i in lo..hi {
            let (r, tag) = batch.get(i);
            part.push(&r, tag);
        }
        let result = self.attempt(&part);
        self.scratch = part;
        match result? {
            Ok(st) => {
                out.stats.inserted += st.inserted;
                out.stats.duplicates += st.duplicates;
                Ok(())
            }
            Err(e) if hi - lo == 1 => {
                out.refused.push((lo, e));
                Ok(())
            }
            Err(_) => {
                let mid = (lo + hi) / 2;
                self.isolate(batch, lo, mid, out)?;
                self.isolate(batch, mid, hi, out)
            }
        }
    }

    /// One batch, one transaction, sent until it is committed or refused for its data
    /// (`Ok(Err(row fault))`), or until the policy or the owner gives up.
    fn attempt(&mut self, batch: &RecordBatch) -> Result<Result<WriteStats, StoreError>, SinkError> {
        let mut delay = self.policy.backoff_min;
        let mut outage_started: Option<Instant> = None;
        loop {
            let result = match &mut self.store {
                Some(store) => store.write(batch),
                None => (self.connector)().and_then(|store| self.store.insert(store).write(batch)),
            };
            let e = match result {
                Ok(stats) => {
                    self.came_up();
                    return Ok(Ok(stats));
                }
                Err(e) => e,
            };
            match e.class() {
                ErrorClass::Row => {
                    self.came_up();
                    return Ok(Err(e));
                }
                ErrorClass::Setup if !self.policy.wait_for_setup => return Err(SinkError::Store(e)),
                ErrorClass::Setup | ErrorClass::Outage => {}
            }
            if !e.keeps_connection() {
                self.store = None;
            }
            self.went_down(&e);
            let started = *outage_started.get_or_insert_with(Instant::now);
            if self.policy.give_up_after.is_some_and(|limit| started.elapsed() >= limit) {
                return Err(SinkError::Store(e));
            }
            if !(self.pause)(delay) {
                return Err(SinkError::Stopped);
            }
            (self.events)(SinkEvent::Retry);
            delay = (delay * 2).min(self.policy.backoff_max);
        }
    }

    fn went_down(&mut self, e: &StoreError) {
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            (self.events)(SinkEvent::Down(e));
        }
    }

    fn came_up(&mut self) {
        if let Some(t) = self.down_since.take() {
            (self.events)(SinkEvent::Up(t.elapsed()));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::{Record, Timestamp};
    use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// A table in memory, unique on `(ts, hash, occ)` like the real one: fails with `fail_code` (a server error) or as unreachable while
    /// `down` is set; refuses rows whose action is `BAD` with error 1406.
    #[derive(Clone, Default)]
    pub(crate) struct Fake {
        pub down: Arc<AtomicBool>,
        pub fail_code: Arc<AtomicU16>,
        /// The unique key of each stored row: (ts, record hash, occurrence), as in the table.
        pub rows: Arc<Mutex<Vec<(i64, u64, u64)>>>,
        pub connects: Arc<AtomicUsize>,
        pub writes: Arc<AtomicUsize>,
    }

    struct FakeStore(Fake);

    impl BatchStore for FakeStore {
        fn write(&mut self, b: &RecordBatch) -> Result<WriteStats, StoreError> {
            let f = &self.0;
            f.writes.fetch_add(1, Ordering::SeqCst);
            if f.down.load(Ordering::SeqCst) {
                return Err(StoreError::ConnectionLost("fake".into()));
            }
            let code = f.fail_code.load(Ordering::SeqCst);
            if code != 0 {
                return Err(StoreError::Server { code, message: "fake".into() });
            }
            if b.iter().any(|(r, _)| r.action == "BAD") {
                return Err(StoreError::Server { code: 1406, message: "Data too long".into() });
            }
            let mut rows = f.rows.lock().unwrap();
            let mut st = WriteStats::default();
            for (r, tag) in b.iter() {
                let k = (r.ts.0, crate::record::dedup::record_hash(&r), tag);
                if rows.contains(&k) {
                    st.duplicates += 1;
                } else {
                    rows.push(k);
                    st.inserted += 1;
                }
            }
            Ok(st)
        }
    }

    impl Fake {
        pub(crate) fn len(&self) -> usize {
            self.rows.lock().unwrap().len()
        }

        pub(crate) fn connector(&self) -> Connector<'static> {
            let f = self.clone();
            Box::new(move || {
                f.connects.fetch_add(1, Ordering::SeqCst);
                if f.down.load(Ordering::SeqCst) {
                    Err(StoreError::Connect("fake down".into()))
                } else {
                    Ok(Box::new(FakeStore(f.clone())) as Box<dyn BatchStore>)
                }
            })
        }
    }

    pub(crate) fn batch(ts: &[i64], action: &str) -> RecordBatch {
        let mut b = RecordBatch::new();
        for &t in ts {
            let r = Record { ts: Timestamp(t), action, prefix: "IPT: ", repeat: 1, ..Default::default() };
            b.push(&r, 0);
        }
        b
    }

    fn policy(give_up: Option<Duration>) -> RetryPolicy {
        RetryPolicy {
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_millis(4),
            give_up_after: give_up,
            wait_for_setup: false,
        }
    }

    fn sink(f: &Fake, give_up: Option<Duration>) -> Sink<'static> {
        Sink::new(f.connector(), policy(give_up), Box::new(|d| { std::thread::sleep(d); true }), Box::new(|_| {}))
    }

    #[test]
    fn refused_rows_are_isolated_and_the_rest_is_stored() {
        let f = Fake::default();
        let mut s = sink(&f, None);
        let mut b = batch(&[1, 2, 3, 4, 5, 6, 7], "DROP");
        let bad = Record { ts: Timestamp(9), action: "BAD", prefix: "IPT: ", repeat: 1, ..Default::default() };
        b.push(&bad, 0);
        let w = s.write(&b).unwrap();
        assert_eq!(w.stats.inserted, 7);
        assert_eq!(w.refused.len(), 1);
        assert_eq!(w.refused[0].0, 7);
        assert_eq!(w.refused[0].1.server_code(), Some(1406));
    }

    #[test]
    fn a_server_that_says_no_is_waited_out_never_a_reject() {
        for code in [1290u16, 1836, 1114, 1021, 1205, 1213, 1317, 1047, 12345] {
            let f = Fake::default();
            f.fail_code.store(code, Ordering::SeqCst);
            let f2 = f.clone();
            let healer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                f2.fail_code.store(0, Ordering::SeqCst);
            });
            let mut s = sink(&f, None);
            let w = s.write(&batch(&[1, 2, 3], "DROP")).unwrap();
            healer.join().unwrap();
            assert!(w.refused.is_empty(), "{code}");
            assert_eq!(w.stats.inserted, 3, "{code}");
            assert!(f.writes.load(Ordering::SeqCst) > 1, "{code}");
            // The server answered: its connection was kept.
            assert_eq!(f.connects.load(Ordering::SeqCst), 1, "{code}");
        }
    }

    #[test]
    fn a_lost_connection_is_retried_on_a_new_one_and_an_outage_can_end_the_wait() {
        let f = Fake::default();
        f.down.store(true, Ordering::SeqCst);
        let mut s = sink(&f, Some(Duration::from_millis(40)));
        match s.write(&batch(&[1], "DROP")) {
            Err(SinkError::Store(e)) => assert!(e.is_retryable()),
            other => panic!("{other:?}"),
        }
        assert!(f.connects.load(Ordering::SeqCst) > 2);
        f.down.store(false, Ordering::SeqCst);
        assert_eq!(s.write(&batch(&[1], "DROP")).unwrap().stats.inserted, 1);
        f.fail_code.store(1290, Ordering::SeqCst);
        let stopped = Sink::new(f.connector(), policy(None), Box::new(|_| false), Box::new(|_| {})).write(&batch(&[2], "DROP"));
        assert!(matches!(stopped, Err(SinkError::Stopped)));
        assert_eq!(f.rows.lock().unwrap().len(), 1);
    }

    #[test]
    fn setup_errors_end_the_write_unless_waited_for() {
        let mut s = Sink::new(
            Box::new(|| Err(StoreError::MissingTable("logs".into()))),
            policy(None),
            Box::new(|_| true),
            Box::new(|_| {}),
        );
        assert!(matches!(s.write(&batch(&[1], "DROP")), Err(SinkError::Store(StoreError::MissingTable(_)))));
    }
}
