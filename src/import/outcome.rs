//! What an import did, per file and in total, and its printed form (the summary that ends
//! every `ipta --import`).

use crate::parse::skipped::SkippedPrefixes;
use std::io::{self, Write};
use std::time::Duration;

use crate::parse::RejectKind;
use crate::units::human_size;

/// How many line numbers of each rejection reason are kept to show.
pub const FIRST_LINES: usize = 5;

/// Lines of one file rejected for one reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejections {
    /// None for a row the database refused.
    pub kind: Option<RejectKind>,
    pub reason: String,
    pub count: u64,
    /// The first few line numbers (1-based), ascending.
    pub first_lines: Vec<u64>,
}

/// One input file's part of an import.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileSummary {
    /// The path as given (`-` for stdin).
    pub name: String,
    /// The file was gzip-compressed.
    pub gzip: bool,
    /// Bytes read from the file (compressed bytes for a gzip file).
    pub bytes: u64,
    pub lines: u64,
    /// Packets parsed (rows sent to the database).
    pub packets: u64,
    pub added: u64,
    pub already_present: u64,
    pub not_ours: u64,
    /// The firewall lines among `not_ours`, by prefix (another firewall's lines: UFW,
    /// firewalld...), for the hint at the end of the summary.
    pub skipped: SkippedPrefixes,
    pub rejected: Vec<Rejections>,
    /// What went wrong with the file itself (cannot open, corrupt gzip, read error). The lines
    /// before the failure are imported.
    pub failures: Vec<String>,
}

impl FileSummary {
    pub fn new(name: impl Into<String>) -> Self {
        FileSummary { name: name.into(), ..Default::default() }
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|r| r.count).sum()
    }

    /// Counts one rejected line. Allocates only for a reason not seen before in this file.
    pub fn reject(&mut self, kind: Option<RejectKind>, reason: &str, line: u64) {
        let r = match self.rejected.iter_mut().position(|r| r.kind == kind && r.reason == reason) {
            Some(i) => &mut self.rejected[i],
            None => {
                self.rejected.push(Rejections {
                    kind,
                    reason: reason.to_string(),
                    count: 0,
                    first_lines: Vec::with_capacity(FIRST_LINES),
                });
                self.rejected.last_mut().expect("just pushed")
            }
        };
        r.count += 1;
        if r.first_lines.len() < FIRST_LINES {
            // Rows refused by the database arrive out of order across writer threads.
            let at = r.first_lines.partition_point(|&l| l < line);
            r.first_lines.insert(at, line);
        } else if let Some(last) = r.first_lines.last_mut() {
            if line < *last {
                *last = line;
                r.first_lines.sort_unstable();
            }
        }
    }
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Per file, in the order they were imported.
    pub files: Vec<FileSummary>,
    pub elapsed: Duration,
}

impl ImportSummary {
    pub fn lines(&self) -> u64 {
        self.files.iter().map(|f| f.lines).sum()
    }
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
    pub fn added(&self) -> u64 {
        self.files.iter().map(|f| f.added).sum()
    }
    pub fn already_present(&self) -> u64 {
        self.files.iter().map(|f| f.already_present).sum()
    }
    pub fn not_ours(&self) -> u64 {
        self.files.iter().map(|f| f.not_ours).sum()
    }
    pub fn rejected(&self) -> u64 {
        self.files.iter().map(|f| f.rejected_total()).sum()
    }
    /// A file could not be opened or not be read to its end: the exit status says so.
    /// Rejected lines are not failures (they are counted and shown).
    pub fn has_failures(&self) -> bool {
        self.files.iter().any(|f| !f.failures.is_empty())
    }

    /// The human summary: one block per file when there are several, then the totals.
    pub fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        let many = self.files.len() > 1;
        for f in &self.files {
            if many || !f.rejected.is_empty() || !f.failures.is_empty() {
                writeln!(
                    w,
                    "{}{}: {} lines, {} added, {} already present, {} not ipta's, {} rejected",
                    f.name,
                    if f.gzip { " (gzip)" } else { "" },
                    f.lines,
                    f.added,
                    f.already_present,
                    f.not_ours,
                    f.rejected_total()
                )?;
            }
            for r in &f.rejected {
                let lines: Vec<String> = r.first_lines.iter().map(u64::to_string).collect();
                let more = if r.count > r.first_lines.len() as u64 { ", ..." } else { "" };
                writeln!(
                    w,
                    "  rejected {}: {} (line{} {}{})",
                    r.count,
                    r.reason,
                    if r.first_lines.len() > 1 { "s" } else { "" },
                    lines.join(", "),
                    more
                )?;
            }
            for e in &f.failures {
                writeln!(w, "  FAILED: {e}")?;
            }
        }
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 { self.lines() as f64 / secs } else { 0.0 };
        writeln!(
            w,
            "imported {} file{}: {} lines ({}) in {:.1} s, {:.0} lines/s",
            self.files.len(),
            if self.files.len() == 1 { "" } else { "s" },
            self.lines(),
            human_size(self.bytes()),
            secs,
            rate
        )?;
        writeln!(
            w,
            "  rows added {}, already present {}, not ipta's {}, rejected {}{}",
            self.added(),
            self.already_present(),
            self.not_ours(),
            self.rejected(),
            match self.files.iter().filter(|f| !f.failures.is_empty()).count() {
                0 => String::new(),
                n => format!(", {n} file{} FAILED", if n == 1 { "" } else { "s" }),
            }
        )?;
        if let Some(hint) = self.skipped().describe() {
            writeln!(w, "  {hint}")?;
        }
        Ok(())
    }

    /// The skipped firewall lines of all files.
    pub fn skipped(&self) -> SkippedPrefixes {
        let mut all = SkippedPrefixes::default();
        for f in &self.files {
            all.merge(&f.skipped);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_group_by_reason_and_keep_the_first_lines() {
        let mut f = FileSummary::new("a.log");
        for l in [9, 3, 20, 4, 5, 6, 1, 30] {
            f.reject(Some(RejectKind::BadAddress), "SRC= is not an IP address", l);
        }
        f.reject(None, "database refused the row", 2);
        assert_eq!(f.rejected.len(), 2);
        assert_eq!(f.rejected[0].count, 8);
        assert_eq!(f.rejected[0].first_lines, [1, 3, 4, 5, 6]);
        assert_eq!(f.rejected_total(), 9);
    }

    #[test]
    fn summary_prints_totals_failures_and_reasons() {
        let mut a = FileSummary { lines: 10, added: 7, already_present: 1, not_ours: 1, ..FileSummary::new("x.log.1") };
        a.reject(Some(RejectKind::TooLong), "line too long", 4);
        let b = FileSummary { failures: vec!["cannot open: No such file".into()], ..FileSummary::new("y.log") };
        let s = ImportSummary { files: vec![a, b], elapsed: Duration::from_secs(2) };
        assert!(s.has_failures());
        let mut out = Vec::new();
        s.write_to(&mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("x.log.1: 10 lines, 7 added, 1 already present, 1 not ipta's, 1 rejected"), "{out}");
        assert!(out.contains("rejected 1: line too long (line 4)"), "{out}");
        assert!(out.contains("FAILED: cannot open"), "{out}");
        assert!(out.contains("imported 2 files: 10 lines"), "{out}");
        assert!(out.contains("1 file FAILED"), "{out}");
        assert!(!ImportSummary::default().has_failures());
    }
}
