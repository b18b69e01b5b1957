//! The rsyslog omprog feedback protocol as a small state machine, free of I/O.
//!
//! rsyslog writes one message per line on our stdin. With `confirmMessages="on"` it waits for
//! exactly one reply line per line it wrote: `OK` (done), `DEFER_COMMIT` (inside a transaction:
//! will be committed with it) or anything else (failure: rsyslog keeps the message and retries).
//! With `useTransactions="on"` a batch is framed by `BEGIN TRANSACTION` and `COMMIT TRANSACTION`;
//! a `BEGIN` that arrives while a transaction is open means rsyslog abandoned the open one (after
//! an error reply): a rollback. This module decides, line by line, what the session must do and
//! which reply it owes; the session does the storing, the waiting and the writing.
//!
//! Replies are compared exactly by rsyslog, so only the constants below are ever written, each
//! followed by `\n`; the keep-alive is a lone `.` with no newline. An error reply never contains
//! any text of the log line: rsyslog logs failure replies, and a quoted `IPT: ` line would come
//! back in through the local log socket and loop through the filter.

/// The reply for "done" (and the greeting once ready).
pub const OK: &str = "OK";
/// The reply to a message inside a transaction: it will be committed with the transaction.
pub const DEFER_COMMIT: &str = "DEFER_COMMIT";
/// The reply when a commit could not be made durable in time. Any reply other than `OK` or
/// `DEFER_COMMIT` is a failure for rsyslog; this one says why without quoting the message.
pub const ERR_NOT_COMMITTED: &str = "ERROR ipta-ingest: database unavailable, batch not committed";
/// The keep-alive byte: restarts rsyslog's confirmTimeout while a reply is still owed.
pub const KEEPALIVE: &[u8] = b".";

/// omprog's default transaction marks (`beginTransactionMark`, `commitTransactionMark`).
pub const BEGIN_MARK: &[u8] = b"BEGIN TRANSACTION";
pub const COMMIT_MARK: &[u8] = b"COMMIT TRANSACTION";

/// With or without feedback on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `confirmMessages="off"`: nothing is ever written to stdout.
    Plain,
    /// `confirmMessages="on"`: one reply per line, plus the greeting.
    Confirm,
}

/// What a line of input is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Begin,
    Commit,
    Message,
}

/// Classifies one line (without its newline; a trailing `\r` is tolerated).
pub fn classify(line: &[u8]) -> Kind {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line == BEGIN_MARK {
        Kind::Begin
    } else if line == COMMIT_MARK {
        Kind::Commit
    } else {
        Kind::Message
    }
}

/// The reply a line gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    /// No reply (plain mode).
    None,
    /// This reply at once.
    Now(&'static str),
    /// `OK` once everything handed to the database so far is committed; an error reply (and a
    /// rollback of the unit) if that does not happen in time. See [`Protocol::after_wait`].
    WhenDurable,
}

/// What the session must do for one line, in this order: roll back the open unit, store the
/// message, flush the batch being filled, reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The open transaction was abandoned by rsyslog: take back its occurrence numbers (its
    /// messages will come again).
    pub rollback: bool,
    /// The line is a message: parse it and store it.
    pub store: bool,
    /// Hand the partly filled batch to the writer now.
    pub flush: bool,
    pub ack: Ack,
}

/// The protocol state of one stdin stream.
#[derive(Clone, Debug)]
pub struct Protocol {
    mode: Mode,
    in_txn: bool,
}

impl Protocol {
    pub fn new(mode: Mode) -> Self {
        Protocol { mode, in_txn: false }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether a transaction is open (its messages not yet confirmed).
    pub fn in_transaction(&self) -> bool {
        self.in_txn
    }

    /// The line to print once ready, before reading anything.
    pub fn greeting(&self) -> Option<&'static str> {
        match self.mode {
            Mode::Plain => None,
            Mode::Confirm => Some(OK),
        }
    }

    /// Decides what to do with one line of input.
    pub fn on_line(&mut self, kind: Kind) -> Decision {
        let confirm = self.mode == Mode::Confirm;
        match kind {
            Kind::Begin => {
                // A BEGIN inside an open transaction: rsyslog gave up on the open one.
                let rollback = self.in_txn && confirm;
                self.in_txn = true;
                Decision {
                    rollback,
                    store: false,
                    flush: false,
                    ack: if confirm { Ack::Now(OK) } else { Ack::None },
                }
            }
            Kind::Commit => {
                self.in_txn = false;
                Decision {
                    rollback: false,
                    store: false,
                    flush: true,
                    ack: if confirm { Ack::WhenDurable } else { Ack::None },
                }
            }
            Kind::Message => {
                if !confirm {
                    Decision { rollback: false, store: true, flush: false, ack: Ack::None }
                } else if self.in_txn {
                    Decision {
                        rollback: false,
                        store: true,
                        flush: false,
                        ack: Ack::Now(DEFER_COMMIT),
                    }
                } else {
                    // A lone confirmed message: rsyslog sends nothing more until we answer, so
                    // waiting for more rows before writing would only add latency.
                    Decision { rollback: false, store: true, flush: true, ack: Ack::WhenDurable }
                }
            }
        }
    }

    /// The reply after waiting for durability: `OK`, or the error reply (the caller then rolls
    /// back the unit, since rsyslog will send it again).
    pub fn after_wait(&self, durable: bool) -> &'static str {
        if durable {
            OK
        } else {
            ERR_NOT_COMMITTED
        }
    }

    /// End of input: whether an open transaction is left unconfirmed (rsyslog will resend it
    /// to the next instance).
    pub fn on_eof(&mut self) -> bool {
        std::mem::replace(&mut self.in_txn, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives the machine over a script, answering every `WhenDurable` with `durable`, and
    /// returns the replies (as rsyslog would read them) and the rollbacks seen.
    fn run(mode: Mode, lines: &[&str], durable: bool) -> (Vec<String>, usize, usize) {
        let mut p = Protocol::new(mode);
        let mut out = Vec::new();
        let mut rollbacks = 0;
        let mut stored = 0;
        if let Some(g) = p.greeting() {
            out.push(g.to_string());
        }
        for l in lines {
            let d = p.on_line(classify(l.as_bytes()));
            if d.rollback {
                rollbacks += 1;
            }
            if d.store {
                stored += 1;
            }
            match d.ack {
                Ack::None => {}
                Ack::Now(r) => out.push(r.to_string()),
                Ack::WhenDurable => out.push(p.after_wait(durable).to_string()),
            }
        }
        (out, rollbacks, stored)
    }

    const MSG: &str = "2026-01-15T10:23:45.123456+01:00 fw01 kernel: IPT: DROP IN=eth0 OUT=";

    #[test]
    fn plain_mode_never_replies() {
        let (out, rb, stored) =
            run(Mode::Plain, &[MSG, "BEGIN TRANSACTION", MSG, "COMMIT TRANSACTION", MSG], true);
        assert!(out.is_empty());
        assert_eq!((rb, stored), (0, 3));
    }

    #[test]
    fn plain_mode_flushes_on_commit_marks() {
        let mut p = Protocol::new(Mode::Plain);
        assert!(!p.on_line(Kind::Message).flush);
        assert!(!p.on_line(Kind::Begin).flush);
        assert!(p.on_line(Kind::Commit).flush);
    }

    #[test]
    fn confirm_mode_greets_and_confirms_each_message_after_commit() {
        let (out, rb, stored) = run(Mode::Confirm, &[MSG, MSG, "not a firewall line"], true);
        assert_eq!(out, ["OK", "OK", "OK", "OK"]);
        assert_eq!((rb, stored), (0, 3));
        let mut p = Protocol::new(Mode::Confirm);
        let d = p.on_line(Kind::Message);
        assert_eq!(d, Decision { rollback: false, store: true, flush: true, ack: Ack::WhenDurable });
    }

    #[test]
    fn confirm_mode_reports_failure_without_quoting() {
        let (out, _, _) = run(Mode::Confirm, &[MSG], false);
        assert_eq!(out[1], ERR_NOT_COMMITTED);
        assert!(!ERR_NOT_COMMITTED.contains("IPT"));
    }

    #[test]
    fn transactions_defer_then_commit() {
        let script = ["BEGIN TRANSACTION", MSG, MSG, MSG, "COMMIT TRANSACTION"];
        let (out, rb, stored) = run(Mode::Confirm, &script, true);
        assert_eq!(out, ["OK", "OK", "DEFER_COMMIT", "DEFER_COMMIT", "DEFER_COMMIT", "OK"]);
        assert_eq!((rb, stored), (0, 3));
        let (out, _, _) = run(Mode::Confirm, &script, false);
        assert_eq!(out.last().unwrap(), ERR_NOT_COMMITTED);
    }

    #[test]
    fn begin_without_commit_is_a_rollback() {
        let script = [
            "BEGIN TRANSACTION",
            MSG,
            MSG,
            "BEGIN TRANSACTION",
            MSG,
            "COMMIT TRANSACTION",
        ];
        let (out, rb, _) = run(Mode::Confirm, &script, true);
        assert_eq!(rb, 1);
        assert_eq!(out, ["OK", "OK", "DEFER_COMMIT", "DEFER_COMMIT", "OK", "DEFER_COMMIT", "OK"]);
        let mut p = Protocol::new(Mode::Confirm);
        p.on_line(Kind::Begin);
        p.on_line(Kind::Message);
        assert!(p.in_transaction());
        assert!(p.on_eof(), "EOF inside a transaction leaves it unconfirmed");
        assert!(!p.in_transaction());
    }

    #[test]
    fn exactly_one_known_reply_per_line() {
        // Whatever rsyslog sends, every line gets one reply and every reply is one of the
        // words rsyslog knows, so the feedback pipe never desynchronises.
        let lines = [
            "", "BEGIN TRANSACTION", "COMMIT TRANSACTION", "BEGIN TRANSACTION\r", "OK", "garbage",
            MSG, "COMMIT TRANSACTION", "begin transaction", "BEGIN TRANSACTION ", "\u{0}",
        ];
        // Every sequence of up to 4 lines from the set.
        let n = lines.len();
        for a in 0..n {
            for b in 0..n {
                for c in 0..n {
                    for d in 0..n {
                        let script = [lines[a], lines[b], lines[c], lines[d]];
                        for durable in [true, false] {
                            let (out, _, _) = run(Mode::Confirm, &script, durable);
                            assert_eq!(out.len(), script.len() + 1, "{script:?}");
                            for r in &out {
                                assert!(
                                    r == OK || r == DEFER_COMMIT || r == ERR_NOT_COMMITTED,
                                    "unexpected reply {r:?}"
                                );
                                assert!(!r.contains('\n') && !r.contains('\r'));
                                assert!(r.len() < 4095);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn marks_are_exact() {
        assert_eq!(classify(b"BEGIN TRANSACTION"), Kind::Begin);
        assert_eq!(classify(b"BEGIN TRANSACTION\r"), Kind::Begin);
        assert_eq!(classify(b"COMMIT TRANSACTION"), Kind::Commit);
        assert_eq!(classify(b"x BEGIN TRANSACTION"), Kind::Message);
        assert_eq!(classify(b"commit transaction"), Kind::Message);
    }
}
