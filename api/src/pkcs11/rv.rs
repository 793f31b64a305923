//! The PKCS#11 mapper: the `CK_RV` a library caller receives for each kind of engine
//! error, the third edge beside Vault's status codes and the key API's problems.

use engine::managed_keys::KeyError;
use engine::{EngineError, ErrorKind};
use pkcs11_wire::ck::*;

pub fn return_value(e: &EngineError) -> CK_RV {
    if let EngineError::Key(k) = e {
        match k.as_ref() {
            KeyError::WrongKeyType(_) => return CKR_KEY_TYPE_INCONSISTENT,
            KeyError::VersionDisabled { .. } | KeyError::PendingDestruction(_) => {
                return CKR_KEY_FUNCTION_NOT_PERMITTED
            }
            KeyError::Invalid {
                code: "DECRYPTION_FAILED",
                ..
            } => return CKR_ENCRYPTED_DATA_INVALID,
            KeyError::TooLarge(_) => return CKR_DATA_LEN_RANGE,
            KeyError::Unsupported(_) => return CKR_MECHANISM_INVALID,
            _ => {}
        }
    }
    match e.kind() {
        ErrorKind::InvalidInput => CKR_ARGUMENTS_BAD,
        ErrorKind::NotFound => CKR_OBJECT_HANDLE_INVALID,
        ErrorKind::Conflict => CKR_FUNCTION_FAILED,
        ErrorKind::Unauthenticated => CKR_USER_NOT_LOGGED_IN,
        ErrorKind::Forbidden => CKR_ACTION_PROHIBITED,
        // A sealed appliance holds no usable keys: to the library, the token is gone.
        ErrorKind::Sealed => CKR_TOKEN_NOT_PRESENT,
        ErrorKind::Unavailable => CKR_DEVICE_REMOVED,
        ErrorKind::LimitExceeded => CKR_DEVICE_MEMORY,
        ErrorKind::Internal => {
            // The caller gets the code only; the detail goes to the log.
            tracing::error!(error = %e, "internal error");
            CKR_DEVICE_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_return_value() {
        assert_eq!(return_value(&EngineError::Sealed), CKR_TOKEN_NOT_PRESENT);
        assert_eq!(
            return_value(&EngineError::Unauthenticated),
            CKR_USER_NOT_LOGGED_IN
        );
        assert_eq!(return_value(&EngineError::Forbidden), CKR_ACTION_PROHIBITED);
        assert_eq!(
            return_value(&EngineError::MissingScope("keys:use")),
            CKR_ACTION_PROHIBITED
        );
        assert_eq!(return_value(&EngineError::bad("x")), CKR_ARGUMENTS_BAD);
        assert_eq!(
            return_value(&EngineError::internal("detail")),
            CKR_DEVICE_ERROR
        );
        assert_eq!(
            return_value(&EngineError::from(KeyError::NotFound("k".into()))),
            CKR_OBJECT_HANDLE_INVALID
        );
        assert_eq!(
            return_value(&EngineError::from(KeyError::VersionDisabled {
                key: "k".into(),
                version: 1
            })),
            CKR_KEY_FUNCTION_NOT_PERMITTED
        );
        assert_eq!(
            return_value(&EngineError::from(KeyError::invalid(
                "DECRYPTION_FAILED",
                "no"
            ))),
            CKR_ENCRYPTED_DATA_INVALID
        );
    }
}
