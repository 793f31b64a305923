//! Scopes and per-key attenuations, decided by the operations without HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Map;

use super::{KeyCreate, KeyGet, KeyList, KeySign};
use crate::core::Core;
use crate::error::{EngineError, ErrorKind, Result};
use crate::managed_keys::{Algorithm, CreateKey, KeyError, ListKeys, ManagedKey};
use crate::ops::{Audited, AuditedResponse, Op, Request};
use crate::policy::Operation;
use crate::storage::{MemoryBackend, Storage};
use crate::token::CreateRequest;

/// The test door: the typed outcome itself.
struct Raw<T>(Result<T>);

impl<T> Audited for Raw<T> {
    fn audited(&self) -> AuditedResponse<'_> {
        AuditedResponse {
            status: if self.0.is_ok() { 200 } else { 400 },
            body: None,
            error: None,
        }
    }
}

async fn apply<O: Op>(core: &Arc<Core>, token: &str, path: &str, op: O) -> Result<O::Output> {
    let params = Map::new();
    let req = Request {
        token,
        remote: None,
        path,
        operation: Operation::Update,
        params: &params,
    };
    core.apply(&req, op, Raw).await.0
}

async fn token(core: &Arc<Core>, scopes: &[&str]) -> String {
    let issued = core
        .tokens
        .create(
            None,
            CreateRequest {
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                path: "auth/token/create".into(),
                ..Default::default()
            },
        )
        .await
        .expect("token");
    issued.token.to_string()
}

/// Appends a block of checks to a token offline, as a holder would.
fn attenuate(token: &str, code: &str) -> String {
    let unverified = biscuit_auth::UnverifiedBiscuit::from_base64(token).expect("biscuit");
    let block = biscuit_auth::builder::BlockBuilder::new()
        .code(code)
        .expect("block");
    unverified
        .append(block)
        .and_then(|b| b.to_base64())
        .expect("attenuated")
}

fn create(name: &str) -> KeyCreate {
    KeyCreate {
        request: Ok(CreateKey {
            name: name.into(),
            algorithm: Algorithm::EcP256,
            usage: None,
            labels: BTreeMap::new(),
            exportable: false,
            allow_unwrapped_export: false,
        }),
    }
}

fn sign(key: &ManagedKey) -> KeySign {
    KeySign {
        key: key.id.to_string(),
        version: Ok(None),
        message: Ok(b"m".to_vec()),
    }
}

fn list() -> KeyList {
    KeyList {
        query: Ok(ListKeys {
            page_size: 50,
            ..Default::default()
        }),
    }
}

fn denied<T>(r: Result<T>) -> bool {
    matches!(r, Err(EngineError::AttenuationDenied { .. }))
}

#[tokio::test]
async fn attenuations_are_checked_per_key_and_listings_filtered() {
    let core = Core::new(Storage::new(Arc::new(MemoryBackend::new())));
    let init = core.dev_setup(None).await.expect("dev setup");
    let root = init.root_token.to_string();
    let app = apply(&core, &root, "api/v1/keys", create("app-signer"))
        .await
        .expect("create");
    let db = apply(&core, &root, "api/v1/keys", create("db-key"))
        .await
        .expect("create");
    let full = token(&core, &["keys:read", "keys:write", "keys:use"]).await;
    let app_only = attenuate(&full, r#"check if key_name($n), $n.starts_with("app-");"#);

    let path = format!("api/v1/keys/{}/sign", app.id);
    assert!(apply(&core, &app_only, &path, sign(&app)).await.is_ok());
    let path = format!("api/v1/keys/{}/sign", db.id);
    assert!(denied(apply(&core, &app_only, &path, sign(&db)).await));
    assert!(apply(&core, &full, &path, sign(&db)).await.is_ok());
    let get = KeyGet {
        key: db.id.to_string(),
    };
    assert!(denied(apply(&core, &app_only, "api/v1/keys/x", get).await));
    assert!(denied(
        apply(&core, &app_only, "api/v1/keys", create("db-2")).await
    ));

    let page = apply(&core, &app_only, "api/v1/keys", list())
        .await
        .expect("list");
    let names: Vec<_> = page.keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["app-signer"]);
    let expired = attenuate(&full, r#"check if time($t), $t < 2020-01-01T00:00:00Z;"#);
    assert!(denied(apply(&core, &expired, "api/v1/keys", list()).await));
}

#[tokio::test]
async fn scope_before_fields_and_fields_before_the_key() {
    let core = Core::new(Storage::new(Arc::new(MemoryBackend::new())));
    core.dev_setup(None).await.expect("dev setup");
    let bad_version = || KeySign {
        key: "not-a-uuid".into(),
        version: Err(KeyError::invalid("INVALID_FIELD", "bad version").into()),
        message: Ok(Vec::new()),
    };
    let kind = |r: Result<_>| r.map(|_| ()).map_err(|e: EngineError| e.kind());
    let path = "api/v1/keys/not-a-uuid/sign";
    assert_eq!(
        kind(apply(&core, "", path, bad_version()).await),
        Err(ErrorKind::Unauthenticated)
    );
    let reader = token(&core, &["keys:read"]).await;
    assert!(matches!(
        apply(&core, &reader, path, bad_version()).await,
        Err(EngineError::MissingScope("keys:use"))
    ));
    let user = token(&core, &["keys:use"]).await;
    let code = |r: Result<_>| match r {
        Err(EngineError::Key(k)) => Some(k.code()),
        _ => None,
    };
    assert_eq!(
        code(apply(&core, &user, path, bad_version()).await.map(|_| ())),
        Some("INVALID_FIELD")
    );
    let bad_id = KeySign {
        version: Ok(None),
        ..bad_version()
    };
    assert_eq!(
        code(apply(&core, &user, path, bad_id).await.map(|_| ())),
        Some("INVALID_KEY_ID")
    );
}
