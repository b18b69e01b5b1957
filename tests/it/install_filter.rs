//! The rsyslog snippet install.sh writes passes the configured kind of lines (issue 15, item 1):
//! its filter follows IPTA_RULES or the `rules` / `rule_regex` keys of an existing ipta.conf,
//! every variant is valid for `rsyslogd -N1`, and a real rsyslogd running the UFW variant hands
//! UFW lines (and only the kernel's) to ipta-ingest. Also `install.sh --journal`: the systemd
//! unit and its feed script instead of the snippet.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::ingest_support::rsyslog::{free_port, ingest_conf, subst, validate, Rsyslogd};
use crate::ingest_support::wait_count;
use crate::install::{files, run_install_prefix, source_tree};
use crate::util::{self, TestDb};

/// Installs into a fresh root with `env` (and an ipta.conf `conf` already there, if given);
/// returns the root and the installed snippet.
fn install_with(tmp: &Path, name: &str, env: &[(&str, &str)], conf: Option<&str>) -> (std::path::PathBuf, String) {
    let src = source_tree(&tmp.join(format!("src-{name}")));
    let root = tmp.join(format!("root-{name}"));
    if let Some(c) = conf {
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/ipta.conf"), c).unwrap();
    }
    let rsyslog_conf = tmp.join("rsyslog.conf");
    std::fs::write(&rsyslog_conf, "").unwrap();
    let out = Command::new("bash")
        .arg(src.join("install.sh"))
        .arg("--no-build")
        .env("DESTDIR", &root)
        .env("PREFIX", "/usr/local")
        .env("RSYSLOG_CONF", &rsyslog_conf)
        .env("IPTA_CONF_GROUP", util_group())
        .env_remove("SYSCONFDIR")
        .env_remove("IPTA_RULES")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{name}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let snippet = std::fs::read_to_string(root.join("etc/rsyslog.d/30-ipta.conf")).unwrap();
    (root, snippet)
}

/// The current user's group (one a file can be given to without root).
fn util_group() -> String {
    String::from_utf8(Command::new("id").arg("-gn").output().unwrap().stdout).unwrap().trim().to_string()
}

/// The condition line of the snippet (the one with `then {`).
fn filter_line(snippet: &str) -> String {
    snippet.lines().find(|l| l.contains(" then {")).expect("a filter line").trim().to_string()
}

/// A case: its name, the environment, an existing ipta.conf, the filter line expected.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<&'a str>, String);

const IPT: &str = "$msg contains \"IPT: \"";
const NETFILTER: &str = "($msg contains \"IN=\" and $msg contains \" OUT=\")";

#[test]
fn the_snippet_filter_follows_the_configured_kind_and_every_variant_validates() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cases: Vec<Case> = vec![
        ("default", vec![], None, format!("and ({IPT}) then {{")),
        ("ufw", vec![("IPTA_RULES", "ufw")], None, format!("and ({IPT} or $msg contains \"[UFW \") then {{")),
        ("shorewall", vec![("IPTA_RULES", "shorewall")], None, format!("and ({IPT} or $msg contains \"Shorewall:\") then {{")),
        (
            "both",
            vec![("IPTA_RULES", "UFW, shorewall")],
            None,
            format!("and ({IPT} or $msg contains \"[UFW \" or $msg contains \"Shorewall:\") then {{"),
        ),
        ("any", vec![("IPTA_RULES", "any")], None, format!("and {NETFILTER} then {{")),
        ("regex-env", vec![("IPTA_RULES", "regex")], None, format!("and {NETFILTER} then {{")),
        // From an existing ipta.conf: the key as users write it (quotes, case, dash).
        ("conf-ufw", vec![], Some("db_user = ipta\nRules = \"ufw\"\n"), format!("and ({IPT} or $msg contains \"[UFW \") then {{")),
        ("conf-regex", vec![], Some("rule-regex = ^fw-(?P<action>[A-Z]+)\n"), format!("and {NETFILTER} then {{")),
        // The environment wins over the file.
        ("env-wins", vec![("IPTA_RULES", "shorewall")], Some("rules = any\n"), format!("and ({IPT} or $msg contains \"Shorewall:\") then {{")),
    ];
    for (name, env, conf, want) in cases {
        let (_, snippet) = install_with(t, name, &env, conf);
        assert_eq!(filter_line(&snippet), want, "{name}");
        // Still only the kernel's lines.
        assert!(snippet.contains("($inputname == \"imklog\" and $syslogfacility-text == \"kern\")"), "{name}");
        let path = t.join(format!("{name}.conf"));
        std::fs::write(&path, &snippet).unwrap();
        let (ok, err) = validate(&[&path]);
        assert!(ok, "{name}: rsyslogd -N1: {err}");
    }
    // An unknown kind is refused, and nothing is installed.
    let src = source_tree(&t.join("src-bad"));
    let root = t.join("root-bad");
    let out = Command::new("bash")
        .arg(src.join("install.sh"))
        .arg("--no-build")
        .env("DESTDIR", &root)
        .env("IPTA_RULES", "ufw,pfsense")
        .env("IPTA_CONF_GROUP", util_group())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown kind of lines 'pfsense'"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!root.join("etc/rsyslog.d/30-ipta.conf").exists());
}

/// The installed UFW variant in a real rsyslogd: UFW and `IPT: ` lines from the kernel reach
/// the file and the database; a firewalld line, a forged UFW line (facility user) and a kernel
/// line that is no firewall's do not.
#[test]
fn a_real_rsyslogd_with_the_ufw_snippet_passes_ufw_lines_to_ingest() {
    let db = TestDb::new("install_filter_ufw");
    let tmp = tempfile::tempdir().unwrap();
    let (_, mut text) = install_with(tmp.path(), "live", &[("IPTA_RULES", "ufw")], None);
    let d = tmp.path();
    let conf = ingest_conf(d, &db.settings);
    // ipta-ingest reads the same one setting.
    let mut c = std::fs::OpenOptions::new().append(true).open(&conf).unwrap();
    writeln!(c, "rules = ufw").unwrap();
    drop(c);
    let port = free_port();
    subst(&mut text, "$inputname == \"imklog\"", "$inputname == \"imtcp\"");
    subst(
        &mut text,
        "/usr/local/bin/ipta-ingest --confirm",
        &format!("{} --config {} --confirm", util::bin("ipta-ingest").display(), conf.display()),
    );
    let file = d.join("iptables.log");
    let output = d.join("ingest.log");
    subst(&mut text, "/var/log/iptables.log", file.to_str().unwrap());
    subst(&mut text, "/var/log/ipta-ingest.log", output.to_str().unwrap());
    subst(&mut text, "/var/log/ipta-rejects.log", d.join("rejects.log").to_str().unwrap());
    let rsyslog = Rsyslogd::start(
        d,
        &format!(
            "global(workDirectory=\"{}\")\nmodule(load=\"imtcp\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n{text}",
            d.display()
        ),
    );
    let mut tcp = rsyslog.connect(port);
    let stamp = chrono::Local::now().format("%b %e %H:%M:%S").to_string();
    let fields = "IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=198.51.100.7 DST=192.0.2.10 \
                  LEN=40 TOS=0x00 PREC=0x00 TTL=245 ID=54321 PROTO=TCP SPT=44444 DPT=23 WINDOW=1024 RES=0x00 SYN URGP=0";
    let lines = [
        format!("<4>{stamp} ubu kernel: [ 1234.567890] [UFW BLOCK] {fields}"),
        format!("<4>{stamp} ubu kernel: IPT: DROP {}", fields.replace("ID=54321", "ID=1")),
        format!("<4>{stamp} ubu kernel: filter_IN_public_REJECT: {}", fields.replace("ID=54321", "ID=2")),
        format!("<12>{stamp} ubu kernel: [UFW BLOCK] {}", fields.replace("ID=54321", "ID=3")),
        format!("<4>{stamp} ubu kernel: eth0: link up"),
        format!("<4>{stamp} ubu kernel: [UFW ALLOW] {}", fields.replace("ID=54321", "ID=4").replace("DPT=23", "DPT=22")),
    ];
    for l in &lines {
        writeln!(tcp, "{l}").unwrap();
    }
    tcp.flush().unwrap();
    let log = || std::fs::read_to_string(&output).unwrap_or_default();
    assert_eq!(wait_count(&db.settings, 3, Duration::from_secs(30)), 3, "{}", log());
    let t = Instant::now();
    let got = loop {
        let f = std::fs::read_to_string(&file).unwrap_or_default();
        if f.lines().count() >= 3 || t.elapsed() > Duration::from_secs(10) {
            break f;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(wait_count(&db.settings, 3, Duration::from_secs(1)), 3, "no more than the three");
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got[0].contains("[UFW BLOCK] IN=eth0") && got[1].contains("IPT: DROP") && got[2].contains("[UFW ALLOW]"), "{got:?}");
    use mysql::prelude::Queryable;
    let mut conn = ipta::store::connect(&db.settings).unwrap();
    let mut actions: Vec<String> =
        conn.query(format!("SELECT CAST(action AS CHAR) FROM `{}` ORDER BY action", db.settings.table)).unwrap();
    actions.sort();
    assert_eq!(actions, ["ALLOW", "BLOCK", "DROP"]);
}

/// `install.sh --journal`: the unit and the feed script with their paths under PREFIX, no
/// rsyslog snippet; --uninstall removes them.
#[test]
fn install_journal_lays_out_the_unit_instead_of_the_snippet() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source_tree(tmp.path());
    let root = tmp.path().join("root");
    let rsyslog_conf = tmp.path().join("rsyslog.conf");
    std::fs::write(&rsyslog_conf, "").unwrap();
    run_install_prefix(&src, &root, "/opt/ipta", &rsyslog_conf, &["--no-build", "--journal"]);
    let got = files(&root);
    assert!(!got.contains_key("/etc/rsyslog.d/30-ipta.conf"), "{got:?}");
    assert_eq!(got["/etc/systemd/system/ipta-journal.service"].0, 0o644);
    assert_eq!(got["/opt/ipta/libexec/ipta/ipta-journal-feed"].0, 0o755);
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/ipta-journal.service")).unwrap();
    assert!(unit.contains("ExecStart=/opt/ipta/libexec/ipta/ipta-journal-feed\n"), "{unit}");
    assert!(unit.contains("Environment=IPTA_INGEST=/opt/ipta/bin/ipta-ingest\n"), "{unit}");
    assert!(!unit.contains("/usr/local"), "{unit}");
    let feed = std::fs::read_to_string(root.join("opt/ipta/libexec/ipta/ipta-journal-feed")).unwrap();
    assert!(feed.contains("--journal-cursor \"$cursor\""), "{feed}");
    let sh = Command::new("sh").arg("-n").arg(root.join("opt/ipta/libexec/ipta/ipta-journal-feed")).output().unwrap();
    assert!(sh.status.success());
    run_install_prefix(&src, &root, "/opt/ipta", &rsyslog_conf, &["--uninstall"]);
    let left: Vec<String> = files(&root).into_keys().collect();
    assert!(left.is_empty(), "{left:?}");
}
