//! Process hardening at start: no core dumps (they would hold keys), memory locked so keys
//! never reach swap, and no config readable by other users.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::sys::mman::{mlockall, MlockAllFlags};
use nix::sys::prctl;
use nix::sys::resource::{setrlimit, Resource};

#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    #[error("cannot disable core dumps: {0}")]
    CoreDumps(nix::Error),
    #[error("cannot lock memory ({0}); give the process CAP_IPC_LOCK and a sufficient RLIMIT_MEMLOCK, or set disable_mlock = true in the config if swap is encrypted or absent")]
    Mlock(nix::Error),
    #[error("{path} is readable by other users (mode {mode:o}); run `chmod o-rwx {path}`")]
    WorldReadable { path: String, mode: u32 },
    #[error("cannot inspect {path}: {source}")]
    Stat {
        path: String,
        source: std::io::Error,
    },
}

pub fn disable_core_dumps() -> Result<(), HardeningError> {
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(HardeningError::CoreDumps)?;
    prctl::set_dumpable(false).map_err(HardeningError::CoreDumps)
}

/// Locks every page the process touches, now and later, but only once it is touched.
/// Without `MCL_ONFAULT`, `MCL_FUTURE` populates whole mappings when they are made: the
/// allocator's arena reservation (1 GiB, committed up front where the kernel overcommits)
/// and every thread's stack reservation became resident and locked, over 1 GB for an idle
/// daemon. Pages that were never touched hold no secret, so locking on fault keeps the
/// guarantee (nothing written reaches swap) at the memory actually used.
pub fn lock_memory() -> Result<(), HardeningError> {
    let on_fault = MlockAllFlags::from_bits_retain(nix::libc::MCL_ONFAULT);
    mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE | on_fault)
        .map_err(HardeningError::Mlock)
}

pub fn refuse_world_readable(path: &Path) -> Result<(), HardeningError> {
    let meta = std::fs::metadata(path).map_err(|source| HardeningError::Stat {
        path: path.display().to_string(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o004 != 0 {
        return Err(HardeningError::WorldReadable {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}
