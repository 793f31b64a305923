//! Ironseal's HTTP surface. `/v1` speaks Vault's API: each path family has its own file
//! under `vault/`, a thin handler that parses the request, calls the engine and shapes the
//! answer as Vault does. `/api/v1`, the key API for managed keys, lives under `kms/`.
//! Status codes are decided here and nowhere else.

#![forbid(unsafe_code)]

pub mod budget;
mod conn;
mod console;
mod error;
#[cfg(fuzzing)]
pub mod fuzzing;
mod host_info;
mod kms;
pub mod limits;
mod metrics;
mod openapi;
pub mod pkcs11;
pub mod private_dir;
mod request;
mod response;
pub mod server;
pub mod tls;
mod vault;

pub use error::ApiError;
pub use limits::Limits;
pub use server::{serve, Listener};

/// Vault's limit on request bodies.
pub const MAX_BODY: usize = 32 << 20;
