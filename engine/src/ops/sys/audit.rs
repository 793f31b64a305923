//! `sys/audit` (list, enable, disable devices), `sys/audit-hash/<device>` and the
//! Ironseal extension `sys/audit-verify/<device>` (the appliance checks a device's file
//! with the chain key, which never leaves it), and reading a device's latest lines back.
//! All are root paths: they need `sudo`.

use crate::audit::entries::{Entry, EntryQuery};
use crate::audit::{DeviceConfig, VerifyReport};
use crate::error::Result;
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;

pub struct AuditList;

impl Op for AuditList {
    type Output = Vec<DeviceConfig>;

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<Vec<DeviceConfig>> {
        cx.core.audit.list()
    }
}

pub struct AuditEnable {
    pub device: Decoded<DeviceConfig>,
}

impl Op for AuditEnable {
    type Output = ();

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        let device = self.device?;
        let path = device.path.clone();
        cx.core.audit.enable(device).await?;
        tracing::info!(device = %path, "audit device enabled");
        Ok(())
    }
}

/// Disables a device; a path with none is not an error.
pub struct AuditDisable {
    pub path: String,
}

impl Op for AuditDisable {
    type Output = ();

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Delete)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        if cx.core.audit.disable(&self.path).await? {
            tracing::info!(device = %self.path, "audit device disabled");
        }
        Ok(())
    }
}

/// The HMAC a device's log shows for `input`.
pub struct AuditHash {
    pub device: String,
    pub input: Decoded<String>,
}

impl Op for AuditHash {
    type Output = String;

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<String> {
        cx.core.audit.hash(&self.device, &self.input?)
    }
}

pub struct AuditVerify {
    pub device: String,
}

impl Op for AuditVerify {
    type Output = VerifyReport;

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<VerifyReport> {
        cx.core.audit.verify(&self.device).await
    }
}

/// A device's latest lines, newest first, filtered (`GET /api/v1/audit/entries`).
pub struct AuditEntries {
    pub query: Decoded<EntryQuery>,
}

impl Op for AuditEntries {
    type Output = Vec<Entry>;

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<Vec<Entry>> {
        cx.core.audit.entries(self.query?).await
    }
}
