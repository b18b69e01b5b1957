//! TLS to the database: a private, throwaway MariaDB that only accepts encrypted connections
//! (`require_secure_transport`), with a certificate signed by a CA made here with the openssl
//! CLI. `db_tls = verify` against that CA connects and the session is encrypted; at an address
//! the certificate does not name, or against a different CA, it fails with a message saying
//! which; `db_tls = required` encrypts without checking; `db_tls = off` is refused.
//! The server is killed at the end, also when an assertion fails (Drop guard).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipta::config::{DbSettings, TlsMode};
use mysql::prelude::Queryable;

/// Runs a command and fails the test with its stderr when it does not succeed.
fn run(cmd: &mut Command) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

/// A self-signed CA (`<name>.pem`, `<name>.key`), P-256 keys because they are instant to make.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(format!("{name}.pem"))
}

/// A server certificate for 127.0.0.1 and localhost signed by CA `ca`.
fn make_server_cert(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
         basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

/// A private mariadbd on 127.0.0.1:<port>, TLS only. Killed and its files removed on drop.
struct TlsServer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl TlsServer {
    fn start() -> TlsServer {
        let dir = tempfile::Builder::new()
            .prefix("ipta-tls-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        make_ca(d, "ca");
        make_ca(d, "otherca");
        make_server_cert(d, "ca");
        let data = d.join("data");
        // The server runs as whoever runs the test (as root, mariadbd insists on --user).
        let me = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
        let user = format!("--user={}", me.trim());
        run(Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(&user)
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .stdout(Stdio::null()));
        let port = free_port();
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", d.join("s").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--log-error={}", d.join("err.log").display()))
            .arg(format!("--port={port}"))
            .arg(&user)
            // 127.0.0.2 (loopback too, but not in the certificate) for the host-name check.
            .args(["--bind-address=127.0.0.1,127.0.0.2", "--skip-name-resolve"])
            .args([
                "--innodb-buffer-pool-size=16M",
                "--character-set-server=utf8mb4",
            ])
            .arg(format!("--ssl-ca={}", d.join("ca.pem").display()))
            .arg(format!("--ssl-cert={}", d.join("server.pem").display()))
            .arg(format!("--ssl-key={}", d.join("server.key").display()))
            .arg("--require-secure-transport=ON")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let mut server = TlsServer { child, dir, port };
        server.wait_ready();
        // Over the Unix socket (which require_secure_transport accepts) as root: a TCP user.
        let mut root = server.root_conn();
        root.query_drop(
            "CREATE USER 'tlsuser'@'127.0.0.%' IDENTIFIED BY 'tls-secret';
             GRANT ALL ON *.* TO 'tlsuser'@'127.0.0.%';
             CREATE DATABASE ipta;",
        )
        .unwrap();
        server
    }

    fn root_conn(&self) -> mysql::Conn {
        mysql::Conn::new(mysql::OptsBuilder::new().user(Some("root")).socket(Some(
            self.dir.path().join("s").to_string_lossy().into_owned(),
        )))
        .expect("root over the private socket")
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log =
                    std::fs::read_to_string(self.dir.path().join("err.log")).unwrap_or_default();
                panic!("mariadbd exited ({status}):\n{log}");
            }
            let sock = self.dir.path().join("s");
            if sock.exists()
                && mysql::Conn::new(
                    mysql::OptsBuilder::new()
                        .user(Some("root"))
                        .socket(Some(sock.to_string_lossy().into_owned())),
                )
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not become ready in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Settings for `tlsuser` over TCP with the given TLS mode and CA file.
    fn settings(&self, host: &str, tls: TlsMode, ca: Option<&str>) -> DbSettings {
        DbSettings {
            host: host.into(),
            port: Some(self.port),
            socket: None,
            user: "tlsuser".into(),
            password: "tls-secret".into(),
            database: "ipta".into(),
            table: "logs".into(),
            tls,
            tls_ca: ca.map(|name| self.dir.path().join(name)),
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn cipher(c: &mut mysql::Conn) -> String {
    let row: Option<(String, String)> = c.query_first("SHOW STATUS LIKE 'Ssl_cipher'").unwrap();
    row.map(|(_, v)| v).unwrap_or_default()
}

#[test]
fn tls_verify_required_wrong_ca_and_off() {
    let t0 = Instant::now();
    let server = TlsServer::start();
    eprintln!("private TLS server ready in {:?}", t0.elapsed());

    // verify against the right CA, by IP address: connects, and the session is encrypted.
    let mut c =
        ipta::store::connect(&server.settings("127.0.0.1", TlsMode::Verify, Some("ca.pem")))
            .expect("verify against the CA that signed the server certificate");
    let ciph = cipher(&mut c);
    assert!(
        !ciph.is_empty(),
        "Ssl_cipher is empty: the connection is not encrypted"
    );
    // Still TCP, not moved to the server's socket (the crate does that for loopback by default).
    let (_, version): (String, String) = c
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_version'")
        .unwrap()
        .unwrap();
    eprintln!("verify: {version} {ciph}");
    let n: u32 = c.query_first("SELECT 1").unwrap().unwrap();
    assert_eq!(n, 1);
    drop(c);

    // required: encrypted too, without any CA.
    let mut c = ipta::store::connect(&server.settings("127.0.0.1", TlsMode::Required, None))
        .expect("required: encrypt without verifying");
    assert!(!cipher(&mut c).is_empty());
    drop(c);

    // verify by DNS name: localhost is in the certificate's subjectAltName too.
    let v4_localhost = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", server.port))
        .map(|mut a| a.next().map(|a| a.ip()) == Some(std::net::Ipv4Addr::LOCALHOST.into()))
        .unwrap_or(false);
    if v4_localhost {
        let mut c =
            ipta::store::connect(&server.settings("localhost", TlsMode::Verify, Some("ca.pem")))
                .expect("verify by the DNS name in the certificate");
        assert!(!cipher(&mut c).is_empty());
    } else {
        // The server listens on 127.0.0.1 only; localhost resolving to ::1 first is not TLS's fault.
        eprintln!("localhost does not resolve to 127.0.0.1 first here: DNS-name check skipped");
    }

    // verify with the right CA at an address the certificate does not name: refused, and said
    // so; required (no verification) goes through at that address.
    let Err(e) =
        ipta::store::connect(&server.settings("127.0.0.2", TlsMode::Verify, Some("ca.pem")))
    else {
        panic!("a certificate that does not name the host must be refused");
    };
    let msg = e.to_string();
    eprintln!("wrong name: {msg}");
    assert!(msg.contains("does not name \"127.0.0.2\""), "{msg}");
    let mut c = ipta::store::connect(&server.settings("127.0.0.2", TlsMode::Required, None))
        .expect("required does not check the name");
    assert!(!cipher(&mut c).is_empty());
    drop(c);

    // verify against a CA that did not sign the certificate: fails, and says so.
    let Err(e) =
        ipta::store::connect(&server.settings("127.0.0.1", TlsMode::Verify, Some("otherca.pem")))
    else {
        panic!("a certificate from another CA must be refused");
    };
    let msg = e.to_string();
    eprintln!("wrong CA: {msg}");
    assert!(
        msg.contains("otherca.pem"),
        "the message should name the CA file: {msg}"
    );
    assert!(msg.contains("not signed by"), "{msg}");

    // off against require_secure_transport: refused by the server.
    let Err(e) = ipta::store::connect(&server.settings("127.0.0.1", TlsMode::Off, None)) else {
        panic!("an unencrypted connection must be refused");
    };
    let msg = e.to_string();
    eprintln!("off: {msg}");
    // MariaDB says "access denied" (MySQL 8: error 3159); either way the hint names db_tls.
    assert!(
        msg.contains("db_tls = required or verify"),
        "the message should say what to set: {msg}"
    );

    eprintln!("whole TLS test: {:?}", t0.elapsed());
}
