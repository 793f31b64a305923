//! Randomness for keys and nonces.
//!
//! The OS RNG is the base of every draw. When a hardware seal is open it feeds bytes from
//! its own RNG (`C_GenerateRandom`, `TPM2_GetRandom`) into a ChaCha stream that is XORed
//! over the OS bytes, so the result is never weaker than the OS RNG, and a weak OS RNG is
//! strengthened by the device. The stream is reseeded (hardware bytes XOR fresh OS bytes)
//! each time the device contributes.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use zeroize::Zeroizing;

static HARDWARE_STREAM: Mutex<Option<StdRng>> = Mutex::new(None);
/// Bumped each time the hardware contributes, so per-thread nonce streams reseed.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Nonces drawn from one per-thread stream before it reseeds from `fill_random`.
const NONCE_RESEED_AFTER: u32 = 1 << 16;

struct NonceStream {
    rng: StdRng,
    generation: u64,
    draws: u32,
}

thread_local! {
    static NONCE_STREAM: RefCell<Option<NonceStream>> = const { RefCell::new(None) };
}

/// Fills `buf` with a nonce from a per-thread ChaCha stream seeded by [`fill_random`]
/// (OS and hardware randomness mixed), reseeded every 65,536 draws and whenever the
/// hardware contributes. The hot encryption paths call this: a global lock and a system
/// call per nonce halved transit's throughput.
pub fn fill_nonce(buf: &mut [u8]) {
    NONCE_STREAM.with(|cell| {
        let mut slot = cell.borrow_mut();
        let generation = GENERATION.load(Ordering::Acquire);
        let stale = slot
            .as_ref()
            .is_none_or(|s| s.generation != generation || s.draws >= NONCE_RESEED_AFTER);
        if stale {
            let mut seed = Zeroizing::new([0u8; 32]);
            fill_random(seed.as_mut());
            *slot = Some(NonceStream {
                rng: StdRng::from_seed(*seed),
                generation,
                draws: 0,
            });
        }
        if let Some(stream) = slot.as_mut() {
            stream.rng.fill_bytes(buf);
            stream.draws += 1;
        }
    });
}

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
    GENERATION.fetch_add(1, Ordering::AcqRel);
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

    #[test]
    fn nonces_differ_and_reseed_after_hardware_mixes() {
        let mut a = [0u8; 24];
        let mut b = [0u8; 24];
        fill_nonce(&mut a);
        fill_nonce(&mut b);
        assert_ne!(a, b);
        let before = NONCE_STREAM.with(|c| c.borrow().as_ref().map(|s| s.generation));
        mix_hardware_entropy(&[9u8; 32]);
        fill_nonce(&mut a);
        let after = NONCE_STREAM.with(|c| c.borrow().as_ref().map(|s| s.generation));
        assert_ne!(before, after);
    }
}
