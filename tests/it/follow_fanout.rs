//! The fan-out between ipta-ingest ([`FanOut`]) and `ipta --follow` viewers: every viewer gets
//! every line whole or is told how many it lost; a stopped viewer never slows the writer; a
//! killed viewer's FIFO is removed; the directory's permissions decide who may watch.
//! Viewers are the library's own (`view_lines`, `follow_ingest`) in threads, or child processes
//! (`cat`, `sleep`) holding a FIFO when a test must stop or kill them.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipta::follow::viewer::view_lines;
use ipta::follow::follow_ingest;
use ipta::follow::fanout::{FanOut, DROPPED_MARKER, PIPE_BUF};

use crate::util::{follow_opts as opts, SharedOut};

static SEQ: AtomicU32 = AtomicU32::new(500);

/// What a viewer received: data lines, and the losses it was told about.
#[derive(Default)]
struct Got {
    lines: Vec<String>,
    lost: u64,
}

impl Got {
    fn add(&mut self, line: &str) {
        match line.strip_prefix(DROPPED_MARKER) {
            Some(n) => self.lost += n.parse::<u64>().expect("marker count"),
            None => self.lines.push(line.to_string()),
        }
    }
    fn accounted(&self) -> u64 {
        self.lines.len() as u64 + self.lost
    }
}

/// A library viewer (`view_lines`) in a thread.
struct ThreadViewer {
    got: Arc<Mutex<Got>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<(), String>>>,
}

impl ThreadViewer {
    fn start(dir: &Path) -> ThreadViewer {
        let got = Arc::new(Mutex::new(Got::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s, d) = (got.clone(), stop.clone(), dir.to_path_buf());
        let handle = std::thread::spawn(move || {
            view_lines(&d, &s, &mut |data| {
                let mut g = g.lock().unwrap();
                for l in std::str::from_utf8(data).unwrap().lines() {
                    g.add(l);
                }
                Ok(())
            })
            .map_err(|e| e.to_string())
        });
        ThreadViewer { got, stop, handle: Some(handle) }
    }
    fn wait_accounted(&self, n: u64, timeout: Duration) -> bool {
        wait_until(timeout, || self.got.lock().unwrap().accounted() >= n)
    }
    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap().unwrap();
    }
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    f()
}

fn wait_viewers(f: &FanOut, n: usize) {
    assert!(
        wait_until(Duration::from_secs(5), || f.refresh(Duration::from_secs(1)) == n),
        "expected {n} viewers, have {}",
        f.viewers()
    );
}

/// A FIFO with a viewer-like name, opened read-write (like a viewer does).
fn fifo(dir: &Path) -> (PathBuf, OwnedFd) {
    let name = format!("viewer-{}-{}.fifo", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    let p = dir.join(name);
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid path; the fd is owned right away.
    unsafe {
        assert_eq!(libc::mkfifo(c.as_ptr(), 0o622), 0);
        let fd = libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        assert!(fd >= 0);
        (p, OwnedFd::from_raw_fd(fd))
    }
}

/// A child process that reads the FIFO (its stdin) and copies it to our pipe.
fn cat_viewer(dir: &Path) -> (Kid, PathBuf, Arc<Mutex<Got>>) {
    let (p, fd) = fifo(dir);
    let mut child = Command::new("cat").stdin(Stdio::from(fd)).stdout(Stdio::piped()).spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let got = Arc::new(Mutex::new(Got::default()));
    let g = got.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            g.lock().unwrap().add(&l);
        }
    });
    (Kid(child), p, got)
}

/// A child process that is killed when the test ends, even by a failed assertion.
struct Kid(Child);

impl Kid {
    fn id(&self) -> u32 {
        self.0.id()
    }
    fn kill_now(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        self.kill_now();
    }
}

fn signal(child: &Kid, sig: libc::c_int) {
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

fn line(i: usize) -> String {
    format!("L {i} {}", "x".repeat(i % 500))
}

/// Every line is whole and in order; returns how many.
fn check_lines(lines: &[String]) -> usize {
    let mut last: Option<usize> = None;
    for l in lines {
        let i: usize = l.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("torn line {l:?}"));
        assert_eq!(*l, line(i), "torn line");
        assert!(last.map_or(true, |j| i > j), "out of order: {i} after {last:?}");
        last = Some(i);
    }
    lines.len()
}

#[test]
fn two_viewers_get_every_line_whole_or_are_told() {
    let d = tempfile::tempdir().unwrap();
    let mut f = FanOut::new(d.path()).unwrap();
    let v1 = ThreadViewer::start(d.path());
    let v2 = ThreadViewer::start(d.path());
    wait_viewers(&f, 2);
    let n = 50_000;
    for i in 0..n {
        f.send(line(i).as_bytes());
    }
    // Losses are told with the next line that finds room: go on sending slowly until both
    // viewers have accounted for every line.
    let mut sent = n;
    assert!(wait_until(Duration::from_secs(20), || {
        f.send(line(sent).as_bytes());
        sent += 1;
        std::thread::sleep(Duration::from_millis(5));
        [&v1, &v2].iter().all(|v| v.got.lock().unwrap().accounted() == sent as u64)
    }));
    for v in [&v1, &v2] {
        let g = v.got.lock().unwrap();
        let k = check_lines(&g.lines);
        assert_eq!(g.lines.last().unwrap(), &line(sent - 1));
        println!("viewer: {k} lines, {} lost", g.lost);
    }
    v1.finish();
    v2.finish();
    // Viewers remove their FIFOs when they end.
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn stopped_viewer_loses_lines_is_told_and_never_slows_the_writer() {
    let d = tempfile::tempdir().unwrap();
    let mut f = FanOut::new(d.path()).unwrap();
    let active = ThreadViewer::start(d.path());
    let (mut cat, _p, cat_got) = cat_viewer(d.path());
    wait_viewers(&f, 2);
    signal(&cat, libc::SIGSTOP);

    let n = 100_000;
    let t = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let s = Instant::now();
        f.send(line(i).as_bytes());
        slowest = slowest.max(s.elapsed());
    }
    println!("{n} sends with a stopped viewer: {:?}, slowest send {slowest:?}", t.elapsed());
    assert!(wait_until(Duration::from_secs(10), || f.dropped_total() > 0));

    signal(&cat, libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(100));
    // Ingest goes on: losses are told with the next line that finds room, so keep sending until
    // both viewers have accounted for every line sent (received or told lost).
    let mut sent = n;
    let caught_up = wait_until(Duration::from_secs(20), || {
        f.send(line(sent).as_bytes());
        sent += 1;
        std::thread::sleep(Duration::from_millis(5));
        cat_got.lock().unwrap().accounted() == sent as u64 && active.got.lock().unwrap().accounted() == sent as u64
    });
    assert!(
        caught_up,
        "sent {sent}, stopped viewer accounted {}, active {}",
        cat_got.lock().unwrap().accounted(),
        active.got.lock().unwrap().accounted()
    );
    {
        let g = cat_got.lock().unwrap();
        let k = check_lines(&g.lines);
        assert!(g.lost > 0, "the stopped viewer must have lost lines");
        assert_eq!(g.lines.last().unwrap(), &line(sent - 1), "after SIGCONT it gets new lines");
        println!("stopped viewer: {k} lines, told {} lost", g.lost);
    }
    check_lines(&active.got.lock().unwrap().lines);
    assert_eq!(
        f.dropped_total(),
        cat_got.lock().unwrap().lost + active.got.lock().unwrap().lost,
        "the writer's count is what the viewers were told"
    );
    cat.kill_now();
    active.finish();
}

#[test]
fn killed_viewer_is_cleaned_up() {
    let d = tempfile::tempdir().unwrap();
    let mut f = FanOut::new(d.path()).unwrap();
    let (p, fd) = fifo(d.path());
    let mut child = Kid(Command::new("sleep").arg("30").stdin(Stdio::from(fd)).spawn().unwrap());
    wait_viewers(&f, 1);
    f.send(b"hello");
    signal(&child, libc::SIGKILL);
    child.0.wait().unwrap();
    let mut i = 0;
    assert!(wait_until(Duration::from_secs(5), || {
        i += 1;
        f.send(format!("after kill {i}").as_bytes());
        f.viewers() == 0 && !p.exists()
    }));
}

#[test]
fn stale_fifo_of_a_dead_viewer_is_removed() {
    let d = tempfile::tempdir().unwrap();
    let mut dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    let p = d.path().join(format!("viewer-{pid}.fifo"));
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o622) }, 0);
    let f = FanOut::new(d.path()).unwrap();
    assert!(wait_until(Duration::from_secs(3), || {
        f.refresh(Duration::from_secs(1));
        !p.exists()
    }));
    assert_eq!(f.viewers(), 0);
}

#[test]
fn over_long_line_is_skipped_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let mut f = FanOut::new(d.path()).unwrap();
    let v = ThreadViewer::start(d.path());
    wait_viewers(&f, 1);
    f.send(b"L 0 ");
    f.send(&vec![b'y'; PIPE_BUF + 10]);
    f.send(b"L 2 xx");
    assert!(v.wait_accounted(3, Duration::from_secs(5)));
    let g = v.got.lock().unwrap();
    assert_eq!(g.lines, ["L 0 ", "L 2 xx"]);
    assert_eq!(g.lost, 1);
    assert_eq!(f.too_long_total(), 1);
    drop(g);
    v.finish();
}

#[test]
fn follow_ingest_shows_lost_lines() {
    let d = tempfile::tempdir().unwrap();
    let mut f = FanOut::new(d.path()).unwrap();
    let out = SharedOut::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (o, s, dir) = (out.clone(), stop.clone(), d.path().to_path_buf());
    let h = std::thread::spawn(move || {
        let mut o = o;
        follow_ingest(&opts(&dir), &mut o, &s).map_err(|e| e.to_string())
    });
    wait_viewers(&f, 1);
    f.send(&vec![b'y'; PIPE_BUF * 2]);
    f.send(&vec![b'y'; PIPE_BUF * 2]);
    f.send(b"not a firewall line");
    assert!(wait_until(Duration::from_secs(5), || {
        String::from_utf8_lossy(&out.0.lock().unwrap()).contains("--- 2 lines lost ---")
    }));
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap().unwrap();
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0, "the viewer removed its FIFO");
}

#[test]
fn missing_follow_dir_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(false);
    let e = follow_ingest(&opts(&d.path().join("nope")), &mut Vec::new(), &stop).unwrap_err().to_string();
    assert!(e.contains("does not exist") && e.contains("ipta-ingest"), "{e}");
}

/// The test name of [`child_process_entry`] as libtest knows it: its module path without the
/// crate's name (`follow_fanout::child_process_entry` in the `it` binary).
fn child_entry_name() -> String {
    let path = module_path!();
    let in_binary = path.split_once("::").map_or("", |(_, rest)| rest);
    if in_binary.is_empty() { "child_process_entry".into() } else { format!("{in_binary}::child_process_entry") }
}

/// The body of child processes started by other tests: a real viewer (`follow_ingest`) on the
/// directory in IPTA_FOLLOW_TEST_CHILD_DIR, printing to stdout. Does nothing in a normal run.
#[test]
fn child_process_entry() {
    let Ok(dir) = std::env::var("IPTA_FOLLOW_TEST_CHILD_DIR") else { return };
    // SAFETY: prctl with an integer argument: die with the parent, never linger as an orphan.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let stop = AtomicBool::new(false);
    let stdout = std::io::stdout();
    let r = follow_ingest(&opts(Path::new(&dir)), &mut stdout.lock(), &stop);
    println!("CHILD-RESULT {}", r.map_or_else(|e| e.to_string(), |_| "ok".into()));
}

/// A real viewer in a child process; its stdout lines are collected.
fn child_viewer(dir: &Path) -> (Kid, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &child_entry_name(), "--nocapture", "--test-threads=1"])
        .env("IPTA_FOLLOW_TEST_CHILD_DIR", dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    std::thread::spawn(move || {
        for s in BufReader::new(out).lines() {
            let Ok(s) = s else { break };
            l.lock().unwrap().push(s);
        }
    });
    (Kid(child), lines)
}

#[test]
fn real_viewer_killed_by_sigkill_is_cleaned_up() {
    let d = tempfile::tempdir().unwrap();
    let mut f = FanOut::new(d.path()).unwrap();
    let (mut child, _) = child_viewer(d.path());
    wait_viewers(&f, 1);
    let p = d.path().join(format!("viewer-{}.fifo", child.id()));
    assert!(p.exists());
    signal(&child, libc::SIGKILL);
    child.0.wait().unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        f.send(b"a line");
        f.viewers() == 0 && !p.exists()
    }));
}

#[test]
fn real_viewer_stopped_then_continued_is_told_what_it_lost() {
    let d = tempfile::tempdir().unwrap();
    let mut f = FanOut::new(d.path()).unwrap();
    let (mut child, lines) = child_viewer(d.path());
    wait_viewers(&f, 1);
    signal(&child, libc::SIGSTOP);
    // More than its 1 MiB pipe holds.
    for i in 0..30_000 {
        f.send(line(i).as_bytes());
    }
    assert!(wait_until(Duration::from_secs(10), || f.dropped_total() > 0));
    signal(&child, libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(100));
    f.send(line(30_000).as_bytes());
    // The losses may be told in several notices (a short notice can fit in a nearly full pipe
    // while the viewer is still stopped); they add up to what the writer counted.
    let told = || -> u64 {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.ends_with(" lost ---"))
            // (the first may follow the test harness's "test child_process_entry ... ")
            .map(|l| l[l.find("--- ").unwrap() + 4..].split(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    // Ingest goes on: the notice goes out with the next line that finds room in the pipe.
    let mut i = 30_000;
    let ok = wait_until(Duration::from_secs(5), || {
        i += 1;
        f.send(line(i).as_bytes());
        std::thread::sleep(Duration::from_millis(5));
        told() > 0 && told() == f.dropped_total()
    });
    assert!(ok, "told {} lost, writer counted {}", told(), f.dropped_total());
    assert!(told() <= 30_000);
    child.kill_now();
}

#[test]
fn viewer_without_rights_gets_a_clear_error() {
    let base = tempfile::tempdir().unwrap();
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // Readable but not writable for others, and not even searchable for others.
    let ro = base.path().join("ro");
    let closed = base.path().join("closed");
    for (p, mode) in [(&ro, 0o755), (&closed, 0o750)] {
        fs::create_dir(p).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    for p in [&ro, &closed] {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", &child_entry_name(), "--nocapture", "--test-threads=1"])
            .env("IPTA_FOLLOW_TEST_CHILD_DIR", p);
        if root {
            cmd.uid(65534).gid(65534);
        } else {
            // Not root: the directories are ours, so take our own rights away instead.
            fs::set_permissions(p, fs::Permissions::from_mode(0o500)).unwrap();
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let res = text.lines().find_map(|l| l.split_once("CHILD-RESULT ").map(|(_, r)| r)).unwrap_or_else(|| {
            panic!("child said: {text} {}", String::from_utf8_lossy(&out.stderr))
        });
        assert!(res.contains("no permission to watch") && res.contains("group"), "{}: {res}", p.display());
    }
}

#[test]
fn viewer_survives_an_ingest_restart_and_a_removed_fifo() {
    let d = tempfile::tempdir().unwrap();
    let v = ThreadViewer::start(d.path());
    {
        let mut f = FanOut::new(d.path()).unwrap();
        wait_viewers(&f, 1);
        f.send(line(0).as_bytes());
        assert!(v.wait_accounted(1, Duration::from_secs(5)));
    }
    // ipta-ingest restarted: the viewer is found again.
    let mut f = FanOut::new(d.path()).unwrap();
    wait_viewers(&f, 1);
    f.send(line(1).as_bytes());
    assert!(v.wait_accounted(2, Duration::from_secs(5)));
    // Its FIFO removed behind its back (the open pipe still works, but a restarted ipta-ingest
    // could not find it): it makes a new one, and the next ipta-ingest finds that.
    for e in fs::read_dir(d.path()).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    drop(f);
    let mut f = FanOut::new(d.path()).unwrap();
    wait_viewers(&f, 1);
    let mut i = 2;
    assert!(wait_until(Duration::from_secs(10), || {
        f.send(line(i).as_bytes());
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
        v.got.lock().unwrap().lines.len() >= 3
    }));
    check_lines(&v.got.lock().unwrap().lines);
    v.finish();
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    (unsafe { libc::geteuid() }) == 0
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

#[test]
fn one_user_cannot_take_every_viewer_place() {
    let d = tempfile::tempdir().unwrap();
    let f = FanOut::new(d.path()).unwrap();
    let per_user = ipta::follow::fanout::MAX_VIEWERS_PER_USER;
    let mine: Vec<_> = (0..per_user + 3).map(|_| fifo(d.path())).collect();
    wait_viewers(&f, per_user);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(f.refresh(Duration::from_secs(1)), per_user, "one user holds at most {per_user} places");
    if is_root() {
        // Another user still gets a place.
        let (p, _fd) = fifo(d.path());
        chown(&p, 65534, 65534);
        wait_viewers(&f, per_user + 1);
    }
    drop(mine);
}

#[test]
fn follow_dir_of_another_user_or_writable_by_all_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let open = d.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
    let e = FanOut::new(&open).err().expect("a world-writable follow_dir is refused").to_string();
    assert!(e.contains("writable by everyone"), "{e}");
    // The viewer will not use it either.
    let stop = AtomicBool::new(false);
    let e = view_lines(&open, &stop, &mut |_| Ok(())).unwrap_err().to_string();
    assert!(e.contains("writable by everyone"), "{e}");
    if is_root() {
        let theirs = d.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o3770)).unwrap();
        chown(&theirs, 65534, 65534);
        let e = FanOut::new(&theirs).err().expect("a follow_dir of another user is refused").to_string();
        assert!(e.contains("owned by uid 65534"), "{e}");
    }
}

/// Whether `uid:gid` may open `p` for writing (a shell of that user tries).
fn can_write_as(p: &Path, uid: u32, gid: u32) -> bool {
    Command::new("sh")
        .args(["-c", "printf '' > \"$0\"", p.to_str().unwrap()])
        .uid(uid)
        .gid(gid)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn viewer_fifo_is_writable_only_by_ingests_user_and_the_viewer() {
    if !is_root() {
        println!("skipped: needs root to play three users");
        return;
    }
    // ipta-ingest's user 65531 owns the directory; viewers are in its group 65530.
    let (ingest, group, viewer, other) = (65531, 65530, 65534, 65532);
    let base = tempfile::tempdir().unwrap();
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = base.path().join("follow");
    fs::create_dir(&dir).unwrap();
    chown(&dir, ingest, group);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o3770)).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_entry", "--nocapture", "--test-threads=1"])
        .env("IPTA_FOLLOW_TEST_CHILD_DIR", &dir)
        .uid(viewer)
        .gid(group)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let child = Kid(child);
    let p = dir.join(format!("viewer-{}.fifo", child.id()));
    assert!(wait_until(Duration::from_secs(10), || p.exists()), "the viewer made no FIFO");
    let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o007, 0, "no rights for others: {mode:o}");
    assert!(can_write_as(&p, ingest, ingest), "ipta-ingest's user may write");
    assert!(!can_write_as(&p, other, group), "another viewer of the group may not write");
    assert!(!can_write_as(&p, other, other), "a stranger may not write");
    drop(child);
}
