//! `cargo bench --bench follow`: the live path's figures (printed, never asserted).
//!
//! 1. Latency from `FanOut::send` (as ipta-ingest calls it for each line it reads) to a viewer
//!    process having printed the line, at 1,000 lines/s: p50/p99/max. Measured twice: with the
//!    real viewer (`follow_ingest`: parse + display, a child process writing to a pipe) and with
//!    a raw viewer (`view_lines`, printing the line as received: the transport alone).
//! 2. The cost with no viewer: ns per `send`, and CPU time of the idle fan-out thread.
//! 3. The writer's throughput (an ingest-like loop: parse each line, batch it, send it to the
//!    fan-out) with no viewer, and with three viewer processes attached, one of them stopped
//!    (SIGSTOP): lines/s and the ratio.
//!
//! 4. The real thing: the release `ipta-ingest` (plain mode, writing to the local MariaDB)
//!    taking 300,000 lines with no viewer, and with three real `ipta --follow` viewers attached
//!    (output to /dev/null), one of them stopped (SIGSTOP); rounds alternate, median printed.
//!
//! The viewers of 1-3 are this same executable started with `--viewer DIR` or `--raw-viewer DIR`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use ipta::follow::viewer::view_lines;
use ipta::follow::{follow_ingest, FollowFormat, FollowOptions};
use ipta::follow::fanout::FanOut;
use ipta::parse::{Outcome, ParseOptions, Parser};
use ipta::record::{RecordBatch, Timestamp};

fn parse_opts() -> ParseOptions {
    ParseOptions {
        reference: Timestamp(chrono::Utc::now().timestamp_micros()),
        year: None,
        tz: None,
        rules: Default::default(),
    }
}

fn follow_opts(dir: &Path) -> FollowOptions {
    FollowOptions {
        no_header: true,
        no_counter: true,
        no_local: false,
        no_accept: false,
        rdns: false,
        format: FollowFormat::Text,
        width: Some(0),
        parse: parse_opts(),
        follow_dir: dir.to_path_buf(),
    }
}

/// An RSYSLOG_FileFormat line as ipta-ingest receives it; `seq` is the source port.
fn log_line(buf: &mut Vec<u8>, seq: u32) {
    buf.clear();
    let now = chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.6f%:z");
    let _ = write!(
        buf,
        "{now} fw01 kernel: IPT: DROP IN=eth0 OUT= MAC=02:00:bc:7e:5d:a0:00:13:5f:21:29:40:08:00 \
         SRC=198.51.{}.{} DST=192.0.2.10 LEN=60 TOS=0x00 PREC=0x00 TTL=49 ID={} DF PROTO=TCP \
         SPT={} DPT=22 WINDOW=29200 RES=0x00 SYN URGP=0",
        (seq / 250) % 250,
        seq % 250,
        seq % 65536,
        seq % 65536
    );
}

fn viewer_main(raw: bool, dir: &Path) {
    // SAFETY: prctl with an integer argument: die with the benchmark, never linger.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let stop = AtomicBool::new(false);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let r = if raw {
        view_lines(dir, &stop, &mut |data| {
            out.write_all(data).and_then(|_| out.flush()).map_err(ipta::follow::FollowError::Output)
        })
    } else {
        follow_ingest(&follow_opts(dir), &mut out, &stop)
    };
    if let Err(e) = r {
        if !e.is_broken_pipe() {
            eprintln!("viewer: {e}");
            std::process::exit(1);
        }
    }
}

fn spawn_viewer(kind: &str, dir: &Path, stdout: Stdio) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .arg(kind)
        .arg(dir)
        .stdout(stdout)
        .spawn()
        .expect("spawn viewer")
}

fn wait_viewers(f: &FanOut, n: usize) {
    let t = Instant::now();
    while f.refresh(Duration::from_secs(1)) < n {
        assert!(t.elapsed() < Duration::from_secs(10), "viewers did not attach");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Sends `n` lines at `rate`/s and returns the latencies of those the viewer printed.
fn latency(kind: &str, n: u32, rate: u32) -> (Vec<Duration>, u32) {
    let d = tempfile::tempdir().unwrap();
    let mut f = FanOut::new(d.path()).unwrap();
    let mut child = spawn_viewer(kind, d.path(), Stdio::piped());
    let out = child.stdout.take().unwrap();
    wait_viewers(&f, 1);
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; n as usize]));
    let got: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; n as usize]));
    let g = got.clone();
    let raw = kind == "--raw-viewer";
    let reader = std::thread::spawn(move || {
        let mut lost = 0u32;
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            let now = Instant::now();
            if l.contains(" lost ---") {
                lost += l.split_whitespace().nth(1).and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
                continue;
            }
            // The sequence number is the source port: `SPT=` in a raw line, the 6th column of
            // the display (Mon DD HH:MM:SS IF SRC PORT ...).
            let seq = if raw {
                l.split("SPT=").nth(1).and_then(|s| s.split(' ').next()).and_then(|s| s.parse::<usize>().ok())
            } else {
                l.split_whitespace().nth(5).and_then(|s| s.parse::<usize>().ok())
            };
            if let Some(s) = seq {
                let mut g = g.lock().unwrap();
                if s < g.len() && g[s].is_none() {
                    g[s] = Some(now);
                }
            }
        }
        lost
    });
    let mut buf = Vec::with_capacity(512);
    let start = Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    for i in 0..n {
        let due = start + period * i;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        log_line(&mut buf, i);
        let t = Instant::now();
        f.send(&buf);
        sent.lock().unwrap()[i as usize] = Some(t);
    }
    // Let the last lines arrive, then end the viewer.
    std::thread::sleep(Duration::from_millis(300));
    let _ = child.kill();
    let _ = child.wait();
    let lost = reader.join().unwrap();
    let sent = sent.lock().unwrap();
    let got = got.lock().unwrap();
    let mut lat: Vec<Duration> = sent
        .iter()
        .zip(got.iter())
        .skip((n / 20) as usize) // warm-up
        .filter_map(|(s, g)| Some(g.as_ref()?.duration_since(*s.as_ref()?)))
        .collect();
    lat.sort();
    (lat, lost)
}

/// An ingest-like writer loop over `lines`: parse, batch (500), send. Returns lines/s.
fn writer_throughput(f: &mut FanOut, lines: &[Vec<u8>]) -> f64 {
    let mut parser = Parser::new(parse_opts()).unwrap();
    let mut batch = RecordBatch::with_capacity(500);
    let t = Instant::now();
    for l in lines {
        if let Outcome::Packet(r) = parser.parse(l) {
            batch.push(&r, 0);
        }
        if batch.len() == 500 {
            batch.clear();
        }
        f.send(l);
    }
    lines.len() as f64 / t.elapsed().as_secs_f64()
}

/// CPU time (user + system) of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && (args[1] == "--viewer" || args[1] == "--raw-viewer") {
        viewer_main(args[1] == "--raw-viewer", Path::new(&args[2]));
        return;
    }
    println!("follow benchmark ({} CPUs)", std::thread::available_parallelism().map_or(0, |n| n.get()));

    // 1. Latency at 1,000 lines/s.
    let n = 6000;
    for kind in ["--viewer", "--raw-viewer"] {
        let (lat, lost) = latency(kind, n, 1000);
        let what = if kind == "--viewer" { "follow_ingest (parse + display)" } else { "raw viewer (transport only)" };
        if lat.is_empty() {
            println!("latency, {what}: the viewer printed no packet line (parser not merged yet?)");
            continue;
        }
        println!(
            "latency send->printed, {what}, 1000 lines/s, {} lines measured, {lost} lost: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            lat.len(),
            percentile(&lat, 0.50).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().unwrap().as_secs_f64() * 1e3,
        );
    }

    // 2. The cost of a fan-out nobody watches: one send, and the idle writer thread.
    {
        let d = tempfile::tempdir().unwrap();
        let mut f = FanOut::new(d.path()).unwrap();
        let mut buf = Vec::new();
        log_line(&mut buf, 1);
        let n = 20_000_000u32;
        let t = Instant::now();
        for _ in 0..n {
            f.send(std::hint::black_box(&buf));
        }
        let per_send = t.elapsed().as_secs_f64() * 1e9 / n as f64;
        let cpu0 = cpu_time();
        std::thread::sleep(Duration::from_secs(5));
        let idle = (cpu_time() - cpu0).as_secs_f64() * 1e6 / 5.0;
        println!("no viewer: FanOut::send {per_send:.1} ns per line; idle fan-out (directory check 4x/s): {idle:.0} us CPU per second");
    }

    // 3. Writer throughput, no viewer vs three (one stopped).
    let total = 300_000u32;
    let mut buf = Vec::new();
    let lines: Vec<Vec<u8>> = (0..total)
        .map(|i| {
            log_line(&mut buf, i);
            buf.clone()
        })
        .collect();
    let d = tempfile::tempdir().unwrap();
    let mut f = FanOut::new(d.path()).unwrap();
    let mut best_none = 0f64;
    for _ in 0..3 {
        best_none = best_none.max(writer_throughput(&mut f, &lines));
    }
    let devnull = || Stdio::from(std::fs::File::create("/dev/null").unwrap());
    let mut viewers: Vec<Child> = (0..3).map(|_| spawn_viewer("--viewer", d.path(), devnull())).collect();
    wait_viewers(&f, 3);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(viewers[2].id() as libc::pid_t, libc::SIGSTOP) };
    let mut best_three = 0f64;
    for _ in 0..3 {
        best_three = best_three.max(writer_throughput(&mut f, &lines));
    }
    std::thread::sleep(Duration::from_millis(200));
    println!(
        "writer throughput (parse + batch + FanOut::send), {total} lines, best of 3: no viewer {:.0} lines/s; \
         3 viewers (1 stopped) {:.0} lines/s = {:.1}%; lines lost by viewers: {}",
        best_none,
        best_three,
        100.0 * best_three / best_none,
        f.dropped_total()
    );
    for v in &mut viewers {
        let _ = v.kill();
        let _ = v.wait();
    }

    // 4. The real ipta-ingest with its database, without and with viewers.
    real_ingest_with_viewers(&lines);
}

/// One run of the release ipta-ingest in plain mode over `lines` into a fresh table, with the
/// fan-out in `dir`; returns lines/s from the first byte written to its exit.
fn ingest_run(db: &common::TestDb, table: &str, dir: &Path, lines: &[Vec<u8>]) -> f64 {
    let s = &db.settings;
    let mut child = Command::new(common::bin("ipta-ingest"))
        .args(["-u", &s.user, "-d", &s.database, "-t", table, "--batch-size", "500"])
        .arg("--db-socket")
        .arg(s.socket.as_ref().unwrap())
        .arg("--follow-dir")
        .arg(dir)
        .env("IPTA_DB_PASS", &s.password)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ipta-ingest");
    // The fan-out finds viewers within 250 ms of its start: let it, before the clock starts.
    std::thread::sleep(Duration::from_millis(600));
    let t = Instant::now();
    {
        let mut stdin = std::io::BufWriter::with_capacity(1 << 16, child.stdin.take().unwrap());
        for l in lines {
            stdin.write_all(l).unwrap();
            stdin.write_all(b"\n").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let secs = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains(&format!("inserted {}", lines.len())), "{err}");
    lines.len() as f64 / secs
}

fn real_ingest_with_viewers(lines: &[Vec<u8>]) {
    let db = common::TestDb::new("bench_follow");
    let d = tempfile::tempdir().unwrap();
    let spawn_real_viewer = || {
        Command::new(common::bin("ipta"))
            .args(["--follow", "--no-header"])
            .arg("--follow-dir")
            .arg(d.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn ipta --follow")
    };
    let fifos = || {
        std::fs::read_dir(d.path())
            .map(|r| r.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".fifo")).count())
            .unwrap_or(0)
    };
    let (mut none, mut three) = (Vec::new(), Vec::new());
    for round in 0..3 {
        for with in [round % 2 == 1, round % 2 == 0] {
            let table = format!("r{round}_{}", if with { "v" } else { "n" });
            if !with {
                none.push(ingest_run(&db, &table, d.path(), lines));
                continue;
            }
            let mut viewers: Vec<Child> = (0..3).map(|_| spawn_real_viewer()).collect();
            let t = Instant::now();
            while fifos() < 3 {
                assert!(t.elapsed() < Duration::from_secs(10), "viewers did not attach");
                std::thread::sleep(Duration::from_millis(10));
            }
            // SAFETY: signalling our own child.
            unsafe { libc::kill(viewers[2].id() as libc::pid_t, libc::SIGSTOP) };
            three.push(ingest_run(&db, &table, d.path(), lines));
            for v in &mut viewers {
                let _ = v.kill();
                let _ = v.wait();
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut none), median(&mut three));
    println!(
        "ipta-ingest (plain mode, MariaDB), {} lines, median of 3: no viewer {a:.0} lines/s; \
         3 ipta --follow viewers (1 stopped) {b:.0} lines/s = {:.1}%",
        lines.len(),
        100.0 * b / a
    );
}
