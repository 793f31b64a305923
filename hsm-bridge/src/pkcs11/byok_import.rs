//! BYOK import inside the token, in Vault's format: the caller wrapped an ephemeral
//! AES-256 key with RSA-OAEP under the mount's wrapping key, and the target key under that
//! AES key with RFC 5649. The wrapping key is a managed RSA key (a blob under the root
//! key, `managed`); an import, on one session, destroying every object it made whatever
//! happens:
//! 1. the wrapping key's blob is unwrapped by the root key into a session object,
//!    sensitive, not extractable, whose only use is `CKA_UNWRAP`;
//! 2. `C_UnwrapKey(CKM_RSA_PKCS_OAEP)` makes the ephemeral key a session object, sensitive,
//!    not extractable, whose only use is `CKA_UNWRAP`: its value never leaves the token;
//! 3. `C_UnwrapKey` with the AES key wrap the self-test proved RFC 5649 makes the target a
//!    generic secret, read once (`CKA_VALUE`): the caller is importing it as a software
//!    key under the barrier, which is what Vault's transit keys are.
//!
//! The start-up self-test (`ImportTable::measure`) runs the same calls on known material
//! (a software RSA key imported into the token, a known AES key, an odd-length secret) and
//! compares with the software computation, per OAEP hash: tokens list mechanisms whose
//! parameters they refuse (SoftHSM2 2.6 does OAEP with SHA-1 only) or get wrong
//! (SoftHSM2's `CKM_AES_KEY_WRAP_PAD` is not RFC 5649). A hash it did not prove is refused
//! with the reason, never unwrapped in software.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{Oaep, RsaPrivateKey};
use zeroize::Zeroizing;

use super::byok::aes_key_unwrap;
use super::byok_check::{ckr, hash_name, probe_key, random, KeyWrap};
use super::error::{describe, device};
use super::managed::Blob;
use super::{mechanisms, Pkcs11Root};
use crate::{BridgeError, HashAlg, ImportError, WrappedKey};

/// What the self-test found, per OAEP hash: the AES key wrap to use after it.
pub(super) struct ImportTable {
    entries: Vec<(HashAlg, Result<KeyWrap, String>)>,
}

impl ImportTable {
    pub(super) fn route(&self, hash: HashAlg) -> Result<KeyWrap, String> {
        self.entries
            .iter()
            .find(|(h, _)| *h == hash)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| Err(format!("OAEP with {} was not self-tested", hash_name(hash))))
    }

    fn everywhere(reason: &str) -> ImportTable {
        ImportTable {
            entries: HashAlg::ALL
                .iter()
                .map(|h| (*h, Err(reason.to_string())))
                .collect(),
        }
    }

    fn log(&self, token: &str) {
        for (hash, result) in &self.entries {
            match result {
                Ok(wrap) => {
                    tracing::info!(token = %token, oaep = hash_name(*hash), key_wrap = wrap.name(), "BYOK import: unwrapped inside the HSM")
                }
                Err(why) => {
                    tracing::info!(token = %token, oaep = hash_name(*hash), reason = %why, "BYOK import: not supported inside the HSM")
                }
            }
        }
    }
}

/// The attributes of an unwrapped key whose one use is unwrapping, never readable.
fn unwrapper(class: ObjectClass, key_type: KeyType) -> Vec<Attribute> {
    vec![
        Attribute::Class(class),
        Attribute::KeyType(key_type),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Unwrap(true),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
    ]
}

/// The target as it is unwrapped: a generic secret whose value is read once.
fn readable_secret() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ]
}

fn value_len(s: &Session, key: ObjectHandle) -> Result<u64, CkError> {
    for a in s.get_attributes(key, &[AttributeType::ValueLen])? {
        if let Attribute::ValueLen(len) = a {
            return Ok(len.into());
        }
    }
    Err(CkError::Pkcs11(
        RvError::AttributeTypeInvalid,
        cryptoki::context::Function::GetAttributeValue,
    ))
}

fn value(s: &Session, key: ObjectHandle) -> Result<Zeroizing<Vec<u8>>, CkError> {
    for a in s.get_attributes(key, &[AttributeType::Value])? {
        if let Attribute::Value(v) = a {
            return Ok(Zeroizing::new(v));
        }
    }
    Err(CkError::Pkcs11(
        RvError::AttributeTypeInvalid,
        cryptoki::context::Function::GetAttributeValue,
    ))
}

/// Whether the token refused the bytes it was asked to unwrap (rather than failing).
/// Kryoptic passes OpenSSL's padding and integrity failures on as `CKR_DEVICE_ERROR`, and
/// SoftHSM2 its own as `CKR_GENERAL_ERROR`: in an unwrap of the caller's bytes they count
/// as the bytes' fault.
fn refused_input(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::DeviceError
                | RvError::FunctionFailed
                | RvError::WrappedKeyInvalid
                | RvError::WrappedKeyLenRange
                | RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::DataInvalid
                | RvError::DataLenRange
                | RvError::KeySizeRange
                | RvError::GeneralError,
            _
        )
    )
}

/// Steps 2 and 3 on a session where `wrapping` is an RSA private key that may unwrap; the
/// objects made are pushed to `made` as they appear, for the caller to destroy.
fn unwrap_chain(
    lib: &std::path::Path,
    s: &Session,
    wrapping: ObjectHandle,
    hash: HashAlg,
    key_wrap: KeyWrap,
    (wrapped_ephemeral, wrapped_target): (&[u8], &[u8]),
    made: &mut Vec<ObjectHandle>,
) -> Result<Zeroizing<Vec<u8>>, ImportError> {
    let oaep = mechanisms::oaep(hash, hash, &[]);
    let ephemeral = s
        .unwrap_key(
            &oaep,
            wrapping,
            wrapped_ephemeral,
            &unwrapper(ObjectClass::SECRET_KEY, KeyType::AES),
        )
        .map_err(|e| match e {
            e if refused_input(&e) => ImportError::Ephemeral,
            e => device("C_UnwrapKey (CKM_RSA_PKCS_OAEP)", e).into(),
        })?;
    made.push(ephemeral);
    let len = value_len(s, ephemeral).map_err(|e| device("C_GetAttributeValue", e))?;
    if len != 32 {
        return Err(ImportError::EphemeralSize);
    }
    let target = aes_key_unwrap(
        lib,
        s,
        key_wrap,
        ephemeral,
        wrapped_target,
        &readable_secret(),
    )
    .map_err(|e| match e {
        e if refused_input(&e) => ImportError::Target,
        e => device(&format!("C_UnwrapKey ({})", key_wrap.name()), e).into(),
    })?;
    made.push(target);
    value(s, target).map_err(|e| device("C_GetAttributeValue (the imported key)", e).into())
}

fn destroy(s: &Session, made: &mut Vec<ObjectHandle>) {
    for o in made.drain(..).rev() {
        if let Err(e) = s.destroy_object(o) {
            tracing::warn!(error = %describe(&e), "C_DestroyObject failed after a BYOK import; the session object goes with its session");
        }
    }
}

impl Pkcs11Root {
    /// The OAEP hashes the token unwraps a BYOK import with; measured once, logged.
    pub(super) fn import_table(&self) -> &ImportTable {
        self.imports.get_or_init(|| {
            let table = self.measure_imports();
            table.log(&self.token_label);
            table
        })
    }

    fn measure_imports(&self) -> ImportTable {
        let Some(software) = probe_key() else {
            return ImportTable::everywhere("the self-test could not make its software RSA key");
        };
        let mut made = Vec::new();
        let result = self.with_session(|s| {
            let table = ImportProbe::run(&self.lib, s, software, &mut made);
            destroy(s, &mut made);
            Ok(table)
        });
        result.unwrap_or_else(|e| {
            ImportTable::everywhere(&format!(
                "the self-test could not open a session: {}",
                describe(&e)
            ))
        })
    }

    pub(super) fn import_managed(
        &self,
        key: &WrappedKey,
        hash: HashAlg,
        wrapped_ephemeral: &[u8],
        wrapped_target: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ImportError> {
        let key_wrap = self.import_table().route(hash).map_err(|why| {
            tracing::warn!(oaep = hash_name(hash), reason = %why, "BYOK import refused: the HSM cannot unwrap it");
            ImportError::Bridge(super::error::unsupported(
                "import_unwrap with this hash (import_support says why)",
            ))
        })?;
        let blob = Blob::parse(&key.blob);
        if blob.exportable {
            return Err(BridgeError::BadInput(
                "a BYOK wrapping key is generated unexportable; this blob is an exportable key's",
            )
            .into());
        }
        let root = *self.key.lock();
        // One attempt: the objects of a lost session are gone with it, and the caller may
        // send the import again.
        self.with_session(|s| {
            let mut made = Vec::new();
            let result = aes_key_unwrap(
                &self.lib,
                s,
                blob.wrap,
                root,
                blob.inner,
                &unwrapper(ObjectClass::PRIVATE_KEY, KeyType::RSA),
            )
            .map_err(|e| match e {
                CkError::Pkcs11(RvError::WrappedKeyInvalid | RvError::EncryptedDataInvalid, _) => {
                    ImportError::Bridge(BridgeError::BadInput(
                        "the stored wrapping key does not open under this HSM's root key",
                    ))
                }
                e => device("C_UnwrapKey (the BYOK wrapping key)", e).into(),
            })
            .and_then(|wrapping| {
                made.push(wrapping);
                unwrap_chain(
                    &self.lib,
                    s,
                    wrapping,
                    hash,
                    key_wrap,
                    (wrapped_ephemeral, wrapped_target),
                    &mut made,
                )
            });
            destroy(s, &mut made);
            Ok(result)
        })
        .map_err(|e| ImportError::from(device("C_OpenSession (BYOK import)", e)))?
    }
}

/// The self-test's known material and the objects it put into the token.
struct ImportProbe<'a> {
    lib: &'a std::path::Path,
    s: &'a Session,
    software: &'a RsaPrivateKey,
    secret: Zeroizing<[u8; 35]>,
}

impl<'a> ImportProbe<'a> {
    fn run(
        lib: &'a std::path::Path,
        s: &'a Session,
        software: &'a RsaPrivateKey,
        made: &mut Vec<ObjectHandle>,
    ) -> ImportTable {
        let probe = ImportProbe {
            lib,
            s,
            software,
            secret: random(),
        };
        let wrapping = match probe.import_rsa() {
            Ok(h) => {
                made.push(h);
                h
            }
            Err(e) => {
                return ImportTable::everywhere(&format!(
                    "the self-test could not put its known RSA key into the token: {}",
                    describe(&e)
                ))
            }
        };
        let key_wrap = match probe.key_wrap(made) {
            Ok(k) => k,
            Err(why) => return ImportTable::everywhere(&why),
        };
        let entries = HashAlg::ALL
            .iter()
            .map(|hash| (*hash, probe.oaep(wrapping, *hash, key_wrap, made)))
            .collect();
        ImportTable { entries }
    }

    /// The software key's private half as a session object that may only unwrap.
    fn import_rsa(&self) -> Result<ObjectHandle, CkError> {
        let k = self.software;
        let [p, q] = k.primes() else {
            return Err(CkError::InvalidValue);
        };
        let bytes = |v: Option<&rsa::BigUint>| v.map(|v| v.to_bytes_be()).unwrap_or_default();
        let mut template = unwrapper(ObjectClass::PRIVATE_KEY, KeyType::RSA);
        template.extend([
            Attribute::Modulus(k.n().to_bytes_be()),
            Attribute::PublicExponent(k.e().to_bytes_be()),
            Attribute::PrivateExponent(k.d().to_bytes_be()),
            Attribute::Prime1(p.to_bytes_be()),
            Attribute::Prime2(q.to_bytes_be()),
            Attribute::Exponent1(bytes(k.dp())),
            Attribute::Exponent2(bytes(k.dq())),
            Attribute::Coefficient(
                k.crt_coefficient()
                    .map(|c| c.to_bytes_be())
                    .unwrap_or_default(),
            ),
        ]);
        self.s.create_object(&template)
    }

    /// The first AES key wrap that unwraps RFC 5649 of an odd-length secret to its bytes.
    fn key_wrap(&self, made: &mut Vec<ObjectHandle>) -> Result<KeyWrap, String> {
        let kek: Zeroizing<[u8; 32]> = random();
        let mut template = unwrapper(ObjectClass::SECRET_KEY, KeyType::AES);
        template.push(Attribute::Value(kek.to_vec()));
        let handle = self.s.create_object(&template).map_err(|e| {
            format!(
                "the self-test could not put its known AES key into the token: {}",
                describe(&e)
            )
        })?;
        made.push(handle);
        let wrapped = crate::byok::kwp_wrap(kek.as_slice(), self.secret.as_slice())
            .map_err(|e| e.to_string())?;
        let mut why = Vec::new();
        for kind in [KeyWrap::Kwp, KeyWrap::Pad] {
            match self.unwrap_secret(kind, handle, &wrapped, made) {
                Ok(()) => return Ok(kind),
                Err(e) => why.push(e),
            }
        }
        Err(format!(
            "no AES key wrap unwraps RFC 5649 in C_UnwrapKey: {}",
            why.join("; ")
        ))
    }

    fn unwrap_secret(
        &self,
        kind: KeyWrap,
        kek: ObjectHandle,
        wrapped: &[u8],
        made: &mut Vec<ObjectHandle>,
    ) -> Result<(), String> {
        let name = kind.name();
        let target = aes_key_unwrap(self.lib, self.s, kind, kek, wrapped, &readable_secret())
            .map_err(|e| format!("{name} in C_UnwrapKey answers {}", ckr(&e)))?;
        made.push(target);
        match value(self.s, target) {
            Ok(v) if v.as_slice() == self.secret.as_slice() => Ok(()),
            Ok(_) => Err(format!(
                "{name} in C_UnwrapKey does not give back the RFC 5649 input"
            )),
            Err(e) => Err(format!(
                "the key {name} unwrapped cannot be read: {}",
                ckr(&e)
            )),
        }
    }

    /// The whole chain for one hash: a known AES key under the software key with OAEP,
    /// the odd-length secret under it.
    fn oaep(
        &self,
        wrapping: ObjectHandle,
        hash: HashAlg,
        key_wrap: KeyWrap,
        made: &mut Vec<ObjectHandle>,
    ) -> Result<KeyWrap, String> {
        let name = format!("CKM_RSA_PKCS_OAEP with {} in C_UnwrapKey", hash_name(hash));
        let ephemeral: Zeroizing<[u8; 32]> = random();
        let wrapped_ephemeral = self
            .software
            .to_public_key()
            .encrypt(&mut rand::thread_rng(), padding(hash), ephemeral.as_slice())
            .map_err(|e| {
                format!(
                    "the self-test could not encrypt with OAEP {}: {e}",
                    hash_name(hash)
                )
            })?;
        let wrapped_target = crate::byok::kwp_wrap(ephemeral.as_slice(), self.secret.as_slice())
            .map_err(|e| e.to_string())?;
        let got = unwrap_chain(
            self.lib,
            self.s,
            wrapping,
            hash,
            key_wrap,
            (&wrapped_ephemeral, &wrapped_target),
            made,
        )
        .map_err(|e| match e {
            ImportError::EphemeralSize => format!(
                "{name}: the unwrapped AES key does not report CKA_VALUE_LEN 32, so the ephemeral key cannot be checked to be AES-256"
            ),
            ImportError::Bridge(b) => format!("{name}: {b}"),
            other => format!("{name}: {other}"),
        })?;
        if got.as_slice() == self.secret.as_slice() {
            Ok(key_wrap)
        } else {
            Err(format!("{name} unwraps to another key"))
        }
    }
}

fn padding(hash: HashAlg) -> Oaep {
    match hash {
        HashAlg::Sha1 => Oaep::new::<sha1::Sha1>(),
        HashAlg::Sha224 => Oaep::new::<sha2::Sha224>(),
        HashAlg::Sha256 => Oaep::new::<sha2::Sha256>(),
        HashAlg::Sha384 => Oaep::new::<sha2::Sha384>(),
        HashAlg::Sha512 => Oaep::new::<sha2::Sha512>(),
    }
}
