//! Scopes and attenuations on PKCS#11 operations, without a door.

use std::sync::Arc;

use cryptoki_sys::*;
use serde_json::Map;

use super::crypto::{Sign, Verify};
use super::keys::GenerateKey;
use super::objects::{CreateObject, FindObjects, ReleaseSessionObjects};
use crate::core::Core;
use crate::error::{EngineError, Result};
use crate::managed_keys::scheme::{Hash, SignScheme};
use crate::managed_keys::ListKeys;
use crate::ops::{Audited, AuditedResponse, Op, Request};
use crate::pkcs11::keygen::{self, Family};
use crate::pkcs11::keys::P256_OID;
use crate::pkcs11::{objects, Attr, Handle};
use crate::policy::Operation;
use crate::storage::{MemoryBackend, Storage};
use crate::token::CreateRequest;

struct Raw<T>(Result<T>);

impl<T> Audited for Raw<T> {
    fn audited(&self) -> AuditedResponse<'_> {
        AuditedResponse::answered(if self.0.is_ok() { 200 } else { 400 }, None)
    }
}

async fn apply<O: Op>(core: &Arc<Core>, token: &str, op: O) -> Result<O::Output> {
    let params = Map::new();
    let req = Request {
        token,
        remote: None,
        path: "pkcs11/C_Test",
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

fn generate(name: &str) -> GenerateKey {
    GenerateKey {
        instance: [0; 16],
        request: keygen::parse(
            Family::Ec,
            &[
                Attr::bytes(CKA_EC_PARAMS, P256_OID.to_vec()),
                Attr::bool(CKA_TOKEN, true),
            ],
            &[Attr::bytes(CKA_LABEL, name.as_bytes().to_vec())],
        ),
    }
}

fn find() -> FindObjects {
    FindObjects {
        instance: [0; 16],
        template: Ok(Vec::new()),
    }
}

#[tokio::test]
async fn scopes_and_attenuations_decide_what_a_pin_reaches() {
    let core = Core::new(Storage::new(Arc::new(MemoryBackend::new())));
    let root = core
        .dev_setup(None)
        .await
        .expect("dev")
        .root_token
        .to_string();
    apply(&core, &root, generate("app-signer"))
        .await
        .expect("app");
    apply(&core, &root, generate("db-signer"))
        .await
        .expect("db");
    let data = CreateObject {
        instance: [0; 16],
        request: objects::new_object(&[
            Attr::ulong(CKA_CLASS, CKO_DATA),
            Attr::bool(CKA_TOKEN, true),
        ]),
    };
    apply(&core, &root, data).await.expect("data object");

    let reader = token(&core, &["keys:read"]).await;
    assert_eq!(apply(&core, &reader, find()).await.expect("find").len(), 5);
    assert!(matches!(
        apply(&core, &reader, generate("x")).await,
        Err(EngineError::MissingScope("keys:write"))
    ));

    let full = token(&core, &["keys:read", "keys:write"]).await;
    let block = biscuit_auth::builder::BlockBuilder::new()
        .code(r#"check if key_name($n), $n.starts_with("app-");"#)
        .expect("block");
    let app_only = biscuit_auth::UnverifiedBiscuit::from_base64(&full)
        .and_then(|b| b.append(block))
        .and_then(|b| b.to_base64())
        .expect("attenuated");
    let found = apply(&core, &app_only, find()).await.expect("find");
    assert_eq!(found.len(), 2, "the app key's pair, no data object");
    assert!(found.iter().all(|o| matches!(o.handle, Handle::Key { .. })));
    assert!(matches!(
        apply(&core, &app_only, generate("db-2")).await,
        Err(EngineError::AttenuationDenied { .. })
    ));
    assert!(apply(&core, &app_only, generate("app-2")).await.is_ok());
}

#[tokio::test]
async fn session_keys_are_generated_used_and_released_per_instance() {
    let core = Core::new(Storage::new(Arc::new(MemoryBackend::new())));
    core.dev_setup(None).await.expect("dev");
    let (mine, other) = ([1; 16], [2; 16]);
    let session_pair = |instance| GenerateKey {
        instance,
        request: keygen::parse(
            Family::Ec,
            &[
                Attr::bytes(CKA_EC_PARAMS, P256_OID.to_vec()),
                Attr::bool(CKA_TOKEN, false),
            ],
            &[
                Attr::bool(CKA_TOKEN, false),
                Attr::bytes(CKA_LABEL, b"not a key name".to_vec()),
            ],
        ),
    };
    // Making a session key changes nothing on the token: keys:use is enough.
    let user = token(&core, &["keys:use"]).await;
    let pair = apply(&core, &user, session_pair(mine))
        .await
        .expect("session pair");
    let [public, private] = &pair[..] else {
        panic!("a pair has two objects: {pair:?}");
    };
    assert!(matches!(public.handle, Handle::Session(_)));
    assert!(!public.get_bool(CKA_TOKEN) && !private.get_bool(CKA_TOKEN));
    assert!(private.get_bool(CKA_LOCAL) && private.get_bool(CKA_NEVER_EXTRACTABLE));
    assert!(private.get_bool(CKA_SIGN) && private.get_bool(CKA_SENSITIVE));
    assert!(!private.get_bool(CKA_EXTRACTABLE));
    assert_eq!(private.get_bytes(CKA_LABEL), Some(&b"not a key name"[..]));
    assert_eq!(private.sensitive, vec![CKA_VALUE]);
    assert!(public.get_bytes(CKA_EC_POINT).is_some());

    let data = b"signed by a session key".to_vec();
    let sign = |instance| Sign {
        instance,
        key: private.handle,
        scheme: Ok(SignScheme::EcdsaRaw {
            hash: Some(Hash::Sha256),
        }),
        data: data.clone(),
    };
    let signature = apply(&core, &user, sign(mine)).await.expect("sign");
    assert_eq!(signature.len(), 64);
    let verify = Verify {
        instance: mine,
        key: public.handle,
        scheme: Ok(SignScheme::EcdsaRaw {
            hash: Some(Hash::Sha256),
        }),
        data: data.clone(),
        signature,
    };
    assert!(apply(&core, &user, verify).await.expect("verify"));

    // Nothing stored, nothing seen by another library instance.
    let all = ListKeys {
        page_size: usize::MAX,
        ..Default::default()
    };
    assert!(core
        .keys
        .list(&all, |_| true)
        .expect("list")
        .keys
        .is_empty());
    assert!(apply(&core, &user, sign(other)).await.is_err());
    let reader = token(&core, &["keys:read"]).await;
    let seen = |instance| FindObjects {
        instance,
        template: Ok(Vec::new()),
    };
    assert!(apply(&core, &reader, seen(other))
        .await
        .expect("find")
        .is_empty());
    assert_eq!(
        apply(&core, &reader, seen(mine)).await.expect("find").len(),
        2
    );

    let ids = pair
        .iter()
        .filter_map(|o| match o.handle {
            Handle::Session(id) => Some(id),
            _ => None,
        })
        .collect();
    let release = ReleaseSessionObjects {
        instance: mine,
        ids,
    };
    apply(&core, &user, release).await.expect("release");
    assert!(apply(&core, &user, sign(mine)).await.is_err());
    assert!(apply(&core, &reader, seen(mine))
        .await
        .expect("find")
        .is_empty());
}
