//! ipta-ingest: the program rsyslog's omprog runs. Reads syslog lines on stdin, stores ipta's
//! firewall lines in MySQL/MariaDB in batches, and (with `--confirm`) tells rsyslog on stdout
//! what is safely committed. See README.md for the setup and rsyslog/30-ipta.conf.
//!
//! This file only turns flags, environment and config files into settings and starts
//! `ipta::ingest::session`; exit status 0 after end of input or SIGTERM/SIGINT, 2 for a usage or
//! configuration error, 1 when stdout (the feedback pipe) or stdin fails.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser as ClapParser;

use ipta::config::DbSettings;
use ipta::ingest::args::Args;
use ipta::ingest::fanout::FanOut;
use ipta::ingest::input::{Signals, StdinSource};
use ipta::ingest::protocol::Mode;
use ipta::ingest::rejects::Rejects;
use ipta::ingest::session::{Session, SessionOptions};
use ipta::ingest::worker::{BatchStore, Connector, Pipeline, WorkerOptions};
use ipta::ingest::Counters;
use ipta::parse::{ParseOptions, Parser};
use ipta::record::Timestamp;
use ipta::store::writer::Writer;

/// Reads `key = value` lines into the settings (`#` starts a comment). Keys: host, port,
/// socket, user, pass (or password), db (or database, name), table.
fn apply_config_file(s: &mut DbSettings, path: &Path, required: bool) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read config file {}", path.display())),
    };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            bail!("{}:{}: expected `key = value`", path.display(), n + 1);
        };
        let (k, v) = (k.trim(), v.trim().trim_matches('"').to_string());
        match k {
            "host" | "db_host" => s.host = v,
            "port" | "db_port" => {
                s.port = Some(v.parse().with_context(|| format!("{}:{}: bad port", path.display(), n + 1))?)
            }
            "socket" | "db_socket" => s.socket = Some(v.into()),
            "user" | "db_user" => s.user = v,
            "pass" | "password" | "db_pass" => s.password = v,
            "db" | "database" | "name" | "db_name" => s.database = v,
            "table" | "db_table" => s.table = v,
            // Settings of other parts of ipta (analyzer, follow, expire) are not ours.
            _ => {}
        }
    }
    Ok(())
}

fn settings(a: &Args) -> Result<DbSettings> {
    let mut s = DbSettings::default();
    apply_config_file(&mut s, Path::new("/etc/ipta.conf"), false)?;
    if let Some(c) = &a.config {
        apply_config_file(&mut s, c, true)?;
    }
    if let Ok(p) = std::env::var("IPTA_DB_PASS") {
        s.password = p;
    }
    if let Some(v) = &a.db_host {
        s.host = v.clone();
    }
    if let Some(v) = &a.db_user {
        s.user = v.clone();
    }
    if let Some(v) = &a.db_name {
        s.database = v.clone();
    }
    if let Some(v) = &a.db_table {
        s.table = v.clone();
    }
    if a.db_port.is_some() {
        s.port = a.db_port;
    }
    if let Some(v) = &a.db_socket {
        s.socket = Some(v.clone());
    }
    ipta::store::validate_identifier(&s.table).context("--db-table")?;
    ipta::store::validate_identifier(&s.database).context("--db-name")?;
    Ok(s)
}

/// A new connection and writer; the table is created when missing (or upgraded when older),
/// so a fresh rsyslog setup works without a separate `ipta --create-table`.
fn connector(s: DbSettings) -> Connector {
    Box::new(move || {
        let mut conn = ipta::store::connect(&s)?;
        ipta::store::schema::ensure_table(&mut conn, &s.table)?;
        Ok(Box::new(Writer::new(conn, &s.table)) as Box<dyn BatchStore>)
    })
}

fn run(a: Args) -> Result<i32> {
    if a.batch_size == 0 || a.batch_size > 10_000 {
        bail!("--batch-size must be between 1 and 10000");
    }
    let db = settings(&a)?;
    let parser = Parser::new(ParseOptions {
        reference: Timestamp(chrono::Utc::now().timestamp_micros()),
        year: None,
        tz: None,
        rules: Default::default(),
    })
    .map_err(|e| anyhow::anyhow!("parser: {e}"))?;
    let signals = Signals::install().context("installing signal handlers")?;
    let counters = Arc::new(Counters::default());
    let rejects = match &a.rejects {
        Some(p) => Some(Arc::new(Mutex::new(
            Rejects::open(p).with_context(|| format!("cannot open the rejects file {}", p.display()))?,
        ))),
        None => None,
    };
    let fanout = match &a.follow_dir {
        Some(d) => Some(
            FanOut::new(d).with_context(|| format!("cannot use the follow directory {}", d.display()))?,
        ),
        None => None,
    };
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
    let pipeline = Pipeline::start(connector(db), wo, counters.clone(), rejects.clone());
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
