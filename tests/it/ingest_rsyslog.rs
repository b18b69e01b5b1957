//! The shipped rsyslog snippets: valid for rsyslogd, and end to end with a real rsyslogd that
//! spawns the built ipta-ingest through omprog (its own config, work directory, pid file and a
//! TCP port on 127.0.0.1; the system's rsyslog is not touched).

use crate::ingest_support;
use crate::util;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ingest_support::rsyslog::{free_port, ingest_conf, repo, subst, validate, Rsyslogd};
use ingest_support::wait_count;
use util::TestDb;

#[test]
fn shipped_snippets_pass_rsyslogd_validation() {
    for f in ["rsyslog/30-ipta.conf", "rsyslog/30-ipta-file-only.conf"] {
        let (ok, err) = validate(&[&repo(f)]);
        assert!(ok, "{f}: {err}");
    }
    // The check has teeth: a misspelt parameter fails it.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.conf");
    let text = std::fs::read_to_string(repo("rsyslog/30-ipta.conf")).unwrap();
    std::fs::write(&bad, text.replace("killUnresponsive", "killUnresponsiv")).unwrap();
    assert!(!validate(&[&bad]).0);
}

/// A private rsyslogd running the shipped snippet (TCP input standing in for imklog) that
/// spawns the built ipta-ingest with `conf` and `extra` flags; `tune` may change the snippet
/// further. Returns the daemon, a connection to its input, and the files it writes.
struct Setup {
    rsyslog: Rsyslogd,
    tcp: TcpStream,
    file: PathBuf,
    output: PathBuf,
    rejects: PathBuf,
}

fn start_rsyslogd(d: &Path, conf: &Path, extra: &str, tune: impl FnOnce(&mut String)) -> Setup {
    let port = free_port();
    let mut text = std::fs::read_to_string(repo("rsyslog/30-ipta.conf")).unwrap();
    subst(&mut text, "$inputname == \"imklog\"", "$inputname == \"imtcp\"");
    subst(
        &mut text,
        "/usr/local/bin/ipta-ingest --confirm",
        &[util::bin("ipta-ingest").display().to_string(), "--config".into(), conf.display().to_string(), extra.into(), "--confirm".into()]
            .iter()
            .filter(|a| !a.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" "),
    );
    let file = d.join("iptables.log");
    let output = d.join("ingest.log");
    let rejects = d.join("rejects.log");
    subst(&mut text, "/var/log/iptables.log", file.to_str().unwrap());
    subst(&mut text, "/var/log/ipta-ingest.log", output.to_str().unwrap());
    subst(&mut text, "/var/log/ipta-rejects.log", rejects.to_str().unwrap());
    tune(&mut text);
    let rsyslog = Rsyslogd::start(
        d,
        &format!(
            "global(workDirectory=\"{}\")\nmodule(load=\"imtcp\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n{text}",
            d.display()
        ),
    );
    let tcp = rsyslog.connect(port);
    Setup { rsyslog, tcp, file, output, rejects }
}

/// Kernel firewall lines `range` as rsyslog receives them (priority kern.warning).
fn kernel_lines(range: std::ops::Range<u32>) -> Vec<u8> {
    let stamp = chrono::Local::now().format("%b %e %H:%M:%S").to_string();
    let mut buf = Vec::new();
    for i in range {
        writeln!(
            buf,
            "<4>{stamp} fw1 kernel: IPT: DROP IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 \
             SRC=198.51.100.{} DST=192.0.2.10 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID={i} DF PROTO=TCP \
             SPT={} DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0",
            i % 250 + 1,
            1024 + i
        )
        .unwrap();
    }
    buf
}

#[test]
fn rsyslogd_feeds_ingest_through_omprog() {
    let db = TestDb::new("ingest_rsyslog");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = &db.settings;
    // Database settings for ipta-ingest, password included: a config file, as in production.
    let conf = ingest_conf(d, s);
    let Setup { mut rsyslog, mut tcp, file, output, rejects: _ } = start_rsyslogd(d, &conf, "", |_| {});
    const N: u32 = 1500;
    let stamp = chrono::Local::now().format("%b %e %H:%M:%S").to_string();
    let mut buf = kernel_lines(0..N / 2 + 1);
    // A forged line: facility user, not kern. The filter must keep it out.
    writeln!(buf, "<12>{stamp} fw1 kernel: IPT: DROP IN=eth0 OUT= SRC=192.0.2.66 DST=192.0.2.10 LEN=60 PROTO=TCP SPT=1 DPT=2").unwrap();
    // A kernel line that is not a firewall line.
    writeln!(buf, "<4>{stamp} fw1 kernel: eth0: link up").unwrap();
    buf.extend(kernel_lines(N / 2 + 1..N));
    tcp.write_all(&buf).unwrap();
    tcp.flush().unwrap();
    let rows = wait_count(s, N as u64, Duration::from_secs(30));
    let ingest_log = || std::fs::read_to_string(&output).unwrap_or_default();
    assert_eq!(rows, N as u64, "ipta-ingest output: {}", ingest_log());
    drop(tcp);
    // The file action wrote the same lines, in the format ipta-ingest read.
    let t = Instant::now();
    let file_lines = loop {
        let n = std::fs::read_to_string(&file).unwrap_or_default().lines().count();
        if n == N as usize || t.elapsed() > Duration::from_secs(10) {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(file_lines, N as usize);
    let first = std::fs::read_to_string(&file).unwrap().lines().next().unwrap().to_string();
    assert!(first.contains(" fw1 kernel: IPT: DROP IN=eth0"), "{first}");
    // Stopping rsyslogd closes ipta-ingest's stdin; it exits cleanly and reports.
    unsafe {
        libc::kill(rsyslog.child().id() as i32, libc::SIGTERM);
    }
    let t = Instant::now();
    while rsyslog.child().try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(15), "rsyslogd did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Instant::now();
    while !ingest_log().contains("exiting:") {
        assert!(t.elapsed() < Duration::from_secs(10), "no exit report: {}", ingest_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = ingest_log();
    assert!(out.contains(&format!("inserted {N}, duplicates 0, rejected 0")), "{out}");
    assert_eq!(wait_count(s, N as u64, Duration::from_secs(1)), N as u64);
}

/// The failover of issue 13 end to end: the database turns read-only under rsyslog and
/// ipta-ingest for longer than several commit timeouts. rsyslog keeps the batches (error
/// replies, its queue, resumeRetryCount -1), nothing goes to the rejects file, and once the
/// server takes writes again every line is stored exactly once.
#[test]
fn a_long_outage_under_rsyslog_ends_with_every_line_stored_once() {
    let mut server = ingest_support::PrivateServer::new();
    server.start();
    let s = server.user_settings("ipta_rsyslog_outage");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = ingest_conf(d, &s);
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // Shorter waits than production, the same mechanism: error replies after 2 s, rsyslog
    // retrying every 2 s.
    let Setup { rsyslog: _rsyslog, mut tcp, output, rejects, .. } =
        start_rsyslogd(d, &conf, "--commit-timeout-ms 2000 --max-backoff-ms 500", |t| {
            subst(t, "action.resumeInterval=\"10\"", "action.resumeInterval=\"2\"")
        });
    let ingest_log = || std::fs::read_to_string(&output).unwrap_or_default();
    tcp.write_all(&kernel_lines(0..500)).unwrap();
    assert_eq!(wait_count(&s, 500, Duration::from_secs(30)), 500, "{}", ingest_log());

    let mut admin = server.admin();
    use mysql::prelude::Queryable;
    admin.query_drop("SET GLOBAL read_only = 1").unwrap();
    tcp.write_all(&kernel_lines(500..2000)).unwrap();
    tcp.flush().unwrap();
    // Several commit timeouts and rsyslog retries.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(ingest_support::count(&s), 500, "nothing may be stored while read-only");
    let log = ingest_log();
    assert!(log.contains("error 1290"), "{log}");
    admin.query_drop("SET GLOBAL read_only = 0").unwrap();
    let rows = wait_count(&s, 2000, Duration::from_secs(60));
    assert_eq!(rows, 2000, "{}", ingest_log());
    // Exactly once: the unique key holds 2,000 distinct lines, and no more arrive.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ingest_support::count(&s), 2000);
    assert_eq!(std::fs::read_to_string(&rejects).unwrap_or_default(), "", "a read-only server is not bad data");
}
