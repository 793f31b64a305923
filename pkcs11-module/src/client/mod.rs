//! The library's side of the wire: configuration, connections, and a pool so calls from
//! many threads run in parallel.

pub mod config;
mod pool;
mod transport;

use pkcs11_wire::{ck, FrameError};

pub use config::{Config, ConfigError, Target};
pub use pool::Client;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection could be made, or the daemon dropped one before the call was sent.
    #[error("daemon unreachable: {0}")]
    Unreachable(String),
    /// The call was sent but no reply came back: it may or may not have run.
    #[error("connection lost after the call was sent: {0}")]
    Lost(String),
    #[error("the daemon refused the connection: {0}")]
    Refused(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("TLS: {0}")]
    Tls(String),
}

impl ClientError {
    fn unreachable(e: FrameError) -> ClientError {
        ClientError::Unreachable(e.to_string())
    }

    /// What the application sees.
    pub fn rv(&self) -> ck::CK_RV {
        match self {
            ClientError::Unreachable(_) | ClientError::Tls(_) => ck::CKR_DEVICE_REMOVED,
            ClientError::Lost(_) | ClientError::Refused(_) | ClientError::Protocol(_) => {
                ck::CKR_DEVICE_ERROR
            }
        }
    }
}
