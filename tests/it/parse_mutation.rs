//! Robustness: the parser never panics and keeps its invariants, whatever it is given.
//! Deterministic (fixed seeds): tens of thousands of mutations of real lines (the fixtures and
//! generated workload lines), binary garbage, and adversarial lines near and far beyond the
//! 64 KiB cap (10 MB). Adversarial lines just under the cap also show that no input costs more
//! than linear time: a quadratic path would make this test run for minutes.

use ipta::parse::{ActionRules, Outcome, ParseOptions, Parser, RejectKind, MAX_LINE};
use ipta::record::Timestamp;

use ipta_dev::genlog;

use genlog::Rng;

fn parsers() -> Vec<Parser> {
    let base = ParseOptions {
        reference: Timestamp(1_790_000_000_000_000),
        year: None,
        tz: Some("Europe/Berlin".into()),
        rules: ActionRules::default(),
    };
    let all = ParseOptions {
        rules: ActionRules { ufw: true, shorewall: true, regex: Some(r"(?P<action>[A-Z]{3,})[:\]]".into()), any: true, other_tags: false },
        tz: Some("UTC".into()),
        ..base.clone()
    };
    let forced = ParseOptions { year: Some(2024), tz: None, ..base.clone() };
    vec![Parser::new(base).unwrap(), Parser::new(all).unwrap(), Parser::new(forced).unwrap()]
}

fn within(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

/// Parses with every parser and checks what must hold for any outcome.
fn check(ps: &mut [Parser], line: &[u8]) {
    for p in ps.iter_mut() {
        match p.parse(line) {
            Outcome::Packet(r) => {
                assert!(within(line, r.message), "message is not a part of the line");
                // The action is a word of the line, `LOG`, or the verdict its prefix names.
                assert!(
                    r.action == "LOG"
                        || within(line, r.action.as_bytes())
                        || ipta::parse::rules::verdict(r.prefix.as_bytes()) == Some(r.action)
                );
                assert!(within(line, r.prefix.as_bytes()));
                assert!(r.message.starts_with(r.prefix.as_bytes()));
                assert!(r.pkt.src.is_some() && r.pkt.dst.is_some());
                assert!(r.repeat >= 1);
                assert!(!r.action.is_empty());
                let mut out = Vec::new();
                ipta::follow::packet::write_json(&r, &mut out);
                serde_json::from_slice::<serde_json::Value>(&out).expect("JSON of a record parses");
                out.clear();
                ipta::follow::packet::write_text(&r, &mut out);
            }
            Outcome::Rejected(rj) => assert!(!rj.reason.is_empty()),
            Outcome::NotOurs => {}
        }
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cases.txt")).unwrap();
    let mut v: Vec<Vec<u8>> = text.lines().filter_map(|l| l.strip_prefix("line: ")).map(|l| l.as_bytes().to_vec()).collect();
    let mut g = genlog::Gen::new(3, genlog::Style::Mixed);
    for _ in 0..200 {
        let mut l = Vec::new();
        g.line(&mut l);
        v.push(l);
    }
    v
}

const TOKENS: [&[u8]; 22] = [
    b" ", b"[", b"]", b"=", b":", b"(", b")", b"\xff", b"\0", b"\r", b"\t", b"IN=", b"OUT=", b"SRC=", b"DST=",
    b"IPT: ", b"[SRC=", b"INCOMPLETE [", b"OPT (", b"PROTO=ICMP ", b"message repeated 2 times: [ ", b"99999999999999999999",
];

fn mutate(r: &mut Rng, line: &mut Vec<u8>, other: &[u8]) {
    let n = r.range(1, 5);
    for _ in 0..n {
        let len = line.len() as u64;
        let at = if len == 0 { 0 } else { r.range(0, len + 1) as usize };
        match r.range(0, 8) {
            0 if !line.is_empty() => {
                let i = r.range(0, len) as usize;
                line[i] = r.range(0, 256) as u8;
            }
            1 => {
                let e = (at + r.range(0, 20) as usize).min(line.len());
                line.drain(at..e);
            }
            2 => {
                let e = (at + r.range(0, 30) as usize).min(line.len());
                let piece = line[at..e].to_vec();
                line.splice(at..at, piece);
            }
            3 => {
                let t = TOKENS[r.range(0, TOKENS.len() as u64) as usize];
                line.splice(at..at, t.iter().copied());
            }
            4 => line.truncate(at),
            5 => {
                let cut = if other.is_empty() { 0 } else { r.range(0, other.len() as u64) as usize };
                line.truncate(at);
                line.extend_from_slice(&other[cut..]);
            }
            6 => {
                // Swap a digit run for a huge number.
                if let Some(i) = line.iter().position(|c| c.is_ascii_digit()) {
                    line.splice(i..i + 1, b"4294967296000".iter().copied());
                }
            }
            _ => {
                let e = (at + r.range(1, 12) as usize).min(line.len());
                let piece = line[at..e].to_vec();
                for _ in 0..r.range(1, 50) {
                    line.splice(at..at, piece.iter().copied());
                }
            }
        }
    }
}

#[test]
fn mutated_real_lines_never_panic() {
    let seeds = seeds();
    let mut ps = parsers();
    let mut r = Rng::new(20_261_125);
    let mut parsed = 0;
    for i in 0..40_000 {
        let mut l = seeds[i % seeds.len()].clone();
        let other = &seeds[r.range(0, seeds.len() as u64) as usize];
        mutate(&mut r, &mut l, other);
        check(&mut ps, &l);
        if matches!(ps[0].parse(&l), Outcome::Packet(_)) {
            parsed += 1;
        }
    }
    // Many mutations leave a readable line: the test exercises the deep paths, not only rejects.
    assert!(parsed > 5_000, "{parsed}");
}

#[test]
fn binary_garbage_never_panics() {
    let mut ps = parsers();
    let mut r = Rng::new(7);
    for _ in 0..5_000 {
        let n = r.range(0, 2_000) as usize;
        let l: Vec<u8> = (0..n).map(|_| r.range(0, 256) as u8).collect();
        check(&mut ps, &l);
        // Garbage with a valid start.
        let mut l2 = b"Nov  5 06:35:08 fw1 kernel: IPT: DROP IN=eth0 OUT= ".to_vec();
        l2.extend_from_slice(&l[..n.min(300)]);
        check(&mut ps, &l2);
    }
}

fn repeat(head: &[u8], unit: &[u8], total: usize) -> Vec<u8> {
    let mut l = head.to_vec();
    while l.len() < total {
        l.extend_from_slice(unit);
    }
    l.truncate(total);
    l
}

const HEAD: &[u8] = b"Nov  5 06:35:08 fw1 kernel: IPT: DROP IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 PROTO=ICMP ";

#[test]
fn huge_lines_are_rejected_as_too_long() {
    let mut ps = parsers();
    for unit in [&b"A"[..], b"IN=", b"IPT: ", b" ", b"[SRC=", b"OPT ( "] {
        let l = repeat(HEAD, unit, 10 * 1024 * 1024);
        for p in ps.iter_mut() {
            match p.parse(&l) {
                Outcome::Rejected(r) => assert_eq!(r.kind, RejectKind::TooLong),
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn adversarial_lines_under_the_cap_cost_linear_time() {
    let mut ps = parsers();
    let n = MAX_LINE - 1;
    let units: [&[u8]; 14] = [
        b"IN=", b"IN=x ", b"IPT: ", b"IPT:", b" ", b"[SRC=1.2.3.4 ", b"OPT ( ", b"INCOMPLETE [", b"[UFW ", b"Shorewall:",
        b"message repeated 1 times: [ ", b"SYN ", b"ID=1 ", b"=",
    ];
    for unit in units {
        for head in [HEAD, &b"Nov  5 06:35:08 fw1 kernel: IPT: DROP "[..], b""] {
            let l = repeat(head, unit, n);
            check(&mut ps, &l);
        }
    }
    // One huge interface name, MAC, and one huge prefix.
    let mut l = b"Nov  5 06:35:08 fw1 kernel: IPT: DROP IN=eth0 OUT= MAC=".to_vec();
    l.extend(std::iter::repeat(b'a').take(n - l.len() - 40));
    l.extend_from_slice(b" SRC=10.0.0.1 DST=10.0.0.2 PROTO=47");
    check(&mut ps, &l);
    let mut l = b"Nov  5 06:35:08 fw1 kernel: IPT: DROP".to_vec();
    l.extend(std::iter::repeat(b'x').take(n - l.len() - 60));
    l.extend_from_slice(b" IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 PROTO=47");
    check(&mut ps, &l);
}
