//! The PKCS#11 functions in safe Rust, one module per chapter of the specification.
//! Each takes the values the FFI layer decoded and answers a `CK_RV` or what to write
//! back; each function that needs the appliance makes one wire call.

pub mod decrypt;
pub mod digest;
pub mod encrypt;
pub mod general;
pub mod kem;
pub mod keys;
pub mod mechanism_rules;
pub mod object;
pub mod operation;
pub mod random;
pub mod session;
pub mod sign;
pub mod slot;
pub mod verify;

use pkcs11_wire::{ck, Function, Reply};
use zeroize::Zeroizing;

/// `Err` is a `CK_RV` other than `CKR_OK`.
pub type CkResult<T> = Result<T, ck::CK_RV>;

/// The most data one operation gathers: what the daemon accepts in one call.
pub const MAX_DATA: usize = 64 * 1024;

/// What a function with a variable-length output writes back.
#[derive(Debug)]
pub enum Out {
    /// A size query: only the length, `CKR_OK`.
    Len(usize),
    /// The buffer was too small: the length, `CKR_BUFFER_TOO_SMALL`.
    TooSmall(usize),
    /// The output itself (zeroized once copied).
    Data(Zeroizing<Vec<u8>>),
}

impl Out {
    /// The answer for an output of `len` bytes and a buffer of `capacity` (`None` when
    /// the application passed no buffer); `None` when the output fits.
    pub fn short(len: usize, capacity: Option<usize>) -> Option<Out> {
        match capacity {
            None => Some(Out::Len(len)),
            Some(cap) if cap < len => Some(Out::TooSmall(len)),
            Some(_) => None,
        }
    }
}

/// The reply's bytes, for calls that answer `Bytes` or `Secret`.
pub fn bytes(reply: Reply) -> CkResult<Zeroizing<Vec<u8>>> {
    match reply {
        Reply::Bytes(bytes) => Ok(Zeroizing::new(bytes)),
        Reply::Secret(secret) => Ok(secret),
        _ => Err(ck::CKR_DEVICE_ERROR),
    }
}

/// The daemon's explanation of a failure, for whoever debugs the application; never
/// shown otherwise.
pub fn debug(function: Function, message: &str) {
    if std::env::var_os("IRONSEAL_PKCS11_DEBUG").is_some_and(|v| v == "1") {
        eprintln!("ironseal-pkcs11: {}: {message}", function.name());
    }
}
