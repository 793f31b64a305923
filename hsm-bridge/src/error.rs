use thiserror::Error;

/// What can go wrong at the hardware boundary. Messages never carry key material.
#[derive(Debug, Error)]
pub enum BridgeError {
    #[error("the root key could not open the keyring: wrong unseal keys or a keyring from another appliance")]
    WrongRootKey,
    #[error("malformed unseal key: {0}")]
    MalformedShare(&'static str),
    #[error("invalid seal configuration: {0}")]
    InvalidConfig(String),
    #[error("the unseal keys do not combine into a root key")]
    CombineFailed,
    #[error("random number generator failed")]
    Random,
}
