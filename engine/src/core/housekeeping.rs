//! The periodic tasks of the stores [`Core`] builds, registered in [`Core::with`].

use std::time::Duration;

use crate::core::Core;
use crate::error::EngineError;
use crate::managed_keys::KeyError;
use crate::periodic::{PeriodicTask, TaskFuture};

/// Revokes tokens whose TTL has passed.
pub(super) struct TokenExpiry;

impl PeriodicTask for TokenExpiry {
    fn name(&self) -> &'static str {
        "token-expiry"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn run<'a>(&'a self, core: &'a Core) -> TaskFuture<'a> {
        Box::pin(async move {
            let removed = core.tokens.tidy().await?;
            if removed > 0 {
                tracing::info!(removed, "expired tokens revoked");
            }
            Ok(())
        })
    }
}

/// Removes expired AppRole secret ids and their accessors, once a minute as OpenBao's
/// AppRole does.
pub(super) struct SecretIdTidy;

impl PeriodicTask for SecretIdTidy {
    fn name(&self) -> &'static str {
        "approle-secret-id-tidy"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn run<'a>(&'a self, core: &'a Core) -> TaskFuture<'a> {
        Box::pin(async move {
            let removed = core.auth_mounts.tidy_secret_ids().await?;
            if removed > 0 {
                tracing::info!(removed, "expired AppRole secret ids tidied");
            }
            Ok(())
        })
    }
}

/// Destroys managed keys whose pending-destruction window has passed.
pub(super) struct ManagedKeyDestruction;

impl PeriodicTask for ManagedKeyDestruction {
    fn name(&self) -> &'static str {
        "managed-key-destruction"
    }

    fn interval(&self) -> Duration {
        Duration::ZERO
    }

    fn run<'a>(&'a self, core: &'a Core) -> TaskFuture<'a> {
        Box::pin(async move {
            let destroyed = core
                .keys
                .tidy(core.root().ok())
                .await
                .map_err(|e| match e {
                    KeyError::Engine(e) => e,
                    other => EngineError::internal(other),
                })?;
            for (id, name) in destroyed {
                core.audit
                    .event("key-destroyed", serde_json::json!({"id": id, "name": name}));
            }
            Ok(())
        })
    }
}

/// Rotates the transit keys whose `auto_rotate_period` has passed, on every mount.
pub(super) struct TransitAutoRotation;

impl PeriodicTask for TransitAutoRotation {
    fn name(&self) -> &'static str {
        "transit-auto-rotation"
    }

    fn interval(&self) -> Duration {
        Duration::ZERO
    }

    fn run<'a>(&'a self, core: &'a Core) -> TaskFuture<'a> {
        Box::pin(async move {
            let mut first_error: Option<EngineError> = None;
            for mount in core.mounts.list() {
                match mount.backend.tick().await {
                    Ok(rotated) => {
                        for (key, version) in rotated {
                            core.audit.event(
                                "transit-key-rotated",
                                serde_json::json!({"mount": mount.entry.path, "key": key, "version": version}),
                            );
                        }
                    }
                    // One mount's failure must not hold back the others' rotations.
                    Err(e) => {
                        tracing::warn!(mount = %mount.entry.path, error = %e, "transit auto-rotation failed");
                        first_error.get_or_insert(e);
                    }
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use serde_json::{json, Value};

    use crate::auth::approle::SecretIdRequest;
    use crate::auth::AuthConfig;
    use crate::core::Core;
    use crate::error::EngineError;
    use crate::storage::{MemoryBackend, Storage};

    #[tokio::test]
    async fn expired_secret_ids_are_tidied_by_the_periodic_task() {
        let core = Core::new(Storage::new(Arc::new(MemoryBackend::new())));
        core.dev_setup(None).await.unwrap();
        core.auth_mounts
            .enable(
                "approle",
                "approle",
                String::new(),
                BTreeMap::new(),
                AuthConfig::default(),
            )
            .await
            .unwrap();
        let (mount, _) = core.route_auth("approle/login").unwrap();
        let approle = mount.approle().unwrap();
        let Value::Object(fields) = json!({"token_policies": "app"}) else {
            unreachable!()
        };
        approle.write_role("app", &fields).await.unwrap();
        let generate = |ttl| {
            approle.generate_secret_id(
                "app",
                SecretIdRequest {
                    ttl,
                    ..Default::default()
                },
            )
        };
        let lasting = generate(None).await.unwrap().accessor;
        let expiring = generate(Some(1)).await.unwrap().accessor;

        // Each round runs the tasks as if a minute had passed, until the secret id has
        // expired by the wall clock and the tidy has removed it.
        let start = Instant::now();
        let mut round = 0;
        loop {
            round += 1;
            let now = start + Duration::from_secs(61 * round);
            core.periodic().run_due(&core, now).await;
            match approle.lookup_accessor("app", &expiring).await {
                Err(EngineError::NotFound(_)) => break,
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
            assert!(start.elapsed() < Duration::from_secs(10), "never tidied");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        approle.lookup_accessor("app", &lasting).await.unwrap();
    }
}
