//! The fan-out to `ipta --follow` viewers: one FIFO per viewer in a directory; ipta-ingest writes
//! every line to each of them without ever blocking (a slow viewer loses lines, and is told).
//!
//! How it works. Each viewer creates `viewer-<pid>.fifo` in the fan-out directory and holds it
//! open. [`FanOut::send`] only appends the line to an in-memory queue (one mutex, one memcpy, no
//! system call, no allocation once the queue has grown) and returns; a background thread owns the
//! viewers: it finds new FIFOs (a `stat` of the directory every 250 ms, a `readdir` only when the
//! directory changed or every 5 s), opens them `O_WRONLY|O_NONBLOCK`, and writes the queued lines
//! in chunks of whole lines of at most `PIPE_BUF` bytes. Such a write is atomic on a pipe: it goes
//! in whole or fails with `EAGAIN`, so a viewer never sees a torn line. A full pipe (stopped or slow
//! viewer) makes that viewer lose the chunk; the lines lost are counted and announced in-band with
//! a line `#ipta-dropped N` as soon as the pipe has room again. A write that fails with `EPIPE`
//! means the viewer is gone (even after SIGKILL its read end closes): the FIFO is closed and
//! removed. With no viewer attached `send` is one atomic load.
//!
//! Trust. The directory decides who may watch, so ipta-ingest uses it only when it owns it (or
//! root does) and it is not writable by everyone: anyone able to create a FIFO there receives
//! every stored line. Viewers make their FIFOs writable by the directory's owner only (see
//! `follow::viewer`). Each user gets at most [`MAX_VIEWERS_PER_USER`] of the [`MAX_VIEWERS`]
//! places (counted by the FIFO's owner), so one user cannot lock the others out.
//!
//! Lines longer than `PIPE_BUF - 1` bytes cannot be written atomically and are skipped (counted
//! as lost for every viewer). If the writer thread falls behind by more than 4 MiB of lines, new
//! lines are skipped the same way: ingest is never slowed down by its viewers.

use std::collections::HashSet;
use std::ffi::{CString, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The largest write a pipe guarantees to be atomic (POSIX minimum 512, 4096 on Linux).
pub const PIPE_BUF: usize = libc::PIPE_BUF;
/// Viewer FIFOs are named `viewer-<pid>.fifo`.
pub const FIFO_PREFIX: &str = "viewer-";
pub const FIFO_SUFFIX: &str = ".fifo";
/// The in-band line announcing lost lines: `#ipta-dropped N`. No syslog line starts with `#`.
pub const DROPPED_MARKER: &str = "#ipta-dropped ";

/// How often the directory is checked for new viewers.
const SCAN_INTERVAL: Duration = Duration::from_millis(250);
/// A full `readdir` at least this often, even when the directory's mtime did not change (retries
/// FIFOs whose reader was not open yet, and removes FIFOs of dead viewers).
const FULL_SCAN_INTERVAL: Duration = Duration::from_secs(5);
/// At most this many viewers are served (each costs the writer thread one write per chunk);
/// further FIFOs wait until a place is free.
pub const MAX_VIEWERS: usize = 64;
/// At most this many of those places go to the FIFOs of one user.
pub const MAX_VIEWERS_PER_USER: usize = 8;
/// Queue bound between `send` and the writer thread.
const QUEUE_CAP: usize = 4 << 20;

/// The file name of the FIFO of viewer `pid`.
pub fn fifo_name(pid: u32) -> String {
    format!("{FIFO_PREFIX}{pid}{FIFO_SUFFIX}")
}

/// The pid in a viewer FIFO's file name (`viewer-<pid>.fifo`, or `viewer-<pid>-<n>.fifo` for a
/// further viewer in the same process), if the name is one.
pub fn fifo_pid(name: &[u8]) -> Option<u32> {
    let rest = name.strip_prefix(FIFO_PREFIX.as_bytes())?;
    let mut digits = rest.strip_suffix(FIFO_SUFFIX.as_bytes())?;
    if let Some(i) = digits.iter().position(|&b| b == b'-') {
        let seq = &digits[i + 1..];
        if seq.is_empty() || !seq.iter().all(u8::is_ascii_digit) {
            return None;
        }
        digits = &digits[..i];
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Whether process `pid` exists (EPERM: it exists but belongs to someone else).
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Refuses a follow directory that others could have prepared: its owner must be this process's
/// user or root, and it must not be writable by everyone.
pub fn check_dir(dir: &Path) -> io::Result<()> {
    let md = fs::metadata(dir)?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if md.uid() != me && md.uid() != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is owned by uid {}, not by ipta-ingest's user (uid {me}) or root",
                dir.display(),
                md.uid()
            ),
        ));
    }
    if md.mode() & 0o002 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is writable by everyone (mode {:04o}): anyone could watch; use a group instead (mode 3770)",
                dir.display(),
                md.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// What `send` and the writer thread share.
struct Queue {
    /// Whole lines, each ending in `\n`.
    buf: Vec<u8>,
    /// Lines every viewer lost since the writer last looked (too long, or queue full).
    skipped: u64,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Viewers currently attached (written by the writer thread, read by `send`).
    viewers: AtomicUsize,
    /// Lines lost, summed over viewers.
    dropped_total: AtomicU64,
    /// Lines skipped because they were longer than `PIPE_BUF - 1` bytes.
    too_long: AtomicU64,
    /// Asks the writer thread for a directory scan before its next wait (tests, `refresh`).
    scan_now: AtomicBool,
    /// Incremented after each completed scan.
    scans: AtomicU64,
}

fn lock(m: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    // A panic elsewhere while holding the lock leaves a queue of whole lines: still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writer side, owned by ipta-ingest. With no viewer attached it costs nothing.
pub struct FanOut {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
}

impl FanOut {
    /// Watches `dir` for viewers' FIFOs (the directory is created, mode 0770 before umask, if
    /// missing). Fails if the directory cannot be created or read, is not owned by this process's
    /// user or root, or is writable by everyone, or if the thread cannot be started.
    pub fn new(dir: &Path) -> io::Result<Self> {
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o770)
                .create(dir)
                .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
        }
        check_dir(dir)?;
        // Fail now, not silently in the thread, when the directory cannot be listed.
        fs::read_dir(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", dir.display())))?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue { buf: Vec::with_capacity(64 << 10), skipped: 0, stop: false }),
            wake: Condvar::new(),
            viewers: AtomicUsize::new(0),
            dropped_total: AtomicU64::new(0),
            too_long: AtomicU64::new(0),
            scan_now: AtomicBool::new(true),
            scans: AtomicU64::new(0),
        });
        let mut writer = Writer::new(dir.to_path_buf(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("ipta-fanout".into())
            .spawn(move || writer.run())?;
        Ok(FanOut { shared, thread: Some(thread), dir: dir.to_path_buf() })
    }

    /// Offers one line (without newline) to every attached viewer. Never blocks on a viewer.
    pub fn send(&mut self, line: &[u8]) {
        if self.shared.viewers.load(Ordering::Relaxed) == 0 {
            return;
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let too_long = line.len() >= PIPE_BUF || memchr::memchr(b'\n', line).is_some();
        let mut q = lock(&self.shared.queue);
        if too_long {
            self.shared.too_long.fetch_add(1, Ordering::Relaxed);
            q.skipped += 1;
            return;
        }
        if q.buf.len() + line.len() + 1 > QUEUE_CAP {
            q.skipped += 1;
            return;
        }
        let was_empty = q.buf.is_empty();
        q.buf.extend_from_slice(line);
        q.buf.push(b'\n');
        drop(q);
        if was_empty {
            self.shared.wake.notify_one();
        }
    }

    /// Viewers attached at the last scan.
    pub fn viewers(&self) -> usize {
        self.shared.viewers.load(Ordering::Relaxed)
    }

    /// Lines lost so far, summed over viewers (a line two viewers missed counts twice).
    pub fn dropped_total(&self) -> u64 {
        self.shared.dropped_total.load(Ordering::Relaxed)
    }

    /// Lines skipped because they were too long to be written atomically.
    pub fn too_long_total(&self) -> u64 {
        self.shared.too_long.load(Ordering::Relaxed)
    }

    /// The directory watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Scans the directory now and waits (at most `timeout`) until the scan is done; returns the
    /// number of viewers attached. For tests and start-up; `send` never needs it.
    pub fn refresh(&self, timeout: Duration) -> usize {
        let before = self.shared.scans.load(Ordering::Acquire);
        self.shared.scan_now.store(true, Ordering::Release);
        {
            let _q = lock(&self.shared.queue);
            self.shared.wake.notify_one();
        }
        let end = Instant::now() + timeout;
        while self.shared.scans.load(Ordering::Acquire) == before && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.viewers()
    }
}

impl Drop for FanOut {
    /// Writes what is queued (still without blocking), then stops the writer thread. The viewers'
    /// FIFOs stay: the viewers keep them open and a restarted ipta-ingest finds them again.
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One attached viewer.
struct Viewer {
    name: OsString,
    fd: OwnedFd,
    dev: u64,
    ino: u64,
    /// The FIFO's owner (the places per user are counted by it).
    uid: u32,
    /// Lines lost and not yet announced.
    unannounced: u64,
}

/// Result of one write attempt to a viewer.
enum WriteResult {
    Done,
    Full,
    Gone,
}

fn write_all_or_nothing(fd: &OwnedFd, bytes: &[u8]) -> WriteResult {
    loop {
        // SAFETY: the pointer and length describe a live slice; fd is open.
        let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        if n >= 0 {
            // A pipe write of at most PIPE_BUF bytes is all or nothing; anything else would be
            // a short write on something that is not a pipe, which we never open.
            return if n as usize == bytes.len() { WriteResult::Done } else { WriteResult::Gone };
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return WriteResult::Full,
            _ => return WriteResult::Gone,
        }
    }
}

/// The writer thread's state.
struct Writer {
    dir: PathBuf,
    shared: Arc<Shared>,
    viewers: Vec<Viewer>,
    /// Names already reported as unusable (so each is reported once).
    warned: HashSet<OsString>,
    last_mtime: Option<(i64, i64)>,
    last_full_scan: Option<Instant>,
    next_scan: Instant,
    /// (start, end) of each chunk of the current batch, reused.
    chunks: Vec<(usize, usize)>,
}

impl Writer {
    fn new(dir: PathBuf, shared: Arc<Shared>) -> Self {
        Writer {
            dir,
            shared,
            viewers: Vec::new(),
            warned: HashSet::new(),
            last_mtime: None,
            last_full_scan: None,
            next_scan: Instant::now(),
            chunks: Vec::new(),
        }
    }

    fn run(&mut self) {
        // A write to a pipe whose reader is gone raises SIGPIPE in the writing thread. Rust
        // programs ignore it, but ipta-ingest must not die of a viewer's death if that ever
        // changes: block it here, so the write just fails with EPIPE.
        // SAFETY: the sigset is initialised by sigemptyset before use.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        let mut batch: Vec<u8> = Vec::with_capacity(64 << 10);
        loop {
            let (skipped, stop) = {
                let mut q = lock(&self.shared.queue);
                loop {
                    if !q.buf.is_empty() || q.stop || q.skipped > 0 {
                        break;
                    }
                    if self.shared.scan_now.load(Ordering::Acquire) {
                        break;
                    }
                    let now = Instant::now();
                    if now >= self.next_scan {
                        break;
                    }
                    q = self
                        .shared
                        .wake
                        .wait_timeout(q, self.next_scan - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                std::mem::swap(&mut q.buf, &mut batch);
                let s = std::mem::take(&mut q.skipped);
                (s, q.stop)
            };
            let now = Instant::now();
            if now >= self.next_scan || self.shared.scan_now.swap(false, Ordering::AcqRel) {
                self.scan();
                self.next_scan = Instant::now() + SCAN_INTERVAL;
                self.shared.scans.fetch_add(1, Ordering::Release);
            }
            if skipped > 0 {
                for v in &mut self.viewers {
                    v.unannounced += skipped;
                }
                self.shared
                    .dropped_total
                    .fetch_add(skipped * self.viewers.len() as u64, Ordering::Relaxed);
            }
            if !batch.is_empty() {
                self.write_batch(&batch);
                batch.clear();
            }
            if stop {
                return;
            }
        }
    }

    /// Writes one batch of whole lines to every viewer.
    fn write_batch(&mut self, batch: &[u8]) {
        if self.viewers.is_empty() {
            return;
        }
        // Chunks of whole lines, each at most PIPE_BUF bytes (every line is shorter than that).
        self.chunks.clear();
        let mut start = 0;
        while start < batch.len() {
            let window = &batch[start..batch.len().min(start + PIPE_BUF)];
            let end = match memchr::memrchr(b'\n', window) {
                Some(i) => start + i + 1,
                None => batch.len(), // cannot happen: send() only queues short lines
            };
            self.chunks.push((start, end));
            start = end;
        }
        let mut i = 0;
        while i < self.viewers.len() {
            let gone = Self::write_viewer(&mut self.viewers[i], batch, &self.chunks, &self.shared);
            if gone {
                let v = self.viewers.swap_remove(i);
                self.remove_fifo(&v);
                self.shared.viewers.store(self.viewers.len(), Ordering::Relaxed);
            } else {
                i += 1;
            }
        }
    }

    /// Returns true when the viewer is gone.
    fn write_viewer(v: &mut Viewer, batch: &[u8], chunks: &[(usize, usize)], shared: &Shared) -> bool {
        for &(s, e) in chunks {
            if v.unannounced > 0 {
                let mut m = [0u8; 48];
                let len = {
                    use std::io::Write;
                    let mut c = io::Cursor::new(&mut m[..]);
                    let _ = writeln!(c, "{DROPPED_MARKER}{}", v.unannounced);
                    c.position() as usize
                };
                match write_all_or_nothing(&v.fd, &m[..len]) {
                    WriteResult::Done => v.unannounced = 0,
                    WriteResult::Full => {
                        Self::lose(v, &batch[s..], shared);
                        return false;
                    }
                    WriteResult::Gone => return true,
                }
            }
            match write_all_or_nothing(&v.fd, &batch[s..e]) {
                WriteResult::Done => {}
                WriteResult::Full => {
                    // The rest of this batch is lost for this viewer: retrying chunk after chunk
                    // against a full pipe would only cost system calls.
                    Self::lose(v, &batch[s..], shared);
                    return false;
                }
                WriteResult::Gone => return true,
            }
        }
        false
    }

    fn lose(v: &mut Viewer, rest: &[u8], shared: &Shared) {
        let n = memchr::memchr_iter(b'\n', rest).count() as u64;
        v.unannounced += n;
        shared.dropped_total.fetch_add(n, Ordering::Relaxed);
    }

    /// Removes a departed viewer's FIFO, unless the path now holds another file.
    fn remove_fifo(&self, v: &Viewer) {
        let path = self.dir.join(&v.name);
        if let Ok(md) = fs::symlink_metadata(&path) {
            if md.dev() == v.dev && md.ino() == v.ino {
                let _ = fs::remove_file(&path);
            }
        }
    }

    /// Looks for new viewers; cheap when nothing changed.
    fn scan(&mut self) {
        let md = match fs::metadata(&self.dir) {
            Ok(md) => md,
            Err(_) => return, // the directory vanished; keep the viewers we have
        };
        let mtime = (md.mtime(), md.mtime_nsec());
        let now = Instant::now();
        let full_due = self
            .last_full_scan
            .map_or(true, |t| now.duration_since(t) >= FULL_SCAN_INTERVAL);
        if self.last_mtime == Some(mtime) && !full_due {
            return;
        }
        self.last_mtime = Some(mtime);
        self.last_full_scan = Some(now);
        let Ok(rd) = fs::read_dir(&self.dir) else { return };
        for ent in rd.flatten() {
            let name = ent.file_name();
            let Some(pid) = fifo_pid(name.as_bytes()) else { continue };
            if self.viewers.iter().any(|v| v.name == name) {
                continue;
            }
            if self.viewers.len() >= MAX_VIEWERS {
                if self.warned.insert(name.clone()) {
                    eprintln!("ipta-ingest: follow viewer {}: already {MAX_VIEWERS} viewers", name.to_string_lossy());
                }
                continue;
            }
            let path = ent.path();
            let Ok(lmd) = fs::symlink_metadata(&path) else { continue };
            if !lmd.file_type().is_fifo() {
                continue;
            }
            let uid = lmd.uid();
            if self.viewers.iter().filter(|v| v.uid == uid).count() >= MAX_VIEWERS_PER_USER {
                if self.warned.insert(name.clone()) {
                    eprintln!(
                        "ipta-ingest: follow viewer {}: uid {uid} has {MAX_VIEWERS_PER_USER} viewers already",
                        name.to_string_lossy()
                    );
                }
                continue;
            }
            match open_fifo_writer(&path) {
                Ok((fd, dev, ino, uid)) => {
                    self.warned.remove(&name);
                    self.viewers.push(Viewer { name, fd, dev, ino, uid, unannounced: 0 });
                }
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    // No reader: a viewer between mkfifo and open, or a dead one.
                    if !pid_alive(pid) {
                        let _ = fs::remove_file(&path);
                    }
                }
                Err(e) => {
                    if self.warned.insert(name.clone()) {
                        eprintln!("ipta-ingest: follow viewer {}: {e}", path.display());
                    }
                }
            }
        }
        self.shared.viewers.store(self.viewers.len(), Ordering::Relaxed);
    }
}

/// Opens a viewer's FIFO for non-blocking writes; checks it is still a FIFO once open.
/// Returns the descriptor, the FIFO's device and inode, and its owner (all from `fstat` of the
/// opened FIFO, not of the name).
fn open_fifo_writer(path: &Path) -> io::Result<(OwnedFd, u64, u64, u32)> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: c is a valid NUL-terminated path.
    let fd = unsafe {
        libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by open and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a FIFO"));
    }
    Ok((fd, st.st_dev, st.st_ino, st.st_uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_names_round_trip() {
        assert_eq!(fifo_name(42), "viewer-42.fifo");
        assert_eq!(fifo_pid(b"viewer-42.fifo"), Some(42));
        assert_eq!(fifo_pid(b"viewer-.fifo"), None);
        assert_eq!(fifo_pid(b"viewer-4x2.fifo"), None);
        assert_eq!(fifo_pid(b"other-42.fifo"), None);
        assert_eq!(fifo_pid(b"viewer-42.fifo.tmp"), None);
        assert_eq!(fifo_pid(b"viewer-42-3.fifo"), Some(42));
        assert_eq!(fifo_pid(b"viewer-42-.fifo"), None);
        assert_eq!(fifo_pid(b"viewer--3.fifo"), None);
    }

    #[test]
    fn no_viewer_costs_nothing_and_creates_dir() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/b");
        let mut f = FanOut::new(&dir).unwrap();
        assert!(dir.is_dir());
        for _ in 0..1000 {
            f.send(b"line");
        }
        assert_eq!(f.refresh(Duration::from_secs(2)), 0);
        assert_eq!(f.dropped_total(), 0);
    }
}
