//! `sys/metrics` and `sys/host-info`: what monitoring reads of the appliance.

use crate::error::Result;
use crate::ops::{Access, Context, Op};
use crate::policy::Operation;
use crate::storage::StorageFigures;

/// The appliance's own figures at one instant; the door adds its request counts.
#[derive(Debug, Clone)]
pub struct EngineFigures {
    pub initialized: bool,
    pub sealed: bool,
    pub storage: StorageFigures,
    /// Audit lines a device failed to write since start.
    pub audit_failures: u64,
    pub audit_devices: usize,
    /// Cloud-export sync jobs waiting; unknown while sealed.
    pub sync_outbox_depth: Option<usize>,
    /// Secrets engines mounted; unknown while sealed.
    pub mounts: Option<usize>,
    /// Each periodic task's runs on this node since start: of the nodes sharing a
    /// keyspace, only the one holding the periodic-task lease runs them.
    pub periodic_runs: Vec<(&'static str, u64)>,
}

/// Reads the figures. With the listener's `unauthenticated_metrics_access`, anyone may,
/// sealed or not, as Vault serves them then; otherwise a token with `read` on
/// `sys/metrics`.
pub struct MetricsRead {
    pub unauthenticated: bool,
}

impl Op for MetricsRead {
    type Output = EngineFigures;

    fn access(&self) -> Access {
        if self.unauthenticated {
            Access::Public
        } else {
            Access::Acl(Operation::Read)
        }
    }

    async fn run(self, cx: Context<'_>) -> Result<EngineFigures> {
        let core = cx.core;
        let sealed = core.is_sealed();
        let unsealed =
            |f: &dyn Fn() -> Result<usize>| if sealed { Ok(None) } else { f().map(Some) };
        Ok(EngineFigures {
            initialized: core.is_initialized()?,
            sealed,
            storage: core.storage.figures(),
            audit_failures: core.audit.failures(),
            audit_devices: core.audit.device_count(),
            sync_outbox_depth: unsealed(&|| crate::cloud_exports::outbox::depth(&core.barrier))?,
            mounts: unsealed(&|| Ok(core.mounts.list().len()))?,
            periodic_runs: core.periodic().runs(),
        })
    }
}

/// `sys/host-info`: root-protected, as Vault's is, since it describes the machine. The
/// door gathers the facts once this allows it.
pub struct HostInfoRead;

impl Op for HostInfoRead {
    type Output = ();

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Read)
    }

    async fn run(self, _cx: Context<'_>) -> Result<()> {
        Ok(())
    }
}
