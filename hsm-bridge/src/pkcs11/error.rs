//! What cryptoki's errors become at the boundary: the seal's own error kinds, with the
//! `CKR_*` name rather than the spec's prose, and which errors a fresh session may cure.

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

use crate::{BridgeError, SealFault, SealKind};

pub(super) fn unavailable(message: impl Into<String>) -> BridgeError {
    BridgeError::Unavailable {
        kind: SealKind::Pkcs11,
        message: message.into(),
    }
}

pub(super) fn refused(fault: SealFault, message: impl Into<String>) -> BridgeError {
    BridgeError::Refused {
        kind: SealKind::Pkcs11,
        fault,
        message: message.into(),
    }
}

/// A failed call: the token being gone (its session lost and not restored) is the device
/// being unavailable, which a caller may retry; anything else is the operation failing.
pub(super) fn device(op: &str, e: CkError) -> BridgeError {
    if session_lost(&e) {
        return unavailable(format!(
            "{op}: {}: the HSM token's session was lost and could not be restored; the next request reconnects",
            describe(&e)
        ));
    }
    BridgeError::Device {
        kind: SealKind::Pkcs11,
        message: format!("{op}: {}", describe(&e)),
    }
}

pub(super) fn unsupported(op: &'static str) -> BridgeError {
    BridgeError::Unsupported {
        kind: SealKind::Pkcs11,
        op,
    }
}

/// A short description of a cryptoki error: the CKR name rather than the spec's prose.
pub(super) fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, func) => format!("{func:?} returned CKR_{}", rv_name(*rv)),
        other => other.to_string(),
    }
}

pub(super) fn rv_name(rv: RvError) -> String {
    // `RvError`'s Debug is CamelCase (`PinIncorrect`): make it the CKR_ spelling.
    let camel = format!("{rv:?}");
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Errors after which the session (or the whole login) is gone and a fresh one may work.
pub(super) fn session_lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn
                | RvError::CryptokiNotInitialized
                | RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid
                | RvError::WrappingKeyHandleInvalid
                | RvError::UnwrappingKeyHandleInvalid
                | RvError::DeviceMemory,
            _
        )
    )
}

/// `e`, from a step of restoring a lost session, as the token being gone whatever the
/// module answered (SoftHSM2 says CKR_GENERAL_ERROR to some calls while its token files
/// are away): the module's own words go to the log.
pub(super) fn token_gone(step: &str, e: CkError) -> CkError {
    tracing::warn!(error = %describe(&e), "the HSM token is unusable: {step} failed");
    match e {
        e if session_lost(&e) => e,
        CkError::Pkcs11(_, function) => CkError::Pkcs11(RvError::TokenNotPresent, function),
        _ => CkError::Pkcs11(RvError::TokenNotPresent, Function::OpenSession),
    }
}
