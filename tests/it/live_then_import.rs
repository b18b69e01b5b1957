//! The paths that write rows, together, on one table with summaries: lines stored live by
//! ipta-ingest, then the log file rsyslog wrote of the same lines imported (nothing twice,
//! genuine repeats kept), then `--clear` and the import again. After each step the summary
//! tables, folded in small chunks, must equal a rebuild by the server's GROUP BY.

use crate::ingest_support;
use crate::util;

use std::path::PathBuf;
use std::time::Duration;

use mysql::prelude::Queryable;

use ingest_support::{line, Ingest};
use ipta::import::{self, ImportOptions};
use ipta::store::{schema, summary, tables};

/// Every summary row as text, sorted (the batch marks of the pair tables left out).
fn summaries(c: &mut mysql::Conn) -> Vec<String> {
    let mut v = Vec::new();
    for suf in summary::SUFFIXES {
        let cols = match *suf {
            summary::SRC_PORT => "`src`, `dpt`, `n`",
            summary::SRC_DST => "`src`, `dst`, `n`",
            _ => "*",
        };
        let rows: Vec<mysql::Row> = c.query(format!("SELECT {cols} FROM `logs{suf}`")).unwrap();
        for r in rows {
            let vals: Vec<String> = r.unwrap().iter().map(|x| x.as_sql(true)).collect();
            v.push(format!("{suf} {}", vals.join(" ")));
        }
    }
    v.sort();
    v
}

/// The summaries brought up to date by a fold (as the analyzer does), then as rebuilt from
/// the rows by the server's GROUP BY: must be equal.
fn assert_exact(c: &mut mysql::Conn, step: &str) {
    summary::fold_with(c, "logs", 97).unwrap();
    let kept = summaries(c);
    assert!(kept.len() > 2, "{step}: no summary rows");
    summary::rebuild_with_sql(c, "logs").unwrap();
    assert_eq!(kept, summaries(c), "{step}: summaries differ from a rebuild");
}

fn rows(c: &mut mysql::Conn) -> u64 {
    c.query_first("SELECT COUNT(*) FROM logs").unwrap().unwrap()
}

#[test]
fn live_rows_then_the_same_file_imported_then_clear() {
    let db = util::TestDb::new("live_import");
    let mut c = db.conn();
    schema::ensure_table(&mut c, "logs").unwrap();
    summary::create(&mut c, "logs").unwrap();

    // The stream: lines 0..600, with line 5 there four times (genuinely repeated packets).
    let mut stream: Vec<String> = (0..600).map(line).collect();
    for _ in 0..3 {
        stream.insert(6, line(5));
    }
    let mut ing = Ingest::start(&db.settings, &["--batch-size", "50"]);
    for l in &stream {
        ing.send(l);
    }
    let (code, err) = ing.close(Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    assert_eq!(rows(&mut c), 603, "{err}");
    assert_exact(&mut c, "after ingest");

    // The file rsyslog wrote meanwhile holds the same lines, and then 400 more.
    let mut file: Vec<String> = stream.clone();
    file.extend((600..1000).map(line));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iptables.log");
    std::fs::write(&path, file.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let files: Vec<PathBuf> = vec![path];
    let opts = ImportOptions { tz: Some("UTC".into()), ..Default::default() };
    let mut out = Vec::new();
    let s = import::run(&db.settings, &files, &opts, &mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert_eq!(rows(&mut c), 1003, "{text}");
    assert!(text.contains("rows added 400, already present 603"), "{text}");
    assert_eq!(s.files.len(), 1);
    assert_exact(&mut c, "after import");

    // --clear, then the import again: everything back, the summaries exact.
    assert_eq!(tables::clear_table(&mut c, "logs").unwrap(), 1003);
    assert_eq!(rows(&mut c), 0);
    let left = summaries(&mut c);
    assert_eq!(left, ["__sstate '1' '0'", "__sstate '2' '0'", "__sstate '3' '0'"], "summary rows left after clear");
    let mut out = Vec::new();
    import::run(&db.settings, &files, &opts, &mut out).unwrap();
    assert_eq!(rows(&mut c), 1003);
    assert_exact(&mut c, "after clear and import");
}
