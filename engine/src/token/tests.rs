use super::*;
use crate::storage::{MemoryBackend, Storage};
use biscuit_auth::macros::block;
use biscuit_auth::UnverifiedBiscuit;
use hsm_bridge::ShamirRoot;

async fn store() -> TokenStore {
    let storage = Storage::new(Arc::new(MemoryBackend::new()));
    let barrier = Arc::new(Barrier::new(storage));
    let (root, _) = ShamirRoot::generate(1, 1).unwrap();
    barrier.initialize(&root).await.unwrap();
    let store = TokenStore::new(barrier);
    store.load().await.unwrap();
    store
}

fn req(policies: &[&str]) -> CreateRequest {
    CreateRequest {
        policies: policies.iter().map(|p| p.to_string()).collect(),
        path: "auth/token/create".into(),
        ..Default::default()
    }
}

async fn root(store: &TokenStore) -> (String, Caller) {
    let issued = store
        .create(
            None,
            CreateRequest {
                path: "auth/token/root".into(),
                ..req(&["root"])
            },
        )
        .await
        .unwrap();
    let caller = store
        .authenticate(&issued.token, "x", Operation::Read)
        .await
        .unwrap();
    (issued.token.to_string(), caller)
}

#[tokio::test]
async fn children_die_with_their_parent() {
    let s = store().await;
    let (_, root) = root(&s).await;
    let parent = s.create(Some(&root), req(&["app"])).await.unwrap();
    let pc = s
        .authenticate(&parent.token, "p", Operation::Read)
        .await
        .unwrap();
    assert_eq!(pc.entry.policies, vec!["app", "default"]);
    let child = s.create(Some(&pc), req(&[])).await.unwrap();
    assert!(s
        .authenticate(&child.token, "p", Operation::Read)
        .await
        .is_ok());
    s.revoke(&pc.key).await.unwrap();
    assert!(matches!(
        s.authenticate(&child.token, "p", Operation::Read).await,
        Err(EngineError::PermissionDenied)
    ));
    assert!(s
        .authenticate(&parent.token, "p", Operation::Read)
        .await
        .is_err());
}

#[tokio::test]
async fn a_child_cannot_gain_policies() {
    let s = store().await;
    let (_, root) = root(&s).await;
    let parent = s.create(Some(&root), req(&["app"])).await.unwrap();
    let pc = s
        .authenticate(&parent.token, "p", Operation::Read)
        .await
        .unwrap();
    assert!(s.create(Some(&pc), req(&["admin"])).await.is_err());
    let with_id = CreateRequest {
        id: Some("chosen".into()),
        ..req(&["app"])
    };
    assert!(s.create(Some(&pc), with_id).await.is_err());
}

#[tokio::test]
async fn use_limits_and_expiry() {
    let s = store().await;
    let (_, root) = root(&s).await;
    let limited = s
        .create(
            Some(&root),
            CreateRequest {
                num_uses: 2,
                ..req(&["app"])
            },
        )
        .await
        .unwrap();
    for _ in 0..2 {
        s.authenticate(&limited.token, "p", Operation::Read)
            .await
            .unwrap();
    }
    assert!(s
        .authenticate(&limited.token, "p", Operation::Read)
        .await
        .is_err());

    let short = s
        .create(
            Some(&root),
            CreateRequest {
                ttl: Some(1),
                ..req(&["app"])
            },
        )
        .await
        .unwrap();
    let (key, entry) = s.lookup(&short.token).unwrap();
    assert!(entry.expire_time.is_some());
    // Make it expire without waiting: rewrite its entry with a past expiry.
    let mut past = (*entry).clone();
    past.expire_time = Some(past.creation_time - 1);
    s.store_entry(&key, &past).await.unwrap();
    assert!(s
        .authenticate(&short.token, "p", Operation::Read)
        .await
        .is_err());
}

#[tokio::test]
async fn opaque_ids_and_attenuated_biscuits() {
    let s = store().await;
    let (_, root) = root(&s).await;
    let opaque = s
        .create(
            Some(&root),
            CreateRequest {
                id: Some("my-token".into()),
                ..req(&["app"])
            },
        )
        .await
        .unwrap();
    assert_eq!(opaque.token.as_str(), "my-token");
    assert!(s
        .authenticate("my-token", "p", Operation::Read)
        .await
        .is_ok());

    let minted = s.create(Some(&root), req(&["app"])).await.unwrap();
    // The holder narrows the token offline, without the appliance's key.
    let narrowed = UnverifiedBiscuit::from_base64(minted.token.as_str())
        .unwrap()
        .append(block!(
            r#"check if path($p), $p.starts_with("secret/data/app/");"#
        ))
        .unwrap()
        .to_base64()
        .unwrap();
    assert!(s
        .authenticate(&narrowed, "secret/data/app/x", Operation::Read)
        .await
        .is_ok());
    assert!(matches!(
        s.authenticate(&narrowed, "secret/data/db/x", Operation::Read)
            .await,
        Err(EngineError::PermissionDenied)
    ));
    // The un-narrowed original still works everywhere its policies allow.
    assert!(s
        .authenticate(&minted.token, "secret/data/db/x", Operation::Read)
        .await
        .is_ok());

    // The id inside a Biscuit is not itself a token.
    let source = UnverifiedBiscuit::from_base64(minted.token.as_str())
        .unwrap()
        .print_block_source(0)
        .unwrap();
    let id = biscuit::tests_support_token_id(&source).unwrap();
    assert!(s.authenticate(&id, "p", Operation::Read).await.is_err());

    // A forged Biscuit (another signer) is refused.
    let other = biscuit_auth::KeyPair::new();
    let forged = biscuit_auth::Biscuit::builder()
        .fact(biscuit_auth::builder::fact(
            "token",
            &[biscuit_auth::builder::string(&id)],
        ))
        .unwrap()
        .build(&other)
        .unwrap()
        .to_base64()
        .unwrap();
    assert!(s.authenticate(&forged, "p", Operation::Read).await.is_err());
}

#[tokio::test]
async fn tidy_reclaims_only_expired_tokens() {
    let s = store().await;
    let (_, root) = root(&s).await;
    let keep = s.create(Some(&root), req(&["app"])).await.unwrap();
    let gone = s.create(Some(&root), req(&["app"])).await.unwrap();
    let (key, entry) = s.lookup(&gone.token).unwrap();
    let mut past = (*entry).clone();
    past.expire_time = Some(past.creation_time - 1);
    s.store_entry(&key, &past).await.unwrap();
    assert_eq!(s.tidy().await.unwrap(), 1);
    assert!(s
        .barrier
        .get(&format!("{ID_PREFIX}{key}"))
        .unwrap()
        .is_none());
    assert!(s
        .authenticate(&keep.token, "p", Operation::Read)
        .await
        .is_ok());
}
