//! `ipta -a --format html` as a user runs it: a fixture log with a hostile host name, action
//! word and interface imported by the binary, the page rendered with `-o FILE` and checked
//! against `--format json` of the same data (every chart bar and label is a number of the JSON
//! report, bars proportional); the page in a real browser (headless chromium: the DOM after
//! load, the script ran, no console message, a screenshot kept); and the report mailed through
//! a stand-in sendmail, the message parsed by Python's `email` package.
use crate::util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mysql::prelude::Queryable;
use serde_json::Value;

const EVIL_HOST: &str = "<script>alert(1)</script>";
const EVIL_ACTION: &str = "<script>alert(3)</script>";
const EVIL_IFACE: &str = "eth0\"><b>x";

/// The fixture: three hours of one firewall with the hostile name, a scanner on six ports,
/// a brute-forcer, accepted traffic, the hostile action and interface; plus lines of `fw1`
/// that the `--host` filter leaves out.
fn fixture() -> String {
    let mut lines = Vec::new();
    let mut id = 0;
    let mut add = |hour: u32, host: &str, action: &str, ifc: &str, src: &str, dpt: u32| {
        id += 1;
        let stamp = format!("2026-11-25T{hour:02}:{:02}:{:02}.000000+00:00", id % 60, id % 59);
        let syn = util::Syn { stamp: &stamp, host, action, ifc, src, dpt, id, ..Default::default() };
        lines.push(syn.line());
    };
    for (i, dpt) in [21, 22, 23, 25, 80, 8080].iter().enumerate() {
        add(10 + (i as u32 % 2), EVIL_HOST, "DROP", "eth0", "203.0.113.9", *dpt);
    }
    for h in [10, 11, 11, 12, 12, 12, 12] {
        add(h, EVIL_HOST, "DROP", "eth0", "198.51.100.7", 22);
    }
    for h in [10, 12] {
        add(h, EVIL_HOST, "ACCEPT", "eth0", "198.51.100.7", 443);
    }
    for h in [11, 11, 12] {
        add(h, EVIL_HOST, EVIL_ACTION, EVIL_IFACE, "192.0.2.77", 23);
    }
    for h in [10, 11] {
        add(h, "fw1", "DROP", "eth0", "192.0.2.200", 3389);
    }
    lines.join("\n") + "\n"
}

/// Packets of the fixture logged by the hostile host.
const EVIL_PACKETS: u64 = 6 + 7 + 2 + 3;

/// The binary with a clean environment, pointed at the test database.
fn ipta(db: &util::TestDb, home: &Path) -> Command {
    util::ipta_isolated(db, home)
}

fn run(c: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = c.output().expect("run");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The report options every rendering of a test uses.
const REPORT: &[&str] = &["-a", "--host", EVIL_HOST, "--scan-threshold", "3", "-l", "20"];

/// A database with the fixture imported; the home directory; the JSON report.
fn imported(tag: &str) -> (util::TestDb, tempfile::TempDir, Value) {
    let db = util::TestDb::new(tag);
    db.conn().query_drop(ipta::store::schema::create_table_sql("logs")).unwrap();
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("fw.log");
    std::fs::write(&log, fixture()).unwrap();
    let (code, out, err) = run(ipta(&db, home.path()).arg("-i").arg(&log));
    assert_eq!(code, 0, "{out}{err}");
    let (code, json, err) = run(ipta(&db, home.path()).args(REPORT).args(["--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["packets"], EVIL_PACKETS, "{json}");
    (db, home, v)
}

/// The page of the same report, through `-o FILE`.
fn page(db: &util::TestDb, home: &Path) -> String {
    let path = home.join("report.html");
    let (code, out, err) = run(ipta(db, home).args(REPORT).args(["--format", "html", "-o"]).arg(&path));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "", "-o leaves stdout empty");
    std::fs::read_to_string(&path).unwrap()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

/// The value of attribute `name` in the tag text `tag` (up to its first `>`), unescaped.
fn attr(tag: &str, name: &str) -> Option<String> {
    // The text after a split on `<tr ` starts with the first attribute: a space before it.
    let head = format!(" {}", &tag[..tag.find('>').unwrap_or(tag.len())]);
    let key = format!(" {name}=\"");
    let i = head.find(&key)? + key.len();
    Some(unescape(&head[i..i + head[i..].find('"')?]))
}

fn num(tag: &str, name: &str) -> f64 {
    attr(tag, name).unwrap_or_else(|| panic!("no {name} in {tag}")).parse().unwrap()
}

/// The markup of the figure `data-chart="name"`.
fn figure<'a>(page: &'a str, name: &str) -> &'a str {
    let start = page.find(&format!("data-chart=\"{name}\"")).unwrap_or_else(|| panic!("no {name} chart"));
    let end = start + page[start..].find("</figure>").unwrap();
    &page[start..end]
}

/// A horizontal bar chart: per row its label, and its bars' (value, width).
fn bar_rows(fig: &str) -> Vec<(String, Vec<(u64, f64)>)> {
    fig.split("<tr ")
        .skip(1)
        .map(|row| {
            let bars = row.split("<rect ").skip(1).map(|r| (num(r, "data-value") as u64, num(r, "width"))).collect();
            (attr(row, "data-label").unwrap(), bars)
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.11
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Every chart of `page` (the file, or the browser's DOM) against the JSON report: labels,
/// values, order, and bar lengths proportional to the values.
fn check_charts(page: &str, json: &Value) {
    let m = &json["modules"];
    let span = ipta::report::html::BAR_SPAN;
    // Packets card.
    let card = &page[page.find("id=\"packets\"").unwrap() - 3..];
    assert_eq!(num(card, "data-value") as u64, u(&json["packets"]));

    // Top ports: label "port N PROTO ACTION", one bar per row, the count.
    let rows = bar_rows(figure(page, "ports"));
    let want = m["ports"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    let max = want.iter().map(|r| u(&r["count"])).max().unwrap();
    for ((label, bars), w) in rows.iter().zip(want) {
        let port = w["dpt"].as_u64().map(|p| format!("port {p} ")).unwrap_or_default();
        assert_eq!(*label, format!("{port}{} {}", w["proto"].as_str().unwrap(), w["action"].as_str().unwrap()));
        assert_eq!(bars.len(), 1);
        assert_eq!(bars[0].0, u(&w["count"]), "{label}");
        assert!(close(bars[0].1, u(&w["count"]) as f64 / max as f64 * span), "{label}: {bars:?}");
    }

    // Top sources: label the address, a segment per action in the JSON's order.
    let rows = bar_rows(figure(page, "sources"));
    let want = m["sources"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    let max = want.iter().map(|r| u(&r["count"])).max().unwrap();
    for ((label, bars), w) in rows.iter().zip(want) {
        assert_eq!(label, w["src"].as_str().unwrap());
        let acts: Vec<u64> = w["actions"].as_array().unwrap().iter().map(|a| u(&a["count"])).collect();
        assert_eq!(bars.iter().map(|b| b.0).collect::<Vec<_>>(), acts, "{label}");
        let total: f64 = bars.iter().map(|b| b.1).sum();
        assert!(close(total, u(&w["count"]) as f64 / max as f64 * span), "{label}: {bars:?}");
    }

    // Scans: label the source, the bar its number of ports.
    let rows = bar_rows(figure(page, "scans"));
    let want = m["scans"]["rows"].as_array().unwrap();
    assert!(!want.is_empty(), "the fixture has a scanner");
    assert_eq!(rows.len(), want.len());
    let max = want.iter().map(|r| u(&r["ports"])).max().unwrap();
    for ((label, bars), w) in rows.iter().zip(want) {
        assert_eq!(label, w["src"].as_str().unwrap());
        assert_eq!(bars[0].0, u(&w["ports"]));
        assert!(close(bars[0].1, u(&w["ports"]) as f64 / max as f64 * span));
    }

    // Timeline: a column per bucket with its time and total, a segment per action with
    // packets, heights adding up to the bucket's share of the highest bucket.
    let fig = figure(page, "timeline");
    let actions: Vec<&str> = m["timeline"]["actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let buckets = m["timeline"]["buckets"].as_array().unwrap();
    let max = buckets.iter().map(|b| u(&b["count"])).max().unwrap();
    let groups: Vec<&str> = fig.split("<g ").skip(1).collect();
    assert_eq!(groups.len(), buckets.len());
    for (g, b) in groups.iter().zip(buckets) {
        assert_eq!(attr(g, "data-time").as_deref(), b["time"].as_str());
        assert_eq!(num(g, "data-count") as u64, u(&b["count"]));
        let segs: Vec<(String, u64, f64)> = g
            .split("<rect ")
            .skip(1)
            .map(|r| (attr(r, "data-action").unwrap(), num(r, "data-value") as u64, num(r, "height")))
            .collect();
        let want: Vec<(String, u64)> = actions
            .iter()
            .map(|a| (a.to_string(), u(&b["actions"][*a])))
            .filter(|(_, n)| *n > 0)
            .collect();
        assert_eq!(segs.iter().map(|s| (s.0.clone(), s.1)).collect::<Vec<_>>(), want);
        let height: f64 = segs.iter().map(|s| s.2).sum();
        assert!(close(height, u(&b["count"]) as f64 / max as f64 * ipta::report::html::TIMELINE_SPAN));
    }
    // The legend names every action, in the JSON's order.
    let legend: Vec<String> = fig.split("<span ").skip(1).filter_map(|s| attr(s, "data-action")).collect();
    assert_eq!(legend, actions);
}

/// Hostile text only as text: never as markup, in the page or the header.
fn check_escaped(page: &str) {
    for evil in [EVIL_HOST, EVIL_ACTION, "\"><b>x"] {
        assert!(!page.contains(evil), "{evil} unescaped on the page");
    }
    assert_eq!(page.matches("<script").count(), 1, "only the page's own script");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the host is shown (escaped)");
    assert!(page.contains("&lt;script&gt;alert(3)&lt;/script&gt;"), "the action is shown (escaped)");
    assert!(page.contains("eth0&quot;&gt;&lt;b&gt;x"), "the interface is shown (escaped)");
    assert!(page.contains("data-meta=\"hosts\">&lt;script&gt;alert(1)&lt;/script&gt;</dd>"));
}

#[test]
fn html_page_escapes_log_text_and_its_charts_are_the_json_numbers() {
    let (db, home, json) = imported("html_page");
    let page = page(&db, home.path());
    check_escaped(&page);
    check_charts(&page, &json);
    // Every module of the text report has its section.
    for m in ipta::report::Module::ALL {
        assert!(page.contains(&format!("<section id=\"{}\">", m.name())), "{}", m.name());
    }
    // Self-contained: nothing to fetch.
    for needle in ["http://", "https://", " src=\"", "url(", "@import"] {
        assert!(!page.contains(needle), "external reference {needle:?}");
    }
    // A new report file is private (0600); -o works for the other formats too, atomically.
    let mode = std::fs::metadata(home.path().join("report.html")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    for fmt in ["json", "csv", "text"] {
        let path = home.path().join(format!("report.{fmt}"));
        let (code, _, err) = run(ipta(&db, home.path()).args(REPORT).args(["--format", fmt, "-o"]).arg(&path));
        assert_eq!(code, 0, "{err}");
        let (_, stdout, _) = run(ipta(&db, home.path()).args(REPORT).args(["--format", fmt]));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), stdout, "{fmt}");
    }
    // A report that fails (no such table) leaves the old file whole and no temporary file.
    let path = home.path().join("report.json");
    let before = std::fs::read(&path).unwrap();
    let (code, _, err) = run(ipta(&db, home.path()).args(["-a", "-t", "nosuch", "--format", "json", "-o"]).arg(&path));
    assert_ne!(code, 0, "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".ipta-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Debian's chromium, or another Chromium-based browser on PATH.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Headless chromium on `page` (a file): the DOM after load and the console lines it logged.
fn browse(chromium: &Path, page: &Path, extra: &[&str]) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--enable-logging=stderr", "--v=0"])
        // Time for the page's script before the DOM is taken.
        .arg("--virtual-time-budget=3000")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {stderr}");
    let console = stderr.lines().filter(|l| l.contains("CONSOLE")).map(String::from).collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

#[test]
fn html_page_in_a_real_browser() {
    let Some(chromium) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is not installed, and CI must run this test: scripts/provision.sh --chromium");
        }
        eprintln!(
            "\n!!!!! SKIPPED html_page_in_a_real_browser: no chromium on PATH \
             (install it: scripts/provision.sh --chromium; test.sh does) !!!!!\n"
        );
        return;
    };
    let (db, home, json) = imported("html_browser");
    let page_text = page(&db, home.path());
    let page = home.path().join("report.html");

    let (dom, console) = browse(&chromium, &page, &["--dump-dom"]);
    // The script ran (it marks the document), and said nothing: no error, no refused script.
    assert!(dom.contains("class=\"js\"") && dom.contains("data-ready=\"1\""), "the script did not run:\n{}", &dom[..dom.len().min(600)]);
    assert!(console.is_empty(), "console messages: {console:#?}");
    // What a person sees: the charts in the DOM after load carry the JSON's numbers, hostile
    // text is text (the browser did not turn any of it into an element).
    check_charts(&dom, &json);
    assert_eq!(dom.matches("<script").count(), 1, "only the page's own script in the DOM");
    assert!(!dom.contains("<b>x"), "the hostile interface became markup");
    assert!(dom.contains("alert(1)") && dom.contains("alert(3)"), "the hostile names are shown as text");

    // The same page with a script the policy does not allow: the marker is missing and the
    // console says why, so the checks above can fail.
    let tampered = home.path().join("tampered.html");
    std::fs::write(&tampered, page_text.replacen("<script nonce=\"", "<script nonce=\"x", 1)).unwrap();
    let (dom2, console2) = browse(&chromium, &tampered, &["--dump-dom"]);
    assert!(!dom2.contains("data-ready=\"1\""));
    assert!(console2.iter().any(|l| l.contains("Content Security Policy")), "{console2:#?}");

    // A screenshot to look at, kept after the test.
    let keep = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report_html");
    std::fs::create_dir_all(&keep).unwrap();
    let png = keep.join("report-html-test.png");
    let _ = std::fs::remove_file(&png);
    let shot = format!("--screenshot={}", png.display());
    browse(&chromium, &page, &[&shot, "--window-size=1200,1800", "--hide-scrollbars"]);
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000, "{} bytes", bytes.len());
    println!("screenshot of the report page: {}", png.display());
    eprintln!("screenshot of the report page: {}", png.display());
}

/// The parts of a mail as Python's `email` package reads it (policy `default`, the strict
/// modern parser): headers, content types, decoded text, defects, the longest line.
const PARSE_MAIL: &str = r#"
import email, email.utils, json, sys
from email import policy
raw = open(sys.argv[1], 'rb').read()
m = email.message_from_bytes(raw, policy=policy.default)
parts = list(m.iter_parts())
defects = [repr(d) for d in m.defects] + [repr(d) for p in parts for d in p.defects]
print(json.dumps({
    "to": str(m["To"]), "subject": str(m["Subject"]), "mime": str(m["MIME-Version"]),
    "date": email.utils.parsedate_to_datetime(str(m["Date"])).isoformat(),
    "message_id": str(m["Message-ID"]), "type": m.get_content_type(),
    "parts": [p.get_content_type() for p in parts],
    "encodings": [str(p["Content-Transfer-Encoding"]) for p in parts],
    "charsets": [p.get_content_charset() for p in parts],
    "html": next((p.get_content() for p in parts if p.get_content_type() == "text/html"), None),
    "text": next((p.get_content() for p in parts if p.get_content_type() == "text/plain"), None),
    "defects": defects, "longest_line": max(len(l) for l in raw.split(b"\n")),
}))
"#;

/// A stand-in mailer in `dir` that keeps its arguments and the message, and exits with `rc`.
fn fake_sendmail(dir: &Path, rc: i32) -> PathBuf {
    let p = dir.join("sendmail");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{d}/args'\ncat > '{d}/message'\n[ {rc} -eq 0 ] || echo 'queue is full' >&2\nexit {rc}\n",
        d = dir.display()
    );
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    p
}

fn set_config(home: &Path, text: &str) {
    let p = home.join(".ipta-conf");
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn html_report_by_mail() {
    let (db, home, _json) = imported("html_mail");
    let mailer_dir = tempfile::tempdir().unwrap();
    let sendmail = fake_sendmail(mailer_dir.path(), 0);
    set_config(home.path(), &format!("sendmail = {}\nmail_from = ipta <fw@example.org>\n", sendmail.display()));
    let kept = home.path().join("mailed.html");
    let to = "Ops <ops@example.org>, root";
    let (code, out, err) = run(ipta(&db, home.path()).args(REPORT).args(["--mail-to", to, "-o"]).arg(&kept));
    assert_eq!(code, 0, "{out}{err}");
    // The mailer was asked to read the recipients from the message: nothing else on its
    // command line (no address, no password).
    let args = std::fs::read_to_string(mailer_dir.path().join("args")).unwrap();
    assert_eq!(args, "-t\n-oi\n");
    let msg = mailer_dir.path().join("message");
    let parsed = Command::new("python3").arg("-c").arg(PARSE_MAIL).arg(&msg).output().expect("python3");
    assert!(parsed.status.success(), "{}", String::from_utf8_lossy(&parsed.stderr));
    let m: Value = serde_json::from_slice(&parsed.stdout).unwrap();
    assert_eq!(m["defects"], serde_json::json!([]), "{m}");
    assert_eq!(m["type"], "multipart/alternative");
    assert_eq!(m["parts"], serde_json::json!(["text/plain", "text/html"]));
    assert_eq!(m["encodings"], serde_json::json!(["base64", "base64"]));
    assert_eq!(m["charsets"], serde_json::json!(["utf-8", "utf-8"]));
    assert_eq!(m["mime"], "1.0");
    assert_eq!(m["to"], to);
    let subject = m["subject"].as_str().unwrap();
    assert!(subject.contains("logs") && subject.contains("2026-11-25") && subject.contains("18 packets"), "{subject}");
    assert!(m["date"].as_str().unwrap().starts_with("20"), "{m}");
    assert!(m["message_id"].as_str().unwrap().starts_with('<'));
    assert!(m["longest_line"].as_u64().unwrap() <= 998, "{m}");
    // The page inline is the page kept with -o, byte for byte; the text part is the text report.
    assert_eq!(m["html"].as_str().unwrap(), std::fs::read_to_string(&kept).unwrap());
    let text = m["text"].as_str().unwrap();
    assert!(text.contains("Top sources") && text.contains("203.0.113.9"), "{text}");
    check_escaped(m["html"].as_str().unwrap());

    // A mailer that fails: ipta says so (with the mailer's words) and exits non-zero.
    fake_sendmail(mailer_dir.path(), 75);
    let (code, _, err) = run(ipta(&db, home.path()).args(REPORT).args(["--mail-to", "root"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("queue is full") && err.contains("failed"), "{err}");
    // No mailer at all: the error names the key that sets it.
    set_config(home.path(), "sendmail = /nonexistent/sendmail\n");
    let (code, _, err) = run(ipta(&db, home.path()).args(REPORT).args(["--mail-to", "root"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent/sendmail") && err.contains("key sendmail"), "{err}");
}

/// The command lines of the daily-report recipes in examples/ are valid `ipta` invocations
/// that mail the HTML report (a typo there would only show at 06:30).
#[test]
fn daily_report_recipes_are_valid_command_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let lines = [
        std::fs::read_to_string(root.join("ipta-report.cron")).unwrap(),
        std::fs::read_to_string(root.join("ipta-report.service")).unwrap(),
    ];
    let timer = std::fs::read_to_string(root.join("ipta-report.timer")).unwrap();
    assert!(timer.contains("OnCalendar=") && timer.contains("WantedBy=timers.target"));
    for text in lines {
        let cmd = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.split_once("ipta -a").map(|(_, rest)| rest.to_string()))
            .expect("an ipta -a line");
        let args: Vec<std::ffi::OsString> =
            ["ipta", "-a"].iter().map(|s| s.into()).chain(cmd.split_whitespace().map(|s| s.into())).collect();
        let cli = <ipta::cli::Cli as clap::Parser>::try_parse_from(ipta::cli::normalize_args(args)).unwrap();
        ipta::cli::plan::validate(&cli, ipta::record::Timestamp(0)).unwrap();
        assert!(cli.mail_to.is_some() && cli.since.as_deref() == Some("24h"), "{cmd}");
    }
}
