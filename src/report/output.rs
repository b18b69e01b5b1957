//! `ipta -a -o FILE`: the report written atomically. It is rendered into a new file next to
//! the target (same directory, so the rename cannot cross file systems), synced, and renamed
//! over the target: a reader (a web server, a mail job, a browser reloading) sees the old
//! report or the new one, never half of one, and a failed report leaves the old file as it was.
//!
//! File mode: a new report is 0600, like ipta's config files, because a report lists the
//! network's addresses, open ports and firewall rules; a report that replaces an existing file
//! keeps that file's mode (an administrator who made it 0644 for a web server keeps 0644).

use std::fs::{File, OpenOptions, Permissions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of a new report file.
pub const NEW_FILE_MODE: u32 = 0o600;

/// A report being written to `target`; [`AtomicFile::commit`] puts it in place. Dropped
/// without commit, the temporary file is removed and the target is untouched.
pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// A temporary file beside `target` (`.NAME.ipta-PID-N`), created exclusively.
    pub fn create(target: &Path) -> std::io::Result<AtomicFile> {
        let name = target
            .file_name()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mode = match std::fs::metadata(target) {
            Ok(m) if m.is_dir() => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "it is a directory"));
            }
            Ok(m) => m.permissions().mode() & 0o7777,
            Err(_) => NEW_FILE_MODE,
        };
        let mut n = 0u32;
        loop {
            let mut tmp_name = std::ffi::OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!(".ipta-{}-{n}", std::process::id()));
            let tmp = dir.join(tmp_name);
            match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp) {
                Ok(f) => {
                    // The umask may have taken bits off; the mode is set explicitly.
                    f.set_permissions(Permissions::from_mode(mode))?;
                    return Ok(AtomicFile { target: target.to_path_buf(), tmp, out: Some(BufWriter::new(f)) });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Flushes, syncs and renames the file over the target.
    pub fn commit(mut self) -> std::io::Result<()> {
        let out = self.out.take().expect("committed once");
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&self.tmp, &self.target)?;
        // The rename is durable once the directory is synced (best effort: not every file
        // system allows opening a directory for that).
        if let Some(d) = self.target.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(dir) = File::open(d) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.as_mut().expect("not committed").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.as_mut().expect("not committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ipta-output-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(d: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn commit_replaces_and_drop_leaves_the_old_file() {
        let d = tmpdir("commit");
        let t = d.join("r.html");
        let mut f = AtomicFile::create(&t).unwrap();
        f.write_all(b"one").unwrap();
        assert!(!t.exists(), "visible before commit");
        f.commit().unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"one");
        assert_eq!(std::fs::metadata(&t).unwrap().permissions().mode() & 0o777, NEW_FILE_MODE);
        // An existing file keeps its mode.
        std::fs::set_permissions(&t, Permissions::from_mode(0o644)).unwrap();
        let mut f = AtomicFile::create(&t).unwrap();
        f.write_all(b"two").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&t).unwrap().permissions().mode() & 0o777, 0o644);
        // A report that fails half-way (dropped) leaves the old one and no temporary file.
        let mut f = AtomicFile::create(&t).unwrap();
        f.write_all(b"half").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&t).unwrap(), b"two");
        assert_eq!(entries(&d), vec!["r.html".to_string()]);
        assert!(AtomicFile::create(&d).is_err(), "a directory is not a report file");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
