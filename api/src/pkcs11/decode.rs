//! Wire values to typed engine requests: attributes, object references, and mechanisms
//! with their parameters, refused with the return value PKCS#11 gives each mistake
//! (`CKR_MECHANISM_INVALID` for a mechanism the call does not take,
//! `CKR_MECHANISM_PARAM_INVALID` for a parameter it does not accept). Key templates are
//! read by the engine (`engine::pkcs11::keygen`, `engine::pkcs11::objects`), which knows
//! what an object may carry.
//!
//! Rules chosen where PKCS#11 leaves room:
//! - PSS: the parameter's hash must be the mechanism's own for `CKM_SHA*_RSA_PKCS_PSS`;
//!   the MGF is any of MGF1 with SHA-1/224/256/384/512.
//! - OAEP: hash and MGF as given (the boundary decides which it can do); the label is
//!   OAEP's encoding parameter.
//! - GCM: the tag is 96 to 128 bits in whole bytes; the IV is not empty.
//! - CBC-PAD: the IV is 16 bytes.
//! - AES-KW/KWP: no parameter, or the RFC's default initial value; OAEP as a wrapping
//!   mechanism takes no label.
//! - ML-DSA: no parameter is hedged signing with an empty context; with
//!   `CK_SIGN_ADDITIONAL_CONTEXT`, `CKH_DETERMINISTIC_REQUIRED` is FIPS 204's
//!   deterministic variant, `CKH_HEDGE_PREFERRED`/`CKH_HEDGE_REQUIRED` hedged, the context
//!   at most 255 bytes.

use std::borrow::Cow;

use engine::managed_keys::scheme::{CipherScheme, Hash, SignScheme, WrapScheme};
use engine::ops::Decoded;
use engine::pkcs11::keygen::{self, Family};
use engine::pkcs11::{
    code, objects, refuse, Attr, Handle, KeyClass, NewKey, NewObject, NewSecret, Value,
};
use pkcs11_wire::ck::*;
use pkcs11_wire::{
    rules, AttrValue, Attribute, KeyClass as WireClass, Mechanism, ObjectRef, Params,
};

pub fn attributes(template: &[Attribute]) -> Vec<Attr> {
    template
        .iter()
        .map(|a| Attr {
            kind: a.kind,
            value: match &a.value {
                AttrValue::Bool(b) => Value::Bool(*b),
                AttrValue::Ulong(v) => Value::Ulong(*v),
                AttrValue::Bytes(b) => Value::Bytes(b.clone()),
                AttrValue::Ulongs(v) => Value::Ulongs(v.clone()),
            },
        })
        .collect()
}

pub fn handle(object: ObjectRef) -> Handle {
    match object {
        ObjectRef::Key {
            key,
            version,
            class,
        } => Handle::Key {
            key: uuid::Uuid::from_bytes(key),
            version,
            class: match class {
                WireClass::Public => KeyClass::Public,
                WireClass::Private => KeyClass::Private,
                WireClass::Secret => KeyClass::Secret,
            },
        },
        ObjectRef::Stored { id } => Handle::Stored(uuid::Uuid::from_bytes(id)),
        ObjectRef::Session { id } => Handle::Session(id),
    }
}

/// The object a `C_CreateObject` template describes.
pub fn new_object(template: &[Attribute]) -> Decoded<NewObject> {
    objects::new_object(&attributes(template))
}

fn mechanism_invalid(m: &Mechanism, what: &str) -> engine::EngineError {
    refuse(
        code::MECHANISM_INVALID,
        format!("{} cannot {what}", mechanism_name(m.kind)),
    )
}

fn param_invalid(m: &Mechanism, why: &str) -> engine::EngineError {
    refuse(
        code::MECHANISM_PARAM_INVALID,
        format!("{}: {why}", mechanism_name(m.kind)),
    )
}

/// The key a generation call describes; `public` is empty for `C_GenerateKey`.
pub fn key_generation(
    m: &Mechanism,
    public: &[Attribute],
    private: &[Attribute],
    pair: bool,
) -> Decoded<NewKey> {
    let family = Family::of_mechanism(m.kind)
        .filter(|f| f.is_pair() == pair)
        .ok_or_else(|| mechanism_invalid(m, "generate this kind of key"))?;
    if m.params != Params::None {
        return Err(param_invalid(m, "takes no parameter"));
    }
    keygen::parse(family, &attributes(public), &attributes(private))
}

fn hash(kind: CK_MECHANISM_TYPE) -> Option<Hash> {
    Some(match kind {
        CKM_SHA_1 => Hash::Sha1,
        CKM_SHA224 => Hash::Sha224,
        CKM_SHA256 => Hash::Sha256,
        CKM_SHA384 => Hash::Sha384,
        CKM_SHA512 => Hash::Sha512,
        _ => return None,
    })
}

fn mgf(kind: CK_ULONG) -> Option<Hash> {
    Some(match kind {
        CKG_MGF1_SHA1 => Hash::Sha1,
        CKG_MGF1_SHA224 => Hash::Sha224,
        CKG_MGF1_SHA256 => Hash::Sha256,
        CKG_MGF1_SHA384 => Hash::Sha384,
        CKG_MGF1_SHA512 => Hash::Sha512,
        _ => return None,
    })
}

fn no_params(m: &Mechanism) -> Decoded<()> {
    match m.params {
        Params::None => Ok(()),
        _ => Err(param_invalid(m, "takes no parameter")),
    }
}

/// The parameter rules the library also applies at `*Init` (`pkcs11_wire::rules`).
fn check_params(m: &Mechanism) -> Decoded<()> {
    match rules::param_problem(m) {
        Some(why) => Err(param_invalid(m, why)),
        None => Ok(()),
    }
}

/// How `C_Sign`/`C_Verify` sign with `m`.
pub fn sign_scheme(m: &Mechanism) -> Decoded<SignScheme> {
    let pkcs1 = |h: Option<Hash>| {
        no_params(m)?;
        Ok(SignScheme::RsaPkcs1 { hash: h })
    };
    let ecdsa = |h: Option<Hash>| {
        no_params(m)?;
        Ok(SignScheme::EcdsaRaw { hash: h })
    };
    let pss = |h: Option<Hash>| match check_params(m).map(|()| &m.params)? {
        Params::Pss {
            hash: digest,
            mgf: g,
            salt_len,
        } => {
            let digest = hash(*digest).ok_or_else(|| param_invalid(m, "unknown hash"))?;
            Ok(SignScheme::RsaPss {
                hash: h,
                digest,
                mgf: mgf(*g).ok_or_else(|| param_invalid(m, "unknown MGF"))?,
                salt_len: usize::try_from(*salt_len)
                    .map_err(|_| param_invalid(m, "salt too long"))?,
            })
        }
        _ => Err(param_invalid(m, "needs CK_RSA_PKCS_PSS_PARAMS")),
    };
    match m.kind {
        CKM_RSA_PKCS => pkcs1(None),
        CKM_SHA256_RSA_PKCS => pkcs1(Some(Hash::Sha256)),
        CKM_SHA384_RSA_PKCS => pkcs1(Some(Hash::Sha384)),
        CKM_SHA512_RSA_PKCS => pkcs1(Some(Hash::Sha512)),
        CKM_RSA_PKCS_PSS => pss(None),
        CKM_SHA256_RSA_PKCS_PSS => pss(Some(Hash::Sha256)),
        CKM_SHA384_RSA_PKCS_PSS => pss(Some(Hash::Sha384)),
        CKM_SHA512_RSA_PKCS_PSS => pss(Some(Hash::Sha512)),
        CKM_ECDSA => ecdsa(None),
        CKM_ECDSA_SHA256 => ecdsa(Some(Hash::Sha256)),
        CKM_ECDSA_SHA384 => ecdsa(Some(Hash::Sha384)),
        CKM_ECDSA_SHA512 => ecdsa(Some(Hash::Sha512)),
        CKM_ML_DSA => match check_params(m).map(|()| &m.params)? {
            Params::None => Ok(SignScheme::MlDsa {
                context: Vec::new(),
                deterministic: false,
            }),
            Params::SignContext { hedge, context } => {
                let deterministic = match *hedge {
                    CKH_HEDGE_PREFERRED | CKH_HEDGE_REQUIRED => false,
                    CKH_DETERMINISTIC_REQUIRED => true,
                    _ => return Err(param_invalid(m, "unknown hedging")),
                };
                Ok(SignScheme::MlDsa {
                    context: context.clone(),
                    deterministic,
                })
            }
            _ => Err(param_invalid(m, "needs CK_SIGN_ADDITIONAL_CONTEXT or none")),
        },
        _ => Err(mechanism_invalid(m, "sign or verify")),
    }
}

/// How `C_Encrypt`/`C_Decrypt` work with `m`.
pub fn cipher_scheme(m: &Mechanism) -> Decoded<CipherScheme> {
    // A mechanism this does not decode stays CKR_MECHANISM_INVALID, whatever its
    // parameter.
    if matches!(m.kind, CKM_RSA_PKCS_OAEP | CKM_AES_GCM | CKM_AES_CBC_PAD) {
        check_params(m)?;
    }
    match (m.kind, &m.params) {
        (CKM_RSA_PKCS, Params::None) => Ok(CipherScheme::RsaPkcs1),
        (
            CKM_RSA_PKCS_OAEP,
            Params::Oaep {
                hash: h,
                mgf: g,
                label,
            },
        ) => Ok(CipherScheme::RsaOaep {
            hash: hash(*h).ok_or_else(|| param_invalid(m, "unknown hash"))?,
            mgf: mgf(*g).ok_or_else(|| param_invalid(m, "unknown MGF"))?,
            label: label.clone(),
        }),
        (CKM_AES_GCM, Params::Gcm { iv, aad, tag_bits }) => Ok(CipherScheme::AesGcm {
            iv: iv.clone(),
            aad: aad.clone(),
            tag_len: (*tag_bits / 8) as usize,
        }),
        (CKM_AES_CBC_PAD, Params::Iv(iv)) => Ok(CipherScheme::AesCbcPad {
            iv: iv
                .as_slice()
                .try_into()
                .map_err(|_| param_invalid(m, "the IV is 16 bytes"))?,
        }),
        (CKM_RSA_PKCS | CKM_RSA_PKCS_OAEP | CKM_AES_GCM | CKM_AES_CBC_PAD, _) => {
            Err(param_invalid(m, "wrong parameter for this mechanism"))
        }
        _ => Err(mechanism_invalid(m, "encrypt or decrypt")),
    }
}

/// `C_Digest`'s hash.
pub fn digest(m: &Mechanism) -> Decoded<Hash> {
    match m.kind {
        CKM_SHA256 | CKM_SHA384 | CKM_SHA512 => {
            no_params(m)?;
            hash(m.kind).ok_or_else(|| mechanism_invalid(m, "digest"))
        }
        _ => Err(mechanism_invalid(m, "digest")),
    }
}

/// A wrapping mechanism (`C_WrapKey`, `C_UnwrapKey`).
pub fn wrapping(m: &Mechanism) -> Decoded<WrapScheme> {
    // RFC 3394's and RFC 5649's default initial values, the only ones used here.
    const KW_IV: &[u8] = &[0xa6; 8];
    const KWP_IV: &[u8] = &[0xa6, 0x59, 0x59, 0xa6];
    let default_iv = |iv: &[u8], default: &[u8]| {
        if iv.is_empty() || iv == default {
            Ok(())
        } else {
            Err(param_invalid(m, "only the default initial value is used"))
        }
    };
    match (m.kind, &m.params) {
        (CKM_AES_KEY_WRAP, Params::None) => Ok(WrapScheme::AesKeyWrap),
        (CKM_AES_KEY_WRAP, Params::Iv(iv)) => {
            default_iv(iv, KW_IV).map(|()| WrapScheme::AesKeyWrap)
        }
        (CKM_AES_KEY_WRAP_KWP, Params::None) => Ok(WrapScheme::AesKeyWrapPad),
        (CKM_AES_KEY_WRAP_KWP, Params::Iv(iv)) => {
            default_iv(iv, KWP_IV).map(|()| WrapScheme::AesKeyWrapPad)
        }
        (
            CKM_RSA_PKCS_OAEP,
            Params::Oaep {
                hash: h,
                mgf: g,
                label,
            },
        ) => {
            if !label.is_empty() {
                return Err(param_invalid(m, "keys are unwrapped without an OAEP label"));
            }
            Ok(WrapScheme::RsaOaep {
                hash: hash(*h).ok_or_else(|| param_invalid(m, "unknown hash"))?,
                mgf: mgf(*g).ok_or_else(|| param_invalid(m, "unknown MGF"))?,
            })
        }
        (CKM_AES_KEY_WRAP | CKM_AES_KEY_WRAP_KWP | CKM_RSA_PKCS_OAEP, _) => {
            Err(param_invalid(m, "wrong parameter for this mechanism"))
        }
        _ => Err(mechanism_invalid(m, "wrap or unwrap")),
    }
}

/// The key a secret received by `C_UnwrapKey` (`kem` false) or a KEM becomes.
pub fn secret_template(template: &[Attribute], kem: bool) -> Decoded<NewSecret> {
    keygen::parse_secret(&attributes(template), kem)
}

/// A key-encapsulation mechanism.
pub fn encapsulation(m: &Mechanism) -> Decoded<()> {
    match m.kind {
        CKM_ML_KEM => no_params(m),
        _ => Err(mechanism_invalid(m, "encapsulate or decapsulate")),
    }
}

/// A mechanism's name for the audit log.
pub fn mechanism_name(kind: CK_MECHANISM_TYPE) -> Cow<'static, str> {
    let name = match kind {
        CKM_RSA_PKCS_KEY_PAIR_GEN => "CKM_RSA_PKCS_KEY_PAIR_GEN",
        CKM_RSA_PKCS => "CKM_RSA_PKCS",
        CKM_RSA_PKCS_PSS => "CKM_RSA_PKCS_PSS",
        CKM_RSA_PKCS_OAEP => "CKM_RSA_PKCS_OAEP",
        CKM_SHA256_RSA_PKCS => "CKM_SHA256_RSA_PKCS",
        CKM_SHA384_RSA_PKCS => "CKM_SHA384_RSA_PKCS",
        CKM_SHA512_RSA_PKCS => "CKM_SHA512_RSA_PKCS",
        CKM_SHA256_RSA_PKCS_PSS => "CKM_SHA256_RSA_PKCS_PSS",
        CKM_SHA384_RSA_PKCS_PSS => "CKM_SHA384_RSA_PKCS_PSS",
        CKM_SHA512_RSA_PKCS_PSS => "CKM_SHA512_RSA_PKCS_PSS",
        CKM_EC_KEY_PAIR_GEN => "CKM_EC_KEY_PAIR_GEN",
        CKM_ECDSA => "CKM_ECDSA",
        CKM_ECDSA_SHA256 => "CKM_ECDSA_SHA256",
        CKM_ECDSA_SHA384 => "CKM_ECDSA_SHA384",
        CKM_ECDSA_SHA512 => "CKM_ECDSA_SHA512",
        CKM_AES_KEY_GEN => "CKM_AES_KEY_GEN",
        CKM_AES_GCM => "CKM_AES_GCM",
        CKM_AES_CBC_PAD => "CKM_AES_CBC_PAD",
        CKM_AES_KEY_WRAP => "CKM_AES_KEY_WRAP",
        CKM_AES_KEY_WRAP_KWP => "CKM_AES_KEY_WRAP_KWP",
        CKM_SHA256 => "CKM_SHA256",
        CKM_SHA384 => "CKM_SHA384",
        CKM_SHA512 => "CKM_SHA512",
        CKM_ML_DSA_KEY_PAIR_GEN => "CKM_ML_DSA_KEY_PAIR_GEN",
        CKM_ML_DSA => "CKM_ML_DSA",
        CKM_ML_KEM_KEY_PAIR_GEN => "CKM_ML_KEM_KEY_PAIR_GEN",
        CKM_ML_KEM => "CKM_ML_KEM",
        other => return Cow::Owned(format!("{other:#x}")),
    };
    Cow::Borrowed(name)
}
