//! The PKCS#11 mapper: the `CK_RV` a library caller receives for each kind of engine
//! error, the third edge beside Vault's status codes and the key API's problems.

use engine::managed_keys::KeyError;
use engine::pkcs11::code;
use engine::{EngineError, ErrorKind};
use pkcs11_wire::ck::*;

/// The return value a refusal of the PKCS#11 object model names.
fn coded(name: &str) -> Option<CK_RV> {
    Some(match name {
        code::ATTRIBUTE_TYPE_INVALID => CKR_ATTRIBUTE_TYPE_INVALID,
        // A label that is not a valid key name, or a name another key has.
        code::ATTRIBUTE_VALUE_INVALID | "INVALID_NAME" | "INVALID_LABELS" => {
            CKR_ATTRIBUTE_VALUE_INVALID
        }
        code::ATTRIBUTE_READ_ONLY => CKR_ATTRIBUTE_READ_ONLY,
        code::TEMPLATE_INCOMPLETE => CKR_TEMPLATE_INCOMPLETE,
        code::TEMPLATE_INCONSISTENT => CKR_TEMPLATE_INCONSISTENT,
        code::MECHANISM_INVALID => CKR_MECHANISM_INVALID,
        code::MECHANISM_PARAM_INVALID => CKR_MECHANISM_PARAM_INVALID,
        code::KEY_TYPE_INCONSISTENT => CKR_KEY_TYPE_INCONSISTENT,
        code::KEY_FUNCTION_NOT_PERMITTED => CKR_KEY_FUNCTION_NOT_PERMITTED,
        code::KEY_UNEXTRACTABLE => CKR_KEY_UNEXTRACTABLE,
        code::KEY_NOT_WRAPPABLE => CKR_KEY_NOT_WRAPPABLE,
        code::KEY_SIZE_RANGE => CKR_KEY_SIZE_RANGE,
        code::ACTION_PROHIBITED => CKR_ACTION_PROHIBITED,
        code::DATA_LEN_RANGE => CKR_DATA_LEN_RANGE,
        code::PIN_INCORRECT => CKR_PIN_INCORRECT,
        code::FUNCTION_NOT_SUPPORTED => CKR_FUNCTION_NOT_SUPPORTED,
        code::WRAPPED_KEY_INVALID => CKR_WRAPPED_KEY_INVALID,
        code::WRAPPED_KEY_LEN_RANGE => CKR_WRAPPED_KEY_LEN_RANGE,
        // What the managed keys' scheme code answers for input that does not fit the
        // mechanism.
        "DATA_TOO_LONG" | "INVALID_DIGEST_LENGTH" => CKR_DATA_LEN_RANGE,
        "INVALID_MECHANISM_PARAMETERS" | "INVALID_IV" | "INVALID_CONTEXT" => {
            CKR_MECHANISM_PARAM_INVALID
        }
        // Raised for ciphertexts too short or of a length the mechanism cannot have;
        // a ciphertext that fails to decrypt is DECRYPTION_FAILED.
        "INVALID_CIPHERTEXT" => CKR_ENCRYPTED_DATA_LEN_RANGE,
        // The public key of the object used is not one the mechanism can use: the
        // object's fault, not the call's arguments.
        "INVALID_PUBLIC_KEY" => CKR_KEY_TYPE_INCONSISTENT,
        _ => return None,
    })
}

pub fn return_value(e: &EngineError) -> CK_RV {
    if matches!(e, EngineError::UnsupportedOperation) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if let EngineError::Key(k) = e {
        if let Some(rv) = match k.as_ref() {
            KeyError::Invalid { code, .. } => coded(code),
            _ => None,
        } {
            return rv;
        }
        match k.as_ref() {
            KeyError::NameTaken(_) => return CKR_ATTRIBUTE_VALUE_INVALID,
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

    fn scheme_error(code: &'static str) -> CK_RV {
        return_value(&EngineError::from(KeyError::invalid(code, "x")))
    }

    #[test]
    fn data_too_long_is_data_len_range() {
        assert_eq!(scheme_error("DATA_TOO_LONG"), CKR_DATA_LEN_RANGE);
    }

    #[test]
    fn a_digest_of_the_wrong_length_is_data_len_range() {
        assert_eq!(scheme_error("INVALID_DIGEST_LENGTH"), CKR_DATA_LEN_RANGE);
    }

    #[test]
    fn invalid_mechanism_parameters_are_mechanism_param_invalid() {
        assert_eq!(
            scheme_error("INVALID_MECHANISM_PARAMETERS"),
            CKR_MECHANISM_PARAM_INVALID
        );
    }

    #[test]
    fn an_invalid_iv_is_mechanism_param_invalid() {
        assert_eq!(scheme_error("INVALID_IV"), CKR_MECHANISM_PARAM_INVALID);
    }

    #[test]
    fn an_invalid_context_is_mechanism_param_invalid() {
        assert_eq!(scheme_error("INVALID_CONTEXT"), CKR_MECHANISM_PARAM_INVALID);
    }

    #[test]
    fn an_invalid_ciphertext_is_encrypted_data_len_range() {
        assert_eq!(
            scheme_error("INVALID_CIPHERTEXT"),
            CKR_ENCRYPTED_DATA_LEN_RANGE
        );
    }

    #[test]
    fn an_invalid_public_key_is_key_type_inconsistent() {
        assert_eq!(
            scheme_error("INVALID_PUBLIC_KEY"),
            CKR_KEY_TYPE_INCONSISTENT
        );
    }

    #[test]
    fn wrapped_key_refusals_keep_their_names() {
        let r = |c| return_value(&engine::pkcs11::refuse(c, "x"));
        assert_eq!(r(code::WRAPPED_KEY_INVALID), CKR_WRAPPED_KEY_INVALID);
        assert_eq!(r(code::WRAPPED_KEY_LEN_RANGE), CKR_WRAPPED_KEY_LEN_RANGE);
    }

    #[test]
    fn the_object_model_refusals_keep_their_names() {
        let r = |c| return_value(&engine::pkcs11::refuse(c, "x"));
        assert_eq!(r(code::TEMPLATE_INCOMPLETE), CKR_TEMPLATE_INCOMPLETE);
        assert_eq!(r(code::TEMPLATE_INCONSISTENT), CKR_TEMPLATE_INCONSISTENT);
        assert_eq!(r(code::ATTRIBUTE_TYPE_INVALID), CKR_ATTRIBUTE_TYPE_INVALID);
        assert_eq!(
            r(code::ATTRIBUTE_VALUE_INVALID),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
        assert_eq!(r(code::MECHANISM_INVALID), CKR_MECHANISM_INVALID);
        assert_eq!(
            r(code::MECHANISM_PARAM_INVALID),
            CKR_MECHANISM_PARAM_INVALID
        );
        assert_eq!(r(code::KEY_UNEXTRACTABLE), CKR_KEY_UNEXTRACTABLE);
        assert_eq!(
            return_value(&EngineError::from(KeyError::NameTaken("k".into()))),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
    }
}
