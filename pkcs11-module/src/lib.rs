//! `libironseal_pkcs11.so`: the appliance's PKCS#11 library. Every function that needs
//! the appliance becomes one call on the wire (see `pkcs11_wire`); `unsafe` lives only in
//! the layer that turns the application's pointers into safe values and back.

#![deny(unsafe_code)]

pub mod client;
#[allow(unsafe_code)]
pub mod ffi;
pub mod fns;
pub mod state;

pub use ffi::entry::*;
