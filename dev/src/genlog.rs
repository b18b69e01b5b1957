//! Workload generator: realistic iptables/ip6tables kernel LOG lines in syslog files, with the
//! same mix as ../shared/genlog.py (IPv4 and IPv6; TCP, UDP and ICMP including errors with an
//! embedded packet; actions DROP/ACCEPT/INVALID/CBLK; Zipf-distributed sources; RFC 3164 and
//! RFC 3339 headers). Deterministic for a seed.
//!
//! The command line is `examples/genlog.rs`
//! (`cargo run --release --example genlog -- 1000000 [--seed 7] [--style 3164|3339|mixed]`);
//! the tests and benchmarks generate their lines in process with [`Gen`].

use std::io::Write;

/// SplitMix64: small, fast, good enough for a workload.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.range(0, xs.len() as u64) as usize]
    }
    /// Weighted choice.
    pub fn weighted<T: Copy>(&mut self, xs: &[(T, u32)]) -> T {
        let total: u32 = xs.iter().map(|x| x.1).sum();
        let mut r = self.range(0, u64::from(total)) as u32;
        for &(x, w) in xs {
            if r < w {
                return x;
            }
            r -= w;
        }
        xs[xs.len() - 1].0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Rfc3164,
    Rfc3339,
    Mixed,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const FIRST_OCTETS: [u8; 11] = [45, 61, 89, 103, 112, 117, 185, 193, 194, 212, 222];

pub struct Gen {
    rng: Rng,
    style: Style,
    pool: Vec<[u8; 4]>,
    /// Wall-clock time (zone +01:00) in microseconds since the epoch.
    t_us: i64,
    uptime: f64,
    rate: f64,
    host: String,
}

/// Days since the epoch -> civil date (the generator must not depend on the library).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl Gen {
    /// Starts at 2025-12-31T22:00:00 (+01:00), like genlog.py, so a stream crosses the new year.
    pub fn new(seed: u64, style: Style) -> Gen {
        let mut pr = Rng::new(12345);
        let pool = (0..50_000)
            .map(|_| {
                [
                    pr.pick(&FIRST_OCTETS),
                    pr.range(0, 256) as u8,
                    pr.range(0, 256) as u8,
                    pr.range(1, 255) as u8,
                ]
            })
            .collect();
        Gen {
            rng: Rng::new(seed),
            style,
            pool,
            t_us: 1_767_218_400 * 1_000_000, // 2025-12-31T22:00:00 as wall time
            uptime: 1000.0,
            rate: 50.0,
            host: "fw1".into(),
        }
    }

    /// Mean lines per second from now on (default 50): a low rate spreads a few lines over days.
    pub fn set_rate(&mut self, lines_per_second: f64) {
        assert!(lines_per_second > 0.0, "a rate above zero");
        self.rate = lines_per_second;
    }

    /// Wall-clock time of the last line, microseconds since the epoch as if the zone were UTC.
    pub fn wall_micros(&self) -> i64 {
        self.t_us
    }

    fn ip4(&mut self, out: &mut Vec<u8>) {
        let a = if self.rng.f64() < 0.05 {
            [self.rng.pick(&FIRST_OCTETS), self.rng.range(0, 256) as u8, self.rng.range(0, 256) as u8, self.rng.range(1, 255) as u8]
        } else {
            // Log-uniform rank: P(rank k) ~ 1/k.
            let k = (self.pool.len() as f64).powf(self.rng.f64()) as usize;
            self.pool[k.saturating_sub(1).min(self.pool.len() - 1)]
        };
        let _ = write!(out, "{}.{}.{}.{}", a[0], a[1], a[2], a[3]);
    }

    fn ip6(&mut self, out: &mut Vec<u8>) {
        let (a, b, c) = (self.rng.range(0, 65536), self.rng.range(0, 65536), self.rng.range(1, 65536));
        let _ = write!(out, "2001:db8:{a:x}:{b:x}::{c:x}");
    }

    fn body(&mut self, out: &mut Vec<u8>) {
        let r = &mut self.rng;
        let action = r.weighted(&[("DROP", 60), ("ACCEPT", 20), ("INVALID", 15), ("CBLK", 5)]);
        let inbound = r.f64() < 0.9;
        let (mut iin, mut iout) = if inbound { ("eth0", "") } else { ("", "eth0") };
        let lo = r.f64() < 0.03;
        if lo {
            (iin, iout) = ("lo", "");
        }
        let v6 = r.f64() < 0.12;
        let _ = write!(out, "IPT: {action} IN={iin} OUT={iout} ");
        if inbound && !lo {
            out.extend_from_slice(b"MAC=00:16:3e:11:22:33:52:54:00:");
            let (x, y, z) = (r.range(0, 256), r.range(0, 256), r.range(0, 256));
            let _ = write!(out, "{x:02x}:{y:02x}:{z:02x}:08:00 ");
        }
        // Addresses are rendered into scratch space so that src/dst can be swapped.
        let mut peer = Vec::with_capacity(40);
        let me: &[u8] = if v6 { b"2001:db8:1::160" } else { b"188.126.93.160" };
        if lo {
            peer.extend_from_slice(if v6 { b"::1" } else { b"127.0.0.1" });
        } else if v6 {
            self.ip6(&mut peer);
        } else {
            self.ip4(&mut peer);
        }
        let me: &[u8] = if lo { &peer } else { me };
        let (src, dst): (&[u8], &[u8]) = if inbound || lo { (&peer, me) } else { (me, &peer) };
        out.extend_from_slice(b"SRC=");
        out.extend_from_slice(src);
        out.extend_from_slice(b" DST=");
        out.extend_from_slice(dst);
        out.push(b' ');
        let (src, dst) = (src.to_vec(), dst.to_vec());
        let r = &mut self.rng;
        let proto = r.weighted(&[("TCP", 70), ("UDP", 22), ("ICMP", 8)]);
        let ln = r.pick(&[40u64, 44, 52, 60, 64, 84, 576, 1500]);
        if v6 {
            let hl = r.pick(&[52, 64, 118, 255]);
            let fl = r.range(0, 1 << 20);
            let _ = write!(out, "LEN={} TC=0 HOPLIMIT={hl} FLOWLBL={fl} ", ln + 20);
        } else {
            let tos = r.pick(&[0, 0, 0x08, 0x10]);
            let prec = r.pick(&[0, 0, 0x20]);
            let ttl = r.pick(&[44, 52, 64, 109, 128, 240]);
            let id = r.range(0, 65536);
            let df = if r.f64() < 0.5 { "DF " } else { "" };
            let _ = write!(out, "LEN={ln} TOS=0x{tos:02X} PREC=0x{prec:02X} TTL={ttl} ID={id} {df}");
        }
        match proto {
            "TCP" => {
                let any = r.range(1, 65536);
                let dpt = r.weighted(&[
                    (22, 10), (23, 12), (25, 5), (80, 15), (443, 10), (445, 8), (1433, 5), (3306, 4), (3389, 8),
                    (5900, 3), (8080, 5), (any, 15),
                ]);
                let spt = r.range(1024, 65536);
                let win = r.pick(&[1024, 29200, 64240, 65535]);
                let flags = r.pick(&["SYN ", "SYN ", "SYN ", "ACK PSH ", "ACK FIN ", "RST ", "ACK RST ", "ACK SYN ", "CWR ECE SYN "]);
                let _ = write!(out, "PROTO=TCP SPT={spt} DPT={dpt} WINDOW={win} RES=0x00 {flags}URGP=0 ");
            }
            "UDP" => {
                let any = r.range(1, 65536);
                let dpt = r.pick(&[53, 123, 137, 161, 1900, 5060, 5353, any]);
                let spt = r.range(1, 65536);
                let _ = write!(out, "PROTO=UDP SPT={spt} DPT={dpt} LEN={} ", (ln.max(28)) - 20);
            }
            _ if v6 => {
                let t = r.pick(&[128, 129, 135, 136, 1]);
                let _ = write!(out, "PROTO=ICMPv6 TYPE={t} CODE=0 ");
                if t == 128 || t == 129 {
                    let (id, seq) = (r.range(0, 65536), r.range(1, 100));
                    let _ = write!(out, "ID={id} SEQ={seq} ");
                }
            }
            _ => {
                let t = r.pick(&[8, 8, 0, 3, 11]);
                if t == 0 || t == 8 {
                    let (id, seq) = (r.range(0, 65536), r.range(1, 100));
                    let _ = write!(out, "PROTO=ICMP TYPE={t} CODE=0 ID={id} SEQ={seq} ");
                } else {
                    let code = if t == 3 { 3 } else { 0 };
                    let (id, sp, dp) = (r.range(0, 65536), r.range(1024, 65536), r.range(33434, 33535));
                    let _ = write!(out, "PROTO=ICMP TYPE={t} CODE={code} [SRC=");
                    out.extend_from_slice(&dst);
                    out.extend_from_slice(b" DST=");
                    out.extend_from_slice(&src);
                    let _ = write!(out, " LEN=68 TOS=0x00 PREC=0x00 TTL=1 ID={id} PROTO=UDP SPT={sp} DPT={dp} LEN=48 ] ");
                }
            }
        }
        if r.f64() < 0.05 {
            let (u, g) = (r.pick(&[0, 33, 1000]), r.pick(&[0, 33, 1000]));
            let _ = write!(out, "UID={u} GID={g} ");
        }
        if r.f64() < 0.05 {
            let m = r.range(1, 256);
            let _ = write!(out, "MARK=0x{m:x} ");
        }
        while out.last() == Some(&b' ') {
            out.pop();
        }
        if r.f64() < 0.5 {
            out.push(b' ');
        }
    }

    /// Appends one line (without newline) to `out`.
    pub fn line(&mut self, out: &mut Vec<u8>) {
        // Exponential inter-arrival times at `rate` lines per second.
        let dt = -(1.0 - self.rng.f64()).ln() / self.rate;
        self.t_us += (dt * 1e6) as i64;
        self.uptime += dt;
        let style = match self.style {
            Style::Mixed => {
                if self.rng.f64() < 0.5 {
                    Style::Rfc3164
                } else {
                    Style::Rfc3339
                }
            }
            s => s,
        };
        let secs = self.t_us.div_euclid(1_000_000);
        let (y, mo, d) = civil(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
        if style == Style::Rfc3164 {
            let _ = write!(
                out,
                "{} {:2} {:02}:{:02}:{:02} {} kernel: [{:11.6}] ",
                MONTHS[mo as usize - 1],
                d,
                h,
                mi,
                s,
                self.host,
                self.uptime
            );
        } else {
            let _ = write!(
                out,
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}+01:00 {} kernel: ",
                self.t_us.rem_euclid(1_000_000),
                self.host
            );
        }
        self.body(out);
    }
}
