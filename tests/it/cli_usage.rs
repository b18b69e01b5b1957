//! `ipta` without a database: help, version, license, usage errors, the two-letter options,
//! `--scan` of compressed input, and a closed stdout pipe.
use crate::util;

use std::io::Read;
use std::process::{Command, Stdio};

fn ipta(args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(util::bin("ipta"))
        .args(args)
        .env("HOME", dir.path())
        .env("IPTA_SYSTEM_CONFIG", dir.path().join("none"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn help_version_license_usage() {
    let (code, out, _) = ipta(&["--help"]);
    assert_eq!(code, 0);
    for opt in [
        "--db-host",
        "--analyze",
        "--import",
        "--list-tables",
        "--no-counter",
        "-pi",
    ] {
        assert!(out.contains(opt), "help lacks {opt}");
    }
    assert!(out.contains("Exit status"));
    let (code, out, _) = ipta(&["--version"]);
    assert_eq!(
        (code, out.trim()),
        (0, concat!("ipta ", env!("CARGO_PKG_VERSION")))
    );
    let (code, out2, _) = ipta(&["-v"]);
    assert_eq!((code, out2), (0, out));
    let (code, out, _) = ipta(&["--license"]);
    assert_eq!(code, 0);
    assert!(out.contains("GNU General Public License") && out.contains("version 3"));
    assert!(out.contains("GPL-3.0-or-later"));
    let (code, out, _) = ipta(&["--usage"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Usage: ipta"));
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = ipta(&["--bogus"]);
    assert_eq!(code, 2);
    assert!(err.contains("--bogus"), "{err}");
    let (code, _, _) = ipta(&["-l", "ten", "-a"]);
    assert_eq!(code, 2);
    let (code, _, err) = ipta(&[]);
    assert_eq!(code, 2);
    assert!(err.contains("Usage: ipta"), "{err}");
    // -h is --db-host, so it needs a value.
    let (code, _, _) = ipta(&["-h"]);
    assert_eq!(code, 2);
    let (code, _, _) = ipta(&["--format", "yaml", "-lt"]);
    assert_eq!(code, 2);
    // A year DATETIME cannot hold is refused before anything runs.
    let (code, _, err) = ipta(&["--scan", "-", "--year", "0"]);
    assert_eq!(code, 2, "{err}");
}

/// `--scan` opens files as the import does: gzip by its magic bytes (whatever the name), and a
/// compression it cannot read is refused instead of being read as text.
#[test]
fn scan_reads_gzip_and_refuses_xz() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let line = "2026-11-25T10:00:00.000001+00:00 fw1 kernel: IPT: DROP IN=eth0 OUT= SRC=203.0.113.9 \
                DST=192.0.2.1 LEN=60 TTL=50 ID=1 PROTO=TCP SPT=4444 DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0\n";
    let gz = dir.path().join("rotated.1");
    let mut e = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::default());
    e.write_all(line.repeat(3).as_bytes()).unwrap();
    e.finish().unwrap();
    let (code, out, err) = ipta(&["--scan", gz.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(err.contains("3 packets"), "{err}");
    let xz = dir.path().join("old.log.xz");
    std::fs::write(&xz, [0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2, 3]).unwrap();
    let (code, _, err) = ipta(&["--scan", xz.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("xz"), "{err}");
}

#[test]
fn bad_mode_arguments_are_usage_errors_before_anything_runs() {
    // Checked before any step runs (and before connecting): `-c` is not executed when a later
    // step's argument is wrong, so these fail with 2 even though no database is reachable.
    for (args, needle) in [
        (&["-c", "--yes", "-i", "x.log", "-a", "--since", "yesterday-ish"][..], "--since"),
        (&["-a", "--module", "ports,nope"][..], "--module"),
        (&["--expire", "30 parsecs"][..], "--expire"),
        (&["--scan", "x.log", "--rules", "ufw,pf"][..], "--rules"),
        (&["--scan", "x.log", "--format", "csv"][..], "csv"),
    ] {
        let (code, _, err) = ipta(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn closed_stdout_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(util::bin("ipta"))
        .arg("--license")
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end at once.
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
