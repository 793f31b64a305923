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
