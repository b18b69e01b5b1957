//! `ipta --scan` on the library side: text and JSON Lines output, rejects on stderr with line
//! numbers, counts, invalid UTF-8, a closed output pipe, and a 10 MB line.

use std::io::{self, Write};

use ipta::parse::{ActionRules, ParseOptions};
use ipta::record::Timestamp;
use ipta::scan::{run, ScanFormat, ScanOptions, ScanSummary};

fn opts(format: ScanFormat) -> ScanOptions {
    ScanOptions {
        format,
        parse: ParseOptions {
            reference: Timestamp(chrono::DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z").unwrap().timestamp_micros()),
            year: None,
            tz: Some("UTC".into()),
            rules: ActionRules::default(),
        },
    }
}

const INPUT: &[u8] = b"Nov  5 06:35:08 fw1 kernel: [1.5] IPT: DROP IN=eth0 OUT= MAC=00:01:02:03:04:05:06:07:08:09:0a:0b:08:00 SRC=46.45.161.187 DST=188.126.93.160 LEN=40 TOS=0x00 PREC=0x00 TTL=56 ID=10028 PROTO=TCP SPT=55844 DPT=445 WINDOW=512 RES=0x00 ACK SYN URGP=0 
Nov  5 06:35:09 fw1 sshd[1]: Accepted password for root
Nov  5 06:35:10 fw1 kernel: IPT: DROP IN=eth0 OUT= SRC=10.0.0.300 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=50 ID=7 PROTO=UDP SPT=1 DPT=2 LEN=20
Nov  5 06:35:11 fw1 kernel: IPT: ACCEPT IN= OUT=eth0 SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:db8::2 LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=1 PROTO=ICMPv6 TYPE=1 CODE=4 [SRC=2001:db8::2 DST=2001:db8::1 LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=UDP SPT=5353 DPT=33434 LEN=40 ] 
\xff\xfe garbage \x00
Nov  5 06:35:12 fw1 kernel: IPT: CBLK IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=40 TOS=0x00 PREC=0x00 TTL=50 ID=7 PROTO=UDP SPT=1 DPT=2 LEN=20";

fn scan(input: &[u8], format: ScanFormat) -> (String, String, ScanSummary) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let sum = run(&mut io::BufReader::new(input), &mut out, &mut err, &opts(format)).unwrap();
    (String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap(), sum)
}

#[test]
fn json_lines_with_record_keys() {
    let (out, err, sum) = scan(INPUT, ScanFormat::Json);
    // The two lines that are not ipta's are no firewall lines: nothing to hint at.
    assert_eq!(sum, ScanSummary { lines: 6, packets: 3, not_ours: 2, rejected: 1, skipped: Default::default() });
    assert_eq!(err, "line 3: SRC= is not an IP address\n");
    let objs: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objs.len(), 3);
    let a = &objs[0];
    assert_eq!(a["ts"], "2026-11-05T06:35:08.000000Z");
    assert_eq!(a["host"], "fw1");
    assert_eq!(a["action"], "DROP");
    assert_eq!(a["prefix"], "IPT: DROP ");
    assert_eq!(a["if_in"], "eth0");
    assert!(a.get("if_out").is_none(), "absent fields are absent");
    assert_eq!(a["src"], "46.45.161.187");
    assert_eq!(a["dpt"], 445);
    assert_eq!(a["tcp_flags"], "ACK SYN");
    assert_eq!(a["repeat"], 1);
    let b = &objs[1];
    assert_eq!(b["src"], "2001:db8::1", "canonical IPv6 text");
    assert_eq!(b["proto"], "ICMPv6");
    assert!(b.get("spt").is_none());
    assert_eq!(b["inner"]["proto"], "UDP");
    assert_eq!(b["inner"]["dpt"], 33434);
    assert_eq!(objs[2]["action"], "CBLK");
}

#[test]
fn text_lines_are_readable() {
    let (out, _, sum) = scan(INPUT, ScanFormat::Text);
    assert_eq!(sum.packets, 3);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].contains(" fw1 DROP eth0> TCP 46.45.161.187:55844 -> 188.126.93.160:445 ACK SYN"), "{}", lines[0]);
    assert!(lines[1].contains("ACCEPT >eth0 ICMPv6 2001:db8::1 -> 2001:db8::2 type=1 code=4"), "{}", lines[1]);
    assert!(lines[1].contains("[UDP [2001:db8::2]:5353 -> [2001:db8::1]:33434"), "{}", lines[1]);
}

/// A writer whose reader went away after `room` bytes.
struct ClosedPipe {
    room: usize,
}

impl Write for ClosedPipe {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
        }
        let n = b.len().min(self.room);
        self.room -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn broken_pipe_ends_quietly() {
    let mut input = Vec::new();
    for _ in 0..5_000 {
        input.extend_from_slice(&INPUT[..INPUT.iter().position(|&c| c == b'\n').unwrap() + 1]);
    }
    let mut out = ClosedPipe { room: 1000 };
    let mut err = Vec::new();
    let sum = run(&mut io::BufReader::new(&input[..]), &mut out, &mut err, &opts(ScanFormat::Json)).expect("quiet end");
    assert!(sum.lines < 5_000, "stopped early: {sum:?}");
    assert!(err.is_empty());
}

#[test]
fn ten_megabyte_line_is_rejected_and_the_scan_goes_on() {
    let mut input = b"Nov  5 06:35:08 fw1 kernel: IPT: DROP IN=eth0 OUT= ".to_vec();
    input.extend(std::iter::repeat(b'x').take(10 * 1024 * 1024));
    input.push(b'\n');
    input.extend_from_slice(INPUT);
    let (out, err, sum) = scan(&input, ScanFormat::Json);
    assert_eq!(sum.lines, 7);
    assert_eq!(sum.packets, 3);
    assert_eq!(sum.rejected, 2);
    assert!(err.starts_with("line 1: the line is longer than 65536 bytes"), "{err}");
    assert!(err.contains("line 4: SRC= is not an IP address"), "{err}");
    assert_eq!(out.lines().count(), 3);
}

#[test]
fn bad_zone_is_an_error() {
    let mut o = opts(ScanFormat::Text);
    o.parse.tz = Some("Mars/Olympus".into());
    let e = run(&mut io::BufReader::new(&b""[..]), &mut Vec::new(), &mut Vec::new(), &o).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("Mars/Olympus"));
}

/// Firewall lines of another kind (UFW, firewalld) are counted by prefix, and the summary line
/// names the option that reads them; ipta's own lines and other programs' lines are not.
#[test]
fn firewall_lines_of_another_kind_are_named_with_the_option_that_reads_them() {
    let ufw = "Nov  5 06:35:08 fw1 kernel: [ 12.5] [UFW BLOCK] IN=eth0 OUT= MAC=00:01:02:03:04:05:06:07:08:09:0a:0b:08:00 SRC=198.51.100.1 DST=192.0.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=56 ID=1 PROTO=TCP SPT=5 DPT=445 WINDOW=512 RES=0x00 SYN URGP=0";
    let allow = ufw.replace("[UFW BLOCK]", "[UFW ALLOW]");
    let fwd = "Nov  5 06:35:09 fw1 kernel: filter_IN_public_REJECT: IN=eth0 OUT= SRC=198.51.100.2 DST=192.0.2.1 LEN=40 TTL=56 ID=1 PROTO=TCP SPT=5 DPT=23 WINDOW=512 RES=0x00 SYN URGP=0";
    let mut input = String::new();
    for _ in 0..3 {
        input.push_str(ufw);
        input.push('\n');
    }
    input.push_str(&allow);
    input.push('\n');
    input.push_str("Nov  5 06:35:09 fw1 sshd[1]: Accepted password for root\n");
    let (_, _, sum) = scan(input.as_bytes(), ScanFormat::Text);
    assert_eq!((sum.packets, sum.not_ours, sum.skipped.total()), (0, 5, 4));
    assert_eq!(
        sum.skipped.describe().unwrap(),
        "4 firewall lines with other prefixes were skipped ([UFW BLOCK] 3, [UFW ALLOW] 1): add --rules ufw (or rules = ufw in /etc/ipta.conf)"
    );
    let (_, _, sum) = scan(format!("{fwd}\n").as_bytes(), ScanFormat::Text);
    let d = sum.skipped.describe().unwrap();
    assert!(d.contains("(filter_IN_public_REJECT: 1)") && d.contains("--rules any"), "{d}");
    // With the rule that reads them, nothing is skipped.
    let mut o = opts(ScanFormat::Text);
    o.parse.rules.ufw = true;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let sum = run(&mut io::BufReader::new(input.as_bytes()), &mut out, &mut err, &o).unwrap();
    assert_eq!((sum.packets, sum.skipped.total()), (4, 0));
}

/// Log text is untrusted on a terminal: a host name or interface carrying an escape sequence
/// is printed with `?` in place of each control character.
#[test]
fn control_characters_never_reach_the_terminal() {
    let line = "2026-11-05T06:35:08+00:00 fw1\x1b]0;pwned\x07 kernel: IPT: DROP IN=eth\x1b[2J0 OUT= SRC=198.51.100.1 DST=192.0.2.1 LEN=40 TTL=56 ID=1 PROTO=TCP SPT=5 DPT=22 WINDOW=512 RES=0x00 SYN URGP=0\n";
    let (out, _, sum) = scan(line.as_bytes(), ScanFormat::Text);
    assert_eq!(sum.packets, 1, "{out}");
    assert!(!out.bytes().any(|b| b < 0x20 && b != b'\n'), "{out:?}");
    assert!(out.contains("fw1?]0;pwned?") && out.contains("eth?[2J0>"), "{out:?}");
}
