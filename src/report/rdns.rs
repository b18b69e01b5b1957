//! Reverse DNS for the analyzer (and later the follow display): names resolved concurrently
//! on background threads with `getnameinfo`, never blocking the caller longer than a timeout,
//! cached in memory and, when the table exists, in a database cache table with a TTL (the
//! original's `--dns-create-table`, `-dp/--dns-prune`, `--ttl`, `--dns-dump`).
//!
//! [`Resolver::lookup`] is the non-blocking primitive: it returns a cached answer or starts a
//! resolution and returns None. [`Resolver::resolve_all`] waits for a set of addresses (up to
//! the timeout) and reads/writes the database cache around it. Names are accepted only if they
//! look like host names: a PTR record is attacker-controlled text bound for a terminal.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::Value;

use crate::store::StoreError;

/// Default name of the DNS cache table.
pub const DEFAULT_CACHE_TABLE: &str = "ipta_dns";
const CACHE_COMMENT: &str = "ipta-dns";

/// How reverse DNS behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSettings {
    /// The cache table (used only if it exists); None disables the database cache.
    pub cache_table: Option<String>,
    /// How long a cached answer (a name or "no name") stays valid, in hours (`--ttl`).
    pub ttl_hours: u32,
    /// How long `resolve_all` waits for answers.
    pub timeout: Duration,
    /// At most this many resolutions run at once.
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

#[derive(Clone, Debug)]
enum Slot {
    Pending,
    /// The answer (None: no name) and when it was obtained.
    Done(Option<String>, Instant),
}

struct Inner {
    settings: DnsSettings,
    slots: Mutex<HashMap<IpAddr, Slot>>,
    /// Signalled whenever a resolution finishes.
    done: Condvar,
    running: Mutex<usize>,
}

/// A concurrent, caching reverse resolver. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

impl Resolver {
    pub fn new(settings: DnsSettings) -> Self {
        Resolver {
            inner: Arc::new(Inner {
                settings,
                slots: Mutex::new(HashMap::new()),
                done: Condvar::new(),
                running: Mutex::new(0),
            }),
        }
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.inner.settings.ttl_hours) * 3600)
    }

    /// The cached name of `ip`, or None while it is unknown (a resolution is then started in
    /// the background; ask again later). Never blocks on the network.
    pub fn lookup(&self, ip: IpAddr) -> Option<String> {
        let mut slots = self.inner.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.get(&ip) {
            Some(Slot::Done(name, at)) if at.elapsed() < self.ttl() => return name.clone(),
            Some(Slot::Pending) => return None,
            _ => {}
        }
        {
            let mut running = self.inner.running.lock().unwrap_or_else(|e| e.into_inner());
            if *running >= self.inner.settings.max_threads.max(1) {
                return None; // too many in flight: a later call starts it
            }
            *running += 1;
        }
        slots.insert(ip, Slot::Pending);
        drop(slots);
        let inner = Arc::clone(&self.inner);
        let spawned = std::thread::Builder::new().name("ipta-rdns".into()).spawn(move || {
            let name = reverse(ip);
            inner
                .slots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(ip, Slot::Done(name, Instant::now()));
            *inner.running.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
            inner.done.notify_all();
        });
        if spawned.is_err() {
            *self.inner.running.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
            self.inner.slots.lock().unwrap_or_else(|e| e.into_inner()).remove(&ip);
        }
        None
    }

    /// Seeds the memory cache (e.g. from the database cache).
    pub fn seed(&self, ip: IpAddr, name: Option<String>) {
        self.inner
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ip, Slot::Done(name, Instant::now()));
    }

    /// Names of `ips` (those that have one), waiting at most the timeout. With a connection,
    /// fresh entries of the cache table are used first and new answers are stored there.
    pub fn resolve_all(&self, ips: &[IpAddr], mut conn: Option<&mut mysql::Conn>) -> HashMap<IpAddr, String> {
        let table = self.inner.settings.cache_table.clone();
        let mut from_db: HashMap<IpAddr, Option<String>> = HashMap::new();
        if let (Some(c), Some(t)) = (conn.as_deref_mut(), table.as_deref()) {
            if let Ok(m) = load(c, t, ips, self.inner.settings.ttl_hours) {
                from_db = m;
            }
        }
        for (ip, n) in &from_db {
            self.seed(*ip, n.clone());
        }
        let deadline = Instant::now() + self.inner.settings.timeout;
        loop {
            let mut pending = false;
            for ip in ips {
                if self.lookup(*ip).is_none() && !self.is_done(*ip) {
                    pending = true;
                }
            }
            let now = Instant::now();
            if !pending || now >= deadline {
                break;
            }
            let slots = self.inner.slots.lock().unwrap_or_else(|e| e.into_inner());
            let _ = self
                .inner
                .done
                .wait_timeout(slots, (deadline - now).min(Duration::from_millis(50)));
        }
        let mut out = HashMap::new();
        let mut fresh: Vec<(IpAddr, Option<String>)> = Vec::new();
        {
            let slots = self.inner.slots.lock().unwrap_or_else(|e| e.into_inner());
            for ip in ips {
                if let Some(Slot::Done(name, _)) = slots.get(ip) {
                    if let Some(n) = name {
                        out.insert(*ip, n.clone());
                    }
                    if !from_db.contains_key(ip) {
                        fresh.push((*ip, name.clone()));
                    }
                }
            }
        }
        if let (Some(c), Some(t)) = (conn, table.as_deref()) {
            let _ = store(c, t, &fresh);
        }
        out
    }

    fn is_done(&self, ip: IpAddr) -> bool {
        matches!(
            self.inner.slots.lock().unwrap_or_else(|e| e.into_inner()).get(&ip),
            Some(Slot::Done(..))
        )
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

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
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
        let a = super::render::addr_of(&ip).map(|a| a.to_string()).unwrap_or_default();
        let at = super::query::value_ts(Some(&at)).map(super::query::render_time).unwrap_or_default();
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
    p.extend(ips.iter().map(|i| Value::Bytes(ip_bytes(i))));
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
        if let Some(a) = super::render::addr_of(&ip) {
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
        p.push(Value::Bytes(ip_bytes(ip)));
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
        assert!(!plausible_name(""));
    }

    #[test]
    fn lookup_does_not_block_and_answers_later() {
        let r = Resolver::new(DnsSettings { cache_table: None, ..Default::default() });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t = Instant::now();
        let _ = r.lookup(ip);
        assert!(t.elapsed() < Duration::from_millis(200));
        // resolve_all waits (bounded) for the answer; localhost has a name on any machine with
        // /etc/hosts, but the test only requires the call to finish within the timeout.
        let t = Instant::now();
        let _ = r.resolve_all(&[ip], None);
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(r.is_done(ip) || t.elapsed() >= Duration::from_secs(2));
    }

    #[test]
    fn seeded_answers_are_returned() {
        let r = Resolver::new(DnsSettings { cache_table: None, ..Default::default() });
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        r.seed(ip, Some("seven.example".into()));
        assert_eq!(r.lookup(ip).as_deref(), Some("seven.example"));
    }
}
