//! One setting decides which lines are ipta's: `rules`, `rule_regex` and `tz` in the config
//! file are read by ipta-ingest exactly as by `ipta --import`, so a line stored live and the
//! same line imported give the same row.

use crate::ingest_support;
use crate::util;

use std::process::{Command, Stdio};
use std::time::Duration;

use ingest_support::{count, Ingest};
use mysql::prelude::Queryable;
use util::TestDb;

/// A UFW line with a year-less stamp (its zone comes from `tz`).
const UFW: &str = "Nov 25 10:23:45 fw1 kernel: [ 1234.567890] [UFW BLOCK] IN=eth0 OUT= \
    MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=198.51.100.7 DST=192.0.2.10 LEN=60 TOS=0x00 \
    PREC=0x00 TTL=52 ID=4242 DF PROTO=TCP SPT=51515 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0";

/// The rows of `table`, every column but the auto-increment id, as text.
fn rows(db: &TestDb, table: &str) -> Vec<Vec<Option<String>>> {
    let mut c = db.conn();
    let cols: Vec<String> = c
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             AND COLUMN_NAME <> 'id' ORDER BY ORDINAL_POSITION",
            (&db.settings.database, table),
        )
        .unwrap();
    assert!(cols.len() > 10, "{cols:?}");
    let list = cols.iter().map(|c| format!("CAST(`{c}` AS CHAR)")).collect::<Vec<_>>().join(", ");
    c.query_map(format!("SELECT {list} FROM `{table}` ORDER BY id"), |row: mysql::Row| {
        (0..row.len()).map(|i| row.get::<Option<String>, _>(i).unwrap()).collect::<Vec<_>>()
    })
    .unwrap()
}

#[test]
fn configured_rules_and_zone_are_read_the_same_live_and_imported() {
    let db = TestDb::new("ingest_rules");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ipta.conf");
    std::fs::write(&conf, "rules = ufw\ntz = Asia/Tokyo\n").unwrap();
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let conf_arg = conf.to_string_lossy().into_owned();

    // Live: ipta-ingest with nothing but the config file saying which lines are ipta's.
    let mut live = db.settings.clone();
    live.table = "live".into();
    let ing = {
        let mut i = Ingest::start(&live, &["--config", &conf_arg]);
        i.send(UFW);
        i.flush();
        i
    };
    let (code, err) = ing.close(Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&live), 1, "the UFW line is ipta's under rules = ufw: {err}");

    // Imported: the same line, the same config file.
    db.conn().query_drop(ipta::store::schema::create_table_sql("imported")).unwrap();
    let log = dir.path().join("ufw.log");
    std::fs::write(&log, format!("{UFW}\n")).unwrap();
    let s = &db.settings;
    let out = Command::new(util::bin("ipta"))
        .arg("--db-socket")
        .arg(s.socket.as_ref().unwrap())
        .args(["-u", &s.user, "-d", &s.database, "-t", "imported", "--config", &conf_arg, "-i"])
        .arg(&log)
        .env("IPTA_DB_PASS", &s.password)
        .env("HOME", dir.path())
        .env("IPTA_SYSTEM_CONFIG", dir.path().join("no-system.conf"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let (live_rows, imported_rows) = (rows(&db, "live"), rows(&db, "imported"));
    assert_eq!(live_rows.len(), 1);
    assert_eq!(live_rows, imported_rows, "the same line gives the same row live and imported");
    // tz = Asia/Tokyo (UTC+9) was applied: 10:23:45 there is 01:23:45 UTC.
    let ts: String = db.conn().query_first("SELECT CAST(ts AS CHAR) FROM `live`").unwrap().unwrap();
    assert!(ts.contains("01:23:45"), "{ts}");
    let action: String = db.conn().query_first("SELECT action FROM `live`").unwrap().unwrap();
    assert_eq!(action, "BLOCK");
}

#[test]
fn an_unknown_rules_preset_in_the_config_stops_ingest_with_a_clear_message() {
    let db = TestDb::new("ingest_rules_bad");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ipta.conf");
    std::fs::write(&conf, "rules = ufw, nosuch\n").unwrap();
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let ing = Ingest::start(&db.settings, &["--config", conf.to_str().unwrap()]);
    let (code, err) = ing.close(Duration::from_secs(20));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"nosuch\""), "{err}");
}

/// ipta-ingest may run as root: a config file that others can write is refused (exit 2, the
/// reason and the fix on stderr), and an unreadable /etc/ipta.conf costs one warning, not the
/// run of `ipta --scan`.
#[test]
fn a_config_file_others_can_write_is_refused_by_ingest() {
    let db = TestDb::new("ingest_conf_mode");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ipta.conf");
    std::fs::write(&conf, "rules = ufw\n").unwrap();
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let ing = Ingest::start(&db.settings, &["--config", conf.to_str().unwrap()]);
    let (code, err) = ing.close(Duration::from_secs(20));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("refusing config file") && err.contains("chmod go-w"), "{err}");

    // `ipta --scan` with /etc/ipta.conf unreadable (a directory in its place).
    let sys = dir.path().join("etc-ipta.conf");
    std::fs::create_dir(&sys).unwrap();
    let log = dir.path().join("x.log");
    std::fs::write(&log, format!("{UFW}\n")).unwrap();
    let out = Command::new(util::bin("ipta"))
        .arg("--scan")
        .arg(&log)
        .env("HOME", dir.path())
        .env("IPTA_SYSTEM_CONFIG", &sys)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("cannot read").count(), 1, "{err}");
}
