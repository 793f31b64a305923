//! Engine outcomes to wire values: objects, the generated key's objects, mechanism
//! information, errors.

use engine::managed_keys::ManagedKey;
use engine::pkcs11::mechanisms::MechanismInfo as EngineMechanism;
use engine::pkcs11::{keys, Attr, Handle, KeyClass, Object as EngineObject, Value};
use engine::EngineError;
use pkcs11_wire::{
    AttrValue, Attribute, KeyClass as WireClass, MechanismInfo, Object, ObjectRef, Reply,
};

use super::rv::return_value;

fn value(v: Value) -> AttrValue {
    match v {
        Value::Bool(b) => AttrValue::Bool(b),
        Value::Ulong(u) => AttrValue::Ulong(u),
        Value::Bytes(b) => AttrValue::Bytes(b),
        Value::Ulongs(u) => AttrValue::Ulongs(u),
    }
}

pub fn object_ref(handle: Handle) -> ObjectRef {
    match handle {
        Handle::Key {
            key,
            version,
            class,
        } => ObjectRef::Key {
            key: key.into_bytes(),
            version,
            class: match class {
                KeyClass::Public => WireClass::Public,
                KeyClass::Private => WireClass::Private,
                KeyClass::Secret => WireClass::Secret,
            },
        },
        Handle::Stored(id) => ObjectRef::Stored {
            id: id.into_bytes(),
        },
        Handle::Session(id) => ObjectRef::Session { id },
    }
}

pub fn object(o: EngineObject) -> Object {
    Object {
        handle: object_ref(o.handle),
        attributes: o
            .attributes
            .into_iter()
            .map(|Attr { kind, value: v }| Attribute {
                kind,
                value: value(v),
            })
            .collect(),
        sensitive: o.sensitive,
    }
}

/// The error as the library receives it: the return value, and words that reveal no
/// secret.
pub fn error(e: &EngineError) -> Reply {
    Reply::Error {
        rv: return_value(e),
        message: e.public_message(),
    }
}

/// A new key's primary-version object of `class`.
fn generated(key: &ManagedKey, class: KeyClass) -> Result<Object, EngineError> {
    keys::key_object(key, key.primary_version, class).map(object)
}

/// `C_GenerateKey`'s answer.
pub fn secret_key(key: &ManagedKey) -> Reply {
    match generated(key, KeyClass::Secret) {
        Ok(o) => Reply::Object(o),
        Err(e) => error(&e),
    }
}

/// `C_GenerateKeyPair`'s answer.
pub fn key_pair(key: &ManagedKey) -> Reply {
    match (
        generated(key, KeyClass::Public),
        generated(key, KeyClass::Private),
    ) {
        (Ok(public), Ok(private)) => Reply::KeyPair { public, private },
        (Err(e), _) | (_, Err(e)) => error(&e),
    }
}

pub fn mechanism(m: EngineMechanism) -> MechanismInfo {
    MechanismInfo {
        kind: m.kind,
        min_key_size: m.min_key_size,
        max_key_size: m.max_key_size,
        flags: m.flags,
    }
}
