//! The life of a cryptographic operation, shared by encryption, decryption, signing,
//! verification and digesting: one active per kind per session; `*Update` gathers
//! data; the output of the one call made is kept until a buffer big enough takes it;
//! any other error ends the operation.

use pkcs11_wire::{ck, Function, Mechanism};
use zeroize::Zeroizing;

use super::{mechanism_rules, CkResult, Out, MAX_DATA};
use crate::state::{Known, Library, Operation, Session};
use pkcs11_wire::{KeyClass, ObjectRef, UserType};

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Encrypt,
    Decrypt,
    Sign,
    Verify,
    Digest,
}

impl Kind {
    fn slot(self, session: &mut Session) -> &mut Option<Operation> {
        match self {
            Kind::Encrypt => &mut session.encrypt,
            Kind::Decrypt => &mut session.decrypt,
            Kind::Sign => &mut session.sign,
            Kind::Verify => &mut session.verify,
            Kind::Digest => &mut session.digest,
        }
    }

    fn flag(self) -> ck::CK_FLAGS {
        match self {
            Kind::Encrypt => ck::CKF_ENCRYPT,
            Kind::Decrypt => ck::CKF_DECRYPT,
            Kind::Sign => ck::CKF_SIGN,
            Kind::Verify => ck::CKF_VERIFY,
            Kind::Digest => ck::CKF_DIGEST,
        }
    }

    /// A public key neither signs nor decrypts, a private key neither verifies nor
    /// encrypts (their `CKA_SIGN`, `CKA_DECRYPT`, ... are false); an object that is not
    /// a key is no key handle. An object of unknown class is left to the daemon.
    fn check_key_class(self, key: &Known) -> CkResult<()> {
        let Some(class) = key.class else {
            return Ok(());
        };
        if !matches!(
            class,
            ck::CKO_PUBLIC_KEY | ck::CKO_PRIVATE_KEY | ck::CKO_SECRET_KEY
        ) {
            return Err(ck::CKR_KEY_HANDLE_INVALID);
        }
        let refused = match self {
            Kind::Sign | Kind::Decrypt => class == ck::CKO_PUBLIC_KEY,
            Kind::Verify | Kind::Encrypt => class == ck::CKO_PRIVATE_KEY,
            Kind::Digest => false,
        };
        if refused {
            return Err(ck::CKR_KEY_FUNCTION_NOT_PERMITTED);
        }
        Ok(())
    }

    fn init_function(self) -> Function {
        match self {
            Kind::Encrypt => Function::C_EncryptInit,
            Kind::Decrypt => Function::C_DecryptInit,
            Kind::Sign => Function::C_SignInit,
            Kind::Verify => Function::C_VerifyInit,
            Kind::Digest => Function::C_GetTokenInfo,
        }
    }
}

/// Starts an operation, or (no mechanism) ends the active one as PKCS#11 3.x allows.
/// With none active, the null mechanism still succeeds: 3.x defines only two outcomes
/// for it (the operation is terminated, or `CKR_OPERATION_CANCEL_FAILED` when it cannot
/// be), and there is nothing to fail to cancel.
///
/// Everything `*Init` must report is checked here without a call to the daemon: the
/// mechanism (the token's list), its parameter, the key's class and type (kept with its
/// handle) and the login.
pub fn init(
    lib: &Library,
    session: ck::CK_SESSION_HANDLE,
    kind: Kind,
    mechanism: Option<Mechanism>,
    key: Option<ck::CK_OBJECT_HANDLE>,
) -> CkResult<()> {
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    let slot = kind.slot(&mut session);
    let Some(mechanism) = mechanism else {
        *slot = None;
        return Ok(());
    };
    if slot.is_some() {
        return Err(ck::CKR_OPERATION_ACTIVE);
    }
    lib.mechanism(kind.init_function(), &mechanism, kind.flag())?;
    mechanism_rules::check_params(&mechanism)?;
    let key = match key {
        Some(handle) => {
            let key = lib.known(handle, ck::CKR_KEY_HANDLE_INVALID)?;
            kind.check_key_class(&key)?;
            require_user_for(lib, &key.object)?;
            mechanism_rules::check_key_type(&mechanism, key.key_type)?;
            Some(key.object)
        }
        None => None,
    };
    *slot = Some(Operation::new(mechanism, key));
    Ok(())
}

/// Private and secret keys are usable only by a logged-in user (not the SO).
pub fn require_user_for(lib: &Library, key: &ObjectRef) -> CkResult<()> {
    let private = matches!(
        key,
        ObjectRef::Key {
            class: KeyClass::Private | KeyClass::Secret,
            ..
        }
    );
    if private && lib.user() != Some(UserType::User) {
        return Err(ck::CKR_USER_NOT_LOGGED_IN);
    }
    Ok(())
}

/// Gathers data for `*Final`.
pub fn update(
    lib: &Library,
    session: ck::CK_SESSION_HANDLE,
    kind: Kind,
    data: &[u8],
) -> CkResult<()> {
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    let slot = kind.slot(&mut session);
    let op = slot.as_mut().ok_or(ck::CKR_OPERATION_NOT_INITIALIZED)?;
    if op.output.is_some() {
        return Err(ck::CKR_OPERATION_ACTIVE);
    }
    if op.data.len() + data.len() > MAX_DATA {
        *slot = None;
        return Err(ck::CKR_DATA_LEN_RANGE);
    }
    op.multipart = true;
    op.data.extend_from_slice(data);
    Ok(())
}

/// The single-part call (`data` given) or `*Final` (the gathered data): makes the call
/// once, then hands its output to the first buffer big enough.
pub fn finish(
    lib: &Library,
    session: ck::CK_SESSION_HANDLE,
    kind: Kind,
    data: Option<&[u8]>,
    capacity: Option<usize>,
    run: impl FnOnce(&Operation, Zeroizing<Vec<u8>>) -> CkResult<Zeroizing<Vec<u8>>>,
) -> CkResult<Out> {
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    let slot = kind.slot(&mut session);
    let op = slot.as_mut().ok_or(ck::CKR_OPERATION_NOT_INITIALIZED)?;
    let output = match op.output.take() {
        Some(output) => output,
        None => {
            let input = match data {
                Some(_) if op.multipart => return Err(ck::CKR_OPERATION_ACTIVE),
                Some(data) if data.len() > MAX_DATA => {
                    *slot = None;
                    return Err(ck::CKR_DATA_LEN_RANGE);
                }
                Some(data) => Zeroizing::new(data.to_vec()),
                None => std::mem::take(&mut op.data),
            };
            match run(op, input) {
                Ok(output) => output,
                Err(rv) => {
                    *slot = None;
                    return Err(rv);
                }
            }
        }
    };
    if let Some(short) = Out::short(output.len(), capacity) {
        op.output = Some(output);
        return Ok(short);
    }
    *slot = None;
    Ok(Out::Data(output))
}

/// `C_Verify` (`data` given) or `C_VerifyFinal`: always ends the operation.
pub fn verify(
    lib: &Library,
    session: ck::CK_SESSION_HANDLE,
    data: Option<&[u8]>,
    run: impl FnOnce(&Operation, Vec<u8>) -> CkResult<()>,
) -> CkResult<()> {
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    let op = session
        .verify
        .take()
        .ok_or(ck::CKR_OPERATION_NOT_INITIALIZED)?;
    let input = match data {
        Some(_) if op.multipart => {
            session.verify = Some(op);
            return Err(ck::CKR_OPERATION_ACTIVE);
        }
        Some(data) if data.len() > MAX_DATA => return Err(ck::CKR_DATA_LEN_RANGE),
        Some(data) => data.to_vec(),
        None => op.data.to_vec(),
    };
    run(&op, input)
}
