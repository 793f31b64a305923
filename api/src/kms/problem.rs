//! RFC 9457 problem objects: `{"type","title","status","detail","code"}`, `code` stable.

use engine::managed_keys::KeyError;
use engine::EngineError;
use hyper::StatusCode;
use serde_json::{json, Map, Value};

#[derive(Debug)]
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

impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Sealed => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SEALED",
                "the appliance is sealed",
            ),
            EngineError::NotInitialized => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NOT_INITIALIZED",
                "the appliance is not initialized",
            ),
            EngineError::PermissionDenied => Problem::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "missing, invalid or expired token: send Authorization: Bearer <token>",
            ),
            EngineError::BadRequest(m) => Problem::bad("INVALID_REQUEST", m),
            EngineError::Overloaded(m) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED", m)
            }
            EngineError::NotFound(m) => Problem::new(StatusCode::NOT_FOUND, "NOT_FOUND", m),
            EngineError::Seal(
                ref b @ (hsm_bridge::BridgeError::Unavailable { .. }
                | hsm_bridge::BridgeError::Refused { .. }
                | hsm_bridge::BridgeError::PolicyMismatch { .. }),
            ) => {
                tracing::warn!(error = %b, "seal device unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "HSM_UNAVAILABLE",
                    b.public_message(),
                )
            }
            EngineError::Seal(hsm_bridge::BridgeError::Unsupported { .. }) => {
                Problem::bad("UNSUPPORTED_OPERATION", e.to_string())
            }
            EngineError::Seal(ref b @ hsm_bridge::BridgeError::Device { .. }) => {
                tracing::error!(error = %b, "HSM operation failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "HSM_ERROR",
                    b.public_message(),
                )
            }
            other => {
                // Details go to the log, never to the client.
                tracing::error!(error = %other, "internal error");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL",
                    "internal error",
                )
            }
        }
    }
}

impl From<KeyError> for Problem {
    fn from(e: KeyError) -> Self {
        if let KeyError::Engine(inner) = e {
            return inner.into();
        }
        let status = match &e {
            KeyError::NotFound(_) | KeyError::VersionNotFound { .. } => StatusCode::NOT_FOUND,
            KeyError::NameTaken(_)
            | KeyError::VersionDisabled { .. }
            | KeyError::PendingDestruction(_)
            | KeyError::NotPendingDestruction(_) => StatusCode::CONFLICT,
            KeyError::Invalid { .. } | KeyError::WrongKeyType(_) => StatusCode::BAD_REQUEST,
            KeyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            KeyError::Engine(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Problem::new(status, e.code(), e.to_string())
    }
}
