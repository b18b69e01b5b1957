//! Reverse DNS, for the analyzer and the live display alike: a cache in front of a pool of
//! resolver threads (`getnameinfo`), so that a slow or dead resolver never holds the caller
//! longer than its deadline. A lookup that misses its deadline keeps running, and later calls
//! get the name once it is known. Answers (names and failures alike) are kept for the TTL; the
//! memory cache is bounded. For the analyzer, a database cache table with the same TTL sits in
//! front (the original's `--dns-create-table`, `-dp/--dns-prune`, `--ttl`, `--dns-dump`).
//!
//! [`Resolver::request`] starts a lookup and never blocks; [`Resolver::name`] waits for one
//! until a deadline; [`Resolver::resolve_all`] does both for a set of addresses and reads and
//! writes the database cache around it. Names are accepted only if they look like host names:
//! a PTR record is attacker-controlled text bound for a terminal or a web page.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::Value;

use crate::store::value::{addr_of, addr_value, value_ts};
use crate::store::StoreError;

/// Default name of the DNS cache table.
pub const DEFAULT_CACHE_TABLE: &str = "ipta_dns";
const CACHE_COMMENT: &str = "ipta-dns";
/// At most this many answers are kept in memory; when full, the answers are forgotten (the
/// lookups still running are kept).
const MAX_ENTRIES: usize = 20_000;

/// How reverse DNS behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSettings {
    /// The cache table (used only if it exists); None disables the database cache.
    pub cache_table: Option<String>,
    /// How long a cached answer (a name or "no name") stays valid, in hours (`--ttl`).
    pub ttl_hours: u32,
    /// How long `resolve_all` waits for answers.
    pub timeout: Duration,
    /// Resolver threads: at most this many lookups run at once.
    pub max_threads: usize,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            cache_table: Some(DEFAULT_CACHE_TABLE.into()),
            ttl_hours: 24,
            timeout: Duration::from_secs(2),
            max_threads: 16,
        }
    }
}

impl DnsSettings {
    /// The live display's: no database, answers kept an hour, four threads (a display shows a
    /// handful of new addresses a second; the deadline per line bounds the wait, not this).
    pub fn live() -> Self {
        DnsSettings { cache_table: None, ttl_hours: 1, timeout: Duration::from_secs(2), max_threads: 4 }
    }
}

enum Entry {
    Pending,
    /// The answer (None: no name) and when it expires.
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

/// The function that turns an address into a name ([`reverse`]; replaceable in tests).
pub type LookupFn = fn(IpAddr) -> Option<String>;

/// A pool of resolver threads with a shared cache. Dropping it lets the threads end once their
/// current lookup returns (nobody waits for them).
pub struct Resolver {
    inner: Arc<Inner>,
    settings: DnsSettings,
}

impl Resolver {
    pub fn new(settings: DnsSettings) -> Self {
        Self::with_lookup(settings, reverse)
    }

    pub fn with_lookup(settings: DnsSettings, lookup: LookupFn) -> Self {
        let inner = Arc::new(Inner {
            state: Mutex::new(State { cache: HashMap::new(), queue: VecDeque::new(), stop: false }),
            done: Condvar::new(),
            work: Condvar::new(),
        });
        let ttl = Duration::from_secs(u64::from(settings.ttl_hours) * 3600);
        for i in 0..settings.max_threads.max(1) {
            let inner = inner.clone();
            let _ = std::thread::Builder::new()
                .name(format!("ipta-rdns-{i}"))
                .spawn(move || worker(&inner, lookup, ttl));
        }
        Resolver { inner, settings }
    }

    /// Starts a lookup unless the answer is cached or already on its way. Never blocks on DNS.
    pub fn request(&self, ip: IpAddr) {
        let mut st = lock(&self.inner.state);
        let fresh = match st.cache.get(&ip) {
            Some(Entry::Pending) => true,
            Some(Entry::Done(_, exp)) => *exp > Instant::now(),
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
        self.answer(ip, deadline).flatten()
    }

    /// The answer for `ip` once known (`Some(None)`: it has no name), None while unknown at
    /// `deadline`.
    fn answer(&self, ip: IpAddr, deadline: Instant) -> Option<Option<Arc<str>>> {
        let mut st = lock(&self.inner.state);
        loop {
            match st.cache.get(&ip) {
                Some(Entry::Done(n, _)) => return Some(n.clone()),
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

    /// Seeds the memory cache (from the database cache).
    pub fn seed(&self, ip: IpAddr, name: Option<String>) {
        let ttl = Duration::from_secs(u64::from(self.settings.ttl_hours) * 3600);
        lock(&self.inner.state).cache.insert(ip, Entry::Done(name.map(Arc::from), Instant::now() + ttl));
    }

    /// Names of `ips` (those that have one), waiting at most the timeout. With a connection,
    /// fresh entries of the cache table are used first and new answers are stored there.
    pub fn resolve_all(&self, ips: &[IpAddr], mut conn: Option<&mut mysql::Conn>) -> HashMap<IpAddr, String> {
        let table = self.settings.cache_table.as_deref();
        let mut from_db: HashMap<IpAddr, Option<String>> = HashMap::new();
        if let (Some(c), Some(t)) = (conn.as_deref_mut(), table) {
            if let Ok(m) = load(c, t, ips, self.settings.ttl_hours) {
                from_db = m;
            }
        }
        for (ip, n) in &from_db {
            self.seed(*ip, n.clone());
        }
        for ip in ips {
            self.request(*ip);
        }
        let deadline = Instant::now() + self.settings.timeout;
        let mut out = HashMap::new();
        let mut fresh: Vec<(IpAddr, Option<String>)> = Vec::new();
        for ip in ips {
            if let Some(name) = self.answer(*ip, deadline) {
                let name = name.map(|n| n.to_string());
                if let Some(n) = &name {
                    out.insert(*ip, n.clone());
                }
                if !from_db.contains_key(ip) {
                    fresh.push((*ip, name));
                }
            }
        }
        if let (Some(c), Some(t)) = (conn, table) {
            let _ = store(c, t, &fresh);
        }
        out
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        lock(&self.inner.state).stop = true;
        self.inner.work.notify_all();
    }
}

fn worker(inner: &Inner, lookup: LookupFn, ttl: Duration) {
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
        lock(&inner.state).cache.insert(ip, Entry::Done(name, Instant::now() + ttl));
        inner.done.notify_all();
    }
}

/// Whether a PTR answer looks like a host name (letters, digits, `-`, `_`, `.`).
fn plausible_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// One blocking reverse lookup with `getnameinfo(NI_NAMEREQD)`.
pub fn reverse(ip: IpAddr) -> Option<String> {
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: the sockaddr structures are zero-initialised plain C structs filled with valid
    // values, their sizes are passed alongside, and `host` is a writable buffer of the given
    // length that getnameinfo NUL-terminates on success.
    let rc = unsafe {
        match ip {
            IpAddr::V4(a) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
                libc::getnameinfo(
                    &sa as *const libc::sockaddr_in as *const libc::sockaddr,
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
                    &sa as *const libc::sockaddr_in6 as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    std::ptr::null_mut(),
                    0,
                    libc::NI_NAMEREQD,
                )
            }
        }
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success getnameinfo wrote a NUL-terminated string into `host`.
    let s = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    let s = s.to_str().ok()?;
    plausible_name(s).then(|| s.to_string())
}

fn sql_err(e: mysql::Error) -> StoreError {
    crate::store::map_err(e, "")
}

/// `--dns-create-table`: creates the cache table.
pub fn create_table(conn: &mut mysql::Conn, table: &str) -> Result<(), StoreError> {
    crate::store::validate_identifier(table)?;
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS `{table}` (`ip` VARBINARY(16) NOT NULL PRIMARY KEY, \
         `name` VARCHAR(255) NULL, `resolved_at` DATETIME NOT NULL, KEY `k_at` (`resolved_at`)) \
         ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='{CACHE_COMMENT}'"
    ))
    .map_err(sql_err)
}

/// `-dp/--dns-prune`: deletes entries older than the TTL; returns how many.
pub fn prune(conn: &mut mysql::Conn, table: &str, ttl_hours: u32) -> Result<u64, StoreError> {
    crate::store::validate_identifier(table)?;
    conn.exec_drop(
        format!("DELETE FROM `{table}` WHERE `resolved_at` < UTC_TIMESTAMP() - INTERVAL ? HOUR"),
        (ttl_hours,),
    )
    .map_err(sql_err)?;
    Ok(conn.affected_rows())
}

/// `--dns-dump`: prints the cache (address, name or `-`, time resolved, UTC).
pub fn dump(conn: &mut mysql::Conn, table: &str, out: &mut dyn Write) -> Result<(), StoreError> {
    crate::store::validate_identifier(table)?;
    let rows: Vec<(Vec<u8>, Option<String>, mysql::Value)> = conn
        .query(format!("SELECT `ip`, `name`, `resolved_at` FROM `{table}` ORDER BY `ip`"))
        .map_err(sql_err)?;
    for (ip, name, at) in rows {
        let a = addr_of(&ip).map(|a| a.to_string()).unwrap_or_default();
        let at = value_ts(Some(&at)).map(super::query::render_time).unwrap_or_default();
        writeln!(out, "{a}\t{}\t{at}", name.as_deref().unwrap_or("-"))
            .map_err(|e| StoreError::Sql(e.to_string()))?;
    }
    Ok(())
}

/// Fresh cache entries for `ips`; an error (e.g. no cache table) means "nothing cached".
fn load(
    conn: &mut mysql::Conn,
    table: &str,
    ips: &[IpAddr],
    ttl_hours: u32,
) -> Result<HashMap<IpAddr, Option<String>>, StoreError> {
    let mut out = HashMap::new();
    crate::store::validate_identifier(table)?;
    if ips.is_empty() {
        return Ok(out);
    }
    let marks = vec!["?"; ips.len()].join(",");
    let mut p: Vec<Value> = vec![Value::UInt(u64::from(ttl_hours))];
    p.extend(ips.iter().map(|i| addr_value(*i)));
    let rows: Vec<(Vec<u8>, Option<String>)> = conn
        .exec(
            format!(
                "SELECT `ip`, `name` FROM `{table}` WHERE `resolved_at` >= UTC_TIMESTAMP() - INTERVAL ? HOUR \
                 AND `ip` IN ({marks})"
            ),
            p,
        )
        .map_err(sql_err)?;
    for (ip, name) in rows {
        if let Some(a) = addr_of(&ip) {
            out.insert(a, name.filter(|n| plausible_name(n)));
        }
    }
    Ok(out)
}

fn store(conn: &mut mysql::Conn, table: &str, entries: &[(IpAddr, Option<String>)]) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let marks = vec!["(?,?,UTC_TIMESTAMP())"; entries.len()].join(",");
    let mut p = Vec::with_capacity(entries.len() * 2);
    for (ip, n) in entries {
        p.push(addr_value(*ip));
        p.push(n.as_ref().map(|n| Value::Bytes(n.as_bytes().to_vec())).unwrap_or(Value::NULL));
    }
    conn.exec_drop(
        format!(
            "INSERT INTO `{table}` (`ip`, `name`, `resolved_at`) VALUES {marks} ON DUPLICATE KEY UPDATE \
             `name` = VALUES(`name`), `resolved_at` = VALUES(`resolved_at`)"
        ),
        p,
    )
    .map_err(sql_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(plausible_name("host-1.example.org"));
        assert!(!plausible_name("evil\x1b[31m.example"));
        assert!(plausible_name("_spf.example."));
        assert!(!plausible_name(""));
        assert!(!plausible_name("a b"));
        assert!(!plausible_name(&"a".repeat(254)));
    }

    fn slow(ip: IpAddr) -> Option<String> {
        if ip == IpAddr::from([192, 0, 2, 1]) {
            std::thread::sleep(Duration::from_millis(600));
            Some("slow.example".into())
        } else {
            Some(format!("h-{ip}.example"))
        }
    }

    fn memory_only() -> DnsSettings {
        DnsSettings { cache_table: None, ..DnsSettings::live() }
    }

    #[test]
    fn slow_lookup_never_holds_longer_than_deadline() {
        let r = Resolver::with_lookup(memory_only(), slow);
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

    #[test]
    fn resolve_all_waits_at_most_the_timeout() {
        let settings = DnsSettings { timeout: Duration::from_millis(200), ..memory_only() };
        let r = Resolver::with_lookup(settings, slow);
        let t = Instant::now();
        let names = r.resolve_all(&[IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 3])], None);
        assert!(t.elapsed() < Duration::from_millis(500));
        assert_eq!(names.len(), 1);
        assert_eq!(names[&IpAddr::from([192, 0, 2, 3])], "h-192.0.2.3.example");
    }

    #[test]
    fn seeded_answers_are_returned() {
        let r = Resolver::with_lookup(memory_only(), |_| None);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        r.seed(ip, Some("seven.example".into()));
        r.request(ip);
        assert_eq!(r.name(ip, Instant::now()).as_deref(), Some("seven.example"));
    }
}
