//! The one write path of ipta-ingest and `ipta --import`: a [`Sink`] takes a batch and gets it
//! into the packet table, whatever the server does meanwhile.
//!
//! It writes each batch in one transaction through a [`BatchStore`] (the store's `Writer`, or a
//! stand-in in tests), connecting lazily. What a failure means is decided by
//! [`StoreError::class`] alone, by the server's error code:
//! - an outage ([`ErrorClass::Retry`]: down, connection lost, read-only, full, deadlock, lock
//!   wait timeout, killed query, any code not known to be the row's fault) is waited out with
//!   capped exponential back-off, on a new connection when the old one is gone. Nothing is
//!   rejected for it; the caller's [`Policy`] says whether the wait ever ends (import) or not
//!   (ingest, until told to stop);
//! - a refusal of the data ([`ErrorClass::Rejected`]) makes the sink split the batch in halves
//!   until the refused rows are found: they are reported with their own error, the rest is
//!   stored. An outage in the middle of that is waited out like any other;
//! - a setup error ([`ErrorClass::Config`]) either ends the write at once or is waited out like
//!   an outage ([`Policy::wait_on_config`]: ipta-ingest waits, since an administrator can fix
//!   it live).
//!
//! Retrying a batch whose commit outcome is unknown is safe: the insert is idempotent (see
//! `store::dedup`). The usual path (a batch that commits at once) allocates nothing.

use std::time::Duration;

use crate::record::RecordBatch;
use crate::store::writer::{WriteStats, Writer};
use crate::store::{ErrorClass, StoreError};

/// Something batches can be written to, one transaction each: the store's `Writer`, or a fake
/// in tests.
pub trait BatchStore: Send {
    fn write(&mut self, batch: &RecordBatch) -> Result<WriteStats, StoreError>;
}

impl BatchStore for Writer {
    fn write(&mut self, batch: &RecordBatch) -> Result<WriteStats, StoreError> {
        Writer::write(self, batch)
    }
}

/// Opens a fresh store (a new connection); called at first use and after the connection was
/// lost.
pub type Connect<'a> = Box<dyn FnMut() -> Result<Box<dyn BatchStore>, StoreError> + Send + 'a>;

/// How long a sink keeps trying.
#[derive(Clone, Debug)]
pub struct Policy {
    /// First wait after a failure; doubles on each further failure up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Attempts at one batch before the sink gives up with the last error; None = never
    /// (until [`Hooks::pause`] says stop).
    pub max_attempts: Option<u32>,
    /// Whether setup errors ([`ErrorClass::Config`]) are waited out like outages (true) or
    /// end the write at once (false).
    pub wait_on_config: bool,
}

/// What the sink tells its user, and how it waits.
pub trait Hooks {
    /// Waits `delay` before the next attempt; false means stop trying (shutting down).
    fn pause(&mut self, delay: Duration) -> bool;
    /// An attempt failed and will be retried after a pause.
    fn failed(&mut self, _e: &StoreError) {}
    /// The server answered again after failures.
    fn recovered(&mut self) {}
    /// The server refused a batch of several rows: the sink now looks for the refused ones.
    fn isolating(&mut self, _e: &StoreError) {}
}

/// Hooks that just sleep through the back-off and never stop early: for callers without a
/// shutdown to honour (tests, benchmarks, one-off tools).
pub struct Sleep;

impl Hooks for Sleep {
    fn pause(&mut self, delay: Duration) -> bool {
        std::thread::sleep(delay);
        true
    }
}

/// Why a write did not finish.
#[derive(Debug)]
pub enum SinkError {
    /// [`Hooks::pause`] said stop while the database was failing; the batch is not written.
    Stopped,
    /// The policy gave up: a setup error not waited on, or the attempts ran out. Rows stored
    /// before (whole sub-batches while isolating) stay stored.
    Failed(StoreError),
}

/// How one attempt (with its retries) ended, inside the sink.
enum Fail {
    Refused(StoreError),
    Stop(SinkError),
}

/// Writes batches through retries, reconnects and refused rows (see the module text).
pub struct Sink<'a> {
    connect: Connect<'a>,
    store: Option<Box<dyn BatchStore>>,
    policy: Policy,
    /// The part of a batch being tried alone while isolating refused rows.
    scratch: RecordBatch,
    /// Whether the last attempt failed (for [`Hooks::recovered`]).
    failing: bool,
}

impl<'a> Sink<'a> {
    /// A sink that connects at its first write.
    pub fn new(connect: Connect<'a>, policy: Policy) -> Self {
        Sink {
            connect,
            store: None,
            policy,
            scratch: RecordBatch::new(),
            failing: false,
        }
    }

    /// Uses `store` (an open connection) until it fails.
    pub fn with_store(mut self, store: Box<dyn BatchStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Connects now unless connected, so that a failure shows at once. A failure counts as
    /// the start of an outage: the first write that works calls [`Hooks::recovered`].
    pub fn connect(&mut self) -> Result<(), StoreError> {
        if self.store.is_none() {
            match (self.connect)() {
                Ok(s) => self.store = Some(s),
                Err(e) => {
                    self.failing = true;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Whether the last attempt failed (the database is being waited for).
    pub fn is_failing(&self) -> bool {
        self.failing
    }

    /// Writes `batch`. Rows the server refuses for their data are appended to `refused` as
    /// (index in the batch, error) and the others are stored; the returned counts are of the
    /// stored rows.
    pub fn write(
        &mut self,
        batch: &RecordBatch,
        hooks: &mut dyn Hooks,
        refused: &mut Vec<(usize, StoreError)>,
    ) -> Result<WriteStats, SinkError> {
        if batch.is_empty() {
            return Ok(WriteStats::default());
        }
        match self.write_retrying(batch, hooks) {
            Ok(st) => Ok(st),
            Err(Fail::Stop(e)) => Err(e),
            Err(Fail::Refused(e)) if batch.len() == 1 => {
                refused.push((0, e));
                Ok(WriteStats::default())
            }
            Err(Fail::Refused(e)) => {
                hooks.isolating(&e);
                self.isolate(batch, hooks, refused)
            }
        }
    }

    /// Halves the refused batch until every refused row stands alone. Ranges are tried in
    /// order, so `refused` comes out sorted by index.
    fn isolate(
        &mut self,
        batch: &RecordBatch,
        hooks: &mut dyn Hooks,
        refused: &mut Vec<(usize, StoreError)>,
    ) -> Result<WriteStats, SinkError> {
        let mut stats = WriteStats::default();
        let n = batch.len();
        // A stack of ranges still to try, the next one on top.
        let mut todo = vec![(n / 2, n), (0, n / 2)];
        let mut part = std::mem::take(&mut self.scratch);
        let result = loop {
            let Some((lo, hi)) = todo.pop() else {
                break Ok(stats);
            };
            part.clear();
            for i in lo..hi {
                let (r, tag) = batch.get(i);
                part.push(&r, tag);
            }
            match self.write_retrying(&part, hooks) {
                Ok(st) => {
                    stats.inserted += st.inserted;
                    stats.duplicates += st.duplicates;
                }
                Err(Fail::Refused(e)) if hi - lo == 1 => refused.push((lo, e)),
                Err(Fail::Refused(_)) => {
                    let mid = lo + (hi - lo) / 2;
                    todo.push((mid, hi));
                    todo.push((lo, mid));
                }
                Err(Fail::Stop(e)) => break Err(e),
            }
        };
        part.clear();
        self.scratch = part;
        result
    }

    /// One batch, one transaction, tried until it commits, is refused for its data, or the
    /// policy gives up.
    fn write_retrying(
        &mut self,
        batch: &RecordBatch,
        hooks: &mut dyn Hooks,
    ) -> Result<WriteStats, Fail> {
        let mut delay = self.policy.backoff_min;
        let mut attempts = 0u32;
        loop {
            let result = match &mut self.store {
                Some(store) => store.write(batch),
                None => match (self.connect)() {
                    Ok(s) => self.store.insert(s).write(batch),
                    Err(e) => Err(e),
                },
            };
            let e = match result {
                Ok(st) => {
                    self.answered(hooks);
                    return Ok(st);
                }
                Err(e) => e,
            };
            let class = e.class();
            match class {
                ErrorClass::Rejected => {
                    // The server answered: it is up, and this is about the data.
                    self.answered(hooks);
                    return Err(Fail::Refused(e));
                }
                ErrorClass::Config if !self.policy.wait_on_config => {
                    return Err(Fail::Stop(SinkError::Failed(e)));
                }
                ErrorClass::Config | ErrorClass::Retry => {}
            }
            // A lost connection needs a new one; so may a setup problem fixed meanwhile (a new
            // grant, a database created). Other outages (read-only, deadlock, a killed query)
            // keep the connection: it is fine, the server said no for now.
            if e.is_retryable() || class == ErrorClass::Config {
                self.store = None;
            }
            attempts += 1;
            if self.policy.max_attempts.is_some_and(|m| attempts >= m) {
                self.failing = true;
                return Err(Fail::Stop(SinkError::Failed(e)));
            }
            self.failing = true;
            hooks.failed(&e);
            if !hooks.pause(delay) {
                return Err(Fail::Stop(SinkError::Stopped));
            }
            delay = (delay * 2).min(self.policy.backoff_max);
        }
    }

    fn answered(&mut self, hooks: &mut dyn Hooks) {
        if self.failing {
            self.failing = false;
            hooks.recovered();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, Timestamp};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// A table in memory. Rows whose action is "BAD" are refused with `bad_code`; while
    /// `fail` holds errors, each write takes the next one instead.
    #[derive(Clone, Default)]
    struct Mem {
        rows: Arc<Mutex<Vec<i64>>>,
        fail: Arc<Mutex<Vec<StoreError>>>,
        connects: Arc<AtomicUsize>,
        writes: Arc<AtomicUsize>,
    }

    impl BatchStore for Mem {
        fn write(&mut self, b: &RecordBatch) -> Result<WriteStats, StoreError> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            if let Some(e) = self.fail.lock().unwrap().pop() {
                return Err(e);
            }
            if b.iter().any(|(r, _)| r.action == "BAD") {
                return Err(StoreError::Server {
                    code: 1406,
                    message: "Data too long".into(),
                });
            }
            let mut rows = self.rows.lock().unwrap();
            let mut st = WriteStats::default();
            for (r, _) in b.iter() {
                if rows.contains(&r.ts.0) {
                    st.duplicates += 1;
                } else {
                    rows.push(r.ts.0);
                    st.inserted += 1;
                }
            }
            Ok(st)
        }
    }

    impl Mem {
        fn sink(&self, policy: Policy) -> Sink<'static> {
            let m = self.clone();
            Sink::new(
                Box::new(move || {
                    m.connects.fetch_add(1, Ordering::SeqCst);
                    Ok(Box::new(m.clone()) as Box<dyn BatchStore>)
                }),
                policy,
            )
        }
        fn failing(&self, errors: Vec<StoreError>) {
            *self.fail.lock().unwrap() = errors;
        }
    }

    #[derive(Default)]
    struct Log {
        failed: Vec<Option<u16>>,
        recovered: usize,
        isolating: usize,
        /// Pauses allowed before `pause` says stop; None = always go on.
        pauses_left: Option<usize>,
    }

    impl Hooks for Log {
        fn pause(&mut self, _delay: Duration) -> bool {
            match &mut self.pauses_left {
                Some(0) => false,
                Some(n) => {
                    *n -= 1;
                    true
                }
                None => true,
            }
        }
        fn failed(&mut self, e: &StoreError) {
            self.failed.push(e.code());
        }
        fn recovered(&mut self) {
            self.recovered += 1;
        }
        fn isolating(&mut self, _e: &StoreError) {
            self.isolating += 1;
        }
    }

    fn forever() -> Policy {
        Policy {
            backoff_min: Duration::ZERO,
            backoff_max: Duration::ZERO,
            max_attempts: None,
            wait_on_config: true,
        }
    }

    fn batch(actions: &[&'static str]) -> RecordBatch {
        let mut b = RecordBatch::new();
        for (i, &action) in actions.iter().enumerate() {
            let r = Record {
                ts: Timestamp(i as i64),
                action,
                prefix: "IPT: ",
                repeat: 1,
                ..Default::default()
            };
            b.push(&r, 0);
        }
        b
    }

    fn server(code: u16) -> StoreError {
        StoreError::Server {
            code,
            message: format!("code {code}"),
        }
    }

    #[test]
    fn outages_are_waited_out_and_nothing_is_refused() {
        let m = Mem::default();
        // Popped from the end: read-only, then a killed query, then a lost connection, then
        // an unknown code.
        m.failing(vec![
            server(9999),
            StoreError::ConnectionLost("gone".into()),
            server(1317),
            server(1290),
        ]);
        let mut sink = m.sink(forever());
        let (mut log, mut refused) = (Log::default(), Vec::new());
        let st = sink
            .write(&batch(&["DROP", "DROP"]), &mut log, &mut refused)
            .unwrap();
        assert_eq!(st.inserted, 2);
        assert!(refused.is_empty());
        assert_eq!(log.failed, [Some(1290), Some(1317), None, Some(9999)]);
        assert_eq!(log.recovered, 1);
        // Only the lost connection asked for a new one.
        assert_eq!(m.connects.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn refused_rows_are_isolated_with_their_error() {
        let m = Mem::default();
        let mut sink = m.sink(forever());
        let (mut log, mut refused) = (Log::default(), Vec::new());
        let b = batch(&[
            "DROP", "DROP", "BAD", "DROP", "DROP", "DROP", "BAD", "DROP", "DROP",
        ]);
        let st = sink.write(&b, &mut log, &mut refused).unwrap();
        assert_eq!(st.inserted, 7);
        assert_eq!(refused.iter().map(|r| r.0).collect::<Vec<_>>(), [2, 6]);
        assert!(refused.iter().all(|r| r.1.code() == Some(1406)));
        assert_eq!(log.isolating, 1);
        assert!(log.failed.is_empty());
        // A single refused row.
        refused.clear();
        assert_eq!(
            sink.write(&batch(&["BAD"]), &mut log, &mut refused)
                .unwrap()
                .inserted,
            0
        );
        assert_eq!(refused.len(), 1);
    }

    #[test]
    fn an_outage_while_isolating_is_waited_out() {
        let m = Mem::default();
        let mut sink = m.sink(forever());
        let (mut log, mut refused) = (Log::default(), Vec::new());
        // The whole batch is refused; the first half then meets a deadlock and read-only.
        m.failing(vec![server(1290), server(1213)]);
        m.fail.lock().unwrap().push(server(1406));
        let st = sink
            .write(
                &batch(&["DROP", "DROP", "BAD", "DROP"]),
                &mut log,
                &mut refused,
            )
            .unwrap();
        assert_eq!(st.inserted, 3);
        assert_eq!(refused.len(), 1);
        assert_eq!(log.failed, [Some(1213), Some(1290)]);
    }

    #[test]
    fn stopping_and_giving_up() {
        let m = Mem::default();
        m.failing((0..10).map(|_| server(1836)).collect());
        let mut sink = m.sink(forever());
        let mut log = Log {
            pauses_left: Some(2),
            ..Default::default()
        };
        let r = sink.write(&batch(&["DROP"]), &mut log, &mut Vec::new());
        assert!(matches!(r, Err(SinkError::Stopped)), "{r:?}");
        assert_eq!(log.failed.len(), 3);
        assert!(m.rows.lock().unwrap().is_empty());

        let m = Mem::default();
        m.failing((0..10).map(|_| server(1205)).collect());
        let mut sink = m.sink(Policy {
            max_attempts: Some(3),
            ..forever()
        });
        let r = sink.write(&batch(&["DROP"]), &mut Log::default(), &mut Vec::new());
        assert!(
            matches!(r, Err(SinkError::Failed(ref e)) if e.code() == Some(1205)),
            "{r:?}"
        );
        assert_eq!(m.writes.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_failed_first_connect_is_recovered_from() {
        let m = Mem::default();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (m2, d2) = (m.clone(), down.clone());
        let mut sink = Sink::new(
            Box::new(move || {
                if d2.load(Ordering::SeqCst) {
                    Err(StoreError::Connect("down".into()))
                } else {
                    Ok(Box::new(m2.clone()) as Box<dyn BatchStore>)
                }
            }),
            forever(),
        );
        assert!(sink.connect().is_err());
        down.store(false, Ordering::SeqCst);
        let mut log = Log::default();
        sink.write(&batch(&["DROP"]), &mut log, &mut Vec::new())
            .unwrap();
        assert_eq!(
            log.recovered, 1,
            "the outage seen at connect ends with the first write"
        );
    }

    #[test]
    fn setup_errors_wait_or_stop_by_policy() {
        let m = Mem::default();
        m.failing(vec![StoreError::MissingTable("logs".into())]);
        let mut sink = m.sink(Policy {
            wait_on_config: false,
            ..forever()
        });
        let r = sink.write(&batch(&["DROP"]), &mut Log::default(), &mut Vec::new());
        assert!(
            matches!(r, Err(SinkError::Failed(StoreError::MissingTable(_)))),
            "{r:?}"
        );

        let m = Mem::default();
        m.failing(vec![StoreError::AccessDenied("no".into())]);
        let mut sink = m.sink(forever());
        let mut log = Log::default();
        assert_eq!(
            sink.write(&batch(&["DROP"]), &mut log, &mut Vec::new())
                .unwrap()
                .inserted,
            1
        );
        assert_eq!(log.failed.len(), 1);
        // A new connection after a setup error (the grant may have been fixed meanwhile).
        assert_eq!(m.connects.load(Ordering::SeqCst), 2);
    }
}
