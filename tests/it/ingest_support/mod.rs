//! Helpers of the ipta-ingest integration tests: a driver that plays rsyslog's part on the
//! child's stdin/stdout, generated log lines, and a private MariaDB server that a test may stop
//! and start (the shared server is never touched); [`rsyslog`]: a real rsyslogd running the
//! shipped snippets.

pub mod rsyslog;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use ipta::config::DbSettings;

/// A realistic line as rsyslog's template renders it; `i` makes it unique.
pub fn line(i: u32) -> String {
    let stamp = format!("2026-11-25T09:{:02}:{:02}.{:06}+00:00", (i / 60) % 60, i % 60, i % 1_000_000);
    let src = format!("203.0.113.{}", i % 250 + 1);
    crate::util::Syn { stamp: &stamp, src: &src, spt: 1024 + i % 60000, id: i % 65536, ..Default::default() }.line()
}

/// A running ipta-ingest with rsyslog's side of the pipes.
pub struct Ingest {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: BufReader<ChildStdout>,
    pub stderr_path: PathBuf,
    _dir: tempfile::TempDir,
    /// Dropping it cancels the watchdog that kills a hung child after a minute, so a broken
    /// build fails the test instead of hanging it.
    _watchdog: std::sync::mpsc::Sender<()>,
}

/// The database flags for `s` (the password travels in the environment, never in argv).
pub fn db_args(s: &DbSettings) -> Vec<String> {
    let mut a = vec![
        "-u".to_string(),
        s.user.clone(),
        "-d".into(),
        s.database.clone(),
        "-t".into(),
        s.table.clone(),
    ];
    if let Some(sock) = &s.socket {
        a.push("--db-socket".into());
        a.push(sock.to_string_lossy().into_owned());
    }
    a
}

impl Ingest {
    pub fn start(s: &DbSettings, extra: &[&str]) -> Ingest {
        let dir = tempfile::tempdir().unwrap();
        let stderr_path = dir.path().join("stderr");
        let err = std::fs::File::create(&stderr_path).unwrap();
        let mut child = Command::new(crate::util::bin("ipta-ingest"))
            .args(db_args(s))
            .args(extra)
            .env("IPTA_DB_PASS", &s.password)
            // Never the machine's /etc/ipta.conf: only what the test gives.
            .env("IPTA_SYSTEM_CONFIG", dir.path().join("no-system-ipta.conf"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn ipta-ingest");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let pid = child.id() as i32;
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(Duration::from_secs(60))
            {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        });
        Ingest { child, stdin, stdout, stderr_path, _dir: dir, _watchdog: tx }
    }

    pub fn send(&mut self, line: &str) {
        let w = self.stdin.as_mut().expect("stdin open");
        w.write_all(line.as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
    }

    pub fn flush(&mut self) {
        self.stdin.as_mut().unwrap().flush().unwrap();
    }

    /// The next reply line, keep-alive dots removed (as rsyslog does).
    pub fn reply(&mut self) -> String {
        self.reply_counting_dots().0
    }

    pub fn reply_counting_dots(&mut self) -> (String, usize) {
        let mut l = String::new();
        let n = self.stdout.read_line(&mut l).unwrap();
        assert!(n > 0, "ipta-ingest closed stdout; stderr: {}", self.stderr());
        let dots = l.chars().take_while(|c| *c == '.').count();
        (l[dots..].trim_end_matches('\n').to_string(), dots)
    }

    /// Sends a line and checks the reply.
    pub fn expect(&mut self, line: &str, reply: &str) {
        self.send(line);
        self.flush();
        let r = self.reply();
        assert_eq!(r, reply, "reply to {line:?}; stderr: {}", self.stderr());
    }

    /// A whole transaction as rsyslog sends it; returns the reply to COMMIT.
    pub fn transaction(&mut self, lines: &[String]) -> String {
        self.expect("BEGIN TRANSACTION", "OK");
        for l in lines {
            self.expect(l, "DEFER_COMMIT");
        }
        self.send("COMMIT TRANSACTION");
        self.flush();
        self.reply()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Closes stdin (rsyslog's way of stopping it) and waits for the exit status.
    pub fn close(mut self, timeout: Duration) -> (i32, String) {
        drop(self.stdin.take());
        self.wait(timeout)
    }

    pub fn wait(mut self, timeout: Duration) -> (i32, String) {
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Drain stdout so nothing is left unread.
                let mut rest = String::new();
                let _ = self.stdout.read_to_string(&mut rest);
                return (st.code().unwrap_or(-1), self.stderr());
            }
            if t.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("ipta-ingest did not exit within {timeout:?}; stderr: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn count(s: &DbSettings) -> u64 {
    use mysql::prelude::Queryable;
    let mut c = ipta::store::connect(s).expect("connect");
    match c.query_first(format!("SELECT COUNT(*) FROM `{}`", s.table)) {
        Ok(n) => n.unwrap_or(0),
        // ipta-ingest creates the table when it first connects.
        Err(mysql::Error::MySqlError(e)) if e.code == 1146 => 0,
        Err(e) => panic!("count: {e}"),
    }
}

/// Polls until the table has `n` rows or the timeout passes; returns the last count.
pub fn wait_count(s: &DbSettings, n: u64, timeout: Duration) -> u64 {
    let t = Instant::now();
    loop {
        let c = count(s);
        if c == n || t.elapsed() > timeout {
            return c;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A MariaDB server of the test's own in a temporary directory, on its own socket.
pub struct PrivateServer {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateServer {
    /// Initialises the data directory (root without password over the socket).
    pub fn new() -> PrivateServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // Its own temporary directory: the bootstrap's temporary tables in the shared /tmp were
        // seen to vanish under it while other servers started at the same time.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--auth-root-authentication-method=normal"])
            .arg("--skip-test-db")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .output()
            .expect("run mariadb-install-db");
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        PrivateServer { dir, child: None }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("s")
    }

    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// Starts the server with further `mariadbd` options (`--local-infile=0`).
    pub fn start_with(&mut self, extra: &[&str]) {
        assert!(self.child.is_none());
        let data = self.dir.path().join("data");
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", self.dir.path().join("pid").display()))
            .arg(format!("--tmpdir={}", self.dir.path().join("tmp").display()))
            .args(["--skip-networking", "--user=root", "--character-set-server=utf8mb4"])
            .args(["--innodb-buffer-pool-size=32M", "--skip-log-bin"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start mariadbd");
        self.child = Some(child);
        let t = Instant::now();
        while self.conn().is_none() {
            assert!(t.elapsed() < Duration::from_secs(20), "private mariadbd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A connection as the server's root (SUPER: unaffected by read_only), for the test's
    /// own statements.
    pub fn admin(&self) -> mysql::Conn {
        self.conn().expect("private server up")
    }

    /// Settings for an ordinary user of `db` (ALL on that database, no SUPER, so read_only
    /// applies to it, as to the ipta user of a real installation). Its password is random and
    /// lives only as long as this private server.
    pub fn user_settings(&self, db: &str) -> DbSettings {
        use mysql::prelude::Queryable;
        let mut c = self.admin();
        let mut raw = [0u8; 12];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut raw).unwrap();
        let password: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        c.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{db}`")).unwrap();
        // Account statements take no placeholders; the password is hex digits we made.
        c.query_drop(format!("CREATE USER IF NOT EXISTS 'ipta_w'@'localhost' IDENTIFIED BY '{password}'")).unwrap();
        c.query_drop(format!("ALTER USER 'ipta_w'@'localhost' IDENTIFIED BY '{password}'")).unwrap();
        c.query_drop(format!("GRANT ALL ON `{db}`.* TO 'ipta_w'@'localhost'")).unwrap();
        DbSettings {
            user: "ipta_w".into(),
            password,
            database: db.into(),
            socket: Some(self.socket()),
            ..DbSettings::default()
        }
    }

    fn conn(&self) -> Option<mysql::Conn> {
        mysql::Conn::new(
            mysql::OptsBuilder::new()
                .user(Some("root"))
                .socket(Some(self.socket().to_string_lossy().into_owned())),
        )
        .ok()
    }

    /// Stops the server (SIGTERM, clean shutdown) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }

    /// Creates a database and returns settings for it (root, no password).
    pub fn settings(&self, db: &str) -> DbSettings {
        use mysql::prelude::Queryable;
        let mut c = self.conn().expect("private server up");
        c.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{db}`")).unwrap();
        DbSettings {
            user: "root".into(),
            password: String::new(),
            database: db.into(),
            socket: Some(self.socket()),
            ..DbSettings::default()
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// CPU time (user + system) of a process, in clock ticks.
pub fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}
