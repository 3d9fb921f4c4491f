//! What every sled transaction of the store shares: its result type and the
//! mapping of sled's transaction errors onto `StoreError`. A leaf of the
//! store, so that `apply.rs` and `outbox.rs` both use it without using each
//! other.

use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{StoreError, engine_err};

pub(crate) type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

pub(crate) fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

pub(crate) fn tx_err(context: &str, e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => engine_err(context, e),
    }
}
