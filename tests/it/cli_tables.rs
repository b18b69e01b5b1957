//! `ipta` as a user runs it: the built binary against a private test database, with a private
//! HOME and no system config, covering the table commands, settings, errors and exit codes.
use crate::util;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use mysql::prelude::Queryable;

/// The binary with a clean environment: its own HOME, no /etc/ipta.conf, no IPTA_* variables.
fn ipta(home: &Path) -> Command {
    let mut c = Command::new(util::bin("ipta"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("IPTA_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", home)
        .env("IPTA_SYSTEM_CONFIG", home.join("no-system.conf"))
        .stdin(Stdio::null());
    c
}

/// The binary pointed at the test database through options and the password through the
/// environment (as scripts should).
fn ipta_db(db: &util::TestDb, home: &Path) -> Command {
    let mut c = ipta(home);
    let s = &db.settings;
    c.arg("--db-socket")
        .arg(s.socket.as_ref().unwrap())
        .args(["-u", &s.user, "-d", &s.database])
        .env("IPTA_DB_PASS", &s.password);
    c
}

/// A test database with an empty packet table `logs`, and a home directory of its own.
fn db_with_logs(tag: &str) -> (util::TestDb, tempfile::TempDir) {
    use mysql::prelude::Queryable;
    let db = util::TestDb::new(tag);
    db.conn().query_drop(ipta::store::schema::create_table_sql("logs")).unwrap();
    (db, tempfile::tempdir().unwrap())
}

fn run(c: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().expect("run ipta");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn tables(db: &util::TestDb) -> Vec<String> {
    db.conn().query("SHOW TABLES").unwrap()
}

#[test]
fn create_list_delete_tables() {
    let db = util::TestDb::new("cli_tables");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();

    let (code, out, err) = run(ipta_db(&db, h).arg("-ct"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Table `logs` created"), "{out}");
    let (code, out, _) = run(ipta_db(&db, h).arg("--create-table"));
    assert_eq!(code, 0);
    assert!(out.contains("already exists"), "{out}");
    let (code, out, _) = run(ipta_db(&db, h).args(["-ct", "fw2"]));
    assert_eq!(code, 0);
    assert!(out.contains("`fw2` created"), "{out}");
    // -t names the table of the other commands.
    let (code, _, _) = run(ipta_db(&db, h).args(["-t", "fw3", "-ct"]));
    assert_eq!(code, 0);

    // A table that is not ipta's is never listed nor deleted.
    db.conn()
        .query_drop("CREATE TABLE payroll (x INT)")
        .unwrap();
    db.conn()
        .query_drop("INSERT INTO fw2 (ts, action, prefix, line_hash, occ) VALUES ('2026-01-02 03:04:05', 'DROP', 'IPT: DROP ', 1, 0), ('2026-01-03 00:00:00', 'DROP', 'IPT: DROP ', 2, 0)")
        .unwrap();

    let (code, out, err) = run(ipta_db(&db, h).arg("-lt"));
    assert_eq!(code, 0);
    assert!(err.contains("Retention: none"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "table\trows\tfirst\tlast\tsize", "{out}");
    assert!(
        lines[1].starts_with("fw2\t2\t2026-01-02 03:04:05\t2026-01-03 00:00:00\t"),
        "{out}"
    );
    assert!(lines[2].starts_with("fw3\t0\t\t\t"), "{out}");
    assert!(lines[3].starts_with("logs\t0"), "{out}");
    assert_eq!(lines.len(), 4, "{out}");
    let (code, out, _) = run(ipta_db(&db, h).args(["--list-tables", "--format", "json"]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tables"].as_array().unwrap().len(), 3);
    assert_eq!(v["tables"][0]["rows"], 2);
    assert_eq!(v["tables"][0]["first"], "2026-01-02T03:04:05.000000Z");

    // Destructive commands refuse without a terminal unless --yes.
    let (code, _, err) = run(ipta_db(&db, h).args(["-dt", "fw2"]));
    assert_eq!(code, 2);
    assert!(err.contains("--yes"), "{err}");
    assert!(tables(&db).contains(&"fw2".to_string()));
    let (code, out, _) = run(ipta_db(&db, h).args(["-dt", "fw2", "--yes"]));
    assert_eq!(code, 0);
    assert!(out.contains("`fw2` deleted (2 packets)"), "{out}");
    // Foreign, missing and badly named tables.
    let (code, _, err) = run(ipta_db(&db, h).args(["-dt", "payroll", "--yes"]));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("not an ipta table"), "{err}");
    let (code, _, err) = run(ipta_db(&db, h).args(["--delete-table", "ghost", "--yes"]));
    assert_eq!(code, 5);
    assert!(err.contains("does not exist"), "{err}");
    let (code, _, err) = run(ipta_db(&db, h).args(["-dt", "x`; DROP TABLE payroll; --", "--yes"]));
    assert_eq!(code, 2);
    assert!(err.contains("invalid name"), "{err}");
    let (code, _, err) = run(ipta_db(&db, h).args(["-ct", "a-b"]));
    assert_eq!(code, 2);
    assert!(err.contains("only letters, digits and underscore"), "{err}");

    let (code, _, _) = run(ipta_db(&db, h).arg("-da"));
    assert_eq!(code, 2);
    let (code, out, _) = run(ipta_db(&db, h).args(["-da", "--yes"]));
    assert_eq!(code, 0);
    assert!(
        out.contains("`fw3` deleted") && out.contains("`logs` deleted"),
        "{out}"
    );
    assert_eq!(tables(&db), vec!["payroll".to_string()]);
    let (code, out, _) = run(ipta_db(&db, h).arg("-lt"));
    assert_eq!(code, 0);
    assert!(out.contains("No ipta tables"), "{out}");
}

#[test]
fn clear_empties_the_table() {
    let db = util::TestDb::new("cli_clear");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    assert_eq!(run(ipta_db(&db, h).arg("-ct")).0, 0);
    db.conn()
        .query_drop("INSERT INTO logs (ts, action, prefix, line_hash, occ) VALUES (NOW(), 'DROP', 'x', 1, 0)")
        .unwrap();
    let (code, _, err) = run(ipta_db(&db, h).arg("-c"));
    assert_eq!(code, 2, "{err}");
    let (code, out, err) = run(ipta_db(&db, h).args(["--clear", "--yes"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 packets deleted"), "{out}");
    let n: u64 = db
        .conn()
        .query_first("SELECT COUNT(*) FROM logs")
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
    // Missing table: say how to create it.
    let (code, _, err) = run(ipta_db(&db, h).args(["-t", "other", "-c", "--yes"]));
    assert_eq!(code, 5);
    assert!(err.contains("ipta --create-table other"), "{err}");
}

#[test]
fn create_db_reports_created_then_existing() {
    let db = util::TestDb::new("cli_cdb");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let name = format!("{}_new", db.settings.database);
    let mut c = ipta_db(&db, h);
    c.args(["-d", &name, "-cd", "-ct"]);
    let (code, out, err) = run(&mut c);
    let cleanup = || {
        let _ = db
            .conn()
            .query_drop(format!("DROP DATABASE IF EXISTS `{name}`"));
    };
    if code != 0 {
        cleanup();
        panic!("{err}");
    }
    assert!(out.contains(&format!("Database `{name}` created")), "{out}");
    assert!(out.contains("Table `logs` created"), "{out}");
    let (code, out, _) = run(ipta_db(&db, h).args(["-d", &name, "--create-db"]));
    cleanup();
    assert_eq!(code, 0);
    assert!(out.contains("already exists"), "{out}");
}

#[test]
fn connection_errors_say_what_to_do() {
    let db = util::TestDb::new("cli_err");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // Server unreachable: status 3, the place, and the SQL that sets the database up.
    let (code, _, err) = run(ipta(h).args(["--db-socket", "/nonexistent/mysqld.sock", "-lt"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("socket /nonexistent/mysqld.sock"), "{err}");
    assert!(
        err.contains("CREATE USER IF NOT EXISTS 'ipta'@'localhost'"),
        "{err}"
    );
    assert!(
        err.contains("GRANT ALL ON `ipta`.* TO 'ipta'@'localhost'"),
        "{err}"
    );
    // Wrong password: access denied, status 5; the password itself is never printed.
    let mut c = ipta_db(&db, h);
    c.env("IPTA_DB_PASS", "wrong-secret").arg("-lt");
    let (code, _, err) = run(&mut c);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("access denied"), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");
    // Unknown database.
    let mut c = ipta_db(&db, h);
    c.args(["-d", "ipta_no_such_db_here", "-lt"]);
    let (code, _, err) = run(&mut c);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("ipta --create-db"), "{err}");
}

#[test]
fn settings_come_from_files_env_and_options() {
    let db = util::TestDb::new("cli_cfg");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let s = &db.settings;
    // Everything from the user file.
    let conf = format!(
        "# test\ndb_socket = {}\ndb_user = {}\ndb_pass = {}\ndb_name = {}\ndb_table = fromfile\n",
        s.socket.as_ref().unwrap().display(),
        s.user,
        s.password,
        s.database
    );
    let p = h.join(".ipta-conf");
    std::fs::write(&p, &conf).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out, err) = run(ipta(h).arg("-ct"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("`fromfile` created"), "{out}");
    assert!(err.is_empty(), "{err}");
    // The environment beats the file, the command line beats both.
    let (code, out, _) = run(ipta(h).env("IPTA_DB_TABLE", "fromenv").arg("-ct"));
    assert_eq!(code, 0);
    assert!(out.contains("`fromenv` created"), "{out}");
    let (code, out, _) = run(ipta(h)
        .env("IPTA_DB_TABLE", "fromenv")
        .args(["-t", "fromcli", "-ct"]));
    assert_eq!(code, 0);
    assert!(out.contains("`fromcli` created"), "{out}");
    // The system file is under the user file.
    let sys = h.join("system.conf");
    std::fs::write(&sys, "db_table = fromsystem\n").unwrap();
    let (code, out, _) = run(ipta(h).env("IPTA_SYSTEM_CONFIG", &sys).arg("-ct"));
    assert_eq!(code, 0);
    assert!(out.contains("`fromfile` already exists"), "{out}");
    // A readable password file earns a warning.
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = run(ipta(h).arg("-lt"));
    assert_eq!(code, 0);
    assert!(
        err.contains("warning") && err.contains("chmod 600"),
        "{err}"
    );
    // -s writes the effective settings (here: the command line's table) with mode 0600.
    std::fs::remove_file(&p).unwrap();
    let mut c = ipta_db(&db, h);
    c.args(["-t", "saved", "-s"]);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(".ipta-conf"), "{out}");
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (code, out, _) = run(ipta(h).arg("-ct"));
    assert_eq!(code, 0);
    assert!(out.contains("`saved` created"), "{out}");
    // A bad value in the file: usage error naming the file and line.
    std::fs::write(&p, "db_port = many\n").unwrap();
    let (code, _, err) = run(ipta(h).arg("-lt"));
    assert_eq!(code, 2);
    assert!(err.contains(".ipta-conf:1"), "{err}");
    // --config FILE replaces ~/.ipta-conf; a missing one is an error.
    let (code, _, err) = run(ipta(h).args(["--config", "/nonexistent/ipta.conf", "-lt"]));
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/ipta.conf"), "{err}");
}

/// A table of a newer ipta is refused by the analyzer too (exit 5, not "empty"), and SQL
/// piped into `-ai` with a failing statement ends with exit 1 after running the others.
#[test]
fn newer_table_and_failed_script_statements_exit_non_zero() {
    use mysql::prelude::Queryable;
    let (db, home) = db_with_logs("cli_newer");
    let h = home.path();
    db.conn().query_drop("ALTER TABLE logs COMMENT = 'ipta-logs v99'").unwrap();
    let (code, _, err) = run(ipta_db(&db, h).arg("-a"));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("newer"), "{err}");

    let script = h.join("q.sql");
    std::fs::write(&script, "SELECT 1 AS one;\nSELECT nosuch;\nSELECT 2 AS two;\n").unwrap();
    let (code, out, err) =
        run(ipta_db(&db, h).arg("-ai").stdin(std::fs::File::open(&script).unwrap()));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("ERROR 1054") && out.contains("two"), "{out}");
    assert!(err.contains("1 statement failed"), "{err}");
}

/// One dropped SYN from 203.0.113.9 at 2026-11-25T10:00:0`second`, to port `dpt`.
/// `ipta -a --format json` with `args`, which must succeed; its report.
fn report_json(db: &util::TestDb, home: &Path, args: &[&str]) -> serde_json::Value {
    let (code, out, err) = run(ipta_db(db, home).args(["-a", "--format", "json"]).args(args));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn syn_line(second: u32, dpt: u16) -> String {
    let stamp = format!("2026-11-25T10:00:0{second}+00:00");
    util::Syn { stamp: &stamp, dst: "192.0.2.1", dpt: u32::from(dpt), ..Default::default() }.line() + "\n"
}

/// An import of which nothing could be read fails (exit 1); one file failing among readable
/// ones is a partial failure (exit 4).
#[test]
fn import_exit_status_tells_nothing_from_part() {
    let (db, home) = db_with_logs("cli_impexit");
    let h = home.path();
    let missing = h.join("missing.log");
    let (code, _, err) = run(ipta_db(&db, h).arg("-i").arg(&missing));
    assert_eq!(code, 1, "{err}");
    let good = h.join("good.log");
    std::fs::write(&good, syn_line(0, 22)).unwrap();
    let (code, out, err) = run(ipta_db(&db, h).arg("-i").arg(&missing).arg(&good));
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.contains("rows added 1"), "{out}");
}

/// `--module all` and `--scan-threshold N` as README documents them.
#[test]
fn module_all_and_scan_threshold() {
    let (db, home) = db_with_logs("cli_modall");
    let h = home.path();
    let log = h.join("scan.log");
    let lines: String = (0..4)
        .map(|p| syn_line(p, 20 + p as u16))
        .collect();
    std::fs::write(&log, lines).unwrap();
    let (code, _, err) = run(ipta_db(&db, h).arg("-i").arg(&log));
    assert_eq!(code, 0, "{err}");
    let json = |extra: &[&str]| report_json(&db, h, extra);
    let all = json(&["--module", "all"]);
    assert_eq!(all["modules"].as_object().unwrap().len(), 9);
    // Four ports: a scan at threshold 3, none at the default 15.
    let scans = |v: &serde_json::Value| v["modules"]["scans"]["rows"].as_array().unwrap().len();
    assert_eq!(scans(&json(&["--module", "scans"])), 0);
    assert_eq!(scans(&json(&["--module", "scans", "--scan-threshold", "3"])), 1);
}

/// A new user imports UFW's log: nothing is stored under the default rules, and the summary
/// says that these are firewall lines of another kind and which option reads them; with that
/// option the same file is stored. The exit status does not change.
#[test]
fn import_of_another_firewalls_lines_names_the_option_that_reads_them() {
    let (db, home) = db_with_logs("cli_skipped");
    let log = home.path().join("ufw.log");
    let line = "Nov  5 06:35:08 fw1 kernel: [ 12.5] [UFW BLOCK] IN=eth0 OUT= SRC=198.51.100.1 DST=192.0.2.1 LEN=40 TTL=56 ID=1 PROTO=TCP SPT=5 DPT=445 WINDOW=512 RES=0x00 SYN URGP=0\n";
    std::fs::write(&log, line.repeat(3)).unwrap();
    let out = ipta_db(&db, home.path()).arg("-i").arg(&log).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("3 firewall lines with other prefixes were skipped ([UFW BLOCK] 3): add --rules ufw"),
        "{stdout}"
    );
    let out = ipta_db(&db, home.path()).args(["--rules", "ufw", "-i"]).arg(&log).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("rows added 3") && !stdout.contains("skipped"), "{stdout}");
}

/// A packet table must leave room in its name for the summary tables' suffixes (64 characters
/// at most per name): `-ct` refuses a longer one before anything is created.
#[test]
fn create_table_refuses_a_name_without_room_for_the_summaries() {
    let (db, home) = db_with_logs("cli_longname");
    let long = "t".repeat(56);
    let out = ipta_db(&db, home.path()).args(["-ct", &long]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no room for the summary tables"), "{err}");
    let n: u64 = db
        .conn()
        .exec_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (&db.settings.database, &long))
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
    let ok = "t".repeat(55);
    assert!(ipta_db(&db, home.path()).args(["-ct", &ok]).output().unwrap().status.success());
}

/// A window's modules keyed by source are read on a second connection beside the rest of the
/// report: through the command line, a window holding every row reports what the all-time
/// report (from the summaries) does, module by module.
#[test]
fn a_window_holding_every_row_reports_as_all_time() {
    let (db, home) = db_with_logs("cli_winall");
    let h = home.path();
    let log = h.join("mixed.log");
    let mut lines = String::new();
    for i in 0..60u32 {
        let stamp = format!("2026-11-25T{:02}:{:02}:07+00:00", 8 + i % 5, i % 60);
        let src = format!("198.51.100.{}", 1 + i % 7);
        let dst = format!("192.0.2.{}", 1 + i % 3);
        let action = ["DROP", "ACCEPT", "INVALID", "REJECT"][(i % 4) as usize];
        let syn = util::Syn { stamp: &stamp, src: &src, dst: &dst, action, dpt: 20 + i % 9, id: i, ..Default::default() };
        lines.push_str(&(syn.line() + "\n"));
    }
    std::fs::write(&log, lines).unwrap();
    let (code, _, err) = run(ipta_db(&db, h).arg("-i").arg(&log));
    assert_eq!(code, 0, "{err}");
    let json = |extra: &[&str]| report_json(&db, h, &[&["--scan-threshold", "2"], extra].concat());
    let all = json(&[]);
    let window = json(&["--since", "2026-11-25T00:00:00Z", "--until", "2026-11-26T00:00:00Z"]);
    for m in ["denied", "sources", "scans", "invalid", "ports", "inbound", "interfaces"] {
        let rows = |v: &serde_json::Value| v["modules"][m]["rows"].clone();
        assert!(!rows(&all).as_array().unwrap().is_empty(), "{m}");
        assert_eq!(rows(&window), rows(&all), "{m}");
    }
}
