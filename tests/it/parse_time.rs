//! Time through the whole parser: a stream crossing the turn of the year, the reference cap,
//! a live stream moving its reference, mixed RFC 3164 / RFC 3339 streams, zones with daylight
//! saving time, and the local zone.

use ipta::parse::{ActionRules, Outcome, ParseOptions, Parser};
use ipta::record::Timestamp;

const BODY: &str = "IPT: DROP IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=50 ID=7 PROTO=UDP SPT=1 DPT=2 LEN=20";

fn at(s: &str) -> Timestamp {
    Timestamp(chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros())
}

fn parser(reference: &str, tz: Option<&str>) -> Parser {
    Parser::new(ParseOptions { reference: at(reference), year: None, tz: tz.map(String::from), rules: ActionRules::default() }).unwrap()
}

fn ts(p: &mut Parser, stamp: &str) -> String {
    let line = format!("{stamp} fw1 kernel: {BODY}");
    match p.parse(line.as_bytes()) {
        Outcome::Packet(r) => r.ts.to_rfc3339(),
        other => panic!("{stamp}: {other:?}"),
    }
}

#[test]
fn a_stream_crosses_the_turn_of_the_year() {
    // An import of a file written until 2 January 2026.
    let mut p = parser("2026-01-02T10:00:00Z", Some("UTC"));
    assert_eq!(ts(&mut p, "Dec 30 23:59:58"), "2025-12-30T23:59:58.000000Z");
    assert_eq!(ts(&mut p, "Dec 31 23:59:59"), "2025-12-31T23:59:59.000000Z");
    assert_eq!(ts(&mut p, "Jan  1 00:00:01"), "2026-01-01T00:00:01.000000Z");
    // Slightly out of order lines stay in their year.
    assert_eq!(ts(&mut p, "Dec 31 23:59:59"), "2025-12-31T23:59:59.000000Z");
    assert_eq!(ts(&mut p, "Jan  2 09:00:00"), "2026-01-02T09:00:00.000000Z");
}

#[test]
fn never_after_the_reference_beyond_a_day() {
    let mut p = parser("2026-03-01T00:00:00Z", Some("UTC"));
    assert_eq!(ts(&mut p, "Mar  1 23:00:00"), "2026-03-01T23:00:00.000000Z");
    let mut p = parser("2026-03-01T00:00:00Z", Some("UTC"));
    assert_eq!(ts(&mut p, "Mar  2 01:00:00"), "2025-03-02T01:00:00.000000Z");
    // Inside a stream too: after Feb, a Jul stamp cannot be 2026.
    let mut p = parser("2026-03-01T00:00:00Z", Some("UTC"));
    assert_eq!(ts(&mut p, "Feb 20 00:00:00"), "2026-02-20T00:00:00.000000Z");
    assert_eq!(ts(&mut p, "Jul 20 00:00:00"), "2025-07-20T00:00:00.000000Z");
    // ... and that one stray line does not drag the stream back.
    assert_eq!(ts(&mut p, "Feb 21 00:00:00"), "2026-02-21T00:00:00.000000Z");
}

#[test]
fn a_live_stream_moves_its_reference() {
    let mut p = parser("2025-12-31T23:00:00Z", Some("UTC"));
    assert_eq!(ts(&mut p, "Dec 31 23:30:00"), "2025-12-31T23:30:00.000000Z");
    // Within the day of tolerance the turn of the year needs no new reference.
    assert_eq!(ts(&mut p, "Jan  1 00:10:00"), "2026-01-01T00:10:00.000000Z");
    // Weeks later, the stream's owner has moved the reference to now.
    p.set_reference(at("2026-02-15T00:00:00Z"));
    assert_eq!(ts(&mut p, "Feb 14 12:00:00"), "2026-02-14T12:00:00.000000Z");
    // A line without time gets the (new) reference.
    match p.parse(BODY.as_bytes()) {
        Outcome::Packet(r) => assert_eq!(r.ts, at("2026-02-15T00:00:00Z")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rfc3339_lines_keep_their_year_without_re_dating_the_stream() {
    let mut p = parser("2030-06-01T00:00:00Z", Some("+01:00"));
    assert_eq!(ts(&mut p, "May  1 10:00:00"), "2030-05-01T09:00:00.000000Z");
    // A line from a host with a wrong clock (or a forged one) keeps its own year...
    assert_eq!(ts(&mut p, "2019-05-01T10:00:00.25+01:00"), "2019-05-01T09:00:00.250000Z");
    // ...and the year-less lines after it stay in the stream's year.
    assert_eq!(ts(&mut p, "May  1 10:00:01"), "2030-05-01T09:00:01.000000Z");
}

#[test]
fn named_zone_with_daylight_saving_time() {
    let mut p = parser("2026-12-01T00:00:00Z", Some("Europe/Berlin"));
    assert_eq!(ts(&mut p, "Mar 29 01:59:59"), "2026-03-29T00:59:59.000000Z");
    // 02:30 does not exist that night: the offset before the change (+01:00) is used.
    assert_eq!(ts(&mut p, "Mar 29 02:30:00"), "2026-03-29T01:30:00.000000Z");
    assert_eq!(ts(&mut p, "Mar 29 03:00:00"), "2026-03-29T01:00:00.000000Z");
    // 02:30 happens twice when clocks go back: the earlier one.
    assert_eq!(ts(&mut p, "Oct 25 02:30:00"), "2026-10-25T00:30:00.000000Z");
    assert_eq!(ts(&mut p, "Oct 25 03:30:00"), "2026-10-25T02:30:00.000000Z");
    // RFC 3339 offsets are taken as written.
    assert_eq!(ts(&mut p, "2026-10-25T02:30:00+01:00"), "2026-10-25T01:30:00.000000Z");
}

#[test]
fn no_zone_means_the_local_zone() {
    let mut p = parser("2026-12-01T00:00:00Z", None);
    let got = ts(&mut p, "2026-07-01T12:00:00");
    use chrono::TimeZone;
    let want = chrono::Local
        .from_local_datetime(&chrono::NaiveDate::from_ymd_opt(2026, 7, 1).unwrap().and_hms_opt(12, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(got, want.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
}

#[test]
fn bad_zones_and_regexes_are_errors() {
    for tz in ["Mars/Olympus", "+25:00", "1:00", ""] {
        let r = Parser::new(ParseOptions { reference: Timestamp(0), year: None, tz: Some(tz.into()), rules: ActionRules::default() });
        assert!(r.is_err(), "{tz:?}");
    }
    let r = Parser::new(ParseOptions {
        reference: Timestamp(0),
        year: None,
        tz: None,
        rules: ActionRules { regex: Some("no-group".into()), ..Default::default() },
    });
    assert!(r.err().unwrap().contains("action"));
}
