//! `ipta -ai`: a SQL prompt on the configured database. A statement ends with `;` outside
//! quotes and may span lines; results print as tables; an error is printed and the session goes
//! on. Reads any `BufRead`, so it works from a pipe as well as a terminal (the prompt is shown
//! only on a terminal). `quit`, `exit` or end of input end the session.

use std::io::{BufRead, Write};

use comfy_table::CellAlignment;
use mysql::prelude::Queryable;
use mysql::Value;

use super::render::text_table;
use super::ReportError;

/// Splits input into statements at `;` outside quotes and comments.
#[derive(Default)]
struct Splitter {
    buf: String,
    quote: Option<char>,
    escaped: bool,
}

impl Splitter {
    /// Feeds one line; returns the statements it completed (without the `;`).
    fn feed(&mut self, line: &str) -> Vec<String> {
        let mut done = Vec::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if let Some(q) = self.quote {
                self.buf.push(c);
                if self.escaped {
                    self.escaped = false;
                } else if c == '\\' && q != '`' {
                    self.escaped = true;
                } else if c == q {
                    self.quote = None;
                }
                continue;
            }
            match c {
                '\'' | '"' | '`' => {
                    self.quote = Some(c);
                    self.buf.push(c);
                }
                '-' if chars.peek() == Some(&'-') => break, // comment to end of line
                '#' => break,
                ';' => {
                    let s = self.buf.trim().to_string();
                    self.buf.clear();
                    if !s.is_empty() {
                        done.push(s);
                    }
                }
                _ => self.buf.push(c),
            }
        }
        if !self.buf.is_empty() {
            self.buf.push('\n');
        }
        done
    }

    fn pending(&self) -> bool {
        !self.buf.trim().is_empty()
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::NULL => "NULL".into(),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) if !s.chars().any(|c| c.is_control() && c != '\t') => s.to_string(),
            // Binary (e.g. an address column): show hex like the mysql client's --binary-as-hex.
            _ => format!("0x{}", b.iter().map(|x| format!("{x:02X}")).collect::<String>()),
        },
        Value::Int(n) => n.to_string(),
        Value::UInt(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(f) => f.to_string(),
        other => other.as_sql(true).trim_matches('\'').to_string(),
    }
}

fn is_numeric(v: &Value) -> bool {
    match v {
        Value::Int(_) | Value::UInt(_) | Value::Float(_) | Value::Double(_) => true,
        Value::Bytes(b) => {
            !b.is_empty()
                && b.iter().all(|c| c.is_ascii_digit() || *c == b'.' || *c == b'-')
                && b.iter().any(u8::is_ascii_digit)
        }
        _ => false,
    }
}

/// Runs one statement and prints its result sets (or the affected rows).
fn execute(conn: &mut mysql::Conn, sql: &str, out: &mut dyn Write, tty: bool) -> Result<(), mysql::Error> {
    let started = std::time::Instant::now();
    let mut result = conn.query_iter(sql)?;
    while let Some(set) = result.iter() {
        let cols: Vec<String> = set.columns().as_ref().iter().map(|c| c.name_str().into_owned()).collect();
        if cols.is_empty() {
            let n = set.affected_rows();
            drop(set);
            let _ = writeln!(out, "OK, {n} row(s) affected ({:.3} s)", started.elapsed().as_secs_f64());
            continue;
        }
        let mut t = text_table(tty);
        t.set_header(cols.clone());
        let mut numeric = vec![true; cols.len()];
        let mut n = 0u64;
        for row in set {
            let row = row?;
            let vals: Vec<Value> = (0..cols.len()).map(|i| row.as_ref(i).cloned().unwrap_or(Value::NULL)).collect();
            for (i, v) in vals.iter().enumerate() {
                if *v != Value::NULL && !is_numeric(v) {
                    numeric[i] = false;
                }
            }
            t.add_row(vals.iter().map(value_text).collect::<Vec<_>>());
            n += 1;
        }
        for (i, num) in numeric.iter().enumerate() {
            if *num && n > 0 {
                if let Some(c) = t.column_mut(i) {
                    c.set_cell_alignment(CellAlignment::Right);
                }
            }
        }
        let _ = writeln!(out, "{t}");
        let _ = writeln!(out, "{n} row(s) ({:.3} s)", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// The interactive SQL session. Returns when the input ends or on `quit`/`exit`; SQL errors
/// are printed and do not end it.
pub fn interactive(
    conn: &mut mysql::Conn,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    is_tty: bool,
) -> Result<u64, ReportError> {
    let mut failed = 0u64;
    if is_tty {
        writeln!(out, "ipta SQL prompt: end statements with ';', 'quit' to leave.")?;
    }
    let mut sp = Splitter::default();
    let mut line = String::new();
    loop {
        if is_tty {
            write!(out, "{}", if sp.pending() { "    -> " } else { "ipta> " })?;
            out.flush()?;
        }
        line.clear();
        if input.read_line(&mut line)? == 0 {
            if sp.pending() {
                writeln!(out, "(incomplete statement without ';' ignored)")?;
            }
            break;
        }
        let word = line.trim().trim_end_matches(';').trim();
        if !sp.pending() && (word.eq_ignore_ascii_case("quit") || word.eq_ignore_ascii_case("exit")) {
            break;
        }
        for stmt in sp.feed(line.trim_end_matches(['\n', '\r'])) {
            if let Err(e) = execute(conn, &stmt, out, is_tty) {
                failed += 1;
                match e {
                    mysql::Error::MySqlError(me) => writeln!(out, "ERROR {}: {}", me.code, me.message)?,
                    mysql::Error::IoError(_) | mysql::Error::CodecError(_) | mysql::Error::DriverError(_) => {
                        return Err(e.into());
                    }
                    other => writeln!(out, "ERROR: {other}")?,
                }
            }
        }
        out.flush()?;
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_semicolons_outside_quotes() {
        let mut s = Splitter::default();
        assert!(s.feed("SELECT 1").is_empty());
        assert!(s.pending());
        assert_eq!(s.feed(", 'a;b';  SELECT 2;"), vec!["SELECT 1\n, 'a;b'", "SELECT 2"]);
        assert!(!s.pending());
        assert_eq!(s.feed("SELECT 'it\\'s;' -- a comment; here"), Vec::<String>::new());
        assert_eq!(s.feed(";"), vec!["SELECT 'it\\'s;'"]);
        assert_eq!(s.feed(";;"), Vec::<String>::new());
    }

    #[test]
    fn binary_values_print_as_hex() {
        assert_eq!(value_text(&Value::Bytes(vec![192, 0, 2, 1])), "0xC0000201");
        assert_eq!(value_text(&Value::Bytes(b"DROP".to_vec())), "DROP");
        assert_eq!(value_text(&Value::NULL), "NULL");
        assert!(is_numeric(&Value::Bytes(b"12.5".to_vec())));
    }
}
