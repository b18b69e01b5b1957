//! Reading stdin so that timers and signals are never stuck behind a blocking read.
//!
//! rsyslog may leave stdin silent for hours; meanwhile a partly filled batch must still be
//! flushed after `--flush-ms`, and SIGTERM, SIGHUP and SIGUSR1 must be acted on at once. The
//! signal handlers of signal-hook restart interrupted system calls (SA_RESTART), so a plain
//! `read` would sleep through them. [`PollStdin`] therefore `poll`s stdin together with a
//! self-pipe that the signal handlers write to, with the next timer as the timeout, and reports
//! "nothing yet" as an `io::ErrorKind::TimedOut` error. `BufRead::read_until` keeps the bytes of
//! a partial line it has already consumed when it returns that error, so the caller simply calls
//! it again with the same buffer. When there is nothing to wait for, the poll has no timeout:
//! an idle ipta-ingest uses no CPU at all.
//!
//! Lines are read with [`read_line_capped`], not `read_until`: a sender that never writes a
//! newline (`head -c 2G /dev/zero | ipta-ingest`) must not make the line buffer grow without
//! bound. Only the first `cap + 1` bytes of a line are kept, enough for the parser to reject it
//! as too long; the rest is read and thrown away.

use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads one line into `buf` (without its `\n`), keeping at most `cap + 1` bytes of it: a
/// longer line arrives cut to `cap + 1` bytes, which the parser rejects as too long (its own
/// limit is `cap`). Returns `Ok(false)` at end of input with nothing pending.
///
/// Like `read_until`, an error (the `TimedOut` of [`PollStdin`]) leaves the part read so far in
/// `buf`, and `seen` (bytes of the current line consumed, kept by the caller, 0 between lines)
/// remembers that a line is under way even when all of it was thrown away: call again with the
/// same `buf` and `seen` to go on.
pub fn read_line_capped<R: BufRead + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
    seen: &mut u64,
) -> io::Result<bool> {
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            let pending = *seen > 0;
            *seen = 0;
            return Ok(pending);
        }
        let (part, used, end) = match memchr::memchr(b'\n', avail) {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        let room = (cap + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&part[..part.len().min(room)]);
        *seen += used as u64;
        r.consume(used);
        if end {
            *seen = 0;
            return Ok(true);
        }
    }
}

/// A line source that can be told when the caller next needs control back.
pub trait LineSource: BufRead {
    /// The caller wants a `TimedOut` error from a read that would still be waiting at `at`.
    fn set_wake(&mut self, _at: Option<Instant>) {}
}

impl LineSource for &[u8] {}
impl<T: AsRef<[u8]>> LineSource for io::Cursor<T> {}
impl<R: Read> LineSource for BufReader<R> {}

/// The signal flags the session acts on.
#[derive(Clone, Debug, Default)]
pub struct Control {
    /// SIGTERM or SIGINT: flush and exit.
    pub term: Arc<AtomicBool>,
    /// SIGHUP: reopen the rejects file.
    pub hup: Arc<AtomicBool>,
    /// SIGUSR1: print the counters.
    pub usr1: Arc<AtomicBool>,
    /// When the first SIGTERM/SIGINT arrived (CLOCK_MONOTONIC, ns; 0: not yet). The session
    /// may notice the flag only after a wait of up to a keep-alive period, and rsyslog's
    /// close timeout runs from the signal, not from when it is noticed.
    pub term_at: Arc<AtomicU64>,
}

/// CLOCK_MONOTONIC in nanoseconds (the clock `Instant` uses on Linux); async-signal-safe.
fn monotonic_ns() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64)
}

impl Control {
    /// How long ago the stop signal arrived (zero when it has not, or was set by hand).
    pub fn since_term(&self) -> Duration {
        match self.term_at.load(Ordering::SeqCst) {
            0 => Duration::ZERO,
            at => Duration::from_nanos(monotonic_ns().saturating_sub(at)),
        }
    }
}

/// The installed signal handlers: flags plus the read end of the self-pipe.
pub struct Signals {
    pub control: Control,
    wake_rx: UnixStream,
}

impl Signals {
    /// Installs handlers for SIGTERM, SIGINT, SIGHUP and SIGUSR1.
    pub fn install() -> io::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
        let control = Control::default();
        let (wake_rx, wake_tx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        // Flags first: handlers run in registration order, so the flag is set before the
        // wake-up byte makes the poll return.
        signal_hook::flag::register(SIGTERM, control.term.clone())?;
        signal_hook::flag::register(SIGINT, control.term.clone())?;
        signal_hook::flag::register(SIGHUP, control.hup.clone())?;
        signal_hook::flag::register(SIGUSR1, control.usr1.clone())?;
        for sig in [SIGTERM, SIGINT] {
            let at = control.term_at.clone();
            // SAFETY: the handler only reads the clock and does one atomic store, both
            // async-signal-safe.
            unsafe {
                signal_hook::low_level::register(sig, move || {
                    let _ = at.compare_exchange(0, monotonic_ns(), Ordering::SeqCst, Ordering::SeqCst);
                })?;
            }
        }
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGUSR1] {
            signal_hook::low_level::pipe::register(sig, wake_tx.try_clone()?)?;
        }
        Ok(Signals { control, wake_rx })
    }

    pub fn wake_fd(&self) -> RawFd {
        self.wake_rx.as_raw_fd()
    }
}

/// Stdin read through `poll` (see the module comment).
pub struct PollStdin {
    fd: RawFd,
    wake_fd: Option<RawFd>,
    wake: Option<Instant>,
}

impl PollStdin {
    /// `wake_fd`: the self-pipe of [`Signals`], or None.
    pub fn new(wake_fd: Option<RawFd>) -> Self {
        PollStdin { fd: 0, wake_fd, wake: None }
    }

    fn drain_wake(&self) {
        if let Some(fd) = self.wake_fd {
            let mut junk = [0u8; 64];
            // Non-blocking: stops at EAGAIN.
            while unsafe { libc::read(fd, junk.as_mut_ptr().cast(), junk.len()) } > 0 {}
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::from(io::ErrorKind::TimedOut)
}

impl Read for PollStdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let timeout: libc::c_int = match self.wake {
            None => -1,
            Some(t) => {
                let d = t.saturating_duration_since(Instant::now());
                // Round up so a timer never fires early and spins on a zero timeout.
                d.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
            }
        };
        let mut fds = [
            libc::pollfd { fd: self.fd, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: self.wake_fd.unwrap_or(-1), events: libc::POLLIN, revents: 0 },
        ];
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return Err(if e.kind() == io::ErrorKind::Interrupted { timed_out() } else { e });
        }
        if fds[1].revents != 0 {
            self.drain_wake();
            return Err(timed_out());
        }
        if n == 0 || fds[0].revents == 0 {
            return Err(timed_out());
        }
        let r = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(if e.kind() == io::ErrorKind::Interrupted { timed_out() } else { e });
        }
        Ok(r as usize)
    }
}

/// Buffered stdin as a [`LineSource`].
pub struct StdinSource {
    inner: BufReader<PollStdin>,
}

impl StdinSource {
    pub fn new(wake_fd: Option<RawFd>) -> Self {
        StdinSource { inner: BufReader::with_capacity(64 * 1024, PollStdin::new(wake_fd)) }
    }
}

impl Read for StdinSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl BufRead for StdinSource {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt)
    }
}

impl LineSource for StdinSource {
    fn set_wake(&mut self, at: Option<Instant>) {
        self.inner.get_mut().wake = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes `step` at a time and fails with `TimedOut` between the steps, as
    /// [`PollStdin`] does when a timer is due in the middle of a line.
    struct Stutter {
        data: Vec<u8>,
        pos: usize,
        step: usize,
        pause: bool,
    }
    impl Read for Stutter {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.pause = !self.pause;
            if self.pause && self.pos < self.data.len() {
                return Err(timed_out());
            }
            let n = b.len().min(self.step).min(self.data.len() - self.pos);
            b[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn lines(data: &[u8], cap: usize, step: usize) -> (Vec<Vec<u8>>, usize) {
        let mut r = BufReader::with_capacity(16, Stutter { data: data.to_vec(), pos: 0, step, pause: false });
        let (mut buf, mut seen, mut out, mut most) = (Vec::new(), 0u64, Vec::new(), 0);
        loop {
            match read_line_capped(&mut r, &mut buf, cap, &mut seen) {
                Ok(true) => {
                    most = most.max(buf.capacity());
                    out.push(std::mem::take(&mut buf));
                }
                Ok(false) => return (out, most),
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
            }
            most = most.max(buf.capacity());
        }
    }

    #[test]
    fn lines_come_whole_across_timeouts() {
        let (l, _) = lines(b"one\n\ntwo three\nlast", 100, 3);
        assert_eq!(l, vec![b"one".to_vec(), vec![], b"two three".to_vec(), b"last".to_vec()]);
    }

    #[test]
    fn long_lines_are_cut_to_cap_plus_one_and_the_next_line_is_intact() {
        let mut data = vec![0u8; 10_000];
        data.extend_from_slice(b"\nok\n");
        data.extend_from_slice(&[b'x'; 5000]); // no newline at the end either
        let (l, most) = lines(&data, 64, 7);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0], vec![0u8; 65]);
        assert_eq!(l[1], b"ok");
        assert_eq!(l[2], vec![b'x'; 65]);
        assert!(most <= 256, "the buffer stayed small: {most}");
    }
}
