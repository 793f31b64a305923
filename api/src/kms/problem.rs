//! RFC 9457 problem objects: `{"type","title","status","detail","code"}`, `code` stable.

use engine::managed_keys::KeyError;
use engine::{EngineError, ErrorKind, SealError};
use hyper::StatusCode;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub extra: Map<String, Value>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            code,
            detail: detail.into(),
            extra: Map::new(),
        }
    }

    pub fn bad(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    pub fn missing_scope(scope: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "MISSING_SCOPE",
            format!("this token does not have the {scope} scope"),
        )
        .with("scope", scope)
    }

    pub fn body(&self) -> Value {
        let mut v = json!({
            "type": format!(
                "https://ironseal.dev/problems/{}",
                self.code.to_ascii_lowercase().replace('_', "-")
            ),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let Value::Object(m) = &mut v {
            m.extend(self.extra.clone());
        }
        v
    }
}

/// The `/api/v1` mapper: a problem object with a stable code for each kind of engine
/// error; the key API tells a bad token (401) from a refusal (403).
impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Self {
        let code = match &e {
            EngineError::Key(k) => k.code(),
            EngineError::MissingScope(scope) => return Problem::missing_scope(scope),
            EngineError::AttenuationDenied { .. } => "ATTENUATION_DENIED",
            EngineError::AuditFailed => "AUDIT_FAILED",
            EngineError::NotInitialized => "NOT_INITIALIZED",
            EngineError::Overloaded(_) => "OVERLOADED",
            EngineError::Seal(hsm) => match (e.kind(), hsm) {
                (_, SealError::Random) => "INTERNAL",
                (ErrorKind::Unavailable, _) => "HSM_UNAVAILABLE",
                (ErrorKind::Internal, _) => "HSM_ERROR",
                _ => "UNSUPPORTED_OPERATION",
            },
            _ => match e.kind() {
                ErrorKind::InvalidInput => "INVALID_REQUEST",
                ErrorKind::NotFound => "NOT_FOUND",
                ErrorKind::Conflict => "CONFLICT",
                ErrorKind::Unauthenticated => "UNAUTHENTICATED",
                ErrorKind::Forbidden => "PERMISSION_DENIED",
                ErrorKind::Sealed => "SEALED",
                ErrorKind::Unavailable => "UNAVAILABLE",
                ErrorKind::LimitExceeded => "LIMIT_EXCEEDED",
                ErrorKind::Internal => "INTERNAL",
            },
        };
        let status = match e.kind() {
            // Well-formed, but the key's boundary cannot produce what the provider takes.
            ErrorKind::InvalidInput if code == "EXPORT_FORMAT_UNAVAILABLE" => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            // A cloud provider's refusal or failure: the gateway's upstream failed.
            ErrorKind::Unavailable if code == "PROVIDER_ERROR" => StatusCode::BAD_GATEWAY,
            ErrorKind::Sealed | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::LimitExceeded => match e {
                EngineError::Key(_) => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            },
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let detail = match (&e, e.kind()) {
            (_, ErrorKind::Sealed) => "the appliance is sealed".to_string(),
            (EngineError::NotInitialized, _) => "the appliance is not initialized".to_string(),
            (_, ErrorKind::Unauthenticated) => {
                "missing, invalid or expired token: send Authorization: Bearer <token>".to_string()
            }
            _ => e.public_message(),
        };
        Problem::new(status, code, detail)
    }
}

impl From<KeyError> for Problem {
    fn from(e: KeyError) -> Self {
        EngineError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(e: impl Into<Problem>) -> (u16, &'static str, String) {
        let p = e.into();
        (p.status.as_u16(), p.code, p.detail)
    }

    #[test]
    fn key_api_tells_bad_tokens_from_refusals() {
        assert_eq!(problem(EngineError::Unauthenticated).0, 401);
        assert_eq!(problem(EngineError::Unauthenticated).1, "UNAUTHENTICATED");
        let (status, code, _) = problem(EngineError::MissingScope("keys:use"));
        assert_eq!((status, code), (403, "MISSING_SCOPE"));
        let (status, code, detail) = problem(EngineError::AttenuationDenied {
            operation: "use",
            key: Some("k1".into()),
        });
        assert_eq!((status, code), (403, "ATTENUATION_DENIED"));
        assert!(detail.contains("\"k1\""), "{detail}");
    }

    #[test]
    fn key_errors_keep_their_codes() {
        assert_eq!(
            problem(KeyError::NotFound("x".into())),
            (404, "KEY_NOT_FOUND", "no key with id x".to_string())
        );
        assert_eq!(problem(KeyError::NameTaken("a".into())).0, 409);
        assert_eq!(
            problem(KeyError::Provider("AccessDeniedException: no".into())),
            (
                502,
                "PROVIDER_ERROR",
                "AccessDeniedException: no".to_string()
            )
        );
        assert_eq!(
            problem(KeyError::ExportFormatUnavailable(
                "CKM_AES_KEY_WRAP_PAD is not RFC 5649".into()
            )),
            (
                422,
                "EXPORT_FORMAT_UNAVAILABLE",
                "CKM_AES_KEY_WRAP_PAD is not RFC 5649".to_string()
            )
        );
        assert_eq!(problem(KeyError::NoSavedCredentials("e".into())).0, 409);
        assert_eq!(
            problem(KeyError::ExportNotFound {
                key: "k".into(),
                export: "e".into()
            })
            .1,
            "EXPORT_NOT_FOUND"
        );
        assert_eq!(problem(KeyError::TooLarge("big".into())).0, 413);
        assert_eq!(problem(KeyError::Engine(EngineError::Sealed)).1, "SEALED");
        assert_eq!(problem(EngineError::Overloaded("busy".into())).0, 503);
        let (status, code, detail) = problem(EngineError::internal("secret detail"));
        assert_eq!(
            (status, code, detail.as_str()),
            (500, "INTERNAL", "internal error")
        );
    }
}
