//! Key material: the secret bytes a key version stores, and the objects parsed from them
//! once, when the key is loaded (ciphers with their key schedule, RSA keys with their
//! precomputed CRT values, EC and Ed25519 signing keys), so that an operation never
//! parses key material.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::{TransitError, TransitResult};
use super::keytype::KeyType;
use crate::crypto::aead::AeadAlgorithm;
pub use crate::crypto::aead::{Aead, TAG_LEN};
pub use crate::crypto::ecdsa::EcKey;
use crate::crypto::ecdsa::{Curve, EcError, SignatureFormat};
use crate::crypto::rsa;
pub use crate::crypto::rsa::RsaKey;

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

/// The cipher of an AEAD key type, its key schedule made.
pub fn aead(kind: KeyType, key: &[u8]) -> TransitResult<Aead> {
    let algorithm = match kind {
        KeyType::Aes128Gcm96 => AeadAlgorithm::Aes128Gcm,
        KeyType::Aes256Gcm96 => AeadAlgorithm::Aes256Gcm,
        KeyType::ChaCha20Poly1305 => AeadAlgorithm::ChaCha20Poly1305,
        KeyType::XChaCha20Poly1305 => AeadAlgorithm::XChaCha20Poly1305,
        other => {
            return Err(TransitError::internal(format!(
                "{other} is not an AEAD key type"
            )))
        }
    };
    Aead::new(algorithm, key).map_err(TransitError::internal)
}

/// The curve of an ECDSA key type.
fn curve(kind: KeyType) -> TransitResult<Curve> {
    match kind {
        KeyType::EcdsaP256 => Ok(Curve::P256),
        KeyType::EcdsaP384 => Ok(Curve::P384),
        other => Err(TransitError::internal(format!("{other} is not an EC type"))),
    }
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

impl From<Marshaling> for SignatureFormat {
    fn from(m: Marshaling) -> SignatureFormat {
        match m {
            Marshaling::Asn1 => SignatureFormat::Der,
            Marshaling::Jws => SignatureFormat::Fixed,
        }
    }
}

impl From<EcError> for TransitError {
    fn from(e: EcError) -> TransitError {
        match e {
            EcError::InvalidSignature | EcError::Sign => TransitError::invalid(e.to_string()),
            EcError::InvalidKey | EcError::Encoding(_) => TransitError::internal(e),
        }
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
        k if k.is_ecdsa() => SecretBytes::new(EcKey::generate(curve(k)?).to_vec()),
        k if k.is_rsa() => {
            let key = RsaKey::generate(k.rsa_bits()).map_err(TransitError::internal)?;
            SecretBytes::new(key.to_pkcs8_der().map_err(TransitError::internal)?.to_vec())
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
                Some(aead(k, secret.as_slice())?)
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
            let ec = EcKey::from_scalar(curve(k)?, secret.as_slice())?;
            let public = ec.public_key().to_pem()?;
            (Material::Ec(ec), public)
        }
        k if k.is_rsa() => {
            let key = RsaKey::from_pkcs8_der(secret.as_slice())
                .map_err(|_| TransitError::internal("stored RSA key is invalid"))?;
            let pem = rsa::public_to_pem(&key.public).map_err(TransitError::internal)?;
            (Material::Rsa(Box::new(key)), pem)
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
