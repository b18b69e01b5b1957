//! install.sh into a temporary root (DESTDIR) from a source tree made here (fake binaries, an
//! rsyslog snippet, logrotate file, man pages, completions): it lays out exactly the documented
//! files with the documented modes and group, never overwrites an existing /etc/ipta.conf, and
//! --uninstall removes what it installed, keeping an ipta.conf that was edited since.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A source tree with install.sh, the real config template and fake build outputs.
pub fn source_tree(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    let w = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    };
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(Path::new(REPO).join("install.sh"), src.join("install.sh")).unwrap();
    w(
        "etc/ipta.conf.example",
        &std::fs::read_to_string(Path::new(REPO).join("etc/ipta.conf.example")).unwrap(),
    );
    for name in ["30-ipta-forward.conf", "31-ipta-central.conf"] {
        w(
            &format!("etc/rsyslog/{name}"),
            &std::fs::read_to_string(Path::new(REPO).join("etc/rsyslog").join(name)).unwrap(),
        );
    }
    // Fake binaries; the fake ipta answers --generate DIR as the real one does (which
    // docgen's unit test checks), with one file of each kind.
    let fake_ipta = "#!/bin/sh\nif [ \"$1\" = --generate ]; then\n  mkdir -p \"$2/man\" \"$2/completions\"\n  \
        for b in ipta ipta-ingest; do echo .TH > \"$2/man/$b.1\"; done\n  \
        echo '# bash' > \"$2/completions/ipta.bash\"; echo '#compdef ipta' > \"$2/completions/_ipta\"\n  \
        echo '# fish' > \"$2/completions/ipta.fish\"; echo '# ps' > \"$2/completions/_ipta.ps1\"\n  exit 0\nfi\necho fake ipta\n";
    for (b, text) in [("ipta", fake_ipta.to_string()), ("ipta-ingest", "#!/bin/sh\necho fake ipta-ingest\n".to_string())] {
        let p = w(&format!("target/release/{b}"), &text);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The real snippet and journal unit: install.sh fills in their filter and paths.
    for rel in ["rsyslog/30-ipta.conf", "examples/ipta-journal.service", "examples/ipta-journal-feed"] {
        w(rel, &std::fs::read_to_string(Path::new(REPO).join(rel)).unwrap());
    }
    w("rsyslog/30-ipta-file-only.conf", "# the alternative without a database\n");
    w("logrotate/ipta", "# fake logrotate\n");
    w("README.md", "# ipta\n");
    w("LICENSE", "GPL\n");
    src
}

/// Runs install.sh with DESTDIR=root and the given arguments; returns its stdout.
fn run_install(src: &Path, root: &Path, rsyslog_conf: &Path, args: &[&str]) -> String {
    run_install_prefix(src, root, "/usr/local", rsyslog_conf, args)
}

pub fn run_install_prefix(
    src: &Path,
    root: &Path,
    prefix: &str,
    rsyslog_conf: &Path,
    args: &[&str],
) -> String {
    let out = Command::new("bash")
        .arg(src.join("install.sh"))
        .args(args)
        .env("DESTDIR", root)
        .env("PREFIX", prefix)
        .env("RSYSLOG_CONF", rsyslog_conf)
        .env_remove("IPTA_CONF_GROUP")
        .env_remove("SYSCONFDIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "install.sh {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Every regular file under `root`: path relative to it (with a leading /) -> (mode, gid).
pub fn files(root: &Path) -> BTreeMap<String, (u32, u32)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, u32)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = format!("/{}", p.strip_prefix(root).unwrap().display());
                out.insert(rel, (m.mode() & 0o7777, m.gid()));
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

/// A user for rsyslog to "drop privileges to", with its primary group's name and id. As root,
/// one whose group is not root (so the test tells detection from the root fallback); otherwise
/// the current user, since only one's own groups can be given to a file.
fn rsyslog_user() -> (String, String, u32) {
    let id = |arg: &str| {
        String::from_utf8(Command::new("id").arg(arg).output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string()
    };
    if id("-u") == "0" {
        let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || f[3] == "0" {
                continue;
            }
            let group = groups
                .lines()
                .map(|g| g.split(':').collect::<Vec<_>>())
                .find(|g| g.len() > 2 && g[2] == f[3]);
            if let Some(g) = group {
                return (f[0].to_string(), g[0].to_string(), f[3].parse().unwrap());
            }
        }
    }
    (id("-un"), id("-gn"), id("-g").parse().unwrap())
}

const DOCUMENTED: &[(&str, u32)] = &[
    ("/etc/ipta.conf", 0o640),
    ("/etc/logrotate.d/ipta", 0o644),
    ("/etc/rsyslog.d/30-ipta.conf", 0o644),
    ("/etc/tmpfiles.d/ipta.conf", 0o644),
    ("/usr/local/bin/ipta", 0o755),
    ("/usr/local/bin/ipta-ingest", 0o755),
    ("/usr/local/share/bash-completion/completions/ipta", 0o644),
    ("/usr/local/share/doc/ipta/LICENSE", 0o644),
    ("/usr/local/share/doc/ipta/README.md", 0o644),
    ("/usr/local/share/doc/ipta/ipta.conf.example", 0o644),
    ("/usr/local/share/doc/ipta/rsyslog/30-ipta-file-only.conf", 0o644),
    ("/usr/local/share/doc/ipta/rsyslog/30-ipta-forward.conf", 0o644),
    ("/usr/local/share/doc/ipta/rsyslog/31-ipta-central.conf", 0o644),
    (
        "/usr/local/share/fish/vendor_completions.d/ipta.fish",
        0o644,
    ),
    ("/usr/local/share/ipta/installed.txt", 0o644),
    ("/usr/local/share/man/man1/ipta-ingest.1", 0o644),
    ("/usr/local/share/man/man1/ipta.1", 0o644),
    ("/usr/local/share/zsh/site-functions/_ipta", 0o644),
];

#[test]
fn install_lays_out_the_documented_files_and_uninstall_removes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source_tree(tmp.path());
    let root = tmp.path().join("root");
    // rsyslog drops privileges to the user running this test: ipta.conf must get its group.
    let (user, group, gid) = rsyslog_user();
    eprintln!("rsyslog drops to user {user}, group {group} ({gid})");
    let rsyslog_conf = tmp.path().join("rsyslog.conf");
    std::fs::write(
        &rsyslog_conf,
        format!("$FileOwner root\n$PrivDropToUser {user}\n"),
    )
    .unwrap();

    run_install(&src, &root, &rsyslog_conf, &["--no-build"]);
    let got = files(&root);
    let want: BTreeMap<String, u32> = DOCUMENTED
        .iter()
        .map(|(p, m)| (p.to_string(), *m))
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "exactly the documented files"
    );
    for (p, (mode, _)) in &got {
        assert_eq!(*mode, want[p], "mode of {p}: {mode:o}");
    }
    assert_eq!(got["/etc/ipta.conf"].1, gid, "group of ipta.conf");
    // The fan-out directory belongs to the user rsyslog runs ipta-ingest as.
    let tmpfiles = std::fs::read_to_string(root.join("etc/tmpfiles.d/ipta.conf")).unwrap();
    assert!(tmpfiles.contains(&format!("d /run/ipta/follow 3770 {user} ")), "{tmpfiles}");
    assert_eq!(
        std::fs::read(root.join("usr/local/bin/ipta")).unwrap(),
        std::fs::read(src.join("target/release/ipta")).unwrap()
    );
    assert_eq!(
        std::fs::read(root.join("etc/ipta.conf")).unwrap(),
        std::fs::read(src.join("etc/ipta.conf.example")).unwrap()
    );
    // The manifest lists every installed file (not itself), with absolute paths.
    let manifest =
        std::fs::read_to_string(root.join("usr/local/share/ipta/installed.txt")).unwrap();
    let mut listed: Vec<&str> = manifest.lines().map(|l| &l[66..]).collect();
    listed.sort();
    let mut expect: Vec<&str> = DOCUMENTED
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !p.ends_with("installed.txt"))
        .collect();
    expect.sort();
    assert_eq!(listed, expect);

    // Installing again over an edited ipta.conf keeps the edit.
    let conf = root.join("etc/ipta.conf");
    let edited = "db_pass = s3cret\n";
    std::fs::write(&conf, edited).unwrap();
    let out = run_install(&src, &root, &rsyslog_conf, &["--no-build"]);
    assert!(out.contains("kept existing /etc/ipta.conf"), "{out}");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), edited);

    // Uninstall: everything goes but the edited ipta.conf, and it says so.
    let out = run_install(&src, &root, &rsyslog_conf, &["--uninstall"]);
    assert!(out.contains("kept /etc/ipta.conf"), "{out}");
    let left: Vec<String> = files(&root).into_keys().collect();
    assert_eq!(left, vec!["/etc/ipta.conf".to_string()]);
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), edited);
}

#[test]
fn an_existing_ipta_conf_is_never_touched_and_an_unedited_one_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source_tree(tmp.path());
    let rsyslog_conf = tmp.path().join("rsyslog.conf");
    let (_, group, gid) = rsyslog_user();
    // RainerScript form of the privilege drop.
    std::fs::write(
        &rsyslog_conf,
        format!("global(privdrop.group.name=\"{}\")\n", group.trim()),
    )
    .unwrap();

    // A configuration from before ipta was installed: not ours, never overwritten or removed.
    let root = tmp.path().join("root1");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/ipta.conf"), "db_host = db.example\n").unwrap();
    std::fs::set_permissions(
        root.join("etc/ipta.conf"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    run_install(&src, &root, &rsyslog_conf, &["--no-build"]);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/ipta.conf")).unwrap(),
        "db_host = db.example\n"
    );
    assert_eq!(files(&root)["/etc/ipta.conf"].0, 0o600);
    run_install(&src, &root, &rsyslog_conf, &["--uninstall"]);
    assert_eq!(
        files(&root).into_keys().collect::<Vec<_>>(),
        vec!["/etc/ipta.conf".to_string()]
    );

    // An ipta.conf installed and left as it was goes with the rest. PREFIX=/usr this time: the
    // rsyslog snippet must run /usr/bin/ipta-ingest.
    let root = tmp.path().join("root2");
    run_install_prefix(&src, &root, "/usr", &rsyslog_conf, &["--no-build"]);
    assert_eq!(files(&root)["/etc/ipta.conf"].1, gid);
    assert!(files(&root).contains_key("/usr/bin/ipta-ingest"));
    let snippet = std::fs::read_to_string(root.join("etc/rsyslog.d/30-ipta.conf")).unwrap();
    assert!(snippet.contains("binary=\"/usr/bin/ipta-ingest --confirm "), "{snippet}");
    run_install_prefix(&src, &root, "/usr", &rsyslog_conf, &["--uninstall"]);
    assert!(files(&root).is_empty(), "{:?}", files(&root));
}

#[test]
fn missing_binaries_and_missing_manifest_are_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source_tree(tmp.path());
    std::fs::remove_file(src.join("target/release/ipta-ingest")).unwrap();
    let root = tmp.path().join("root");
    let run = |args: &[&str]| {
        Command::new("bash")
            .arg(src.join("install.sh"))
            .args(args)
            .env("DESTDIR", &root)
            .output()
            .unwrap()
    };
    let out = run(&["--no-build"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ipta-ingest is missing"), "{err}");
    assert!(files(&root).is_empty(), "nothing installed on failure");

    let out = run(&["--uninstall"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no manifest"));

    let out = run(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn packaging_scripts_parse() {
    for (shell, script) in [("sh", "debian/postinst"), ("bash", "scripts/build-deb.sh"), ("bash", "install.sh")] {
        let out = Command::new(shell).arg("-n").arg(Path::new(REPO).join(script)).output().unwrap();
        assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The many-firewalls examples are valid rsyslog configuration (when rsyslogd is installed, as
/// test.sh provisions it). The central one needs what 30-ipta.conf defines (omprog, ipta_line).
#[test]
fn rsyslog_examples_validate() {
    let Ok(out) = Command::new("rsyslogd").arg("-v").output() else {
        eprintln!("rsyslogd not installed: rsyslog examples not checked");
        return;
    };
    assert!(out.status.success());
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // What 30-ipta.conf provides: the omprog module and the line template.
    let template = "module(load=\"omprog\")\n\
                    template(name=\"ipta_line\" type=\"string\" string=\"%msg%\\n\")\n";
    for (name, prelude) in [("30-ipta-forward.conf", ""), ("31-ipta-central.conf", template)] {
        let conf = d.join(format!("{name}.main"));
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{}\")\nmodule(load=\"imklog\")\n{prelude}include(file=\"{}\")\n",
                d.display(),
                Path::new(REPO).join("etc/rsyslog").join(name).display()
            ),
        )
        .unwrap();
        let out = Command::new("rsyslogd").arg("-N1").arg("-f").arg(&conf).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{name}: {text}");
        assert!(!text.contains("error"), "{name}: {text}");
    }
}
