//! `C_GenerateKey` and `C_GenerateKeyPair` templates, read into a managed key's
//! creation, or a session key's.
//!
//! - `CKA_TOKEN` true makes a managed key; false or absent (the PKCS#11 default) a
//!   session key: generated in the same boundary, held in memory for the library
//!   instance (never stored), with the objects a managed key's version would have but
//!   `CKA_TOKEN` false and the template's `CKA_LABEL` and `CKA_ID` as given. The two
//!   templates of a pair saying true and false is `CKR_TEMPLATE_INCONSISTENT`.
//! - `CKA_LABEL` is a managed key's name (a valid managed-key name, else
//!   `CKR_ATTRIBUTE_VALUE_INVALID`); absent or empty, a name is generated.
//! - `CKA_ID` is kept as the `pkcs11.id` label (lowercase hex, at most 127 bytes); absent
//!   or empty, the key's objects carry its UUID's 16 bytes.
//! - RSA: `CKA_MODULUS_BITS` 2048, 3072 or 4096 (required), `CKA_PUBLIC_EXPONENT` absent
//!   or 65537. EC: `CKA_EC_PARAMS` the DER OID of P-256 or P-384 (required). ML-DSA:
//!   `CKA_PARAMETER_SET` `CKP_ML_DSA_65`; ML-KEM: `CKP_ML_KEM_768` (required). AES:
//!   `CKA_VALUE_LEN` 32 (required).
//! - Usage flags are what the application would like: a managed key has one usage, so
//!   an RSA pair asked to sign (`CKA_SIGN`/`CKA_VERIFY` true) is a signing key, one asked
//!   only to encrypt, decrypt, wrap or unwrap is an encryption key, and other key types
//!   have their one usage. A flag set true that the key cannot honour (pkcs11-tool and
//!   python-pkcs11 ask for every capability by default, `CKA_DERIVE` on EC keys
//!   included) shows false on the object; a flag
//!   set false that the key would carry true is `CKR_TEMPLATE_INCONSISTENT`.
//! - `CKA_PRIVATE` false on a public key is accepted and shows true: every object of this
//!   token needs a login to be seen.
//! - Every other attribute the object will carry may be given with the value it will
//!   have (`CKA_SENSITIVE` true, `CKA_EXTRACTABLE` false, ...); another value is
//!   `CKR_ATTRIBUTE_VALUE_INVALID` (keys are never extractable); an attribute a key does not take is `CKR_ATTRIBUTE_TYPE_INVALID`.
//! - `CKA_CLASS` or `CKA_KEY_TYPE` contradicting the mechanism, or the two templates
//!   disagreeing on `CKA_LABEL`/`CKA_ID`, is `CKR_TEMPLATE_INCONSISTENT`.

use std::collections::BTreeMap;

use cryptoki_sys::*;

use super::keys::{key_type, ID_LABEL, P256_OID, P384_OID};
use super::{code, refuse, Attr, KeyClass, Value};
use crate::error::Result;
use crate::managed_keys::{Algorithm, CreateKey, Usage};

/// The key-generation mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Rsa,
    Ec,
    Aes,
    MlDsa,
    MlKem,
}

impl Family {
    /// The family a `CKM_*_KEY_PAIR_GEN`/`CKM_AES_KEY_GEN` mechanism generates.
    pub fn of_mechanism(mechanism: CK_MECHANISM_TYPE) -> Option<Self> {
        Some(match mechanism {
            CKM_RSA_PKCS_KEY_PAIR_GEN => Family::Rsa,
            CKM_EC_KEY_PAIR_GEN => Family::Ec,
            CKM_AES_KEY_GEN => Family::Aes,
            CKM_ML_DSA_KEY_PAIR_GEN => Family::MlDsa,
            CKM_ML_KEM_KEY_PAIR_GEN => Family::MlKem,
            _ => return None,
        })
    }

    pub fn is_pair(self) -> bool {
        self != Family::Aes
    }
}

/// A key to create, read from PKCS#11 templates.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub create: CreateKey,
    /// A managed key (`CKA_TOKEN` true), else a session key.
    pub token: bool,
    /// `CKA_LABEL` and `CKA_ID` as given (empty if absent), which a session key's
    /// objects carry.
    pub label: Vec<u8>,
    pub id: Vec<u8>,
}

const LONGEST_ID: usize = 127;

/// The attributes any generated key object carries with a fixed value.
fn fixed(class: KeyClass) -> Vec<Attr> {
    let mut fixed = vec![
        Attr::bool(CKA_PRIVATE, true),
        Attr::bool(CKA_MODIFIABLE, false),
        Attr::bool(CKA_COPYABLE, false),
        Attr::bool(CKA_DESTROYABLE, class != KeyClass::Public),
        Attr::bool(CKA_LOCAL, true),
    ];
    match class {
        KeyClass::Public => fixed.extend([
            Attr::bool(CKA_VERIFY_RECOVER, false),
            Attr::bool(CKA_TRUSTED, false),
        ]),
        KeyClass::Private | KeyClass::Secret => fixed.extend([
            Attr::bool(CKA_SIGN_RECOVER, false),
            Attr::bool(CKA_SENSITIVE, true),
            Attr::bool(CKA_ALWAYS_SENSITIVE, true),
            Attr::bool(CKA_EXTRACTABLE, false),
            Attr::bool(CKA_NEVER_EXTRACTABLE, true),
            Attr::bool(CKA_WRAP_WITH_TRUSTED, false),
            Attr::bool(CKA_ALWAYS_AUTHENTICATE, false),
        ]),
    }
    fixed
}

const USAGE_FLAGS: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_DERIVE,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_ENCAPSULATE,
    CKA_DECAPSULATE,
];

/// What the templates say, gathered before the key's algorithm is decided.
#[derive(Default)]
struct Read {
    label: Option<Vec<u8>>,
    id: Option<Vec<u8>>,
    token: Option<bool>,
    modulus_bits: Option<CK_ULONG>,
    exponent: Option<Vec<u8>>,
    ec_params: Option<Vec<u8>>,
    parameter_set: Option<CK_ULONG>,
    value_len: Option<CK_ULONG>,
    /// Usage flags as given (attribute, value).
    flags: Vec<(CK_ATTRIBUTE_TYPE, bool)>,
}

fn invalid(what: impl Into<String>) -> crate::error::EngineError {
    refuse(code::ATTRIBUTE_VALUE_INVALID, what)
}

fn inconsistent(what: impl Into<String>) -> crate::error::EngineError {
    refuse(code::TEMPLATE_INCONSISTENT, what)
}

/// Keeps `value` in `slot`; both templates of a pair may give it, but alike.
fn agree<T: PartialEq>(slot: &mut Option<T>, value: T, name: &str) -> Result<()> {
    match slot {
        Some(v) if *v != value => Err(inconsistent(format!(
            "the public and private templates give different {name}"
        ))),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

fn bytes(a: &Attr) -> Result<Vec<u8>> {
    match &a.value {
        Value::Bytes(b) => Ok(b.clone()),
        _ => Err(invalid(format!("attribute {:#x} must be bytes", a.kind))),
    }
}

fn ulong(a: &Attr) -> Result<CK_ULONG> {
    match a.value {
        Value::Ulong(v) => Ok(v),
        _ => Err(invalid(format!(
            "attribute {:#x} must be a CK_ULONG",
            a.kind
        ))),
    }
}

fn read(family: Family, class: KeyClass, template: &[Attr], into: &mut Read) -> Result<()> {
    let expected_class = match class {
        KeyClass::Public => CKO_PUBLIC_KEY,
        KeyClass::Private => CKO_PRIVATE_KEY,
        KeyClass::Secret => CKO_SECRET_KEY,
    };
    let fixed = fixed(class);
    for a in template {
        match a.kind {
            CKA_CLASS => {
                if ulong(a)? != expected_class {
                    return Err(inconsistent("CKA_CLASS does not match the mechanism"));
                }
            }
            CKA_KEY_TYPE => {
                if ulong(a)? != key_type(algorithm_guess(family)) {
                    return Err(inconsistent("CKA_KEY_TYPE does not match the mechanism"));
                }
            }
            CKA_TOKEN => agree(&mut into.token, flag(a)?, "CKA_TOKEN values")?,
            CKA_LABEL => agree(&mut into.label, bytes(a)?, "labels")?,
            CKA_ID => agree(&mut into.id, bytes(a)?, "ids")?,
            CKA_MODULUS_BITS if family == Family::Rsa => {
                agree(&mut into.modulus_bits, ulong(a)?, "modulus sizes")?
            }
            CKA_PUBLIC_EXPONENT if family == Family::Rsa => {
                agree(&mut into.exponent, bytes(a)?, "public exponents")?
            }
            CKA_EC_PARAMS if family == Family::Ec => {
                agree(&mut into.ec_params, bytes(a)?, "curves")?
            }
            CKA_PARAMETER_SET if matches!(family, Family::MlDsa | Family::MlKem) => {
                agree(&mut into.parameter_set, ulong(a)?, "parameter sets")?
            }
            CKA_VALUE_LEN if family == Family::Aes => {
                agree(&mut into.value_len, ulong(a)?, "key lengths")?
            }
            CKA_START_DATE | CKA_END_DATE | CKA_SUBJECT => {
                if !matches!(&a.value, Value::Bytes(b) if b.is_empty()) {
                    return Err(invalid(format!(
                        "attribute {:#x} cannot be chosen for a generated key",
                        a.kind
                    )));
                }
            }
            // pkcs11-tool asks for a public (`CKA_PRIVATE` false) public key unless told
            // `--private`. Every object of this token needs a login to be seen, which is
            // stricter than asked, so the request is honoured by being exceeded, as for
            // created objects; the object reports true.
            CKA_PRIVATE if class == KeyClass::Public => match a.value {
                Value::Bool(_) => {}
                _ => return Err(invalid("CKA_PRIVATE must be a CK_BBOOL")),
            },
            kind if USAGE_FLAGS.contains(&kind) => match a.value {
                Value::Bool(v) => into.flags.push((kind, v)),
                _ => return Err(invalid(format!("attribute {kind:#x} must be a CK_BBOOL"))),
            },
            kind => match fixed.iter().find(|f| f.kind == kind) {
                Some(f) if f.value == a.value => {}
                Some(_) => {
                    return Err(invalid(format!(
                        "attribute {kind:#x} cannot take this value: appliance keys are \
                         sensitive and never extractable"
                    )))
                }
                None => {
                    return Err(refuse(
                        code::ATTRIBUTE_TYPE_INVALID,
                        format!("attribute {kind:#x} is not one this key takes"),
                    ))
                }
            },
        }
    }
    Ok(())
}

/// Any algorithm of the family, for its key type.
fn algorithm_guess(family: Family) -> Algorithm {
    match family {
        Family::Rsa => Algorithm::Rsa2048,
        Family::Ec => Algorithm::EcP256,
        Family::Aes => Algorithm::Aes256,
        Family::MlDsa => Algorithm::MlDsa65,
        Family::MlKem => Algorithm::MlKem768,
    }
}

fn incomplete(what: &str) -> crate::error::EngineError {
    refuse(
        code::TEMPLATE_INCOMPLETE,
        format!("the template needs {what}"),
    )
}

fn algorithm(family: Family, r: &Read) -> Result<Algorithm> {
    Ok(match family {
        Family::Rsa => {
            if let Some(e) = &r.exponent {
                let trimmed: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
                if trimmed != [0x01, 0x00, 0x01] {
                    return Err(invalid("CKA_PUBLIC_EXPONENT must be 65537"));
                }
            }
            match r
                .modulus_bits
                .ok_or_else(|| incomplete("CKA_MODULUS_BITS"))?
            {
                2048 => Algorithm::Rsa2048,
                3072 => Algorithm::Rsa3072,
                4096 => Algorithm::Rsa4096,
                _ => return Err(invalid("CKA_MODULUS_BITS must be 2048, 3072 or 4096")),
            }
        }
        Family::Ec => match r.ec_params.as_deref() {
            None => return Err(incomplete("CKA_EC_PARAMS")),
            Some(P256_OID) => Algorithm::EcP256,
            Some(P384_OID) => Algorithm::EcP384,
            Some(_) => {
                return Err(invalid(
                    "CKA_EC_PARAMS must be the DER OID of P-256 or P-384",
                ))
            }
        },
        Family::Aes => match r.value_len {
            None => return Err(incomplete("CKA_VALUE_LEN")),
            Some(32) => Algorithm::Aes256,
            Some(_) => return Err(invalid("CKA_VALUE_LEN must be 32 (AES-256)")),
        },
        Family::MlDsa => match r.parameter_set {
            None => return Err(incomplete("CKA_PARAMETER_SET")),
            Some(CKP_ML_DSA_65) => Algorithm::MlDsa65,
            Some(_) => return Err(invalid("CKA_PARAMETER_SET must be CKP_ML_DSA_65")),
        },
        Family::MlKem => match r.parameter_set {
            None => return Err(incomplete("CKA_PARAMETER_SET")),
            Some(CKP_ML_KEM_768) => Algorithm::MlKem768,
            Some(_) => return Err(invalid("CKA_PARAMETER_SET must be CKP_ML_KEM_768")),
        },
    })
}

/// The usage the flags ask for, and the flags that usage shows true.
fn usage(algorithm: Algorithm, flags: &[(CK_ATTRIBUTE_TYPE, bool)]) -> Result<Usage> {
    let asked = |kinds: &[CK_ATTRIBUTE_TYPE]| flags.iter().any(|(k, v)| *v && kinds.contains(k));
    let usage = if algorithm.usages().len() == 1 {
        algorithm.usages()[0]
    } else if asked(&[CKA_SIGN, CKA_VERIFY]) {
        Usage::SignVerify
    } else if asked(&[CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP, CKA_UNWRAP]) {
        Usage::EncryptDecrypt
    } else {
        algorithm.usages()[0]
    };
    let carried: &[CK_ATTRIBUTE_TYPE] = match (usage, algorithm) {
        (_, Algorithm::MlKem768) => &[CKA_ENCAPSULATE, CKA_DECAPSULATE],
        (Usage::SignVerify, _) => &[CKA_SIGN, CKA_VERIFY],
        (Usage::EncryptDecrypt, _) => &[CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP, CKA_UNWRAP],
    };
    if let Some((kind, _)) = flags.iter().find(|(k, v)| !*v && carried.contains(k)) {
        return Err(inconsistent(format!(
            "attribute {kind:#x} false: a {} key of this usage always has it",
            algorithm.as_str()
        )));
    }
    Ok(usage)
}

/// A key from `C_GenerateKeyPair`'s templates (`public` empty for `C_GenerateKey`, whose
/// template is `private`).
pub fn parse(family: Family, public: &[Attr], private: &[Attr]) -> Result<NewKey> {
    let mut r = Read::default();
    if family.is_pair() {
        read(family, KeyClass::Public, public, &mut r)?;
        read(family, KeyClass::Private, private, &mut r)?;
    } else {
        read(family, KeyClass::Secret, private, &mut r)?;
    }
    let algorithm = algorithm(family, &r)?;
    let usage = usage(algorithm, &r.flags)?;
    let token = r.token.unwrap_or(false);
    let label = r.label.unwrap_or_default();
    let id = r.id.unwrap_or_default();
    // A session key has no managed key's name: its label is only its CKA_LABEL.
    let name = if label.is_empty() || !token {
        format!("pkcs11-{}", uuid::Uuid::new_v4().simple())
    } else {
        String::from_utf8(label.clone()).map_err(|_| invalid("CKA_LABEL must be UTF-8"))?
    };
    let mut labels = BTreeMap::new();
    if !id.is_empty() {
        if id.len() > LONGEST_ID {
            return Err(invalid(format!(
                "CKA_ID is at most {LONGEST_ID} bytes on this token"
            )));
        }
        labels.insert(ID_LABEL.to_string(), hex::encode(&id));
    }
    Ok(NewKey {
        create: CreateKey {
            name,
            algorithm,
            usage: Some(usage),
            labels,
            exportable: false,
            allow_unwrapped_export: false,
        },
        token,
        label,
        id,
    })
}

/// A secret key made from a secret a call receives (`C_UnwrapKey`, `C_DecapsulateKey`,
/// `C_EncapsulateKey`), read from its template.
///
/// The key is AES-256 whatever the call: `CKA_CLASS` `CKO_SECRET_KEY`, `CKA_KEY_TYPE`
/// `CKK_AES` (or `CKK_GENERIC_SECRET` for a KEM's shared secret, which the appliance
/// keeps as an AES-256 key), `CKA_VALUE_LEN` 32 or absent; another class, type or length
/// is `CKR_TEMPLATE_INCONSISTENT`. `CKA_TOKEN` true makes a managed key, read as
/// [`parse`] reads an AES key's template (its label the key's name); false, the PKCS#11
/// default, a session object. Such a key is not `CKA_LOCAL`, not `CKA_ALWAYS_SENSITIVE`
/// and not `CKA_NEVER_EXTRACTABLE`: the template may say so, not the contrary.
#[derive(Debug, Clone)]
pub struct NewSecret {
    pub token: bool,
    pub key: NewKey,
    pub label: Vec<u8>,
    pub id: Vec<u8>,
}

fn flag(a: &Attr) -> Result<bool> {
    match a.value {
        Value::Bool(b) => Ok(b),
        _ => Err(invalid(format!(
            "attribute {:#x} must be a CK_BBOOL",
            a.kind
        ))),
    }
}

/// The key a template asks a received secret to become; `kem` for a shared secret.
pub fn parse_secret(template: &[Attr], kem: bool) -> Result<NewSecret> {
    let mut token = false;
    let mut rest = Vec::with_capacity(template.len() + 1);
    for a in template {
        match a.kind {
            CKA_TOKEN => token = flag(a)?,
            CKA_LOCAL | CKA_ALWAYS_SENSITIVE | CKA_NEVER_EXTRACTABLE => {
                if flag(a)? {
                    return Err(invalid(format!(
                        "attribute {:#x} is false on a key made from a received secret",
                        a.kind
                    )));
                }
            }
            CKA_KEY_GEN_MECHANISM => {
                if ulong(a)? != CK_UNAVAILABLE_INFORMATION {
                    return Err(invalid(
                        "a key made from a received secret has no generation mechanism",
                    ));
                }
            }
            CKA_KEY_TYPE => match ulong(a)? {
                CKK_AES => {}
                CKK_GENERIC_SECRET if kem => {}
                _ => return Err(inconsistent("the key made here is AES-256 (CKK_AES)")),
            },
            CKA_VALUE_LEN => {
                if ulong(a)? != 32 {
                    return Err(inconsistent(
                        "the key made here is AES-256: CKA_VALUE_LEN 32",
                    ));
                }
            }
            _ => rest.push(a.clone()),
        }
    }
    rest.push(Attr::ulong(CKA_VALUE_LEN, 32));
    rest.push(Attr::bool(CKA_TOKEN, token));
    let key = parse(Family::Aes, &[], &rest)?;
    let given = |kind| {
        template
            .iter()
            .find(|a| a.kind == kind)
            .map(bytes)
            .transpose()
            .map(Option::unwrap_or_default)
    };
    Ok(NewSecret {
        token,
        key,
        label: given(CKA_LABEL)?,
        id: given(CKA_ID)?,
    })
}

/// The attributes of a session secret key made from a received secret: AES-256, for
/// encryption and decryption only.
pub fn session_secret(new: &NewSecret) -> Vec<Attr> {
    vec![
        Attr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        Attr::ulong(CKA_KEY_TYPE, CKK_AES),
        Attr::bytes(CKA_ID, new.id.clone()),
        Attr::bytes(CKA_LABEL, new.label.clone()),
        Attr::bool(CKA_TOKEN, false),
        Attr::bool(CKA_PRIVATE, true),
        Attr::bool(CKA_MODIFIABLE, true),
        // A copy would hold the secret again; C_CopyObject does not take secret keys.
        Attr::bool(CKA_COPYABLE, false),
        Attr::bool(CKA_DESTROYABLE, true),
        Attr::bytes(CKA_START_DATE, Vec::new()),
        Attr::bytes(CKA_END_DATE, Vec::new()),
        Attr::bool(CKA_DERIVE, false),
        Attr::bool(CKA_LOCAL, false),
        Attr::ulong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION),
        Attr::bool(CKA_ENCRYPT, true),
        Attr::bool(CKA_DECRYPT, true),
        Attr::bool(CKA_WRAP, false),
        Attr::bool(CKA_UNWRAP, false),
        Attr::bool(CKA_SIGN, false),
        Attr::bool(CKA_VERIFY, false),
        Attr::bool(CKA_SIGN_RECOVER, false),
        Attr::bool(CKA_TRUSTED, false),
        Attr::bool(CKA_WRAP_WITH_TRUSTED, false),
        Attr::bool(CKA_ALWAYS_AUTHENTICATE, false),
        Attr::bool(CKA_SENSITIVE, true),
        Attr::bool(CKA_ALWAYS_SENSITIVE, false),
        Attr::bool(CKA_EXTRACTABLE, false),
        Attr::bool(CKA_NEVER_EXTRACTABLE, false),
        Attr::ulong(CKA_VALUE_LEN, 32),
    ]
}
