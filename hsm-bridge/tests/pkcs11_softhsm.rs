//! The PKCS#11 backend against a real SoftHSM2 token in a temporary directory.
#![cfg(feature = "pkcs11")]

use std::path::{Path, PathBuf};
use std::process::Command;

use hsm_bridge::pkcs11::{Pkcs11Config, Pkcs11Device};
use hsm_bridge::{BridgeError, SealDevice};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

struct Token {
    _dir: tempfile::TempDir,
    pin_file: PathBuf,
}

/// One SoftHSM2 token per process: `SOFTHSM2_CONF` is process-wide, so the tests in this
/// file share the token (each uses its own key label).
fn token() -> &'static Token {
    static TOKEN: std::sync::OnceLock<Token> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        assert!(
            Path::new(MODULE).exists() && which("softhsm2-util"),
            "SoftHSM2 is missing ({MODULE}, softhsm2-util): run scripts/install-deps.sh"
        );
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let out = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                "unit",
                "--so-pin",
                "5678",
                "--pin",
                "1234",
            ])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pin_file = dir.path().join("pin");
        write_private(&pin_file, "1234\n");
        Token {
            _dir: dir,
            pin_file,
        }
    })
}

fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn which(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn config(label: &str) -> Pkcs11Config {
    Pkcs11Config {
        lib: MODULE.into(),
        slot: None,
        token_label: Some("unit".into()),
        key_label: label.into(),
        generate_key: true,
        pin_file: Some(token().pin_file.clone()),
    }
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn wraps_and_unwraps_inside_the_token() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dev = Pkcs11Device::new(config("root-a"));
    assert!(matches!(
        dev.open(false),
        Err(BridgeError::Unavailable { .. })
    ));
    let root = dev.open(true).unwrap();
    let blob = root.wrap(b"core/keyring", b"the keyring").unwrap();
    assert_eq!(
        &*root.unwrap(b"core/keyring", &blob).unwrap(),
        b"the keyring"
    );
    assert!(root.unwrap(b"other", &blob).is_err());
    let mut r = [0u8; 16];
    root.random(&mut r).unwrap();
    assert_ne!(r, [0u8; 16]);
    drop(root);
    // Another key cannot open it, and says why.
    let other = Pkcs11Device::new(config("root-b")).open(true).unwrap();
    let e = other.unwrap(b"core/keyring", &blob).unwrap_err();
    assert!(matches!(e, BridgeError::ForeignKeyring(_)), "{e}");
}

#[test]
fn wrong_pin_is_a_clear_error_without_the_pin() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("pin");
    write_private(&bad, "987654\n");
    let mut c = config("root-a");
    c.pin_file = Some(bad);
    let e = Pkcs11Device::new(c).open(true).err().unwrap().to_string();
    assert!(e.contains("CKR_PIN_INCORRECT"), "{e}");
    assert!(!e.contains("987654"), "{e}");
    let mut c = config("root-a");
    c.lib = dir.path().join("nope.so");
    let e = Pkcs11Device::new(c).open(true).err().unwrap().to_string();
    assert!(e.contains("does not exist"), "{e}");
    // And a good open works right after the failures.
    Pkcs11Device::new(config("root-a")).open(true).unwrap();
}

#[test]
fn managed_keys_are_generated_wrapped_and_used_inside_the_token() {
    use hsm_bridge::KeySpec;
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Pkcs11Device::new(config("root-keys")).open(true).unwrap();
    assert!(root.capabilities().in_boundary_keys);
    for spec in [KeySpec::Rsa(2048), KeySpec::EcP256, KeySpec::EcP384] {
        let k = root.generate_key(spec).unwrap();
        assert!(k.public.as_ref().is_some_and(|p| p[0] == 0x30), "{spec:?}");
        let (mech, data): (&str, &[u8]) = match spec {
            KeySpec::Rsa(_) => ("rsa-pkcs1-sha256", b"hello"),
            _ => ("ecdsa", &[7u8; 32]),
        };
        let sig = root.sign(&k, mech, data).unwrap();
        assert!(!sig.is_empty(), "{spec:?}");
        // Cached: a second use reuses the unwrapped object.
        root.sign(&k, mech, data).unwrap();
        root.forget_key(&k);
        root.sign(&k, mech, data).unwrap();
    }
    let aes = root.generate_key(KeySpec::Aes256).unwrap();
    let ct = root.encrypt(&aes, "aes-256-gcm", b"secret").unwrap();
    assert_eq!(&*root.decrypt(&aes, "aes-256-gcm", &ct).unwrap(), b"secret");
    let mut bad = ct.clone();
    bad[14] ^= 1;
    assert!(root.decrypt(&aes, "aes-256-gcm", &bad).is_err());
}
