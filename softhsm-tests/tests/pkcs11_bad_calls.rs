//! Bad calls, one test per row: what an application that passes null pointers, stale
//! handles, wrong mechanism parameters or small buffers, or breaks the login and
//! initialisation rules, gets back. Each row runs `pkcs11/probe.c` (a C program, since
//! most rows need pointers no safe binding can pass) in a process of its own.
//!
//! Where the spec names one code, that code is expected (and SoftHSM2 answers it, unless
//! a row says otherwise); where it leaves a choice, the row accepts the codes it allows.

use softhsm_tests::pkcs11::{pkcs11_reference, skip, Token};

const CKR_OK: u64 = 0x0;
const CKR_SLOT_ID_INVALID: u64 = 0x3;
const CKR_ARGUMENTS_BAD: u64 = 0x7;
const CKR_ATTRIBUTE_SENSITIVE: u64 = 0x11;
const CKR_ENCRYPTED_DATA_LEN_RANGE: u64 = 0x41;
const CKR_KEY_HANDLE_INVALID: u64 = 0x60;
const CKR_KEY_TYPE_INCONSISTENT: u64 = 0x63;
const CKR_KEY_FUNCTION_NOT_PERMITTED: u64 = 0x68;
const CKR_MECHANISM_INVALID: u64 = 0x70;
const CKR_MECHANISM_PARAM_INVALID: u64 = 0x71;
const CKR_OBJECT_HANDLE_INVALID: u64 = 0x82;
const CKR_OPERATION_ACTIVE: u64 = 0x90;
const CKR_OPERATION_NOT_INITIALIZED: u64 = 0x91;
const CKR_PIN_INCORRECT: u64 = 0xa0;
const CKR_SESSION_HANDLE_INVALID: u64 = 0xb3;
const CKR_SESSION_PARALLEL_NOT_SUPPORTED: u64 = 0xb4;
const CKR_SESSION_READ_ONLY: u64 = 0xb5;
const CKR_USER_ALREADY_LOGGED_IN: u64 = 0x100;
const CKR_USER_NOT_LOGGED_IN: u64 = 0x101;
const CKR_BUFFER_TOO_SMALL: u64 = 0x150;
const CKR_CRYPTOKI_NOT_INITIALIZED: u64 = 0x190;
const CKR_CRYPTOKI_ALREADY_INITIALIZED: u64 = 0x191;
const CK_UNAVAILABLE_INFORMATION: u64 = u64::MAX;
const CKS_RW_PUBLIC_SESSION: u64 = 2;

/// The keys the rows use: an EC P-256 pair (CKA_ID 02) and an AES-256 key (CKA_ID 03).
fn token_with_keys() -> Token {
    let t = Token::start();
    t.keypair("EC:prime256v1", "02", "probe-ec");
    t.aes_key("03", "probe-aes");
    t
}

/// Runs `row` and checks each named value against the codes it may take.
#[track_caller]
fn row(name: &str, expect: &[(&str, &[u64])]) {
    let t = token_with_keys();
    let got = t.probe(name);
    let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    let want: Vec<&str> = expect.iter().map(|(k, _)| *k).collect();
    assert_eq!(names, want, "row {name} printed {got:?}");
    for ((k, v), (_, allowed)) in got.iter().zip(expect) {
        assert!(
            allowed.contains(v),
            "row {name}: {k} answered {v:#x}, expected one of {:x?} (all: {got:x?})",
            allowed
        );
    }
}

/// A null mechanism with no operation active. The library follows PKCS#11 3.x, where
/// `C_SignInit(NULL_PTR)` terminates the active operation and has only two outcomes:
/// success, or `CKR_OPERATION_CANCEL_FAILED` for an operation that cannot be cancelled;
/// with none active there is nothing to fail, so CKR_OK. SoftHSM2 follows 2.40 (a null
/// pointer is CKR_ARGUMENTS_BAD).
#[test]
fn sign_init_null_mechanism() {
    if skip(false) {
        return;
    }
    let expected = if pkcs11_reference() {
        CKR_ARGUMENTS_BAD
    } else {
        CKR_OK
    };
    row("sign_init_null_mechanism", &[("C_SignInit", &[expected])]);
}

macro_rules! rows {
    ($($(#[$doc:meta])* $name:ident $(($only:ident))? => [$($k:literal: $($v:tt)|+),* $(,)?];)*) => {
        $(
            $(#[$doc])*
            #[test]
            fn $name() {
                if skip(false $(|| stringify!($only) == "appliance")?) {
                    return;
                }
                row(stringify!($name), &[$(($k, &[$($v),+])),*]);
            }
        )*
    };
}

rows! {
    // ---- null pointers ----------------------------------------------------------------
    get_function_list_null => ["C_GetFunctionList": CKR_ARGUMENTS_BAD];
    slot_list_null_count => ["C_GetSlotList": CKR_ARGUMENTS_BAD];
    token_info_null => ["C_GetTokenInfo": CKR_ARGUMENTS_BAD];
    open_session_null_handle => ["C_OpenSession": CKR_ARGUMENTS_BAD];
    find_init_null_template => ["C_FindObjectsInit": CKR_ARGUMENTS_BAD];
    sign_null_signature_len => ["C_SignInit": CKR_OK, "C_Sign": CKR_ARGUMENTS_BAD];

    // ---- invalid slots, sessions and handles ------------------------------------------
    invalid_slot => ["C_GetSlotInfo": CKR_SLOT_ID_INVALID];
    open_session_not_serial => ["C_OpenSession": CKR_SESSION_PARALLEL_NOT_SUPPORTED];
    invalid_session_handle => [
        "C_GetSessionInfo": CKR_SESSION_HANDLE_INVALID,
        "C_SignInit": CKR_SESSION_HANDLE_INVALID,
    ];
    closed_session_handle => ["C_CloseSession": CKR_OK, "C_GetSessionInfo": CKR_SESSION_HANDLE_INVALID];
    invalid_object_handle => [
        "C_GetAttributeValue": CKR_OBJECT_HANDLE_INVALID,
        "C_DestroyObject": CKR_OBJECT_HANDLE_INVALID,
    ];
    /// The spec's code for C_SignInit is CKR_KEY_HANDLE_INVALID; SoftHSM2 answers
    /// CKR_OBJECT_HANDLE_INVALID.
    invalid_key_handle => ["C_SignInit": CKR_KEY_HANDLE_INVALID | CKR_OBJECT_HANDLE_INVALID];

    // ---- wrong mechanisms and parameters ----------------------------------------------
    unknown_mechanism => ["C_SignInit": CKR_MECHANISM_INVALID];
    /// A 7-bit GCM tag. SoftHSM2 answers CKR_ARGUMENTS_BAD.
    gcm_tag_bits_invalid => ["C_EncryptInit": CKR_MECHANISM_PARAM_INVALID | CKR_ARGUMENTS_BAD];
    /// An 8-byte IV for AES-CBC-PAD. SoftHSM2 answers CKR_MECHANISM_INVALID.
    cbc_pad_short_iv => [
        "C_EncryptInit": CKR_MECHANISM_PARAM_INVALID | CKR_ARGUMENTS_BAD | CKR_MECHANISM_INVALID,
    ];
    /// ECDSA with an AES key. SoftHSM2 accepts it at C_SignInit (a SoftHSM2 bug), so
    /// only the appliance runs this row.
    key_type_inconsistent (appliance) => [
        "C_SignInit": CKR_KEY_TYPE_INCONSISTENT | CKR_KEY_FUNCTION_NOT_PERMITTED,
    ];

    // ---- buffers too small: the operation stays active ---------------------------------
    sign_buffer_too_small => [
        "C_SignInit": CKR_OK,
        "C_Sign_small": CKR_BUFFER_TOO_SMALL,
        "len": 64,
        "C_Sign": CKR_OK,
        "len2": 64,
        "C_VerifyInit": CKR_OK,
        "C_Verify": CKR_OK,
    ];
    size_query_then_sign => [
        "C_SignInit": CKR_OK,
        "C_Sign_query": CKR_OK,
        "len": 64,
        "C_Sign": CKR_OK,
        "C_Sign_after": CKR_OPERATION_NOT_INITIALIZED,
    ];
    encrypt_buffer_too_small => [
        "C_EncryptInit": CKR_OK,
        "C_Encrypt_small": CKR_BUFFER_TOO_SMALL,
        "len": 32,
        "C_Encrypt": CKR_OK,
        "len2": 32,
        "C_DecryptInit": CKR_OK,
        "C_Decrypt": CKR_OK,
        "same": 1,
    ];
    attribute_buffer_too_small => [
        "C_GetAttributeValue": CKR_BUFFER_TOO_SMALL,
        "len": CK_UNAVAILABLE_INFORMATION,
    ];
    sensitive_attribute => [
        "C_GetAttributeValue": CKR_ATTRIBUTE_SENSITIVE,
        "len": CK_UNAVAILABLE_INFORMATION,
    ];

    // ---- operation state ---------------------------------------------------------------
    operation_active => ["C_SignInit": CKR_OK, "C_SignInit2": CKR_OPERATION_ACTIVE];
    operation_not_initialized => [
        "C_Sign": CKR_OPERATION_NOT_INITIALIZED,
        "C_DigestUpdate": CKR_OPERATION_NOT_INITIALIZED,
    ];
    error_ends_operation => [
        "C_DecryptInit": CKR_OK,
        "C_Decrypt": CKR_ENCRYPTED_DATA_LEN_RANGE,
        "C_Decrypt2": CKR_OPERATION_NOT_INITIALIZED,
    ];

    // ---- login -------------------------------------------------------------------------
    generate_without_login => ["C_GenerateKey": CKR_USER_NOT_LOGGED_IN];
    generate_in_read_only_session => ["C_GenerateKey": CKR_SESSION_READ_ONLY];
    find_private_without_login => ["C_FindObjectsInit": CKR_OK, "C_FindObjects": CKR_OK, "found": 0];
    /// The handle came from a logged-in session: after C_Logout the key may be refused
    /// as not logged in or as no longer visible (SoftHSM2: CKR_OBJECT_HANDLE_INVALID).
    sign_after_logout => [
        "C_Logout": CKR_OK,
        "C_SignInit": CKR_USER_NOT_LOGGED_IN | CKR_KEY_HANDLE_INVALID | CKR_OBJECT_HANDLE_INVALID,
    ];
    login_twice => ["C_Login": CKR_USER_ALREADY_LOGGED_IN];
    login_wrong_pin => ["C_Login": CKR_PIN_INCORRECT];
    /// The spec's answer; SoftHSM2 answers CKR_OK, so only the appliance runs this row.
    logout_without_login (appliance) => ["C_Logout": CKR_USER_NOT_LOGGED_IN];

    // ---- initialise and finalise --------------------------------------------------------
    initialize_twice => ["C_Initialize": CKR_CRYPTOKI_ALREADY_INITIALIZED];
    initialize_reserved_non_null => ["C_Initialize": CKR_ARGUMENTS_BAD];
    finalize_reserved_non_null => ["C_Finalize": CKR_ARGUMENTS_BAD];
    finalize_with_sessions_open => [
        "C_Finalize": CKR_OK,
        "C_Initialize": CKR_OK,
        "C_GetSessionInfo": CKR_SESSION_HANDLE_INVALID,
        "C_GetSessionInfo_new": CKR_OK,
        "state": CKS_RW_PUBLIC_SESSION,
    ];
    calls_after_finalize => [
        "C_Finalize": CKR_OK,
        "C_GetSlotList": CKR_CRYPTOKI_NOT_INITIALIZED,
        "C_GetSessionInfo": CKR_CRYPTOKI_NOT_INITIALIZED,
        "C_Finalize2": CKR_CRYPTOKI_NOT_INITIALIZED,
    ];
}
