//! The netfilter fields: `IN= OUT= [PHYSIN= PHYSOUT=] [MAC=|MACSRC= MACDST=] SRC= DST= ...`.
//!
//! Read by position and context, not as a flat key=value map: `LEN=` is the IP length before
//! `PROTO=` and the UDP length after it, `ID=` is the IP id before `PROTO=` and the ICMP echo id
//! after it, `SEQ=` is TCP's or ICMP's, flags are bare words, and an ICMP error embeds a whole
//! second packet in `[ ... ]` that goes to `inner` and never touches the outer fields.
//!
//! One pass over the tokens, no backtracking: linear in the line's length. Unknown keys and
//! words are skipped (new kernels add fields); a known key with an unreadable value rejects
//! the line, since storing a guess would be worse than not storing it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::record::{Packet, Proto, Record, TcpFlags};

use super::{Reject, RejectKind};

/// Why the fields could not be read: a rejection, or an ARP line (not an IP packet).
#[derive(Debug)]
pub enum BodyError {
    Reject(Reject),
    Arp,
}

impl From<Reject> for BodyError {
    fn from(r: Reject) -> Self {
        BodyError::Reject(r)
    }
}

const fn rj(kind: RejectKind, reason: &'static str) -> Reject {
    Reject { kind, reason }
}

/// Space-separated tokens of the field part.
#[derive(Clone, Copy)]
struct Toks<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Toks<'a> {
    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let b = self.b;
        let mut i = self.i;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i >= b.len() {
            self.i = i;
            return None;
        }
        let e = match memchr::memchr(b' ', &b[i..]) {
            Some(n) => i + n,
            None => b.len(),
        };
        self.i = e;
        Some(&b[i..e])
    }
    fn peek(&self) -> Option<&'a [u8]> {
        let mut c = *self;
        c.next()
    }
}

/// Which transport header the fields after `PROTO=` belong to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum L4 {
    /// Before `PROTO=`: IP header fields.
    Ip,
    Tcp,
    Udp,
    Icmp,
    Other,
}

#[inline]
fn dec(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in v {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    Some(n)
}

/// Hex with or without `0x` (`TOS=0x00`, ulogd's `TOS=00`, `SPI=0xcb886522`).
#[inline]
fn hex(v: &[u8]) -> Option<u64> {
    let v = v.strip_prefix(b"0x").or_else(|| v.strip_prefix(b"0X")).unwrap_or(v);
    if v.is_empty() || v.len() > 16 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in v {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        n = (n << 4) | u64::from(d);
    }
    Some(n)
}

/// `MARK=0x1f` as the kernel prints it, or a decimal (`MARK=0` from ulogd).
fn mark(v: &[u8]) -> Option<u64> {
    if v.starts_with(b"0x") || v.starts_with(b"0X") {
        hex(v)
    } else {
        dec(v)
    }
}

fn bad_number(key: &[u8]) -> Reject {
    let reason = match key {
        b"LEN" => "LEN= is not a length (a number)",
        b"TOS" => "TOS= is not a hex byte",
        b"PREC" => "PREC= is not a hex byte",
        b"TTL" => "TTL= is not a number from 0 to 255",
        b"HOPLIMIT" => "HOPLIMIT= is not a number from 0 to 255",
        b"ID" => "ID= is not a number in range",
        b"TC" => "TC= is not a number from 0 to 255",
        b"FLOWLBL" => "FLOWLBL= is not a number",
        b"SPT" => "SPT= is not a port number (0-65535)",
        b"DPT" => "DPT= is not a port number (0-65535)",
        b"SEQ" => "SEQ= is not a number in range",
        b"ACK" => "ACK= is not a number",
        b"WINDOW" => "WINDOW= is not a number",
        b"URGP" => "URGP= is not a number",
        b"TYPE" => "TYPE= is not a number from 0 to 255",
        b"CODE" => "CODE= is not a number from 0 to 255",
        b"MTU" => "MTU= is not a number",
        b"SPI" => "SPI= is not a hex number",
        b"UID" => "UID= is not a number",
        b"GID" => "GID= is not a number",
        b"MARK" => "MARK= is not a number",
        b"FRAG" => "FRAG: is not a fragment offset",
        b"PROTO" => "PROTO= is not a protocol name or number",
        _ => "a field's value is not a number",
    };
    rj(RejectKind::BadNumber, reason)
}

#[inline]
fn num<T: TryFrom<u64>>(key: &[u8], v: Option<u64>) -> Result<Option<T>, Reject> {
    match v.and_then(|n| T::try_from(n).ok()) {
        Some(n) => Ok(Some(n)),
        None => Err(bad_number(key)),
    }
}

/// IPv4 dotted quad, strictly (four decimal parts of 1-3 digits, each <= 255).
#[inline]
fn ipv4(v: &[u8]) -> Option<Ipv4Addr> {
    let mut o = [0u8; 4];
    let mut part = 0;
    let mut n: u32 = 0;
    let mut digits = 0;
    for &c in v {
        if c == b'.' {
            if digits == 0 || part == 3 {
                return None;
            }
            o[part] = n as u8;
            part += 1;
            n = 0;
            digits = 0;
        } else {
            let d = c.wrapping_sub(b'0');
            if d > 9 || digits == 3 {
                return None;
            }
            n = n * 10 + u32::from(d);
            if n > 255 {
                return None;
            }
            digits += 1;
        }
    }
    if part != 3 || digits == 0 {
        return None;
    }
    o[3] = n as u8;
    Some(Ipv4Addr::from(o))
}

/// IPv4, or IPv6 in any text form (the kernel's full form with leading zeros, compressed,
/// mixed with a dotted quad).
#[inline]
fn ip(v: &[u8]) -> Option<IpAddr> {
    if memchr::memchr(b':', v).is_some() {
        if v.len() > 45 {
            return None;
        }
        let s = std::str::from_utf8(v).ok()?;
        s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        ipv4(v).map(IpAddr::V4)
    }
}

#[inline]
fn text<'a>(v: &'a [u8], why: &'static str) -> Result<&'a str, Reject> {
    std::str::from_utf8(v).map_err(|_| rj(RejectKind::BadUtf8, why))
}

/// An interface name; empty (`IN=` with no device) is absent.
#[inline]
fn iface<'a>(v: &'a [u8], why: &'static str) -> Result<Option<&'a str>, Reject> {
    if v.is_empty() {
        Ok(None)
    } else {
        text(v, why).map(Some)
    }
}

fn proto(v: &[u8]) -> Option<Proto> {
    Some(match v {
        b"TCP" => Proto::Tcp,
        b"UDP" => Proto::Udp,
        b"UDPLITE" => Proto::UdpLite,
        b"ICMP" => Proto::Icmp,
        b"ICMPv6" | b"ICMPV6" => Proto::Icmpv6,
        b"ESP" => Proto::Esp,
        b"AH" => Proto::Ah,
        b"SCTP" => Proto::Other(132),
        b"GRE" => Proto::Other(47),
        b"IGMP" => Proto::Other(2),
        _ => Proto::from_number(u8::try_from(dec(v)?).ok()?),
    })
}

fn l4_of(p: Proto) -> L4 {
    match p {
        Proto::Tcp => L4::Tcp,
        Proto::Udp | Proto::UdpLite => L4::Udp,
        Proto::Icmp | Proto::Icmpv6 => L4::Icmp,
        _ => L4::Other,
    }
}

/// What a packet-level token did.
enum Step {
    Go,
    /// The embedded packet's closing `]`.
    EndInner,
}

/// One token of the IP + transport part, for the outer packet or the embedded one.
#[inline]
fn packet_token<'a>(p: &mut Packet, l4: &mut L4, tok: &'a [u8], t: &mut Toks<'a>, inner: bool) -> Result<Step, Reject> {
    let (tok, closes) = match tok.strip_suffix(b"]") {
        Some(rest) if inner && !rest.ends_with(b"bytes") => (rest, true),
        _ => (tok, false),
    };
    if let Some(eq) = memchr::memchr(b'=', tok) {
        let (k, v) = (&tok[..eq], &tok[eq + 1..]);
        match k {
            b"SRC" | b"DST" => {
                let a = ip(v).ok_or(if k == b"SRC" {
                    rj(RejectKind::BadAddress, "SRC= is not an IP address")
                } else {
                    rj(RejectKind::BadAddress, "DST= is not an IP address")
                })?;
                if a.is_ipv4() && p.df.is_none() {
                    p.df = Some(false);
                    p.mf = Some(false);
                    p.ce = Some(false);
                }
                if k == b"SRC" {
                    p.src = Some(a);
                } else {
                    p.dst = Some(a);
                }
            }
            b"LEN" => match *l4 {
                L4::Ip => p.len = num(k, dec(v))?,
                L4::Udp => p.udp_len = num(k, dec(v))?,
                // A LEN= after a TCP/ICMP header is not the kernel's; not a field we know.
                _ => {}
            },
            b"TOS" => p.tos = num(k, hex(v))?,
            b"PREC" => p.prec = num(k, hex(v))?,
            b"TTL" | b"HOPLIMIT" => p.ttl = num(k, dec(v))?,
            b"ID" => match *l4 {
                L4::Ip => p.ip_id = num(k, dec(v))?,
                L4::Icmp => p.icmp_id = num(k, dec(v))?,
                _ => {}
            },
            b"TC" => p.tc = num(k, dec(v))?,
            b"FLOWLBL" => p.flowlbl = num(k, dec(v))?,
            b"PROTO" => {
                let pr = proto(v).ok_or_else(|| bad_number(k))?;
                p.proto = Some(pr);
                *l4 = l4_of(pr);
            }
            b"SPT" => p.spt = num(k, dec(v))?,
            b"DPT" => p.dpt = num(k, dec(v))?,
            b"SEQ" => match *l4 {
                L4::Icmp => p.icmp_seq = num(k, dec(v))?,
                _ => p.seq = num(k, dec(v))?,
            },
            b"ACK" => p.ack = num(k, dec(v))?,
            b"WINDOW" => {
                p.window = num(k, dec(v))?;
                if *l4 == L4::Tcp && p.tcp_flags.is_none() {
                    p.tcp_flags = Some(TcpFlags::default());
                }
            }
            b"RES" => {
                if *l4 == L4::Tcp && p.tcp_flags.is_none() {
                    p.tcp_flags = Some(TcpFlags::default());
                }
            }
            b"URGP" => p.urgp = num(k, dec(v))?,
            b"TYPE" => p.icmp_type = num(k, dec(v))?,
            b"CODE" => p.icmp_code = num(k, dec(v))?,
            b"MTU" => p.mtu = num(k, dec(v))?,
            b"SPI" => p.spi = num(k, hex(v))?,
            _ => {}
        }
    } else {
        match tok {
            b"DF" if *l4 == L4::Ip => p.df = Some(true),
            b"MF" if *l4 == L4::Ip => p.mf = Some(true),
            b"CE" if *l4 == L4::Ip => p.ce = Some(true),
            b"TRUNCATED" => p.incomplete = true,
            b"INCOMPLETE" => {
                // `INCOMPLETE [n bytes]`: the header was cut short. A bare INCOMPLETE is the
                // IPv6 fragment header's more-fragments mark.
                if let Some(n) = t.peek() {
                    if n.starts_with(b"[") {
                        t.next();
                        if t.peek().is_some_and(|w| w.starts_with(b"bytes")) {
                            t.next();
                        }
                        p.incomplete = true;
                    }
                }
            }
            b"OPT" => {
                // `OPT (0204...)` or `OPT ( ... )`: options are not stored; skip to the `)`.
                if t.peek().is_some_and(|w| w.starts_with(b"(")) {
                    while let Some(w) = t.next() {
                        if w.ends_with(b")") {
                            break;
                        }
                    }
                }
            }
            _ if *l4 == L4::Tcp => {
                let bit = match tok {
                    b"CWR" => TcpFlags::CWR,
                    b"ECE" => TcpFlags::ECE,
                    b"URG" => TcpFlags::URG,
                    b"ACK" => TcpFlags::ACK,
                    b"PSH" => TcpFlags::PSH,
                    b"RST" => TcpFlags::RST,
                    b"SYN" => TcpFlags::SYN,
                    b"FIN" => TcpFlags::FIN,
                    b"AE" => TcpFlags::AE,
                    _ => 0,
                };
                if bit != 0 {
                    let f = p.tcp_flags.get_or_insert(TcpFlags::default());
                    f.0 |= bit;
                }
            }
            _ => {
                if let Some(rest) = tok.strip_prefix(b"FRAG:") {
                    p.frag = num(b"FRAG", dec(rest))?;
                } else if let Some(rest) = tok.strip_prefix(b"ID:") {
                    // IPv6 fragment header identification, in hex.
                    p.ip_id = num(b"ID", hex(rest))?;
                }
            }
        }
    }
    Ok(if closes { Step::EndInner } else { Step::Go })
}

/// Reads the netfilter fields (`body` starts at `IN=`) into `rec`.
pub fn parse_body<'a>(body: &'a [u8], rec: &mut Record<'a>) -> Result<(), BodyError> {
    let mut t = Toks { b: body, i: 0 };
    let mut l4 = L4::Ip;
    while let Some(tok) = t.next() {
        if let Some(eq) = memchr::memchr(b'=', tok) {
            let (k, v) = (&tok[..eq], &tok[eq + 1..]);
            match k {
                b"IN" => rec.if_in = iface(v, "IN= is not valid UTF-8")?,
                b"OUT" => rec.if_out = iface(v, "OUT= is not valid UTF-8")?,
                b"PHYSIN" => rec.phys_in = iface(v, "PHYSIN= is not valid UTF-8")?,
                b"PHYSOUT" => rec.phys_out = iface(v, "PHYSOUT= is not valid UTF-8")?,
                b"MAC" => rec.mac = Some(text(v, "MAC= is not valid UTF-8")?),
                b"MACSRC" => rec.mac_src = Some(text(v, "MACSRC= is not valid UTF-8")?),
                b"MACDST" => rec.mac_dst = Some(text(v, "MACDST= is not valid UTF-8")?),
                b"UID" => rec.uid = num(k, dec(v))?,
                b"GID" => rec.gid = num(k, dec(v))?,
                b"MARK" => rec.mark = num(k, mark(v))?,
                _ if k.first() == Some(&b'[') => {
                    // `[SRC=... ]`: the packet embedded in an ICMP error.
                    if rec.inner.is_some() {
                        return Err(rj(RejectKind::Malformed, "more than one embedded packet `[ ... ]`").into());
                    }
                    let mut inner = Packet::default();
                    let mut il4 = L4::Ip;
                    let mut closed = matches!(packet_token(&mut inner, &mut il4, &tok[1..], &mut t, true)?, Step::EndInner);
                    while !closed {
                        let Some(w) = t.next() else { break };
                        if w.first() == Some(&b'[') && memchr::memchr(b'=', w).is_some() {
                            return Err(rj(RejectKind::Malformed, "an embedded packet inside an embedded packet").into());
                        }
                        if w == b"]" {
                            closed = true;
                            break;
                        }
                        closed = matches!(packet_token(&mut inner, &mut il4, w, &mut t, true)?, Step::EndInner);
                    }
                    if !closed {
                        // The line ended inside the brackets: the kernel cut it.
                        inner.incomplete = true;
                    }
                    rec.inner = Some(inner);
                }
                _ => {
                    packet_token(&mut rec.pkt, &mut l4, tok, &mut t, false)?;
                }
            }
        } else if tok == b"ARP" && rec.pkt.src.is_none() {
            return Err(BodyError::Arp);
        } else {
            packet_token(&mut rec.pkt, &mut l4, tok, &mut t, false)?;
        }
    }
    if rec.pkt.src.is_none() {
        return Err(rj(RejectKind::MissingField, "no SRC= field (the line may be cut short)").into());
    }
    if rec.pkt.dst.is_none() {
        return Err(rj(RejectKind::MissingField, "no DST= field (the line may be cut short)").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses() {
        assert_eq!(dec(b"65535"), Some(65535));
        assert_eq!(dec(b""), None);
        assert_eq!(dec(b"1a"), None);
        assert_eq!(dec(b"99999999999999999999"), None);
        assert_eq!(hex(b"0xC0"), Some(0xc0));
        assert_eq!(hex(b"00"), Some(0));
        assert_eq!(hex(b"0x"), None);
        assert_eq!(ipv4(b"192.168.10.55"), Some(Ipv4Addr::new(192, 168, 10, 55)));
        for bad in [&b"1.2.3"[..], b"1.2.3.4.5", b"256.1.1.1", b"1..2.3", b"1.2.3.", b"", b"1234.1.1.1"] {
            assert_eq!(ipv4(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            ip(b"2001:0db8:0000:f101:0000:0000:0000:0002"),
            Some("2001:db8:0:f101::2".parse().unwrap())
        );
        assert_eq!(ip(b"2a0a:1580::a"), Some("2a0a:1580::a".parse().unwrap()));
        assert_eq!(ip(b"::ffff:1.2.3.4"), Some("::ffff:1.2.3.4".parse().unwrap()));
        assert_eq!(ip(b"2001:db8::g"), None);
    }
}
