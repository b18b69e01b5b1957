//! ipta-ingest against hostile input: a sender that never ends its line must not make it grow
//! (issue 13 §6: `head -c 2G /dev/zero | ipta-ingest` stays in bounded memory), and the line
//! after such a flood is still stored.

use crate::ingest_support;
use crate::util;

use std::io::Write;
use std::time::Duration;

use ingest_support::{count, line, Ingest};
use util::TestDb;

/// Peak resident memory of a process (VmHWM), in KiB.
fn peak_rss_kib(pid: i32) -> u64 {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let l = st.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn an_endless_line_of_zeros_stays_in_bounded_memory() {
    let db = TestDb::new("ingest_zeros");
    let mut ing = Ingest::start(&db.settings, &["--batch-size", "10"]);
    ing.send(&line(1));
    // 256 MiB without a newline: 4000 times the 64 KiB line cap.
    let chunk = vec![0u8; 1 << 20];
    {
        let w = ing.stdin.as_mut().unwrap();
        for _ in 0..256 {
            w.write_all(&chunk).unwrap();
        }
    }
    // Once the writes returned, ipta-ingest has read all but the last pipe-full.
    let peak = peak_rss_kib(ing.pid());
    ing.send("");
    ing.send(&line(2));
    let (code, err) = ing.close(Duration::from_secs(30));
    assert_eq!(code, 0, "{err}");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB while reading a 256 MiB line; {err}");
    assert_eq!(count(&db.settings), 2, "both real lines stored; {err}");
    assert!(err.contains("rejected 1"), "the flood is one rejected line: {err}");
}
