use engine::EngineError;
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

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Sealed => Self::new(StatusCode::SERVICE_UNAVAILABLE, "Vault is sealed"),
            EngineError::NotInitialized => Self::bad("Vault is not initialized"),
            EngineError::AlreadyInitialized => Self::bad("Vault is already initialized"),
            EngineError::PermissionDenied => Self::permission_denied(),
            EngineError::BadRequest(m) => Self::bad(m),
            EngineError::NotFound(_) => Self::not_found_empty(),
            EngineError::NotFoundWithData(v) => ApiError {
                status: StatusCode::NOT_FOUND,
                errors: vec![],
                body: Some(v),
            },
            EngineError::UnsupportedPath => Self::new(StatusCode::NOT_FOUND, "unsupported path"),
            EngineError::UnsupportedOperation => Self::unsupported_operation(),
            EngineError::Overloaded(m) => Self::new(StatusCode::SERVICE_UNAVAILABLE, m),
            EngineError::Seal(b) => match b {
                hsm_bridge::BridgeError::MalformedShare(_)
                | hsm_bridge::BridgeError::InvalidConfig(_) => Self::bad(b.to_string()),
                hsm_bridge::BridgeError::WrongRootKey | hsm_bridge::BridgeError::CombineFailed => {
                    Self::bad(b.to_string())
                }
                hsm_bridge::BridgeError::ForeignKeyring(_) => Self::bad(b.to_string()),
                // The device's own words go to the log only (see `public_message`).
                hsm_bridge::BridgeError::Unavailable { .. }
                | hsm_bridge::BridgeError::Refused { .. }
                | hsm_bridge::BridgeError::PolicyMismatch { .. } => {
                    tracing::warn!(error = %b, "seal device unavailable");
                    Self::new(StatusCode::SERVICE_UNAVAILABLE, b.public_message())
                }
                hsm_bridge::BridgeError::Device { .. } => {
                    tracing::error!(error = %b, "seal failure");
                    Self::new(StatusCode::INTERNAL_SERVER_ERROR, b.public_message())
                }
                hsm_bridge::BridgeError::Unsupported { .. }
                | hsm_bridge::BridgeError::BadInput(_) => Self::bad(b.to_string()),
                hsm_bridge::BridgeError::Random => {
                    tracing::error!(error = %b, "seal failure");
                    Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                }
            },
            e @ (EngineError::Corrupt(_) | EngineError::Storage(_) | EngineError::Internal(_)) => {
                // Details go to the log, never to the client.
                tracing::error!(error = %e, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}
