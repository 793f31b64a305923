//! Durability and secrecy at rest: write secrets, `kill -9`, restart, unseal; everything
//! acknowledged is there, and no file of the data dir holds a secret value, the root key,
//! a barrier key, an unseal key or the root token in the clear.

use std::time::{SystemTime, UNIX_EPOCH};

use engine::storage::{Backend, RedbBackend};
use hsm_bridge::{RootOfTrust, ShamirRoot, UnsealShare};
use softhsm_tests::{decode_key, encodings, files_below, files_containing, reference_mode, Daemon};

/// A value no file could contain by chance.
fn marker(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}-{nanos:x}-{}", std::process::id())
}

#[test]
fn acknowledged_writes_survive_kill9_and_nothing_secret_is_stored_in_the_clear() {
    let mut d = Daemon::config(true);
    let init = d.init(5, 3);
    d.unseal();
    d.ensure_secret_kv2();
    let ca_before = std::fs::read(d.cacert().unwrap()).unwrap();

    // Several secrets, versions, a policy and a token; each acknowledged (bao exited 0)
    // before the SIGKILL.
    let mut written: Vec<(String, String, String)> = Vec::new(); // (path, field, value)
    for i in 0..5 {
        let value = marker(&format!("s3cr3t{i}"));
        let path = format!("restart/item{i}");
        d.bao(&[
            "kv",
            "put",
            "-mount=secret",
            &path,
            &format!("value={value}"),
        ])
        .ok();
        written.push((path, "value".into(), value));
    }
    // Versions: v1 and v2 of one key both stay readable.
    let old = marker("old-version");
    let new = marker("new-version");
    d.bao(&[
        "kv",
        "put",
        "-mount=secret",
        "restart/versions",
        &format!("v={old}"),
    ])
    .ok();
    d.bao(&[
        "kv",
        "put",
        "-mount=secret",
        "restart/versions",
        &format!("v={new}"),
    ])
    .ok();
    // A value big enough to span pages.
    let big = marker("big").repeat(2000);
    let big_file = d.dir().join("big.txt");
    std::fs::write(&big_file, &big).unwrap();
    d.bao(&[
        "kv",
        "put",
        "-mount=secret",
        "restart/big",
        &format!("blob=@{}", big_file.display()),
    ])
    .ok();
    std::fs::remove_file(&big_file).unwrap();
    let policy_file = d.dir().join("p.hcl");
    std::fs::write(
        &policy_file,
        "path \"secret/data/restart/*\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    d.bao(&[
        "policy",
        "write",
        "restart-read",
        policy_file.to_str().unwrap(),
    ])
    .ok();
    let user = d
        .bao(&[
            "token",
            "create",
            "-format=json",
            "-policy=restart-read",
            "-ttl=1h",
        ])
        .ok()
        .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    // The last write goes straight before the kill.
    let last = marker("last-write");
    d.bao(&[
        "kv",
        "put",
        "-mount=secret",
        "restart/last",
        &format!("v={last}"),
    ])
    .ok();

    d.kill9();
    d.start();

    // It comes back sealed, and unseals with the same keys.
    let st = d.seal_status();
    assert_eq!(st["initialized"], true, "{st}");
    assert_eq!(
        st["sealed"], true,
        "a Shamir-sealed appliance restarts sealed: {st}"
    );
    d.unseal();

    // TLS: the same generated CA is reused, so clients keep trusting it.
    assert_eq!(
        std::fs::read(d.cacert().unwrap()).unwrap(),
        ca_before,
        "the generated CA changed across a restart"
    );

    for (path, field, value) in &written {
        let out = d
            .bao(&[
                "kv",
                "get",
                &format!("-field={field}"),
                "-mount=secret",
                path,
            ])
            .ok();
        assert_eq!(&out.stdout.trim(), value, "{out}");
    }
    let v1 = d
        .bao(&[
            "kv",
            "get",
            "-field=v",
            "-version=1",
            "-mount=secret",
            "restart/versions",
        ])
        .ok();
    assert_eq!(v1.stdout.trim(), old);
    let v2 = d
        .bao(&[
            "kv",
            "get",
            "-format=json",
            "-mount=secret",
            "restart/versions",
        ])
        .ok();
    assert_eq!(v2.json()["data"]["data"]["v"], new.as_str(), "{v2}");
    assert_eq!(v2.json()["data"]["metadata"]["version"], 2, "{v2}");
    let got_big = d
        .bao(&["kv", "get", "-field=blob", "-mount=secret", "restart/big"])
        .ok();
    assert_eq!(got_big.stdout.trim().len(), big.len());
    assert!(
        got_big.stdout.trim() == big,
        "the big value came back different"
    );
    let got_last = d
        .bao(&["kv", "get", "-field=v", "-mount=secret", "restart/last"])
        .ok();
    assert_eq!(
        got_last.stdout.trim(),
        last,
        "the write just before kill -9 is there"
    );

    // The policy and the token survived; the token is still limited by the policy.
    let read = d
        .bao_as(
            Some(&user),
            &["read", "-format=json", "secret/data/restart/item0"],
        )
        .ok();
    assert_eq!(
        read.json()["data"]["data"]["value"],
        written[0].2.as_str(),
        "{read}"
    );
    let denied = d.http(
        "POST",
        "/v1/secret/data/restart/item0",
        Some(&user),
        softhsm_tests::Body::Json(r#"{"data":{"value":"x"}}"#),
    );
    denied.assert_error(403, "permission denied");

    // Rotate the keyring, write again, so two barrier terms exist on disk.
    let rot = d.http(
        "PUT",
        "/v1/sys/rotate",
        d.token.as_deref(),
        softhsm_tests::Body::None,
    );
    assert!(rot.status == 200 || rot.status == 204, "{rot}");
    let after_rotate = marker("after-rotate");
    d.bao(&[
        "kv",
        "put",
        "-mount=secret",
        "restart/rotated",
        &format!("v={after_rotate}"),
    ])
    .ok();
    let ks = d.get("/v1/sys/key-status");
    assert_eq!(ks.status, 200, "{ks}");
    assert_eq!(ks.json()["term"], 2, "{ks}");

    // One more kill -9: the post-rotation write is there too, and old values still read.
    d.kill9();
    d.start();
    d.unseal();
    let r = d
        .bao(&["kv", "get", "-field=v", "-mount=secret", "restart/rotated"])
        .ok();
    assert_eq!(r.stdout.trim(), after_rotate);
    let r = d
        .bao(&[
            "kv",
            "get",
            "-field=value",
            "-mount=secret",
            "restart/item0",
        ])
        .ok();
    assert_eq!(r.stdout.trim(), written[0].2);
    d.kill9();

    // ---- Nothing secret at rest ---------------------------------------------------------
    let data_dir = d.data_dir();
    let files = files_below(&data_dir);
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "redb"))
            || reference_mode(),
        "no storage file in {}: {files:?}",
        data_dir.display()
    );

    let mut needles = Vec::new();
    for (path, _, value) in &written {
        needles.push((format!("the value of {path}"), value.clone().into_bytes()));
    }
    for (name, v) in [
        ("old version", &old),
        ("new version", &new),
        ("last write", &last),
        ("post-rotation write", &after_rotate),
    ] {
        needles.push((name.to_string(), v.clone().into_bytes()));
    }
    needles.push(("the big value".into(), big.as_bytes()[..64].to_vec()));
    needles.push((
        "the root token".into(),
        init.root_token.clone().into_bytes(),
    ));
    needles.push(("a user token".into(), user.clone().into_bytes()));
    for (i, k) in init.keys_b64.iter().enumerate() {
        needles.extend(encodings(&format!("unseal key {}", i + 1), &decode_key(k)));
    }

    // The root key, reconstructed from the unseal keys as an operator would.
    let shares: Vec<UnsealShare> = init.keys_b64[..init.threshold]
        .iter()
        .map(|k| UnsealShare::from_bytes(decode_key(k)).expect("a well-formed share"))
        .collect();
    let root = ShamirRoot::combine(&shares, init.threshold as u8).expect("the shares combine");
    needles.extend(encodings("the root key", root.key_bytes()));

    if !reference_mode() {
        // Open the storage file as the daemon left it, unwrap the keyring with the root key
        // (this proves the reconstructed root key is the real one), and look for every
        // barrier key too.
        let backend = RedbBackend::open(&d.storage_path()).expect("open the redb file");
        let blob = backend
            .get(engine::barrier::KEYRING_PATH)
            .expect("read the keyring")
            .expect("a stored keyring");
        let plain = root
            .unwrap(engine::barrier::KEYRING_PATH.as_bytes(), &blob)
            .expect("the root key from the unseal keys opens the stored keyring");
        let keyring = engine::barrier::Keyring::decode(&plain).expect("a keyring");
        let keys = keyring.key_bytes();
        assert_eq!(keys.len(), 2, "two barrier terms after one rotation");
        for (i, k) in keys.iter().enumerate() {
            needles.extend(encodings(&format!("barrier key {}", i + 1), k));
        }
        drop(backend);
    }

    let hits = files_containing(&data_dir, &needles);
    assert!(
        hits.is_empty(),
        "secrets found in the clear at rest:\n{}",
        hits.join("\n")
    );

    // The search itself works: bytes taken from a stored file are found.
    let f = files
        .iter()
        .find(|f| std::fs::metadata(f).map(|m| m.len() > 64).unwrap_or(false))
        .expect("a non-trivial stored file");
    let bytes = std::fs::read(f).unwrap();
    let probe = vec![("probe".to_string(), bytes[32..64].to_vec())];
    assert!(!files_containing(&data_dir, &probe).is_empty());
}

#[test]
fn logs_hold_no_secrets_tokens_or_keys() {
    let mut d = Daemon::config(false);
    let init = d.init(3, 2);
    d.unseal();
    d.ensure_secret_kv2();
    let value = marker("log-probe-value");
    d.bao(&[
        "kv",
        "put",
        "-mount=secret",
        "logged",
        &format!("v={value}"),
    ])
    .ok();
    d.bao(&["kv", "get", "-mount=secret", "logged"]).ok();
    // A failing request that carries a secret in its body.
    d.send_json(
        "POST",
        "/v1/secret/data/logged",
        &format!(r#"{{"data":{{"v":"{value}"}},"options":{{"cas":99}}}}"#),
    );
    // A wrong token.
    d.http(
        "GET",
        "/v1/secret/data/logged",
        Some("hvs.wrong-token-xyz"),
        softhsm_tests::Body::None,
    );
    let (token, _) = {
        let out = d.bao(&["token", "create", "-format=json", "-ttl=1h"]).ok();
        let t = out.json()["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string();
        (t, out)
    };
    d.bao(&["token", "revoke", &token]).ok();
    d.kill9();

    let logs = d.logs();
    let mut leaks = Vec::new();
    if logs.contains(&value) {
        leaks.push("a secret value".to_string());
    }
    if logs.contains(&init.root_token) {
        leaks.push("the root token".to_string());
    }
    if logs.contains(&token) {
        leaks.push("a created token".to_string());
    }
    for (i, k) in init.keys_b64.iter().enumerate() {
        for (name, enc) in encodings(&format!("unseal key {}", i + 1), &decode_key(k)) {
            if std::str::from_utf8(&enc).is_ok_and(|s| logs.contains(s)) {
                leaks.push(name);
            }
        }
    }
    for (i, k) in init.keys_hex.iter().enumerate() {
        if logs.contains(k.as_str()) {
            leaks.push(format!("unseal key {} (hex)", i + 1));
        }
    }
    assert!(
        leaks.is_empty(),
        "the daemon's log holds {leaks:?}:\n{logs}"
    );
}

#[test]
fn operator_rotate_adds_a_keyring_term_and_old_values_stay_readable() {
    let d = Daemon::dev(&[]);
    let before = marker("before-rotate");
    d.bao(&["kv", "put", "-mount=secret", "r", &format!("v={before}")])
        .ok();
    let ks = d.bao(&["operator", "key-status", "-format=json"]).ok();
    assert_eq!(ks.json()["term"], 1, "{ks}");
    // OpenBao's CLI sends POST /v1/sys/rotate/keyring; Vault's sends PUT /v1/sys/rotate.
    let out = d.bao(&["operator", "rotate"]).ok();
    assert!(out.stdout.contains("Success! Rotated key"), "{out}");
    let ks = d.bao(&["operator", "key-status", "-format=json"]).ok();
    assert_eq!(ks.json()["term"], 2, "{ks}");
    assert!(ks.json()["install_time"].is_string(), "{ks}");
    let r = d.send_json("PUT", "/v1/sys/rotate", "{}");
    assert!(r.status == 200 || r.status == 204, "{r}");
    assert_eq!(d.get("/v1/sys/key-status").json()["term"], 3);
    let got = d.bao(&["kv", "get", "-field=v", "-mount=secret", "r"]).ok();
    assert_eq!(got.stdout.trim(), before);
}
