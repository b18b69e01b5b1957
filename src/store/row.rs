//! One record as the cells of one table row, in the column order of `schema::COLUMNS` (without
//! `id`). The batch writer and `load_data` both read rows through [`for_each_cell`], so the two
//! ways of writing cannot disagree about a column's value.
//!
//! Values are made to fit their columns here instead of being rejected by the server: under
//! strict SQL mode one over-long host name would otherwise abort a whole batch. Text longer than
//! its column is cut at a character boundary (the hash key is computed from the untouched line).

use std::net::IpAddr;

use crate::record::{Packet, Record};
use crate::store::value::CivilTime;

/// Columns written for each row, in `schema::COLUMNS` order, `id` excluded.
pub const INSERT_COLUMNS: &[&str] = &[
    "ts",
    "host",
    "action",
    "prefix",
    "if_in",
    "if_out",
    "phys_in",
    "phys_out",
    "mac",
    "mac_src",
    "mac_dst",
    "src",
    "dst",
    "len",
    "tos",
    "prec",
    "ttl",
    "ip_id",
    "tc",
    "flowlbl",
    "df",
    "mf",
    "ce",
    "frag",
    "proto",
    "spt",
    "dpt",
    "seq",
    "ack",
    "window",
    "tcp_flags",
    "urgp",
    "udp_len",
    "icmp_type",
    "icmp_code",
    "icmp_id",
    "icmp_seq",
    "mtu",
    "spi",
    "uid",
    "gid",
    "mark",
    "repeat",
    "inner_src",
    "inner_dst",
    "inner_proto",
    "inner_spt",
    "inner_dpt",
    "line_hash",
    "occ",
    "relay",
];

/// Character limits of the text columns (checked against the schema by a unit test).
pub(crate) const MAX_HOST: usize = 255;
/// An IPv6 address in text, the longest form (`ffff:...:255.255.255.255`).
pub(crate) const MAX_RELAY: usize = 45;
pub(crate) const MAX_ACTION: usize = 64;
pub(crate) const MAX_PREFIX: usize = 255;
pub(crate) const MAX_IF: usize = 32;
pub(crate) const MAX_MAC: usize = 1024;
pub(crate) const MAX_MAC_SD: usize = 64;

/// One cell of a row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell<'a> {
    Null,
    UInt(u64),
    Bool(bool),
    Text(&'a str),
    /// An address in `INET6_ATON` form: 4 bytes for IPv4, 16 for IPv6.
    Ip([u8; 16], u8),
    /// DATETIME(6) from microseconds since the epoch.
    DateTime(CivilTime),
}

impl<'a> Cell<'a> {
    pub fn ip_bytes(ip: &[u8; 16], len: u8) -> &[u8] {
        &ip[..len as usize]
    }
}

/// `s` cut to at most `max` characters. ASCII text (the usual case) needs no counting.
pub fn fit(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn ip_cell(ip: Option<IpAddr>) -> Cell<'static> {
    match ip {
        Some(IpAddr::V4(a)) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            Cell::Ip(b, 4)
        }
        Some(IpAddr::V6(a)) => Cell::Ip(a.octets(), 16),
        None => Cell::Null,
    }
}

fn opt_u<T: Into<u64>>(v: Option<T>) -> Cell<'static> {
    v.map_or(Cell::Null, |v| Cell::UInt(v.into()))
}

fn opt_text(s: Option<&str>, max: usize) -> Cell<'_> {
    s.map_or(Cell::Null, |s| Cell::Text(fit(s, max)))
}

fn opt_bool(v: Option<bool>) -> Cell<'static> {
    v.map_or(Cell::Null, Cell::Bool)
}

/// Names of protocols as stored: the kernel's word, or the number (no allocation).
pub fn proto_name(p: crate::record::Proto) -> &'static str {
    use crate::record::Proto;
    match p {
        Proto::Tcp => "TCP",
        Proto::Udp => "UDP",
        Proto::UdpLite => "UDPLITE",
        Proto::Icmp => "ICMP",
        Proto::Icmpv6 => "ICMPv6",
        Proto::Esp => "ESP",
        Proto::Ah => "AH",
        Proto::Other(n) => NUMBERS[n as usize],
    }
}

/// "0" to "255", so protocol numbers need no formatting at run time.
static NUMBERS: [&str; 256] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32",
    "33", "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48",
    "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61", "62", "63", "64",
    "65", "66", "67", "68", "69", "70", "71", "72", "73", "74", "75", "76", "77", "78", "79", "80",
    "81", "82", "83", "84", "85", "86", "87", "88", "89", "90", "91", "92", "93", "94", "95", "96",
    "97", "98", "99", "100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "110",
    "111", "112", "113", "114", "115", "116", "117", "118", "119", "120", "121", "122", "123",
    "124", "125", "126", "127", "128", "129", "130", "131", "132", "133", "134", "135", "136",
    "137", "138", "139", "140", "141", "142", "143", "144", "145", "146", "147", "148", "149",
    "150", "151", "152", "153", "154", "155", "156", "157", "158", "159", "160", "161", "162",
    "163", "164", "165", "166", "167", "168", "169", "170", "171", "172", "173", "174", "175",
    "176", "177", "178", "179", "180", "181", "182", "183", "184", "185", "186", "187", "188",
    "189", "190", "191", "192", "193", "194", "195", "196", "197", "198", "199", "200", "201",
    "202", "203", "204", "205", "206", "207", "208", "209", "210", "211", "212", "213", "214",
    "215", "216", "217", "218", "219", "220", "221", "222", "223", "224", "225", "226", "227",
    "228", "229", "230", "231", "232", "233", "234", "235", "236", "237", "238", "239", "240",
    "241", "242", "243", "244", "245", "246", "247", "248", "249", "250", "251", "252", "253",
    "254", "255",
];

/// TCP flag words as stored (`ACK SYN`), written into `buf` without allocating.
pub fn tcp_flags_text(f: crate::record::TcpFlags, buf: &mut [u8; 40]) -> &str {
    let mut n = 0;
    for (bit, word) in crate::record::TcpFlags::WORDS {
        if f.contains(bit) {
            if n > 0 {
                buf[n] = b' ';
                n += 1;
            }
            buf[n..n + word.len()].copy_from_slice(word.as_bytes());
            n += word.len();
        }
    }
    // Only ASCII flag words were copied in.
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}

/// Calls `f` with each cell of the record's row, in [`INSERT_COLUMNS`] order. `hash` is the
/// record's `dedup::record_hash`, `occ` its occurrence number.
#[inline]
pub fn for_each_cell(r: &Record<'_>, hash: u64, occ: u64, mut f: impl FnMut(Cell<'_>)) {
    let p: &Packet = &r.pkt;
    f(Cell::DateTime(CivilTime::from_micros(r.ts.micros())));
    f(opt_text(r.host, MAX_HOST));
    f(Cell::Text(fit(r.action, MAX_ACTION)));
    f(Cell::Text(fit(r.prefix, MAX_PREFIX)));
    f(opt_text(r.if_in, MAX_IF));
    f(opt_text(r.if_out, MAX_IF));
    f(opt_text(r.phys_in, MAX_IF));
    f(opt_text(r.phys_out, MAX_IF));
    f(opt_text(r.mac, MAX_MAC));
    f(opt_text(r.mac_src, MAX_MAC_SD));
    f(opt_text(r.mac_dst, MAX_MAC_SD));
    f(ip_cell(p.src));
    f(ip_cell(p.dst));
    f(opt_u(p.len));
    f(opt_u(p.tos));
    f(opt_u(p.prec));
    f(opt_u(p.ttl));
    f(opt_u(p.ip_id));
    f(opt_u(p.tc));
    f(opt_u(p.flowlbl));
    f(opt_bool(p.df));
    f(opt_bool(p.mf));
    f(opt_bool(p.ce));
    f(opt_u(p.frag));
    f(p.proto.map_or(Cell::Null, |x| Cell::Text(proto_name(x))));
    f(opt_u(p.spt));
    f(opt_u(p.dpt));
    f(opt_u(p.seq));
    f(opt_u(p.ack));
    f(opt_u(p.window));
    let mut fb = [0u8; 40];
    match p.tcp_flags {
        Some(fl) => f(Cell::Text(tcp_flags_text(fl, &mut fb))),
        None => f(Cell::Null),
    }
    f(opt_u(p.urgp));
    f(opt_u(p.udp_len));
    f(opt_u(p.icmp_type));
    f(opt_u(p.icmp_code));
    f(opt_u(p.icmp_id));
    f(opt_u(p.icmp_seq));
    f(opt_u(p.mtu));
    f(opt_u(p.spi));
    f(opt_u(r.uid));
    f(opt_u(r.gid));
    f(opt_u(r.mark));
    f(Cell::UInt(u64::from(r.repeat.max(1))));
    let inner = r.inner.as_ref();
    f(ip_cell(inner.and_then(|i| i.src)));
    f(ip_cell(inner.and_then(|i| i.dst)));
    f(inner
        .and_then(|i| i.proto)
        .map_or(Cell::Null, |x| Cell::Text(proto_name(x))));
    f(opt_u(inner.and_then(|i| i.spt)));
    f(opt_u(inner.and_then(|i| i.dpt)));
    f(Cell::UInt(hash));
    f(Cell::UInt(occ));
    f(opt_text(r.relay, MAX_RELAY));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::COLUMNS;

    #[test]
    fn insert_columns_follow_the_schema() {
        let schema: Vec<&str> = COLUMNS.iter().map(|c| c.0).filter(|c| *c != "id").collect();
        assert_eq!(schema, INSERT_COLUMNS);
        let r = Record {
            action: "DROP",
            prefix: "IPT: DROP ",
            repeat: 1,
            ..Default::default()
        };
        let mut n = 0;
        for_each_cell(&r, 1, 0, |_| n += 1);
        assert_eq!(n, INSERT_COLUMNS.len());
    }

    #[test]
    fn text_limits_match_the_schema() {
        let limit = |col: &str| -> usize {
            let ty = COLUMNS.iter().find(|c| c.0 == col).unwrap().1;
            let open = ty.find('(').unwrap();
            let close = ty.find(')').unwrap();
            ty[open + 1..close].parse().unwrap()
        };
        assert_eq!(limit("host"), MAX_HOST);
        assert_eq!(limit("relay"), MAX_RELAY);
        assert_eq!(limit("action"), MAX_ACTION);
        assert_eq!(limit("prefix"), MAX_PREFIX);
        for c in ["if_in", "if_out", "phys_in", "phys_out"] {
            assert_eq!(limit(c), MAX_IF);
        }
        assert_eq!(limit("mac"), MAX_MAC);
        assert_eq!(limit("mac_src"), MAX_MAC_SD);
        assert_eq!(limit("mac_dst"), MAX_MAC_SD);
        assert!(limit("tcp_flags") >= "AE CWR ECE URG ACK PSH RST SYN FIN".len());
        assert!(limit("proto") >= "UDPLITE".len());
    }

    #[test]
    fn fit_cuts_at_characters() {
        assert_eq!(fit("abc", 5), "abc");
        assert_eq!(fit("abcdef", 3), "abc");
        assert_eq!(fit("ééé", 2), "éé");
        assert_eq!(fit("éé", 2), "éé");
    }

    #[test]
    fn names_and_flags_need_no_allocation() {
        use crate::record::{Proto, TcpFlags};
        assert_eq!(proto_name(Proto::Other(47)), "47");
        assert_eq!(proto_name(Proto::Other(255)), "255");
        let mut b = [0u8; 40];
        let all = TcpFlags(0x1ff);
        assert_eq!(tcp_flags_text(all, &mut b), all.to_string());
        assert_eq!(tcp_flags_text(TcpFlags(0), &mut b), "");
    }
}
