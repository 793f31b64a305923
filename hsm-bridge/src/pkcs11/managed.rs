//! Managed keys inside the token.
//!
//! A managed key version is generated as session objects (`CKA_TOKEN=false`), wrapped by
//! the root key (or, for a key created exportable, the export key: see `byok`) with
//! `CKM_AES_KEY_WRAP_PAD` (`CKM_AES_KEY_WRAP_KWP` on tokens without it; the blob's header
//! says which) and destroyed: the token keeps no copy, the appliance stores only the
//! blob. To be wrapped the private key must be
//! `CKA_EXTRACTABLE=true` (its value stays unreadable, `CKA_SENSITIVE=true`). In use it is
//! unwrapped into a session object with `CKA_EXTRACTABLE=false`, owned by the `holder`
//! session and cached by blob (the root key's unwrap template forces the same).
//! `CKA_WRAP_WITH_TRUSTED` is not set: SoftHSM2 would then refuse the wrap by the root
//! key, which only the security officer can mark trusted; a stolen user PIN can therefore
//! wrap a non-exportable managed key out only while it exists as the short-lived
//! generation object, a session object of this process.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use spki::der::asn1::{AnyRef, BitStringRef, ObjectIdentifier, UintRef};
use spki::der::Encode;
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

use super::byok::{aes_key_unwrap, aes_key_wrap};
use super::byok_check::KeyWrap;
use super::error::{describe, device, session_lost};
use super::Pkcs11Root;
use crate::{BridgeError, KeySpec, SealKind, WrappedKey};

/// The first byte of a blob that has a header: the low bits say which token key wrapped
/// it and with which mechanism. A blob made by an AES key wrap is a multiple of 8 bytes
/// long, one with a header is not, so a blob without one (the root key,
/// `CKM_AES_KEY_WRAP_PAD`: the first format) is never mistaken for one with.
const HEADER: u8 = 0xE4;
const HEADER_EXPORTABLE: u8 = 0x01;
const HEADER_KWP: u8 = 0x02;

/// A stored managed-key blob, read.
pub(super) struct Blob<'a> {
    /// Wrapped by the export key (else the root key).
    pub exportable: bool,
    pub wrap: KeyWrap,
    /// What `C_WrapKey` made.
    pub inner: &'a [u8],
}

impl<'a> Blob<'a> {
    pub(super) fn parse(blob: &'a [u8]) -> Blob<'a> {
        match blob.split_first() {
            Some((&h, rest)) if blob.len() % 8 == 1 && h & !0x03 == HEADER => Blob {
                exportable: h & HEADER_EXPORTABLE != 0,
                wrap: if h & HEADER_KWP != 0 {
                    KeyWrap::Kwp
                } else {
                    KeyWrap::Pad
                },
                inner: rest,
            },
            _ => Blob {
                exportable: false,
                wrap: KeyWrap::Pad,
                inner: blob,
            },
        }
    }

    fn store(exportable: bool, wrap: KeyWrap, inner: Vec<u8>) -> Vec<u8> {
        if !exportable && wrap == KeyWrap::Pad {
            return inner;
        }
        let mut h = HEADER;
        if exportable {
            h |= HEADER_EXPORTABLE;
        }
        if wrap == KeyWrap::Kwp {
            h |= HEADER_KWP;
        }
        let mut out = Vec::with_capacity(inner.len() + 1);
        out.push(h);
        out.extend_from_slice(&inner);
        out
    }
}

/// Unwrapped managed keys kept at once; past this the cache starts over.
const UNWRAPPED_MAX: usize = 1024;

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// The public half of a generated key pair, as the token gave it.
enum PublicParts {
    Rsa {
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
    Ec {
        curve: ObjectIdentifier,
        point: Vec<u8>,
    },
}

impl PublicParts {
    /// The DER SubjectPublicKeyInfo, as OpenSSL writes it.
    fn to_spki(&self) -> Result<Vec<u8>, spki::der::Error> {
        match self {
            PublicParts::Rsa { modulus, exponent } => {
                let key = pkcs1::RsaPublicKey {
                    modulus: UintRef::new(modulus)?,
                    public_exponent: UintRef::new(exponent)?,
                }
                .to_der()?;
                SubjectPublicKeyInfoRef {
                    algorithm: AlgorithmIdentifierRef {
                        oid: pkcs1::ALGORITHM_OID,
                        parameters: Some(AnyRef::NULL),
                    },
                    subject_public_key: BitStringRef::from_bytes(&key)?,
                }
                .to_der()
            }
            PublicParts::Ec { curve, point } => SubjectPublicKeyInfoRef {
                algorithm: AlgorithmIdentifierRef {
                    oid: EC_PUBLIC_KEY,
                    parameters: Some(AnyRef::from(curve)),
                },
                subject_public_key: BitStringRef::from_bytes(point)?,
            }
            .to_der(),
        }
    }
}

impl Pkcs11Root {
    /// Makes a managed key inside the token and returns it wrapped by the root key, or
    /// by the export key when it is `exportable` (see `byok`).
    pub(super) fn generate_managed(
        &self,
        spec: KeySpec,
        exportable: bool,
    ) -> Result<WrappedKey, BridgeError> {
        let wrapping = if exportable {
            Some(self.export_key()?)
        } else {
            None
        };
        let kind = self.blob_wrap();
        let wrap = |s: &Session, wrapping: ObjectHandle, key: ObjectHandle| {
            aes_key_wrap(&self.lib, s, kind, wrapping, key)
        };
        let (blob, public) = self
            .with_session(|s| {
                generate_wrapped(s, &wrap, wrapping.unwrap_or(*self.key.lock()), spec)
            })
            .map_err(|e| device("C_GenerateKey / C_WrapKey (managed key)", e))?;
        let blob = Blob::store(exportable, kind, blob);
        let public = public
            .map(|p| p.to_spki())
            .transpose()
            .map_err(|e| BridgeError::Device {
                kind: SealKind::Pkcs11,
                message: format!("cannot encode the managed key's public key: {e}"),
            })?;
        Ok(WrappedKey { spec, blob, public })
    }

    pub(super) fn forget_all(&self) {
        self.unwrapped.lock().clear();
        // Closing the holder session destroys every session object it owns.
        self.holder.lock().take();
    }

    /// The session object for `key`, unwrapping it on first use.
    fn unwrapped_handle(&self, key: &WrappedKey) -> Result<ObjectHandle, CkError> {
        self.reconnect_if_failed()?;
        if let Some(h) = self.unwrapped.lock().get(&key.blob) {
            return Ok(*h);
        }
        // Found before `holder` is held: finding the export key may need a session, and a
        // reconnect empties `holder`.
        let blob = Blob::parse(&key.blob);
        let unwrapping = if blob.exportable {
            // The export key was found when the blob was made, or is found now.
            self.export_key().map_err(|_| {
                CkError::Pkcs11(
                    RvError::UnwrappingKeyHandleInvalid,
                    cryptoki::context::Function::UnwrapKey,
                )
            })?
        } else {
            *self.key.lock()
        };
        let _module = self.using_module();
        let mut holder = self.holder.lock();
        if let Some(h) = self.unwrapped.lock().get(&key.blob) {
            return Ok(*h);
        }
        if self.unwrapped.lock().len() >= UNWRAPPED_MAX {
            // Closing the holder destroys its objects; start over.
            self.unwrapped.lock().clear();
            holder.take();
        }
        if holder.is_none() {
            *holder = Some(self.new_session()?);
        }
        let Some(s) = holder.as_ref() else {
            return Err(CkError::Pkcs11(
                RvError::SessionHandleInvalid,
                cryptoki::context::Function::UnwrapKey,
            ));
        };
        let mut template = vec![
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
        ];
        match key.spec {
            KeySpec::Aes256 => template.extend([
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ]),
            KeySpec::Rsa(_) => template.extend([
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::RSA),
                Attribute::Sign(true),
                Attribute::Decrypt(true),
            ]),
            KeySpec::EcP256 | KeySpec::EcP384 => template.extend([
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::EC),
                Attribute::Sign(true),
            ]),
        }
        let h = aes_key_unwrap(&self.lib, s, blob.wrap, unwrapping, blob.inner, &template)?;
        self.unwrapped.lock().insert(key.blob.clone(), h);
        Ok(h)
    }

    /// Runs `op` with the unwrapped session object for `key`; if the object or its
    /// session went away, unwraps again once.
    pub(super) fn with_key<T>(
        &self,
        key: &WrappedKey,
        op: impl Fn(&Session, ObjectHandle) -> Result<T, CkError>,
    ) -> Result<T, CkError> {
        for attempt in 0..2 {
            let result = self
                .unwrapped_handle(key)
                .and_then(|h| self.with_session(|s| op(s, h)));
            match result {
                Err(e) if attempt == 0 && session_lost(&e) => {
                    tracing::debug!(error = %describe(&e), "managed key object lost; unwrapping again");
                    self.forget_all();
                }
                // Unwrapped again on a fresh session and lost again: the root key's handle
                // is stale too, which only a reconnect cures.
                Err(e) if session_lost(&e) => return Err(self.lost(e)),
                other => return other,
            }
        }
        Err(CkError::Pkcs11(
            RvError::KeyHandleInvalid,
            cryptoki::context::Function::Sign,
        ))
    }
}

/// How a new blob is wrapped: `CKM_AES_KEY_WRAP_PAD` where the token has it (what every
/// blob so far was made with), else `CKM_AES_KEY_WRAP_KWP` (PKCS#11 3.x tokens such as
/// Kryoptic have only that); the blob's header records which.
impl Pkcs11Root {
    fn blob_wrap(&self) -> KeyWrap {
        *self.blob_wrap.get_or_init(|| {
            let pad = self
                .ctx
                .get_mechanism_list(self.slot)
                .is_ok_and(|l| l.contains(&MechanismType::AES_KEY_WRAP_PAD));
            if pad {
                KeyWrap::Pad
            } else {
                KeyWrap::Kwp
            }
        })
    }
}

type Wrap<'a> = dyn Fn(&Session, ObjectHandle, ObjectHandle) -> Result<Vec<u8>, CkError> + 'a;

fn generate_wrapped(
    s: &Session,
    wrap: &Wrap<'_>,
    root: ObjectHandle,
    spec: KeySpec,
) -> Result<(Vec<u8>, Option<PublicParts>), CkError> {
    let private_template = |extra: &[Attribute]| {
        let mut t = vec![
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
        ];
        t.extend_from_slice(extra);
        t
    };
    match spec {
        KeySpec::Aes256 => {
            let k = s.generate_key(
                &Mechanism::AesKeyGen,
                &private_template(&[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                ]),
            )?;
            let blob = wrap(s, root, k);
            let _ = s.destroy_object(k);
            Ok((blob?, None))
        }
        KeySpec::Rsa(bits) => {
            let (public, private) = s.generate_key_pair(
                &Mechanism::RsaPkcsKeyPairGen,
                &[
                    Attribute::Token(false),
                    Attribute::ModulusBits((bits as u64).into()),
                    Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                    Attribute::Verify(true),
                    Attribute::Encrypt(true),
                ],
                &private_template(&[Attribute::Sign(true), Attribute::Decrypt(true)]),
            )?;
            let result = (|| {
                let attrs = s.get_attributes(
                    public,
                    &[AttributeType::Modulus, AttributeType::PublicExponent],
                )?;
                let (mut n, mut e) = (Vec::new(), Vec::new());
                for a in attrs {
                    match a {
                        Attribute::Modulus(v) => n = v,
                        Attribute::PublicExponent(v) => e = v,
                        _ => {}
                    }
                }
                let blob = wrap(s, root, private)?;
                Ok((
                    blob,
                    Some(PublicParts::Rsa {
                        modulus: n,
                        exponent: e,
                    }),
                ))
            })();
            let _ = s.destroy_object(private);
            let _ = s.destroy_object(public);
            result
        }
        KeySpec::EcP256 | KeySpec::EcP384 => {
            let (curve, point_len) = if spec == KeySpec::EcP256 {
                (SECP256R1, 65)
            } else {
                (SECP384R1, 97)
            };
            // CKA_EC_PARAMS is the named curve's DER OID.
            let params = curve.to_der().map_err(|_| CkError::InvalidValue)?;
            let (public, private) = s.generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[
                    Attribute::Token(false),
                    Attribute::EcParams(params),
                    Attribute::Verify(true),
                ],
                &private_template(&[Attribute::Sign(true)]),
            )?;
            let result = (|| {
                let attrs = s.get_attributes(public, &[AttributeType::EcPoint])?;
                let mut point = Vec::new();
                for a in attrs {
                    if let Attribute::EcPoint(v) = a {
                        point = v;
                    }
                }
                // CKA_EC_POINT is a DER OCTET STRING around the point (some tokens give
                // the bare point).
                if point.len() == point_len + 2 {
                    point.drain(..2);
                }
                let blob = wrap(s, root, private)?;
                Ok((blob, Some(PublicParts::Ec { curve, point })))
            })();
            let _ = s.destroy_object(private);
            let _ = s.destroy_object(public);
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// `openssl rsa -pubout -outform DER` of a 1024-bit key (its modulus needs the
    /// leading zero byte of a positive INTEGER).
    #[test]
    fn rsa_spki_matches_openssl() {
        let n = "cff52dc233e2f02c33e8d61a0ab061594fd784390a39fb950666bc49b46b3db146ca6a3ad10557c30ae2a533e178704ce3c4f2336c0dd95602901cf78d3beb732964cd4c9f5a233acfdc83b74334855f0920c8a312ffbfe26d3d4fb3b022b10651d637c67840d7495b6fcf8fc84477e6548425d3af9ddbaa9f4cda48b899e709";
        let expected = unhex(&format!(
            "30819f300d06092a864886f70d010101050003818d0030818902818100{n}0203010001"
        ));
        let parts = PublicParts::Rsa {
            modulus: unhex(n),
            exponent: vec![0x01, 0x00, 0x01],
        };
        assert_eq!(parts.to_spki().unwrap(), expected);
        // A token may pad the modulus and exponent with zero bytes.
        let padded = PublicParts::Rsa {
            modulus: unhex(&format!("00{n}")),
            exponent: vec![0, 0, 0x01, 0x00, 0x01],
        };
        assert_eq!(padded.to_spki().unwrap(), expected);
    }

    /// `openssl ec -pubout -outform DER` of a P-384 key.
    #[test]
    fn ec_spki_matches_openssl() {
        let point = "04e81355b53e3fe9b231b7cd895b42a455bba3d304f3ce30d649f55630271f91b92e6db0120de4723ea85a0358ded75c84bedd73382e7df9f82bb4409d7e2e7041154ea4369cf7b2bf0044df3968a0a29554c8abf2cfda62711967ea29b93d7fa4";
        let expected = unhex(&format!(
            "3076301006072a8648ce3d020106052b81040022036200{point}"
        ));
        let parts = PublicParts::Ec {
            curve: SECP384R1,
            point: unhex(point),
        };
        assert_eq!(parts.to_spki().unwrap(), expected);
        // CKA_EC_PARAMS for P-256 and P-384, as the token expects them.
        assert_eq!(
            SECP256R1.to_der().unwrap(),
            [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
        );
        assert_eq!(
            SECP384R1.to_der().unwrap(),
            [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]
        );
    }
}
