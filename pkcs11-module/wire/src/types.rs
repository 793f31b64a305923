//! The values calls carry: attributes, mechanisms, object references, token facts.
//! Numbers are PKCS#11's (`CKA_*`, `CKM_*`, ...) in `CK_ULONG`; postcard writes integers
//! as varints, so a 32-bit and a 64-bit side read each other's numbers alike.

use serde::{Deserialize, Serialize};

use crate::ck;

/// An attribute, its value typed by what PKCS#11 says the attribute holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub kind: ck::CK_ATTRIBUTE_TYPE,
    pub value: AttrValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttrValue {
    /// `CK_BBOOL`.
    Bool(bool),
    /// `CK_ULONG` and its aliases (`CK_OBJECT_CLASS`, `CK_KEY_TYPE`, ...).
    Ulong(ck::CK_ULONG),
    /// Byte arrays, UTF-8 strings, big integers, DER, and `CK_DATE` (8 ASCII digits, or
    /// empty for no date).
    Bytes(Vec<u8>),
    /// `CK_MECHANISM_TYPE` arrays (`CKA_ALLOWED_MECHANISMS`).
    Ulongs(Vec<ck::CK_ULONG>),
}

/// How an attribute's value is laid out in an application's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrKind {
    Bool,
    Ulong,
    Bytes,
    Ulongs,
}

/// The layout of the attributes the appliance knows; `None` for any other (the library
/// answers `CKR_ATTRIBUTE_TYPE_INVALID` without asking the daemon).
pub fn attribute_kind(kind: ck::CK_ATTRIBUTE_TYPE) -> Option<AttrKind> {
    use ck::*;
    Some(match kind {
        CKA_TOKEN
        | CKA_PRIVATE
        | CKA_MODIFIABLE
        | CKA_COPYABLE
        | CKA_DESTROYABLE
        | CKA_TRUSTED
        | CKA_SENSITIVE
        | CKA_ENCRYPT
        | CKA_DECRYPT
        | CKA_WRAP
        | CKA_UNWRAP
        | CKA_SIGN
        | CKA_SIGN_RECOVER
        | CKA_VERIFY
        | CKA_VERIFY_RECOVER
        | CKA_DERIVE
        | CKA_EXTRACTABLE
        | CKA_LOCAL
        | CKA_NEVER_EXTRACTABLE
        | CKA_ALWAYS_SENSITIVE
        | CKA_WRAP_WITH_TRUSTED
        | CKA_ALWAYS_AUTHENTICATE
        | CKA_ENCAPSULATE
        | CKA_DECAPSULATE => AttrKind::Bool,
        CKA_CLASS
        | CKA_KEY_TYPE
        | CKA_CERTIFICATE_TYPE
        | CKA_CERTIFICATE_CATEGORY
        | CKA_MODULUS_BITS
        | CKA_VALUE_LEN
        | CKA_KEY_GEN_MECHANISM
        | CKA_PARAMETER_SET
        | CKA_NAME_HASH_ALGORITHM
        | CKA_JAVA_MIDP_SECURITY_DOMAIN => AttrKind::Ulong,
        CKA_ALLOWED_MECHANISMS => AttrKind::Ulongs,
        CKA_LABEL
        | CKA_APPLICATION
        | CKA_VALUE
        | CKA_OBJECT_ID
        | CKA_ID
        | CKA_SUBJECT
        | CKA_ISSUER
        | CKA_SERIAL_NUMBER
        | CKA_START_DATE
        | CKA_END_DATE
        | CKA_MODULUS
        | CKA_PUBLIC_EXPONENT
        | CKA_PRIVATE_EXPONENT
        | CKA_PRIME_1
        | CKA_PRIME_2
        | CKA_EXPONENT_1
        | CKA_EXPONENT_2
        | CKA_COEFFICIENT
        | CKA_EC_PARAMS
        | CKA_EC_POINT
        | CKA_PUBLIC_KEY_INFO
        | CKA_CHECK_VALUE
        | CKA_URL
        | CKA_HASH_OF_SUBJECT_PUBLIC_KEY
        | CKA_HASH_OF_ISSUER_PUBLIC_KEY
        | CKA_SEED
        | CKA_UNIQUE_ID => AttrKind::Bytes,
        _ => return None,
    })
}

/// Which of a managed-key version's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyClass {
    Public,
    Private,
    Secret,
}

/// An object as the daemon names it. The library gives each its own `CK_OBJECT_HANDLE`
/// and keeps the mapping for its lifetime, so a handle stays valid across sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObjectRef {
    /// One class of one version of a managed key.
    Key {
        key: [u8; 16],
        version: u32,
        class: KeyClass,
    },
    /// A certificate, data object or public key an application stored on the token.
    Stored { id: [u8; 16] },
    /// An object in daemon memory owned by this library instance (`CKA_TOKEN` false):
    /// gone when the instance releases it, finalizes, or the daemon restarts.
    Session { id: u64 },
}

/// An object and its attributes as the caller may see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    pub handle: ObjectRef,
    pub attributes: Vec<Attribute>,
    /// Attributes the object has but will not reveal (`CKR_ATTRIBUTE_SENSITIVE`).
    pub sensitive: Vec<ck::CK_ATTRIBUTE_TYPE>,
}

/// A mechanism and its parameter, decoded by the library from the application's
/// `CK_MECHANISM` by mechanism type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mechanism {
    pub kind: ck::CK_MECHANISM_TYPE,
    pub params: Params,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Params {
    None,
    /// `CK_RSA_PKCS_PSS_PARAMS`.
    Pss {
        hash: ck::CK_MECHANISM_TYPE,
        mgf: ck::CK_ULONG,
        salt_len: ck::CK_ULONG,
    },
    /// `CK_RSA_PKCS_OAEP_PARAMS` (source `CKZ_DATA_SPECIFIED` with its bytes, or empty).
    Oaep {
        hash: ck::CK_MECHANISM_TYPE,
        mgf: ck::CK_ULONG,
        label: Vec<u8>,
    },
    /// `CK_GCM_PARAMS`.
    Gcm {
        iv: Vec<u8>,
        aad: Vec<u8>,
        tag_bits: ck::CK_ULONG,
    },
    /// An IV (`CKM_AES_CBC_PAD`) or an initial value (`CKM_AES_KEY_WRAP`).
    Iv(Vec<u8>),
    /// `CK_SIGN_ADDITIONAL_CONTEXT` (ML-DSA): hedging and context string.
    SignContext {
        hedge: ck::CK_ULONG,
        context: Vec<u8>,
    },
}

/// One mechanism the token offers, as `C_GetMechanismInfo` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MechanismInfo {
    pub kind: ck::CK_MECHANISM_TYPE,
    pub min_key_size: ck::CK_ULONG,
    pub max_key_size: ck::CK_ULONG,
    pub flags: ck::CK_FLAGS,
}

/// What `C_GetTokenInfo` and `C_GetSlotInfo` report, and what the token can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    /// The daemon's version, as major and minor.
    pub firmware: (u8, u8),
    /// Initialised and unsealed: a sealed appliance is a slot without a token.
    pub present: bool,
    pub mechanisms: Vec<MechanismInfo>,
    pub min_pin_len: ck::CK_ULONG,
    pub max_pin_len: ck::CK_ULONG,
}
