//! ECDSA on P-256 and P-384 over a digest the caller computed, with signatures as DER
//! (X.509, OpenSSL) or fixed-size `r || s` (JWS, PKCS#11).

use ::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::pkcs8::{DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rand::rngs::OsRng;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
}

/// How a signature is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFormat {
    Der,
    /// `r || s`, each the field's length.
    Fixed,
}

#[derive(Debug, thiserror::Error)]
pub enum EcError {
    #[error("stored EC key is invalid")]
    InvalidKey,
    #[error("supplied signature is invalid")]
    InvalidSignature,
    #[error("the input cannot be signed")]
    Sign,
    #[error("{0}")]
    Encoding(String),
}

fn encoding(e: impl std::fmt::Display) -> EcError {
    EcError::Encoding(e.to_string())
}

/// Left-pads a digest shorter than the curve's field to the field's length. The padded
/// value is the same integer, which is what FIPS 186 takes from a short hash; RustCrypto
/// refuses digests shorter than half the field (SHA-1 on P-384) otherwise.
fn field_prehash(digest: &[u8], field_len: usize) -> std::borrow::Cow<'_, [u8]> {
    if digest.len() >= field_len {
        std::borrow::Cow::Borrowed(digest)
    } else {
        let mut v = vec![0u8; field_len - digest.len()];
        v.extend_from_slice(digest);
        std::borrow::Cow::Owned(v)
    }
}

macro_rules! on_curve {
    ($key:expr, $ty:ident, $k:ident, $curve:ident => $body:expr) => {
        match $key {
            $ty::P256($k) => {
                #[allow(unused_imports)]
                use p256 as $curve;
                $body
            }
            $ty::P384($k) => {
                #[allow(unused_imports)]
                use p384 as $curve;
                $body
            }
        }
    };
}

/// An ECDSA signing key.
pub enum EcKey {
    P256(Box<p256::ecdsa::SigningKey>),
    P384(Box<p384::ecdsa::SigningKey>),
}

/// An ECDSA public key.
pub enum EcPublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl EcKey {
    /// A new private scalar, as stored.
    pub fn generate(curve: Curve) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(match curve {
            Curve::P256 => p256::ecdsa::SigningKey::random(&mut OsRng)
                .to_bytes()
                .to_vec(),
            Curve::P384 => p384::ecdsa::SigningKey::random(&mut OsRng)
                .to_bytes()
                .to_vec(),
        })
    }

    pub fn from_scalar(curve: Curve, scalar: &[u8]) -> Result<EcKey, EcError> {
        let bad = |_| EcError::InvalidKey;
        Ok(match curve {
            Curve::P256 => EcKey::P256(Box::new(
                p256::ecdsa::SigningKey::from_slice(scalar).map_err(bad)?,
            )),
            Curve::P384 => EcKey::P384(Box::new(
                p384::ecdsa::SigningKey::from_slice(scalar).map_err(bad)?,
            )),
        })
    }

    pub fn curve(&self) -> Curve {
        match self {
            EcKey::P256(_) => Curve::P256,
            EcKey::P384(_) => Curve::P384,
        }
    }

    /// A PKCS#8 private key on `curve`; a key on another curve or of another
    /// algorithm is refused.
    pub fn from_pkcs8_der(curve: Curve, der: &[u8]) -> Result<EcKey, EcError> {
        use p256::pkcs8::DecodePrivateKey;
        let bad = |_| EcError::InvalidKey;
        Ok(match curve {
            Curve::P256 => EcKey::P256(Box::new(
                p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(bad)?,
            )),
            Curve::P384 => EcKey::P384(Box::new(
                p384::ecdsa::SigningKey::from_pkcs8_der(der).map_err(bad)?,
            )),
        })
    }

    /// The private scalar, big-endian, the field's length: the stored form.
    pub fn scalar_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(on_curve!(self, EcKey, k, _curve => k.to_bytes().to_vec()))
    }

    /// Signs `digest` (RFC 6979 deterministic nonces).
    pub fn sign_prehash(&self, digest: &[u8], format: SignatureFormat) -> Result<Vec<u8>, EcError> {
        let digest = field_prehash(digest, self.curve().field_len());
        on_curve!(self, EcKey, k, curve => {
            let sig: curve::ecdsa::Signature =
                k.sign_prehash(&digest).map_err(|_| EcError::Sign)?;
            Ok(match format {
                SignatureFormat::Der => sig.to_der().as_bytes().to_vec(),
                SignatureFormat::Fixed => sig.to_bytes().to_vec(),
            })
        })
    }

    pub fn public_key(&self) -> EcPublicKey {
        match self {
            EcKey::P256(k) => EcPublicKey::P256(*k.verifying_key()),
            EcKey::P384(k) => EcPublicKey::P384(*k.verifying_key()),
        }
    }

    /// SEC 1 `EC PRIVATE KEY` PEM, as Go's `x509.MarshalECPrivateKey`.
    pub fn private_sec1_pem(&self) -> Result<Zeroizing<String>, EcError> {
        on_curve!(self, EcKey, k, curve => {
            let sk = curve::SecretKey::from(k.as_nonzero_scalar());
            sk.to_sec1_pem(LineEnding::LF)
                .map(|s| Zeroizing::new(s.to_string()))
                .map_err(encoding)
        })
    }

    pub fn private_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, EcError> {
        on_curve!(self, EcKey, k, curve => {
            let sk = curve::SecretKey::from(k.as_nonzero_scalar());
            sk.to_pkcs8_der()
                .map(|d| Zeroizing::new(d.as_bytes().to_vec()))
                .map_err(encoding)
        })
    }
}

impl EcPublicKey {
    /// Parses a DER SubjectPublicKeyInfo on `curve`.
    pub fn from_spki(curve: Curve, der: &[u8]) -> Result<EcPublicKey, EcError> {
        let bad = |_| EcError::InvalidKey;
        Ok(match curve {
            Curve::P256 => {
                EcPublicKey::P256(p256::ecdsa::VerifyingKey::from_public_key_der(der).map_err(bad)?)
            }
            Curve::P384 => {
                EcPublicKey::P384(p384::ecdsa::VerifyingKey::from_public_key_der(der).map_err(bad)?)
            }
        })
    }

    fn curve(&self) -> Curve {
        match self {
            EcPublicKey::P256(_) => Curve::P256,
            EcPublicKey::P384(_) => Curve::P384,
        }
    }

    /// Whether `sig` signs `digest`; a signature that does not parse is an error.
    pub fn verify_prehash(
        &self,
        digest: &[u8],
        sig: &[u8],
        format: SignatureFormat,
    ) -> Result<bool, EcError> {
        let digest = field_prehash(digest, self.curve().field_len());
        on_curve!(self, EcPublicKey, k, curve => {
            let parsed = match format {
                SignatureFormat::Der => curve::ecdsa::Signature::from_der(sig),
                SignatureFormat::Fixed => curve::ecdsa::Signature::from_slice(sig),
            }
            .map_err(|_| EcError::InvalidSignature)?;
            Ok(k.verify_prehash(&digest, &parsed).is_ok())
        })
    }

    /// The point's affine coordinates, big-endian, each the field's length.
    pub fn affine_coordinates(&self) -> (Vec<u8>, Vec<u8>) {
        on_curve!(self, EcPublicKey, k, _curve => {
            let point = k.to_encoded_point(false);
            let x = point.x().map(|x| x.to_vec()).unwrap_or_default();
            let y = point.y().map(|y| y.to_vec()).unwrap_or_default();
            (x, y)
        })
    }

    /// DER SubjectPublicKeyInfo.
    pub fn to_der(&self) -> Result<Vec<u8>, EcError> {
        on_curve!(self, EcPublicKey, k, _curve => k
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(encoding))
    }

    /// SubjectPublicKeyInfo, PEM, with Go's trailing newline.
    pub fn to_pem(&self) -> Result<String, EcError> {
        on_curve!(self, EcPublicKey, k, _curve => k
            .to_public_key_pem(LineEnding::LF)
            .map_err(encoding))
    }
}

/// A fixed-size `r || s` signature (as a PKCS#11 token answers) rewritten as DER.
pub fn fixed_to_der(curve: Curve, sig: &[u8]) -> Result<Vec<u8>, EcError> {
    let bad = |_| EcError::InvalidSignature;
    Ok(match curve {
        Curve::P256 => p256::ecdsa::Signature::from_slice(sig)
            .map_err(bad)?
            .to_der()
            .as_bytes()
            .to_vec(),
        Curve::P384 => p384::ecdsa::Signature::from_slice(sig)
            .map_err(bad)?
            .to_der()
            .as_bytes()
            .to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use ::ecdsa::signature::{Signer, Verifier};
    use sha2::{Digest, Sha256, Sha384};

    use super::*;

    /// Signing a digest here gives what the curve's own `Signer` gives for the message,
    /// and the public key verifies both ways.
    #[test]
    fn prehash_signatures_match_the_message_signer() {
        let scalar = EcKey::generate(Curve::P256);
        let key = EcKey::from_scalar(Curve::P256, &scalar).unwrap();
        let sig = key
            .sign_prehash(&Sha256::digest(b"message"), SignatureFormat::Der)
            .unwrap();
        let reference = p256::ecdsa::SigningKey::from_slice(&scalar).unwrap();
        let expected: p256::ecdsa::Signature = reference.sign(b"message");
        assert_eq!(sig, expected.to_der().as_bytes());
        let public =
            EcPublicKey::from_spki(Curve::P256, &key.public_key().to_der().unwrap()).unwrap();
        assert!(public
            .verify_prehash(&Sha256::digest(b"message"), &sig, SignatureFormat::Der)
            .unwrap());
        assert!(reference
            .verifying_key()
            .verify(b"message", &expected)
            .is_ok());

        let scalar = EcKey::generate(Curve::P384);
        let key = EcKey::from_scalar(Curve::P384, &scalar).unwrap();
        let fixed = key
            .sign_prehash(&Sha384::digest(b"message"), SignatureFormat::Fixed)
            .unwrap();
        let reference = p384::ecdsa::SigningKey::from_slice(&scalar).unwrap();
        let expected: p384::ecdsa::Signature = reference.sign(b"message");
        assert_eq!(fixed, expected.to_bytes().to_vec());
        assert_eq!(
            fixed_to_der(Curve::P384, &fixed).unwrap(),
            expected.to_der().as_bytes()
        );
        assert!(matches!(
            key.public_key()
                .verify_prehash(b"digest", b"not a signature", SignatureFormat::Der),
            Err(EcError::InvalidSignature)
        ));
    }
}
