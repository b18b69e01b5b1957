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
