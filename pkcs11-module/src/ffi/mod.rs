//! The only code that touches the application's raw pointers: it turns them into safe
//! values for [`crate::fns`] and writes the answers back, following PKCS#11's rules for
//! null and short buffers. Each exported function is a thin shim.
//!
//! The exported functions' safety contract is the PKCS#11 specification itself (what
//! each pointer must point to), hence no `# Safety` section on each.
#![allow(clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]

mod decode;
pub mod entry;
mod mem;
pub(crate) mod sys;
mod tables;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pkcs11_wire::ck;

use crate::fns::CkResult;

/// Runs one entry point: its `CK_RV`, or `CKR_GENERAL_ERROR` if anything in it panicked,
/// so that no input can unwind into the application.
fn guard(f: impl FnOnce() -> CkResult<()>) -> ck::CK_RV {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => ck::CKR_OK,
        Ok(Err(rv)) => rv,
        Err(_) => ck::CKR_GENERAL_ERROR,
    }
}

#[cfg(test)]
mod tests;
