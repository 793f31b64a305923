//! Transit's front door without HTTP: which path and verb reach which operation, the
//! answers' shapes, and the order of Vault's checks (ACL, then the request's fields).

use std::collections::HashMap;
use std::sync::Arc;

use engine::ops::transit::{Answered, ItemAnswer};
use engine::policy::Operation::{self, Delete, List, Patch, Read, Update};
use engine::storage::{MemoryBackend, Storage};
use engine::transit::{Encrypted, Signed, TransitError};
use engine::Core;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::results::{single_or_batch, Failures};
use super::{endpoint, Endpoint::*};
use crate::request::VaultRequest;

#[test]
fn each_path_and_verb_reaches_its_endpoint() {
    let cases: &[(&str, Operation, super::Endpoint)] = &[
        ("keys", List, KeyList),
        ("keys/", List, KeyList),
        ("keys/k", Read, KeyRead("k")),
        ("keys/k", Update, KeyCreate("k")),
        ("keys/k", Delete, KeyDelete("k")),
        ("keys/k/config", Update, KeyConfig("k")),
        ("keys/k/rotate", Update, KeyRotate("k")),
        ("keys/k/trim", Update, KeyTrim("k")),
        ("keys/k/import", Update, KeyImport("k")),
        ("keys/k/import_version", Update, KeyImportVersion("k")),
        ("wrapping_key", Read, WrappingKey),
        ("backup/k", Read, Backup("k")),
        ("restore", Update, Restore("")),
        ("restore/k", Update, Restore("k")),
        ("restore/a/b", Update, Restore("a/b")),
        ("encrypt/k", Update, Encrypt("k")),
        ("decrypt/k", Update, Decrypt("k")),
        ("rewrap/k", Update, Rewrap("k")),
        (
            "datakey/wrapped/k",
            Update,
            Datakey {
                kind: "wrapped",
                name: "k",
            },
        ),
        (
            "sign/k",
            Update,
            Sign {
                name: "k",
                algorithm: None,
            },
        ),
        (
            "verify/k/sha2-512",
            Update,
            Verify {
                name: "k",
                algorithm: Some("sha2-512"),
            },
        ),
        (
            "hmac/k/sha2-384",
            Update,
            Hmac {
                name: "k",
                algorithm: Some("sha2-384"),
            },
        ),
        (
            "random",
            Update,
            Random {
                first: None,
                second: None,
            },
        ),
        (
            "random/seal/16",
            Update,
            Random {
                first: Some("seal"),
                second: Some("16"),
            },
        ),
        (
            "hash/sha2-512",
            Update,
            Hash {
                algorithm: Some("sha2-512"),
            },
        ),
        (
            "export/encryption-key/k",
            Read,
            Export {
                kind: "encryption-key",
                name: "k",
                version: None,
            },
        ),
        (
            "export/signing-key/k/latest",
            Read,
            Export {
                kind: "signing-key",
                name: "k",
                version: Some("latest"),
            },
        ),
    ];
    for (path, verb, expected) in cases {
        assert_eq!(endpoint(path, *verb), *expected, "{verb:?} {path}");
    }
}

#[test]
fn a_known_path_refuses_other_verbs_and_unknown_paths_have_no_route() {
    for (path, verb) in [
        ("keys", Read),
        ("keys/k", List),
        ("keys/k", Patch),
        ("keys/k/rotate", Read),
        ("encrypt/k", Read),
        ("decrypt/k", Delete),
        ("random", Read),
        ("hash", List),
        ("export/encryption-key/k", Update),
        ("backup/k", Update),
        ("restore/k", Read),
        ("wrapping_key", Update),
        ("keys/k/import", Read),
    ] {
        assert_eq!(
            endpoint(path, verb),
            UnsupportedOperation,
            "{verb:?} {path}"
        );
    }
    for path in [
        "",
        "nope",
        "keys/k/nope",
        "encrypt",
        "encrypt/k/extra",
        "sign/k/sha2-256/extra",
        "random/a/b/c",
        "export/encryption-key",
        "export/encryption-key/k/1/extra",
    ] {
        assert_eq!(endpoint(path, Update), NoRoute, "{path}");
    }
}

fn request(op: Operation, path: &str, token: &str, body: Value) -> VaultRequest {
    let body = match body {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    VaultRequest {
        op,
        path: path.into(),
        query: HashMap::new(),
        body,
        token: token.into(),
        remote_address: None,
        wrap_ttl: None,
        peer_chain: None,
    }
}

fn item<T>(result: Result<T, TransitError>, reference: &str) -> ItemAnswer<T> {
    ItemAnswer {
        result,
        reference: reference.into(),
    }
}

fn encrypted(v: u32) -> Encrypted {
    Encrypted {
        ciphertext: format!("vault:v{v}:abc"),
        key_version: v,
    }
}

#[test]
fn one_item_answers_its_own_fields_with_warnings() {
    let req = request(Update, "transit/encrypt/k", "", json!({}));
    let warnings = vec!["w".to_string()];
    let reply = single_or_batch(
        &req,
        Answered::One(encrypted(2)),
        Failures::SetStatus,
        warnings,
    )
    .expect("answer");
    assert_eq!(reply.status.as_u16(), 200);
    let body = reply.body.expect("body");
    assert_eq!(
        body["data"],
        json!({"ciphertext": "vault:v2:abc", "key_version": 2})
    );
    assert_eq!(body["warnings"], json!(["w"]));
}

#[test]
fn a_batch_reports_each_item_and_its_status_depends_on_the_operation() {
    let req = request(Update, "transit/decrypt/k", "", json!({}));
    let batch = || {
        Answered::Batch(vec![
            item(Ok(Zeroizing::new("aGk=".to_string())), "a"),
            item(Err(TransitError::DecryptFailed), "b"),
        ])
    };
    let reply = single_or_batch(&req, batch(), Failures::SetStatus, vec![]).expect("answer");
    assert_eq!(reply.status.as_u16(), 400);
    let body = reply.body.expect("body");
    assert_eq!(
        body["data"]["batch_results"],
        json!([
            {"plaintext": "aGk=", "reference": "a"},
            {"plaintext": "", "error": "Unable to decrypt the secret", "reference": "b"},
        ])
    );
    let reply = single_or_batch(&req, batch(), Failures::InEntries, vec![]).expect("answer");
    assert_eq!(reply.status.as_u16(), 200);

    // Some items succeeded: the caller may choose the status.
    let req = request(
        Update,
        "transit/decrypt/k",
        "",
        json!({"partial_failure_response_code": 207}),
    );
    let reply = single_or_batch(&req, batch(), Failures::SetStatus, vec![]).expect("answer");
    assert_eq!(reply.status.as_u16(), 207);
}

#[test]
fn failed_entries_keep_the_fields_vault_does_not_omit() {
    let req = request(Update, "transit/sign/k", "", json!({}));
    let signed = Signed {
        signature: "vault:v1:sig".into(),
        key_version: 1,
        public_key: Some(vec![1, 2]),
    };
    let answered = Answered::Batch(vec![
        item(Ok(signed), "a"),
        item(Err(TransitError::invalid("bad input")), "b"),
    ]);
    let reply = single_or_batch(&req, answered, Failures::InEntries, vec![]).expect("answer");
    assert_eq!(
        reply.body.expect("body")["data"]["batch_results"],
        json!([
            {"signature": "vault:v1:sig", "key_version": 1, "publickey": "AQI=", "reference": "a"},
            {"key_version": 0, "error": "bad input", "reference": "b"},
        ])
    );
    let answered = Answered::Batch(vec![
        item(Ok(encrypted(1)), ""),
        item(Err(TransitError::invalid("bad")), "x"),
    ]);
    let reply = single_or_batch(&req, answered, Failures::InEntries, vec![]).expect("answer");
    assert_eq!(
        reply.body.expect("body")["data"]["batch_results"],
        json!([
            {"ciphertext": "vault:v1:abc", "key_version": 1, "reference": ""},
            {"error": "bad", "reference": "x"},
        ])
    );
}

/// A dev appliance (transit at `transit/`) and its root token.
struct Appliance(Arc<Core>, String);

async fn appliance() -> Appliance {
    let core = Core::new(Storage::new(Arc::new(MemoryBackend::new())));
    let root = core.dev_setup(None).await.expect("dev setup").root_token;
    let policies = [
        (
            "create",
            r#"path "transit/encrypt/*" { capabilities = ["create"] }"#,
        ),
        (
            "update",
            r#"path "transit/*" { capabilities = ["update"] }"#,
        ),
        ("read", r#"path "transit/*" { capabilities = ["read"] }"#),
    ];
    let appliance = Appliance(core, root.to_string());
    for (name, hcl) in policies {
        let path = format!("sys/policies/acl/{name}");
        let written = appliance
            .call(Update, &path, &appliance.1, json!({ "policy": hcl }))
            .await;
        assert_eq!(written.0, 204, "{}", written.1);
    }
    appliance
}

impl Appliance {
    async fn token(&self, policy: &str) -> String {
        let asked = json!({"policies": [policy], "no_default_policy": true});
        let (status, body) = self.call(Update, "auth/token/create", &self.1, asked).await;
        assert_eq!(status, 200, "{body}");
        body["auth"]["client_token"]
            .as_str()
            .expect("a token")
            .to_string()
    }

    /// The status and body of a request.
    async fn call(&self, op: Operation, path: &str, token: &str, body: Value) -> (u16, Value) {
        let req = request(op, path, token, body);
        match crate::vault::handle(&self.0, req).await {
            Ok(reply) => (reply.status.as_u16(), reply.body.unwrap_or(Value::Null)),
            Err(e) => (e.status.as_u16(), e.body_json()),
        }
    }
}

#[tokio::test]
async fn the_acl_is_checked_before_the_fields_and_the_verb() {
    let a = appliance().await;
    let reader = a.token("read").await;
    let bad = json!({"batch_input": 3});
    let (status, _) = a
        .call(Update, "transit/decrypt/k", &reader, bad.clone())
        .await;
    assert_eq!(status, 403);
    let (status, body) = a.call(Update, "transit/decrypt/k", &a.1, bad).await;
    assert_eq!(status, 400);
    assert!(body["errors"][0]
        .as_str()
        .is_some_and(|e| e.starts_with("failed to parse batch input")));

    // An operation the path does not take: 403 without the capability, 405 with it.
    let (status, _) = a
        .call(Delete, "transit/encrypt/k", &reader, json!({}))
        .await;
    assert_eq!(status, 403);
    let (status, _) = a.call(Delete, "transit/encrypt/k", &a.1, json!({})).await;
    assert_eq!(status, 405);
    let (status, body) = a.call(Update, "transit/nope", &a.1, json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["errors"][0],
        "no handler for route \"transit/nope\". route entry not found."
    );
}

#[tokio::test]
async fn encrypt_needs_create_for_a_new_key_and_update_for_an_existing_one() {
    let a = appliance().await;
    let creator = a.token("create").await;
    let updater = a.token("update").await;
    let one = json!({"plaintext": "aGVsbG8="});
    let (status, _) = a
        .call(Update, "transit/encrypt/k", &updater, one.clone())
        .await;
    assert_eq!(status, 403, "no create capability for a new key");
    let (status, body) = a
        .call(Update, "transit/encrypt/k", &creator, one.clone())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["key_version"], 1);
    assert!(body.get("warnings").is_none_or(Value::is_null));
    let (status, _) = a
        .call(Update, "transit/encrypt/k", &creator, one.clone())
        .await;
    assert_eq!(status, 403, "no update capability for an existing key");
    let (status, body) = a.call(Update, "transit/encrypt/k", &updater, one).await;
    assert_eq!(status, 200, "{body}");

    // A batch answers per item; one without plaintext is the caller's mistake.
    let batch = json!({"batch_input": [{"plaintext": "aGk=", "reference": "r"}, {}]});
    let (status, body) = a.call(Update, "transit/encrypt/k", &updater, batch).await;
    assert_eq!(status, 400);
    let results = &body["data"]["batch_results"];
    assert_eq!(results[0]["reference"], "r");
    assert_eq!(results[1]["error"], "missing plaintext to encrypt");
}
