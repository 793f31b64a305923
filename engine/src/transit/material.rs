//! Key material: the secret bytes a key version stores, and the objects parsed from them
//! once, when the key is loaded (ciphers with their key schedule, RSA keys with their
//! precomputed CRT values, EC and Ed25519 signing keys), so that an operation never
//! parses key material.

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use hkdf::Hkdf;
use rand::rngs::OsRng;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::{TransitError, TransitResult};
use super::keytype::KeyType;

pub const TAG_LEN: usize = 16;

/// Secret bytes, wiped when dropped. Stored as standard base64 inside the barrier.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    pub fn random(len: usize) -> Self {
        let mut v = vec![0u8; len];
        hsm_bridge::fill_random(&mut v);
        SecretBytes(v)
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes({} bytes)", self.0.len())
    }
}

impl serde::Serialize for SecretBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Written straight into the serializer's (zeroized) buffer, no String in between.
        s.collect_str(&base64::display::Base64Display::new(&self.0, &STANDARD))
    }
}

impl<'de> serde::Deserialize<'de> for SecretBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SecretBytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("base64 key material")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<SecretBytes, E> {
                STANDARD
                    .decode(s)
                    .map(SecretBytes)
                    .map_err(|_| E::custom("key material is not base64"))
            }
        }
        d.deserialize_str(V)
    }
}

/// A ready AEAD cipher.
pub enum Aead {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
    XChaCha(Box<XChaCha20Poly1305>),
}

impl Aead {
    pub fn new(kind: KeyType, key: &[u8]) -> TransitResult<Aead> {
        let bad = |_| TransitError::internal("AEAD key has the wrong length");
        Ok(match kind {
            KeyType::Aes128Gcm96 => {
                Aead::Aes128(Box::new(Aes128Gcm::new_from_slice(key).map_err(bad)?))
            }
            KeyType::Aes256Gcm96 => {
                Aead::Aes256(Box::new(Aes256Gcm::new_from_slice(key).map_err(bad)?))
            }
            KeyType::ChaCha20Poly1305 => Aead::ChaCha(Box::new(
                ChaCha20Poly1305::new_from_slice(key).map_err(bad)?,
            )),
            KeyType::XChaCha20Poly1305 => Aead::XChaCha(Box::new(
                XChaCha20Poly1305::new_from_slice(key).map_err(bad)?,
            )),
            other => {
                return Err(TransitError::internal(format!(
                    "{other} is not an AEAD key type"
                )))
            }
        })
    }

    pub fn nonce_len(&self) -> usize {
        match self {
            Aead::XChaCha(_) => 24,
            _ => 12,
        }
    }

    /// `nonce || ciphertext || tag`. `nonce` must be `nonce_len()` bytes.
    pub fn seal(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> TransitResult<Vec<u8>> {
        if nonce.len() != self.nonce_len() {
            return Err(TransitError::internal("nonce has the wrong length"));
        }
        let n = nonce.len();
        let mut out = Vec::with_capacity(n + plaintext.len() + TAG_LEN);
        out.extend_from_slice(nonce);
        out.extend_from_slice(plaintext);
        let buf = &mut out[n..];
        let tag = match self {
            Aead::Aes128(c) => {
                c.encrypt_in_place_detached(GenericArray::from_slice(nonce), aad, buf)
            }
            Aead::Aes256(c) => {
                c.encrypt_in_place_detached(GenericArray::from_slice(nonce), aad, buf)
            }
            Aead::ChaCha(c) => {
                c.encrypt_in_place_detached(GenericArray::from_slice(nonce), aad, buf)
            }
            Aead::XChaCha(c) => {
                c.encrypt_in_place_detached(GenericArray::from_slice(nonce), aad, buf)
            }
        }
        .map_err(|_| TransitError::internal("AEAD encryption failed"))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens `nonce || ciphertext || tag`; `Err(())` when it is too short or does not
    /// authenticate.
    pub fn open(&self, data: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, ()> {
        let n = self.nonce_len();
        if data.len() < n + TAG_LEN {
            return Err(());
        }
        let (nonce, rest) = data.split_at(n);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut buf = Zeroizing::new(ct.to_vec());
        let tag = GenericArray::from_slice(tag);
        match self {
            Aead::Aes128(c) => {
                c.decrypt_in_place_detached(GenericArray::from_slice(nonce), aad, &mut buf, tag)
            }
            Aead::Aes256(c) => {
                c.decrypt_in_place_detached(GenericArray::from_slice(nonce), aad, &mut buf, tag)
            }
            Aead::ChaCha(c) => {
                c.decrypt_in_place_detached(GenericArray::from_slice(nonce), aad, &mut buf, tag)
            }
            Aead::XChaCha(c) => {
                c.decrypt_in_place_detached(GenericArray::from_slice(nonce), aad, &mut buf, tag)
            }
        }
        .map_err(|_| ())?;
        Ok(buf)
    }
}

/// An RSA key pair with its CRT values precomputed.
pub struct RsaKey {
    pub private: RsaPrivateKey,
    pub public: RsaPublicKey,
}

/// An ECDSA signing key on one of the supported curves.
pub enum EcKey {
    P256(Box<p256::ecdsa::SigningKey>),
    P384(Box<p384::ecdsa::SigningKey>),
}

/// How an ECDSA signature is written: DER (X.509, OpenSSL) or `r || s` (JWS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marshaling {
    Asn1,
    Jws,
}

impl Marshaling {
    pub fn parse(s: &str) -> TransitResult<Marshaling> {
        match s {
            "" | "asn1" => Ok(Marshaling::Asn1),
            "jws" => Ok(Marshaling::Jws),
            other => Err(TransitError::invalid(format!(
                "invalid marshaling type \"{other}\""
            ))),
        }
    }
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

macro_rules! ec_dispatch {
    ($key:expr, $k:ident, $curve:ident => $body:expr) => {
        match $key {
            EcKey::P256($k) => {
                #[allow(unused_imports)]
                use p256 as $curve;
                $body
            }
            EcKey::P384($k) => {
                #[allow(unused_imports)]
                use p384 as $curve;
                $body
            }
        }
    };
}

impl EcKey {
    pub fn generate(kind: KeyType) -> TransitResult<SecretBytes> {
        Ok(match kind {
            KeyType::EcdsaP256 => SecretBytes::new(
                p256::ecdsa::SigningKey::random(&mut OsRng)
                    .to_bytes()
                    .to_vec(),
            ),
            KeyType::EcdsaP384 => SecretBytes::new(
                p384::ecdsa::SigningKey::random(&mut OsRng)
                    .to_bytes()
                    .to_vec(),
            ),
            other => return Err(TransitError::internal(format!("{other} is not an EC type"))),
        })
    }

    pub fn from_scalar(kind: KeyType, scalar: &[u8]) -> TransitResult<EcKey> {
        let bad = |_| TransitError::internal("stored EC key is invalid");
        Ok(match kind {
            KeyType::EcdsaP256 => EcKey::P256(Box::new(
                p256::ecdsa::SigningKey::from_slice(scalar).map_err(bad)?,
            )),
            KeyType::EcdsaP384 => EcKey::P384(Box::new(
                p384::ecdsa::SigningKey::from_slice(scalar).map_err(bad)?,
            )),
            other => return Err(TransitError::internal(format!("{other} is not an EC type"))),
        })
    }

    fn field_len(&self) -> usize {
        match self {
            EcKey::P256(_) => 32,
            EcKey::P384(_) => 48,
        }
    }

    pub fn sign_prehash(&self, digest: &[u8], marshaling: Marshaling) -> TransitResult<Vec<u8>> {
        use ecdsa::signature::hazmat::PrehashSigner;
        let digest = field_prehash(digest, self.field_len());
        ec_dispatch!(self, k, curve => {
            let sig: curve::ecdsa::Signature = k
                .sign_prehash(&digest)
                .map_err(|_| TransitError::invalid("the input cannot be signed"))?;
            Ok(match marshaling {
                Marshaling::Asn1 => sig.to_der().as_bytes().to_vec(),
                Marshaling::Jws => sig.to_bytes().to_vec(),
            })
        })
    }

    pub fn verify_prehash(
        &self,
        digest: &[u8],
        sig: &[u8],
        marshaling: Marshaling,
    ) -> TransitResult<bool> {
        use ecdsa::signature::hazmat::PrehashVerifier;
        let digest = field_prehash(digest, self.field_len());
        ec_dispatch!(self, k, curve => {
            let parsed = match marshaling {
                Marshaling::Asn1 => curve::ecdsa::Signature::from_der(sig),
                Marshaling::Jws => curve::ecdsa::Signature::from_slice(sig),
            }
            .map_err(|_| TransitError::invalid("supplied signature is invalid"))?;
            Ok(k.verifying_key().verify_prehash(&digest, &parsed).is_ok())
        })
    }

    /// SubjectPublicKeyInfo, PEM, with Go's trailing newline.
    pub fn public_pem(&self) -> TransitResult<String> {
        ec_dispatch!(self, k, _curve => k
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(TransitError::internal))
    }

    pub fn public_der(&self) -> TransitResult<Vec<u8>> {
        ec_dispatch!(self, k, _curve => k
            .verifying_key()
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(TransitError::internal))
    }

    /// SEC 1 `EC PRIVATE KEY` PEM, as Go's `x509.MarshalECPrivateKey`.
    pub fn private_sec1_pem(&self) -> TransitResult<Zeroizing<String>> {
        ec_dispatch!(self, k, curve => {
            let sk = curve::SecretKey::from(k.as_nonzero_scalar());
            sk.to_sec1_pem(LineEnding::LF)
                .map(|s| Zeroizing::new(s.to_string()))
                .map_err(TransitError::internal)
        })
    }

    pub fn private_pkcs8_der(&self) -> TransitResult<Zeroizing<Vec<u8>>> {
        ec_dispatch!(self, k, curve => {
            let sk = curve::SecretKey::from(k.as_nonzero_scalar());
            sk.to_pkcs8_der()
                .map(|d| Zeroizing::new(d.as_bytes().to_vec()))
                .map_err(TransitError::internal)
        })
    }
}

/// An Ed25519 key. Its 32-byte seed is what is stored.
pub struct Ed25519Key {
    pub signing: ed25519_dalek::SigningKey,
}

impl Ed25519Key {
    /// The key Vault derives for `context`: HKDF-SHA256 over Go's 64-byte private key
    /// (seed || public key), the first 32 bytes of output used as the seed.
    pub fn derive(&self, context: &[u8]) -> TransitResult<ed25519_dalek::SigningKey> {
        let mut ikm = Zeroizing::new([0u8; 64]);
        ikm[..32].copy_from_slice(self.signing.as_bytes());
        ikm[32..].copy_from_slice(self.signing.verifying_key().as_bytes());
        let mut seed = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, ikm.as_slice())
            .expand(context, seed.as_mut_slice())
            .map_err(TransitError::internal)?;
        Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Go's 64-byte private key encoding (seed || public key), as Vault exports it.
    pub fn go_private_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(64));
        v.extend_from_slice(self.signing.as_bytes());
        v.extend_from_slice(self.signing.verifying_key().as_bytes());
        v
    }
}

/// The parsed form of one version's key.
pub enum Material {
    /// A ready cipher; `None` for derived keys, whose cipher is made per context.
    Aead(Option<Aead>),
    Rsa(Box<RsaKey>),
    Ec(EcKey),
    Ed25519(Box<Ed25519Key>),
    Hmac,
}

/// Fresh secret bytes for a new version of a `kind` key. RSA generation is slow: call
/// this off the async executor.
pub fn generate_secret(kind: KeyType, hmac_key_size: usize) -> TransitResult<SecretBytes> {
    Ok(match kind {
        k if k.is_aead() => SecretBytes::random(k.aead_key_len()),
        KeyType::Hmac => SecretBytes::random(hmac_key_size),
        KeyType::Ed25519 => SecretBytes::random(32),
        k if k.is_ecdsa() => EcKey::generate(k)?,
        k if k.is_rsa() => {
            let key =
                RsaPrivateKey::new(&mut OsRng, k.rsa_bits()).map_err(TransitError::internal)?;
            let der = key.to_pkcs8_der().map_err(TransitError::internal)?;
            SecretBytes::new(der.as_bytes().to_vec())
        }
        other => return Err(TransitError::internal(format!("cannot generate {other}"))),
    })
}

/// Parses stored secret bytes into material, and the public key as Vault shows it in
/// a key read (`""` for symmetric keys).
pub fn parse_material(
    kind: KeyType,
    derived: bool,
    secret: &SecretBytes,
) -> TransitResult<(Material, String)> {
    Ok(match kind {
        k if k.is_aead() => {
            let cipher = if derived {
                None
            } else {
                Some(Aead::new(k, secret.as_slice())?)
            };
            (Material::Aead(cipher), String::new())
        }
        KeyType::Hmac => (Material::Hmac, String::new()),
        KeyType::Ed25519 => {
            let seed: [u8; 32] = secret
                .as_slice()
                .try_into()
                .map_err(|_| TransitError::internal("stored Ed25519 key is invalid"))?;
            let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
            let mut seed = seed;
            seed.zeroize();
            let public = STANDARD.encode(signing.verifying_key().as_bytes());
            (Material::Ed25519(Box::new(Ed25519Key { signing })), public)
        }
        k if k.is_ecdsa() => {
            let ec = EcKey::from_scalar(k, secret.as_slice())?;
            let public = ec.public_pem()?;
            (Material::Ec(ec), public)
        }
        k if k.is_rsa() => {
            let private = RsaPrivateKey::from_pkcs8_der(secret.as_slice())
                .map_err(|_| TransitError::internal("stored RSA key is invalid"))?;
            let public = RsaPublicKey::from(&private);
            let pem = public
                .to_public_key_pem(LineEnding::LF)
                .map_err(TransitError::internal)?;
            (Material::Rsa(Box::new(RsaKey { private, public })), pem)
        }
        other => return Err(TransitError::internal(format!("cannot parse {other}"))),
    })
}

/// HKDF-SHA256 with no salt and the context as info, as Vault derives per-context keys.
pub fn hkdf_derive(ikm: &[u8], context: &[u8], len: usize) -> TransitResult<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    Hkdf::<Sha256>::new(None, ikm)
        .expand(context, &mut out)
        .map_err(TransitError::internal)?;
    Ok(out)
}
