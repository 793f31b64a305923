//! Key management (PKCS#11 "Key management functions"): generation inside the
//! appliance's boundary, wrapping and unwrapping.

use pkcs11_wire::{ck, Attribute, Function, Mechanism, Op, Reply};

use super::object::{require_login, single_object, wants_token};
use super::operation::require_user_for;
use super::{bytes, CkResult, Out};
use crate::state::library;

pub fn generate_key(
    session: ck::CK_SESSION_HANDLE,
    mechanism: Mechanism,
    template: Vec<Attribute>,
) -> CkResult<ck::CK_OBJECT_HANDLE> {
    let lib = library()?;
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    lib.mechanism(Function::C_GenerateKey, &mechanism, ck::CKF_GENERATE)?;
    require_login(&lib)?;
    if wants_token(&template) && !entry.rw {
        return Err(ck::CKR_SESSION_READ_ONLY);
    }
    let key = single_object(lib.call(
        Function::C_GenerateKey,
        Op::GenerateKey {
            mechanism,
            template,
        },
    )?)?;
    session.owns(&key.handle);
    Ok(lib.handle(&key))
}

pub fn generate_key_pair(
    session: ck::CK_SESSION_HANDLE,
    mechanism: Mechanism,
    public: Vec<Attribute>,
    private: Vec<Attribute>,
) -> CkResult<(ck::CK_OBJECT_HANDLE, ck::CK_OBJECT_HANDLE)> {
    let lib = library()?;
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    lib.mechanism(
        Function::C_GenerateKeyPair,
        &mechanism,
        ck::CKF_GENERATE_KEY_PAIR,
    )?;
    require_login(&lib)?;
    if (wants_token(&public) || wants_token(&private)) && !entry.rw {
        return Err(ck::CKR_SESSION_READ_ONLY);
    }
    match lib.call(
        Function::C_GenerateKeyPair,
        Op::GenerateKeyPair {
            mechanism,
            public,
            private,
        },
    )? {
        Reply::KeyPair { public, private } => {
            session.owns(&public.handle);
            session.owns(&private.handle);
            Ok((lib.handle(&public), lib.handle(&private)))
        }
        _ => Err(ck::CKR_DEVICE_ERROR),
    }
}

/// Appliance keys are never extractable, so the daemon refuses most wraps; the answer
/// is whatever it says, and a size query costs a call.
pub fn wrap_key(
    session: ck::CK_SESSION_HANDLE,
    mechanism: Mechanism,
    wrapping: ck::CK_OBJECT_HANDLE,
    key: ck::CK_OBJECT_HANDLE,
    capacity: Option<usize>,
) -> CkResult<Out> {
    let lib = library()?;
    lib.session(session)?;
    // The token offers its key-wrapping mechanisms for unwrapping only (its keys are
    // never extractable); a wrap with one of them gets the daemon's reason for refusing
    // (`CKR_KEY_UNEXTRACTABLE`) rather than `CKR_MECHANISM_INVALID`.
    let info = lib.mechanism(Function::C_WrapKey, &mechanism, 0)?;
    if info.flags & (ck::CKF_WRAP | ck::CKF_UNWRAP) == 0 {
        return Err(ck::CKR_MECHANISM_INVALID);
    }
    let wrapping = lib.object(wrapping, ck::CKR_WRAPPING_KEY_HANDLE_INVALID)?;
    let key = lib.object(key, ck::CKR_KEY_HANDLE_INVALID)?;
    require_login(&lib)?;
    require_user_for(&lib, &wrapping)?;
    let wrapped = bytes(lib.call(
        Function::C_WrapKey,
        Op::WrapKey {
            mechanism,
            wrapping,
            key,
        },
    )?)?;
    Ok(Out::short(wrapped.len(), capacity).unwrap_or(Out::Data(wrapped)))
}

pub fn unwrap_key(
    session: ck::CK_SESSION_HANDLE,
    mechanism: Mechanism,
    unwrapping: ck::CK_OBJECT_HANDLE,
    wrapped: &[u8],
    template: Vec<Attribute>,
) -> CkResult<ck::CK_OBJECT_HANDLE> {
    let lib = library()?;
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    lib.mechanism(Function::C_UnwrapKey, &mechanism, ck::CKF_UNWRAP)?;
    let unwrapping = lib.object(unwrapping, ck::CKR_UNWRAPPING_KEY_HANDLE_INVALID)?;
    require_login(&lib)?;
    require_user_for(&lib, &unwrapping)?;
    if wants_token(&template) && !entry.rw {
        return Err(ck::CKR_SESSION_READ_ONLY);
    }
    let key = single_object(lib.call(
        Function::C_UnwrapKey,
        Op::UnwrapKey {
            mechanism,
            unwrapping,
            wrapped: wrapped.to_vec(),
            template,
        },
    )?)?;
    session.owns(&key.handle);
    Ok(lib.handle(&key))
}
