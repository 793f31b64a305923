//! The TPM 2.0 backend against swtpm on a temporary state dir.
#![cfg(feature = "tpm2")]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hsm_bridge::tpm2::{Tpm2Config, Tpm2Device};
use hsm_bridge::{BridgeError, OpenMode, PcrTarget, SealBinding, SealDevice};
use softhsm_tests::hardware::{two_free_ports, Swtpm};

fn device(tpm: &Swtpm, dir: &std::path::Path, pcrs: Vec<u8>) -> Tpm2Device {
    device_at(tpm.port, dir, pcrs)
}

fn device_at(port: u16, dir: &std::path::Path, pcrs: Vec<u8>) -> Tpm2Device {
    Tpm2Device::new(Tpm2Config {
        tcti: format!("swtpm:host=127.0.0.1,port={port}"),
        pcrs,
        dir: dir.to_path_buf(),
    })
    .unwrap()
}

#[test]
fn seals_reopens_and_refuses_another_tpm() {
    let tpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let dev = device(&tpm, dir.path(), vec![]);
    assert!(matches!(
        dev.open(OpenMode::Existing),
        Err(BridgeError::Unavailable { .. })
    ));
    let root = dev.open(OpenMode::CreateIfMissing).unwrap();
    let blob = root.wrap(b"core/keyring", b"ring").unwrap();
    drop(root);
    let again = dev.open(OpenMode::Existing).unwrap();
    assert_eq!(&*again.unwrap(b"core/keyring", &blob).unwrap(), b"ring");
    let mut r = [0u8; 40];
    again.random(&mut r).unwrap();

    // The same blobs next to a fresh TPM do not open, and the error says why.
    let other = Swtpm::start();
    let e = device(&other, dir.path(), vec![])
        .open(OpenMode::Existing)
        .err()
        .unwrap();
    assert!(matches!(e, BridgeError::ForeignKeyring(_)), "{e}");
    assert!(e.to_string().contains("another TPM"), "{e}");

    // TPM down: unavailable, with what to check.
    drop(tpm);
    let e = dev.open(OpenMode::Existing).err().unwrap();
    assert!(matches!(e, BridgeError::Unavailable { .. }), "{e}");
}

const RECOVERY: [u8; 32] = [7u8; 32];

/// A binding to the test recovery key and `policy_key`.
fn binding(policy_key: &[u8]) -> SealBinding<'_> {
    SealBinding {
        recovery_key: &RECOVERY,
        policy_key: Some(policy_key),
    }
}

#[test]
fn signed_pcr_policy_survives_authorised_changes_and_recovery_reopens() {
    let tpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let dev = device(&tpm, dir.path(), vec![16, 23]);
    let policy_key = dev
        .new_policy_key()
        .expect("the TPM seal uses a policy key");
    let binding = binding(&policy_key);
    let root = dev.create(&binding).unwrap();
    let blob = root.wrap(b"k", b"v").unwrap();
    let report = root.seal_policy().unwrap();
    assert!(
        report.signed_policy && report.current_authorized,
        "{report:?}"
    );
    drop(root);
    let opened = dev.open(OpenMode::Existing).unwrap();
    assert_eq!(&*opened.unwrap(b"k", &blob).unwrap(), b"v");

    // Authorise the value PCR 16 will have after an update, then make the update.
    let update = [0x11u8; 32];
    let targets = BTreeMap::from([(16u8, PcrTarget::Extend(vec![update.to_vec()]))]);
    let report = opened.authorize_pcrs(&policy_key, &targets).unwrap();
    assert_eq!(report.authorized.len(), 2, "{report:?}");
    drop(opened);
    tpm.pcr_extend(16, &update);
    let opened = dev.open(OpenMode::Existing).unwrap();
    assert_eq!(&*opened.unwrap(b"k", &blob).unwrap(), b"v");
    assert!(opened.seal_policy().unwrap().current_authorized);
    drop(opened);

    // An unplanned change: auto-unseal is refused, and says why.
    tpm.pcr_extend(23, &[0x22u8; 32]);
    let e = dev.open(OpenMode::Existing).err().unwrap();
    assert!(matches!(e, BridgeError::PolicyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("tpm_policy_mismatch"), "{e}");

    // Wrong recovery key: still refused. The right one opens, on this TPM, whatever the PCRs.
    let e = dev.open_with_recovery(&[8u8; 32]).err().unwrap();
    assert!(matches!(e, BridgeError::WrongRootKey), "{e}");
    let recovered = dev.open_with_recovery(&RECOVERY).unwrap();
    assert_eq!(&*recovered.unwrap(b"k", &blob).unwrap(), b"v");
    assert!(!recovered.seal_policy().unwrap().current_authorized);

    // Re-seal for the current values: auto-unseal works again with the same root secret.
    let report = recovered.reseal(&binding).unwrap();
    assert!(report.current_authorized, "{report:?}");
    drop(recovered);
    let opened = dev.open(OpenMode::Existing).unwrap();
    assert_eq!(&*opened.unwrap(b"k", &blob).unwrap(), b"v");

    // A forged signature in the policy file (it sits outside the barrier) does not pass
    // the TPM; the recovery keys still open the object.
    drop(opened);
    let path = dir.path().join("tpm2-seal.json");
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for entry in file["authorized"].as_array_mut().unwrap() {
        entry["signature"] = serde_json::Value::String(hex::encode([0x33u8; 64]));
    }
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    let e = dev.open(OpenMode::Existing).err().unwrap();
    assert!(e.to_string().contains("VerifySignature"), "{e}");
    let recovered = dev.open_with_recovery(&RECOVERY).unwrap();
    assert_eq!(&*recovered.unwrap(b"k", &blob).unwrap(), b"v");
    recovered.reseal(&binding).unwrap();
    drop(recovered);

    // The recovery branch does not open the sealed object on another TPM.
    let other = Swtpm::start();
    let e = device(&other, dir.path(), vec![16, 23])
        .open_with_recovery(&RECOVERY)
        .err()
        .unwrap();
    assert!(matches!(e, BridgeError::ForeignKeyring(_)), "{e}");
}

#[test]
fn pcr_binding_needs_the_engine_policy_key() {
    let tpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let e = device(&tpm, dir.path(), vec![16])
        .open(OpenMode::CreateIfMissing)
        .err()
        .unwrap();
    assert!(matches!(e, BridgeError::InvalidConfig(_)), "{e}");
}

/// Bytes seen on one direction of the bus.
type Log = Arc<Mutex<Vec<u8>>>;

/// A TCP relay between the ESAPI and swtpm's command port that records what the TPM
/// sends back and what it is sent (the control port, P+1, is relayed unrecorded).
struct BusTap {
    port: u16,
    to_tpm: Log,
    from_tpm: Log,
}

fn relay(listener: TcpListener, target: u16, record: Option<(Log, Log)>) {
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                return;
            };
            let pipe = |mut from: TcpStream, mut to: TcpStream, log: Option<Log>| {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    loop {
                        match from.read(&mut buf) {
                            Ok(0) | Err(_) => {
                                let _ = to.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                            Ok(n) => {
                                if let Some(log) = &log {
                                    log.lock().unwrap().extend_from_slice(&buf[..n]);
                                }
                                if to.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            };
            let (up, down) = match &record {
                Some((a, b)) => (Some(a.clone()), Some(b.clone())),
                None => (None, None),
            };
            pipe(client.try_clone().unwrap(), server.try_clone().unwrap(), up);
            pipe(server, client, down);
        }
    });
}

fn bus_tap(tpm: &Swtpm) -> BusTap {
    let port = two_free_ports();
    let to_tpm = Arc::new(Mutex::new(Vec::new()));
    let from_tpm = Arc::new(Mutex::new(Vec::new()));
    relay(
        TcpListener::bind(("127.0.0.1", port)).unwrap(),
        tpm.port,
        Some((to_tpm.clone(), from_tpm.clone())),
    );
    relay(
        TcpListener::bind(("127.0.0.1", port + 1)).unwrap(),
        tpm.port + 1,
        None,
    );
    BusTap {
        port,
        to_tpm,
        from_tpm,
    }
}

/// Whether any 32-byte window of `traffic` is the key that opens `blob` (a wrap by the
/// root secret): i.e. whether the root secret crossed the bus in clear.
fn secret_on_bus(traffic: &[u8], blob: &[u8]) -> bool {
    traffic
        .windows(32)
        .any(|k| open_with_key(k, b"probe", blob).is_some())
}

#[test]
fn root_secret_never_crosses_the_bus_in_clear() {
    let tpm = Swtpm::start();
    let tap = bus_tap(&tpm);
    let dir = tempfile::tempdir().unwrap();
    for pcrs in [vec![], vec![16]] {
        let dev = device_at(tap.port, dir.path(), pcrs.clone());
        let key = dev.new_policy_key().unwrap();
        let root = dev.create(&binding(&key)).unwrap();
        let blob = root.wrap(b"probe", b"known plaintext").unwrap();
        drop(root);
        // Auto-unseal, and the recovery route for the policy-bound object.
        dev.open(OpenMode::Existing).unwrap();
        dev.open_with_recovery(&RECOVERY).unwrap();
        let sent = tap.to_tpm.lock().unwrap().clone();
        let received = tap.from_tpm.lock().unwrap().clone();
        assert!(!received.is_empty() && !sent.is_empty());
        assert!(
            !secret_on_bus(&sent, &blob),
            "pcrs {pcrs:?}: the secret was sent in clear (TPM2_Create)"
        );
        assert!(
            !secret_on_bus(&received, &blob),
            "pcrs {pcrs:?}: the secret came back in clear (TPM2_Unseal)"
        );
        // Unencrypted-looking is not enough: an unsalted, unbound session's key follows
        // from the nonces on the bus. Every Create and Unseal must use a session salted
        // to a TPM key, with the right parameter-encryption attribute.
        let exchanges = split_exchanges(&sent, &received);
        let salted = salted_sessions(&exchanges);
        for (cc, attr, what) in [
            (CC_CREATE, ATTR_DECRYPT, "Create"),
            (CC_UNSEAL, ATTR_ENCRYPT, "Unseal"),
        ] {
            let cmds: Vec<_> = exchanges
                .iter()
                .filter(|(c, _)| command_code(c) == cc)
                .collect();
            assert!(!cmds.is_empty(), "pcrs {pcrs:?}: no TPM2_{what} seen");
            for (c, _) in cmds {
                assert!(
                    command_sessions(c)
                        .iter()
                        .any(|(h, a)| a & attr != 0 && salted.contains(h)),
                    "pcrs {pcrs:?}: a TPM2_{what} without a salted session encrypting the secret"
                );
            }
        }
        tap.to_tpm.lock().unwrap().clear();
        tap.from_tpm.lock().unwrap().clear();
    }

    // The tap does see a secret that is unsealed without parameter encryption, so the
    // assertions above can fail.
    let known = [0x5au8; 32];
    tap.to_tpm.lock().unwrap().clear();
    tap.from_tpm.lock().unwrap().clear();
    let mut ctx = tss_esapi::Context::new(
        format!("swtpm:host=127.0.0.1,port={}", tap.port)
            .parse()
            .unwrap(),
    )
    .unwrap();
    plain_seal_and_unseal(&mut ctx, &known);
    let sent = tap.to_tpm.lock().unwrap().clone();
    let received = tap.from_tpm.lock().unwrap().clone();
    assert!(
        sent.windows(32).any(|w| w == known) && received.windows(32).any(|w| w == known),
        "the tap saw no plain create/unseal: {} bytes sent, {} received",
        sent.len(),
        received.len()
    );
    // ...and the session check above tells such an unseal apart.
    let exchanges = split_exchanges(&sent, &received);
    let salted = salted_sessions(&exchanges);
    let unseal = exchanges
        .iter()
        .find(|(c, _)| command_code(c) == CC_UNSEAL)
        .expect("the plain unseal");
    assert!(!command_sessions(&unseal.0)
        .iter()
        .any(|(h, a)| a & ATTR_ENCRYPT != 0 && salted.contains(h)));
}

const CC_CREATE: u32 = 0x153;
const CC_UNSEAL: u32 = 0x15E;
const CC_START_AUTH_SESSION: u32 = 0x176;
const TPM_RH_NULL: u32 = 0x4000_0007;
const ATTR_DECRYPT: u8 = 0x20;
const ATTR_ENCRYPT: u8 = 0x40;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Cuts the two byte streams into (command, response) pairs by their size fields.
fn split_exchanges(sent: &[u8], received: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let cut = |mut s: &[u8]| {
        let mut out = Vec::new();
        while s.len() >= 10 {
            let n = be32(s, 2) as usize;
            out.push(s[..n].to_vec());
            s = &s[n..];
        }
        out
    };
    cut(sent).into_iter().zip(cut(received)).collect()
}

fn command_code(c: &[u8]) -> u32 {
    be32(c, 6)
}

/// Handles returned by TPM2_StartAuthSession calls that named a tpmKey and sent a salt.
fn salted_sessions(exchanges: &[(Vec<u8>, Vec<u8>)]) -> Vec<u32> {
    exchanges
        .iter()
        .filter(|(c, r)| command_code(c) == CC_START_AUTH_SESSION && be32(r, 6) == 0)
        .filter(|(c, _)| {
            let tpm_key = be32(c, 10);
            let nonce_len = u16::from_be_bytes([c[18], c[19]]) as usize;
            let salt_at = 20 + nonce_len;
            let salt_len = u16::from_be_bytes([c[salt_at], c[salt_at + 1]]);
            tpm_key != TPM_RH_NULL && salt_len > 0
        })
        .map(|(_, r)| be32(r, 10))
        .collect()
}

/// (session handle, attributes) of a command's authorisation area; Create and Unseal have
/// one handle before it.
fn command_sessions(c: &[u8]) -> Vec<(u32, u8)> {
    let mut at = 14;
    let end = at + 4 + be32(c, at) as usize;
    at += 4;
    let mut out = Vec::new();
    while at < end {
        let handle = be32(c, at);
        let nonce = u16::from_be_bytes([c[at + 4], c[at + 5]]) as usize;
        let attrs = c[at + 6 + nonce];
        let hmac = u16::from_be_bytes([c[at + 7 + nonce], c[at + 8 + nonce]]) as usize;
        out.push((handle, attrs));
        at += 9 + nonce + hmac;
    }
    out
}

use tss_esapi::handles::ObjectHandle;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Digest, Public};

/// The appliance's SRK template (TCG default ECC P-256).
fn srk_template() -> Public {
    use tss_esapi::attributes::ObjectAttributesBuilder;
    use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
    use tss_esapi::interface_types::ecc::EccCurve;
    use tss_esapi::structures::{
        EccPoint, PublicBuilder, PublicEccParametersBuilder, SymmetricDefinitionObject,
    };
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(
            ObjectAttributesBuilder::new()
                .with_fixed_tpm(true)
                .with_fixed_parent(true)
                .with_sensitive_data_origin(true)
                .with_user_with_auth(true)
                .with_no_da(true)
                .with_restricted(true)
                .with_decrypt(true)
                .build()
                .unwrap(),
        )
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()
            .unwrap(),
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .unwrap()
}

/// A sealed data object's template: with `policy`, usable only through it.
fn sealed_object_template(policy: Option<Digest>) -> Public {
    use tss_esapi::attributes::ObjectAttributesBuilder;
    use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
    use tss_esapi::structures::{KeyedHashScheme, PublicBuilder, PublicKeyedHashParameters};
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(
            ObjectAttributesBuilder::new()
                .with_fixed_tpm(true)
                .with_fixed_parent(true)
                .with_no_da(true)
                .with_admin_with_policy(true)
                .with_user_with_auth(policy.is_none())
                .build()
                .unwrap(),
        )
        .with_auth_policy(policy.unwrap_or_default())
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Default::default())
        .build()
        .unwrap()
}

/// Seals and unseals `secret` with password sessions only (what the appliance must not do).
fn plain_seal_and_unseal(ctx: &mut tss_esapi::Context, secret: &[u8]) {
    use tss_esapi::interface_types::resource_handles::Hierarchy;
    use tss_esapi::structures::SensitiveData;
    let primary = ctx
        .execute_with_nullauth_session(|c| {
            c.create_primary(Hierarchy::Owner, srk_template(), None, None, None, None)
        })
        .unwrap()
        .key_handle;
    let data = SensitiveData::try_from(secret.to_vec()).unwrap();
    let password = Some(AuthSession::Password);
    let created = ctx
        .execute_with_session(password, |c| {
            c.create(
                primary,
                sealed_object_template(None),
                None,
                Some(data),
                None,
                None,
            )
        })
        .unwrap();
    let loaded = ctx
        .execute_with_session(password, |c| {
            c.load(primary, created.out_private, created.out_public)
        })
        .unwrap();
    let out = ctx
        .execute_with_session(password, |c| c.unseal(loaded.into()))
        .unwrap();
    assert_eq!(out.value(), secret);
    ctx.flush_context(ObjectHandle::from(loaded)).unwrap();
    ctx.flush_context(ObjectHandle::from(primary)).unwrap();
}

/// Seals `secret` as releases before signed PCR policies did: a raw PolicyPCR over the
/// current values of `pcrs`; writes `tpm2-root.pub`/`tpm2-root.priv` into `dir`.
fn legacy_seal(port: u16, dir: &std::path::Path, secret: &[u8], pcrs: &[u8]) {
    use tss_esapi::constants::SessionType;
    use tss_esapi::interface_types::algorithm::HashingAlgorithm;
    use tss_esapi::interface_types::resource_handles::Hierarchy;
    use tss_esapi::interface_types::session_handles::PolicySession;
    use tss_esapi::structures::{
        PcrSelectionListBuilder, PcrSlot, SensitiveData, SymmetricDefinition,
    };
    use tss_esapi::traits::Marshall;
    let mut ctx =
        tss_esapi::Context::new(format!("swtpm:host=127.0.0.1,port={port}").parse().unwrap())
            .unwrap();
    let slots: Vec<PcrSlot> = pcrs
        .iter()
        .map(|p| PcrSlot::try_from(1u32 << p).unwrap())
        .collect();
    let selection = PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .unwrap();
    let trial = ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Trial,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .unwrap()
        .unwrap();
    let trial_policy = PolicySession::try_from(trial).unwrap();
    ctx.policy_pcr(trial_policy, Digest::default(), selection)
        .unwrap();
    let digest = ctx.policy_get_digest(trial_policy).unwrap();
    ctx.flush_context(ObjectHandle::from(tss_esapi::handles::SessionHandle::from(
        trial,
    )))
    .unwrap();
    let primary = ctx
        .execute_with_nullauth_session(|c| {
            c.create_primary(Hierarchy::Owner, srk_template(), None, None, None, None)
        })
        .unwrap()
        .key_handle;
    let data = SensitiveData::try_from(secret.to_vec()).unwrap();
    let created = ctx
        .execute_with_nullauth_session(|c| {
            c.create(
                primary,
                sealed_object_template(Some(digest)),
                None,
                Some(data),
                None,
                None,
            )
        })
        .unwrap();
    ctx.flush_context(ObjectHandle::from(primary)).unwrap();
    std::fs::write(
        dir.join("tpm2-root.pub"),
        created.out_public.marshall().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("tpm2-root.priv"), created.out_private.value()).unwrap();
}

/// Opens a wrap made by the TPM root whose secret is `key`.
fn open_with_key(key: &[u8], aad: &[u8], blob: &[u8]) -> Option<Vec<u8>> {
    let (nonce, ct) = blob[1..].split_at(24);
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

#[test]
fn data_dirs_sealed_before_signed_policies_unseal_and_reseal_moves_them() {
    let tpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let secret = [0x3cu8; 32];
    legacy_seal(tpm.port, dir.path(), &secret, &[16]);
    let dev = device(&tpm, dir.path(), vec![16]);
    let root = dev.open(OpenMode::Existing).unwrap();
    let blob = root.wrap(b"k", b"old data").unwrap();
    assert_eq!(open_with_key(&secret, b"k", &blob).unwrap(), b"old data");

    let key = dev.new_policy_key().unwrap();
    let report = root.reseal(&binding(&key)).unwrap();
    assert!(
        report.signed_policy && report.current_authorized,
        "{report:?}"
    );
    drop(root);
    assert!(dir.path().join("tpm2-seal.json").exists());
    assert!(!dir.path().join("tpm2-root.pub").exists());
    assert!(!dir.path().join("tpm2-root.priv").exists());
    let root = dev.open(OpenMode::Existing).unwrap();
    let again = root.wrap(b"k", b"same secret").unwrap();
    assert_eq!(
        open_with_key(&secret, b"k", &again).unwrap(),
        b"same secret"
    );
    drop(root);

    // A legacy object whose PCR changed: the mismatch category, as for the new format.
    let dir2 = tempfile::tempdir().unwrap();
    legacy_seal(tpm.port, dir2.path(), &secret, &[23]);
    tpm.pcr_extend(23, &[0x01u8; 32]);
    let e = device(&tpm, dir2.path(), vec![23])
        .open(OpenMode::Existing)
        .err()
        .unwrap();
    assert!(matches!(e, BridgeError::PolicyMismatch { .. }), "{e}");
}
