//! The wire format between `libironseal_pkcs11.so` and the daemon's PKCS#11 RPC listener.
//!
//! Kept in its own small crate so the PKCS#11 library depends on nothing else of the
//! appliance. Empty until the PKCS#11 work lands; the `cdylib` itself will sit beside it.

#![forbid(unsafe_code)]

/// The `CK_RV` values the daemon answers with (PKCS#11 3.1, section 5.1): the numbers
/// travel in reply frames, so both sides name them here.
pub mod rv {
    pub const CKR_OK: u32 = 0x0000;
    pub const CKR_GENERAL_ERROR: u32 = 0x0005;
    pub const CKR_FUNCTION_FAILED: u32 = 0x0006;
    pub const CKR_ARGUMENTS_BAD: u32 = 0x0007;
    pub const CKR_ACTION_PROHIBITED: u32 = 0x001B;
    pub const CKR_DATA_LEN_RANGE: u32 = 0x0021;
    pub const CKR_DEVICE_ERROR: u32 = 0x0030;
    pub const CKR_DEVICE_MEMORY: u32 = 0x0031;
    pub const CKR_DEVICE_REMOVED: u32 = 0x0032;
    pub const CKR_ENCRYPTED_DATA_INVALID: u32 = 0x0040;
    pub const CKR_KEY_TYPE_INCONSISTENT: u32 = 0x0063;
    pub const CKR_KEY_FUNCTION_NOT_PERMITTED: u32 = 0x0068;
    pub const CKR_OBJECT_HANDLE_INVALID: u32 = 0x0082;
    pub const CKR_TEMPLATE_INCONSISTENT: u32 = 0x00D1;
    pub const CKR_TOKEN_NOT_PRESENT: u32 = 0x00E0;
    pub const CKR_USER_NOT_LOGGED_IN: u32 = 0x0101;
}
