//! Live ingest from the systemd journal (issue 15, item 5): `ipta-ingest --journal-cursor FILE`
//! reads `journalctl -o json` and keeps in FILE the cursor of the last entry the database
//! committed. Each test plays journalctl's part: a start feeds the entries after the saved
//! cursor, as `journalctl --after-cursor` would. Stopped with SIGTERM mid-way or killed while
//! the database refuses writes, a restart from the cursor stores every entry exactly once.

use crate::ingest_support::{count, wait_count, Ingest, PrivateServer};
use crate::util::TestDb;

use std::path::Path;
use std::time::{Duration, Instant};

use ipta::config::DbSettings;
use mysql::prelude::Queryable;

const T: Duration = Duration::from_secs(30);

/// Journal entry `i` as `journalctl -o json` prints it: every seventh one from another
/// transport (a program's message that looks like a firewall line: not ipta's).
fn entry(i: u32) -> String {
    let transport = if i % 7 == 3 { "syslog" } else { "kernel" };
    format!(
        "{{\"__CURSOR\":\"s=0d1e;i={i:x};b=77;m=1;t=2;x=3\",\"__REALTIME_TIMESTAMP\":\"{}\",\
         \"__MONOTONIC_TIMESTAMP\":\"123\",\"_BOOT_ID\":\"77\",\"PRIORITY\":\"4\",\"SYSLOG_FACILITY\":\"0\",\
         \"SYSLOG_IDENTIFIER\":\"kernel\",\"_TRANSPORT\":\"{transport}\",\"_HOSTNAME\":\"deb12\",\
         \"MESSAGE\":\"IPT: DROP IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=198.51.100.{} \
         DST=192.0.2.10 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID={} DF PROTO=TCP SPT={} DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 \"}}",
        1_764_900_000_000_000u64 + u64::from(i) * 1000,
        i % 250 + 1,
        i % 65536,
        1024 + i
    )
}

fn kernel_entries(range: std::ops::Range<u32>) -> u64 {
    range.filter(|i| i % 7 != 3).count() as u64
}

/// Where journalctl --after-cursor would start: the entry after the saved one (0 without one).
fn resume_at(cursor: &Path) -> u32 {
    let Ok(c) = std::fs::read_to_string(cursor) else { return 0 };
    let i = c.trim().split(';').find_map(|f| f.strip_prefix("i=")).expect("a cursor of ours");
    u32::from_str_radix(i, 16).unwrap() + 1
}

fn start(s: &DbSettings, cursor: &Path, extra: &[&str]) -> Ingest {
    let mut args = vec!["--journal-cursor", cursor.to_str().unwrap()];
    args.extend_from_slice(extra);
    Ingest::start(s, &args)
}

fn feed(ing: &mut Ingest, range: std::ops::Range<u32>) {
    for i in range {
        ing.send(&entry(i));
    }
    ing.flush();
}

fn stop(ing: Ingest, sig: i32) -> (i32, String) {
    ing.signal(sig);
    ing.wait(T)
}

/// SIGTERM while a transaction is open (a long flush interval keeps the last 50 entries
/// uncommitted): ipta-ingest writes them, then saves the cursor of the last entry read, so the
/// restart repeats nothing (duplicates 0) and loses nothing. Bad lines are counted, not fatal.
#[test]
fn sigterm_mid_way_then_restart_from_the_cursor_stores_each_entry_once() {
    let db = TestDb::new("ingest_journal_term");
    let s = &db.settings;
    let dir = tempfile::tempdir().unwrap();
    let cursor = dir.path().join("journal.cursor");
    let opts = ["--batch-size", "100", "--flush-ms", "600000"];
    let mut ing = start(s, &cursor, &opts);
    feed(&mut ing, 0..250);
    // Not JSON, and JSON of no journal entry: counted, skipped, nothing else lost.
    ing.send("{\"MESSAGE\": \"IPT: DROP IN=eth0 OUT= SRC=192.0.2.1 DST=192.0.2.2 PROTO=TCP SPT=1 DPT=2\"");
    ing.send("{\"_TRANSPORT\":\"kernel\",\"MESSAGE\":\"no time\"}");
    ing.flush();
    // Every line read (SIGUSR1 prints the counters), two full transactions committed.
    let first_two = kernel_entries(0..250);
    let t = Instant::now();
    while !ing.stderr().contains("read 252,") || count(s) < 200 {
        assert!(t.elapsed() < T, "{}", ing.stderr());
        ing.signal(libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(count(s) < first_two, "the last transaction is still open");
    let (code, err) = stop(ing, libc::SIGTERM);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("skipped a journal line"), "{err}");
    assert!(err.contains("rejected 2"), "{err}");
    assert_eq!(count(s), first_two, "the open transaction was written at shutdown: {err}");
    assert_eq!(resume_at(&cursor), 250, "the cursor names the last entry read: {err}");
    let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&cursor).unwrap()) & 0o777;
    assert_eq!(mode, 0o600);

    let mut ing = start(s, &cursor, &opts);
    feed(&mut ing, resume_at(&cursor)..400);
    let (code, err) = ing.close(T);
    assert_eq!(code, 0, "{err}");
    let rest = kernel_entries(250..400);
    assert!(err.contains(&format!("inserted {rest}, duplicates 0")), "{err}");
    assert_eq!(count(s), kernel_entries(0..400));
    assert_eq!(resume_at(&cursor), 400);
}

/// The database refuses writes (read-only) while entries arrive; ipta-ingest is then killed
/// outright. The cursor must still name the last COMMITTED entry, so that the restart (server
/// writable again) reads the refused entries again: every entry stored once. A cursor saved
/// when an entry is read, before its commit, would lose them.
#[test]
fn killed_while_the_database_refuses_writes_loses_nothing() {
    let mut server = PrivateServer::new();
    server.start();
    let s = server.user_settings("ipta_journal_kill");
    let dir = tempfile::tempdir().unwrap();
    let cursor = dir.path().join("journal.cursor");
    let opts = ["--batch-size", "50", "--flush-ms", "100", "--commit-timeout-ms", "1000", "--max-backoff-ms", "200"];
    let mut ing = start(&s, &cursor, &opts);
    feed(&mut ing, 0..200);
    assert_eq!(wait_count(&s, kernel_entries(0..200), T), kernel_entries(0..200), "{}", ing.stderr());
    let t = Instant::now();
    while resume_at(&cursor) != 200 {
        assert!(t.elapsed() < T, "cursor after the first 200: {}", ing.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut admin = server.admin();
    admin.query_drop("SET GLOBAL read_only = 1").unwrap();
    feed(&mut ing, 200..400);
    // Several commit timeouts and resends.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(count(&s), kernel_entries(0..200), "nothing stored while read-only");
    assert_eq!(resume_at(&cursor), 200, "the cursor moved past uncommitted entries: {}", ing.stderr());
    let (_, err) = stop(ing, libc::SIGKILL);
    admin.query_drop("SET GLOBAL read_only = 0").unwrap();

    let mut ing = start(&s, &cursor, &opts);
    feed(&mut ing, resume_at(&cursor)..400);
    let (code, err2) = ing.close(T);
    assert_eq!(code, 0, "{err}\n{err2}");
    assert!(err2.contains(&format!("inserted {}, duplicates 0", kernel_entries(200..400))), "{err2}");
    assert_eq!(count(&s), kernel_entries(0..400));
    assert_eq!(resume_at(&cursor), 400);
}

/// A cursor file in a directory that does not exist is a configuration error at start.
#[test]
fn a_cursor_in_a_missing_directory_is_refused_at_start() {
    let db = TestDb::new("ingest_journal_bad");
    let ing = Ingest::start(&db.settings, &["--journal-cursor", "/nonexistent-ipta-dir/cursor"]);
    let (code, err) = ing.close(T);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not exist"), "{err}");
}
