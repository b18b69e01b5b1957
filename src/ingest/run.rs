//! One run of ipta-ingest, from parsed flags to its exit status: the settings (the same loader
//! and keys as `ipta`'s, without a home file), the parser they describe, the worker with its
//! connector, the retention and summary threads, the fan-out, and the session on stdin.
//! Exit status 0 after end of input or SIGTERM/SIGINT, 2 for a usage or configuration error,
//! 1 when stdout (the feedback pipe) or stdin fails.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use crossbeam_channel::Sender;

use super::args::Args;
use super::input::{Signals, StdinSource};
use super::protocol::Mode;
use super::rejects::Rejects;
use super::session::{Session, SessionOptions};
use super::worker::{BatchStore, Connector, Pipeline, WorkerOptions};
use super::Counters;
use crate::config::{DbSettings, Settings};
use crate::follow::fanout::FanOut;
use crate::parse::{ParseOptions, Parser};
use crate::record::Timestamp;
use crate::store::writer::Writer;

/// The settings: command line > environment > `--config FILE` > /etc/ipta.conf > defaults,
/// read by the same loader as `ipta`'s (same keys, aliases and syntax), without a home file.
fn settings(a: &Args) -> Result<Settings> {
    let s = crate::config::load_system(&a.db).context("reading the settings")?;
    for w in &s.warnings {
        eprintln!("ipta-ingest: warning: {w}");
    }
    // ipta-ingest may run as root (rsyslog's omprog): settings that another user can change
    // would let that user choose its database, its rules or its follow directory.
    for f in &s.files {
        crate::config::check_not_writable_by_others(f)?;
    }
    crate::store::validate_identifier(&s.db.table).context("--db-table")?;
    crate::store::validate_identifier(&s.db.database).context("--db-name")?;
    Ok(s)
}

/// The fan-out directory: the one the settings name, else the default of `ipta --follow` when
/// that directory exists (an administrator made it, see README).
fn follow_dir(a: &Args, s: &Settings) -> Option<PathBuf> {
    s.keys.follow_dir(a.follow_dir.as_deref()).or_else(|| {
        let d = Path::new(crate::follow::DEFAULT_FOLLOW_DIR);
        d.is_dir().then(|| d.to_path_buf())
    })
}

/// A new connection and writer; the table is created when missing (or upgraded when older),
/// so a fresh rsyslog setup works without a separate `ipta --create-table`.
/// Each success is also signalled on `connected` (for the retention thread; never blocks).
fn connector(s: DbSettings, connected: Sender<()>) -> Connector<'static> {
    Box::new(move || {
        let mut conn = crate::store::connect(&s)?;
        crate::store::schema::ensure_table(&mut conn, &s.table)?;
        let _ = connected.try_send(());
        Ok(Box::new(Writer::new(conn, &s.table)) as Box<dyn BatchStore>)
    })
}

fn run_inner(a: Args) -> Result<i32> {
    if a.batch_size == 0 || a.batch_size > 10_000 {
        bail!("--batch-size must be between 1 and 10000");
    }
    let settings = settings(&a)?;
    let db = settings.db.clone();
    // Which lines are ipta's and their zone: the same settings, read the same way, as
    // `ipta --import` (config keys rules, rule_regex, tz).
    let parser = Parser::new(ParseOptions {
        reference: Timestamp(chrono::Utc::now().timestamp_micros()),
        year: None,
        tz: settings.keys.time_zone(None),
        rules: settings.keys.action_rules(&[], None, false).map_err(|e| anyhow::anyhow!("config key {e}"))?,
    })
    .map_err(|e| anyhow::anyhow!("config keys rules/rule_regex/tz: {e}"))?;
    let signals = Signals::install().context("installing signal handlers")?;
    let counters = Arc::new(Counters::default());
    let rejects = match &a.rejects {
        Some(p) => Some(Arc::new(Mutex::new(
            Rejects::open(p).with_context(|| format!("cannot open the rejects file {}", p.display()))?,
        ))),
        None => None,
    };
    // The fan-out serves viewers; failing to set it up must not stop the database path.
    let fanout = follow_dir(&a, &settings).and_then(|d| match FanOut::new(&d) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("ipta-ingest: warning: no live viewers: cannot use the follow directory {}: {e}", d.display());
            None
        }
    });
    let queue_batches = (a.buffer_rows / a.batch_size).max(1);
    let wo = WorkerOptions {
        queue_batches,
        buffer_rows: queue_batches * a.batch_size,
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(a.max_backoff_ms.max(50)),
    };
    // From the journal, the session runs in confirm mode: its replies move the cursor.
    let mode = if a.confirm || a.journal_cursor.is_some() { Mode::Confirm } else { Mode::Plain };
    if let Some(c) = &a.journal_cursor {
        let dir = c.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !dir.is_dir() {
            bail!("--journal-cursor {}: the directory {} does not exist", c.display(), dir.display());
        }
        super::journal::read_cursor(c).with_context(|| format!("--journal-cursor {}", c.display()))?;
    }
    let so = SessionOptions {
        mode,
        batch_size: a.batch_size,
        flush: Duration::from_millis(a.flush_ms),
        commit_timeout: Duration::from_millis(a.commit_timeout_ms),
        keepalive: Duration::from_secs(1),
        shutdown_timeout: Duration::from_millis(a.shutdown_ms),
    };
    let target = match &db.socket {
        Some(p) => format!("socket {}", p.display()),
        None => format!("{}:{}", db.host, db.port.unwrap_or(3306)),
    };
    eprintln!(
        "ipta-ingest: started ({} mode; table {}.{} on {target} as {}; batch {} rows / {} ms; buffer {} rows)",
        if a.journal_cursor.is_some() { "journal" } else if a.confirm { "confirm" } else { "plain" },
        db.database,
        db.table,
        db.user,
        a.batch_size,
        a.flush_ms,
        queue_batches * a.batch_size
    );
    let (connected_tx, connected_rx) = crossbeam_channel::bounded(1);
    if let Some(age) = settings.keys.expire.clone() {
        super::expiry::start(db.clone(), age, connected_rx);
    }
    super::fold::start(db.clone(), counters.clone());
    let pipeline = Pipeline::start(connector(db, connected_tx), wo, counters.clone(), rejects.clone());
    let input = StdinSource::new(Some(signals.wake_fd()));
    let res = match &a.journal_cursor {
        Some(cursor) => {
            let (mut feed, replies) =
                super::journal::feed(cursor, input, counters.clone(), a.batch_size, Duration::from_millis(a.flush_ms));
            let session =
                Session::new(so, parser, replies, pipeline, counters.clone(), signals.control.clone(), rejects, fanout);
            let res = session.run(&mut feed);
            if let Ok(unwritten) = res {
                feed.finish(unwritten);
            }
            res
        }
        None => {
            let session = Session::new(
                so,
                parser,
                io::stdout().lock(),
                pipeline,
                counters.clone(),
                signals.control.clone(),
                rejects,
                fanout,
            );
            session.run(&mut { input })
        }
    };
    eprintln!("ipta-ingest: exiting: {counters}");
    match res {
        Ok(_) => Ok(0),
        Err(e) => {
            eprintln!("ipta-ingest: {e}");
            Ok(1)
        }
    }
}

/// Runs ipta-ingest; the result is the exit status.
pub fn run(args: Args) -> i32 {
    match run_inner(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ipta-ingest: {e:#}");
            2
        }
    }
}
