//! Verification (PKCS#11 "Functions for verifying signatures and MACs").

use pkcs11_wire::{ck, Function, Mechanism, Op, Reply};

use super::operation::{self, Kind};
use super::CkResult;
use crate::state::library;

pub fn verify_init(
    session: ck::CK_SESSION_HANDLE,
    mechanism: Option<Mechanism>,
    key: ck::CK_OBJECT_HANDLE,
) -> CkResult<()> {
    operation::init(&*library()?, session, Kind::Verify, mechanism, Some(key))
}

pub fn verify(session: ck::CK_SESSION_HANDLE, data: &[u8], signature: &[u8]) -> CkResult<()> {
    finish(session, Some(data), signature, Function::C_Verify)
}

pub fn verify_update(session: ck::CK_SESSION_HANDLE, data: &[u8]) -> CkResult<()> {
    operation::update(&*library()?, session, Kind::Verify, data)
}

pub fn verify_final(session: ck::CK_SESSION_HANDLE, signature: &[u8]) -> CkResult<()> {
    finish(session, None, signature, Function::C_VerifyFinal)
}

fn finish(
    session: ck::CK_SESSION_HANDLE,
    data: Option<&[u8]>,
    signature: &[u8],
    function: Function,
) -> CkResult<()> {
    let lib = library()?;
    operation::verify(&lib, session, data, |op, data| {
        let key = op.key.ok_or(ck::CKR_GENERAL_ERROR)?;
        match lib.call(
            function,
            Op::Verify {
                key,
                mechanism: op.mechanism.clone(),
                data,
                signature: signature.to_vec(),
            },
        )? {
            Reply::Ok => Ok(()),
            _ => Err(ck::CKR_DEVICE_ERROR),
        }
    })
}
