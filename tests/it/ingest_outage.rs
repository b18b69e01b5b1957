//! A server that says no is an outage, not bad data: each kind of refusal that can be provoked
//! on a private server (read-only, a killed statement, a lock held past the lock wait timeout,
//! the server stopped: see ingest_db.rs) is waited out by ipta-ingest and by the import. Each
//! case checks that every line is stored exactly once, nothing is confirmed before it is
//! committed, and nothing goes to the rejects file or is counted as refused.

use crate::ingest_support;
use crate::util;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use ingest_support::{count, line, Ingest, PrivateServer};
use ipta::config::DbSettings;
use mysql::prelude::Queryable;

const T: Duration = Duration::from_secs(30);

fn lines(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(line).collect()
}

fn rejects_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until the ingest's log says the database stopped taking writes.
fn wait_logged(ing: &Ingest, what: &str) {
    let t = Instant::now();
    while !ing.stderr().contains(what) {
        assert!(t.elapsed() < Duration::from_secs(20), "no {what:?} in: {}", ing.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The statement the ingest's writer is running, found by its user (for KILL QUERY).
fn writer_statement(admin: &mut mysql::Conn, user: &str) -> Option<u64> {
    admin
        .exec_first(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND COMMAND = 'Query' ORDER BY TIME DESC",
            (user,),
        )
        .unwrap()
}

/// A private server, an ordinary user's database `db` on it, and ipta-ingest in confirm mode
/// with a rejects file, the given commit timeout and fast back-off, already past its `OK`.
struct Case {
    server: PrivateServer,
    s: DbSettings,
    rejects: std::path::PathBuf,
    ing: Ingest,
    _dir: tempfile::TempDir,
}

fn start_case(db: &str, commit_timeout_ms: &str, max_backoff_ms: &str, prepare: impl FnOnce(&mut PrivateServer, &DbSettings)) -> Case {
    let mut server = PrivateServer::new();
    server.start();
    let s = server.user_settings(db);
    prepare(&mut server, &s);
    let dir = tempfile::tempdir().unwrap();
    let rejects = dir.path().join("rejects.log");
    let rejects_arg = rejects.to_string_lossy().into_owned();
    let mut ing = Ingest::start(
        &s,
        &["--confirm", "--rejects", &rejects_arg, "--batch-size", "100", "--commit-timeout-ms", commit_timeout_ms, "--max-backoff-ms", max_backoff_ms],
    );
    assert_eq!(ing.reply(), "OK");
    Case { server, s, rejects, ing, _dir: dir }
}

/// Sends a transaction and its COMMIT without waiting for the reply (the writer is about to
/// meet the outage the test has set up).
fn send_unconfirmed(ing: &mut Ingest, range: std::ops::Range<u32>) {
    ing.expect("BEGIN TRANSACTION", "OK");
    for l in lines(range) {
        ing.expect(&l, "DEFER_COMMIT");
    }
    ing.send("COMMIT TRANSACTION");
    ing.flush();
}

/// The failover of issue 13: the server turns read-only under a running ingest in transaction
/// mode. Before, the batch went to the rejects file and COMMIT was answered OK (rsyslog forgot
/// the lines); now COMMIT gets an error while the server is read-only, and rsyslog's replay
/// lands once it is writable again.
#[test]
fn read_only_mid_stream_is_an_outage_not_a_reject() {
    let Case { server, s, rejects, mut ing, _dir } = start_case("ipta_ro", "1500", "200", |_, _| {});
    assert_eq!(ing.transaction(&lines(0..100)), "OK");
    assert_eq!(count(&s), 100);

    let mut admin = server.admin();
    admin.query_drop("SET GLOBAL read_only = 1").unwrap();
    let second = lines(100..200);
    let reply = ing.transaction(&second);
    assert!(reply.starts_with("ERROR"), "nothing may be confirmed while read-only: {reply}; {}", ing.stderr());
    assert_eq!(count(&s), 100);
    assert_eq!(rejects_of(&rejects), "", "a read-only server is not bad data");
    assert!(ing.stderr().contains("error 1290"), "{}", ing.stderr());

    admin.query_drop("SET GLOBAL read_only = 0").unwrap();
    // rsyslog sends the transaction again.
    assert_eq!(ing.transaction(&second), "OK", "{}", ing.stderr());
    assert_eq!(ing.transaction(&lines(200..250)), "OK");
    let (code, err) = ing.close(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&s), 250, "every line once: {err}");
    assert_eq!(rejects_of(&rejects), "");
    assert!(err.contains("rejected 0"), "{err}");
}

/// A writer statement killed by an administrator (KILL QUERY, error 1317) while it waits for a
/// table lock: retried, not rejected; the lines land once the lock is gone.
#[test]
fn a_killed_statement_is_retried() {
    let Case { server, s, rejects, mut ing, _dir } = start_case("ipta_kill", "20000", "200", |_, _| {});
    assert_eq!(ing.transaction(&lines(0..10)), "OK");

    // Another session holds a write lock on the table: the writer's statement waits on it.
    let mut blocker = server.admin();
    blocker.query_drop("LOCK TABLES `ipta_kill`.`logs` WRITE").unwrap();
    send_unconfirmed(&mut ing, 10..60);
    let mut admin = server.admin();
    let t = Instant::now();
    let mut killed = 0;
    while killed < 2 {
        assert!(t.elapsed() < Duration::from_secs(15), "the writer never waited on the lock: {}", ing.stderr());
        if let Some(id) = writer_statement(&mut admin, "ipta_w") {
            admin.query_drop(format!("KILL QUERY {id}")).unwrap();
            killed += 1;
            wait_logged(&ing, "error 1317");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    blocker.query_drop("UNLOCK TABLES").unwrap();
    let (reply, _) = ing.reply_counting_dots();
    assert_eq!(reply, "OK", "{}", ing.stderr());
    let (code, err) = ing.close(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&s), 60, "{err}");
    assert_eq!(rejects_of(&rejects), "");
}

/// Another transaction holds row and gap locks on the table longer than the server's
/// innodb_lock_wait_timeout (error 1205 for every attempt the writer makes meanwhile, more
/// attempts than any fixed retry count): the batch waits, then lands whole.
#[test]
fn a_lock_held_past_the_lock_wait_timeout_is_waited_out() {
    // Set before ipta-ingest connects: its sessions take the global value.
    let Case { server, s, rejects, mut ing, _dir } = start_case("ipta_lock", "30000", "100", |server, _| {
        server.admin().query_drop("SET GLOBAL innodb_lock_wait_timeout = 1").unwrap();
    });
    assert_eq!(ing.transaction(&lines(0..10)), "OK");

    let mut blocker = server.admin();
    blocker.query_drop("START TRANSACTION").unwrap();
    // Repeatable read: a locking full scan takes next-key locks up to the end of the index, so
    // every insert into the table waits.
    let _: Option<u64> = blocker.query_first("SELECT COUNT(*) FROM `ipta_lock`.`logs` FOR UPDATE").unwrap();
    send_unconfirmed(&mut ing, 10..40);
    wait_logged(&ing, "error 1205");
    // Hold the lock through several more timeouts.
    let t = Instant::now();
    while ing.stderr().matches("error 1205").count() < 1 || t.elapsed() < Duration::from_millis(6500) {
        std::thread::sleep(Duration::from_millis(50));
    }
    blocker.query_drop("ROLLBACK").unwrap();
    let (reply, _) = ing.reply_counting_dots();
    assert_eq!(reply, "OK", "{}", ing.stderr());
    let (code, err) = ing.close(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&s), 40, "{err}");
    assert_eq!(rejects_of(&rejects), "");
    let retries: u64 = err
        .split("retries ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(retries >= 5, "more lock waits than a fixed retry count would allow: {err}");
}

fn write_log(dir: &Path, range: std::ops::Range<u32>) -> std::path::PathBuf {
    let p = dir.join("fw.log");
    let mut f = std::fs::File::create(&p).unwrap();
    for i in range {
        writeln!(f, "{}", line(i)).unwrap();
    }
    p
}

fn create_table(s: &DbSettings) {
    let mut c = ipta::store::connect(s).unwrap();
    ipta::store::schema::ensure_table(&mut c, &s.table).unwrap();
}

/// `ipta --import` against a read-only server: it waits, says so, and imports everything once
/// the server takes writes again; no line is counted as refused.
#[test]
fn import_waits_for_a_read_only_server() {
    let mut server = PrivateServer::new();
    server.start();
    let s = server.user_settings("ipta_import_ro");
    create_table(&s);
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), 0..3000);
    let mut admin = server.admin();
    admin.query_drop("SET GLOBAL read_only = 1").unwrap();
    let sock = s.socket.clone().unwrap();
    let child = std::process::Command::new(util::bin("ipta"))
        .args(["-u", "ipta_w", "-d", "ipta_import_ro", "--db-socket"])
        .arg(&sock)
        .arg("-i")
        .arg(&log)
        .env("IPTA_DB_PASS", &s.password)
        .env("IPTA_SYSTEM_CONFIG", dir.path().join("none.conf"))
        .env("HOME", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    admin.query_drop("SET GLOBAL read_only = 0").unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("database unavailable") && stderr.contains("error 1290"), "{stderr}");
    assert!(!stdout.contains("refused"), "{stdout}");
    assert_eq!(count(&s), 3000, "{stdout}\n{stderr}");
}

/// A server that stays read-only longer than the import waits: the import stops with exit
/// status 3 (the database does not take writes), still counting nothing as refused.
#[test]
fn import_stops_with_3_when_the_server_stays_read_only() {
    let mut server = PrivateServer::new();
    server.start();
    let s = server.user_settings("ipta_import_ro2");
    create_table(&s);
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), 0..500);
    server.admin().query_drop("SET GLOBAL read_only = 1").unwrap();
    let mut out = Vec::new();
    let opts = ipta::import::ImportOptions {
        tz: Some("UTC".into()),
        outage_wait: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let r = ipta::import::run(&s, &[log], &opts, &mut out);
    let text = String::from_utf8_lossy(&out);
    match r {
        Err(ipta::import::ImportError::Unavailable(e)) => assert_eq!(e.server_code(), Some(1290)),
        other => panic!("{other:?}\n{text}"),
    }
    assert!(!text.contains("refused"), "{text}");
    assert_eq!(count(&s), 0);
}

/// A deadlock (1213) between the writer and another transaction: the writer holds the summary
/// gate (shared) and waits to insert behind another session's locks on the packet table; that
/// session (the heavier transaction) then asks for the gate exclusively, and InnoDB rolls the
/// writer's transaction back: its batch is sent again, never rejected; every line lands once.
#[test]
fn a_deadlock_is_retried() {
    let Case { server, s, rejects, mut ing, _dir } = start_case("ipta_deadlock", "30000", "100", |_, s| {
        let mut c = ipta::store::connect(s).unwrap();
        ipta::store::schema::ensure_table(&mut c, "logs").unwrap();
        ipta::store::summary::create(&mut c, "logs").unwrap();
    });
    assert_eq!(ing.transaction(&lines(0..10)), "OK");

    let mut blocker = server.admin();
    blocker.query_drop("CREATE TABLE `ipta_deadlock`.`ballast` (`i` INT) ENGINE=InnoDB").unwrap();
    blocker.query_drop("START TRANSACTION").unwrap();
    // Work done in its transaction makes the other session the heavier one, so InnoDB chooses
    // the writer's transaction to roll back (it rolls back the one that did less).
    blocker.query_drop("INSERT INTO `ipta_deadlock`.`ballast` SELECT `seq` FROM `ipta_deadlock`.`seq_1_to_2000`").unwrap();
    let _: Option<u64> = blocker.query_first("SELECT COUNT(*) FROM `ipta_deadlock`.`logs` FOR UPDATE").unwrap();
    send_unconfirmed(&mut ing, 10..40);
    // The writer holds the gate and waits on the packet table.
    let mut admin = server.admin();
    let t = Instant::now();
    while writer_statement(&mut admin, "ipta_w").is_none() {
        assert!(t.elapsed() < Duration::from_secs(10), "the writer never waited: {}", ing.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let gate: Result<Option<u8>, mysql::Error> =
        blocker.query_first("SELECT `k` FROM `ipta_deadlock`.`logs__sstate` WHERE `k` = 1 FOR UPDATE");
    assert!(gate.is_ok(), "the writer's transaction is the one rolled back: {gate:?}");
    let _ = blocker.query_drop("ROLLBACK");
    let (reply, _) = ing.reply_counting_dots();
    assert_eq!(reply, "OK", "{}", ing.stderr());
    let (code, err) = ing.close(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&s), 40, "{err}");
    assert_eq!(rejects_of(&rejects), "");
    assert!(err.contains("error 1213"), "the writer met the deadlock and sent its batch again: {err}");
}
