//! A private database per test or benchmark on the real server, dropped again at the end;
//! shared by the integration tests (`tests/it/util.rs`) and the benchmarks (`benches/common`).

use std::sync::atomic::{AtomicU32, Ordering};

use ipta::config::DbSettings;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database of its own for one test, on the server test.sh provisioned (user ipta_test).
pub struct TestDb {
    pub settings: DbSettings,
}

impl TestDb {
    /// Creates `ipta_t_<tag>_<pid>_<n>` and settings pointing at it (table `logs`).
    pub fn new(tag: &str) -> TestDb {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("ipta_t_{}_{}_{}", tag, std::process::id(), n);
        let mut settings = DbSettings {
            user: "ipta_test".into(),
            password: "ipta_test".into(),
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
    mysql::Conn::new(opts).expect("connect to MariaDB as ipta_test (run ./scripts/provision.sh)")
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
