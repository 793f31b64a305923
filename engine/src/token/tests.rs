use super::*;
use crate::bounded_cache::Cached;
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
        .authenticate(&issued.token, "x", Operation::Read, None)
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
        .authenticate(&parent.token, "p", Operation::Read, None)
        .await
        .unwrap();
    assert_eq!(pc.entry.policies, vec!["app", "default"]);
    let child = s.create(Some(&pc), req(&[])).await.unwrap();
    assert!(s
        .authenticate(&child.token, "p", Operation::Read, None)
        .await
        .is_ok());
    s.revoke(&pc.key).await.unwrap();
    assert!(matches!(
        s.authenticate(&child.token, "p", Operation::Read, None)
            .await,
        Err(EngineError::Unauthenticated)
    ));
    assert!(s
        .authenticate(&parent.token, "p", Operation::Read, None)
        .await
        .is_err());
}

#[tokio::test]
async fn a_child_cannot_gain_policies() {
    let s = store().await;
    let (_, root) = root(&s).await;
    let parent = s.create(Some(&root), req(&["app"])).await.unwrap();
    let pc = s
        .authenticate(&parent.token, "p", Operation::Read, None)
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
        s.authenticate(&limited.token, "p", Operation::Read, None)
            .await
            .unwrap();
    }
    assert!(s
        .authenticate(&limited.token, "p", Operation::Read, None)
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
    s.update_entry(&key, |_| Ok(Some(past.clone())))
        .await
        .unwrap();
    assert!(s
        .authenticate(&short.token, "p", Operation::Read, None)
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
        .authenticate("my-token", "p", Operation::Read, None)
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
        .authenticate(&narrowed, "secret/data/app/x", Operation::Read, None)
        .await
        .is_ok());
    assert!(matches!(
        s.authenticate(&narrowed, "secret/data/db/x", Operation::Read, None)
            .await,
        Err(EngineError::Forbidden)
    ));
    // The un-narrowed original still works everywhere its policies allow.
    assert!(s
        .authenticate(&minted.token, "secret/data/db/x", Operation::Read, None)
        .await
        .is_ok());

    // The id inside a Biscuit is not itself a token.
    let source = UnverifiedBiscuit::from_base64(minted.token.as_str())
        .unwrap()
        .print_block_source(0)
        .unwrap();
    let id = biscuit::tests_support_token_id(&source).unwrap();
    assert!(s
        .authenticate(&id, "p", Operation::Read, None)
        .await
        .is_err());

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
    assert!(s
        .authenticate(&forged, "p", Operation::Read, None)
        .await
        .is_err());
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
    s.update_entry(&key, |_| Ok(Some(past.clone())))
        .await
        .unwrap();
    assert_eq!(s.tidy().await.unwrap(), 1);
    assert!(s
        .barrier
        .get(&format!("{ID_PREFIX}{key}"))
        .unwrap()
        .is_none());
    assert!(s
        .authenticate(&keep.token, "p", Operation::Read, None)
        .await
        .is_ok());
}

fn attenuate(token: &str, check: &str) -> String {
    let mut b = biscuit_auth::builder::BlockBuilder::new();
    b = b.code(check).unwrap();
    UnverifiedBiscuit::from_base64(token)
        .unwrap()
        .append(b)
        .unwrap()
        .to_base64()
        .unwrap()
}

#[tokio::test]
async fn strings_that_fail_are_not_cached_and_long_ones_are_not_looked_at() {
    let s = store().await;
    let (_, root) = root(&s).await;
    let minted = s.create(Some(&root), req(&["app"])).await.unwrap();
    s.authenticate(&minted.token, "p", Operation::Read, None)
        .await
        .unwrap();
    let (entries, verified) = (s.entries.len(), s.verified.len());
    for i in 0..2_000 {
        let opaque = format!("not-a-token-{i}-{}", "x".repeat(i % 50));
        assert!(s
            .authenticate(&opaque, "p", Operation::Read, None)
            .await
            .is_err());
        let shaped = format!("{i}{}", "A".repeat(300));
        assert!(s
            .authenticate(&shaped, "p", Operation::Read, None)
            .await
            .is_err());
    }
    assert_eq!(s.entries.len(), entries);
    assert_eq!(s.verified.len(), verified);

    // Past the cap a token is refused whatever it is, even a stored opaque id.
    let long_id = "z".repeat(MAX_TOKEN_BYTES + 1);
    assert!(s
        .create(
            Some(&root),
            CreateRequest {
                id: Some(long_id.clone()),
                ..req(&["app"])
            },
        )
        .await
        .is_err());
    assert!(matches!(
        s.authenticate(&long_id, "p", Operation::Read, None).await,
        Err(EngineError::Unauthenticated)
    ));
}

/// A reader loads a token entry, a revoke commits and clears the cache, then the reader
/// inserts what it read: the revoked entry must not come back.
#[tokio::test]
async fn an_entry_read_before_a_revoke_is_not_cached_after_it() {
    let s = store().await;
    let (_, root) = root(&s).await;
    let minted = s.create(Some(&root), req(&["app"])).await.unwrap();
    let caller = s
        .authenticate(&minted.token, "p", Operation::Read, None)
        .await
        .unwrap();
    s.entries.clear();
    let Cached::Miss(epoch) = s.entries.get(&caller.key) else {
        panic!("cleared cache hit")
    };
    let read: TokenEntry = s
        .barrier
        .get_json(&format!("{ID_PREFIX}{}", caller.key))
        .unwrap()
        .unwrap();
    s.revoke(&caller.key).await.unwrap();
    s.entries.insert(epoch, &caller.key, Arc::new(read), 1);
    assert!(matches!(
        s.authenticate(&minted.token, "p", Operation::Read, None)
            .await,
        Err(EngineError::Unauthenticated)
    ));
}

#[tokio::test]
async fn lifetimes_are_bounded_by_the_lease_ttls() {
    let s = store().await;
    let (_, root) = root(&s).await;
    let ten_years = 10 * 365 * 86400;
    let long = s
        .create(
            Some(&root),
            CreateRequest {
                ttl: Some(ten_years),
                explicit_max_ttl: Some(ten_years),
                ..req(&["app"])
            },
        )
        .await
        .unwrap();
    assert_eq!(long.entry.creation_ttl, SYSTEM_TTL);
    let (key, _) = s.lookup(&long.token).unwrap();
    let renewed = s
        .renew(&key, Some(ten_years), |_| Ok(Some(s.own_renewal())))
        .await
        .unwrap()
        .unwrap();
    let end = renewed.expire_time.unwrap();
    assert!(end <= renewed.creation_time + SYSTEM_TTL as i64);

    // A tune of the mount lowers the maximum, for new tokens and renewals alike.
    s.tune(MountTtls {
        default_lease_ttl: 0,
        max_lease_ttl: 3600,
    })
    .await
    .unwrap();
    let short = s.create(Some(&root), req(&["app"])).await.unwrap();
    assert_eq!(short.entry.creation_ttl, 3600);
    let renewed = s
        .renew(&key, Some(ten_years), |_| Ok(Some(s.own_renewal())))
        .await;
    // The old token is past creation + the new maximum? No: an hour is still left.
    assert!(renewed.unwrap().unwrap().expire_time.unwrap() <= now() + 3600);
    assert!(s
        .tune(MountTtls {
            default_lease_ttl: 7200,
            max_lease_ttl: 3600,
        })
        .await
        .is_err());

    // An expiring root token cannot mint a root token that never expires.
    let expiring_root = s
        .create(
            Some(&root),
            CreateRequest {
                ttl: Some(600),
                ..req(&["root"])
            },
        )
        .await
        .unwrap();
    assert!(expiring_root.entry.expire_time.is_some());
    let er = s
        .authenticate(&expiring_root.token, "p", Operation::Read, None)
        .await
        .unwrap();
    assert!(s.create(Some(&er), req(&["root"])).await.is_err());
}

#[tokio::test]
async fn attenuated_tokens_are_revoked_alone_and_cannot_mint() {
    let s = store().await;
    let (_, root) = root(&s).await;
    let minted = s.create(Some(&root), req(&["app"])).await.unwrap();
    let narrowed = attenuate(
        &minted.token,
        r#"check if path($p), $p.starts_with("secret/data/app/");"#,
    );
    let further = attenuate(&narrowed, r#"check if operation("read");"#);
    let sibling = attenuate(
        &minted.token,
        r#"check if path($p), $p.starts_with("secret/data/db/");"#,
    );
    let caller = s
        .authenticate(&narrowed, "secret/data/app/x", Operation::Read, None)
        .await
        .unwrap();
    assert!(caller.is_attenuated());
    // Its identity: the last block's revocation id, also for audit.
    let (entry, id) = s.identify(&narrowed).unwrap();
    assert_eq!(id, caller.revocation_id);
    assert_eq!(entry.accessor, caller.entry.accessor);
    // Another caller can look it up although its checks refuse that path.
    assert!(s.lookup(&narrowed).is_ok());

    // No child: it would shed the attenuation.
    assert!(matches!(
        s.create(Some(&caller), req(&[])).await,
        Err(EngineError::Forbidden)
    ));

    // Revoke-self is allowed whatever its checks say, and revokes only it.
    let self_caller = s
        .authenticate(&narrowed, "auth/token/revoke-self", Operation::Update, None)
        .await
        .unwrap();
    assert_eq!(
        s.revoke_caller(&self_caller).await.unwrap(),
        Revoked::Attenuation
    );
    for gone in [&narrowed, &further] {
        assert!(matches!(
            s.authenticate(gone, "secret/data/app/x", Operation::Read, None)
                .await,
            Err(EngineError::Unauthenticated)
        ));
    }
    assert!(s
        .authenticate(&minted.token, "secret/data/app/x", Operation::Read, None)
        .await
        .is_ok());
    assert!(s
        .authenticate(&sibling, "secret/data/db/x", Operation::Read, None)
        .await
        .is_ok());

    // `revoke` with the token string: the sibling alone, then nothing is left to revoke.
    assert_eq!(
        s.revoke_token(&sibling).await.unwrap(),
        Revoked::Attenuation
    );
    assert!(s
        .authenticate(&sibling, "secret/data/db/x", Operation::Read, None)
        .await
        .is_err());
    assert_eq!(s.revoke_token(&sibling).await.unwrap(), Revoked::Nothing);
    assert!(s
        .authenticate(&minted.token, "p", Operation::Read, None)
        .await
        .is_ok());

    // Once the base token is gone, tidy reclaims the revocation records.
    assert_eq!(s.revoke_token(&minted.token).await.unwrap(), Revoked::Tree);
    s.tidy().await.unwrap();
    assert!(s.barrier.list(REVOKED_BLOCK_PREFIX).unwrap().is_empty());
}

/// Another node revokes a token by deleting its entry: once storage raises it, the
/// cached entry is dropped and the token string, though verified before, is refused.
#[tokio::test]
async fn an_entry_another_writer_deleted_is_dropped() {
    let mem = Arc::new(MemoryBackend::new());
    let barrier = Arc::new(Barrier::new(Storage::new(mem.clone())));
    let (root_key, _) = ShamirRoot::generate(1, 1).unwrap();
    barrier.initialize(&root_key).await.unwrap();
    let s = TokenStore::new(barrier);
    s.load().await.unwrap();
    let (_, root) = root(&s).await;
    let minted = s.create(Some(&root), req(&["app"])).await.unwrap();
    let caller = s
        .authenticate(&minted.token, "p", Operation::Read, None)
        .await
        .unwrap();
    assert!(matches!(s.entries.get(&caller.key), Cached::Hit(_)));

    let mut other_node = crate::storage::Batch::new();
    other_node.delete(format!("{ID_PREFIX}{}", caller.key));
    mem.write_as_other_node(&other_node);

    assert!(matches!(s.entries.get(&caller.key), Cached::Miss(_)));
    assert!(matches!(
        s.authenticate(&minted.token, "p", Operation::Read, None)
            .await,
        Err(EngineError::Unauthenticated)
    ));
}

#[tokio::test]
async fn a_wrapping_token_serves_once_and_takes_its_response_with_it() {
    let s = store().await;
    let (_, root) = root(&s).await;
    let info = s
        .wrap("{\"data\":1}".into(), "secret/data/x", 60, String::new())
        .await
        .unwrap();
    assert_eq!(
        (info.ttl, info.creation_path.as_str()),
        (60, "secret/data/x")
    );
    let (key, entry) = s.lookup(&info.token).unwrap();
    assert!(entry.is_wrapping());
    assert_eq!((entry.num_uses, entry.renewable), (1, false));
    assert_eq!(s.lookup_wrapped(&info.token).unwrap().creation_ttl, 60);

    // Rewrapped: the old token and its record go in the same commit.
    let new = s.rewrap(&info.token, Some(3600)).await.unwrap();
    assert_eq!(new.ttl, 60, "the lesser of the two TTLs");
    assert!(matches!(
        s.lookup_wrapped(&info.token),
        Err(EngineError::InvalidWrappingToken)
    ));
    assert!(s
        .barrier
        .get(&format!("{}{key}", wrapping::WRAPPED_PREFIX))
        .unwrap()
        .is_none());

    assert_eq!(s.unwrap(&new.token).await.unwrap().response, "{\"data\":1}");
    assert!(matches!(
        s.unwrap(&new.token).await,
        Err(EngineError::InvalidWrappingToken)
    ));
    // Only wrapping tokens unwrap; and none can be made through create.
    let plain = s.create(Some(&root), req(&["app"])).await.unwrap();
    assert!(matches!(
        s.unwrap(&plain.token).await,
        Err(EngineError::InvalidWrappingToken)
    ));
    assert!(s
        .create(Some(&root), req(&["response-wrapping"]))
        .await
        .is_err());
}

#[tokio::test]
async fn tidy_removes_an_expired_wrapping_token_and_its_response() {
    let s = store().await;
    let info = s
        .wrap("{}".into(), "sys/wrapping/wrap", 60, String::new())
        .await
        .unwrap();
    let (key, entry) = s.lookup(&info.token).unwrap();
    let mut past = (*entry).clone();
    past.expire_time = Some(past.creation_time - 1);
    s.update_entry(&key, |_| Ok(Some(past.clone())))
        .await
        .unwrap();
    assert!(matches!(
        s.lookup_wrapped(&info.token),
        Err(EngineError::InvalidWrappingToken)
    ));
    assert_eq!(s.tidy().await.unwrap(), 1);
    assert!(s
        .barrier
        .get(&format!("{}{key}", wrapping::WRAPPED_PREFIX))
        .unwrap()
        .is_none());
}
