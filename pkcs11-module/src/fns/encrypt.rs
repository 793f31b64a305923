//! Encryption (PKCS#11 "Encryption functions"). Parts are gathered and encrypted as one
//! call at `C_EncryptFinal`, so `C_EncryptUpdate` outputs nothing.

use pkcs11_wire::{ck, Function, Mechanism, Op};

use super::operation::{self, Kind};
use super::{bytes, CkResult, Out};
use crate::state::library;

pub fn encrypt_init(
    session: ck::CK_SESSION_HANDLE,
    mechanism: Option<Mechanism>,
    key: ck::CK_OBJECT_HANDLE,
) -> CkResult<()> {
    operation::init(&*library()?, session, Kind::Encrypt, mechanism, Some(key))
}

pub fn encrypt(
    session: ck::CK_SESSION_HANDLE,
    data: &[u8],
    capacity: Option<usize>,
) -> CkResult<Out> {
    finish(session, Some(data), capacity, Function::C_Encrypt)
}

/// Gathers the part; its output comes at `C_EncryptFinal` (zero bytes now).
pub fn encrypt_update(session: ck::CK_SESSION_HANDLE, data: &[u8]) -> CkResult<()> {
    operation::update(&*library()?, session, Kind::Encrypt, data)
}

pub fn encrypt_final(session: ck::CK_SESSION_HANDLE, capacity: Option<usize>) -> CkResult<Out> {
    finish(session, None, capacity, Function::C_EncryptFinal)
}

fn finish(
    session: ck::CK_SESSION_HANDLE,
    data: Option<&[u8]>,
    capacity: Option<usize>,
    function: Function,
) -> CkResult<Out> {
    let lib = library()?;
    operation::finish(&lib, session, Kind::Encrypt, data, capacity, |op, data| {
        let key = op.key.ok_or(ck::CKR_GENERAL_ERROR)?;
        bytes(lib.call(
            function,
            Op::Encrypt {
                key,
                mechanism: op.mechanism.clone(),
                data,
            },
        )?)
    })
}
