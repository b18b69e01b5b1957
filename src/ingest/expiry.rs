//! ipta-ingest's retention: the configured `expire` applied once the writer has first
//! connected, then hourly, on a connection of its own.

use crossbeam_channel::Receiver;

use crate::config::{Age, DbSettings};
use crate::store::retention;

/// Applies the configured retention (`expire = 30d`) once the writer has first connected (so
/// the table exists), then hourly, on a connection of its own so that the batches never wait
/// for it. Interrupting it (exit) is safe: every chunk is its own transaction.
pub fn start(db: DbSettings, age: Age, connected: Receiver<()>) {
    let spawned = std::thread::Builder::new().name("ipta-expire".into()).spawn(move || {
        if connected.recv().is_err() {
            return; // the writer is gone: exiting
        }
        loop {
            let res = crate::store::connect(&db).and_then(|mut c| {
                retention::expire_older_than(&mut c, &db.table, age.duration, retention::DEFAULT_CHUNK_ROWS)
            });
            match res {
                Ok((cutoff, st)) => eprintln!("ipta-ingest: expire = {}: {}", age.text, st.describe(&db.table, cutoff)),
                // The next hour retries; missing table, database down: said once an hour.
                Err(e) => eprintln!("ipta-ingest: expire = {} failed: {e}", age.text),
            }
            std::thread::sleep(retention::EXPIRE_INTERVAL);
        }
    });
    if let Err(e) = spawned {
        eprintln!("ipta-ingest: cannot start the retention thread: {e}");
    }
}
