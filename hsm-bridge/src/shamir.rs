//! The software root of trust: a 256-bit root key split into Shamir shares (sharks).
//!
//! An unseal key is the raw sharks share, 33 bytes: the x coordinate then 32 bytes of y.
//! Printed as base64url it is the 44-character key of `operator init`.

use sharks::{Share, Sharks};
use zeroize::{Zeroize, Zeroizing};

use crate::{fill_random, soft_aead, BridgeError, RootOfTrust, SealKind};

pub const ROOT_KEY_LEN: usize = 32;
pub const SHARE_LEN: usize = ROOT_KEY_LEN + 1;

/// One unseal key: the bytes of a sharks share.
#[derive(Clone, PartialEq, Eq, Zeroize)]
#[zeroize(drop)]
pub struct UnsealShare(Vec<u8>);

impl std::fmt::Debug for UnsealShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsealShare(..)")
    }
}

impl UnsealShare {
    /// Checks the shape of a share: its length and a non-zero x coordinate.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, BridgeError> {
        if bytes.len() != SHARE_LEN {
            let mut bytes = bytes;
            bytes.zeroize();
            return Err(BridgeError::MalformedShare("an unseal key is 33 bytes"));
        }
        if bytes[0] == 0 {
            let mut bytes = bytes;
            bytes.zeroize();
            return Err(BridgeError::MalformedShare("share index 0 is not valid"));
        }
        Ok(UnsealShare(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The share's x coordinate: two shares with the same index are the same share.
    pub fn index(&self) -> u8 {
        self.0[0]
    }
}

/// The root key, reconstructed from shares or freshly generated.
pub struct ShamirRoot {
    key: Zeroizing<[u8; ROOT_KEY_LEN]>,
}

impl ShamirRoot {
    /// Makes a new root key and splits it into `shares` unseal keys, any `threshold` of
    /// which reconstruct it.
    pub fn generate(shares: u8, threshold: u8) -> Result<(Self, Vec<UnsealShare>), BridgeError> {
        if threshold == 0 || shares == 0 || threshold > shares {
            return Err(BridgeError::InvalidConfig(
                "the threshold must be between 1 and the number of shares".into(),
            ));
        }
        let mut key = Zeroizing::new([0u8; ROOT_KEY_LEN]);
        fill_random(key.as_mut());
        let root = ShamirRoot { key };
        let out = if shares == 1 {
            // A single share is the key itself behind index 1, so one key unseals.
            let mut bytes = Vec::with_capacity(SHARE_LEN);
            bytes.push(1);
            bytes.extend_from_slice(root.key.as_ref());
            vec![UnsealShare(bytes)]
        } else {
            let dealer = Sharks(threshold).dealer(root.key.as_ref());
            dealer
                .take(shares as usize)
                .map(|share| UnsealShare(Vec::from(&share)))
                .collect()
        };
        Ok((root, out))
    }

    /// Reconstructs the root key from `threshold` or more distinct shares.
    pub fn combine(shares: &[UnsealShare], threshold: u8) -> Result<Self, BridgeError> {
        let mut key = Zeroizing::new([0u8; ROOT_KEY_LEN]);
        if threshold == 1 {
            let first = shares.first().ok_or(BridgeError::CombineFailed)?;
            key.copy_from_slice(&first.0[1..]);
            return Ok(ShamirRoot { key });
        }
        let parsed: Vec<Share> = shares
            .iter()
            .map(|s| Share::try_from(s.0.as_slice()).map_err(|_| BridgeError::CombineFailed))
            .collect::<Result<_, _>>()?;
        let secret = Zeroizing::new(
            Sharks(threshold)
                .recover(parsed.iter())
                .map_err(|_| BridgeError::CombineFailed)?,
        );
        if secret.len() != ROOT_KEY_LEN {
            return Err(BridgeError::CombineFailed);
        }
        key.copy_from_slice(&secret);
        Ok(ShamirRoot { key })
    }

    /// The raw root key, for the key-recovery tooling and tests that prove it is never
    /// written to storage.
    pub fn key_bytes(&self) -> &[u8] {
        self.key.as_ref()
    }
}

impl RootOfTrust for ShamirRoot {
    fn kind(&self) -> SealKind {
        SealKind::Shamir
    }

    fn wrap(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, BridgeError> {
        soft_aead::seal(&self.key, aad, plaintext)
    }

    fn unwrap(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
        // Blobs from before the shared format have no version byte; the tag tells which
        // layout a blob has, so trying both cannot open one wrongly.
        soft_aead::open(&self.key, aad, blob)
            .or_else(|| soft_aead::open_unversioned(&self.key, aad, blob))
            .ok_or(BridgeError::WrongRootKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_from_before_the_version_byte_still_open() {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};
        let (root, _) = ShamirRoot::generate(1, 1).unwrap();
        // The old layout, built by hand: nonce, then ciphertext and tag.
        let nonce = [1u8; 24];
        let ct = XChaCha20Poly1305::new(root.key.as_ref().into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: b"keyring",
                    aad: b"aad",
                },
            )
            .unwrap();
        let old = [nonce.as_slice(), &ct].concat();
        assert_eq!(root.unwrap(b"aad", &old).unwrap().as_slice(), b"keyring");
        assert!(root.unwrap(b"other", &old).is_err());
        let new = root.wrap(b"aad", b"keyring").unwrap();
        assert_eq!(new[0], soft_aead::VERSION);
        assert_eq!(root.unwrap(b"aad", &new).unwrap().as_slice(), b"keyring");
    }

    #[test]
    fn any_threshold_subset_recovers_and_opens() {
        let (root, shares) = ShamirRoot::generate(5, 3).unwrap();
        let blob = root.wrap(b"core/keyring", b"keyring bytes").unwrap();
        let subset = [shares[4].clone(), shares[1].clone(), shares[2].clone()];
        let again = ShamirRoot::combine(&subset, 3).unwrap();
        assert_eq!(again.key_bytes(), root.key_bytes());
        assert_eq!(
            &*again.unwrap(b"core/keyring", &blob).unwrap(),
            b"keyring bytes"
        );
        assert!(again.unwrap(b"other/path", &blob).is_err());
        assert!(shares.iter().all(|s| s.as_bytes().len() == SHARE_LEN));
    }

    #[test]
    fn wrong_shares_do_not_open() {
        let (root, _) = ShamirRoot::generate(5, 3).unwrap();
        let (_, other) = ShamirRoot::generate(5, 3).unwrap();
        let blob = root.wrap(b"k", b"v").unwrap();
        let wrong = ShamirRoot::combine(&other[..3], 3).unwrap();
        assert!(matches!(
            wrong.unwrap(b"k", &blob),
            Err(BridgeError::WrongRootKey)
        ));
    }

    #[test]
    fn single_share_is_the_key() {
        let (root, shares) = ShamirRoot::generate(1, 1).unwrap();
        let again = ShamirRoot::combine(&shares, 1).unwrap();
        assert_eq!(again.key_bytes(), root.key_bytes());
    }

    #[test]
    fn malformed_shares_are_refused() {
        assert!(UnsealShare::from_bytes(vec![1; 10]).is_err());
        assert!(UnsealShare::from_bytes(vec![0; SHARE_LEN]).is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// A number of shares, a threshold, and the shares handed back: a quorum or more,
        /// in any order.
        fn quorum() -> impl Strategy<Value = (u8, u8, Vec<usize>)> {
            (1u8..=10)
                .prop_flat_map(|n| (Just(n), 1..=n))
                .prop_flat_map(|(n, t)| {
                    let picked = proptest::sample::subsequence(
                        (0..usize::from(n)).collect::<Vec<_>>(),
                        usize::from(t)..=usize::from(n),
                    );
                    (Just(n), Just(t), picked.prop_shuffle())
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn any_quorum_recovers_the_root_key((n, t, picked) in quorum()) {
                let (root, shares) = ShamirRoot::generate(n, t).unwrap();
                prop_assert_eq!(shares.len(), usize::from(n));
                let given: Vec<UnsealShare> = picked.iter().map(|&i| shares[i].clone()).collect();
                let again = ShamirRoot::combine(&given, t).unwrap();
                prop_assert_eq!(again.key_bytes(), root.key_bytes());
            }

            #[test]
            fn fewer_than_the_threshold_do_not((n, t, picked) in quorum()) {
                prop_assume!(t >= 2);
                let (root, shares) = ShamirRoot::generate(n, t).unwrap();
                let short: Vec<UnsealShare> = picked
                    .iter()
                    .take(usize::from(t) - 1)
                    .map(|&i| shares[i].clone())
                    .collect();
                // Told the wrong threshold, the shares still combine into some key: never
                // the root key.
                if let Ok(wrong) = ShamirRoot::combine(&short, t - 1) {
                    prop_assert_ne!(wrong.key_bytes(), root.key_bytes());
                }
                prop_assert!(ShamirRoot::combine(&short, t).is_err());
            }
        }
    }
}
