//! The function tables and interfaces the library hands out: `CK_FUNCTION_LIST` (2.40),
//! and the "PKCS 11" interfaces 3.2, 3.0 and 2.40.

use pkcs11_wire::ck::*;

use super::entry::*;

/// A function table of `$ty` naming each listed entry point by its own name, so a field
/// cannot point at another function.
macro_rules! table {
    ($ty:ident, $major:literal, $minor:literal; $($name:ident),* $(,)?) => {
        $ty {
            version: CK_VERSION {
                major: $major,
                minor: $minor,
            },
            $($name: Some($name),)*
        }
    };
}

/// The 2.40 functions, then those `$extra` adds: each table lists them once.
macro_rules! functions_240 {
    ($ty:ident, $major:literal, $minor:literal; $($extra:ident),* $(,)?) => {
        table!(
            $ty, $major, $minor;
            C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList, C_GetSlotList,
            C_GetSlotInfo, C_GetTokenInfo, C_GetMechanismList, C_GetMechanismInfo, C_InitToken,
            C_InitPIN, C_SetPIN, C_OpenSession, C_CloseSession, C_CloseAllSessions,
            C_GetSessionInfo, C_GetOperationState, C_SetOperationState, C_Login, C_Logout,
            C_CreateObject, C_CopyObject, C_DestroyObject, C_GetObjectSize, C_GetAttributeValue,
            C_SetAttributeValue, C_FindObjectsInit, C_FindObjects, C_FindObjectsFinal,
            C_EncryptInit, C_Encrypt, C_EncryptUpdate, C_EncryptFinal, C_DecryptInit, C_Decrypt,
            C_DecryptUpdate, C_DecryptFinal, C_DigestInit, C_Digest, C_DigestUpdate,
            C_DigestKey, C_DigestFinal, C_SignInit, C_Sign, C_SignUpdate, C_SignFinal,
            C_SignRecoverInit, C_SignRecover, C_VerifyInit, C_Verify, C_VerifyUpdate,
            C_VerifyFinal, C_VerifyRecoverInit, C_VerifyRecover, C_DigestEncryptUpdate,
            C_DecryptDigestUpdate, C_SignEncryptUpdate, C_DecryptVerifyUpdate, C_GenerateKey,
            C_GenerateKeyPair, C_WrapKey, C_UnwrapKey, C_DeriveKey, C_SeedRandom,
            C_GenerateRandom, C_GetFunctionStatus, C_CancelFunction, C_WaitForSlotEvent,
            $($extra,)*
        )
    };
}

macro_rules! functions_300 {
    ($ty:ident, $major:literal, $minor:literal; $($extra:ident),* $(,)?) => {
        functions_240!(
            $ty, $major, $minor;
            C_GetInterfaceList, C_GetInterface, C_LoginUser, C_SessionCancel,
            C_MessageEncryptInit, C_EncryptMessage, C_EncryptMessageBegin, C_EncryptMessageNext,
            C_MessageEncryptFinal, C_MessageDecryptInit, C_DecryptMessage,
            C_DecryptMessageBegin, C_DecryptMessageNext, C_MessageDecryptFinal,
            C_MessageSignInit, C_SignMessage, C_SignMessageBegin, C_SignMessageNext,
            C_MessageSignFinal, C_MessageVerifyInit, C_VerifyMessage, C_VerifyMessageBegin,
            C_VerifyMessageNext, C_MessageVerifyFinal,
            $($extra,)*
        )
    };
}

static FUNCTIONS_240: CK_FUNCTION_LIST = functions_240!(CK_FUNCTION_LIST, 2, 40;);

static FUNCTIONS_300: CK_FUNCTION_LIST_3_0 = functions_300!(CK_FUNCTION_LIST_3_0, 3, 0;);

static FUNCTIONS_320: CK_FUNCTION_LIST_3_2 = functions_300!(
    CK_FUNCTION_LIST_3_2, 3, 2;
    C_EncapsulateKey, C_DecapsulateKey, C_VerifySignatureInit, C_VerifySignature,
    C_VerifySignatureUpdate, C_VerifySignatureFinal, C_GetSessionValidationFlags,
    C_AsyncComplete, C_AsyncGetID, C_AsyncJoin, C_WrapKeyAuthenticated,
    C_UnwrapKeyAuthenticated,
);

/// A `CK_INTERFACE`, shareable between threads.
struct Interface(CK_INTERFACE);

// SAFETY: the pointers inside point to immutable statics (the name and a function
// table), so sharing them between threads cannot race.
unsafe impl Sync for Interface {}

static INTERFACE_NAME: &[u8] = b"PKCS 11\0";

static INTERFACE_320: Interface = Interface(CK_INTERFACE {
    pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
    pFunctionList: &FUNCTIONS_320 as *const CK_FUNCTION_LIST_3_2 as *mut std::ffi::c_void,
    flags: 0,
});

static INTERFACE_300: Interface = Interface(CK_INTERFACE {
    pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
    pFunctionList: &FUNCTIONS_300 as *const CK_FUNCTION_LIST_3_0 as *mut std::ffi::c_void,
    flags: 0,
});

static INTERFACE_240: Interface = Interface(CK_INTERFACE {
    pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
    pFunctionList: &FUNCTIONS_240 as *const CK_FUNCTION_LIST as *mut std::ffi::c_void,
    flags: 0,
});

/// Newest first: what `C_GetInterface` picks when the application names no version.
static INTERFACES: [&Interface; 3] = [&INTERFACE_320, &INTERFACE_300, &INTERFACE_240];

/// The 2.40 table `C_GetFunctionList` returns (applications only read it).
pub fn function_list() -> *mut CK_FUNCTION_LIST {
    &FUNCTIONS_240 as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST
}

pub fn interfaces() -> Vec<CK_INTERFACE> {
    INTERFACES.iter().map(|i| i.0).collect()
}

/// The interface matching the name (only "PKCS 11"), version and flags asked for.
pub fn interface(
    name: Option<&[u8]>,
    version: Option<CK_VERSION>,
    flags: CK_FLAGS,
) -> Option<*mut CK_INTERFACE> {
    if name.is_some_and(|n| n != &INTERFACE_NAME[..INTERFACE_NAME.len() - 1]) {
        return None;
    }
    INTERFACES
        .iter()
        .find(|i| {
            let table = table_version(&i.0);
            version.is_none_or(|v| v.major == table.major && v.minor == table.minor)
                && i.0.flags & flags == flags
        })
        .map(|i| &i.0 as *const CK_INTERFACE as *mut CK_INTERFACE)
}

fn table_version(interface: &CK_INTERFACE) -> CK_VERSION {
    if std::ptr::eq(interface, &INTERFACE_320.0) {
        FUNCTIONS_320.version
    } else if std::ptr::eq(interface, &INTERFACE_300.0) {
        FUNCTIONS_300.version
    } else {
        FUNCTIONS_240.version
    }
}
