//! `sys/health` and `sys/leader`: what load balancers and the CLI poll.

use crate::error::{EngineError, Result};
use crate::ops::{Access, Context, Op};

/// The states `sys/health` answers with (and picks its status code by).
pub struct HealthStatus {
    pub initialized: bool,
    pub sealed: bool,
    /// The storage backend's name (`seal-status`'s `storage_type`).
    pub storage_type: &'static str,
    /// Whether a shared store's server answered the last time it was asked (none for an
    /// embedded store). Not probed here: a stalled server must not hold up the probe.
    pub storage_reachable: Option<bool>,
}

pub struct Health;

impl Op for Health {
    type Output = HealthStatus;

    fn access(&self) -> Access {
        Access::Public
    }

    async fn run(self, cx: Context<'_>) -> Result<HealthStatus> {
        let storage = &cx.core.storage;
        Ok(HealthStatus {
            initialized: cx.core.is_initialized()?,
            sealed: cx.core.is_sealed(),
            storage_type: storage.kind(),
            storage_reachable: storage.figures().backend.reachable,
        })
    }
}

/// `sys/leader`: this appliance is its own leader, answered once unsealed.
pub struct Leader;

impl Op for Leader {
    type Output = ();

    fn access(&self) -> Access {
        Access::Public
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        if cx.core.is_sealed() {
            return Err(EngineError::Sealed);
        }
        Ok(())
    }
}
