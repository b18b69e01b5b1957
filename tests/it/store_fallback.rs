//! The writer's automatic fallback: a server that refuses LOAD DATA LOCAL INFILE (as MySQL 8
//! does by default) still gets every row, exactly once, through prepared INSERTs. Runs against a
//! private throwaway mariadbd started with `--local-infile=0`, never the shared server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipta::record::{Record, RecordBatch, Timestamp};
use ipta::store::writer::{WriteMethod, WriteStats, Writer};
use mysql::prelude::Queryable;

/// A private server in a temporary directory; killed and removed on drop.
struct PrivateServer {
    child: Child,
    dir: tempfile::TempDir,
}

impl PrivateServer {
    fn socket(&self) -> PathBuf {
        self.dir.path().join("s")
    }

    fn start(extra: &[&str]) -> Option<PrivateServer> {
        let which = |p: &str| {
            ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
                .iter()
                .map(|d| Path::new(d).join(p))
                .find(|p| p.exists())
        };
        let (Some(install), Some(server)) = (which("mariadb-install-db"), which("mariadbd")) else {
            eprintln!("skipped: mariadb-install-db/mariadbd not installed");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let ok = Command::new(install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args([
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mariadb-install-db failed");
        let sock = dir.path().join("s");
        let child = Command::new(server)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", sock.display()))
            .args([
                "--skip-networking",
                "--user=root",
                "--character-set-server=utf8mb4",
            ])
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!(
                "--log-error={}",
                dir.path().join("err.log").display()
            ))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = PrivateServer { child, dir };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if s.root().is_ok() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("private mariadbd did not start");
    }

    fn root(&self) -> mysql::Result<mysql::Conn> {
        mysql::Conn::new(
            mysql::OptsBuilder::new()
                .user(Some("root"))
                .socket(Some(self.socket().to_string_lossy().into_owned())),
        )
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn refused_local_infile_falls_back_to_insert() {
    let Some(server) = PrivateServer::start(&["--local-infile=0"]) else {
        return;
    };
    let mut root = server.root().unwrap();
    root.query_drop("CREATE DATABASE ipta CHARACTER SET utf8mb4")
        .unwrap();
    let settings = ipta::config::DbSettings {
        user: "root".into(),
        password: String::new(),
        database: "ipta".into(),
        socket: Some(server.socket()),
        ..Default::default()
    };
    let mut c = ipta::store::connect(&settings).unwrap();
    ipta::store::schema::ensure_table(&mut c, "logs").unwrap();

    let msgs: Vec<String> = (0..300)
        .map(|i| format!("IPT: DROP IN=eth0 n={i}"))
        .collect();
    let mut b = RecordBatch::new();
    for (i, m) in msgs.iter().enumerate() {
        let r = Record {
            ts: Timestamp(1_762_320_908_000_000 + i as i64),
            host: Some("fw1"),
            action: "DROP",
            prefix: "IPT: DROP ",
            pkt: ipta::record::Packet {
                src: Some("2001:db8::7".parse().unwrap()),
                ..Default::default()
            },
            repeat: 1,
            message: m.as_bytes(),
            ..Default::default()
        };
        b.push(&r, 0);
    }

    // LOAD DATA alone fails with a clear, non-retryable error.
    let mut only_load = Writer::new(ipta::store::connect(&settings).unwrap(), "logs")
        .with_method(WriteMethod::LoadData);
    let e = only_load.write(&b).unwrap_err();
    assert!(!e.is_retryable(), "{e:?}");

    let mut w = Writer::new(ipta::store::connect(&settings).unwrap(), "logs");
    assert_eq!(w.method(), WriteMethod::Auto);
    assert_eq!(
        w.write(&b).unwrap(),
        WriteStats {
            inserted: 300,
            duplicates: 0
        }
    );
    assert_eq!(w.method(), WriteMethod::Insert);
    assert_eq!(
        w.write(&b).unwrap(),
        WriteStats {
            inserted: 0,
            duplicates: 300
        }
    );
    let (n, src): (u64, String) = c
        .query_first("SELECT COUNT(*), MIN(INET6_NTOA(src)) FROM logs")
        .unwrap()
        .unwrap();
    assert_eq!((n, src.as_str()), (300, "2001:db8::7"));
}
