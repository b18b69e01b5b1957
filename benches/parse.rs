//! `cargo bench --bench parse`: parser throughput on the generated workload (dev/src/genlog.rs,
//! the same mix as ../shared/genlog.py, RFC 3164 and RFC 3339 headers mixed), on one core.
//!
//! Lines are generated in process first, then parsed several rounds; the best round counts.
//! Each round is timed twice: wall clock, and the CPU time of the parsing thread. The machine
//! is shared (other builds run on its two cores), so the headline figure is the CPU-time rate:
//! what one core does while it is parsing. On an idle machine both agree.
//! A counting global allocator proves the hot path allocates nothing: the number of heap
//! allocations during the timed rounds is printed (it must be 0). The last line of the output
//! is `parse lines/s: N`. Figures are printed, never asserted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ipta::parse::{ActionRules, Outcome, ParseOptions, Parser};
use ipta::record::Timestamp;

mod common;

use common::genlog;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static A: Counting = Counting;

fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the pointer we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() {
    let n: usize = std::env::var("IPTA_BENCH_LINES").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let rounds = 5;
    let mut g = genlog::Gen::new(7, genlog::Style::Mixed);
    let mut text = Vec::with_capacity(n * 260);
    let mut ends = Vec::with_capacity(n);
    for _ in 0..n {
        g.line(&mut text);
        ends.push(text.len());
    }
    // The reference: the end of the workload (its wall time is +01:00).
    let reference = Timestamp((g.wall_micros() / 1_000_000 - 3600 + 60) * 1_000_000);
    let opts = ParseOptions { reference, year: None, tz: Some("+01:00".into()), rules: ActionRules::default() };
    println!("workload: {n} lines, {:.1} MB, genlog mixed RFC 3164/3339, seed 7", text.len() as f64 / 1e6);
    let mut best = f64::INFINITY;
    let mut best_wall = f64::INFINITY;
    let mut allocs_total = 0;
    let (mut packets, mut rejected, mut not_ours) = (0u64, 0u64, 0u64);
    for round in 0..rounds {
        let mut p = Parser::new(opts.clone()).expect("options");
        let (mut pk, mut rj, mut no) = (0u64, 0u64, 0u64);
        let before = ALLOCS.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let c0 = thread_cpu_secs();
        let mut start = 0;
        for &end in &ends {
            match black_box(p.parse(black_box(&text[start..end]))) {
                Outcome::Packet(r) => {
                    black_box(&r);
                    pk += 1
                }
                Outcome::Rejected(_) => rj += 1,
                Outcome::NotOurs => no += 1,
            }
            start = end;
        }
        let wall = t0.elapsed().as_secs_f64();
        let dt = thread_cpu_secs() - c0;
        let allocs = ALLOCS.load(Ordering::Relaxed) - before;
        allocs_total += allocs;
        println!(
            "round {round}: cpu {:.3} s ({:.0} lines/s, {:.0} MB/s), wall {:.3} s ({:.0} lines/s), heap allocations: {allocs}",
            dt,
            n as f64 / dt,
            text.len() as f64 / dt / 1e6,
            wall,
            n as f64 / wall
        );
        best_wall = best_wall.min(wall);
        best = best.min(dt);
        (packets, rejected, not_ours) = (pk, rj, no);
    }
    println!("outcomes: {packets} packets, {rejected} rejected, {not_ours} not ours");
    println!("heap allocations while parsing ({rounds} rounds): {allocs_total}");
    println!("best wall-clock round: {:.0} lines/s", n as f64 / best_wall);
    println!("best CPU-time round: {:.0} MB/s", text.len() as f64 / best / 1e6);
    println!("parse lines/s: {:.0}", n as f64 / best);
}
