//! libvirt errors as they cross the wire (`remote_error`, §9) and the codes the protocol
//! logic depends on (virerror.h).

use serde::{Deserialize, Serialize};

/// `VIR_FROM_QEMU`
pub const FROM_QEMU: i32 = 10;
/// `VIR_FROM_NONE`
pub const FROM_NONE: i32 = 0;
/// `VIR_ERR_INTERNAL_ERROR`
pub const ERR_INTERNAL_ERROR: i32 = 1;
/// `VIR_ERR_OPERATION_FAILED`
pub const ERR_OPERATION_FAILED: i32 = 9;
/// `VIR_ERR_NO_DOMAIN`
pub const ERR_NO_DOMAIN: i32 = 42;
/// `VIR_ERR_OPERATION_INVALID`
pub const ERR_OPERATION_INVALID: i32 = 55;
/// `VIR_ERR_OPERATION_TIMEOUT`
pub const ERR_OPERATION_TIMEOUT: i32 = 68;
/// `VIR_ERR_OPERATION_ABORTED`
pub const ERR_OPERATION_ABORTED: i32 = 78;
/// `VIR_ERR_MIGRATE_UNSAFE`
pub const ERR_MIGRATE_UNSAFE: i32 = 81;
/// `VIR_ERR_ARGUMENT_UNSUPPORTED`
pub const ERR_ARGUMENT_UNSUPPORTED: i32 = 74;
/// `VIR_ERR_MIGRATE_FINISH_OK`: "migration successfully aborted" (§4.5).
pub const ERR_MIGRATE_FINISH_OK: i32 = 93;
/// `VIR_ERR_NO_SUPPORT`
pub const ERR_NO_SUPPORT: i32 = 3;

/// An error as a libvirt daemon reports it (the fields of `remote_error` that matter).
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (code {code}, domain {domain})")]
pub struct RemoteError {
    /// `virErrorNumber`
    pub code: i32,
    /// `virErrorDomain`
    pub domain: i32,
    /// The message text.
    pub message: String,
}

impl RemoteError {
    /// A new error.
    pub fn new(code: i32, domain: i32, message: impl Into<String>) -> Self {
        RemoteError {
            code,
            domain,
            message: message.into(),
        }
    }
    /// An `operation failed` error from the QEMU driver.
    pub fn operation_failed(message: impl Into<String>) -> Self {
        Self::new(ERR_OPERATION_FAILED, FROM_QEMU, message)
    }
    /// An internal error from the QEMU driver.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ERR_INTERNAL_ERROR, FROM_QEMU, message)
    }
}
