//! The PKCS#11 door's side in the daemon. Its listener decodes wire frames into engine
//! operations as the HTTP doors do; what it answers for an engine error is decided here
//! and only here.

mod decode;
pub mod dispatch;
mod encode;
mod rv;
#[cfg(test)]
mod tests;

pub use rv::return_value;
