//! RSA key pairs: generation, PKCS#8 storage, public keys as SubjectPublicKeyInfo, and
//! the private-key operations, always blinded (an rng is given) so their timing does not
//! depend on the key and the input alone.

use rand::rngs::OsRng;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::{PaddingScheme, SignatureScheme};
use rsa::{RsaPrivateKey, RsaPublicKey};
use zeroize::Zeroizing;

pub use rsa::Error as RsaError;

/// An RSA key pair with its CRT values precomputed.
pub struct RsaKey {
    pub private: RsaPrivateKey,
    pub public: RsaPublicKey,
}

impl RsaKey {
    /// A new key pair. Slow: call it off the async executor.
    pub fn generate(bits: usize) -> Result<RsaKey, RsaError> {
        let private = RsaPrivateKey::new(&mut OsRng, bits)?;
        Ok(RsaKey::from_private(private))
    }

    fn from_private(private: RsaPrivateKey) -> RsaKey {
        let public = RsaPublicKey::from(&private);
        RsaKey { private, public }
    }

    /// A key pair from its parts, checked for consistency.
    pub fn from_components(
        n: rsa::BigUint,
        e: rsa::BigUint,
        d: rsa::BigUint,
        primes: Vec<rsa::BigUint>,
    ) -> Result<RsaKey, RsaError> {
        let private = RsaPrivateKey::from_components(n, e, d, primes)?;
        private.validate()?;
        Ok(RsaKey::from_private(private))
    }

    /// Parses the stored form, PKCS#8 DER.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<RsaKey, RsaError> {
        let private = RsaPrivateKey::from_pkcs8_der(der).map_err(RsaError::Pkcs8)?;
        Ok(RsaKey::from_private(private))
    }

    /// The stored form, PKCS#8 DER.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, RsaError> {
        let der = self.private.to_pkcs8_der().map_err(RsaError::Pkcs8)?;
        Ok(Zeroizing::new(der.as_bytes().to_vec()))
    }

    /// Signs `digest` with `scheme` (PKCS#1 v1.5 or PSS), blinded.
    pub fn sign(&self, scheme: impl SignatureScheme, digest: &[u8]) -> Result<Vec<u8>, RsaError> {
        self.private.sign_with_rng(&mut OsRng, scheme, digest)
    }

    /// Decryption (OAEP or PKCS#1 v1.5), blinded.
    pub fn decrypt(
        &self,
        padding: impl PaddingScheme,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, RsaError> {
        self.private
            .decrypt_blinded(&mut OsRng, padding, ciphertext)
            .map(Zeroizing::new)
    }
}

/// Parses a DER SubjectPublicKeyInfo.
pub fn public_from_der(der: &[u8]) -> Result<RsaPublicKey, RsaError> {
    RsaPublicKey::from_public_key_der(der).map_err(|e| RsaError::Pkcs8(e.into()))
}

/// DER SubjectPublicKeyInfo.
pub fn public_to_der(public: &RsaPublicKey) -> Result<Vec<u8>, RsaError> {
    public
        .to_public_key_der()
        .map(|d| d.into_vec())
        .map_err(|e| RsaError::Pkcs8(e.into()))
}

/// SubjectPublicKeyInfo, PEM, with a trailing newline.
pub fn public_to_pem(public: &RsaPublicKey) -> Result<String, RsaError> {
    public
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| RsaError::Pkcs8(e.into()))
}

/// Encryption (OAEP or PKCS#1 v1.5) under a public key.
pub fn encrypt(
    public: &RsaPublicKey,
    padding: impl PaddingScheme,
    plaintext: &[u8],
) -> Result<Vec<u8>, RsaError> {
    public.encrypt(&mut OsRng, padding, plaintext)
}
