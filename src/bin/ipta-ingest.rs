//! ipta-ingest: the program rsyslog's omprog runs. Reads syslog lines on stdin, stores ipta's
//! firewall lines in MySQL/MariaDB in batches, and (with `--confirm`) tells rsyslog on stdout
//! what is safely committed. See README.md for the setup and rsyslog/30-ipta.conf.
//!
//! This file only turns flags, environment and config files into settings and starts
//! `ipta::ingest::session`; exit status 0 after end of input or SIGTERM/SIGINT, 2 for a usage or
//! configuration error, 1 when stdout (the feedback pipe) or stdin fails.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser as ClapParser;
use crossbeam_channel::{Receiver, Sender};

use ipta::config::{DbSettings, Settings};
use ipta::ingest::args::Args;
use ipta::follow::fanout::FanOut;
use ipta::ingest::input::{Signals, StdinSource};
use ipta::ingest::protocol::Mode;
use ipta::ingest::rejects::Rejects;
use ipta::ingest::session::{Session, SessionOptions};
use ipta::ingest::worker::{BatchStore, Connector, Pipeline, WorkerOptions};
use ipta::ingest::Counters;
use ipta::parse::{ParseOptions, Parser};
use ipta::record::Timestamp;
use ipta::store::retention;
use ipta::store::writer::Writer;

/// The settings: command line > environment > `--config FILE` > /etc/ipta.conf > defaults,
/// read by the same loader as `ipta`'s (same keys, aliases and syntax), without a home file.
fn settings(a: &Args) -> Result<Settings> {
    let s = ipta::config::load_system(&a.db_args()).context("reading the settings")?;
    for w in &s.warnings {
        eprintln!("ipta-ingest: warning: {w}");
    }
    // ipta-ingest may run as root (rsyslog's omprog): settings that another user can change
    // would let that user choose its database, its rules or its follow directory.
    for f in &s.files {
        ipta::config::check_not_writable_by_others(f)?;
    }
    ipta::store::validate_identifier(&s.db.table).context("--db-table")?;
    ipta::store::validate_identifier(&s.db.database).context("--db-name")?;
    Ok(s)
}

/// The fan-out directory: the one the settings name, else the default of `ipta --follow` when
/// that directory exists (an administrator made it, see README).
fn follow_dir(a: &Args, s: &Settings) -> Option<PathBuf> {
    ipta::follow::configured_dir(a.follow_dir.as_deref(), &s.values).or_else(|| {
        let d = Path::new(ipta::follow::DEFAULT_FOLLOW_DIR);
        d.is_dir().then(|| d.to_path_buf())
    })
}

/// Applies the configured retention (`expire = 30d`) once the writer has first connected (so
/// the table exists), then hourly, on a connection of its own so that the batches never wait
/// for it. Interrupting it (exit) is safe: every chunk is its own transaction.
fn start_expiry(db: DbSettings, age: Duration, age_text: String, connected: Receiver<()>) {
    let spawned = std::thread::Builder::new().name("ipta-expire".into()).spawn(move || {
        if connected.recv().is_err() {
            return; // the writer is gone: exiting
        }
        loop {
            let res = ipta::store::connect(&db).and_then(|mut c| {
                retention::expire_older_than(&mut c, &db.table, age, retention::DEFAULT_CHUNK_ROWS)
            });
            match res {
                Ok((cutoff, st)) => eprintln!("ipta-ingest: expire = {age_text}: {}", st.describe(&db.table, cutoff)),
                // The next hour retries; missing table, database down: said once an hour.
                Err(e) => eprintln!("ipta-ingest: expire = {age_text} failed: {e}"),
            }
            std::thread::sleep(retention::EXPIRE_INTERVAL);
        }
    });
    if let Err(e) = spawned {
        eprintln!("ipta-ingest: cannot start the retention thread: {e}");
    }
}

/// A new connection and writer; the table is created when missing (or upgraded when older),
/// so a fresh rsyslog setup works without a separate `ipta --create-table`.
/// Each success is also signalled on `connected` (for the retention thread; never blocks).
fn connector(s: DbSettings, connected: Sender<()>) -> Connector<'static> {
    Box::new(move || {
        let mut conn = ipta::store::connect(&s)?;
        ipta::store::schema::ensure_table(&mut conn, &s.table)?;
        let _ = connected.try_send(());
        Ok(Box::new(Writer::new(conn, &s.table)) as Box<dyn BatchStore>)
    })
}

fn run(a: Args) -> Result<i32> {
    if a.batch_size == 0 || a.batch_size > 10_000 {
        bail!("--batch-size must be between 1 and 10000");
    }
    let settings = settings(&a)?;
    let expire = match settings.values.get("expire") {
        Some(v) => Some((retention::parse_age(v).map_err(|e| anyhow::anyhow!("config key expire: {e}"))?, v.clone())),
        None => None,
    };
    let db = settings.db.clone();
    // Which lines are ipta's and their zone: the same settings, read the same way, as
    // `ipta --import` (config keys rules, rule_regex, tz).
    let parser = Parser::new(ParseOptions {
        reference: Timestamp(chrono::Utc::now().timestamp_micros()),
        year: None,
        tz: settings.time_zone(None),
        rules: settings.action_rules(&[], None, false).map_err(|e| anyhow::anyhow!("config key {e}"))?,
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
    let mode = if a.confirm { Mode::Confirm } else { Mode::Plain };
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
        if a.confirm { "confirm" } else { "plain" },
        db.database,
        db.table,
        db.user,
        a.batch_size,
        a.flush_ms,
        queue_batches * a.batch_size
    );
    let (connected_tx, connected_rx) = crossbeam_channel::bounded(1);
    if let Some((age, text)) = expire {
        start_expiry(db.clone(), age, text, connected_rx);
    }
    ipta::ingest::fold::start(db.clone(), counters.clone());
    let pipeline = Pipeline::start(connector(db, connected_tx), wo, counters.clone(), rejects.clone());
    let stdout = io::stdout().lock();
    let session = Session::new(
        so,
        parser,
        stdout,
        pipeline,
        counters.clone(),
        signals.control.clone(),
        rejects,
        fanout,
    );
    let mut input = StdinSource::new(Some(signals.wake_fd()));
    let res = session.run(&mut input);
    eprintln!("ipta-ingest: exiting: {counters}");
    match res {
        Ok(_) => Ok(0),
        Err(e) => {
            eprintln!("ipta-ingest: {e}");
            Ok(1)
        }
    }
}

fn main() {
    let args = Args::parse();
    let code = match run(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ipta-ingest: {e:#}");
            2
        }
    };
    std::process::exit(code);
}
