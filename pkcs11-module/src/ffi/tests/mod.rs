//! The library through its exported entry points, against a fake daemon.

mod fake;
mod tls;

use std::ptr::null_mut;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pkcs11_wire::ck::*;

use super::entry::*;
use fake::{FakeDaemon, SIGNATURE_LEN, SO_PIN, USER_PIN};

/// The library's state is global: tests that use it take turns.
static SERIAL: Mutex<()> = Mutex::new(());

struct Fixture {
    _turn: MutexGuard<'static, ()>,
    dir: tempfile::TempDir,
    daemon: Option<FakeDaemon>,
}

impl Fixture {
    fn new() -> Fixture {
        let turn = SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let daemon = FakeDaemon::start(&dir.path().join("pkcs11.sock"));
        std::env::remove_var("IRONSEAL_PKCS11_CONF");
        std::env::set_var("IRONSEAL_PKCS11_SOCKET", &daemon.path);
        // SAFETY: a null argument is allowed; a test that failed may have left it open.
        unsafe { C_Finalize(null_mut()) };
        Fixture {
            _turn: turn,
            dir,
            daemon: Some(daemon),
        }
    }

    fn daemon(&self) -> &FakeDaemon {
        self.daemon.as_ref().unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // SAFETY: a null argument is allowed.
        unsafe { C_Finalize(null_mut()) };
    }
}

fn initialize() {
    // SAFETY: a null argument is allowed.
    assert_eq!(unsafe { C_Initialize(null_mut()) }, CKR_OK);
}

fn open_session(flags: CK_FLAGS) -> CK_SESSION_HANDLE {
    let mut session = 0;
    // SAFETY: the output is a valid local.
    let rv = unsafe { C_OpenSession(0, flags, null_mut(), None, &mut session) };
    assert_eq!(rv, CKR_OK);
    session
}

fn login(session: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &str) -> CK_RV {
    // SAFETY: the PIN's bytes and their length.
    unsafe {
        C_Login(
            session,
            user,
            pin.as_ptr() as *mut u8,
            pin.len() as CK_ULONG,
        )
    }
}

fn find(session: CK_SESSION_HANDLE, class: CK_OBJECT_CLASS) -> Vec<CK_OBJECT_HANDLE> {
    let mut class = class;
    let mut template = [CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: (&mut class as *mut CK_OBJECT_CLASS).cast(),
        ulValueLen: std::mem::size_of::<CK_OBJECT_CLASS>() as CK_ULONG,
    }];
    let mut found = [0; 8];
    let mut count = 0;
    // SAFETY: a template of one valid attribute, and outputs that are valid locals.
    unsafe {
        assert_eq!(C_FindObjectsInit(session, template.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(
            C_FindObjects(session, found.as_mut_ptr(), 8, &mut count),
            CKR_OK
        );
        assert_eq!(C_FindObjectsFinal(session), CKR_OK);
    }
    found[..count as usize].to_vec()
}

fn mechanism(kind: CK_MECHANISM_TYPE) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism: kind,
        pParameter: null_mut(),
        ulParameterLen: 0,
    }
}

/// A logged-in user's session and the handle of the fake daemon's private key.
fn user_session() -> (CK_SESSION_HANDLE, CK_OBJECT_HANDLE) {
    initialize();
    let session = open_session(CKF_SERIAL_SESSION);
    assert_eq!(login(session, CKU_USER, USER_PIN), CKR_OK);
    let keys = find(session, CKO_PRIVATE_KEY);
    assert_eq!(keys.len(), 1);
    (session, keys[0])
}

#[test]
fn initialize_and_finalize_cycle() {
    let _fixture = Fixture::new();
    for _ in 0..3 {
        initialize();
        // SAFETY: null or valid local arguments throughout.
        unsafe {
            assert_eq!(C_Initialize(null_mut()), CKR_CRYPTOKI_ALREADY_INITIALIZED);
            let mut info: CK_INFO = std::mem::zeroed();
            assert_eq!(C_GetInfo(&mut info), CKR_OK);
            assert_eq!(
                (info.cryptokiVersion.major, info.cryptokiVersion.minor),
                (3, 2)
            );
            assert_eq!(&info.manufacturerID[..9], b"Ironseal ");
            let mut reserved = 0u8;
            assert_eq!(
                C_Finalize((&mut reserved as *mut u8).cast()),
                CKR_ARGUMENTS_BAD
            );
            assert_eq!(C_Finalize(null_mut()), CKR_OK);
            assert_eq!(C_Finalize(null_mut()), CKR_CRYPTOKI_NOT_INITIALIZED);
            assert_eq!(C_GetInfo(&mut info), CKR_CRYPTOKI_NOT_INITIALIZED);
            let mut session = 0;
            assert_eq!(
                C_OpenSession(0, CKF_SERIAL_SESSION, null_mut(), None, &mut session),
                CKR_CRYPTOKI_NOT_INITIALIZED
            );
        }
    }
}

unsafe extern "C" fn create_mutex(_: *mut *mut std::ffi::c_void) -> CK_RV {
    CKR_OK
}
unsafe extern "C" fn mutex_op(_: *mut std::ffi::c_void) -> CK_RV {
    CKR_OK
}

#[test]
fn initialize_arguments_follow_the_spec() {
    let _fixture = Fixture::new();
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: Some(create_mutex),
        DestroyMutex: Some(mutex_op),
        LockMutex: Some(mutex_op),
        UnlockMutex: Some(mutex_op),
        flags: 0,
        pReserved: null_mut(),
    };
    // SAFETY: `args` is a valid CK_C_INITIALIZE_ARGS for every call.
    unsafe {
        let ptr = (&mut args as *mut CK_C_INITIALIZE_ARGS).cast();
        assert_eq!(C_Initialize(ptr), CKR_CANT_LOCK);
        args.LockMutex = None;
        let ptr = (&mut args as *mut CK_C_INITIALIZE_ARGS).cast();
        assert_eq!(C_Initialize(ptr), CKR_ARGUMENTS_BAD);
        args.LockMutex = Some(mutex_op);
        let mut reserved = 0u8;
        args.pReserved = (&mut reserved as *mut u8).cast();
        let ptr = (&mut args as *mut CK_C_INITIALIZE_ARGS).cast();
        assert_eq!(C_Initialize(ptr), CKR_ARGUMENTS_BAD);
        args.pReserved = null_mut();
        args.flags = CKF_OS_LOCKING_OK;
        let ptr = (&mut args as *mut CK_C_INITIALIZE_ARGS).cast();
        assert_eq!(C_Initialize(ptr), CKR_OK);
    }
}

#[test]
fn an_unknown_configuration_key_fails_initialization() {
    let fixture = Fixture::new();
    let conf = fixture.dir.path().join("pkcs11.conf");
    std::fs::write(&conf, "socket = /x\nsockett = /y\n").unwrap();
    std::env::set_var("IRONSEAL_PKCS11_CONF", &conf);
    // SAFETY: a null argument is allowed.
    let rv = unsafe { C_Initialize(null_mut()) };
    std::env::remove_var("IRONSEAL_PKCS11_CONF");
    assert_eq!(rv, CKR_GENERAL_ERROR);
}

#[test]
fn login_rules() {
    let _fixture = Fixture::new();
    initialize();
    let ro = open_session(CKF_SERIAL_SESSION);
    let state = |session| {
        // SAFETY: the output is a valid local.
        unsafe {
            let mut info: CK_SESSION_INFO = std::mem::zeroed();
            assert_eq!(C_GetSessionInfo(session, &mut info), CKR_OK);
            info.state
        }
    };
    assert_eq!(state(ro), CKS_RO_PUBLIC_SESSION);
    assert_eq!(login(ro, CKU_SO, SO_PIN), CKR_SESSION_READ_ONLY_EXISTS);
    assert_eq!(login(ro, CKU_USER, "s.wrong"), CKR_PIN_INCORRECT);
    assert_eq!(login(ro, 7, USER_PIN), CKR_USER_TYPE_INVALID);
    assert_eq!(
        login(ro, CKU_CONTEXT_SPECIFIC, USER_PIN),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(login(ro, CKU_USER, USER_PIN), CKR_OK);
    assert_eq!(state(ro), CKS_RO_USER_FUNCTIONS);
    let rw = open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    assert_eq!(
        state(rw),
        CKS_RW_USER_FUNCTIONS,
        "login is shared by all sessions"
    );
    assert_eq!(login(rw, CKU_USER, USER_PIN), CKR_USER_ALREADY_LOGGED_IN);
    assert_eq!(
        login(rw, CKU_SO, SO_PIN),
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN
    );
    // SAFETY: plain handles.
    unsafe {
        assert_eq!(C_Logout(rw), CKR_OK);
        assert_eq!(C_Logout(rw), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(C_Logout(0xdead), CKR_SESSION_HANDLE_INVALID);
        assert_eq!(C_CloseSession(ro), CKR_OK);
    }
    assert_eq!(login(rw, CKU_SO, SO_PIN), CKR_OK);
    assert_eq!(state(rw), CKS_RW_SO_FUNCTIONS);
    let mut session = 0;
    // SAFETY: the output is a valid local.
    let rv = unsafe { C_OpenSession(0, CKF_SERIAL_SESSION, null_mut(), None, &mut session) };
    assert_eq!(rv, CKR_SESSION_READ_WRITE_SO_EXISTS);
    // SAFETY: the output is a valid local.
    let rv = unsafe { C_OpenSession(0, 0, null_mut(), None, &mut session) };
    assert_eq!(rv, CKR_SESSION_PARALLEL_NOT_SUPPORTED);
}

#[test]
fn without_login_nothing_is_found_and_private_keys_are_refused() {
    let fixture = Fixture::new();
    let (session, key) = user_session();
    // SAFETY: plain handles and a valid mechanism.
    unsafe {
        assert_eq!(C_Logout(session), CKR_OK);
        assert!(find(session, CKO_PRIVATE_KEY).is_empty());
        let mut mech = mechanism(CKM_SHA256_RSA_PKCS);
        assert_eq!(C_SignInit(session, &mut mech, key), CKR_USER_NOT_LOGGED_IN);
    }
    let calls = fixture
        .daemon()
        .counters
        .calls
        .load(std::sync::atomic::Ordering::SeqCst);
    find(session, CKO_PRIVATE_KEY);
    assert_eq!(
        fixture
            .daemon()
            .counters
            .calls
            .load(std::sync::atomic::Ordering::SeqCst),
        calls,
        "without a login the library does not ask"
    );
}

#[test]
fn a_size_query_then_a_sign_makes_one_call() {
    let fixture = Fixture::new();
    let (session, key) = user_session();
    let data = *b"to be signed";
    let mut mech = mechanism(CKM_SHA256_RSA_PKCS);
    // SAFETY: valid buffers and lengths throughout.
    unsafe {
        assert_eq!(C_SignInit(session, &mut mech, key), CKR_OK);
        assert_eq!(C_SignInit(session, &mut mech, key), CKR_OPERATION_ACTIVE);
        let mut len = 0;
        let rv = C_Sign(session, data.as_ptr() as *mut u8, 12, null_mut(), &mut len);
        assert_eq!((rv, len as usize), (CKR_OK, SIGNATURE_LEN));
        let mut small = [0u8; 16];
        len = small.len() as CK_ULONG;
        let rv = C_Sign(
            session,
            data.as_ptr() as *mut u8,
            12,
            small.as_mut_ptr(),
            &mut len,
        );
        assert_eq!((rv, len as usize), (CKR_BUFFER_TOO_SMALL, SIGNATURE_LEN));
        let mut signature = vec![0u8; SIGNATURE_LEN + 10];
        len = signature.len() as CK_ULONG;
        let rv = C_Sign(
            session,
            data.as_ptr() as *mut u8,
            12,
            signature.as_mut_ptr(),
            &mut len,
        );
        assert_eq!((rv, len as usize), (CKR_OK, SIGNATURE_LEN));
        assert_eq!(&signature[..12], &data);
        let rv = C_Sign(
            session,
            data.as_ptr() as *mut u8,
            12,
            signature.as_mut_ptr(),
            &mut len,
        );
        assert_eq!(rv, CKR_OPERATION_NOT_INITIALIZED);
    }
    assert_eq!(
        fixture
            .daemon()
            .counters
            .signs
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[test]
fn multi_part_sign_and_verify() {
    let _fixture = Fixture::new();
    let (session, key) = user_session();
    let public = find(session, CKO_PUBLIC_KEY)[0];
    let mut mech = mechanism(CKM_SHA256_RSA_PKCS);
    // SAFETY: valid buffers and lengths throughout.
    unsafe {
        assert_eq!(
            C_SignUpdate(session, b"x".as_ptr() as *mut u8, 1),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(C_SignInit(session, &mut mech, key), CKR_OK);
        assert_eq!(C_SignUpdate(session, b"abc".as_ptr() as *mut u8, 3), CKR_OK);
        assert_eq!(C_SignUpdate(session, b"def".as_ptr() as *mut u8, 3), CKR_OK);
        let mut signature = vec![0u8; SIGNATURE_LEN];
        let mut len = signature.len() as CK_ULONG;
        assert_eq!(
            C_SignFinal(session, signature.as_mut_ptr(), &mut len),
            CKR_OK
        );
        assert_eq!(&signature[..6], b"abcdef");
        assert_eq!(C_VerifyInit(session, &mut mech, public), CKR_OK);
        let rv = C_Verify(
            session,
            b"abcdef".as_ptr() as *mut u8,
            6,
            signature.as_mut_ptr(),
            len,
        );
        assert_eq!(rv, CKR_OK);
        assert_eq!(C_VerifyInit(session, &mut mech, public), CKR_OK);
        let rv = C_Verify(
            session,
            b"abcdeX".as_ptr() as *mut u8,
            6,
            signature.as_mut_ptr(),
            len,
        );
        assert_eq!(rv, CKR_SIGNATURE_INVALID);
        let rv = C_Verify(
            session,
            b"abcdef".as_ptr() as *mut u8,
            6,
            signature.as_mut_ptr(),
            len,
        );
        assert_eq!(
            rv, CKR_OPERATION_NOT_INITIALIZED,
            "a failed verify ends the operation"
        );
    }
}

#[test]
fn init_checks_mechanism_key_and_parameters() {
    let _fixture = Fixture::new();
    let (session, key) = user_session();
    // SAFETY: valid mechanisms and handles throughout.
    unsafe {
        let mut unknown = mechanism(CKM_SHA512_RSA_PKCS);
        assert_eq!(
            C_SignInit(session, &mut unknown, key),
            CKR_MECHANISM_INVALID
        );
        let mut digest_only = mechanism(CKM_SHA256);
        assert_eq!(
            C_SignInit(session, &mut digest_only, key),
            CKR_MECHANISM_INVALID
        );
        let mut mech = mechanism(CKM_SHA256_RSA_PKCS);
        assert_eq!(
            C_SignInit(session, &mut mech, 0xbeef),
            CKR_KEY_HANDLE_INVALID
        );
        assert_eq!(
            C_SignInit(0xbeef, &mut mech, key),
            CKR_SESSION_HANDLE_INVALID
        );
        let mut short = [0u8; 8];
        let mut pss = CK_MECHANISM {
            mechanism: CKM_RSA_PKCS_PSS,
            pParameter: short.as_mut_ptr().cast(),
            ulParameterLen: short.len() as CK_ULONG,
        };
        assert_eq!(
            C_SignInit(session, &mut pss, key),
            CKR_MECHANISM_PARAM_INVALID
        );
        let mut params = CK_RSA_PKCS_PSS_PARAMS {
            hashAlg: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            sLen: 32,
        };
        pss.pParameter = (&mut params as *mut CK_RSA_PKCS_PSS_PARAMS).cast();
        pss.ulParameterLen = std::mem::size_of::<CK_RSA_PKCS_PSS_PARAMS>() as CK_ULONG;
        assert_eq!(C_SignInit(session, &mut pss, key), CKR_OK);
        // PKCS#11 3.x: a null mechanism cancels the active operation.
        assert_eq!(C_SignInit(session, null_mut(), 0), CKR_OK);
        assert_eq!(C_SignInit(session, &mut mech, key), CKR_OK);
    }
}

/// A session object of `class` (and `key_type`, if given) made through the library.
fn create(
    session: CK_SESSION_HANDLE,
    class: CK_OBJECT_CLASS,
    key_type: Option<CK_KEY_TYPE>,
) -> CK_OBJECT_HANDLE {
    let (mut class, mut key_type_value) = (class, key_type.unwrap_or(0));
    let ulong = std::mem::size_of::<CK_ULONG>() as CK_ULONG;
    let mut template = vec![CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: (&mut class as *mut CK_ULONG).cast(),
        ulValueLen: ulong,
    }];
    if key_type.is_some() {
        template.push(CK_ATTRIBUTE {
            type_: CKA_KEY_TYPE,
            pValue: (&mut key_type_value as *mut CK_ULONG).cast(),
            ulValueLen: ulong,
        });
    }
    let mut object = 0;
    // SAFETY: valid template and output.
    let rv = unsafe {
        C_CreateObject(
            session,
            template.as_mut_ptr(),
            template.len() as CK_ULONG,
            &mut object,
        )
    };
    assert_eq!(rv, CKR_OK);
    object
}

#[test]
fn init_checks_key_type_class_and_parameters_without_a_call() {
    let fixture = Fixture::new();
    let (session, key) = user_session();
    let aes = create(session, CKO_SECRET_KEY, Some(CKK_AES));
    let data = create(session, CKO_DATA, None);
    let calls = || {
        fixture
            .daemon()
            .counters
            .calls
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let before = calls();
    let mut params = CK_RSA_PKCS_PSS_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        sLen: 32,
    };
    let mut pss = CK_MECHANISM {
        mechanism: CKM_RSA_PKCS_PSS,
        pParameter: (&mut params as *mut CK_RSA_PKCS_PSS_PARAMS).cast(),
        ulParameterLen: std::mem::size_of::<CK_RSA_PKCS_PSS_PARAMS>() as CK_ULONG,
    };
    let mut mech = mechanism(CKM_SHA256_RSA_PKCS);
    // SAFETY: valid mechanisms and handles throughout.
    unsafe {
        // PKCS#11 3.x: with no operation active, the null mechanism cancels nothing.
        assert_eq!(C_SignInit(session, null_mut(), key), CKR_OK);
        assert_eq!(
            C_SignInit(session, &mut mech, aes),
            CKR_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(C_SignInit(session, &mut mech, data), CKR_KEY_HANDLE_INVALID);
        let params = pss.pParameter.cast::<CK_RSA_PKCS_PSS_PARAMS>();
        (*params).hashAlg = CKM_MD5;
        assert_eq!(
            C_SignInit(session, &mut pss, key),
            CKR_MECHANISM_PARAM_INVALID
        );
        (*params).hashAlg = CKM_SHA256;
        (*params).mgf = 0x7777;
        assert_eq!(
            C_SignInit(session, &mut pss, key),
            CKR_MECHANISM_PARAM_INVALID
        );
        (*params).mgf = CKG_MGF1_SHA256;
        assert_eq!(C_SignInit(session, &mut pss, key), CKR_OK);
    }
    assert_eq!(calls(), before, "*Init checks without asking the daemon");
}

#[test]
fn attributes_report_sensitivity_absence_and_short_buffers() {
    let _fixture = Fixture::new();
    let (session, key) = user_session();
    let mut label = [0u8; 64];
    let mut exponent = [0u8; 64];
    let mut class: CK_OBJECT_CLASS = 0;
    let mut template = [
        CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: null_mut(),
            ulValueLen: 0,
        },
        CK_ATTRIBUTE {
            type_: CKA_PRIVATE_EXPONENT,
            pValue: exponent.as_mut_ptr().cast(),
            ulValueLen: 64,
        },
        CK_ATTRIBUTE {
            type_: CKA_CLASS,
            pValue: (&mut class as *mut CK_OBJECT_CLASS).cast(),
            ulValueLen: std::mem::size_of::<CK_OBJECT_CLASS>() as CK_ULONG,
        },
        CK_ATTRIBUTE {
            type_: CKA_EC_POINT,
            pValue: null_mut(),
            ulValueLen: 0,
        },
    ];
    // SAFETY: every template entry's buffer is valid for its length.
    unsafe {
        let rv = C_GetAttributeValue(session, key, template.as_mut_ptr(), 4);
        assert_eq!(rv, CKR_ATTRIBUTE_SENSITIVE);
        assert_eq!(
            template[0].ulValueLen, 6,
            "a null buffer asks for the length"
        );
        assert_eq!(template[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!((template[2].ulValueLen, class), (8, CKO_PRIVATE_KEY));
        assert_eq!(template[3].ulValueLen, CK_UNAVAILABLE_INFORMATION);

        let mut two = [
            CK_ATTRIBUTE {
                type_: CKA_LABEL,
                pValue: label.as_mut_ptr().cast(),
                ulValueLen: 2,
            },
            CK_ATTRIBUTE {
                type_: CKA_ID,
                pValue: label[10..].as_mut_ptr().cast(),
                ulValueLen: 10,
            },
        ];
        assert_eq!(
            C_GetAttributeValue(session, key, two.as_mut_ptr(), 2),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(two[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!((two[1].ulValueLen, label[10]), (1, 1));
        two[0].ulValueLen = 6;
        assert_eq!(
            C_GetAttributeValue(session, key, two.as_mut_ptr(), 2),
            CKR_OK
        );
        assert_eq!(&label[..6], b"signer");
        assert_eq!(
            C_GetAttributeValue(session, 0xbeef, two.as_mut_ptr(), 2),
            CKR_OBJECT_HANDLE_INVALID
        );
    }
}

#[test]
fn templates_are_typed() {
    let _fixture = Fixture::new();
    let (session, _) = user_session();
    let mut value = [1u8; 4];
    let mut template = [CK_ATTRIBUTE {
        type_: CKA_TOKEN,
        pValue: value.as_mut_ptr().cast(),
        ulValueLen: 4,
    }];
    // SAFETY: the template's buffer is valid for its length.
    unsafe {
        assert_eq!(
            C_FindObjectsInit(session, template.as_mut_ptr(), 1),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
        template[0].type_ = 0x7fff_0000;
        assert_eq!(
            C_FindObjectsInit(session, template.as_mut_ptr(), 1),
            CKR_ATTRIBUTE_TYPE_INVALID
        );
        template[0].type_ = CKA_CLASS;
        assert_eq!(
            C_FindObjectsInit(session, template.as_mut_ptr(), 1),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
    }
}

#[test]
fn closing_a_session_releases_its_session_objects() {
    let fixture = Fixture::new();
    let (session, _) = user_session();
    let mut label = *b"note";
    let mut class = CKO_DATA;
    let mut template = [
        CK_ATTRIBUTE {
            type_: CKA_CLASS,
            pValue: (&mut class as *mut CK_OBJECT_CLASS).cast(),
            ulValueLen: std::mem::size_of::<CK_OBJECT_CLASS>() as CK_ULONG,
        },
        CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: label.as_mut_ptr().cast(),
            ulValueLen: 4,
        },
    ];
    let mut object = 0;
    // SAFETY: valid template and output.
    unsafe {
        assert_eq!(
            C_CreateObject(session, template.as_mut_ptr(), 2, &mut object),
            CKR_OK
        );
        assert_ne!(object, 0);
        assert_eq!(C_CloseSession(session), CKR_OK);
        assert_eq!(C_CloseSession(session), CKR_SESSION_HANDLE_INVALID);
    }
    assert_eq!(*fixture.daemon().counters.released.lock().unwrap(), vec![1]);
}

#[test]
fn digest_and_random_need_no_login() {
    let _fixture = Fixture::new();
    initialize();
    let session = open_session(CKF_SERIAL_SESSION);
    let mut mech = mechanism(CKM_SHA256);
    let mut random = vec![0u8; 70_000];
    // SAFETY: valid buffers and lengths throughout.
    unsafe {
        assert_eq!(C_DigestInit(session, &mut mech), CKR_OK);
        let mut digest = [0u8; 32];
        let mut len = 32;
        let rv = C_Digest(
            session,
            b"abc".as_ptr() as *mut u8,
            3,
            digest.as_mut_ptr(),
            &mut len,
        );
        assert_eq!((rv, len, digest[0]), (CKR_OK, 32, 3));
        assert_eq!(C_DigestInit(session, &mut mech), CKR_OK);
        assert_eq!(C_DigestKey(session, 0xbeef), CKR_KEY_HANDLE_INVALID);
        assert_eq!(
            C_GenerateRandom(session, random.as_mut_ptr(), random.len() as CK_ULONG),
            CKR_OK
        );
        assert!(random.iter().all(|b| *b == 0x5A));
        assert_eq!(
            C_SeedRandom(session, random.as_mut_ptr(), 4),
            CKR_RANDOM_SEED_NOT_SUPPORTED
        );
    }
}

#[test]
fn reconnects_after_the_daemon_restarts() {
    let mut fixture = Fixture::new();
    let (session, key) = user_session();
    let path = fixture.daemon().path.clone();
    let counters = fixture.daemon.take().unwrap().stop();
    let mut mech = mechanism(CKM_SHA256_RSA_PKCS);
    let mut signature = vec![0u8; SIGNATURE_LEN];
    let mut len = SIGNATURE_LEN as CK_ULONG;
    // SAFETY: valid buffers and lengths throughout.
    unsafe {
        assert_eq!(C_SignInit(session, &mut mech, key), CKR_OK);
        let started = Instant::now();
        let rv = C_Sign(
            session,
            b"x".as_ptr() as *mut u8,
            1,
            signature.as_mut_ptr(),
            &mut len,
        );
        assert_eq!(rv, CKR_DEVICE_REMOVED);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    fixture.daemon = Some(FakeDaemon::start_with(&path, counters));
    // SAFETY: valid buffers and lengths throughout.
    unsafe {
        assert_eq!(C_SignInit(session, &mut mech, key), CKR_OK);
        len = SIGNATURE_LEN as CK_ULONG;
        let rv = C_Sign(
            session,
            b"x".as_ptr() as *mut u8,
            1,
            signature.as_mut_ptr(),
            &mut len,
        );
        assert_eq!(rv, CKR_OK, "the library reconnects by itself");
    }
    assert_eq!(
        fixture
            .daemon()
            .counters
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

#[test]
fn an_unreachable_daemon_answers_in_bounded_time() {
    let fixture = Fixture::new();
    std::env::set_var(
        "IRONSEAL_PKCS11_SOCKET",
        fixture.dir.path().join("absent.sock"),
    );
    initialize();
    let started = Instant::now();
    // SAFETY: valid outputs throughout.
    unsafe {
        let mut count = 0;
        assert_eq!(C_GetSlotList(CK_TRUE, null_mut(), &mut count), CKR_OK);
        assert_eq!(count, 0);
        assert_eq!(C_GetSlotList(CK_FALSE, null_mut(), &mut count), CKR_OK);
        assert_eq!(count, 1);
        let mut slot: CK_SLOT_INFO = std::mem::zeroed();
        assert_eq!(C_GetSlotInfo(0, &mut slot), CKR_OK);
        assert_eq!(slot.flags & CKF_TOKEN_PRESENT, 0);
        let mut token: CK_TOKEN_INFO = std::mem::zeroed();
        assert_eq!(C_GetTokenInfo(0, &mut token), CKR_TOKEN_NOT_PRESENT);
        let mut session = 0;
        assert_eq!(
            C_OpenSession(0, CKF_SERIAL_SESSION, null_mut(), None, &mut session),
            CKR_DEVICE_REMOVED
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn null_pointers_are_bad_arguments() {
    let _fixture = Fixture::new();
    // SAFETY: every call passes null where the function needs a pointer.
    unsafe {
        assert_eq!(C_GetFunctionList(null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(
            C_GetInterfaceList(null_mut(), null_mut()),
            CKR_ARGUMENTS_BAD
        );
        initialize();
        assert_eq!(C_GetInfo(null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(
            C_GetSlotList(CK_TRUE, null_mut(), null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(C_GetSlotInfo(0, null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(C_GetTokenInfo(0, null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(
            C_GetMechanismInfo(0, CKM_SHA256, null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_OpenSession(0, CKF_SERIAL_SESSION, null_mut(), None, null_mut()),
            CKR_ARGUMENTS_BAD
        );
        let session = open_session(CKF_SERIAL_SESSION);
        assert_eq!(C_Login(session, CKU_USER, null_mut(), 5), CKR_ARGUMENTS_BAD);
        assert_eq!(C_GetSessionInfo(session, null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(
            C_GetAttributeValue(session, 1, null_mut(), 1),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(C_FindObjectsInit(session, null_mut(), 2), CKR_ARGUMENTS_BAD);
        assert_eq!(
            C_Login(
                session,
                CKU_USER,
                USER_PIN.as_ptr() as *mut u8,
                USER_PIN.len() as CK_ULONG
            ),
            CKR_OK
        );
        let key = find(session, CKO_PRIVATE_KEY)[0];
        let mut mech = mechanism(CKM_SHA256_RSA_PKCS);
        assert_eq!(C_SignInit(session, &mut mech, key), CKR_OK);
        assert_eq!(
            C_Sign(session, null_mut(), 4, null_mut(), null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_Sign(session, b"x".as_ptr() as *mut u8, 1, null_mut(), null_mut()),
            CKR_ARGUMENTS_BAD
        );
        // Lengths no buffer can have are refused before a slice is made of them.
        let mut len: CK_ULONG = 0;
        assert_eq!(
            C_Sign(
                session,
                b"x".as_ptr() as *mut u8,
                CK_ULONG::MAX,
                null_mut(),
                &mut len
            ),
            CKR_ARGUMENTS_BAD
        );
        let mut attribute = CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: null_mut(),
            ulValueLen: 0,
        };
        assert_eq!(
            C_FindObjectsInit(session, &mut attribute, 1 << 62),
            CKR_ARGUMENTS_BAD
        );
        let mut handle = 0;
        assert_eq!(
            C_GenerateKeyPair(
                session,
                null_mut(),
                null_mut(),
                0,
                null_mut(),
                0,
                &mut handle,
                &mut handle
            ),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(C_GenerateRandom(session, null_mut(), 4), CKR_ARGUMENTS_BAD);
        let mut count = 0;
        assert_eq!(
            C_FindObjects(session, null_mut(), 1, &mut count),
            CKR_ARGUMENTS_BAD
        );
    }
}

#[test]
fn function_tables_and_interfaces() {
    let _fixture = Fixture::new();
    // SAFETY: valid outputs, and the tables are only read.
    unsafe {
        let mut list: *mut CK_FUNCTION_LIST = null_mut();
        assert_eq!(C_GetFunctionList(&mut list), CKR_OK);
        assert_eq!(((*list).version.major, (*list).version.minor), (2, 40));
        let initialize = (*list).C_Initialize.unwrap();
        assert_eq!(initialize(null_mut()), CKR_OK);

        let mut count = 0;
        assert_eq!(C_GetInterfaceList(null_mut(), &mut count), CKR_OK);
        assert_eq!(count, 3);
        let mut interfaces = [CK_INTERFACE {
            pInterfaceName: null_mut(),
            pFunctionList: null_mut(),
            flags: 0,
        }; 3];
        count = 1;
        assert_eq!(
            C_GetInterfaceList(interfaces.as_mut_ptr(), &mut count),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(count, 3);
        assert_eq!(
            C_GetInterfaceList(interfaces.as_mut_ptr(), &mut count),
            CKR_OK
        );

        let mut interface: *mut CK_INTERFACE = null_mut();
        assert_eq!(
            C_GetInterface(null_mut(), null_mut(), &mut interface, 0),
            CKR_OK
        );
        let newest = (*interface).pFunctionList.cast::<CK_FUNCTION_LIST_3_2>();
        assert_eq!(((*newest).version.major, (*newest).version.minor), (3, 2));
        assert!((*newest).C_EncapsulateKey.is_some());
        let mut v30 = CK_VERSION { major: 3, minor: 0 };
        let name = b"PKCS 11\0";
        assert_eq!(
            C_GetInterface(name.as_ptr() as *mut u8, &mut v30, &mut interface, 0),
            CKR_OK
        );
        let v3 = (*interface).pFunctionList.cast::<CK_FUNCTION_LIST_3_0>();
        assert_eq!(((*v3).version.major, (*v3).version.minor), (3, 0));
        let other = b"Vendor\0";
        assert_eq!(
            C_GetInterface(other.as_ptr() as *mut u8, null_mut(), &mut interface, 0),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_GetInterface(
                null_mut(),
                null_mut(),
                &mut interface,
                CKF_INTERFACE_FORK_SAFE
            ),
            CKR_ARGUMENTS_BAD
        );
    }
}

#[test]
fn slot_token_and_mechanisms() {
    let _fixture = Fixture::new();
    initialize();
    // SAFETY: valid outputs throughout.
    unsafe {
        let mut slots = [9; 2];
        let mut count = 0;
        assert_eq!(
            C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut count),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(count, 1);
        count = 2;
        assert_eq!(
            C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut count),
            CKR_OK
        );
        assert_eq!((count, slots[0]), (1, 0));
        let mut token: CK_TOKEN_INFO = std::mem::zeroed();
        assert_eq!(C_GetTokenInfo(0, &mut token), CKR_OK);
        assert_eq!(&token.label[..16], b"fake appliance  ");
        assert_ne!(token.flags & CKF_LOGIN_REQUIRED, 0);
        assert_eq!(C_GetTokenInfo(1, &mut token), CKR_SLOT_ID_INVALID);
        count = 0;
        assert_eq!(C_GetMechanismList(0, null_mut(), &mut count), CKR_OK);
        assert_eq!(count as usize, fake::token().mechanisms.len());
        let mut info: CK_MECHANISM_INFO = std::mem::zeroed();
        assert_eq!(
            C_GetMechanismInfo(0, CKM_SHA256_RSA_PKCS, &mut info),
            CKR_OK
        );
        assert_eq!(info.flags, CKF_SIGN | CKF_VERIFY);
        assert_eq!(
            C_GetMechanismInfo(0, CKM_AES_GCM, &mut info),
            CKR_MECHANISM_INVALID
        );
        assert_eq!(
            C_InitToken(0, null_mut(), 0, null_mut()),
            CKR_FUNCTION_NOT_SUPPORTED
        );
        assert_eq!(
            C_SignRecoverInit(1, null_mut(), 0),
            CKR_FUNCTION_NOT_SUPPORTED
        );
    }
}

#[test]
fn eight_threads_sign_in_parallel() {
    let fixture = Fixture::new();
    let (_, key) = user_session();
    let threads: Vec<_> = (0..8u8)
        .map(|n| {
            std::thread::spawn(move || {
                let session = open_session(CKF_SERIAL_SESSION);
                let mut mech = mechanism(CKM_SHA256_RSA_PKCS);
                for _ in 0..20 {
                    let mut signature = vec![0u8; SIGNATURE_LEN];
                    let mut len = SIGNATURE_LEN as CK_ULONG;
                    // SAFETY: valid buffers and lengths.
                    unsafe {
                        assert_eq!(C_SignInit(session, &mut mech, key), CKR_OK);
                        let data = [n; 4];
                        let rv = C_Sign(
                            session,
                            data.as_ptr() as *mut u8,
                            4,
                            signature.as_mut_ptr(),
                            &mut len,
                        );
                        assert_eq!(rv, CKR_OK);
                    }
                    assert_eq!(&signature[..4], &[n; 4]);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let counters = &fixture.daemon().counters;
    assert_eq!(
        counters.signs.load(std::sync::atomic::Ordering::SeqCst),
        160
    );
    assert!(
        counters
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
            > 1
    );
}

#[test]
fn the_private_key_handle_is_stable() {
    let _fixture = Fixture::new();
    let (session, key) = user_session();
    let other = open_session(CKF_SERIAL_SESSION);
    assert_eq!(find(other, CKO_PRIVATE_KEY), vec![key]);
    let public = find(session, CKO_PUBLIC_KEY);
    assert_eq!(public.len(), 1);
    assert!(public[0] != key && public[0] != 0);
}

#[test]
fn a_daemon_that_never_answers_is_an_error_in_bounded_time() {
    let fixture = Fixture::new();
    let path = fixture.dir.path().join("hung.sock");
    // Bound but never accepting: connecting succeeds, the greeting is never answered.
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::env::set_var("IRONSEAL_PKCS11_SOCKET", &path);
    initialize();
    let started = Instant::now();
    let mut session = 0;
    // SAFETY: the output is a valid local.
    let rv = unsafe { C_OpenSession(0, CKF_SERIAL_SESSION, null_mut(), None, &mut session) };
    assert_eq!(rv, CKR_DEVICE_REMOVED);
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// What the child of `fork` checks, as an exit code (it must not unwind into the test
/// harness).
fn child_after_fork(inherited: CK_SESSION_HANDLE) -> i32 {
    // SAFETY: valid outputs throughout.
    unsafe {
        let mut info: CK_INFO = std::mem::zeroed();
        if C_GetInfo(&mut info) != CKR_CRYPTOKI_NOT_INITIALIZED {
            return 1;
        }
        if C_CloseSession(inherited) != CKR_CRYPTOKI_NOT_INITIALIZED {
            return 2;
        }
        if C_Initialize(null_mut()) != CKR_OK {
            return 3;
        }
        let mut session = 0;
        if C_OpenSession(0, CKF_SERIAL_SESSION, null_mut(), None, &mut session) != CKR_OK {
            return 4;
        }
        if login(session, CKU_USER, USER_PIN) != CKR_OK {
            return 5;
        }
        if C_Finalize(null_mut()) != CKR_OK {
            return 6;
        }
    }
    0
}

#[test]
fn a_forked_child_initializes_afresh() {
    let fixture = Fixture::new();
    let (session, key) = user_session();
    // SAFETY: the child only calls the library and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = child_after_fork(session);
        // SAFETY: ends the child without running the parent's destructors or harness.
        unsafe { libc::_exit(code) };
    }
    let started = Instant::now();
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our child and `status` a valid output.
        let waited = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if waited == pid {
            break;
        }
        if started.elapsed() > Duration::from_secs(20) {
            // SAFETY: `pid` is our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the forked child hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(libc::WIFEXITED(status), "the child crashed: {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child check failed");
    let instances = fixture.daemon().counters.instances.lock().unwrap().clone();
    assert!(instances.len() >= 2);
    assert!(
        instances.iter().any(|i| *i != instances[0]),
        "the child is its own instance"
    );
    // The parent's connection and login are untouched.
    let mut mech = mechanism(CKM_SHA256_RSA_PKCS);
    let mut signature = vec![0u8; SIGNATURE_LEN];
    let mut len = SIGNATURE_LEN as CK_ULONG;
    // SAFETY: valid buffers and lengths.
    unsafe {
        assert_eq!(C_SignInit(session, &mut mech, key), CKR_OK);
        let rv = C_Sign(
            session,
            b"x".as_ptr() as *mut u8,
            1,
            signature.as_mut_ptr(),
            &mut len,
        );
        assert_eq!(rv, CKR_OK);
    }
}

#[test]
fn mutual_tls_reaches_the_daemon_and_refuses_a_stranger() {
    let fixture = Fixture::new();
    let dir = fixture.dir.path();
    let pki = tls::Pki::new();
    let address = tls::start(&pki, std::sync::Arc::new(fake::Counters::default()));
    pki.write_ca(&dir.join("ca.pem"));
    let (cert, key) = pki.leaf("client", rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    std::fs::write(dir.join("client.pem"), cert).unwrap();
    std::fs::write(dir.join("client.key"), key).unwrap();
    let stranger = tls::Pki::new();
    let (cert, key) = stranger.leaf("client", rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    std::fs::write(dir.join("stranger.pem"), cert).unwrap();
    std::fs::write(dir.join("stranger.key"), key).unwrap();
    let conf = dir.join("pkcs11.conf");
    let write_conf = |who: &str| {
        let text = format!(
            "address = {address}\nserver_name = localhost\nca_file = {ca}\ncert_file = {cert}\nkey_file = {key}\ntoken_label = Over TLS\n",
            ca = dir.join("ca.pem").display(),
            cert = dir.join(format!("{who}.pem")).display(),
            key = dir.join(format!("{who}.key")).display(),
        );
        std::fs::write(&conf, text).unwrap();
    };
    std::env::set_var("IRONSEAL_PKCS11_CONF", &conf);

    write_conf("client");
    let (session, key) = user_session();
    let mut token: CK_TOKEN_INFO;
    let mut mech = mechanism(CKM_SHA256_RSA_PKCS);
    let mut signature = vec![0u8; SIGNATURE_LEN];
    let mut len = SIGNATURE_LEN as CK_ULONG;
    // SAFETY: valid buffers and outputs throughout.
    unsafe {
        token = std::mem::zeroed();
        assert_eq!(C_GetTokenInfo(0, &mut token), CKR_OK);
        assert_eq!(&token.label[..9], b"Over TLS ");
        assert_eq!(C_SignInit(session, &mut mech, key), CKR_OK);
        let rv = C_Sign(
            session,
            b"tls".as_ptr() as *mut u8,
            3,
            signature.as_mut_ptr(),
            &mut len,
        );
        assert_eq!(rv, CKR_OK);
        assert_eq!(C_Finalize(null_mut()), CKR_OK);
    }
    assert_eq!(&signature[..3], b"tls");

    write_conf("stranger");
    initialize();
    let mut session = 0;
    // SAFETY: the output is a valid local.
    let rv = unsafe { C_OpenSession(0, CKF_SERIAL_SESSION, null_mut(), None, &mut session) };
    std::env::remove_var("IRONSEAL_PKCS11_CONF");
    assert_eq!(rv, CKR_DEVICE_REMOVED);
}

/// The built `libironseal_pkcs11.so`, beside the test binary's `deps/` directory.
fn built_module() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let module = exe.parent()?.parent()?.join("libironseal_pkcs11.so");
    module.exists().then_some(module)
}

#[test]
fn pkcs11_tool_lists_and_signs_through_the_shared_library() {
    let fixture = Fixture::new();
    let (Some(module), Ok(_)) = (
        built_module(),
        std::process::Command::new("pkcs11-tool")
            .arg("--help")
            .output(),
    ) else {
        eprintln!("pkcs11-tool or the built module is missing: skipped");
        return;
    };
    let tool = |args: &[&str]| {
        let out = std::process::Command::new("pkcs11-tool")
            .arg("--module")
            .arg(&module)
            .args(args)
            .env("IRONSEAL_PKCS11_SOCKET", &fixture.daemon().path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = tool(&["--list-slots"]);
    assert!(ok && text.contains("fake appliance"), "{text}");
    let (ok, text) = tool(&["--list-mechanisms"]);
    assert!(ok && text.contains("SHA256-RSA-PKCS"), "{text}");
    let (ok, text) = tool(&["--login", "--pin", USER_PIN, "--list-objects"]);
    assert!(ok && text.contains("signer"), "{text}");
    let input = fixture.dir.path().join("in");
    let output = fixture.dir.path().join("out");
    std::fs::write(&input, b"sign me").unwrap();
    let (ok, text) = tool(&[
        "--login",
        "--pin",
        USER_PIN,
        "--sign",
        "--mechanism",
        "SHA256-RSA-PKCS",
        "--id",
        "01",
        "--input-file",
        input.to_str().unwrap(),
        "--output-file",
        output.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let signature = std::fs::read(&output).unwrap();
    assert_eq!(
        (&signature[..7], signature.len()),
        (&b"sign me"[..], SIGNATURE_LEN)
    );

    // GnuTLS's p11tool loads it through p11-kit.
    if let Ok(out) = std::process::Command::new("p11tool")
        .arg("--provider")
        .arg(&module)
        .arg("--list-tokens")
        .env("IRONSEAL_PKCS11_SOCKET", &fixture.daemon().path)
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("fake appliance"),
            "{text}"
        );
    }
}

#[test]
fn encrypt_and_decrypt_single_and_multi_part() {
    let _fixture = Fixture::new();
    let (session, private) = user_session();
    let public = find(session, CKO_PUBLIC_KEY)[0];
    let mut label = *b"context";
    let mut params = CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        source: CKZ_DATA_SPECIFIED,
        pSourceData: label.as_mut_ptr().cast(),
        ulSourceDataLen: label.len() as CK_ULONG,
    };
    let mut mech = CK_MECHANISM {
        mechanism: CKM_RSA_PKCS_OAEP,
        pParameter: (&mut params as *mut CK_RSA_PKCS_OAEP_PARAMS).cast(),
        ulParameterLen: std::mem::size_of::<CK_RSA_PKCS_OAEP_PARAMS>() as CK_ULONG,
    };
    let mut out = [0u8; 64];
    // SAFETY: valid buffers, lengths and mechanism throughout.
    unsafe {
        assert_eq!(
            C_EncryptInit(session, &mut mech, private),
            CKR_KEY_FUNCTION_NOT_PERMITTED
        );
        assert_eq!(C_EncryptInit(session, &mut mech, public), CKR_OK);
        let mut len = 0;
        assert_eq!(
            C_EncryptUpdate(
                session,
                b"abc".as_ptr() as *mut u8,
                3,
                out.as_mut_ptr(),
                &mut len
            ),
            CKR_OK
        );
        assert_eq!(len, 0, "parts are gathered until the final call");
        len = 64;
        assert_eq!(
            C_EncryptUpdate(
                session,
                b"def".as_ptr() as *mut u8,
                3,
                out.as_mut_ptr(),
                &mut len
            ),
            CKR_OK
        );
        len = 64;
        assert_eq!(C_EncryptFinal(session, out.as_mut_ptr(), &mut len), CKR_OK);
        assert_eq!(&out[..len as usize], b"fedcba");

        assert_eq!(C_DecryptInit(session, &mut mech, private), CKR_OK);
        len = 0;
        assert_eq!(
            C_Decrypt(
                session,
                b"fedcba".as_ptr() as *mut u8,
                6,
                null_mut(),
                &mut len
            ),
            CKR_OK
        );
        assert_eq!(len, 6);
        len = 64;
        assert_eq!(
            C_Decrypt(
                session,
                b"fedcba".as_ptr() as *mut u8,
                6,
                out.as_mut_ptr(),
                &mut len
            ),
            CKR_OK
        );
        assert_eq!(&out[..6], b"abcdef");
        assert_eq!(
            C_DecryptFinal(session, out.as_mut_ptr(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );

        let params = mech.pParameter.cast::<CK_RSA_PKCS_OAEP_PARAMS>();
        (*params).source = 7;
        assert_eq!(
            C_DecryptInit(session, &mut mech, private),
            CKR_MECHANISM_PARAM_INVALID
        );
        assert_eq!(C_Logout(session), CKR_OK);
        (*params).source = CKZ_DATA_SPECIFIED;
        assert_eq!(
            C_DecryptInit(session, &mut mech, private),
            CKR_USER_NOT_LOGGED_IN
        );
    }
}

#[test]
fn mechanism_parameters_are_decoded_by_type() {
    use pkcs11_wire::{Mechanism, Params};
    let decode = |mech: &CK_MECHANISM| {
        // SAFETY: every mechanism below points to live, correctly sized parameters.
        unsafe { super::decode::mechanism(mech) }
    };
    let mut iv = [9u8; 12];
    let mut aad = *b"header";
    let mut gcm = CK_GCM_PARAMS {
        pIv: iv.as_mut_ptr(),
        ulIvLen: 12,
        ulIvBits: 96,
        pAAD: aad.as_mut_ptr(),
        ulAADLen: 6,
        ulTagBits: 128,
    };
    let mut mech = CK_MECHANISM {
        mechanism: CKM_AES_GCM,
        pParameter: (&mut gcm as *mut CK_GCM_PARAMS).cast(),
        ulParameterLen: std::mem::size_of::<CK_GCM_PARAMS>() as CK_ULONG,
    };
    assert_eq!(
        decode(&mech),
        Ok(Mechanism {
            kind: CKM_AES_GCM,
            params: Params::Gcm {
                iv: vec![9; 12],
                aad: b"header".to_vec(),
                tag_bits: 128
            }
        })
    );
    mech.ulParameterLen -= 8;
    assert_eq!(decode(&mech), Err(CKR_MECHANISM_PARAM_INVALID));

    let mut cbc_iv = [1u8; 16];
    let cbc = CK_MECHANISM {
        mechanism: CKM_AES_CBC_PAD,
        pParameter: cbc_iv.as_mut_ptr().cast(),
        ulParameterLen: 16,
    };
    assert_eq!(decode(&cbc).map(|m| m.params), Ok(Params::Iv(vec![1; 16])));

    let mut context = *b"ctx";
    let mut sign_context = CK_SIGN_ADDITIONAL_CONTEXT {
        hedgeVariant: CKH_DETERMINISTIC_REQUIRED,
        pContext: context.as_mut_ptr(),
        ulContextLen: 3,
    };
    let ml_dsa = CK_MECHANISM {
        mechanism: CKM_ML_DSA,
        pParameter: (&mut sign_context as *mut CK_SIGN_ADDITIONAL_CONTEXT).cast(),
        ulParameterLen: std::mem::size_of::<CK_SIGN_ADDITIONAL_CONTEXT>() as CK_ULONG,
    };
    assert_eq!(
        decode(&ml_dsa).map(|m| m.params),
        Ok(Params::SignContext {
            hedge: CKH_DETERMINISTIC_REQUIRED,
            context: b"ctx".to_vec()
        })
    );
    assert_eq!(
        decode(&mechanism(CKM_ML_DSA)).map(|m| m.params),
        Ok(Params::None)
    );

    let mut junk = [0u8; 4];
    let ecdsa = CK_MECHANISM {
        mechanism: CKM_ECDSA,
        pParameter: junk.as_mut_ptr().cast(),
        ulParameterLen: 4,
    };
    assert_eq!(decode(&ecdsa), Err(CKR_MECHANISM_PARAM_INVALID));
    let unknown = CK_MECHANISM {
        mechanism: CKM_VENDOR_DEFINED | 1,
        ..ecdsa
    };
    assert_eq!(decode(&unknown), Err(CKR_MECHANISM_INVALID));
    let pss_without_params = mechanism(CKM_SHA256_RSA_PKCS_PSS);
    assert_eq!(
        decode(&pss_without_params),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
}

#[test]
fn closing_every_session_logs_out() {
    let _fixture = Fixture::new();
    let (first, _) = user_session();
    let second = open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    let mut info: CK_SESSION_INFO;
    // SAFETY: valid outputs and handles throughout.
    unsafe {
        info = std::mem::zeroed();
        assert_eq!(C_CloseSession(first), CKR_OK);
        assert_eq!(C_GetSessionInfo(second, &mut info), CKR_OK);
        assert_eq!(
            info.state, CKS_RW_USER_FUNCTIONS,
            "one session left: still logged in"
        );
        assert_eq!(C_CloseAllSessions(1), CKR_SLOT_ID_INVALID);
        assert_eq!(C_CloseAllSessions(0), CKR_OK);
        assert_eq!(
            C_GetSessionInfo(second, &mut info),
            CKR_SESSION_HANDLE_INVALID
        );
        let third = open_session(CKF_SERIAL_SESSION);
        assert_eq!(C_GetSessionInfo(third, &mut info), CKR_OK);
        assert_eq!(info.state, CKS_RO_PUBLIC_SESSION);
        assert_eq!(C_Finalize(null_mut()), CKR_OK);
        assert_eq!(C_CloseSession(third), CKR_CRYPTOKI_NOT_INITIALIZED);
    }
}
