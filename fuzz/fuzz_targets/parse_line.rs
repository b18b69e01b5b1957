//! Fuzz target: any bytes through the parser (three rule sets, two zones) and, for a packet,
//! through both renderers. The parser must never panic, and a record's text must come from
//! the line it was parsed from.

#![no_main]

use ipta::parse::{ActionRules, Outcome, ParseOptions, Parser};
use ipta::record::Timestamp;
use libfuzzer_sys::fuzz_target;

fn parsers() -> Vec<Parser> {
    let base = ParseOptions {
        reference: Timestamp(1_790_000_000_000_000),
        year: None,
        tz: Some("Europe/Berlin".into()),
        rules: ActionRules::default(),
    };
    let all = ParseOptions {
        rules: ActionRules { ufw: true, shorewall: true, regex: Some(r"(?P<action>[A-Z]{3,}):".into()), any: true },
        tz: Some("UTC".into()),
        ..base.clone()
    };
    let forced = ParseOptions { year: Some(2024), ..base.clone() };
    vec![Parser::new(base).unwrap(), Parser::new(all).unwrap(), Parser::new(forced).unwrap()]
}

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    // One input may hold several lines: a stream exercises the year state.
    let mut ps = parsers();
    for line in data.split(|&c| c == b'\n') {
        for p in ps.iter_mut() {
            if let Outcome::Packet(r) = p.parse(line) {
                let (lo, hi) = (line.as_ptr() as usize, line.as_ptr() as usize + line.len());
                let m = r.message.as_ptr() as usize;
                assert!(m >= lo && m + r.message.len() <= hi);
                assert!(r.pkt.src.is_some() && r.pkt.dst.is_some());
                out.clear();
                ipta::report::packet::write_json(&r, &mut out);
                out.clear();
                ipta::report::packet::write_text(&r, &mut out);
            }
        }
    }
});
