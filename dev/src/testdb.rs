//! A private database per test or benchmark on the real server, dropped again at the end;
//! shared by the integration tests (`tests/it/util.rs`) and the benchmarks (`benches/common`).
//! The account comes from the environment (IPTA_TEST_USER, IPTA_TEST_PASSWORD,
//! IPTA_TEST_SOCKET), set by `scripts/test-account.sh`, which test.sh runs the tests under: no
//! test account with a known password exists outside a test run.

use std::sync::atomic::{AtomicU32, Ordering};

use ipta::config::DbSettings;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The test account's name and password, from the environment.
pub fn credentials() -> (String, String) {
    let get = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!(
                "{k} is not set: run the tests through ./test.sh, or \
                 `scripts/test-account.sh -- cargo test ...`, which creates a temporary database \
                 account and passes it in IPTA_TEST_USER and IPTA_TEST_PASSWORD"
            )
        })
    };
    (get("IPTA_TEST_USER"), get("IPTA_TEST_PASSWORD"))
}

/// A database of its own for one test, on the server test.sh provisioned (the account of
/// [`credentials`]).
pub struct TestDb {
    pub settings: DbSettings,
}

impl TestDb {
    /// The `ipta` binary at `bin` run as a user would, isolated from this machine: its own HOME,
    /// no system config, no `IPTA_*` variable of the caller's environment, stdin closed; pointed
    /// at this database (the password in the environment, never on the command line).
    pub fn ipta_command(&self, bin: &std::path::Path, home: &std::path::Path) -> std::process::Command {
        let mut c = std::process::Command::new(bin);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("IPTA_") {
                c.env_remove(k);
            }
        }
        let s = &self.settings;
        c.env("HOME", home)
            .env("IPTA_SYSTEM_CONFIG", home.join("no-system.conf"))
            .env("IPTA_DB_PASS", &s.password)
            .stdin(std::process::Stdio::null())
            .arg("--db-socket")
            .arg(s.socket.as_ref().expect("the test database is reached over its socket"))
            .args(["-u", &s.user, "-d", &s.database]);
        c
    }

    /// Creates `ipta_t_<tag>_<pid>_<n>` and settings pointing at it (table `logs`).
    pub fn new(tag: &str) -> TestDb {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("ipta_t_{}_{}_{}", tag, std::process::id(), n);
        let (user, password) = credentials();
        let mut settings = DbSettings {
            user,
            password,
            database: String::new(),
            socket: Some(
                std::env::var("IPTA_TEST_SOCKET")
                    .unwrap_or_else(|_| "/run/mysqld/mysqld.sock".into())
                    .into(),
            ),
            ..DbSettings::default()
        };
        let mut admin = connect_no_db(&settings);
        use mysql::prelude::Queryable;
        admin
            .query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
            .unwrap();
        admin
            .query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .unwrap();
        settings.database = name;
        TestDb { settings }
    }

    pub fn conn(&self) -> mysql::Conn {
        ipta::store::connect(&self.settings).expect("connect to the test database")
    }
}

fn connect_no_db(s: &DbSettings) -> mysql::Conn {
    let opts = mysql::OptsBuilder::new()
        .user(Some(s.user.clone()))
        .pass(Some(s.password.clone()))
        .socket(s.socket.as_ref().map(|p| p.to_string_lossy().into_owned()));
    mysql::Conn::new(opts).expect("connect to MariaDB with IPTA_TEST_USER/IPTA_TEST_PASSWORD (see scripts/test-account.sh)")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        use mysql::prelude::Queryable;
        if let Ok(mut c) = mysql::Conn::new(
            mysql::OptsBuilder::new()
                .user(Some(self.settings.user.clone()))
                .pass(Some(self.settings.password.clone()))
                .socket(
                    self.settings
                        .socket
                        .as_ref()
                        .map(|p| p.to_string_lossy().into_owned()),
                ),
        ) {
            let _ = c.query_drop(format!(
                "DROP DATABASE IF EXISTS `{}`",
                self.settings.database
            ));
        }
    }
}
