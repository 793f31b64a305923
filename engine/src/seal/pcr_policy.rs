//! The TPM PCR policy of a hardware seal, while unsealed: which PCR values auto-unseal
//! accepts (`sys/seal-policy`), authorising the next boot's values before an update, and
//! re-sealing the root key for the current values (after a recovery-key unseal, or to
//! move an old data dir to the signed policy). Not to be confused with ACL policies
//! ([`crate::policy`]) or transit key policies.
//!
//! The appliance key that signs PCR values is kept under the barrier at
//! [`PCR_POLICY_KEY_PATH`], so only an unsealed appliance can authorise a platform state.

use std::collections::BTreeMap;
use std::sync::Arc;

use hsm_bridge::{PcrTarget, RootOfTrust, SealBinding, SealDevice, SealPolicyReport};
use zeroize::Zeroizing;

use super::{blocking, RECOVERY_KEY_PATH};
use crate::core::Core;
use crate::error::{EngineError, Result};

/// The storage path keeps its first name: data dirs already hold the key there.
pub(super) const PCR_POLICY_KEY_PATH: &str = "core/seal-policy-key";

/// Makes a new hardware root key bound to `recovery_key` (and, for seals that take
/// signed platform states, a new policy key, returned to be stored under the barrier
/// once it exists).
pub(super) async fn create_hardware_root(
    device: Arc<dyn SealDevice>,
    recovery_key: &[u8],
) -> Result<(Arc<dyn RootOfTrust>, Option<Zeroizing<Vec<u8>>>)> {
    let policy_key = device.new_policy_key();
    let recovery = Zeroizing::new(recovery_key.to_vec());
    let key = policy_key.clone();
    let root = blocking(move || {
        device.create(&SealBinding {
            recovery_key: &recovery,
            policy_key: key.as_ref().map(|k| k.as_slice()),
        })
    })
    .await?;
    Ok((root, policy_key))
}

impl Core {
    /// Keeps the policy key under the barrier (the barrier must be unsealed).
    pub(super) async fn store_policy_key(&self, key: Option<&[u8]>) -> Result<()> {
        let Some(key) = key else { return Ok(()) };
        let mut batch = self.barrier.batch()?;
        batch.put(PCR_POLICY_KEY_PATH, key)?;
        self.barrier.commit(batch).await
    }

    fn recovery_key(&self, root: &dyn RootOfTrust) -> Result<Zeroizing<Vec<u8>>> {
        let blob = self
            .storage
            .get(RECOVERY_KEY_PATH)?
            .ok_or_else(|| EngineError::bad("this seal has no recovery keys"))?;
        Ok(root.unwrap(RECOVERY_KEY_PATH.as_bytes(), &blob)?)
    }

    /// The platform states the hardware seal accepts now.
    pub(crate) async fn seal_policy(&self) -> Result<SealPolicyReport> {
        let root = self.root()?;
        blocking(move || root.seal_policy()).await
    }

    /// Signs the PCR values the next boot will have, so auto-unseal keeps working after
    /// a planned firmware, boot loader or Secure Boot update.
    pub(crate) async fn authorize_pcrs(
        &self,
        targets: BTreeMap<u8, PcrTarget>,
    ) -> Result<SealPolicyReport> {
        let _l = self.lifecycle.lock().await;
        let root = self.root()?;
        let key = self.barrier.get(PCR_POLICY_KEY_PATH)?.ok_or_else(|| {
            EngineError::bad(
                "this appliance has no seal policy key yet (initialised before signed PCR policies): run `ironseal operator reseal` first",
            )
        })?;
        let report = blocking(move || root.authorize_pcrs(&key, &targets)).await?;
        self.audit.event(
            "seal-authorize-pcrs",
            serde_json::json!({"authorized": report.authorized.last()}),
        );
        Ok(report)
    }

    /// Re-creates the sealed root key for the current platform state (same root key, so
    /// the keyring and all data stay as they are), with the recovery branch and a policy
    /// key (made now if the appliance predates them).
    pub(crate) async fn reseal(&self) -> Result<SealPolicyReport> {
        let _l = self.lifecycle.lock().await;
        let root = self.root()?;
        let device = self.hardware()?.clone();
        let recovery = self.recovery_key(root.as_ref())?;
        let (key, fresh) = match self.barrier.get(PCR_POLICY_KEY_PATH)? {
            Some(k) => (Some(k), false),
            None => (device.new_policy_key(), true),
        };
        if fresh {
            // Stored first: a policy the appliance cannot sign for again would be a trap.
            self.store_policy_key(key.as_ref().map(|k| k.as_slice()))
                .await?;
        }
        let report = blocking(move || {
            root.reseal(&SealBinding {
                recovery_key: &recovery,
                policy_key: key.as_ref().map(|k| k.as_slice()),
            })
        })
        .await?;
        self.audit.event(
            "seal-reseal",
            serde_json::json!({"pcrs": report.pcrs, "current": report.current}),
        );
        tracing::info!(pcrs = ?report.pcrs, "the root key was re-sealed to the hardware");
        Ok(report)
    }
}
