//! Signing (PKCS#11 "Signing and MACing functions").

use pkcs11_wire::{ck, Function, Mechanism, Op};

use super::operation::{self, Kind};
use super::{bytes, CkResult, Out};
use crate::state::library;

pub fn sign_init(
    session: ck::CK_SESSION_HANDLE,
    mechanism: Option<Mechanism>,
    key: ck::CK_OBJECT_HANDLE,
) -> CkResult<()> {
    operation::init(&*library()?, session, Kind::Sign, mechanism, Some(key))
}

pub fn sign(session: ck::CK_SESSION_HANDLE, data: &[u8], capacity: Option<usize>) -> CkResult<Out> {
    finish(session, Some(data), capacity, Function::C_Sign)
}

pub fn sign_update(session: ck::CK_SESSION_HANDLE, data: &[u8]) -> CkResult<()> {
    operation::update(&*library()?, session, Kind::Sign, data)
}

pub fn sign_final(session: ck::CK_SESSION_HANDLE, capacity: Option<usize>) -> CkResult<Out> {
    finish(session, None, capacity, Function::C_SignFinal)
}

fn finish(
    session: ck::CK_SESSION_HANDLE,
    data: Option<&[u8]>,
    capacity: Option<usize>,
    function: Function,
) -> CkResult<Out> {
    let lib = library()?;
    operation::finish(&lib, session, Kind::Sign, data, capacity, |op, data| {
        let key = op.key.ok_or(ck::CKR_GENERAL_ERROR)?;
        bytes(lib.call(
            function,
            Op::Sign {
                key,
                mechanism: op.mechanism.clone(),
                data: data.to_vec(),
            },
        )?)
    })
}
