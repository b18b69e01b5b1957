//! Reverse DNS for the live display: a cache in front of a few resolver threads, so that a slow
//! or dead resolver never holds a line back longer than the caller's deadline. A lookup that
//! misses its deadline keeps running; later lines from the same address get the name once it is
//! known. Answers (names and failures alike) are kept for an hour; the cache is bounded.

use std::collections::{HashMap, VecDeque};
use std::ffi::CStr;
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const WORKERS: usize = 4;
const TTL: Duration = Duration::from_secs(3600);
const MAX_ENTRIES: usize = 20_000;

enum Entry {
    Pending,
    Done(Option<Arc<str>>, Instant),
}

struct State {
    cache: HashMap<IpAddr, Entry>,
    queue: VecDeque<IpAddr>,
    stop: bool,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled when a lookup completes.
    done: Condvar,
    /// Signalled when work is queued.
    work: Condvar,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A pool of resolver threads with a shared cache. Dropping it lets the threads end once their
/// current lookup returns (nobody waits for them).
pub struct Resolver {
    inner: Arc<Inner>,
}

/// The function that turns an address into a name (getnameinfo; replaceable in tests).
pub type LookupFn = fn(IpAddr) -> Option<String>;

impl Resolver {
    pub fn new() -> Self {
        Self::with_lookup(system_lookup)
    }

    pub fn with_lookup(lookup: LookupFn) -> Self {
        let inner = Arc::new(Inner {
            state: Mutex::new(State { cache: HashMap::new(), queue: VecDeque::new(), stop: false }),
            done: Condvar::new(),
            work: Condvar::new(),
        });
        for i in 0..WORKERS {
            let inner = inner.clone();
            let _ = std::thread::Builder::new()
                .name(format!("ipta-rdns-{i}"))
                .spawn(move || worker(&inner, lookup));
        }
        Resolver { inner }
    }

    /// Starts a lookup unless the answer is cached or already on its way. Never blocks on DNS.
    pub fn request(&self, ip: IpAddr) {
        let mut st = lock(&self.inner.state);
        let now = Instant::now();
        let fresh = match st.cache.get(&ip) {
            Some(Entry::Pending) => true,
            Some(Entry::Done(_, exp)) => *exp > now,
            None => false,
        };
        if fresh {
            return;
        }
        if st.cache.len() >= MAX_ENTRIES {
            st.cache.retain(|_, e| matches!(e, Entry::Pending));
        }
        st.cache.insert(ip, Entry::Pending);
        st.queue.push_back(ip);
        drop(st);
        self.inner.work.notify_one();
    }

    /// The name of `ip`, waiting for a pending lookup at most until `deadline`. None: no name
    /// (yet). Call `request` first.
    pub fn name(&self, ip: IpAddr, deadline: Instant) -> Option<Arc<str>> {
        let mut st = lock(&self.inner.state);
        loop {
            match st.cache.get(&ip) {
                Some(Entry::Done(n, _)) => return n.clone(),
                Some(Entry::Pending) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return None;
                    }
                    st = self
                        .inner
                        .done
                        .wait_timeout(st, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                None => return None,
            }
        }
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        lock(&self.inner.state).stop = true;
        self.inner.work.notify_all();
    }
}

fn worker(inner: &Inner, lookup: LookupFn) {
    loop {
        let ip = {
            let mut st = lock(&inner.state);
            loop {
                if st.stop {
                    return;
                }
                if let Some(ip) = st.queue.pop_front() {
                    break ip;
                }
                st = inner.work.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        };
        let name = lookup(ip).map(Arc::from);
        let mut st = lock(&inner.state);
        st.cache.insert(ip, Entry::Done(name, Instant::now() + TTL));
        drop(st);
        inner.done.notify_all();
    }
}

/// getnameinfo(NI_NAMEREQD): the PTR name, or None.
pub fn system_lookup(ip: IpAddr) -> Option<String> {
    // SAFETY: the sockaddr structs are zero-initialised plain C data, filled field by field, and
    // passed with their exact size; host is a writable buffer of the size given.
    unsafe {
        let mut host = [0 as libc::c_char; 1025];
        let rc = match ip {
            IpAddr::V4(a) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
                libc::getnameinfo(
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    std::ptr::null_mut(),
                    0,
                    libc::NI_NAMEREQD,
                )
            }
            IpAddr::V6(a) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_addr.s6_addr = a.octets();
                libc::getnameinfo(
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    std::ptr::null_mut(),
                    0,
                    libc::NI_NAMEREQD,
                )
            }
        };
        if rc != 0 {
            return None;
        }
        let s = CStr::from_ptr(host.as_ptr()).to_str().ok()?;
        plausible_host_name(s).then(|| s.to_string())
    }
}

/// A PTR answer is text chosen by whoever owns the address: keep only what looks like a host
/// name (letters, digits, `-`, `_`, `.`), at most 253 bytes.
pub fn plausible_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_host_names_are_kept() {
        assert!(plausible_host_name("mail-1.example.org"));
        assert!(plausible_host_name("_spf.example."));
        assert!(!plausible_host_name(""));
        assert!(!plausible_host_name("a\x1b[31m.example"));
        assert!(!plausible_host_name("a b"));
    }

    fn slow(ip: IpAddr) -> Option<String> {
        if ip == IpAddr::from([192, 0, 2, 1]) {
            std::thread::sleep(Duration::from_millis(600));
            Some("slow.example".into())
        } else {
            Some(format!("h-{ip}.example"))
        }
    }

    #[test]
    fn slow_lookup_never_holds_longer_than_deadline() {
        let r = Resolver::with_lookup(slow);
        let slow_ip = IpAddr::from([192, 0, 2, 1]);
        let fast_ip = IpAddr::from([192, 0, 2, 2]);
        r.request(slow_ip);
        r.request(fast_ip);
        let t = Instant::now();
        assert_eq!(r.name(slow_ip, t + Duration::from_millis(100)), None);
        assert!(t.elapsed() < Duration::from_millis(400));
        assert_eq!(r.name(fast_ip, Instant::now() + Duration::from_secs(2)).as_deref(), Some("h-192.0.2.2.example"));
        // Later the slow answer arrives and is cached.
        assert_eq!(r.name(slow_ip, Instant::now() + Duration::from_secs(3)).as_deref(), Some("slow.example"));
        r.request(slow_ip);
        let t = Instant::now();
        assert_eq!(r.name(slow_ip, t + Duration::from_secs(3)).as_deref(), Some("slow.example"));
        assert!(t.elapsed() < Duration::from_millis(100));
    }
}
