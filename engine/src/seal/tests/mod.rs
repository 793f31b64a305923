//! The seal lifecycle against software and fake hardware seals, inside the crate: the
//! lifecycle methods are the engine's own, reached from outside only through operations.

mod hardware;
mod init_retry;
mod rotate;
