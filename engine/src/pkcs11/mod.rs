//! The appliance as a PKCS#11 token, free of any wire encoding: every managed-key version
//! is a set of key objects ([`keys`]), applications store certificates, data objects and
//! public keys under the barrier or, with `CKA_TOKEN` false, in memory per library
//! instance ([`objects`], [`session`]); templates become managed keys, or session keys
//! generated in the same boundary and held in memory per library instance ([`keygen`]).
//!
//! The vocabulary is PKCS#11's own numbers (`CKA_*`, `CKO_*`, `CKK_*`), as the wire format
//! uses them, so that a door passes an application's attributes through without a
//! second naming. Refusals are [`KeyError::Invalid`] whose code is the name of the
//! PKCS#11 return value without its `CKR_` prefix ([`code`]): the door maps them back.

pub mod keygen;
pub mod keys;
pub mod mechanisms;
pub mod objects;
pub(crate) mod session;
#[cfg(test)]
mod tests;

use cryptoki_sys::{CK_ATTRIBUTE_TYPE, CK_ULONG};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::error::EngineError;
use crate::managed_keys::KeyError;

pub use keygen::{NewKey, NewSecret};
pub use objects::NewObject;

/// An attribute value, typed as PKCS#11 types the attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize)]
pub enum Value {
    Bool(bool),
    Ulong(CK_ULONG),
    /// Byte arrays, UTF-8 strings, big integers, DER, and dates (8 ASCII digits, or empty).
    Bytes(Vec<u8>),
    Ulongs(Vec<CK_ULONG>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize)]
pub struct Attr {
    pub kind: CK_ATTRIBUTE_TYPE,
    pub value: Value,
}

impl Attr {
    pub fn bool(kind: CK_ATTRIBUTE_TYPE, value: bool) -> Self {
        Attr {
            kind,
            value: Value::Bool(value),
        }
    }

    pub fn ulong(kind: CK_ATTRIBUTE_TYPE, value: CK_ULONG) -> Self {
        Attr {
            kind,
            value: Value::Ulong(value),
        }
    }

    pub fn bytes(kind: CK_ATTRIBUTE_TYPE, value: impl Into<Vec<u8>>) -> Self {
        Attr {
            kind,
            value: Value::Bytes(value.into()),
        }
    }
}

/// Which of a managed-key version's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyClass {
    Public,
    Private,
    Secret,
}

/// An object as the engine names it; each door gives it its own handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Handle {
    /// One class of one version of a managed key.
    Key {
        key: uuid::Uuid,
        version: u32,
        class: KeyClass,
    },
    /// A certificate, data object or public key stored under the barrier.
    Stored(uuid::Uuid),
    /// An object held in memory for one library instance.
    Session(u64),
}

/// An object and its attributes as the caller may see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub handle: Handle,
    pub attributes: Vec<Attr>,
    /// Attributes the object has but never reveals (private exponents, secret values).
    pub sensitive: Vec<CK_ATTRIBUTE_TYPE>,
}

impl Object {
    pub fn get(&self, kind: CK_ATTRIBUTE_TYPE) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|a| a.kind == kind)
            .map(|a| &a.value)
    }

    pub fn get_bool(&self, kind: CK_ATTRIBUTE_TYPE) -> bool {
        matches!(self.get(kind), Some(Value::Bool(true)))
    }

    pub fn get_ulong(&self, kind: CK_ATTRIBUTE_TYPE) -> Option<CK_ULONG> {
        match self.get(kind) {
            Some(Value::Ulong(v)) => Some(*v),
            _ => None,
        }
    }

    pub fn get_bytes(&self, kind: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        match self.get(kind) {
            Some(Value::Bytes(v)) => Some(v),
            _ => None,
        }
    }

    /// `C_FindObjects`' rule: every attribute of `template` is one the object has, with an
    /// equal value. A sensitive attribute never matches: its value is not revealed, not
    /// even by comparison.
    pub fn matches(&self, template: &[Attr]) -> bool {
        template
            .iter()
            .all(|t| self.get(t.kind).is_some_and(|v| *v == t.value))
    }
}

/// The refusals a PKCS#11 door maps to its return values, named as PKCS#11 names them.
pub mod code {
    pub const ATTRIBUTE_TYPE_INVALID: &str = "ATTRIBUTE_TYPE_INVALID";
    pub const ATTRIBUTE_VALUE_INVALID: &str = "ATTRIBUTE_VALUE_INVALID";
    pub const ATTRIBUTE_READ_ONLY: &str = "ATTRIBUTE_READ_ONLY";
    pub const TEMPLATE_INCOMPLETE: &str = "TEMPLATE_INCOMPLETE";
    pub const TEMPLATE_INCONSISTENT: &str = "TEMPLATE_INCONSISTENT";
    pub const MECHANISM_INVALID: &str = "MECHANISM_INVALID";
    pub const MECHANISM_PARAM_INVALID: &str = "MECHANISM_PARAM_INVALID";
    pub const KEY_TYPE_INCONSISTENT: &str = "KEY_TYPE_INCONSISTENT";
    pub const KEY_FUNCTION_NOT_PERMITTED: &str = "KEY_FUNCTION_NOT_PERMITTED";
    pub const KEY_UNEXTRACTABLE: &str = "KEY_UNEXTRACTABLE";
    pub const KEY_NOT_WRAPPABLE: &str = "KEY_NOT_WRAPPABLE";
    pub const KEY_SIZE_RANGE: &str = "KEY_SIZE_RANGE";
    pub const ACTION_PROHIBITED: &str = "ACTION_PROHIBITED";
    pub const DATA_LEN_RANGE: &str = "DATA_LEN_RANGE";
    pub const PIN_INCORRECT: &str = "PIN_INCORRECT";
    pub const FUNCTION_NOT_SUPPORTED: &str = "FUNCTION_NOT_SUPPORTED";
    pub const WRAPPED_KEY_INVALID: &str = "WRAPPED_KEY_INVALID";
    pub const WRAPPED_KEY_LEN_RANGE: &str = "WRAPPED_KEY_LEN_RANGE";
}

/// A refusal with one of the [`code`]s.
pub fn refuse(code: &'static str, message: impl Into<String>) -> EngineError {
    KeyError::invalid(code, message).into()
}

/// `CK_DATE` of a time: `YYYYMMDD`.
pub(crate) fn date(t: time::OffsetDateTime) -> Vec<u8> {
    format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day()).into_bytes()
}
