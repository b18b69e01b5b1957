//! Man pages and shell completions, generated from the clap definitions of both programs
//! (`cli::command`, `ingest::args::command`), so that help, man page and completions never
//! disagree. `ipta --generate DIR` writes them; install.sh and scripts/build-deb.sh call it.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Sections the clap definitions do not carry, appended to each man page (roff).
const IPTA_EXTRA: &str = r#".SH "TWO-LETTER OPTIONS"
As in the original ipta: \fB\-ai\fR (\-\-analyze\-interactive), \fB\-pi\fR (\-\-db\-pass\-i),
\fB\-lt\fR (\-\-list\-tables), \fB\-dt\fR (\-\-delete\-table), \fB\-da\fR (\-\-delete\-all\-tables),
\fB\-ct\fR (\-\-create\-table), \fB\-cd\fR (\-\-create\-db), \fB\-dp\fR (\-\-dns\-prune).
\fB\-h\fR is \-\-db\-host; help is \-\-help.
.SH "EXIT STATUS"
.TP
0
success (also when standard output is a closed pipe)
.TP
1
runtime error
.TP
2
usage error
.TP
3
the database server cannot be reached
.TP
4
partial failure (part of the work failed, the rest was done)
.TP
5
the database is not set up (access denied, unknown database, missing table)
.SH FILES
.TP
/etc/ipta.conf
system settings (key = value), also read by ipta\-ingest
.TP
~/.ipta\-conf, ~/.ipta
user settings; \-\-save\-db writes ~/.ipta\-conf with mode 0600
.SH ENVIRONMENT
IPTA_DB_HOST, IPTA_DB_PORT, IPTA_DB_SOCKET, IPTA_DB_USER, IPTA_DB_PASS, IPTA_DB_NAME,
IPTA_DB_TABLE, IPTA_DB_TLS, IPTA_DB_TLS_CA, IPTA_CONFIG.
Precedence: command line > environment > user file > system file > defaults.
.SH "SEE ALSO"
ipta\-ingest(1), rsyslogd(8), iptables(8), nft(8)
"#;

const INGEST_EXTRA: &str = r#".SH DESCRIPTION
rsyslog starts ipta\-ingest through its omprog module (see /etc/rsyslog.d/30\-ipta.conf) and
writes the firewall lines to its standard input. With \-\-confirm it follows omprog's feedback
protocol: OK only once the rows are committed. SIGTERM or end of input writes what is buffered
and exits; SIGHUP reopens the rejects file; SIGUSR1 prints the counters to standard error.
.SH "EXIT STATUS"
0 after end of input or a stop signal, 1 when standard output (rsyslog's feedback pipe) fails,
2 for a usage or configuration error.
.SH FILES
.TP
/etc/ipta.conf
database settings; the password belongs here (mode 0640, group of rsyslog's user) or in
IPTA_DB_PASS, never on the command line.
.SH "SEE ALSO"
ipta(1), rsyslogd(8)
"#;

/// Writes `man/ipta.1`, `man/ipta-ingest.1` and `completions/` (bash, zsh, fish) under `dir`;
/// returns the files written.
pub fn generate(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let man = dir.join("man");
    let comp = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&comp)?;
    for (cmd, extra) in [
        (crate::cli::command(), IPTA_EXTRA),
        (crate::ingest::args::command(), INGEST_EXTRA),
    ] {
        let name = cmd.get_name().to_string();
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
        page.write_all(extra.as_bytes())?;
        let path = man.join(format!("{name}.1"));
        std::fs::write(&path, page)?;
        written.push(path);
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut c = cmd.clone();
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut c, &name, &mut text);
            let path = comp.join(file);
            std::fs::write(&path, text)?;
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_man_pages_and_completions_from_the_definitions() {
        let dir = tempfile::tempdir().unwrap();
        let files = super::generate(dir.path()).unwrap();
        assert_eq!(files.len(), 8);
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        let ipta = read("man/ipta.1");
        assert!(ipta.starts_with(".ie") || ipta.contains(".TH ipta 1"), "{}", &ipta[..200]);
        for opt in ["db\\-host", "import", "analyze", "follow", "EXIT STATUS", "\\-ai"] {
            assert!(ipta.contains(opt), "ipta.1 lacks {opt}");
        }
        let ingest = read("man/ipta-ingest.1");
        assert!(ingest.contains("batch\\-size") && ingest.contains("confirm"));
        assert!(read("completions/ipta.bash").contains("--list-tables"));
        assert!(read("completions/_ipta").starts_with("#compdef ipta"));
        assert!(read("completions/ipta-ingest.fish").contains("batch-size"));
    }
}
