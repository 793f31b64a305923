//! Key encapsulation (PKCS#11 3.2 "Key encapsulation functions", ML-KEM).

use pkcs11_wire::{ck, Attribute, Function, Mechanism, Op, Reply};

use super::object::{require_login, wants_token};
use super::operation::require_user_for;
use super::{CkResult, Out};
use crate::state::{library, Encapsulated};
use zeroize::Zeroizing;

/// The ciphertext and the new key's handle. Encapsulation is not repeatable, so after
/// a size query (or a buffer too small) the result of the one call made is kept for the
/// next call on the same public key.
pub fn encapsulate_key(
    session: ck::CK_SESSION_HANDLE,
    mechanism: Mechanism,
    public: ck::CK_OBJECT_HANDLE,
    template: Vec<Attribute>,
    capacity: Option<usize>,
) -> CkResult<(Out, Option<ck::CK_OBJECT_HANDLE>)> {
    let lib = library()?;
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    lib.mechanism(Function::C_EncapsulateKey, &mechanism, ck::CKF_ENCAPSULATE)?;
    let key = lib.object(public, ck::CKR_KEY_HANDLE_INVALID)?;
    require_login(&lib)?;
    if wants_token(&template) && !entry.rw {
        return Err(ck::CKR_SESSION_READ_ONLY);
    }
    let done = match session.encapsulated.take() {
        Some(done) if done.key == public => done,
        _ => match lib.call(
            Function::C_EncapsulateKey,
            Op::Encapsulate {
                mechanism,
                key,
                template,
            },
        )? {
            Reply::Encapsulated { ciphertext, key } => {
                session.owns(&key.handle);
                Encapsulated {
                    key: public,
                    ciphertext,
                    new_key: lib.handle(&key),
                }
            }
            _ => return Err(ck::CKR_DEVICE_ERROR),
        },
    };
    if let Some(short) = Out::short(done.ciphertext.len(), capacity) {
        session.encapsulated = Some(done);
        return Ok((short, None));
    }
    Ok((
        Out::Data(Zeroizing::new(done.ciphertext)),
        Some(done.new_key),
    ))
}

pub fn decapsulate_key(
    session: ck::CK_SESSION_HANDLE,
    mechanism: Mechanism,
    private: ck::CK_OBJECT_HANDLE,
    template: Vec<Attribute>,
    ciphertext: &[u8],
) -> CkResult<ck::CK_OBJECT_HANDLE> {
    let lib = library()?;
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    lib.mechanism(Function::C_DecapsulateKey, &mechanism, ck::CKF_DECAPSULATE)?;
    let key = lib.object(private, ck::CKR_KEY_HANDLE_INVALID)?;
    require_login(&lib)?;
    require_user_for(&lib, &key)?;
    if wants_token(&template) && !entry.rw {
        return Err(ck::CKR_SESSION_READ_ONLY);
    }
    match lib.call(
        Function::C_DecapsulateKey,
        Op::Decapsulate {
            mechanism,
            key,
            ciphertext: ciphertext.to_vec(),
            template,
        },
    )? {
        Reply::Object(object) => {
            session.owns(&object.handle);
            Ok(lib.handle(&object))
        }
        _ => Err(ck::CKR_DEVICE_ERROR),
    }
}
