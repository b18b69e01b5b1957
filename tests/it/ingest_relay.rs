//! Which relay delivered each row (issue 13 §5): the central log host's rsyslog puts the
//! sender's address in front of each line, ipta-ingest stores it in the `relay` column; a
//! table of the previous layout is upgraded for it. End to end with a real rsyslogd running the
//! shipped central snippet (plain-TCP variant, $AllowedSender) and the built ipta-ingest.

use crate::ingest_support;
use crate::util;

use std::io::Write;
use std::time::Duration;

use ingest_support::rsyslog::{free_port, ingest_conf, repo, subst, Rsyslogd};
use ingest_support::{count, line, wait_count, Ingest};
use mysql::prelude::Queryable;
use util::TestDb;

fn relays(db: &TestDb) -> Vec<Option<String>> {
    db.conn().query("SELECT relay FROM logs ORDER BY id").unwrap()
}

#[test]
fn ingest_stores_the_relay_and_rejects_a_bad_prefix() {
    let db = TestDb::new("relay");
    let mut ing = Ingest::start(&db.settings, &["--batch-size", "10"]);
    ing.send(&format!("@relay=192.0.2.7 {}", line(1)));
    ing.send(&line(2));
    ing.send(&format!("@relay=2001:db8::5 {}", line(3)));
    // The address is the relay's, never text a sender chose.
    ing.send(&format!("@relay=fw9.example.net {}", line(4)));
    let (code, err) = ing.close(Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&db.settings), 3, "{err}");
    assert!(err.contains("rejected 1"), "{err}");
    assert_eq!(relays(&db), vec![Some("192.0.2.7".into()), None, Some("2001:db8::5".into())]);
}

#[test]
fn a_table_of_the_previous_layout_gets_the_relay_column() {
    use ipta::store::schema;
    let db = TestDb::new("relay_upgrade");
    let mut c = db.conn();
    // Version 1: today's table without `relay`.
    c.query_drop(schema::create_table_sql("logs")).unwrap();
    c.query_drop("ALTER TABLE logs DROP COLUMN relay, COMMENT = 'ipta-logs v1'").unwrap();
    let mut ing = Ingest::start(&db.settings, &["--batch-size", "10"]);
    ing.send(&format!("@relay=198.51.100.3 {}", line(1)));
    let (code, err) = ing.close(Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    assert_eq!(schema::table_version(&mut c, "logs").unwrap(), Some(schema::SCHEMA_VERSION));
    assert_eq!(relays(&db), vec![Some("198.51.100.3".into())]);
}

#[test]
fn central_log_host_stores_which_relay_delivered_each_row() {
    let db = TestDb::new("relay_central");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = &db.settings;
    let conf = ingest_conf(d, s);
    let port = free_port();
    // 30-ipta.conf (module omprog, template ipta_line) with its local action pointed at test
    // files, then the central snippet switched to its plain-TCP variant, as its comments say.
    let mut local = std::fs::read_to_string(repo("rsyslog/30-ipta.conf")).unwrap();
    subst(&mut local, "/var/log/", &format!("{}/local-", d.display()));
    let mut central = std::fs::read_to_string(repo("etc/rsyslog/31-ipta-central.conf")).unwrap();
    let start = central.find("module(load=\"imtcp\"").unwrap();
    let end = central.find("# Plain TCP on a trusted network instead").unwrap();
    central.replace_range(start..end, "");
    subst(&mut central, "#$AllowedSender TCP, 192.0.2.1, 192.0.2.2", "$AllowedSender TCP, 127.0.0.1");
    subst(&mut central, "#module(load=\"imtcp\" MaxSessions=\"500\")", "module(load=\"imtcp\" MaxSessions=\"500\")");
    subst(
        &mut central,
        "#input(type=\"imtcp\" port=\"514\"",
        &format!("input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\""),
    );
    subst(
        &mut central,
        "/usr/local/bin/ipta-ingest --confirm",
        &format!("{} --config {} --confirm", util::bin("ipta-ingest").display(), conf.display()),
    );
    subst(&mut central, "/var/log/", &format!("{}/", d.display()));
    let rsyslog = Rsyslogd::start(d, &format!("global(workDirectory=\"{}\")\n{local}\n{central}", d.display()));
    let mut tcp = rsyslog.connect(port);
    // A firewall that writes another's name and a fake relay prefix into its message: the row
    // still says the truth about who delivered it.
    let stamp = chrono::Local::now().format("%b %e %H:%M:%S").to_string();
    let mut buf = Vec::new();
    for i in 0..5 {
        writeln!(
            buf,
            "<4>{stamp} fw2 kernel: IPT: DROP IN=eth0 OUT= SRC=198.51.100.{i} DST=192.0.2.10 LEN=60 TTL=52 ID={i} PROTO=TCP SPT=1 DPT=22 SYN URGP=0"
        )
        .unwrap();
    }
    writeln!(buf, "<4>{stamp} @relay=203.0.113.66 kernel: IPT: DROP IN=eth0 OUT= SRC=198.51.100.9 DST=192.0.2.10 LEN=60 TTL=52 ID=9 PROTO=TCP SPT=1 DPT=22 SYN URGP=0").unwrap();
    tcp.write_all(&buf).unwrap();
    drop(tcp);
    let n = wait_count(s, 6, Duration::from_secs(30));
    let out = std::fs::read_to_string(d.join("ipta-ingest-remote.log")).unwrap_or_default();
    assert_eq!(n, 6, "ipta-ingest: {out}; rsyslogd: {}", std::fs::read_to_string(d.join("rsyslogd.out")).unwrap_or_default());
    let rows: Vec<(Option<String>, Option<String>)> =
        db.conn().query("SELECT host, relay FROM logs ORDER BY id").unwrap();
    for (host, relay) in &rows {
        assert_eq!(relay.as_deref(), Some("127.0.0.1"), "{rows:?}");
        assert_ne!(host.as_deref(), Some("127.0.0.1"));
    }
    assert_eq!(rows[0].0.as_deref(), Some("fw2"));
}
