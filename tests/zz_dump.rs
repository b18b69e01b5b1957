use ipta::parse::*;
use ipta::record::Timestamp;
#[test]
fn dump() {
    let path = std::env::var("DUMP").unwrap();
    let any = std::env::var("ANY").is_ok();
    let mut p = Parser::new(ParseOptions { reference: Timestamp(1_790_000_000_000_000), year: None, tz: Some("UTC".into()), rules: ActionRules { ufw: true, shorewall: true, regex: None, any } }).unwrap();
    for (i, l) in std::fs::read(path).unwrap().split(|&c| c == b'\n').enumerate() {
        if l.is_empty() { continue }
        match p.parse(l) {
            Outcome::Packet(r) => { let mut b = Vec::new(); ipta::report::packet::write_json(&r, &mut b); println!("{} {}", i+1, String::from_utf8(b).unwrap()); }
            o => println!("{} {:?}", i+1, o),
        }
    }
}
