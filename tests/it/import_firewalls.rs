//! Real firewalls' log files imported as a new user would: `ipta -i FILE -a --format json` with
//! the one setting each kind needs in a config file (`rules = ufw`, `rules = shorewall`,
//! `rules = any` for firewalld, OpenWrt and plain nftables), against the real server. Each
//! file in tests/fixtures/firewalls/ holds lines in the form that kind of machine writes
//! (UFW's ufw.log, RHEL's rsyslog with firewalld's prefixes, OpenWrt's `logread`, `journalctl
//! -k -o short-iso-precise` of a Debian machine with nftables, Shorewall in /var/log/messages),
//! with a line or two of other programs among them. The expected rows are counted by hand
//! from the files: packets, the actions, the packets per source and the ports per source.
//!
//! And the other way round: imported without the setting, nothing is stored and the summary
//! names the option that reads these lines.

use crate::util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mysql::prelude::Queryable;

/// What one file must give.
struct Kind {
    file: &'static str,
    /// The config file line that makes ipta read the file.
    setting: &'static str,
    /// What the summary of an import without the setting must tell.
    hint: &'static str,
    packets: u64,
    /// Lines of other programs in the file (not firewall lines).
    other_lines: u64,
    actions: &'static [(&'static str, u64)],
    /// Per source: packets and actions with their counts.
    sources: &'static [(&'static str, &'static [(&'static str, u64)])],
    /// Every stored packet as (source, destination port, protocol, action), with its count.
    rows: &'static [(&'static str, u16, &'static str, &'static str, u64)],
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/firewalls").join(name)
}

/// The binary with a clean environment and the test database, the settings in `config`.
fn ipta(db: &util::TestDb, home: &Path, config: &Path) -> Command {
    let mut c = util::ipta_isolated(db, home);
    c.arg("--config").arg(config);
    c
}

fn write_config(home: &Path, name: &str, lines: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = home.join(name);
    std::fs::write(&p, lines).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn run(c: &mut Command) -> (String, String) {
    let out = c.output().expect("run ipta");
    let (so, se) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "exit {:?}\n{so}\n{se}", out.status.code());
    (so, se)
}

fn check(tag: &str, k: &Kind) {
    let db = util::TestDb::new(tag);
    for t in ["logs", "without"] {
        db.conn().query_drop(ipta::store::schema::create_table_sql(t)).unwrap();
    }
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let log = fixture(k.file);

    // Without the setting: nothing stored, and the summary leads to the option.
    let plain = write_config(h, "plain.conf", "tz = UTC\n");
    let (out, err) = run(ipta(&db, h, &plain).args(["-t", "without", "-i"]).arg(&log));
    let said = format!("{out}{err}");
    let skipped = format!("{} firewall line{} with other prefixes", k.packets, if k.packets == 1 { "" } else { "s" });
    assert!(said.contains(&skipped), "{}: {said}", k.file);
    assert!(said.contains(k.hint), "{}: the hint should name {:?}: {said}", k.file, k.hint);
    assert!(said.contains("rows added 0"), "{}: {said}", k.file);

    // With it: the report of `-i FILE -a --format json`.
    let cfg = write_config(h, "ipta.conf", &format!("tz = UTC\n{}\n", k.setting));
    let (out, err) = run(ipta(&db, h, &cfg).args(["-i"]).arg(&log).args(["-a", "--format", "json", "-l", "100"]));
    assert!(!format!("{out}{err}").contains("skipped ("), "{}: nothing should be skipped: {out}{err}", k.file);
    assert!(out.contains(&format!("rows added {}", k.packets)), "{}: {out}", k.file);
    let json_at = out.find("\n{").map(|i| i + 1).or_else(|| out.starts_with('{').then_some(0)).expect("a JSON report");
    let rep: serde_json::Value = serde_json::from_str(&out[json_at..]).unwrap_or_else(|e| panic!("{}: {e}: {out}", k.file));
    assert_eq!(rep["packets"], k.packets, "{}", k.file);

    // Actions, from the timeline's buckets (every packet, every action).
    let mut actions: BTreeMap<String, u64> = BTreeMap::new();
    for b in rep["modules"]["timeline"]["buckets"].as_array().unwrap() {
        for (a, n) in b["actions"].as_object().unwrap() {
            *actions.entry(a.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    let want: BTreeMap<String, u64> = k.actions.iter().map(|(a, n)| (a.to_string(), *n)).collect();
    assert_eq!(actions, want, "{}: actions", k.file);

    // Sources with their actions.
    let mut sources: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for r in rep["modules"]["sources"]["rows"].as_array().unwrap() {
        let per: BTreeMap<String, u64> = r["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["action"].as_str().unwrap().to_string(), a["count"].as_u64().unwrap()))
            .collect();
        assert_eq!(per.values().sum::<u64>(), r["count"].as_u64().unwrap(), "{}: {r}", k.file);
        sources.insert(r["src"].as_str().unwrap().to_string(), per);
    }
    let want: BTreeMap<String, BTreeMap<String, u64>> = k
        .sources
        .iter()
        .map(|(s, acts)| (s.to_string(), acts.iter().map(|(a, n)| (a.to_string(), *n)).collect()))
        .collect();
    assert_eq!(sources, want, "{}: sources", k.file);

    // The denied ports, as the report gives them (action not ACCEPT).
    let mut denied: BTreeMap<(String, u64, String, String), u64> = BTreeMap::new();
    for r in rep["modules"]["denied"]["rows"].as_array().unwrap() {
        let key = (
            r["src"].as_str().unwrap().to_string(),
            r["dpt"].as_u64().unwrap(),
            r["proto"].as_str().unwrap().to_string(),
            r["action"].as_str().unwrap().to_string(),
        );
        *denied.entry(key).or_default() += r["count"].as_u64().unwrap();
    }
    let want: BTreeMap<(String, u64, String, String), u64> = k
        .rows
        .iter()
        .filter(|r| r.3 != "ACCEPT")
        .map(|(s, p, pr, a, n)| ((s.to_string(), u64::from(*p), pr.to_string(), a.to_string()), *n))
        .collect();
    assert_eq!(denied, want, "{}: denied ports", k.file);

    // Every stored row, ACCEPT included, straight from the table.
    let stored: Vec<(String, u16, String, String, u64)> = db
        .conn()
        .query(
            "SELECT INET6_NTOA(`src`), `dpt`, `proto`, `action`, CAST(SUM(`repeat`) AS UNSIGNED) FROM `logs` \
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        )
        .unwrap();
    let mut want: Vec<(String, u16, String, String, u64)> =
        k.rows.iter().map(|(s, p, pr, a, n)| (s.to_string(), *p, pr.to_string(), a.to_string(), *n)).collect();
    want.sort();
    let mut stored = stored;
    stored.sort();
    assert_eq!(stored, want, "{}: stored rows", k.file);

    // The summary counted the other programs' lines as not ipta's, and nothing was rejected.
    assert!(out.contains(&format!("not ipta's {}, rejected 0", k.other_lines)), "{}: {out}", k.file);
}

#[test]
fn ufw_log_with_rules_ufw() {
    check(
        "fw_ufw",
        &Kind {
            file: "ufw.log",
            setting: "rules = ufw",
            hint: "add --rules ufw",
            packets: 10,
            other_lines: 0,
            actions: &[("BLOCK", 7), ("ALLOW", 1), ("AUDIT", 1), ("LIMIT BLOCK", 1)],
            sources: &[
                ("45.155.205.233", &[("BLOCK", 4)]),
                ("198.51.100.77", &[("BLOCK", 2)]),
                ("203.0.113.5", &[("ALLOW", 1)]),
                ("192.0.2.44", &[("AUDIT", 1)]),
                ("203.0.113.99", &[("LIMIT BLOCK", 1)]),
                ("2001:db8::5", &[("BLOCK", 1)]),
            ],
            rows: &[
                ("45.155.205.233", 3389, "TCP", "BLOCK", 1),
                ("45.155.205.233", 22, "TCP", "BLOCK", 1),
                ("45.155.205.233", 23, "TCP", "BLOCK", 1),
                ("45.155.205.233", 445, "TCP", "BLOCK", 1),
                ("198.51.100.77", 5060, "UDP", "BLOCK", 2),
                ("203.0.113.5", 22, "TCP", "ALLOW", 1),
                ("192.0.2.44", 53, "UDP", "AUDIT", 1),
                ("203.0.113.99", 22, "TCP", "LIMIT BLOCK", 1),
                ("2001:db8::5", 443, "TCP", "BLOCK", 1),
            ],
        },
    );
}

#[test]
fn firewalld_log_with_rules_any() {
    check(
        "fw_firewalld",
        &Kind {
            file: "firewalld.log",
            setting: "rules = any",
            hint: "add --rules any",
            packets: 9,
            other_lines: 1,
            actions: &[("REJECT", 5), ("DROP", 4)],
            sources: &[
                ("185.220.101.4", &[("REJECT", 3)]),
                ("fe80::9a9b:cbff:fe9d:f436", &[("REJECT", 1)]),
                ("193.32.162.10", &[("DROP", 2)]),
                ("203.0.113.50", &[("DROP", 1)]),
                ("10.9.9.9", &[("DROP", 1)]),
                ("198.51.100.200", &[("REJECT", 1)]),
            ],
            rows: &[
                ("185.220.101.4", 23, "TCP", "REJECT", 1),
                ("185.220.101.4", 2323, "TCP", "REJECT", 1),
                ("185.220.101.4", 8080, "TCP", "REJECT", 1),
                ("fe80::9a9b:cbff:fe9d:f436", 53805, "UDP", "REJECT", 1),
                ("193.32.162.10", 1900, "UDP", "DROP", 2),
                ("203.0.113.50", 51514, "TCP", "DROP", 1),
                ("10.9.9.9", 53, "UDP", "DROP", 1),
                ("198.51.100.200", 5432, "TCP", "REJECT", 1),
            ],
        },
    );
}

#[test]
fn openwrt_logread_with_rules_any() {
    check(
        "fw_openwrt",
        &Kind {
            file: "openwrt.log",
            setting: "rules = any",
            hint: "add --rules any",
            packets: 7,
            other_lines: 1,
            actions: &[("REJECT", 4), ("DROP", 3)],
            sources: &[
                ("45.155.205.233", &[("REJECT", 3)]),
                ("91.191.209.198", &[("DROP", 2)]),
                ("192.168.1.20", &[("DROP", 1)]),
                ("2001:db8:feed::1", &[("REJECT", 1)]),
            ],
            rows: &[
                ("45.155.205.233", 8291, "TCP", "REJECT", 1),
                ("45.155.205.233", 8728, "TCP", "REJECT", 1),
                ("45.155.205.233", 23, "TCP", "REJECT", 1),
                ("91.191.209.198", 3389, "TCP", "DROP", 2),
                ("192.168.1.20", 443, "TCP", "DROP", 1),
                ("2001:db8:feed::1", 22, "TCP", "REJECT", 1),
            ],
        },
    );
}

#[test]
fn nftables_journal_export_with_rules_any() {
    check(
        "fw_nftables",
        &Kind {
            file: "nftables.log",
            setting: "rules = any",
            hint: "add --rules any",
            packets: 8,
            other_lines: 1,
            actions: &[("DENY", 4), ("DROP", 2), ("ACCEPT", 1), ("LOG", 1)],
            sources: &[
                ("167.94.138.120", &[("DENY", 3)]),
                ("192.0.2.10", &[("DENY", 1)]),
                ("203.0.113.77", &[("DROP", 2)]),
                ("203.0.113.5", &[("ACCEPT", 1)]),
                ("192.0.2.200", &[("LOG", 1)]),
            ],
            rows: &[
                ("167.94.138.120", 5432, "TCP", "DENY", 1),
                ("167.94.138.120", 6379, "TCP", "DENY", 1),
                ("167.94.138.120", 9200, "TCP", "DENY", 1),
                ("192.0.2.10", 53, "UDP", "DENY", 1),
                ("203.0.113.77", 40022, "TCP", "DROP", 1),
                ("203.0.113.77", 40024, "TCP", "DROP", 1),
                ("203.0.113.5", 22, "TCP", "ACCEPT", 1),
                ("192.0.2.200", 137, "UDP", "LOG", 1),
            ],
        },
    );
}

#[test]
fn shorewall_log_with_rules_shorewall() {
    check(
        "fw_shorewall",
        &Kind {
            file: "shorewall.log",
            setting: "rules = shorewall",
            hint: "add --rules shorewall",
            packets: 7,
            other_lines: 1,
            actions: &[("DROP", 4), ("REJECT", 2), ("ACCEPT", 1)],
            sources: &[
                ("80.82.77.139", &[("DROP", 3), ("REJECT", 1)]),
                ("192.168.1.23", &[("REJECT", 1)]),
                ("10.0.0.5", &[("DROP", 1)]),
                ("203.0.113.8", &[("ACCEPT", 1)]),
            ],
            rows: &[
                ("80.82.77.139", 3306, "TCP", "DROP", 1),
                ("80.82.77.139", 1433, "TCP", "DROP", 1),
                ("80.82.77.139", 5900, "TCP", "DROP", 1),
                ("80.82.77.139", 161, "UDP", "REJECT", 1),
                ("192.168.1.23", 25, "TCP", "REJECT", 1),
                ("10.0.0.5", 67, "UDP", "DROP", 1),
                ("203.0.113.8", 22, "TCP", "ACCEPT", 1),
            ],
        },
    );
}
