//! Summary tables that keep `ipta --analyze` fast as the packet table grows. The writer calls
//! these hooks inside its transaction, so summaries change exactly when rows do.

use crate::record::RecordBatch;
use crate::store::StoreError;

/// Called by the writer after inserting rows, in the same transaction. `inserted[i]` tells
/// whether the batch's i-th record was really added (not a duplicate).
pub fn on_insert(
    tx: &mut mysql::Transaction<'_>,
    table: &str,
    batch: &RecordBatch,
    inserted: &[bool],
) -> Result<(), StoreError> {
    let _ = (tx, table, batch, inserted);
    Ok(())
}

/// Called by `store::retention::expire` inside each chunk's transaction, BEFORE it deletes the
/// rows with `from <= ts < to` from `table`. That range is locked (a locking read) when this runs,
/// so plain reads of it see exactly the rows about to be deleted.
// Placeholder of the ops branch: the analyze branch owns the summary tables and fills this in.
pub fn on_delete_range(
    tx: &mut mysql::Transaction<'_>,
    table: &str,
    from: crate::record::Timestamp,
    to: crate::record::Timestamp,
) -> Result<(), StoreError> {
    let _ = (tx, table, from, to);
    Ok(())
}
