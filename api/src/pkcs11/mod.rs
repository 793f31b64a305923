//! The PKCS#11 door's side in the daemon. Its listener decodes wire frames into engine
//! operations as the HTTP doors do; what it answers for an engine error is decided here
//! and only here.

mod decode;
pub mod dispatch;
mod encode;
pub mod listener;
mod login_limit;
pub mod pins;
mod rv;
pub mod socket;
#[cfg(test)]
mod tests;
pub mod tls;

pub use listener::{serve, Options, Pkcs11Listener};
pub use rv::return_value;
