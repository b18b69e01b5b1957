//! ipta-ingest against a real MariaDB: the three omprog modes, replays after a crash, signals,
//! the rejects file, and a private server stopped and restarted under a running ingest.

use crate::ingest_support;
use crate::util;

use std::time::{Duration, Instant};

use ingest_support::{count, line, wait_count, Ingest, PrivateServer};
use util::TestDb;

const T: Duration = Duration::from_secs(20);

fn lines(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(line).collect()
}

#[test]
fn plain_mode_stores_every_line_and_counts_the_rest() {
    let db = TestDb::new("ingest_plain");
    let mut ing = Ingest::start(&db.settings, &["--batch-size", "100"]);
    for l in lines(0..1234) {
        ing.send(&l);
    }
    ing.send("2026-11-25T09:00:00+00:00 fw1 sshd[12]: Accepted publickey for root");
    ing.send("2026-11-25T09:00:00+00:00 fw1 kernel: IPT: DROP IN=eth0 OUT= SRC=300.1.2.3 DST=192.0.2.1 LEN=60 PROTO=TCP SPT=1 DPT=2");
    let (code, err) = ing.close(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&db.settings), 1234, "{err}");
    assert!(err.contains("read 1236, inserted 1234, duplicates 0, rejected 1, not ipta's 1"), "{err}");
}

#[test]
fn plain_mode_flushes_after_flush_ms_without_more_input() {
    let db = TestDb::new("ingest_timer");
    let mut ing = Ingest::start(&db.settings, &["--flush-ms", "100"]);
    for l in lines(0..7) {
        ing.send(&l);
    }
    ing.flush();
    // Far fewer rows than a batch: only the timer can write them while stdin stays open.
    assert_eq!(wait_count(&db.settings, 7, Duration::from_secs(10)), 7);
    let (code, _) = ing.close(T);
    assert_eq!(code, 0);
}

#[test]
fn confirm_mode_confirms_only_committed_lines() {
    let db = TestDb::new("ingest_confirm");
    let mut ing = Ingest::start(&db.settings, &["--confirm"]);
    assert_eq!(ing.reply(), "OK", "greeting");
    for (i, l) in lines(0..20).iter().enumerate() {
        ing.expect(l, "OK");
        // Confirmed means committed: the row is visible to another connection now.
        assert_eq!(count(&db.settings), i as u64 + 1);
    }
    ing.expect("not a firewall line", "OK");
    let (code, err) = ing.close(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&db.settings), 20);
}

#[test]
fn transactions_commit_per_batch_and_replays_add_nothing() {
    let db = TestDb::new("ingest_txn");
    let mut ing = Ingest::start(&db.settings, &["--confirm", "--batch-size", "128"]);
    assert_eq!(ing.reply(), "OK");
    let mut all = lines(0..900);
    // Genuinely repeated packets (same time, host and message) are separate rows.
    all[10] = all[9].clone();
    all[11] = all[9].clone();
    for (k, chunk) in all.chunks(300).enumerate() {
        assert_eq!(ing.transaction(chunk), "OK", "{}", ing.stderr());
        assert_eq!(count(&db.settings), 300 * (k as u64 + 1));
    }
    let (code, err) = ing.close(T);
    assert_eq!(code, 0, "{err}");
    // The confirmation of the last batch was lost (say rsyslog was killed before it read it):
    // the next instance gets that batch again and adds no row.
    let mut ing = Ingest::start(&db.settings, &["--confirm", "--batch-size", "128"]);
    assert_eq!(ing.reply(), "OK");
    assert_eq!(ing.transaction(&all[600..900]), "OK");
    let (code, err) = ing.close(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&db.settings), 900);
    assert!(err.contains("inserted 0, duplicates 300"), "{err}");
}

#[test]
fn abandoned_transaction_then_replay_lands_once() {
    let db = TestDb::new("ingest_rollback");
    let mut ing = Ingest::start(&db.settings, &["--confirm", "--batch-size", "50"]);
    assert_eq!(ing.reply(), "OK");
    let mut batch = lines(0..200);
    batch[5] = batch[4].clone();
    // BEGIN, part of the batch, then BEGIN again (rsyslog gave up on the first attempt).
    ing.expect("BEGIN TRANSACTION", "OK");
    for l in &batch[..120] {
        ing.expect(l, "DEFER_COMMIT");
    }
    assert_eq!(ing.transaction(&batch), "OK");
    assert_eq!(count(&db.settings), 200);
    let (code, _) = ing.close(T);
    assert_eq!(code, 0);
}

#[test]
fn sigkill_mid_transaction_and_replay_loses_and_doubles_nothing() {
    let db = TestDb::new("ingest_kill");
    let mut batch = lines(0..500);
    batch[100] = batch[99].clone();
    batch[101] = batch[99].clone();
    let mut ing = Ingest::start(&db.settings, &["--confirm", "--batch-size", "64"]);
    assert_eq!(ing.reply(), "OK");
    assert_eq!(ing.transaction(&lines(1000..1100)), "OK");
    ing.expect("BEGIN TRANSACTION", "OK");
    for l in &batch[..300] {
        ing.expect(l, "DEFER_COMMIT");
    }
    // Give the worker time to commit some of the sub-batches, then kill without warning.
    wait_count(&db.settings, 100 + 256, Duration::from_secs(5));
    ing.signal(libc::SIGKILL);
    let (code, _) = ing.wait(T);
    assert_ne!(code, 0);
    let partial = count(&db.settings);
    assert!(partial > 100 && partial < 600, "partial commit expected, found {partial}");
    // rsyslog starts a new instance and sends the unconfirmed batch again, whole.
    let mut ing = Ingest::start(&db.settings, &["--confirm", "--batch-size", "64"]);
    assert_eq!(ing.reply(), "OK");
    assert_eq!(ing.transaction(&batch), "OK");
    let (code, err) = ing.close(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&db.settings), 600, "{err}");
}

#[test]
fn signals_counters_rejects_reopen_and_prompt_exit() {
    let db = TestDb::new("ingest_signals");
    let dir = tempfile::tempdir().unwrap();
    let rejects = dir.path().join("rejects.log");
    let r = rejects.to_str().unwrap();
    let mut ing = Ingest::start(&db.settings, &["--rejects", r, "--flush-ms", "600000"]);
    let bad = "2026-11-25T09:00:00+00:00 fw1 kernel: IPT: DROP IN=eth0 OUT= SRC=300.1.2.3 DST=192.0.2.1 LEN=60 PROTO=TCP SPT=1 DPT=2";
    for l in lines(0..10) {
        ing.send(&l);
    }
    ing.send(bad);
    ing.flush();
    let wait_for = |ing: &Ingest, what: &str| {
        let t = Instant::now();
        while !ing.stderr().contains(what) {
            assert!(t.elapsed() < Duration::from_secs(10), "no {what:?} in {}", ing.stderr());
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // SIGUSR1: counters on stderr.
    let t = Instant::now();
    while std::fs::read_to_string(&rejects).map(|s| s.is_empty()).unwrap_or(true) {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    ing.signal(libc::SIGUSR1);
    wait_for(&ing, "read 11, inserted 0");
    let text = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains("SRC=300.1.2.3"), "{text}");
    // SIGHUP after logrotate moved the file: the next reject goes to a new file.
    std::fs::rename(&rejects, dir.path().join("rejects.log.1")).unwrap();
    ing.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(200));
    ing.send(bad);
    ing.flush();
    let t = Instant::now();
    while !rejects.exists() || std::fs::read_to_string(&rejects).unwrap().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "rejects file not reopened");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SIGTERM with ten rows still waiting for the (10-minute) timer: flushed, exit 0, fast.
    assert_eq!(count(&db.settings), 0);
    let t = Instant::now();
    ing.signal(libc::SIGTERM);
    let (code, err) = ing.wait(T);
    assert_eq!(code, 0, "{err}");
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    assert_eq!(count(&db.settings), 10);
    assert!(err.contains("exiting: read 12, inserted 10, duplicates 0, rejected 2"), "{err}");
}

#[test]
fn idle_ingest_uses_no_cpu() {
    let db = TestDb::new("ingest_idle");
    let mut ing = Ingest::start(&db.settings, &["--confirm"]);
    assert_eq!(ing.reply(), "OK");
    ing.expect(&line(1), "OK");
    let before = ingest_support::cpu_ticks(ing.pid());
    std::thread::sleep(Duration::from_millis(1500));
    let used = ingest_support::cpu_ticks(ing.pid()) - before;
    // Clock ticks are 10 ms: an idle process that polls or spins would show tens of them.
    assert!(used <= 2, "{used} ticks of CPU while idle");
    let (code, _) = ing.close(T);
    assert_eq!(code, 0);
}

/// The database goes away and comes back under a running ingest, in every mode; every line
/// lands exactly once, nothing is confirmed before it is committed, and input stops (instead
/// of memory growing) when the outage buffer is full.
#[test]
fn private_server_down_at_start_and_mid_stream() {
    let mut server = PrivateServer::new();
    server.start();
    let s = server.settings("ipta_outage");
    let fast = ["--max-backoff-ms", "200", "--shutdown-ms", "15000"];

    // 1. Transactions: commit, outage, error reply after the commit timeout, replay, commit.
    //    With a rejects file: a server that is gone is an outage, never a reject.
    let rejects_dir = tempfile::tempdir().unwrap();
    let rejects = rejects_dir.path().join("rejects.log");
    let rejects_arg = rejects.to_string_lossy().into_owned();
    let mut args = vec!["--confirm", "--batch-size", "100", "--commit-timeout-ms", "1500", "--rejects", &rejects_arg];
    args.extend_from_slice(&fast);
    let mut ing = Ingest::start(&s, &args);
    assert_eq!(ing.reply(), "OK");
    assert_eq!(ing.transaction(&lines(0..250)), "OK");
    assert_eq!(count(&s), 250);
    server.stop();
    let third = lines(250..500);
    ing.expect("BEGIN TRANSACTION", "OK");
    for l in &third {
        ing.expect(l, "DEFER_COMMIT");
    }
    ing.send("COMMIT TRANSACTION");
    ing.flush();
    let (reply, dots) = ing.reply_counting_dots();
    assert!(reply.starts_with("ERROR"), "nothing may be confirmed while down: {reply}");
    assert!(dots >= 1, "keep-alives while waiting");
    assert!(!reply.contains("IPT"), "error replies never quote the line: {reply}");
    server.start();
    // rsyslog retries the batch.
    assert_eq!(ing.transaction(&third), "OK", "{}", ing.stderr());
    assert_eq!(ing.transaction(&lines(500..600)), "OK");
    let (code, err) = ing.close(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&s), 600, "{err}");
    assert_eq!(err.matches("database unavailable").count(), 1, "state changes logged once: {err}");
    assert_eq!(err.matches("database available again").count(), 1, "{err}");
    assert_eq!(std::fs::read_to_string(&rejects).unwrap_or_default(), "", "the rejects file stays empty");

    // 2. Plain mode, server down at start, outage buffer of 1,000 rows: input pauses, then
    //    everything lands when the server returns.
    server.stop();
    let mut args = vec!["--batch-size", "100", "--buffer-rows", "1000"];
    args.extend_from_slice(&fast);
    let mut ing = Ingest::start(&s, &args);
    let mut stdin = ing.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        for i in 10_000..16_000 {
            writeln!(stdin, "{}", line(i)).unwrap();
        }
    });
    let t = Instant::now();
    while !ing.stderr().contains("pausing input") {
        assert!(t.elapsed() < Duration::from_secs(10), "no back-pressure: {}", ing.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(!writer.is_finished(), "input must stop being read while the buffer is full");
    server.start();
    writer.join().unwrap();
    let (code, err) = ing.close(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&s), 6600, "{err}");
    assert!(err.contains("buffer has room again"), "{err}");

    // 3. Confirm mode without transactions, server killed mid-stream.
    let mut args = vec!["--confirm", "--commit-timeout-ms", "800"];
    args.extend_from_slice(&fast);
    let mut ing = Ingest::start(&s, &args);
    assert_eq!(ing.reply(), "OK");
    ing.expect(&line(20_000), "OK");
    server.stop();
    ing.send(&line(20_001));
    ing.flush();
    assert!(ing.reply().starts_with("ERROR"));
    server.start();
    ing.expect(&line(20_001), "OK");
    let (code, err) = ing.close(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&s), 6602, "{err}");
}

/// SIGTERM while the database is unreachable and the buffer is full: the process still exits 0
/// within rsyslog's 5 s and says how many rows it could not write.
#[test]
fn sigterm_with_database_down_and_full_buffer_exits_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = ipta::config::DbSettings {
        socket: Some(dir.path().join("no-server.sock")),
        ..Default::default()
    };
    let mut ing = Ingest::start(&s, &["--confirm", "--batch-size", "100", "--buffer-rows", "200"]);
    assert_eq!(ing.reply(), "OK");
    let mut stdin = ing.stdin.take().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        let _ = writeln!(stdin, "BEGIN TRANSACTION");
        for i in 0..5000 {
            if writeln!(stdin, "{}", line(i)).is_err() {
                break;
            }
        }
    });
    let t = Instant::now();
    while !ing.stderr().contains("pausing input") {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", ing.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    ing.signal(libc::SIGTERM);
    let (code, err) = ing.wait(T);
    assert_eq!(code, 0, "{err}");
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    assert!(err.contains("NOT WRITTEN"), "{err}");
}

/// ipta-ingest reads /etc/ipta.conf (here moved by IPTA_SYSTEM_CONFIG) with the same loader as
/// `ipta`: key aliases in any case, `-` for `_`, quoted values, the fan-out's `follow_dir`; a
/// bad `expire` is a configuration error before anything is read.
#[test]
fn settings_come_from_the_shared_config_loader() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let db = TestDb::new("ingest_conf");
    let dir = tempfile::tempdir().unwrap();
    let follow = dir.path().join("follow");
    let conf = dir.path().join("ipta.conf");
    let s = &db.settings;
    let text = format!(
        "# as an administrator might write it\nDB-User = '{}'\nDatabase = \"{}\"\n\
         db_password = {}\nsocket = {}\nfollow_dir = {}\n",
        s.user,
        s.database,
        s.password,
        s.socket.as_ref().unwrap().display(),
        follow.display()
    );
    std::fs::write(&conf, &text).unwrap();
    let run = |input: &str| {
        let mut child = Command::new(util::bin("ipta-ingest"))
            .env("IPTA_SYSTEM_CONFIG", &conf)
            .env_remove("IPTA_DB_PASS")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A configuration error ends the process before it reads: the pipe may be closed.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let input: String = lines(0..3).iter().map(|l| format!("{l}\n")).collect();
    let (code, err) = run(&input);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(count(s), 3, "{err}");
    assert!(follow.is_dir(), "the fan-out directory of follow_dir was not set up: {err}");

    std::fs::write(&conf, format!("{text}expire = banana\n")).unwrap();
    let (code, err) = run(&input);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("expire"), "{err}");
}

/// `expire = 3d` in the config: ipta-ingest applies it on its own connection as soon as its
/// writer has connected (then hourly), deleting exactly the packets older than that, and logs
/// what it removed.
#[test]
fn configured_expiry_is_applied_by_ingest() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let db = TestDb::new("ingest_expire");
    let s = &db.settings;
    // 10 packets of 2026-11-25 (old), 5 of now.
    let now = chrono::Utc::now();
    let mut input: Vec<String> = lines(0..10);
    for i in 0..5u32 {
        let l = line(100 + i);
        let stamp = (now + chrono::Duration::microseconds(i64::from(i))).format("%Y-%m-%dT%H:%M:%S%.6f+00:00");
        input.push(format!("{stamp}{}", &l[l.find(' ').unwrap()..]));
    }
    let mut ing = Ingest::start(s, &[]);
    for l in &input {
        ing.send(l);
    }
    let (code, err) = ing.close(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(s), 15, "{err}");

    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ipta.conf");
    std::fs::write(&conf, "expire = 3d\n").unwrap();
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(util::bin("ipta-ingest"))
        .args(["-u", &s.user, "-d", &s.database])
        .arg("--db-socket")
        .arg(s.socket.as_ref().unwrap())
        .env("IPTA_SYSTEM_CONFIG", &conf)
        .env("IPTA_DB_PASS", &s.password)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while count(s) != 5 && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = count(s);
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.flush();
    drop(stdin);
    let st = child.wait().unwrap();
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert_eq!(left, 5, "{err}");
    assert!(st.success(), "{err}");
    assert!(err.contains("expire = 3d: expired 10 packets older than"), "{err}");
}

/// The summaries follow what ipta-ingest stores without anyone running `ipta --analyze`: its
/// folder brings them up to date once the input is quiet, while the process keeps running.
#[test]
fn ingest_folds_the_summaries_behind_its_writer() {
    use mysql::prelude::Queryable;
    let db = TestDb::new("ingest_fold");
    let s = &db.settings;
    let mut c = db.conn();
    ipta::store::schema::ensure_table(&mut c, &s.table).unwrap();
    ipta::store::summary::create(&mut c, &s.table).unwrap();
    let mut ing = Ingest::start(s, &["--batch-size", "20"]);
    for l in lines(0..150) {
        ing.send(&l);
    }
    ing.flush();
    assert_eq!(wait_count(s, 150, T), 150, "{}", ing.stderr());
    // Both lanes: the per-key one (hourly counts) and the per-source one (source counts).
    // They commit on their own connections, so one may be done before the other: wait for
    // both and for the backlog of the slower one.
    let folded = |c: &mut mysql::Conn, suffix: &str| -> u64 {
        c.query_first(format!("SELECT COALESCE(SUM(`n`), 0) FROM `{}{suffix}`", s.table)).unwrap().unwrap()
    };
    let caught_up = |c: &mut mysql::Conn| {
        folded(c, ipta::store::summary::HOUR) == 150
            && folded(c, ipta::store::summary::SOURCE) == 150
            && ipta::store::summary::backlog(c, &s.table).unwrap() == Some(0)
    };
    let t = Instant::now();
    while !caught_up(&mut c) && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(folded(&mut c, ipta::store::summary::HOUR), 150, "still running, the folder has caught up: {}", ing.stderr());
    assert_eq!(folded(&mut c, ipta::store::summary::SOURCE), 150, "{}", ing.stderr());
    assert_eq!(ipta::store::summary::backlog(&mut c, &s.table).unwrap(), Some(0));
    let (code, err) = ing.close(T);
    assert_eq!(code, 0, "{err}");
}
