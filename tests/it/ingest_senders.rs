//! The rsyslog side of hostile senders (issue 13 §5, §6): the many-firewalls example
//! authenticates its senders (TLS with x509/name and PermittedPeer; $AllowedSender for the
//! plain-TCP variant) and passes `rsyslogd -N1`; the snippets' template escapes control
//! characters even when rsyslog's own escaping on receive is off.

use crate::ingest_support::rsyslog::{free_port, repo, subst, validate, Rsyslogd};

use std::io::Write;
use std::time::{Duration, Instant};

#[test]
fn many_firewalls_example_authenticates_its_senders() {
    let forward = repo("etc/rsyslog/30-ipta-forward.conf");
    let central = repo("etc/rsyslog/31-ipta-central.conf");
    let local = repo("rsyslog/30-ipta.conf");
    let (ok, err) = validate(&[&forward]);
    assert!(ok, "30-ipta-forward.conf: {err}");
    let (ok, err) = validate(&[&local, &central]);
    assert!(ok, "31-ipta-central.conf: {err}");

    // TLS both ways, names checked against certificates.
    let f = std::fs::read_to_string(&forward).unwrap();
    for want in ["StreamDriver=\"gtls\"", "StreamDriverMode=\"1\"", "StreamDriverAuthMode=\"x509/name\"", "StreamDriverPermittedPeers="] {
        assert!(f.contains(want), "forward config lacks {want}");
    }
    let c = std::fs::read_to_string(&central).unwrap();
    for want in ["StreamDriver.Name=\"gtls\"", "StreamDriver.Mode=\"1\"", "StreamDriver.AuthMode=\"x509/name\"", "PermittedPeer=["] {
        assert!(c.contains(want), "central config lacks {want}");
    }
    assert!(!c.contains("AuthMode=\"anon\""), "anonymous TLS authenticates nobody");

    // The plain-TCP variant, as the comments tell to switch: valid, and it limits senders.
    let dir = tempfile::tempdir().unwrap();
    let mut plain = c.clone();
    let start = plain.find("module(load=\"imtcp\"").unwrap();
    let end = plain.find("# Plain TCP on a trusted network instead").unwrap();
    plain.replace_range(start..end, "");
    subst(&mut plain, "#$AllowedSender TCP,", "$AllowedSender TCP,");
    subst(&mut plain, "#module(load=\"imtcp\" MaxSessions=\"500\")", "module(load=\"imtcp\" MaxSessions=\"500\")");
    subst(&mut plain, "#input(type=\"imtcp\" port=\"514\"", "input(type=\"imtcp\" port=\"514\"");
    let plain_path = dir.path().join("31-plain.conf");
    std::fs::write(&plain_path, &plain).unwrap();
    let (ok, err) = validate(&[&local, &plain_path]);
    assert!(ok, "plain-TCP variant: {err}\n{plain}");
    assert!(!plain.contains("gtls"));

    // The check has teeth: a misspelt TLS parameter fails it.
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, c.replace("PermittedPeer=[", "PermitedPeer=[")).unwrap();
    assert!(!validate(&[&local, &bad]).0);
}

#[test]
fn snippet_template_escapes_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    // The file-only snippet (same template as 30-ipta.conf), TCP standing in for imklog, and
    // rsyslog's own escaping on receive turned off: the template alone must do it.
    let mut text = std::fs::read_to_string(repo("rsyslog/30-ipta-file-only.conf")).unwrap();
    subst(&mut text, "$inputname == \"imklog\"", "$inputname == \"imtcp\"");
    let file = d.join("iptables.log");
    subst(&mut text, "/var/log/iptables.log", file.to_str().unwrap());
    let rsyslog = Rsyslogd::start(
        d,
        &format!(
            "global(workDirectory=\"{}\" parser.escapeControlCharactersOnReceive=\"off\")\n\
             module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n{text}",
            d.display()
        ),
    );
    let mut tcp = rsyslog.connect(port);
    tcp.write_all(
        b"<4>Dec  5 03:20:00 fw1 kernel: IPT: DROP \x1b]0;owned\x07\x1b[2J IN=eth0 OUT= SRC=192.0.2.1 \
          DST=192.0.2.2 LEN=40 PROTO=TCP SPT=1 DPT=2\n",
    )
    .unwrap();
    drop(tcp);
    let t = Instant::now();
    let got = loop {
        let s = std::fs::read(&file).unwrap_or_default();
        if s.ends_with(b"\n") || t.elapsed() > Duration::from_secs(10) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let shown = String::from_utf8_lossy(&got);
    assert!(shown.contains("IPT: DROP #027]0;owned#007#027[2J IN=eth0"), "{shown:?}");
    assert!(!got.iter().any(|&b| b < 0x20 && b != b'\n'), "a raw control character reached the file: {shown:?}");
}
