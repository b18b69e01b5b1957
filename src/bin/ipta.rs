//! `ipta`: the reporting command line. Thin: it parses the arguments (`ipta::cli`), runs the
//! requested steps in the original's order through the library, and maps errors to the
//! documented exit statuses (`ipta::cli::exit`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::Parser;
use ipta::cli::{self, exit, Cli, Format};
use ipta::config::{self, ConfigError, Settings};
use ipta::store::{self, schema, tables, StoreError};

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

/// The user answered no (exit status 1, nothing done).
#[derive(Debug, thiserror::Error)]
#[error("cancelled: {0}")]
struct Cancelled(String);

/// What one invocation does, in execution order. The arguments of features not in this build
/// yet are read once their modules are wired into `run_step`.
#[allow(dead_code)]
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

/// The option of a step whose feature is not in this build yet (checked before anything runs,
/// so `ipta -c -i FILE` does not clear and then fail).
fn unavailable(step: &Step) -> Option<&'static str> {
    match step {
        Step::Scan(_) => Some("--scan"),
        Step::Import(_) => Some("--import"),
        Step::Expire(_) => Some("--expire"),
        Step::Analyze => Some("--analyze"),
        Step::AnalyzeInteractive => Some("--analyze-interactive"),
        Step::Follow(_) => Some("--follow"),
        Step::DnsCreateTable => Some("--dns-create-table"),
        Step::DnsPrune => Some("--dns-prune"),
        Step::DnsDump => Some("--dns-dump"),
        _ => None,
    }
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

fn human_size(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn time_text(t: Option<ipta::record::Timestamp>) -> String {
    t.map(|t| t.to_chrono().format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
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
                serde_json::json!({ "database": db, "tables": v })
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
        other => {
            // Guarded by `unavailable` before any step runs.
            let opt = unavailable(&other).unwrap_or("this option");
            return Err(anyhow!("{opt}: not available yet"));
        }
    }
    Ok(())
}

/// The exit status for an error, and advice on what to do.
fn classify(e: &anyhow::Error, db: Option<&ipta::config::DbSettings>) -> (u8, Option<String>) {
    for cause in e.chain() {
        if let Some(se) = cause.downcast_ref::<StoreError>() {
            let advice = db.and_then(|d| cli::advice(se, d));
            let code = match se {
                StoreError::Connect(_) | StoreError::ConnectionLost(_) => exit::UNREACHABLE,
                StoreError::AccessDenied(_)
                | StoreError::UnknownDatabase(_)
                | StoreError::MissingTable(_)
                | StoreError::Schema(_) => exit::NOT_SET_UP,
                StoreError::BadIdentifier { .. } => exit::USAGE,
                StoreError::Sql(_) => exit::ERROR,
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
    for s in &steps {
        if let Some(opt) = unavailable(s) {
            eprintln!("ipta: {opt}: not available yet in this build");
            return ExitCode::from(exit::NOT_AVAILABLE);
        }
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
