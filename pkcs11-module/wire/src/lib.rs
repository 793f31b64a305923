//! The wire format between `libironseal_pkcs11.so` and the daemon's PKCS#11 listener.
//!
//! Kept in its own small crate so the PKCS#11 library depends on nothing else of the
//! appliance. A connection carries length-prefixed `postcard` frames: the library opens
//! with a [`Hello`], the daemon answers [`Reply::Welcome`] (or an error), then every [`Call`] gets exactly
//! one [`Reply`], in order. Calls are self-contained (each carries the PIN the
//! application logged in with), so any connection of a library instance can carry any
//! call, a lost connection is simply reopened, and the daemon keeps no login state.
//!
//! The vocabulary is PKCS#11's own (attribute, mechanism and return-value numbers of the
//! 3.2 specification) so that the library passes an application's values through without
//! a second naming; what each value means to the appliance is decided in the daemon.

#![forbid(unsafe_code)]

pub mod call;
pub mod frame;
pub mod rules;
pub mod types;

/// PKCS#11's own numbers (3.2 headers): both sides name attributes, mechanisms and return
/// values from here.
pub use cryptoki_sys as ck;

pub use call::{Call, Function, Hello, Op, Reply, UserType, Welcome};
pub use frame::{FrameError, MAX_FRAME};
pub use types::{
    AttrValue, Attribute, KeyClass, Mechanism, MechanismInfo, Object, ObjectRef, Params, TokenInfo,
};

/// The protocol version both sides speak. A daemon answers a [`Hello`] of another version
/// with `CKR_DEVICE_ERROR` and the versions it speaks in the message.
pub const PROTOCOL_VERSION: u16 = 1;
