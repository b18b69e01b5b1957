//! Real firewalls, live and imported alike (issue 15, item 6): lines as UFW (Ubuntu), firewalld
//! (Fedora, RHEL), OpenWrt's fw4 and a plain nftables ruleset write them, and journal JSON of a
//! machine without rsyslog (tests/fixtures/live/), each with the one setting its kind needs in
//! the config file. Fed to ipta-ingest (rsyslog's omprog protocol, or `--journal-cursor` for
//! the JSON) and imported with `ipta -i` into another table: the same rows, and the same
//! `-a --format json` report, both ways.

use crate::ingest_support::{db_args, Ingest};
use crate::util::{self, TestDb};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ipta::config::DbSettings;
use mysql::prelude::Queryable;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/live").join(name)
}

fn with_table(s: &DbSettings, t: &str) -> DbSettings {
    DbSettings { table: t.to_string(), ..s.clone() }
}

/// Every row but its id, as text, sorted.
fn rows(c: &mut mysql::Conn, table: &str) -> Vec<String> {
    let cols: Vec<String> = c
        .query(format!("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' AND COLUMN_NAME <> 'id' ORDER BY ORDINAL_POSITION"))
        .unwrap();
    let list = cols.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
    let got: Vec<mysql::Row> = c.query(format!("SELECT {list} FROM `{table}`")).unwrap();
    let mut v: Vec<String> = got
        .into_iter()
        .map(|r| r.unwrap().iter().map(|x| x.as_sql(true)).collect::<Vec<_>>().join(" "))
        .collect();
    v.sort();
    v
}

/// `ipta ARGS` on table `s.table` with the config file `conf`; stdout.
fn ipta(s: &DbSettings, conf: &Path, home: &Path, args: &[&str]) -> String {
    let out = Command::new(util::bin("ipta"))
        .args(db_args(s))
        .arg("--config")
        .arg(conf)
        .args(args)
        .env("IPTA_DB_PASS", &s.password)
        .env("IPTA_SYSTEM_CONFIG", home.join("no-system-ipta.conf"))
        .env("HOME", home)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "ipta {args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn each_real_firewall_gives_the_same_rows_and_report_live_and_imported() {
    let db = TestDb::new("ingest_firewalls");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = db.conn();
    // (fixture, the one setting, packets in it)
    let cases = [
        ("ufw.log", "rules = ufw", 5u64),
        ("firewalld.log", "rules = any", 4),
        ("openwrt.log", "rules = any", 3),
        ("nftables.log", "rules = any", 3),
        ("journal.json", "rules = any", 5),
    ];
    for (k, (file, setting, packets)) in cases.into_iter().enumerate() {
        let conf = d.join(format!("ipta-{k}.conf"));
        std::fs::write(&conf, format!("{setting}\ntz = UTC\n")).unwrap();
        std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let live = with_table(&db.settings, &format!("live{k}"));
        let imported = with_table(&db.settings, &format!("imp{k}"));
        let text = std::fs::read_to_string(fixture(file)).unwrap();

        // Live: rsyslog's protocol (a transaction), or the journal feed.
        let journal = file.ends_with(".json");
        let cursor = d.join(format!("cursor-{k}"));
        let conf_s = conf.to_str().unwrap();
        let mut ing = if journal {
            Ingest::start(&live, &["--config", conf_s, "--journal-cursor", cursor.to_str().unwrap()])
        } else {
            Ingest::start(&live, &["--config", conf_s, "--confirm"])
        };
        if journal {
            for l in text.lines() {
                ing.send(l);
            }
            ing.flush();
        } else {
            assert_eq!(ing.reply(), "OK");
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            assert_eq!(ing.transaction(&lines), "OK", "{file}: {}", ing.stderr());
        }
        let (code, err) = ing.close(Duration::from_secs(30));
        assert_eq!(code, 0, "{file}: {err}");
        assert!(err.contains(&format!("inserted {packets}, duplicates 0, rejected 0")), "{file}: {err}");

        // Imported: the same file, the same setting.
        ipta::store::schema::ensure_table(&mut c, &imported.table).unwrap();
        ipta(&imported, &conf, d, &["-i", fixture(file).to_str().unwrap()]);

        let a = rows(&mut c, &live.table);
        let b = rows(&mut c, &imported.table);
        assert_eq!(a.len() as u64, packets, "{file}: {a:#?}");
        assert_eq!(a, b, "{file}: live and imported rows differ");
        let ra = ipta(&live, &conf, d, &["-a", "--format", "json"]);
        let rb = ipta(&imported, &conf, d, &["-a", "--format", "json"]);
        let norm = |s: &str| s.replace(&live.table, "T").replace(&imported.table, "T");
        assert!(ra.len() > 100, "{file}: {ra}");
        assert_eq!(norm(&ra), norm(&rb), "{file}: reports differ");
    }
}
