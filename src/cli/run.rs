//! One `ipta` invocation from parsed flags to its exit status: reads the settings, runs the
//! planned steps through the library, and maps errors to the documented exit statuses
//! ([`super::exit`]) with advice for database errors. This is the program's top layer: like a
//! binary it reports errors with context (anyhow) rather than defining them; the binary only
//! parses the arguments and calls [`run`].

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::options::Options;
use super::plan::{self, Step};
use super::{exit, Cli, Format};
use crate::config::{self, ConfigError, DbSettings, Settings};
use crate::record::Timestamp;
use crate::report::{self, rdns};
use crate::store::{self, retention, schema, tables, StoreError};

/// A command-line mistake found after parsing (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// Some files or lines failed while the rest went through (exit status 4).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PartialFailure(String);

/// The user answered no (exit status 1, nothing done).
#[derive(Debug, thiserror::Error)]
#[error("cancelled: {0}")]
struct Cancelled(String);

fn usage(e: String) -> anyhow::Error {
    UsageError(e).into()
}

fn now() -> Timestamp {
    Timestamp(chrono::Utc::now().timestamp_micros())
}

/// Writes a line to stdout; a closed pipe comes back as an error (handled as success).
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)?
    };
}

/// Runs one invocation; the result is the exit status.
pub fn run(cli: Cli) -> u8 {
    if let Some(dir) = &cli.generate {
        return match super::docgen::generate(dir) {
            Ok(files) => {
                let mut out = std::io::stdout().lock();
                let written = files.iter().try_for_each(|f| writeln!(out, "{}", f.display()));
                written.map_or_else(|e| report(&e.into(), None), |()| exit::OK)
            }
            Err(e) => report(&anyhow::Error::new(e).context(format!("writing into {}", dir.display())), None),
        };
    }
    if cli.license || cli.usage {
        let text = if cli.license { super::LICENSE } else { super::USAGE };
        return match std::io::stdout().write_all(text.as_bytes()) {
            Ok(()) => exit::OK,
            Err(e) => report(&e.into(), None),
        };
    }
    let steps = plan::plan(&cli);
    if steps.is_empty() {
        eprint!("ipta: nothing to do.\n{}", super::USAGE);
        return exit::USAGE;
    }
    if let Err(e) = plan::validate(&cli, now()) {
        return report(&usage(e), None);
    }
    let settings = match config::load(&cli.db, &cli.password) {
        Ok(s) => s,
        Err(e) => return report(&anyhow::Error::new(e).context("reading the settings"), None),
    };
    let mut ctx = Ctx { cli, settings, conn: None };
    for s in steps {
        if let Err(e) = ctx.run_step(s) {
            return report(&e, Some(&ctx.settings.db));
        }
    }
    match std::io::stdout().flush() {
        Ok(()) => exit::OK,
        Err(e) => report(&e.into(), None),
    }
}

/// Settings and the connection, opened on first use.
struct Ctx {
    cli: Cli,
    settings: Settings,
    conn: Option<mysql::Conn>,
}

impl Ctx {
    fn options(&self) -> Options<'_> {
        Options::new(&self.cli, &self.settings)
    }

    fn conn(&mut self) -> Result<&mut mysql::Conn> {
        if self.conn.is_none() {
            store::validate_identifier(&self.settings.db.database)?;
            self.conn = Some(store::connect(&self.settings.db)?);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    fn table(&self) -> Result<String> {
        Ok(store::validate_identifier(&self.settings.db.table)?.to_string())
    }

    fn database(&self) -> String {
        self.settings.db.database.clone()
    }

    /// Asks before destroying data: `--yes` says yes; on a terminal the user is asked;
    /// otherwise the command is refused.
    fn confirm(&self, question: &str) -> Result<()> {
        if self.cli.yes {
            return Ok(());
        }
        if !std::io::stdin().is_terminal() {
            return Err(usage(format!("{question} Refused: not asking without a terminal; add --yes to confirm")));
        }
        eprint!("{question} [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        match answer.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Ok(()),
            _ => Err(Cancelled("nothing was changed".into()).into()),
        }
    }

    fn run_step(&mut self, step: Step) -> Result<()> {
        match step {
            Step::SaveDb => {
                let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
                let path = config::user_file_path(home.as_deref())?;
                config::save_db(&path, &self.settings.db)?;
                out!("Saved the database settings to {} (mode 0600).", path.display());
            }
            Step::CreateDb => {
                let db = self.database();
                if tables::create_database(&self.settings.db)? {
                    out!("Database `{db}` created.");
                } else {
                    out!("Database `{db}` already exists.");
                }
            }
            Step::CreateTable(name) => self.create_table(name)?,
            Step::DeleteTable(name) => {
                store::validate_identifier(&name)?;
                let rows = tables::count_rows(self.conn()?, &name)?;
                self.confirm(&format!("Delete table `{name}` ({rows} packets) of database `{}`?", self.database()))?;
                tables::drop_table(self.conn()?, &name)?;
                out!("Table `{name}` deleted ({rows} packets).");
            }
            Step::DeleteAllTables => self.delete_all_tables()?,
            Step::ListTables => self.list_tables()?,
            Step::Clear => {
                let table = self.table()?;
                let rows = tables::count_rows(self.conn()?, &table)?;
                self.confirm(&format!(
                    "Delete all {rows} packets of table `{table}` in database `{}`?",
                    self.database()
                ))?;
                let n = tables::clear_table(self.conn()?, &table)?;
                out!("Table `{table}` cleared ({n} packets deleted).");
            }
            Step::Scan(path) => self.scan(&path)?,
            Step::Import(files) => self.import(&files)?,
            Step::Expire(age) => {
                let age = retention::parse_age(&age).map_err(|e| usage(format!("--expire: {e}")))?;
                let table = self.table()?;
                let (cutoff, stats) =
                    retention::expire_older_than(self.conn()?, &table, age, retention::DEFAULT_CHUNK_ROWS)?;
                out!("{}", stats.describe(&table, cutoff));
            }
            Step::Analyze => self.analyze()?,
            Step::AnalyzeInteractive => {
                let tty = std::io::stdin().is_terminal();
                let mut input = std::io::stdin().lock();
                let mut out = std::io::stdout().lock();
                let failed = report::interactive::interactive(self.conn()?, &mut input, &mut out, tty)?;
                // Statements from a script: its caller must be able to tell that some failed
                // (as with the mysql client in batch mode). At a prompt the person saw each error.
                if failed > 0 && !tty {
                    anyhow::bail!("{failed} statement{} failed", if failed == 1 { "" } else { "s" });
                }
            }
            Step::Follow(path) => self.follow(path.as_deref())?,
            Step::DnsCreateTable => {
                rdns::create_table(self.conn()?, rdns::DEFAULT_CACHE_TABLE)?;
                out!("Reverse-DNS cache table `{}` ready.", rdns::DEFAULT_CACHE_TABLE);
            }
            Step::DnsPrune => {
                let ttl = self.options().dns().ttl_hours;
                let n = rdns::prune(self.conn()?, rdns::DEFAULT_CACHE_TABLE, ttl)?;
                out!("Pruned {n} cached names older than {ttl} hours.");
            }
            Step::DnsDump => {
                let mut out = std::io::stdout().lock();
                rdns::dump(self.conn()?, rdns::DEFAULT_CACHE_TABLE, &mut out)?;
            }
        }
        Ok(())
    }

    /// The report into stdout, `-o FILE` (atomically) and/or a mail to `--mail-to`.
    fn analyze(&mut self) -> Result<()> {
        let opts = self.options().analyze(now()).map_err(usage)?;
        let dns = self.options().dns();
        let table = self.table()?;
        let db = self.settings.db.clone();
        let second = move || store::connect(&db);
        let rep = report::build_with(self.conn()?, Some(&second), &table, &opts, &dns)?;
        let output = self.cli.output.clone();
        let Some(to) = self.cli.mail_to.clone() else {
            match &output {
                Some(path) => {
                    let mut f = report::output::AtomicFile::create(path)
                        .with_context(|| format!("cannot write the report into {}", path.display()))?;
                    report::render(&rep, &opts, false, &mut f)?;
                    f.commit().with_context(|| format!("cannot write the report into {}", path.display()))?;
                }
                None => {
                    let tty = std::io::stdout().is_terminal();
                    report::render(&rep, &opts, tty, &mut std::io::stdout().lock())?;
                }
            }
            return Ok(());
        };
        // One page for the mail and the file, so the copy kept is the page mailed.
        let mut page = Vec::new();
        report::render(&rep, &opts, false, &mut page)?;
        let mut text = Vec::new();
        report::render(&rep, &report::AnalyzeOptions { format: report::Format::Table, ..opts.clone() }, false, &mut text)?;
        if let Some(path) = &output {
            let mut f = report::output::AtomicFile::create(path)
                .with_context(|| format!("cannot write the report into {}", path.display()))?;
            f.write_all(&page)?;
            f.commit().with_context(|| format!("cannot write the report into {}", path.display()))?;
        }
        let subject = report::mail::subject(&rep, &opts);
        let token = report::html::new_nonce();
        let msg = report::mail::Message {
            to: &to,
            from: self.settings.keys.mail_from.as_deref(),
            subject: &subject,
            date: chrono::Utc::now(),
            token: &token,
            text: &text,
            html: &page,
        };
        report::mail::send(&self.options().sendmail(), &msg.render())?;
        Ok(())
    }

    fn create_table(&mut self, name: Option<String>) -> Result<()> {
        let table = match name {
            Some(n) => store::validate_identifier(&n)?.to_string(),
            None => self.table()?,
        };
        let db = self.database();
        match schema::ensure_table(self.conn()?, &table)? {
            schema::TableStatus::Created => out!("Table `{table}` created in database `{db}`."),
            schema::TableStatus::Existed => out!(
                "Table `{table}` already exists in database `{db}` (schema v{}).",
                schema::SCHEMA_VERSION
            ),
            schema::TableStatus::Upgraded { from } => {
                out!("Table `{table}` upgraded from schema v{from} to v{}.", schema::SCHEMA_VERSION)
            }
        }
        Ok(())
    }

    fn delete_all_tables(&mut self) -> Result<()> {
        let list = tables::ipta_tables(self.conn()?)?;
        let db = self.database();
        if list.is_empty() {
            out!("No ipta tables in database `{db}`.");
            return Ok(());
        }
        let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
        self.confirm(&format!(
            "Delete all {} ipta tables of database `{db}` ({})?",
            names.len(),
            names.join(", ")
        ))?;
        for n in &names {
            let rows = tables::drop_table(self.conn()?, n)?;
            out!("Table `{n}` deleted ({rows} packets).");
        }
        Ok(())
    }

    fn list_tables(&mut self) -> Result<()> {
        let list = tables::list_tables(self.conn()?)?;
        let expire = self.settings.keys.expire.as_ref().map(|a| a.text.as_str());
        let format = super::options::report_format(self.options().format());
        let tty = std::io::stdout().is_terminal();
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        report::render::table_list(&list, &self.database(), expire, format, tty, &mut out, &mut err)?;
        Ok(())
    }

    fn scan(&mut self, path: &Path) -> Result<()> {
        // The import's opener: gzip by its magic bytes, the reference time from the file's
        // modification time (now for stdin).
        let mut input = crate::import::files::open(path).with_context(|| format!("{}", path.display()))?;
        if let crate::import::files::Compression::Unsupported(kind) = input.compression {
            return Err(usage(format!(
                "{} is {kind}-compressed, which is not supported: decompress it into ipta --scan -",
                path.display()
            )));
        }
        let opts = crate::scan::ScanOptions {
            format: if self.options().format() == Format::Json {
                crate::scan::ScanFormat::Json
            } else {
                crate::scan::ScanFormat::Text
            },
            parse: self.options().parse(input.reference).map_err(usage)?,
        };
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        let summary = crate::scan::run(&mut input.reader, &mut out, &mut err, &opts)?;
        drop(out);
        eprintln!(
            "ipta: scanned {} lines: {} packets, {} not ipta's, {} rejected",
            summary.lines, summary.packets, summary.not_ours, summary.rejected
        );
        if let Some(hint) = summary.skipped.describe() {
            eprintln!("ipta: {hint}");
        }
        Ok(())
    }

    fn import(&mut self, files: &[PathBuf]) -> Result<()> {
        let opts = self.options().import(now(), std::io::stderr().is_terminal()).map_err(usage)?;
        let mut out = std::io::stdout().lock();
        let summary = crate::import::run(&self.settings.db, files, &opts, &mut out)?;
        if summary.has_failures() {
            let nothing_read = summary.files.iter().all(|f| !f.failures.is_empty() && f.lines == 0);
            if nothing_read {
                // Nothing was done at all: a plain failure, not a partial one.
                anyhow::bail!("nothing could be imported (see the summary)");
            }
            return Err(PartialFailure("some files could not be read to their end (see the summary)".into()).into());
        }
        Ok(())
    }

    fn follow(&mut self, path: Option<&Path>) -> Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop))?;
        }
        let opts = self.options().follow(now()).map_err(usage)?;
        let mut out = std::io::stdout().lock();
        let r = match path {
            Some(p) => crate::follow::follow_file(p, &opts, &mut out, &stop),
            None => crate::follow::follow_ingest(&opts, &mut out, &stop),
        };
        match r {
            Err(e) if e.is_broken_pipe() => Ok(()),
            other => Ok(other?),
        }
    }
}

/// The exit status for an error, and advice on what to do.
fn classify(e: &anyhow::Error, db: Option<&DbSettings>) -> (u8, Option<String>) {
    use crate::import::ImportError;
    use crate::report::ReportError;
    let advice = |se: &StoreError| db.and_then(|d| super::advice::advice(se, d));
    for cause in e.chain() {
        // Library errors that wrap a store error transparently hide it from the chain.
        let wrapped = match cause.downcast_ref::<ImportError>() {
            Some(ImportError::Unavailable(se)) => return (exit::UNREACHABLE, advice(se)),
            Some(ImportError::Store(se)) => Some(se),
            Some(ImportError::Options(_)) => return (exit::USAGE, None),
            _ => match cause.downcast_ref::<ReportError>() {
                Some(ReportError::Store(se)) => Some(se),
                Some(ReportError::BadOption(_)) => return (exit::USAGE, None),
                _ => None,
            },
        };
        if let Some(se) = cause.downcast_ref::<StoreError>().or(wrapped) {
            let code = match se {
                StoreError::Connect(_) | StoreError::ConnectionLost(_) => exit::UNREACHABLE,
                StoreError::AccessDenied(_)
                | StoreError::UnknownDatabase(_)
                | StoreError::MissingTable(_)
                | StoreError::Schema(_) => exit::NOT_SET_UP,
                StoreError::BadIdentifier { .. } => exit::USAGE,
                StoreError::Server { .. } | StoreError::Refused(_) | StoreError::Sql(_) => exit::ERROR,
            };
            return (code, advice(se));
        }
        if let Some(ce) = cause.downcast_ref::<ConfigError>() {
            let code = match ce {
                ConfigError::Syntax { .. } | ConfigError::Value { .. } => exit::USAGE,
                _ => exit::ERROR,
            };
            return (code, None);
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return (exit::USAGE, None);
        }
        if cause.downcast_ref::<PartialFailure>().is_some() {
            return (exit::PARTIAL, None);
        }
    }
    (exit::ERROR, None)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints the error and its advice; the exit status. Output cut short by a closed pipe
/// (`ipta -lt | head`) is not a failure.
fn report(e: &anyhow::Error, db: Option<&DbSettings>) -> u8 {
    if is_broken_pipe(e) {
        return exit::OK;
    }
    let (code, advice) = classify(e, db);
    eprintln!("ipta: error: {e:#}");
    if let Some(a) = advice {
        eprintln!("{a}");
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_documented_statuses() {
        let db = DbSettings::default();
        let cases: Vec<(anyhow::Error, u8)> = vec![
            (StoreError::Connect("refused".into()).into(), exit::UNREACHABLE),
            (StoreError::AccessDenied("no".into()).into(), exit::NOT_SET_UP),
            (StoreError::MissingTable("logs".into()).into(), exit::NOT_SET_UP),
            (anyhow::Error::new(StoreError::UnknownDatabase("x".into())).context("analyzing"), exit::NOT_SET_UP),
            (usage("bad".into()), exit::USAGE),
            (PartialFailure("half".into()).into(), exit::PARTIAL),
            (Cancelled("no".into()).into(), exit::ERROR),
            (anyhow::anyhow!("anything else"), exit::ERROR),
            (crate::import::ImportError::Unavailable(StoreError::Connect("down".into())).into(), exit::UNREACHABLE),
        ];
        for (e, code) in cases {
            assert_eq!(classify(&e, Some(&db)).0, code, "{e:#}");
        }
        let pipe: anyhow::Error = std::io::Error::from(std::io::ErrorKind::BrokenPipe).into();
        assert!(is_broken_pipe(&pipe.context("writing the report")));
    }
}
