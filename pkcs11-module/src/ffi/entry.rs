//! The exported PKCS#11 functions: each decodes its pointers, calls its safe function in
//! [`crate::fns`], and writes the answer back.

#![allow(non_snake_case)]

use std::ffi::c_void;

use pkcs11_wire::ck::*;

use super::decode::{init_args, mechanism, mechanism_or_cancel, template};
use super::mem::{bytes, write, AttrTemplate, OutList};
use super::{guard, tables};
use crate::fns::{
    decrypt, digest, encrypt, general, kem, keys, object, random, session, sign, slot, verify,
};

// ---- General-purpose functions ----

#[no_mangle]
pub unsafe extern "C" fn C_Initialize(pInitArgs: *mut c_void) -> CK_RV {
    guard(|| {
        // SAFETY: a non-null argument is a CK_C_INITIALIZE_ARGS, per C_Initialize.
        let args = unsafe { init_args(pInitArgs) };
        general::initialize(args)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Finalize(pReserved: *mut c_void) -> CK_RV {
    guard(|| general::finalize(!pReserved.is_null()))
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInfo(pInfo: *mut CK_INFO) -> CK_RV {
    guard(|| {
        let info = general::get_info()?;
        // SAFETY: a non-null pInfo is writable, per C_GetInfo.
        unsafe { write(pInfo, info) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(ppFunctionList: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    // SAFETY: a non-null ppFunctionList is writable, per C_GetFunctionList.
    guard(|| unsafe { write(ppFunctionList, tables::function_list()) })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInterfaceList(
    pInterfacesList: *mut CK_INTERFACE,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the list and its count as C_GetInterfaceList defines them.
        let mut out = unsafe { OutList::new(pInterfacesList, pulCount) }?;
        out.put_all(&tables::interfaces())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInterface(
    pInterfaceName: *mut CK_UTF8CHAR,
    pVersion: *mut CK_VERSION,
    ppInterface: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> CK_RV {
    guard(|| {
        let name = if pInterfaceName.is_null() {
            None
        } else {
            // SAFETY: a non-null name is a NUL-terminated string, per C_GetInterface.
            Some(unsafe { std::ffi::CStr::from_ptr(pInterfaceName.cast()) }.to_bytes())
        };
        let version = if pVersion.is_null() {
            None
        } else {
            // SAFETY: a non-null pVersion points to a CK_VERSION, per C_GetInterface.
            Some(unsafe { pVersion.read_unaligned() })
        };
        let interface = tables::interface(name, version, flags).ok_or(CKR_ARGUMENTS_BAD)?;
        // SAFETY: a non-null ppInterface is writable, per C_GetInterface.
        unsafe { write(ppInterface, interface) }
    })
}

// ---- Slot and token management ----

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotList(
    tokenPresent: CK_BBOOL,
    pSlotList: *mut CK_SLOT_ID,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the list and its count as C_GetSlotList defines them.
        let mut out = unsafe { OutList::new(pSlotList, pulCount) }?;
        out.put_all(&slot::get_slot_list(tokenPresent != CK_FALSE)?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_SLOT_INFO) -> CK_RV {
    guard(|| {
        if pInfo.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let info = slot::get_slot_info(slotID)?;
        // SAFETY: pInfo is non-null and writable, per C_GetSlotInfo.
        unsafe { write(pInfo, info) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetTokenInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_TOKEN_INFO) -> CK_RV {
    guard(|| {
        if pInfo.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let info = slot::get_token_info(slotID)?;
        // SAFETY: pInfo is non-null and writable, per C_GetTokenInfo.
        unsafe { write(pInfo, info) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismList(
    slotID: CK_SLOT_ID,
    pMechanismList: *mut CK_MECHANISM_TYPE,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the list and its count as C_GetMechanismList defines them.
        let mut out = unsafe { OutList::new(pMechanismList, pulCount) }?;
        out.put_all(&slot::get_mechanism_list(slotID)?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slotID: CK_SLOT_ID,
    type_: CK_MECHANISM_TYPE,
    pInfo: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    guard(|| {
        if pInfo.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let info = slot::get_mechanism_info(slotID, type_)?;
        // SAFETY: pInfo is non-null and writable, per C_GetMechanismInfo.
        unsafe { write(pInfo, info) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_InitToken(
    _slotID: CK_SLOT_ID,
    _pPin: *mut CK_UTF8CHAR,
    _ulPinLen: CK_ULONG,
    _pLabel: *mut CK_UTF8CHAR,
) -> CK_RV {
    guard(slot::administration_not_supported)
}

#[no_mangle]
pub unsafe extern "C" fn C_InitPIN(
    _hSession: CK_SESSION_HANDLE,
    _pPin: *mut CK_UTF8CHAR,
    _ulPinLen: CK_ULONG,
) -> CK_RV {
    guard(slot::administration_not_supported)
}

#[no_mangle]
pub unsafe extern "C" fn C_SetPIN(
    _hSession: CK_SESSION_HANDLE,
    _pOldPin: *mut CK_UTF8CHAR,
    _ulOldLen: CK_ULONG,
    _pNewPin: *mut CK_UTF8CHAR,
    _ulNewLen: CK_ULONG,
) -> CK_RV {
    guard(slot::administration_not_supported)
}

#[no_mangle]
pub unsafe extern "C" fn C_WaitForSlotEvent(
    _flags: CK_FLAGS,
    _pSlot: *mut CK_SLOT_ID,
    _pReserved: *mut c_void,
) -> CK_RV {
    guard(slot::administration_not_supported)
}

// ---- Session management ----

#[no_mangle]
pub unsafe extern "C" fn C_OpenSession(
    slotID: CK_SLOT_ID,
    flags: CK_FLAGS,
    _pApplication: *mut c_void,
    _Notify: CK_NOTIFY,
    phSession: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    guard(|| {
        if phSession.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let handle = session::open_session(slotID, flags)?;
        // SAFETY: phSession is non-null and writable, per C_OpenSession.
        unsafe { write(phSession, handle) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseSession(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| session::close_session(hSession))
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseAllSessions(slotID: CK_SLOT_ID) -> CK_RV {
    guard(|| session::close_all_sessions(slotID))
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSessionInfo(
    hSession: CK_SESSION_HANDLE,
    pInfo: *mut CK_SESSION_INFO,
) -> CK_RV {
    guard(|| {
        if pInfo.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let info = session::get_session_info(hSession)?;
        let info = CK_SESSION_INFO {
            slotID: slot::SLOT_ID,
            state: info.state,
            flags: info.flags,
            ulDeviceError: 0,
        };
        // SAFETY: pInfo is non-null and writable, per C_GetSessionInfo.
        unsafe { write(pInfo, info) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetOperationState(
    hSession: CK_SESSION_HANDLE,
    _pOperationState: *mut CK_BYTE,
    _pulOperationStateLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| session::operation_state(hSession))
}

#[no_mangle]
pub unsafe extern "C" fn C_SetOperationState(
    hSession: CK_SESSION_HANDLE,
    _pOperationState: *mut CK_BYTE,
    _ulOperationStateLen: CK_ULONG,
    _hEncryptionKey: CK_OBJECT_HANDLE,
    _hAuthenticationKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| session::operation_state(hSession))
}

#[no_mangle]
pub unsafe extern "C" fn C_Login(
    hSession: CK_SESSION_HANDLE,
    userType: CK_USER_TYPE,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // A null PIN would mean a protected authentication path, which the token has not.
        if pPin.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: pPin holds ulPinLen bytes, per C_Login.
        let pin = unsafe { bytes(pPin, ulPinLen) }?;
        session::login(hSession, userType, pin)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Logout(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| session::logout(hSession))
}

#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionStatus(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| session::not_parallel(hSession))
}

#[no_mangle]
pub unsafe extern "C" fn C_CancelFunction(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| session::not_parallel(hSession))
}

// ---- Object management ----

#[no_mangle]
pub unsafe extern "C" fn C_CreateObject(
    hSession: CK_SESSION_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
    phObject: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        if phObject.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: the template as C_CreateObject defines it.
        let template = unsafe { template(pTemplate, ulCount) }?;
        let handle = object::create_object(hSession, template)?;
        // SAFETY: phObject is non-null and writable, per C_CreateObject.
        unsafe { write(phObject, handle) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CopyObject(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
    phNewObject: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        if phNewObject.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: the template as C_CopyObject defines it.
        let template = unsafe { template(pTemplate, ulCount) }?;
        let handle = object::copy_object(hSession, hObject, template)?;
        // SAFETY: phNewObject is non-null and writable, per C_CopyObject.
        unsafe { write(phNewObject, handle) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DestroyObject(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| object::destroy_object(hSession, hObject))
}

#[no_mangle]
pub unsafe extern "C" fn C_GetObjectSize(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pulSize: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        if pulSize.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let size = object::get_object_size(hSession, hObject)?;
        // SAFETY: pulSize is non-null and writable, per C_GetObjectSize.
        unsafe { write(pulSize, size) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetAttributeValue(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the template and its buffers as C_GetAttributeValue defines them.
        let template = unsafe { AttrTemplate::new(pTemplate, ulCount) }?;
        let (answers, rv) = object::get_attribute_value(hSession, hObject, &template.requests())?;
        template.fill(answers);
        if rv == CKR_OK {
            Ok(())
        } else {
            Err(rv)
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetAttributeValue(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the template as C_SetAttributeValue defines it.
        let template = unsafe { template(pTemplate, ulCount) }?;
        object::set_attribute_value(hSession, hObject, template)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsInit(
    hSession: CK_SESSION_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the template as C_FindObjectsInit defines it.
        let template = unsafe { template(pTemplate, ulCount) }?;
        object::find_objects_init(hSession, template)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjects(
    hSession: CK_SESSION_HANDLE,
    phObject: *mut CK_OBJECT_HANDLE,
    ulMaxObjectCount: CK_ULONG,
    pulObjectCount: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        if pulObjectCount.is_null() || (phObject.is_null() && ulMaxObjectCount > 0) {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let max = usize::try_from(ulMaxObjectCount).unwrap_or(usize::MAX);
        let found = object::find_objects(hSession, max)?;
        if !found.is_empty() {
            // SAFETY: phObject is non-null (found is non-empty, so max > 0) and has room
            // for ulMaxObjectCount >= found.len() handles, per C_FindObjects.
            unsafe { std::ptr::copy_nonoverlapping(found.as_ptr(), phObject, found.len()) };
        }
        // SAFETY: pulObjectCount is non-null (checked above) and writable.
        unsafe { write(pulObjectCount, found.len() as CK_ULONG) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| object::find_objects_final(hSession))
}

// ---- Encryption and decryption ----

#[no_mangle]
pub unsafe extern "C" fn C_EncryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        // SAFETY: the mechanism as C_EncryptInit defines it.
        let mechanism = unsafe { mechanism_or_cancel(pMechanism) }?;
        encrypt::encrypt_init(hSession, mechanism, hKey)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Encrypt(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pEncryptedData: *mut CK_BYTE,
    pulEncryptedDataLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: input and output buffers as C_Encrypt defines them.
        let (data, mut out) = unsafe {
            (
                bytes(pData, ulDataLen)?,
                OutList::new(pEncryptedData, pulEncryptedDataLen)?,
            )
        };
        out.put(encrypt::encrypt(hSession, data, out.capacity()))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
    pEncryptedPart: *mut CK_BYTE,
    pulEncryptedPartLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: input and output buffers as C_EncryptUpdate defines them.
        let (data, mut out) = unsafe {
            (
                bytes(pPart, ulPartLen)?,
                OutList::new(pEncryptedPart, pulEncryptedPartLen)?,
            )
        };
        encrypt::encrypt_update(hSession, data)?;
        out.put_all(&[])
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptFinal(
    hSession: CK_SESSION_HANDLE,
    pLastEncryptedPart: *mut CK_BYTE,
    pulLastEncryptedPartLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the output buffer as C_EncryptFinal defines it.
        let mut out = unsafe { OutList::new(pLastEncryptedPart, pulLastEncryptedPartLen) }?;
        out.put(encrypt::encrypt_final(hSession, out.capacity()))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        // SAFETY: the mechanism as C_DecryptInit defines it.
        let mechanism = unsafe { mechanism_or_cancel(pMechanism) }?;
        decrypt::decrypt_init(hSession, mechanism, hKey)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Decrypt(
    hSession: CK_SESSION_HANDLE,
    pEncryptedData: *mut CK_BYTE,
    ulEncryptedDataLen: CK_ULONG,
    pData: *mut CK_BYTE,
    pulDataLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: input and output buffers as C_Decrypt defines them.
        let (data, mut out) = unsafe {
            (
                bytes(pEncryptedData, ulEncryptedDataLen)?,
                OutList::new(pData, pulDataLen)?,
            )
        };
        out.put(decrypt::decrypt(hSession, data, out.capacity()))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pEncryptedPart: *mut CK_BYTE,
    ulEncryptedPartLen: CK_ULONG,
    pPart: *mut CK_BYTE,
    pulPartLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: input and output buffers as C_DecryptUpdate defines them.
        let (data, mut out) = unsafe {
            (
                bytes(pEncryptedPart, ulEncryptedPartLen)?,
                OutList::new(pPart, pulPartLen)?,
            )
        };
        decrypt::decrypt_update(hSession, data)?;
        out.put_all(&[])
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptFinal(
    hSession: CK_SESSION_HANDLE,
    pLastPart: *mut CK_BYTE,
    pulLastPartLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the output buffer as C_DecryptFinal defines it.
        let mut out = unsafe { OutList::new(pLastPart, pulLastPartLen) }?;
        out.put(decrypt::decrypt_final(hSession, out.capacity()))
    })
}

// ---- Message digesting ----

#[no_mangle]
pub unsafe extern "C" fn C_DigestInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
) -> CK_RV {
    guard(|| {
        // SAFETY: the mechanism as C_DigestInit defines it.
        let mechanism = unsafe { mechanism_or_cancel(pMechanism) }?;
        digest::digest_init(hSession, mechanism)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Digest(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pDigest: *mut CK_BYTE,
    pulDigestLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: input and output buffers as C_Digest defines them.
        let (data, mut out) = unsafe {
            (
                bytes(pData, ulDataLen)?,
                OutList::new(pDigest, pulDigestLen)?,
            )
        };
        out.put(digest::digest(hSession, data, out.capacity()))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the input buffer as C_DigestUpdate defines it.
        let data = unsafe { bytes(pPart, ulPartLen) }?;
        digest::digest_update(hSession, data)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestKey(hSession: CK_SESSION_HANDLE, hKey: CK_OBJECT_HANDLE) -> CK_RV {
    guard(|| digest::digest_key(hSession, hKey))
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestFinal(
    hSession: CK_SESSION_HANDLE,
    pDigest: *mut CK_BYTE,
    pulDigestLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the output buffer as C_DigestFinal defines it.
        let mut out = unsafe { OutList::new(pDigest, pulDigestLen) }?;
        out.put(digest::digest_final(hSession, out.capacity()))
    })
}

// ---- Signing and verification ----

#[no_mangle]
pub unsafe extern "C" fn C_SignInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        // SAFETY: the mechanism as C_SignInit defines it.
        let mechanism = unsafe { mechanism_or_cancel(pMechanism) }?;
        sign::sign_init(hSession, mechanism, hKey)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Sign(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pSignature: *mut CK_BYTE,
    pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: input and output buffers as C_Sign defines them.
        let (data, mut out) = unsafe {
            (
                bytes(pData, ulDataLen)?,
                OutList::new(pSignature, pulSignatureLen)?,
            )
        };
        out.put(sign::sign(hSession, data, out.capacity()))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the input buffer as C_SignUpdate defines it.
        let data = unsafe { bytes(pPart, ulPartLen) }?;
        sign::sign_update(hSession, data)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignFinal(
    hSession: CK_SESSION_HANDLE,
    pSignature: *mut CK_BYTE,
    pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the output buffer as C_SignFinal defines it.
        let mut out = unsafe { OutList::new(pSignature, pulSignatureLen) }?;
        out.put(sign::sign_final(hSession, out.capacity()))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        // SAFETY: the mechanism as C_VerifyInit defines it.
        let mechanism = unsafe { mechanism_or_cancel(pMechanism) }?;
        verify::verify_init(hSession, mechanism, hKey)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Verify(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pSignature: *mut CK_BYTE,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: both input buffers as C_Verify defines them.
        let (data, signature) =
            unsafe { (bytes(pData, ulDataLen)?, bytes(pSignature, ulSignatureLen)?) };
        verify::verify(hSession, data, signature)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the input buffer as C_VerifyUpdate defines it.
        let data = unsafe { bytes(pPart, ulPartLen) }?;
        verify::verify_update(hSession, data)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyFinal(
    hSession: CK_SESSION_HANDLE,
    pSignature: *mut CK_BYTE,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the input buffer as C_VerifyFinal defines it.
        let signature = unsafe { bytes(pSignature, ulSignatureLen) }?;
        verify::verify_final(hSession, signature)
    })
}

// ---- Key management ----

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        if phKey.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: mechanism and template as C_GenerateKey defines them.
        let (mechanism, template) =
            unsafe { (mechanism(pMechanism)?, template(pTemplate, ulCount)?) };
        let key = keys::generate_key(hSession, mechanism, template)?;
        // SAFETY: phKey is non-null and writable, per C_GenerateKey.
        unsafe { write(phKey, key) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKeyPair(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    pPublicKeyTemplate: *mut CK_ATTRIBUTE,
    ulPublicKeyAttributeCount: CK_ULONG,
    pPrivateKeyTemplate: *mut CK_ATTRIBUTE,
    ulPrivateKeyAttributeCount: CK_ULONG,
    phPublicKey: *mut CK_OBJECT_HANDLE,
    phPrivateKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        if phPublicKey.is_null() || phPrivateKey.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: mechanism and templates as C_GenerateKeyPair defines them.
        let (mechanism, public, private) = unsafe {
            (
                mechanism(pMechanism)?,
                template(pPublicKeyTemplate, ulPublicKeyAttributeCount)?,
                template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount)?,
            )
        };
        let (public, private) = keys::generate_key_pair(hSession, mechanism, public, private)?;
        // SAFETY: both are non-null and writable, per C_GenerateKeyPair.
        unsafe {
            write(phPublicKey, public)?;
            write(phPrivateKey, private)
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_WrapKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hWrappingKey: CK_OBJECT_HANDLE,
    hKey: CK_OBJECT_HANDLE,
    pWrappedKey: *mut CK_BYTE,
    pulWrappedKeyLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: mechanism and output buffer as C_WrapKey defines them.
        let (mechanism, mut out) = unsafe {
            (
                mechanism(pMechanism)?,
                OutList::new(pWrappedKey, pulWrappedKeyLen)?,
            )
        };
        out.put(keys::wrap_key(
            hSession,
            mechanism,
            hWrappingKey,
            hKey,
            out.capacity(),
        ))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_UnwrapKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hUnwrappingKey: CK_OBJECT_HANDLE,
    pWrappedKey: *mut CK_BYTE,
    ulWrappedKeyLen: CK_ULONG,
    pTemplate: *mut CK_ATTRIBUTE,
    ulAttributeCount: CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        if phKey.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: mechanism, wrapped bytes and template as C_UnwrapKey defines them.
        let (mechanism, wrapped, template) = unsafe {
            (
                mechanism(pMechanism)?,
                bytes(pWrappedKey, ulWrappedKeyLen)?,
                template(pTemplate, ulAttributeCount)?,
            )
        };
        let key = keys::unwrap_key(hSession, mechanism, hUnwrappingKey, wrapped, template)?;
        // SAFETY: phKey is non-null and writable, per C_UnwrapKey.
        unsafe { write(phKey, key) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncapsulateKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hPublicKey: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulAttributeCount: CK_ULONG,
    pCiphertext: *mut CK_BYTE,
    pulCiphertextLen: *mut CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        if phKey.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: mechanism, template and output buffer as C_EncapsulateKey defines them.
        let (mechanism, template, mut out) = unsafe {
            (
                mechanism(pMechanism)?,
                template(pTemplate, ulAttributeCount)?,
                OutList::new(pCiphertext, pulCiphertextLen)?,
            )
        };
        let (ciphertext, key) =
            kem::encapsulate_key(hSession, mechanism, hPublicKey, template, out.capacity())?;
        out.put(Ok(ciphertext))?;
        match key {
            // SAFETY: phKey is non-null and writable, per C_EncapsulateKey.
            Some(key) => unsafe { write(phKey, key) },
            None => Ok(()),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecapsulateKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hPrivateKey: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulAttributeCount: CK_ULONG,
    pCiphertext: *mut CK_BYTE,
    ulCiphertextLen: CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        if phKey.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: mechanism, template and ciphertext as C_DecapsulateKey defines them.
        let (mechanism, template, ciphertext) = unsafe {
            (
                mechanism(pMechanism)?,
                template(pTemplate, ulAttributeCount)?,
                bytes(pCiphertext, ulCiphertextLen)?,
            )
        };
        let key = kem::decapsulate_key(hSession, mechanism, hPrivateKey, template, ciphertext)?;
        // SAFETY: phKey is non-null and writable, per C_DecapsulateKey.
        unsafe { write(phKey, key) }
    })
}

// ---- Random number generation ----

#[no_mangle]
pub unsafe extern "C" fn C_SeedRandom(
    hSession: CK_SESSION_HANDLE,
    _pSeed: *mut CK_BYTE,
    _ulSeedLen: CK_ULONG,
) -> CK_RV {
    guard(|| random::seed_random(hSession))
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateRandom(
    hSession: CK_SESSION_HANDLE,
    RandomData: *mut CK_BYTE,
    ulRandomLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let len = usize::try_from(ulRandomLen).map_err(|_| CKR_ARGUMENTS_BAD)?;
        if RandomData.is_null() && len > 0 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        random::generate_random(hSession, len, |offset, part| {
            // SAFETY: RandomData is non-null (len > 0 whenever a part arrives) and
            // writable for ulRandomLen bytes, per C_GenerateRandom; the parts cover
            // offsets below len only.
            unsafe {
                std::ptr::copy_nonoverlapping(part.as_ptr(), RandomData.add(offset), part.len())
            };
        })?;
        Ok(())
    })
}

// ---- Functions the appliance does not offer ----

/// Exported functions that answer `CKR_FUNCTION_NOT_SUPPORTED` whatever they are given:
/// dual-function and recover operations, derivation, and the 3.x message-based,
/// asynchronous and validation families.
macro_rules! not_supported {
    ($($name:ident($($arg:ident: $ty:ty),* $(,)?);)*) => {$(
        #[no_mangle]
        pub unsafe extern "C" fn $name($(_: $ty),*) -> CK_RV {
            CKR_FUNCTION_NOT_SUPPORTED
        }
    )*};
}

not_supported! {
    C_SignRecoverInit(s: CK_SESSION_HANDLE, m: *mut CK_MECHANISM, k: CK_OBJECT_HANDLE);
    C_SignRecover(s: CK_SESSION_HANDLE, d: *mut CK_BYTE, dl: CK_ULONG, o: *mut CK_BYTE, ol: *mut CK_ULONG);
    C_VerifyRecoverInit(s: CK_SESSION_HANDLE, m: *mut CK_MECHANISM, k: CK_OBJECT_HANDLE);
    C_VerifyRecover(s: CK_SESSION_HANDLE, d: *mut CK_BYTE, dl: CK_ULONG, o: *mut CK_BYTE, ol: *mut CK_ULONG);
    C_DigestEncryptUpdate(s: CK_SESSION_HANDLE, d: *mut CK_BYTE, dl: CK_ULONG, o: *mut CK_BYTE, ol: *mut CK_ULONG);
    C_DecryptDigestUpdate(s: CK_SESSION_HANDLE, d: *mut CK_BYTE, dl: CK_ULONG, o: *mut CK_BYTE, ol: *mut CK_ULONG);
    C_SignEncryptUpdate(s: CK_SESSION_HANDLE, d: *mut CK_BYTE, dl: CK_ULONG, o: *mut CK_BYTE, ol: *mut CK_ULONG);
    C_DecryptVerifyUpdate(s: CK_SESSION_HANDLE, d: *mut CK_BYTE, dl: CK_ULONG, o: *mut CK_BYTE, ol: *mut CK_ULONG);
    C_DeriveKey(s: CK_SESSION_HANDLE, m: *mut CK_MECHANISM, k: CK_OBJECT_HANDLE, t: *mut CK_ATTRIBUTE, n: CK_ULONG, h: *mut CK_OBJECT_HANDLE);
    C_LoginUser(s: CK_SESSION_HANDLE, u: CK_USER_TYPE, p: *mut CK_UTF8CHAR, pl: CK_ULONG, n: *mut CK_UTF8CHAR, nl: CK_ULONG);
    C_SessionCancel(s: CK_SESSION_HANDLE, f: CK_FLAGS);
    C_MessageEncryptInit(s: CK_SESSION_HANDLE, m: *mut CK_MECHANISM, k: CK_OBJECT_HANDLE);
    C_EncryptMessage(s: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, a: *mut CK_BYTE, al: CK_ULONG, d: *mut CK_BYTE, dl: CK_ULONG, o: *mut CK_BYTE, ol: *mut CK_ULONG);
    C_EncryptMessageBegin(s: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, a: *mut CK_BYTE, al: CK_ULONG);
    C_EncryptMessageNext(s: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, d: *mut CK_BYTE, dl: CK_ULONG, o: *mut CK_BYTE, ol: *mut CK_ULONG, f: CK_FLAGS);
    C_MessageEncryptFinal(s: CK_SESSION_HANDLE);
    C_MessageDecryptInit(s: CK_SESSION_HANDLE, m: *mut CK_MECHANISM, k: CK_OBJECT_HANDLE);
    C_DecryptMessage(s: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, a: *mut CK_BYTE, al: CK_ULONG, d: *mut CK_BYTE, dl: CK_ULONG, o: *mut CK_BYTE, ol: *mut CK_ULONG);
    C_DecryptMessageBegin(s: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, a: *mut CK_BYTE, al: CK_ULONG);
    C_DecryptMessageNext(s: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, d: *mut CK_BYTE, dl: CK_ULONG, o: *mut CK_BYTE, ol: *mut CK_ULONG, f: CK_FLAGS);
    C_MessageDecryptFinal(s: CK_SESSION_HANDLE);
    C_MessageSignInit(s: CK_SESSION_HANDLE, m: *mut CK_MECHANISM, k: CK_OBJECT_HANDLE);
    C_SignMessage(s: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, d: *mut CK_BYTE, dl: CK_ULONG, o: *mut CK_BYTE, ol: *mut CK_ULONG);
    C_SignMessageBegin(s: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG);
    C_SignMessageNext(s: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, d: *mut CK_BYTE, dl: CK_ULONG, o: *mut CK_BYTE, ol: *mut CK_ULONG);
    C_MessageSignFinal(s: CK_SESSION_HANDLE);
    C_MessageVerifyInit(s: CK_SESSION_HANDLE, m: *mut CK_MECHANISM, k: CK_OBJECT_HANDLE);
    C_VerifyMessage(s: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, d: *mut CK_BYTE, dl: CK_ULONG, g: *mut CK_BYTE, gl: CK_ULONG);
    C_VerifyMessageBegin(s: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG);
    C_VerifyMessageNext(s: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, d: *mut CK_BYTE, dl: CK_ULONG, g: *mut CK_BYTE, gl: CK_ULONG);
    C_MessageVerifyFinal(s: CK_SESSION_HANDLE);
    C_VerifySignatureInit(s: CK_SESSION_HANDLE, m: *mut CK_MECHANISM, k: CK_OBJECT_HANDLE, g: *mut CK_BYTE, gl: CK_ULONG);
    C_VerifySignature(s: CK_SESSION_HANDLE, d: *mut CK_BYTE, dl: CK_ULONG);
    C_VerifySignatureUpdate(s: CK_SESSION_HANDLE, d: *mut CK_BYTE, dl: CK_ULONG);
    C_VerifySignatureFinal(s: CK_SESSION_HANDLE);
    C_GetSessionValidationFlags(s: CK_SESSION_HANDLE, t: CK_SESSION_VALIDATION_FLAGS_TYPE, f: *mut CK_FLAGS);
    C_AsyncComplete(s: CK_SESSION_HANDLE, n: *mut CK_UTF8CHAR, r: *mut CK_ASYNC_DATA);
    C_AsyncGetID(s: CK_SESSION_HANDLE, n: *mut CK_UTF8CHAR, i: *mut CK_ULONG);
    C_AsyncJoin(s: CK_SESSION_HANDLE, n: *mut CK_UTF8CHAR, i: CK_ULONG, d: *mut CK_BYTE, dl: CK_ULONG);
    C_WrapKeyAuthenticated(s: CK_SESSION_HANDLE, m: *mut CK_MECHANISM, w: CK_OBJECT_HANDLE, k: CK_OBJECT_HANDLE, a: *mut CK_BYTE, al: CK_ULONG, o: *mut CK_BYTE, ol: *mut CK_ULONG);
    C_UnwrapKeyAuthenticated(s: CK_SESSION_HANDLE, m: *mut CK_MECHANISM, u: CK_OBJECT_HANDLE, w: *mut CK_BYTE, wl: CK_ULONG, t: *mut CK_ATTRIBUTE, n: CK_ULONG, a: *mut CK_BYTE, al: CK_ULONG, h: *mut CK_OBJECT_HANDLE);
}
