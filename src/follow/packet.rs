//! One packet rendered for people and for programs: a readable text line, or a JSON object
//! whose keys are the record's field names (the same names as the SQL columns).
//!
//! Both writers append to a caller's reused buffer and allocate nothing of their own, so the
//! scan, follow and ingest paths can render every line without touching the heap.

use std::io::Write;
use std::net::IpAddr;

use chrono::{Datelike, Timelike};

use crate::parse::time::civil_from_days;
use crate::record::{Packet, Proto, Record, Timestamp};

/// `2026-11-05T05:35:08.123456Z` (UTC, microseconds), as [`Timestamp::to_rfc3339`] prints it.
pub fn write_rfc3339(ts: Timestamp, out: &mut Vec<u8>) {
    let secs = ts.secs();
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        y,
        m,
        d,
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ts.subsec_micros()
    );
}

/// A JSON string literal (the text is UTF-8 already; quotes, backslashes and control
/// characters are escaped).
pub fn write_json_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => {
                out.extend_from_slice(&b[start..i]);
                let _ = write!(out, "\\u{:04x}", c);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// Writes `"key":value` pairs with the commas in between.
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Obj<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }
    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }
    fn str(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.key(k);
            write_json_str(v, self.out);
        }
    }
    fn num<T: std::fmt::Display>(&mut self, k: &str, v: Option<T>) {
        if let Some(v) = v {
            self.key(k);
            let _ = write!(self.out, "{v}");
        }
    }
    fn bool(&mut self, k: &str, v: Option<bool>) {
        if let Some(v) = v {
            self.key(k);
            self.out.extend_from_slice(if v { b"true" } else { b"false" });
        }
    }
    /// A string value written with Display (addresses, protocol names, flags), no allocation.
    fn disp<T: std::fmt::Display>(&mut self, k: &str, v: Option<T>) {
        if let Some(v) = v {
            self.key(k);
            let _ = write!(self.out, "\"{v}\"");
        }
    }
    fn close(self) {
        self.out.push(b'}');
    }
}

fn packet_fields(o: &mut Obj<'_>, p: &Packet) {
    o.disp("src", p.src);
    o.disp("dst", p.dst);
    o.num("len", p.len);
    o.num("tos", p.tos);
    o.num("prec", p.prec);
    o.num("ttl", p.ttl);
    o.num("ip_id", p.ip_id);
    o.num("tc", p.tc);
    o.num("flowlbl", p.flowlbl);
    o.bool("df", p.df);
    o.bool("mf", p.mf);
    o.bool("ce", p.ce);
    o.num("frag", p.frag);
    o.disp("proto", p.proto);
    o.num("spt", p.spt);
    o.num("dpt", p.dpt);
    o.num("seq", p.seq);
    o.num("ack", p.ack);
    o.num("window", p.window);
    o.disp("tcp_flags", p.tcp_flags);
    o.num("urgp", p.urgp);
    o.num("udp_len", p.udp_len);
    o.num("icmp_type", p.icmp_type);
    o.num("icmp_code", p.icmp_code);
    o.num("icmp_id", p.icmp_id);
    o.num("icmp_seq", p.icmp_seq);
    o.num("mtu", p.mtu);
    o.num("spi", p.spi);
    if p.incomplete {
        o.bool("incomplete", Some(true));
    }
}

/// One JSON object (no newline): the record's fields by name; absent fields are left out;
/// `ts` in RFC 3339 UTC; addresses in canonical text; `tcp_flags` as `"ACK SYN"`; `inner` as a
/// nested object of the embedded packet's fields.
pub fn write_json(r: &Record<'_>, out: &mut Vec<u8>) {
    let mut o = Obj::open(out);
    o.key("ts");
    o.out.push(b'"');
    write_rfc3339(r.ts, o.out);
    o.out.push(b'"');
    o.str("host", r.host);
    o.str("action", Some(r.action));
    o.str("prefix", Some(r.prefix));
    o.str("if_in", r.if_in);
    o.str("if_out", r.if_out);
    o.str("phys_in", r.phys_in);
    o.str("phys_out", r.phys_out);
    o.str("mac", r.mac);
    o.str("mac_src", r.mac_src);
    o.str("mac_dst", r.mac_dst);
    packet_fields(&mut o, &r.pkt);
    o.num("uid", r.uid);
    o.num("gid", r.gid);
    o.num("mark", r.mark);
    o.num("repeat", Some(r.repeat));
    if let Some(inner) = &r.inner {
        o.key("inner");
        let mut io = Obj::open(o.out);
        packet_fields(&mut io, inner);
        io.close();
    }
    o.close();
}

/// `addr:port`, with IPv6 in brackets when a port follows.
fn endpoint(out: &mut Vec<u8>, a: Option<IpAddr>, port: Option<u16>) {
    match (a, port) {
        (Some(IpAddr::V6(a)), Some(p)) => {
            let _ = write!(out, "[{a}]:{p}");
        }
        (Some(a), Some(p)) => {
            let _ = write!(out, "{a}:{p}");
        }
        (Some(a), None) => {
            let _ = write!(out, "{a}");
        }
        (None, _) => out.push(b'?'),
    }
}

/// `TCP 1.2.3.4:5 -> 6.7.8.9:22 SYN` / `ICMP a -> b type=3 code=3`: the packet in brief.
fn packet_text(out: &mut Vec<u8>, p: &Packet) {
    match p.proto {
        Some(pr) => {
            let _ = write!(out, "{pr} ");
        }
        None => out.extend_from_slice(b"? "),
    }
    endpoint(out, p.src, p.spt);
    out.extend_from_slice(b" -> ");
    endpoint(out, p.dst, p.dpt);
    if let Some(f) = p.tcp_flags {
        if f.0 != 0 {
            let _ = write!(out, " {f}");
        }
    }
    if matches!(p.proto, Some(Proto::Icmp | Proto::Icmpv6)) || p.icmp_type.is_some() {
        if let Some(t) = p.icmp_type {
            let _ = write!(out, " type={t}");
        }
        if let Some(c) = p.icmp_code {
            let _ = write!(out, " code={c}");
        }
    }
    if let Some(s) = p.spi {
        let _ = write!(out, " spi=0x{s:x}");
    }
    if let Some(l) = p.len {
        let _ = write!(out, " len={l}");
    }
    if let Some(t) = p.ttl {
        let _ = write!(out, " ttl={t}");
    }
    if let Some(f) = p.frag {
        let _ = write!(out, " frag={f}");
    }
    if p.incomplete {
        out.extend_from_slice(b" incomplete");
    }
}

/// One readable line (no newline): local time, host, action, interfaces (`in>out`), the
/// packet, the embedded packet of an ICMP error in brackets, and `x N` for repeated lines.
///
/// `2015-05-04 06:35:08 zathras CBLK eth0> TCP 46.45.161.187:55844 -> 188.126.93.160:445 SYN len=40 ttl=56`
pub fn write_text(r: &Record<'_>, out: &mut Vec<u8>) {
    use crate::units::push_printable;
    match chrono::DateTime::from_timestamp_micros(r.ts.micros()) {
        Some(t) => {
            let t = t.with_timezone(&chrono::Local);
            let _ = write!(
                out,
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
        }
        None => out.extend_from_slice(b"????-??-?? ??:??:??"),
    }
    // Host, action and interfaces are log text: no control character reaches a terminal.
    out.push(b' ');
    push_printable(out, r.host.unwrap_or("-"));
    out.push(b' ');
    push_printable(out, r.action);
    out.push(b' ');
    push_printable(out, r.if_in.unwrap_or(""));
    out.push(b'>');
    push_printable(out, r.if_out.unwrap_or(""));
    out.push(b' ');
    packet_text(out, &r.pkt);
    if let Some(inner) = &r.inner {
        out.extend_from_slice(b" [");
        packet_text(out, inner);
        out.push(b']');
    }
    if let Some(m) = r.mark {
        let _ = write!(out, " mark=0x{m:x}");
    }
    if let Some(u) = r.uid {
        let _ = write!(out, " uid={u}");
    }
    if r.repeat != 1 {
        let _ = write!(out, " x{}", r.repeat);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TcpFlags;

    #[test]
    fn rfc3339_matches_record() {
        for us in [0i64, 1_762_320_908_123_456, -1, 951_782_400_000_001] {
            let mut b = Vec::new();
            write_rfc3339(Timestamp(us), &mut b);
            assert_eq!(String::from_utf8(b).unwrap(), Timestamp(us).to_rfc3339());
        }
    }

    #[test]
    fn json_escapes_and_omits() {
        let r = Record {
            ts: Timestamp(1_762_320_908_123_456),
            host: Some("fw\"1\\"),
            action: "DROP",
            prefix: "IPT: DROP \u{1}",
            pkt: Packet {
                src: Some("2001:0db8::0001".parse().unwrap()),
                proto: Some(Proto::Tcp),
                tcp_flags: Some(TcpFlags(TcpFlags::ACK | TcpFlags::SYN)),
                df: Some(false),
                ..Default::default()
            },
            repeat: 1,
            inner: Some(Packet { spt: Some(53), ..Default::default() }),
            ..Default::default()
        };
        let mut b = Vec::new();
        write_json(&r, &mut b);
        let s = String::from_utf8(b).unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["ts"], "2025-11-05T05:35:08.123456Z");
        assert_eq!(v["host"], "fw\"1\\");
        assert_eq!(v["prefix"], "IPT: DROP \u{1}");
        assert_eq!(v["src"], "2001:db8::1");
        assert_eq!(v["tcp_flags"], "ACK SYN");
        assert_eq!(v["df"], false);
        assert_eq!(v["inner"]["spt"], 53);
        assert!(v.get("dst").is_none());
        assert!(v.get("if_in").is_none());
        let mut t = Vec::new();
        write_text(&r, &mut t);
        let t = String::from_utf8(t).unwrap();
        assert!(t.contains(" DROP >"), "{t}");
        assert!(t.contains("TCP 2001:db8::1 -> ? ACK SYN"), "{t}");
    }
}
