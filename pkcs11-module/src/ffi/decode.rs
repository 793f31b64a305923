//! The application's structures as wire values: attribute templates, mechanisms with
//! their parameters, and `CK_C_INITIALIZE_ARGS`.

use std::mem::size_of;

use pkcs11_wire::types::{attribute_kind, AttrKind};
use pkcs11_wire::{ck, AttrValue, Attribute, Mechanism, Params, MAX_FRAME};

use super::mem::{bytes, items};
use crate::fns::general::InitArgs;
use crate::fns::{CkResult, MAX_DATA};

/// A template's attributes, each typed by what PKCS#11 says the attribute holds.
///
/// Safety: a non-null `ptr` points to `count` initialised `CK_ATTRIBUTE`s whose
/// non-null `pValue`s are readable for `ulValueLen` bytes.
pub unsafe fn template(
    ptr: *const ck::CK_ATTRIBUTE,
    count: ck::CK_ULONG,
) -> CkResult<Vec<Attribute>> {
    // SAFETY: forwarded from this function's contract.
    let attributes = unsafe { items(ptr, count) }?;
    // Values that together could not fit in one frame to the daemon are refused before
    // any is copied: N attributes may all point at one large buffer.
    let mut total = 0usize;
    attributes
        .iter()
        .map(|a| {
            let kind = attribute_kind(a.type_).ok_or(ck::CKR_ATTRIBUTE_TYPE_INVALID)?;
            total = usize::try_from(a.ulValueLen)
                .ok()
                .and_then(|len| total.checked_add(len))
                .filter(|total| *total <= MAX_FRAME)
                .ok_or(ck::CKR_ATTRIBUTE_VALUE_INVALID)?;
            let invalid = |_| ck::CKR_ATTRIBUTE_VALUE_INVALID;
            // SAFETY: the attribute's own pointer and length, per this function's contract.
            let value = unsafe { bytes(a.pValue.cast::<u8>(), a.ulValueLen) }.map_err(invalid)?;
            let value = match kind {
                AttrKind::Bool if value.len() == size_of::<ck::CK_BBOOL>() => {
                    AttrValue::Bool(value[0] != ck::CK_FALSE)
                }
                AttrKind::Ulong => {
                    AttrValue::Ulong(ulong(value).ok_or(ck::CKR_ATTRIBUTE_VALUE_INVALID)?)
                }
                AttrKind::Ulongs if value.len() % size_of::<ck::CK_ULONG>() == 0 => {
                    AttrValue::Ulongs(
                        value
                            .chunks_exact(size_of::<ck::CK_ULONG>())
                            .filter_map(ulong)
                            .collect(),
                    )
                }
                AttrKind::Bytes => AttrValue::Bytes(value.to_vec()),
                AttrKind::Bool | AttrKind::Ulongs => return Err(ck::CKR_ATTRIBUTE_VALUE_INVALID),
            };
            Ok(Attribute {
                kind: a.type_,
                value,
            })
        })
        .collect()
}

fn ulong(bytes: &[u8]) -> Option<ck::CK_ULONG> {
    Some(ck::CK_ULONG::from_ne_bytes(bytes.try_into().ok()?))
}

/// The mechanism, or `None` for a null pointer (which cancels an operation in 3.x).
///
/// Safety: a non-null `ptr` points to an initialised `CK_MECHANISM` whose non-null
/// `pParameter` is readable for `ulParameterLen` bytes, and so are the pointers inside
/// the parameter structure.
pub unsafe fn mechanism_or_cancel(ptr: *const ck::CK_MECHANISM) -> CkResult<Option<Mechanism>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null, and the caller promises an initialised CK_MECHANISM.
    let raw = unsafe { ptr.read_unaligned() };
    // SAFETY: forwarded from this function's contract.
    let params = unsafe { params(&raw) }?;
    Ok(Some(Mechanism {
        kind: raw.mechanism,
        params,
    }))
}

/// A mechanism that must be given.
///
/// Safety: as [`mechanism_or_cancel`].
pub unsafe fn mechanism(ptr: *const ck::CK_MECHANISM) -> CkResult<Mechanism> {
    // SAFETY: forwarded from this function's contract.
    unsafe { mechanism_or_cancel(ptr) }?.ok_or(ck::CKR_ARGUMENTS_BAD)
}

/// A parameter structure `T`, which must be exactly what `ulParameterLen` says.
///
/// Safety: as [`mechanism_or_cancel`].
unsafe fn param_struct<T>(raw: &ck::CK_MECHANISM) -> CkResult<T> {
    if raw.pParameter.is_null() || usize::try_from(raw.ulParameterLen) != Ok(size_of::<T>()) {
        return Err(ck::CKR_MECHANISM_PARAM_INVALID);
    }
    // SAFETY: non-null and `size_of::<T>()` readable bytes; applications need not
    // align parameters, hence the unaligned read.
    Ok(unsafe { raw.pParameter.cast::<T>().read_unaligned() })
}

/// Bytes a parameter structure points to; a bad pointer is a bad parameter.
///
/// Safety: a non-null `ptr` is readable for `len` bytes.
unsafe fn param_bytes(ptr: *const u8, len: ck::CK_ULONG) -> CkResult<Vec<u8>> {
    // No parameter the appliance takes (IVs, labels, contexts) is anywhere near this.
    if usize::try_from(len).map_or(true, |len| len > MAX_DATA) {
        return Err(ck::CKR_MECHANISM_PARAM_INVALID);
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { bytes(ptr, len) }
        .map(<[u8]>::to_vec)
        .map_err(|_| ck::CKR_MECHANISM_PARAM_INVALID)
}

/// Decodes the parameter by mechanism type.
///
/// Safety: as [`mechanism_or_cancel`].
unsafe fn params(raw: &ck::CK_MECHANISM) -> CkResult<Params> {
    use ck::*;
    // SAFETY (every block below): `raw` is the application's mechanism, whose
    // parameter and inner pointers are readable as this function's contract says.
    Ok(match raw.mechanism {
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => {
            // SAFETY: see above.
            let p: CK_RSA_PKCS_PSS_PARAMS = unsafe { param_struct(raw) }?;
            Params::Pss {
                hash: p.hashAlg,
                mgf: p.mgf,
                salt_len: p.sLen,
            }
        }
        CKM_RSA_PKCS_OAEP => {
            // SAFETY: see above.
            let p: CK_RSA_PKCS_OAEP_PARAMS = unsafe { param_struct(raw) }?;
            let label = match p.source {
                CKZ_DATA_SPECIFIED => {
                    // SAFETY: see above.
                    unsafe { param_bytes(p.pSourceData.cast(), p.ulSourceDataLen) }?
                }
                0 if p.ulSourceDataLen == 0 => Vec::new(),
                _ => return Err(CKR_MECHANISM_PARAM_INVALID),
            };
            Params::Oaep {
                hash: p.hashAlg,
                mgf: p.mgf,
                label,
            }
        }
        CKM_AES_GCM => {
            // SAFETY: see above.
            let p: CK_GCM_PARAMS = unsafe { param_struct(raw) }?;
            Params::Gcm {
                // SAFETY: see above.
                iv: unsafe { param_bytes(p.pIv, p.ulIvLen) }?,
                // SAFETY: see above.
                aad: unsafe { param_bytes(p.pAAD, p.ulAADLen) }?,
                tag_bits: p.ulTagBits,
            }
        }
        CKM_AES_CBC | CKM_AES_CBC_PAD | CKM_AES_KEY_WRAP | CKM_AES_KEY_WRAP_KWP
        | CKM_AES_KEY_WRAP_PAD => {
            // SAFETY: see above.
            Params::Iv(unsafe { param_bytes(raw.pParameter.cast(), raw.ulParameterLen) }?)
        }
        CKM_ML_DSA if raw.ulParameterLen == 0 => Params::None,
        CKM_ML_DSA => {
            // SAFETY: see above.
            let p: CK_SIGN_ADDITIONAL_CONTEXT = unsafe { param_struct(raw) }?;
            Params::SignContext {
                hedge: p.hedgeVariant,
                // SAFETY: see above.
                context: unsafe { param_bytes(p.pContext, p.ulContextLen) }?,
            }
        }
        _ if raw.ulParameterLen == 0 => Params::None,
        kind if takes_no_parameter(kind) => return Err(CKR_MECHANISM_PARAM_INVALID),
        // A parameter the library cannot pass on: a mechanism it does not offer.
        _ => return Err(CKR_MECHANISM_INVALID),
    })
}

fn takes_no_parameter(kind: ck::CK_MECHANISM_TYPE) -> bool {
    use ck::*;
    matches!(
        kind,
        CKM_RSA_PKCS
            | CKM_SHA1_RSA_PKCS
            | CKM_SHA224_RSA_PKCS
            | CKM_SHA256_RSA_PKCS
            | CKM_SHA384_RSA_PKCS
            | CKM_SHA512_RSA_PKCS
            | CKM_ECDSA
            | CKM_ECDSA_SHA1
            | CKM_ECDSA_SHA224
            | CKM_ECDSA_SHA256
            | CKM_ECDSA_SHA384
            | CKM_ECDSA_SHA512
            | CKM_SHA_1
            | CKM_SHA224
            | CKM_SHA256
            | CKM_SHA384
            | CKM_SHA512
            | CKM_RSA_PKCS_KEY_PAIR_GEN
            | CKM_EC_KEY_PAIR_GEN
            | CKM_AES_KEY_GEN
            | CKM_AES_ECB
            | CKM_ML_DSA_KEY_PAIR_GEN
            | CKM_ML_KEM_KEY_PAIR_GEN
            | CKM_ML_KEM
    )
}

/// `C_Initialize`'s argument, if any.
///
/// Safety: a non-null `ptr` points to an initialised `CK_C_INITIALIZE_ARGS`.
pub unsafe fn init_args(ptr: *const std::ffi::c_void) -> Option<InitArgs> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-null, and the caller promises a CK_C_INITIALIZE_ARGS.
    let args = unsafe { ptr.cast::<ck::CK_C_INITIALIZE_ARGS>().read_unaligned() };
    let given = [
        args.CreateMutex.is_some(),
        args.DestroyMutex.is_some(),
        args.LockMutex.is_some(),
        args.UnlockMutex.is_some(),
    ];
    Some(InitArgs {
        mutex_callbacks: match given.iter().filter(|g| **g).count() {
            0 => Some(false),
            4 => Some(true),
            _ => None,
        },
        flags: args.flags,
        reserved: !args.pReserved.is_null(),
    })
}
