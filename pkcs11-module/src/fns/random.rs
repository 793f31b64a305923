//! Random number generation (PKCS#11 "Random number generation functions"), from the
//! appliance's mixed RNG; no login needed.

use pkcs11_wire::{ck, Function, Op};
use zeroize::Zeroizing;

use super::{bytes, CkResult, MAX_DATA};
use crate::state::library;

/// The random bytes, asked for in calls of at most 64 KiB.
pub fn generate_random(session: ck::CK_SESSION_HANDLE, len: usize) -> CkResult<Zeroizing<Vec<u8>>> {
    let lib = library()?;
    lib.session(session)?;
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    while out.len() < len {
        let chunk = (len - out.len()).min(MAX_DATA);
        let part = bytes(lib.call(
            Function::C_GenerateRandom,
            Op::Random {
                len: u32::try_from(chunk).map_err(|_| ck::CKR_GENERAL_ERROR)?,
            },
        )?)?;
        if part.len() != chunk {
            return Err(ck::CKR_DEVICE_ERROR);
        }
        out.extend_from_slice(&part);
    }
    Ok(out)
}

/// The appliance's RNG takes no seed from applications.
pub fn seed_random(session: ck::CK_SESSION_HANDLE) -> CkResult<()> {
    library()?.session(session)?;
    Err(ck::CKR_RANDOM_SEED_NOT_SUPPORTED)
}
