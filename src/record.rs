//! The Record: one logged packet, typed.
//!
//! A `Record` borrows its text fields from the line it was parsed from, so parsing a line
//! allocates nothing; numbers and addresses are stored by value. Field names are the public
//! contract: they are the JSON keys of `--format json` and the SQL column names of the store.
//! A field the line does not carry is `None` (NULL in SQL, absent in JSON), never 0 or "".

pub mod dedup;

use std::fmt;
use std::net::IpAddr;

/// Event time in microseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_micros(us: i64) -> Self {
        Timestamp(us)
    }
    pub fn micros(self) -> i64 {
        self.0
    }
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }
    pub fn subsec_micros(self) -> u32 {
        self.0.rem_euclid(1_000_000) as u32
    }
    pub fn to_chrono(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_micros(self.0).unwrap_or_default()
    }
    /// RFC 3339 in UTC with microseconds, e.g. `2026-11-05T05:35:08.123456Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_chrono()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }
}

/// The layer-4 protocol as the kernel names it (`PROTO=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    UdpLite,
    Icmp,
    Icmpv6,
    Esp,
    Ah,
    /// Any other protocol, logged by number (47 GRE, 132 SCTP, 2 IGMP, ...).
    Other(u8),
}

impl Proto {
    /// The name as stored and printed: the kernel's word, or the number.
    pub fn as_str(&self) -> ProtoName {
        ProtoName(*self)
    }
    pub fn from_number(n: u8) -> Proto {
        match n {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            136 => Proto::UdpLite,
            1 => Proto::Icmp,
            58 => Proto::Icmpv6,
            50 => Proto::Esp,
            51 => Proto::Ah,
            n => Proto::Other(n),
        }
    }
}

/// Display helper for [`Proto`] that needs no allocation.
pub struct ProtoName(Proto);

impl fmt::Display for ProtoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Proto::Tcp => f.write_str("TCP"),
            Proto::Udp => f.write_str("UDP"),
            Proto::UdpLite => f.write_str("UDPLITE"),
            Proto::Icmp => f.write_str("ICMP"),
            Proto::Icmpv6 => f.write_str("ICMPv6"),
            Proto::Esp => f.write_str("ESP"),
            Proto::Ah => f.write_str("AH"),
            Proto::Other(n) => write!(f, "{n}"),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_str().fmt(f)
    }
}

/// TCP flag words as a bit set. Bits are in the kernel's print order, so iterating from the
/// highest bit down yields `AE CWR ECE URG ACK PSH RST SYN FIN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    pub const FIN: u16 = 1 << 0;
    pub const SYN: u16 = 1 << 1;
    pub const RST: u16 = 1 << 2;
    pub const PSH: u16 = 1 << 3;
    pub const ACK: u16 = 1 << 4;
    pub const URG: u16 = 1 << 5;
    pub const ECE: u16 = 1 << 6;
    pub const CWR: u16 = 1 << 7;
    pub const AE: u16 = 1 << 8;

    /// (bit, word) in kernel print order.
    pub const WORDS: [(u16, &'static str); 9] = [
        (Self::AE, "AE"),
        (Self::CWR, "CWR"),
        (Self::ECE, "ECE"),
        (Self::URG, "URG"),
        (Self::ACK, "ACK"),
        (Self::PSH, "PSH"),
        (Self::RST, "RST"),
        (Self::SYN, "SYN"),
        (Self::FIN, "FIN"),
    ];

    /// The bit of one flag word, if it is one.
    pub fn bit_of(word: &[u8]) -> Option<u16> {
        Self::WORDS
            .iter()
            .find(|(_, w)| w.as_bytes() == word)
            .map(|(b, _)| *b)
    }
    pub fn contains(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
}

/// Space-separated flag words in kernel order, e.g. `ACK SYN`; empty for no flags.
impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bit, word) in Self::WORDS {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str(" ")?;
                }
                f.write_str(word)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// The IP packet and its transport header: the part of a log line that repeats inside the
/// brackets of an ICMP error for the embedded packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Packet {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// IP total length (IPv4 `LEN=`) or IPv6 `LEN=`.
    pub len: Option<u32>,
    pub tos: Option<u8>,
    pub prec: Option<u8>,
    /// IPv4 TTL or IPv6 HOPLIMIT.
    pub ttl: Option<u8>,
    pub ip_id: Option<u32>,
    pub tc: Option<u8>,
    pub flowlbl: Option<u32>,
    /// IPv4 only: Some(true/false); None for IPv6.
    pub df: Option<bool>,
    pub mf: Option<bool>,
    pub ce: Option<bool>,
    /// Fragment offset (`FRAG:<n>`).
    pub frag: Option<u32>,
    pub proto: Option<Proto>,
    pub spt: Option<u16>,
    pub dpt: Option<u16>,
    pub seq: Option<u32>,
    pub ack: Option<u32>,
    pub window: Option<u32>,
    /// Present for TCP (possibly with no flag set), absent otherwise.
    pub tcp_flags: Option<TcpFlags>,
    pub urgp: Option<u32>,
    /// UDP/UDPLITE length (the second `LEN=`).
    pub udp_len: Option<u32>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub icmp_id: Option<u16>,
    pub icmp_seq: Option<u16>,
    pub mtu: Option<u32>,
    pub spi: Option<u32>,
    /// `INCOMPLETE [n bytes]` or `TRUNCATED` was logged: the header was cut short.
    pub incomplete: bool,
}

/// One parsed packet with the syslog line around it.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Record<'a> {
    /// Event time (UTC). A line that carries no time at all (a bare kernel message) gets the
    /// parser's reference time.
    pub ts: Timestamp,
    pub host: Option<&'a str>,
    /// The action word (`DROP`, `ACCEPT`, `INVALID`, `CBLK`, `BLOCK`, ...).
    pub action: &'a str,
    /// The raw log prefix, exactly as logged (e.g. `IPT: DROP `).
    pub prefix: &'a str,
    pub if_in: Option<&'a str>,
    pub if_out: Option<&'a str>,
    pub phys_in: Option<&'a str>,
    pub phys_out: Option<&'a str>,
    /// Raw `MAC=` header bytes as logged (hex with colons); `Some("")` when logged empty.
    pub mac: Option<&'a str>,
    /// With `--log-macdecode`: `MACSRC=` / `MACDST=`.
    pub mac_src: Option<&'a str>,
    pub mac_dst: Option<&'a str>,
    pub pkt: Packet,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mark: Option<u32>,
    /// How many packets this line stands for: 1, or N from `message repeated N times`.
    pub repeat: u32,
    /// The packet embedded in an ICMP/ICMPv6 error.
    pub inner: Option<Packet>,
    /// The netfilter message itself, from the first byte of the prefix to the end of the line,
    /// trailing white space trimmed. Not stored as a column: it feeds the de-duplication key.
    pub message: &'a [u8],
    /// The address of the relay that delivered the line to ipta-ingest (a central log host's
    /// rsyslog puts it in front of the line, see `ingest::session`); None for local lines and
    /// imports. Unlike `host`, the sender cannot choose it. Not part of the de-duplication key.
    pub relay: Option<&'a str>,
}

/// A byte range into a [`RecordBatch`]'s text arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

/// A record whose text lives in a batch's arena.
#[derive(Clone, Copy, Debug, Default)]
struct OwnedRecord {
    ts: Timestamp,
    host: Option<Span>,
    action: Span,
    prefix: Span,
    if_in: Option<Span>,
    if_out: Option<Span>,
    phys_in: Option<Span>,
    phys_out: Option<Span>,
    mac: Option<Span>,
    mac_src: Option<Span>,
    mac_dst: Option<Span>,
    pkt: Packet,
    uid: Option<u32>,
    gid: Option<u32>,
    mark: Option<u32>,
    repeat: u32,
    inner: Option<Packet>,
    message: Span,
    relay: Option<Span>,
}

/// An owned, reusable batch of records: every text field of every record is copied into one
/// arena, so filling a batch allocates only when it outgrows its previous size, and a batch can
/// cross threads (the reader parses, the writer stores). `clear` keeps the capacity.
#[derive(Clone, Debug, Default)]
pub struct RecordBatch {
    text: Vec<u8>,
    recs: Vec<OwnedRecord>,
    keys: Vec<u64>,
}

impl RecordBatch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_capacity(records: usize) -> Self {
        RecordBatch {
            text: Vec::with_capacity(records * 160),
            recs: Vec::with_capacity(records),
            keys: Vec::with_capacity(records),
        }
    }
    pub fn len(&self) -> usize {
        self.recs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }
    pub fn clear(&mut self) {
        self.text.clear();
        self.recs.clear();
        self.keys.clear();
    }

    fn put(&mut self, s: &[u8]) -> Span {
        let start = self.text.len() as u32;
        self.text.extend_from_slice(s);
        Span { start, len: s.len() as u32 }
    }
    fn put_opt(&mut self, s: Option<&str>) -> Option<Span> {
        s.map(|s| self.put(s.as_bytes()))
    }

    /// Copies a record into the batch, with a caller-defined 64-bit tag (the store uses it for
    /// the row's occurrence number; see `record::dedup`).
    pub fn push(&mut self, r: &Record<'_>, tag: u64) {
        let o = OwnedRecord {
            ts: r.ts,
            host: self.put_opt(r.host),
            action: self.put(r.action.as_bytes()),
            prefix: self.put(r.prefix.as_bytes()),
            if_in: self.put_opt(r.if_in),
            if_out: self.put_opt(r.if_out),
            phys_in: self.put_opt(r.phys_in),
            phys_out: self.put_opt(r.phys_out),
            mac: self.put_opt(r.mac),
            mac_src: self.put_opt(r.mac_src),
            mac_dst: self.put_opt(r.mac_dst),
            pkt: r.pkt,
            uid: r.uid,
            gid: r.gid,
            mark: r.mark,
            repeat: r.repeat,
            inner: r.inner,
            message: self.put(r.message),
            relay: self.put_opt(r.relay),
        };
        self.recs.push(o);
        self.keys.push(tag);
    }

    fn text_of(&self, s: Span) -> &str {
        let b = &self.text[s.start as usize..(s.start + s.len) as usize];
        // Only &str values were copied in at these spans (message aside, read via `bytes_of`).
        std::str::from_utf8(b).unwrap_or("")
    }
    fn bytes_of(&self, s: Span) -> &[u8] {
        &self.text[s.start as usize..(s.start + s.len) as usize]
    }

    /// The i-th record, borrowing from the batch.
    pub fn get(&self, i: usize) -> (Record<'_>, u64) {
        let o = &self.recs[i];
        let opt = |s: Option<Span>| s.map(|s| self.text_of(s));
        (
            Record {
                ts: o.ts,
                host: opt(o.host),
                action: self.text_of(o.action),
                prefix: self.text_of(o.prefix),
                if_in: opt(o.if_in),
                if_out: opt(o.if_out),
                phys_in: opt(o.phys_in),
                phys_out: opt(o.phys_out),
                mac: opt(o.mac),
                mac_src: opt(o.mac_src),
                mac_dst: opt(o.mac_dst),
                pkt: o.pkt,
                uid: o.uid,
                gid: o.gid,
                mark: o.mark,
                repeat: o.repeat,
                inner: o.inner,
                message: self.bytes_of(o.message),
                relay: opt(o.relay),
            },
            self.keys[i],
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = (Record<'_>, u64)> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_flags_print_in_kernel_order() {
        let f = TcpFlags(TcpFlags::SYN | TcpFlags::ACK | TcpFlags::CWR);
        assert_eq!(f.to_string(), "CWR ACK SYN");
        assert_eq!(TcpFlags::default().to_string(), "");
        assert_eq!(TcpFlags::bit_of(b"PSH"), Some(TcpFlags::PSH));
        assert_eq!(TcpFlags::bit_of(b"XYZ"), None);
    }

    #[test]
    fn batch_round_trips_records() {
        let line = "IPT: DROP IN=eth0 OUT=".to_string();
        let r = Record {
            ts: Timestamp(1_700_000_000_123_456),
            host: Some("fw1"),
            action: "DROP",
            prefix: "IPT: DROP ",
            if_in: Some("eth0"),
            if_out: Some(""),
            repeat: 1,
            message: line.as_bytes(),
            ..Default::default()
        };
        let mut b = RecordBatch::with_capacity(4);
        b.push(&r, 7);
        b.push(&Record { host: None, ..r }, 8);
        assert_eq!(b.len(), 2);
        let (r0, k0) = b.get(0);
        assert_eq!(r0, r);
        assert_eq!(k0, 7);
        let (r1, k1) = b.get(1);
        assert_eq!(r1.host, None);
        assert_eq!(r1.if_in, Some("eth0"));
        assert_eq!(k1, 8);
        b.clear();
        assert!(b.is_empty());
    }

    #[test]
    fn timestamp_prints_rfc3339_utc() {
        assert_eq!(
            Timestamp(1_762_320_908_123_456).to_rfc3339(),
            "2025-11-05T05:35:08.123456Z"
        );
    }
}
