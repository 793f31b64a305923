//! Which `sys/` and `auth/token/` path and verb reaches which operation, through the
//! `/v1` door without HTTP: the status each answers and the shape it answers with.

use std::collections::HashMap;
use std::sync::Arc;

use engine::policy::Operation;
use engine::storage::{MemoryBackend, Storage};
use engine::Core;
use serde_json::{json, Map, Value};

use crate::request::VaultRequest;
use crate::vault::handle;

fn core() -> Arc<Core> {
    Core::new(Storage::new(Arc::new(MemoryBackend::new())))
}

async fn unsealed() -> (Arc<Core>, String) {
    let core = core();
    let init = core.dev_setup(None).await.expect("dev setup");
    (core, init.root_token.to_string())
}

/// The status and body `/v1` answers.
async fn call(
    core: &Arc<Core>,
    token: &str,
    op: Operation,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let body = match body {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let req = VaultRequest {
        op,
        path: path.to_string(),
        query: HashMap::new(),
        body,
        token: token.to_string(),
        remote_address: None,
        wrap_ttl: None,
        peer_chain: None,
    };
    match handle(core, req).await {
        Ok(reply) => (reply.status.as_u16(), reply.body.unwrap_or(Value::Null)),
        Err(e) => (e.status.as_u16(), e.body_json()),
    }
}

/// A token with the default policy only.
async fn default_token(core: &Arc<Core>, root: &str) -> String {
    let (status, body) = call(
        core,
        root,
        Operation::Update,
        "auth/token/create",
        json!({"policies": ["default"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["auth"]["client_token"]
        .as_str()
        .expect("client_token")
        .to_string()
}

#[tokio::test]
async fn public_endpoints_answer_while_uninitialised() {
    let core = core();
    let (status, body) = call(&core, "", Operation::Read, "sys/init", Value::Null).await;
    assert_eq!((status, body), (200, json!({"initialized": false})));
    let (status, body) = call(&core, "", Operation::Read, "sys/health", Value::Null).await;
    assert_eq!(status, 501);
    assert_eq!(body["initialized"], json!(false));
    let (status, body) = call(&core, "", Operation::Read, "sys/seal-status/", Value::Null).await;
    assert_eq!((status, &body["sealed"]), (200, &json!(true)));
    let (status, _) = call(&core, "", Operation::Read, "sys/leader", Value::Null).await;
    assert_eq!(status, 503);
    let (status, body) = call(
        &core,
        "",
        Operation::Read,
        "sys/generate-root/attempt",
        Value::Null,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // A verb the endpoint does not take: 405, with no token to check.
    for (op, path) in [
        (Operation::Delete, "sys/init"),
        (Operation::Read, "sys/unseal"),
        (Operation::Update, "sys/health"),
        (Operation::List, "sys/generate-root/update"),
    ] {
        let (status, _) = call(&core, "", op, path, Value::Null).await;
        assert_eq!(status, 405, "{op:?} {path}");
    }
    // Everything else waits for the unseal.
    let (status, _) = call(&core, "", Operation::Read, "sys/mounts", Value::Null).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn init_decodes_after_the_shapes_it_refuses() {
    let core = core();
    let (status, body) = call(
        &core,
        "",
        Operation::Update,
        "sys/init",
        json!({"secret_shares": 1, "secret_threshold": 1, "recovery_shares": 2}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"errors": ["parameters recovery_shares not applicable to seal type shamir"]})
    );
    let (status, _) = call(&core, "", Operation::Update, "sys/init", json!({"nope": 1})).await;
    assert_eq!(status, 400);
    let (status, body) = call(
        &core,
        "",
        Operation::Update,
        "sys/init",
        json!({"secret_shares": 1, "secret_threshold": 1}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["keys"].as_array().map(Vec::len), Some(1));
    assert!(body["root_token"].is_string());
}

#[tokio::test]
async fn sys_paths_reach_their_operations() {
    let (core, root) = unsealed().await;
    for (op, path, want) in [
        (Operation::Read, "sys/mounts", 200),
        (Operation::Read, "sys/mounts/secret", 200),
        (Operation::Read, "sys/mounts/secret/tune", 200),
        (Operation::Read, "sys/mounts/auth/token/tune", 200),
        (Operation::Read, "sys/auth/token/tune", 200),
        (Operation::Read, "sys/auth", 200),
        (Operation::Read, "sys/internal/ui/mounts/secret", 200),
        (Operation::Read, "sys/policies/acl", 200),
        (Operation::List, "sys/policies/acl/", 200),
        (Operation::Read, "sys/policies/acl/default", 200),
        (Operation::Read, "sys/policy", 200),
        (Operation::Read, "sys/policy/default", 200),
        (Operation::Read, "sys/policies/acl/nope", 404),
        (Operation::Read, "sys/audit", 200),
        (Operation::Read, "sys/key-status", 200),
        (Operation::Update, "sys/rotate", 204),
        (Operation::Update, "sys/rotate/keyring", 204),
        (Operation::Read, "sys/seal-status", 200),
        // Paths nothing serves: 404 once the ACL let them through.
        (Operation::Read, "sys/nope", 404),
        (Operation::Read, "sys/audit-hash", 404),
        (Operation::Read, "sys/seal-policy/nope", 404),
        // Verbs a path does not take.
        (Operation::Update, "sys/mounts", 405),
        (Operation::Delete, "sys/key-status", 405),
        (Operation::Read, "sys/rotate", 405),
        (Operation::Read, "sys/capabilities-self", 405),
        (Operation::Read, "sys/audit-hash/file", 405),
        (Operation::Update, "sys/audit-verify/file", 405),
        (Operation::Patch, "sys/seal-policy", 405),
        (Operation::Delete, "sys/mounts/secret/tune", 405),
        (Operation::Delete, "sys/auth/token/tune", 405),
        (Operation::Delete, "sys/seal", 405),
        (Operation::Update, "sys/auth", 405),
        // As OpenBao: a read of a path with no method mounted.
        (Operation::Read, "sys/auth/other", 400),
    ] {
        let (status, body) = call(&core, &root, op, path, Value::Null).await;
        assert_eq!(status, want, "{op:?} {path}: {body}");
    }
    let (_, body) = call(&core, &root, Operation::Read, "sys/mounts", Value::Null).await;
    assert_eq!(body["data"]["sys/"]["type"], json!("system"));
    assert_eq!(body["secret/"]["type"], json!("kv"));
    let (_, body) = call(&core, &root, Operation::Read, "sys/nope", Value::Null).await;
    assert_eq!(
        body,
        json!({"errors": ["no handler for route \"sys/nope\". route entry not found."]})
    );
    let (status, body) = call(
        &core,
        &root,
        Operation::Update,
        "sys/capabilities-self",
        json!({"paths": ["secret/data/x"]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["capabilities"], json!(["root"]));
    assert_eq!(body["data"]["secret/data/x"], json!(["root"]));
    let (status, body) = call(&core, &root, Operation::Update, "sys/seal", Value::Null).await;
    assert_eq!(status, 204, "{body}");
    assert!(core.is_sealed());
}

#[tokio::test]
async fn the_acl_comes_before_the_refusal() {
    let (core, root) = unsealed().await;
    let token = default_token(&core, &root).await;
    for (op, path, want) in [
        // Root paths and paths the default policy does not grant: 403 whatever the verb
        // would have answered.
        (Operation::Update, "sys/rotate", 403),
        (Operation::Read, "sys/rotate", 403),
        (Operation::Read, "sys/audit", 403),
        (Operation::Update, "sys/seal", 403),
        (Operation::Read, "sys/mounts", 403),
        (Operation::Read, "sys/nope", 404),
        (Operation::Read, "auth/token/create", 403),
        // Any valid token may ask which mount serves a path.
        (Operation::Read, "sys/internal/ui/mounts/secret", 200),
        // The default policy grants these.
        (Operation::Read, "auth/token/lookup-self", 200),
        (Operation::Update, "sys/capabilities-self", 400),
    ] {
        let (status, body) = call(&core, &token, op, path, Value::Null).await;
        assert_eq!(status, want, "{op:?} {path}: {body}");
    }
    // A token that does not resolve.
    let (status, _) = call(&core, "nope", Operation::Read, "sys/mounts", Value::Null).await;
    assert_eq!(status, 403);
    // Seal status stays public, without the details, for a token without sudo.
    let (status, body) = call(
        &core,
        &token,
        Operation::Read,
        "sys/seal-status",
        Value::Null,
    )
    .await;
    assert_eq!((status, &body["sealed"]), (200, &json!(false)));
}

#[tokio::test]
async fn token_paths_reach_their_operations() {
    let (core, root) = unsealed().await;
    let token = default_token(&core, &root).await;
    let (status, body) = call(
        &core,
        &token,
        Operation::Read,
        "auth/token/lookup-self",
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["id"], json!(token));
    assert_eq!(body["data"]["policies"], json!(["default"]));
    let (status, body) = call(
        &core,
        &root,
        Operation::Update,
        "auth/token/lookup",
        json!({"token": token}),
    )
    .await;
    assert_eq!((status, &body["data"]["id"]), (200, &json!(token)));
    let accessor = body["data"]["accessor"].clone();
    let (status, body) = call(
        &core,
        &root,
        Operation::Update,
        "auth/token/lookup-accessor/",
        json!({"accessor": accessor}),
    )
    .await;
    assert_eq!((status, &body["data"]["id"]), (200, &json!("")));
    for (op, path, want) in [
        (Operation::Read, "auth/token/create", 405),
        (Operation::Delete, "auth/token/lookup", 405),
        (Operation::Update, "auth/token/nope", 404),
        (Operation::Read, "auth/token/nope", 404),
        (Operation::Update, "auth/token/renew", 400),
        (Operation::Update, "auth/token/revoke-orphan", 400),
    ] {
        let (status, body) = call(&core, &root, op, path, Value::Null).await;
        assert_eq!(status, want, "{op:?} {path}: {body}");
    }
    // The ACL first: the default policy does not grant create.
    let (status, _) = call(
        &core,
        &token,
        Operation::Update,
        "auth/token/create",
        json!({"no_parent": "not a bool"}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &core,
        &root,
        Operation::Update,
        "sys/policies/acl/creator",
        json!({"policy": r#"path "auth/token/create" { capabilities = ["update"] }"#}),
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = call(
        &core,
        &root,
        Operation::Update,
        "auth/token/create",
        json!({"policies": ["creator"]}),
    )
    .await;
    assert_eq!(status, 200);
    let creator = body["auth"]["client_token"].as_str().unwrap_or_default();
    let (status, body) = call(
        &core,
        creator,
        Operation::Update,
        "auth/token/create",
        json!({"no_parent": true}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"errors": ["root or sudo privileges required to create orphan token"]})
        )
    );
    let (status, _) = call(
        &core,
        &token,
        Operation::Update,
        "auth/token/revoke-self",
        Value::Null,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &core,
        &token,
        Operation::Read,
        "auth/token/lookup-self",
        Value::Null,
    )
    .await;
    assert_eq!(status, 403);
}
