//! `libironseal_pkcs11.so`: the appliance's PKCS#11 library. Every function that needs
//! the appliance becomes one call on the wire (see `pkcs11_wire`); `unsafe` lives only in
//! the layer that turns the application's pointers into safe values and back.
//!
//! Layout, by the specification's chapters: [`ffi`] (pointers, function tables, the
//! exported `C_*` symbols), [`fns`] (each chapter in safe Rust), [`client`] (reaching the
//! daemon) and [`state`] (what one `C_Initialize` holds).
//!
//! Where the daemon is, read at `C_Initialize`:
//! - `IRONSEAL_PKCS11_CONF`: a file of `key = value` lines (`#` starts a comment):
//!   `socket` (a Unix socket path) or `address` (`host:port`, mutual TLS, with
//!   `ca_file`, `cert_file`, `key_file` and optionally `server_name`), and optionally
//!   `token_label`. Any other key fails `C_Initialize` with `CKR_GENERAL_ERROR` and a
//!   message on stderr.
//! - else `IRONSEAL_PKCS11_SOCKET`, a Unix socket path;
//! - else `/run/ironseal/pkcs11.sock`.
//!
//! `IRONSEAL_PKCS11_DEBUG=1` prints the daemon's reason for each failed call on stderr.

#![deny(unsafe_code)]

pub mod client;
#[allow(unsafe_code)]
pub mod ffi;
pub mod fns;
pub mod state;

pub use ffi::entry::*;
