//! The parser against its fixtures (tests/fixtures/cases.txt): every case of the kernel's LOG
//! format and of the syslog headers around it, each with the record it must give (compared as
//! JSON, the keys of `--format json`), or NotOurs, or the kind of rejection.

use std::fmt::Write as _;

use ipta::parse::{ActionRules, Outcome, ParseOptions, Parser, RejectKind};
use ipta::record::Timestamp;

struct Case {
    name: String,
    opts: String,
    line: Vec<u8>,
    want: Option<String>,
    msg: Option<String>,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cases.txt")).unwrap();
    let mut out: Vec<Case> = Vec::new();
    for l in text.lines() {
        if let Some(name) = l.strip_prefix("## ") {
            out.push(Case { name: name.into(), opts: String::new(), line: Vec::new(), want: None, msg: None });
            continue;
        }
        let Some(c) = out.last_mut() else { continue };
        if let Some(v) = l.strip_prefix("opts: ") {
            c.opts = v.into();
        } else if let Some(v) = l.strip_prefix("line: ") {
            let tail = std::mem::take(&mut c.line);
            c.line = v.as_bytes().to_vec();
            c.line.extend(tail);
        } else if let Some(v) = l.strip_prefix("hex: ") {
            c.line = unhex(v);
        } else if let Some(v) = l.strip_prefix("append-hex: ") {
            c.line.extend(unhex(v));
        } else if let Some(v) = l.strip_prefix("want: ") {
            c.want = Some(v.into());
        } else if let Some(v) = l.strip_prefix("msg: ") {
            c.msg = Some(v.into());
        }
    }
    out
}

fn ts(s: &str) -> Timestamp {
    let t = chrono::DateTime::parse_from_rfc3339(s).expect("ref");
    Timestamp(t.timestamp_micros())
}

/// Options of a case: words of its `opts:` line over the defaults.
pub fn options(spec: &str) -> ParseOptions {
    let mut o = ParseOptions {
        reference: ts("2026-11-25T12:00:00Z"),
        year: None,
        tz: Some("UTC".into()),
        rules: ActionRules::default(),
    };
    for w in spec.split_whitespace() {
        match w.split_once('=') {
            None if w == "ufw" => o.rules.ufw = true,
            None if w == "shorewall" => o.rules.shorewall = true,
            None if w == "any" => o.rules.any = true,
            Some(("regex", v)) => o.rules.regex = Some(v.into()),
            Some(("tz", v)) => o.tz = Some(v.into()),
            Some(("year", v)) => o.year = Some(v.parse().unwrap()),
            Some(("ref", v)) => o.reference = ts(v),
            _ => panic!("unknown option {w}"),
        }
    }
    o
}

fn kind_name(k: RejectKind) -> String {
    format!("{k:?}")
}

#[test]
fn every_fixture_gives_its_record() {
    let cases = cases();
    assert!(cases.len() >= 70, "fixtures missing");
    let mut failures = String::new();
    for c in &cases {
        let mut p = Parser::new(options(&c.opts)).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let got = p.parse(&c.line);
        let (got_s, msg) = match &got {
            Outcome::NotOurs => ("NotOurs".to_string(), None),
            Outcome::Rejected(r) => {
                assert!(!r.reason.is_empty());
                (format!("Rejected {}", kind_name(r.kind)), None)
            }
            Outcome::Packet(r) => {
                let mut b = Vec::new();
                ipta::follow::packet::write_json(r, &mut b);
                (String::from_utf8(b).unwrap(), Some(String::from_utf8_lossy(r.message).into_owned()))
            }
        };
        let ok = match &c.want {
            None => false,
            Some(w) if w.starts_with('{') => {
                let want: serde_json::Value = serde_json::from_str(w).unwrap_or_else(|e| panic!("{}: bad want: {e}", c.name));
                serde_json::from_str::<serde_json::Value>(&got_s).map(|g| g == want).unwrap_or(false)
            }
            Some(w) => *w == got_s,
        };
        if !ok {
            let _ = writeln!(failures, "## {}\nwant: {}\ngot:  {}\n", c.name, c.want.as_deref().unwrap_or("<none>"), got_s);
        }
        if let (Some(want_msg), Some(m)) = (&c.msg, &msg) {
            if want_msg != m {
                let _ = writeln!(failures, "## {}\nmessage want: {want_msg:?}\nmessage got:  {m:?}\n", c.name);
            }
        }
        if c.msg.is_some() && msg.is_none() {
            let _ = writeln!(failures, "## {}: a message was expected but there is no record\n", c.name);
        }
    }
    assert!(failures.is_empty(), "{failures}");
}
