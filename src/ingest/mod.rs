//! ipta-ingest: rsyslog omprog on stdin -> batches -> MySQL, and the fan-out to live viewers.

pub mod fanout;
