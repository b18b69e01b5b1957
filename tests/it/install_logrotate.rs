//! The logrotate file covers every log file the shipped rsyslog snippets make ipta write,
//! the central log host's included (issue 13 §7), and logrotate accepts it.

use std::path::Path;
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The /var/log paths a snippet writes: omfile `file=`, omprog `output=` and `--rejects`.
fn written_logs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(i) = rest.find("/var/log/") {
            let p: String = rest[i..].chars().take_while(|c| !matches!(c, '"' | ' ' | ')')).collect();
            rest = &rest[i + p.len()..];
            out.push(p);
        }
    }
    out
}

#[test]
fn logrotate_covers_every_file_the_snippets_write() {
    let rotate = std::fs::read_to_string(Path::new(REPO).join("logrotate/ipta")).unwrap();
    let listed: Vec<&str> = rotate.lines().map(str::trim).filter(|l| l.starts_with("/var/log/")).collect();
    let mut seen = 0;
    for dir in ["rsyslog", "etc/rsyslog"] {
        for e in std::fs::read_dir(Path::new(REPO).join(dir)).unwrap() {
            let p = e.unwrap().path();
            for log in written_logs(&std::fs::read_to_string(&p).unwrap()) {
                seen += 1;
                assert!(listed.contains(&log.as_str()), "{} writes {log}, which logrotate/ipta does not rotate", p.display());
            }
        }
    }
    assert!(seen >= 6, "found only {seen} log files in the snippets");
    for central in ["/var/log/iptables-remote.log", "/var/log/ipta-rejects-remote.log", "/var/log/ipta-ingest-remote.log"] {
        assert!(listed.contains(&central), "{central}");
    }
    // logrotate itself accepts the file (debug mode: nothing is rotated or run).
    if Path::new("/usr/sbin/logrotate").exists() {
        let d = tempfile::tempdir().unwrap();
        let out = Command::new("/usr/sbin/logrotate")
            .arg("-d")
            .arg("-s")
            .arg(d.path().join("state"))
            .arg(Path::new(REPO).join("logrotate/ipta"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !err.contains("error"), "logrotate -d: {err}");
    }
}
