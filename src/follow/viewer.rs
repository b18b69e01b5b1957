//! `ipta --follow` without a file: the reading end of ipta-ingest's fan-out.
//!
//! The viewer creates its own FIFO `viewer-<pid>.fifo` in the follow directory (a second viewer
//! in the same process gets `viewer-<pid>-<n>.fifo`), mode 0622 so that ipta-ingest, running as
//! another user, may open it for writing: who may watch is decided by the directory's permissions
//! (see README.md). It opens the FIFO `O_RDWR`: the open never blocks, and as long as the
//! viewer holds its own write end a restart of ipta-ingest is not an end of file. The pipe is
//! enlarged to 1 MiB when allowed, to ride out bursts. The FIFO is removed when the viewer ends;
//! after a SIGKILL ipta-ingest removes it (EPIPE), or the next viewer does (pid gone).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{read_lines, FollowError, LineBuf, LineSink};
use crate::follow::fanout::{fifo_pid, pid_alive, FIFO_PREFIX, FIFO_SUFFIX};

/// Pipe size asked for (the unprivileged maximum by default, /proc/sys/fs/pipe-max-size).
const PIPE_SIZE: libc::c_int = 1 << 20;
/// Poll timeout: how fast the stop flag is noticed.
const POLL_MS: libc::c_int = 100;
/// How often the viewer checks that its FIFO is still in the directory.
const RECHECK: Duration = Duration::from_secs(2);

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Removes the FIFO when the viewer ends, however it ends (short of SIGKILL).
struct FifoGuard(PathBuf);

impl Drop for FifoGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Removes FIFOs left by viewers that died (best effort; rights permitting).
fn remove_stale(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for ent in rd.flatten() {
        if let Some(pid) = fifo_pid(ent.file_name().as_bytes()) {
            if !pid_alive(pid) {
                let _ = fs::remove_file(ent.path());
            }
        }
    }
}

fn fifo_path(dir: &Path) -> PathBuf {
    let pid = std::process::id();
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    if n == 0 {
        dir.join(format!("{FIFO_PREFIX}{pid}{FIFO_SUFFIX}"))
    } else {
        dir.join(format!("{FIFO_PREFIX}{pid}-{n}{FIFO_SUFFIX}"))
    }
}

/// Creates and opens this viewer's FIFO.
fn attach(dir: &Path) -> Result<(OwnedFd, FifoGuard), FollowError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(FollowError::FollowDir {
                dir: dir.to_path_buf(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(FollowError::NoFollowDir { dir: dir.to_path_buf() })
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(FollowError::Permission { dir: dir.to_path_buf(), source: e })
        }
        Err(e) => return Err(FollowError::FollowDir { dir: dir.to_path_buf(), source: e }),
    }
    remove_stale(dir);
    let path = fifo_path(dir);
    let _ = fs::remove_file(&path); // a leftover of an earlier process with our pid
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| FollowError::FollowDir {
        dir: dir.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"),
    })?;
    let dir_err = |e: io::Error| match e.kind() {
        io::ErrorKind::PermissionDenied => FollowError::Permission { dir: dir.to_path_buf(), source: e },
        _ => FollowError::FollowDir { dir: dir.to_path_buf(), source: e },
    };
    // SAFETY: c is a valid path; mkfifo/chmod/open/fcntl take no pointers beyond it.
    unsafe {
        if libc::mkfifo(c.as_ptr(), 0o600) != 0 {
            let e = io::Error::last_os_error();
            // EROFS / EPERM on a directory we may not write count as "no rights" as well.
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EROFS) => FollowError::Permission { dir: dir.to_path_buf(), source: e },
                _ => dir_err(e),
            });
        }
        let guard = FifoGuard(path.clone());
        // Explicit mode, whatever the umask: writable by ipta-ingest's user.
        if libc::chmod(c.as_ptr(), 0o622) != 0 {
            return Err(dir_err(io::Error::last_os_error()));
        }
        let fd = libc::open(c.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW);
        if fd < 0 {
            return Err(dir_err(io::Error::last_os_error()));
        }
        let fd = OwnedFd::from_raw_fd(fd);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE);
        Ok((fd, guard))
    }
}

/// Attaches a viewer FIFO to the fan-out in `dir` and hands every run of whole lines (including
/// `#ipta-dropped N` markers) to `sink`, until `stop` is set (checked every 100 ms) or an error.
pub fn view_lines(dir: &Path, stop: &AtomicBool, sink: &mut LineSink<'_>) -> Result<(), FollowError> {
    'attach: loop {
        let (fd, guard) = attach(dir)?;
        let ours = fs::metadata(&guard.0).map(|m| (m.dev(), m.ino())).ok();
        let mut checked = Instant::now();
        let mut lb = LineBuf::new();
        let mut no_skip = false;
        let read = |b: &mut [u8]| -> io::Result<usize> {
            // SAFETY: b is a live, writable buffer of the given length.
            let n = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        };
        while !stop.load(Ordering::Relaxed) {
            let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: p is a valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, POLL_MS) };
            if r > 0 {
                loop {
                    match read_lines(&mut lb, read, sink, &mut no_skip)? {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(FollowError::Read { path: guard.0.clone(), source: e }),
                    }
                }
            }
            // Someone removed our FIFO (a clean-up of /run, a viewer in another pid namespace
            // taking us for dead): ipta-ingest could never find us again. Make a new one.
            if checked.elapsed() >= RECHECK {
                checked = Instant::now();
                let now = fs::symlink_metadata(&guard.0).map(|m| (m.dev(), m.ino())).ok();
                if now.is_none() || now != ours {
                    continue 'attach;
                }
            }
        }
        return Ok(());
    }
}
