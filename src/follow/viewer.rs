//! `ipta --follow` without a file: the reading end of ipta-ingest's fan-out.
//!
//! The viewer creates its own FIFO `viewer-<pid>.fifo` in the follow directory (a second viewer
//! in the same process gets `viewer-<pid>-<n>.fifo`). Only two users may write into it: the
//! viewer and ipta-ingest's user, who is the directory's owner (ipta-ingest refuses a directory
//! it does not own). When they differ, the FIFO gets mode 0620 with a POSIX ACL naming the
//! directory's owner and no rights for its group: other viewers, who share the directory's group,
//! can neither read nor forge lines in someone else's view. The FIFO is made under a temporary
//! name and renamed into place once its rights are final, so ipta-ingest never meets it
//! half-made. The viewer opens it `O_RDWR`: the open never blocks, and as long as the viewer
//! holds its own write end a restart of ipta-ingest is not an end of file. The pipe is enlarged
//! to 1 MiB when allowed, to ride out bursts. The FIFO is removed when the viewer ends; after a
//! SIGKILL ipta-ingest removes it (EPIPE), or the next viewer does (pid gone).

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
        let name = ent.file_name();
        // A FIFO still under its temporary name belongs to a viewer that died while making it.
        let name = name.as_bytes();
        if let Some(pid) = fifo_pid(name.strip_prefix(b".tmp-").unwrap_or(name)) {
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
    let owner = match fs::metadata(dir) {
        // Anyone could put a FIFO there and read what ipta-ingest writes into it (or a
        // look-alike of ipta-ingest could feed us): such a directory is not used.
        Ok(m) if m.is_dir() && m.mode() & 0o002 != 0 => {
            return Err(FollowError::FollowDir {
                dir: dir.to_path_buf(),
                source: io::Error::new(io::ErrorKind::PermissionDenied, "writable by everyone (mode o+w)"),
            })
        }
        Ok(m) if m.is_dir() => m.uid(),
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
    };
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
    let tmp = tmp_path(&path);
    let ctmp = CString::new(tmp.as_os_str().as_bytes()).map_err(|_| FollowError::FollowDir {
        dir: dir.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"),
    })?;
    let _ = fs::remove_file(&tmp);
    // SAFETY: c and ctmp are valid paths; mkfifo/chmod/open/fcntl/rename take no other pointers.
    unsafe {
        if libc::mkfifo(ctmp.as_ptr(), 0o600) != 0 {
            let e = io::Error::last_os_error();
            // EROFS / EPERM on a directory we may not write count as "no rights" as well.
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EROFS) => FollowError::Permission { dir: dir.to_path_buf(), source: e },
                _ => dir_err(e),
            });
        }
        let mut guard = FifoGuard(tmp.clone());
        // Explicit mode, whatever the umask; then write access for ipta-ingest's user.
        if libc::chmod(ctmp.as_ptr(), 0o600) != 0 {
            return Err(dir_err(io::Error::last_os_error()));
        }
        if owner != libc::geteuid() && owner != 0 {
            grant_write(&ctmp, owner).map_err(|e| FollowError::FollowDir {
                dir: dir.to_path_buf(),
                source: io::Error::new(
                    e.kind(),
                    format!(
                        "cannot let the directory's owner (uid {owner}, ipta-ingest's user) write the FIFO \
                         through a POSIX ACL: {e}"
                    ),
                ),
            })?;
        }
        let fd = libc::open(ctmp.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW);
        if fd < 0 {
            return Err(dir_err(io::Error::last_os_error()));
        }
        let fd = OwnedFd::from_raw_fd(fd);
        if libc::rename(ctmp.as_ptr(), c.as_ptr()) != 0 {
            return Err(dir_err(io::Error::last_os_error()));
        }
        guard.0 = path;
        libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE);
        Ok((fd, guard))
    }
}

/// The temporary name of a FIFO being made (no viewer name: ipta-ingest ignores it).
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".tmp-");
    name.push(path.file_name().unwrap_or_default());
    path.with_file_name(name)
}

/// The `system.posix_acl_access` value `user::rw- user:<uid>:-w- group::--- mask::-w-
/// other::---` in the kernel's binary form (version 2, then (tag u16, perm u16, id u32) entries
/// in tag order, little-endian).
fn write_acl(uid: u32) -> [u8; 44] {
    const UNDEFINED: u32 = u32::MAX;
    let entries: [(u16, u16, u32); 5] = [
        (0x01, 6, UNDEFINED), // ACL_USER_OBJ: read and write
        (0x02, 2, uid),       // ACL_USER: write
        (0x04, 0, UNDEFINED), // ACL_GROUP_OBJ: nothing
        (0x10, 2, UNDEFINED), // ACL_MASK: at most write
        (0x20, 0, UNDEFINED), // ACL_OTHER: nothing
    ];
    let mut out = [0u8; 44];
    out[..4].copy_from_slice(&2u32.to_le_bytes());
    for (i, (tag, perm, id)) in entries.iter().enumerate() {
        let o = 4 + i * 8;
        out[o..o + 2].copy_from_slice(&tag.to_le_bytes());
        out[o + 2..o + 4].copy_from_slice(&perm.to_le_bytes());
        out[o + 4..o + 8].copy_from_slice(&id.to_le_bytes());
    }
    out
}

/// Lets user `uid` (and nobody else but the file's owner) write the file at `path`.
fn grant_write(path: &CString, uid: u32) -> io::Result<()> {
    let acl = write_acl(uid);
    // SAFETY: the name is a NUL-terminated literal and the value a live buffer of its length.
    let r = unsafe {
        libc::setxattr(path.as_ptr(), c"system.posix_acl_access".as_ptr(), acl.as_ptr().cast(), acl.len(), 0)
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_encoding_is_the_kernel_layout() {
        let a = write_acl(0x0102_0304);
        assert_eq!(&a[..4], &[2, 0, 0, 0]);
        // The named user entry: tag 2, perm 2 (write), the uid little-endian.
        assert_eq!(&a[12..20], &[2, 0, 2, 0, 4, 3, 2, 1]);
        // Tags in ascending order, as the kernel requires.
        let tags: Vec<u16> = (0..5).map(|i| u16::from_le_bytes([a[4 + i * 8], a[5 + i * 8]])).collect();
        assert_eq!(tags, [1, 2, 4, 0x10, 0x20]);
    }
}
