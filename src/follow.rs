//! `ipta --follow`: tailing a file or attaching to ipta-ingest's fan-out, and the live display.
