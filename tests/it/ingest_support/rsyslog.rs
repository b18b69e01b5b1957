//! A real rsyslogd for the tests that run the shipped snippets: validation with `rsyslogd -N1`,
//! a daemon on a test's own config that stops with the test, a TCP input standing in for the
//! kernel, and the config file ipta-ingest reads.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipta::config::DbSettings;

/// A file of the source tree.
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The rsyslogd binary; a clear failure when it is missing.
pub fn rsyslogd() -> &'static str {
    assert!(
        Path::new("/usr/sbin/rsyslogd").exists(),
        "rsyslogd is missing: run ./scripts/provision.sh --rsyslog (test.sh does)"
    );
    "/usr/sbin/rsyslogd"
}

/// `rsyslogd -N1` over a main config that includes `snippets` in order, as /etc/rsyslog.d would.
pub fn validate(snippets: &[&Path]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("rsyslog.conf");
    let mut text = format!("global(workDirectory=\"{}\")\n", dir.path().display());
    for s in snippets {
        text.push_str(&format!("include(file=\"{}\")\n", s.display()));
    }
    std::fs::write(&main, text).unwrap();
    let out = Command::new(rsyslogd()).arg("-N1").arg("-f").arg(&main).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Replaces `from` with `to`, insisting that `from` is there (so the test follows the file).
pub fn subst(text: &mut String, from: &str, to: &str) {
    assert!(text.contains(from), "the shipped config no longer contains {from:?}");
    *text = text.replace(from, to);
}

/// A TCP port nobody listens on now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The settings file ipta-ingest reads, password included, as in production: `DIR/ipta.conf`.
pub fn ingest_conf(dir: &Path, s: &DbSettings) -> PathBuf {
    let conf = dir.join("ipta.conf");
    let socket = s.socket.as_ref().expect("the tests connect over a socket");
    let text = format!("user = {}\npass = {}\ndb = {}\nsocket = {}\n", s.user, s.password, s.database, socket.display());
    std::fs::write(&conf, text).unwrap();
    conf
}

/// An rsyslogd in the foreground on `DIR/rsyslog.conf` (written from `config`), its output in
/// `DIR/rsyslogd.out`; killed when dropped.
pub struct Rsyslogd {
    child: Child,
    dir: PathBuf,
}

impl Rsyslogd {
    pub fn start(dir: &Path, config: &str) -> Rsyslogd {
        let main = dir.join("rsyslog.conf");
        std::fs::write(&main, config).unwrap();
        let log = std::fs::File::create(dir.join("rsyslogd.out")).unwrap();
        let child = Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(&main)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        Rsyslogd { child, dir: dir.to_path_buf() }
    }

    /// What rsyslogd printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.out")).unwrap_or_default()
    }

    /// A connection to its TCP input on `port`, once it listens (10 s at most).
    pub fn connect(&self, port: u16) -> TcpStream {
        let t = Instant::now();
        loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(c) => return c,
                Err(_) if t.elapsed() < Duration::from_secs(10) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("rsyslogd did not listen: {e}; {}", self.output()),
            }
        }
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
