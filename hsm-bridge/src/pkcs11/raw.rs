//! The PKCS#11 calls cryptoki 0.12 has no safe form for: attributes whose value is itself
//! an attribute array (`CKA_UNWRAP_TEMPLATE`), and `C_WrapKey` with mechanisms it does not
//! know (`CKM_AES_KEY_WRAP_KWP`, `CKM_RSA_AES_KEY_WRAP`). Apart from one handle conversion in
//! `pkcs11.rs`, this is the only `unsafe` in the crate; it reaches the same loaded module
//! as cryptoki (the library is opened again by path, which the dynamic loader resolves to
//! the already loaded copy, so session and object handles from cryptoki are valid here).

use std::path::Path;

use cryptoki::object::ObjectHandle;
use cryptoki_sys::{
    CKA_CLASS, CKA_DECRYPT, CKA_ENCRYPT, CKA_EXTRACTABLE, CKA_ID, CKA_KEY_TYPE, CKA_LABEL,
    CKA_MODIFIABLE, CKA_PRIVATE, CKA_SENSITIVE, CKA_TOKEN, CKA_UNWRAP, CKA_UNWRAP_TEMPLATE,
    CKA_VALUE_LEN, CKA_WRAP, CKK_AES, CKM_AES_KEY_GEN, CKO_SECRET_KEY, CKR_OK, CK_ATTRIBUTE,
    CK_ATTRIBUTE_TYPE, CK_BBOOL, CK_FALSE, CK_FUNCTION_LIST, CK_KEY_TYPE, CK_MECHANISM,
    CK_MECHANISM_TYPE, CK_OBJECT_CLASS, CK_OBJECT_HANDLE, CK_RSA_AES_KEY_WRAP_PARAMS,
    CK_RSA_PKCS_OAEP_PARAMS, CK_RV, CK_SESSION_HANDLE, CK_TRUE, CK_ULONG,
    CK_UNAVAILABLE_INFORMATION,
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
            RawError::Rv(rv) => match cryptoki::error::Rv::from(*rv) {
                cryptoki::error::Rv::Error(e) => write!(f, "CKR_{}", super::error::rv_name(e)),
                ok => write!(f, "{ok:?}"),
            },
        }
    }
}

/// The module's function list, through `C_GetFunctionList`: a module need not export
/// the other `C_*` symbols (Kryoptic exports only the list getters).
struct Functions {
    /// Keeps the module loaded while `list` is used.
    _module: cryptoki_sys::Pkcs11,
    list: CK_FUNCTION_LIST,
}

fn library(lib: &Path) -> Result<Functions, RawError> {
    // SAFETY: loading a PKCS#11 module runs its initialisers; it is the module cryptoki
    // already loaded (same path), so nothing runs that has not run already.
    let module =
        unsafe { cryptoki_sys::Pkcs11::new(lib) }.map_err(|e| RawError::Load(e.to_string()))?;
    let get = module
        .C_GetFunctionList
        .as_ref()
        .map_err(|e| RawError::Load(e.to_string()))?;
    let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: the module writes a pointer to its static function list into `list`.
    let rv = unsafe { get(&mut list) };
    if rv != CKR_OK {
        return Err(RawError::Rv(rv));
    }
    if list.is_null() {
        return Err(RawError::Load("C_GetFunctionList gave no list".into()));
    }
    // SAFETY: a non-null list from C_GetFunctionList is the module's own, valid while the
    // module stays loaded; it is copied (a table of function pointers).
    let list = unsafe { *list };
    Ok(Functions {
        _module: module,
        list,
    })
}

fn missing(name: &str) -> RawError {
    RawError::Load(format!("the module has no {name}"))
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

/// The attributes forced on every key unwrapped with the export key: its keys may be
/// unwrapped extractable (to be wrapped for a provider), never readable.
pub(super) const FORCED_ON_EXPORT_UNWRAP: [(CK_ATTRIBUTE_TYPE, bool); 1] = [(CKA_SENSITIVE, true)];

/// Generates an AES-256 wrapping key on the token (the same attributes as the cryptoki
/// path) whose `CKA_UNWRAP_TEMPLATE` forces `forced` on every key it unwraps.
pub(super) fn generate_root_with_unwrap_template(
    lib: &Path,
    session: CK_SESSION_HANDLE,
    label: &[u8],
    forced: &[(CK_ATTRIBUTE_TYPE, bool)],
) -> Result<ObjectHandle, RawError> {
    let pkcs11 = library(lib)?;
    let generate = pkcs11
        .list
        .C_GenerateKey
        .ok_or_else(|| missing("C_GenerateKey"))?;
    let yes: CK_BBOOL = CK_TRUE;
    let no: CK_BBOOL = CK_FALSE;
    let class: CK_OBJECT_CLASS = CKO_SECRET_KEY;
    let key_type: CK_KEY_TYPE = CKK_AES;
    let len: CK_ULONG = 32;
    let forced_values: Vec<CK_BBOOL> = forced
        .iter()
        .map(|(_, v)| if *v { CK_TRUE } else { CK_FALSE })
        .collect();
    let inner: Vec<CK_ATTRIBUTE> = forced
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
        .list
        .C_GetAttributeValue
        .ok_or_else(|| missing("C_GetAttributeValue"))?;
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

/// The parameters of a `C_WrapKey` that cryptoki cannot express.
pub(super) enum RawWrap {
    /// `CKM_AES_KEY_WRAP_KWP` (RFC 5649), no parameters.
    AesKwp,
    /// `CKM_RSA_AES_KEY_WRAP` with an AES-256 ephemeral key and OAEP of `hash` (MGF1 of
    /// the same, no label).
    RsaAes {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_ULONG,
    },
}

/// A [`RawWrap`] as the module takes it; the parameters live here, so the pointers
/// [`RawMechanism::as_ck`] hands out stay valid while this is not moved.
struct RawMechanism {
    oaep: CK_RSA_PKCS_OAEP_PARAMS,
    rsa_aes: CK_RSA_AES_KEY_WRAP_PARAMS,
    rsa: bool,
}

impl RawMechanism {
    fn new(mechanism: &RawWrap) -> RawMechanism {
        let (hash, mgf, rsa) = match mechanism {
            RawWrap::AesKwp => (0, 0, false),
            RawWrap::RsaAes { hash, mgf } => (*hash, *mgf, true),
        };
        RawMechanism {
            oaep: CK_RSA_PKCS_OAEP_PARAMS {
                hashAlg: hash,
                mgf,
                source: 0,
                pSourceData: std::ptr::null_mut(),
                ulSourceDataLen: 0,
            },
            rsa_aes: CK_RSA_AES_KEY_WRAP_PARAMS {
                ulAESKeyBits: 256,
                pOAEPParams: std::ptr::null_mut(),
            },
            rsa,
        }
    }

    fn as_ck(&mut self) -> CK_MECHANISM {
        if !self.rsa {
            return CK_MECHANISM {
                mechanism: cryptoki_sys::CKM_AES_KEY_WRAP_KWP,
                pParameter: std::ptr::null_mut(),
                ulParameterLen: 0,
            };
        }
        self.rsa_aes.pOAEPParams = &mut self.oaep;
        CK_MECHANISM {
            mechanism: cryptoki_sys::CKM_RSA_AES_KEY_WRAP,
            pParameter: &mut self.rsa_aes as *mut CK_RSA_AES_KEY_WRAP_PARAMS
                as *mut std::ffi::c_void,
            ulParameterLen: std::mem::size_of::<CK_RSA_AES_KEY_WRAP_PARAMS>() as CK_ULONG,
        }
    }
}

/// `C_WrapKey(key, by wrapping, mechanism)` for the mechanisms of [`RawWrap`].
pub(super) fn wrap_key(
    lib: &Path,
    session: CK_SESSION_HANDLE,
    mechanism: &RawWrap,
    wrapping: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
) -> Result<Vec<u8>, RawError> {
    let pkcs11 = library(lib)?;
    let wrap = pkcs11.list.C_WrapKey.ok_or_else(|| missing("C_WrapKey"))?;
    let mut raw = RawMechanism::new(mechanism);
    let mut mech = raw.as_ck();
    let mut len: CK_ULONG = 0;
    // SAFETY: a length query: `mech` points into `raw`, which outlives the call; the
    // module writes only `len`.
    let rv = unsafe {
        wrap(
            session,
            &mut mech,
            wrapping,
            key,
            std::ptr::null_mut(),
            &mut len,
        )
    };
    if rv != CKR_OK {
        return Err(RawError::Rv(rv));
    }
    let mut out = vec![0u8; len as usize];
    // SAFETY: `out` holds `len` bytes, as the module asked; it writes at most that many
    // and the length it wrote into `len`.
    let rv = unsafe {
        wrap(
            session,
            &mut mech,
            wrapping,
            key,
            out.as_mut_ptr(),
            &mut len,
        )
    };
    if rv != CKR_OK {
        return Err(RawError::Rv(rv));
    }
    out.truncate(len as usize);
    Ok(out)
}

/// `C_UnwrapKey(blob, by unwrapping, mechanism)` into an object with `template`.
pub(super) fn unwrap_key(
    lib: &Path,
    session: CK_SESSION_HANDLE,
    mechanism: &RawWrap,
    unwrapping: CK_OBJECT_HANDLE,
    blob: &[u8],
    template: &[cryptoki::object::Attribute],
) -> Result<ObjectHandle, RawError> {
    let pkcs11 = library(lib)?;
    let unwrap = pkcs11
        .list
        .C_UnwrapKey
        .ok_or_else(|| missing("C_UnwrapKey"))?;
    let mut raw = RawMechanism::new(mechanism);
    let mut mech = raw.as_ck();
    let mut template: Vec<CK_ATTRIBUTE> = template.iter().map(CK_ATTRIBUTE::from).collect();
    let mut handle: CK_OBJECT_HANDLE = 0;
    // SAFETY: `mech` points into `raw`, `template` into the caller's attributes, both alive
    // for the call; the module reads `blob` (its length given) and writes `handle`.
    let rv = unsafe {
        unwrap(
            session,
            &mut mech,
            unwrapping,
            blob.as_ptr() as *mut u8,
            blob.len() as CK_ULONG,
            template.as_mut_ptr(),
            template.len() as CK_ULONG,
            &mut handle,
        )
    };
    if rv != CKR_OK {
        return Err(RawError::Rv(rv));
    }
    // SAFETY: `handle` is the object C_UnwrapKey just made on this session.
    Ok(unsafe { ObjectHandle::new_from_raw(handle) })
}
