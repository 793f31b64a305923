//! Decryption (PKCS#11 "Decryption functions"). Parts are gathered and decrypted as one
//! call at `C_DecryptFinal`, so `C_DecryptUpdate` outputs nothing; plaintext is zeroized
//! once copied to the application.

use pkcs11_wire::{ck, Function, Mechanism, Op};

use super::operation::{self, Kind};
use super::{bytes, CkResult, Out};
use crate::state::library;

pub fn decrypt_init(
    session: ck::CK_SESSION_HANDLE,
    mechanism: Option<Mechanism>,
    key: ck::CK_OBJECT_HANDLE,
) -> CkResult<()> {
    operation::init(&*library()?, session, Kind::Decrypt, mechanism, Some(key))
}

pub fn decrypt(
    session: ck::CK_SESSION_HANDLE,
    data: &[u8],
    capacity: Option<usize>,
) -> CkResult<Out> {
    finish(session, Some(data), capacity, Function::C_Decrypt)
}

pub fn decrypt_update(session: ck::CK_SESSION_HANDLE, data: &[u8]) -> CkResult<()> {
    operation::update(&*library()?, session, Kind::Decrypt, data)
}

pub fn decrypt_final(session: ck::CK_SESSION_HANDLE, capacity: Option<usize>) -> CkResult<Out> {
    finish(session, None, capacity, Function::C_DecryptFinal)
}

fn finish(
    session: ck::CK_SESSION_HANDLE,
    data: Option<&[u8]>,
    capacity: Option<usize>,
    function: Function,
) -> CkResult<Out> {
    let lib = library()?;
    operation::finish(&lib, session, Kind::Decrypt, data, capacity, |op, data| {
        let key = op.key.ok_or(ck::CKR_GENERAL_ERROR)?;
        bytes(lib.call(
            function,
            Op::Decrypt {
                key,
                mechanism: op.mechanism.clone(),
                data: data.to_vec(),
            },
        )?)
    })
}
