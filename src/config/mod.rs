//! Settings: command line > environment > user config file > system config file > defaults.
//!
//! Files are `key = value` lines as in the original ipta; a line whose first non-blank
//! character is `#` is a comment (there are no comments after a value: passwords may contain
//! `#`). Values may be wrapped in single or double quotes. Key names ignore case and treat `-`
//! and `_` alike; the original's short names are accepted as aliases (see [`DB_KEYS`]).
//! The database keys are read here ([`DB_KEYS`]); every other key is typed once in [`keys`]
//! (`rules`, `tz`, `expire`, ...). A bad value stops the command with its file and line; an
//! unknown key earns one warning and is ignored.
//!
//! Files: the system file `/etc/ipta.conf` (what ipta-ingest reads when rsyslog runs it), then
//! the user file: `--config FILE` when given, else `~/.ipta-conf`, else the original's `~/.ipta`.
//! Environment: `IPTA_DB_HOST`, `IPTA_DB_PORT`, `IPTA_DB_SOCKET`, `IPTA_DB_USER`,
//! `IPTA_DB_PASS`, `IPTA_DB_NAME`, `IPTA_DB_TABLE`, `IPTA_DB_TLS`, `IPTA_DB_TLS_CA`, and
//! `IPTA_CONFIG` (the user file, like `--config`), `IPTA_SYSTEM_CONFIG` (another system file, for
//! tests and packaging).

pub mod args;
pub mod keys;

use std::path::{Path, PathBuf};

pub use args::{DbArgs, PasswordArgs};
pub use keys::{Age, Keys};

/// TLS towards the database server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMode {
    #[default]
    Off,
    /// Encrypt, do not verify the server's certificate.
    Required,
    /// Encrypt and verify the certificate chain and host name.
    Verify,
}

impl TlsMode {
    /// Parses a `db_tls` / `--db-tls` value: `off`, `required` or `verify` (any case; MySQL's
    /// `--ssl-mode` names `disabled`, `required`, `verify_identity` are accepted too).
    pub fn parse(s: &str) -> Result<TlsMode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "disabled" | "no" | "false" => Ok(TlsMode::Off),
            // A plain "yes" to TLS means the safe kind: encrypted and checked.
            "on" | "yes" | "true" => Ok(TlsMode::Verify),
            "required" | "require" => Ok(TlsMode::Required),
            "verify" | "verify_identity" | "verify-identity" => Ok(TlsMode::Verify),
            _ => Err(format!(
                "invalid TLS mode {s:?}: use off, required (encrypt) or verify (encrypt and check the certificate)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Off => "off",
            TlsMode::Required => "required",
            TlsMode::Verify => "verify",
        }
    }
}

/// Where the database is and who we are there.
#[derive(Clone, PartialEq, Eq)]
pub struct DbSettings {
    pub host: String,
    pub port: Option<u16>,
    pub socket: Option<PathBuf>,
    pub user: String,
    pub password: String,
    pub database: String,
    pub table: String,
    pub tls: TlsMode,
    pub tls_ca: Option<PathBuf>,
}

/// The password never appears in debug output (logs, panics).
impl std::fmt::Debug for DbSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("socket", &self.socket)
            .field("user", &self.user)
            .field("password", &"***")
            .field("database", &self.database)
            .field("table", &self.table)
            .field("tls", &self.tls)
            .field("tls_ca", &self.tls_ca)
            .finish()
    }
}

impl Default for DbSettings {
    fn default() -> Self {
        DbSettings {
            host: "localhost".into(),
            port: None,
            socket: None,
            user: "ipta".into(),
            password: "ipta".into(),
            database: "ipta".into(),
            table: "logs".into(),
            tls: TlsMode::Off,
            tls_ca: None,
        }
    }
}

/// Sockets a local MariaDB/MySQL server usually listens on, tried for `localhost` when no
/// socket and no port are configured (what the C client library does for `localhost`).
pub const DEFAULT_SOCKETS: &[&str] = &[
    "/run/mysqld/mysqld.sock",
    "/var/run/mysqld/mysqld.sock",
    "/var/lib/mysql/mysql.sock",
    "/tmp/mysql.sock",
];

impl DbSettings {
    /// The Unix socket to use: the configured one, or for `localhost` without a port the first
    /// default socket that exists; None means TCP.
    pub fn effective_socket(&self) -> Option<PathBuf> {
        if let Some(s) = &self.socket {
            return Some(s.clone());
        }
        if self.host == "localhost" && self.port.is_none() && self.tls == TlsMode::Off {
            return DEFAULT_SOCKETS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists());
        }
        None
    }

    /// Where we connect, in words: `socket /run/mysqld/mysqld.sock` or `host db1:3306`.
    pub fn endpoint(&self) -> String {
        match self.effective_socket() {
            Some(s) => format!("socket {}", s.display()),
            None => format!("host {}:{}", self.host, self.port.unwrap_or(3306)),
        }
    }
}

/// A database setting: its canonical file key, accepted aliases, environment variable.
pub struct DbKey {
    pub key: &'static str,
    pub aliases: &'static [&'static str],
    pub env: &'static str,
    pub help: &'static str,
}

/// Every database key of the config files, documented in README.md.
pub const DB_KEYS: &[DbKey] = &[
    DbKey {
        key: "db_host",
        aliases: &["host", "dbhost"],
        env: "IPTA_DB_HOST",
        help: "server host name or address (default localhost)",
    },
    DbKey {
        key: "db_port",
        aliases: &["port", "dbport"],
        env: "IPTA_DB_PORT",
        help: "TCP port (default 3306)",
    },
    DbKey {
        key: "db_socket",
        aliases: &["socket", "dbsocket"],
        env: "IPTA_DB_SOCKET",
        help: "Unix socket path (default: the usual sockets, for localhost)",
    },
    DbKey {
        key: "db_user",
        aliases: &["user", "dbuser", "username"],
        env: "IPTA_DB_USER",
        help: "user name (default ipta)",
    },
    DbKey {
        key: "db_pass",
        aliases: &["pass", "password", "dbpass", "db_password"],
        env: "IPTA_DB_PASS",
        help: "password (default ipta)",
    },
    DbKey {
        key: "db_name",
        aliases: &["database", "dbname", "db", "name"],
        env: "IPTA_DB_NAME",
        help: "database name (default ipta)",
    },
    DbKey {
        key: "db_table",
        aliases: &["table", "dbtable"],
        env: "IPTA_DB_TABLE",
        help: "packet table (default logs)",
    },
    DbKey {
        key: "db_tls",
        aliases: &["tls", "ssl"],
        env: "IPTA_DB_TLS",
        help: "off, required (encrypt) or verify (encrypt and check the certificate)",
    },
    DbKey {
        key: "db_tls_ca",
        aliases: &["tls_ca", "ssl_ca"],
        env: "IPTA_DB_TLS_CA",
        help: "CA certificate file (PEM) for --db-tls verify",
    },
];

/// The system-wide file.
pub const SYSTEM_FILE: &str = "/etc/ipta.conf";
/// The user file this version writes (`--save-db`).
pub const USER_FILE: &str = ".ipta-conf";
/// The original ipta's user file, read when `~/.ipta-conf` does not exist.
pub const LEGACY_USER_FILE: &str = ".ipta";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{path}:{line}: {why}")]
    Syntax {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("{origin}: invalid value {value:?} for {key}: {why}")]
    Value {
        origin: String,
        key: String,
        value: String,
        why: String,
    },
    #[error("cannot write {path}: {err}")]
    Write { path: PathBuf, err: std::io::Error },
    #[error("cannot read the password: {0}")]
    Prompt(std::io::Error),
    #[error("no home directory (HOME is not set); use --config FILE")]
    NoHome,
    #[error("refusing config file {path}: {why}")]
    Unsafe { path: PathBuf, why: String },
}

/// Everything the configuration sources said.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub db: DbSettings,
    /// The other keys of the files, typed (user file over system file).
    pub keys: Keys,
    /// Files that were read, system file first.
    pub files: Vec<PathBuf>,
    /// Things the user should know (e.g. a readable password file).
    pub warnings: Vec<String>,
}

/// What `load_from` reads from outside: tests replace each part.
pub struct Context<'a> {
    pub home: Option<PathBuf>,
    pub system_file: PathBuf,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Reads a password without echo (for `-pi`).
    pub prompt: &'a dyn Fn(&str) -> std::io::Result<String>,
}

/// A variable of the real environment; an empty one counts as unset, except the password,
/// which may really be empty (a local root without password, a test server).
fn env_value(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty() || k == "IPTA_DB_PASS")
}

/// Loads the settings from the real environment, home directory and `/etc/ipta.conf`, and
/// prints warnings on stderr.
pub fn load(args: &DbArgs, password: &PasswordArgs) -> Result<Settings, ConfigError> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    let prompt = |p: &str| rpassword::prompt_password(p);
    let s = load_real(args, password, home, &prompt)?;
    for w in &s.warnings {
        eprintln!("ipta: warning: {w}");
    }
    Ok(s)
}

/// The settings of a daemon (ipta-ingest): like [`load`], but no file in a home directory is
/// read (rsyslog's user has none that matters) and nothing is printed: the system file, then
/// `--config FILE` or `IPTA_CONFIG`, then the environment, then the command line.
pub fn load_system(args: &DbArgs) -> Result<Settings, ConfigError> {
    let no_prompt = |_: &str| -> std::io::Result<String> {
        Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "no password prompt here"))
    };
    load_real(args, &PasswordArgs::default(), None, &no_prompt)
}

/// [`load_from`] with the real environment and system file (IPTA_SYSTEM_CONFIG moves it, for
/// tests and packaging; unset means /etc/ipta.conf).
fn load_real(
    args: &DbArgs,
    password: &PasswordArgs,
    home: Option<PathBuf>,
    prompt: &dyn Fn(&str) -> std::io::Result<String>,
) -> Result<Settings, ConfigError> {
    let system_file = std::env::var_os("IPTA_SYSTEM_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SYSTEM_FILE));
    load_from(args, password, &Context { home, system_file, env: &env_value, prompt })
}

fn normalise_key(k: &str) -> String {
    k.trim().to_ascii_lowercase().replace('-', "_")
}

/// The canonical key of a database setting, or None when `k` (normalised) is not one.
fn db_key(k: &str) -> Option<&'static DbKey> {
    DB_KEYS
        .iter()
        .find(|d| d.key == k || d.aliases.contains(&k))
}

/// One parsed file: (normalised key, value, line number).
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<(String, String, usize)>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(ConfigError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
                // The line itself is not shown: it may be a password.
                why: "expected `key = value` (the line is not shown: it may hold a password)".into(),
            });
        };
        let key = normalise_key(k);
        if key.is_empty() {
            return Err(ConfigError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
                why: "empty key".into(),
            });
        }
        let mut v = v.trim();
        if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            v = &v[1..v.len() - 1];
        }
        out.push((key, v.to_string(), i + 1));
    }
    Ok(out)
}

/// Applies one database setting from any source.
fn apply(db: &mut DbSettings, key: &str, value: &str, origin: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| ConfigError::Value {
        origin: origin.to_string(),
        key: key.to_string(),
        value: if key == "db_pass" {
            "***".into()
        } else {
            value.to_string()
        },
        why: why.to_string(),
    };
    match key {
        "db_host" => db.host = value.to_string(),
        "db_port" => {
            db.port = if value.is_empty() {
                None
            } else {
                Some(
                    value
                        .parse()
                        .map_err(|_| bad("a port is a number from 1 to 65535"))?,
                )
            };
            if db.port == Some(0) {
                return Err(bad("a port is a number from 1 to 65535"));
            }
        }
        "db_socket" => db.socket = (!value.is_empty()).then(|| PathBuf::from(value)),
        "db_user" => db.user = value.to_string(),
        "db_pass" => db.password = value.to_string(),
        "db_name" => db.database = value.to_string(),
        "db_table" => db.table = value.to_string(),
        "db_tls" => {
            db.tls = TlsMode::parse(value).map_err(|_| {
                bad("use off, required (encrypt) or verify (encrypt and check the certificate)")
            })?
        }
        "db_tls_ca" => db.tls_ca = (!value.is_empty()).then(|| PathBuf::from(value)),
        _ => {}
    }
    Ok(())
}

/// Does the file give read access beyond what it needs? A user file should be readable by its
/// owner only; the system file is meant to be readable by the group rsyslog runs ipta-ingest
/// as (mode 0640, see install.sh), so only others' access counts there.
#[cfg(unix)]
fn readable_by_others(path: &Path, system: bool) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let mask = if system { 0o004 } else { 0o044 };
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & mask != 0)
        .unwrap_or(false)
}

fn read_file(
    path: &Path,
    s: &mut Settings,
    required: bool,
    system: bool,
) -> Result<bool, ConfigError> {
    let text = match std::fs::read(path) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(false),
        Err(err) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                err,
            })
        }
    };
    let entries = parse_file(path, &text)?;
    let mut has_password = false;
    for (key, value, line) in entries {
        match db_key(&key) {
            Some(d) => {
                has_password |= d.key == "db_pass";
                apply(
                    &mut s.db,
                    d.key,
                    &value,
                    &format!("{}:{line}", path.display()),
                )?;
            }
            None => match s.keys.set(&key, &value) {
                Ok(true) => {}
                Ok(false) => s.warnings.push(format!(
                    "{}:{line}: unknown key `{key}` is ignored (known: the database keys and {})",
                    path.display(),
                    keys::KEYS.iter().map(|k| k.key).collect::<Vec<_>>().join(", ")
                )),
                Err(why) => {
                    return Err(ConfigError::Value {
                        origin: format!("{}:{line}", path.display()),
                        key,
                        value,
                        why,
                    })
                }
            },
        }
    }
    if has_password && readable_by_others(path, system) {
        s.warnings.push(format!(
            "{} holds a database password and other users can read it; run: chmod {} {}",
            path.display(),
            if system { "o-rwx" } else { "600" },
            path.display()
        ));
    }
    s.files.push(path.to_path_buf());
    Ok(true)
}

/// The user file to read: `--config`/`IPTA_CONFIG` (must exist), else `~/.ipta-conf`, else
/// `~/.ipta`. The flag says whether it must exist.
fn user_file(args: &DbArgs, ctx: &Context<'_>) -> Option<(PathBuf, bool)> {
    if let Some(p) = &args.config {
        return Some((p.clone(), true));
    }
    if let Some(p) = (ctx.env)("IPTA_CONFIG") {
        return Some((PathBuf::from(p), true));
    }
    let home = ctx.home.as_ref()?;
    let new = home.join(USER_FILE);
    if new.exists() {
        return Some((new, false));
    }
    Some((home.join(LEGACY_USER_FILE), false))
}

/// Loads the settings from the given context (see [`load`]).
pub fn load_from(args: &DbArgs, password: &PasswordArgs, ctx: &Context<'_>) -> Result<Settings, ConfigError> {
    let mut s = Settings::default();
    // An unreadable system file (another user's mode, a broken mount) costs its settings and
    // one warning, never the command: `--scan` and `--follow FILE` need none of it, and a
    // command that does reports what is missing. An explicit `--config FILE` still must be
    // readable.
    // Its syntax errors and bad values, though, stop the command like the user file's.
    match read_file(&ctx.system_file, &mut s, false, true) {
        Err(ConfigError::Read { path, err }) => {
            s.warnings.push(format!("cannot read {} ({err}): its settings are not used", path.display()))
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    if let Some((path, required)) = user_file(args, ctx) {
        read_file(&path, &mut s, required, false)?;
    }
    for d in DB_KEYS {
        if let Some(v) = (ctx.env)(d.env) {
            apply(
                &mut s.db,
                d.key,
                &v,
                &format!("environment variable {}", d.env),
            )?;
        }
    }
    let cli = |key: &str, v: Option<String>, s: &mut Settings| -> Result<(), ConfigError> {
        match v {
            Some(v) => apply(&mut s.db, key, &v, "command line"),
            None => Ok(()),
        }
    };
    cli("db_host", args.db_host.clone(), &mut s)?;
    if let Some(p) = args.db_port {
        s.db.port = Some(p);
    }
    cli(
        "db_socket",
        args.db_socket
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        &mut s,
    )?;
    cli("db_user", args.db_user.clone(), &mut s)?;
    cli("db_pass", password.db_pass.clone(), &mut s)?;
    cli("db_name", args.db_name.clone(), &mut s)?;
    cli("db_table", args.db_table.clone(), &mut s)?;
    if let Some(t) = args.db_tls {
        s.db.tls = t;
    }
    cli(
        "db_tls_ca",
        args.db_tls_ca
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        &mut s,
    )?;
    if password.db_pass_i {
        s.db.password = (ctx.prompt)(&format!(
            "Password for {}@{} ({}): ",
            s.db.user,
            s.db.database,
            s.db.endpoint()
        ))
        .map_err(ConfigError::Prompt)?;
    }
    if s.db.tls == TlsMode::Off && s.db.tls_ca.is_some() {
        s.db.tls = TlsMode::Verify;
    }
    // Passwords and packets in clear text over a network: said once, never silently.
    if s.db.tls == TlsMode::Off && s.db.socket.is_none() && !is_local_host(&s.db.host) {
        s.warnings.push(format!(
            "the connection to the database server {} is not encrypted: set db_tls = verify (and \
             db_tls_ca to the CA that signed its certificate)",
            s.db.host
        ));
    }
    Ok(s)
}

/// The lines `--save-db` writes for these settings (canonical keys).
fn db_lines(db: &DbSettings) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("db_host", db.host.clone()),
        (
            "db_port",
            db.port.map(|p| p.to_string()).unwrap_or_default(),
        ),
        (
            "db_socket",
            db.socket
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        ("db_user", db.user.clone()),
        ("db_pass", db.password.clone()),
        ("db_name", db.database.clone()),
        ("db_table", db.table.clone()),
        ("db_tls", db.tls.as_str().to_string()),
        (
            "db_tls_ca",
            db.tls_ca
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
    ];
    // Empty optional values are left out rather than written as `key =`.
    v.retain(|(_, val)| !val.is_empty());
    v
}

/// Whether `host` is this machine (no network between client and server).
fn is_local_host(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]") || host.starts_with("127.")
}

/// Refuses a settings file that a user other than its owner may write (group or world
/// write bit), or that is owned by neither root nor the user running the program.
pub fn check_not_writable_by_others(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|err| ConfigError::Read { path: path.to_path_buf(), err })?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let why = if m.mode() & 0o022 != 0 {
        format!("others can write it (mode {:o}); run: chmod go-w {}", m.mode() & 0o777, path.display())
    } else if m.uid() != 0 && m.uid() != me {
        format!("it belongs to uid {}, neither root nor this user", m.uid())
    } else {
        return Ok(());
    };
    Err(ConfigError::Unsafe { path: path.to_path_buf(), why })
}

/// A value as `parse_file` reads it back: quoted when it has surrounding white space, starts
/// or ends with a quote, or is empty (the reader takes off one pair of quotes, nothing else).
fn quoted_if_needed(v: &str) -> String {
    let needs = v.is_empty()
        || v.trim() != v
        || v.starts_with(['"', '\'']) || v.ends_with(['"', '\'']);
    if needs {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

/// Writes the database settings into the user file (`path`, normally `~/.ipta-conf`) with mode
/// 0600, atomically (temporary file + rename). Lines of other keys and comments are kept;
/// database keys (and their aliases) are replaced.
pub fn save_db(path: &Path, db: &DbSettings) -> Result<(), ConfigError> {
    let werr = |err| ConfigError::Write {
        path: path.to_path_buf(),
        err,
    };
    let old = match std::fs::read(path) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(werr(e)),
    };
    let mut out = String::new();
    if old.is_empty() {
        out.push_str(
            "# ipta settings (key = value); written by ipta --save-db. See README.md.\n",
        );
    }
    for line in old.lines() {
        let t = line.trim();
        let is_db = !t.starts_with('#')
            && t.split_once('=')
                .is_some_and(|(k, _)| db_key(&normalise_key(k)).is_some());
        if !is_db {
            out.push_str(line);
            out.push('\n');
        }
    }
    for (k, v) in db_lines(db) {
        out.push_str(&format!("{k} = {}\n", quoted_if_needed(&v)));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The temporary file is created new (never an existing file, never through a symlink an
    // attacker placed in the directory), mode 0600 from the start.
    let open_tmp = || -> std::io::Result<(PathBuf, std::fs::File)> {
        use std::os::unix::fs::OpenOptionsExt;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let mut last = None;
        for attempt in 0..16u32 {
            let tmp = dir.join(format!(".{name}.tmp{}.{nanos}.{attempt}", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)
            {
                Ok(f) => return Ok((tmp, f)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no temporary file name free")))
    };
    let (tmp, mut f) = open_tmp().map_err(werr)?;
    let mut write = || -> std::io::Result<()> {
        use std::io::Write;
        f.write_all(out.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        werr(e)
    })
}

/// `~/.ipta-conf` of the given home.
pub fn user_file_path(home: Option<&Path>) -> Result<PathBuf, ConfigError> {
    home.map(|h| h.join(USER_FILE)).ok_or(ConfigError::NoHome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ctx_with<'a>(
        home: &Path,
        system: &Path,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> Context<'a> {
        Context {
            home: Some(home.to_path_buf()),
            system_file: system.to_path_buf(),
            env,
            prompt: &|_| Ok("prompted".to_string()),
        }
    }

    fn write(p: &Path, text: &str, mode: u32) {
        std::fs::write(p, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn defaults_are_the_originals() {
        let d = tempfile::tempdir().unwrap();
        let no_env = |_: &str| None;
        let s = load_from(
            &DbArgs::default(),
            &PasswordArgs::default(),
            &ctx_with(d.path(), &d.path().join("none"), &no_env),
        )
        .unwrap();
        assert_eq!(s.db, DbSettings::default());
        assert!(s.files.is_empty());
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn precedence_cli_env_user_system_default() {
        let d = tempfile::tempdir().unwrap();
        let sys = d.path().join("ipta.conf");
        write(&sys, "# system\ndb_host = sys-host\ndb_user = sysuser\ndb_name = sysdb\ndb_table = systable\nrules = ufw\n", 0o644);
        write(
            &d.path().join(".ipta-conf"),
            "db-user = \"useruser\"\n  # comment\nDB_NAME=userdb\ntable = usertable\ntz = UTC\npassword = p#ss=word\n",
            0o600,
        );
        let env: HashMap<&str, &str> =
            [("IPTA_DB_NAME", "envdb"), ("IPTA_DB_TABLE", "envtable")].into();
        let envf = |k: &str| env.get(k).map(|v| v.to_string());
        let args = DbArgs {
            db_table: Some("clitable".into()),
            ..Default::default()
        };
        let s = load_from(&args, &PasswordArgs::default(), &ctx_with(d.path(), &sys, &envf)).unwrap();
        assert_eq!(s.db.host, "sys-host"); // system file only
        assert_eq!(s.db.user, "useruser"); // user file over system
        assert_eq!(s.db.database, "envdb"); // environment over files
        assert_eq!(s.db.table, "clitable"); // command line over everything
        assert_eq!(s.db.password, "p#ss=word"); // '#' and '=' inside values are kept
        assert_eq!(s.db.port, None); // default
        assert_eq!(s.keys.rules, ["ufw"]);
        assert_eq!(s.keys.tz.as_deref(), Some("UTC"));
        assert_eq!(s.files.len(), 2);
        // Only the note that the remote server (a host, no TLS) is reached in clear text.
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("not encrypted"), "{:?}", s.warnings);
    }

    #[test]
    fn legacy_file_and_explicit_config() {
        let d = tempfile::tempdir().unwrap();
        let no_env = |_: &str| None;
        let none = d.path().join("none");
        write(
            &d.path().join(".ipta"),
            "host = legacy\nport = 3307\n",
            0o600,
        );
        let s = load_from(&DbArgs::default(), &PasswordArgs::default(), &ctx_with(d.path(), &none, &no_env)).unwrap();
        assert_eq!((s.db.host.as_str(), s.db.port), ("legacy", Some(3307)));
        // ~/.ipta-conf wins over ~/.ipta.
        write(&d.path().join(".ipta-conf"), "host = new\n", 0o600);
        let s = load_from(&DbArgs::default(), &PasswordArgs::default(), &ctx_with(d.path(), &none, &no_env)).unwrap();
        assert_eq!((s.db.host.as_str(), s.db.port), ("new", None));
        // --config replaces the user file; a missing one is an error.
        let other = d.path().join("other.conf");
        write(&other, "host = other\n", 0o600);
        let args = DbArgs {
            config: Some(other),
            ..Default::default()
        };
        let s = load_from(&args, &PasswordArgs::default(), &ctx_with(d.path(), &none, &no_env)).unwrap();
        assert_eq!(s.db.host, "other");
        let args = DbArgs {
            config: Some(d.path().join("missing.conf")),
            ..Default::default()
        };
        assert!(matches!(
            load_from(&args, &PasswordArgs::default(), &ctx_with(d.path(), &none, &no_env)),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn readable_password_file_warns() {
        let d = tempfile::tempdir().unwrap();
        let no_env = |_: &str| None;
        let none = d.path().join("none");
        write(&d.path().join(".ipta-conf"), "db_pass = secret\n", 0o644);
        let s = load_from(&DbArgs::default(), &PasswordArgs::default(), &ctx_with(d.path(), &none, &no_env)).unwrap();
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].contains("chmod 600"));
        assert!(!s.warnings[0].contains("secret"));
        // The system file may be group-readable (rsyslog's group), not world-readable.
        std::fs::remove_file(d.path().join(".ipta-conf")).unwrap();
        let sys = d.path().join("system.conf");
        write(&sys, "db_pass = secret\n", 0o640);
        let s = load_from(&DbArgs::default(), &PasswordArgs::default(), &ctx_with(d.path(), &sys, &no_env)).unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        write(&sys, "db_pass = secret\n", 0o644);
        let s = load_from(&DbArgs::default(), &PasswordArgs::default(), &ctx_with(d.path(), &sys, &no_env)).unwrap();
        assert_eq!(s.warnings.len(), 1);
        // Without a password, a readable file is fine.
        write(&d.path().join(".ipta-conf"), "db_host = localhost\n", 0o644);
        let s = load_from(&DbArgs::default(), &PasswordArgs::default(), &ctx_with(d.path(), &none, &no_env)).unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn bad_values_and_lines_are_reported_with_their_place() {
        let d = tempfile::tempdir().unwrap();
        let no_env = |_: &str| None;
        let none = d.path().join("none");
        write(
            &d.path().join(".ipta-conf"),
            "db_host = h\nthis is not a setting\n",
            0o600,
        );
        let e = load_from(&DbArgs::default(), &PasswordArgs::default(), &ctx_with(d.path(), &none, &no_env)).unwrap_err();
        assert!(e.to_string().contains(".ipta-conf:2"), "{e}");
        write(&d.path().join(".ipta-conf"), "db_port = lots\n", 0o600);
        let e = load_from(&DbArgs::default(), &PasswordArgs::default(), &ctx_with(d.path(), &none, &no_env)).unwrap_err();
        assert!(
            e.to_string().contains(".ipta-conf:1") && e.to_string().contains("port"),
            "{e}"
        );
        let env = |k: &str| (k == "IPTA_DB_TLS").then(|| "maybe".to_string());
        std::fs::remove_file(d.path().join(".ipta-conf")).unwrap();
        let e = load_from(&DbArgs::default(), &PasswordArgs::default(), &ctx_with(d.path(), &none, &env)).unwrap_err();
        assert!(e.to_string().contains("IPTA_DB_TLS"), "{e}");
    }

    #[test]
    fn prompt_replaces_the_password() {
        let d = tempfile::tempdir().unwrap();
        let env = |k: &str| (k == "IPTA_DB_PASS").then(|| "fromenv".to_string());
        let pw = PasswordArgs { db_pass_i: true, ..Default::default() };
        let s = load_from(&DbArgs::default(), &pw, &ctx_with(d.path(), &d.path().join("none"), &env)).unwrap();
        assert_eq!(s.db.password, "prompted");
        let s = load_from(
            &DbArgs::default(),
            &PasswordArgs::default(),
            &ctx_with(d.path(), &d.path().join("none"), &env),
        )
        .unwrap();
        assert_eq!(s.db.password, "fromenv");
        assert!(!format!("{:?}", s.db).contains("fromenv"));
    }

    #[test]
    fn save_keeps_other_lines_and_is_private() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".ipta-conf");
        write(
            &p,
            "# mine\nrules = ufw\nhost = old\npassword = old\n",
            0o644,
        );
        let db = DbSettings {
            host: "db1".into(),
            port: Some(3307),
            password: "n3w#pw".into(),
            ..Default::default()
        };
        save_db(&p, &db).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("# mine\nrules = ufw\n"), "{text}");
        assert!(!text.contains("old"), "{text}");
        let no_env = |_: &str| None;
        let s = load_from(
            &DbArgs::default(),
            &PasswordArgs::default(),
            &ctx_with(d.path(), &d.path().join("none"), &no_env),
        )
        .unwrap();
        assert_eq!(s.db, db);
        // Only the note that the remote server `db1` is reached in clear text.
        assert!(s.warnings.iter().all(|w| w.contains("not encrypted")), "{:?}", s.warnings);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_unreadable_system_file_is_one_warning_and_an_explicit_one_an_error() {
        let d = tempfile::tempdir().unwrap();
        // A directory where the file should be: unreadable as a file, for root too.
        let sys = d.path().join("ipta.conf");
        std::fs::create_dir(&sys).unwrap();
        let no_env = |_: &str| None;
        let s = load_from(&DbArgs::default(), &PasswordArgs::default(), &ctx_with(d.path(), &sys, &no_env)).unwrap();
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("cannot read") && s.warnings[0].contains("not used"), "{:?}", s.warnings);
        let args = DbArgs { config: Some(sys.clone()), ..Default::default() };
        assert!(matches!(load_from(&args, &PasswordArgs::default(), &ctx_with(d.path(), &d.path().join("none"), &no_env)), Err(ConfigError::Read { .. })));
    }

    #[test]
    fn a_bad_value_in_either_file_stops_and_an_unknown_key_is_one_warning() {
        let d = tempfile::tempdir().unwrap();
        let sys = d.path().join("ipta.conf");
        let no_env = |_: &str| None;
        let load = |sys: &Path| load_from(&DbArgs::default(), &PasswordArgs::default(), &ctx_with(d.path(), sys, &no_env));
        // The system file's bad value counts as much as the user file's (it used to be ignored).
        write(&sys, "db_user = ipta\nexpire = banana\n", 0o644);
        let e = load(&sys).unwrap_err().to_string();
        assert!(e.contains("ipta.conf:2") && e.contains("expire") && e.contains("banana"), "{e}");
        write(&d.path().join(".ipta-conf"), "rules = ufw,pf\n", 0o600);
        write(&sys, "colour = blue\n", 0o644);
        let e = load(&sys).unwrap_err().to_string();
        assert!(e.contains(".ipta-conf:1") && e.contains("unknown preset \"pf\""), "{e}");
        write(&d.path().join(".ipta-conf"), "expire = 30d\n", 0o600);
        let s = load(&sys).unwrap();
        assert_eq!(s.keys.expire.as_ref().map(|a| a.text.as_str()), Some("30d"));
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("ipta.conf:1: unknown key `colour`"), "{:?}", s.warnings);
    }

    #[test]
    fn a_syntax_error_never_shows_the_line() {
        let e = parse_file(Path::new("/etc/ipta.conf"), "db_user = ipta\nS3cretPassw0rd\n").unwrap_err().to_string();
        assert!(e.contains("/etc/ipta.conf:2") && !e.contains("S3cret"), "{e}");
    }

    #[test]
    fn values_with_quotes_or_spaces_survive_a_save_and_a_reload() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".ipta-conf");
        for pw in ["  spaced  ", "\"quoted\"", "'single'", "mid\"dle", "x\"", " # not a comment"] {
            let db = DbSettings { password: pw.into(), ..Default::default() };
            save_db(&p, &db).unwrap();
            let no_env = |_: &str| None;
            let s = load_from(&DbArgs::default(), &PasswordArgs::default(), &ctx_with(d.path(), &d.path().join("none"), &no_env)).unwrap();
            assert_eq!(s.db.password, pw, "{}", std::fs::read_to_string(&p).unwrap());
        }
    }

    #[test]
    fn save_never_writes_through_a_planted_symlink() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".ipta-conf");
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        // Whatever temporary name an attacker guesses, the file is created new (O_EXCL,
        // O_NOFOLLOW): plant links under the old fixed name and under this process's prefix.
        std::os::unix::fs::symlink(&victim, d.path().join(format!(".ipta-conf.tmp{}", std::process::id()))).unwrap();
        save_db(&p, &DbSettings { password: "pw".into(), ..Default::default() }).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(std::fs::read_to_string(&p).unwrap().contains("db_pass = pw"));
    }

    #[test]
    fn a_remote_server_without_tls_earns_one_warning() {
        let d = tempfile::tempdir().unwrap();
        let env = |k: &str| (k == "IPTA_DB_HOST").then(|| "db.example.net".to_string());
        let s = load_from(&DbArgs::default(), &PasswordArgs::default(), &ctx_with(d.path(), &d.path().join("none"), &env)).unwrap();
        assert_eq!(s.warnings.iter().filter(|w| w.contains("not encrypted")).count(), 1, "{:?}", s.warnings);
        let env = |k: &str| match k {
            "IPTA_DB_HOST" => Some("db.example.net".to_string()),
            "IPTA_DB_TLS" => Some("verify".to_string()),
            _ => None,
        };
        let s = load_from(&DbArgs::default(), &PasswordArgs::default(), &ctx_with(d.path(), &d.path().join("none"), &env)).unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        let no_env = |_: &str| None;
        let s = load_from(&DbArgs::default(), &PasswordArgs::default(), &ctx_with(d.path(), &d.path().join("none"), &no_env)).unwrap();
        assert!(s.warnings.is_empty(), "localhost: {:?}", s.warnings);
    }
}
