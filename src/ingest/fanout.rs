//! The fan-out to `ipta --follow` viewers: one FIFO per viewer in a directory; ipta-ingest writes
//! every line to each of them without ever blocking (a slow viewer loses lines, and is told).

use std::path::Path;

/// The writer side, owned by ipta-ingest. With no viewer attached it costs nothing.
pub struct FanOut {
    _private: (),
}

impl FanOut {
    /// Watches `dir` for viewers' FIFOs (the directory is created if missing).
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        let _ = dir;
        Ok(FanOut { _private: () })
    }

    /// Offers one line (without newline) to every attached viewer. Never blocks.
    pub fn send(&mut self, line: &[u8]) {
        let _ = line;
    }
}
