//! Transit keys moving in and out, end to end: BYOK import in Vault's format (the test
//! wraps with Python `cryptography`: RSA-OAEP, then AES key wrap with padding, and with
//! the real `bao transit import`), checked by decrypting and verifying with the original
//! keys outside the appliance; backups restored on a second appliance, on OpenBao and
//! back; and hvac reading a rotation's answer. Everything runs against OpenBao as well
//! (`IRONSEAL_REFERENCE=openbao`); where OpenBao answers a refusal 500 (errors its
//! keysutil returns as plain Go errors) the appliance answers 400, which the tests say.
//!
//! With a PKCS#11 seal the wrapping key is made in the token and imports are unwrapped
//! there: the same imports run on a Kryoptic-sealed appliance (every object they make in
//! the token is gone afterwards), and a SoftHSM2-sealed one refuses them, naming what its
//! token lacks (appliance-only tests).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use softhsm_tests::hardware::{SoftHsm, ROOT_KEY_LABEL, SOFTHSM_MODULE};
use softhsm_tests::kryoptic::{self, Kryoptic};
use softhsm_tests::tools::{python, run_ok};
use softhsm_tests::{bao_bin, free_port, poll_until, reference_mode, Daemon, HttpResponse, Output};

/// What the tests ask of Python: make keys and wrap them as a Vault client does, decrypt
/// and verify with the original keys, drive hvac. One JSON argument file, JSON out.
const HELPER: &str = r#"
import base64, json, os, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

H = {"SHA1": hashes.SHA1, "SHA224": hashes.SHA224, "SHA256": hashes.SHA256,
     "SHA384": hashes.SHA384, "SHA512": hashes.SHA512}

def wrap(wrapping_pem, target, hash_name):
    public = serialization.load_pem_public_key(wrapping_pem.encode())
    ephemeral = os.urandom(32)
    h = H[hash_name]
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=h()), algorithm=h(), label=None)
    wrapped = public.encrypt(ephemeral, oaep) + aes_key_wrap_with_padding(ephemeral, target)
    return base64.b64encode(wrapped).decode()

def pkcs8(key):
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())

def private_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()

def body(vault_string):
    return base64.b64decode(vault_string.split(":", 2)[2])

cmd, arg = sys.argv[1], json.load(open(sys.argv[2]))
if cmd == "make":
    out = {}
    for name in arg["aes"]:
        key = os.urandom(32)
        out[name] = {"key": base64.b64encode(key).decode()}
    for name, make in [("rsa", lambda: rsa.generate_private_key(65537, 2048)),
                       ("ec", lambda: ec.generate_private_key(ec.SECP256R1())),
                       ("ed", ed25519.Ed25519PrivateKey.generate)]:
        key = make()
        out[name] = {"key": base64.b64encode(pkcs8(key)).decode(), "private": private_pem(key)}
    for v in out.values():
        v["ciphertext"] = wrap(arg["wrapping_key"], base64.b64decode(v["key"]), arg["hash"])
    print(json.dumps(out))
elif cmd == "foreign":
    other = rsa.generate_private_key(65537, 4096).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    print(json.dumps(wrap(other, base64.b64decode(arg["key"]), "SHA256")))
elif cmd == "wrap":
    print(json.dumps(wrap(arg["wrapping_key"], base64.b64decode(arg["key"]), arg["hash"])))
elif cmd == "decrypt":
    raw = body(arg["ciphertext"])
    plain = AESGCM(base64.b64decode(arg["key"])).decrypt(raw[:12], raw[12:], None)
    print(json.dumps(base64.b64encode(plain).decode()))
elif cmd == "verify":
    key = serialization.load_pem_private_key(arg["private"].encode(), None).public_key()
    data, sig = base64.b64decode(arg["input"]), body(arg["signature"])
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
    else:
        key.verify(sig, data)
    print(json.dumps(True))
elif cmd == "hvac":
    import hvac
    client = hvac.Client(url=arg["url"], token=arg["token"])
    created = client.secrets.transit.create_key(name=arg["name"], exportable=True)
    rotated = client.secrets.transit.rotate_key(name=arg["name"])
    print(json.dumps({"created": created["data"]["latest_version"],
                      "rotated": rotated["data"]["latest_version"]}))
"#;

fn helper(d: &Daemon, cmd: &str, arg: &Value) -> Value {
    let script = d.dir().join("byok_helper.py");
    let input = d.dir().join(format!("byok_{cmd}.json"));
    std::fs::write(&script, HELPER).unwrap();
    std::fs::write(&input, arg.to_string()).unwrap();
    let out = run_ok(Command::new(python()).arg(&script).arg(cmd).arg(&input));
    serde_json::from_str(&out).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[track_caller]
fn data(r: &HttpResponse) -> Value {
    assert_eq!(r.status, 200, "{r}");
    r.json()["data"].clone()
}

#[track_caller]
fn no_content(r: &HttpResponse) {
    assert_eq!(r.status, 204, "{r}");
}

/// A refusal with `words`: 400 here; OpenBao answers `openbao_status`.
#[track_caller]
fn refused(r: &HttpResponse, openbao_status: u16, words: &str) {
    let status = if reference_mode() {
        openbao_status
    } else {
        400
    };
    r.assert_error(status, words);
}

fn wrapping_key(d: &Daemon) -> String {
    let r = d.get("/v1/transit/wrapping_key");
    data(&r)["public_key"].as_str().unwrap().to_string()
}

fn encrypt(d: &Daemon, key: &str, plaintext: &[u8]) -> String {
    let r = d.post_json(
        &format!("/v1/transit/encrypt/{key}"),
        &json!({ "plaintext": b64(plaintext) }),
    );
    data(&r)["ciphertext"].as_str().unwrap().to_string()
}

fn decrypt(d: &Daemon, key: &str, ciphertext: &str) -> Vec<u8> {
    let r = d.post_json(
        &format!("/v1/transit/decrypt/{key}"),
        &json!({ "ciphertext": ciphertext }),
    );
    STANDARD
        .decode(data(&r)["plaintext"].as_str().unwrap())
        .unwrap()
}

#[test]
fn byok_imports_encrypt_and_sign_for_the_original_keys() {
    let d = Daemon::dev(&[]);
    d.ensure_transit();
    imports_round_trip(&d);
    tampered_imports_are_refused(&d);
}

/// Imports of every kind, checked with the original keys outside the appliance, and
/// Vault's refusals.
fn imports_round_trip(d: &Daemon) {
    let pem = wrapping_key(d);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    assert_eq!(wrapping_key(d), pem, "the wrapping key is made once");
    let keys = helper(
        d,
        "make",
        &json!({ "wrapping_key": pem, "hash": "SHA256", "aes": ["aes", "aes2"] }),
    );

    // AES-256: the appliance encrypts, the owner of the original key decrypts.
    let r = d.post_json(
        "/v1/transit/keys/byok-aes/import",
        &json!({ "ciphertext": keys["aes"]["ciphertext"], "type": "aes256-gcm96" }),
    );
    no_content(&r);
    let key = data(&d.get("/v1/transit/keys/byok-aes"));
    assert_eq!(key["imported_key"], true, "{key}");
    assert_eq!(key["imported_key_allow_rotation"], false, "{key}");
    let ct = encrypt(d, "byok-aes", b"for the key's owner");
    assert!(ct.starts_with("vault:v1:"), "{ct}");
    let plain = helper(
        d,
        "decrypt",
        &json!({ "key": keys["aes"]["key"], "ciphertext": ct }),
    );
    assert_eq!(plain, json!(b64(b"for the key's owner")));

    // RSA, ECDSA and Ed25519 from PKCS#8: signatures verify under the original keys.
    let input = b64(b"signed by an imported key");
    for (name, kind, body) in [
        (
            "rsa",
            "rsa-2048",
            json!({ "input": input, "signature_algorithm": "pkcs1v15" }),
        ),
        ("ec", "ecdsa-p256", json!({ "input": input })),
        ("ed", "ed25519", json!({ "input": input })),
    ] {
        let path = format!("/v1/transit/keys/byok-{name}/import");
        let r = d.post_json(
            &path,
            &json!({ "ciphertext": keys[name]["ciphertext"], "type": kind }),
        );
        no_content(&r);
        let r = d.post_json(&format!("/v1/transit/sign/byok-{name}/sha2-256"), &body);
        let signature = data(&r)["signature"].clone();
        let ok = helper(
            d,
            "verify",
            &json!({ "private": keys[name]["private"], "input": input, "signature": signature }),
        );
        assert_eq!(ok, json!(true), "{name}");
    }

    // The target key wrapped for OAEP with SHA-1, as `hash_function` says.
    let sha1 = helper(
        d,
        "wrap",
        &json!({ "wrapping_key": pem, "key": keys["aes2"]["key"], "hash": "SHA1" }),
    );
    let r = d.post_json(
        "/v1/transit/keys/byok-sha1/import",
        &json!({ "ciphertext": sha1, "hash_function": "SHA1" }),
    );
    no_content(&r);
    let ct = encrypt(d, "byok-sha1", b"sha1");
    let plain = helper(
        d,
        "decrypt",
        &json!({ "key": keys["aes2"]["key"], "ciphertext": ct }),
    );
    assert_eq!(plain, json!(b64(b"sha1")));

    // import_version: the next version is the owner's next key.
    let r = d.post_json(
        "/v1/transit/keys/byok-aes/import_version",
        &json!({ "ciphertext": sha1, "hash_function": "SHA1" }),
    );
    no_content(&r);
    let ct = encrypt(d, "byok-aes", b"second version");
    assert!(ct.starts_with("vault:v2:"), "{ct}");
    let plain = helper(
        d,
        "decrypt",
        &json!({ "key": keys["aes2"]["key"], "ciphertext": ct }),
    );
    assert_eq!(plain, json!(b64(b"second version")));
    let r = d.post_json(
        "/v1/transit/keys/byok-aes/import_version",
        &json!({ "ciphertext": sha1, "hash_function": "SHA1", "version": 1 }),
    );
    refused(
        &r,
        500,
        "provided type does not support importing key versions",
    );

    // Refusals, in Vault's words.
    let again = json!({ "ciphertext": keys["aes"]["ciphertext"] });
    let r = d.post_json("/v1/transit/keys/byok-aes/import", &again);
    refused(
        &r,
        500,
        "the import path cannot be used with an existing key",
    );
    let r = d.post_json("/v1/transit/keys/byok-aes/rotate", &json!({}));
    refused(&r, 500, "imported key byok-aes does not allow rotation");
    let r = d.post_json(
        "/v1/transit/keys/wrong-type/import",
        &json!({ "ciphertext": keys["ec"]["ciphertext"], "type": "rsa-2048" }),
    );
    refused(&r, 500, "invalid key type");
    let r = d.post_json(
        "/v1/transit/keys/short/import",
        &json!({ "ciphertext": b64(&[1u8; 100]) }),
    );
    refused(&r, 500, "provided ciphertext is too short");
    let r = d.post_json(
        "/v1/transit/keys/rotating/import",
        &json!({ "ciphertext": keys["aes"]["ciphertext"], "auto_rotate_period": "1h" }),
    );
    refused(
        &r,
        500,
        "allow_rotation must be set to true if auto-rotation is enabled",
    );
    d.post_json("/v1/transit/keys/made-here", &json!({}));
    let r = d.post_json("/v1/transit/keys/made-here/import_version", &again);
    refused(
        &r,
        500,
        "the import_version endpoint can only be used with an imported key",
    );

    // Rotation allowed: the rotated key is no longer only the owner's material.
    let r = d.post_json(
        "/v1/transit/keys/byok-rotating/import",
        &json!({ "ciphertext": keys["aes"]["ciphertext"], "allow_rotation": true }),
    );
    no_content(&r);
    let rotated = data(&d.post_json("/v1/transit/keys/byok-rotating/rotate", &json!({})));
    assert_eq!(rotated["latest_version"], 2, "{rotated}");
    assert_eq!(rotated["imported_key"], false, "{rotated}");

    if !reference_mode() {
        // OpenBao takes a public key alone; every key here holds its private half.
        let r = d.post_json(
            "/v1/transit/keys/public-only/import",
            &json!({ "public_key": "-----BEGIN PUBLIC KEY-----\n", "type": "ed25519" }),
        );
        r.assert_error(400, "importing a public key alone is not supported");
    }
}

/// A ciphertext altered in either part, or made for another wrapping key or hash, is
/// refused in OpenBao's words and makes no key.
fn tampered_imports_are_refused(d: &Daemon) {
    let pem = wrapping_key(d);
    let key = b64(&[9u8; 32]);
    let wrapped = helper(
        d,
        "wrap",
        &json!({ "wrapping_key": pem, "key": key, "hash": "SHA256" }),
    );
    let good = STANDARD.decode(wrapped.as_str().unwrap()).unwrap();
    let flipped = |at: usize| {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        b64(&bad)
    };
    let foreign = helper(d, "foreign", &json!({ "key": key }));
    for (ciphertext, hash, words) in [
        (flipped(100), "SHA256", "decryption error"),
        (
            flipped(good.len() - 3),
            "SHA256",
            "kwp: unwrap failed integrity check",
        ),
        (
            wrapped.as_str().unwrap().to_string(),
            "SHA1",
            "decryption error",
        ),
        (
            foreign.as_str().unwrap().to_string(),
            "SHA256",
            "decryption error",
        ),
    ] {
        let r = d.post_json(
            "/v1/transit/keys/tampered/import",
            &json!({ "ciphertext": ciphertext, "hash_function": hash }),
        );
        refused(&r, 500, words);
        let r = d.get("/v1/transit/keys/tampered");
        assert_eq!(r.status, 404, "no key after a refused import: {r}");
    }
}

#[test]
fn the_bao_cli_imports_with_its_own_wrapping() {
    let d = Daemon::dev(&[]);
    d.ensure_transit();
    let key = [5u8; 32];
    let file = d.dir().join("key.b64");
    std::fs::write(&file, b64(&key)).unwrap();
    let at = format!("@{}", file.display());
    d.bao(&[
        "transit",
        "import",
        "transit/keys/cli",
        &at,
        "type=aes256-gcm96",
    ])
    .ok();
    let ct = encrypt(&d, "cli", b"wrapped by bao");
    let plain = helper(
        &d,
        "decrypt",
        &json!({ "key": b64(&key), "ciphertext": ct }),
    );
    assert_eq!(plain, json!(b64(b"wrapped by bao")));
}

/// An OpenBao dev server beside the appliances under test, for backups that travel
/// between them.
struct OpenBao {
    child: Child,
    addr: String,
    home: PathBuf,
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

impl OpenBao {
    fn start(d: &Daemon) -> OpenBao {
        let addr = format!("127.0.0.1:{}", free_port());
        let home = d.dir().join("openbao-home");
        std::fs::create_dir_all(&home).unwrap();
        let child = Command::new(bao_bin())
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=root",
                "-dev-no-store-token",
                &format!("-dev-listen-address={addr}"),
            ])
            .env("HOME", &home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let bao = OpenBao {
            child,
            addr: format!("http://{addr}"),
            home,
        };
        poll_until(Duration::from_secs(60), "OpenBao to serve", || {
            bao.bao(&["secrets", "enable", "transit"])
                .success()
                .then_some(())
        });
        bao
    }

    fn bao(&self, args: &[&str]) -> Output {
        let out = Command::new(bao_bin())
            .args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", "root")
            .output()
            .unwrap();
        Output {
            cmd: format!("bao {}", args.join(" ")),
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn backup(d: &Daemon, name: &str) -> String {
    let r = d.get(&format!("/v1/transit/backup/{name}"));
    data(&r)["backup"].as_str().unwrap().to_string()
}

#[test]
fn backups_restore_on_a_second_appliance_on_openbao_and_back() {
    let (a, b) = (Daemon::dev(&[]), Daemon::dev(&[]));
    for d in [&a, &b] {
        d.ensure_transit();
    }
    let spec = json!({ "exportable": true, "allow_plaintext_backup": true });
    data(&a.post_json("/v1/transit/keys/shared", &spec));
    let v1 = encrypt(&a, "shared", b"first");
    data(&a.post_json("/v1/transit/keys/shared/rotate", &json!({})));
    let v2 = encrypt(&a, "shared", b"second");

    // a -> b: both versions decrypt there.
    let r = b.post_json(
        "/v1/transit/restore",
        &json!({ "backup": backup(&a, "shared") }),
    );
    no_content(&r);
    assert_eq!(decrypt(&b, "shared", &v1), b"first");
    assert_eq!(decrypt(&b, "shared", &v2), b"second");
    let key = data(&b.get("/v1/transit/keys/shared"));
    assert_eq!(key["latest_version"], 2, "{key}");
    assert_eq!(key["allow_plaintext_backup"], true, "{key}");

    // b -> OpenBao -> a, under another name.
    let openbao = OpenBao::start(&a);
    let from_b = format!("backup={}", backup(&b, "shared"));
    openbao.bao(&["write", "transit/restore", &from_b]).ok();
    let out = openbao
        .bao(&[
            "write",
            "-field=plaintext",
            "transit/decrypt/shared",
            &format!("ciphertext={v2}"),
        ])
        .ok();
    assert_eq!(out.stdout.trim(), b64(b"second"), "{out}");
    let out = openbao
        .bao(&[
            "write",
            "-field=ciphertext",
            "transit/encrypt/shared",
            &format!("plaintext={}", b64(b"from openbao")),
        ])
        .ok();
    let from_openbao = out.stdout.trim().to_string();
    let out = openbao
        .bao(&["read", "-field=backup", "transit/backup/shared"])
        .ok();
    let r = a.post_json(
        "/v1/transit/restore/back",
        &json!({ "backup": out.stdout.trim() }),
    );
    no_content(&r);
    assert_eq!(decrypt(&a, "back", &from_openbao), b"from openbao");
    assert_eq!(decrypt(&a, "back", &v1), b"first");

    // Restoring over a key takes `force`.
    let again = json!({ "backup": backup(&a, "shared") });
    let r = b.post_json("/v1/transit/restore", &again);
    refused(&r, 500, "already exists");
    let r = b.post_json(
        "/v1/transit/restore",
        &json!({ "backup": again["backup"], "force": true }),
    );
    no_content(&r);

    // No backup of a key that does not allow it.
    data(&a.post_json("/v1/transit/keys/sealed-in", &json!({ "exportable": true })));
    let r = a.get("/v1/transit/backup/sealed-in");
    refused(&r, 500, "plaintext backup is disallowed on the policy");
    data(&a.post_json("/v1/transit/keys/not-exportable", &json!({})));
    let r = a.get("/v1/transit/backup/not-exportable");
    refused(&r, 500, "exporting is disallowed on the policy");
    let r = a.post_json("/v1/transit/restore", &json!({}));
    r.assert_error(400, "'backup' must be supplied");

    if !reference_mode() {
        // OpenBao restores a hand-made backup of a key that never allowed plaintext
        // backups; the appliance does not.
        let json = String::from_utf8(STANDARD.decode(backup(&a, "shared")).unwrap()).unwrap();
        let forged = json.replace(
            "\"allow_plaintext_backup\":true",
            "\"allow_plaintext_backup\":false",
        );
        let r = a.post_json(
            "/v1/transit/restore/forged",
            &json!({ "backup": b64(forged.as_bytes()) }),
        );
        r.assert_error(400, "allow_plaintext_backup");
    }
}

#[test]
fn hvac_reads_the_key_a_create_and_a_rotate_answer() {
    let d = Daemon::dev(&[]);
    d.ensure_transit();
    let answered = helper(
        &d,
        "hvac",
        &json!({ "url": d.addr, "token": d.token, "name": "hvac-key" }),
    );
    assert_eq!(answered, json!({ "created": 1, "rotated": 2 }));
    // A create of an existing key answers the key unchanged, without a warning.
    let r = d.post_json("/v1/transit/keys/hvac-key", &json!({}));
    assert_eq!(data(&r)["latest_version"], 2, "{r}");
    assert_eq!(r.json()["warnings"], Value::Null, "{r}");
}

/// A daemon sealed by a PKCS#11 token (the root key made in it), initialised and unsealed,
/// with transit mounted.
fn pkcs11_daemon(module: &Path, label: &str, pin_file: &Path, env: &[(&str, &str)]) -> Daemon {
    let seal = format!(
        "seal \"pkcs11\" {{\n  lib          = \"{}\"\n  token_label  = \"{label}\"\n  key_label    = \"{ROOT_KEY_LABEL}\"\n  generate_key = \"true\"\n  pin_file     = \"{}\"\n}}\n",
        module.display(),
        pin_file.display()
    );
    let mut d = Daemon::config_with_seal(&seal, env);
    d.init_recovery(1, 1);
    d.wait_unsealed();
    d.ensure_transit();
    d
}

/// The keys the token holds, as pkcs11-tool shows them to another process (sorted: the
/// order is the token's).
fn token_keys(tool: impl Fn(&[&str]) -> std::process::Output) -> Vec<String> {
    let mut lines = Vec::new();
    for kind in ["privkey", "pubkey", "secrkey"] {
        let listing = tool(&["--list-objects", "--type", kind]);
        assert!(listing.status.success(), "{listing:?}");
        lines.extend(
            String::from_utf8_lossy(&listing.stdout)
                .lines()
                .map(str::to_string),
        );
    }
    lines.sort();
    lines
}

#[test]
fn kryoptic_unwraps_imports_inside_the_token() {
    if reference_mode() {
        return;
    }
    let token = Kryoptic::new("transit-byok");
    let conf = token.conf();
    let d = pkcs11_daemon(
        &token.module,
        &token.label,
        &token.pin_file(),
        &[(kryoptic::CONF_ENV, conf.to_str().unwrap())],
    );
    let pem = wrapping_key(&d);
    let logs = d.logs();
    assert!(
        logs.contains("transit BYOK wrapping key made inside the HSM"),
        "{logs}"
    );
    for hash in ["SHA-1", "SHA-256"] {
        assert!(
            logs.lines()
                .any(|l| l.contains("BYOK import: unwrapped inside the HSM")
                    && l.contains(hash)
                    && l.contains("CKM_AES_KEY_WRAP_KWP")),
            "Kryoptic unwraps OAEP {hash} and RFC 5649 in C_UnwrapKey: {logs}"
        );
    }
    let before = token_keys(|a| token.pkcs11_tool(a));

    imports_round_trip(&d);
    tampered_imports_are_refused(&d);
    assert_eq!(wrapping_key(&d), pem);
    let imported = d
        .logs()
        .lines()
        .filter(|l| l.contains("transit key imported") && l.contains("hsm"))
        .count();
    assert!(
        imported >= 5,
        "every import unwrapped in the HSM: {}",
        d.logs()
    );
    // The ephemeral keys, the unwrapped wrapping key and the targets were session objects,
    // destroyed: the token holds what it held before.
    let after = token_keys(|a| token.pkcs11_tool(a));
    assert_eq!(after, before);
}

#[test]
fn softhsm2_refuses_the_imports_its_token_cannot_unwrap() {
    if reference_mode() {
        return;
    }
    let hsm = SoftHsm::new("transit-byok");
    let conf = hsm.conf();
    let d = pkcs11_daemon(
        Path::new(SOFTHSM_MODULE),
        &hsm.label,
        &hsm.pin_file(),
        &[("SOFTHSM2_CONF", conf.to_str().unwrap())],
    );
    let pem = wrapping_key(&d);
    assert!(
        d.logs()
            .contains("transit BYOK wrapping key made inside the HSM"),
        "{}",
        d.logs()
    );
    let before = token_keys(|a| hsm.pkcs11_tool(a));
    let keys = helper(
        &d,
        "make",
        &json!({ "wrapping_key": pem, "hash": "SHA256", "aes": ["aes"] }),
    );
    // SoftHSM2 2.6 does OAEP with SHA-1 only: the default hash is refused, naming the
    // mechanism, and nothing falls back to software.
    let r = d.post_json(
        "/v1/transit/keys/sha256/import",
        &json!({ "ciphertext": keys["aes"]["ciphertext"] }),
    );
    r.assert_error(400, "CKM_RSA_PKCS_OAEP with SHA-256 in C_UnwrapKey");
    r.assert_error(400, "inside its HSM");
    assert_eq!(d.get("/v1/transit/keys/sha256").status, 404);
    // With SHA-1 the token unwraps the AES key but does not say how long it is, so the
    // appliance cannot check it is AES-256 inside the token: refused too.
    let sha1 = helper(
        &d,
        "wrap",
        &json!({ "wrapping_key": pem, "key": keys["aes"]["key"], "hash": "SHA1" }),
    );
    let r = d.post_json(
        "/v1/transit/keys/sha1/import",
        &json!({ "ciphertext": sha1, "hash_function": "SHA1" }),
    );
    r.assert_error(400, "CKM_RSA_PKCS_OAEP with SHA-1 in C_UnwrapKey");
    r.assert_error(400, "CKA_VALUE_LEN");
    assert_eq!(d.get("/v1/transit/keys/sha1").status, 404);
    let after = token_keys(|a| hsm.pkcs11_tool(a));
    assert_eq!(after, before);
}
