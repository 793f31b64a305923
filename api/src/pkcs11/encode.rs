//! Engine outcomes to wire values: objects, the generated key's objects, mechanism
//! information, errors.

use engine::pkcs11::mechanisms::MechanismInfo as EngineMechanism;
use engine::pkcs11::{Attr, Handle, KeyClass, Object as EngineObject, Value};
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

/// `C_GenerateKey`'s answer (the secret key) or `C_GenerateKeyPair`'s (public then
/// private).
pub fn generated(objects: Vec<EngineObject>) -> Reply {
    let mut objects = objects.into_iter().map(object);
    match (objects.next(), objects.next(), objects.next()) {
        (Some(secret), None, None) => Reply::Object(secret),
        (Some(public), Some(private), None) => Reply::KeyPair { public, private },
        _ => error(&EngineError::internal(
            "a generated key has one or two objects",
        )),
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
