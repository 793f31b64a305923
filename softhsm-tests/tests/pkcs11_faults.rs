//! Faults only the appliance has: its daemon killed mid-session (the next call fails fast,
//! and after a restart on the same socket a new session works in the same library
//! instance), the appliance sealed under a logged-in session (calls answer, not hang),
//! and a child process after fork (it must initialise its own connection).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::Session;
use softhsm_tests::pkcs11::{skip, Loaded, Token};

/// How long a call may take to report that the appliance went away.
const FAIL_FAST: Duration = Duration::from_secs(10);
/// How long the library may take to reach a restarted daemon.
const RECONNECT: Duration = Duration::from_secs(30);

const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// A P-256 pair made through the library; (public, private).
fn ec_pair(s: &Session, label: &str) -> (ObjectHandle, ObjectHandle) {
    s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::EcParams(P256_OID.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
        ],
        &[
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ],
    )
    .expect("C_GenerateKeyPair(P-256)")
}

fn sign(s: &Session, key: ObjectHandle) -> cryptoki::error::Result<Vec<u8>> {
    s.sign(&Mechanism::Ecdsa, key, &[0x42; 32])
}

/// Runs `call` on a thread and waits at most `deadline` for it: a hung library fails
/// the test instead of stalling it.
fn within<T: Send + 'static>(
    deadline: Duration,
    what: &str,
    call: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(call());
    });
    rx.recv_timeout(deadline)
        .unwrap_or_else(|_| panic!("{what} did not return within {deadline:?}"))
}

fn rv(result: cryptoki::error::Result<Vec<u8>>) -> Option<RvError> {
    match result {
        Err(Error::Pkcs11(rv, _)) => Some(rv),
        Ok(_) => None,
        Err(e) => panic!("not a PKCS#11 error: {e}"),
    }
}

/// Opens a session and logs in, retrying until the restarted daemon answers.
fn session_after_restart(lib: &Loaded, pin: &str) -> Session {
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    let start = Instant::now();
    loop {
        let attempt = lib.ctx.open_rw_session(lib.slot).and_then(|s| {
            s.login(UserType::User, Some(&AuthPin::from(pin.to_string())))
                .map(|()| s)
        });
        match attempt {
            Ok(s) => return s,
            Err(e) => assert!(
                start.elapsed() < RECONNECT,
                "no working session {RECONNECT:?} after the restart: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn daemon_killed_mid_session_fails_fast_and_a_restart_serves_again() {
    if skip(true) {
        return;
    }
    let mut t = Token::start();
    let lib = t.load();
    let s = lib.user_session(&t.pin);
    let (_, key) = ec_pair(&s, "before-kill");
    sign(&s, key).expect("C_Sign before the kill");

    t.kill_daemon();
    let start = Instant::now();
    let (s, got) = within(FAIL_FAST, "C_Sign after the kill", move || {
        let got = rv(sign(&s, key));
        (s, got)
    });
    assert!(
        matches!(got, Some(RvError::DeviceRemoved | RvError::DeviceError)),
        "C_Sign with the daemon gone answered {got:?} after {:?}",
        start.elapsed()
    );
    drop(s);

    t.restart_daemon();
    let s = session_after_restart(&lib, &t.pin);
    let (_, key) = ec_pair(&s, "after-restart");
    sign(&s, key).expect("C_Sign after the restart");
    assert_eq!(
        s.generate_random_vec(16).expect("C_GenerateRandom").len(),
        16
    );
}

#[test]
fn sealed_appliance_answers_token_not_present_or_device_error() {
    if skip(true) {
        return;
    }
    let t = Token::start();
    let lib = t.load();
    let s = lib.user_session(&t.pin);
    let (_, key) = ec_pair(&s, "before-seal");
    sign(&s, key).expect("C_Sign before sealing");

    t.daemon().bao(&["operator", "seal"]).ok();
    let start = Instant::now();
    let (s, got) = within(FAIL_FAST, "C_Sign on a sealed appliance", move || {
        let got = rv(sign(&s, key));
        (s, got)
    });
    assert!(
        matches!(got, Some(RvError::TokenNotPresent | RvError::DeviceError)),
        "C_Sign on a sealed appliance answered {got:?} after {:?}",
        start.elapsed()
    );
    drop(s);
    let info = lib.ctx.get_slot_info(lib.slot).expect("C_GetSlotInfo");
    assert!(
        !info.token_present(),
        "a sealed appliance still shows a token in its slot"
    );
}

const CKR_OK: u64 = 0;
const CKR_CRYPTOKI_NOT_INITIALIZED: u64 = 0x190;

#[test]
fn child_after_fork_initialises_its_own_connection() {
    if skip(true) {
        return;
    }
    let t = Token::start();
    t.keypair("EC:prime256v1", "02", "fork-ec");
    let got = t.probe("fork_child");
    let want = [
        ("child_C_GetSessionInfo", CKR_CRYPTOKI_NOT_INITIALIZED),
        ("child_C_GetSlotList", CKR_CRYPTOKI_NOT_INITIALIZED),
        ("child_C_Initialize", CKR_OK),
        ("child_sign", CKR_OK),
        ("child_C_Finalize", CKR_OK),
        ("parent_sign", CKR_OK),
        ("child_exit", 0),
        ("parent_sign_after", CKR_OK),
    ];
    let want: Vec<(String, u64)> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(got, want);
}

/// 200 forks while four threads initialise and finalise the library: each child
/// initialises its own, none hangs on a lock another thread held at the fork.
#[test]
fn forks_while_other_threads_initialise_never_leave_a_child_hung() {
    if skip(true) {
        return;
    }
    let t = Token::start();
    let started = std::time::Instant::now();
    let got = t.probe("fork_stress");
    let want = [
        ("C_Finalize", CKR_OK),
        ("children_ok", 200),
        ("children_failed", 0),
        ("children_hung", 0),
    ];
    let want: Vec<(String, u64)> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(got, want);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "the stress took {:?}",
        started.elapsed()
    );
}

/// A session key pair (`CKA_TOKEN` false): it signs (checked by plain OpenSSL on the
/// SubjectPublicKeyInfo the token answers), and a daemon restart takes it away.
#[test]
fn session_keys_sign_and_go_with_a_daemon_restart() {
    use cryptoki::object::AttributeType;
    if skip(true) {
        return;
    }
    let mut t = Token::start();
    let lib = t.load();
    let s = lib.user_session(&t.pin);
    let label = b"session-rsa".to_vec();
    let (public, private) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::ModulusBits(2048.into()),
                Attribute::Verify(true),
                Attribute::Label(label.clone()),
            ],
            &[
                Attribute::Token(false),
                Attribute::Sign(true),
                Attribute::Label(label.clone()),
            ],
        )
        .expect("C_GenerateKeyPair(session RSA)");
    let data = b"signed by a session key".to_vec();
    let signature = s
        .sign(&Mechanism::Sha256RsaPkcs, private, &data)
        .expect("C_Sign with a session key");
    let info = match s
        .get_attributes(public, &[AttributeType::PublicKeyInfo])
        .expect("C_GetAttributeValue")
        .pop()
    {
        Some(Attribute::PublicKeyInfo(der)) => der,
        other => panic!("no CKA_PUBLIC_KEY_INFO: {other:?}"),
    };
    for (name, bytes) in [("pub.der", &info), ("data", &data), ("sig", &signature)] {
        std::fs::write(t.path(name), bytes).unwrap();
    }
    let path = |name: &str| t.path(name).to_string_lossy().into_owned();
    let verified = softhsm_tests::pkcs11::openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        &path("pub.der"),
        "-keyform",
        "DER",
        "-signature",
        &path("sig"),
        &path("data"),
    ]);
    assert!(verified.success(), "{verified}");
    let find = |s: &Session| {
        s.find_objects(&[Attribute::Label(label.clone())])
            .expect("C_FindObjects")
    };
    assert_eq!(find(&s).len(), 2);

    t.kill_daemon();
    drop(s);
    t.restart_daemon();
    let s = session_after_restart(&lib, &t.pin);
    assert!(find(&s).is_empty(), "a session key outlived the daemon");
    assert!(s.sign(&Mechanism::Sha256RsaPkcs, private, &data).is_err());
}
