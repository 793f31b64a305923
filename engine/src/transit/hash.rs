//! The hash functions transit names (`sha2-256`, `sha3-512`, ...), shared by `hash`,
//! `hmac` and `sign`/`verify`.

use sha2::Digest;

use super::error::TransitError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// Only for signing input that the caller already hashed (PKCS#1 v1.5 without OID).
    None,
    Sha1,
    Sha2_224,
    Sha2_256,
    Sha2_384,
    Sha2_512,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
}

/// Runs `$body` with `$d` bound to the digest type of `$algo`; `None` takes `$none`.
macro_rules! with_digest {
    ($algo:expr, $d:ident => $body:expr, none => $none:expr) => {
        match $algo {
            $crate::transit::hash::HashAlgorithm::None => $none,
            $crate::transit::hash::HashAlgorithm::Sha1 => {
                type $d = sha1::Sha1;
                $body
            }
            $crate::transit::hash::HashAlgorithm::Sha2_224 => {
                type $d = sha2::Sha224;
                $body
            }
            $crate::transit::hash::HashAlgorithm::Sha2_256 => {
                type $d = sha2::Sha256;
                $body
            }
            $crate::transit::hash::HashAlgorithm::Sha2_384 => {
                type $d = sha2::Sha384;
                $body
            }
            $crate::transit::hash::HashAlgorithm::Sha2_512 => {
                type $d = sha2::Sha512;
                $body
            }
            $crate::transit::hash::HashAlgorithm::Sha3_224 => {
                type $d = sha3::Sha3_224;
                $body
            }
            $crate::transit::hash::HashAlgorithm::Sha3_256 => {
                type $d = sha3::Sha3_256;
                $body
            }
            $crate::transit::hash::HashAlgorithm::Sha3_384 => {
                type $d = sha3::Sha3_384;
                $body
            }
            $crate::transit::hash::HashAlgorithm::Sha3_512 => {
                type $d = sha3::Sha3_512;
                $body
            }
        }
    };
}
pub(crate) use with_digest;

impl HashAlgorithm {
    pub const ALL: [HashAlgorithm; 10] = [
        HashAlgorithm::None,
        HashAlgorithm::Sha1,
        HashAlgorithm::Sha2_224,
        HashAlgorithm::Sha2_256,
        HashAlgorithm::Sha2_384,
        HashAlgorithm::Sha2_512,
        HashAlgorithm::Sha3_224,
        HashAlgorithm::Sha3_256,
        HashAlgorithm::Sha3_384,
        HashAlgorithm::Sha3_512,
    ];

    /// Vault's name, e.g. `sha2-256`; `None` if the name is unknown.
    pub fn from_name(s: &str) -> Option<HashAlgorithm> {
        HashAlgorithm::ALL.into_iter().find(|h| h.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgorithm::None => "none",
            HashAlgorithm::Sha1 => "sha1",
            HashAlgorithm::Sha2_224 => "sha2-224",
            HashAlgorithm::Sha2_256 => "sha2-256",
            HashAlgorithm::Sha2_384 => "sha2-384",
            HashAlgorithm::Sha2_512 => "sha2-512",
            HashAlgorithm::Sha3_224 => "sha3-224",
            HashAlgorithm::Sha3_256 => "sha3-256",
            HashAlgorithm::Sha3_384 => "sha3-384",
            HashAlgorithm::Sha3_512 => "sha3-512",
        }
    }

    /// Digest length in bytes (0 for `none`).
    pub fn output_len(self) -> usize {
        with_digest!(self, D => <D as Digest>::output_size(), none => 0)
    }

    /// The digest of `input`; `None` for `none`.
    pub fn digest(self, input: &[u8]) -> Option<Vec<u8>> {
        with_digest!(self, D => Some(D::digest(input).to_vec()), none => None)
    }
}

/// `hash/:algorithm`: Vault offers SHA-2 and SHA-3 here, not SHA-1.
pub fn hash(algorithm: &str, input: &[u8]) -> Result<Vec<u8>, TransitError> {
    match HashAlgorithm::from_name(algorithm) {
        Some(HashAlgorithm::None | HashAlgorithm::Sha1) | None => Err(TransitError::invalid(
            format!("unsupported algorithm {algorithm}"),
        )),
        Some(h) => h
            .digest(input)
            .ok_or_else(|| TransitError::invalid(format!("unsupported algorithm {algorithm}"))),
    }
}
