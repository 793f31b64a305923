//! Randomness for keys and nonces.
//!
//! The OS RNG is the base of every draw. When a hardware seal is open it feeds bytes from
//! its own RNG (`C_GenerateRandom`, `TPM2_GetRandom`) into a ChaCha stream that is XORed
//! over the OS bytes, so the result is never weaker than the OS RNG, and a weak OS RNG is
//! strengthened by the device. The stream is reseeded (hardware bytes XOR fresh OS bytes)
//! each time the device contributes.

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use zeroize::Zeroizing;

static HARDWARE_STREAM: Mutex<Option<StdRng>> = Mutex::new(None);

/// Fills `buf` from the OS CSPRNG, mixed with the hardware stream when one is seeded.
pub fn fill_random(buf: &mut [u8]) {
    rand::rngs::OsRng.fill_bytes(buf);
    if let Some(rng) = HARDWARE_STREAM.lock().as_mut() {
        let mut extra = Zeroizing::new(vec![0u8; buf.len()]);
        rng.fill_bytes(&mut extra);
        for (b, e) in buf.iter_mut().zip(extra.iter()) {
            *b ^= e;
        }
    }
}

/// Mixes 32 bytes from a hardware RNG into the stream `fill_random` XORs in.
pub fn mix_hardware_entropy(hw: &[u8; 32]) {
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(seed.as_mut());
    let mut guard = HARDWARE_STREAM.lock();
    let mut carry = Zeroizing::new([0u8; 32]);
    if let Some(old) = guard.as_mut() {
        old.fill_bytes(carry.as_mut());
    }
    for i in 0..32 {
        seed[i] ^= hw[i] ^ carry[i];
    }
    *guard = Some(StdRng::from_seed(*seed));
}

/// True once some hardware has contributed entropy (for status and tests).
pub fn hardware_mixed() -> bool {
    HARDWARE_STREAM.lock().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ_before_and_after_mixing() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        fill_random(&mut a);
        mix_hardware_entropy(&[7u8; 32]);
        fill_random(&mut b);
        assert_ne!(a, b);
        assert!(hardware_mixed());
    }
}
