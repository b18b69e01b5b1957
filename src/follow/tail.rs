//! `ipta --follow FILE`: shows lines appended to a file, from its end at start, across rotation
//! and truncation.
//!
//! Waking up: an inotify watch on the file's directory (so it outlives rotation: the new file
//! appears in the same directory) wakes the loop as soon as the file is written; a 100 ms poll
//! timeout remains as a fallback (no inotify, network file systems) and bounds the reaction to the
//! stop flag. At each wake-up the open file is read to its end, then:
//! - rotation: the path now names another file (other device/inode). The new file is read from
//!   its start, and the old one stays open and is read too for a few seconds more: logrotate
//!   renames the file and creates the new one before it signals the writer, which goes on
//!   appending to the old file until then. After that grace a last line without a newline is
//!   taken as whole and the old file is closed.
//! - truncation (copytruncate): the open file is shorter than what we read: read again from 0.
//!
//! A missing path (between the rename and the creation of a new file) keeps the old file open.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{read_lines, FollowError, LineBuf, LineSink};

/// The longest wait between two looks at the file.
const POLL: Duration = Duration::from_millis(100);
/// How long a rotated-away file is still read (the writer learns of the rotation late).
const OLD_FILE_GRACE: Duration = Duration::from_secs(5);

/// A file rotated away, still read until its grace is over.
struct Rotated {
    file: File,
    lb: LineBuf,
    skip_partial: bool,
    since: Instant,
}

impl Rotated {
    /// Shows what was still appended, and the last unterminated line once the grace is over;
    /// true when the file is done with.
    fn drain(&mut self, sink: &mut LineSink<'_>, path: &Path, done: bool) -> Result<bool, FollowError> {
        drain(&mut self.file, &mut self.lb, sink, &mut self.skip_partial, path)?;
        let over = done || self.since.elapsed() >= OLD_FILE_GRACE;
        if over && !self.lb.partial().is_empty() {
            sink(self.lb.partial())?;
            self.lb.clear();
        }
        Ok(over)
    }
}

/// An inotify instance watching one directory; only its wake-ups matter, not the events.
struct DirWatch {
    fd: OwnedFd,
}

impl DirWatch {
    fn new(dir: &Path) -> Option<DirWatch> {
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: plain system calls; the fd is owned right after creation.
        unsafe {
            let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            if fd < 0 {
                return None;
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let mask = libc::IN_MODIFY
                | libc::IN_CREATE
                | libc::IN_MOVED_TO
                | libc::IN_MOVED_FROM
                | libc::IN_DELETE
                | libc::IN_ATTRIB
                | libc::IN_CLOSE_WRITE;
            if libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) < 0 {
                return None;
            }
            Some(DirWatch { fd })
        }
    }

    /// Waits for an event or the timeout, then discards the queued events.
    fn wait(&self, timeout: Duration) {
        let mut p = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: p is a valid pollfd; the read buffer is a live local array.
        unsafe {
            if libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int) > 0 {
                let mut buf = [0u8; 4096];
                while libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) > 0 {}
            }
        }
    }
}

/// Reads `file` to its current end, showing whole lines; returns bytes read.
fn drain(
    file: &mut File,
    lb: &mut LineBuf,
    sink: &mut LineSink<'_>,
    skip_partial: &mut bool,
    path: &Path,
) -> Result<u64, FollowError> {
    let mut total = 0u64;
    loop {
        match read_lines(lb, |b| file.read(b), sink, skip_partial)? {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FollowError::Read { path: path.to_path_buf(), source: e }),
        }
    }
}

/// Follows `path` from its current end and hands every run of whole lines to `sink`, until
/// `stop` is set (checked at least every 100 ms) or an error occurs.
pub fn tail_lines(path: &Path, stop: &AtomicBool, sink: &mut LineSink<'_>) -> Result<(), FollowError> {
    let open_err = |e| FollowError::Open { path: path.to_path_buf(), source: e };
    let read_err = |e| FollowError::Read { path: path.to_path_buf(), source: e };
    let mut file = File::open(path).map_err(open_err)?;
    let md = file.metadata().map_err(read_err)?;
    if md.is_dir() {
        return Err(open_err(io::Error::new(io::ErrorKind::InvalidInput, "is a directory")));
    }
    let (mut dev, mut ino) = (md.dev(), md.ino());
    // Start at the end; if the last line is still being written, skip its remainder.
    let mut pos = md.len();
    let mut skip_partial = false;
    if pos > 0 {
        let mut b = [0u8; 1];
        if file.read_exact_at(&mut b, pos - 1).is_ok() {
            skip_partial = b[0] != b'\n';
        }
    }
    file.seek(SeekFrom::Start(pos)).map_err(read_err)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let watch = DirWatch::new(dir);
    let mut lb = LineBuf::new();
    let mut rotated: Option<Rotated> = None;

    while !stop.load(Ordering::Relaxed) {
        pos += drain(&mut file, &mut lb, sink, &mut skip_partial, path)?;
        if let Some(r) = &mut rotated {
            if r.drain(sink, path, false)? {
                rotated = None;
            }
        }

        // Rotated: the path names another file now.
        if let Ok(m) = fs::metadata(path) {
            if (m.dev(), m.ino()) != (dev, ino) {
                if let Ok(new) = File::open(path) {
                    // A second rotation within the grace ends the first one's.
                    if let Some(mut r) = rotated.take() {
                        r.drain(sink, path, true)?;
                    }
                    drain(&mut file, &mut lb, sink, &mut skip_partial, path)?;
                    let nm = new.metadata().map_err(read_err)?;
                    (dev, ino) = (nm.dev(), nm.ino());
                    rotated = Some(Rotated {
                        file: std::mem::replace(&mut file, new),
                        lb: std::mem::replace(&mut lb, LineBuf::new()),
                        skip_partial,
                        since: Instant::now(),
                    });
                    pos = 0;
                    skip_partial = false;
                    continue;
                }
            }
        }

        // Truncated in place: start again from the beginning.
        if let Ok(m) = file.metadata() {
            if m.len() < pos {
                file.seek(SeekFrom::Start(0)).map_err(read_err)?;
                pos = 0;
                lb.clear();
                skip_partial = false;
                continue;
            }
        }

        match &watch {
            Some(w) => w.wait(POLL),
            None => std::thread::sleep(POLL),
        }
    }
    if let Some(mut r) = rotated {
        r.drain(sink, path, true)?;
    }
    Ok(())
}
