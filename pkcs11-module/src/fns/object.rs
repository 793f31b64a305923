//! Object management (PKCS#11 "Object management functions"): searching, attributes,
//! creating, copying and destroying objects.

use pkcs11_wire::{ck, AttrValue, Attribute, Function, Object, ObjectRef, Op, Reply};

use super::CkResult;
use crate::state::{library, Library};

/// What `C_GetAttributeValue` writes back for one attribute of the template.
#[derive(Debug, PartialEq, Eq)]
pub enum AttrOut {
    /// `CK_UNAVAILABLE_INFORMATION` as the length.
    Unavailable,
    /// Only the length (the application passed no buffer).
    Len(usize),
    Value(Vec<u8>),
}

pub fn find_objects_init(session: ck::CK_SESSION_HANDLE, template: Vec<Attribute>) -> CkResult<()> {
    let lib = library()?;
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    if session.find.is_some() {
        return Err(ck::CKR_OPERATION_ACTIVE);
    }
    // Every appliance object is private: without a login there is nothing to find.
    let found = if lib.user().is_none() {
        Vec::new()
    } else {
        match lib.call(Function::C_FindObjectsInit, Op::FindObjects { template })? {
            Reply::Objects(objects) => objects.iter().map(|o| lib.handle(o)).collect(),
            _ => return Err(ck::CKR_DEVICE_ERROR),
        }
    };
    // Handed out from the back.
    session.find = Some(found.into_iter().rev().collect());
    Ok(())
}

pub fn find_objects(
    session: ck::CK_SESSION_HANDLE,
    max: usize,
) -> CkResult<Vec<ck::CK_OBJECT_HANDLE>> {
    let lib = library()?;
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    let pending = session
        .find
        .as_mut()
        .ok_or(ck::CKR_OPERATION_NOT_INITIALIZED)?;
    let take = max.min(pending.len());
    let mut batch = pending.split_off(pending.len() - take);
    batch.reverse();
    Ok(batch)
}

pub fn find_objects_final(session: ck::CK_SESSION_HANDLE) -> CkResult<()> {
    let lib = library()?;
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    session
        .find
        .take()
        .map(|_| ())
        .ok_or(ck::CKR_OPERATION_NOT_INITIALIZED)
}

/// Each requested attribute's answer and the call's return value: every attribute is
/// processed even when one fails.
pub fn get_attribute_value(
    session: ck::CK_SESSION_HANDLE,
    object: ck::CK_OBJECT_HANDLE,
    requests: &[(ck::CK_ATTRIBUTE_TYPE, Option<usize>)],
) -> CkResult<(Vec<AttrOut>, ck::CK_RV)> {
    let lib = library()?;
    lib.session(session)?;
    let handle = lib.object(object, ck::CKR_OBJECT_HANDLE_INVALID)?;
    let object = match lib.call(
        Function::C_GetAttributeValue,
        Op::GetObject { object: handle },
    )? {
        Reply::Object(object) => object,
        _ => return Err(ck::CKR_DEVICE_ERROR),
    };
    Ok(answer(&object, requests))
}

/// The answers for `requests` from the object's attributes. Where several attributes
/// fail differently, sensitivity is reported first, then unknown types, then short
/// buffers (the specification lets the library pick).
pub fn answer(
    object: &Object,
    requests: &[(ck::CK_ATTRIBUTE_TYPE, Option<usize>)],
) -> (Vec<AttrOut>, ck::CK_RV) {
    let (mut sensitive, mut invalid, mut small) = (false, false, false);
    let answers = requests
        .iter()
        .map(|&(kind, capacity)| {
            if object.sensitive.contains(&kind) {
                sensitive = true;
                return AttrOut::Unavailable;
            }
            let Some(attribute) = object.attributes.iter().find(|a| a.kind == kind) else {
                invalid = true;
                return AttrOut::Unavailable;
            };
            let value = encode(&attribute.value);
            match capacity {
                None => AttrOut::Len(value.len()),
                Some(cap) if cap < value.len() => {
                    small = true;
                    AttrOut::Unavailable
                }
                Some(_) => AttrOut::Value(value),
            }
        })
        .collect();
    let rv = if sensitive {
        ck::CKR_ATTRIBUTE_SENSITIVE
    } else if invalid {
        ck::CKR_ATTRIBUTE_TYPE_INVALID
    } else if small {
        ck::CKR_BUFFER_TOO_SMALL
    } else {
        ck::CKR_OK
    };
    (answers, rv)
}

/// An attribute value as PKCS#11 lays it out in the application's buffer.
fn encode(value: &AttrValue) -> Vec<u8> {
    match value {
        AttrValue::Bool(b) => vec![ck::CK_BBOOL::from(*b)],
        AttrValue::Ulong(v) => v.to_ne_bytes().to_vec(),
        AttrValue::Bytes(bytes) => bytes.clone(),
        AttrValue::Ulongs(values) => values.iter().flat_map(|v| v.to_ne_bytes()).collect(),
    }
}

pub fn set_attribute_value(
    session: ck::CK_SESSION_HANDLE,
    object: ck::CK_OBJECT_HANDLE,
    template: Vec<Attribute>,
) -> CkResult<()> {
    let lib = library()?;
    let session = lib.session(session)?;
    let rw = session.rw;
    let object = lib.object(object, ck::CKR_OBJECT_HANDLE_INVALID)?;
    require_login(&lib)?;
    if is_token_object(&object) && !rw {
        return Err(ck::CKR_SESSION_READ_ONLY);
    }
    expect_ok(lib.call(
        Function::C_SetAttributeValue,
        Op::SetAttributes { object, template },
    )?)
}

pub fn create_object(
    session: ck::CK_SESSION_HANDLE,
    template: Vec<Attribute>,
) -> CkResult<ck::CK_OBJECT_HANDLE> {
    let lib = library()?;
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    require_login(&lib)?;
    if wants_token(&template) && !entry.rw {
        return Err(ck::CKR_SESSION_READ_ONLY);
    }
    let object = single_object(lib.call(Function::C_CreateObject, Op::CreateObject { template })?)?;
    session.owns(&object.handle);
    Ok(lib.handle(&object))
}

pub fn copy_object(
    session: ck::CK_SESSION_HANDLE,
    object: ck::CK_OBJECT_HANDLE,
    template: Vec<Attribute>,
) -> CkResult<ck::CK_OBJECT_HANDLE> {
    let lib = library()?;
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    let object = lib.object(object, ck::CKR_OBJECT_HANDLE_INVALID)?;
    require_login(&lib)?;
    if wants_token(&template) && !entry.rw {
        return Err(ck::CKR_SESSION_READ_ONLY);
    }
    let copy =
        single_object(lib.call(Function::C_CopyObject, Op::CopyObject { object, template })?)?;
    session.owns(&copy.handle);
    Ok(lib.handle(&copy))
}

pub fn destroy_object(
    session: ck::CK_SESSION_HANDLE,
    object: ck::CK_OBJECT_HANDLE,
) -> CkResult<()> {
    let lib = library()?;
    let entry = lib.session(session)?;
    let mut session = entry.lock();
    let object = lib.object(object, ck::CKR_OBJECT_HANDLE_INVALID)?;
    require_login(&lib)?;
    if is_token_object(&object) && !entry.rw {
        return Err(ck::CKR_SESSION_READ_ONLY);
    }
    expect_ok(lib.call(Function::C_DestroyObject, Op::DestroyObject { object })?)?;
    if let ObjectRef::Session { id } = object {
        session.objects.retain(|o| *o != id);
    }
    lib.handles.lock().forget(&object);
    Ok(())
}

/// The appliance does not account objects in bytes.
pub fn get_object_size(
    session: ck::CK_SESSION_HANDLE,
    object: ck::CK_OBJECT_HANDLE,
) -> CkResult<ck::CK_ULONG> {
    let lib = library()?;
    lib.session(session)?;
    lib.object(object, ck::CKR_OBJECT_HANDLE_INVALID)?;
    Ok(ck::CK_UNAVAILABLE_INFORMATION)
}

/// Object management needs a login (all objects are private), as user or SO.
pub fn require_login(lib: &Library) -> CkResult<()> {
    lib.user().map(|_| ()).ok_or(ck::CKR_USER_NOT_LOGGED_IN)
}

pub fn wants_token(template: &[Attribute]) -> bool {
    template
        .iter()
        .any(|a| a.kind == ck::CKA_TOKEN && a.value == AttrValue::Bool(true))
}

fn is_token_object(object: &ObjectRef) -> bool {
    !matches!(object, ObjectRef::Session { .. })
}

pub fn single_object(reply: Reply) -> CkResult<Object> {
    match reply {
        Reply::Object(object) => Ok(object),
        _ => Err(ck::CKR_DEVICE_ERROR),
    }
}

pub fn expect_ok(reply: Reply) -> CkResult<()> {
    match reply {
        Reply::Ok => Ok(()),
        _ => Err(ck::CKR_DEVICE_ERROR),
    }
}
