//! `ipta --follow` end to end with real netfilter lines: `follow_file` and `follow_ingest` (fed by
//! a `FanOut` as ipta-ingest feeds it) parse, filter and display what arrives; header cadence,
//! the counter, `--no-local` / `--no-accept`, the Host column, JSON Lines.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipta::follow::{follow_file, follow_ingest, FollowFormat, FollowOptions};
use ipta::follow::fanout::FanOut;

use crate::util::{follow_opts as opts, SharedOut, Syn};

fn fw_line(host: &str, action: &str, ifc: &str, src: &str, spt: u32, dpt: u32) -> String {
    Syn { host, action, ifc, src, spt, dpt, ..Syn::default() }.line()
}

struct Run {
    out: SharedOut,
    stop: Arc<AtomicBool>,
    h: Option<JoinHandle<Result<(), String>>>,
}

impl Run {
    fn file(path: &Path, o: FollowOptions) -> Run {
        let out = SharedOut::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (mut w, s, p) = (out.clone(), stop.clone(), path.to_path_buf());
        let h = std::thread::spawn(move || follow_file(&p, &o, &mut w, &s).map_err(|e| e.to_string()));
        std::thread::sleep(Duration::from_millis(150));
        Run { out, stop, h: Some(h) }
    }
    fn ingest(o: FollowOptions) -> Run {
        let out = SharedOut::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (mut w, s) = (out.clone(), stop.clone());
        let h = std::thread::spawn(move || follow_ingest(&o, &mut w, &s).map_err(|e| e.to_string()));
        Run { out, stop, h: Some(h) }
    }
    /// Waits until `n` lines satisfy `pred` (3 s at most); returns all output lines.
    fn wait(&self, n: usize, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let t = Instant::now();
        loop {
            let l = self.out.lines();
            if l.iter().filter(|s| pred(s)).count() >= n || t.elapsed() > Duration::from_secs(3) {
                return l;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.h.take().unwrap().join().unwrap().unwrap();
    }
}

fn is_data(l: &str) -> bool {
    !l.starts_with("Time") && !l.starts_with("---")
}

#[test]
fn file_appends_are_shown_with_headers_every_twenty_lines() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("kern.log");
    fs::write(&p, fw_line("fw1", "DROP", "eth0", "198.51.100.1", 1, 22) + "\n").unwrap();
    let r = Run::file(&p, opts(d.path()));
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    for i in 0..45 {
        writeln!(f, "{}", fw_line("fw1", "DROP", "eth0", "198.51.100.7", 40000 + i, 22)).unwrap();
        writeln!(f, "an unrelated syslog line").unwrap();
    }
    let l = r.wait(45, is_data);
    assert_eq!(l.len(), 48, "{l:#?}");
    for (i, s) in l.iter().enumerate() {
        assert_eq!(s.starts_with("Time"), i % 21 == 0, "line {i}: {s}");
    }
    // Time (local; TZ may differ) aside: Count IF Source Port Destination Port Proto Action.
    let w: Vec<&str> = l[1].split_whitespace().collect();
    assert_eq!(&w[3..], ["1", "eth0", "198.51.100.7", "40000", "192.0.2.10", "22", "TCP", "DROP"]);
    let w: Vec<&str> = l[47].split_whitespace().collect();
    assert_eq!(&w[3..6], ["45", "eth0", "198.51.100.7"]);
    assert_eq!(w[6], "40044", "the old line before the start is not shown");
    r.finish();
}

#[test]
fn filters_hide_local_and_accept_and_the_counter_counts_shown_lines() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("kern.log");
    fs::write(&p, "").unwrap();
    let o = FollowOptions { no_local: true, no_accept: true, no_header: true, ..opts(d.path()) };
    let r = Run::file(&p, o);
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    writeln!(f, "{}", fw_line("fw1", "DROP", "lo", "127.0.0.1", 1, 2)).unwrap();
    writeln!(f, "{}", fw_line("fw1", "ACCEPT", "eth0", "198.51.100.1", 3, 80)).unwrap();
    writeln!(f, "{}", fw_line("fw1", "DROP", "eth0", "198.51.100.2", 4, 22)).unwrap();
    writeln!(f, "{}", fw_line("fw1", "REJECT", "eth0", "198.51.100.3", 5, 23)).unwrap();
    let l = r.wait(2, is_data);
    assert_eq!(l.len(), 2, "{l:#?}");
    let counts: Vec<&str> = l.iter().map(|s| s.split_whitespace().nth(3).unwrap()).collect();
    assert_eq!(counts, ["1", "2"]);
    assert!(l[0].contains("198.51.100.2") && l[1].contains("198.51.100.3"));
    r.finish();
}

#[test]
fn json_lines_as_scan_prints_them() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("kern.log");
    fs::write(&p, "").unwrap();
    let r = Run::file(&p, FollowOptions { format: FollowFormat::Json, ..opts(d.path()) });
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    writeln!(f, "{}", fw_line("fw1", "DROP", "eth0", "198.51.100.2", 4, 22)).unwrap();
    let l = r.wait(1, |_| true);
    assert_eq!(l.len(), 1);
    let v: serde_json::Value = serde_json::from_str(&l[0]).unwrap();
    assert_eq!(v["src"], "198.51.100.2");
    assert_eq!(v["dpt"], 22);
    assert_eq!(v["action"], "DROP");
    assert_eq!(v["host"], "fw1");
    r.finish();
}

#[test]
fn two_viewers_on_the_fan_out_see_every_packet_with_a_host_column() {
    let d = tempfile::tempdir().unwrap();
    let mut fan = FanOut::new(d.path()).unwrap();
    let r1 = Run::ingest(opts(d.path()));
    let r2 = Run::ingest(FollowOptions { no_header: true, no_counter: true, ..opts(d.path()) });
    let t = Instant::now();
    while fan.refresh(Duration::from_secs(1)) < 2 {
        assert!(t.elapsed() < Duration::from_secs(5), "viewers did not attach");
    }
    for i in 0..30 {
        let host = if i < 10 { "fw1" } else { "fw2" };
        fan.send(fw_line(host, "DROP", "eth0", "198.51.100.9", 1000 + i, 22).as_bytes());
    }
    for r in [&r1, &r2] {
        let l = r.wait(30, is_data);
        let data: Vec<&String> = l.iter().filter(|s| is_data(s)).collect();
        assert_eq!(data.len(), 30, "{l:#?}");
        assert!(data[..10].iter().all(|s| !s.ends_with("fw1")), "one host: no Host column");
        assert!(data[10..].iter().all(|s| s.ends_with(" fw2")), "{:#?}", &data[10..]);
        for (i, s) in data.iter().enumerate() {
            assert!(s.contains(&format!(" {} ", 1000 + i)), "in order: {s}");
        }
    }
    // The first viewer printed a header at start and a new one when the Host column appeared.
    let l = r1.out.lines();
    let headers: Vec<usize> = l.iter().enumerate().filter(|(_, s)| s.starts_with("Time")).map(|(i, _)| i).collect();
    assert_eq!(headers, [0, 11], "{l:#?}");
    assert!(l[11].ends_with("Host"));
    r1.finish();
    r2.finish();
}

#[test]
fn rdns_shows_names_without_holding_lines_back() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("kern.log");
    fs::write(&p, "").unwrap();
    let r = Run::file(&p, FollowOptions { rdns: true, no_header: true, ..opts(d.path()) });
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    let t = Instant::now();
    // 127.0.0.1 resolves from /etc/hosts; 192.0.2.10 (TEST-NET) may take the resolver long.
    writeln!(f, "{}", fw_line("fw1", "DROP", "eth0", "127.0.0.1", 1, 22)).unwrap();
    let l = r.wait(1, is_data);
    let took = t.elapsed();
    assert_eq!(l.len(), 1, "{l:#?}");
    assert!(l[0].contains(" localhost "), "{}", l[0]);
    assert!(took < Duration::from_millis(1500), "held back {took:?}");
    r.finish();
}
