//! `random(/:source)(/:bytes)`: random bytes for callers.

use zeroize::Zeroizing;

use super::error::{TransitError, TransitResult};

/// Vault's cap on one request.
pub const MAX_BYTES: usize = 128 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Platform,
    Seal,
    All,
}

impl Source {
    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "" | "platform" => Some(Source::Platform),
            "seal" => Some(Source::Seal),
            "all" => Some(Source::All),
            _ => None,
        }
    }
}

/// `n` random bytes, and Vault's warning when the source asked for is not available.
pub fn random_bytes(
    n: i64,
    source: Source,
) -> TransitResult<(Zeroizing<Vec<u8>>, Option<&'static str>)> {
    if n < 1 {
        return Err(TransitError::invalid("'bytes' cannot be less than 1"));
    }
    if n as u64 > MAX_BYTES as u64 {
        return Err(TransitError::invalid(format!(
            "'bytes' should be less than {MAX_BYTES}"
        )));
    }
    let mut out = Zeroizing::new(vec![0u8; n as usize]);
    hsm_bridge::fill_random(&mut out);
    let warning = (source == Source::Seal)
        .then_some("no seal/entropy augmentation available, using platform entropy source");
    Ok((out, warning))
}
