//! Workload generator on the command line: writes N realistic iptables/ip6tables kernel LOG
//! lines in syslog files to stdout (the generator is `ipta_dev::genlog`, shared with the tests and
//! benchmarks).
//!
//! `cargo run --release --example genlog -- 1000000 [--seed 7] [--style 3164|3339|mixed] [--rate 50]`

use std::io::Write;

use ipta_dev::genlog::{Gen, Style};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut n: u64 = 1000;
    let mut seed = 1;
    let mut style = Style::Rfc3164;
    let mut rate: Option<f64> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rate" => rate = Some(args.next().and_then(|s| s.parse().ok()).filter(|r: &f64| *r > 0.0).expect("--rate LINES_PER_SECOND")),
            "--seed" => seed = args.next().and_then(|s| s.parse().ok()).expect("--seed N"),
            "--style" => {
                style = match args.next().as_deref() {
                    Some("3164") => Style::Rfc3164,
                    Some("3339") => Style::Rfc3339,
                    Some("mixed") => Style::Mixed,
                    _ => {
                        eprintln!("--style 3164|3339|mixed");
                        std::process::exit(2);
                    }
                }
            }
            s => match s.parse() {
                Ok(v) => n = v,
                Err(_) => {
                    eprintln!("usage: genlog N [--seed S] [--style 3164|3339|mixed] [--rate LINES_PER_SECOND]");
                    std::process::exit(2);
                }
            },
        }
    }
    let mut g = Gen::new(seed, style);
    if let Some(r) = rate {
        g.set_rate(r);
    }
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut buf = Vec::with_capacity(512);
    for _ in 0..n {
        buf.clear();
        g.line(&mut buf);
        buf.push(b'\n');
        if w.write_all(&buf).is_err() {
            return; // closed pipe (| head)
        }
    }
    let _ = w.flush();
}
