//! The seal: how the root key is held (Shamir shares, or a TPM/HSM with recovery keys)
//! and the appliance's way through uninitialised → sealed ⇄ unsealed.
//!
//! - [`lifecycle`]: seal status, sealing and shutdown;
//! - [`init`]: the first root key, keyring and root token, retryable after a crash;
//! - [`unseal`]: unseal keys and recovery keys, and auto-unseal with a hardware seal;
//! - [`migration`]: moving the keyring between Shamir and a hardware seal;
//! - [`generate_root`]: a new root token from a quorum of operator keys;
//! - [`rotate`]: new operator keys (and threshold) from a quorum of the current ones;
//! - [`pcr_policy`]: which TPM platform states auto-unseal accepts;
//! - [`report`]: why a hardware seal did not open, as seal-status shows it.

use std::sync::Arc;

use hsm_bridge::{RootOfTrust, SealDevice, SealKind, ShamirRoot};
use serde::{Deserialize, Serialize};

use crate::bounded_cache::Cached;
use crate::core::Core;
use crate::crypto::constant_time_eq;
use crate::error::{EngineError, Result};
use crate::storage::{Batch, StorageError};

pub mod generate_root;
pub(crate) mod init;
mod lifecycle;
mod migration;
mod pcr_policy;
pub mod report;
pub mod rotate;
#[cfg(test)]
mod tests;
mod unseal;

pub use init::{InitRequest, InitResult};
pub use lifecycle::SealStatus;
pub(crate) use lifecycle::UnsealProgress;
pub use unseal::{Migration, UnsealShare, UnsealStep};

pub(crate) const SEAL_CONFIG_PATH: &str = "core/seal-config";
/// With a hardware seal: the recovery key, wrapped by the hardware root key. Recovery
/// keys are checked against it; they cannot open the keyring themselves.
const RECOVERY_KEY_PATH: &str = "core/recovery-key";

/// Stored in the clear: it must be readable while sealed, and holds nothing secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub secret_shares: u8,
    pub secret_threshold: u8,
    /// With a hardware seal: how many recovery keys were made and how many it takes.
    #[serde(default)]
    pub recovery_shares: u8,
    #[serde(default)]
    pub recovery_threshold: u8,
}

impl SealConfig {
    fn kind(&self) -> Result<SealKind> {
        SealKind::parse(&self.kind).ok_or_else(|| EngineError::Corrupt(SEAL_CONFIG_PATH.into()))
    }

    /// How many keys `sys/unseal` and generate-root collect: recovery keys with a
    /// hardware seal, unseal keys with Shamir.
    fn key_threshold(&self) -> u8 {
        if self.recovery_threshold > 0 {
            self.recovery_threshold
        } else {
            self.secret_threshold
        }
    }

    /// A hardware seal of `kind`: one "secret share" (the device), and the operator's
    /// keys are recovery keys.
    fn hardware(kind: SealKind, recovery_shares: u8, recovery_threshold: u8) -> Self {
        SealConfig {
            kind: kind.as_str().into(),
            secret_shares: 1,
            secret_threshold: 1,
            recovery_shares,
            recovery_threshold,
        }
    }

    /// A Shamir seal: the operator's keys are unseal keys.
    fn shamir(secret_shares: u8, secret_threshold: u8) -> Self {
        SealConfig {
            kind: SealKind::Shamir.as_str().into(),
            secret_shares,
            secret_threshold,
            recovery_shares: 0,
            recovery_threshold: 0,
        }
    }

    fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(EngineError::internal)
    }
}

impl Core {
    /// The kind of seal the configuration makes active.
    pub fn configured_seal(&self) -> SealKind {
        self.seals
            .device
            .as_ref()
            .map(|d| d.kind())
            .unwrap_or(SealKind::Shamir)
    }

    /// The stored seal configuration as last read, for what must answer while a shared
    /// store stalls (`sys/health`, `sys/seal-status`, which OpenBao also answers from
    /// the configuration it holds): storage is read only when it is not known yet.
    /// Another node's change drops it (see `coherence`), this node's at its commit.
    pub(crate) fn known_seal_config(&self) -> Result<Option<SealConfig>> {
        let epoch = match self.seal_config_seen.get(SEAL_CONFIG_PATH) {
            Cached::Hit(config) => return Ok(Some(SealConfig::clone(&config))),
            Cached::Miss(epoch) => epoch,
        };
        let config = self.seal_config()?;
        if let Some(c) = &config {
            let size = std::mem::size_of::<SealConfig>() + c.kind.len();
            self.seal_config_seen
                .insert(epoch, SEAL_CONFIG_PATH, Arc::new(c.clone()), size);
        }
        Ok(config)
    }

    pub fn seal_config(&self) -> Result<Option<SealConfig>> {
        match self.storage.get(SEAL_CONFIG_PATH)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| EngineError::Corrupt(SEAL_CONFIG_PATH.into())),
            None => Ok(None),
        }
    }

    /// Whether the stored seal differs from the configured one in a way `-migrate`
    /// resolves: Shamir to a hardware seal, or a hardware seal (now `disabled`) to Shamir.
    fn migration_pending(&self, config: &SealConfig) -> Result<bool> {
        let stored = config.kind()?;
        let configured = self.configured_seal();
        Ok(match (stored, configured) {
            (SealKind::Shamir, c) if c.is_hardware() => true,
            (s, SealKind::Shamir) if s.is_hardware() => {
                self.seals.previous.as_ref().is_some_and(|p| p.kind() == s)
            }
            _ => false,
        })
    }

    /// Why the stored seal and the configuration cannot work together, if they cannot.
    fn seal_mismatch(&self, config: &SealConfig) -> Result<Option<String>> {
        let stored = config.kind()?;
        let configured = self.configured_seal();
        if stored == configured || self.migration_pending(config)? {
            return Ok(None);
        }
        Ok(Some(if configured == SealKind::Shamir {
            format!(
                "this data dir is sealed by the {stored} seal but the config has no seal \"{stored}\" block: add it back, or add it with disabled = \"true\" to migrate to Shamir"
            )
        } else {
            format!(
                "this data dir is sealed by the {stored} seal but the config names seal \"{configured}\": migrate through Shamir first"
            )
        }))
    }

    /// Adds to `batch` the condition that the stored seal configuration is still
    /// `current`, the one the change was worked out from.
    fn expect_seal_config(&self, current: &SealConfig, batch: &mut Batch) -> Result<()> {
        let raw = self.storage.get(SEAL_CONFIG_PATH)?;
        let stored: Option<SealConfig> =
            raw.as_deref().and_then(|b| serde_json::from_slice(b).ok());
        if stored.map(|c| c.encode()).transpose()? != Some(current.encode()?) {
            return Err(seal_changed_elsewhere());
        }
        batch.check(SEAL_CONFIG_PATH, raw);
        Ok(())
    }

    /// Commits a change of the seal's stored state (keyring wrapping, recovery key, seal
    /// configuration), made only if another node did not change it first.
    async fn commit_seal_change(&self, batch: Batch) -> Result<()> {
        let committed = self.storage.commit(batch).await;
        // Even a failed commit may have landed.
        self.seal_config_seen.clear();
        match committed {
            Err(StorageError::Conflict { .. }) => Err(seal_changed_elsewhere()),
            other => Ok(other?),
        }
    }

    fn hardware(&self) -> Result<&Arc<dyn SealDevice>> {
        self.seals
            .device
            .as_ref()
            .ok_or_else(|| EngineError::bad("no hardware seal is configured"))
    }

    /// Checks recovery keys against the recovery key stored under the hardware root.
    fn check_recovery_key(&self, hw: &dyn RootOfTrust, combined: &ShamirRoot) -> Result<()> {
        let blob = self
            .storage
            .get(RECOVERY_KEY_PATH)?
            .ok_or_else(|| EngineError::Corrupt(RECOVERY_KEY_PATH.into()))?;
        let stored = hw.unwrap(RECOVERY_KEY_PATH.as_bytes(), &blob)?;
        if !constant_time_eq(&stored, combined.key_bytes()) {
            return Err(EngineError::bad(
                "the recovery keys do not match this appliance: progress was reset, start again with the right keys",
            ));
        }
        Ok(())
    }
}

fn seal_changed_elsewhere() -> EngineError {
    EngineError::Conflict(
        "another node changed the seal (keyring, keys or seal configuration) meanwhile: nothing was changed here; check sys/seal-status and start again".into(),
    )
}

/// Runs a blocking device call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, hsm_bridge::BridgeError> + Send + 'static,
) -> Result<T> {
    Ok(tokio::task::spawn_blocking(move || {
        let out = f();
        crate::compute::scrub_stack();
        out
    })
    .await
    .map_err(EngineError::internal)??)
}

/// Opens the root key an earlier init or migration made in a hardware seal.
async fn open_existing(device: Arc<dyn SealDevice>) -> Result<Arc<dyn RootOfTrust>> {
    blocking(move || device.open(hsm_bridge::OpenMode::Existing)).await
}
