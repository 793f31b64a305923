//! What `sys/seal-status` says about a seal that will not open. Anyone can read
//! seal-status, so it shows only a fixed category (`hsm_pin_incorrect`,
//! `hsm_unreachable`, `device_mismatch`, ...); the device's own words, the module path and
//! the token label go to the log and to callers with `sudo` on `sys/seal-status`.

use serde::Serialize;

use crate::error::EngineError;

/// One reason the hardware seal did not open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealErrorReport {
    /// The fixed category shown to everyone.
    pub category: &'static str,
    /// The full message (module path, token label, the device's error); never a PIN.
    pub message: String,
    /// Where the device is, as its configuration names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// When it was seen (RFC 3339).
    pub time: String,
}

impl SealErrorReport {
    pub fn new(category: &'static str, message: String, device: Option<String>) -> Self {
        SealErrorReport {
            category,
            message,
            device,
            time: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    }

    pub fn from_error(e: &EngineError, device: Option<String>) -> Self {
        Self::new(category(e), e.to_string(), device)
    }
}

/// The category of an error that kept the appliance sealed.
pub fn category(e: &EngineError) -> &'static str {
    match e {
        EngineError::Seal(b) => b.category(),
        EngineError::Storage(_) => "storage_error",
        EngineError::Corrupt(_) => "storage_corrupt",
        EngineError::NotInitialized => "not_initialized",
        _ => "seal_error",
    }
}
