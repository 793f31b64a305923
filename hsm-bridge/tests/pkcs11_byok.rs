//! BYOK export inside the token, on SoftHSM2 (the composed wrap and its measured limits)
//! and on Kryoptic (a conformant PKCS#11 3.x token), each blob opened by Python's
//! `cryptography` as a provider would; BYOK import unwrapped inside each token; and the
//! PKCS#11 seal itself on Kryoptic.
#![cfg(feature = "pkcs11")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use hsm_bridge::pkcs11::{Pkcs11Config, Pkcs11Device};
use hsm_bridge::{
    BridgeError, DecryptMechanism, EncryptMechanism, HashAlg, ImportError, KeySpec, OpenMode,
    RootOfTrust, SealDevice, SignMechanism, WrapMechanism,
};
use softhsm_tests::hardware::{SoftHsm, SOFTHSM_MODULE};
use softhsm_tests::kryoptic::{self, Kryoptic};
use softhsm_tests::tools::python;

const FORMATS: [WrapMechanism; 4] = [
    WrapMechanism::RsaOaepSha1,
    WrapMechanism::RsaOaepSha256,
    WrapMechanism::RsaAesKeyWrapSha1,
    WrapMechanism::RsaAesKeyWrapSha256,
];

const KEYS: [(&str, KeySpec); 3] = [
    ("RSA-2048", KeySpec::Rsa(2048)),
    ("P-256", KeySpec::EcP256),
    ("AES-256", KeySpec::Aes256),
];

/// The tokens' configuration variables are process-wide: the tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn softhsm() -> &'static SoftHsm {
    static TOKEN: std::sync::OnceLock<SoftHsm> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        let hsm = SoftHsm::new("byok");
        std::env::set_var("SOFTHSM2_CONF", hsm.conf());
        hsm
    })
}

fn kryoptic() -> &'static Kryoptic {
    static TOKEN: std::sync::OnceLock<Kryoptic> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        let token = Kryoptic::new("byok");
        std::env::set_var(kryoptic::CONF_ENV, token.conf());
        token
    })
}

fn config(lib: &Path, pin_file: PathBuf, key_label: &str) -> Pkcs11Config {
    Pkcs11Config {
        lib: lib.into(),
        slot: None,
        token_label: Some("byok".into()),
        key_label: key_label.into(),
        generate_key: true,
        pin_file: Some(pin_file),
    }
}

fn open_softhsm(key_label: &str) -> Arc<dyn RootOfTrust> {
    let token = softhsm();
    Pkcs11Device::new(config(
        Path::new(SOFTHSM_MODULE),
        token.pin_file(),
        key_label,
    ))
    .open(OpenMode::CreateIfMissing)
    .unwrap()
}

fn open_kryoptic(key_label: &str) -> Arc<dyn RootOfTrust> {
    let token = kryoptic();
    Pkcs11Device::new(config(&token.module, token.pin_file(), key_label))
        .open(OpenMode::CreateIfMissing)
        .unwrap()
}

fn opener() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/byok_open.py")
}

/// A provider's RSA-3072 key pair, made and kept by Python.
struct Provider {
    dir: tempfile::TempDir,
    public: Vec<u8>,
}

impl Provider {
    fn new() -> Provider {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(python())
            .arg(opener())
            .arg("keygen")
            .arg(dir.path().join("provider.der"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = hex::decode(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
        Provider { dir, public }
    }

    /// Python's verdict on each case.
    fn open(&self, cases: &[serde_json::Value]) -> BTreeMap<String, String> {
        let path = self.dir.path().join("cases.json");
        std::fs::write(&path, serde_json::to_vec(cases).unwrap()).unwrap();
        let out = Command::new(python())
            .arg(opener())
            .arg("open")
            .arg(self.dir.path().join("provider.der"))
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

type Table = BTreeMap<(&'static str, String), Result<(), String>>;

/// Generates each key kind exportable, wraps it in every format the token supports, has
/// Python open every blob, and returns what `export_support` said per key and format.
fn export_everything(root: &dyn RootOfTrust, token: &str) -> Table {
    let provider = Provider::new();
    let mut table = Table::new();
    let mut cases = Vec::new();
    for (name, spec) in KEYS {
        let key = root.generate_exportable_key(spec).unwrap();
        // What the provider must find: the same public key, or an AES key that opens
        // what the appliance encrypted with it.
        let check = match &key.public {
            Some(public) => serde_json::json!({ "public": hex::encode(public) }),
            None => {
                let iv = [9u8; 12];
                let plaintext = b"encrypted inside the HSM";
                let ciphertext = root
                    .encrypt(
                        &key,
                        EncryptMechanism::AesGcm {
                            iv: &iv,
                            aad: b"",
                            tag_len: 16,
                        },
                        plaintext,
                    )
                    .unwrap();
                serde_json::json!({
                    "iv": hex::encode(iv),
                    "ciphertext": hex::encode(ciphertext),
                    "plaintext": hex::encode(plaintext),
                })
            }
        };
        for format in FORMATS {
            let support = root.export_support(spec, format);
            if support.is_ok() {
                let blob = root
                    .export_wrap(&key, &provider.public, format)
                    .unwrap_or_else(|e| panic!("{token} {name} {format:?}: {e}"));
                let mut case = check.clone();
                case["name"] = format!("{name} {format:?}").into();
                case["hash"] = match format.oaep_hash() {
                    HashAlg::Sha1 => "sha1",
                    _ => "sha256",
                }
                .into();
                case["rsa_aes"] = format.is_rsa_aes().into();
                case["blob"] = hex::encode(blob).into();
                cases.push(case);
            } else {
                // Refused up front, and refused again if asked anyway.
                assert!(
                    root.export_wrap(&key, &provider.public, format).is_err(),
                    "{token} {name} {format:?}"
                );
            }
            eprintln!(
                "{token} | {name} | {} | {}",
                format.pkcs11_name(),
                match &support {
                    Ok(()) => "OK (opened by Python cryptography)".to_string(),
                    Err(why) => why.clone(),
                }
            );
            table.insert((name, format!("{format:?}")), support);
        }
        // The key still works inside the token after its exports.
        if let KeySpec::Rsa(_) = spec {
            root.sign(
                &key,
                SignMechanism::RsaPkcs1 {
                    hash: Some(HashAlg::Sha256),
                },
                b"still mine",
            )
            .unwrap();
        }
    }
    for (name, verdict) in provider.open(&cases) {
        assert_eq!(verdict, "ok", "{token}: {name}");
    }
    assert!(!cases.is_empty(), "{token}: no format was exportable");
    table
}

fn support<'a>(table: &'a Table, key: &str, format: WrapMechanism) -> &'a Result<(), String> {
    table
        .get(&(
            KEYS.iter().find(|(n, _)| *n == key).unwrap().0,
            format!("{format:?}"),
        ))
        .unwrap()
}

#[track_caller]
fn refused_naming(table: &Table, key: &str, format: WrapMechanism, words: &[&str]) {
    match support(table, key, format) {
        Ok(()) => panic!("{key} {format:?} was supported"),
        Err(why) => {
            for w in words {
                assert!(why.contains(w), "{key} {format:?}: {why:?} lacks {w:?}");
            }
        }
    }
}

#[test]
fn softhsm2_exports_aes_with_oaep_sha1_and_refuses_private_keys_naming_the_mechanism() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = open_softhsm("byok-root");
    let table = export_everything(root.as_ref(), "SoftHSM2");
    assert_eq!(
        support(&table, "AES-256", WrapMechanism::RsaOaepSha1),
        &Ok(())
    );
    refused_naming(
        &table,
        "AES-256",
        WrapMechanism::RsaOaepSha256,
        &["CKM_RSA_PKCS_OAEP with SHA-256", "CKR_"],
    );
    for key in ["RSA-2048", "P-256"] {
        refused_naming(
            &table,
            key,
            WrapMechanism::RsaAesKeyWrapSha1,
            &[
                "CKM_AES_KEY_WRAP_PAD is not RFC 5649: it zero-pads",
                "CKM_AES_KEY_WRAP_KWP",
                "CKM_RSA_AES_KEY_WRAP",
            ],
        );
        refused_naming(
            &table,
            key,
            WrapMechanism::RsaAesKeyWrapSha256,
            &["CKM_RSA_PKCS_OAEP with SHA-256"],
        );
        for format in [WrapMechanism::RsaOaepSha1, WrapMechanism::RsaOaepSha256] {
            refused_naming(&table, key, format, &["only AES-256"]);
        }
    }
}

#[test]
fn kryoptic_exports_private_keys_with_rsa_aes_sha256_inside_the_token() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = open_kryoptic("byok-root");
    let table = export_everything(root.as_ref(), "Kryoptic");
    for key in ["RSA-2048", "P-256"] {
        for format in [
            WrapMechanism::RsaAesKeyWrapSha256,
            WrapMechanism::RsaAesKeyWrapSha1,
        ] {
            assert_eq!(support(&table, key, format), &Ok(()), "{key} {format:?}");
        }
    }
    for format in FORMATS {
        assert_eq!(support(&table, "AES-256", format), &Ok(()), "{format:?}");
    }
}

/// Vault's BYOK format made in software under a wrapping key the token generated, unwrapped
/// by the token for every OAEP hash it proved; altered parts are told apart. Returns what
/// `import_support` said per hash.
fn import_everything(root: &dyn RootOfTrust) -> BTreeMap<String, Result<(), String>> {
    use rsa::pkcs8::DecodePublicKey;
    let wrapping = root.generate_key(KeySpec::Rsa(2048)).unwrap();
    let public =
        rsa::RsaPublicKey::from_public_key_der(wrapping.public.as_deref().unwrap()).unwrap();
    // Not a multiple of 8, as PKCS#8 documents often are not.
    let target = b"a target key of thirty-seven bytes!!!".to_vec();
    let mut table = BTreeMap::new();
    for hash in HashAlg::ALL {
        let support = root.import_support(hash);
        table.insert(format!("{hash:?}"), support.clone());
        if support.is_err() {
            assert!(matches!(
                root.import_unwrap(&wrapping, hash, &[0; 256], &[0; 48]),
                Err(ImportError::Bridge(BridgeError::Unsupported { .. }))
            ));
            continue;
        }
        let padding = match hash {
            HashAlg::Sha1 => rsa::Oaep::new::<sha1::Sha1>(),
            HashAlg::Sha224 => rsa::Oaep::new::<sha2::Sha224>(),
            HashAlg::Sha256 => rsa::Oaep::new::<sha2::Sha256>(),
            HashAlg::Sha384 => rsa::Oaep::new::<sha2::Sha384>(),
            HashAlg::Sha512 => rsa::Oaep::new::<sha2::Sha512>(),
        };
        let ephemeral = [0x5au8; 32];
        let rsa_part = public
            .encrypt(&mut rand::thread_rng(), padding, &ephemeral)
            .unwrap();
        let kwp_part = hsm_bridge::byok::kwp_wrap(&ephemeral, &target).unwrap();
        let got = root
            .import_unwrap(&wrapping, hash, &rsa_part, &kwp_part)
            .unwrap();
        assert_eq!(got.as_slice(), target.as_slice(), "{hash:?}");
        let mut bad_rsa = rsa_part.clone();
        bad_rsa[7] ^= 1;
        assert!(matches!(
            root.import_unwrap(&wrapping, hash, &bad_rsa, &kwp_part),
            Err(ImportError::Ephemeral)
        ));
        let mut bad_kwp = kwp_part.clone();
        bad_kwp[5] ^= 1;
        assert!(matches!(
            root.import_unwrap(&wrapping, hash, &rsa_part, &bad_kwp),
            Err(ImportError::Target)
        ));
    }
    table
}

#[test]
fn kryoptic_unwraps_byok_imports_with_every_oaep_hash() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = open_kryoptic("byok-root");
    for (hash, support) in import_everything(root.as_ref()) {
        assert_eq!(support, Ok(()), "{hash}");
    }
}

#[test]
fn softhsm2_unwraps_no_byok_import_and_says_why() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = open_softhsm("byok-root");
    let table = import_everything(root.as_ref());
    // SoftHSM2 2.6 refuses OAEP with anything but SHA-1, and with SHA-1 makes an AES key
    // without CKA_VALUE_LEN, so the ephemeral key's size cannot be checked in the token.
    for (hash, support) in &table {
        let why = support.as_ref().unwrap_err();
        assert!(why.contains("in C_UnwrapKey"), "{hash}: {why}");
        let expected = if hash == "Sha1" {
            "CKA_VALUE_LEN"
        } else {
            "CKR_ARGUMENTS_BAD"
        };
        assert!(why.contains(expected), "{hash}: {why}");
    }
}

/// A key generated non-exportable is wrapped by the root key, whose unwrap template keeps
/// it unextractable: it cannot be exported, whatever the format.
#[test]
fn a_key_generated_non_exportable_cannot_be_wrapped_out() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = open_softhsm("byok-bound");
    let provider = Provider::new();
    let key = root.generate_key(KeySpec::Aes256).unwrap();
    let e = root
        .export_wrap(&key, &provider.public, WrapMechanism::RsaOaepSha1)
        .unwrap_err();
    assert!(
        matches!(e, BridgeError::BadInput(m) if m.contains("non-exportable")),
        "{e}"
    );
    // An exportable key is used like any other, and survives a reopen of the token.
    let exportable = root.generate_exportable_key(KeySpec::Aes256).unwrap();
    let iv = [1u8; 16];
    let ct = root
        .encrypt(&exportable, EncryptMechanism::AesCbcPad { iv }, b"data")
        .unwrap();
    drop(root);
    let root = open_softhsm("byok-bound");
    assert_eq!(
        &*root
            .decrypt(&exportable, DecryptMechanism::AesCbcPad { iv }, &ct)
            .unwrap(),
        b"data"
    );
    root.export_wrap(&exportable, &provider.public, WrapMechanism::RsaOaepSha1)
        .unwrap();
}

/// The PKCS#11 seal on the conformant token: root key made, keyring wrapped and opened,
/// found again on reopen; managed keys generated and used inside it.
#[test]
fn the_pkcs11_seal_opens_and_unseals_on_kryoptic() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let token = kryoptic();
    let device = Pkcs11Device::new(config(&token.module, token.pin_file(), "seal-root"));
    let root = device.open(OpenMode::CreateIfMissing).unwrap();
    let blob = root.wrap(b"core/keyring", b"the keyring").unwrap();
    assert_eq!(
        &*root.unwrap(b"core/keyring", &blob).unwrap(),
        b"the keyring"
    );
    assert!(root.unwrap(b"other", &blob).is_err());
    let rsa = root.generate_key(KeySpec::Rsa(2048)).unwrap();
    root.sign(
        &rsa,
        SignMechanism::RsaPkcs1 {
            hash: Some(HashAlg::Sha256),
        },
        b"hello",
    )
    .unwrap();
    drop(root);
    drop(device);
    let again = Pkcs11Device::new(config(&token.module, token.pin_file(), "seal-root"))
        .open(OpenMode::Existing)
        .unwrap();
    assert_eq!(
        &*again.unwrap(b"core/keyring", &blob).unwrap(),
        b"the keyring"
    );
}

/// Why the appliance does not set `CKA_WRAP_WITH_TRUSTED` (see the pkcs11 module docs):
/// with the user PIN alone, a key carrying it cannot be wrapped by an AES key the user
/// made, as every managed key must be once to be stored, and the user cannot mark that
/// key trusted.
#[test]
fn softhsm2_refuses_a_wrap_of_a_wrap_with_trusted_key_by_an_untrusted_key() {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::error::{Error as CkError, RvError};
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, KeyType, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;

    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    softhsm();
    let ctx = Pkcs11::new(SOFTHSM_MODULE).unwrap();
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == "byok")
        .expect("the test token");
    let s = ctx.open_rw_session(slot).unwrap();
    let pin = AuthPin::from(softhsm_tests::hardware::USER_PIN.to_string());
    match s.login(UserType::User, Some(&pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("C_Login: {e}"),
    }
    let aes = |extra: &[Attribute]| {
        let mut t = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(false),
        ];
        t.extend_from_slice(extra);
        s.generate_key(&Mechanism::AesKeyGen, &t).unwrap()
    };
    let wrapping = aes(&[Attribute::Wrap(true)]);
    let bound = aes(&[
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::WrapWithTrusted(true),
    ]);
    match s.wrap_key(&Mechanism::AesKeyWrapPad, wrapping, bound) {
        Err(CkError::Pkcs11(RvError::KeyNotWrappable, _)) => {}
        other => panic!("SoftHSM2 answered {other:?}: update the pkcs11 module docs"),
    }
    // The user cannot make the wrapping key trusted.
    assert!(s
        .update_attributes(wrapping, &[Attribute::Trusted(true)])
        .is_err());
}
