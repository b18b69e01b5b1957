//! Shared helpers of the integration tests: a private database per test on the real server
//! ([`TestDb`], from the dev crate `ipta-dev`, which the benchmarks share), the path of the built
//! binaries, output captured across threads, the options of a follow run, and firewall log
//! lines.

pub use ipta_dev::testdb::TestDb;

/// Path of a binary of this package, built by cargo for the integration tests.
pub fn bin(name: &str) -> std::path::PathBuf {
    match name {
        "ipta" => env!("CARGO_BIN_EXE_ipta").into(),
        "ipta-ingest" => env!("CARGO_BIN_EXE_ipta-ingest").into(),
        other => panic!("no binary {other}"),
    }
}

/// `ipta` as a user would run it, isolated from this machine, pointed at the test database
/// ([`TestDb::ipta_command`], which the benchmarks use too).
pub fn ipta_isolated(db: &TestDb, home: &std::path::Path) -> std::process::Command {
    db.ipta_command(&bin("ipta"), home)
}

/// A `Write` shared with the test thread: what a follower or a report writes on another thread.
#[derive(Clone, Default)]
pub struct SharedOut(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedOut {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedOut {
    /// What was written so far, as lines.
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap().lines().map(String::from).collect()
    }
}

/// Follow options for tests: everything shown, text, no terminal width, times in UTC, the
/// fan-out directory `dir`.
pub fn follow_opts(dir: &std::path::Path) -> ipta::follow::FollowOptions {
    ipta::follow::FollowOptions {
        no_header: false,
        no_counter: false,
        no_local: false,
        no_accept: false,
        rdns: false,
        format: ipta::follow::FollowFormat::Text,
        width: Some(0),
        parse: ipta::parse::ParseOptions {
            reference: Default::default(),
            year: None,
            tz: Some("UTC".into()),
            rules: Default::default(),
        },
        follow_dir: dir.to_path_buf(),
    }
}

/// A logged TCP SYN as rsyslog renders it, the one log-line builder of the tests: fill in what
/// a test cares about, take the rest from `Default`, and call [`Syn::line`].
#[derive(Clone, Copy, Debug)]
pub struct Syn<'a> {
    /// The syslog time stamp, RFC 3339 or RFC 3164 (`Nov 25 10:16:44`).
    pub stamp: &'a str,
    pub host: &'a str,
    pub action: &'a str,
    /// The input interface.
    pub ifc: &'a str,
    pub src: &'a str,
    pub dst: &'a str,
    pub spt: u32,
    pub dpt: u32,
    /// The IP ID; give lines that must stay distinct different ones.
    pub id: u32,
}

impl Default for Syn<'_> {
    fn default() -> Self {
        Syn {
            stamp: "2026-11-25T10:16:44.000000+00:00",
            host: "fw1",
            action: "DROP",
            ifc: "eth0",
            src: "203.0.113.9",
            dst: "192.0.2.10",
            spt: 4444,
            dpt: 22,
            id: 1,
        }
    }
}

impl Syn<'_> {
    /// The line, without a newline.
    pub fn line(&self) -> String {
        let Syn { stamp, host, action, ifc, src, dst, spt, dpt, id } = *self;
        format!(
            "{stamp} {host} kernel: IPT: {action} IN={ifc} OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 \
             SRC={src} DST={dst} LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID={id} DF PROTO=TCP SPT={spt} DPT={dpt} \
             WINDOW=64240 RES=0x00 SYN URGP=0"
        )
    }
}
