//! Memory: parsing and rendering allocate nothing per line, and a scan of a 10 MB line needs
//! no more than a bounded buffer. A counting global allocator (this test binary's own) watches.
//! The tests run one at a time under a lock, since the counters are global.
//!
//! This is a test binary of its own, not a module of `tests/it/`: a `#[global_allocator]` is
//! process-wide, so inside the shared binary it would count every other test's allocations
//! (running on other threads) and slow them all down.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ipta::parse::{ActionRules, Outcome, ParseOptions, Parser};
use ipta::record::Timestamp;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static SERIAL: Mutex<()> = Mutex::new(());

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::SeqCst) + n;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        grew(l.size());
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::SeqCst);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        LIVE.fetch_sub(l.size(), Ordering::SeqCst);
        grew(n);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static A: Counting = Counting;

use ipta_dev::genlog;

fn opts() -> ParseOptions {
    ParseOptions {
        reference: Timestamp(1_767_300_000_000_000),
        year: None,
        tz: Some("Europe/Berlin".into()),
        rules: ActionRules { ufw: true, shorewall: true, regex: Some("SFW2-(?P<action>[A-Z]+)".into()), any: false, other_tags: false },
    }
}

#[test]
fn parsing_and_json_allocate_nothing_per_line() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fixtures = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cases.txt")).unwrap();
    let mut lines: Vec<Vec<u8>> = fixtures.lines().filter_map(|l| l.strip_prefix("line: ")).map(|l| l.as_bytes().to_vec()).collect();
    let mut g = genlog::Gen::new(11, genlog::Style::Mixed);
    for _ in 0..5_000 {
        let mut l = Vec::new();
        g.line(&mut l);
        lines.push(l);
    }
    // The presets and the regex, and `any` (verdict words looked up in every prefix).
    let mut any = opts();
    any.rules.any = true;
    let mut ps = [Parser::new(opts()).unwrap(), Parser::new(any).unwrap()];
    let mut out = Vec::with_capacity(1 << 16);
    // Warm up: the zone's first lookups and the output buffer.
    for p in ps.iter_mut() {
        for l in &lines {
            if let Outcome::Packet(r) = p.parse(l) {
                ipta::follow::packet::write_json(&r, &mut out);
                out.clear();
            }
        }
    }
    let before = ALLOCS.load(Ordering::SeqCst);
    let mut packets = 0;
    for _ in 0..3 {
        for p in ps.iter_mut() {
            for l in &lines {
                if let Outcome::Packet(r) = p.parse(l) {
                    packets += 1;
                    ipta::follow::packet::write_json(&r, &mut out);
                    out.clear();
                }
            }
        }
    }
    let allocs = ALLOCS.load(Ordering::SeqCst) - before;
    assert!(packets > 15_000);
    assert_eq!(allocs, 0, "heap allocations while parsing {packets} packets");
}

/// A reader that produces a 10 MB line (and a short one after it) without holding it.
struct Huge {
    left: usize,
    tail: &'static [u8],
}

impl io::Read for Huge {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left > 0 {
            let n = buf.len().min(self.left);
            buf[..n].fill(b'x');
            self.left -= n;
            if self.left == 0 {
                buf[n - 1] = b'\n';
            }
            return Ok(n);
        }
        let n = buf.len().min(self.tail.len());
        buf[..n].copy_from_slice(&self.tail[..n]);
        self.tail = &self.tail[n..];
        Ok(n)
    }
}

#[test]
fn a_ten_megabyte_line_needs_bounded_memory() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let opts = ipta::scan::ScanOptions { format: ipta::scan::ScanFormat::Json, parse: opts() };
    let mut input = io::BufReader::new(Huge {
        left: 10 * 1024 * 1024,
        tail: b"IPT: DROP IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=40 TOS=0x00 PREC=0x00 TTL=50 ID=7 PROTO=UDP SPT=1 DPT=2 LEN=20\n",
    });
    let (mut out, mut err) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let sum = ipta::scan::run(&mut input, &mut out, &mut err, &opts).unwrap();
    let peak = PEAK.load(Ordering::SeqCst) - base;
    assert_eq!((sum.lines, sum.packets, sum.rejected), (2, 1, 1));
    assert!(peak < 1024 * 1024, "peak heap during the scan: {peak} bytes");
}
