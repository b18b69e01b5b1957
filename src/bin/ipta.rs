//! `ipta`: the reporting command line. Thin: it parses the arguments (`ipta::cli`), runs the
//! requested steps in the original's order through the library, and maps errors to the
//! documented exit statuses (`ipta::cli::exit`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use ipta::cli::{self, exit, Cli, Format};
use ipta::config::{self, ConfigError, Settings};
use ipta::store::{self, schema, tables, StoreError};
use ipta::units::human_size;

/// Writes a line to stdout; a closed pipe comes back as an error (handled as success).
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)?
    };
}

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

/// What one invocation does, in execution order.
#[derive(Clone, Debug)]
enum Step {
    SaveDb,
    CreateDb,
    CreateTable(Option<String>),
    DeleteTable(String),
    DeleteAllTables,
    ListTables,
    Scan(PathBuf),
    DnsCreateTable,
    DnsPrune,
    Clear,
    Import(Vec<PathBuf>),
    Expire(String),
    Analyze,
    DnsDump,
    AnalyzeInteractive,
    Follow(Option<PathBuf>),
}

/// The steps the options ask for, in the original's order (clear, import, analyze), with the
/// setup commands first and follow (which does not end) last.
fn plan(c: &Cli) -> Vec<Step> {
    let mut p = Vec::new();
    if c.save_db {
        p.push(Step::SaveDb);
    }
    if c.create_db {
        p.push(Step::CreateDb);
    }
    if let Some(t) = &c.create_table {
        p.push(Step::CreateTable(t.clone()));
    }
    if let Some(t) = &c.delete_table {
        p.push(Step::DeleteTable(t.clone()));
    }
    if c.delete_all_tables {
        p.push(Step::DeleteAllTables);
    }
    if c.list_tables {
        p.push(Step::ListTables);
    }
    if let Some(f) = &c.scan {
        p.push(Step::Scan(f.clone()));
    }
    if c.dns_create_table {
        p.push(Step::DnsCreateTable);
    }
    if c.dns_prune {
        p.push(Step::DnsPrune);
    }
    if c.clear {
        p.push(Step::Clear);
    }
    if !c.import.is_empty() {
        p.push(Step::Import(c.import.clone()));
    }
    if let Some(a) = &c.expire {
        p.push(Step::Expire(a.clone()));
    }
    if c.analyze {
        p.push(Step::Analyze);
    }
    if c.dns_dump {
        p.push(Step::DnsDump);
    }
    if c.analyze_interactive {
        p.push(Step::AnalyzeInteractive);
    }
    if let Some(f) = &c.follow {
        p.push(Step::Follow(f.clone()));
    }
    p
}

/// Settings and the connection, opened on first use.
struct Ctx {
    cli: Cli,
    settings: Settings,
    conn: Option<mysql::Conn>,
}

impl Ctx {
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
    fn format(&self) -> Format {
        self.cli.format.unwrap_or_default()
    }
}

/// Asks before destroying data: `--yes` says yes; on a terminal the user is asked; otherwise
/// the command is refused.
fn confirm(cli: &Cli, question: &str) -> Result<()> {
    if cli.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(format!(
            "{question} Refused: not asking without a terminal; add --yes to confirm"
        ))
        .into());
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

fn time_text(t: Option<ipta::record::Timestamp>) -> String {
    t.map(|t| t.to_chrono().format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// The retention in force: the `expire` key of the configuration, applied by ipta-ingest (at
/// most hourly) and by `ipta --expire`.
fn retention_text(ctx: &Ctx) -> String {
    match ctx.settings.values.get("expire") {
        Some(age) => format!("Retention: packets older than {age} are expired (config key expire; ipta-ingest applies it hourly)."),
        None => "Retention: none (packets are kept until deleted; set expire = 30d in the config or run ipta --expire AGE).".into(),
    }
}

fn list_tables(ctx: &mut Ctx) -> Result<()> {
    let list = tables::list_tables(ctx.conn()?)?;
    let db = ctx.settings.db.database.clone();
    let mut out = std::io::stdout().lock();
    match ctx.format() {
        Format::Json => {
            let v: Vec<serde_json::Value> = list
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "table": t.name, "schema_version": t.version, "rows": t.rows,
                        "first": t.first.map(|x| x.to_rfc3339()), "last": t.last.map(|x| x.to_rfc3339()),
                        "bytes": t.bytes,
                    })
                })
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::json!({ "database": db, "tables": v, "expire": ctx.settings.values.get("expire") })
            )?;
        }
        Format::Csv => {
            writeln!(out, "table,rows,first,last,bytes")?;
            for t in &list {
                let first = t.first.map(|x| x.to_rfc3339()).unwrap_or_default();
                let last = t.last.map(|x| x.to_rfc3339()).unwrap_or_default();
                writeln!(out, "{},{},{},{},{}", t.name, t.rows, first, last, t.bytes)?;
            }
        }
        Format::Text => {
            if list.is_empty() {
                writeln!(
                    out,
                    "No ipta tables in database `{db}` (create one with: ipta --create-table)."
                )?;
                return Ok(());
            }
            if std::io::stdout().is_terminal() {
                let mut t = comfy_table::Table::new();
                t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
                t.set_header([
                    "Table",
                    "Rows",
                    "First packet (UTC)",
                    "Last packet (UTC)",
                    "Size",
                ]);
                for i in &list {
                    t.add_row([
                        i.name.clone(),
                        i.rows.to_string(),
                        time_text(i.first),
                        time_text(i.last),
                        human_size(i.bytes),
                    ]);
                }
                for c in [1, 4] {
                    if let Some(col) = t.column_mut(c) {
                        col.set_cell_alignment(comfy_table::CellAlignment::Right);
                    }
                }
                writeln!(out, "Tables of ipta in database `{db}`:\n{t}")?;
                writeln!(out, "{}", retention_text(ctx))?;
            } else {
                writeln!(out, "table\trows\tfirst\tlast\tsize")?;
                for i in &list {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}",
                        i.name,
                        i.rows,
                        time_text(i.first),
                        time_text(i.last),
                        human_size(i.bytes)
                    )?;
                }
                // Data only on stdout, so scripts can read it; the note goes to stderr.
                eprintln!("{}", retention_text(ctx));
            }
        }
    }
    Ok(())
}

fn run_step(ctx: &mut Ctx, step: Step) -> Result<()> {
    match step {
        Step::SaveDb => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from);
            let path = config::user_file_path(home.as_deref())?;
            config::save_db(&path, &ctx.settings.db)?;
            out!(
                "Saved the database settings to {} (mode 0600).",
                path.display()
            );
        }
        Step::CreateDb => {
            let db = ctx.settings.db.database.clone();
            if tables::create_database(&ctx.settings.db)? {
                out!("Database `{db}` created.");
            } else {
                out!("Database `{db}` already exists.");
            }
        }
        Step::CreateTable(name) => {
            let table = match name {
                Some(n) => store::validate_identifier(&n)?.to_string(),
                None => ctx.table()?,
            };
            let db = ctx.settings.db.database.clone();
            match schema::ensure_table(ctx.conn()?, &table)? {
                schema::TableStatus::Created => {
                    out!("Table `{table}` created in database `{db}`.")
                }
                schema::TableStatus::Existed => out!(
                    "Table `{table}` already exists in database `{db}` (schema v{}).",
                    schema::SCHEMA_VERSION
                ),
                schema::TableStatus::Upgraded { from } => out!(
                    "Table `{table}` upgraded from schema v{from} to v{}.",
                    schema::SCHEMA_VERSION
                ),
            }
        }
        Step::DeleteTable(name) => {
            store::validate_identifier(&name)?;
            let rows = tables::count_rows(ctx.conn()?, &name)?;
            let db = ctx.settings.db.database.clone();
            confirm(
                &ctx.cli,
                &format!("Delete table `{name}` ({rows} packets) of database `{db}`?"),
            )?;
            tables::drop_table(ctx.conn()?, &name)?;
            out!("Table `{name}` deleted ({rows} packets).");
        }
        Step::DeleteAllTables => {
            let list = tables::ipta_tables(ctx.conn()?)?;
            let db = ctx.settings.db.database.clone();
            if list.is_empty() {
                out!("No ipta tables in database `{db}`.");
                return Ok(());
            }
            let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
            confirm(
                &ctx.cli,
                &format!(
                    "Delete all {} ipta tables of database `{db}` ({})?",
                    names.len(),
                    names.join(", ")
                ),
            )?;
            for n in &names {
                let rows = tables::drop_table(ctx.conn()?, n)?;
                out!("Table `{n}` deleted ({rows} packets).");
            }
        }
        Step::ListTables => list_tables(ctx)?,
        Step::Clear => {
            let table = ctx.table()?;
            let rows = tables::count_rows(ctx.conn()?, &table)?;
            let db = ctx.settings.db.database.clone();
            confirm(
                &ctx.cli,
                &format!("Delete all {rows} packets of table `{table}` in database `{db}`?"),
            )?;
            let n = tables::clear_table(ctx.conn()?, &table)?;
            out!("Table `{table}` cleared ({n} packets deleted).");
        }
        Step::Scan(path) => steps::scan(ctx, &path)?,
        Step::Import(files) => steps::import(ctx, &files)?,
        Step::Expire(age) => steps::expire(ctx, &age)?,
        Step::Analyze => steps::analyze(ctx)?,
        Step::AnalyzeInteractive => steps::interactive(ctx)?,
        Step::Follow(path) => steps::follow(ctx, path.as_deref())?,
        Step::DnsCreateTable => steps::dns_create_table(ctx)?,
        Step::DnsPrune => steps::dns_prune(ctx)?,
        Step::DnsDump => steps::dns_dump(ctx)?,
    }
    Ok(())
}

/// The steps that run the library's modes (scan, import, expire, analyze, follow, DNS cache).
mod steps {
    use std::io::{IsTerminal, Write};
    use std::path::Path;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use anyhow::{Context as _, Result};
    use ipta::cli::{Cli, Format};
    use ipta::parse::{ActionRules, ParseOptions};
    use ipta::record::Timestamp;
    use ipta::report::{self, rdns};
    use ipta::store::retention;

    use super::{Ctx, PartialFailure, UsageError};

    fn now() -> Timestamp {
        Timestamp(chrono::Utc::now().timestamp_micros())
    }

    /// Checks what can be checked before anything runs (so `ipta -c -i FILE -a --since x`
    /// does not clear and then fail on a typo).
    pub fn validate(cli: &Cli) -> Result<()> {
        rules(cli, &ipta::config::Settings::default())?;
        for t in [&cli.since, &cli.until].into_iter().flatten() {
            report::parse_time_arg(t, now()).map_err(|e| UsageError(format!("--since/--until {t:?}: {e}")))?;
        }
        if !cli.module.is_empty() {
            report::Module::parse_list(&cli.module.join(",")).map_err(|e| UsageError(format!("--module: {e}")))?;
        }
        if let Some(a) = &cli.expire {
            retention::parse_age(a).map_err(|e| UsageError(format!("--expire {a:?}: {e}")))?;
        }
        if cli.scan.is_some() && cli.format == Some(Format::Csv) {
            return Err(UsageError("--scan prints text or json, not csv".into()).into());
        }
        Ok(())
    }

    /// The action rules: `--rules`/`--rule-regex`, else the config keys (`Settings::action_rules`,
    /// the reading ipta-ingest shares).
    fn rules(cli: &Cli, settings: &ipta::config::Settings) -> Result<ActionRules> {
        settings.action_rules(&cli.rules, cli.rule_regex.as_deref(), cli.any_tag).map_err(|e| UsageError(format!("--rules: {e}")).into())
    }

    fn value<'a>(ctx: &'a Ctx, key: &str) -> Option<&'a str> {
        ctx.settings.values.get(key).map(String::as_str)
    }

    fn parse_options(ctx: &Ctx, reference: Timestamp) -> Result<ParseOptions> {
        Ok(ParseOptions {
            reference,
            year: ctx.cli.year,
            tz: ctx.settings.time_zone(ctx.cli.tz.as_deref()),
            rules: rules(&ctx.cli, &ctx.settings)?,
        })
    }

    pub fn scan(ctx: &mut Ctx, path: &Path) -> Result<()> {
        // The import's opener: gzip by its magic bytes, the reference time from the file's
        // modification time (now for stdin).
        let mut input = ipta::import::files::open(path).with_context(|| format!("{}", path.display()))?;
        if let ipta::import::files::Compression::Unsupported(kind) = input.compression {
            return Err(UsageError(format!(
                "{} is {kind}-compressed, which is not supported: decompress it into ipta --scan -",
                path.display()
            ))
            .into());
        }
        let opts = ipta::scan::ScanOptions {
            format: if ctx.format() == Format::Json {
                ipta::scan::ScanFormat::Json
            } else {
                ipta::scan::ScanFormat::Text
            },
            parse: parse_options(ctx, input.reference)?,
        };
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        let summary = ipta::scan::run(&mut input.reader, &mut out, &mut err, &opts)?;
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

    pub fn import(ctx: &mut Ctx, files: &[std::path::PathBuf]) -> Result<()> {
        let p = parse_options(ctx, now())?;
        let opts = ipta::import::ImportOptions {
            year: p.year,
            tz: p.tz,
            rules: p.rules,
            progress: std::io::stderr().is_terminal(),
            ..Default::default()
        };
        let mut out = std::io::stdout().lock();
        let summary = ipta::import::run(&ctx.settings.db, files, &opts, &mut out)?;
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

    pub fn expire(ctx: &mut Ctx, age: &str) -> Result<()> {
        let age = retention::parse_age(age).map_err(|e| UsageError(format!("--expire: {e}")))?;
        let table = ctx.table()?;
        let (cutoff, stats) =
            retention::expire_older_than(ctx.conn()?, &table, age, retention::DEFAULT_CHUNK_ROWS)?;
        writeln!(std::io::stdout(), "{}", stats.describe(&table, cutoff))?;
        Ok(())
    }

    fn dns_settings(ctx: &Ctx) -> Result<rdns::DnsSettings> {
        let mut d = rdns::DnsSettings::default();
        if let Some(t) = ctx.cli.ttl {
            d.ttl_hours = t;
        } else if let Some(t) = value(ctx, "ttl") {
            d.ttl_hours = t.parse().map_err(|_| UsageError(format!("config key ttl: {t:?} is not a number of hours")))?;
        }
        Ok(d)
    }

    pub fn analyze(ctx: &mut Ctx) -> Result<()> {
        let n = now();
        let time = |s: &Option<String>| -> Result<Option<Timestamp>> {
            s.as_deref()
                .map(|t| report::parse_time_arg(t, n).map_err(|e| UsageError(format!("{t:?}: {e}")).into()))
                .transpose()
        };
        let mut opts = report::AnalyzeOptions {
            limit: ctx.cli.limit.unwrap_or(10) as usize,
            no_local: ctx.cli.no_local,
            no_accept: ctx.cli.no_accept,
            since: time(&ctx.cli.since)?,
            until: time(&ctx.cli.until)?,
            host: ctx.cli.host.clone(),
            rdns: ctx.cli.rdns,
            format: match ctx.format() {
                Format::Text => report::Format::Table,
                Format::Json => report::Format::Json,
                Format::Csv => report::Format::Csv,
            },
            ..Default::default()
        };
        if !ctx.cli.module.is_empty() {
            opts.modules = report::Module::parse_list(&ctx.cli.module.join(","))
                .map_err(|e| UsageError(format!("--module: {e}")))?;
        }
        if let Some(n) = ctx.cli.scan_threshold {
            opts.scan_threshold = n;
        } else if let Some(t) = value(ctx, "scan_threshold") {
            opts.scan_threshold = t
                .parse()
                .map_err(|_| UsageError(format!("config key scan_threshold: {t:?} is not a number")))?;
        }
        let dns = dns_settings(ctx)?;
        let table = ctx.table()?;
        let mut out = std::io::stdout().lock();
        report::run_with_dns(ctx.conn()?, &table, &opts, &dns, &mut out)?;
        Ok(())
    }

    pub fn interactive(ctx: &mut Ctx) -> Result<()> {
        let tty = std::io::stdin().is_terminal();
        let mut input = std::io::stdin().lock();
        let mut out = std::io::stdout().lock();
        let failed = report::interactive::interactive(ctx.conn()?, &mut input, &mut out, tty)?;
        // Statements from a script: its caller must be able to tell that some failed (as
        // with the mysql client in batch mode). At a prompt the person saw each error.
        if failed > 0 && !tty {
            anyhow::bail!("{failed} statement{} failed", if failed == 1 { "" } else { "s" });
        }
        Ok(())
    }

    pub fn follow(ctx: &mut Ctx, path: Option<&Path>) -> Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop))?;
        }
        let follow_dir = ipta::follow::configured_dir(ctx.cli.follow_dir.as_deref(), &ctx.settings.values)
            .unwrap_or_else(|| ipta::follow::DEFAULT_FOLLOW_DIR.into());
        let opts = ipta::follow::FollowOptions {
            no_header: ctx.cli.no_header,
            no_counter: ctx.cli.no_counter,
            no_local: ctx.cli.no_local,
            no_accept: ctx.cli.no_accept,
            rdns: ctx.cli.rdns,
            format: if ctx.format() == Format::Json {
                ipta::follow::FollowFormat::Json
            } else {
                ipta::follow::FollowFormat::Text
            },
            width: None,
            parse: parse_options(ctx, now())?,
            follow_dir,
        };
        let mut out = std::io::stdout().lock();
        let r = match path {
            Some(p) => ipta::follow::follow_file(p, &opts, &mut out, &stop),
            None => ipta::follow::follow_ingest(&opts, &mut out, &stop),
        };
        match r {
            Err(e) if e.is_broken_pipe() => Ok(()),
            other => Ok(other?),
        }
    }

    pub fn dns_create_table(ctx: &mut Ctx) -> Result<()> {
        rdns::create_table(ctx.conn()?, rdns::DEFAULT_CACHE_TABLE)?;
        writeln!(std::io::stdout(), "Reverse-DNS cache table `{}` ready.", rdns::DEFAULT_CACHE_TABLE)?;
        Ok(())
    }

    pub fn dns_prune(ctx: &mut Ctx) -> Result<()> {
        let ttl = dns_settings(ctx)?.ttl_hours;
        let n = rdns::prune(ctx.conn()?, rdns::DEFAULT_CACHE_TABLE, ttl)?;
        writeln!(std::io::stdout(), "Pruned {n} cached names older than {ttl} hours.")?;
        Ok(())
    }

    pub fn dns_dump(ctx: &mut Ctx) -> Result<()> {
        let mut out = std::io::stdout().lock();
        rdns::dump(ctx.conn()?, rdns::DEFAULT_CACHE_TABLE, &mut out)?;
        Ok(())
    }
}

/// The exit status for an error, and advice on what to do.
fn classify(e: &anyhow::Error, db: Option<&ipta::config::DbSettings>) -> (u8, Option<String>) {
    for cause in e.chain() {
        // Library errors that wrap a store error transparently hide it from the chain.
        let wrapped = match cause.downcast_ref::<ipta::import::ImportError>() {
            Some(ipta::import::ImportError::Unavailable(se)) => {
                return (exit::UNREACHABLE, db.and_then(|d| cli::advice(se, d)));
            }
            Some(ipta::import::ImportError::Store(se)) => Some(se),
            _ => match cause.downcast_ref::<ipta::report::ReportError>() {
                Some(ipta::report::ReportError::Store(se)) => Some(se),
                _ => None,
            },
        };
        if let Some(se) = cause.downcast_ref::<StoreError>().or(wrapped) {
            let advice = db.and_then(|d| cli::advice(se, d));
            let code = match se {
                StoreError::Connect(_) | StoreError::ConnectionLost(_) => exit::UNREACHABLE,
                StoreError::AccessDenied(_)
                | StoreError::UnknownDatabase(_)
                | StoreError::MissingTable(_)
                | StoreError::Schema(_) => exit::NOT_SET_UP,
                StoreError::BadIdentifier { .. } => exit::USAGE,
                StoreError::Server { .. } | StoreError::Refused(_) | StoreError::Sql(_) => exit::ERROR,
            };
            return (code, advice);
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
        if let Some(ipta::import::ImportError::Options(_)) = cause.downcast_ref() {
            return (exit::USAGE, None);
        }
        if let Some(ipta::report::ReportError::BadOption(_)) = cause.downcast_ref() {
            return (exit::USAGE, None);
        }
    }
    (exit::ERROR, None)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn report(e: &anyhow::Error, db: Option<&ipta::config::DbSettings>) -> ExitCode {
    // Output cut short by a closed pipe (`ipta -lt | head`) is not a failure.
    if is_broken_pipe(e) {
        return ExitCode::from(exit::OK);
    }
    let (code, advice) = classify(e, db);
    eprintln!("ipta: error: {e:#}");
    if let Some(a) = advice {
        eprintln!("{a}");
    }
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let args = cli::normalize_args(std::env::args_os());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    if let Some(dir) = &cli.generate {
        return match ipta::docgen::generate(dir) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                ExitCode::from(exit::OK)
            }
            Err(e) => report(&anyhow::Error::new(e).context(format!("writing into {}", dir.display())), None),
        };
    }
    if cli.license || cli.usage {
        let text = if cli.license {
            cli::LICENSE
        } else {
            cli::USAGE
        };
        return match std::io::stdout().write_all(text.as_bytes()) {
            Ok(()) => ExitCode::from(exit::OK),
            Err(e) => report(&e.into(), None),
        };
    }
    let steps = plan(&cli);
    if steps.is_empty() {
        eprint!("ipta: nothing to do.\n{}", cli::USAGE);
        return ExitCode::from(exit::USAGE);
    }
    if let Err(e) = steps::validate(&cli) {
        return report(&e, None);
    }
    let settings = match config::load(&cli.db) {
        Ok(s) => s,
        Err(e) => return report(&anyhow::Error::new(e).context("reading the settings"), None),
    };
    let mut ctx = Ctx {
        cli,
        settings,
        conn: None,
    };
    for s in steps {
        if let Err(e) = run_step(&mut ctx, s) {
            return report(&e, Some(&ctx.settings.db));
        }
    }
    match std::io::stdout().flush() {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => report(&e.into(), None),
    }
}
