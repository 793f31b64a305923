//! The PKCS#11 calls cryptoki 0.12 has no safe form for: attributes whose value is itself
//! an attribute array (`CKA_UNWRAP_TEMPLATE`). Apart from one handle conversion in
//! `pkcs11.rs`, this is the only `unsafe` in the crate; it reaches the same loaded module
//! as cryptoki (the library is opened again by path, which the dynamic loader resolves to
//! the already loaded copy, so session and object handles from cryptoki are valid here).

use std::path::Path;

use cryptoki::object::ObjectHandle;
use cryptoki_sys::{
    CKA_CLASS, CKA_DECRYPT, CKA_ENCRYPT, CKA_EXTRACTABLE, CKA_ID, CKA_KEY_TYPE, CKA_LABEL,
    CKA_MODIFIABLE, CKA_PRIVATE, CKA_SENSITIVE, CKA_TOKEN, CKA_UNWRAP, CKA_UNWRAP_TEMPLATE,
    CKA_VALUE_LEN, CKA_WRAP, CKK_AES, CKM_AES_KEY_GEN, CKO_SECRET_KEY, CKR_OK, CK_ATTRIBUTE,
    CK_ATTRIBUTE_TYPE, CK_BBOOL, CK_FALSE, CK_KEY_TYPE, CK_MECHANISM, CK_OBJECT_CLASS,
    CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_TRUE, CK_ULONG, CK_UNAVAILABLE_INFORMATION,
};

/// Why a raw call did not give an answer.
#[derive(Debug)]
pub(super) enum RawError {
    /// The module could not be opened again or lacks the function.
    Load(String),
    /// The function answered this `CKR_*` value.
    Rv(CK_RV),
}

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawError::Load(m) => write!(f, "cannot reach the module's functions: {m}"),
            RawError::Rv(rv) => write!(f, "{:?}", cryptoki::error::Rv::from(*rv)),
        }
    }
}

fn library(lib: &Path) -> Result<cryptoki_sys::Pkcs11, RawError> {
    // SAFETY: loading a PKCS#11 module runs its initialisers; it is the module cryptoki
    // already loaded (same path), so nothing runs that has not run already.
    unsafe { cryptoki_sys::Pkcs11::new(lib) }.map_err(|e| RawError::Load(e.to_string()))
}

fn attr<T>(kind: CK_ATTRIBUTE_TYPE, value: &T) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: kind,
        pValue: value as *const T as *mut std::ffi::c_void,
        ulValueLen: std::mem::size_of::<T>() as CK_ULONG,
    }
}

/// The attributes forced on every key unwrapped with the root key.
pub(super) const FORCED_ON_UNWRAP: [(CK_ATTRIBUTE_TYPE, bool); 2] =
    [(CKA_SENSITIVE, true), (CKA_EXTRACTABLE, false)];

/// Generates the AES-256 root key (the same attributes as the cryptoki path) with
/// `CKA_UNWRAP_TEMPLATE = { CKA_SENSITIVE = true, CKA_EXTRACTABLE = false }`.
pub(super) fn generate_root_with_unwrap_template(
    lib: &Path,
    session: CK_SESSION_HANDLE,
    label: &[u8],
) -> Result<ObjectHandle, RawError> {
    let pkcs11 = library(lib)?;
    let generate = pkcs11
        .C_GenerateKey
        .as_ref()
        .map_err(|e| RawError::Load(e.to_string()))?;
    let yes: CK_BBOOL = CK_TRUE;
    let no: CK_BBOOL = CK_FALSE;
    let class: CK_OBJECT_CLASS = CKO_SECRET_KEY;
    let key_type: CK_KEY_TYPE = CKK_AES;
    let len: CK_ULONG = 32;
    let forced_values: Vec<CK_BBOOL> = FORCED_ON_UNWRAP
        .iter()
        .map(|(_, v)| if *v { CK_TRUE } else { CK_FALSE })
        .collect();
    let inner: Vec<CK_ATTRIBUTE> = FORCED_ON_UNWRAP
        .iter()
        .zip(&forced_values)
        .map(|((kind, _), v)| attr(*kind, v))
        .collect();
    let template = [
        attr(CKA_CLASS, &class),
        attr(CKA_KEY_TYPE, &key_type),
        attr(CKA_VALUE_LEN, &len),
        attr(CKA_TOKEN, &yes),
        attr(CKA_PRIVATE, &yes),
        attr(CKA_SENSITIVE, &yes),
        attr(CKA_EXTRACTABLE, &no),
        attr(CKA_MODIFIABLE, &no),
        attr(CKA_ENCRYPT, &yes),
        attr(CKA_DECRYPT, &yes),
        attr(CKA_WRAP, &yes),
        attr(CKA_UNWRAP, &yes),
        CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: label.as_ptr() as *mut std::ffi::c_void,
            ulValueLen: label.len() as CK_ULONG,
        },
        CK_ATTRIBUTE {
            type_: CKA_ID,
            pValue: label.as_ptr() as *mut std::ffi::c_void,
            ulValueLen: label.len() as CK_ULONG,
        },
        CK_ATTRIBUTE {
            type_: CKA_UNWRAP_TEMPLATE,
            pValue: inner.as_ptr() as *mut std::ffi::c_void,
            ulValueLen: std::mem::size_of_val(inner.as_slice()) as CK_ULONG,
        },
    ];
    let mut mechanism = CK_MECHANISM {
        mechanism: CKM_AES_KEY_GEN,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    let mut handle: CK_OBJECT_HANDLE = 0;
    // SAFETY: every pointer in `template` (and in `inner`, which it points to) refers to
    // locals that outlive the call; the module only reads them and writes `handle`.
    let rv = unsafe {
        generate(
            session,
            &mut mechanism,
            template.as_ptr() as *mut CK_ATTRIBUTE,
            template.len() as CK_ULONG,
            &mut handle,
        )
    };
    if rv == CKR_OK {
        // SAFETY: `handle` is the object C_GenerateKey just made on this session.
        Ok(unsafe { ObjectHandle::new_from_raw(handle) })
    } else {
        Err(RawError::Rv(rv))
    }
}

/// The boolean attributes in `key`'s `CKA_UNWRAP_TEMPLATE`; `None` when the key has none
/// (or the token does not keep the attribute).
pub(super) fn unwrap_template(
    lib: &Path,
    session: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
) -> Result<Option<Vec<(CK_ATTRIBUTE_TYPE, bool)>>, RawError> {
    let pkcs11 = library(lib)?;
    let get = pkcs11
        .C_GetAttributeValue
        .as_ref()
        .map_err(|e| RawError::Load(e.to_string()))?;
    let mut outer = CK_ATTRIBUTE {
        type_: CKA_UNWRAP_TEMPLATE,
        pValue: std::ptr::null_mut(),
        ulValueLen: 0,
    };
    // SAFETY: a length query: the module writes only `outer.ulValueLen`.
    let rv = unsafe { get(session, key, &mut outer, 1) };
    if rv != CKR_OK || outer.ulValueLen == CK_UNAVAILABLE_INFORMATION {
        return Ok(None);
    }
    let count = outer.ulValueLen as usize / std::mem::size_of::<CK_ATTRIBUTE>();
    if count == 0 {
        return Ok(None);
    }
    let mut inner: Vec<CK_ATTRIBUTE> = (0..count)
        .map(|_| CK_ATTRIBUTE {
            type_: 0,
            pValue: std::ptr::null_mut(),
            ulValueLen: 0,
        })
        .collect();
    outer.pValue = inner.as_mut_ptr() as *mut std::ffi::c_void;
    outer.ulValueLen = std::mem::size_of_val(inner.as_slice()) as CK_ULONG;
    // SAFETY: the module fills the types and lengths of `count` entries in `inner`, whose
    // size it was told; the value pointers are null, so it writes no values yet.
    let rv = unsafe { get(session, key, &mut outer, 1) };
    if rv != CKR_OK {
        return Err(RawError::Rv(rv));
    }
    let mut values: Vec<Vec<u8>> = inner
        .iter()
        .map(|a| {
            if a.ulValueLen == CK_UNAVAILABLE_INFORMATION {
                Vec::new()
            } else {
                vec![0u8; a.ulValueLen as usize]
            }
        })
        .collect();
    for (a, v) in inner.iter_mut().zip(values.iter_mut()) {
        a.pValue = v.as_mut_ptr() as *mut std::ffi::c_void;
        a.ulValueLen = v.len() as CK_ULONG;
    }
    // SAFETY: each entry now points to a buffer of the length the module reported.
    let rv = unsafe { get(session, key, &mut outer, 1) };
    if rv != CKR_OK {
        return Err(RawError::Rv(rv));
    }
    Ok(Some(
        inner
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.len() == 1)
            .map(|(a, v)| (a.type_, v[0] != 0))
            .collect(),
    ))
}
