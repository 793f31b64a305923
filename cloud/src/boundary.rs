//! Calls into the boundary that holds the key ([`ExportMaterial`]): they block (an HSM
//! may take its time), and the material is borrowed for the sync only, so it cannot move
//! to `spawn_blocking`. On the engine's multi-threaded runtime the call runs under
//! `block_in_place`, which hands this worker's other tasks to the rest of the pool; a
//! current-thread runtime (unit tests) has no other thread to hand them to.
//!
//! [`ExportMaterial`]: engine::cloud_exports::ExportMaterial

use tokio::runtime::{Handle, RuntimeFlavor};

pub(crate) fn off_reactor<T>(call: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}
