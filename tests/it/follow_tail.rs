//! `ipta --follow FILE` at the line level: starts at the end, sees appends at once, survives
//! rotation (rename + new file, and the old file's last lines, also those written after the
//! new file appeared) and truncation (copytruncate).
//! Runs `follow::tail::tail_lines` in a thread and collects the lines it hands over.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipta::follow::tail::tail_lines;

struct Tail {
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<(), String>>>,
}

impl Tail {
    fn start(path: &Path) -> Tail {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s, p) = (lines.clone(), stop.clone(), path.to_path_buf());
        let handle = std::thread::spawn(move || {
            tail_lines(&p, &s, &mut |data| {
                let mut l = l.lock().unwrap();
                for line in String::from_utf8_lossy(data).lines() {
                    l.push(line.to_string());
                }
                Ok(())
            })
            .map_err(|e| e.to_string())
        });
        // Let it open the file and seek to the end before the test writes.
        std::thread::sleep(Duration::from_millis(150));
        Tail { lines, stop, handle: Some(handle) }
    }

    /// Waits until `n` lines arrived (at most 3 s), returns them all and how long it took.
    fn wait_for(&self, n: usize) -> (Vec<String>, Duration) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            if self.lines.lock().unwrap().len() >= n {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        (self.lines.lock().unwrap().clone(), t.elapsed())
    }

    fn finish(mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new().append(true).create(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn setup(name: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    (d, p)
}

#[test]
fn starts_at_end_and_shows_appends_at_once() {
    let (_d, p) = setup("fw.log");
    fs::write(&p, "old 1\nold 2\npartial-at-start").unwrap();
    let t = Tail::start(&p);
    append(&p, " rest\nnew 1\n");
    let (l, took) = t.wait_for(1);
    assert_eq!(l, ["new 1"], "old lines and the remainder of a partial line are skipped");
    assert!(took < Duration::from_secs(1), "append seen after {took:?}");
    append(&p, "new 2\nnew ");
    append(&p, "3\n");
    let (l, _) = t.wait_for(3);
    assert_eq!(l, ["new 1", "new 2", "new 3"]);
    t.finish().unwrap();
}

#[test]
fn survives_rotation_and_reads_old_file_to_its_end() {
    let (d, p) = setup("fw.log");
    fs::write(&p, "").unwrap();
    let t = Tail::start(&p);
    append(&p, "a1\n");
    t.wait_for(1);
    // The writer keeps its descriptor on the old file across the rename (like rsyslog before HUP).
    let mut old = OpenOptions::new().append(true).open(&p).unwrap();
    fs::rename(&p, d.path().join("fw.log.1")).unwrap();
    old.write_all(b"a2\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut new = File::create(&p).unwrap();
    new.write_all(b"b1\n").unwrap();
    t.wait_for(3);
    // logrotate creates the new file before it tells the writer: lines still go to the old one.
    std::thread::sleep(Duration::from_millis(150));
    old.write_all(b"a3\na4-without-newline").unwrap();
    let (l, _) = t.wait_for(4);
    assert_eq!(l, ["a1", "a2", "b1", "a3"]);
    // And it keeps following the new file; a second rotation ends the first one's grace, and
    // the old file's unterminated last line is then taken as whole.
    append(&p, "b2\n");
    t.wait_for(5);
    fs::rename(&p, d.path().join("fw.log.2")).unwrap();
    append(&p, "c1\n");
    let (l, _) = t.wait_for(7);
    assert_eq!(&l[4..], ["b2", "a4-without-newline", "c1"]);
    t.finish().unwrap();
}

#[test]
fn survives_copytruncate() {
    let (d, p) = setup("fw.log");
    fs::write(&p, "x\n").unwrap();
    let t = Tail::start(&p);
    append(&p, "a long first line before the truncation\nanother\n");
    t.wait_for(2);
    // logrotate copytruncate: copy, then truncate in place; the writer goes on at offset 0.
    fs::copy(&p, d.path().join("fw.log.1")).unwrap();
    OpenOptions::new().write(true).open(&p).unwrap().set_len(0).unwrap();
    std::thread::sleep(Duration::from_millis(250));
    append(&p, "after\n");
    let (l, _) = t.wait_for(3);
    assert_eq!(l, ["a long first line before the truncation", "another", "after"]);
    t.finish().unwrap();
}

#[test]
fn missing_file_is_a_clear_error() {
    let (_d, p) = setup("nope.log");
    let stop = AtomicBool::new(false);
    let e = tail_lines(&p, &stop, &mut |_| Ok(())).unwrap_err().to_string();
    assert!(e.contains("cannot open") && e.contains("nope.log"), "{e}");
}

#[test]
fn many_appends_arrive_complete_and_in_order() {
    let (_d, p) = setup("fw.log");
    fs::write(&p, "").unwrap();
    let t = Tail::start(&p);
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    for i in 0..20_000 {
        writeln!(f, "line {i} {}", "x".repeat(i % 300)).unwrap();
    }
    let (l, _) = t.wait_for(20_000);
    assert_eq!(l.len(), 20_000);
    for (i, s) in l.iter().enumerate() {
        assert_eq!(*s, format!("line {i} {}", "x".repeat(i % 300)));
    }
    t.finish().unwrap();
}
