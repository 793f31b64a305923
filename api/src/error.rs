use engine::{EngineError, ErrorKind};
use hyper::StatusCode;
use serde_json::{json, Value};

/// An error on its way to becoming a Vault-style `{"errors": [...]}` response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<String>,
    /// Vault answers some 404s with a body (a deleted kv version's metadata).
    pub body: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError {
            status,
            errors: vec![msg.into()],
            body: None,
        }
    }

    pub fn bad(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }

    pub fn not_found_empty() -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            errors: vec![],
            body: None,
        }
    }

    pub fn unsupported_path(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("no handler for route \"{path}\". route entry not found."),
        )
    }

    pub fn unsupported_operation() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "1 error occurred:\n\t* unsupported operation\n\n",
        )
    }

    pub fn permission_denied() -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission denied")
    }

    pub fn body_json(&self) -> Value {
        match &self.body {
            Some(b) => b.clone(),
            None => json!({ "errors": self.errors }),
        }
    }
}

impl From<engine::transit::TransitError> for ApiError {
    fn from(e: engine::transit::TransitError) -> Self {
        EngineError::from(e).into()
    }
}

/// The `/v1` mapper: Vault's status codes and texts for each kind of engine error.
impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NoRoute(path) => return Self::unsupported_path(&path),
            EngineError::UnsupportedOperation => return Self::unsupported_operation(),
            EngineError::NoWrappingToken(_) => {
                return Self::new(StatusCode::FORBIDDEN, e.to_string())
            }
            EngineError::NotInitialized | EngineError::AlreadyInitialized => {
                return Self::bad(e.to_string())
            }
            // As Vault's rate-limit quotas answer.
            EngineError::TooManyAttempts { .. } => {
                return Self::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            }
            // OpenBao answers a method's refusal to renew as a failed request.
            EngineError::RenewalRefused(_) => {
                return Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            EngineError::AuditFailed => {
                return Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error: the request could not be audited",
                )
            }
            _ => {}
        }
        match e.kind() {
            ErrorKind::Sealed => Self::new(StatusCode::SERVICE_UNAVAILABLE, "Vault is sealed"),
            // Vault answers a bad token and a refusal alike.
            ErrorKind::Unauthenticated | ErrorKind::Forbidden => Self::permission_denied(),
            ErrorKind::NotFound => Self::not_found_empty(),
            ErrorKind::InvalidInput | ErrorKind::Conflict => Self::bad(e.public_message()),
            ErrorKind::Unavailable | ErrorKind::LimitExceeded => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, e.public_message())
            }
            ErrorKind::Internal => Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.public_message()),
        }
    }
}

/// Decoding errors of request fields, reported by the engine once the caller is
/// authorised (`engine::ops::Decoded`).
impl From<ApiError> for EngineError {
    fn from(e: ApiError) -> Self {
        EngineError::BadRequest(e.errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: EngineError) -> (u16, Vec<String>) {
        let a = ApiError::from(e);
        (a.status.as_u16(), a.errors)
    }

    #[test]
    fn vault_answers_each_kind_as_vault_does() {
        assert_eq!(
            status(EngineError::Sealed),
            (503, vec!["Vault is sealed".into()])
        );
        // A bad token and a refusal look alike on /v1.
        assert_eq!(
            status(EngineError::Unauthenticated),
            (403, vec!["permission denied".into()])
        );
        assert_eq!(
            status(EngineError::Forbidden),
            (403, vec!["permission denied".into()])
        );
        assert_eq!(status(EngineError::NotFound("x".into())), (404, vec![]));
        assert_eq!(
            status(EngineError::NoRoute("nope/x".into())),
            (
                404,
                vec!["no handler for route \"nope/x\". route entry not found.".into()]
            )
        );
        assert_eq!(status(EngineError::UnsupportedOperation).0, 405);
        assert_eq!(
            status(EngineError::bad("bad field")),
            (400, vec!["bad field".into()])
        );
        assert_eq!(status(EngineError::NotInitialized).0, 400);
        assert_eq!(status(EngineError::Overloaded("busy".into())).0, 503);
        assert_eq!(status(EngineError::AuditFailed).0, 500);
    }

    #[test]
    fn internal_details_stay_in_the_log() {
        let (code, errors) = status(EngineError::internal("disk /var/lib/x exploded"));
        assert_eq!(code, 500);
        assert_eq!(errors, vec!["internal error".to_string()]);
        let (code, errors) = status(EngineError::Corrupt("secret/path".into()));
        assert_eq!((code, errors), (500, vec!["internal error".to_string()]));
    }

    #[test]
    fn unreachable_storage_is_unavailable_and_keeps_its_cause_in_the_log() {
        use engine::storage::StorageError;
        let cause = || -> Box<dyn std::error::Error + Send + Sync> {
            "connect to 127.0.0.1:5432 (password pw-1234): connection refused".into()
        };
        let unreachable = || StorageError::Unreachable {
            backend: "postgresql",
            context: "connecting to PostgreSQL",
            source: cause(),
        };
        let words = "the postgresql storage is unreachable: the server refused or dropped the \
                     connection while connecting to PostgreSQL; nothing was written, try again \
                     later";
        for e in [
            unreachable(),
            StorageError::Commit(std::sync::Arc::new(unreachable())),
        ] {
            assert_eq!(status(EngineError::Storage(e)), (503, vec![words.into()]));
        }
        // A failure that is not the server's absence stays an internal error.
        let failed = StorageError::Remote {
            backend: "postgresql",
            context: "writing to PostgreSQL",
            source: cause(),
        };
        assert_eq!(
            status(EngineError::Storage(failed)),
            (500, vec!["internal error".into()])
        );
    }
}
