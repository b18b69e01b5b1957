//! The scripts' database accounts (issue 13 §2), against a private MariaDB so the shared
//! server's accounts are never touched: provision.sh removes the old `ipta_test`/`ipta_test`
//! account; the quick start's `ipta` gets a generated password saved in ~/.ipta-conf (0600) and
//! never accepts `ipta`; the tests' account exists only while a command runs, cannot read files
//! through the server, and is gone afterwards, also when the command fails.

use crate::ingest_support;
use crate::util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ingest_support::PrivateServer;
use mysql::prelude::Queryable;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run script");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn logs_in(srv: &PrivateServer, user: &str, pass: &str) -> bool {
    mysql::Conn::new(
        mysql::OptsBuilder::new()
            .user(Some(user))
            .pass(Some(pass))
            .socket(Some(srv.socket().to_string_lossy().into_owned())),
    )
    .is_ok()
}

fn root(srv: &PrivateServer) -> mysql::Conn {
    mysql::Conn::new(
        mysql::OptsBuilder::new().user(Some("root")).socket(Some(srv.socket().to_string_lossy().into_owned())),
    )
    .unwrap()
}

fn saved_password(home: &Path) -> String {
    let conf = home.join(".ipta-conf");
    let mode = std::fs::metadata(&conf).expect("~/.ipta-conf written").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "~/.ipta-conf mode");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.lines().any(|l| l.trim() == "db_user = ipta"), "{text}");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("db_pass = "))
        .unwrap_or_else(|| panic!("no db_pass in {text}"))
        .to_string()
}

#[test]
fn scripts_leave_no_account_with_a_known_password() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: the scripts talk to the server as root over its socket");
        return;
    }
    let mut srv = PrivateServer::new();
    srv.start();
    let sock = srv.socket();
    // What earlier versions of provision.sh and quickstart.sh left behind.
    root(&srv)
        .query_drop(
            "CREATE USER 'ipta_test'@'localhost' IDENTIFIED BY 'ipta_test';
             GRANT ALL ON *.* TO 'ipta_test'@'localhost' WITH GRANT OPTION;
             CREATE USER 'ipta'@'localhost' IDENTIFIED BY 'ipta';",
        )
        .unwrap();
    let check = || run(Command::new(script("check-accounts.sh")).arg("--socket").arg(&sock)).status.success();
    assert!(!check(), "check-accounts.sh notices ipta_test/ipta_test");

    let out = run(Command::new(script("provision.sh")).arg("--socket").arg(&sock));
    assert!(out.status.success(), "provision.sh failed");
    assert!(!logs_in(&srv, "ipta_test", "ipta_test"), "provision.sh removes ipta_test/ipta_test");
    let n: u64 = root(&srv).query_first("SELECT COUNT(*) FROM mysql.user WHERE User = 'ipta_test'").unwrap().unwrap();
    assert_eq!(n, 0);

    // The quick start's account: a generated password, saved 0600, kept on a second run.
    let home = tempfile::tempdir().unwrap();
    let account = || {
        let out = run(Command::new(script("ipta-account.sh"))
            .arg("--socket")
            .arg(&sock)
            .arg("--ipta")
            .arg(util::bin("ipta"))
            .env("HOME", home.path())
            .env_remove("IPTA_CONFIG"));
        assert!(out.status.success(), "ipta-account.sh failed");
        saved_password(home.path())
    };
    let pass = account();
    assert!(pass.len() >= 16 && pass != "ipta", "generated password {pass:?}");
    assert!(!logs_in(&srv, "ipta", "ipta"), "ipta no longer accepts the well-known password");
    assert!(logs_in(&srv, "ipta", &pass), "ipta accepts the saved password");
    assert_eq!(account(), pass, "a second run keeps the saved password");
    assert!(logs_in(&srv, "ipta", &pass));

    // The tests' account: usable while the command runs (but no FILE right), gone afterwards,
    // and the command's failure is passed on.
    let d = tempfile::tempdir().unwrap();
    let note = d.path().join("note");
    let body = r#"
        echo "$IPTA_TEST_USER" > "$0"
        export MYSQL_PWD="$IPTA_TEST_PASSWORD"
        mariadb --socket="$IPTA_TEST_SOCKET" -u "$IPTA_TEST_USER" -N \
          -e "CREATE DATABASE ipta_t_acct; SELECT LOAD_FILE('/etc/passwd') IS NULL" >> "$0" || exit 9
        exit 3"#;
    let out = run(Command::new(script("test-account.sh"))
        .arg("--socket")
        .arg(&sock)
        .args(["--", "sh", "-c", body])
        .arg(&note));
    assert_eq!(out.status.code(), Some(3), "the command's status is passed on");
    let note = std::fs::read_to_string(&note).unwrap();
    let mut lines = note.lines();
    let user = lines.next().unwrap().to_string();
    assert!(user.starts_with("ipta_test_"), "{note}");
    assert_eq!(lines.next(), Some("1"), "the account worked and LOAD_FILE gave nothing: {note}");
    let n: u64 = root(&srv)
        .exec_first("SELECT COUNT(*) FROM mysql.user WHERE User = ?", (user.as_str(),))
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "the test account {user} was dropped");
    assert!(check(), "check-accounts.sh is content afterwards");
}
