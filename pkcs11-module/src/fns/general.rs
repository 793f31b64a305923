//! General-purpose functions (PKCS#11 "General-purpose functions"): initialising and
//! finalising the library, and its description.

use pkcs11_wire::{ck, Function};
use rand::RngCore;

use super::session::close_all;
use super::slot::padded;
use super::CkResult;
use crate::client::{Client, Config};
use crate::state::{self, Library};

/// The version of PKCS#11 this library implements.
pub const CRYPTOKI_VERSION: ck::CK_VERSION = ck::CK_VERSION { major: 3, minor: 2 };

/// What the application's `CK_C_INITIALIZE_ARGS` said, decoded.
#[derive(Debug, Default)]
pub struct InitArgs {
    /// Mutex callbacks: all four given (`Some(true)`), none (`Some(false)`), or a mix.
    pub mutex_callbacks: Option<bool>,
    pub flags: ck::CK_FLAGS,
    pub reserved: bool,
}

pub fn initialize(args: Option<InitArgs>) -> CkResult<()> {
    if let Some(args) = args {
        if args.reserved {
            return Err(ck::CKR_ARGUMENTS_BAD);
        }
        match args.mutex_callbacks {
            None => return Err(ck::CKR_ARGUMENTS_BAD),
            // The library locks with the OS's primitives, never the application's.
            Some(true) if args.flags & ck::CKF_OS_LOCKING_OK == 0 => return Err(ck::CKR_CANT_LOCK),
            Some(_) => {}
        }
    }
    state::install(|| {
        let config = Config::from_env().map_err(|e| {
            eprintln!("ironseal-pkcs11: {e}");
            ck::CKR_GENERAL_ERROR
        })?;
        let mut instance = [0u8; 16];
        rand::rngs::OsRng
            .try_fill_bytes(&mut instance)
            .map_err(|e| {
                eprintln!("ironseal-pkcs11: no randomness for the instance id: {e}");
                ck::CKR_GENERAL_ERROR
            })?;
        let client = Client::new(config.target.clone(), instance).map_err(|e| {
            eprintln!("ironseal-pkcs11: {e}");
            ck::CKR_GENERAL_ERROR
        })?;
        Ok(Library::new(config, client))
    })
}

/// Closes every session and drops the connections (the daemon then forgets this
/// instance's session objects).
pub fn finalize(reserved: bool) -> CkResult<()> {
    if reserved {
        return Err(ck::CKR_ARGUMENTS_BAD);
    }
    let lib = state::remove()?;
    close_all(&lib, Function::C_Finalize);
    Ok(())
}

pub fn get_info() -> CkResult<ck::CK_INFO> {
    state::library()?;
    let version = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|part| part.parse::<u8>().unwrap_or(0))
        .collect::<Vec<_>>();
    Ok(ck::CK_INFO {
        cryptokiVersion: CRYPTOKI_VERSION,
        manufacturerID: padded("Ironseal"),
        flags: 0,
        libraryDescription: padded("Ironseal PKCS#11 library"),
        libraryVersion: ck::CK_VERSION {
            major: version.first().copied().unwrap_or(0),
            minor: version.get(1).copied().unwrap_or(0),
        },
    })
}
