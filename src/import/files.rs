//! The input side of an import: the order a set of files is read in (a rotated set oldest first),
//! opening a file or stdin with gzip detected by its magic bytes whatever the name, and reading
//! lines with a length cap so a 10 MB line (or a binary file without newlines) never has to be
//! held in memory whole.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use crate::record::Timestamp;

/// Lines longer than this are rejected as too long, as the parser does (the longest real
/// netfilter line, with a full MAC header, IPv6 addresses and an embedded ICMP packet, is well
/// under 1 KiB).
pub const MAX_LINE: usize = crate::parse::MAX_LINE;

/// Read buffer size of a file (and of the decompressed stream of a gzip file).
const BUF_SIZE: usize = 256 * 1024;

/// Where a file sits in its rotated set. Derives `Ord` so that sorting puts the oldest first:
/// numbered rotations by number descending (`.30.gz` before `.2.gz` before `.1`), then dated
/// ones (logrotate's `dateext`, `-YYYYMMDD`) by date ascending, then the live file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rotation {
    Numbered(std::cmp::Reverse<u64>),
    Dated(u64),
    Live,
}

/// Splits a file name into the name of its rotated set and its place in it:
/// `iptables.log.2.gz` -> (`iptables.log`, Numbered(2)), `messages-20251130.gz` ->
/// (`messages`, Dated(20251130)), `iptables.log` -> (`iptables.log`, Live).
pub fn rotation_of(file_name: &str) -> (&str, Rotation) {
    let mut base = file_name;
    for ext in [".gz", ".xz", ".bz2", ".zst", ".Z"] {
        if let Some(b) = base.strip_suffix(ext) {
            base = b;
            break;
        }
    }
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(dot) = base.rfind('.') {
        let n = &base[dot + 1..];
        if dot > 0 && n.len() <= 6 && all_digits(n) {
            if let Ok(n) = n.parse() {
                return (&base[..dot], Rotation::Numbered(std::cmp::Reverse(n)));
            }
        }
    }
    if let Some(dash) = base.rfind('-') {
        let d = &base[dash + 1..];
        // -YYYYMMDD or -YYYYMMDDHH (dateformat with the hour).
        if dash > 0 && (d.len() == 8 || d.len() == 10) && all_digits(d) {
            if let Ok(n) = d.parse::<u64>() {
                let n = if d.len() == 8 { n * 100 } else { n };
                return (&base[..dash], Rotation::Dated(n));
            }
        }
    }
    (file_name, Rotation::Live)
}

/// The order to import `files` in, as indexes into it. Members of one rotated set (same
/// directory and set name) are read together, oldest first, at the place of the set's first
/// member on the command line; unrelated files (and `-`) keep the order they were given in.
pub fn import_order(files: &[PathBuf]) -> Vec<usize> {
    // (set key, rotation) per file; stdin is a set of its own.
    let keyed: Vec<(Option<(PathBuf, String)>, Rotation)> = files
        .iter()
        .map(|p| {
            if is_stdin(p) {
                return (None, Rotation::Live);
            }
            let name = p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
            let (set, rot) = rotation_of(&name);
            let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
            (Some((dir, set.to_string())), rot)
        })
        .collect();
    let mut order = Vec::with_capacity(files.len());
    let mut placed = vec![false; files.len()];
    for i in 0..files.len() {
        if placed[i] {
            continue;
        }
        let mut set: Vec<usize> = match &keyed[i].0 {
            None => vec![i],
            Some(k) => (i..files.len()).filter(|&j| keyed[j].0.as_ref() == Some(k)).collect(),
        };
        // Stable: a file given twice stays twice, in the given order.
        set.sort_by_key(|&j| keyed[j].1);
        for j in set {
            placed[j] = true;
            order.push(j);
        }
    }
    order
}

/// `-` means standard input.
pub fn is_stdin(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// A reader that counts the bytes taken from the underlying file, for the progress bar (the
/// position in a gzip file is its compressed offset) and the summary.
pub struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Compression formats recognised by their magic bytes. Only gzip is decompressed; the others
/// are reported instead of being imported as garbage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Unsupported(&'static str),
}

pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Unsupported("xz")
    } else if head.starts_with(b"BZh") && head.len() >= 4 && head[3].is_ascii_digit() {
        Compression::Unsupported("bzip2")
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Unsupported("zstd")
    } else {
        Compression::None
    }
}

/// An opened input, ready to be read line by line.
pub struct Input {
    pub reader: Box<dyn BufRead + Send>,
    pub compression: Compression,
    /// Reference time of year-less stamps: the file's modification time (now for stdin).
    pub reference: Timestamp,
    /// Size on disk, when known (not for stdin or pipes).
    pub size: Option<u64>,
    /// Bytes taken from the file so far (compressed bytes for a gzip file).
    pub consumed: Arc<AtomicU64>,
}

fn to_timestamp(t: SystemTime) -> Timestamp {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => Timestamp(d.as_micros().min(i64::MAX as u128) as i64),
        Err(e) => Timestamp(-(e.duration().as_micros().min(i64::MAX as u128) as i64)),
    }
}

/// Wraps a raw byte source: detects gzip by its first bytes and decompresses it (all members
/// of a multi-member file, as `cat a.gz b.gz` or some rotators produce).
pub fn wrap<R: Read + Send + 'static>(
    raw: R,
    reference: Timestamp,
    size: Option<u64>,
) -> io::Result<Input> {
    let consumed = Arc::new(AtomicU64::new(0));
    let mut buffered =
        BufReader::with_capacity(BUF_SIZE, Counting { inner: raw, count: consumed.clone() });
    // fill_buf may return fewer bytes than the magic; a short read of a pipe is still read
    // correctly, only its compression would go undetected, so top it up to 6 bytes.
    let head = loop {
        match buffered.fill_buf() {
            Ok(b) => break b.len(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    let compression = if head >= 6 || head == 0 {
        sniff(buffered.buffer())
    } else {
        let mut first = buffered.buffer().to_vec();
        buffered.consume(first.len());
        let mut more = [0u8; 6];
        let mut got = 0;
        while first.len() + got < 6 {
            match buffered.read(&mut more[got..6 - first.len()]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        first.extend_from_slice(&more[..got]);
        let c = sniff(&first);
        let chained = io::Cursor::new(first).chain(buffered);
        return Ok(Input {
            reader: make_reader(chained, c),
            compression: c,
            reference,
            size,
            consumed,
        });
    };
    Ok(Input { reader: make_reader(buffered, compression), compression, reference, size, consumed })
}

fn make_reader<R: BufRead + Send + 'static>(r: R, c: Compression) -> Box<dyn BufRead + Send> {
    match c {
        Compression::Gzip => Box::new(BufReader::with_capacity(
            BUF_SIZE,
            flate2::bufread::MultiGzDecoder::new(r),
        )),
        _ => Box::new(r),
    }
}

/// Why an input could not be started.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open: {0}")]
    Open(io::Error),
    /// Opened, but its first bytes could not be read.
    #[error("read error at the start (nothing imported): {0}")]
    Read(io::Error),
}

/// Opens a file (or stdin for `-`). The reference time is the file's modification time.
pub fn open(path: &Path) -> Result<Input, OpenError> {
    if is_stdin(path) {
        return wrap(io::stdin(), to_timestamp(SystemTime::now()), None).map_err(OpenError::Read);
    }
    let f = std::fs::File::open(path).map_err(OpenError::Open)?;
    let meta = f.metadata().map_err(OpenError::Open)?;
    if meta.is_dir() {
        return Err(OpenError::Open(io::Error::new(io::ErrorKind::InvalidInput, "is a directory")));
    }
    let reference =
        meta.modified().map(to_timestamp).unwrap_or_else(|_| to_timestamp(SystemTime::now()));
    let size = meta.is_file().then_some(meta.len());
    wrap(f, reference, size).map_err(OpenError::Read)
}

/// What [`read_line`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// End of input, no line.
    Eof,
    /// A line is in the buffer (without its newline).
    Line,
    /// A line longer than the cap was skipped; the buffer holds its first `cap` bytes.
    TooLong { len: u64 },
}

/// Reads one line into `buf` (cleared first, newline removed), keeping at most `cap` bytes of
/// it: the rest of a longer line is read and thrown away, so memory stays bounded. A last line
/// without a newline is still a line. An I/O error loses only the line being read.
pub fn read_line<R: BufRead + ?Sized>(r: &mut R, buf: &mut Vec<u8>, cap: usize) -> io::Result<Line> {
    buf.clear();
    let mut total: u64 = 0;
    let mut any = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(if !any {
                Line::Eof
            } else if total > cap as u64 {
                Line::TooLong { len: total }
            } else {
                Line::Line
            });
        }
        any = true;
        let (part, used, end) = match memchr::memchr(b'\n', avail) {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        if total + part.len() as u64 <= cap as u64 {
            buf.extend_from_slice(part);
        } else if (total as usize) < cap {
            buf.extend_from_slice(&part[..cap - total as usize]);
        }
        total += part.len() as u64;
        r.consume(used);
        if end {
            return Ok(if total > cap as u64 { Line::TooLong { len: total } } else { Line::Line });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn names(files: &[&str]) -> Vec<String> {
        let paths: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
        import_order(&paths).into_iter().map(|i| files[i].to_string()).collect()
    }

    #[test]
    fn rotated_set_is_read_oldest_first() {
        assert_eq!(
            names(&["/l/iptables.log", "/l/iptables.log.1", "/l/iptables.log.2.gz", "/l/iptables.log.30.gz", "/l/iptables.log.10.gz"]),
            ["/l/iptables.log.30.gz", "/l/iptables.log.10.gz", "/l/iptables.log.2.gz", "/l/iptables.log.1", "/l/iptables.log"]
        );
    }

    #[test]
    fn unrelated_files_keep_their_order_and_sets_sit_at_their_first_member() {
        assert_eq!(
            names(&["b.log", "a.log.1", "-", "a.log", "b.log.1", "c.log"]),
            ["b.log.1", "b.log", "a.log.1", "a.log", "-", "c.log"]
        );
        // Same name in another directory is another set.
        assert_eq!(names(&["x/a.log", "y/a.log.1", "x/a.log.1"]), ["x/a.log.1", "x/a.log", "y/a.log.1"]);
    }

    #[test]
    fn dateext_rotations_sort_by_date() {
        assert_eq!(
            names(&["messages", "messages-20251201.gz", "messages-20251124"]),
            ["messages-20251124", "messages-20251201.gz", "messages"]
        );
        assert_eq!(rotation_of("iptables.log"), ("iptables.log", Rotation::Live));
        assert_eq!(rotation_of("fw.1.gz"), ("fw", Rotation::Numbered(std::cmp::Reverse(1))));
        assert_eq!(rotation_of(".1"), (".1", Rotation::Live));
        assert_eq!(rotation_of("log-2025"), ("log-2025", Rotation::Live));
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn read_all(mut i: Input) -> (Vec<Vec<u8>>, Option<io::Error>) {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            match read_line(&mut i.reader, &mut buf, MAX_LINE) {
                Ok(Line::Eof) => return (out, None),
                Ok(_) => out.push(buf.clone()),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn gzip_is_detected_by_magic_including_multi_member() {
        let mut data = gz(b"one\ntwo\n");
        data.extend(gz(b"three\n"));
        let i = wrap(io::Cursor::new(data), Timestamp(0), None).unwrap();
        assert_eq!(i.compression, Compression::Gzip);
        let (lines, err) = read_all(i);
        assert!(err.is_none());
        assert_eq!(lines, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
        let i = wrap(io::Cursor::new(b"plain\n".to_vec()), Timestamp(0), None).unwrap();
        assert_eq!(i.compression, Compression::None);
        assert_eq!(sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]), Compression::Unsupported("xz"));
    }

    /// A reader that hands out one byte at a time, as a slow pipe may.
    struct Trickle(io::Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }

    #[test]
    fn gzip_is_detected_on_short_reads() {
        let i = wrap(Trickle(io::Cursor::new(gz(b"a\nb\n"))), Timestamp(0), None).unwrap();
        assert_eq!(i.compression, Compression::Gzip);
        assert_eq!(read_all(i).0, [b"a".to_vec(), b"b".to_vec()]);
        let i = wrap(Trickle(io::Cursor::new(b"ab\ncd".to_vec())), Timestamp(0), None).unwrap();
        assert_eq!(read_all(i).0, [b"ab".to_vec(), b"cd".to_vec()]);
        let i = wrap(io::Cursor::new(Vec::new()), Timestamp(0), None).unwrap();
        assert_eq!(read_all(i).0.len(), 0);
    }

    #[test]
    fn corrupt_gzip_keeps_what_was_read_then_errors() {
        let mut body = Vec::new();
        for n in 0..20_000 {
            writeln!(body, "line {n} of a log that compresses").unwrap();
        }
        let mut data = gz(&body);
        let cut = data.len() / 2;
        data.truncate(cut);
        let (lines, err) = read_all(wrap(io::Cursor::new(data.clone()), Timestamp(0), None).unwrap());
        assert!(err.is_some(), "truncated gzip must be an error");
        assert!(lines.len() > 1000 && lines.len() < 20_000, "{}", lines.len());
        assert_eq!(lines[5], b"line 5 of a log that compresses");
        // Garbage in the middle of the deflate stream.
        let mut data = gz(&body);
        for b in &mut data[100..200] {
            *b = 0xff;
        }
        let (_, err) = read_all(wrap(io::Cursor::new(data), Timestamp(0), None).unwrap());
        assert!(err.is_some());
    }

    #[test]
    fn long_lines_are_capped_not_buffered() {
        let mut data = vec![b'x'; 10 * 1024 * 1024];
        data.extend_from_slice(b"\nshort\nlast-without-newline");
        let mut r = BufReader::with_capacity(4096, io::Cursor::new(data));
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf, 1000).unwrap(), Line::TooLong { len: 10 * 1024 * 1024 });
        assert_eq!(buf.len(), 1000);
        assert!(buf.capacity() < 64 * 1024, "{}", buf.capacity());
        assert_eq!(read_line(&mut r, &mut buf, 1000).unwrap(), Line::Line);
        assert_eq!(buf, b"short");
        assert_eq!(read_line(&mut r, &mut buf, 1000).unwrap(), Line::Line);
        assert_eq!(buf, b"last-without-newline");
        assert_eq!(read_line(&mut r, &mut buf, 1000).unwrap(), Line::Eof);
        // Exactly the cap is fine.
        let mut r = io::Cursor::new(b"abc\n".to_vec());
        assert_eq!(read_line(&mut r, &mut buf, 3).unwrap(), Line::Line);
    }

    #[test]
    fn open_reports_missing_files_and_directories() {
        assert!(open(Path::new("/nonexistent/ipta/file.log")).is_err());
        assert!(open(Path::new("/")).is_err());
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b"x\n").unwrap();
        let i = open(f.path()).unwrap();
        assert_eq!(i.size, Some(2));
        assert!(i.reference.0 > 1_600_000_000_000_000);
    }
}
