//! Random number generation (PKCS#11 "Random number generation functions"), from the
//! appliance's mixed RNG; no login needed.

use pkcs11_wire::{ck, Function, Op};

use super::{bytes, CkResult, MAX_DATA};
use crate::state::library;

/// `len` random bytes, asked for in calls of at most 64 KiB, each handed to `sink` with
/// its offset as it arrives (so no request size needs a buffer of its own).
pub fn generate_random(
    session: ck::CK_SESSION_HANDLE,
    len: usize,
    mut sink: impl FnMut(usize, &[u8]),
) -> CkResult<()> {
    let lib = library()?;
    lib.session(session)?;
    let mut done = 0;
    while done < len {
        let chunk = (len - done).min(MAX_DATA);
        let part = bytes(lib.call(
            Function::C_GenerateRandom,
            Op::Random {
                len: u32::try_from(chunk).map_err(|_| ck::CKR_GENERAL_ERROR)?,
            },
        )?)?;
        if part.len() != chunk {
            return Err(ck::CKR_DEVICE_ERROR);
        }
        sink(done, &part);
        done += chunk;
    }
    Ok(())
}

/// The appliance's RNG takes no seed from applications.
pub fn seed_random(session: ck::CK_SESSION_HANDLE) -> CkResult<()> {
    library()?.session(session)?;
    Err(ck::CKR_RANDOM_SEED_NOT_SUPPORTED)
}
