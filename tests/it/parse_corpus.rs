//! The parser against the shared corpus of real log lines (../shared/corpus/*.log): every line's
//! expected outcome is written down in tests/fixtures/corpus/ (the record as JSON, or NotOurs).
//! Runs only when the corpus is there: `<repo>/../shared`, or the directory in IPTA_SHARED.
//!
//! peer-samples.log holds independent lines from many sources, so each gets a fresh parser;
//! seed-example.log is one stream (one parser, year inference across lines).

use std::path::PathBuf;

use ipta::parse::{ActionRules, Outcome, ParseOptions, Parser};
use ipta::record::Timestamp;

fn shared() -> Option<PathBuf> {
    let dir = std::env::var_os("IPTA_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    if dir.join("corpus").is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: no shared corpus at {} (set IPTA_SHARED)", dir.display());
        None
    }
}

fn opts(rules: ActionRules) -> ParseOptions {
    ParseOptions {
        reference: Timestamp(chrono::DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z").unwrap().timestamp_micros()),
        year: None,
        tz: Some("UTC".into()),
        rules,
    }
}

fn render(o: &Outcome<'_>) -> String {
    match o {
        Outcome::NotOurs => "NotOurs".into(),
        Outcome::Rejected(r) => format!("Rejected {:?}: {}", r.kind, r.reason),
        Outcome::Packet(r) => {
            let mut b = Vec::new();
            ipta::follow::packet::write_json(r, &mut b);
            String::from_utf8(b).unwrap()
        }
    }
}

fn lines(path: &PathBuf) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap();
    let mut v: Vec<Vec<u8>> = data.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
    if v.last().is_some_and(|l| l.is_empty()) {
        v.pop();
    }
    v
}

/// Compares outcomes with tests/fixtures/corpus/<name>; IPTA_WRITE_EXPECTED=1 writes it instead
/// (for a person to review).
fn check(name: &str, got: &[String]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus").join(name);
    if std::env::var_os("IPTA_WRITE_EXPECTED").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got.join("\n") + "\n").unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap();
    let want: Vec<&str> = want.lines().collect();
    assert_eq!(want.len(), got.len(), "{name}: line count");
    let mut bad = Vec::new();
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        let same = if w.starts_with('{') {
            serde_json::from_str::<serde_json::Value>(w).unwrap() == serde_json::from_str::<serde_json::Value>(g).unwrap_or_default()
        } else {
            w == g
        };
        if !same {
            bad.push(format!("line {}:\n want {w}\n got  {g}", i + 1));
        }
    }
    assert!(bad.is_empty(), "{name}:\n{}", bad.join("\n"));
}

fn each_fresh(lines: &[Vec<u8>], rules: &ActionRules) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let mut p = Parser::new(opts(rules.clone())).unwrap();
            render(&p.parse(l))
        })
        .collect()
}

#[test]
fn peer_samples_default_rule_takes_no_foreign_line() {
    let Some(dir) = shared() else { return };
    let ls = lines(&dir.join("corpus/peer-samples.log"));
    assert_eq!(ls.len(), 60);
    // No line of other tools carries the `IPT: <ACTION>` prefix: all are skipped, none rejected.
    let got = each_fresh(&ls, &ActionRules::default());
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g, "NotOurs", "line {}", i + 1);
    }
}

#[test]
fn peer_samples_with_ufw_and_shorewall_presets() {
    let Some(dir) = shared() else { return };
    let ls = lines(&dir.join("corpus/peer-samples.log"));
    let got = each_fresh(&ls, &ActionRules { ufw: true, shorewall: true, ..Default::default() });
    let parsed: Vec<usize> = got.iter().enumerate().filter(|(_, g)| g.starts_with('{')).map(|(i, _)| i + 1).collect();
    // The UFW lines (35, 51, 52, 54, 59, 60) and the Shorewall lines (6, 45, 46).
    assert_eq!(parsed, vec![6, 35, 45, 46, 51, 52, 54, 59, 60]);
    assert!(got.iter().all(|g| g.starts_with('{') || g == "NotOurs"));
    check("peer-samples.presets.expected", &got);
}

#[test]
fn peer_samples_with_any_prefix() {
    let Some(dir) = shared() else { return };
    let ls = lines(&dir.join("corpus/peer-samples.log"));
    let got = each_fresh(&ls, &ActionRules { ufw: true, shorewall: true, any: true, ..Default::default() });
    let skipped: Vec<usize> = got.iter().enumerate().filter(|(_, g)| !g.starts_with('{')).map(|(i, _)| i + 1).collect();
    // 28, 29: UDM-Pro lines cut before IN=/SRC=; 33: `XX=` instead of `IN=`; 39: pvefw-logger
    // OUTPUT line without IN= (not the kernel's format).
    assert_eq!(skipped, vec![28, 29, 33, 39]);
    check("peer-samples.any.expected", &got);
}

#[test]
fn seed_example_all_200_lines_parse() {
    let Some(dir) = shared() else { return };
    let ls = lines(&dir.join("corpus/seed-example.log"));
    assert_eq!(ls.len(), 200);
    let mut p = Parser::new(opts(ActionRules::default())).unwrap();
    let mut counts = std::collections::BTreeMap::new();
    let mut got = Vec::new();
    let mut last = Timestamp(i64::MIN);
    for l in &ls {
        let o = p.parse(l);
        match &o {
            Outcome::Packet(r) => {
                *counts.entry(r.action.to_string()).or_insert(0) += 1;
                assert!(r.ts >= last, "time goes backwards");
                last = r.ts;
                assert_eq!(r.host, Some("zathras"));
            }
            other => panic!("not parsed: {other:?}: {}", String::from_utf8_lossy(l)),
        }
        got.push(render(&o));
    }
    let want: Vec<(String, i32)> =
        [("ACCEPT", 163), ("CBLK", 8), ("DROP", 16), ("INVALID", 13)].iter().map(|(a, n)| (a.to_string(), *n)).collect();
    assert_eq!(counts.into_iter().collect::<Vec<_>>(), want);
    check("seed-example.expected", &got);
}
