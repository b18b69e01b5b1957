//! Cross-check against the independent generator ../shared/genlog.py: 100,000 lines of its
//! mixed RFC 3164 / RFC 3339 workload parse with no rejection, and the fields agree with the
//! line text. Runs only when ../shared (or IPTA_SHARED) and python3 are there.

use std::path::PathBuf;
use std::process::Command;

use ipta::parse::{ActionRules, Outcome, ParseOptions, Parser};
use ipta::record::{Proto, Timestamp};

#[test]
fn genlog_py_100k_mixed_lines_parse_without_rejects() {
    let dir = std::env::var_os("IPTA_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let script = dir.join("genlog.py");
    if !script.is_file() {
        eprintln!("skipped: no {}", script.display());
        return;
    }
    let out = match Command::new("python3").arg(&script).args(["100000", "--style", "mixed", "--seed", "7"]).output() {
        Ok(o) if o.status.success() => o.stdout,
        other => {
            eprintln!("skipped: python3 genlog.py did not run: {other:?}");
            return;
        }
    };
    // The workload starts 2025-12-31T22:00:00 (+01:00) and lasts about 33 minutes.
    let reference = Timestamp(chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().timestamp_micros());
    let mut p = Parser::new(ParseOptions { reference, year: None, tz: Some("+01:00".into()), rules: ActionRules::default() }).unwrap();
    let (mut n, mut v6, mut inner, mut icmp) = (0, 0, 0, 0);
    let mut last = Timestamp(0);
    for line in out.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        n += 1;
        let r = match p.parse(line) {
            Outcome::Packet(r) => r,
            other => panic!("line {n}: {other:?}: {}", String::from_utf8_lossy(line)),
        };
        let text = std::str::from_utf8(line).unwrap();
        // RFC 3164 stamps have whole seconds, RFC 3339 ones microseconds: allow a second.
        assert!(r.ts.micros() >= last.micros() - 1_000_000, "line {n}: time goes backwards");
        last = last.max(r.ts);
        assert!(r.ts.to_rfc3339().starts_with("2025-12-31T2"), "line {n}: {}", r.ts.to_rfc3339());
        assert!(text.contains(&format!("IPT: {} ", r.action)));
        let src = r.pkt.src.unwrap();
        if src.is_ipv6() {
            v6 += 1;
        } else {
            assert!(text.contains(&format!("SRC={src} ")), "line {n}");
        }
        assert_eq!(r.inner.is_some(), text.contains("[SRC="), "line {n}");
        if let Some(inn) = r.inner {
            inner += 1;
            // The embedded packet never overwrites the outer one.
            assert_eq!(r.pkt.proto, Some(Proto::Icmp));
            assert_eq!(r.pkt.spt, None);
            assert_eq!(inn.proto, Some(Proto::Udp));
        }
        if matches!(r.pkt.proto, Some(Proto::Icmp | Proto::Icmpv6)) {
            icmp += 1;
        }
        if let Some(d) = r.pkt.dpt {
            assert!(text.contains(&format!("DPT={d} ")) || text.ends_with(&format!("DPT={d}")), "line {n}");
        }
    }
    assert_eq!(n, 100_000);
    // The generator's mix: ~12% IPv6, ~8% ICMP, some ICMP errors.
    assert!((8_000..16_000).contains(&v6), "{v6}");
    assert!((5_000..11_000).contains(&icmp), "{icmp}");
    assert!(inner > 1_000, "{inner}");
}
