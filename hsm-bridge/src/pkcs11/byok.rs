//! BYOK export inside the token: a managed key wrapped under a provider's RSA key without
//! its value ever leaving the device in the clear.
//!
//! Only keys created exportable can take this path. They are wrapped (stored) by the
//! export key, not the root key: the root key's `CKA_UNWRAP_TEMPLATE` forces
//! `CKA_EXTRACTABLE=false` on everything it unwraps, so a key under it can never be
//! wrapped again, by the appliance or by anyone holding the PIN. The export key forces
//! only `CKA_SENSITIVE`; the blob's header says which key wrapped it (`managed`).
//!
//! An export, on one session, destroying every object it made whatever happens:
//! 1. the provider's RSA public key is imported as a session object (`CKA_WRAP`);
//! 2. the blob is unwrapped by the export key into a session object, sensitive and
//!    extractable;
//! 3. by the route the self-test (`byok_check`) proved for this key kind and format:
//!    `CKM_RSA_PKCS_OAEP` of the key itself; or the token's own `CKM_RSA_AES_KEY_WRAP`;
//!    or that composed: an ephemeral AES-256 key generated in the token, the target
//!    wrapped under it with `CKM_AES_KEY_WRAP_KWP` (or `CKM_AES_KEY_WRAP_PAD` where the
//!    self-test found it RFC 5649 for this input), the ephemeral key under the provider's
//!    key with OAEP, `rsa_part || kwp_part`.
//!
//! A format the self-test did not prove is refused with its reason: nothing falls back to
//! a software wrap of an HSM-held key.

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, Rv, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use rsa::traits::PublicKeyParts;

use super::byok_check::{KeyWrap, Route, Target};
use super::error::device;
use super::managed::Blob;
use super::raw::{self, RawError, RawWrap};
use super::root_key::find_or_create_export_key;
use super::{mechanisms, Pkcs11Root};
use crate::{BridgeError, KeySpec, SealKind, WrapMechanism, WrappedKey};

/// A raw call's failure as cryptoki's error, so one `describe` names it.
pub(super) fn raw_error(e: RawError) -> CkError {
    match e {
        RawError::Rv(rv) => match Rv::from(rv) {
            Rv::Error(e) => CkError::Pkcs11(e, Function::WrapKey),
            Rv::Ok => CkError::InvalidValue,
        },
        RawError::Load(_) => CkError::NotSupported,
    }
}

/// `C_UnwrapKey` with the key-wrap mechanism `kind`.
pub(super) fn aes_key_unwrap(
    lib: &std::path::Path,
    s: &Session,
    kind: KeyWrap,
    unwrapping: ObjectHandle,
    blob: &[u8],
    template: &[Attribute],
) -> Result<ObjectHandle, CkError> {
    match kind {
        KeyWrap::Kwp => raw::unwrap_key(
            lib,
            s.handle(),
            &RawWrap::AesKwp,
            unwrapping.handle(),
            blob,
            template,
        )
        .map_err(raw_error),
        KeyWrap::Pad => s.unwrap_key(&Mechanism::AesKeyWrapPad, unwrapping, blob, template),
    }
}

/// `C_WrapKey` with the key-wrap mechanism `kind`.
pub(super) fn aes_key_wrap(
    lib: &std::path::Path,
    s: &Session,
    kind: KeyWrap,
    wrapping: ObjectHandle,
    key: ObjectHandle,
) -> Result<Vec<u8>, CkError> {
    match kind {
        KeyWrap::Kwp => raw::wrap_key(
            lib,
            s.handle(),
            &RawWrap::AesKwp,
            wrapping.handle(),
            key.handle(),
        )
        .map_err(raw_error),
        KeyWrap::Pad => s.wrap_key(&Mechanism::AesKeyWrapPad, wrapping, key),
    }
}

/// The token's own `CKM_RSA_AES_KEY_WRAP` with the format's OAEP hash.
pub(super) fn rsa_aes_key_wrap(
    lib: &std::path::Path,
    s: &Session,
    mechanism: WrapMechanism,
    wrapping: ObjectHandle,
    key: ObjectHandle,
) -> Result<Vec<u8>, CkError> {
    let hash = mechanism.oaep_hash();
    let wrap = RawWrap::RsaAes {
        hash: *mechanisms::hash_type(hash),
        mgf: mechanisms::mgf_type(hash).into(),
    };
    raw::wrap_key(lib, s.handle(), &wrap, wrapping.handle(), key.handle()).map_err(raw_error)
}

/// Imports an RSA public key as a session object that may wrap.
pub(super) fn import_wrapping_key(
    s: &Session,
    key: &rsa::RsaPublicKey,
) -> Result<ObjectHandle, CkError> {
    s.create_object(&[
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(false),
        Attribute::Modulus(key.n().to_bytes_be()),
        Attribute::PublicExponent(key.e().to_bytes_be()),
        Attribute::Wrap(true),
        Attribute::Encrypt(true),
    ])
}

/// A fresh AES-256 key inside the token that may wrap and be wrapped.
pub(super) fn ephemeral_key(s: &Session) -> Result<ObjectHandle, CkError> {
    s.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::Wrap(true),
        ],
    )
}

/// The format's bytes for `target`, by `route`, under the imported `provider` key.
pub(super) fn wrap_by_route(
    lib: &std::path::Path,
    s: &Session,
    route: Route,
    mechanism: WrapMechanism,
    provider: ObjectHandle,
    target: ObjectHandle,
) -> Result<Vec<u8>, CkError> {
    let oaep = mechanisms::oaep(mechanism.oaep_hash(), mechanism.oaep_hash(), &[]);
    match route {
        Route::Oaep => s.wrap_key(&oaep, provider, target),
        Route::Native => rsa_aes_key_wrap(lib, s, mechanism, provider, target),
        Route::Composed(kind) => {
            let ephemeral = ephemeral_key(s)?;
            let out = aes_key_wrap(lib, s, kind, ephemeral, target).and_then(|kwp_part| {
                let mut out = s.wrap_key(&oaep, provider, ephemeral)?;
                out.extend_from_slice(&kwp_part);
                Ok(out)
            });
            let _ = s.destroy_object(ephemeral);
            out
        }
    }
}

/// What the target of an export is unwrapped as: sensitive (the export key forces it
/// anyway) and extractable, for the one wrap it is made for.
fn export_template(spec: KeySpec) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
    ];
    match spec {
        KeySpec::Aes256 => t.extend([
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
        ]),
        KeySpec::Rsa(_) => t.extend([
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::RSA),
        ]),
        KeySpec::EcP256 | KeySpec::EcP384 => t.extend([
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
        ]),
    }
    t
}

impl Pkcs11Root {
    /// The export key, found (or made) on first use.
    pub(super) fn export_key(&self) -> Result<ObjectHandle, BridgeError> {
        if let Some(k) = *self.export_key.lock() {
            return Ok(k);
        }
        let mut found = Err(BridgeError::Unsupported {
            kind: SealKind::Pkcs11,
            op: "export key",
        });
        self.with_session(|s| {
            found = find_or_create_export_key(
                &self.lib,
                s,
                &self.key_label,
                self.generate_keys,
                &self.token_label,
            );
            Ok(())
        })
        .map_err(|e| device("C_OpenSession (export key)", e))?;
        let key = found?;
        *self.export_key.lock() = Some(key);
        Ok(key)
    }

    pub(super) fn export_managed(
        &self,
        key: &WrappedKey,
        wrapping_public_der: &[u8],
        mechanism: WrapMechanism,
    ) -> Result<Vec<u8>, BridgeError> {
        let target = Target::of(key.spec);
        let route = self
            .export_table()
            .route(target, mechanism)
            .map_err(|why| {
                tracing::warn!(key = target.name(), format = mechanism.pkcs11_name(), reason = %why, "BYOK export refused: the HSM cannot produce this format");
                BridgeError::Unsupported {
                    kind: SealKind::Pkcs11,
                    op: "export_wrap in this format (export_support says why)",
                }
            })?;
        let blob = Blob::parse(&key.blob);
        if !blob.exportable {
            return Err(BridgeError::BadInput(
                "this key was generated inside the HSM as non-exportable: the root key that wraps it forces CKA_EXTRACTABLE=false on every unwrap, so no one can wrap it for a provider",
            ));
        }
        let provider = crate::byok::wrapping_key(wrapping_public_der)?;
        let export_key = self.export_key()?;
        let template = export_template(key.spec);
        self.with_session(|s| {
            let provider = import_wrapping_key(s, &provider)?;
            let out = aes_key_unwrap(&self.lib, s, blob.wrap, export_key, blob.inner, &template)
                .and_then(|target| {
                    let out = wrap_by_route(&self.lib, s, route, mechanism, provider, target);
                    let _ = s.destroy_object(target);
                    out
                });
            let _ = s.destroy_object(provider);
            out
        })
        .map_err(|e| match e {
            CkError::Pkcs11(RvError::WrappedKeyInvalid | RvError::EncryptedDataInvalid, _) => {
                BridgeError::BadInput(
                    "the stored key blob does not open under this HSM's export key",
                )
            }
            e => device(&format!("BYOK export ({})", mechanism.pkcs11_name()), e),
        })
    }
}
