//! Randomness for keys and nonces.
//!
//! The OS RNG is the base; hardware backends mix their own RNG output into it (see the
//! hardware backends), so a broken device RNG can never make the result weaker than the OS.

use rand::RngCore;

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    rand::rngs::OsRng.fill_bytes(buf);
}
