//! The integration tests: one test binary, a module per capability (`<area>_<topic>.rs`), so
//! the crate and its dependencies are linked once instead of once per file. A new test file
//! goes next to the others and gets one line below (`mod area_topic;`); it reaches the shared
//! helpers as `crate::util` (a database per test, the built binaries, captured output, option
//! sets, firewall log lines) and `crate::ingest_support` (a running ipta-ingest, a private
//! `mariadbd`); the workload generator is the dev crate's (`ipta_dev::genlog`, shared with the
//! benchmarks).
//!
//! Not here: `tests/parse_alloc.rs`, which installs a counting global allocator and so needs a
//! process of its own.

mod ingest_support;
mod util;

mod analyze_fold_outage;
mod analyze_modules;
mod analyze_prompt;
mod analyze_windows;
mod cli_tables;
mod cli_usage;
mod follow_e2e;
mod follow_fanout;
mod follow_tail;
mod import_db;
mod import_firewalls;
mod ingest_db;
mod ingest_firewalls;
mod ingest_hostile;
mod ingest_journal;
mod ingest_outage;
mod ingest_relay;
mod ingest_rules;
mod ingest_rsyslog;
mod ingest_senders;
mod install;
mod install_accounts;
mod install_filter;
mod install_logrotate;
mod live_then_import;
mod parse_corpus;
mod parse_fixtures;
mod parse_genlog;
mod parse_mutation;
mod parse_time;
mod report_html;
mod retention;
mod scan_run;
mod store_fallback;
mod store_sink;
mod store_smoke;
mod store_writer;
mod tls;
