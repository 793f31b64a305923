//! What the appliance knows, without HTTP: the barrier and storage beneath it, the seal
//! lifecycle, tokens and policies, and the secrets engines. Handlers in `api` call in with
//! typed requests and map the typed errors back to status codes.

// Starting the FoundationDB client's network thread takes one `unsafe` call (the
// `foundationdb` crate's `boot`, allowed on that one function); all else stays safe.
#![cfg_attr(not(feature = "fdb"), forbid(unsafe_code))]
#![cfg_attr(feature = "fdb", deny(unsafe_code))]

pub mod audit;
pub mod auth;
pub mod barrier;
mod bounded_cache;
pub mod cloud_exports;
pub mod compute;
pub mod core;
pub(crate) mod crypto;
pub mod duration;
pub mod error;
pub mod failpoint;
pub mod hcl_bounds;
pub mod kv;
pub mod lease;
pub mod managed_keys;
pub mod mounts;
pub mod ops;
pub mod periodic;
pub mod pkcs11;
pub mod policy;
pub mod request_values;
pub mod seal;
pub mod storage;
pub mod token;
pub mod transit;

pub use crate::core::{Core, Seals, Settings};
pub use crate::crypto::constant_time_eq;
pub use crate::error::{EngineError, ErrorKind, Result};
pub use crate::seal::{generate_root, report as seal_report, rotate};
pub use crate::seal::{InitRequest, InitResult, Migration, SealStatus, UnsealShare, UnsealStep};
/// What the front doors need of the hardware boundary, so that none depends on it.
pub use hsm_bridge::{BridgeError as SealError, PcrTarget, SealPolicyReport};
