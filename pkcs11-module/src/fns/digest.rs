//! Message digesting (PKCS#11 "Message digesting functions"); no login needed.

use pkcs11_wire::{ck, Function, Mechanism, Op};

use super::operation::{self, Kind};
use super::{bytes, CkResult, Out};
use crate::state::library;

pub fn digest_init(session: ck::CK_SESSION_HANDLE, mechanism: Option<Mechanism>) -> CkResult<()> {
    operation::init(&*library()?, session, Kind::Digest, mechanism, None)
}

pub fn digest(
    session: ck::CK_SESSION_HANDLE,
    data: &[u8],
    capacity: Option<usize>,
) -> CkResult<Out> {
    finish(session, Some(data), capacity, Function::C_Digest)
}

pub fn digest_update(session: ck::CK_SESSION_HANDLE, data: &[u8]) -> CkResult<()> {
    operation::update(&*library()?, session, Kind::Digest, data)
}

/// Appliance keys never leave it, so none can be digested; the operation ends as any
/// failed one does.
pub fn digest_key(session: ck::CK_SESSION_HANDLE, key: ck::CK_OBJECT_HANDLE) -> CkResult<()> {
    let lib = library()?;
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    if session.digest.is_none() {
        return Err(ck::CKR_OPERATION_NOT_INITIALIZED);
    }
    session.digest = None;
    lib.object(key, ck::CKR_KEY_HANDLE_INVALID)?;
    Err(ck::CKR_KEY_INDIGESTIBLE)
}

pub fn digest_final(session: ck::CK_SESSION_HANDLE, capacity: Option<usize>) -> CkResult<Out> {
    finish(session, None, capacity, Function::C_DigestFinal)
}

fn finish(
    session: ck::CK_SESSION_HANDLE,
    data: Option<&[u8]>,
    capacity: Option<usize>,
    function: Function,
) -> CkResult<Out> {
    let lib = library()?;
    operation::finish(&lib, session, Kind::Digest, data, capacity, |op, data| {
        bytes(lib.call(
            function,
            Op::Digest {
                mechanism: op.mechanism.clone(),
                data: data.to_vec(),
            },
        )?)
    })
}
