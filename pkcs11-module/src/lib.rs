//! The wire format between `libironseal_pkcs11.so` and the daemon's PKCS#11 RPC listener.
//!
//! Kept in its own small crate so the PKCS#11 library depends on nothing else of the
//! appliance. Empty until the PKCS#11 work lands; the `cdylib` itself will sit beside it.

#![forbid(unsafe_code)]
