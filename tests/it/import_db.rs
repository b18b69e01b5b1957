//! `ipta --import` against the real server: rotated sets with gzip members and a year rollover,
//! idempotency (re-import, rotated or compressed copy, grown file), bad input, mixed formats,
//! the original's strict-mode failure case, and agreement with `--scan`.

use crate::util;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mysql::prelude::Queryable;

use ipta::import::{self, ImportOptions, ImportSummary};
use util::TestDb;

fn db_with_table(tag: &str) -> TestDb {
    let db = TestDb::new(tag);
    db.conn().query_drop(ipta::store::schema::create_table_sql("logs")).unwrap();
    db
}

fn opts() -> ImportOptions {
    ImportOptions { tz: Some("UTC".into()), ..Default::default() }
}

fn import(db: &TestDb, files: &[&Path]) -> ImportSummary {
    import_with(db, files, &opts())
}

fn import_with(db: &TestDb, files: &[&Path], o: &ImportOptions) -> ImportSummary {
    let files: Vec<PathBuf> = files.iter().map(|p| p.to_path_buf()).collect();
    let mut out = Vec::new();
    let s = import::run(&db.settings, &files, o, &mut out).expect("import runs");
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("imported"), "summary missing: {text}");
    s
}

fn count(db: &TestDb, filter: &str) -> u64 {
    db.conn().query_first(format!("SELECT COUNT(*) FROM logs {filter}")).unwrap().unwrap()
}

/// A syslog line (RFC 3164 stamp given) carrying a TCP packet numbered `n`.
fn line(stamp: &str, n: u32) -> String {
    let src = format!("203.0.113.{}", n % 250 + 1);
    util::Syn { stamp, src: &src, dst: "198.51.100.1", spt: 1024 + n % 60000, id: n, ..Default::default() }.line() + "\n"
}

fn write(path: &Path, lines: &[String], mtime: Option<&str>) {
    std::fs::write(path, lines.concat()).unwrap();
    set_mtime(path, mtime);
}

fn write_gz(path: &Path, lines: &[String], mtime: Option<&str>) {
    let mut e = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::default());
    e.write_all(lines.concat().as_bytes()).unwrap();
    e.finish().unwrap();
    set_mtime(path, mtime);
}

fn set_mtime(path: &Path, mtime: Option<&str>) {
    if let Some(t) = mtime {
        let t = chrono::DateTime::parse_from_rfc3339(t).unwrap();
        let st = SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp() as u64);
        std::fs::File::options().write(true).open(path).unwrap().set_modified(st).unwrap();
    }
}

/// Lines every `step` seconds from `start` (UTC), RFC 3164 stamps, numbered from `first`.
fn lines_from(start: &str, count: u32, step: i64, first: u32) -> Vec<String> {
    let t0 = chrono::NaiveDateTime::parse_from_str(start, "%Y-%m-%d %H:%M:%S").unwrap();
    (0..count)
        .map(|i| {
            let t = t0 + chrono::Duration::seconds(step * i as i64);
            line(&t.format("%b %e %H:%M:%S").to_string(), first + i)
        })
        .collect()
}

fn ts_range(db: &TestDb) -> (String, String) {
    db.conn()
        .query_first("SELECT DATE_FORMAT(MIN(ts), '%Y-%m-%d %H:%i:%s'), DATE_FORMAT(MAX(ts), '%Y-%m-%d %H:%i:%s') FROM logs")
        .unwrap()
        .unwrap()
}

#[test]
fn import_rotated_set_with_gzip_members_and_a_year_rollover() {
    let db = db_with_table("imp_rot");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // .2.gz: Dec 30; .1: Dec 31 22:00 -> Jan 1 02:00 (the rollover inside one file); live: Jan 1.
    write_gz(&d.join("fw.log.2.gz"), &lines_from("2025-12-30 10:00:00", 300, 60, 0), Some("2025-12-31T00:00:00Z"));
    write(&d.join("fw.log.1"), &lines_from("2025-12-31 22:00:00", 240, 60, 1000), Some("2026-01-01T06:00:00Z"));
    write(&d.join("fw.log"), &lines_from("2026-01-01 06:00:00", 100, 60, 2000), Some("2026-01-01T08:00:00Z"));
    let s = import(&db, &[&d.join("fw.log"), &d.join("fw.log.1"), &d.join("fw.log.2.gz")]);
    let names: Vec<&str> = s.files.iter().map(|f| f.name.rsplit('/').next().unwrap()).collect();
    assert_eq!(names, ["fw.log.2.gz", "fw.log.1", "fw.log"], "oldest first");
    assert!(s.files[0].gzip);
    assert!(!s.has_failures(), "{:?}", s.files);
    assert_eq!((s.lines(), s.added(), s.already_present(), s.rejected(), s.not_ours()), (640, 640, 0, 0, 0));
    assert_eq!(count(&db, ""), 640);
    assert_eq!(ts_range(&db), ("2025-12-30 10:00:00".into(), "2026-01-01 07:39:00".into()));
    // The rollover file: 120 lines in 2025, 120 in 2026.
    assert_eq!(count(&db, "WHERE ts >= '2025-12-31 22:00:00' AND ts < '2026-01-01'"), 120);
    assert_eq!(count(&db, "WHERE ts >= '2026-01-01' AND ts < '2026-01-01 02:00:00'"), 120);
    // --year overrides the inference: every year-less stamp is put in that year.
    let db2 = db_with_table("imp_year");
    let s = import_with(&db2, &[&d.join("fw.log.1")], &ImportOptions { year: Some(2020), ..opts() });
    assert_eq!(s.added(), 240);
    assert_eq!(count(&db2, "WHERE YEAR(ts) = 2020"), 240);
}

#[test]
fn import_again_or_a_rotated_compressed_copy_adds_nothing() {
    let db = db_with_table("imp_idem");
    let dir = tempfile::tempdir().unwrap();
    let mut lines = lines_from("2025-06-01 12:00:00", 500, 7, 0);
    // A genuinely repeated packet: the same line twice. Both are rows.
    lines.push(lines[10].clone());
    lines.sort_by_key(|l| l[..15].to_string());
    let live = dir.path().join("fw.log");
    write(&live, &lines, Some("2025-06-02T00:00:00Z"));
    let s = import(&db, &[&live]);
    assert_eq!((s.lines(), s.added(), s.already_present()), (501, 501, 0));
    assert_eq!(count(&db, ""), 501);

    let s = import(&db, &[&live]);
    assert_eq!((s.added(), s.already_present()), (0, 501));
    // After rotation: the same content as fw.log.1.gz (its mtime a day later), and the live
    // file given twice.
    let rotated = dir.path().join("fw.log.1.gz");
    write_gz(&rotated, &lines, Some("2025-06-03T00:00:00Z"));
    let s = import(&db, &[&rotated, &live, &live]);
    assert_eq!((s.added(), s.already_present()), (0, 3 * 501));
    assert_eq!(count(&db, ""), 501);
}

#[test]
fn import_of_a_grown_file_adds_only_its_new_lines() {
    let db = db_with_table("imp_grow");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fw.log");
    let lines = lines_from("2025-03-01 00:00:00", 300, 30, 0);
    write(&p, &lines[..200], Some("2025-03-02T00:00:00Z"));
    assert_eq!(import(&db, &[&p]).added(), 200);
    write(&p, &lines, Some("2025-03-02T00:00:00Z"));
    let s = import(&db, &[&p]);
    assert_eq!((s.added(), s.already_present()), (100, 200));
    assert_eq!(count(&db, ""), 300);
}

#[test]
fn import_survives_a_corrupt_gzip_garbage_and_a_missing_file() {
    let db = db_with_table("imp_bad");
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("old.log.gz");
    // Enough lines that the damage lands well inside the stream.
    let lines = lines_from("2025-05-01 00:00:00", 20_000, 2, 0);
    write_gz(&gz, &lines, Some("2025-05-03T00:00:00Z"));
    let mut z = std::fs::read(&gz).unwrap();
    z.truncate(z.len() / 2);
    std::fs::write(&gz, z).unwrap();
    set_mtime(&gz, Some("2025-05-03T00:00:00Z"));
    let junk = dir.path().join("junk.log");
    let mut data = lines_from("2025-05-02 00:00:00", 3, 1, 50_000).concat().into_bytes();
    data.extend_from_slice(b"\x00\x01\x02\xff\xfe binary \x00\n");
    data.extend(std::iter::repeat(b'A').take(10 * 1024 * 1024));
    data.extend_from_slice(b"\n");
    data.extend(lines_from("2025-05-02 01:00:00", 2, 1, 60_000).concat().into_bytes());
    std::fs::write(&junk, data).unwrap();
    set_mtime(&junk, Some("2025-05-03T00:00:00Z"));
    let missing = dir.path().join("missing.log");
    let s = import(&db, &[&gz, &missing, &junk]);
    assert!(s.has_failures());
    let (g, m, j) = (&s.files[0], &s.files[1], &s.files[2]);
    assert!(g.gzip && g.failures.len() == 1, "{g:?}");
    assert!(g.lines > 1000 && g.lines < 20_000, "{}", g.lines);
    assert_eq!(g.added, g.lines, "every line read before the damage is stored");
    assert!(m.failures[0].contains("cannot open"), "{m:?}");
    assert!(j.failures.is_empty(), "{j:?}");
    assert_eq!((j.lines, j.added), (7, 5));
    assert_eq!(j.rejected.iter().find(|r| r.kind == Some(ipta::parse::RejectKind::TooLong)).unwrap().first_lines, [5]);
    assert_eq!(count(&db, ""), g.lines + 5);
}

#[test]
fn import_mixed_rfc3164_and_rfc3339_files_stores_utc() {
    let db = db_with_table("imp_mixed");
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    write(&a, &[line("Jul  4 10:00:00", 1)], Some("2025-07-05T00:00:00Z"));
    let b = dir.path().join("b.log");
    let l = line("2025-07-04T12:30:00.250000+01:00", 2);
    let l2 = line("2025-07-04T11:30:01Z", 3);
    std::fs::write(&b, format!("{l}{l2}")).unwrap();
    let s = import(&db, &[&a, &b]);
    assert_eq!(s.added(), 3, "{:?}", s.files);
    let got: Vec<String> = db
        .conn()
        .query("SELECT DATE_FORMAT(ts, '%Y-%m-%d %H:%i:%s.%f') FROM logs ORDER BY ts")
        .unwrap();
    assert_eq!(got, ["2025-07-04 10:00:00.000000", "2025-07-04 11:30:00.250000", "2025-07-04 11:30:01.000000"]);
}

#[test]
fn import_packets_without_ports_cleanly() {
    let db = db_with_table("imp_strict");
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/import/strict-mode.log");
    let s = import(&db, &[&p]);
    assert!(!s.has_failures());
    assert_eq!((s.lines(), s.added(), s.rejected(), s.not_ours()), (26, 26, 0, 0), "{:?}", s.files);
    assert_eq!(count(&db, "WHERE proto IN ('ICMP', 'ICMPv6') AND spt IS NULL AND dpt IS NULL"), 5);
    assert_eq!(count(&db, "WHERE proto = '47'"), 1);
    // The ICMP error keeps its outer packet; the embedded one is in inner_*.
    assert_eq!(count(&db, "WHERE icmp_type = 3 AND inner_proto = 'UDP' AND inner_dpt = 123 AND dpt IS NULL"), 1);
}

/// The corpus of the project's shared directory, when this checkout sits next to it.
fn shared_corpus(name: &str) -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    [repo.join("../shared/corpus"), repo.join("../../shared/corpus")]
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
}

#[test]
fn import_of_the_seed_example_counts_like_scan() {
    let Some(seed) = shared_corpus("seed-example.log") else {
        eprintln!("skipped: ../shared/corpus/seed-example.log not found");
        return;
    };
    let reference = ipta::record::Timestamp(
        std::fs::metadata(&seed).unwrap().modified().unwrap().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_micros()
            as i64,
    );
    let scan_opts = ipta::scan::ScanOptions {
        format: ipta::scan::ScanFormat::Json,
        parse: ipta::parse::ParseOptions { reference, year: None, tz: Some("UTC".into()), rules: Default::default() },
    };
    let mut json = Vec::new();
    let mut err = Vec::new();
    let mut input = std::io::BufReader::new(std::fs::File::open(&seed).unwrap());
    let scanned = ipta::scan::run(&mut input, &mut json, &mut err, &scan_opts).unwrap();
    let mut by_action = std::collections::BTreeMap::<String, u64>::new();
    for l in String::from_utf8(json).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        *by_action.entry(v["action"].as_str().unwrap().to_string()).or_default() += 1;
    }

    let db = db_with_table("imp_seed");
    let s = import(&db, &[&seed]);
    assert_eq!((s.lines(), s.not_ours(), s.rejected()), (scanned.lines, scanned.not_ours, scanned.rejected));
    assert_eq!(s.added(), scanned.packets);
    let stored: Vec<(String, u64)> =
        db.conn().query("SELECT action, COUNT(*) FROM logs GROUP BY action ORDER BY action").unwrap();
    assert_eq!(stored, by_action.into_iter().collect::<Vec<_>>());
    assert_eq!(count(&db, ""), 200);
}

/// Every stored value of every row, in key order (`id` aside).
fn table_dump(db: &TestDb) -> Vec<String> {
    let cols: Vec<String> = ipta::store::schema::COLUMNS
        .iter()
        .filter(|(c, _)| *c != "id")
        .map(|(c, _)| format!("IFNULL(HEX(`{c}`), 'N')"))
        .collect();
    db.conn()
        .query(format!("SELECT CONCAT_WS('|', {}) FROM logs ORDER BY ts, line_hash, occ", cols.join(", ")))
        .unwrap()
}

#[test]
fn import_load_data_fast_path_stores_what_the_insert_writer_stores() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = repo.join("examples/iptables.log");
    let strict = repo.join("tests/data/import/strict-mode.log");
    let fast = db_with_table("imp_fast");
    let slow = db_with_table("imp_slow");
    let a = import(&fast, &[&example, &strict]);
    let b = import_with(&slow, &[&example, &strict], &ImportOptions { no_load_data: true, ..opts() });
    assert_eq!((a.added(), a.lines()), (b.added(), b.lines()));
    assert_eq!(a.added(), 3026);
    let (da, db_) = (table_dump(&fast), table_dump(&slow));
    assert_eq!(da.len(), 3026);
    assert!(da == db_, "the two paths stored different values");
}
